"""Clinical predictors: encoding, patient-level screening and the odds-ratio tables ("Table 2").

The clinical part of the modelling (docs/modelling.md §4), fitted on training rows only:

* :class:`ClinicalEncoder`: raw clinical columns → numeric design (one-hot ``var[level]``).
* :func:`clinical_logit_tables`: univariable and multivariable logistic regressions → Table 2, the
  selected and the independent variables.
* :class:`ClinicalSelector`: keeps the columns of the selected (or independent) variables in a pipeline.
* :func:`clinical_branch`: ``ColumnPicker → ClinicalEncoder [→ ClinicalSelector]``.

What makes the tables honest:

* **One row per patient.** Clinical predictors and outcomes are patient-level, so with two images of a
  patient an image-level screen would count the patient twice (a null variable passes p < 0.05 about
  16 % of the time instead of 5 %). The tables are computed on one row per patient: the ``patient_id``
  level of the design matrix's index (:func:`usrad.models.build_design`) or ``groups``; an image-level
  column (``x-image-level``: BI-RADS, size) that differs between a patient's images is averaged.
* **Full rank.** Before every fit the encoded columns are checked in order (config order): a constant
  column, or one that is a linear combination of the intercept and the columns kept before it (``her2``
  and ``subtype[HER2]`` when HER2+ ⇔ subtype HER2), is dropped, logged and listed in the table's
  ``note`` (which column, aliased with what) and in ``table.attrs["dropped"]``.
* **Separation.** A model whose data are (quasi-)completely separated (linear programme of Konis 2007,
  ``firthmodels.detect_separation``), whose ML fit does not converge or gives a coefficient above
  :data:`MAX_ABS_STD_COEF` per SD, is fitted by Firth's penalised likelihood (Heinze & Schemper 2002,
  ``firthmodels.FirthLogisticRegression``): finite ORs with profile penalised-likelihood CIs and
  penalised likelihood-ratio tests; the table says so (``method`` ``Firth``, ``note`` "Firth
  (separation…)").
* An OR or CI that still cannot be estimated is NaN with the reason in ``note`` — never inf.
"""
from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, stats
from scipy.special import expit
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .selection import ColumnPicker

log = logging.getLogger(__name__)

__all__ = ["TABLE_COLUMNS", "ClinicalEncoder", "ClinicalSelector", "clinical_branch", "clinical_logit_tables",
           "fit_logit", "full_rank_columns", "patient_ids", "patient_level"]

Z95 = 1.959963984540054
#: Columns of both tables before the per-table flag (``selected`` / ``independent``), then the added ones.
TABLE_COLUMNS = ["model", "variable", "term", "OR", "ci_low", "ci_high", "p_wald", "p_variable"]
ADDED_COLUMNS = ["method", "note", "n_patients"]
#: A column whose residual on [intercept, earlier columns] (both z-scored) is below this is aliased.
RANK_TOL = 1e-7
#: An ML coefficient above this on the z-scored scale (OR > e^10 per SD) is treated as separation.
MAX_ABS_STD_COEF = 10.0
#: |log OR| or a |log CI bound| above this (OR > 1e13) is not a usable number: NaN with a note.
MAX_ABS_LOG_OR = 30.0
FIRTH_SETTINGS = dict(backend="numpy", max_iter=200, gtol=1e-6, xtol=1e-6)
FIRTH_FALLBACK = dict(backend="numpy", max_iter=500, gtol=1e-4, xtol=1e-4, max_step=1.0)


