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
- ``groups`` (patient IDs, one per image) makes the bootstrap resample patients instead of images.
- Bad input (non-binary outcome, NaN probability, a single class, mismatched lengths) raises
  :class:`usrad.errors.UsradError` naming the offending argument.

Public API
- Discrimination: :func:`auc`, :func:`bootstrap_auc`, :func:`delong_auc_cov`, :func:`delong_ci`,
  :func:`delong_test`.
- At a threshold: :func:`confusion`, :func:`wilson_ci`, :func:`threshold_metrics`, :func:`youden_threshold`.
- Calibration: :func:`brier_score`, :func:`calibration_intercept_slope`, :func:`reliability_curve`,
  :func:`hosmer_lemeshow`.
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
    return g


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


def _image_weights(y: np.ndarray, groups: np.ndarray | None, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_images)`` resampling counts for the stratified (patient-level if groups) bootstrap."""
    unit_of_image, stratum = _bootstrap_units(y, groups)
    draws = _draw_units(stratum, n_boot, seed)
    counts = _unit_counts(draws, len(stratum))
    return counts[:, unit_of_image]


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
    w = _image_weights(y, g, n_boot, seed)
    samples = _weighted_auc(y, p, w)
    lo, hi = _percentile_ci(samples, level)
    return {"auc": auc(y, p), "low": lo, "high": hi, "n_boot": int(n_boot),
            "n_failed": int(np.sum(~np.isfinite(samples)))}


# --------------------------------------------------------------------------------------------------
# DeLong (fast algorithm of Sun & Xu 2014)
# --------------------------------------------------------------------------------------------------
def delong_auc_cov(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of ``k`` scores on the same cases and their DeLong covariance matrix.

    ``scores`` is ``(k, n)`` (or a sequence of k arrays). Fast DeLong (Sun & Xu 2014, IEEE SPL 21:1389):
    the structural components come from midranks of the pooled, case-only and control-only scores,
    O(k·n·log n). Equals pROC's ``var()``/``cov()`` (checked on aSAH to 1e-12).
    """
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    y, _ = _check_yp(y, s[0])
    for i in range(1, s.shape[0]):
        _check_yp(y, s[i], name_p=f"scores[{i}]")
    case, ctrl = s[:, y == 1], s[:, y == 0]
    m, n = case.shape[1], ctrl.shape[1]
    tz = stats.rankdata(np.concatenate([case, ctrl], axis=1), axis=1)
    tx = stats.rankdata(case, axis=1)
    ty = stats.rankdata(ctrl, axis=1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:, :m] - tx) / n           # placements of cases
    v01 = 1.0 - (tz[:, m:] - ty) / m     # placements of controls
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(s), len(s)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(s), len(s)))
    return aucs, s10 / m + s01 / n


def delong_ci(y, p, level: float = LEVEL) -> dict:
    """AUC with its DeLong CI: AUC ± z·sqrt(var), clipped to [0, 1] (pROC ``ci.auc(method="delong")``).

    Assumes independent observations: with several images per patient prefer :func:`bootstrap_auc`
    with ``groups``.
    """
    y, p = _check_yp(y, p)
    aucs, cov = delong_auc_cov(y, p[None, :])
    var = float(cov[0, 0])
    z = stats.norm.ppf(1 - (1 - level) / 2)
    a = float(aucs[0])
    half = float(z * np.sqrt(var))
    return {"auc": a, "var": var, "low": max(0.0, a - half), "high": min(1.0, a + half)}


