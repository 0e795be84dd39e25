"""The column selectors' base class: scikit-learn's SelectorMixin over a fitted ``support_``, pandas in, pandas out."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["Selector"]


class Selector(SelectorMixin, BaseEstimator):
    """Base of the column selectors: scikit-learn's :class:`~sklearn.feature_selection.SelectorMixin` over the
    fitted boolean ``support_`` (``get_support``, ``inverse_transform``, ``get_feature_names_out``), pandas in,
    pandas out.

    A DataFrame is taken as it is by ``fit`` (its column names are the feature names; NaN is left to the step) and
    ``transform`` picks the selected columns *by name*, returning a DataFrame with X's index (other columns of X
    are ignored, a missing one is an error naming it; an empty selection is an (n, 0) frame). An array is checked
    by :func:`~sklearn.utils.validation.validate_data` (finite unless the step allows NaN) and fitted as a frame
    with columns ``x0, x1, …``; then, as for any scikit-learn estimator fitted on an array, ``feature_names_in_``
    is not set and ``transform`` is scikit-learn's positional one.
    """

    _supervised = False
    _allow_nan = False  # True: NaN cells are part of the step's input (the step handles them itself)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self._supervised
        tags.input_tags.allow_nan = self._allow_nan
        return tags

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return np.asarray(self.support_, dtype=bool)

    def _fit_input(self, X, y=None):
        """(X as a DataFrame, y) for ``fit``; also validates the parameters (``_parameter_constraints``)."""
        self._validate_params()
        if isinstance(X, pd.DataFrame):
            if self._supervised and y is None:
                raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
            return X, y
        finite = "allow-nan" if self._allow_nan else True
        if y is None and not self._supervised:
            A = validate_data(self, X, reset=True, ensure_all_finite=finite, ensure_min_samples=2)
        else:
            A, y = validate_data(self, X, y, reset=True, ensure_all_finite=finite, ensure_min_samples=2)
        return pd.DataFrame(A, columns=[f"x{i}" for i in range(A.shape[1])]), y

    def _fit_arrays(self, X, y, y_dtype=int):
        """(X as a DataFrame, X as a float matrix, y as an array of ``y_dtype``) for a supervised ``fit``."""
        X, y = self._fit_input(X, y)
        return X, X.to_numpy(dtype=float), np.asarray(y).astype(y_dtype)

    def _record_input(self, X, names) -> None:
        """``n_features_in_``, and ``feature_names_in_`` when fitted on a DataFrame (removed otherwise)."""
        if isinstance(X, pd.DataFrame):  # this order of the attributes keeps the bundles' bytes as they were
            self.feature_names_in_ = np.asarray([str(c) for c in names], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.n_features_in_ = len(names)

    def transform(self, X):
        check_is_fitted(self, "support_")
        if not (isinstance(X, pd.DataFrame) and hasattr(self, "feature_names_in_")):
            return super().transform(X)
        keep = list(np.asarray(self.feature_names_in_)[self._get_support_mask()])
        missing = [c for c in keep if c not in X.columns]
        if missing:
            raise ValueError(f"{type(self).__name__}: columns missing from X: {missing[:5]}")
        return X.loc[:, keep]