# --------------------------------------------------------------------------- encoding
class ClinicalEncoder(TransformerMixin, BaseEstimator):
    """Raw clinical columns → numeric design: categorical ones one-hot (reference = most frequent training
    level, columns ``var[level]``), numeric ones as floats. ``impute=True`` fills NaN with the training
    median (numeric) / most frequent level (categorical); otherwise NaN is an error. A level unseen in
    training is encoded as the reference level."""

    def __init__(self, columns=None, categorical=(), impute=False):
        self.columns = columns
        self.categorical = categorical
        self.impute = impute

    def fit(self, X, y=None):
        cols = list(X.columns) if self.columns is None else list(self.columns)
        cat = set(self.categorical)
        self.feature_names_in_ = np.asarray(cols, dtype=object)
        self.n_features_in_ = len(cols)
        self.levels_, self.reference_, self.fill_ = {}, {}, {}
        out = []
        for c in cols:
            if c in cat:
                s = X[c].dropna().astype(str)
                counts = s.value_counts()
                levels = sorted(counts.index)
                # no value in these rows (possible in a CV fold when imputing): a constant, all-reference column
                ref = sorted(counts[counts == counts.max()].index)[0] if len(counts) else "(missing)"
                self.levels_[c] = [lv for lv in levels if lv != ref]
                self.reference_[c] = ref
                self.fill_[c] = ref
                out += [f"{c}[{lv}]" for lv in self.levels_[c]]
            else:
                median = float(pd.to_numeric(X[c], errors="coerce").median())
                self.fill_[c] = median if np.isfinite(median) else 0.0  # no value in these rows: a constant
                out.append(c)
        self.feature_names_out_ = out
        return self

    def transform(self, X):
        check_is_fitted(self, "feature_names_out_")
        cols = {}
        for c in self.feature_names_in_:
            s = X[c]
            if s.isna().any():
                if not self.impute:
                    raise ValueError(f"ClinicalEncoder: column {c!r} has missing values (clinical.missing: refuse)")
                s = s.fillna(self.fill_[c])
            if c in self.levels_:
                s = s.astype(str)
                for lv in self.levels_[c]:
                    cols[f"{c}[{lv}]"] = (s == lv).astype(float).to_numpy()
            else:
                cols[c] = pd.to_numeric(s).astype(float).to_numpy()
        return pd.DataFrame(cols, index=X.index)[self.feature_names_out_]

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_out_, dtype=object)


def _variable_of(column: str) -> str:
    return column.split("[", 1)[0]


# --------------------------------------------------------------------------- one row per patient
def patient_ids(X) -> np.ndarray | None:
    """The ``patient_id`` level of ``X.index`` (the design matrix's MultiIndex), or None if it has none."""
    index = getattr(X, "index", None)
    if isinstance(index, pd.MultiIndex) and "patient_id" in index.names:
        return index.get_level_values("patient_id").astype(str).to_numpy()
    return None


def patient_level(Xenc: pd.DataFrame, y, groups=None) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """``(X, y, averaged)``: one row per patient, in order of first appearance.

    ``groups``: a patient id per row; None → :func:`patient_ids` of ``Xenc`` (no such level: every row is a
    patient). The outcome must be the same on all rows of a patient (ValueError naming the patient). A column
    that differs between a patient's rows (an image-level predictor) is averaged; ``averaged`` lists them.
    """
    y = np.asarray(y, dtype=float)
    X = Xenc.astype(float)
    if len(y) != len(X) or not len(y):
        raise ValueError(f"clinical tables: {len(X)} rows of predictors and {len(y)} outcomes")
    if groups is None:
        groups = patient_ids(Xenc)
    if groups is None:
        return X.reset_index(drop=True), y.astype(int), []
    groups = np.asarray(groups)
    if len(groups) != len(y):
        raise ValueError(f"clinical tables: {len(groups)} patient ids for {len(y)} rows")
    codes, uniques = pd.factorize(pd.Series(groups).astype(str), sort=False)
    A = np.column_stack([X.to_numpy(), y])
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    A = A[order]
    spread = np.maximum.reduceat(A, starts, axis=0) - np.minimum.reduceat(A, starts, axis=0)
    means = np.add.reduceat(A, starts, axis=0) / np.diff(np.r_[starts, len(A)])[:, None]
    bad = np.flatnonzero(spread[:, -1] > 0)
    if len(bad):
        raise ValueError(f"clinical tables: the outcome differs between the rows of patient(s) "
                         f"{', '.join(map(str, uniques[bad][:5]))}; outcomes are per patient")
    averaged = [c for c, d in zip(X.columns, spread[:, :-1].max(axis=0, initial=0.0)) if d > 0]
    out = pd.DataFrame(means[:, :-1], columns=X.columns, index=pd.Index(uniques, name="patient_id"))
    return out, means[:, -1].astype(int), averaged


# --------------------------------------------------------------------------- rank
def full_rank_columns(X: pd.DataFrame, columns=None) -> tuple[list[str], list[dict]]:
    """Greedy rank check in column order: ``(kept, dropped)``.

    A column is kept when it adds rank to ``[intercept, columns kept before it]``; otherwise it is dropped
    with a reason: ``"constant in these patients"`` or ``"aliased with a, b (…)"`` naming the kept columns it
    is a linear combination of (with the intercept). Deterministic: the earlier column (config order) stays.
    """
    cols = list(X.columns if columns is None else columns)
    A = X[cols].to_numpy(dtype=float)
    kept, dropped, basis, zs = [], [], [], []
    for j, c in enumerate(cols):
        v = A[:, j] - A[:, j].mean() if len(A) else A[:, j]
        scale = max(1.0, float(np.max(np.abs(A[:, j]), initial=0.0)))
        norm = float(np.linalg.norm(v))
        if not np.isfinite(norm) or norm <= 1e-12 * scale * np.sqrt(max(len(v), 1)):
            dropped.append(dict(term=c, reason="constant in these patients (no information)"))
            continue
        z = v / norm
        r = z.copy()
        for q in basis:
            r -= (q @ r) * q
        res = float(np.linalg.norm(r))
        if res < RANK_TOL:
            coef = np.linalg.lstsq(np.column_stack(zs), z, rcond=None)[0]
            partners = [kept[i] for i in np.flatnonzero(np.abs(coef) > 1e-6)] or kept[:1]
            them = "it" if len(partners) == 1 else "them"
            dropped.append(dict(term=c, reason=f"aliased with {', '.join(partners)} (linearly dependent on {them} "
                                                 f"and the intercept: not estimable beside {them})"))
            continue
        basis.append(r / res)
        zs.append(z)
        kept.append(c)
    return kept, dropped


