"""The odds-ratio tables ("Table 2"): univariable and multivariable logistic regressions per patient, the
selected and the independent variables."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .design import full_rank_columns, patient_level, variable_of
from .firth import MAX_ABS_LOG_OR
from .logit import LogitFit, fit_logit, lr_pvalue, warn_once

log = logging.getLogger("usrad.clinical")  # the package's logger, as before the split

__all__ = ["ADDED_COLUMNS", "TABLE_COLUMNS", "clinical_logit_tables"]

#: Columns of both tables before the per-table flag (``selected`` / ``independent``), then the added ones.
TABLE_COLUMNS = ["model", "variable", "term", "OR", "ci_low", "ci_high", "p_wald", "p_variable"]
ADDED_COLUMNS = ["method", "note", "n_patients"]


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
        row = dict(model=model, variable=variable_of(c), term=c, OR=np.nan, ci_low=np.nan, ci_high=np.nan,
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


def _record(model: str, dropped: list[dict], into: list[dict]) -> dict:
    """Log the dropped columns of one model and add them to ``into``; ``{term: reason}``."""
    for d in dropped:
        warn_once(f"clinical {model} model: column {d['term']} dropped: {d['reason']}")
        into.append(dict(model=model, variable=variable_of(d["term"]), **d))
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
        p_uni[v] = lr_pvalue(fit, yp, Xp[[]], len(kept))
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
        rest, _ = full_rank_columns(Xp, [c for c in cols if variable_of(c) != v])
        df = len(kept) - len(rest)
        p_multi[v] = lr_pvalue(full, yp, Xp[rest], df)
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
    variables = list(dict.fromkeys(variable_of(c) for c in Xenc.columns))
    by_var = {v: [c for c in Xenc.columns if variable_of(c) == v] for v in variables}
    fits: dict = {}
    uni, selected = _univariable(Xp, yp, by_var, p_threshold, fits)
    multi, independent = _multivariable(Xp, yp, by_var, selected, p_threshold, fits)
    return uni, multi, selected, independent
