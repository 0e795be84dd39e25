"""Coverage of the patient-level intervals of usrad.metrics on simulated clustered test sets (issue 15).

The scenarios are those of ``tests/test_metrics_clustered.py`` (imported from there, so the test and the
bench measure the same thing), with more simulated sets:

* ``twins``: 150 patients, two near-identical views each (view = patient score + N(0, 0.15²)), label per
  patient; two correlated models (true AUCs 0.76 and 0.71). Clustered vs plain DeLong (AUC and AUC
  difference), the patient-level bootstrap AUC CI, design-effect vs plain Wilson (sensitivity,
  specificity, PPV, NPV).
* ``singles``: the same sets with one view per patient (independent images): the clustered intervals
  must not over-cover there.
* ``twins-auc-0.86`` / ``singles-auc-0.86``: the same with d' = 1.5 (true AUC 0.86), AUC intervals only:
  DeLong's Wald interval itself is a little short at high AUC on ~60 positive patients.
* ``mixed``: 1–3 images per patient with a label per image (a patient can have both), scores sharing a
  patient effect; truth from 400,000 patients.
* ``calibration``: two views per patient of a miscalibrated model (true slope 0.79, intercept 0.44 from
  300,000 patients): cluster-robust vs model-based CIs of the calibration intercept and slope.
* ``calibrated-twins``: perfectly calibrated twin views (identical p): pointwise coverage of the
  smoothed-calibration band (truth: the diagonal) at p = 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, patient vs image
  resampling.
* ``hl-validation`` / ``hl-apparent``: Hosmer–Lemeshow false-rejection rate at α 0.05 of perfectly
  calibrated samples of 500 (validation) and of logistic models refitted on them (apparent), df = g or g − 2.

Writes ``bench/results/coverage.tsv``: scenario, statistic, method, measure (coverage or false-rejection
rate), n_sets, value with its 95 % Wilson interval (value_low, value_high: Monte Carlo uncertainty),
mean_width of the intervals, truth, target; plus machine and date. ``--n-sets`` (default 2,000) and
``--n-sets-band`` (default 400; each needs 200 bootstrap refits).
"""
from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from usrad import metrics as M
from usrad.atomic import write_tsv


