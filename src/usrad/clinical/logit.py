"""One logistic model of the clinical tables: ML when the MLE exists, Firth's penalised likelihood under
separation, and the likelihood-ratio test of a sub-model."""
from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, stats

from .firth import firth_max, profile_bound

log = logging.getLogger("usrad.clinical")  # the package's logger, as before the split

__all__ = ["FIRTH_FALLBACK", "FIRTH_SETTINGS", "MAX_ABS_STD_COEF", "Z95", "LogitFit", "fit_logit", "lr_pvalue",
           "warn_once"]

Z95 = 1.959963984540054
#: An ML coefficient above this on the z-scored scale (OR > e^10 per SD) is treated as separation.
MAX_ABS_STD_COEF = 10.0
FIRTH_SETTINGS = dict(backend="numpy", max_iter=200, gtol=1e-6, xtol=1e-6)
FIRTH_FALLBACK = dict(backend="numpy", max_iter=500, gtol=1e-4, xtol=1e-4, max_step=1.0)

@dataclass
class LogitFit:
    """One fitted logistic model: ``method`` "ML" or "Firth"; per term (no intercept) the log-OR, its 95 % CI
    (Wald for ML, profile penalised likelihood for Firth) and Wald p; ``llf`` the (penalised) log-likelihood."""

    method: str
    terms: list
    coef: np.ndarray
    ci: np.ndarray
    p_wald: np.ndarray
    llf: float
    note: str = ""
    design: np.ndarray | None = field(default=None, repr=False)  # [X, 1] of a Firth fit: its penalised LR tests


def _fit_ml(y: np.ndarray, X: pd.DataFrame):
    """statsmodels Logit with intercept; None when it cannot be estimated (separation, singular design)."""
    import statsmodels.api as sm

    design = sm.add_constant(X.astype(float), has_constant="add")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in ("newton", "bfgs"):
            try:
                res = sm.Logit(y.astype(float), design).fit(disp=0, maxiter=200, method=method)
            except Exception:  # noqa: BLE001 - LinAlgError, PerfectSeparationError: not estimable
                continue
            if res.mle_retvals.get("converged", False) and np.all(np.isfinite(res.bse)):
                return res
    return None


def _null_llf(y: np.ndarray) -> float:
    """Log-likelihood of the intercept-only model."""
    n1, n = float(y.sum()), float(len(y))
    if n1 in (0.0, n):
        return 0.0
    return n1 * np.log(n1 / n) + (n - n1) * np.log(1 - n1 / n)


def _separated_terms(y: np.ndarray, X: pd.DataFrame) -> list[str] | None:
    """Terms whose ML estimate is infinite (Konis' linear programme on z-scored columns); [] none; None: the
    check could not run."""
    from firthmodels import detect_separation

    A = X.to_numpy(dtype=float)
    Z = (A - A.mean(axis=0)) / A.std(axis=0)
    try:
        res = detect_separation(Z, y, fit_intercept=True)
    except (linalg.LinAlgError, RuntimeError, ValueError):
        return None
    if not res.separation:
        return []
    return [t for t, d in zip(X.columns, res.directions[:-1]) if d != 0] or ["(intercept)"]


def _ml_result(res, X: pd.DataFrame) -> LogitFit:
    cols = list(X.columns)
    b = np.array([float(res.params[c]) for c in cols])
    se = np.array([float(res.bse[c]) for c in cols])
    return LogitFit("ML", cols, b, np.column_stack([b - Z95 * se, b + Z95 * se]),
                    np.array([float(res.pvalues[c]) for c in cols]), float(res.llf))


