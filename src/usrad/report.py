"""The report: evaluation of one task (figures and tables), the cohort tables, and the methods-and-results
summary with its reporting checklist.

Everything here reads results files (predictions, bundles, selection tables, the feature table's metadata)
and writes results files; every number is computed by :mod:`usrad.metrics` and drawn by :mod:`usrad.plots`.

Public API
- :func:`evaluate_task` — one task's paper figures (``results/{task}/figures/<stem>.png|pdf``, stems in
  :data:`TASK_FIGURES`) and tables (``results/{task}/tables/<name>.tsv``, :data:`TASK_TABLES`).
- Pieces of it, usable alone: :func:`read_bundles`, :func:`bundle_thresholds`, :func:`best_classifier`,
  :func:`delong_table` (patient-level AUC differences) and :func:`format_delong`, :func:`table2`,
  :func:`lasso_tables`, :func:`nomogram_model` (the nomogram bundle converted to raw units,
  :class:`NomogramModel`), :func:`shap_values`.
- Cohort level: :func:`cohort_report` (Table 1, flow figure, counts), :func:`rulegraph_figure` (workflow
  diagram drawn from ``snakemake --rulegraph`` text with matplotlib; graphviz is not needed).
- Summary: :func:`write_summary` — ``summary.md`` (+ ``summary.html``) from a template in which every number
  is looked up in a results file and recorded in ``summary_sources.tsv`` (``key, text, file, locator,
  format``); :func:`resolve_source` reads a source back, so a test can check every number.
"""
from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import metrics, plots
from .atomic import write_text
from .errors import Problem, UsradError
from .nomogram import VARIABLE_LABELS, Nomogram, NomogramModel, raw_model
from .tables import read_table

log = logging.getLogger(__name__)

N_BOOT = 2000
LEVEL = metrics.LEVEL
MAIN_MODELS = ("clinical", "radscore", "nomogram", "combined")
CLASSIFIERS = plots.CLASSIFIERS

#: Figure stems written by :func:`evaluate_task` under ``results/{task}/figures/`` (each ``.png`` + ``.pdf``).
TASK_FIGURES = ("roc", "forest", "calibration", "decision_curve", "radscore", "confusion", "icc", "lasso_cv",
                "lasso_path", "nomogram", "shap")
#: Tables written by :func:`evaluate_task` under ``results/{task}/tables/`` (``.tsv``).
TASK_TABLES = ("table2_odds_ratios", "table3_performance", "table3_performance_formatted", "delong",
               "delong_formatted", "calibration", "calibration_curve", "nomogram_points", "shap_importance",
               "evaluation_settings")
#: Outputs of the clinical models only: absent when the config lists no clinical predictor (radiomics only).
CLINICAL_FIGURES = ("nomogram",)
CLINICAL_TABLES = ("table2_odds_ratios", "nomogram_points")


def task_figures(cfg: Mapping | None = None) -> tuple[str, ...]:
    """The figure stems :func:`evaluate_task` writes for ``cfg`` (all of :data:`TASK_FIGURES`; without the
    nomogram when ``cfg`` is radiomics only)."""
    from .models import radiomics_only

    drop = CLINICAL_FIGURES if cfg is not None and radiomics_only(cfg) else ()
    return tuple(f for f in TASK_FIGURES if f not in drop)


def task_tables(cfg: Mapping | None = None) -> tuple[str, ...]:
    """The tables :func:`evaluate_task` writes for ``cfg`` (all of :data:`TASK_TABLES`; without Table 2 and the
    nomogram points when ``cfg`` is radiomics only)."""
    from .models import radiomics_only

    drop = CLINICAL_TABLES if cfg is not None and radiomics_only(cfg) else ()
    return tuple(t for t in TASK_TABLES if t not in drop)


#: Cohort-level outputs of :func:`cohort_report` under ``results/report/``.
COHORT_TABLES = ("table1", "cohort_counts")

#: The reference study's published results (test set), shown beside the demo's (clearly labelled simulated).
REFERENCE_STUDY = pd.DataFrame([
    {"task": "metastasis", "model": "combined", "metric": "auc", "value": 0.920},
    {"task": "burden", "model": "combined", "metric": "auc", "value": 0.939},
    {"task": "metastasis", "model": "combined", "metric": "sensitivity", "value": 0.90},
    {"task": "metastasis", "model": "combined", "metric": "specificity", "value": 0.82},
])

METRIC_LABELS = {"auc": "AUC", "sensitivity": "Sensitivity", "specificity": "Specificity"}

# --------------------------------------------------------------------------------------------------
# reading the modelling results
# --------------------------------------------------------------------------------------------------
def read_bundles(models_dir) -> dict[str, dict]:
    """``{model name: bundle.json metadata}`` of every bundle under ``models_dir`` (sorted by name)."""
    from .bundle import read_bundle_meta

    d = Path(models_dir)
    out = {p.parent.name: read_bundle_meta(p.parent) for p in sorted(d.glob("*/bundle.json"))}
    if not out:
        raise UsradError(f"No model bundles under {d}", [Problem("no */bundle.json found", file=str(d))])
    return out


def bundle_thresholds(bundles: Mapping[str, dict]) -> dict[str, float]:
    """Each model's classification threshold, fixed on training data when the bundle was written."""
    return {name: float(meta["threshold"]) for name, meta in bundles.items()}


def best_classifier(bundles: Mapping[str, dict], candidates: Sequence[str] = CLASSIFIERS) -> str:
    """The radiomics classifier shown beside the main models: the one fit_task chose (``radiomics_best_model`` in
    bundle.json, by ``modelling.model_choice`` on nested CV AUCs; ``models/model_choice.tsv`` says why) when that
    is a classifier; when the rad-score itself was chosen (or the bundles predate the choice), the classifier with
    the highest nested CV AUC (ties: the earlier in ``candidates``)."""
    present = [m for m in candidates if m in bundles and bundles[m].get("cv_auc") is not None]
    if not present:
        raise UsradError("No classifier bundle with a CV AUC", [Problem(f"expected some of {list(candidates)}")])
    chosen = next((meta["radiomics_best_model"] for meta in bundles.values() if meta.get("radiomics_best_model")), None)
    if chosen in present:
        return chosen
    return max(present, key=lambda m: (float(bundles[m]["cv_auc"]), -present.index(m)))


# --------------------------------------------------------------------------------------------------
# DeLong comparisons
# --------------------------------------------------------------------------------------------------
def default_comparisons(models: Sequence[str], best: str | None) -> list[tuple[str, str]]:
    """combined vs clinical, combined vs radscore, nomogram vs clinical, combined vs nomogram, nomogram vs radscore
    (those whose two models exist), then the best classifier vs each other one."""
    avail = set(models)
    pairs = [(a, b) for a, b in (("combined", "clinical"), ("combined", "radscore"), ("nomogram", "clinical"),
                                 ("combined", "nomogram"), ("nomogram", "radscore")) if a in avail and b in avail]
    if best is not None and best in avail:
        pairs += [(best, m) for m in CLASSIFIERS if m in avail and m != best]
    return pairs


#: Columns of the DeLong table (:func:`delong_table`): the AUC difference with its CI next to the p-value.
DELONG_COLUMNS = ("task", "split", "model_1", "model_2", "n", "n_patients", "auc_1", "auc_2", "diff", "diff_low",
                  "diff_high", "p_value", "z", "method")


