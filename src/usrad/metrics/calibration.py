"""Calibration: Brier score, calibration intercept/slope, smoothed (spline) curve, reliability curve, Hosmer–Lemeshow.

Every function needs probabilities in [0, 1] (a score is refused).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import Problem, UsradError
from .bootstrap import image_weights, resampling_degenerate
from .checks import LEVEL, RCS_KNOT_QUANTILES, check_groups, check_options, check_probabilities, check_yp, cluster_codes
from .proportions import wilson_ci

#: Probabilities are clipped to [EPS, 1 - EPS] before taking logits (calibration models only).
EPS = 1e-12


def brier_score(y, p) -> float:
    """Mean squared error of the probabilities."""
    y, p = check_yp(y, p, need_both=False)
    check_probabilities(p)
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

    y, p = check_yp(y, p)
    check_probabilities(p)
    g = check_groups(groups, len(y))
    check_options(level=level)
    codes = None if g is None else cluster_codes(g)[0]
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
    y, p = check_yp(y, p)
    check_probabilities(p)
    g = check_groups(groups, len(y))
    check_options(level=level, n_boot=n_boot, seed=seed, knots=knots, n_grid=n_grid)
    lp = _logit(p)
    t = _rcs_knots(lp, knots)
    X = _rcs_basis(lp, t)
    grid = np.linspace(p.min(), p.max(), n_grid) if grid is None else _check_grid(grid)
    Xg = _rcs_basis(_logit(grid), t)
    w = np.vstack([np.ones((1, len(y))), image_weights(y, g, n_boot, seed, stratified=False)])
    eta = _batched_logistic(X, y.astype(float), w) @ Xg.T            # (1 + n_boot, n_grid), logit scale
    ok = np.all(np.isfinite(eta[1:]), axis=1) & (not resampling_degenerate(y, g, stratified=False))
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
    y, p = check_yp(y, p, need_both=False)
    check_probabilities(p)
    check_options(n_bins=n_bins, level=level)
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
    y, p = check_yp(y, p, need_both=False)
    check_probabilities(p)
    check_options(g=g, validation=validation)
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
