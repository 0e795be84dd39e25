"""Evaluation of one task (:func:`evaluate_task`): every table of ``results/{task}/tables/`` computed once
from ``predictions.tsv`` with :mod:`usrad.metrics`, and every figure drawn from those tables (read back from
the files) by the figure modules of :mod:`usrad.reporting`, which compute nothing.
The list of its outputs is :mod:`usrad.reporting.outputs`'s. Also the bundles' thresholds and the
best classifier (:func:`read_bundles`, :func:`bundle_thresholds`, :func:`best_classifier`).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .. import metrics
from ..bundle import load_bundle, read_bundle_meta
from ..errors import Problem, UsradError
from ..models import SEARCH_SPACES, build_design, modelling_settings, read_predictions
from ..tables import read_table
from .calibration import calibration_figure
from .curves import (
    CURVE_KNOTS, CURVE_N_BOOT, HL_GROUPS, calibration_tables, decision_curve_table, roc_tables
)
from .decision import confusion_figure, decision_curve_figure
from .discrimination import forest_figure, roc_figure
from .explain import shap_figure, shap_values
from .export import export_task_tables
from .nomogram_figure import nomogram_figure, nomogram_model, spaced_probabilities
from .outputs import N_BOOT
from .predictions import check_predictions, models_present, task_of
from .signature import icc_figure, lasso_cv_figure, lasso_path_figure, lasso_tables, radscore_figure
from .style import CLASSIFIERS, model_label, placeholder_figure, write_table
from .tables import control_rows, delong_table, format_delong, format_performance, performance_tables, radscore_table, table2
from .wording import risk_label, task_wording

log = logging.getLogger(__name__)


LEVEL = metrics.LEVEL
MAIN_MODELS = ("clinical", "radscore", "nomogram", "combined")


def read_bundles(models_dir) -> dict[str, dict]:
    """``{model name: bundle.json metadata}`` of every bundle under ``models_dir`` (sorted by name)."""
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


def default_comparisons(models: Sequence[str], best: str | None) -> list[tuple[str, str]]:
    """combined vs clinical, combined vs radscore, nomogram vs clinical, combined vs nomogram, nomogram vs radscore
    (those whose two models exist), then the best classifier vs each other one."""
    avail = set(models)
    pairs = [(a, b) for a, b in (("combined", "clinical"), ("combined", "radscore"), ("nomogram", "clinical"),
                                 ("combined", "nomogram"), ("nomogram", "radscore")) if a in avail and b in avail]
    if best is not None and best in avail:
        pairs += [(best, m) for m in CLASSIFIERS if m in avail and m != best]
    return pairs


def evaluation_settings(cfg: Mapping, n_boot: int, seed: int, bundles: Mapping[str, dict]) -> pd.DataFrame:
    """The settings the evaluation (and the modelling it reports on) used, as ``key, value`` text rows."""
    ms = modelling_settings((cfg or {}).get("modelling"))
    any_b = next(iter(bundles.values()))
    rep = any_b.get("reproducibility") or {}
    rows = {
        "n_boot": n_boot, "ci_level": LEVEL, "seed": seed, "bootstrap_unit": "patient (stratified)",
        "inference_unit": "patient",
        "auc_ci": "patient bootstrap percentile (auc_boot_low/high); clustered DeLong (auc_delong_low/high)",
        "auc_comparison": metrics.delong_method("patient_id"),
        "proportion_ci": "Wilson, design effect (patients)",
        "calibration_ci": "cluster-robust (patients), t with patients - 1 df",
        "hosmer_lemeshow_groups": HL_GROUPS,
        "hosmer_lemeshow_df": "groups on cv/test/external (validation), groups - 2 on train (apparent)",
        "calibration_curve": f"restricted cubic spline of logit(p), {CURVE_KNOTS} knots",
        "calibration_curve_n_boot": CURVE_N_BOOT,
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
        "clinical_predictors": ",".join(((cfg or {}).get("clinical") or {}).get("predictors") or []),
        "clinical_missing": ((cfg or {}).get("clinical") or {}).get("missing", "refuse"),
    }
    return pd.DataFrame({"key": list(rows), "value": [str(v) for v in rows.values()]})


def _space(m, ms):
    return (ms.get("search_spaces") or {}).get(m, SEARCH_SPACES.get(m, {}))


def task_design(features: pd.DataFrame, cohort: pd.DataFrame, image_ids, bundles: Mapping[str, dict],
                predictors: Sequence[str]) -> pd.DataFrame:
    """The design matrix the task's pipelines take (as in :func:`usrad.models.build_design`)."""
    rep = next(iter(bundles.values())).get("reproducibility") or {}
    X, _ = build_design(features, cohort, list(image_ids), list(predictors), rep.get("copy_reader"))
    return X