def delong_table(predictions: pd.DataFrame, pairs: Sequence[tuple[str, str]], splits: Sequence[str] = ("test",),
                 task: str | None = None) -> pd.DataFrame:
    """Paired comparison of AUCs (:func:`usrad.metrics.delong_test`) for each pair of models on the same images.

    One row per (split, pair), :data:`DELONG_COLUMNS`: ``diff`` = AUC of ``model_1`` − AUC of ``model_2`` with
    its 95% CI (``diff_low``, ``diff_high``) and the two-sided p-value. Patient-level: ``groups`` = ``patient_id``,
    so with several images per patient the variance is the clustered one of Obuchowski (1997) (``method``); with
    one image per patient it is DeLong's. Images are matched on ``image_id``; a pair whose models do not cover the
    same images is an error.
    """
    pred = plots.check_predictions(predictions)
    task = plots._task_of(pred, task)
    rows = []
    for split in splits:
        sub = pred[(pred["task"] == task) & (pred["split"] == split)]
        if sub.empty:
            continue
        wide = sub.pivot_table(index=["patient_id", "image_id", plots.LABEL], columns="model", values="probability",
                               aggfunc="first").sort_index()
        y = wide.index.get_level_values(plots.LABEL).to_numpy()
        patients = wide.index.get_level_values("patient_id").to_numpy()
        for a, b in pairs:
            missing = [m for m in (a, b) if m not in wide.columns]
            if missing:
                raise UsradError("Cannot compare models", [Problem(f"model {m!r} has no {split} predictions",
                                                                   column="model") for m in missing])
            pa, pb = wide[a], wide[b]
            if pa.isna().any() or pb.isna().any():
                raise UsradError("Cannot compare models", [Problem(
                    f"models {a!r} and {b!r} do not cover the same {split} images", column="model")])
            r = metrics.delong_test(y, pa.to_numpy(), pb.to_numpy(), groups=patients)
            rows.append({"task": task, "split": split, "model_1": a, "model_2": b, "n": len(wide),
                         "n_patients": len(np.unique(patients)), "auc_1": r["auc1"], "auc_2": r["auc2"],
                         "diff": r["diff"], "diff_low": r["diff_low"], "diff_high": r["diff_high"],
                         "p_value": r["p_value"], "z": r["z"], "method": r["method"]})
    return pd.DataFrame(rows, columns=list(DELONG_COLUMNS))


def format_delong(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The DeLong table as text for the report: ``Split, Comparison, Patients (images), AUC 1, AUC 2, AUC
    difference (95% CI), P, Method`` (typographic minus; P < 0.001 below that)."""
    def num(v):
        return plots._num(v, digits)
    return pd.DataFrame({
        "Split": table["split"].map(lambda s: plots.SPLIT_TITLES.get(s, s)),
        "Comparison": [f"{plots.model_label(a)} vs {plots.model_label(b)}"
                       for a, b in zip(table["model_1"], table["model_2"])],
        "Patients (images)": [f"{int(p)} ({int(n)})" for p, n in zip(table["n_patients"], table["n"])],
        "AUC 1": table["auc_1"].map(num), "AUC 2": table["auc_2"].map(num),
        "AUC difference (95% CI)": [f"{num(d)} ({num(lo)} to {num(hi)})"
                                    for d, lo, hi in zip(table["diff"], table["diff_low"], table["diff_high"])],
        "P": table["p_value"].map(plots._fmt_p), "Method": table["method"].astype(str)})


# --------------------------------------------------------------------------------------------------
# Table 2, LASSO tables
# --------------------------------------------------------------------------------------------------
def table2(univariable: pd.DataFrame, multivariable: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Univariable and multivariable odds ratios side by side: ``variable, term, univariable OR (95% CI),
    univariable p, multivariable OR (95% CI), multivariable p`` (text), one row per term."""
    def fmt(df):
        or_ci = [("NA" if not np.isfinite(o) else f"{o:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})")
                 for o, lo, hi in zip(df["OR"], df["ci_low"], df["ci_high"])]
        return pd.DataFrame({"term": df["term"].astype(str), "or": or_ci,
                             "p": [plots._fmt_p(v) for v in df["p_variable"]]})
    uni = fmt(univariable).rename(columns={"or": "univariable OR (95% CI)", "p": "univariable p"})
    uni.insert(0, "variable", univariable["variable"].astype(str).to_numpy())
    multi = fmt(multivariable).rename(columns={"or": "multivariable OR (95% CI)", "p": "multivariable p"})
    out = uni.merge(multi, on="term", how="left")
    return out.fillna({"multivariable OR (95% CI)": "", "multivariable p": ""})


def lasso_tables(lasso_path: pd.DataFrame, scoring: str = "neg_log_loss") -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """``(cv_table, path_table, selected_C)`` for :func:`plots.lasso_cv_figure` / :func:`plots.lasso_path_figure`
    from ``selection/lasso_path.tsv`` (``C, feature, coef, cv_mean_score, cv_se, chosen``).

    The CV score is shown as binomial deviance (2 × log loss) for ``neg_log_loss`` scoring, else as AUC;
    error bars are the standard error across folds."""
    need = ["C", "feature", "coef", "cv_mean_score", "cv_se", "chosen"]
    missing = [c for c in need if c not in lasso_path.columns]
    if missing:
        raise UsradError("LASSO path table is not usable", [Problem("required column is missing", column=c)
                                                            for c in missing])
    lp = lasso_path.copy()
    lp["chosen"] = lp["chosen"].astype(str).str.lower().isin(("true", "1"))
    per_c = lp.groupby("C", sort=True).agg(score=("cv_mean_score", "first"), se=("cv_se", "first"),
                                           selected=("chosen", "any"),
                                           n_features=("coef", lambda s: int((s != 0).sum()))).reset_index()
    if scoring == "neg_log_loss":
        cv = pd.DataFrame({"C": per_c["C"], "mean_deviance": -2 * per_c["score"], "sd": 2 * per_c["se"]})
    else:
        cv = pd.DataFrame({"C": per_c["C"], "mean_auc": per_c["score"], "sd": per_c["se"]})
    cv["selected"] = per_c["selected"]
    cv["n_features"] = per_c["n_features"]
    path = lp[["C", "feature", "coef"]].rename(columns={"coef": "coefficient"})
    sel = per_c.loc[per_c["selected"], "C"]
    return cv, path, float(sel.iloc[0]) if len(sel) else float(per_c["C"].median())


# --------------------------------------------------------------------------------------------------
# nomogram: the nomogram bundle's logistic model in raw units
# --------------------------------------------------------------------------------------------------
def nomogram_model(pipeline, X_train: pd.DataFrame) -> NomogramModel:
    """The fitted nomogram pipeline in raw units (:func:`usrad.nomogram.raw_model`) with scales over the
    training ranges of ``X_train`` (:func:`usrad.models.nomogram_inputs`) and thinned ticks."""
    from .models import nomogram_inputs

    nm = raw_model(pipeline, nomogram_inputs(pipeline, X_train))
    _thin_ticks(nm.intercept, nm.variables)
    return nm


def _thin_ticks(intercept: float, variables: list, min_points: float = 6.0) -> None:
    """Give each continuous scale round ticks at least ``min_points`` nomogram points apart (labels of a
    short scale would overlap otherwise); a scale shorter than that keeps one tick."""
    nomo = Nomogram(intercept, variables)
    for v in variables:
        if v.categorical:
            continue
        span = abs(nomo.points(v, v.range[1]) - nomo.points(v, v.range[0]))
        cand = plots._nice_ticks(*v.range, n=int(np.clip(span / 12, 1, 8)))
        kept: list[float] = []
        for t in cand:
            if all(abs(nomo.points(v, t) - nomo.points(v, k)) >= min_points for k in kept):
                kept.append(float(t))
        v.ticks = kept


PROBABILITY_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


def spaced_probabilities(nm: NomogramModel, candidates: Sequence[float] = PROBABILITY_TICKS,
                         min_gap: float = 0.05) -> list[float]:
    """Probability ticks of the nomogram's risk axis at least ``min_gap`` (fraction of the width) apart, so
    their labels do not overlap; 0.5 is kept first, then outwards."""
    nomo = Nomogram(nm.intercept, nm.variables)
    total = nomo.total_range()
    lo, hi = nomo.probability(0.0), nomo.probability(total)
    xs = {p: nomo.total_for_probability(p) / total for p in candidates if lo <= p <= hi}
    order = sorted(xs, key=lambda p: (abs(p - 0.5), p))
    kept: list[float] = []
    for p in order:
        if all(abs(xs[p] - xs[q]) >= min_gap for q in kept):
            kept.append(p)
    return sorted(kept)


# --------------------------------------------------------------------------------------------------
# SHAP
# --------------------------------------------------------------------------------------------------
def shap_values(pipeline, X_explain: pd.DataFrame, X_background: pd.DataFrame, seed: int = 0,
                n_background: int = 100, n_kmeans: int = 10,
                max_explain: int = 150) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """SHAP values of the pipeline's final estimator on its selected features.

    Tree models: ``shap.TreeExplainer``; logistic regression: ``shap.LinearExplainer``; others: the
    model-agnostic ``shap.KernelExplainer`` on the positive-class probability with a ``n_kmeans``-centre
    k-means summary of ``n_background`` random training rows. At most ``max_explain`` rows are explained
    (a seeded random subset). Returns ``(values, feature_values, names, explainer)``.
    """
    import shap
    from sklearn.pipeline import Pipeline

    pre = Pipeline(pipeline.steps[:-1])
    clf = pipeline.steps[-1][1]
    Zb = pre.transform(X_background)
    Ze = pre.transform(X_explain)
    Zb = Zb if isinstance(Zb, pd.DataFrame) else pd.DataFrame(Zb)
    Ze = Ze if isinstance(Ze, pd.DataFrame) else pd.DataFrame(Ze, columns=Zb.columns)
    names = [str(c) for c in Zb.columns]
    rng = np.random.default_rng(seed)
    if len(Ze) > max_explain:
        Ze = Ze.iloc[np.sort(rng.choice(len(Ze), max_explain, replace=False))]
    bg = Zb.iloc[np.sort(rng.choice(len(Zb), min(n_background, len(Zb)), replace=False))]
    kind = type(clf).__name__
    if kind in ("RandomForestClassifier", "XGBClassifier"):
        expl = shap.TreeExplainer(clf)
        sv = expl.shap_values(Ze)
        name = "TreeExplainer"
    elif kind == "LogisticRegression":
        expl = shap.LinearExplainer(clf, bg)
        sv = expl.shap_values(Ze)
        name = "LinearExplainer"
    else:  # model-agnostic: Kernel SHAP on a k-means summary of the background (shap's Exact/Permutation
        # explainers JIT-compile numba code for ~14 s per process; Kernel SHAP needs no compilation)
        def f(a):
            return clf.predict_proba(pd.DataFrame(np.asarray(a), columns=Zb.columns))[:, 1]
        summary = shap.kmeans(bg.to_numpy(float), min(n_kmeans, len(bg)))
        expl = shap.KernelExplainer(f, summary, seed=seed)
        sv = expl.shap_values(Ze.to_numpy(float), silent=True)
        name = "KernelExplainer"
    sv = np.asarray(sv, dtype=float)
    if isinstance(sv, list) or sv.ndim == 3:  # per-class output: keep the positive class
        sv = np.asarray(sv)[..., 1] if np.asarray(sv).shape[-1] == 2 else np.asarray(sv)[1]
    return sv, Ze.to_numpy(float), names, name


# --------------------------------------------------------------------------------------------------
# one task
# --------------------------------------------------------------------------------------------------
def _placeholder_figure(stem, text: str) -> None:
    """A figure that says why there is nothing to draw (the workflow's outputs are always all present)."""
    fig = plots._figure(plots.SINGLE, 30 * plots.MM)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=plots.MIN_FONT_PT)
    plots.save_figure(fig, stem)


