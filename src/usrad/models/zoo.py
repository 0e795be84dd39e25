"""The classifier zoo: the built-in search spaces, the classifier factory (with its grouped Platt scaling) and the
unpenalised logistic regression of the risk models; the parameters usrad fixes per classifier."""
from __future__ import annotations

import itertools

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from ..settings import CLASSIFIERS, SVM_CALIBRATION_FOLDS
from .folds import grouped_folds


#: Bounded search spaces (documented in docs/modelling.md). Small on purpose: every grid point is fitted in
#: every outer and inner fold of the nested CV (cv_folds × (cv_folds + 1) fits), for 2 tasks on 2 cores. Grid
#: points that only ever overfitted (k-NN with distance weights, unpruned single-leaf forests) are left out.
SEARCH_SPACES: dict[str, dict[str, list]] = {
    "lr": {"C": [0.01, 0.1, 1.0, 10.0]},
    "svm": {"C": [0.1, 1.0, 10.0], "gamma": ["scale"]},
    "rf": {"max_depth": [3, None], "min_samples_leaf": [5]},
    "xgb": {"n_estimators": [100, 300], "max_depth": [2]},
    "knn": {"n_neighbors": [15, 31, 61], "weights": ["uniform"]},
    "nb": {"var_smoothing": [1e-9, 1e-6, 1e-3]},
    "mlp": {"hidden_layer_sizes": [[16]], "alpha": [0.1, 1.0]},
}


def search_space(name: str, overrides: dict | None = None) -> list[dict]:
    """The grid of ``name`` as a list of parameter dicts (config ``search_spaces`` replaces a model's grid)."""
    space = dict(SEARCH_SPACES[name])
    if overrides and name in overrides:
        space = dict(overrides[name])
    keys = sorted(space)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(space[k] for k in keys))]


def _platt_folds(y_train, groups, seed):
    """Precomputed grouped folds for Platt scaling (SVM, naive Bayes): the patients of a calibration fold are
    never in the training part of the model it calibrates. Row positions: they belong to the rows the
    classifier is made for (:func:`make_classifier`'s ``y_train`` and ``groups``)."""
    try:
        return grouped_folds(y_train, groups, SVM_CALIBRATION_FOLDS, seed)
    except ValueError:  # toy data (search-space checks): too few rows per class for grouped folds
        return 2


def _platt(estimator, y_train, groups, seed) -> CalibratedClassifierCV:
    """``estimator`` refitted on all rows, its probabilities from a sigmoid fitted (unweighted) on its grouped
    out-of-fold scores (``ensemble=False``: one model, as ``SVC(probability=True)`` did)."""
    return CalibratedClassifierCV(estimator, method="sigmoid", cv=_platt_folds(y_train, groups, seed), ensemble=False)


def make_classifier(name: str, params: dict, y_train, class_weight=None, seed: int = 0, groups=None):
    """An unfitted classifier for the rows ``y_train`` (groups ``groups``: patients or split groups).

    ``class_weight=None`` (default): unweighted, probabilities at the training prevalence. ``"balanced"``: LR,
    RF and XGBoost are fitted with balanced weights (they then predict as if the prevalence were 50 %) inside a
    Platt sigmoid fitted *unweighted* on grouped out-of-fold predictions of the training rows, which brings
    the probabilities back to the training prevalence (an analytic prior shift, logit + log(n1/n0), is exact
    only for calibrated scores: it left fully grown forests 0.08 below the prevalence, measured). Either way,
    the SVM's SVC is fitted with balanced weights (an unweighted RBF SVC ranks poorly under imbalance: test
    AUC 0.64 vs 0.72 measured at prevalence 0.2) and naive Bayes with the training priors, and both get their
    probabilities from the same grouped Platt scaling (naive Bayes is over-confident with correlated
    features: calibration slope 0.4, mean risk +0.065 measured); k-NN and MLP are unweighted.
    """
    params = dict(params)
    balanced = class_weight == "balanced"
    cw = "balanced" if balanced else None
    if name == "lr":
        lr = LogisticRegression(max_iter=5000, class_weight=cw, random_state=seed, **params)
        return _platt(lr, y_train, groups, seed) if balanced else lr
    if name == "svm":
        # Platt scaling on grouped internal folds of the training rows (sklearn ≥1.9: SVC(probability=True) is
        # deprecated; its internal CV, like cv=5 here, would put a patient's near-twin images on both sides)
        return _platt(SVC(kernel="rbf", class_weight="balanced", random_state=seed, **params), y_train, groups, seed)
    if name == "rf":
        rf = RandomForestClassifier(n_estimators=100, class_weight=cw, random_state=seed, n_jobs=1, **params)
        return _platt(rf, y_train, groups, seed) if balanced else rf
    if name == "xgb":
        from xgboost import XGBClassifier

        y = np.asarray(y_train).astype(int)
        spw = float((y == 0).sum() / max((y == 1).sum(), 1)) if balanced else 1.0
        xgb = XGBClassifier(learning_rate=0.05, subsample=0.8, colsample_bytree=0.8, tree_method="hist",
                            scale_pos_weight=spw, eval_metric="logloss", n_jobs=1, random_state=seed, **params)
        return _platt(xgb, y_train, groups, seed) if balanced else xgb
    if name == "knn":
        # A grid point larger than a small training fold is clipped (k-NN needs k <= n samples).
        if "n_neighbors" in params:
            params["n_neighbors"] = int(min(params["n_neighbors"], max(1, len(y_train) - 1)))
        return KNeighborsClassifier(**params)
    if name == "nb":
        return _platt(GaussianNB(**params), y_train, groups, seed)
    if name == "mlp":
        if isinstance(params.get("hidden_layer_sizes"), list):  # YAML has no tuples; an int is one layer
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        return MLPClassifier(solver="lbfgs", max_iter=300, random_state=seed, **params)
    raise ValueError(f"unknown classifier {name!r}; choose from {CLASSIFIERS}")


#: Parameters :func:`make_classifier` sets itself (a search space may not override them).
FIXED_PARAMS: dict[str, tuple[str, ...]] = {
    "lr": ("max_iter", "class_weight", "random_state"),
    "svm": ("kernel", "class_weight", "random_state", "probability"),
    "rf": ("n_estimators", "class_weight", "random_state", "n_jobs"),
    "xgb": ("learning_rate", "subsample", "colsample_bytree", "tree_method", "scale_pos_weight", "eval_metric",
            "n_jobs", "random_state"),
    "knn": (),
    "nb": ("priors",),
    "mlp": ("solver", "max_iter", "random_state"),
}


def unpenalised_logistic(seed):
    """Unpenalised, unweighted logistic regression: the clinical and nomogram models are risk models, so they
    are never class-weighted (their intercept is the training log-odds)."""
    return LogisticRegression(C=np.inf, max_iter=5000, random_state=seed)
