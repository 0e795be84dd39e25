"""The second stage: the rad-score branch of a signature, its cross-fitted (out-of-fold) rad-score and
:class:`RadiomicsClinicalFeatures`, the ``[rad_score | clinical columns]`` input of the nomogram and combined models
(pickled in bundles as ``usrad.models.RadiomicsClinicalFeatures``)."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ..selection import RadScore
from .folds import cv_groups, grouped_folds


def radscore_intercept(branch) -> float:
    """The intercept of a fitted rad-score branch or signature (its LASSO's ``intercept_``)."""
    last = branch.steps[-1][1]
    return float(getattr(last, "selector_", last).intercept_)


def cross_fitted_radscore(radiomics, X: pd.DataFrame, y, folds, intercept: float) -> np.ndarray:
    """Out-of-fold rad-score of every row: ``radiomics`` (an unfitted branch ending in RadScore) refitted on
    the training part of each fold of ``folds`` and applied to its validation part, with that fold's intercept
    replaced by ``intercept`` (the branch fitted on all rows).

    The intercept of a fold's rad-score is about the log-odds of its training part, and with the total fixed
    that is *anti*-correlated with the labels of its validation part: left in, the fold-to-fold shifts are a
    label leak with the wrong sign (a null signature, whose rad-score is just the intercept, would give the
    second stage a confidently negative rad-score coefficient). Only ``Σ βᵢ·zᵢ`` is out-of-fold information."""
    y = np.asarray(y).astype(int)
    out = np.full(len(y), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for a, b in folds:
            fitted = clone(radiomics).fit(X.iloc[a], y[a])
            rs = fitted.transform(X.iloc[b])["rad_score"].to_numpy(float)
            out[b] = rs - radscore_intercept(fitted) + intercept
    return out


class RadiomicsClinicalFeatures(TransformerMixin, BaseEstimator):
    """``[rad_score | clinical columns]``: a radiomics branch (ending in RadScore) and a clinical branch side by
    side on the same design matrix, the second-stage input of the nomogram and combined models.

    Cross-fitting (``cv`` folds, like :class:`~sklearn.ensemble.StackingClassifier` and
    :class:`~sklearn.preprocessing.TargetEncoder`): ``fit_transform`` — what ``Pipeline.fit`` calls — returns
    the **out-of-fold** rad-score of the training rows (the branch refitted on stratified folds grouped by the
    index level ``split_group`` or ``patient_id``, :func:`grouped_folds` seeded with ``random_state``; each
    fold's intercept replaced by the final one, :func:`cross_fitted_radscore`), so the
    model after this step never learns from a rad-score computed on its own training rows (an in-sample
    rad-score is far more separated than on new patients, and the second stage would over-trust it).
    ``fit`` fits the branch on all rows (``radiomics_``), which ``transform`` applies to new rows: at
    prediction time the final signature. ``cv=None`` turns cross-fitting off (in-sample rad-score)."""

    def __init__(self, radiomics=None, clinical=None, cv=None, random_state=None):
        self.radiomics = radiomics
        self.clinical = clinical
        self.cv = cv
        self.random_state = random_state

    def fit(self, X, y):
        return self._fit(X, y, clone(self.radiomics).fit(X, y))

    def fit_transform(self, X, y=None, groups=None):
        """Fit, then the training rows with their cross-fitted rad-score (in-sample when ``cv`` is None)."""
        self.fit(X, y)
        if self.cv is None:
            return self.transform(X)
        folds = self.folds(X, y, groups)
        scores = cross_fitted_radscore(self.radiomics, X, y, folds, radscore_intercept(self.radiomics_))
        return self.features_frame(X, scores, self.clinical_.transform(X))

    def folds(self, X, y, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
        """The cross-fitting folds of the rows ``X`` (groups from ``groups`` or X's index)."""
        return grouped_folds(y, cv_groups(X) if groups is None else groups, int(self.cv), self.random_state)

    def _fit(self, X, y, fitted_radiomics):
        self.radiomics_ = fitted_radiomics
        self.clinical_ = clone(self.clinical).fit(X, y)
        self.feature_names_out_ = list(self.radiomics_.get_feature_names_out()) + list(
            self.clinical_.get_feature_names_out())
        self.n_features_in_ = X.shape[1]
        return self

    @classmethod
    def from_fitted_radiomics(cls, radiomics_template, fitted_radiomics, clinical, X, y, cv=None, random_state=None):
        """Same state as ``fit`` when ``fitted_radiomics`` is ``radiomics_template`` fitted on (X, y)."""
        return cls(radiomics=radiomics_template, clinical=clinical, cv=cv, random_state=random_state)._fit(
            X, y, fitted_radiomics)

    def transform(self, X):
        check_is_fitted(self, "radiomics_")
        return self.features_frame(X, self.radiomics_.transform(X), self.clinical_.transform(X))

    def features_frame(self, X, radiomics_part, clinical_part) -> pd.DataFrame:
        parts = [np.asarray(radiomics_part, dtype=float).reshape(len(X), -1), clinical_part]
        out = pd.concat([pd.DataFrame(np.asarray(p, dtype=float), index=X.index) for p in parts], axis=1)
        out.columns = self.feature_names_out_
        return out

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_out_, dtype=object)


# pickled in bundles (usrad.bundle.TRUSTED_TYPES) under its public path
RadiomicsClinicalFeatures.__module__ = "usrad.models"


def radscore_branch(signature: Pipeline) -> Pipeline:
    steps = list(copy.deepcopy(signature.steps))
    _, lasso = steps[-1]
    steps[-1] = ("radscore", RadScore(selector=lasso))
    return Pipeline(steps).set_output(transform="pandas")


def fitted_radscore_branch(fitted_signature: Pipeline) -> Pipeline:
    steps = list(copy.deepcopy(fitted_signature.steps))
    steps[-1] = ("radscore", RadScore.from_fitted(steps[-1][1]))
    return Pipeline(steps).set_output(transform="pandas")
