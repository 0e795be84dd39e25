"""Rule negative_controls: the rad-score of each feature class refitted on each control's features, beside the real."""
from pathlib import Path

from usrad.atomic import write_tsv
from usrad.cohort import read_cohort_table
from usrad.config import task_by_name
from usrad.errors import rule_errors
from usrad.features import read_feature_table
from usrad.models import negative_control_table
from usrad.reporting.discrimination import negative_control_figure
from usrad.split import read_split

smk = snakemake  # noqa: F821 (injected by the script directive)
with rule_errors(smk):
    cfg = smk.params.config
    task = task_by_name(cfg, smk.wildcards.task)
    tables = {"none": read_feature_table(smk.input.features)[0]}
    tables.update({c: read_feature_table(p)[0] for c, p in zip(smk.params.controls, smk.input.controls)})
    cohort = read_cohort_table(smk.input.cohort, categorical=cfg["clinical"]["categorical"])
    table = negative_control_table(tables, cohort, read_split(smk.input.split), task, cfg["modelling"],
                                   cfg["clinical"], seed=cfg["seed"], n_boot=smk.params.n_boot)
    write_tsv(table, smk.output.table)
    negative_control_figure(table, Path(smk.output.png).with_suffix(""), title=task.get("description") or task["name"])
    Path(smk.log[0]).write_text(table.to_string() + "\n", encoding="utf-8")