@dataclass
class _Outputs:
    """The files one evaluation writes (figure stems, tables) and the time each step took."""

    task: str
    fig_dir: Path
    tab_dir: Path
    figs: dict = field(default_factory=dict)
    tabs: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)

    def stem(self, name: str) -> Path:
        self.figs[name] = self.fig_dir / f"{name}.png"
        return self.fig_dir / name

    def table(self, df: pd.DataFrame, name: str) -> None:
        self.tabs[name] = write_table(df, self.tab_dir / name)

    def read(self, name: str) -> pd.DataFrame:
        """A table as written (floats read back exactly): what the figures draw."""
        return read_table(self.tabs[name], text=("model", "split", "task"), float_precision="round_trip")

    def tick(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.t0, 2)
        self.t0 = now
        log.info("task %s: %s done in %.1f s", self.task, name, self.timings[name])


def evaluate_task(task_dir, task: str, features: pd.DataFrame | None = None, cohort: pd.DataFrame | None = None,
                  cfg: Mapping | None = None, seed: int = 0, n_boot: int = N_BOOT, n_jobs: int = 1,
                  task_cfg: Mapping | None = None, negative_controls: pd.DataFrame | None = None) -> dict:
    """Every figure and table of one task from its modelling results in ``task_dir`` (``results/{task}``).

    ``features``/``cohort`` (feature and cohort tables) are needed for the nomogram's training ranges and the
    SHAP values; ``cfg`` is the validated config (clinical predictors, modelling settings); ``task_cfg`` the task's
    config item, whose wording labels the nomogram's risk axis (:func:`usrad.reporting.wording.task_wording`);
    ``negative_controls`` the negative-control table (:func:`usrad.models.negative_control_table`), whose AUCs
    become a block of Table 3's paper text.
    Returns ``{"figures": {stem: png path}, "tables": {name: tsv path}, "best": best classifier, "seconds": {...}}``.
    """
    cfg = dict(cfg or {})
    task_dir = Path(task_dir)
    fig_dir, tab_dir = task_dir / "figures", task_dir / "tables"
    fig_dir.mkdir(parents=True, exist_ok=True)
    tab_dir.mkdir(parents=True, exist_ok=True)
    pred = read_predictions(task_dir / "predictions.tsv")
    pred = check_predictions(pred, file=str(task_dir / "predictions.tsv"))
    bundles = read_bundles(task_dir / "models")
    thr = bundle_thresholds(bundles)
    best = best_classifier(bundles)
    models = list(dict.fromkeys(pred["model"]))
    main = [m for m in MAIN_MODELS if m in models]
    splits = [s for s in ("train", "test") if s in set(pred["split"])]
    out = _Outputs(task, fig_dir, tab_dir)
    _metric_tables(out, pred, thr, default_comparisons(models, best), splits, n_boot, seed, n_jobs, negative_controls)
    _curve_tables(out, pred, main, splits, n_boot, seed)
    wording = task_wording(task_cfg, task)
    _prediction_figures(out, pred, main, splits, seed, {0: wording["negative_label"], 1: wording["positive_label"]})
    _signature_figures(out, task_dir, bundles, cfg)
    # nomogram and SHAP need the design matrix (features + clinical columns)
    if features is None or cohort is None:
        raise UsradError("evaluate_task needs the feature and cohort tables for the nomogram and SHAP")
    _model_figures(out, task_dir, pred, features, cohort, bundles, cfg, best, seed, n_jobs,
                   risk_label(wording))
    out.table(evaluation_settings(cfg, n_boot, seed, bundles), "evaluation_settings")
    export_task_tables(tab_dir, task, tables=list(out.tabs))  # Tables 2, 3 and DeLong for people (.md .tex .docx .html)
    return {"figures": out.figs, "tables": out.tabs, "best": best, "seconds": out.timings}


