"""Rule ablation: the rad-score refitted on each feature class alone (where the signal lives)."""
from pathlib import Path

from usrad.atomic import write_tsv
from usrad.cohort import read_cohort_table
from usrad.config import task_by_name
from usrad.errors import rule_errors
from usrad.features import read_feature_table
from usrad.models import feature_class_ablation
from usrad.reporting.discrimination import ablation_figure
from usrad.split import read_split

smk = snakemake  # noqa: F821 (injected by the script directive)
with rule_errors(smk):
    cfg = smk.params.config
    task = task_by_name(cfg, smk.wildcards.task)
    features, _ = read_feature_table(smk.input.features)
    cohort = read_cohort_table(smk.input.cohort, categorical=cfg["clinical"]["categorical"])
    table = feature_class_ablation(features, cohort, read_split(smk.input.split), task, cfg["modelling"],
                                   cfg["clinical"], seed=cfg["seed"], n_boot=smk.params.n_boot)
    write_tsv(table, smk.output.table)
    ablation_figure(table, Path(smk.output.png).with_suffix(""), title=task.get("description") or task["name"])
    Path(smk.log[0]).write_text(table.to_string() + "\n", encoding="utf-8")
