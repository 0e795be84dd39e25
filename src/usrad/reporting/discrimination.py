"""Discrimination figures: ROC curves with patient-level bootstrap bands (:func:`roc_figure`,
:func:`roc_band`), the AUC forest plot (:func:`forest_figure`) and the feature-class ablation
(:func:`ablation_figure`). Every number comes from :mod:`usrad.metrics`; each figure returns what it drew.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import metrics
from .predictions import check_predictions, models_present, select_rows, splits_present, task_of
from .style import (
    BASE_MODELS, DOUBLE, LABEL, MM, SINGLE, SPLITS, SPLIT_COLOURS, SPLIT_MARKERS, SPLIT_TITLES, fmt_ci,
    model_colour, model_label, new_figure, save_figure, styled
)


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
    y, p = metrics.check_yp(y, p)
    g = metrics.check_groups(groups, len(y))
    w = metrics.image_weights(y, g, n_boot, seed)
    fpr, tpr = _roc_points(y, p, w)
    ok = np.isfinite(tpr[:, -1]) & np.isfinite(fpr[:, -1])
    on_grid = _tpr_on_grid(fpr[ok], tpr[ok], grid)
    a = (1 - level) / 2
    lo, hi = np.quantile(on_grid, [a, 1 - a], axis=0)
    return pd.DataFrame({"fpr": grid, "tpr_low": lo, "tpr_high": hi})


@styled
def roc_figure(predictions: pd.DataFrame, stem, task: str | None = None, models: Sequence[str] = BASE_MODELS,
               splits: Sequence[str] = SPLITS, n_boot: int = 2000, seed: int = 0,
               title: str | None = None) -> pd.DataFrame:
    """ROC curves of ``models``, one panel per split (default training and test), with 95% bootstrap bands.

    Legend entries read ``Model  AUC 0.812 (0.751–0.866)``: AUC and the patient-level stratified
    bootstrap CI of :func:`usrad.metrics.bootstrap_auc`. Returns one row per (split, model): ``n, n_pos,
    auc, low, high, label`` (``label`` is the exact legend text).
    """
    pred = check_predictions(predictions)
    task = task_of(pred, task)
    models = models_present(pred, task, models)
    splits = splits_present(pred, task, splits)
    wide = len(splits) <= 2
    fig = new_figure(DOUBLE, 95 * MM if wide else (60 + 4 * len(models)) * MM)
    axes = np.atleast_1d(fig.subplots(1, len(splits)))
    rows = []
    for ax, split in zip(axes, splits):
        ax.plot([0, 1], [0, 1], ls=":", lw=0.7, color="#7F7F7F", zorder=1)
        for i, m in enumerate(models):
            d = select_rows(pred, task, split, m)
            if d.empty:
                continue
            y, p, g = d[LABEL].to_numpy(), d["probability"].to_numpy(), d["patient_id"].to_numpy()
            ci = metrics.bootstrap_auc(y, p, groups=g, n_boot=n_boot, seed=seed)
            band = roc_band(y, p, groups=g, n_boot=n_boot, seed=seed)
            fpr, tpr = _roc_points(y.astype(float), p)
            label = f"{model_label(m)}  AUC {fmt_ci(ci['auc'], ci['low'], ci['high'])}"
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


@styled
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
    task = task_of(pred, task)
    models = models_present(pred, task, models)
    splits = splits_present(pred, task, splits)
    n, k = len(models), len(splits)
    with_text = k <= 2
    fig = new_figure(DOUBLE, (22 + (3 + 2 * k) * n) * MM)
    if with_text:
        ax, tx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
    else:
        ax, tx = fig.subplots(), None
    rows = []
    offsets = dict(zip(splits, np.linspace(-0.17, 0.17, k) if k > 1 else [0.0]))
    markers = {s: dict(marker=SPLIT_MARKERS[s], mfc="white" if s == "train" else SPLIT_COLOURS[s]) for s in splits}
    for r, m in enumerate(models):
        for split in splits:
            d = select_rows(pred, task, split, m)
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
                tx.text(xpos, r["row"], fmt_ci(r["auc"], r["low"], r["high"]), va="center", ha="left")
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return data


ABLATION_TITLES = {"shape": "Shape", "firstorder": "First-order", "texture": "Texture",
                   "filtered": "Filtered (LoG, wavelet)", "all": "All features"}


@styled
def ablation_figure(ablation: pd.DataFrame, stem, title: str | None = None) -> None:
    """Feature-class ablation (:func:`usrad.models.feature_class_ablation`): AUC (95% CI) of the rad-score
    refitted on each feature class, one marker per split, with the number of selected/input features."""
    classes = [c for c in ABLATION_TITLES if c in set(ablation["feature_class"])]
    splits = [s for s in SPLITS if s in set(ablation["split"])]
    n, k = len(classes), len(splits)
    fig = new_figure(SINGLE, (30 + (3 + 2 * k) * n) * MM)
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
                        marker=SPLIT_MARKERS[split], mfc="white" if split == "train" else SPLIT_COLOURS[split],
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
