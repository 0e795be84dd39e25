"""The clinical design per patient: one row per patient (image-level columns averaged) and the greedy
full-rank check that drops constant and aliased columns."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["RANK_TOL", "full_rank_columns", "patient_ids", "patient_level", "variable_of"]

#: A column whose residual on [intercept, earlier columns] (both z-scored) is below this is aliased.
RANK_TOL = 1e-7


def variable_of(column: str) -> str:
    """The clinical variable of an encoded column: ``grade`` of ``grade[2]``, the name itself if numeric."""
    return column.split("[", 1)[0]


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
