"""Discrimination: AUC, its patient-level bootstrap CI, DeLong (clustered) covariance, CI and paired test;
the Mann–Whitney test of a score between the classes.

Fast DeLong of Sun & Xu (2014); clustered (patient-level) variance of Obuchowski (1997).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
from scipy import stats

from ..errors import Problem, UsradError
from .bootstrap import image_weights, percentile_ci, resampling_degenerate
from .checks import LEVEL, check_groups, check_options, check_yp, cluster_codes

#: Memory bound of the vectorised bootstrap: cells per (resamples x score levels) temporary.
BLOCK_CELLS = 4_000_000


def auc(y, p) -> float:
    """Area under the ROC curve (Mann–Whitney: P(p_case > p_control) + ½·P(tie)); equals pROC's ``auc``."""
    y, p = check_yp(y, p)
    return float(delong_auc_cov(y, p[None, :])[0][0])


def weighted_auc(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUC of each row of the weight matrix ``w`` (``(B, n)`` case weights = resampling counts).

    Scores are sorted once; each resample's positive and negative weight per distinct score level is
    one sparse matrix product, and the Mann–Whitney count is a cumulative sum over levels. Ties count ½,
    so with integer counts this equals the AUC of the explicitly resampled data set exactly.
    """
    levels, inv = np.unique(p, return_inverse=True)
    n, n_levels = len(p), len(levels)
    rows = np.arange(n)
    pos = scipy.sparse.csr_matrix((y.astype(float), (rows, inv)), shape=(n, n_levels))
    neg = scipy.sparse.csr_matrix((1.0 - y, (rows, inv)), shape=(n, n_levels))
    out = np.empty(w.shape[0])
    # blocks of resamples only bound the memory (~4e6 cells per temporary); one block when B*n is small
    block = max(1, BLOCK_CELLS // max(n_levels, 1))
    for start in range(0, w.shape[0], block):
        wb = w[start:start + block]
        w_pos = np.asarray((pos.T @ wb.T).T)  # (b, levels)
        w_neg = np.asarray((neg.T @ wb.T).T)
        neg_below = np.cumsum(w_neg, axis=1) - w_neg
        num = np.sum(w_pos * (neg_below + 0.5 * w_neg), axis=1)
        den = w_pos.sum(axis=1) * w_neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + block] = np.where(den > 0, num / den, np.nan)
    return out


def bootstrap_auc(y, p, groups=None, n_boot: int = 2000, seed: int = 0, level: float = LEVEL) -> dict:
    """AUC with a stratified percentile-bootstrap CI (``n_boot`` resamples, seeded, vectorised).

    Without ``groups`` the cases and the controls are each resampled to their own size (as pROC's
    ``ci.auc(method="bootstrap", stratified=TRUE)``). With ``groups`` (one patient ID per image) the
    patients are resampled instead — stratified by whether the patient has any positive image — and
    every image of a drawn patient enters the resample, so within-patient correlation widens the CI as
    it should.

    Why hand-written rather than ``scipy.stats.bootstrap``: scipy's bootstrap resamples each sample
    independently (so passing cases and controls as two samples does give class stratification), but it
    cannot resample clusters (patients), and the same resamples must also serve the F1 interval in
    :func:`threshold_metrics`. Here the draws are one integer matrix per stratum, turned into resampling
    counts, and all AUCs are computed at once from per-score-level weight sums (no Python loop over
    resamples). The tests check it equals an explicit loop over the same draws, and agrees with
    ``scipy.stats.bootstrap`` (percentile) within Monte Carlo error in the ungrouped case.

    Returns ``{"auc", "low", "high", "n_boot", "n_failed"}``; ``n_failed`` counts resamples without both
    classes (possible only with ``groups``), which are dropped.
    """
    y, p = check_yp(y, p)
    g = check_groups(groups, len(y))
    check_options(level=level)
    w = image_weights(y, g, n_boot, seed)
    samples = weighted_auc(y, p, w)
    lo, hi = percentile_ci(samples, level) if not resampling_degenerate(y, g) else (float("nan"),) * 2
    return {"auc": auc(y, p), "low": lo, "high": hi, "n_boot": int(n_boot),
            "n_failed": int(np.sum(~np.isfinite(samples)))}


def mann_whitney_p(positive, negative) -> float:
    """Two-sided Mann–Whitney U test of the scores of positive against negative cases
    (``scipy.stats.mannwhitneyu``, its default method; the U statistic is the AUC times n₁·n₀): the p-value,
    NaN when either group is empty."""
    x, z = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    return float(stats.mannwhitneyu(x, z, alternative="two-sided").pvalue) if len(x) and len(z) else float("nan")


def _cluster_sums(values: np.ndarray, codes: np.ndarray, n_clusters: int) -> np.ndarray:
    """Row-wise sums of ``values`` (k, n_images) per patient: ``(k, n_clusters)``."""
    onehot = scipy.sparse.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)),
                                     shape=(len(codes), n_clusters))
    return np.asarray((onehot.T @ values.T).T)


def _clustered_cov(aucs: np.ndarray, v10: np.ndarray, v01: np.ndarray, case_codes: np.ndarray,
                   ctrl_codes: np.ndarray, n_clusters: int) -> np.ndarray:
    """Obuchowski (1997, Biometrics 53:567) covariance of k AUCs from per-patient sums of placements.

    With ``X_i`` = sum of the case placements (V10) of patient i, ``Y_i`` = sum of its control
    placements (V01), ``m_i``/``n_i`` its numbers of positive/negative images, ``M``/``N`` the totals,
    ``I10``/``I01`` the numbers of patients with a positive/negative image and ``I`` all patients:
    S10 = I10/((I10-1)·M)·Σ(X_i - m_i·A)(X_i - m_i·A)', S01 likewise with Y, n, N, I01, and
    S11 = I/(I-1)·Σ(X_i - m_i·A)(Y_i - n_i·A)'; cov = S10/M + S01/N + (S11 + S11')/(M·N).
    (Same formulas as the Cleveland Clinic ``funcs_clusteredROC.R`` / iMRMC ``doAUCcluster``.)
    With one image per patient S11 = 0 and S10, S01 are the DeLong sample covariances: DeLong exactly.
    Fewer than two patients with a positive (or a negative) image: the term cannot be estimated, NaN.
    """
    m, n = v10.shape[1], v01.shape[1]
    m_i = np.bincount(case_codes, minlength=n_clusters).astype(float)
    n_i = np.bincount(ctrl_codes, minlength=n_clusters).astype(float)
    dx = _cluster_sums(v10, case_codes, n_clusters) - m_i[None, :] * aucs[:, None]
    dy = _cluster_sums(v01, ctrl_codes, n_clusters) - n_i[None, :] * aucs[:, None]
    i10, i01 = int(np.count_nonzero(m_i)), int(np.count_nonzero(n_i))
    with np.errstate(divide="ignore", invalid="ignore"):
        s10 = (dx @ dx.T) * (i10 / ((i10 - 1) * m)) if i10 > 1 else np.full((len(aucs),) * 2, np.nan)
        s01 = (dy @ dy.T) * (i01 / ((i01 - 1) * n)) if i01 > 1 else np.full((len(aucs),) * 2, np.nan)
        s11 = (dx @ dy.T) * (n_clusters / (n_clusters - 1)) if n_clusters > 1 else np.full((len(aucs),) * 2, np.nan)
    return s10 / m + s01 / n + (s11 + s11.T) / (m * n)


def delong_auc_cov(y, scores, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of ``k`` scores on the same cases and their DeLong covariance matrix.

    ``scores`` is ``(k, n)`` (or a sequence of k arrays). Fast DeLong (Sun & Xu 2014, IEEE SPL 21:1389):
    the structural components (placement values) come from midranks of the pooled, case-only and
    control-only scores, O(k·n·log n). Without ``groups`` equals pROC's ``var()``/``cov()`` (checked on
    aSAH to 1e-12).

    ``groups`` (one patient ID per image): the clustered structural-components covariance of
    Obuchowski (1997) — the placements are summed per patient and the patients, not the images, are the
    independent units (see :func:`_clustered_cov`); with one image per patient it equals DeLong to
    rounding (1e-15). Entries that cannot be estimated (fewer than two patients with a positive or with
    a negative image) are NaN.
    """
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    y, _ = check_yp(y, s[0])
    for i in range(1, s.shape[0]):
        check_yp(y, s[i], name_p=f"scores[{i}]")
    g = check_groups(groups, len(y))
    case, ctrl = s[:, y == 1], s[:, y == 0]
    m, n = case.shape[1], ctrl.shape[1]
    tz = stats.rankdata(np.concatenate([case, ctrl], axis=1), axis=1)
    tx = stats.rankdata(case, axis=1)
    ty = stats.rankdata(ctrl, axis=1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:, :m] - tx) / n           # placements of cases
    v01 = 1.0 - (tz[:, m:] - ty) / m     # placements of controls
    if g is not None:
        codes, n_clusters = cluster_codes(g)
        return aucs, _clustered_cov(aucs, v10, v01, codes[y == 1], codes[y == 0], n_clusters)
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(s), len(s)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(s), len(s)))
    return aucs, s10 / m + s01 / n


