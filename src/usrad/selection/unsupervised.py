"""Unsupervised steps of the signature, fitted once: the column picker, the ICC reproducibility filter and the
near-zero-variance filter."""
from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, StrOptions  # scikit-learn's own validators
from sklearn.utils.validation import check_is_fitted

from .. import metrics
from .base import Selector

__all__ = ["ICC_FORMS", "ICC_FORM_NAMES", "ColumnPicker", "ICCFilter", "NearZeroVariance", "icc_per_feature"]

ICC_FORMS = ("ICC1", "ICC2", "ICC3")
ICC_FORM_NAMES = {
    "ICC1": "ICC(1,1): one-way random effects, absolute agreement, single rater",
    "ICC2": "ICC(2,1): two-way random effects, absolute agreement, single rater",
    "ICC3": "ICC(3,1): two-way mixed effects, consistency, single rater",
}


def icc_per_feature(r1: np.ndarray, r2: np.ndarray, form: str = "ICC2") -> np.ndarray:
    """ICC of every column between two readings (rows = images); thin wrapper of :func:`usrad.metrics.icc_per_feature`.

    NaN where a column has no variance (the filter treats NaN as not reproducible).
    """
    a = pd.DataFrame(np.asarray(r1, dtype=float))
    b = pd.DataFrame(np.asarray(r2, dtype=float))
    return metrics.icc_per_feature(a, b, form=form).to_numpy(dtype=float)


class ColumnPicker(Selector):
    """Keep the listed columns (stateless apart from checking they exist); the pipeline's entry door.

    Unlike other scikit-learn steps, ``feature_names_in_`` are the *picked* columns (``columns``, default all of
    X's), not all of X's: ``transform`` takes any frame that has them, whatever else it holds (a model bundle
    scores feature tables with more columns than it uses).

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        The picked columns (only when fitted on a DataFrame).
    n_features_in_ : int
        Number of picked columns.
    support_ : ndarray of bool
        All True (every picked column is kept).
    """

    _parameter_constraints = {"columns": ["array-like", None]}

    def __init__(self, columns=None):
        self.columns = columns

    def fit(self, X, y=None):
        X_in = X
        X, _ = self._fit_input(X)
        cols = list(X.columns) if self.columns is None else list(self.columns)
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise ValueError(f"ColumnPicker: columns missing from X: {missing[:5]}")
        if not isinstance(X_in, pd.DataFrame) and self.columns is not None:
            raise ValueError("ColumnPicker: columns can only be picked by name from a DataFrame")
        self._record_input(X_in, cols)
        self.support_ = np.ones(len(cols), dtype=bool)
        return self


ColumnPicker.__module__ = "usrad.selection"  # its pickled path (bundles, usrad.bundle.TRUSTED_TYPES)


