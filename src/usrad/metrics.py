"""The one metrics module: discrimination, classification at a threshold, calibration, decision curves, ICC.

Every number in the paper's tables comes from here, so each function is checked in
``tests/test_metrics.py`` against the published values of a mature tool (``../shared/data/reference-stats``):
R pROC (AUC, DeLong variance/covariance/CI, paired ``roc.test``, Youden "best" coordinates),
R/Python dcurves (net benefit), pingouin (ICC) and R ``performance_hosmer`` (Hosmer–Lemeshow).

Conventions (shared by all functions)
- ``y`` is the binary outcome (0/1 or bool); ``p`` the predicted probability (or any score where higher
  means "more likely positive"; there is no automatic direction flipping as in pROC's ``direction="auto"``).
- A case is called positive iff ``p >= threshold`` (pROC's and dcurves' convention).
- 95% intervals everywhere (``level`` argument where it makes sense).
- ``groups`` (patient IDs, one per image) makes every interval patient-level (the patients, not the
  images, are the independent units): the bootstrap resamples patients, DeLong uses the clustered
  variance of Obuchowski (1997), proportions get design-effect-adjusted Wilson intervals, the
  calibration intercept and slope cluster-robust (sandwich) CIs. With one image per patient every
  result equals the one without ``groups``. Coverage of each is checked by simulation in
  ``tests/test_metrics_clustered.py`` and ``bench/bench_coverage.py``.
- Hosmer–Lemeshow: ``validation=True`` (default) for predictions not fitted on the same rows (df = g),
  ``False`` for apparent predictions (df = g − 2).
- Calibration functions need probabilities in [0, 1] (a score is refused).
- Bad input (non-binary outcome, NaN probability, a single class, mismatched lengths) raises
  :class:`usrad.errors.UsradError` naming the offending argument.

Public API
- Discrimination: :func:`auc`, :func:`bootstrap_auc`, :func:`delong_auc_cov`, :func:`delong_ci`,
  :func:`delong_test`.
- At a threshold: :func:`confusion`, :func:`wilson_ci`, :func:`design_effect`, :func:`threshold_metrics`,
  :func:`youden_threshold`.
- Calibration: :func:`brier_score`, :func:`calibration_intercept_slope`, :func:`reliability_curve`,
  :func:`smoothed_calibration` (flexible curve with a patient-level bootstrap band), :func:`hosmer_lemeshow`.
- Decision curves: :func:`decision_curve` (wraps ``dcurves.dca``).
- Reproducibility: :func:`icc_per_feature` (vectorised, equal to pingouin to 1e-10).
- Summary: :func:`performance_table` — one flat row per (model, data set), used by every table.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse
from scipy import stats

from .errors import Problem, UsradError

LEVEL = 0.95
#: Probabilities are clipped to [EPS, 1 - EPS] before taking logits (calibration models only).
EPS = 1e-12
#: Memory bound of the vectorised bootstrap: cells per (resamples x score levels) temporary.
_BLOCK_CELLS = 4_000_000
#: Default decision-curve thresholds, exactly dcurves' default ``[i / 100 for i in range(0, 100)]``.
DCA_THRESHOLDS = tuple(i / 100 for i in range(0, 100))

#: ICC forms. Keys accepted by :func:`icc_per_feature` (pingouin's old names and McGraw–Wong names).
ICC_FORMS = {
    "ICC1": "ICC1", "ICC(1,1)": "ICC1",
    "ICC2": "ICC2", "ICC(A,1)": "ICC2", "ICC(2,1)": "ICC2",
    "ICC3": "ICC3", "ICC(C,1)": "ICC3", "ICC(3,1)": "ICC3",
    "ICC1k": "ICC1k", "ICC(1,k)": "ICC1k",
    "ICC2k": "ICC2k", "ICC(A,k)": "ICC2k", "ICC(2,k)": "ICC2k",
    "ICC3k": "ICC3k", "ICC(C,k)": "ICC3k", "ICC(3,k)": "ICC3k",
}


# --------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------
def _check_yp(y, p, *, name_p: str = "p", need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Outcome as int 0/1 and scores as float64, or UsradError listing every problem."""
    problems: list[Problem] = []
    y_arr = np.asarray(y)
    try:
        p_arr = pd.to_numeric(pd.Series(np.asarray(p, dtype=object).ravel()), errors="raise").to_numpy(
            dtype=float, na_value=np.nan).reshape(np.shape(p))
    except (TypeError, ValueError):
        p_arr = None
    if y_arr.ndim != 1:
        problems.append(Problem(f"outcome must be one-dimensional, got shape {y_arr.shape}", column="y"))
    if p_arr is None:
        problems.append(Problem(f"predictions must be numeric, got dtype {np.asarray(p).dtype}", column=name_p))
    elif p_arr.ndim != 1:
        problems.append(Problem(f"predictions must be one-dimensional, got shape {p_arr.shape}", column=name_p))
    if problems:
        raise UsradError("Cannot compute metrics", problems)
    if len(y_arr) != len(p_arr):
        problems.append(Problem(f"outcome has {len(y_arr)} values but predictions have {len(p_arr)}",
                                column=name_p))
    y_num = pd.to_numeric(pd.Series(y_arr), errors="coerce").to_numpy(dtype=float)
    bad_y = ~np.isin(y_num, (0.0, 1.0))
    if bad_y.any():
        shown = ", ".join(repr(v) for v in pd.unique(y_arr[bad_y])[:5])
        problems.append(Problem(f"outcome must be 0/1; {int(bad_y.sum())} value(s) are not (e.g. {shown})",
                                column="y"))
    bad_p = ~np.isfinite(p_arr)
    if bad_p.any():
        problems.append(Problem(f"{int(bad_p.sum())} prediction(s) are NaN or infinite "
                                f"(first at position {int(np.flatnonzero(bad_p)[0])})", column=name_p))
    if not problems and need_both and (y_num.min() == y_num.max()):
        problems.append(Problem(f"outcome has a single class ({int(y_num[0])}) — both classes are needed",
                                column="y"))
    if problems:
        raise UsradError("Cannot compute metrics", problems)
    return y_num.astype(np.int64), p_arr