def evaluation_settings(cfg: Mapping, n_boot: int, seed: int, bundles: Mapping[str, dict]) -> pd.DataFrame:
    """The settings the evaluation (and the modelling it reports on) used, as ``key, value`` text rows."""
    from .models import modelling_settings

    ms = modelling_settings((cfg or {}).get("modelling"))
    any_b = next(iter(bundles.values()))
    rep = any_b.get("reproducibility") or {}
    rows = {
        "n_boot": n_boot, "ci_level": LEVEL, "seed": seed, "bootstrap_unit": "patient (stratified)",
        "inference_unit": "patient",
        "auc_ci": "patient bootstrap percentile (auc_boot_low/high); clustered DeLong (auc_delong_low/high)",
        "auc_comparison": metrics._delong_method("patient_id"),
        "proportion_ci": "Wilson, design effect (patients)",
        "calibration_ci": "cluster-robust (patients), t with patients - 1 df",
        "hosmer_lemeshow_groups": plots.HL_GROUPS,
        "hosmer_lemeshow_df": "groups on cv/test/external (validation), groups - 2 on train (apparent)",
        "calibration_curve": f"restricted cubic spline of logit(p), {plots.CURVE_KNOTS} knots",
        "calibration_curve_n_boot": plots.CURVE_N_BOOT,
        "cv_folds": ms["cv_folds"], "class_weight": ms["class_weight"], "threshold_from": ms["threshold_from"],
        "model_choice": ms["model_choice"], "combined_classifiers": ",".join(ms["combined_classifiers"]),
        "tuning_score": "log loss (out-of-fold); nested CV AUC reported",
        "threshold_basis": any_b.get("threshold_basis", ""),
        "clinical_p_threshold": ms["clinical_p_threshold"], "icc_form": rep.get("icc_form", ""),
        "icc_threshold": "" if rep.get("icc_threshold") is None else rep.get("icc_threshold"),
        "icc_source": rep.get("source", ""),
        "nzv_freq_cut": ms["near_zero_variance"]["freq_cut"], "nzv_unique_cut": ms["near_zero_variance"]["unique_cut"],
        "univariate_p": ms["univariate"]["p_threshold"], "redundancy_threshold": ms["redundancy"]["threshold"],
        "lasso_cv_folds": ms["lasso"]["cv_folds"], "lasso_n_C": ms["lasso"]["n_C"],
        "lasso_one_se_rule": ms["lasso"]["one_se_rule"], "lasso_scoring": ms["lasso"]["scoring"],
        "classifiers": ",".join(ms["classifiers"]),
        "search_spaces": json.dumps({m: _space(m, ms) for m in ms["classifiers"]}, sort_keys=True),
        "test_size": ((cfg or {}).get("split") or {}).get("test_size", ""),
    }
    return pd.DataFrame({"key": list(rows), "value": [str(v) for v in rows.values()]})


def _space(m, ms):
    from .models import SEARCH_SPACES

    return (ms.get("search_spaces") or {}).get(m, SEARCH_SPACES.get(m, {}))


def task_design(features: pd.DataFrame, cohort: pd.DataFrame, image_ids, bundles: Mapping[str, dict],
                predictors: Sequence[str]) -> pd.DataFrame:
    """The design matrix the task's pipelines take (as in :func:`usrad.models.build_design`)."""
    from .models import build_design

    rep = next(iter(bundles.values())).get("reproducibility") or {}
    X, _ = build_design(features, cohort, list(image_ids), list(predictors), rep.get("copy_reader"))
    return X