def _metric_tables(out: _Outputs, pred, thr, comparisons, splits, n_boot, seed, n_jobs, controls=None) -> None:
    """Table 3 (the slow part: 2,000 patient-level bootstrap resamples per model and split; its paper text with the
    negative controls' block), the DeLong comparisons and the calibration tables."""
    perf = task_performance(pred, thr, n_boot, seed, n_jobs)
    out.table(perf, "table3_performance")
    text = format_performance(perf)
    if controls is not None:
        text = pd.concat([text, control_rows(controls, text.columns)], ignore_index=True)
    out.table(text, "table3_performance_formatted")
    out.tick("table3")
    dl = delong_table(pred, comparisons, splits=[s for s in ("test", "train") if s in splits], task=out.task)
    out.table(dl, "delong")
    out.table(format_delong(dl), "delong_formatted")
    out.tick("delong")
    cal, curve = calibration_tables(pred, n_boot=CURVE_N_BOOT, seed=seed)
    out.table(cal, "calibration")
    out.table(curve, "calibration_curve")
    out.tick("calibration tables")


def _curve_tables(out: _Outputs, pred, main, splits, n_boot, seed) -> None:
    """The ROC curves and bands (the patient-level resamples of Table 3's AUC intervals) and the decision
    curves of the main models, and the rad-score by class, on the figures' splits."""
    curve, band = roc_tables(pred, task=out.task, models=main, splits=splits, n_boot=n_boot, seed=seed)
    out.table(curve, "roc_curve")
    out.table(band, "roc_band")
    out.tick("roc tables")
    out.table(decision_curve_table(pred, task=out.task, models=main, splits=splits), "decision_curve")
    out.table(radscore_table(pred, task=out.task, splits=splits), "radscore_by_class")
    out.tick("decision curve and rad-score tables")


def _prediction_figures(out: _Outputs, pred, main, splits, seed, class_labels: Mapping[int, str]) -> None:
    """ROC, forest, calibration, decision curve, rad-score, confusion: each drawn from the tables as written
    (read back exactly), never its own statistics."""
    task, stem = out.task, out.stem
    perf = out.read("table3_performance")
    roc_figure(perf, out.read("roc_curve"), out.read("roc_band"), stem("roc"), task=task, models=main,
               splits=splits)
    forest_figure(perf, stem("forest"), task=task, splits=splits)
    out.tick("roc+forest")
    calibration_figure(out.read("calibration"), out.read("calibration_curve"), pred, stem("calibration"), task=task,
                       models=main, splits=splits)
    decision_curve_figure(out.read("decision_curve"), stem("decision_curve"), task=task, models=main, splits=splits)
    radscore_figure(pred, out.read("radscore_by_class"), stem("radscore"), task=task, splits=splits, seed=seed,
                    class_labels=class_labels)
    confusion_figure(perf, stem("confusion"), task=task, models=main, splits=splits)
    out.tick("calibration+dca+radscore+confusion")


