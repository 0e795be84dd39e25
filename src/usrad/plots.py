"""The paper's figures and tables, drawn from results tables only (never from models or images).

Every number shown comes from :mod:`usrad.metrics`; this module only arranges and draws. Each figure
function takes DataFrames (or arrays) plus an output path *stem*, writes ``<stem>.png`` (300 dpi) and
``<stem>.pdf``, and returns the data it plotted as a DataFrame, so tests (and readers) can check that
what is on the page is what the metrics module computed.

Journal layout: widths are single column (89 mm) or double column (183 mm); every text is ≥ 7 pt
(DejaVu Sans, TrueType-embedded in the PDF); colours are the Okabe–Ito and Paul Tol "muted" colour-blind
safe palettes, one fixed colour per model (:data:`MODEL_COLOURS`) in every figure. Figures are built on
:class:`matplotlib.figure.Figure` (Agg canvas, no pyplot global state), with no timestamps in the files,
so the same inputs always give byte-identical PNG and PDF files.

Inputs
- *predictions*: one row per image × model × split, columns ``patient_id, image_id, task, split``
  (``train``/``test``), ``model``, ``probability`` and the outcome ``y`` (0/1, :data:`LABEL`); optional
  ``rad_score``. Models: ``clinical``, ``radiomics`` (rad-score logistic), ``combined`` (nomogram),
  classifiers ``lr, svm, rf, xgb, knn, nb, mlp``, maybe ``best_combined``.
- *thresholds*: ``{model: threshold}`` or ``{(task, model): threshold}``, fixed on the training data.

Public API
- Figures: :func:`roc_figure`, :func:`forest_figure`, :func:`calibration_figure`,
  :func:`decision_curve_figure`, :func:`radscore_figure`, :func:`confusion_figure`, :func:`icc_figure`,
  :func:`lasso_cv_figure`, :func:`lasso_path_figure`, :func:`flow_figure`, :func:`shap_figure`,
  :func:`nomogram_figure` (with :class:`Nomogram`, :class:`NomogramVariable`); :func:`roc_band`.
- Tables: :func:`table1` (baseline characteristics, train vs test, with p-values),
  :func:`performance_tables` (Table 3, from :func:`usrad.metrics.performance_table`) and
  :func:`format_performance` (its paper text), :func:`calibration_tables` (calibration numbers and smoothed
  curves, which :func:`calibration_figure` draws), :func:`write_table` (deterministic TSV).
- Patient level: every interval and test gets ``groups`` = ``patient_id`` (a patient's images are not
  independent cases); Hosmer–Lemeshow gets ``validation`` = split is not ``train``.
- Plumbing: :func:`check_predictions`, :func:`save_figure` (refuses text < 7 pt and widths other than
  89/183 mm via :func:`check_layout`), :data:`MODEL_COLOURS`, :data:`MODEL_LABELS`.
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from scipy import stats

from . import metrics
from .atomic import write_tsv
from .errors import Problem, UsradError
from .nomogram import Nomogram

#: Outcome column of the predictions table.
LABEL = "y"
SPLITS = ("train", "test")
#: Every split value the predictions table may hold (``cv``: out-of-fold on the training rows).
ALL_SPLITS = ("cv", "train", "test", "external")
SPLIT_TITLES = {"cv": "Training set (cross-validated)", "train": "Training set", "test": "Test set",
                "external": "External test set"}
#: Main models, in display order. ``models.py`` names them ``clinical, radscore, nomogram, combined``
#: (combined = best combined classifier); the older names ``radiomics``/``best_combined`` work too.
BASE_MODELS = ("clinical", "radscore", "radiomics", "nomogram", "combined")
CLASSIFIERS = ("lr", "svm", "rf", "xgb", "knn", "nb", "mlp")
PREDICTION_COLUMNS = ("patient_id", "image_id", "task", "split", "model", "probability", LABEL)

MM = 1 / 25.4
SINGLE = 89 * MM   # inches
DOUBLE = 183 * MM
DPI = 300
MIN_FONT_PT = 7

#: One colour per model, the same in every figure (Okabe–Ito for the three main models, Tol muted for
#: the classifiers); unknown models get the remaining Tol colours in order of appearance.
MODEL_COLOURS = {
    "clinical": "#0072B2", "radiomics": "#D55E00", "radscore": "#D55E00", "nomogram": "#009E73",
    "combined": "#CC79A7", "best_combined": "#CC79A7",
    "lr": "#332288", "svm": "#88CCEE", "rf": "#117733", "xgb": "#CC6677", "knn": "#DDCC77",
    "nb": "#AA4499", "mlp": "#44AA99",
}
_SPARE_COLOURS = ("#882255", "#999933", "#E69F00", "#56B4E9", "#000000")
MODEL_LABELS = {
    "clinical": "Clinical", "radiomics": "Rad-score", "radscore": "Rad-score", "nomogram": "Nomogram",
    "combined": "Combined", "best_combined": "Best combined", "lr": "LR", "svm": "SVM", "rf": "RF", "xgb": "XGBoost",
    "knn": "KNN", "nb": "Naive Bayes", "mlp": "MLP",
}
SPLIT_COLOURS = {"cv": "#E69F00", "train": "#7F7F7F", "test": "#0072B2", "external": "#D55E00"}
_SPLIT_MARKERS = {"cv": "D", "train": "o", "test": "s", "external": "^"}
CLASS_COLOURS = {0: "#0072B2", 1: "#D55E00"}

RC = {
    "font.family": "DejaVu Sans",
    "font.size": 7, "axes.titlesize": 8, "axes.labelsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7, "figure.titlesize": 8,
    "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6,
    "xtick.major.size": 2.5, "ytick.major.size": 2.5, "lines.linewidth": 1.0, "lines.markersize": 3,
    "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
    "pdf.fonttype": 42, "ps.fonttype": 42, "svg.hashsalt": "usrad", "savefig.dpi": DPI,
    "path.simplify": False,
}


def model_colour(model: str) -> str:
    if model in MODEL_COLOURS:
        return MODEL_COLOURS[model]
    return _SPARE_COLOURS[sum(map(ord, model)) % len(_SPARE_COLOURS)]


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


# --------------------------------------------------------------------------------------------------
# figure and table plumbing
# --------------------------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(w_pad=2 * MM, h_pad=2 * MM, wspace=0.04, hspace=0.04)
    return fig


def check_layout(fig: Figure) -> None:
    """Raise ``ValueError`` unless the figure is 89 or 183 mm wide and every visible text is ≥ 7 pt."""
    width_mm = fig.get_figwidth() / MM
    if min(abs(width_mm - 89), abs(width_mm - 183)) > 0.5:
        raise ValueError(f"figure is {width_mm:.1f} mm wide; journals take 89 (single) or 183 mm (double)")
    from matplotlib.text import Text
    small = [t.get_text() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text() and t.get_fontsize() < MIN_FONT_PT - 1e-9]
    if small:
        raise ValueError(f"{len(small)} text(s) below {MIN_FONT_PT} pt, e.g. {small[:3]}")


def save_figure(fig: Figure, stem) -> tuple[Path, Path]:
    """Check the layout (:func:`check_layout`), then write ``<stem>.png`` (300 dpi) and ``<stem>.pdf``
    without timestamps; return both paths."""
    check_layout(fig)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    with matplotlib.rc_context(RC):
        fig.savefig(png, dpi=DPI, metadata={"Software": None})
        fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    return png, pdf


def write_table(df: pd.DataFrame, stem) -> Path:
    """Write ``<stem>.tsv``: tab-separated, no index, ``\\n`` line ends, empty for NaN, floats as repr.

    The same DataFrame always gives the same bytes.
    """
    stem = Path(stem)
    return write_tsv(df, stem.with_name(stem.name + ".tsv"))


def _styled(fn):
    """Run a drawing function under the module's rcParams (fonts, line widths)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return fn(*args, **kwargs)
    return wrapper


def _fmt_ci(est: float, lo: float, hi: float, digits: int = 3) -> str:
    return f"{est:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "NA"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# --------------------------------------------------------------------------------------------------