def evaluate_task(task_dir, task: str, features: pd.DataFrame | None = None, cohort: pd.DataFrame | None = None,
                  cfg: Mapping | None = None, seed: int = 0, n_boot: int = N_BOOT, n_jobs: int = 1) -> dict:
    """Every figure and table of one task from its modelling results in ``task_dir`` (``results/{task}``).

    ``features``/``cohort`` (feature and cohort tables) are needed for the nomogram's training ranges and the
    SHAP values; ``cfg`` is the validated config (clinical predictors, modelling settings).
    Returns ``{"figures": {stem: png path}, "tables": {name: tsv path}, "best": best classifier, "seconds": {...}}``.
    """
    import time

    from .bundle import load_bundle
    from .models import read_predictions

    cfg = dict(cfg or {})
    task_dir = Path(task_dir)
    fig_dir, tab_dir = task_dir / "figures", task_dir / "tables"
    fig_dir.mkdir(parents=True, exist_ok=True)
    tab_dir.mkdir(parents=True, exist_ok=True)
    pred = read_predictions(task_dir / "predictions.tsv")
    pred = plots.check_predictions(pred, file=str(task_dir / "predictions.tsv"))
    bundles = read_bundles(task_dir / "models")
    thr = bundle_thresholds(bundles)
    best = best_classifier(bundles)
    models = list(dict.fromkeys(pred["model"]))
    main = [m for m in MAIN_MODELS if m in models]
    splits = [s for s in ("train", "test") if s in set(pred["split"])]
    timings, t0 = {}, time.perf_counter()

    def tick(name):
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 2)
        t0 = now
        log.info("task %s: %s done in %.1f s", task, name, timings[name])

    title_task = {"metastasis": "ALN metastasis", "burden": "ALN burden"}.get(task, task)
    figs, tabs = {}, {}

    def stem(name):
        figs[name] = fig_dir / f"{name}.png"
        return fig_dir / name

    def table(df, name):
        tabs[name] = plots.write_table(df, tab_dir / name)

    # performance (Table 3) — the slow part: 2,000 patient-level bootstrap resamples per model and split
    perf = _performance(pred, thr, n_boot, seed, n_jobs)
    table(perf, "table3_performance")
    table(plots.format_performance(perf), "table3_performance_formatted")
    tick("table3")
    dl = delong_table(pred, default_comparisons(models, best), splits=[s for s in ("test", "train") if s in splits],
                      task=task)
    table(dl, "delong")
    table(format_delong(dl), "delong_formatted")
    tick("delong")
    cal, curve = plots.calibration_tables(pred, n_boot=plots.CURVE_N_BOOT, seed=seed)
    table(cal, "calibration")
    table(curve, "calibration_curve")
    tick("calibration tables")
    plots.roc_figure(pred, stem("roc"), task=task, models=main, splits=splits, n_boot=n_boot, seed=seed)
    plots.forest_figure(pred, stem("forest"), task=task, splits=splits, n_boot=n_boot, seed=seed)
    tick("roc+forest")
    # the figure draws the tables as written (read back exactly), never its own statistics
    plots.calibration_figure(read_table(tabs["calibration"], text=("model", "split", "task"),
                                        float_precision="round_trip"),
                             read_table(tabs["calibration_curve"], text=("model", "split", "task"),
                                        float_precision="round_trip"),
                             pred, stem("calibration"), task=task, models=main, splits=splits)
    plots.decision_curve_figure(pred, stem("decision_curve"), task=task, models=main, splits=splits)
    plots.radscore_figure(pred, stem("radscore"), task=task, splits=splits, seed=seed)
    plots.confusion_figure(pred, thr, stem("confusion"), task=task, models=main, splits=splits)
    tick("calibration+dca+radscore+confusion")

    sel_dir = task_dir / "selection"
    icc = read_table(sel_dir / "icc.tsv")
    rep = next(iter(bundles.values())).get("reproducibility") or {}
    if rep.get("icc_threshold") is not None and pd.to_numeric(icc["icc"], errors="coerce").notna().any():
        plots.icc_figure(icc, stem("icc"), threshold=float(rep["icc_threshold"]))
    else:
        _placeholder_figure(stem("icc"), "ICC filter off: no second reader or perturbed masks")
    scoring = ((cfg.get("modelling") or {}).get("lasso") or {}).get("scoring", "neg_log_loss")
    cv_tab, path_tab, sel_c = lasso_tables(read_table(sel_dir / "lasso_path.tsv"), scoring)
    plots.lasso_cv_figure(cv_tab, stem("lasso_cv"))
    plots.lasso_path_figure(path_tab, stem("lasso_path"), selected=sel_c)
    clinical_on = "clinical" in bundles  # False: radiomics only (no Table 2, no nomogram)
    if clinical_on:
        uni = read_table(tab_dir / "univariable.tsv")
        multi = read_table(tab_dir / "multivariable.tsv")
        table(table2(uni, multi), "table2_odds_ratios")
    tick("icc+lasso+table2")

    # nomogram and SHAP need the design matrix (features + clinical columns)
    if features is None or cohort is None:
        raise UsradError("evaluate_task needs the feature and cohort tables for the nomogram and SHAP")
    rows = pred[pred["model"] == "radscore"].drop_duplicates("image_id")  # every model scores the same images
    predictors = (cfg.get("clinical") or {}).get("predictors") or []
    X = task_design(features, cohort, rows["image_id"], bundles, predictors)
    split_of = rows.set_index("image_id")["split"].reindex(X.index.get_level_values("image_id")).to_numpy()
    train_rows = pred[(pred["model"] == "radscore") & (pred["split"] == "train")]["image_id"]
    is_train = np.isin(X.index.get_level_values("image_id"), train_rows.to_numpy())
    if clinical_on:
        nomo_pipe, _ = load_bundle(task_dir / "models" / "nomogram")
        nm = nomogram_model(nomo_pipe, X[is_train])
        scales, _ = plots.nomogram_figure(nm.intercept, nm.variables, stem("nomogram"),
                                          outcome_label=f"Risk of {title_task.lower().replace('aln ', 'ALN ')}",
                                          probabilities=spaced_probabilities(nm))
        table(scales, "nomogram_points")
    tick("nomogram")
    best_pipe, _ = load_bundle(task_dir / "models" / best)
    explain = ~is_train if (~is_train).any() else is_train
    with threadpool_limits(limits=max(1, n_jobs)):
        sv, fv, names, expl_name = shap_values(best_pipe, X[explain], X[is_train], seed=seed)
    ranking = plots.shap_figure(sv, fv, names, stem("shap"),
                                title=f"SHAP summary: {plots.model_label(best)} ({expl_name}, "
                                      f"{'test' if (~is_train).any() else 'training'} set)")
    table(ranking.assign(task=task, model=best, explainer=expl_name, n_explained=len(sv)), "shap_importance")
    tick("shap")
    table(evaluation_settings(cfg, n_boot, seed, bundles), "evaluation_settings")
    del split_of
    return {"figures": figs, "tables": tabs, "best": best, "seconds": timings}


