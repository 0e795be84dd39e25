"""Rule evaluate_task: every paper figure and table of one task from its modelling results."""
import logging

from usrad.cohort import read_cohort_table
from usrad.errors import rule_errors
from usrad.features import read_feature_table
from usrad.reporting.evaluation import evaluate_task
from usrad.tables import read_table

smk = snakemake  # noqa: F821 (injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
for noisy in ("fontTools", "shap", "matplotlib"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
with rule_errors(smk):
    cfg = smk.params.config
    features, _ = read_feature_table(smk.input.features)
    cohort = read_cohort_table(smk.input.cohort, categorical=cfg["clinical"]["categorical"])
    controls = smk.input.get("negative_controls")  # Table 3's negative-control block (evaluation.negative_controls)
    out = evaluate_task(smk.params.task_dir, smk.wildcards.task, features, cohort, cfg, seed=cfg["seed"],
                        n_boot=smk.params.n_boot, n_jobs=smk.threads, task_cfg=smk.params.task,
                        negative_controls=read_table(controls, text=("task", "control")) if controls else None)
    logging.info("best classifier %s; seconds per step %s", out["best"], out["seconds"])