def _signature_figures(out: _Outputs, task_dir: Path, bundles, cfg: Mapping) -> None:
    """ICC (or a placeholder when the filter is off), LASSO curve and path, and Table 2 (with clinical models)."""
    sel_dir = task_dir / "selection"
    icc = read_table(sel_dir / "icc.tsv")
    rep = next(iter(bundles.values())).get("reproducibility") or {}
    if rep.get("icc_threshold") is not None and pd.to_numeric(icc["icc"], errors="coerce").notna().any():
        icc_figure(icc, out.stem("icc"), threshold=float(rep["icc_threshold"]))
    else:
        placeholder_figure(out.stem("icc"), "ICC filter off: no second reader or perturbed masks")
    scoring = ((cfg.get("modelling") or {}).get("lasso") or {}).get("scoring", "neg_log_loss")
    cv_tab, path_tab, sel_c = lasso_tables(read_table(sel_dir / "lasso_path.tsv"), scoring)
    lasso_cv_figure(cv_tab, out.stem("lasso_cv"))
    lasso_path_figure(path_tab, out.stem("lasso_path"), selected=sel_c)
    if "clinical" in bundles:  # radiomics only: no Table 2, no nomogram
        uni = read_table(out.tab_dir / "univariable.tsv")
        multi = read_table(out.tab_dir / "multivariable.tsv")
        out.table(table2(uni, multi), "table2_odds_ratios")
    out.tick("icc+lasso+table2")


def _model_figures(out: _Outputs, task_dir: Path, pred, features, cohort, bundles, cfg: Mapping, best: str,
                   seed: int, n_jobs: int, risk: str) -> None:
    """The nomogram (with clinical models) over the training rows, and the SHAP summary of the best classifier
    on the test rows (the training rows when there is no test set)."""
    task = out.task
    rows = pred[pred["model"] == "radscore"].drop_duplicates("image_id")  # every model scores the same images
    predictors = (cfg.get("clinical") or {}).get("predictors") or []
    X = task_design(features, cohort, rows["image_id"], bundles, predictors)
    train_rows = pred[(pred["model"] == "radscore") & (pred["split"] == "train")]["image_id"]
    is_train = np.isin(X.index.get_level_values("image_id"), train_rows.to_numpy())
    if "clinical" in bundles:
        nomo_pipe, _ = load_bundle(task_dir / "models" / "nomogram")
        nm = nomogram_model(nomo_pipe, X[is_train])
        scales, _ = nomogram_figure(nm.intercept, nm.variables, out.stem("nomogram"),
                                    outcome_label=risk,
                                    probabilities=spaced_probabilities(nm))
        out.table(scales, "nomogram_points")
    out.tick("nomogram")
    best_pipe, _ = load_bundle(task_dir / "models" / best)
    explain = ~is_train if (~is_train).any() else is_train
    with threadpool_limits(limits=max(1, n_jobs)):
        sv, fv, names, expl_name = shap_values(best_pipe, X[explain], X[is_train], seed=seed)
    ranking = shap_figure(sv, fv, names, out.stem("shap"),
                          title=f"SHAP summary: {model_label(best)} ({expl_name}, "
                                f"{'test' if (~is_train).any() else 'training'} set)")
    out.table(ranking.assign(task=task, model=best, explainer=expl_name, n_explained=len(sv)), "shap_importance")
    out.tick("shap")


def task_performance(pred, thr, n_boot, seed, n_jobs) -> pd.DataFrame:
    """Table 3 (:func:`performance_tables`), one model per job when ``n_jobs`` > 1 (same numbers)."""
    models = models_present(pred, task_of(pred, None), None)
    if n_jobs <= 1 or len(models) < 2:
        return performance_tables(pred, thr, n_boot=n_boot, seed=seed)
    from joblib import Parallel, delayed

    # threads, not processes: the bootstrap is vectorised numpy (releases the GIL), and two loky workers would
    # each map their own ~200 MiB of numpy/pandas/scikit-learn, pushing the job's summed RSS past 1 GiB.
    with threadpool_limits(limits=1):  # one BLAS thread per worker thread: no oversubscription of the cores
        parts = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(performance_tables)(pred[pred["model"] == m], thr, n_boot=n_boot, seed=seed)
            for m in models)
    return pd.concat(parts, ignore_index=True)