def _performance(pred, thr, n_boot, seed, n_jobs) -> pd.DataFrame:
    """Table 3 (:func:`plots.performance_tables`), one model per job when ``n_jobs`` > 1 (same numbers)."""
    models = plots._models_present(pred, plots._task_of(pred, None), None)
    if n_jobs <= 1 or len(models) < 2:
        return plots.performance_tables(pred, thr, n_boot=n_boot, seed=seed)
    from joblib import Parallel, delayed

    # threads, not processes: the bootstrap is vectorised numpy (releases the GIL), and two loky workers would
    # each map their own ~200 MiB of numpy/pandas/scikit-learn, pushing the job's summed RSS past 1 GiB.
    with threadpool_limits(limits=1):  # one BLAS thread per worker thread: no oversubscription of the cores
        parts = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(plots.performance_tables)(pred[pred["model"] == m], thr, n_boot=n_boot, seed=seed)
            for m in models)
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# cohort level
# --------------------------------------------------------------------------------------------------
def cohort_report(cohort: pd.DataFrame, split: pd.DataFrame, cfg: Mapping, out_dir) -> dict:
    """Table 1 (training vs test, with p-values), the flow figure and the counts behind it, in ``out_dir``."""
    from .split import task_labels

    out_dir = Path(out_dir)
    tasks = list(cfg.get("tasks") or [])
    coh = cohort.copy()
    labels = {}
    for t in tasks:
        lab = task_labels(coh, t)
        name = t["name"] if not t.get("subset") else f"{t['name']} (subset: {t['subset']})"
        coh[name] = lab.to_numpy()
        labels[t["name"]] = lab
    sp = split.assign(patient_id=split["patient_id"].astype(str))
    sp = sp[sp["split"].isin(plots.SPLITS)]
    coh = coh[coh["patient_id"].astype(str).isin(set(sp["patient_id"]))]
    predictors = list((cfg.get("clinical") or {}).get("predictors") or [])
    variables = [v for v in predictors if v in coh.columns] + [c for c in coh.columns if c not in cohort.columns]
    t1 = plots.table1(coh, sp[["patient_id", "split"]], variables=variables,
                      categorical=(cfg.get("clinical") or {}).get("categorical") or (),
                      labels={k: v for k, v in VARIABLE_LABELS.items() if k in variables})
    plots.write_table(t1, out_dir / "table1")
    first = tasks[0]["name"] if tasks else None
    flow_in = sp.merge(coh.assign(y=labels[first].reindex(coh.index).to_numpy())[["image_id", "y"]]
                       .assign(image_id=lambda d: d["image_id"].astype(str)),
                       on="image_id", how="inner") if first else sp.assign(y=0)
    flow_in = flow_in.dropna(subset=["y"]).assign(y=lambda d: d["y"].astype(int))
    counts = plots.flow_figure(flow_in[["patient_id", "split", "y"]], out_dir / "figures" / "flow",
                               class_labels={0: "N0", 1: "N+"} if first == "metastasis" else
                               {0: "Negative", 1: "Positive"})
    counts = counts.assign(task=first)
    ext = split.assign(patient_id=split["patient_id"].astype(str), image_id=split["image_id"].astype(str))
    ext = ext[ext["split"] == "external"]
    if len(ext) and first:  # the external set (never trained on) is counted too; Table 1 and the flow show train/test
        y_ext = labels[first].set_axis(cohort["image_id"].astype(str).to_numpy()).reindex(ext["image_id"]).dropna()
        counts = pd.concat([counts, pd.DataFrame([{
            "split": "external", "patients": ext.loc[ext["image_id"].isin(y_ext.index), "patient_id"].nunique(),
            "images": len(y_ext), "positive": int((y_ext == 1).sum()), "negative": int((y_ext == 0).sum()),
            "task": first}])], ignore_index=True)[counts.columns]
    plots.write_table(counts, out_dir / "cohort_counts")
    return {"table1": t1, "counts": counts}


# --------------------------------------------------------------------------------------------------
# workflow diagram from `snakemake --rulegraph` (DOT text), drawn without graphviz
# --------------------------------------------------------------------------------------------------
_NODE = re.compile(r'^\s*(\d+)\s*\[\s*label\s*=\s*"([^"]+)"', re.M)
_EDGE = re.compile(r"^\s*(\d+)\s*->\s*(\d+)", re.M)


def parse_rulegraph(dot: str) -> tuple[dict[int, str], list[tuple[int, int]]]:
    """Nodes ``{id: rule}`` and edges ``[(from, to)]`` of snakemake's ``--rulegraph`` DOT output."""
    nodes = {int(i): name for i, name in _NODE.findall(dot)}
    edges = [(int(a), int(b)) for a, b in _EDGE.findall(dot)]
    if not nodes:
        raise UsradError("Rule graph has no nodes", [Problem("not snakemake --rulegraph output?")])
    return nodes, edges


def canonical_rulegraph(dot: str) -> str:
    """The rule graph as DOT text that depends only on the graph: nodes numbered in rule-name order, edges
    sorted, colours by that order. Snakemake numbers rules in (hash-seeded) set order, so its own text differs
    between two identical runs."""
    nodes, edges = parse_rulegraph(dot)
    order = sorted(nodes, key=lambda n: nodes[n])
    new_id = {old: i for i, old in enumerate(order)}
    lines = ["digraph snakemake_dag {", "    graph[bgcolor=white, margin=0];",
             "    node[shape=box, style=rounded, fontname=sans, fontsize=10, penwidth=2];",
             "    edge[penwidth=2, color=grey];"]
    for old in order:
        hue = new_id[old] / max(1, len(order))
        lines.append(f'\t{new_id[old]}[label = "{nodes[old]}", color = "{hue:.2f} 0.6 0.85", style="rounded"];')
    lines += [f"\t{a} -> {b}" for a, b in sorted({(new_id[a], new_id[b]) for a, b in edges})]
    return "\n".join(lines) + "\n}\n"


def rulegraph_figure(dot: str, stem) -> pd.DataFrame:
    """Draw the rule graph top to bottom: each rule in the layer of its longest path from a source rule."""
    from matplotlib.patches import FancyBboxPatch

    nodes, edges = parse_rulegraph(dot)
    parents = {n: [a for a, b in edges if b == n] for n in nodes}
    layer: dict[int, int] = {}

    def depth(n, seen=()):
        if n not in layer:
            layer[n] = 0 if not parents[n] else 1 + max(depth(p, seen + (n,)) for p in parents[n] if p not in seen)
        return layer[n]
    for n in nodes:
        depth(n)
    n_layers = max(layer.values()) + 1
    by_layer = {k: sorted([n for n in nodes if layer[n] == k], key=lambda n: nodes[n]) for k in range(n_layers)}
    W, row_h, box_h = 183.0, 11.0, 6.0
    H = n_layers * row_h + 4
    pos = {}
    for k in range(n_layers):  # barycentre ordering: each rule under the mean position of its inputs
        ns = by_layer[k]
        if k:
            ns = sorted(ns, key=lambda n: (np.mean([pos[q][0] for q in parents[n]]) if parents[n] else W / 2,
                                           nodes[n]))
        for j, n in enumerate(ns):
            pos[n] = (W * (j + 1) / (len(ns) + 1), 4 + k * row_h + box_h / 2)
    fig = plots.Figure(figsize=(W * plots.MM, H * plots.MM), dpi=plots.DPI)
    with plots.matplotlib.rc_context(plots.RC):
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        ax.set(xlim=(0, W), ylim=(H, 0))
        for a, b in edges:
            (x0, y0), (x1, y1) = pos[a], pos[b]
            ax.annotate("", xy=(x1, y1 - box_h / 2), xytext=(x0, y0 + box_h / 2),
                        arrowprops=dict(arrowstyle="-|>", lw=0.6, color="#555555", shrinkA=0, shrinkB=0,
                                        mutation_scale=6))
        for n, (x, y) in pos.items():
            w = max(18.0, 2.0 * len(nodes[n]) + 4)
            ax.add_patch(FancyBboxPatch((x - w / 2, y - box_h / 2), w, box_h,
                                        boxstyle="round,pad=0,rounding_size=1.5", fc="#E8F1F8", ec="#0072B2", lw=0.7,
                                        zorder=4))
            ax.text(x, y, nodes[n], ha="center", va="center", fontsize=plots.MIN_FONT_PT, zorder=5)
    plots.save_figure(fig, stem)
    return pd.DataFrame([{"rule": nodes[n], "layer": layer[n]} for n in sorted(nodes, key=lambda n: (layer[n], nodes[n]))])


# --------------------------------------------------------------------------------------------------
# summary: every number looked up in a results file
# --------------------------------------------------------------------------------------------------
def _fmt(value, fmt: str) -> str:
    if fmt == "s":
        return str(value)
    if fmt == "%":  # fraction → whole percent
        return f"{100 * float(value):.0f}%"
    if fmt == "d":
        return f"{int(round(float(value)))}"
    if fmt == "p":
        return plots._fmt_p(float(value))
    return format(float(value), fmt)


