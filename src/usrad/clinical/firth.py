"""Firth's penalised likelihood, the numerics: the penalised log-likelihood, its (constrained) maximum and the
profile penalised-likelihood bounds of a coefficient."""
from __future__ import annotations

import numpy as np
from scipy import linalg, stats
from scipy.special import expit

__all__ = ["MAX_ABS_LOG_OR", "firth_max", "profile_bound"]

#: |log OR| or a |log CI bound| above this (OR > 1e13) is not a usable number: NaN with a note.
MAX_ABS_LOG_OR = 30.0


def profile_bound(D: np.ndarray, y: np.ndarray, i: int, beta: np.ndarray, llf: float, se: float,
                  side: int) -> float:
    """The 95 % profile penalised-likelihood bound of coefficient ``i`` on ``side`` (-1 lower, +1 upper):
    where max over the others of l*(β | β_i = b) falls 3.84/2 below ``llf``; NaN if not bracketed."""
    from scipy.optimize import brentq

    target = llf - stats.chi2.ppf(0.95, 1) / 2
    T = np.delete(np.eye(len(beta)), i, axis=1)

    def gap(b: float) -> float:
        offset = np.zeros(len(beta))
        offset[i] = b
        ll, _ = firth_max(D, y, T, np.delete(beta, i), offset=offset)  # unconverged: BFGS's best, still a bound
        return ll - target

    step, inner = max(float(se) if np.isfinite(se) else 1.0, 0.1), float(beta[i])
    for _ in range(12):
        outer = float(beta[i]) + side * step
        g = gap(outer)
        if not np.isfinite(g) or abs(outer) > MAX_ABS_LOG_OR:
            return float("nan")
        if g < 0:
            try:
                return float(brentq(gap, min(inner, outer), max(inner, outer), xtol=1e-6))
            except (ValueError, RuntimeError):  # a NaN inside the bracket
                return float("nan")
        inner, step = outer, step * 2
    return float("nan")


def _penalised(D: np.ndarray, y: np.ndarray, beta: np.ndarray):
    """Firth's penalised log-likelihood l(β) + ½ log|I(β)|, its gradient (modified score) and the augmented
    information X'diag((1 + h)p(1 - p))X used for the Newton step."""
    eta = D @ beta
    p = expit(eta)
    sw = np.sqrt(p * (1 - p))
    XtW = D.T * sw
    info = XtW @ XtW.T
    try:
        chol = linalg.cho_factor(info, lower=True)
    except linalg.LinAlgError:
        return -np.inf, None, info
    logdet = 2.0 * np.log(np.diag(chol[0])).sum()
    h = np.einsum("ij,ij->j", linalg.cho_solve(chol, XtW), XtW)
    ll = float(np.sum(y * eta - np.logaddexp(0.0, eta)) + 0.5 * logdet)
    XtWa = D.T * (sw * np.sqrt(1.0 + h))  # augmented information (as firthmodels): a better Newton step
    return ll, D.T @ (y - p + h * (0.5 - p)), XtWa @ XtWa.T


def firth_max(D: np.ndarray, y: np.ndarray, T: np.ndarray, start: np.ndarray | None = None,
              max_iter: int = 200, offset: np.ndarray | None = None) -> tuple[float, bool]:
    """Max of the penalised log-likelihood of the full design ``D`` over β = offset + Tγ (Newton with step
    halving): ``T`` = identity → the Firth fit, columns of the identity → β_S = 0 (Heinze & Schemper's
    constrained fit with the full model's penalty), any ``T`` → a linear sub-model; ``offset`` fixes
    coefficients at other values (profile likelihood). ``start``: γ to start from. ``(llf, converged)``."""
    base = np.zeros(D.shape[1]) if offset is None else offset
    if start is None:
        gamma = np.zeros(T.shape[1])
    else:
        gamma = np.asarray(start, dtype=float) if len(start) == T.shape[1] else np.linalg.lstsq(T, start, rcond=None)[0]
    ll, U, info = _penalised(D, y, base + T @ gamma)
    scale = max(1.0, float(len(y)))
    for _ in range(max_iter):
        if U is None:
            return float("nan"), False
        grad = T.T @ U
        if np.max(np.abs(grad), initial=0.0) / scale < 1e-11:
            return ll, True
        step = np.linalg.lstsq(T.T @ info @ T, grad, rcond=None)[0]
        step *= min(1.0, 5.0 / max(np.max(np.abs(step)), 1e-300))
        for _ in range(40):
            new = _penalised(D, y, base + T @ (gamma + step))
            if new[0] >= ll - 1e-12:
                break
            step /= 2
        else:
            break
        gamma = gamma + step
        ll, U, info = new
        if np.max(np.abs(step)) < 1e-12:
            return ll, True
    return _polish(D, y, T, base, gamma, scale)


def _polish(D, y, T, base, gamma, scale) -> tuple[float, bool]:
    """BFGS on the exact gradient where the scoring steps crawl (a flat profile near separation)."""
    from scipy.optimize import minimize

    def objective(g):
        ll, U, _ = _penalised(D, y, base + T @ g)
        return (-ll, -(T.T @ U)) if U is not None else (np.inf, np.zeros_like(g))

    res = minimize(objective, gamma, jac=True, method="BFGS", options=dict(gtol=1e-8 * scale, maxiter=2000))
    ll, U, _ = _penalised(D, y, base + T @ res.x)
    ok = U is not None and np.max(np.abs(T.T @ U), initial=0.0) / scale < 1e-6
    return float(ll), bool(ok)