def _scenarios():
    spec = importlib.util.spec_from_file_location("coverage_scenarios", REPO / "tests" / "test_metrics_clustered.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


T = _scenarios()


def _row(scenario, statistic, method, low, high, truth, measure="coverage", target=0.95) -> dict:
    low, high = np.asarray(low, float), np.asarray(high, float)
    hit = (low <= truth) & (truth <= high)
    n = len(hit)
    lo, hi = M.wilson_ci(int(hit.sum()), n)
    return {"scenario": scenario, "statistic": statistic, "method": method, "measure": measure, "n_sets": n,
            "value": hit.mean(), "value_low": lo, "value_high": hi, "mean_width": float(np.nanmean(high - low)),
            "truth": float(truth), "target": target}


def _rate_row(scenario, method, rejected, target=0.05) -> dict:
    n = len(rejected)
    lo, hi = M.wilson_ci(int(np.sum(rejected)), n)
    return {"scenario": scenario, "statistic": "Hosmer–Lemeshow (g = 10)", "method": method,
            "measure": "false-rejection rate, alpha 0.05", "n_sets": n, "value": float(np.mean(rejected)),
            "value_low": lo, "value_high": hi, "mean_width": np.nan, "truth": np.nan, "target": target}


def twin_rows(sets, scenario: str, groups, proportions: bool = True) -> list[dict]:
    """DeLong, bootstrap and proportion intervals with and without patient IDs on one family of sets."""
    rows = []
    for label, g in (("patient-level", groups), ("image-level", None)):
        delong = f"DeLong, {label}" if g is None else "clustered DeLong (Obuchowski)"
        ci = [M.delong_ci(sets.y[i], sets.s1[i], groups=g) for i in range(len(sets.y))]
        rows.append(_row(scenario, "AUC", delong, [c["low"] for c in ci], [c["high"] for c in ci], sets.auc1))
        dt = [M.delong_test(sets.y[i], sets.s1[i], sets.s2[i], groups=g) for i in range(len(sets.y))]
        rows.append(_row(scenario, "AUC difference", delong, [d["diff_low"] for d in dt], [d["diff_high"] for d in dt],
                         sets.auc1 - sets.auc2))
        bs = [M.bootstrap_auc(sets.y[i], sets.s1[i], groups=g, n_boot=1000, seed=i) for i in range(len(sets.y))]
        rows.append(_row(scenario, "AUC", f"percentile bootstrap (1,000), {label}",
                         [b["low"] for b in bs], [b["high"] for b in bs], sets.auc1))
        if not proportions:
            continue
        tms = [M.threshold_metrics(sets.y[i], sets.s1[i], T.THRESHOLD, groups=g, n_boot=1) for i in range(len(sets.y))]
        for metric in ("sensitivity", "specificity", "ppv", "npv"):
            rows.append(_row(scenario, f"{metric} at {T.THRESHOLD}",
                             "Wilson, image-level" if g is None else "Wilson with design effect (patients)",
                             [t.loc[metric, "low"] for t in tms], [t.loc[metric, "high"] for t in tms],
                             getattr(sets, metric)))
    return rows


def mixed_rows(n_sets: int) -> list[dict]:
    sets, truth = T.mixed_sets(n_sets=n_sets, seed=1)
    rows = []
    for label, grouped in (("clustered DeLong (Obuchowski)", True), ("DeLong, image-level", False)):
        ci = [M.delong_ci(y, s, groups=g if grouped else None) for y, s, g in sets]
        rows.append(_row("mixed", "AUC", label, [c["low"] for c in ci], [c["high"] for c in ci], truth))
    return rows


def calibration_rows(n_sets: int) -> list[dict]:
    truth, y, p, groups = T.calibration_truth_and_sets(n_sets=n_sets, seed=1)
    rows = []
    for label, g in (("cluster-robust (patients), t(G-1)", groups), ("model-based, image-level", None)):
        cal = [M.calibration_intercept_slope(y[i], p[i], groups=g) for i in range(n_sets)]
        for k in ("intercept", "slope"):
            rows.append(_row("calibration", f"calibration {k}", label, [c[f"{k}_low"] for c in cal],
                             [c[f"{k}_high"] for c in cal], truth[k]))
    return rows


def band_rows(n_sets: int, n_patients: int = T.N_PATIENTS) -> list[dict]:
    rng = np.random.default_rng(3)
    lp = rng.normal(-0.5, 1.2, size=(n_sets, n_patients))
    y_pat = (rng.random(lp.shape) < 1 / (1 + np.exp(-lp))).astype(int)
    y, p = np.repeat(y_pat, 2, axis=1), np.repeat(1 / (1 + np.exp(-lp)), 2, axis=1)
    groups = np.repeat(np.arange(n_patients), 2)
    grid = np.array([0.05, 0.1, 0.3, 0.5, 0.7, 0.9])
    rows = []
    for label, g in (("patient bootstrap", groups), ("image bootstrap", None)):
        bands = [M.smoothed_calibration(y[i], p[i], groups=g, n_boot=200, seed=i, grid=grid) for i in range(n_sets)]
        for j, q in enumerate(grid):
            rows.append(_row("calibrated-twins", f"smoothed calibration band at p = {q}", label,
                             [b["lower"][j] for b in bands], [b["upper"][j] for b in bands], q))
    return rows


def hl_rows(n_sets: int) -> list[dict]:
    y, p = T.calibrated_sets(n_sets, seed=11)
    fitted = T._batched_logit_fit(np.log(p / (1 - p)), y)
    rows = []
    for scenario, probs in (("hl-validation", p), ("hl-apparent", fitted)):
        for validation in (True, False):
            rejected = [M.hosmer_lemeshow(y[i], probs[i], validation=validation)["p_value"] < 0.05
                        for i in range(n_sets)]
            rows.append(_rate_row(scenario, "df = g" if validation else "df = g - 2", rejected))
    return rows


def _singles(twins):
    """The first view of every patient only: independent images."""
    keep = ("auc1", "auc2", "sensitivity", "specificity", "ppv", "npv")
    return T.TwinSets(y=twins.y[:, ::2], s1=twins.s1[:, ::2], s2=twins.s2[:, ::2], groups=twins.groups[::2],
                      **{k: getattr(twins, k) for k in keep})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sets", type=int, default=2000)
    parser.add_argument("--n-sets-band", type=int, default=400)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "coverage.tsv")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = []
    for suffix, d_prime in (("", T.D_PRIME), ("-auc-0.86", 1.5)):
        twins = T.twin_sets(n_sets=args.n_sets, seed=1, d_prime=d_prime)
        rows += twin_rows(twins, f"twins{suffix}", twins.groups, proportions=not suffix)
        rows += twin_rows(_singles(twins), f"singles{suffix}", twins.groups[::2], proportions=not suffix)
    rows += mixed_rows(args.n_sets) + calibration_rows(args.n_sets) + band_rows(args.n_sets_band)
    rows += hl_rows(args.n_sets)
    df = pd.DataFrame(rows)
    df["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    df["date"] = time.strftime("%Y-%m-%d")
    df["seconds_total"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_tsv(df, args.out, float_format="%.4f")
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(df[["scenario", "statistic", "method", "n_sets", "value", "value_low", "value_high",
                  "mean_width"]].to_string(index=False))
    print(f"[bench-coverage] {time.perf_counter() - t0:.0f} s, written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