def _pointer(obj, pointer: str):
    for part in [p for p in pointer.split("/") if p]:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def resolve_source(root, file: str, locator: str):
    """The raw value a summary number came from.

    ``file`` is relative to ``root`` (the working directory). Locators: TSV ``col=<column>;<key>=<value>;…``
    (the unique row matching every key), JSON ``json:/a/b``, feature-table metadata ``meta:/a/b``, and the
    YAML params text inside it ``params:/setting/binWidth``; ``count:<column>=<value>`` counts TSV rows."""
    path = Path(root) / file
    if locator.startswith("json:"):
        return _pointer(json.loads(path.read_text()), locator[5:])
    if locator.startswith(("meta:", "params:")):
        from .features import read_meta

        meta = read_meta(path)
        if locator.startswith("meta:"):
            return _pointer(meta, locator[5:])
        import yaml

        return _pointer(yaml.safe_load(meta.get("params_text") or meta.get("params")), locator[7:])
    df = read_table(path, all_text=True)
    parts = dict(p.split("=", 1) for p in locator.split(";") if p)
    if "count" in parts:
        col, _, val = parts.pop("count").partition(":")
        sel = df
        for k, v in parts.items():
            sel = sel[sel[k] == v]
        return int((sel[col] == val).sum()) if col else len(sel)
    col = parts.pop("col")
    sel = df
    for k, v in parts.items():
        sel = sel[sel[k] == v]
    if len(sel) != 1:
        raise UsradError("Summary source is ambiguous", [Problem(f"{len(sel)} rows match {locator!r}", file=str(path))])
    return sel[col].iloc[0]


class _Sources:
    def __init__(self, root):
        self.root = Path(root)
        self.rows: list[dict] = []

    def num(self, key: str, file, locator: str, fmt: str = ".3f") -> str:
        file = str(Path(file).relative_to(self.root)) if Path(file).is_absolute() else str(file)
        raw = resolve_source(self.root, file, locator)
        text = _fmt(raw, fmt)
        self.rows.append({"key": key, "text": text, "file": file, "locator": locator, "format": fmt})
        return text

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["key", "text", "file", "locator", "format"])


_NUMBER = re.compile(r"(?<![\w.])[-−]?\d+(?:\.\d+)*%?")


def numbers_in(markdown: str) -> list[str]:
    """Every number in a markdown text outside code spans (`` `…` ``), as written (e.g. ``0.912``, ``80``, ``3.1.4``, ``90%``)."""
    text = re.sub(r"`[^`]*`", " ", markdown)
    return [m.group(0).replace("−", "-") for m in _NUMBER.finditer(text)]


def _settings_value(tab_file: Path, key: str) -> str:
    df = read_table(tab_file, all_text=True)
    return df.loc[df["key"] == key, "value"].iloc[0]


