"""Reproducibility of features: ICC of every feature between readings, vectorised (equal to pingouin)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import Problem, UsradError

#: ICC forms. Keys accepted by :func:`icc_per_feature` (pingouin's old names and McGraw–Wong names).
ICC_FORMS = {
    "ICC1": "ICC1", "ICC(1,1)": "ICC1",
    "ICC2": "ICC2", "ICC(A,1)": "ICC2", "ICC(2,1)": "ICC2",
    "ICC3": "ICC3", "ICC(C,1)": "ICC3", "ICC(3,1)": "ICC3",
    "ICC1k": "ICC1k", "ICC(1,k)": "ICC1k",
    "ICC2k": "ICC2k", "ICC(A,k)": "ICC2k", "ICC(2,k)": "ICC2k",
    "ICC3k": "ICC3k", "ICC(C,k)": "ICC3k", "ICC(3,k)": "ICC3k",
}



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