def delong_method(groups) -> str:
    return "DeLong" if groups is None else "clustered DeLong (Obuchowski 1997)"


def delong_ci(y, p, level: float = LEVEL, groups=None) -> dict:
    """AUC with its DeLong CI: AUC ± z·sqrt(var), clipped to [0, 1] (pROC ``ci.auc(method="delong")``).

    Without ``groups`` the images are assumed independent (pROC). With ``groups`` (patient IDs) the
    variance is the clustered one of :func:`delong_auc_cov` (Obuchowski 1997): two near-identical views
    of a patient then count as one patient, not two (the plain DeLong CI covers ~85 % instead of 95 %
    with two views per patient; ``tests/test_metrics_clustered.py``). A variance that cannot be
    estimated gives ``low = high = NaN``. Returns ``auc, var, low, high, method``.
    """
    y, p = check_yp(y, p)
    check_options(level=level)
    aucs, cov = delong_auc_cov(y, p[None, :], groups=groups)
    var = float(cov[0, 0])
    z = stats.norm.ppf(1 - (1 - level) / 2)
    a = float(aucs[0])
    if not np.isfinite(var):
        return {"auc": a, "var": var, "low": float("nan"), "high": float("nan"), "method": delong_method(groups)}
    half = float(z * np.sqrt(var))
    return {"auc": a, "var": var, "low": max(0.0, a - half), "high": min(1.0, a + half),
            "method": delong_method(groups)}


