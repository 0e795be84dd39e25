"""Does Harrell's optimism-corrected AUC predict the AUC on new patients? (issue 15)

On a known-truth simulation (``usrad.models.synthetic_modelling_data``: a latent z drives the outcome, 5 of
``--features`` radiomics-like features carry it, 5 clinical columns, 20 % of patients with two images):

1. a development cohort of ``--patients`` (300) patients: ``usrad.validation.optimism_bootstrap`` with the
   workflow's default modelling config (the whole pipeline refitted on each of ``--resamples`` resamples) gives
   the apparent, optimism and corrected AUC of radscore, clinical, nomogram and combined;
2. the same pipeline fitted once on those 300 patients is scored on a fresh cohort of ``--fresh`` (10,000)
   patients drawn from the same truth: the AUC the corrected AUC is meant to estimate.

Harrell's estimator targets the expected AUC of the procedure at this sample size, so a single development
cohort differs from its own fresh AUC by chance (SE of an AUC on 300 patients ≈ 0.03); the criterion
(|corrected − fresh| ≤ 0.03) is on the mean over ``--replicates`` development cohorts, and every replicate is
in the result file. Writes ``bench/results/optimism.tsv`` (one row per replicate, model and metric, plus the
means) and prints it.

    .venv/bin/python bench/bench_optimism.py            # 3 replicates x 30 resamples, ~25 min on 2 cores
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from usrad.config import validate_config
from usrad.models import fit_task, synthetic_modelling_data
from usrad.validation import OWN_KEYS, model_metrics, optimism_bootstrap

HERE = Path(__file__).resolve().parent
TASK = {"name": "metastasis", "label": "n_positive_nodes >= 1"}
CLINICAL = {"predictors": ["age", "us_size_mm", "us_node_suspicious", "birads", "grade"],
            "categorical": ["birads", "grade"], "missing": "refuse"}
MODELS = ["radscore", "clinical", "nomogram", "combined"]


def _all_train(cohort: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    return pd.DataFrame({"patient_id": cohort.patient_id, "image_id": cohort.image_id, "split": split,
                         "split_group": cohort.patient_id})


def _prefixed(table: pd.DataFrame, prefix: str) -> pd.DataFrame:
    return table.assign(patient_id=prefix + table.patient_id, image_id=prefix + table.image_id)


def replicate(r: int, args, modelling: dict) -> list[dict]:
    data = dict(n_features=args.features, signal=2.0, feature_noise=1.5)
    f, c = synthetic_modelling_data(n_patients=args.patients, seed=r, **data)
    ff, fc = synthetic_modelling_data(n_patients=args.fresh, seed=r + 100_000, **data)
    ff, fc = _prefixed(ff, "F"), _prefixed(fc, "F")
    t0 = time.perf_counter()
    split = pd.concat([_all_train(c), _all_train(fc, "test")], ignore_index=True)
    pred = fit_task(pd.concat([f, ff]), pd.concat([c, fc]), split, TASK, modelling, CLINICAL, seed=r, n_jobs=args.cores)
    tab = optimism_bootstrap(f, c, _all_train(c), TASK, modelling, CLINICAL, seed=r, n_resamples=args.resamples,
                             models=MODELS, n_jobs=args.cores).set_index(["model", "metric"])
    seconds = time.perf_counter() - t0
    rows = []
    for model in MODELS:
        g = pred[(pred.model == model) & (pred.split == "test")]
        fresh = model_metrics(g.y, g.probability)
        for metric, value in fresh.items():
            t = tab.loc[(model, metric)]
            rows.append(dict(replicate=r, model=model, metric=metric, apparent=t.apparent, optimism=t.optimism,
                             corrected=t.corrected, fresh=value, corrected_minus_fresh=t.corrected - value,
                             apparent_minus_fresh=t.apparent - value, n_resamples=int(t.n_resamples),
                             n_failed=int(t.n_failed), seconds=round(seconds, 1)))
    print(f"[bench-optimism] replicate {r}: {seconds:.0f} s; " + ", ".join(
        f"{x['model']} AUC apparent {x['apparent']:.3f} corrected {x['corrected']:.3f} fresh {x['fresh']:.3f}"
        for x in rows if x["metric"] == "auc"), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--fresh", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=30)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "optimism.tsv")
    args = parser.parse_args()
    # the schema defaults (what the workflow fits), without the tuned radiomics classifiers (not validated here)
    modelling = {k: v for k, v in validate_config({})["modelling"].items() if k not in OWN_KEYS}
    modelling["classifiers"] = []
    rows = [row for r in range(1, args.replicates + 1) for row in replicate(r, args, modelling)]
    df = pd.DataFrame(rows)
    mean = df.groupby(["model", "metric"], sort=False).mean(numeric_only=True).reset_index().assign(replicate="mean")
    df = pd.concat([df, mean[df.columns]], ignore_index=True)
    df["criterion_met"] = np.where((df.replicate == "mean") & (df.metric == "auc"),
                                   (df.corrected_minus_fresh.abs() <= 0.03).map({True: "yes", False: "no"}), "")
    df["setting"] = (f"{args.patients} development patients, {args.fresh} fresh, {args.features} features "
                     f"(5 informative), {args.resamples} resamples, workflow default modelling config")
    df["machine"] = f"{platform.machine()} cores={args.cores}"
    df["date"] = time.strftime("%Y-%m-%d")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, sep="\t", index=False, float_format="%.4f")
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(df[df.metric == "auc"][["replicate", "model", "apparent", "corrected", "fresh",
                                      "corrected_minus_fresh", "criterion_met"]].to_string(index=False))
    print(f"[bench-optimism] written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
