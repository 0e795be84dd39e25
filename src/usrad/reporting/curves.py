"""The curve tables the figures draw, each computed once from the predictions by :mod:`usrad.metrics`:
the ROC curves and their bootstrap bands (:func:`roc_tables`), the decision curves (:func:`decision_curve_table`)
and the calibration table with its smoothed curve (:func:`calibration_tables`, one row :func:`calibration_row`).

Each table has one row (or one curve point) per (task, model, split) and is written under
``results/{task}/tables/`` by :func:`usrad.reporting.evaluation.evaluate_task`; the figure modules only draw them.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from .predictions import check_predictions, models_present, select_rows, splits_present, task_of
from .style import ALL_SPLITS, BASE_MODELS, LABEL, SPLITS, write_table


#: Hosmer–Lemeshow groups of the calibration table: those of Table 3 (:func:`usrad.metrics.performance_table`
#: uses g = 10), so both tables give the same statistic.
HL_GROUPS = 10

#: Bootstrap resamples of the smoothed calibration curve's band (:func:`usrad.metrics.smoothed_calibration`'s
#: default: the band is ± z · a robust bootstrap SD, which 200 patient-level resamples estimate well).
CURVE_N_BOOT = 200

#: Knots of the restricted cubic spline of the smoothed calibration curve.
CURVE_KNOTS = 3

#: Columns of the calibration table (:func:`calibration_tables`), one row per (task, model, split).
CALIBRATION_COLUMNS = (
    "task", "model", "split", "validation", "n", "n_patients", "n_pos", "mean_predicted", "observed", "observed_low",
    "observed_high", "intercept", "intercept_low", "intercept_high", "intercept_p", "slope", "slope_low",
    "slope_high", "slope_p", "cov_type", "brier", "hl_statistic", "hl_df", "hl_p", "hl_groups", "curve_method",
    "curve_knots_logit", "curve_n_boot", "curve_n_failed")

#: Columns of the smoothed-curve table (:func:`calibration_tables`), ``n_grid`` rows per (task, model, split).
CURVE_COLUMNS = ("task", "model", "split", "p_grid", "observed", "lower", "upper")

#: Columns of the empirical ROC curve table (:func:`roc_tables`), one row per point.
ROC_CURVE_COLUMNS = ("task", "model", "split", "fpr", "tpr")

#: Columns of the ROC band table (:func:`roc_tables`), one row per grid FPR (:data:`usrad.metrics.FPR_GRID`).
ROC_BAND_COLUMNS = ("task", "model", "split", "fpr", "tpr_low", "tpr_high")

#: Threshold probabilities of the decision curves (1% to 80%).
DECISION_THRESHOLDS = tuple(i / 100 for i in range(1, 81))

#: Columns of the decision-curve table (:func:`decision_curve_table`): the tidy ``dcurves`` rows per split.
DECISION_COLUMNS = ("task", "split", "model", "threshold", "net_benefit", "net_intervention_avoided",
                    "test_pos_rate", "tp_rate", "fp_rate", "harm", "prevalence", "n")


def roc_tables(predictions: pd.DataFrame, task: str | None = None, models: Sequence[str] = BASE_MODELS,
               splits: Sequence[str] = SPLITS, n_boot: int = 2000,
               seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The empirical ROC curve (:func:`usrad.metrics.roc_curve`) and its pointwise 95% band
    (:func:`usrad.metrics.roc_band`, patient bootstrap: the resamples of Table 3's AUC interval, same
    ``n_boot`` and ``seed``) of each of ``models`` on each of ``splits`` (default: main models, training and
    test). Returns ``(curve, band)`` with :data:`ROC_CURVE_COLUMNS` / :data:`ROC_BAND_COLUMNS`."""
    pred = check_predictions(predictions)
    task = task_of(pred, task)
    models = models_present(pred, task, models)
    splits = splits_present(pred, task, splits)
    curves, bands = [], []
    for split in splits:
        for m in models:
            d = select_rows(pred, task, split, m)
            if d.empty:
                continue
            y, p, g = d[LABEL].to_numpy(), d["probability"].to_numpy(), d["patient_id"].to_numpy()
            key = {"task": task, "model": m, "split": split}
            bands.append(metrics.roc_band(y, p, groups=g, n_boot=n_boot, seed=seed).assign(**key))
            curves.append(metrics.roc_curve(y, p).assign(**key))
    return (_concat(curves, ROC_CURVE_COLUMNS), _concat(bands, ROC_BAND_COLUMNS))


def decision_curve_table(predictions: pd.DataFrame, task: str | None = None, models: Sequence[str] = BASE_MODELS,
                         splits: Sequence[str] = SPLITS,
                         thresholds: Sequence[float] = DECISION_THRESHOLDS) -> pd.DataFrame:
    """Net benefit of ``models``, treat-all and treat-none (:func:`usrad.metrics.decision_curve`) on each of
    ``splits`` (default: main models, training and test), over the images every model scores.
    Returns :data:`DECISION_COLUMNS`, models in the order given then ``all``, ``none``."""
    pred = check_predictions(predictions)
    task = task_of(pred, task)
    models = models_present(pred, task, models)
    splits = splits_present(pred, task, splits)
    out = []
    for split in splits:
        wide = None
        for m in models:
            d = select_rows(pred, task, split, m)[["patient_id", "image_id", LABEL, "probability"]]
            d = d.rename(columns={"probability": m})
            wide = d if wide is None else wide.merge(d, on=["patient_id", "image_id", LABEL], how="inner")
        if wide is None or wide.empty:
            continue
        dc = metrics.decision_curve(wide[LABEL].to_numpy(), {m: wide[m].to_numpy() for m in models},
                                    thresholds=thresholds)
        out.append(dc.assign(task=task, split=split))
    return _concat(out, DECISION_COLUMNS)


