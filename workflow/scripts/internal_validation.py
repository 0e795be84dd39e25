"""Rule internal_validation: Harrell's optimism-corrected bootstrap of one task (usrad.validation)."""
import json
import logging
from pathlib import Path

from usrad.cohort import read_cohort_table
from usrad.config import task_by_name
from usrad.errors import rule_errors
from usrad.features import read_feature_table
from usrad.split import read_split
from usrad.validation import optimism_bootstrap, write_validation

smk = snakemake  # noqa: F821 (injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
with rule_errors(smk):
    cfg = smk.params.config
    features, _ = read_feature_table(smk.input.features)
    cohort = read_cohort_table(smk.input.cohort, categorical=cfg["clinical"]["categorical"])
    chosen = None  # the combined model's classifier type chosen on the full data (fit_task's bundle)
    if smk.input.models:
        chosen = json.loads((Path(smk.input.models[0]) / "combined" / "bundle.json").read_text())["classifier"]
    table = optimism_bootstrap(features, cohort, read_split(smk.input.split), task_by_name(cfg, smk.wildcards.task),
                               cfg["modelling"], cfg["clinical"], seed=cfg["seed"],
                               n_resamples=cfg["modelling"]["bootstrap_resamples"], n_jobs=smk.threads,
                               combined_classifier=chosen)
    write_validation(table, smk.output.tsv, smk.output.md)