# --------------------------------------------------------------------------- fitting
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
                _warn_once(f"clinical tables: Firth fit did not converge on {', '.join(map(str, X.columns))}")
                return None
            ci = np.asarray(model.conf_int(method="pl", features=list(range(k))), dtype=float)[:k]
        except (linalg.LinAlgError, ValueError, FloatingPointError) as err:
            _warn_once(f"clinical tables: Firth fit failed on {', '.join(map(str, X.columns))} ({err})")
            return None
    b = np.asarray(model.coef_, dtype=float)
    design = np.column_stack([A, np.ones(len(A))])
    beta = np.concatenate([b, [float(model.intercept_)]])
    llf, _ = _firth_max(design, y.astype(float), np.eye(k + 1), beta)  # same objective as the constrained fits
    llf = llf if np.isfinite(llf) else float(model.loglik_)
    se = np.asarray(model.bse_, dtype=float)[:k]
    for i, j in zip(*np.nonzero(~np.isfinite(ci))):  # Venzon-Moolgavkar did not converge: bracket and bisect
        ci[i, j] = _profile_bound(design, y.astype(float), i, beta, llf, se[i], -1 if j == 0 else 1)
    missing = ~np.isfinite(ci)
    if missing.any():
        ci = np.where(missing, np.column_stack([b - Z95 * se, b + Z95 * se]), ci)
        note += "; Wald CI for " + ", ".join(X.columns[np.flatnonzero(missing.any(axis=1))]) + \
                " (profile likelihood did not converge)"
    _warn_once(f"clinical tables: {note}; columns {', '.join(map(str, X.columns))}")
    return LogitFit("Firth", list(X.columns), b, ci, np.asarray(model.pvalues_, dtype=float)[:k], llf, note, design)


def _profile_bound(D: np.ndarray, y: np.ndarray, i: int, beta: np.ndarray, llf: float, se: float,
                   side: int) -> float:
    """The 95 % profile penalised-likelihood bound of coefficient ``i`` on ``side`` (-1 lower, +1 upper):
    where max over the others of l*(β | β_i = b) falls 3.84/2 below ``llf``; NaN if not bracketed."""
    from scipy.optimize import brentq

    target = llf - stats.chi2.ppf(0.95, 1) / 2
    T = np.delete(np.eye(len(beta)), i, axis=1)

    def gap(b: float) -> float:
        offset = np.zeros(len(beta))
        offset[i] = b
        ll, _ = _firth_max(D, y, T, np.delete(beta, i), offset=offset)  # unconverged: BFGS's best, still a bound
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


