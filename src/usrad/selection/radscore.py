"""The one-column rad-score step: a fitted LASSO selector's linear predictor as ``rad_score``."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils._param_validation import HasMethods  # scikit-learn's own validators
from sklearn.utils.validation import check_is_fitted

from .lasso import LassoSelector

__all__ = ["RadScore"]


class RadScore(TransformerMixin, BaseEstimator):
    """Outputs one column ``rad_score`` = intercept + Σ βᵢ·zᵢ of a :class:`LassoSelector` fitted in ``fit``
    (a constant, the intercept, when the LASSO keeps no feature). Input checks are the selector's.

    Attributes
    ----------
    selector_ : LassoSelector
        The fitted selector.
    feature_names_in_ : ndarray of str
        The selector's (only when fitted on a DataFrame).
    n_features_in_ : int
        The selector's.
    """

    _parameter_constraints = {"selector": [HasMethods(["fit", "decision_function"]), None]}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def __init__(self, selector=None):
        self.selector = selector

    def fit(self, X, y, groups=None):
        self._validate_params()
        sel = self.selector if self.selector is not None else LassoSelector()
        self.selector_ = clone(sel).fit(X, y, groups=groups)
        self._copy_input(self.selector_)
        return self

    def _copy_input(self, selector) -> None:
        self.n_features_in_ = selector.n_features_in_
        if hasattr(selector, "feature_names_in_"):
            self.feature_names_in_ = selector.feature_names_in_
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    @classmethod
    def from_fitted(cls, selector: LassoSelector) -> "RadScore":
        """A fitted RadScore around an already fitted selector (same state ``fit`` would produce)."""
        check_is_fitted(selector, "coef_")
        rs = cls(selector=clone(selector))
        rs.selector_ = selector
        rs._copy_input(selector)
        return rs

    def transform(self, X):
        check_is_fitted(self, "selector_")
        score = self.selector_.decision_function(X)
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame({"rad_score": score}, index=index)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "selector_")
        return np.asarray(["rad_score"], dtype=object)


RadScore.__module__ = "usrad.selection"  # its pickled path (bundles, usrad.bundle.TRUSTED_TYPES)