def _z_and_p(diff: float, var: float, alternative: str) -> tuple[float, float, float]:
    """z statistic, p-value and the variance actually used (identical curves: z 0, p 1, as pROC)."""
    if not np.isfinite(var):
        return float("nan"), float("nan"), float("nan")
    if var <= 0:
        z = 0.0 if diff == 0 else np.sign(diff) * np.inf
        var = max(var, 0.0)
    else:
        z = diff / np.sqrt(var)
    if alternative == "two-sided":
        pval = 2 * stats.norm.sf(abs(z))
    elif alternative == "greater":
        pval = stats.norm.sf(z)
    else:
        pval = stats.norm.cdf(z)
    return float(z), float(min(1.0, pval)), var


def delong_test(y, p1, p2, alternative: str = "two-sided", level: float = LEVEL, groups=None) -> dict:
    """DeLong's test for two correlated AUCs (two models scored on the same cases; pROC ``roc.test``).

    Returns ``auc1``, ``auc2``, ``diff`` = auc1 − auc2, ``var_diff``, ``z``, ``p_value`` (``alternative``
    "two-sided", "greater": auc1 > auc2, or "less") and the CI of the difference, always two-sided, as
    ``diff_low``/``diff_high`` (also under the older names ``low``/``high``); ``method``. Identical ROC
    curves give z = 0, p = 1 (as pROC). With ``groups`` (patient IDs) the variance of the difference is
    the clustered one (Obuchowski 1997, :func:`delong_auc_cov`), so models compared on several images
    per patient get an honest p-value and CI; a variance that cannot be estimated gives NaN.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise UsradError("Cannot compute metrics", [Problem(
            f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")])
    y, p1 = check_yp(y, p1, name_p="p1")
    _, p2 = check_yp(y, p2, name_p="p2")
    check_options(level=level)
    aucs, cov = delong_auc_cov(y, np.vstack([p1, p2]), groups=groups)
    diff = float(aucs[0] - aucs[1])
    z, pval, var = _z_and_p(diff, float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]), alternative)
    zc = stats.norm.ppf(1 - (1 - level) / 2)
    half = float(zc * np.sqrt(var))
    return {"auc1": float(aucs[0]), "auc2": float(aucs[1]), "diff": diff, "var_diff": var, "z": z,
            "p_value": pval, "low": diff - half, "high": diff + half, "diff_low": diff - half,
            "diff_high": diff + half, "alternative": alternative, "method": delong_method(groups)}