def delong_test(y, p1, p2, alternative: str = "two-sided", level: float = LEVEL) -> dict:
    """DeLong's test for two correlated AUCs (two models scored on the same cases; pROC ``roc.test``).

    Returns ``auc1``, ``auc2``, ``diff`` = auc1 − auc2, ``var_diff``, ``z``, ``p_value`` (``alternative``
    "two-sided", "greater": auc1 > auc2, or "less") and the CI of the difference (``low``, ``high``,
    always two-sided). Identical ROC curves give z = 0, p = 1 (as pROC).
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise UsradError("Cannot compute metrics", [Problem(
            f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")])
    y, p1 = _check_yp(y, p1, name_p="p1")
    _, p2 = _check_yp(y, p2, name_p="p2")
    aucs, cov = delong_auc_cov(y, np.vstack([p1, p2]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 0 or not np.isfinite(var):
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
    zc = stats.norm.ppf(1 - (1 - level) / 2)
    half = float(zc * np.sqrt(var))
    return {"auc1": float(aucs[0]), "auc2": float(aucs[1]), "diff": diff, "var_diff": var, "z": float(z),
            "p_value": float(min(1.0, pval)), "low": diff - half, "high": diff + half,
            "alternative": alternative}


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


def wilson_ci(successes, n, level: float = LEVEL) -> tuple:
    """Wilson score interval (statsmodels ``proportion_confint(method="wilson")``); NaN where ``n == 0``.

    Vectorised over arrays of counts; scalars give a tuple of floats.
    """
    from statsmodels.stats.proportion import proportion_confint

    k = np.asarray(successes, dtype=float)
    nn = np.asarray(n, dtype=float)
    safe = np.where(nn > 0, nn, 1.0)
    lo, hi = proportion_confint(k, safe, alpha=1 - level, method="wilson")
    lo, hi = np.where(nn > 0, lo, np.nan), np.where(nn > 0, hi, np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def threshold_metrics(y, p, threshold: float, groups=None, n_boot: int = 2000, seed: int = 0,
                      level: float = LEVEL) -> pd.DataFrame:
    """Sensitivity, specificity, accuracy, PPV, NPV, F1 at ``threshold``, each with a 95% CI.

    Proportions get Wilson score intervals (these treat the images as independent). F1 is not a
    binomial proportion: its CI is the percentile bootstrap over the same stratified resamples as
    :func:`bootstrap_auc` (patients when ``groups`` is given). Returns a DataFrame indexed by metric with
    columns ``estimate, low, high, numerator, denominator, ci_method``; the counts are in ``.attrs``
    (``tp, fp, tn, fn``) and also as rows of :func:`confusion`.
    """
    y, p = _check_yp(y, p)
    g = _check_groups(groups, len(y))
    c = confusion(y, p, threshold)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    n = tp + fp + tn + fn
    props = {
        "sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp), "accuracy": (tp + tn, n),
        "ppv": (tp, tp + fp), "npv": (tn, tn + fn),
    }
    rows = []
    for name, (k, d) in props.items():
        lo, hi = wilson_ci(k, d, level)
        rows.append((name, _ratio(k, d), lo, hi, k, d, "wilson"))
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    w = _image_weights(y, g, n_boot, seed)
    pred, pos = p >= threshold, y == 1
    btp, bfp, bfn = w @ (pred & pos), w @ (pred & ~pos), w @ (~pred & pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        bf1 = np.where(2 * btp + bfp + bfn > 0, 2 * btp / (2 * btp + bfp + bfn), np.nan)
    lo, hi = _percentile_ci(bf1, level)
    rows.append(("f1", f1, lo, hi, 2 * tp, 2 * tp + fp + fn, f"bootstrap percentile ({n_boot})"))
    out = pd.DataFrame(rows, columns=["metric", "estimate", "low", "high", "numerator", "denominator",
                                      "ci_method"]).set_index("metric")
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
    return float(np.mean((p - y) ** 2))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, EPS, 1 - EPS)
    return np.log(q) - np.log1p(-q)


def calibration_intercept_slope(y, p, level: float = LEVEL) -> dict:
    """Calibration-in-the-large and calibration slope (statsmodels binomial GLM), with Wald CIs.

    - intercept: ``logit P(y=1) = a + offset(logit p)`` — 0 when the mean risk is right;
    - slope: ``logit P(y=1) = a + b·logit p`` — 1 when the spread is right (< 1: overfitted, too extreme).
    ``p`` is clipped to [1e-12, 1 − 1e-12] before the logit. A fit that fails (separation) gives NaN.
    """
    import statsmodels.api as sm

    y, p = _check_yp(y, p)
    lp = _logit(p)
    z = stats.norm.ppf(1 - (1 - level) / 2)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit_a = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=lp).fit()
            a, se_a = float(fit_a.params[0]), float(fit_a.bse[0])
        except Exception:  # noqa: BLE001 — statsmodels raises several types on separation/overflow
            a = se_a = float("nan")
        try:
            fit_b = sm.GLM(y, sm.add_constant(lp, has_constant="add"), family=sm.families.Binomial()).fit()
            b, se_b = float(fit_b.params[1]), float(fit_b.bse[1])
        except Exception:  # noqa: BLE001
            b = se_b = float("nan")
    z = float(z)
    out.update(intercept=a, intercept_low=a - z * se_a, intercept_high=a + z * se_a,
               slope=b, slope_low=b - z * se_b, slope_high=b + z * se_b)
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
    b = _quantile_bins(p, n_bins)
    df = pd.DataFrame({"bin": b, "y": y, "p": p})
    agg = df.groupby("bin").agg(n=("y", "size"), events=("y", "sum"), mean_predicted=("p", "mean"),
                                p_min=("p", "min"), p_max=("p", "max"))
    agg["observed"] = agg["events"] / agg["n"]
    agg["observed_low"], agg["observed_high"] = wilson_ci(agg["events"].to_numpy(), agg["n"].to_numpy(), level)
    return agg.reset_index()[["bin", "n", "events", "mean_predicted", "observed", "observed_low",
                              "observed_high", "p_min", "p_max"]]


def hosmer_lemeshow(y, p, g: int = 10) -> dict:
    """Hosmer–Lemeshow goodness-of-fit test on ``g`` quantile groups of ``p``.

    ResourceSelection ``hoslem.test`` / easystats ``performance_hosmer`` algorithm: breaks at the
    (type 7) quantiles of ``p``, duplicate breaks dropped, right-closed bins including the lowest;
    χ² = Σ over bins and both outcomes of (O − E)²/E; df = (number of non-empty bins) − 2.
    Returns ``{"statistic", "df", "p_value", "table"}``. Reproduces 5.137 (df 8, p 0.743) on mtcars.
    """
    y, p = _check_yp(y, p, need_both=False)
    b = _quantile_bins(p, g)
    n_b = np.bincount(b)
    keep = n_b > 0
    o1 = np.bincount(b, weights=y)[keep]
    e1 = np.bincount(b, weights=p)[keep]
    n_b = n_b[keep]
    o0, e0 = n_b - o1, n_b - e1
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = float(np.sum((o1 - e1) ** 2 / e1) + np.sum((o0 - e0) ** 2 / e0))
    df = int(keep.sum() - 2)
    pval = float(stats.chi2.sf(chi2, df)) if df > 0 else float("nan")
    table = pd.DataFrame({"n": n_b, "observed_1": o1, "expected_1": e1, "observed_0": o0, "expected_0": e0})
    return {"statistic": chi2, "df": df, "p_value": pval, "table": table}


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
                      level: float = LEVEL) -> dict:
    """One flat row of every headline metric (use ``pd.DataFrame([row, ...])`` to build a table).

    Keys: ``n, n_pos, n_patients`` (NaN without groups), ``auc, auc_boot_low, auc_boot_high,
    auc_delong_low, auc_delong_high``; ``threshold, tp, fp, tn, fn``; for each of ``sensitivity,
    specificity, accuracy, ppv, npv, f1``: the estimate and ``_low``/``_high`` (Wilson; F1 bootstrap);
    ``brier, cal_intercept(_low/_high), cal_slope(_low/_high), hl_statistic, hl_df, hl_p``.
    The bootstrap (AUC and F1) resamples patients when ``groups`` is given; DeLong and Wilson intervals
    treat images as independent.
    """
    y, p = _check_yp(y, p)
    g = _check_groups(groups, len(y))
    boot = bootstrap_auc(y, p, groups=g, n_boot=n_boot, seed=seed, level=level)
    dl = delong_ci(y, p, level=level)
    tm = threshold_metrics(y, p, threshold, groups=g, n_boot=n_boot, seed=seed, level=level)
    cal = calibration_intercept_slope(y, p, level=level)
    hl = hosmer_lemeshow(y, p)
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
