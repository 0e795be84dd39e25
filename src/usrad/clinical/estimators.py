"""The clinical pipeline steps (pickled in the bundles): the encoder, the patient-level selector and the branch."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ..selection import ColumnPicker
from .design import full_rank_columns, patient_ids, variable_of
from .tables import clinical_logit_tables

__all__ = ["ClinicalEncoder", "ClinicalSelector", "clinical_branch"]


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


ClinicalEncoder.__module__ = "usrad.clinical"  # its pickled path (bundles, usrad.bundle.TRUSTED_TYPES)


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
        cols = [c for c in X.columns if variable_of(c) in chosen]
        kept, dropped = full_rank_columns(X.astype(float), cols) if cols else ([], [])
        keep = set(kept)
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = X.shape[1]
        self.variables_ = [v for v in chosen if any(variable_of(c) == v for c in kept)]
        self.support_ = np.asarray([c in keep for c in X.columns], dtype=bool)
        self.dropped_ = [f"{d['term']}: {d['reason']}" for d in dropped]
        self.n_patients_ = int(uni["n_patients"].iloc[0]) if len(uni) else 0
        return self

    def transform(self, X):
        check_is_fitted(self, "support_")
        return X.loc[:, list(self.get_feature_names_out())]

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_in_, dtype=object)[self.support_]


ClinicalSelector.__module__ = "usrad.clinical"  # its pickled path (bundles, usrad.bundle.TRUSTED_TYPES)


def clinical_branch(columns, categorical, impute, p_threshold=None, stage="univariable") -> Pipeline:
    """``ColumnPicker → ClinicalEncoder`` and, with a ``p_threshold``, ``→ ClinicalSelector(stage)``."""
    steps = [("columns", ColumnPicker(list(columns))),
             ("encode", ClinicalEncoder(columns=list(columns), categorical=list(categorical), impute=impute))]
    if p_threshold is not None:
        steps.append(("select", ClinicalSelector(p_threshold=p_threshold, stage=stage)))
    return Pipeline(steps)