def fit_logit(y: np.ndarray, X: pd.DataFrame) -> LogitFit | None:
    """Logistic regression of ``y`` on the full-rank columns ``X`` (plus intercept): ML when the MLE exists,
    Firth's penalised likelihood when the data are separated or ML fails; None if neither can be fitted."""
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2 or X.shape[1] == 0 or X.shape[1] + 1 > len(y):
        return None
    separated = _separated_terms(y, X)
    if separated:
        return _fit_firth(y, X, f"Firth (separation: the ML estimate of {', '.join(separated)} is infinite)")
    res = _fit_ml(y, X)
    if res is None:
        return _fit_firth(y, X, "Firth (separation suspected: the ML fit did not converge)")
    fit = _ml_result(res, X)
    big = [t for t, b, sd in zip(fit.terms, fit.coef, X.std(axis=0, ddof=0)) if abs(b) * sd > MAX_ABS_STD_COEF]
    if big:
        return _fit_firth(y, X, f"Firth (near separation: ML log-OR of {', '.join(big)} above "
                                f"{MAX_ABS_STD_COEF:g} per SD)")
    return fit


def _fit_firth(y: np.ndarray, X: pd.DataFrame, note: str) -> LogitFit | None:
    """Firth logistic regression (firthmodels): estimates, profile penalised-likelihood CIs, Wald p."""
    from firthmodels import FirthLogisticRegression

    A = X.to_numpy(dtype=float)
    k = A.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for settings in (FIRTH_SETTINGS, FIRTH_FALLBACK):  # tight tolerances can stall at rounding level
                model = FirthLogisticRegression(**settings).fit(A, y)
                if model.converged_:
                    break
            else:
                warn_once(f"clinical tables: Firth fit did not converge on {', '.join(map(str, X.columns))}")
                return None
            ci = np.asarray(model.conf_int(method="pl", features=list(range(k))), dtype=float)[:k]
        except (linalg.LinAlgError, ValueError, FloatingPointError) as err:
            warn_once(f"clinical tables: Firth fit failed on {', '.join(map(str, X.columns))} ({err})")
            return None
    b = np.asarray(model.coef_, dtype=float)
    design = np.column_stack([A, np.ones(len(A))])
    beta = np.concatenate([b, [float(model.intercept_)]])
    llf, _ = firth_max(design, y.astype(float), np.eye(k + 1), beta)  # same objective as the constrained fits
    llf = llf if np.isfinite(llf) else float(model.loglik_)
    se = np.asarray(model.bse_, dtype=float)[:k]
    for i, j in zip(*np.nonzero(~np.isfinite(ci))):  # Venzon-Moolgavkar did not converge: bracket and bisect
        ci[i, j] = profile_bound(design, y.astype(float), i, beta, llf, se[i], -1 if j == 0 else 1)
    missing = ~np.isfinite(ci)
    if missing.any():
        ci = np.where(missing, np.column_stack([b - Z95 * se, b + Z95 * se]), ci)
        note += "; Wald CI for " + ", ".join(X.columns[np.flatnonzero(missing.any(axis=1))]) + \
                " (profile likelihood did not converge)"
    warn_once(f"clinical tables: {note}; columns {', '.join(map(str, X.columns))}")
    return LogitFit("Firth", list(X.columns), b, ci, np.asarray(model.pvalues_, dtype=float)[:k], llf, note, design)

def lr_pvalue(full: LogitFit | None, y: np.ndarray, reduced: pd.DataFrame, df: int) -> float:
    """Likelihood-ratio p of ``full`` against the sub-model on ``reduced``'s columns (``df`` fewer parameters):
    ML → refit of the sub-model; Firth → penalised LR test (sub-model maximised under the full penalty)."""
    if full is None or df <= 0:
        return float("nan")
    if full.method == "ML":
        if reduced.shape[1] == 0:
            red_llf = _null_llf(y)
        else:
            res = _fit_ml(y, reduced)
            if res is None:
                return float("nan")
            red_llf = float(res.llf)
    else:
        R = np.column_stack([reduced.to_numpy(dtype=float), np.ones(len(y))])
        T = np.linalg.lstsq(full.design, R, rcond=None)[0]  # R ⊂ span(design): β = Tγ
        red_llf, ok = firth_max(full.design, y.astype(float), T)
        if not ok:
            return float("nan")
    stat = max(2.0 * (full.llf - red_llf), 0.0)
    return float(stats.chi2.sf(stat, df))


@functools.lru_cache(maxsize=256)
def warn_once(message: str) -> None:
    """Log ``message`` once per process (the selectors refit in every CV fold would repeat it)."""
    log.warning(message)
