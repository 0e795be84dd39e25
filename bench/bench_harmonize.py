"""`make bench-harmonize`: ComBat harmonisation by scanner on the real BUS-BRA images (issue 18, part 2).

Needs the internal BUS-BRA run's feature table and cohort table (``snakemake --configfile config/busbra.yaml --
results/busbra/features/features.parquet``; `make bench-real` makes them too). Then, with the workflow's own
code (``usrad.models.fit_task``, the split of ``usrad.split.make_split``, ``usrad.selection.ComBatHarmonizer``):

1. How well the features name the scanner, before and after ComBat: macro one-vs-rest AUC of a multinomial
   logistic regression on the reader-1 features of the internal training rows, 5-fold patient-grouped CV, with
   ComBat (by ``device``) fitted inside every fold on that fold's training rows only.
2. The rad-score and combined (rad-score + BI-RADS) test AUC of the internal split and of the GE Logiq 5
   held-out split, each fitted without and with ``modelling.harmonize: {by: device}``. The held-out scanner has no
   training rows, so it cannot be harmonised (``unseen: identity`` scores it as it is): there ComBat only removes
   the differences between the three training scanners.

Radiomics classifiers are restricted to logistic regression (the rad-score, which is what is compared, does not
depend on them). Writes bench/results/harmonize.tsv and prints it.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from usrad.cohort import read_cohort_table
from usrad.config import validate_config
from usrad.features import feature_columns, read_feature_table
from usrad.metrics import bootstrap_auc
from usrad.models import fit_task
from usrad.selection import ComBatHarmonizer
from usrad.split import make_split

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = "results/busbra"
TASK = "malignancy"
CONFIGS = {"internal": ["config/config.yaml", "config/busbra.yaml"],
           "external": ["config/config.yaml", "config/busbra.yaml", "config/busbra-external.yaml"]}


def merged(paths) -> dict:
    """The configs merged as Snakemake merges ``--configfile``s (later files win, mappings merged key by key)."""
    def merge(a, b):
        out = copy.deepcopy(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out
    cfg: dict = {}
    for p in paths:
        cfg = merge(cfg, yaml.safe_load((REPO / p).read_text()) or {})
    return cfg


def device_rows(features: pd.DataFrame, cohort: pd.DataFrame, split: pd.DataFrame, seed: int,
                results: str = RESULTS) -> list[dict]:
    """Scanner predictability from the reader-1 features of the training rows, without and with ComBat."""
    train = split.loc[split["split"] == "train", "image_id"]
    r1 = features[(features["reader"] == "r1") & features["image_id"].isin(train)]
    dev = cohort.set_index("image_id").loc[r1["image_id"], "device"].astype(str).to_numpy()
    X = r1[feature_columns(r1)]
    X = X.loc[:, X.std() > 0]
    X.index = pd.MultiIndex.from_arrays([r1["patient_id"].to_numpy(), dev], names=["patient_id", "device"])
    groups = r1["patient_id"].to_numpy()
    rows = []
    for label, steps in (("raw features", []), ("ComBat by device, fitted in each fold", [ComBatHarmonizer(by="device")])):
        model = make_pipeline(*steps, StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
        p = cross_val_predict(model, X, dev, groups=groups, cv=GroupKFold(5), method="predict_proba")
        auc = roc_auc_score(dev, p, multi_class="ovr", average="macro")
        rows.append(dict(run="internal", harmonize=label, measure="scanner AUC (macro one-vs-rest, 5-fold CV)",
                         split="train", value=auc, n_images=len(dev), n_patients=len(set(groups)),
                         source=f"{results}/features/features.parquet"))
        print(f"[bench-harmonize] scanner AUC, {label}: {auc:.4f}", flush=True)
    return rows


def model_rows(features, cohort, run: str, harmonize: bool, n_jobs: int, configs: list[str] | None = None,
               results: str = RESULTS) -> list[dict]:
    """Fit the task (rad-score, BI-RADS, combined) on ``run``'s split (the merged ``configs``, default
    :data:`CONFIGS` of ``run``) with or without ComBat; test AUCs."""
    configs = configs or CONFIGS[run]
    raw = merged(configs)
    raw.setdefault("modelling", {}).update(classifiers=["lr"], combined_classifiers=["lr"])
    if harmonize:
        raw["modelling"]["harmonize"] = {"by": "device", "unseen": "identity"}
    cfg = validate_config(raw, source=" + ".join(configs))
    sp = cfg["split"]
    split = make_split(cohort, cfg["tasks"], seed=cfg["seed"], test_size=sp["test_size"], by_column=sp["by_column"],
                       external_values=sp["external_values"])
    task = next(t for t in cfg["tasks"] if t["name"] == TASK)
    t0 = time.perf_counter()
    pred = fit_task(features, cohort, split, task, cfg["modelling"], cfg["clinical"], seed=cfg["seed"], n_jobs=n_jobs)
    label = "ComBat by device" if harmonize else "none"
    print(f"[bench-harmonize] {run}, harmonize {label}: fitted in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for model in ("radscore", "combined"):
        for s in ("test", "external"):
            d = pred[(pred["model"] == model) & (pred["split"] == s)]
            if d.empty:
                continue
            b = bootstrap_auc(d["y"].to_numpy(), d["probability"].to_numpy(), groups=d["patient_id"].to_numpy(),
                              n_boot=2000, seed=0)
            rows.append(dict(run=run, harmonize=label, measure=f"AUC {model}", split=s, value=b["auc"], low=b["low"],
                             high=b["high"], n_images=len(d), n_patients=d["patient_id"].nunique(),
                             source=f"{results}/features/features.parquet"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    features, _ = read_feature_table(REPO / RESULTS / "features" / "features.parquet")
    cohort = read_cohort_table(REPO / RESULTS / "cohort" / "cohort.tsv", categorical=["birads"])
    internal = validate_config(merged(CONFIGS["internal"]))
    split = make_split(cohort, internal["tasks"], seed=internal["seed"], test_size=internal["split"]["test_size"])
    rows = device_rows(features, cohort, split, internal["seed"])
    for run in CONFIGS:
        for harmonize in (False, True):
            rows += model_rows(features, cohort, run, harmonize, args.cores)
    write_rows(rows, HERE / "results" / "harmonize.tsv", args.cores, ["run", "harmonize"], "bench-harmonize")
    return 0


def write_rows(rows: list[dict], out: Path, cores: int, keys: list[str], tag: str) -> pd.DataFrame:
    """The rows as a TSV (with the machine and date), printed with their ``keys`` columns and the values."""
    df = pd.DataFrame(rows)
    df["machine"] = f"{platform.machine()} cores={cores} load={os.getloadavg()[0]:.1f}"
    df["date"] = time.strftime("%Y-%m-%d")
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, sep="\t", index=False, float_format="%.4f")
    with pd.option_context("display.width", 220, "display.max_colwidth", 60):
        print(df[keys + ["measure", "split", "value", "low", "high"]].to_string(index=False))
    print(f"[{tag}] written {out}")
    return df


if __name__ == "__main__":
    sys.exit(main())