def _concat(parts: list, columns: Sequence[str]) -> pd.DataFrame:
    """The parts (DataFrames) as one table with ``columns`` in that order (empty with those columns)."""
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(columns))
    return df[list(columns)]


def calibration_row(y, p, groups, validation: bool, n_boot: int = CURVE_N_BOOT, seed: int = 0,
                    knots: int = CURVE_KNOTS) -> tuple[dict, pd.DataFrame]:
    """Every calibration number of one model on one data set, and its smoothed curve, from :mod:`usrad.metrics`.

    ``groups`` (patient IDs) make every interval patient-level: calibration intercept and slope with
    cluster-robust CIs (:func:`usrad.metrics.calibration_intercept_slope`), the observed prevalence with the
    design-effect Wilson CI, the curve's band from a patient bootstrap (:func:`usrad.metrics.smoothed_calibration`).
    ``validation``: the predictions were not fitted on these rows (cv, test, external) — Hosmer–Lemeshow df = g;
    ``False`` for apparent (training) predictions, df = g − 2. Returns ``(row, curve)``: ``row`` holds the
    :data:`CALIBRATION_COLUMNS` after ``split``; ``curve`` is ``p_grid, observed, lower, upper``.
    """
    y, p = np.asarray(y), np.asarray(p, dtype=float)
    g = None if groups is None else np.asarray(groups).astype(str)
    cal = metrics.calibration_intercept_slope(y, p, groups=g)
    hl = metrics.hosmer_lemeshow(y, p, g=HL_GROUPS, validation=bool(validation))
    deff = 1.0 if g is None else metrics.design_effect(y, g)
    obs_lo, obs_hi = metrics.wilson_ci(int(np.sum(y)), len(y), deff=None if g is None else deff)
    curve = metrics.smoothed_calibration(y, p, groups=g, n_boot=n_boot, seed=seed, knots=knots)
    row = {"validation": bool(validation), "n": len(y), "n_patients": len(np.unique(g)) if g is not None else len(y),
           "n_pos": int(np.sum(y)), "mean_predicted": float(np.mean(p)), "observed": float(np.mean(y)),
           "observed_low": obs_lo, "observed_high": obs_hi,
           **{k: cal[k] for k in ("intercept", "intercept_low", "intercept_high", "intercept_p", "slope",
                                  "slope_low", "slope_high", "slope_p", "cov_type")},
           "brier": metrics.brier_score(y, p), "hl_statistic": hl["statistic"], "hl_df": hl["df"],
           "hl_p": hl["p_value"], "hl_groups": HL_GROUPS, "curve_method": curve.attrs["method"],
           "curve_knots_logit": ";".join(repr(float(k)) for k in curve.attrs["knots"]),
           "curve_n_boot": curve.attrs["n_boot"], "curve_n_failed": curve.attrs["n_failed"]}
    return row, curve[["p_grid", "observed", "lower", "upper"]].reset_index(drop=True)


def calibration_tables(predictions: pd.DataFrame, stem=None, models: Sequence[str] | None = None,
                       splits: Sequence[str] = ALL_SPLITS, n_boot: int = CURVE_N_BOOT, seed: int = 0,
                       knots: int = CURVE_KNOTS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The calibration table and the smoothed-curve table of every (task, model, split present), from
    :func:`calibration_row` with ``groups`` = ``patient_id`` and ``validation`` = split is not ``train``.

    Returns ``(calibration, curve)`` with :data:`CALIBRATION_COLUMNS` / :data:`CURVE_COLUMNS`; with ``stem``
    writes ``<stem>.tsv`` and ``<stem>_curve.tsv``. :func:`usrad.reporting.calibration.calibration_figure` draws
    these tables.
    """
    pred = check_predictions(predictions)
    rows, curves = [], []
    for task in sorted(pred["task"].unique()):
        for model in models_present(pred, task, models):
            for split in [s for s in ALL_SPLITS if s in splits]:
                d = select_rows(pred, task, split, model)
                if d.empty:
                    continue
                row, curve = calibration_row(d[LABEL].to_numpy(), d["probability"].to_numpy(),
                                             d["patient_id"].to_numpy(), validation=split != "train",
                                             n_boot=n_boot, seed=seed, knots=knots)
                rows.append({"task": task, "model": model, "split": split, **row})
                curves.append(curve.assign(task=task, model=model, split=split))
    cal = pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))
    curve = _concat(curves, CURVE_COLUMNS)
    if stem is not None:
        write_table(cal, stem)
        write_table(curve, Path(stem).with_name(Path(stem).name + "_curve"))
    return cal, curve
