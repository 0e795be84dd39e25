"""ROC curves: the empirical curve (:func:`roc_curve`) and its pointwise patient-level bootstrap band
(:func:`roc_band`), from the same resamples as :func:`usrad.metrics.bootstrap_auc`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse

from .bootstrap import image_weights
from .checks import LEVEL, check_groups, check_yp

#: False-positive rates at which :func:`roc_band` gives the band.
FPR_GRID = np.linspace(0, 1, 101)


def roc_points(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Empirical ROC (positive iff p >= t), optionally with case weights ``w`` (B, n) → (B, k) arrays.

    The per-score-level positive and negative weights of all B resamples are one sparse product each (no
    loop over resamples); with count weights the sums are exact, as with a per-resample ``np.bincount``.
    """
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


def tpr_on_grid(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
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


def roc_curve(y, p) -> pd.DataFrame:
    """The empirical ROC curve: ``fpr, tpr`` from (0, 0) through every score level, high to low (positive iff
    ``p >= threshold``), to (1, 1)."""
    y, p = check_yp(y, p)
    fpr, tpr = roc_points(y.astype(float), p)
    return pd.DataFrame({"fpr": fpr[0], "tpr": tpr[0]})


def roc_band(y, p, groups=None, n_boot: int = 2000, seed: int = 0, level: float = LEVEL,
             grid: np.ndarray = FPR_GRID) -> pd.DataFrame:
    """Pointwise percentile band of the ROC curve (TPR at fixed FPRs) over bootstrap resamples.

    The resamples are exactly those of :func:`usrad.metrics.bootstrap_auc` (same seed, stratified, by
    patient when ``groups`` is given), so band and AUC interval come from the same draws.
    Returns ``fpr, tpr_low, tpr_high`` on ``grid``.
    """
    y, p = check_yp(y, p)
    g = check_groups(groups, len(y))
    w = image_weights(y, g, n_boot, seed)
    fpr, tpr = roc_points(y, p, w)
    ok = np.isfinite(tpr[:, -1]) & np.isfinite(fpr[:, -1])
    on_grid = tpr_on_grid(fpr[ok], tpr[ok], grid)
    a = (1 - level) / 2
    lo, hi = np.quantile(on_grid, [a, 1 - a], axis=0)
    return pd.DataFrame({"fpr": grid, "tpr_low": lo, "tpr_high": hi})