def _firth_max(D: np.ndarray, y: np.ndarray, T: np.ndarray, start: np.ndarray | None = None,
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


def _lr_pvalue(full: LogitFit | None, y: np.ndarray, reduced: pd.DataFrame, df: int) -> float:
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
        red_llf, ok = _firth_max(full.design, y.astype(float), T)
        if not ok:
            return float("nan")
    stat = max(2.0 * (full.llf - red_llf), 0.0)
    return float(stats.chi2.sf(stat, df))


# --------------------------------------------------------------------------- tables
def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _why_not(y: np.ndarray, n_columns: int) -> str:
    """Why a model on ``n_columns`` estimable columns has no fit."""
    if len(np.unique(y)) < 2:
        return "not estimable: only one outcome class among these patients"
    if n_columns + 1 > len(y):
        return f"not estimable: {n_columns + 1} parameters for {len(y)} patients"
    return "not estimable: neither the ML nor the Firth fit converged"


def _term_rows(model: str, columns: list, fit: LogitFit | None, dropped: dict, p_var: float, var_note: str,
               n: int, why: str) -> list[dict]:
    """Rows of the table for the terms ``columns`` (one variable) of ``fit`` (None: ``why`` not) on ``n`` patients."""
    out = []
    where = {t: i for i, t in enumerate(fit.terms)} if fit is not None else {}
    for c in columns:
        row = dict(model=model, variable=_variable_of(c), term=c, OR=np.nan, ci_low=np.nan, ci_high=np.nan,
                   p_wald=np.nan, p_variable=p_var, method="", note="", n_patients=n)
        if c in dropped:
            row["note"] = _join(f"dropped: {dropped[c]}", var_note)
        elif c not in where:
            row["note"] = _join(why, var_note)
        else:
            i = where[c]
            logs = np.array([fit.coef[i], fit.ci[i, 0], fit.ci[i, 1]])
            usable = bool(np.all(np.isfinite(logs)) and np.max(np.abs(logs)) <= MAX_ABS_LOG_OR)
            guard = "" if usable else f"OR not reported: |log OR| or a |log CI bound| above {MAX_ABS_LOG_OR:g}"
            row.update(method=fit.method, note=_join(fit.note, guard, var_note), p_wald=float(fit.p_wald[i]))
            if usable:
                row.update(OR=float(np.exp(logs[0])), ci_low=float(np.exp(logs[1])), ci_high=float(np.exp(logs[2])))
        out.append(row)
    return out


def _frame(rows: list[dict], flag: str, chosen: list, dropped: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS + ADDED_COLUMNS)
    df.insert(len(TABLE_COLUMNS), flag, df["variable"].isin(chosen))
    df.attrs["dropped"] = dropped
    return df


@functools.lru_cache(maxsize=256)
def _warn_once(message: str) -> None:
    """Log ``message`` once per process (the selectors refit in every CV fold would repeat it)."""
    log.warning(message)


def _record(model: str, dropped: list[dict], into: list[dict]) -> dict:
    """Log the dropped columns of one model and add them to ``into``; ``{term: reason}``."""
    for d in dropped:
        _warn_once(f"clinical {model} model: column {d['term']} dropped: {d['reason']}")
        into.append(dict(model=model, variable=_variable_of(d["term"]), **d))
    return {d["term"]: d["reason"] for d in dropped}


def _fit_once(yp: np.ndarray, Xp: pd.DataFrame, kept: list, fits: dict) -> LogitFit | None:
    """:func:`fit_logit` on ``kept`` columns, remembered in ``fits`` (a multivariable model on one variable is
    that variable's univariable model)."""
    key = tuple(kept)
    if key not in fits:
        fits[key] = fit_logit(yp, Xp[kept]) if kept else None
    return fits[key]


def _univariable(Xp: pd.DataFrame, yp: np.ndarray, groups: dict, p_threshold: float, fits: dict):
    rows, p_uni, dropped_all = [], {}, []
    for v, cols in groups.items():
        kept, dropped = full_rank_columns(Xp, cols)
        reasons = _record("univariable", dropped, dropped_all)
        fit = _fit_once(yp, Xp, kept, fits)
        p_uni[v] = _lr_pvalue(fit, yp, Xp[[]], len(kept))
        note = "p not testable: no estimable column" if not kept else ""
        rows += _term_rows("univariable", cols, fit, reasons, p_uni[v], note, len(yp), _why_not(yp, len(kept)))
    ranked = sorted((p for p in p_uni.items() if np.isfinite(p[1])), key=lambda kv: (kv[1], kv[0]))
    selected = [v for v in groups if np.isfinite(p_uni[v]) and p_uni[v] < p_threshold]
    if not selected and ranked:
        selected = [ranked[0][0]]
    return _frame(rows, "selected", selected, dropped_all), selected


def _multivariable(Xp: pd.DataFrame, yp: np.ndarray, groups: dict, selected: list, p_threshold: float,
                   fits: dict):
    cols = [c for v in selected for c in groups[v]]
    dropped_all: list[dict] = []
    kept, dropped = full_rank_columns(Xp, cols) if cols else ([], [])
    reasons = _record("multivariable", dropped, dropped_all)
    full = _fit_once(yp, Xp, kept, fits)
    p_multi, notes = {}, {}
    for v in selected:
        rest, _ = full_rank_columns(Xp, [c for c in cols if _variable_of(c) != v])
        df = len(kept) - len(rest)
        p_multi[v] = _lr_pvalue(full, yp, Xp[rest], df)
        if df == 0 and full is not None:
            notes[v] = "p not testable: the variable adds nothing estimable beside the others (aliased)"
    independent = [v for v in selected if np.isfinite(p_multi[v]) and p_multi[v] < p_threshold]
    if not independent and selected:
        finite = sorted((p for p in p_multi.items() if np.isfinite(p[1])), key=lambda kv: (kv[1], kv[0]))
        independent = [finite[0][0]] if finite else list(selected)
    rows, why = [], _why_not(yp, len(kept))
    for v in selected:
        rows += _term_rows("multivariable", groups[v], full, reasons, p_multi[v], notes.get(v, ""), len(yp), why)
    return _frame(rows, "independent", independent, dropped_all), independent


def clinical_logit_tables(Xenc: pd.DataFrame, y, p_threshold: float = 0.05, groups=None):
    """Univariable and multivariable logistic regressions (unweighted) on encoded clinical data, per patient.

    Returns ``(univariable, multivariable, selected, independent)``: tidy tables (one row per term:
    ``model, variable, term, OR, ci_low, ci_high, p_wald, p_variable`` = likelihood-ratio test of the whole
    variable, ``selected``/``independent``, then ``method`` (``ML``/``Firth``/empty when not estimated),
    ``note`` (why a term was dropped, Firth, NaN …) and ``n_patients``) and the variable lists. ``selected``:
    univariable p_variable < ``p_threshold`` (if none, the single variable with the smallest p);
    ``independent``: selected variables with multivariable p_variable < ``p_threshold`` (if none, the
    smallest). ``table.attrs["dropped"]``: the columns the rank check dropped (``model, variable, term,
    reason``). Rows are collapsed to one per patient first (:func:`patient_level`; ``groups`` None → the
    ``patient_id`` index level, if any; pass ``groups=range(n)`` for one row per image).
    """
    Xp, yp, averaged = patient_level(Xenc, y, groups)
    if averaged:
        log.info("clinical tables: %s differ between a patient's images: averaged per patient", averaged)
    variables = list(dict.fromkeys(_variable_of(c) for c in Xenc.columns))
    by_var = {v: [c for c in Xenc.columns if _variable_of(c) == v] for v in variables}
    fits: dict = {}
    uni, selected = _univariable(Xp, yp, by_var, p_threshold, fits)
    multi, independent = _multivariable(Xp, yp, by_var, selected, p_threshold, fits)
    return uni, multi, selected, independent


# --------------------------------------------------------------------------- pipeline steps
class ClinicalSelector(TransformerMixin, BaseEstimator):
    """Keeps the encoded clinical columns of the variables chosen by :func:`clinical_logit_tables` on one row
    per patient (patient ids: the ``patient_id`` level of ``X.index``, as :func:`usrad.models.build_design`
    makes it; without it each row is a patient): ``stage="univariable"`` → univariable p < ``p_threshold``;
    ``"multivariable"`` → the independent ones. Columns aliased with earlier kept ones (on the rows it is
    fitted on) are left out (``dropped_``), so the logistic model after it is identifiable."""

    def __init__(self, p_threshold=0.05, stage="univariable"):
        self.p_threshold = p_threshold
        self.stage = stage

    def fit(self, X, y):
        if self.stage not in ("univariable", "multivariable"):
            raise ValueError(f"ClinicalSelector: stage must be 'univariable' or 'multivariable', not {self.stage!r}")
        groups = patient_ids(X)
        uni, _, selected, independent = clinical_logit_tables(X, y, self.p_threshold, groups=groups)
        chosen = selected if self.stage == "univariable" else independent
        cols = [c for c in X.columns if _variable_of(c) in chosen]
        kept, dropped = full_rank_columns(X.astype(float), cols) if cols else ([], [])
        keep = set(kept)
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = X.shape[1]
        self.variables_ = [v for v in chosen if any(_variable_of(c) == v for c in kept)]
        self.support_ = np.asarray([c in keep for c in X.columns], dtype=bool)
        self.dropped_ = [f"{d['term']}: {d['reason']}" for d in dropped]
        self.n_patients_ = int(uni["n_patients"].iloc[0]) if len(uni) else 0
        return self

    def transform(self, X):
        check_is_fitted(self, "support_")
        return X.loc[:, list(self.get_feature_names_out())]

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_in_, dtype=object)[self.support_]


def clinical_branch(columns, categorical, impute, p_threshold=None, stage="univariable") -> Pipeline:
    """``ColumnPicker → ClinicalEncoder`` and, with a ``p_threshold``, ``→ ClinicalSelector(stage)``."""
    steps = [("columns", ColumnPicker(list(columns))),
             ("encode", ClinicalEncoder(columns=list(columns), categorical=list(categorical), impute=impute))]
    if p_threshold is not None:
        steps.append(("select", ClinicalSelector(p_threshold=p_threshold, stage=stage)))
    return Pipeline(steps)
