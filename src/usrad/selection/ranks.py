"""Vectorised rank statistics of the supervised filters: average ranks, Mann–Whitney U, Spearman ρ."""
from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["mann_whitney", "sorted_ranks", "spearman_matrix"]


def sorted_ranks(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average ranks (ties share the mean rank) of every column of ``A`` (rows × features), all at once.

    Returns ``(order, ranks, tie)``: ``order[j]`` sorts column j, ``ranks[j]`` are the 1-based average ranks
    of its sorted entries, ``tie[j]`` = Σ (t³ − t) over its tie groups of size t. Row-major (one row per
    feature): sorting along rows is ~5x faster than ``scipy.stats.rankdata(axis=0)``.
    """
    n, m = A.shape
    T = np.ascontiguousarray(A.T)
    order = np.argsort(T, axis=1)  # the order within ties does not matter (average ranks)
    S = np.take_along_axis(T, order, axis=1)
    first = np.ones((m, n), dtype=bool)
    first[:, 1:] = S[:, 1:] != S[:, :-1]  # a tie group starts here
    flat = first.ravel()  # row by row: a group never spans two features
    start = np.flatnonzero(flat)
    size = np.diff(np.append(start, n * m))
    avg_rank = (start % n) + (size + 1) / 2.0
    ranks = avg_rank[np.cumsum(flat) - 1].reshape(m, n)
    tie = np.bincount(start // n, weights=size.astype(float) ** 3 - size, minlength=m)
    return order, ranks, tie


def mann_whitney(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Mann–Whitney U p-value and AUC (= U / n1 n0) of every column, all columns at once.

    The p-value is scipy's ``mannwhitneyu(method="asymptotic")`` (normal approximation with tie and
    continuity corrections; equal to it, tested). A constant column, or one with a NaN, gets p = 1 (no
    evidence; its AUC is 0.5 resp. NaN).
    """
    A = np.asarray(X, dtype=float)
    pos = np.asarray(y).astype(int) == 1
    n = len(A)
    n1 = int(pos.sum())
    n0 = n - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("the univariate filter needs both classes in the training rows")
    order, ranks, tie = sorted_ranks(A)
    U1 = (ranks * pos[order]).sum(axis=1) - n1 * (n1 + 1) / 2
    sd = np.sqrt(n1 * n0 / 12 * ((n + 1) - tie / (n * (n - 1))))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.maximum(U1, n1 * n0 - U1) - n1 * n0 / 2 - 0.5) / sd
    p = np.clip(2 * special.ndtr(-z), 0.0, 1.0)
    bad = np.isnan(A).any(axis=0)
    p = np.where(np.isnan(p) | bad, 1.0, p)
    auc = np.where(bad, np.nan, U1 / (n1 * n0))
    return p, auc


def spearman_matrix(X: np.ndarray) -> np.ndarray:
    """|Spearman ρ| inputs: Pearson correlation of the average ranks of every pair of columns (0 if undefined)."""
    A = np.asarray(X, dtype=float)
    if A.shape[1] == 1:
        return np.ones((1, 1))
    order, ranks, _ = sorted_ranks(A)
    R = np.empty_like(ranks)
    np.put_along_axis(R, order, ranks, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(R)
    return np.nan_to_num(rho, nan=0.0)
