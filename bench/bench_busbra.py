"""`make bench-real`: the whole workflow on the real BUS-BRA images (task malignancy), then comparisons.

1. Internal run: ``snakemake --configfile config/busbra.yaml`` (all 1,875 images, patient-grouped 75/25
   split) -> results/busbra/.
2. External run: ``+ config/busbra-external.yaml`` (GE Logiq 5 images held out) -> results/busbra-external/
   (extraction reused from the internal run's cache).
3. The reference baseline of the issue on the same patients and features: a plain scikit-learn
   LASSO-logistic model (StandardScaler + LogisticRegressionCV, L1, AUC) on every reader-1 feature, and on
   the shape2D features alone.
4. Leakage probe for burned-in annotations (calliper crosses, text): AUC of the number of annotation-like
   pixels inside / around / outside the lesion, and the frozen rad-score on test images whose marks were
   inpainted (re-extracted with the same params) against the original test images.

Writes bench/results/busbra.tsv (one row per measure, with the source file) and prints it.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TASK = "malignancy"
RUNS = {"internal": ("results/busbra", ["config/busbra.yaml"]),
        "external": ("results/busbra-external", ["config/busbra.yaml", "config/busbra-external.yaml"])}


def run_workflow(name: str, cores: int, reuse: bool = False) -> float:
    results, configs = RUNS[name]
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--cores", str(cores)]
    cmd += ["--rerun-triggers", "mtime"] if reuse else []
    cmd += ["--configfile", *configs]
    print(f"[bench-real] {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.perf_counter() - t0


def auc_ci(y, p, groups, seed=0):
    from usrad.metrics import bootstrap_auc

    b = bootstrap_auc(np.asarray(y), np.asarray(p), groups=np.asarray(groups), n_boot=2000, seed=seed)
    return b["auc"], b["low"], b["high"]


def calibration_rows(d: pd.DataFrame, run: str, model: str, split: str, source: str) -> list[dict]:
    """Calibration slope and intercept (patient-clustered CIs) and mean predicted vs observed risk."""
    from usrad.metrics import calibration_intercept_slope

    c = calibration_intercept_slope(d["y"], d["probability"], groups=d["patient_id"])
    common = dict(run=run, split=split, n_images=len(d), n_patients=d["patient_id"].nunique(), source=source)
    return [dict(measure=f"calibration slope {model}", value=c["slope"], low=c["slope_low"], high=c["slope_high"],
                 **common),
            dict(measure=f"calibration intercept {model}", value=c["intercept"], low=c["intercept_low"],
                 high=c["intercept_high"], **common),
            dict(measure=f"mean predicted minus observed risk {model}",
                 value=float(d["probability"].mean() - d["y"].mean()), **common)]


def model_rows(results: str, run: str) -> list[dict]:
    pred_file = f"{results}/{TASK}/predictions.tsv"
    pred = pd.read_csv(REPO / pred_file, sep="\t", dtype={"patient_id": str})
    best = json.loads((REPO / results / TASK / "models" / "radscore" / "bundle.json").read_text())["radiomics_best_model"]
    rows = []
    for model in dict.fromkeys(["radscore", best, "clinical", "nomogram", "combined"]):
        for split in ("test", "external"):
            d = pred[(pred["model"] == model) & (pred["split"] == split)]
            if d.empty:
                continue
            auc, lo, hi = auc_ci(d["y"], d["probability"], d["patient_id"])
            label = f"{model} (best radiomics classifier)" if model == best and model != "radscore" else model
            rows.append(dict(run=run, measure=f"AUC {label}", split=split, value=auc, low=lo, high=hi,
                             n_images=len(d), n_patients=d["patient_id"].nunique(), source=pred_file))
            if model in ("nomogram", "combined", "radscore"):
                rows += calibration_rows(d, run, model, split, pred_file)
    steps = pd.read_csv(REPO / results / TASK / "selection" / "steps.tsv", sep="\t")
    rows.append(dict(run=run, measure="selected features (LASSO)", split="train",
                     value=int(steps["n_features_after"].iloc[-1]), source=f"{results}/{TASK}/selection/steps.tsv"))
    return rows


def baseline_rows(results: str, run: str, seed: int) -> list[dict]:
    """Plain LASSO-logistic (the issue's reference) on the run's own split and reader-1 features."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    feats = pd.read_parquet(REPO / results / "features" / "features.parquet")
    feats = feats[feats["reader"] == "r1"].set_index("image_id")
    split = pd.read_csv(REPO / results / "split" / "split.tsv", sep="\t", dtype=str).set_index("image_id")
    cohort = pd.read_csv(REPO / results / "cohort" / "cohort.tsv", sep="\t", dtype=str).set_index("image_id")
    ids = split.index
    y = cohort.loc[ids, "malignant"].astype(float).astype(int).to_numpy()
    groups = split.loc[ids, "patient_id"].to_numpy()
    sp = split.loc[ids, "split"].to_numpy()
    feature_cols = [c for c in feats.columns if c not in ("patient_id", "reader")]
    rows = []
    for label, cols in (("all features", feature_cols), ("shape2D only", [c for c in feature_cols if "_shape2D_" in c])):
        X = feats.loc[ids, cols].to_numpy()
        tr = sp == "train"
        model = make_pipeline(StandardScaler(), LogisticRegressionCV(
            Cs=20, penalty="l1", solver="liblinear", scoring="roc_auc", cv=GroupKFold(5).split(X[tr], y[tr], groups[tr]),
            max_iter=5000, random_state=seed)).fit(X[tr], y[tr])
        p = model.predict_proba(X)[:, 1]
        n_sel = int((model[-1].coef_ != 0).sum())
        for s in ("test", "external"):
            m = sp == s
            if m.any():
                auc, lo, hi = auc_ci(y[m], p[m], groups[m])
                rows.append(dict(run=run, measure=f"AUC baseline LASSO-logistic, {label} ({len(cols)} in, {n_sel} kept)",
                                 split=s, value=auc, low=lo, high=hi, n_images=int(m.sum()),
                                 n_patients=len(set(groups[m])), source=f"{results}/features/features.parquet"))
    return rows


def leakage_rows(results: str, seed: int) -> list[dict]:
    """Burned-in annotations: do they carry the label, and does the frozen rad-score depend on them?"""
    import SimpleITK as sitk

    from usrad.bundle import load_bundle
    from usrad.busbra import annotation_counts, annotation_pixels, inpaint_annotations
    from usrad.extract import extract_cohort
    from usrad.imageio import read_image
    from usrad.models import build_design, pick_copy_reader

    cohort = pd.read_csv(REPO / results / "cohort" / "cohort.tsv", sep="\t", dtype={"patient_id": str, "image_id": str})
    split = pd.read_csv(REPO / results / "split" / "split.tsv", sep="\t", dtype=str)
    print("[bench-real] leakage: counting annotation pixels in every image", flush=True)
    counts = annotation_counts(cohort).merge(cohort[["image_id", "malignant"]], on="image_id")
    rows = []
    for where in ("inside", "ring", "outside"):
        auc, lo, hi = auc_ci(counts["malignant"], counts[where], counts["patient_id"])
        place = {"inside": "inside", "ring": "in a 5 px ring around", "outside": "away from"}[where]
        rows.append(dict(run="leakage", measure=f"AUC of annotation-pixel count {place} the lesion", split="all",
                         value=auc, low=lo, high=hi,
                         n_images=len(counts), n_patients=counts["patient_id"].nunique(),
                         source=f"{results}/cohort/cohort.tsv"))
    rows.append(dict(run="leakage", measure="images with annotation pixels inside the mask (fraction)", split="all",
                     value=float((counts["inside"] > 0).mean()), source=f"{results}/cohort/cohort.tsv"))

    # frozen rad-score on test images with the marks inpainted
    test_ids = set(split.loc[split["split"] == "test", "image_id"])
    test = cohort[cohort["image_id"].isin(test_ids)].copy()
    tmp = Path(tempfile.mkdtemp(prefix="busbra-inpainted-"))
    inpainted = []
    for r in test.itertuples():
        image = read_image(r.image, r.pixel_spacing_mm)
        grey = sitk.GetArrayFromImage(image)
        clean = sitk.GetImageFromArray(inpaint_annotations(grey, annotation_pixels(grey)).astype(np.float32))
        clean.CopyInformation(image)
        inpainted.append(str(tmp / f"{r.image_id}.nrrd"))
        sitk.WriteImage(clean, inpainted[-1])
    test["image"] = inpainted
    test["pixel_spacing_mm"] = np.nan  # the NRRD carries the spacing
    model, meta = load_bundle(REPO / results / TASK / "models" / "radscore")
    params = tmp / "params.yaml"
    params.write_text(meta["pyradiomics"])  # exactly the params the features of the run were extracted with
    print(f"[bench-real] leakage: re-extracting {len(test)} inpainted test images", flush=True)
    extraction = yaml.safe_load((REPO / "config" / "busbra.yaml").read_text())["extraction"]
    feats_clean = extract_cohort(test, params, progress=True, perturbation={
        "n": extraction["perturbed_masks"], "radius_px": extraction["perturbation_radius_px"], "seed": int(meta["seed"])})
    feats_orig = pd.read_parquet(REPO / results / "features" / "features.parquet")
    feats_orig = feats_orig[feats_orig["image_id"].isin(test_ids)]
    y = test.set_index("image_id")["malignant"].astype(int)
    for label, f in (("original test images", feats_orig), ("test images with marks inpainted", feats_clean)):
        X, _ = build_design(f, test, sorted(test_ids), (), pick_copy_reader(f["reader"].unique(), "auto"))
        p = model.predict_proba(X)[:, 1]
        ids = X.index.get_level_values("image_id")
        auc, lo, hi = auc_ci(y.loc[ids], p, X.index.get_level_values("patient_id"))
        rows.append(dict(run="leakage", measure=f"AUC frozen rad-score, {label}", split="test", value=auc, low=lo,
                         high=hi, n_images=len(ids), source=f"{results}/{TASK}/models/radscore"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--skip-leakage", action="store_true",
                        help="do not rerun the leakage probe (re-extracts the test images); its last rows are kept")
    parser.add_argument("--reuse", action="store_true",
                        help="keep finished results whose inputs are older (Snakemake --rerun-triggers mtime), e.g. after "
                             "a code change that does not touch them")
    args = parser.parse_args()
    rows = []
    for name in RUNS:
        seconds = run_workflow(name, args.cores, args.reuse)
        label = "workflow wall time (s)" + (", --reuse (finished jobs whose inputs are older are kept)" if args.reuse else "")
        rows.append(dict(run=name, measure=label, split="", value=round(seconds, 1),
                         source="this script"))
        rows += model_rows(RUNS[name][0], name)
        rows += baseline_rows(RUNS[name][0], name, args.seed)
    if not args.skip_leakage:
        rows += leakage_rows(RUNS["internal"][0], args.seed)
    df = pd.DataFrame(rows)
    df["machine"] = f"{platform.machine()} {platform.processor() or ''} cores={args.cores}".strip()
    df["date"] = time.strftime("%Y-%m-%d")
    out = HERE / "results" / "busbra.tsv"
    if args.skip_leakage and out.exists():  # keep the last measured leakage rows, with their own date
        previous = pd.read_csv(out, sep="\t")
        df = pd.concat([df, previous[previous["run"] == "leakage"]], ignore_index=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, sep="\t", index=False, float_format="%.4f")
    with pd.option_context("display.width", 200, "display.max_colwidth", 90, "display.max_rows", 100):
        print(df[["run", "measure", "split", "value", "low", "high"]].to_string(index=False))
    print(f"[bench-real] written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