def write_summary(root, tasks: Sequence[str], out_md, out_sources, out_html=None, demo: bool = True,
                  ground_truth=None, results_dir: str = "results",
                  radiomics_only: bool | None = None) -> tuple[str, pd.DataFrame]:
    """The methods-and-results summary (markdown, optional HTML) and its sources table.

    ``radiomics_only`` (None: no ``clinical`` bundle in the first task) says that only the rad-score and the
    radiomics classifiers were fitted: the text says so, and the comparison with the reference study (whose
    headline model is the combined one) is left out.

    ``root`` is the working directory holding ``results/``; every number in the text is read from a
    results file by :func:`resolve_source` and listed in ``out_sources``. Writes
    ``results/report/reference_study.tsv`` (the reference study's published numbers) and, for the demo,
    ``results/report/oracle_auc.tsv`` (AUC of the Bayes-optimal probabilities on the test set).
    """
    root = Path(root)
    R = str(results_dir).rstrip("/")
    split_file = f"{R}/split/split.tsv"
    rep_dir = root / R / "report"
    src = _Sources(root)
    ref_file = rep_dir / "reference_study.tsv"
    plots.write_table(REFERENCE_STUDY, ref_file.with_suffix(""))
    feat = f"{R}/features/features.parquet"
    counts = f"{R}/report/cohort_counts.tsv"
    if radiomics_only is None:
        radiomics_only = "clinical" not in read_bundles(root / R / tasks[0] / "models")
    L: list[str] = []
    L.append("# usrad: methods and results summary")
    L.append("")
    if demo:
        L.append("> **Simulated data.** These results come from the simulated demo cohort, not from patients; "
                 "they show that the workflow runs end to end and recovers a known signal.")
        L.append("")
    L.append(f"Every number below is read from a file under `{R}/`; `{R}/report/summary_sources.tsv` "
             "lists each one with its file and location.")
    L.append("")
    if radiomics_only:
        L.append("> **Radiomics only.** The configuration lists no clinical predictor (`clinical.predictors: []`): "
                 "only the rad-score and the radiomics classifiers were fitted; the clinical, nomogram and combined "
                 "models, Table 2 (odds ratios) and the nomogram are not part of this run.")
        L.append("")
    # ---------------- methods
    L.append("## Methods")
    L.append("")
    n_pat = src.num("patients", counts, "col=patients;split=all", "d")
    n_img = src.num("images", counts, "col=images;split=all", "d")
    n_tr = src.num("patients_train", counts, "col=patients;split=train", "d")
    n_te = src.num("patients_test", counts, "col=patients;split=test", "d")
    L.append(f"**Cohort and split.** {n_pat} patients ({n_img} images) were split at patient level into a training "
             f"set of {n_tr} and a test set of {n_te} patients, stratified by every task's outcome "
             f"(`{split_file}`); all images of a patient are in the same set, so no patient informs both "
             f"training and testing. Baseline characteristics: `{R}/report/table1.tsv`.")
    if "external" in set(read_table(root / counts, text=("split",))["split"]):
        n_ext = src.num("patients_external", counts, "col=patients;split=external", "d")
        n_ext_img = src.num("images_external", counts, "col=images;split=external", "d")
        L.append(f"An external validation set of {n_ext} patients ({n_ext_img} images), selected by "
                 f"`split.by_column`, was never used for training, selection or tuning.")
    L.append("")
    pyr = src.num("pyradiomics_version", feat, "meta:/versions/pyradiomics", "s")
    sitk = src.num("simpleitk_version", feat, "meta:/versions/SimpleITK", "s")
    bw = src.num("bin_width", feat, "params:/setting/binWidth", "g")
    settings = resolve_source(root, feat, "params:/setting") or {}
    sig = [src.num(f"log_sigma_{i}", feat, f"params:/setting/sigma/{i}", "g")
           for i in range(len(settings.get("sigma") or []))] if "LoG" in (resolve_source(root, feat, "params:/imageType") or {}) else []
    n_feat = src.num("n_features", feat, "meta:/feature_counts/total", "d")
    by_class = resolve_source(root, feat, "meta:/feature_counts/by_class")
    cls_txt = ", ".join(f"{c} {src.num(f'n_features_{c}', feat, f'meta:/feature_counts/by_class/{c}', 'd')}"
                        for c in sorted(by_class))
    image_types = resolve_source(root, feat, "params:/imageType")
    L.append(f"**Feature extraction.** PyRadiomics {pyr} (SimpleITK {sitk}) on two-dimensional images and masks, "
             f"fixed bin width {bw}, image types `{', '.join(image_types)}`"
             + (f" (Laplacian of Gaussian with sigma {', '.join(sig)} mm)" if sig else "")
             + f"; {n_feat} features per image ({cls_txt}). The parameter file and its `SHA-256` are stored in the "
             "feature table's metadata.")
    L.append("")
    t0 = tasks[0]
    settings0 = f"{R}/{t0}/tables/evaluation_settings.tsv"
    icc_form = _settings_value(root / settings0, "icc_form")
    icc_thr = _settings_value(root / settings0, "icc_threshold")
    if icc_thr:
        L.append(f"**Reproducibility.** Features were computed from a second segmentation "
                 f"({_settings_value(root / settings0, 'icc_source')}); features with "
                 f"`{icc_form}` (two-way random, absolute agreement, single measurement) below "
                 f"{src.num('icc_threshold', settings0, 'col=value;key=icc_threshold', 'g')} were dropped, "
                 "inside every cross-validation fold.")
    else:
        L.append("**Reproducibility.** No second reading was available: the ICC filter was off.")
    L.append("")
    folds = src.num("cv_folds", settings0, "col=value;key=cv_folds", "d")
    lfolds = src.num("lasso_cv_folds", settings0, "col=value;key=lasso_cv_folds", "d")
    L.append(f"**Selection and modelling.** All selection steps are scikit-learn transformers inside the model "
             f"pipelines, refitted in each of the {folds} patient-grouped, stratified cross-validation folds "
             f"(leak-free by construction): ICC filter, near-zero variance, Mann–Whitney filter, redundancy filter "
             f"(Spearman), LASSO logistic regression ({lfolds}-fold inner CV, one-standard-error rule) whose linear predictor is "
             f"the rad-score. Classifiers `{_settings_value(root / settings0, 'classifiers')}` were fitted "
             "unweighted (probabilities at the training prevalence) and their hyperparameters tuned by grid search on "
             f"the cross-validated log loss (search spaces: `{_settings_value(root / settings0, 'search_spaces')}`); "
             "every reported CV AUC is nested (the tuning and every model choice repeated inside each outer fold). "
             + ("No clinical model (radiomics only). " if radiomics_only else
                "Clinical model: univariable then multivariable logistic regression (Firth's penalised likelihood "
                "under separation); nomogram: rad-score plus the independent clinical predictors; combined: rad-score "
                "plus clinical predictors with a classifier type chosen among a few pre-specified ones "
                f"(`{_settings_value(root / settings0, 'model_choice')}` rule: the simplest within one standard error "
                "of the best nested CV AUC). Both second-stage models were trained on a cross-fitted (out-of-fold, "
                "patient-grouped) rad-score of the training patients, never on the rad-score of their own rows. ")
             + "Classification thresholds (Youden) were fixed on training data "
             f"({_settings_value(root / settings0, 'threshold_basis')}).")
    L.append("")
    nb = src.num("n_boot", settings0, "col=value;key=n_boot", "d")
    lvl = src.num("ci_level", settings0, "col=value;key=ci_level", "%")
    hlg = src.num("hl_groups", settings0, "col=value;key=hosmer_lemeshow_groups", "d")
    cnb = src.num("calibration_curve_n_boot", settings0, "col=value;key=calibration_curve_n_boot", "d")
    L.append(f"**Evaluation.** The patient, not the image, is the unit of every interval and test: the images of "
             f"a patient are resampled and counted together. AUC with {lvl} confidence intervals from {nb} "
             "stratified patient-level bootstrap resamples (seeded); sensitivity, specificity, accuracy, PPV and NPV "
             "with Wilson intervals widened by the design effect of images clustered within patients; paired AUCs "
             "compared by DeLong's test with the clustered (Obuchowski) variance, reported as the AUC difference "
             f"with its {lvl} CI and P; calibration intercept and slope with cluster-robust {lvl} CIs, "
             f"calibration-in-the-large (mean predicted risk against observed prevalence), Brier score and the "
             f"Hosmer–Lemeshow test ({hlg} groups; as many degrees of freedom as groups on cross-validated and test "
             "predictions, two fewer on the apparent training predictions); smoothed calibration curves (logistic "
             f"regression on a restricted cubic spline of logit p) with {lvl} bands from {cnb} patient-level "
             "bootstrap resamples; decision-curve analysis (net benefit).")
    L.append("")
    # ---------------- results
    L.append("## Results")
    L.append("")
    for task in tasks:
        perf = f"{R}/{task}/tables/table3_performance.tsv"
        steps = f"{R}/{task}/selection/steps.tsv"
        bundles = read_bundles(root / R / task / "models")
        best = best_classifier(bundles)
        L.append(f"### Task `{task}`")
        L.append("")
        st = read_table(root / steps, all_text=True)
        chain = " → ".join(f"{s} {src.num(f'{task}_step_{s}', steps, f'col=n_features_after;step={s}', 'd')}"
                           for s in st["step"])
        L.append(f"Feature selection (features left after each step): {chain}.")
        L.append("")
        splits_present = set(read_table(root / perf, text=("split",), usecols=["split"])["split"])
        shown = [s for s in ("train", "test", "external") if s in splits_present]
        L.append("| model | split | n | AUC (CI) | sensitivity | specificity | Brier |")
        L.append("|---|---|---|---|---|---|---|")
        pdf = read_table(root / perf, text=("model", "split"))
        for m in [m for m in MAIN_MODELS if m in set(pdf["model"])] + [best]:
            for s in shown:
                loc = f"model={m};split={s}"
                a = src.num(f"{task}_{m}_{s}_auc", perf, f"col=auc;{loc}")
                lo = src.num(f"{task}_{m}_{s}_auc_low", perf, f"col=auc_boot_low;{loc}")
                hi = src.num(f"{task}_{m}_{s}_auc_high", perf, f"col=auc_boot_high;{loc}")
                se = src.num(f"{task}_{m}_{s}_sens", perf, f"col=sensitivity;{loc}", "%")
                sp = src.num(f"{task}_{m}_{s}_spec", perf, f"col=specificity;{loc}", "%")
                br = src.num(f"{task}_{m}_{s}_brier", perf, f"col=brier;{loc}")
                n = src.num(f"{task}_{m}_{s}_n", perf, f"col=n;{loc}", "d")
                L.append(f"| {plots.model_label(m)}{' (best classifier)' if m == best else ''} | {s} | {n} | "
                         f"{a} ({lo}–{hi}) | {se} | {sp} | {br} |")
        L.append("")
        cvf = f"{R}/{task}/models/{best}/bundle.json"
        L.append(f"Best radiomics classifier by cross-validated AUC: {plots.model_label(best)} "
                 f"(CV AUC {src.num(f'{task}_best_cv_auc', cvf, 'json:/cv_auc')}).")
        dl = f"{R}/{task}/tables/delong.tsv"
        dtab = read_table(root / dl, all_text=True)
        for a, b in (("combined", "clinical"), ("combined", "radscore")):
            hit = dtab[(dtab["model_1"] == a) & (dtab["model_2"] == b) & (dtab["split"] == "test")]
            if len(hit):
                L.append(_delong_sentence(src, task, dl, a, b, lvl))
        headline = "combined" if "combined" in set(pdf["model"]) else "radscore"
        if "test" in splits_present and headline in set(pdf["model"]):
            L.append(_calibration_sentence(src, task, f"{R}/{task}/tables/calibration.tsv", headline, lvl))
        L.append("")
        L += _internal_validation_lines(root, src, R, task)
    # ---------------- demo vs reference
    oracle_rows = []
    if ground_truth is not None:
        gt = read_table(ground_truth)
        for task in tasks:
            col = f"oracle_p_{task}"
            pr = read_table(root / R / task / "predictions.tsv")
            te = pr[(pr["split"] == "test")].drop_duplicates("image_id")
            if col not in gt.columns or te.empty:
                continue
            d = te.merge(gt[["patient_id", col]], on="patient_id", how="inner")
            if d["y"].nunique() == 2:
                oracle_rows.append({"task": task, "split": "test", "n": len(d), "auc": metrics.auc(d["y"], d[col])})
    plots.write_table(pd.DataFrame(oracle_rows, columns=["task", "split", "n", "auc"]), rep_dir / "oracle_auc")
    shown_ref = REFERENCE_STUDY[REFERENCE_STUDY["task"].isin(tasks)]
    if radiomics_only:  # the reference study's numbers are those of its combined model, not fitted here
        shown_ref = shown_ref.iloc[0:0]
    if not shown_ref.empty:  # only for the reference study's outcomes
        L.append("## Demo results beside the reference study")
        L.append("")
        L.append("| task | metric | this run (" + ("simulated data" if demo else "this cohort") + ", test set) | "
                 "reference study (published) |" + (" oracle (Bayes-optimal, simulated) |" if oracle_rows else ""))
        L.append("|---|---|---|---|" + ("---|" if oracle_rows else ""))
    for _, r in shown_ref.iterrows():
        task, metric = r["task"], r["metric"]
        perf = f"{R}/{task}/tables/table3_performance.tsv"
        fmt = ".3f" if metric == "auc" else "%"
        ours = src.num(f"{task}_{metric}_demo", perf, f"col={metric};model=combined;split=test", fmt)
        ref = src.num(f"{task}_{metric}_reference", ref_file, f"col=value;task={task};metric={metric}", fmt)
        orc = ""
        if oracle_rows:
            orc = (src.num(f"{task}_oracle_auc", rep_dir / "oracle_auc.tsv", f"col=auc;task={task}")
                   if metric == "auc" and any(o["task"] == task for o in oracle_rows) else "")
            orc = f" {orc} |"
        L.append(f"| {task} | {METRIC_LABELS.get(metric, metric)} | {ours} | {ref} |{orc}")
    L.append("")
    # ---------------- checklist
    L.append("## Reporting checklist")
    L.append("")
    L.append("| item | this run | source |")
    L.append("|---|---|---|")
    sha = resolve_source(root, feat, "meta:/params_sha256")
    L.append(f"| Extraction software | PyRadiomics {pyr}, SimpleITK {sitk} | `{feat}` metadata |")
    L.append(f"| Dimensionality | two-dimensional (true 2D images; `force2D: "
             f"{str(resolve_source(root, feat, 'params:/setting/force2D')).lower()}`) | params |")
    L.append(f"| Discretisation | fixed bin width {bw} | params `{sha[:12]}` |")
    L.append(f"| Filters | `{', '.join(image_types)}`" + (f"; LoG sigma {', '.join(sig)} mm" if sig else "")
             + " | params |")
    L.append(f"| Features per class | {cls_txt}; total {n_feat} | feature table metadata |")
    L.append(f"| Split | patient-level, stratified; training {n_tr} / test {n_te} patients | `{counts}` |")
    L.append("| Leakage prevention | every selection step and the tuning refitted inside each CV fold; test set "
             "used once | `docs/modelling.md` |")
    if icc_thr:
        L.append(f"| ICC | `{icc_form}`, threshold {src.num('icc_threshold_checklist', settings0, 'col=value;key=icc_threshold', 'g')} "
                 f"| `{settings0}` |")
    for task in tasks:
        steps = f"{R}/{task}/selection/steps.tsv"
        st = read_table(root / steps, all_text=True)
        chain = " → ".join(f"{s} {src.num(f'{task}_chk_{s}', steps, f'col=n_features_after;step={s}', 'd')}"
                           for s in st["step"])
        L.append(f"| Selection ({task}) | {chain} | `{steps}` |")
    L.append(f"| Tuning | grid search on the log loss, {folds}-fold patient-grouped stratified CV; nested CV AUCs; "
             f"model choice by the `{_settings_value(root / settings0, 'model_choice')}` rule | `{settings0}`, "
             "`models/model_choice.tsv` |")
    L.append(f"| Metrics with CIs | patient-level: AUC ({nb} patient bootstrap resamples), design-effect Wilson CIs "
             "at the threshold, clustered DeLong AUC differences with CIs | `tables/table3_performance.tsv`, "
             "`tables/delong.tsv` |")
    L.append("| Calibration | smoothed curves with patient-bootstrap bands; intercept and slope with cluster-robust "
             "CIs; mean predicted vs observed risk; Brier; Hosmer–Lemeshow | `tables/calibration.tsv`, "
             "`figures/calibration.png` |")
    L.append("| Decision curves | net benefit vs threshold, treat-all / treat-none | `figures/decision_curve.png` |")
    L.append("")
    md = "\n".join(L) + "\n"
    write_text(out_md, md)
    sources = src.table()
    plots.write_table(sources, Path(out_sources).with_suffix(""))
    if out_html is not None:
        write_text(out_html, markdown_html(md))
    return md, sources


