"""Rule fit_task: every model of one task (signature, classifiers; clinical, nomogram, combined unless radiomics only)."""
import logging
from pathlib import Path

from usrad.cohort import read_cohort_table
from usrad.config import task_by_name
from usrad.errors import rule_errors
from usrad.features import read_feature_table
from usrad.models import fit_task, write_predictions
from usrad.split import read_split

smk = snakemake  # noqa: F821 (injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
with rule_errors(smk):
    cfg = smk.params.config
    features, meta = read_feature_table(smk.input.features)
    cohort = read_cohort_table(smk.input.cohort, categorical=cfg["clinical"]["categorical"])
    split = read_split(smk.input.split)
    out_dir = Path(smk.output.predictions).parent
    predictions = fit_task(features, cohort, split, task_by_name(cfg, smk.wildcards.task), cfg["modelling"],
                           cfg["clinical"], seed=cfg["seed"], n_jobs=smk.threads, out_dir=out_dir, feature_meta=meta)
    write_predictions(predictions, smk.output.predictions)