class ICCFilter(Selector):
    """Reproducibility filter: keep features whose ICC between the two segmentations is ≥ ``threshold``.

    ``X`` holds every feature ``f`` and its copy ``f + copy_suffix`` (second reader or perturbed mask).
    ``fit`` computes the ICC (``form``: ICC1/ICC2/ICC3, single rater; default ICC2 = ICC(2,1), two-way
    random, absolute agreement) on the rows it is given that have both values; ``transform`` drops every
    copy column and the features below the threshold (NaN ICC, i.e. no between-image variance, is
    dropped). ``threshold=None`` only drops the copies. Features without a copy column are an error
    unless ``keep_uncopied=True``.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        All input columns, copies included (only when fitted on a DataFrame).
    n_features_in_ : int
        Number of input columns.
    support_ : ndarray of bool
        Kept input columns (never a copy column).
    base_features_ : ndarray of str
        The input columns that are not copies.
    icc_ : ndarray of float
        ICC of every base feature (aligned with ``base_features_``; NaN without a copy or without variance).
    n_rows_used_ : int
        Rows with both segmentations the ICC was computed on (0 when none was computed).
    """

    _parameter_constraints = {"threshold": [Real, None], "form": [StrOptions(set(ICC_FORMS))], "copy_suffix": [str],
                              "keep_uncopied": ["boolean"], "min_rows": [Interval(Integral, 2, None, closed="left")]}

    _allow_nan = True  # copies are NaN for images without a second segmentation

    def __init__(self, threshold=0.75, form="ICC2", copy_suffix="@r2", keep_uncopied=False, min_rows=5):
        self.threshold = threshold
        self.form = form
        self.copy_suffix = copy_suffix
        self.keep_uncopied = keep_uncopied
        self.min_rows = min_rows

    def fit(self, X, y=None):
        X_in = X
        X, _ = self._fit_input(X)
        cols = [str(c) for c in X.columns]
        copies = {c for c in cols if c.endswith(self.copy_suffix)}
        base = [c for c in cols if c not in copies]
        self._record_input(X_in, cols)
        icc = np.full(len(base), np.nan)
        paired = [c for c in base if c + self.copy_suffix in copies]
        uncopied = [c for c in base if c + self.copy_suffix not in copies]
        if self.threshold is not None:
            if uncopied and not self.keep_uncopied:
                raise ValueError(
                    f"ICCFilter: {len(uncopied)} feature(s) have no '{self.copy_suffix}' copy column "
                    f"(e.g. {uncopied[:3]}); pass keep_uncopied=True or threshold=None")
            if paired:
                a = X[paired].to_numpy(dtype=float)
                b = X[[c + self.copy_suffix for c in paired]].to_numpy(dtype=float)
                complete = ~(np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1))
                if complete.sum() < self.min_rows:
                    raise ValueError(
                        f"ICCFilter: only {int(complete.sum())} training rows have both segmentations "
                        f"(need {self.min_rows})")
                values = icc_per_feature(a[complete], b[complete], self.form)
                pos = {c: i for i, c in enumerate(base)}
                for c, v in zip(paired, values):
                    icc[pos[c]] = v
                self.n_rows_used_ = int(complete.sum())
            else:
                self.n_rows_used_ = 0
            keep_base = np.where(np.isnan(icc), False, icc >= self.threshold)
            if self.keep_uncopied:
                keep_base |= np.isin(base, uncopied)
        else:
            keep_base = np.ones(len(base), dtype=bool)
            self.n_rows_used_ = 0
        self.icc_ = icc  # aligned with base_features_
        self.base_features_ = np.asarray(base, dtype=object)
        keep = set(np.asarray(base)[keep_base])
        self.support_ = np.asarray([c in keep for c in cols], dtype=bool)
        if not self.support_.any():
            raise ValueError(f"ICCFilter: no feature reaches ICC ≥ {self.threshold}")
        return self

    def icc_table(self) -> pd.DataFrame:
        """feature, icc, kept — for selection/icc.tsv."""
        check_is_fitted(self, "icc_")
        kept = set(self.get_feature_names_out())
        return pd.DataFrame({"feature": self.base_features_, "icc": self.icc_,
                             "kept": [f in kept for f in self.base_features_]})


ICCFilter.__module__ = "usrad.selection"  # its pickled path (bundles, usrad.bundle.TRUSTED_TYPES)


class NearZeroVariance(Selector):
    """Drop constant and near-zero-variance features (caret's ``nearZeroVar`` rule, scale-free).

    A feature is dropped when it is constant, or when the ratio of the most to the second most frequent
    value exceeds ``freq_cut`` AND the fraction of distinct values is below ``unique_cut``.

    Attributes
    ----------
    support_ : ndarray of bool
        Kept columns: neither constant nor of near-zero variance.
    feature_names_in_, n_features_in_ : ndarray of str, int
        Input columns (names only when fitted on a DataFrame) and their number.
    """

    _parameter_constraints = {"freq_cut": [Interval(Real, 1, None, closed="left")],
                              "unique_cut": [Interval(Real, 0, 1, closed="both")]}

    _allow_nan = True  # missing values are not counted

    def __init__(self, freq_cut=19.0, unique_cut=0.1):
        self.freq_cut = freq_cut
        self.unique_cut = unique_cut

    def fit(self, X, y=None):
        X_in = X
        X, _ = self._fit_input(X)
        keep = []
        n = len(X)
        for c in X.columns:
            counts = X[c].value_counts(dropna=True).to_numpy()
            if len(counts) <= 1:
                keep.append(False)
                continue
            ratio = counts[0] / counts[1]
            unique = len(counts) / n
            keep.append(not (ratio > self.freq_cut and unique < self.unique_cut))
        self._record_input(X_in, list(X.columns))
        self.support_ = np.asarray(keep, dtype=bool)
        if not self.support_.any():
            raise ValueError("NearZeroVariance: every feature is (near) constant on the training rows")
        return self


NearZeroVariance.__module__ = "usrad.selection"  # its pickled path (bundles, usrad.bundle.TRUSTED_TYPES)