def _internal_validation_lines(root: Path, src: _Sources, R: str, task: str) -> list[str]:
    """Harrell's optimism-corrected bootstrap of the task (``modelling.internal_validation: bootstrap``): AUC and
    calibration slope, apparent / optimism / corrected, per model; nothing when the table was not made."""
    iv = f"{R}/{task}/tables/internal_validation.tsv"
    if not (root / iv).exists():
        return []
    tab = read_table(root / iv, text=("model", "metric"))
    n = src.num(f"{task}_iv_resamples", iv, f"col=n_resamples;model={tab['model'].iloc[0]};metric=auc", "d")
    L = [f"Internal validation of the development set (Harrell's optimism-corrected bootstrap, {n} resamples, the "
         "whole pipeline refitted on each):", "",
         "| model | AUC apparent | optimism | corrected | calibration slope apparent | corrected |",
         "|---|---|---|---|---|---|"]
    for m in dict.fromkeys(tab["model"]):
        cells = [src.num(f"{task}_iv_{m}_{metric}_{col}", iv, f"col={col};model={m};metric={metric}")
                 for metric, cols in (("auc", ("apparent", "optimism", "corrected")),
                                      ("calibration_slope", ("apparent", "corrected"))) for col in cols]
        L.append(f"| {plots.model_label(m)} | " + " | ".join(cells) + " |")
    return L + [""]


def _delong_sentence(src: _Sources, task: str, dl: str, a: str, b: str, lvl: str) -> str:
    """The test-set AUC comparison of models ``a`` and ``b``, every number from the DeLong table ``dl``."""
    loc = f"model_1={a};model_2={b};split=test"
    key = f"{task}_delong_{a}_{b}"
    return (f"Paired AUC comparison (clustered DeLong), {a} vs {b} (test set): AUC difference "
            f"{src.num(f'{key}_diff', dl, f'col=diff;{loc}')} ({lvl} CI "
            f"{src.num(f'{key}_diff_low', dl, f'col=diff_low;{loc}')} to "
            f"{src.num(f'{key}_diff_high', dl, f'col=diff_high;{loc}')}), "
            f"P {src.num(f'{key}_p', dl, f'col=p_value;{loc}', 'p')}.")


def _calibration_sentence(src: _Sources, task: str, cal: str, model: str, lvl: str) -> str:
    """The test-set calibration of ``model``, every number from the calibration table ``cal``."""
    loc = f"model={model};split=test"

    def num(name, col, fmt=".2f"):
        return src.num(f"{task}_cal_{name}", cal, f"col={col};{loc}", fmt)
    return (f"Calibration of the {model} model on the test set: slope {num('slope', 'slope')} ({lvl} CI "
            f"{num('slope_low', 'slope_low')} to {num('slope_high', 'slope_high')}), intercept "
            f"{num('int', 'intercept')} ({num('int_low', 'intercept_low')} to {num('int_high', 'intercept_high')}); "
            f"mean predicted risk {num('mean_predicted', 'mean_predicted')} against an observed prevalence of "
            f"{num('observed', 'observed')}; Brier score {num('brier', 'brier', '.3f')}; Hosmer–Lemeshow P "
            f"{num('hl_p', 'hl_p', 'p')} (`tables/calibration.tsv`, `figures/calibration.png`).")


def markdown_html(md: str) -> str:
    """A small self-contained HTML rendering of the summary (headings, paragraphs, tables, code spans)."""
    out, in_table = [], False

    def inline(s):
        s = html.escape(s)
        s = re.sub(r"`([^`]*)`", r"<code>\1</code>", s)
        return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells) + "</tr>")
                continue
            out.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        m = re.match(r"^(#+) (.*)", line)
        if m:
            k = len(m.group(1))
            out.append(f"<h{k}>{inline(m.group(2))}</h{k}>")
        elif line.startswith("> "):
            out.append(f"<blockquote>{inline(line[2:])}</blockquote>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    if in_table:
        out.append("</table>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px}blockquote{background:#fff3cd;padding:.5em}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>usrad summary</title><style>{style}</style>"
            f"</head><body>\n" + "\n".join(out) + "\n</body></html>\n")