# predictions table access
# --------------------------------------------------------------------------------------------------
def check_predictions(predictions: pd.DataFrame, file: str | None = None) -> pd.DataFrame:
    """The predictions table with checked columns and types, or :class:`UsradError` listing problems."""
    problems = [Problem("required column is missing"
                        + (" (attach the outcome with plots.attach_outcome)" if c == LABEL else ""),
                        column=c, file=file)
                for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if problems:
        raise UsradError("Predictions table is not usable", problems)
    df = predictions.copy()
    df["patient_id"] = df["patient_id"].astype(str)
    df["image_id"] = df["image_id"].astype(str)
    bad_split = ~df["split"].isin(ALL_SPLITS)
    for _, r in df[bad_split].head(10).iterrows():
        problems.append(Problem(f"split must be one of {list(ALL_SPLITS)}, got {r['split']!r}",
                                patient=r["patient_id"], column="split", file=file))
    prob = pd.to_numeric(df["probability"], errors="coerce")
    bad_p = ~prob.between(0, 1)
    for _, r in df[bad_p].head(10).iterrows():
        problems.append(Problem(f"probability must be in [0, 1], got {r['probability']!r} (model {r['model']})",
                                patient=r["patient_id"], column="probability", file=file))
    yy = pd.to_numeric(df[LABEL], errors="coerce")
    bad_y = ~yy.isin((0, 1))
    for _, r in df[bad_y].head(10).iterrows():
        problems.append(Problem(f"outcome must be 0/1, got {r[LABEL]!r}", patient=r["patient_id"],
                                column=LABEL, file=file))
    if problems:
        raise UsradError("Predictions table is not usable", problems)
    df["probability"] = prob.astype(float)
    df[LABEL] = yy.astype(int)
    return df


def _select(pred: pd.DataFrame, task: str | None, split: str, model: str) -> pd.DataFrame:
    sel = pred[(pred["split"] == split) & (pred["model"] == model)]
    if task is not None:
        sel = sel[sel["task"] == task]
    return sel.sort_values(["patient_id", "image_id"], kind="mergesort")


def _models_present(pred: pd.DataFrame, task, models) -> list[str]:
    """``models`` checked against the table; ``None``: every model; ``BASE_MODELS``: the main ones present."""
    avail = set(pred.loc[pred["task"] == task, "model"]) if task is not None else set(pred["model"])
    if models is None:
        order = list(BASE_MODELS) + ["best_combined"] + list(CLASSIFIERS)
        extra = sorted(avail - set(order))
        return [m for m in order if m in avail] + extra
    if tuple(models) == BASE_MODELS:
        present = [m for m in BASE_MODELS if m in avail]
        if not present:
            raise UsradError(f"Predictions table has none of the main models for task {task!r}",
                             [Problem(f"expected some of {list(BASE_MODELS)}, found {sorted(avail)}", column="model")])
        return present
    missing = [m for m in models if m not in avail]
    if missing:
        raise UsradError(f"Predictions table has no rows for some models of task {task!r}",
                         [Problem(f"model {m!r} not found", column="model") for m in missing])
    return list(models)


def _task_of(pred: pd.DataFrame, task: str | None) -> str | None:
    tasks = sorted(pred["task"].unique())
    if task is None:
        if len(tasks) > 1:
            raise UsradError("Predictions table holds several tasks; say which one to plot",
                             [Problem(f"tasks present: {tasks}", column="task")])
        return tasks[0] if tasks else None
    if task not in tasks:
        raise UsradError(f"Predictions table has no rows for task {task!r}",
                         [Problem(f"tasks present: {tasks}", column="task")])
    return task


def _splits_present(pred: pd.DataFrame, task, splits) -> list[str]:
    avail = set(pred.loc[pred["task"] == task, "split"]) if task is not None else set(pred["split"])
    bad = [s for s in splits if s not in ALL_SPLITS]
    if bad:
        raise UsradError("Unknown split requested", [Problem(f"split {s!r} is not one of {list(ALL_SPLITS)}",
                                                             column="split") for s in bad])
    out = [s for s in splits if s in avail]
    if not out:
        raise UsradError(f"Predictions table has none of the splits {list(splits)} for task {task!r}",
                         [Problem(f"splits present: {sorted(avail)}", column="split")])
    return out


def attach_outcome(predictions: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """Add the outcome column ``y`` to a predictions table from ``outcomes`` (``image_id``, optional
    ``task``, and ``y``), joined on ``image_id`` (and ``task`` when both have it). Rows without an outcome
    are a :class:`UsradError` naming patient and image."""
    keys = ["image_id"] + (["task"] if "task" in outcomes.columns and "task" in predictions.columns else [])
    missing = [c for c in keys + [LABEL] if c not in outcomes.columns]
    if missing:
        raise UsradError("Outcome table is not usable", [Problem("required column is missing", column=c)
                                                         for c in missing])
    o = outcomes[keys + [LABEL]].assign(image_id=outcomes["image_id"].astype(str)).drop_duplicates(keys)
    out = predictions.drop(columns=[LABEL], errors="ignore").assign(
        image_id=predictions["image_id"].astype(str)).merge(o, on=keys, how="left", validate="many_to_one")
    lost = out[out[LABEL].isna()]
    if len(lost):
        raise UsradError(f"{len(lost)} prediction(s) have no outcome", [
            Problem(f"no outcome for image {r['image_id']!r}", patient=str(r["patient_id"]), column=LABEL)
            for _, r in lost.head(10).iterrows()])
    return out


def _threshold(thresholds: Mapping, task, model) -> float:
    if (task, model) in thresholds:
        return float(thresholds[(task, model)])
    if model in thresholds:
        return float(thresholds[model])
    raise UsradError("No threshold for a model", [Problem(
        f"thresholds has no entry for model {model!r} (task {task!r}); thresholds are fixed on training data",
        column="model")])


# --------------------------------------------------------------------------------------------------
# ROC curves with bootstrap bands
# --------------------------------------------------------------------------------------------------
FPR_GRID = np.linspace(0, 1, 101)


def _roc_points(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Empirical ROC (positive iff p >= t), optionally with case weights ``w`` (B, n) → (B, k) arrays.

    The per-score-level positive and negative weights of all B resamples are one sparse product each (no
    loop over resamples); with count weights the sums are exact, as with a per-resample ``np.bincount``.
    """
    import scipy.sparse

    levels, inv = np.unique(p, return_inverse=True)
    ww = np.ones((1, len(p))) if w is None else np.asarray(w, dtype=float)
    onehot = scipy.sparse.csr_matrix((np.ones(len(p)), (np.arange(len(p)), inv)), shape=(len(p), len(levels)))
    pos = np.asarray((onehot.T @ (ww * y).T).T)
    neg = np.asarray((onehot.T @ (ww * (1 - y)).T).T)
    # thresholds from high to low: cumulative counts of p >= level
    tp = np.cumsum(pos[:, ::-1], axis=1)
    fp = np.cumsum(neg[:, ::-1], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tp / tp[:, -1:]
        fpr = fp / fp[:, -1:]
    zeros = np.zeros((ww.shape[0], 1))
    return np.hstack([zeros, fpr]), np.hstack([zeros, tpr])


def _tpr_on_grid(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Upper ROC envelope (max TPR) at each grid FPR, per row.

    A loop over rows on purpose: one ``np.interp`` + ``searchsorted`` per resample costs ~30 µs, and the
    vectorised alternatives measured (a rows × points × grid comparison, one lexsort merging all rows with the
    grid) were 1.5–2× slower on the demo's 2,000 resamples.
    """
    out = np.empty((fpr.shape[0], len(grid)))
    for b in range(fpr.shape[0]):
        # for a vertical step the TPR at that FPR is the highest one reached
        out[b] = np.interp(grid, fpr[b], tpr[b], left=0.0, right=1.0)
        idx = np.searchsorted(fpr[b], grid, side="right") - 1
        out[b] = np.maximum(out[b], tpr[b][np.clip(idx, 0, fpr.shape[1] - 1)])
    return out


def roc_band(y, p, groups=None, n_boot: int = 2000, seed: int = 0, level: float = metrics.LEVEL,
             grid: np.ndarray = FPR_GRID) -> pd.DataFrame:
    """Pointwise percentile band of the ROC curve (TPR at fixed FPRs) over bootstrap resamples.

    The resamples are exactly those of :func:`usrad.metrics.bootstrap_auc` (same seed, stratified, by
    patient when ``groups`` is given), so band and AUC interval come from the same draws.
    Returns ``fpr, tpr_low, tpr_high`` on ``grid``.
    """
    y, p = metrics._check_yp(y, p)
    g = metrics._check_groups(groups, len(y))
    w = metrics._image_weights(y, g, n_boot, seed)
    fpr, tpr = _roc_points(y, p, w)
    ok = np.isfinite(tpr[:, -1]) & np.isfinite(fpr[:, -1])
    on_grid = _tpr_on_grid(fpr[ok], tpr[ok], grid)
    a = (1 - level) / 2
    lo, hi = np.quantile(on_grid, [a, 1 - a], axis=0)
    return pd.DataFrame({"fpr": grid, "tpr_low": lo, "tpr_high": hi})


@_styled
def roc_figure(predictions: pd.DataFrame, stem, task: str | None = None, models: Sequence[str] = BASE_MODELS,
               splits: Sequence[str] = SPLITS, n_boot: int = 2000, seed: int = 0,
               title: str | None = None) -> pd.DataFrame:
    """ROC curves of ``models``, one panel per split (default training and test), with 95% bootstrap bands.

    Legend entries read ``Model  AUC 0.812 (0.751–0.866)``: AUC and the patient-level stratified
    bootstrap CI of :func:`usrad.metrics.bootstrap_auc`. Returns one row per (split, model): ``n, n_pos,
    auc, low, high, label`` (``label`` is the exact legend text).
    """
    pred = check_predictions(predictions)
    task = _task_of(pred, task)
    models = _models_present(pred, task, models)
    splits = _splits_present(pred, task, splits)
    wide = len(splits) <= 2
    fig = _figure(DOUBLE, 95 * MM if wide else (60 + 4 * len(models)) * MM)
    axes = np.atleast_1d(fig.subplots(1, len(splits)))
    rows = []
    for ax, split in zip(axes, splits):
        ax.plot([0, 1], [0, 1], ls=":", lw=0.7, color="#7F7F7F", zorder=1)
        for i, m in enumerate(models):
            d = _select(pred, task, split, m)
            if d.empty:
                continue
            y, p, g = d[LABEL].to_numpy(), d["probability"].to_numpy(), d["patient_id"].to_numpy()
            ci = metrics.bootstrap_auc(y, p, groups=g, n_boot=n_boot, seed=seed)
            band = roc_band(y, p, groups=g, n_boot=n_boot, seed=seed)
            fpr, tpr = _roc_points(y.astype(float), p)
            label = f"{model_label(m)}  AUC {_fmt_ci(ci['auc'], ci['low'], ci['high'])}"
            c = model_colour(m)
            ax.fill_between(band["fpr"], band["tpr_low"], band["tpr_high"], color=c, alpha=0.15, lw=0,
                            zorder=2 + i)
            ax.plot(fpr[0], tpr[0], color=c, lw=1.2, label=label, zorder=10 + i)
            rows.append({"split": split, "model": m, "n": len(y), "n_pos": int(y.sum()),
                         "n_patients": int(len(np.unique(g))), "auc": ci["auc"], "low": ci["low"],
                         "high": ci["high"], "label": label})
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 − Specificity", ylabel="Sensitivity",
               title=SPLIT_TITLES[split], aspect="equal")
        if wide:
            ax.legend(loc="lower right", handlelength=1.5, borderaxespad=0.3)
        else:  # narrow panels: legend underneath
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), handlelength=1.2)
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# forest plot of AUCs
# --------------------------------------------------------------------------------------------------
@_styled
def forest_figure(predictions: pd.DataFrame, stem, task: str | None = None, models: Sequence[str] | None = None,
                  splits: Sequence[str] = SPLITS, n_boot: int = 2000, seed: int = 0,
                  title: str | None = None) -> pd.DataFrame:
    """AUC with 95% bootstrap CI of every model (default: all in the table), one marker per split
    (training grey open circles, test blue squares, cross-validated orange, external vermillion).

    With one or two splits, right-hand columns print the numbers (with more they would not fit at 7 pt
    in 183 mm; Table 3 has them). Returns one row per (model, split): ``auc, low, high, row``
    (``row`` = vertical position, 0 at the top).
    """
    pred = check_predictions(predictions)
    task = _task_of(pred, task)
    models = _models_present(pred, task, models)
    splits = _splits_present(pred, task, splits)
    n, k = len(models), len(splits)
    with_text = k <= 2
    fig = _figure(DOUBLE, (22 + (3 + 2 * k) * n) * MM)
    if with_text:
        ax, tx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
    else:
        ax, tx = fig.subplots(), None
    rows = []
    offsets = dict(zip(splits, np.linspace(-0.17, 0.17, k) if k > 1 else [0.0]))
    markers = {s: dict(marker=_SPLIT_MARKERS[s], mfc="white" if s == "train" else SPLIT_COLOURS[s]) for s in splits}
    for r, m in enumerate(models):
        for split in splits:
            d = _select(pred, task, split, m)
            if d.empty:
                continue
            ci = metrics.bootstrap_auc(d[LABEL].to_numpy(), d["probability"].to_numpy(),
                                       groups=d["patient_id"].to_numpy(), n_boot=n_boot, seed=seed)
            yy = r + offsets[split]
            ax.errorbar(ci["auc"], yy, xerr=[[ci["auc"] - ci["low"]], [ci["high"] - ci["auc"]]],
                        color=SPLIT_COLOURS[split], mec=SPLIT_COLOURS[split], ms=4, lw=1, capsize=1.5,
                        label=SPLIT_TITLES[split] if r == 0 else None, **markers[split])
            rows.append({"model": m, "split": split, "auc": ci["auc"], "low": ci["low"], "high": ci["high"],
                         "row": r})
    data = pd.DataFrame(rows)
    lo = min(0.5, math.floor(data["low"].min() * 10) / 10) if len(data) else 0.5
    ax.axvline(0.5, ls=":", lw=0.7, color="#7F7F7F")
    ax.set(xlim=(lo - 0.02, 1.0), ylim=(n - 0.5, -0.5), yticks=range(n),
           yticklabels=[model_label(m) for m in models], xlabel="AUC (95% CI)")
    ax.legend(loc="lower left", ncols=k, bbox_to_anchor=(0, 1.0), borderaxespad=0.2, handletextpad=0.3)
    if with_text:
        tx.set_axis_off()
        tx.set(xlim=(0, 1), ylim=(n - 0.5, -0.5))
        for j, split in enumerate(splits):
            xpos = 0.02 + j / k
            tx.text(xpos, -0.5, f"{SPLIT_TITLES[split]}\nAUC (95% CI)", va="bottom", ha="left", fontweight="bold")
            for _, r in data[data["split"] == split].iterrows():
                tx.text(xpos, r["row"], _fmt_ci(r["auc"], r["low"], r["high"]), va="center", ha="left")
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return data


