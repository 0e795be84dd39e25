"""Peritumoral regions, ComBat harmonisation and negative controls side by side on the real BUS-BRA images.

    python bench/bench_trust.py [--cores 2] [--skip-workflow]

1. The workflow with ``config/busbra.yaml`` + ``config/busbra-trust.yaml`` (a fixed, stratified subset of 600
   images; rings of 1, 3 and 5 mm; the three negative controls; the ablation) -> results/busbra-trust/ (skipped
   with ``--skip-workflow``: the tables of a finished run are read).
2. From its tables: the test AUC (patient-level bootstrap 95% CI) of the rad-score and the combined model
   (Table 3), of the rad-score refitted on each region's features alone (``ablation.tsv``, ``region`` rows), and
   of every negative control by feature class (``negative_controls.tsv``).
3. With that run's feature table and the code of ``bench/bench_harmonize.py``: the scanner AUC of the training
   rows' features without and with ComBat by device (fitted in each fold), and the rad-score and combined test AUC
   refitted without and with ``modelling.harmonize: {by: device}`` (radiomics classifier: logistic regression).

Writes bench/results/busbra_trust.tsv (one row per measure, with the file it comes from) and prints it.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_harmonize as harmonize  # noqa: E402 (the bench folder is not a package)

from usrad.cohort import read_cohort_table  # noqa: E402
from usrad.config import validate_config  # noqa: E402
from usrad.features import read_feature_table  # noqa: E402
from usrad.split import make_split  # noqa: E402

RESULTS = "results/busbra-trust"
CONFIGS = ["config/config.yaml", "config/busbra.yaml", "config/busbra-trust.yaml"]
TASK = "malignancy"


def run_workflow(cores: int) -> float:
    t0 = time.perf_counter()
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--cores", str(cores), "--configfile", *CONFIGS[1:]]
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.perf_counter() - t0


def table_rows() -> list[dict]:
    """The workflow's own numbers: Table 3, the region rows of the ablation, the negative controls (test split)."""
    tables = f"{RESULTS}/{TASK}/tables"
    rows = []
    perf = pd.read_csv(REPO / tables / "table3_performance.tsv", sep="\t")
    for model in ("radscore", "combined"):
        r = perf[(perf["model"] == model) & (perf["split"] == "test")].iloc[0]
        rows.append(dict(part="regions", setting="lesion + rings 1, 3, 5 mm", measure=f"AUC {model}", split="test",
                         value=r["auc"], low=r["auc_boot_low"], high=r["auc_boot_high"], n_images=r["n"],
                         n_patients=r["n_patients"], source=f"{tables}/table3_performance.tsv"))
    abl = pd.read_csv(REPO / tables / "ablation.tsv", sep="\t")
    for _, r in abl[(abl["region"] != "all") & (abl["split"] == "test")].iterrows():
        rows.append(dict(part="regions", setting=f"rad-score on {r['region']} features alone", measure="AUC radscore",
                         split="test", value=r["auc"], low=r["auc_low"], high=r["auc_high"], n_images=r["n_images"],
                         n_patients=r["n_patients"], n_features=r["n_features"], n_selected=r["n_selected"],
                         source=f"{tables}/ablation.tsv"))
    controls = pd.read_csv(REPO / tables / "negative_controls.tsv", sep="\t")
    for _, r in controls[controls["split"] == "test"].iterrows():
        rows.append(dict(part="negative controls", setting=r["control"], measure=f"AUC radscore ({r['feature_class']})",
                         split="test", value=r["auc"], low=r["auc_low"], high=r["auc_high"], n_images=r["n_images"],
                         n_patients=r["n_patients"], n_features=r["n_features"], n_selected=r["n_selected"],
                         source=f"{tables}/negative_controls.tsv"))
    return rows


def harmonize_rows(cores: int) -> list[dict]:
    """Scanner AUC and model AUCs without and with ComBat by device, on this run's features (bench_harmonize)."""
    features, _ = read_feature_table(REPO / RESULTS / "features" / "features.parquet")
    cohort = read_cohort_table(REPO / RESULTS / "cohort" / "cohort.tsv", categorical=["birads"])
    cfg = validate_config(harmonize.merged(CONFIGS))
    split = make_split(cohort, cfg["tasks"], seed=cfg["seed"], test_size=cfg["split"]["test_size"])
    rows = harmonize.device_rows(features, cohort, split, cfg["seed"], results=RESULTS)
    for on in (False, True):
        rows += harmonize.model_rows(features, cohort, "internal", on, cores, configs=CONFIGS, results=RESULTS)
    return [dict(part="harmonisation", setting=r.pop("harmonize"), **{k: v for k, v in r.items() if k != "run"})
            for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--skip-workflow", action="store_true")
    args = parser.parse_args()
    rows = []
    if not args.skip_workflow:
        wall = run_workflow(args.cores)
        rows.append(dict(part="workflow", setting="rings + 3 negative controls", measure="wall time (s)",
                         value=wall, source="this script"))
    rows += table_rows() + harmonize_rows(args.cores)
    harmonize.write_rows(rows, HERE / "results" / "busbra_trust.tsv", args.cores, ["part", "setting"], "bench-trust")
    return 0


if __name__ == "__main__":
    sys.exit(main())