def _check_groups(groups, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise UsradError("Cannot compute metrics", [Problem(
            f"groups must have one patient ID per prediction ({n}), got shape {g.shape}", column="groups")])
    if pd.isna(g).any():
        raise UsradError("Cannot compute metrics", [Problem(
            f"{int(pd.isna(g).sum())} missing patient ID(s)", column="groups")])
    # patient IDs are strings everywhere; a mix of numbers and strings would not sort (np.unique)
    return g.astype(str) if g.dtype == object else g


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


#: Option checks: name -> (is it valid?, what is expected). Used by :func:`_check_options`.
_OPTIONS = {
    "level": (lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
              and 0 < v < 1, "a number between 0 and 1 (e.g. 0.95 for 95 %)"),
    "n_boot": (lambda v: _is_int(v) and v >= 0, "a whole number ≥ 0"),
    "seed": (lambda v: _is_int(v) and v >= 0, "a whole number ≥ 0"),
    "n_grid": (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1"),
    "n_bins": (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1"),
    "knots": (lambda v: _is_int(v) and v in RCS_KNOT_QUANTILES, "3, 4 or 5"),
    "g": (lambda v: _is_int(v) and v >= 2, "a whole number ≥ 2"),
    "validation": (lambda v: isinstance(v, (bool, np.bool_)), "True (not fitted on these rows) or False (apparent)"),
}


def _check_options(**options) -> None:
    """UsradError listing every option that is not what :data:`_OPTIONS` expects (each names the option)."""
    problems = [Problem(f"{name} must be {_OPTIONS[name][1]}, got {value!r}", column=name)
                for name, value in options.items() if not _OPTIONS[name][0](value)]
    if problems:
        raise UsradError("Cannot compute metrics", problems)


def _check_probabilities(p: np.ndarray, name: str = "p") -> None:
    """Calibration needs probabilities: every value in [0, 1] (a score such as the rad-score is refused)."""
    bad = (p < 0) | (p > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UsradError("Cannot compute calibration metrics", [Problem(
            f"{int(bad.sum())} value(s) are not probabilities in [0, 1] (first at position {i}: {p[i]!r}); "
            "calibration needs predicted probabilities, not scores", column=name)])


# --------------------------------------------------------------------------------------------------
# AUC: point estimate, vectorised stratified (optionally patient-level) bootstrap
# --------------------------------------------------------------------------------------------------
def auc(y, p) -> float:
    """Area under the ROC curve (Mann–Whitney: P(p_case > p_control) + ½·P(tie)); equals pROC's ``auc``."""
    y, p = _check_yp(y, p)
    return float(delong_auc_cov(y, p[None, :])[0][0])


def _bootstrap_units(y: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Resampling units and their stratum: images by class, or patients by "has any positive image"."""
    if groups is None:
        return np.arange(len(y)), y.astype(bool)
    _, unit_of_image = np.unique(groups, return_inverse=True)
    n_units = unit_of_image.max() + 1
    stratum = np.zeros(n_units, dtype=bool)
    np.logical_or.at(stratum, unit_of_image, y.astype(bool))
    return unit_of_image, stratum


def _draw_units(stratum: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_units)`` matrix of resampled unit indices, each stratum resampled to its own size.

    One vectorised draw per stratum (two strata), no loop over resamples. Columns are ordered
    [stratum False units..., stratum True units...].
    """
    rng = np.random.default_rng(seed)
    blocks = []
    for s in (False, True):
        members = np.flatnonzero(stratum == s)
        if len(members):
            blocks.append(members[rng.integers(0, len(members), size=(n_boot, len(members)))])
    return np.concatenate(blocks, axis=1)


def _unit_counts(draws: np.ndarray, n_units: int) -> np.ndarray:
    """How many times each unit appears in each resample: ``(n_boot, n_units)`` float64 counts."""
    n_boot = draws.shape[0]
    flat = (draws + n_units * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n_units).reshape(n_boot, n_units).astype(float)


def _weighted_auc(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
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
    block = max(1, _BLOCK_CELLS // max(n_levels, 1))
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


def _image_weights(y: np.ndarray, groups: np.ndarray | None, n_boot: int, seed: int,
                   stratified: bool = True) -> np.ndarray:
    """``(n_boot, n_images)`` resampling counts for the stratified (patient-level if groups) bootstrap.

    ``stratified=False`` resamples all units (images or patients) together, so the prevalence varies
    between resamples — needed wherever the uncertainty of the event rate itself matters (calibration).
    """
    _check_options(n_boot=n_boot, seed=seed)
    unit_of_image, stratum = _bootstrap_units(y, groups)
    if not stratified:
        stratum = np.zeros_like(stratum)
    draws = _draw_units(stratum, n_boot, seed)
    counts = _unit_counts(draws, len(stratum))
    return counts[:, unit_of_image]


def _resampling_degenerate(y: np.ndarray, groups: np.ndarray | None, stratified: bool = True) -> bool:
    """True when a bootstrap stratum has fewer than 2 units: its resamples would all be the data itself."""
    _, stratum = _bootstrap_units(y, groups)
    if not stratified:
        return len(stratum) < 2
    sizes = np.bincount(stratum.astype(int), minlength=2)
    return bool(np.any((sizes > 0) & (sizes < 2)))


def _percentile_ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(finite, [a, 1 - a])
    return float(lo), float(hi)


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
    y, p = _check_yp(y, p)
    g = _check_groups(groups, len(y))
    _check_options(level=level)
    w = _image_weights(y, g, n_boot, seed)
    samples = _weighted_auc(y, p, w)
    lo, hi = _percentile_ci(samples, level) if not _resampling_degenerate(y, g) else (float("nan"),) * 2
    return {"auc": auc(y, p), "low": lo, "high": hi, "n_boot": int(n_boot),
            "n_failed": int(np.sum(~np.isfinite(samples)))}


# --------------------------------------------------------------------------------------------------
# DeLong (fast algorithm of Sun & Xu 2014); clustered (patient-level) variance of Obuchowski 1997
# --------------------------------------------------------------------------------------------------
def _cluster_codes(groups: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer patient index per image (0..I-1) and the number of patients I."""
    _, codes = np.unique(groups, return_inverse=True)
    return codes.ravel(), int(codes.max()) + 1


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
    y, _ = _check_yp(y, s[0])
    for i in range(1, s.shape[0]):
        _check_yp(y, s[i], name_p=f"scores[{i}]")
    g = _check_groups(groups, len(y))
    case, ctrl = s[:, y == 1], s[:, y == 0]
    m, n = case.shape[1], ctrl.shape[1]
    tz = stats.rankdata(np.concatenate([case, ctrl], axis=1), axis=1)
    tx = stats.rankdata(case, axis=1)
    ty = stats.rankdata(ctrl, axis=1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:, :m] - tx) / n           # placements of cases
    v01 = 1.0 - (tz[:, m:] - ty) / m     # placements of controls
    if g is not None:
        codes, n_clusters = _cluster_codes(g)
        return aucs, _clustered_cov(aucs, v10, v01, codes[y == 1], codes[y == 0], n_clusters)
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(s), len(s)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(s), len(s)))
    return aucs, s10 / m + s01 / n


def _delong_method(groups) -> str:
    return "DeLong" if groups is None else "clustered DeLong (Obuchowski 1997)"


def delong_ci(y, p, level: float = LEVEL, groups=None) -> dict:
    """AUC with its DeLong CI: AUC ± z·sqrt(var), clipped to [0, 1] (pROC ``ci.auc(method="delong")``).

    Without ``groups`` the images are assumed independent (pROC). With ``groups`` (patient IDs) the
    variance is the clustered one of :func:`delong_auc_cov` (Obuchowski 1997): two near-identical views
    of a patient then count as one patient, not two (the plain DeLong CI covers ~85 % instead of 95 %
    with two views per patient; ``tests/test_metrics_clustered.py``). A variance that cannot be
    estimated gives ``low = high = NaN``. Returns ``auc, var, low, high, method``.
    """
    y, p = _check_yp(y, p)
    _check_options(level=level)
    aucs, cov = delong_auc_cov(y, p[None, :], groups=groups)
    var = float(cov[0, 0])
    z = stats.norm.ppf(1 - (1 - level) / 2)
    a = float(aucs[0])
    if not np.isfinite(var):
        return {"auc": a, "var": var, "low": float("nan"), "high": float("nan"), "method": _delong_method(groups)}
    half = float(z * np.sqrt(var))
    return {"auc": a, "var": var, "low": max(0.0, a - half), "high": min(1.0, a + half),
            "method": _delong_method(groups)}


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
    y, p1 = _check_yp(y, p1, name_p="p1")
    _, p2 = _check_yp(y, p2, name_p="p2")
    _check_options(level=level)
    aucs, cov = delong_auc_cov(y, np.vstack([p1, p2]), groups=groups)
    diff = float(aucs[0] - aucs[1])
    z, pval, var = _z_and_p(diff, float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]), alternative)
    zc = stats.norm.ppf(1 - (1 - level) / 2)
    half = float(zc * np.sqrt(var))
    return {"auc1": float(aucs[0]), "auc2": float(aucs[1]), "diff": diff, "var_diff": var, "z": z,
            "p_value": pval, "low": diff - half, "high": diff + half, "diff_low": diff - half,
            "diff_high": diff + half, "alternative": alternative, "method": _delong_method(groups)}


# --------------------------------------------------------------------------------------------------
# classification at a threshold
# --------------------------------------------------------------------------------------------------
def confusion(y, p, threshold: float) -> dict:
    """Confusion-matrix counts ``tp, fp, tn, fn`` with positive iff ``p >= threshold``."""
    y, p = _check_yp(y, p, need_both=False)
    pred = p >= threshold
    pos = y == 1
    return {"tp": int(np.sum(pred & pos)), "fp": int(np.sum(pred & ~pos)),
            "tn": int(np.sum(~pred & ~pos)), "fn": int(np.sum(~pred & pos))}


def wilson_ci(successes, n, level: float = LEVEL, deff=None) -> tuple:
    """Wilson score interval (statsmodels ``proportion_confint(method="wilson")``); NaN where ``n == 0``.

    Vectorised over arrays of counts; scalars give a tuple of floats. ``deff`` (design effect, e.g. from
    :func:`design_effect`; values below 1 count as 1) turns it into the interval of a clustered sample:
    the Wilson interval of the same proportion with the effective size ``n / deff`` (Korn & Graubard
    1998, Survey Methodology 24:193, with the effective size truncated at ``n``). ``deff=None``: 1.
    """
    from statsmodels.stats.proportion import proportion_confint

    _check_options(level=level)
    k = np.asarray(successes, dtype=float)
    nn = np.asarray(n, dtype=float)
    if deff is not None:  # same proportion, effective size n / max(deff, 1); a NaN deff gives NaN
        prop = k / np.where(nn > 0, nn, 1.0)
        nn = nn / np.maximum(np.asarray(deff, dtype=float), 1.0)
        k = prop * nn
    safe = np.where(nn > 0, nn, 1.0)
    lo, hi = proportion_confint(k, safe, alpha=1 - level, method="wilson")
    lo, hi = np.where(nn > 0, lo, np.nan), np.where(nn > 0, hi, np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def design_effect(hits, groups) -> float:
    """Design effect of a proportion estimated from clustered 0/1 outcomes (e.g. images within patients).

    ``hits``: one 0/1 value per image of the denominator (e.g. "called positive" for every positive
    image, for the sensitivity); ``groups``: their patient IDs. The proportion p = Σk_i / Σn_i is a ratio
    estimator; its cluster-robust variance is I/(I−1)·Σ(k_i − p·n_i)² / n² over the I patients, and the
    design effect is that variance divided by the binomial one, n/(n−1)·p(1−p)/n (each with its own
    small-sample factor, so one image per patient gives exactly 1). When p is 0 or 1 or there is a
    single patient the clustering cannot be estimated and the worst case is used: all images of a patient
    alike, deff = Σn_i²/n (Kish), i.e. an effective size of (Σn_i)²/Σn_i² (the number of patients when
    they have equally many images). NaN for an empty denominator.
    """
    h = np.asarray(hits, dtype=float).ravel()
    g = _check_groups(groups, len(h))
    if len(h) == 0:
        return float("nan")
    codes, n_clusters = _cluster_codes(g)
    n_i = np.bincount(codes, minlength=n_clusters).astype(float)
    if n_i.max() == 1:
        return 1.0
    n = float(len(h))
    p = float(h.mean())
    if n_clusters < 2 or p in (0.0, 1.0):
        return float(np.sum(n_i ** 2) / n)
    k_i = np.bincount(codes, weights=h, minlength=n_clusters)
    var_cluster = n_clusters / (n_clusters - 1) * np.sum((k_i - p * n_i) ** 2) / n ** 2
    var_binomial = p * (1 - p) / (n - 1)
    return float(var_cluster / var_binomial)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def _proportion_rows(y: np.ndarray, pred: np.ndarray, g: np.ndarray | None, level: float) -> list[tuple]:
    """(metric, estimate, low, high, numerator, denominator, ci_method, deff, n_effective) per proportion."""
    pos = y == 1
    masks = {"sensitivity": (pos, pred), "specificity": (~pos, ~pred), "accuracy": (np.ones_like(pos), pred == pos),
             "ppv": (pred, pos), "npv": (~pred, ~pos)}
    rows = []
    for name, (denominator, hit) in masks.items():
        k, d = int(np.sum(denominator & hit)), int(np.sum(denominator))
        deff = 1.0 if g is None else (design_effect(hit[denominator], g[denominator]) if d else float("nan"))
        lo, hi = wilson_ci(k, d, level, deff=None if g is None else deff)
        method = "wilson" if g is None else "wilson, design effect (patients)"
        rows.append((name, _ratio(k, d), lo, hi, k, d, method, deff, d / max(deff, 1.0) if d else float("nan")))
    return rows


def threshold_metrics(y, p, threshold: float, groups=None, n_boot: int = 2000, seed: int = 0,
                      level: float = LEVEL) -> pd.DataFrame:
    """Sensitivity, specificity, accuracy, PPV, NPV, F1 at ``threshold``, each with a 95% CI.

    Proportions get Wilson score intervals. Without ``groups`` these treat the images as independent.
    With ``groups`` (patient IDs) each gets the design-effect-adjusted Wilson interval
    (:func:`design_effect`, :func:`wilson_ci` with ``deff``): the Wilson interval at the effective
    sample size n / deff, deff from the ratio-estimator (cluster-robust) variance over patients.
    Chosen over a cluster bootstrap because it is deterministic and cheap, and because it keeps the
    Wilson interval's good coverage near 0 and 1 (sensitivities of 0.9+ on a few dozen positive
    patients), where a percentile bootstrap collapses onto the estimate (a resample of an all-positive
    set is all-positive); its coverage with two near-identical views per patient is checked in
    ``tests/test_metrics_clustered.py`` (~95 %, plain Wilson ~84 %). F1 is not a binomial proportion:
    its CI is the percentile bootstrap over the same stratified resamples as :func:`bootstrap_auc`
    (patients when ``groups`` is given). Returns a DataFrame indexed by metric with columns
    ``estimate, low, high, numerator, denominator, ci_method, deff, n_effective`` (deff 1 and
    n_effective = denominator without groups; NaN for F1); the counts are in ``.attrs``
    (``tp, fp, tn, fn``) and also as rows of :func:`confusion`.
    """
    y, p = _check_yp(y, p)
    g = _check_groups(groups, len(y))
    _check_options(level=level, n_boot=n_boot, seed=seed)
    c = confusion(y, p, threshold)
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    pred, pos = p >= threshold, y == 1
    rows = _proportion_rows(y, pred, g, level)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    w = _image_weights(y, g, n_boot, seed)
    btp, bfp, bfn = w @ (pred & pos), w @ (pred & ~pos), w @ (~pred & pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        bf1 = np.where(2 * btp + bfp + bfn > 0, 2 * btp / (2 * btp + bfp + bfn), np.nan)
    lo, hi = _percentile_ci(bf1, level) if not _resampling_degenerate(y, g) else (float("nan"),) * 2
    rows.append(("f1", f1, lo, hi, 2 * tp, 2 * tp + fp + fn, f"bootstrap percentile ({n_boot})", float("nan"),
                 float("nan")))
    out = pd.DataFrame(rows, columns=["metric", "estimate", "low", "high", "numerator", "denominator",
                                      "ci_method", "deff", "n_effective"]).set_index("metric")
    out.attrs.update(c, threshold=float(threshold))
    return out


def youden_threshold(y, p) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity − 1 (positive iff ``p >= t``).

    Candidates are the midpoints between consecutive distinct predicted values (pROC's thresholds
    without ±Inf), so the chosen threshold does not sit on a training prediction. Ties: the lowest
    threshold, i.e. the most sensitive operating point (missing a metastasis costs more than an extra
    axillary work-up). Use on training data only; equals pROC ``coords(roc, "best")`` on aSAH s100b.
    """
    y, p = _check_yp(y, p)
    levels = np.unique(p)
    if len(levels) < 2:
        raise UsradError("Cannot choose a threshold", [Problem(
            f"all {len(p)} predicted probabilities are equal ({levels[0]!r})", column="p")])
    cand = (levels[:-1] + levels[1:]) / 2
    # number of cases/controls with p >= cand[i] via counts per level
    _, inv = np.unique(p, return_inverse=True)
    pos_per = np.bincount(inv, weights=y, minlength=len(levels))
    neg_per = np.bincount(inv, weights=1 - y, minlength=len(levels))
    pos_ge = np.cumsum(pos_per[::-1])[::-1][1:]  # p >= cand[i]  <=>  level index >= i + 1
    neg_ge = np.cumsum(neg_per[::-1])[::-1][1:]
    j = pos_ge / pos_per.sum() + (1 - neg_ge / neg_per.sum())
    best = np.flatnonzero(j >= j.max() - 1e-12)
    return float(cand[best[0]])


# --------------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------------
def brier_score(y, p) -> float:
    """Mean squared error of the probabilities."""
    y, p = _check_yp(y, p, need_both=False)
    _check_probabilities(p)
    return float(np.mean((p - y) ** 2))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, EPS, 1 - EPS)
    return np.log(q) - np.log1p(-q)


def _glm_fit(y: np.ndarray, exog: np.ndarray, offset: np.ndarray | None, codes: np.ndarray | None):
    """Binomial GLM (statsmodels); cluster-robust (sandwich) covariance when ``codes`` (patients) are given."""
    import statsmodels.api as sm

    model = sm.GLM(y, exog, family=sm.families.Binomial(), offset=offset)
    if codes is None:
        return model.fit()
    return model.fit(cov_type="cluster", cov_kwds={"groups": codes})


def _coef(fit_fn, index: int, null: float, dist, q: float) -> tuple[float, float, float, float, float]:
    """(estimate, se, low, high, Wald p against ``null``) of one coefficient, NaN when the fit fails.

    ``dist``: reference distribution of (estimate − truth)/se (scipy, frozen normal or t); ``q``: its
    quantile for the interval (estimate ± q·se).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = fit_fn()
            est, se = float(fit.params[index]), float(fit.bse[index])
        except Exception:  # noqa: BLE001 — statsmodels raises several types on separation/overflow
            est = se = float("nan")
    if not (np.isfinite(est) and np.isfinite(se)):  # e.g. separation: no finite MLE, report none
        return (float("nan"),) * 5
    pval = float(2 * dist.sf(abs(est - null) / se)) if se > 0 else float("nan")
    return est, se, est - q * se, est + q * se, pval


def calibration_intercept_slope(y, p, level: float = LEVEL, groups=None) -> dict:
    """Calibration-in-the-large and calibration slope (statsmodels binomial GLM), with Wald CIs.

    - intercept: ``logit P(y=1) = a + offset(logit p)`` — 0 when the mean risk is right;
    - slope: ``logit P(y=1) = a + b·logit p`` — 1 when the spread is right (< 1: overfitted, too extreme).
    ``p`` is clipped to [1e-12, 1 − 1e-12] before the logit. A fit that fails (separation) gives NaN.

    Without ``groups`` the standard errors are the model-based ones (independent images). With
    ``groups`` (patient IDs) they are cluster-robust (sandwich, statsmodels ``cov_type="cluster"`` with
    its small-sample correction G/(G−1)·(N−1)/(N−K)) and the intervals and p-values use t with G − 1
    degrees of freedom (G patients); the estimates are the same. When every patient
    has one image there is nothing to correct and the model-based SEs are kept (identical to no groups).
    Returns ``intercept, intercept_low, intercept_high, slope, slope_low, slope_high`` and
    ``intercept_se, intercept_p`` (Wald test of a = 0), ``slope_se, slope_p`` (Wald test of b = 1),
    ``n_patients`` (NaN without groups) and ``cov_type`` ("model" or "cluster").
    """
    import statsmodels.api as sm

    y, p = _check_yp(y, p)
    _check_probabilities(p)
    g = _check_groups(groups, len(y))
    _check_options(level=level)
    codes = None if g is None else _cluster_codes(g)[0]
    n_patients = float("nan") if codes is None else float(codes.max() + 1)
    if codes is not None and n_patients == len(y):
        codes = None  # one image per patient: nothing to correct, the model-based SEs (as without groups)
    lp = _logit(p)
    # cluster-robust Wald intervals use t(G − 1) (Cameron & Miller 2015, J Hum Resour 50:317): with ~150
    # patients the normal quantile undercovers slightly (93.5 % instead of 95 % in the coverage bench)
    dist = stats.norm() if codes is None else stats.t(df=max(n_patients - 1, 1))
    q = float(dist.ppf(1 - (1 - level) / 2))
    a, se_a, a_lo, a_hi, p_a = _coef(lambda: _glm_fit(y, np.ones((len(y), 1)), lp, codes), 0, 0.0, dist, q)
    b, se_b, b_lo, b_hi, p_b = _coef(lambda: _glm_fit(y, sm.add_constant(lp, has_constant="add"), None, codes),
                                     1, 1.0, dist, q)
    return {"intercept": a, "intercept_low": a_lo, "intercept_high": a_hi, "slope": b, "slope_low": b_lo,
            "slope_high": b_hi, "intercept_se": se_a, "intercept_p": p_a, "slope_se": se_b, "slope_p": p_b,
            "n_patients": n_patients,
            "cov_type": "model" if codes is None else "cluster"}


#: Knot positions (quantiles of logit p) of a restricted cubic spline with 3, 4 or 5 knots (Harrell,
#: Regression Modeling Strategies, 2nd ed., Table 2.3).
RCS_KNOT_QUANTILES = {3: (0.10, 0.50, 0.90), 4: (0.05, 0.35, 0.65, 0.95), 5: (0.05, 0.275, 0.5, 0.725, 0.95)}


def _rcs_knots(x: np.ndarray, knots: int) -> np.ndarray:
    """Distinct knots at Harrell's quantiles; fewer knots when x has too few distinct values (< 3: none)."""
    for k in range(knots, 2, -1):
        t = np.unique(np.quantile(x, RCS_KNOT_QUANTILES[k]))
        if len(t) == k:
            return t
    return np.empty(0)


def _rcs_basis(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Design matrix [1, x, rcs_1(x), ..., rcs_{k-2}(x)] (Harrell's restricted cubic spline, linear tails).

    rcs_j(x) = [(x−t_j)+³ − (x−t_{k−1})+³·(t_k−t_j)/(t_k−t_{k−1}) + (x−t_k)+³·(t_{k−1}−t_j)/(t_k−t_{k−1})]
    / (t_k − t_1)² (the scaling only conditions the fit).
    """
    cols = [np.ones_like(x), x]
    if len(t) >= 3:
        k = len(t)
        def cube(u):
            return np.maximum(u, 0.0) ** 3

        for j in range(k - 2):
            cols.append((cube(x - t[j]) - cube(x - t[k - 2]) * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
                         + cube(x - t[k - 1]) * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2])) / (t[-1] - t[0]) ** 2)
    return np.column_stack(cols)


def _batched_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, max_iter: int = 50,
                      tol: float = 1e-9) -> np.ndarray:
    """Weighted logistic regression of y on X for every row of the case-weight matrix ``w`` at once.

    Newton–Raphson (IRLS) vectorised over the rows: ``(B, q)`` coefficients; NaN rows did not converge
    (e.g. separation in a resample).
    """
    n_rows, q = w.shape[0], X.shape[1]
    beta = np.zeros((n_rows, q))
    beta[:, 0] = np.log((w @ y + 0.5) / (w @ (1 - y) + 0.5))
    converged = np.zeros(n_rows, dtype=bool)
    ridge = 1e-10 * np.eye(q)
    for _ in range(max_iter):
        eta = np.clip(beta @ X.T, -30, 30)
        mu = 1.0 / (1.0 + np.exp(-eta))
        grad = (w * (y - mu)) @ X
        hess = np.einsum("bn,ni,nj->bij", w * mu * (1 - mu), X, X, optimize=True) + ridge
        try:
            step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.stack([np.linalg.lstsq(h, r, rcond=None)[0] for h, r in zip(hess, grad)])
        step = np.where(converged[:, None], 0.0, step)
        beta += step
        converged |= np.max(np.abs(step), axis=1) < tol
        if converged.all():
            break
    beta[~converged | ~np.all(np.isfinite(beta), axis=1)] = np.nan
    return beta


def _check_grid(grid) -> np.ndarray:
    """Evaluation points of a calibration curve: a non-empty 1-D array of probabilities."""
    try:
        arr = np.asarray(grid, dtype=float).ravel()
    except (TypeError, ValueError):
        arr = None
    if arr is None or len(arr) == 0 or not np.all(np.isfinite(arr)) or ((arr < 0) | (arr > 1)).any():
        raise UsradError("Cannot compute a calibration curve", [Problem(
            "grid must be a non-empty list of probabilities in [0, 1]", column="grid")])
    return arr


def smoothed_calibration(y, p, groups=None, n_boot: int = 200, seed: int = 0, level: float = LEVEL,
                         knots: int = 3, grid=None, n_grid: int = 101) -> pd.DataFrame:
    """Flexible calibration curve: observed risk as a smooth function of predicted risk, with its band.

    The curve is a logistic regression of the outcome on a restricted cubic spline of logit(p)
    (``knots`` = 3, 4 or 5 knots at Harrell's quantiles, fewer when p has few distinct values; with
    fewer than 3 it is the linear calibration-slope model) — the "flexible calibration curve" of Van
    Calster et al. (2016, J Clin Epidemiol 74:167), a smooth alternative to lowess that stays inside
    (0, 1), is linear in logit(p) beyond the outer knots and can be refitted for every bootstrap
    resample at once (vectorised Newton–Raphson over the resampling weights). Default 3 knots: at test-set
    sizes (150–400 patients) 4 knots make the tails unstable (measured in ``bench/bench_coverage.py``).

    The band: ``n_boot`` bootstrap resamples (seeded) of patients when ``groups`` is given (several
    images of one patient do not narrow it), of images otherwise, knots fixed at those of the full data;
    pointwise, on the logit scale, estimate ± z·s with s the bootstrap SD estimated robustly
    (interquartile range / 1.349), back-transformed. Measured alternatives: the percentile band covers
    only 86–92 % at p = 0.03–0.1 (the fitted tail has a skewed sampling distribution that the
    percentile method reproduces the wrong way round), the plain SD is inflated by the few resamples
    whose tail dives (98 %); this one covers 94–97 % at every point. The resampling is not stratified by
    outcome: a class-stratified bootstrap fixes the event rate of every resample and undercovers. A
    resample with a single class does not converge and is left out; fewer than two resampling units: NaN
    band.

    ``grid``: predicted probabilities at which to evaluate (default ``n_grid`` points evenly spaced from
    the smallest to the largest ``p``). Returns a DataFrame ``p_grid, observed, lower, upper`` (the ideal
    curve is observed = p_grid); ``.attrs``: ``knots`` (on the logit scale), ``n_boot``, ``n_failed``
    (resamples whose fit did not converge, left out), ``level``, ``method``.
    """
    y, p = _check_yp(y, p)
    _check_probabilities(p)
    g = _check_groups(groups, len(y))
    _check_options(level=level, n_boot=n_boot, seed=seed, knots=knots, n_grid=n_grid)
    lp = _logit(p)
    t = _rcs_knots(lp, knots)
    X = _rcs_basis(lp, t)
    grid = np.linspace(p.min(), p.max(), n_grid) if grid is None else _check_grid(grid)
    Xg = _rcs_basis(_logit(grid), t)
    w = np.vstack([np.ones((1, len(y))), _image_weights(y, g, n_boot, seed, stratified=False)])
    eta = _batched_logistic(X, y.astype(float), w) @ Xg.T            # (1 + n_boot, n_grid), logit scale
    ok = np.all(np.isfinite(eta[1:]), axis=1) & (not _resampling_degenerate(y, g, stratified=False))
    if ok.sum() >= 2:
        q75, q25 = np.quantile(eta[1:][ok], [0.75, 0.25], axis=0)
        half = stats.norm.ppf(1 - (1 - level) / 2) * (q75 - q25) / (stats.norm.ppf(0.75) * 2)
    else:
        half = np.full(len(grid), np.nan)
    def expit(v):
        return 1.0 / (1.0 + np.exp(-np.clip(v, -700, 700)))

    out = pd.DataFrame({"p_grid": grid, "observed": expit(eta[0]), "lower": expit(eta[0] - half),
                        "upper": expit(eta[0] + half)})
    out.attrs.update(knots=[float(v) for v in t], n_boot=int(n_boot), n_failed=int((~ok).sum()), level=level,
                     method=f"logistic regression on a restricted cubic spline of logit(p), {len(t)} knots"
                            if len(t) else "logistic regression on logit(p) (too few distinct p for a spline)")
    return out


def _quantile_bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index per prediction: R ``cut(p, unique(quantile(p, 0:g/g)), include.lowest=TRUE)``."""
    breaks = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))  # R quantile type 7 == numpy linear
    if len(breaks) == 1:
        return np.zeros(len(p), dtype=int)
    idx = np.searchsorted(breaks, p, side="left") - 1  # right-closed (b_i, b_{i+1}]
    return np.clip(idx, 0, len(breaks) - 2)             # include.lowest: the minimum goes to bin 0


def reliability_curve(y, p, n_bins: int = 10, level: float = LEVEL) -> pd.DataFrame:
    """Reliability (calibration) curve on quantile bins of ``p`` (the bins of :func:`hosmer_lemeshow`).

    One row per non-empty bin: ``n, mean_predicted, observed`` (fraction positive) and its Wilson CI
    (``observed_low, observed_high``), ``p_min, p_max``.
    """
    y, p = _check_yp(y, p, need_both=False)
    _check_probabilities(p)
    _check_options(n_bins=n_bins, level=level)
    b = _quantile_bins(p, n_bins)
    df = pd.DataFrame({"bin": b, "y": y, "p": p})
    agg = df.groupby("bin").agg(n=("y", "size"), events=("y", "sum"), mean_predicted=("p", "mean"),
                                p_min=("p", "min"), p_max=("p", "max"))
    agg["observed"] = agg["events"] / agg["n"]
    agg["observed_low"], agg["observed_high"] = wilson_ci(agg["events"].to_numpy(), agg["n"].to_numpy(), level)
    return agg.reset_index()[["bin", "n", "events", "mean_predicted", "observed", "observed_low",
                              "observed_high", "p_min", "p_max"]]


def hosmer_lemeshow(y, p, g: int = 10, validation: bool = True) -> dict:
    """Hosmer–Lemeshow goodness-of-fit test on ``g`` quantile groups of ``p``.

    ResourceSelection ``hoslem.test`` / easystats ``performance_hosmer`` algorithm: breaks at the
    (type 7) quantiles of ``p``, duplicate breaks dropped, right-closed bins including the lowest;
    χ² = Σ over bins and both outcomes of (O − E)²/E, G = number of non-empty bins.

    Degrees of freedom depend on where the probabilities come from (Hosmer, Lemeshow & Sturdivant,
    Applied Logistic Regression, 3rd ed., ch. 5: g − 2 for the fitted model, g for an external sample):
    - ``validation=True`` (default; test, external or out-of-fold predictions — nothing was fitted on
      these outcomes): df = G. The χ²(G − 2) reference here rejects a perfectly calibrated model ~11 %
      of the time at α = 0.05 instead of 5 % (``tests/test_metrics_clustered.py``).
    - ``validation=False`` (apparent: the model was fitted on these very rows): df = G − 2, the two
      degrees of freedom spent on the fitted logistic model (ResourceSelection / performance_hosmer;
      reproduces 5.137, df 8, p 0.743 on mtcars).
    The images are treated as independent. Returns ``{"statistic", "df", "p_value", "validation",
    "table"}``; p is NaN when df < 1.
    """
    y, p = _check_yp(y, p, need_both=False)
    _check_probabilities(p)
    _check_options(g=g, validation=validation)
    b = _quantile_bins(p, int(g))
    n_b = np.bincount(b)
    keep = n_b > 0
    o1 = np.bincount(b, weights=y)[keep]
    e1 = np.bincount(b, weights=p)[keep]
    n_b = n_b[keep]
    o0, e0 = n_b - o1, n_b - e1
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = float(np.sum((o1 - e1) ** 2 / e1) + np.sum((o0 - e0) ** 2 / e0))
    df = int(keep.sum()) - (0 if validation else 2)
    pval = float(stats.chi2.sf(chi2, df)) if df > 0 else float("nan")
    table = pd.DataFrame({"n": n_b, "observed_1": o1, "expected_1": e1, "observed_0": o0, "expected_0": e0})
    return {"statistic": chi2, "df": df, "p_value": pval, "validation": bool(validation), "table": table}


# --------------------------------------------------------------------------------------------------
# decision curve analysis (dcurves)
# --------------------------------------------------------------------------------------------------
def decision_curve(y, predictions, thresholds: Sequence[float] = DCA_THRESHOLDS,
                   harm: Mapping[str, float] | None = None, prevalence: float | None = None) -> pd.DataFrame:
    """Net benefit of each model, treat-all and treat-none over threshold probabilities (``dcurves.dca``).

    ``predictions`` is one probability array (named ``"model"``) or a mapping name → probabilities.
    ``prevalence`` only for case-control data (otherwise the sample prevalence). Net benefit =
    TP/n − FP/n · pt/(1 − pt) − harm; treat-all = prevalence − (1 − prevalence)·pt/(1 − pt).
    Returns the tidy dcurves table: ``model, threshold, net_benefit, net_intervention_avoided,
    test_pos_rate, tp_rate, fp_rate, harm, prevalence, n`` with models in input order then
    ``all``, ``none``.
    """
    import dcurves

    preds = {"model": predictions} if not isinstance(predictions, Mapping) else dict(predictions)
    reserved = {"all", "none", "_outcome"} & set(preds)
    if reserved:
        raise UsradError("Cannot compute a decision curve", [Problem(
            f"model name(s) {sorted(reserved)} are reserved by dcurves; rename them", column=sorted(reserved)[0])])
    checked = {}
    for name, pr in preds.items():
        yy, checked[name] = _check_yp(y, pr, name_p=str(name))
    data = pd.DataFrame({"_outcome": yy.astype(bool), **checked})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        res = dcurves.dca(data=data, outcome="_outcome", modelnames=list(checked),
                          thresholds=list(thresholds), harm=dict(harm) if harm else None, prevalence=prevalence)
    cols = ["model", "threshold", "net_benefit", "net_intervention_avoided", "test_pos_rate", "tp_rate",
            "fp_rate", "harm", "prevalence", "n"]
    return res[cols].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# ICC (inter-reader / perturbation reproducibility of features)
# --------------------------------------------------------------------------------------------------
def icc_per_feature(*ratings: pd.DataFrame, form: str = "ICC2") -> pd.Series:
    """ICC of every feature (column) between two or more readings of the same lesions.

    ``ratings``: k ≥ 2 DataFrames (e.g. features from reader 1's and reader 2's masks, or from perturbed
    masks), rows = lesions (same index in all, any order), columns = features (same set in all).
    Rows with a missing value in any reading are dropped per feature (pingouin ``nan_policy="omit"``).
    Returns a Series (index = feature names of the first DataFrame) of ICC values; a feature with no
    variance at all gives NaN (0/0) — callers must treat NaN as "not reproducible".

    Default ``form="ICC2"``: Shrout–Fleiss ICC(2,1) = McGraw–Wong ICC(A,1), two-way random effects,
    absolute agreement, single rater/measurement — the usual radiomics choice (Koo & Li 2016, J Chiropr
    Med 15:155), because a feature is only reproducible if the readers agree on its value, not merely on
    the ranking (consistency, ICC3 = ICC(C,1)), and the model will be applied to one reading.
    Accepted forms: ICC1, ICC2, ICC3, ICC1k, ICC2k, ICC3k and their names ICC(1,1), ICC(A,1)/ICC(2,1),
    ICC(C,1)/ICC(3,1), ... . Computed from two-way ANOVA mean squares vectorised over all features;
    equals ``pingouin.intraclass_corr`` to 1e-10 (tested), which loops one ANOVA per feature.
    """
    if form not in ICC_FORMS:
        raise UsradError("Cannot compute ICC", [Problem(
            f"unknown ICC form {form!r}; use one of {sorted(set(ICC_FORMS))}")])
    if len(ratings) < 2:
        raise UsradError("Cannot compute ICC", [Problem("need at least two readings (DataFrames)")])
    first = ratings[0]
    problems = []
    for j, r in enumerate(ratings[1:], start=2):
        missing_rows = first.index.difference(r.index)
        extra_rows = r.index.difference(first.index)
        missing_cols = first.columns.difference(r.columns)
        for lab in list(missing_rows[:10]):
            problems.append(Problem(f"lesion present in reading 1 but not in reading {j}", patient=str(lab)))
        for lab in list(extra_rows[:10]):
            problems.append(Problem(f"lesion present in reading {j} but not in reading 1", patient=str(lab)))
        for col in list(missing_cols[:10]):
            problems.append(Problem(f"feature missing from reading {j}", column=str(col)))
    if not first.index.is_unique:
        problems.append(Problem("lesion index of reading 1 is not unique"))
    if problems:
        raise UsradError("Readings do not describe the same lesions and features", problems)
    cols = first.columns
    try:
        y = np.stack([r.loc[first.index, cols].to_numpy(dtype=float) for r in ratings])  # (k, n, f)
    except (TypeError, ValueError) as exc:
        raise UsradError("Cannot compute ICC", [Problem(f"non-numeric feature values: {exc}")]) from exc
    k = y.shape[0]
    ok = np.all(np.isfinite(y), axis=0)                    # (n, f) complete rows per feature
    n = ok.sum(axis=0).astype(float)                       # (f,)
    y0 = np.where(ok[None], y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        grand = y0.sum(axis=(0, 1)) / (k * n)
        d = np.where(ok[None], y0 - grand, 0.0)            # centred (two-pass for precision)
        row_mean = d.mean(axis=0)                          # (n, f) subject means (centred)
        col_mean = d.sum(axis=1) / n                       # (k, f) rater means (centred)
        ss_total = np.sum(d ** 2, axis=(0, 1))
        ss_rows = k * np.sum(np.where(ok, row_mean, 0.0) ** 2, axis=0)
        ss_cols = n * np.sum(col_mean ** 2, axis=0)
        ss_err = ss_total - ss_rows - ss_cols
        msb = ss_rows / (n - 1)
        msj = ss_cols / (k - 1)
        mse = ss_err / ((n - 1) * (k - 1))
        msw = (ss_cols + ss_err) / (n * (k - 1))
        which = ICC_FORMS[form]
        icc = {
            "ICC1": (msb - msw) / (msb + (k - 1) * msw),
            "ICC2": (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n),
            "ICC3": (msb - mse) / (msb + (k - 1) * mse),
            "ICC1k": (msb - msw) / msb,
            "ICC2k": (msb - mse) / (msb + (msj - mse) / n),
            "ICC3k": (msb - mse) / msb,
        }[which]
    icc = np.where(n >= 2, icc, np.nan)
    return pd.Series(icc, index=cols, name=which, dtype=float)


# --------------------------------------------------------------------------------------------------
# summary row
# --------------------------------------------------------------------------------------------------
def performance_table(y, p, threshold: float, groups=None, n_boot: int = 2000, seed: int = 0,
                      level: float = LEVEL, validation: bool = True) -> dict:
    """One flat row of every headline metric (use ``pd.DataFrame([row, ...])`` to build a table).

    Keys: ``n, n_pos, n_patients`` (NaN without groups), ``auc, auc_boot_low, auc_boot_high,
    auc_delong_low, auc_delong_high``; ``threshold, tp, fp, tn, fn``; for each of ``sensitivity,
    specificity, accuracy, ppv, npv, f1``: the estimate and ``_low``/``_high`` (Wilson; F1 bootstrap);
    ``brier, cal_intercept(_low/_high), cal_slope(_low/_high), hl_statistic, hl_df, hl_p``.

    With ``groups`` (patient IDs) every interval is patient-level: the bootstrap (AUC, F1) resamples
    patients, the DeLong CI is the clustered one (Obuchowski 1997), the proportions get
    design-effect-adjusted Wilson intervals and the calibration intercept and slope cluster-robust CIs;
    with one image per patient these equal the image-level ones. ``validation``: the predictions were
    not fitted on these rows (test, external, out-of-fold) — Hosmer–Lemeshow then has df = G; pass
    ``False`` for apparent (training-set) predictions (df = G − 2), see :func:`hosmer_lemeshow`.
    Hosmer–Lemeshow treats images as independent.
    """
    y, p = _check_yp(y, p)
    g = _check_groups(groups, len(y))
    _check_options(level=level, n_boot=n_boot, seed=seed, validation=validation)
    boot = bootstrap_auc(y, p, groups=g, n_boot=n_boot, seed=seed, level=level)
    dl = delong_ci(y, p, level=level, groups=g)
    tm = threshold_metrics(y, p, threshold, groups=g, n_boot=n_boot, seed=seed, level=level)
    cal = calibration_intercept_slope(y, p, level=level, groups=g)
    hl = hosmer_lemeshow(y, p, validation=validation)
    row = {"n": len(y), "n_pos": int(y.sum()),
           "n_patients": float(len(np.unique(g))) if g is not None else float("nan"),
           "auc": boot["auc"], "auc_boot_low": boot["low"], "auc_boot_high": boot["high"],
           "auc_delong_low": dl["low"], "auc_delong_high": dl["high"],
           "threshold": float(threshold), **{k: tm.attrs[k] for k in ("tp", "fp", "tn", "fn")}}
    for metric, r in tm.iterrows():
        row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = r["estimate"], r["low"], r["high"]
    row.update(brier=brier_score(y, p),
               cal_intercept=cal["intercept"], cal_intercept_low=cal["intercept_low"],
               cal_intercept_high=cal["intercept_high"], cal_slope=cal["slope"],
               cal_slope_low=cal["slope_low"], cal_slope_high=cal["slope_high"],
               hl_statistic=hl["statistic"], hl_df=hl["df"], hl_p=hl["p_value"])
    return row