ABLATION_TITLES = {"shape": "Shape", "firstorder": "First-order", "texture": "Texture",
                   "filtered": "Filtered (LoG, wavelet)", "all": "All features"}


@_styled
def ablation_figure(ablation: pd.DataFrame, stem, title: str | None = None) -> None:
    """Feature-class ablation (:func:`usrad.models.feature_class_ablation`): AUC (95% CI) of the rad-score
    refitted on each feature class, one marker per split, with the number of selected/input features."""
    classes = [c for c in ABLATION_TITLES if c in set(ablation["feature_class"])]
    splits = [s for s in SPLITS if s in set(ablation["split"])]
    n, k = len(classes), len(splits)
    fig = _figure(SINGLE, (30 + (3 + 2 * k) * n) * MM)
    ax = fig.subplots()
    offsets = dict(zip(splits, np.linspace(-0.17, 0.17, k) if k > 1 else [0.0]))
    for r, cls in enumerate(classes):
        for split in splits:
            d = ablation[(ablation["feature_class"] == cls) & (ablation["split"] == split)]
            if d.empty:
                continue
            row = d.iloc[0]
            ax.errorbar(row["auc"], r + offsets[split], xerr=[[row["auc"] - row["auc_low"]],
                                                              [row["auc_high"] - row["auc"]]],
                        color=SPLIT_COLOURS[split], mec=SPLIT_COLOURS[split], ms=4, lw=1, capsize=1.5,
                        marker=_SPLIT_MARKERS[split], mfc="white" if split == "train" else SPLIT_COLOURS[split],
                        label=SPLIT_TITLES[split] if r == 0 else None)
    counts = ablation.drop_duplicates("feature_class").set_index("feature_class")
    labels = [f"{ABLATION_TITLES[c]}\n{int(counts.loc[c, 'n_selected'])} of {int(counts.loc[c, 'n_features'])} features"
              for c in classes]
    lo = min(0.5, math.floor(ablation["auc_low"].min() * 10) / 10)
    ax.axvline(0.5, ls=":", lw=0.7, color="#7F7F7F")
    ax.set(xlim=(lo - 0.02, 1.005), ylim=(n - 0.5, -0.5), yticks=range(n), yticklabels=labels,
           xlabel="AUC (95% CI) of the refitted rad-score")
    ax.legend(loc="lower left", ncols=k, bbox_to_anchor=(0, 1.0), borderaxespad=0.2, handletextpad=0.3)
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)


# --------------------------------------------------------------------------------------------------
# calibration: the tables (every number from usrad.metrics) and the figure drawn from them
# --------------------------------------------------------------------------------------------------
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
#: Split names in the calibration figure: the training panel shows apparent (in-sample) predictions.
SPLIT_TITLES_CALIBRATION = {**SPLIT_TITLES, "train": "Training set (apparent)"}


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
    writes ``<stem>.tsv`` and ``<stem>_curve.tsv``. :func:`calibration_figure` draws these tables.
    """
    pred = check_predictions(predictions)
    rows, curves = [], []
    for task in sorted(pred["task"].unique()):
        for model in _models_present(pred, task, models):
            for split in [s for s in ALL_SPLITS if s in splits]:
                d = _select(pred, task, split, model)
                if d.empty:
                    continue
                row, curve = calibration_row(d[LABEL].to_numpy(), d["probability"].to_numpy(),
                                             d["patient_id"].to_numpy(), validation=split != "train",
                                             n_boot=n_boot, seed=seed, knots=knots)
                rows.append({"task": task, "model": model, "split": split, **row})
                curves.append(curve.assign(task=task, model=model, split=split))
    cal = pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))
    curve = (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=list(CURVE_COLUMNS)))
    curve = curve[list(CURVE_COLUMNS)]
    if stem is not None:
        write_table(cal, stem)
        write_table(curve, Path(stem).with_name(Path(stem).name + "_curve"))
    return cal, curve


def _num(v, digits: int = 2) -> str:
    """A number for a figure: fixed digits (powers of ten from 1,000 on, e.g. the slope CI of a separated fit),
    typographic minus, ``NA`` when missing."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "NA"
    if not np.isfinite(x):
        return "NA"
    text = f"{x:.1e}".replace("e+0", "e").replace("e+", "e") if abs(x) >= 1000 else f"{x:.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")  # −0.004 is 0.00, not −0.00
    return text.replace("-", "−")


def _p_text(p) -> str:
    x = float(p) if p is not None and p != "" else float("nan")
    return "P NA" if not np.isfinite(x) else ("P < 0.001" if x < 0.001 else f"P = {x:.3f}")


#: The lines of numbers above each calibration panel, filled from one calibration-table row.
CALIBRATION_TEXT_LINES = (
    lambda r: f"{int(r['n_patients'])} patients, {int(r['n'])} images",
    lambda r: f"Intercept {_num(r['intercept'])} ({_num(r['intercept_low'])}, {_num(r['intercept_high'])})",
    lambda r: f"Slope {_num(r['slope'])} ({_num(r['slope_low'])}, {_num(r['slope_high'])})",
    lambda r: f"Mean risk {_num(r['mean_predicted'])}, observed {_num(r['observed'])}",
    lambda r: f"Brier {_num(r['brier'], 3)}, HL {_p_text(r['hl_p'])}",
)
_TEXT_LINE_PT = MIN_FONT_PT * 1.15 * 1.2  # height of one 7-pt line at line spacing 1.15 (DejaVu Sans)


def calibration_text(row: Mapping) -> str:
    """The numbers a calibration panel prints, from one calibration-table row (:data:`CALIBRATION_COLUMNS`)."""
    return "\n".join(line(row) for line in CALIBRATION_TEXT_LINES)


def _calibration_inputs(calibration: pd.DataFrame, curve: pd.DataFrame, task, models, splits):
    """Checked tables and the (model, split) panels to draw: UsradError naming what is missing."""
    problems = [Problem("required column is missing", column=c, file=name)
                for name, df, cols in (("calibration table", calibration, CALIBRATION_COLUMNS),
                                       ("calibration curve table", curve, CURVE_COLUMNS))
                for c in cols if c not in df.columns]
    if problems:
        raise UsradError("Calibration tables are not usable", problems)
    cal = calibration.assign(split=calibration["split"].astype(str), model=calibration["model"].astype(str))
    cur = curve.assign(split=curve["split"].astype(str), model=curve["model"].astype(str))
    try:  # the same checks as for a predictions table, reported as the calibration table's
        task = _task_of(cal, task)
        models = _models_present(cal, task, models)
        splits = _splits_present(cal, task, splits)
    except UsradError as exc:
        raise UsradError(exc.summary.replace("Predictions table", "Calibration table"), exc.problems) from None
    cal, cur = cal[cal["task"] == task], cur[cur["task"] == task]
    for m in models:
        for s in splits:
            n_rows = int(((cal["model"] == m) & (cal["split"] == s)).sum())
            n_pts = int(((cur["model"] == m) & (cur["split"] == s)).sum())
            if n_rows > 1 or (n_rows == 1 and n_pts < 2):
                problems.append(Problem(f"model {m!r}, split {s!r}: {n_rows} calibration row(s) and {n_pts} "
                                        "curve point(s); expected one row and at least two points", column="model"))
    if problems:
        raise UsradError("Calibration tables do not match", problems)
    return cal, cur, task, models, splits


