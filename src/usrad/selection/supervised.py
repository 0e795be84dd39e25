"""Supervised screening filters before the LASSO (refitted inside its inner CV): Mann–Whitney, redundancy, mRMR."""
from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval  # scikit-learn's own validators

from .base import Selector
from .ranks import mann_whitney, spearman_matrix

__all__ = ["MRMR", "RedundancyFilter", "UnivariateFilter"]


class UnivariateFilter(Selector):
    """Keep features whose two-sided Mann–Whitney U p-value is < ``p_threshold``.

    When fewer than ``min_features`` pass, the ``min_features`` with the smallest p are kept (so that a
    task without univariate signal still yields a model; it then scores near chance). No multiple-testing
    correction: this is a screening step before LASSO, as in the reference study.

    Attributes
    ----------
    support_ : ndarray of bool
        Kept columns: p < ``p_threshold``, or the ``min_features`` smallest p.
    feature_names_in_, n_features_in_ : ndarray of str, int
        Input columns (names only when fitted on a DataFrame) and their number.
    pvalues_ : ndarray of float
        Two-sided Mann–Whitney p of every input column (1 for a constant column or one with NaN).
    auc_ : ndarray of float
        AUC (U / n1 n0) of every input column (NaN for a column with NaN).
    """

    _supervised = True
    _parameter_constraints = {"p_threshold": [Interval(Real, 0, 1, closed="both")],
                              "min_features": [Interval(Integral, 0, None, closed="left")]}

    def __init__(self, p_threshold=0.05, min_features=5):
        self.p_threshold = p_threshold
        self.min_features = min_features

    def fit(self, X, y):
        X_in = X
        X, A, y = self._fit_arrays(X, y)
        p, auc = mann_whitney(A, y)
        keep = p < self.p_threshold
        if keep.sum() < min(self.min_features, X.shape[1]):
            order = np.lexsort((np.arange(len(p)), p))  # stable: ties by column order
            keep = np.zeros(len(p), dtype=bool)
            keep[order[: min(self.min_features, X.shape[1])]] = True
        self._record_input(X_in, list(X.columns))
        self.pvalues_ = p
        self.auc_ = auc
        self.support_ = keep
        return self


UnivariateFilter.__module__ = "usrad.selection"  # its pickled path (bundles, usrad.bundle.TRUSTED_TYPES)


class RedundancyFilter(Selector):
    """Of every pair with |Spearman ρ| > ``threshold``, keep the feature more related to the outcome.

    Features are ranked by Mann–Whitney p (ties: larger |AUC − 0.5|, then column order) and kept greedily
    when their |ρ| with every already-kept feature is ≤ ``threshold``.

    Attributes
    ----------
    support_ : ndarray of bool
        Kept columns, no two with |ρ| > ``threshold``.
    feature_names_in_, n_features_in_ : ndarray of str, int
        Input columns (names only when fitted on a DataFrame) and their number.
    """

    _supervised = True
    _parameter_constraints = {"threshold": [Interval(Real, 0, 1, closed="both")]}

    def __init__(self, threshold=0.9):
        self.threshold = threshold

    def fit(self, X, y):
        X_in = X
        X, A, y = self._fit_arrays(X, y)
        p, auc = mann_whitney(A, y)
        order = np.lexsort((np.arange(len(p)), -np.abs(auc - 0.5), p))
        rho = np.abs(spearman_matrix(A))
        kept: list[int] = []
        blocked = np.zeros(A.shape[1], dtype=bool)  # |rho[j, i]| > threshold with some kept i
        for j in order:
            if not blocked[j]:
                kept.append(int(j))
                blocked |= rho[:, j] > self.threshold
        self._record_input(X_in, list(X.columns))
        self.support_ = np.isin(np.arange(X.shape[1]), kept)
        return self


RedundancyFilter.__module__ = "usrad.selection"  # its pickled path (bundles, usrad.bundle.TRUSTED_TYPES)


class MRMR(Selector):
    """Greedy minimum-redundancy maximum-relevance selection of ``n_features`` (MID criterion).

    Relevance = |Spearman ρ(feature, y)|, redundancy = mean |Spearman ρ| with the features already
    chosen; each step adds the feature maximising relevance − redundancy. ``n_features=None`` keeps all.

    Attributes
    ----------
    support_ : ndarray of bool
        The ``n_features`` chosen columns.
    feature_names_in_, n_features_in_ : ndarray of str, int
        Input columns (names only when fitted on a DataFrame) and their number.
    order_ : ndarray of int
        Indices of the kept columns in the order they were chosen.
    """

    _supervised = True
    _parameter_constraints = {"n_features": [Interval(Integral, 1, None, closed="left"), None]}

    def __init__(self, n_features=None):
        self.n_features = n_features

    def fit(self, X, y):
        X_in = X
        X, A, y = self._fit_arrays(X, y, y_dtype=float)
        m = A.shape[1]
        self._record_input(X_in, list(X.columns))
        if self.n_features is None or self.n_features >= m:
            self.support_ = np.ones(m, dtype=bool)
            self.order_ = np.arange(m)
            return self
        rho = np.abs(spearman_matrix(np.column_stack([A, y])))
        relevance, rho = rho[:-1, -1], rho[:-1, :-1]
        chosen = [int(np.argmax(relevance))]
        while len(chosen) < self.n_features:
            rest = [j for j in range(m) if j not in chosen]
            score = [relevance[j] - rho[j, chosen].mean() for j in rest]
            chosen.append(rest[int(np.argmax(score))])
        self.order_ = np.asarray(chosen)
        self.support_ = np.isin(np.arange(m), chosen)
        return self


MRMR.__module__ = "usrad.selection"  # its pickled path (bundles, usrad.bundle.TRUSTED_TYPES)