#: Bins of the histogram of predicted probabilities under each calibration panel.
CALIBRATION_HIST_BINS = np.linspace(0, 1, 41)


def _histogram_counts(pred: pd.DataFrame, task, model: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images per probability bin: positive cases and negative cases (the raw predictions, no statistic)."""
    d = _select(pred, task, split, model)
    p, y = d["probability"].to_numpy(float), d[LABEL].to_numpy()
    return (np.histogram(p[y == 1], bins=CALIBRATION_HIST_BINS)[0],
            np.histogram(p[y == 0], bins=CALIBRATION_HIST_BINS)[0])


def _mirrored_histogram(hx, up: np.ndarray, down: np.ndarray) -> None:
    """Positive cases above the line, negative cases below it, scaled to the panel's largest bin (no y axis:
    the strip shows where the predictions lie; tick labels on every strip would narrow the panels)."""
    bins = CALIBRATION_HIST_BINS
    top = max(1, int(up.max(initial=0)), int(down.max(initial=0)))
    hx.bar(bins[:-1], up, width=np.diff(bins), align="edge", color="#4D4D4D", lw=0)
    hx.bar(bins[:-1], -down, width=np.diff(bins), align="edge", color="#B3B3B3", lw=0)
    hx.axhline(0, color="black", lw=0.4)
    hx.set_ylim(-top * 1.05, top * 1.05)
    hx.set_yticks([])
    for side in ("left", "bottom"):
        hx.spines[side].set_visible(False)


@_styled
def calibration_figure(calibration: pd.DataFrame, curve: pd.DataFrame, predictions: pd.DataFrame, stem,
                       task: str | None = None, models: Sequence[str] = BASE_MODELS,
                       splits: Sequence[str] = SPLITS, title: str | None = None) -> pd.DataFrame:
    """Smoothed calibration curves with their 95% bands, one panel per model and split, drawn from the tables.

    ``calibration`` and ``curve`` are the tables of :func:`calibration_tables` (as written to
    ``tables/calibration.tsv`` and ``tables/calibration_curve.tsv``): each panel draws that (model, split)'s
    curve and band and prints its row's numbers (:func:`calibration_text`: patients and images, calibration
    intercept and slope with 95% CIs, mean predicted risk and observed prevalence, Brier score, Hosmer–Lemeshow
    P). Nothing is computed here; ``predictions`` only give the mirrored histogram under each panel (positive
    cases up, negative cases down). Models across and splits down (transposed when there is one model).
    Returns one row per curve point drawn: ``split, model, p_grid, observed, lower, upper, text``.
    """
    cal, cur, task, models, splits = _calibration_inputs(calibration, curve, task, models, splits)
    pred = check_predictions(predictions)
    transpose = len(models) < len(splits)
    grid_rows, grid_cols = (models, splits) if transpose else (splits, models)
    width = DOUBLE if len(grid_cols) > 1 else SINGLE
    panel = min((width / MM - 14) / len(grid_cols), 60.0)  # curve panel height (mm), about square
    fig = _figure(width, (len(grid_rows) * (panel + 34) + 10) * MM)
    gs = fig.add_gridspec(2 * len(grid_rows), len(grid_cols), height_ratios=[panel, 9] * len(grid_rows))
    drawn = []
    for i, r in enumerate(grid_rows):
        cells = [(r, c) if transpose else (c, r) for c in grid_cols]  # (model, split) of each column
        for j, (m, s) in enumerate(cells):
            ax = fig.add_subplot(gs[2 * i, j])
            hx = fig.add_subplot(gs[2 * i + 1, j], sharex=ax)
            _calibration_panel(ax, cal, cur, m, s, drawn)
            _mirrored_histogram(hx, *_histogram_counts(pred, task, m, s))
            if i == 0:  # column heading above the numbers block (about _TEXT_LINE_PT per line)
                ax.set_title(SPLIT_TITLES_CALIBRATION[s] if transpose else model_label(m), loc="center",
                             fontweight="bold", pad=4 + _TEXT_LINE_PT * len(CALIBRATION_TEXT_LINES))
            if j == 0:
                side = model_label(m) if transpose else SPLIT_TITLES_CALIBRATION[s]
                ax.set_ylabel(f"{side}\nObserved proportion")
            else:
                ax.tick_params(labelleft=False)
            if i == len(grid_rows) - 1:
                hx.set_xlabel("Predicted probability")
    fig.legend(handles=_calibration_legend(), loc="outside lower center", ncols=3, handlelength=1.8)
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return pd.DataFrame(drawn, columns=["split", "model", "p_grid", "observed", "lower", "upper", "text"])


def _calibration_panel(ax, cal, cur, model, split, drawn: list) -> None:
    """One panel: ideal line, the table's curve and band, and the table's numbers above it."""
    ax.plot([0, 1], [0, 1], ls=":", lw=0.8, color="#7F7F7F", zorder=1)
    ticks = [0, 0.25, 0.5, 0.75, 1]
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.set_xticks(ticks, ["0", "0.25", "0.5", "0.75", "1"])
    ax.set_yticks(ticks, ["0", "0.25", "0.5", "0.75", "1"])
    ax.tick_params(labelbottom=False)
    row = cal[(cal["model"] == model) & (cal["split"] == split)]
    if row.empty:
        ax.text(0.5, 0.5, "no predictions", ha="center", va="center", transform=ax.transAxes)
        return
    pts = cur[(cur["model"] == model) & (cur["split"] == split)].sort_values("p_grid", kind="mergesort")
    x, obs = pts["p_grid"].to_numpy(float), pts["observed"].to_numpy(float)
    lo, hi = pts["lower"].to_numpy(float), pts["upper"].to_numpy(float)
    colour = model_colour(model)
    ax.fill_between(x, lo, hi, color=colour, alpha=0.22, lw=0, zorder=2)
    ax.plot(x, obs, color=colour, lw=1.3, zorder=3)
    if not np.isfinite(obs).any():  # e.g. perfectly separated apparent predictions: say so, not an empty panel
        ax.text(0.03, 0.97, "No smoothed curve:\nthe fit did not converge", ha="left", va="top",
                transform=ax.transAxes)
    text = calibration_text(row.iloc[0])
    ax.annotate(text, xy=(0, 1), xycoords="axes fraction", xytext=(0, 3), textcoords="offset points", ha="left",
                va="bottom", fontsize=MIN_FONT_PT, linespacing=1.15)
    drawn.extend({"split": split, "model": model, "p_grid": a, "observed": b, "lower": c, "upper": e, "text": text}
                 for a, b, c, e in zip(x, obs, lo, hi))


def _calibration_legend() -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # ncols=3 fills column by column: curves in the first row, the histogram's two classes in the second
    return [Line2D([], [], color="#4D4D4D", lw=1.3, label="Smoothed calibration curve (model colour)"),
            Patch(color="#4D4D4D", lw=0, label="Images of positive cases (histogram, up)"),
            Patch(color="#4D4D4D", alpha=0.22, lw=0, label="95% CI band (patient bootstrap)"),
            Patch(color="#B3B3B3", lw=0, label="Images of negative cases (down)"),
            Line2D([], [], color="#7F7F7F", ls=":", lw=0.8, label="Ideal (observed = predicted)")]


# --------------------------------------------------------------------------------------------------
# decision curves
# --------------------------------------------------------------------------------------------------
@_styled
def decision_curve_figure(predictions: pd.DataFrame, stem, task: str | None = None,
                          models: Sequence[str] = BASE_MODELS, splits: Sequence[str] = SPLITS,
                          thresholds: Sequence[float] = tuple(i / 100 for i in range(1, 81)),
                          title: str | None = None) -> pd.DataFrame:
    """Net benefit against threshold probability (:func:`usrad.metrics.decision_curve`), with
    treat-all and treat-none; one panel per split (default training and test). Returns the tidy dcurves rows plotted
    (``split, model, threshold, net_benefit``…)."""
    pred = check_predictions(predictions)
    task = _task_of(pred, task)
    models = _models_present(pred, task, models)
    splits = _splits_present(pred, task, splits)
    fig = _figure(DOUBLE, 80 * MM)
    axes = np.atleast_1d(fig.subplots(1, len(splits)))
    out = []
    for ax, split in zip(axes, splits):
        wide = None
        for m in models:
            d = _select(pred, task, split, m)[["patient_id", "image_id", LABEL, "probability"]]
            d = d.rename(columns={"probability": m})
            wide = d if wide is None else wide.merge(d, on=["patient_id", "image_id", LABEL], how="inner")
        if wide is None or wide.empty:
            continue
        dc = metrics.decision_curve(wide[LABEL].to_numpy(), {m: wide[m].to_numpy() for m in models},
                                    thresholds=thresholds)
        prev = float(wide[LABEL].mean())
        for name, g in dc.groupby("model", sort=False):
            if name == "all":
                ax.plot(g["threshold"], g["net_benefit"], color="#7F7F7F", lw=0.9, ls="--", label="Treat all")
            elif name == "none":
                ax.plot(g["threshold"], g["net_benefit"], color="#000000", lw=0.9, label="Treat none")
            else:
                ax.plot(g["threshold"], g["net_benefit"], color=model_colour(name), lw=1.2,
                        label=model_label(name))
        ax.set(xlim=(0, max(thresholds)), ylim=(-0.05, max(0.05, prev) * 1.1),
               xlabel="Threshold probability", ylabel="Net benefit", title=SPLIT_TITLES[split])
        ax.legend(loc="upper right", handlelength=1.8)
        out.append(dc.assign(split=split))
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    data = pd.concat(out, ignore_index=True)
    return data[["split", "model", "threshold", "net_benefit", "net_intervention_avoided", "prevalence", "n"]]


# --------------------------------------------------------------------------------------------------
# rad-score by class
# --------------------------------------------------------------------------------------------------
@_styled
def radscore_figure(predictions: pd.DataFrame, stem, task: str | None = None, model: str | None = None,
                    splits: Sequence[str] = SPLITS,
                    class_labels: Mapping[int, str] = {0: "Negative", 1: "Positive"}, seed: int = 0,
                    title: str | None = None) -> pd.DataFrame:
    """Rad-score of negative and positive cases, box plots with the points on top, training and test.

    Uses the ``rad_score`` column of ``model``'s rows (default ``radscore``, else ``radiomics``). The p-value is the two-sided Mann–Whitney U test.
    Returns one row per (split, class): ``n, median, q1, q3`` and the split's ``p_value``.
    """
    pred = check_predictions(predictions)
    task = _task_of(pred, task)
    if "rad_score" not in pred.columns:
        raise UsradError("Cannot draw the rad-score figure", [Problem("column is missing", column="rad_score")])
    if model is None:
        have = set(pred.loc[pred["task"] == task, "model"])
        model = "radscore" if "radscore" in have else "radiomics"
    _models_present(pred, task, [model])
    splits = _splits_present(pred, task, splits)
    rng = np.random.default_rng(seed)
    fig = _figure(SINGLE if len(splits) <= 2 else DOUBLE, 70 * MM)
    ax = fig.subplots()
    rows, ticks, ticklabels = [], [], []
    for j, split in enumerate(splits):
        d = _select(pred, task, split, model).dropna(subset=["rad_score"])
        if d.empty:
            continue
        vals = {c: d.loc[d[LABEL] == c, "rad_score"].to_numpy(float) for c in (0, 1)}
        pval = (stats.mannwhitneyu(vals[1], vals[0], alternative="two-sided").pvalue
                if len(vals[0]) and len(vals[1]) else float("nan"))
        for c in (0, 1):
            x = 3 * j + c
            v = vals[c]
            ax.boxplot([v], positions=[x], widths=0.6, showfliers=False, patch_artist=True,
                       boxprops=dict(facecolor="none", edgecolor=CLASS_COLOURS[c], lw=0.9),
                       medianprops=dict(color=CLASS_COLOURS[c], lw=1.2),
                       whiskerprops=dict(color=CLASS_COLOURS[c], lw=0.8),
                       capprops=dict(color=CLASS_COLOURS[c], lw=0.8))
            ax.scatter(x + rng.uniform(-0.22, 0.22, len(v)), v, s=2.5, color=CLASS_COLOURS[c], alpha=0.5,
                       lw=0, zorder=3)
            ticks.append(x)
            ticklabels.append(f"{class_labels[c]}\n(n={len(v)})")
            q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75]) if len(v) else (np.nan,) * 3
            rows.append({"split": split, "class": c, "n": len(v), "median": med, "q1": q1, "q3": q3,
                         "p_value": pval})
        ax.text(3 * j + 0.5, 1.0, f"{SPLIT_TITLES[split]}\nP {'=' if pval >= 0.001 else ''}{_fmt_p(pval)}",
                transform=ax.get_xaxis_transform(), ha="center", va="bottom")
    ax.set_xticks(ticks, ticklabels)
    ax.set(ylabel="Rad-score", xlim=(-0.7, 3 * len(splits) - 1.3))
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# confusion matrices
# --------------------------------------------------------------------------------------------------
@_styled
def confusion_figure(predictions: pd.DataFrame, thresholds: Mapping, stem, task: str | None = None,
                     models: Sequence[str] = BASE_MODELS, splits: Sequence[str] = SPLITS,
                     class_labels: Mapping[int, str] = {0: "Negative", 1: "Positive"},
                     title: str | None = None) -> pd.DataFrame:
    """Confusion matrices at each model's fixed (training) threshold: rows = split, columns = model.

    Cells show the count and the row percentage (of the true class). Returns one row per (split, model):
    ``threshold, tn, fp, fn, tp`` from :func:`usrad.metrics.confusion`.
    """
    pred = check_predictions(predictions)
    task = _task_of(pred, task)
    models = _models_present(pred, task, models)
    splits = _splits_present(pred, task, splits)
    ncol = len(models)
    per_row = min(56.0, 150 / ncol + 4) if ncol > 2 else 44.0
    fig = _figure(DOUBLE if ncol > 2 else SINGLE, (per_row * len(splits)) * MM)
    axes = fig.subplots(len(splits), ncol, squeeze=False)
    from matplotlib.colors import LinearSegmentedColormap
    cmap = LinearSegmentedColormap.from_list("usrad_blues", ["#FFFFFF", "#0072B2"])
    rows = []
    for i, split in enumerate(splits):
        for j, m in enumerate(models):
            ax = axes[i, j]
            d = _select(pred, task, split, m)
            t = _threshold(thresholds, task, m)
            c = metrics.confusion(d[LABEL].to_numpy(), d["probability"].to_numpy(), t)
            mat = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]], dtype=float)
            frac = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
            ax.imshow(frac, cmap=cmap, vmin=0, vmax=1)
            for a in range(2):
                for b in range(2):
                    ax.text(b, a, f"{int(mat[a, b])}\n({100 * frac[a, b]:.0f}%)", ha="center", va="center",
                            color="white" if frac[a, b] > 0.6 else "black")
            ax.set_xticks([0, 1], [class_labels[0], class_labels[1]])
            ax.set_yticks([0, 1], [class_labels[0], class_labels[1]])
            ax.tick_params(length=0)
            for s in ax.spines.values():
                s.set_visible(False)
            if i == len(splits) - 1:
                ax.set_xlabel("Predicted")
            if j == 0:
                ax.set_ylabel(f"{SPLIT_TITLES[split]}\nTrue")
            if i == 0:
                ax.set_title(f"{model_label(m)}\n(threshold {t:.3f})")
            rows.append({"split": split, "model": m, "threshold": t, **c})
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return pd.DataFrame(rows)[["split", "model", "threshold", "tn", "fp", "fn", "tp"]]


# --------------------------------------------------------------------------------------------------
# ICC distribution
# --------------------------------------------------------------------------------------------------
def _feature_class(name: str) -> str:
    parts = str(name).split("_", 2)
    return parts[1] if len(parts) == 3 else "other"


@_styled
def icc_figure(icc_table: pd.DataFrame, stem, threshold: float = 0.75, title: str | None = None) -> pd.DataFrame:
    """Histogram of per-feature ICC (table ``feature, icc``) with the threshold line, and per feature class
    (PyRadiomics class: ``firstorder``, ``glcm``…) the number of features kept (ICC ≥ threshold) and
    dropped (below, or NaN). Returns one row per class: ``n_features, n_kept, n_dropped, n_nan``
    plus a ``total`` row."""
    missing = [c for c in ("feature", "icc") if c not in icc_table.columns]
    if missing:
        raise UsradError("ICC table is not usable", [Problem("required column is missing", column=c)
                                                     for c in missing])
    df = pd.DataFrame({"feature": icc_table["feature"].astype(str),
                       "icc": pd.to_numeric(icc_table["icc"], errors="coerce")})
    df["cls"] = df["feature"].map(_feature_class)
    df["kept"] = df["icc"] >= threshold
    summary = (df.groupby("cls").agg(n_features=("feature", "size"), n_kept=("kept", "sum"),
                                     n_nan=("icc", lambda s: int(s.isna().sum())))
               .reset_index().rename(columns={"cls": "feature_class"}))
    summary["n_dropped"] = summary["n_features"] - summary["n_kept"]
    summary = summary.sort_values(["n_features", "feature_class"], ascending=[True, True], kind="mergesort")
    total = pd.DataFrame([{"feature_class": "total", "n_features": len(df), "n_kept": int(df["kept"].sum()),
                           "n_nan": int(df["icc"].isna().sum()),
                           "n_dropped": int(len(df) - df["kept"].sum())}])

    fig = _figure(DOUBLE, 70 * MM)
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    finite = df["icc"].dropna().to_numpy()
    lo = min(0.0, math.floor(finite.min() * 10) / 10) if len(finite) else 0.0
    bins = np.arange(lo, 1.0 + 1e-9, 0.025)
    ax.hist(finite[finite < threshold], bins=bins, color="#D55E00", alpha=0.85, label=f"ICC < {threshold:g}")
    n_k, n_all = int(total["n_kept"].iloc[0]), len(df)
    ax.hist(finite[finite >= threshold], bins=bins, color="#0072B2", alpha=0.85,
            label=f"ICC ≥ {threshold:g}: kept {n_k}/{n_all} ({100 * n_k / max(n_all, 1):.0f}%)")
    ax.axvline(threshold, color="black", ls="--", lw=0.8)
    ax.set(xlabel="Intraclass correlation coefficient", ylabel="Number of features", xlim=(lo, 1.0))
    ax.legend(loc="upper left")
    if int(total["n_nan"].iloc[0]):
        ax.text(0.02, 0.75, f"{int(total['n_nan'].iloc[0])} with undefined ICC (dropped)",
                transform=ax.transAxes, ha="left")
    ypos = np.arange(len(summary))
    bx.barh(ypos, summary["n_kept"], color="#0072B2", label="Kept")
    bx.barh(ypos, summary["n_dropped"], left=summary["n_kept"], color="#D55E00", label="Dropped")
    for yv, (_, r) in zip(ypos, summary.iterrows()):
        bx.text(r["n_features"], yv, f" {int(r['n_kept'])}/{int(r['n_features'])}", va="center", ha="left")
    bx.set_yticks(ypos, summary["feature_class"])
    bx.set(xlabel="Number of features", xlim=(0, summary["n_features"].max() * 1.25 if len(summary) else 1))
    bx.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    out = pd.concat([summary, total], ignore_index=True)
    return out[["feature_class", "n_features", "n_kept", "n_dropped", "n_nan"]]


# --------------------------------------------------------------------------------------------------
# LASSO
# --------------------------------------------------------------------------------------------------
_X_COLUMNS = {"log_lambda": ("log λ", False), "log_C": ("log C", False),
              "lambda": ("λ (log scale)", True), "C": ("C (log scale)", True)}
_Y_COLUMNS = {"mean_auc": "Cross-validated AUC", "auc": "Cross-validated AUC",
              "deviance": "Binomial deviance", "mean_deviance": "Binomial deviance"}


def _pick(df: pd.DataFrame, options, what: str) -> str:
    for c in options:
        if c in df.columns:
            return c
    raise UsradError(f"LASSO table has no {what} column",
                     [Problem(f"expected one of {list(options)}; got {list(df.columns)}", column=what)])


@_styled
def lasso_cv_figure(cv_table: pd.DataFrame, stem, title: str | None = None) -> pd.DataFrame:
    """Cross-validation curve of the LASSO penalty: mean ± SD of the CV score per penalty value, the
    selected value marked (column ``selected``). Columns: one of ``log_lambda, log_C, lambda, C``; one of
    ``mean_auc, auc, deviance, mean_deviance``; ``sd``; ``selected``; optional ``n_features`` (printed
    along the top). Returns the plotted table sorted by the penalty column."""
    xcol = _pick(cv_table, _X_COLUMNS, "penalty")
    ycol = _pick(cv_table, _Y_COLUMNS, "score")
    _pick(cv_table, ["sd"], "sd")
    _pick(cv_table, ["selected"], "selected")
    df = cv_table.sort_values(xcol, kind="mergesort").reset_index(drop=True)
    sel = df[df["selected"].astype(bool)]
    if len(sel) != 1:
        raise UsradError("LASSO CV table must flag exactly one selected penalty",
                         [Problem(f"{len(sel)} rows have selected = true", column="selected")])
    xlabel, logx = _X_COLUMNS[xcol]
    fig = _figure(SINGLE, 68 * MM)
    ax = fig.subplots()
    ax.errorbar(df[xcol], df[ycol], yerr=df["sd"], fmt="o", color="#D55E00", ms=2.5, elinewidth=0.6,
                ecolor="#7F7F7F", capsize=1)
    if logx:
        ax.set_xscale("log")
    ax.axvline(float(sel[xcol].iloc[0]), color="black", ls="--", lw=0.8)
    ax.set(xlabel=xlabel, ylabel=_Y_COLUMNS[ycol])
    if "n_features" in df.columns:
        top = ax.secondary_xaxis("top")
        idx = np.unique(np.linspace(0, len(df) - 1, min(len(df), 8)).round().astype(int))
        top.set_xticks(df[xcol].iloc[idx].to_numpy(float), [str(int(v)) for v in df["n_features"].iloc[idx]])
        top.set_xlabel("Number of non-zero coefficients")
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return df


@_styled
def lasso_path_figure(path_table: pd.DataFrame, stem, selected: float | None = None, max_labels: int = 10,
                      title: str | None = None) -> pd.DataFrame:
    """Coefficient paths of the LASSO: coefficient of each feature against the penalty.

    ``path_table`` is long (``<penalty>, feature, coefficient``) or wide (``<penalty>`` plus one column per
    feature); the penalty column is one of ``log_lambda, log_C, lambda, C``. Features non-zero at
    ``selected`` are coloured and named (at most ``max_labels``, by |coefficient|), the others grey.
    Returns the long table with a ``highlighted`` flag.
    """
    xcol = _pick(path_table, _X_COLUMNS, "penalty")
    if {"feature", "coefficient"} <= set(path_table.columns):
        long = path_table[[xcol, "feature", "coefficient"]].copy()
    else:
        long = path_table.melt(id_vars=[xcol], var_name="feature", value_name="coefficient")
    long["feature"] = long["feature"].astype(str)
    long = long.sort_values(["feature", xcol], kind="mergesort").reset_index(drop=True)
    xlabel, logx = _X_COLUMNS[xcol]
    xs = np.sort(long[xcol].unique())
    if selected is None:
        selected = float(xs[len(xs) // 2])
    nearest = xs[np.argmin(np.abs(xs - selected))]
    at_sel = long[long[xcol] == nearest].set_index("feature")["coefficient"]
    nz = at_sel[at_sel != 0].abs().sort_values(ascending=False, kind="mergesort")
    highlight = list(nz.index[:max_labels])
    long["highlighted"] = long["feature"].isin(highlight)
    palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#332288", "#882255",
               "#117733", "#999933"]
    fig = _figure(DOUBLE, 75 * MM)
    ax = fig.subplots()
    for f, g in long.groupby("feature", sort=True):
        if f not in highlight:
            ax.plot(g[xcol], g["coefficient"], color="#BBBBBB", lw=0.6, zorder=1)
    for k, f in enumerate(highlight):
        g = long[long["feature"] == f]
        ax.plot(g[xcol], g["coefficient"], color=palette[k % len(palette)], lw=1.1, zorder=2,
                label=_short_feature(f))
    if logx:
        ax.set_xscale("log")
    ax.axvline(selected, color="black", ls="--", lw=0.8)
    ax.axhline(0, color="#7F7F7F", lw=0.5)
    ax.set(xlabel=xlabel, ylabel="Coefficient")
    if highlight:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), handlelength=1.2,
                  title=(f"Non-zero at selection ({len(nz)})" if len(nz) <= max_labels
                         else f"Largest {len(highlight)} of {len(nz)}\nnon-zero at selection"))
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return long


def _short_feature(name: str, width: int = 40) -> str:
    """PyRadiomics name shortened for a legend: ``wavelet-LH_glcm_Contrast`` → ``wavelet-LH glcm Contrast``."""
    s = str(name).replace("_", " ")
    return s if len(s) <= width else s[: width - 1] + "…"


# --------------------------------------------------------------------------------------------------
# cohort flow diagram
# --------------------------------------------------------------------------------------------------
@_styled
def flow_figure(split_table: pd.DataFrame, stem, exclusions: Sequence[tuple[str, int]] = (),
                class_labels: Mapping[int, str] = {0: "Negative", 1: "Positive"},
                title: str | None = None) -> pd.DataFrame:
    """Cohort flow: included patients/images, optional exclusions, and training/test counts by class.

    ``split_table``: one row per image (or patient) with ``patient_id, split, y``. A patient is positive
    if any of their images is. Returns counts per split (``patients, images, positive, negative``) with an
    ``all`` row.
    """
    missing = [c for c in ("patient_id", "split", LABEL) if c not in split_table.columns]
    if missing:
        raise UsradError("Split table is not usable", [Problem("required column is missing", column=c)
                                                        for c in missing])
    df = split_table.assign(patient_id=split_table["patient_id"].astype(str))
    leaks = df.groupby("patient_id")["split"].nunique()
    if (leaks > 1).any():
        raise UsradError("A patient is in both training and test sets",
                         [Problem("images in both splits", patient=p, column="split")
                          for p in leaks[leaks > 1].index[:10]])
    other = sorted(set(df["split"]) - set(SPLITS))
    if other:
        raise UsradError("The flow diagram draws a training and a test set only",
                         [Problem(f"unexpected split value {o!r}", column="split") for o in other])
    pat = df.groupby("patient_id").agg(split=("split", "first"), y=(LABEL, "max"))
    rows = []
    for split in ("all",) + SPLITS:
        pp = pat if split == "all" else pat[pat["split"] == split]
        ii = df if split == "all" else df[df["split"] == split]
        rows.append({"split": split, "patients": len(pp), "images": len(ii), "positive": int(pp["y"].sum()),
                     "negative": int((pp["y"] == 0).sum())})
    counts = pd.DataFrame(rows)
    c = counts.set_index("split")
    n_excl = int(sum(n for _, n in exclusions))

    # layout in millimetres, top to bottom; the figure is as tall as its content
    line, pad, gap = 3.3, 2.2, 6.0
    W = 89.0

    def h(n_lines):
        return n_lines * line + 2 * pad

    items = []  # (kind, x_centre, y_top, width, n_lines, text)
    y = 7.0 if title else 2.0
    main_x = W / 2
    if exclusions:
        import textwrap
        excl_lines = [f"Excluded (n = {n_excl})"]
        for reason, n in exclusions:
            excl_lines += textwrap.wrap(f"• {reason}: {n}", 30, subsequent_indent="   ")
        enrolled = int(c.loc["all", "patients"]) + n_excl
        top_x = 22.0
        items.append(("box", top_x, y, 40.0, 2, f"Assessed for eligibility\nn = {enrolled} patients"))
        y_line_top = y + h(2)
        y += h(2) + gap / 2
        items.append(("box_left", 47.0, y, 40.0, len(excl_lines), "\n".join(excl_lines)))
        y_arrow = y + h(len(excl_lines)) / 2
        y += h(len(excl_lines)) + gap / 2
        items.append(("varrow", top_x, y_line_top, 0, 0, y))
        items.append(("harrow", top_x, y_arrow, 47.0, 0, ""))
    items.append(("box", main_x, y, 74.0, 2,
                  f"Included: {c.loc['all', 'patients']} patients, {c.loc['all', 'images']} images\n"
                  f"{class_labels[1]} {c.loc['all', 'positive']} / {class_labels[0]} {c.loc['all', 'negative']}"))
    y_inc_bottom = y + h(2)
    y = y_inc_bottom + gap * 1.3
    fork = y_inc_bottom + gap * 0.6
    for x, split in ((22.5, "train"), (66.5, "test")):
        r = c.loc[split]
        pct = 100 * r["positive"] / max(r["patients"], 1)
        items.append(("box", x, y, 41.0, 5, f"{SPLIT_TITLES[split]}\n{r['patients']} patients\n{r['images']} images\n"
                                              f"{class_labels[1]} {r['positive']} ({pct:.0f}%)\n"
                                              f"{class_labels[0]} {r['negative']}"))
    H = y + h(5) + 2.0

    fig = Figure(figsize=(W * MM, H * MM), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set(xlim=(0, W), ylim=(H, 0))
    kw = dict(color="black", lw=0.7)
    arrow_kw = dict(arrowstyle="-|>", lw=0.7, color="black", shrinkA=0, shrinkB=0, mutation_scale=6)
    for kind, x, yt, w, n, text in items:
        if kind in ("box", "box_left"):
            x0 = x - w / 2 if kind == "box" else x
            ax.add_patch(FancyBboxPatch((x0, yt), w, h(n), boxstyle="round,pad=0,rounding_size=1.2",
                                        fc="white", ec="black", lw=0.7))
            ax.text(x if kind == "box" else x0 + pad, yt + h(n) / 2, text, ha="center" if kind == "box" else "left",
                    va="center", linespacing=1.3, ma="center" if kind == "box" else "left")
        elif kind == "varrow":
            ax.annotate("", xy=(x, text), xytext=(x, yt), arrowprops=arrow_kw)
        elif kind == "harrow":
            ax.annotate("", xy=(w, yt), xytext=(x, yt), arrowprops=arrow_kw)
    # fork from the included box to the two split boxes
    ax.plot([main_x, main_x], [y_inc_bottom, fork], **kw)
    ax.plot([22.5, 66.5], [fork, fork], **kw)
    for x in (22.5, 66.5):
        ax.annotate("", xy=(x, y), xytext=(x, fork), arrowprops=arrow_kw)
    if title:
        ax.text(W / 2, 1.0, title, ha="center", va="top", fontsize=8)
    save_figure(fig, stem)
    return counts


# --------------------------------------------------------------------------------------------------
# SHAP beeswarm
# --------------------------------------------------------------------------------------------------
def _beeswarm_offsets(values: np.ndarray, n_bins: int = 100, width: float = 0.38) -> np.ndarray:
    """Vertical offsets that spread points with similar SHAP values (shap's own binning scheme)."""
    n = len(values)
    if n == 0:
        return np.zeros(0)
    span = values.max() - values.min()
    q = np.round(n_bins * (values - values.min()) / (span + 1e-12))
    order = np.lexsort((np.arange(n), q))
    offsets = np.zeros(n)
    layer, last = 0, None
    for i in order:
        if q[i] != last:
            layer, last = 0, q[i]
        offsets[i] = math.ceil(layer / 2) * (1 if layer % 2 == 0 else -1)
        layer += 1
    m = np.abs(offsets).max()
    return offsets * (width / m) if m > 0 else offsets


@_styled
def shap_figure(shap_values, feature_values, feature_names: Sequence[str], stem, max_display: int = 15,
                title: str | None = None) -> pd.DataFrame:
    """SHAP summary (beeswarm): one row per feature, ordered by mean |SHAP|, each point one case coloured
    by its feature value (5th–95th percentile, viridis). Arrays are ``(n_cases, n_features)`` as computed
    by the ``shap`` package. Returns ``feature, mean_abs_shap, rank`` for all features (rank 1 = top)."""
    sv = np.asarray(shap_values, dtype=float)
    fv = np.asarray(feature_values, dtype=float)
    names = [str(f) for f in feature_names]
    problems = []
    if sv.ndim != 2 or sv.shape != fv.shape:
        problems.append(Problem(f"SHAP values {sv.shape} and feature values {fv.shape} must be the same 2-D shape"))
    elif sv.shape[1] != len(names):
        problems.append(Problem(f"{sv.shape[1]} SHAP columns but {len(names)} feature names"))
    if problems:
        raise UsradError("Cannot draw the SHAP summary", problems)
    imp = np.abs(sv).mean(axis=0)
    order = np.lexsort((np.arange(len(imp)), -imp))
    ranking = pd.DataFrame({"feature": [names[i] for i in order], "mean_abs_shap": imp[order],
                            "rank": np.arange(1, len(order) + 1)})
    shown = order[:max_display]
    k = len(shown)
    fig = _figure(DOUBLE, (20 + 6.5 * k) * MM)
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis"]
    ax.axvline(0, color="#7F7F7F", lw=0.6, zorder=0)
    sc = None
    for r, j in enumerate(shown):
        x, v = sv[:, j], fv[:, j]
        lo, hi = np.nanpercentile(v, [5, 95]) if np.isfinite(v).any() else (0.0, 1.0)
        if hi <= lo:
            lo, hi = np.nanmin(v), np.nanmax(v)
        cv = np.clip((v - lo) / (hi - lo), 0, 1) if hi > lo else np.full_like(v, 0.5)
        yy = r + _beeswarm_offsets(x)
        nan = ~np.isfinite(cv)
        ax.scatter(x[nan], yy[nan], s=3, color="#999999", lw=0, zorder=2)
        sc = ax.scatter(x[~nan], yy[~nan], s=3, c=cv[~nan], cmap=cmap, vmin=0, vmax=1, lw=0, zorder=3,
                        rasterized=True)
    ax.set_yticks(range(k), [_short_feature(names[j], 45) for j in shown])
    ax.set(ylim=(k - 0.5, -0.5), xlabel="SHAP value (impact on model output)")
    ax.spines["left"].set_visible(False)
    ax.tick_params(axis="y", length=0)
    if sc is not None:
        cb = fig.colorbar(sc, ax=ax, ticks=[0, 1], aspect=30, fraction=0.04, pad=0.02)
        cb.ax.set_yticklabels(["Low", "High"])
        cb.set_label("Feature value", labelpad=-6)
        cb.outline.set_visible(False)
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return ranking


# --------------------------------------------------------------------------------------------------
# nomogram
# --------------------------------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, n: int = 6) -> np.ndarray:
    """Round tick values inside [lo, hi], about ``n`` intervals, at least two ticks."""
    from matplotlib.ticker import MaxNLocator
    for k in range(max(1, n), max(1, n) + 10):
        t = MaxNLocator(nbins=k, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        t = t[(t >= lo - 1e-9) & (t <= hi + 1e-9)]
        if len(t) >= 2:
            return t
    return np.array([lo, hi])


def _num_label(v: float) -> str:
    return f"{v:g}".replace("-", "\u2212")


@_styled
def nomogram_figure(intercept: float, variables: Sequence, stem, outcome_label: str = "Risk of metastasis",
                    probabilities: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
                    title: str | None = None) -> tuple[pd.DataFrame, Nomogram]:
    """Draw the nomogram of a logistic model (:class:`Nomogram`; ``variables`` are
    :class:`NomogramVariable` or dicts with the same keys).

    Rows: Points (0–100), one scale per variable, Total points, and the probability axis. Returns
    ``(scales, nomogram)``; ``scales`` has one row per drawn tick: ``axis, value, points, x`` where ``x`` is
    the horizontal position (0–1) on the page (for the probability axis ``points`` is total points) —
    the test reads a patient's points off these scales and checks the probability.
    """
    nomo = Nomogram(intercept, list(variables))
    total_max = nomo.total_range()
    rows = []
    # what to draw, row by row: (label, [(x, text, above)], (x_start, x_end), minor ticks)
    spec = []
    pts = np.arange(0, nomo.max_points + 1e-9, 10)
    spec.append(("Points", [(p / nomo.max_points, _num_label(p), True) for p in pts], (0.0, 1.0),
                 np.arange(0, 100.01, 2) / 100))
    rows += [{"axis": "Points", "value": p, "points": p, "x": p / nomo.max_points} for p in pts]
    for v in nomo.variables:
        if v.categorical:
            levs = list(v.levels)
            p_l = [nomo.points(v, lv) for lv in levs]
            order = np.argsort(p_l, kind="mergesort")
            above = [True] * len(levs)
            for a, b in zip(order[:-1], order[1:]):  # crowded neighbours: alternate above / below
                if abs(p_l[b] - p_l[a]) < 7 and above[a]:
                    above[b] = False
            xs = [p / nomo.max_points for p in p_l]
            spec.append((v.label or v.name, [(x, str(lv), up) for x, lv, up in zip(xs, levs, above)],
                         (min(xs), max(xs)), ()))
            rows += [{"axis": v.name, "value": lv, "points": p, "x": x} for lv, p, x in zip(levs, p_l, xs)]
        else:
            span_points = nomo.points(v, v.range[1]) - nomo.points(v, v.range[0])
            n_int = int(np.clip(abs(span_points) / 12, 1, 8))
            ticks = np.asarray(v.ticks if v.ticks is not None else _nice_ticks(*v.range, n=n_int), dtype=float)
            ticks = ticks[(ticks >= v.range[0]) & (ticks <= v.range[1])]
            ends = sorted(nomo.points(v, e) / nomo.max_points for e in v.range)
            short = ends[1] - ends[0] < 0.08  # a variable with a small effect: its scale is a few points long
            if len(ticks) < 2 or short:  # label the two ends of the range instead
                ticks = np.asarray(v.range, dtype=float)
            p_t = [nomo.points(v, t) for t in ticks]
            xs = [p / nomo.max_points for p in p_t]
            above = [True, False] if short else [True] * len(ticks)  # short: one label above, one below
            spec.append((v.label or v.name, [(x, _num_label(t), up) for x, t, up in zip(xs, ticks, above)],
                         tuple(ends), ()))
            rows += [{"axis": v.name, "value": float(t), "points": p, "x": x} for t, p, x in zip(ticks, p_t, xs)]
    tt = _nice_ticks(0, total_max, 10)
    spec.append(("Total points", [(t / total_max, _num_label(t), True) for t in tt], (0.0, 1.0), ()))
    rows += [{"axis": "Total points", "value": float(t), "points": float(t), "x": float(t / total_max)} for t in tt]
    lo_p, hi_p = nomo.probability(0.0), nomo.probability(total_max)
    shown = [p for p in probabilities if lo_p <= p <= hi_p]
    tp = [nomo.total_for_probability(p) for p in shown]
    xs = [t / total_max for t in tp]
    spec.append((outcome_label, [(x, f"{p:g}", True) for x, p in zip(xs, shown)],
                 (min(xs), max(xs)) if xs else (0.0, 0.0), ()))
    rows += [{"axis": "Probability", "value": p, "points": t, "x": t / total_max} for p, t in zip(shown, tp)]

    # vertical layout: 1 unit per row, more below a row whose labels hang under the line
    ys, y = [], 0.0
    for _, ticks, _, _ in spec:
        ys.append(y)
        y += 1.0 + (0.45 if any(not up for _, _, up in ticks) else 0.0)
    height_units = ys[-1] + 1.0
    fig = _figure(DOUBLE, (12 + 9.5 * height_units) * MM)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set(xlim=(-0.3, 1.03), ylim=(ys[-1] + 0.45, -0.75))
    for (label, ticks, (x0, x1), minor), r in zip(spec, ys):
        ax.text(-0.3, r, label, ha="left", va="center", fontweight="bold")
        if x1 > x0:
            ax.plot([x0, x1], [r, r], color="black", lw=0.7, solid_capstyle="butt")
        for x, text, up in ticks:
            ax.plot([x, x], [r, r - 0.18 if up else r + 0.18], color="black", lw=0.7)
            ax.text(x, r - 0.24 if up else r + 0.24, text, ha="center", va="bottom" if up else "top")
        for x in minor:
            ax.plot([x, x], [r, r - 0.09], color="black", lw=0.5)
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return pd.DataFrame(rows), nomo


# --------------------------------------------------------------------------------------------------
# Table 1: baseline characteristics, training vs test
# --------------------------------------------------------------------------------------------------
NON_CLINICAL = ("patient_id", "image_id", "image", "mask", "mask_reader2", "pixel_spacing_mm", "split",
                "reader")


def _is_categorical(s: pd.Series, max_levels: int = 5) -> bool:
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return True
    v = s.dropna()
    return v.nunique() <= max_levels and np.all(np.equal(np.mod(v, 1), 0))


def table1(cohort: pd.DataFrame, split, stem=None, variables: Sequence[str] | None = None,
           categorical: Sequence[str] | None = None, labels: Mapping[str, str] | None = None,
           normality_alpha: float = 0.05) -> pd.DataFrame:
    """Baseline characteristics of the training and the test patients, with p-values.

    ``cohort``: the cohort table (one row per image; reduced to the first row per patient).
    ``split``: a Series/dict ``patient_id → 'train'/'test'`` or a DataFrame with ``patient_id, split``.
    Continuous variables: mean ± SD and Welch's t-test when both groups pass Shapiro–Wilk at
    ``normality_alpha``, otherwise median [IQR] and the Mann–Whitney U test. Categorical (non-numeric, or
    ≤ 5 integer values, or listed in ``categorical``): n (%) per level (natural order: 3, 4a, 4b, 5) and
    the χ² test, or Fisher's exact test when an expected count is < 5 (2×2 exact, larger tables Monte
    Carlo with a fixed seed). Missing values are counted in a ``Missing`` row and excluded from tests.
    Columns: ``variable, level, overall (n=…), train (n=…), test (n=…), p`` (text), ``test_used``,
    ``p_value`` (number). Writes ``<stem>.tsv`` when ``stem`` is given.
    """
    if isinstance(split, pd.DataFrame):
        split = split.assign(patient_id=split["patient_id"].astype(str)).drop_duplicates("patient_id") \
            .set_index("patient_id")["split"]
    split = pd.Series(split)
    split.index = split.index.astype(str)
    pat = cohort.assign(patient_id=cohort["patient_id"].astype(str)).drop_duplicates("patient_id", keep="first")
    problems = [Problem("patient has no split", patient=p, column="split")
                for p in pat.loc[~pat["patient_id"].isin(split.index), "patient_id"].head(10)]
    bad = split[~split.isin(SPLITS)]
    problems += [Problem(f"split must be 'train' or 'test', got {s!r}", patient=p, column="split")
                 for p, s in bad.head(10).items()]
    if problems:
        raise UsradError("Cannot build Table 1", problems)
    pat = pat.assign(split=pat["patient_id"].map(split))
    if variables is None:
        variables = [c for c in cohort.columns if c not in NON_CLINICAL]
    missing = [v for v in variables if v not in pat.columns]
    if missing:
        raise UsradError("Cannot build Table 1", [Problem("column not in the cohort table", column=m)
                                                  for m in missing])
    categorical = set(categorical or ())
    labels = dict(labels or {})
    groups = {"train": pat[pat["split"] == "train"], "test": pat[pat["split"] == "test"]}
    n_all, n_tr, n_te = len(pat), len(groups["train"]), len(groups["test"])
    rows = [{"variable": "Patients, n", "level": "", "overall": str(n_all), "train": str(n_tr),
             "test": str(n_te), "p_value": np.nan, "test_used": ""}]
    for var in variables:
        s = pat[var]
        name = labels.get(var, var)
        if var in categorical or _is_categorical(s):
            s_str = s.map(lambda v: np.nan if pd.isna(v) else (str(int(v)) if isinstance(v, (float, np.floating))
                                                               and float(v).is_integer() else str(v)))
            levels = sorted(s_str.dropna().unique(), key=_natural_key)
            tab = pd.crosstab(s_str, pat["split"]).reindex(index=levels, columns=list(SPLITS), fill_value=0)
            pval, used = _categorical_test(tab.to_numpy())
            rows.append({"variable": name, "level": "", "overall": "", "train": "", "test": "",
                         "p_value": pval, "test_used": used})
            for lev in levels:
                r = {"variable": name, "level": lev, "p_value": np.nan, "test_used": ""}
                for key, g in (("overall", pat), ("train", groups["train"]), ("test", groups["test"])):
                    ss = s_str[g.index]
                    k, n = int((ss == lev).sum()), int(ss.notna().sum())
                    r[key] = f"{k} ({100 * k / n:.1f}%)" if n else "0"
                rows.append(r)
        else:
            x = {k: pd.to_numeric(g[var], errors="coerce").dropna().to_numpy(float) for k, g in groups.items()}
            xa = pd.to_numeric(s, errors="coerce").dropna().to_numpy(float)
            normal = all(len(v) >= 3 and stats.shapiro(v).pvalue >= normality_alpha for v in x.values())
            if len(x["train"]) < 2 or len(x["test"]) < 2:
                pval, used = np.nan, ""
            elif normal:
                pval, used = float(stats.ttest_ind(x["train"], x["test"], equal_var=False).pvalue), "Welch t"
            else:
                pval, used = float(stats.mannwhitneyu(x["train"], x["test"]).pvalue), "Mann-Whitney U"

            def desc(v):
                if not len(v):
                    return ""
                if normal:
                    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"
                q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
                return f"{med:.2f} [{q1:.2f}, {q3:.2f}]"
            stat_name = "mean ± SD" if normal else "median [IQR]"
            rows.append({"variable": name, "level": stat_name, "overall": desc(xa), "train": desc(x["train"]),
                         "test": desc(x["test"]), "p_value": pval, "test_used": used})
        n_miss = {k: int(g[var].isna().sum()) for k, g in (("overall", pat), *groups.items())}
        if n_miss["overall"]:
            rows.append({"variable": name, "level": "Missing", **{k: str(v) for k, v in n_miss.items()},
                         "p_value": np.nan, "test_used": ""})
    out = pd.DataFrame(rows)
    out["p"] = [_fmt_p(v) if np.isfinite(v) else "" for v in out["p_value"]]
    out = out[["variable", "level", "overall", "train", "test", "p", "test_used", "p_value"]]
    out = out.rename(columns={"overall": f"overall (n={n_all})", "train": f"train (n={n_tr})",
                              "test": f"test (n={n_te})"})
    if stem is not None:
        write_table(out, stem)
    return out


def _natural_key(x: str) -> tuple:
    """``'3' < '4a' < '4b' < '5' < '10'``: digit runs compare as numbers."""
    return tuple(int(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+)", str(x))))


def _categorical_test(tab: np.ndarray) -> tuple[float, str]:
    tab = tab[tab.sum(axis=1) > 0][:, tab.sum(axis=0) > 0]
    if tab.shape[0] < 2 or tab.shape[1] < 2:
        return float("nan"), ""
    expected = stats.contingency.expected_freq(tab)
    if (expected < 5).any():
        if tab.shape == (2, 2):
            return float(stats.fisher_exact(tab).pvalue), "Fisher exact"
        res = stats.fisher_exact(tab, method=stats.MonteCarloMethod(n_resamples=20000,
                                                                     rng=np.random.default_rng(0)))
        return float(res.pvalue), "Fisher exact (Monte Carlo)"
    return float(stats.chi2_contingency(tab, correction=False).pvalue), "Chi-squared"


# --------------------------------------------------------------------------------------------------
# Table 3: performance of every model, task and split
# --------------------------------------------------------------------------------------------------
def performance_tables(predictions: pd.DataFrame, thresholds: Mapping, stem=None, n_boot: int = 2000,
                       seed: int = 0) -> pd.DataFrame:
    """One row per (task, model, split present: cv, train, test, external) from :func:`usrad.metrics.performance_table`
    at each model's fixed training threshold, with ``groups`` = ``patient_id`` (every interval patient-level: patient
    bootstrap for AUC and F1, clustered DeLong, design-effect Wilson, cluster-robust calibration CIs) and
    ``validation`` = split is not ``train`` (Hosmer–Lemeshow df = g on cv/test/external, g − 2 on the apparent
    training predictions). Writes
    ``<stem>.tsv`` (all numbers) when ``stem`` is given; :func:`format_performance` makes the
    paper-ready text version."""
    pred = check_predictions(predictions)
    rows = []
    for task in sorted(pred["task"].unique()):
        for model in _models_present(pred, task, None):
            t = _threshold(thresholds, task, model)
            for split in ALL_SPLITS:
                d = _select(pred, task, split, model)
                if d.empty:
                    continue
                row = metrics.performance_table(d[LABEL].to_numpy(), d["probability"].to_numpy(), t,
                                                groups=d["patient_id"].to_numpy(), n_boot=n_boot, seed=seed,
                                                validation=split != "train")
                rows.append({"task": task, "model": model, "split": split, **row})
    out = pd.DataFrame(rows)
    if stem is not None:
        write_table(out, stem)
    return out


def format_performance(perf: pd.DataFrame, stem=None, digits: int = 3) -> pd.DataFrame:
    """Paper Table 3 text: ``AUC (95% CI)``, sensitivity, specificity, accuracy, PPV, NPV, F1 with CIs."""
    cols = [("AUC (95% CI)", "auc", "auc_boot_low", "auc_boot_high")] + [
        (f"{m.upper() if m in ('ppv', 'npv') else m.capitalize()} (95% CI)", m, f"{m}_low", f"{m}_high")
        for m in ("sensitivity", "specificity", "accuracy", "ppv", "npv", "f1")]
    out = perf[["task", "model", "split"]].copy()
    out["model"] = out["model"].map(model_label)
    for title, e, lo, hi in cols:
        out[title] = [_fmt_ci(a, b, c, digits) for a, b, c in zip(perf[e], perf[lo], perf[hi])]
    out["Brier"] = perf["brier"].map(lambda v: f"{v:.{digits}f}")
    out["Threshold"] = perf["threshold"].map(lambda v: f"{v:.{digits}f}")
    if stem is not None:
        write_table(out, stem)
    return out
