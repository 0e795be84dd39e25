"""Leak-free model fitting for one task: radiomics classifiers, rad-score, clinical, nomogram, combined.

Entry point for the rule script: :func:`fit_task`. Everything learned is learned on the task's training
rows (``split == "train"``) only; test and external rows are only ever passed to ``predict_proba``.
The method, every knob and the search spaces are documented in docs/modelling.md.

Every fitted model is one scikit-learn :class:`~sklearn.pipeline.Pipeline` taking the same design matrix
(:func:`build_design`: radiomics columns, their ``@<copy>`` reproducibility copies and the raw clinical
columns, index ``(patient_id, image_id)``):

* ``radscore``: signature (:func:`usrad.selection.signature_pipeline`), ending in the LASSO selector.
* ``lr, svm, rf, xgb, knn, nb, mlp``: signature → classifier on the LASSO-selected features.
* ``clinical``: clinical columns → :class:`ClinicalEncoder` → :class:`ClinicalSelector` (univariable
  p < threshold) → scaler → logistic regression (unpenalised).
* ``nomogram``: rad-score + independent clinical predictors (multivariable p < threshold) → logistic.
* ``combined``: rad-score + all clinical predictors → the classifier type chosen by :func:`choose_model`.

With ``clinical.predictors: []`` (radiomics only) the last three are not fitted; :func:`model_names` gives the
bundles of a config. :func:`plan_problems` lists, before anything runs, what fitting would refuse (the split,
classes per part, clinical predictors on the training rows, the ICC copy reader); :func:`search_space_problems`
checks ``modelling.search_spaces`` against the estimators.

Honest risk (issue 15, docs/modelling.md):

* Probabilities are risks at the training prevalence: models are fitted unweighted (``class_weight: null``);
  ``balanced`` weights are corrected inside the estimator (a Platt sigmoid fitted unweighted on grouped folds,
  :func:`make_classifier`).
* Second-stage models (nomogram, combined) are trained on a **cross-fitted** rad-score
  (:class:`RadiomicsClinicalFeatures`): never on a rad-score computed on their own training rows.
* Model choice is **nested**: the ``cv`` predictions (and each bundle's ``cv_auc``) of a tuned model come from
  outer grouped folds inside each of which the whole choice (hyperparameters; the combined model's
  classifier type by the 1-SE parsimony rule of :func:`choose_model`) is made again by inner grouped CV.
* Every inner CV (LASSO, SVM Platt scaling, cross-fitting, tuning) is grouped by patient / split group
  (:func:`grouped_folds`, :func:`cv_groups`).

Tuning: the signature does not depend on any classifier hyperparameter, so it is fitted once per (outer or
inner) fold and every classifier/grid point is fitted on its output — what GridSearchCV over the full pipeline
computes, without refitting the signature for every grid point. The final models are assembled from the
signature fitted once on all training rows and the outer-fold signatures' rad-scores — the same state
``Pipeline.fit`` of the bundle's pipeline produces (tested).
"""
from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import re
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from .atomic import write_text, write_tsv
from .clinical import (  # noqa: F401 (usrad.clinical, re-exported)
    ClinicalEncoder,
    ClinicalSelector,
    clinical_branch,
    clinical_logit_tables,
)
from .config import OUTCOME_COLUMNS
from .errors import Problem, UsradError
from .selection import RadScore, signature_pipeline, signature_steps
from .split import task_labels
from .tables import read_table

log = logging.getLogger(__name__)

CLASSIFIERS = ("lr", "svm", "rf", "xgb", "knn", "nb", "mlp")
#: Models that need at least one clinical predictor: not fitted when ``clinical.predictors`` is empty.
CLINICAL_MODELS = ("clinical", "nomogram", "combined")
#: Grouped inner folds of the Platt scaling of the SVM, naive Bayes and balanced models (``make_classifier``; fewer when a class
#: has fewer training groups, at least 2).
SVM_CALIBRATION_FOLDS = 5


def radiomics_only(cfg: dict | None) -> bool:
    """True when the config lists no clinical predictor: only the rad-score and the radiomics classifiers."""
    return not list(((cfg or {}).get("clinical") or {}).get("predictors") or [])


def model_names(cfg: dict | None) -> list[str]:
    """The bundles :func:`fit_task` writes for every task of ``cfg`` (a whole config), in display order:
    ``radscore``, the radiomics classifiers, then (unless radiomics only) ``clinical, nomogram, combined``."""
    ms = modelling_settings((cfg or {}).get("modelling"))
    names = ["radscore"] + [m for m in dict.fromkeys(ms["classifiers"])]
    return names if radiomics_only(cfg) else names + list(CLINICAL_MODELS)

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

#: Pre-specified order of simplicity (simplest first) for the parsimony rule of :func:`choose_model`: the
#: rad-score alone, then additive/linear models, local averages, kernels, tree ensembles, neural nets.
SIMPLICITY = ("radscore", "lr", "nb", "knn", "svm", "rf", "xgb", "mlp")
MODEL_CHOICE_RULES = ("one_se", "best")

DEFAULTS = {
    "cv_folds": 5,
    "class_weight": None,
    "model_choice": "one_se",
    "classifiers": list(CLASSIFIERS),
    "combined_classifiers": ["lr", "rf", "xgb"],
    "search_spaces": {},
    "threshold_from": "cv",
    "clinical_p_threshold": 0.05,
    "reproducibility": {"copy_reader": "auto", "icc_threshold": 0.75, "icc_form": "ICC2"},
    "near_zero_variance": {"freq_cut": 19.0, "unique_cut": 0.1},
    "univariate": {"p_threshold": 0.05, "min_features": 5},
    "redundancy": {"threshold": 0.9},
    "mrmr": {"n_features": None},
    "lasso": {"cv_folds": 10, "n_C": 30, "one_se_rule": True, "scoring": "neg_log_loss"},
    "ablation": False,
    # read by usrad.validation (Harrell's optimism bootstrap around fit_task), not by the model fitting
    "internal_validation": "split",
    "bootstrap_resamples": 50,
}


def modelling_settings(modelling_cfg: dict | None) -> dict:
    """DEFAULTS overlaid with the config's ``modelling`` section (nested one level)."""
    out = copy.deepcopy(DEFAULTS)
    for key, value in (modelling_cfg or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "search_spaces":
            out[key].update(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --------------------------------------------------------------------------- grouped folds
def cv_groups(X) -> np.ndarray | None:
    """The CV group of every row of a design matrix: index level ``split_group`` (patients sharing an image,
    :func:`usrad.split.split_groups`) if present, else ``patient_id``; None for a frame without either."""
    names = list(getattr(X, "index", pd.Index([])).names)
    for level in ("split_group", "patient_id"):
        if level in names:
            return np.asarray(X.index.get_level_values(level)).astype(str)
    return None


def grouped_folds(y, groups, n_splits: int, seed) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, grouped k-fold splits ``[(train rows, validation rows), ...]``: the groups (patients, split
    groups) are dealt into folds by :class:`~sklearn.model_selection.StratifiedKFold` (shuffled with ``seed``)
    on their outcome (a group is positive if any of its rows is), so a group never straddles a training and a
    validation part and every fold has the group-level prevalence. ``n_splits`` is clipped to the number of
    groups of the smaller class; ValueError when it has fewer than 2. ``groups=None``: every row is a group.

    Not :class:`~sklearn.model_selection.StratifiedGroupKFold`: with one group per patient that gives the same
    kind of folds ~0.4 s slower per split (700 groups), and the nested CV and Platt scaling split thousands of
    times."""
    y = np.asarray(y).astype(int)
    groups = np.arange(len(y)).astype(str) if groups is None else np.asarray(groups).astype(str)
    names, inverse = np.unique(groups, return_inverse=True)
    label = np.zeros(len(names), dtype=int)
    np.maximum.at(label, inverse, y)
    n_min = int(min(np.bincount(label, minlength=2)))
    if n_min < 2:
        raise ValueError(f"cannot make 2 grouped folds: a class has {n_min} group(s)")
    splitter = StratifiedKFold(n_splits=int(min(n_splits, n_min)), shuffle=True, random_state=seed)
    folds = []
    for _, held_out in splitter.split(np.zeros((len(names), 1)), label):
        in_validation = np.isin(inverse, held_out)
        folds.append((np.flatnonzero(~in_validation), np.flatnonzero(in_validation)))
    return folds


# --------------------------------------------------------------------------- classifiers
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
#: XGBoost declares no parameter constraints: the types of its common numeric parameters, checked here.
_XGB_TYPES = {"n_estimators": int, "max_depth": int, "max_leaves": int, "max_bin": int, "num_parallel_tree": int,
              "gamma": float, "min_child_weight": float, "max_delta_step": float, "reg_alpha": float,
              "reg_lambda": float, "colsample_bylevel": float, "colsample_bynode": float, "base_score": float}
_XGB_MINIMUM = {"n_estimators": 1, "num_parallel_tree": 1, "max_bin": 2}  # XGBoost accepts 0 trees silently
_MAX_GRID_FITS = 32  # grid points fitted on toy data per classifier when a config is validated


def _inner_estimator(clf):
    """The estimator that receives the search-space parameters (the SVC inside the Platt calibration, the
    classifier inside a Platt scaling)."""
    return clf.estimator if isinstance(clf, CalibratedClassifierCV) else clf


def _tunable_params(name: str) -> dict:
    """{parameter: default} a search space of classifier ``name`` may set."""
    est = _inner_estimator(make_classifier(name, {}, np.repeat([0, 1], 20)))
    return {k: v for k, v in est.get_params(deep=False).items() if k not in FIXED_PARAMS[name]}


def _search_value_problem(name: str, param: str, value, default) -> str | None:
    """Why ``value`` is not a valid ``param`` of classifier ``name`` on its own (None if it is)."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return f"value {value!r} is not a plain number, text, list or null"
    if isinstance(value, bool) and not isinstance(default, bool):
        return f"value {value!r} is true/false, but {param} is not a yes/no parameter"
    if name == "xgb":  # no declared constraints: check the type, then let XGBoost refuse the value on toy data
        want = _XGB_TYPES.get(param)
        if want is not None and value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or (want is int and not isinstance(value, int))):
            return f"value {value!r} is not {'a whole number' if want is int else 'a number'}"
        if param in _XGB_MINIMUM and isinstance(value, (int, float)) and value < _XGB_MINIMUM[param]:
            return f"value {value!r} is below the minimum {_XGB_MINIMUM[param]}"
        error = _toy_fit(name, {param: value}, "balanced")  # the weighted variant: the one with most to refuse
        return None if error is None else f"value {value!r} is refused by XGBoost ({error})"
    try:  # k-NN without make_classifier's clipping of n_neighbors to the training size
        est = KNeighborsClassifier(**{param: value}) if name == "knn" else _inner_estimator(
            make_classifier(name, {param: value}, np.repeat([0, 1], 20)))
        if hasattr(est, "_validate_params"):
            est._validate_params()
    except (InvalidParameterError, TypeError, ValueError) as exc:
        return f"value {value!r} is refused by the estimator: {_short(str(exc))}"
    return None


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _grid_fit_problems(name: str, space: dict, class_weight, key: str, source: str) -> list[Problem]:
    """Fit the grid points of a valid-looking search space on toy data: catches combinations the
    estimator refuses only when fitted (e.g. an L1 penalty with the default lbfgs solver)."""
    grid = search_space(name, {name: space})
    if len(grid) > _MAX_GRID_FITS:  # every value at least once, then evenly spaced combinations
        picks = sorted({round(i * (len(grid) - 1) / (_MAX_GRID_FITS - 1)) for i in range(_MAX_GRID_FITS)})
        grid = [grid[i] for i in picks]
    for params in grid:
        error = _toy_fit(name, params, class_weight)
        if error is not None:
            return [Problem(f"key {key!r}: the combination {json.dumps(params, sort_keys=True)} cannot be fitted "
                            f"({error})", file=source)]
    return []


def _toy_fit(name: str, params: dict, class_weight) -> str | None:
    """Why classifier ``name`` with ``params`` cannot be fitted on 40 toy rows (None if it can)."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    X = pd.DataFrame(rng.normal(size=(40, 3)) + y[:, None], columns=["f1", "f2", "f3"])
    try:
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore")
            make_classifier(name, params, y, class_weight, 0).fit(X, y).predict_proba(X)
    except Exception as exc:  # noqa: BLE001 - whatever the estimator refuses is the user's to fix
        return f"{type(exc).__name__}: {_short(exc)}"
    return None


def search_space_problems(search_spaces: dict, class_weight=None, source: str = "config") -> list[Problem]:
    """Every problem of ``modelling.search_spaces``: unknown classifiers or parameters, parameters usrad fixes,
    values an estimator refuses (scikit-learn's parameter constraints, XGBoost's types), repeated values,
    and grid points that fail to fit on toy data. Each message names the key."""
    problems: list[Problem] = []
    for name, space in (search_spaces or {}).items():
        key = f"modelling.search_spaces.{name}"
        if name not in CLASSIFIERS:
            problems.append(Problem(f"key {key!r}: unknown classifier; choose from {', '.join(CLASSIFIERS)}", file=source))
            continue
        tunable, ok = _tunable_params(name), True
        for param, values in space.items():
            pkey = f"{key}.{param}"
            if param in FIXED_PARAMS[name]:
                problems.append(Problem(f"key {pkey!r}: {param} is fixed by usrad for {name} "
                                        "(usrad.models.FIXED_PARAMS) and cannot be tuned", file=source))
                ok = False
                continue
            if param not in tunable:
                problems.append(Problem(f"key {pkey!r}: {name} has no parameter {param!r}; its parameters: "
                                        f"{_short(', '.join(sorted(tunable)))}", file=source))
                ok = False
                continue
            seen: list = []
            for value in values:
                why = _search_value_problem(name, param, value, tunable[param])
                if why is None and value in seen:
                    why = f"value {value!r} is listed twice"
                seen.append(value)
                if why:
                    problems.append(Problem(f"key {pkey!r}: {why}", file=source))
                    ok = False
        if ok and space:
            problems += _grid_fit_problems(name, space, class_weight, key, source)
    return problems


def _logistic(seed):
    """Unpenalised, unweighted logistic regression: the clinical and nomogram models are risk models, so they
    are never class-weighted (their intercept is the training log-odds)."""
    return LogisticRegression(C=np.inf, max_iter=5000, random_state=seed)


# --------------------------------------------------------------------------- second stage
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
        return self._frame(X, scores, self.clinical_.transform(X))

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
        return self._frame(X, self.radiomics_.transform(X), self.clinical_.transform(X))

    def _frame(self, X, radiomics_part, clinical_part) -> pd.DataFrame:
        parts = [np.asarray(radiomics_part, dtype=float).reshape(len(X), -1), clinical_part]
        out = pd.concat([pd.DataFrame(np.asarray(p, dtype=float), index=X.index) for p in parts], axis=1)
        out.columns = self.feature_names_out_
        return out

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_out_, dtype=object)


def radscore_branch(signature: Pipeline) -> Pipeline:
    steps = list(copy.deepcopy(signature.steps))
    _, lasso = steps[-1]
    steps[-1] = ("radscore", RadScore(selector=lasso))
    return Pipeline(steps).set_output(transform="pandas")


def fitted_radscore_branch(fitted_signature: Pipeline) -> Pipeline:
    steps = list(copy.deepcopy(fitted_signature.steps))
    steps[-1] = ("radscore", RadScore.from_fitted(steps[-1][1]))
    return Pipeline(steps).set_output(transform="pandas")


# --------------------------------------------------------------------------- design matrix
def pick_copy_reader(readers, wanted: str | None = "auto") -> str | None:
    readers = sorted(set(map(str, readers)))
    if wanted in (None, "none"):
        return None
    if wanted != "auto":
        if wanted not in readers:
            raise UsradError("Reproducibility copy not in the feature table", [Problem(
                f"modelling.reproducibility.copy_reader {wanted!r} not among the table's readers {readers}",
                column="reader")])
        return wanted
    if "r2" in readers:
        return "r2"
    perturbed = [r for r in readers if re.fullmatch(r"p\d+", r)]
    return perturbed[0] if perturbed else None


def build_design(features_df: pd.DataFrame, cohort_df: pd.DataFrame, image_ids, clinical_columns=(),
                 copy_reader: str | None = "r2", reference_reader: str = "r1", source: str = "feature table"):
    """Wide design matrix for ``image_ids`` (in that order), index ``(patient_id, image_id)``.

    Returns ``(X, feature_columns)``: reference-reader features, their ``@<copy_reader>`` copies (NaN where
    an image has no copy), then the raw clinical columns. Missing or non-finite reference features →
    UsradError naming patient and column.
    """
    id_cols = ["patient_id", "image_id", "reader"]
    feats = [c for c in features_df.columns if c not in id_cols]
    fd = features_df.copy()
    fd["image_id"] = fd["image_id"].astype(str)
    fd["patient_id"] = fd["patient_id"].astype(str)
    ref = fd[fd["reader"].astype(str) == reference_reader].set_index("image_id")
    image_ids = [str(i) for i in image_ids]
    problems = []
    missing = [i for i in image_ids if i not in ref.index]
    coh = cohort_df.assign(image_id=cohort_df["image_id"].astype(str),
                           patient_id=cohort_df["patient_id"].astype(str)).set_index("image_id")
    for i in missing[:50]:
        problems.append(Problem(f"image {i!r} has no {reference_reader} row", patient=coh.at[i, "patient_id"]
                                if i in coh.index else None, column="reader", file=source))
    if problems:
        raise UsradError(f"{len(missing)} image(s) missing from the {source}", problems)
    R = ref.loc[image_ids, feats].astype(float)
    bad = ~np.isfinite(R.to_numpy())
    if bad.any():
        rr, cc = np.nonzero(bad)
        for r, c in list(zip(rr, cc))[:50]:
            problems.append(Problem("feature value is missing or not finite",
                                    patient=str(ref.loc[image_ids[r], "patient_id"]), column=feats[c], file=source))
        raise UsradError(f"{int(bad.sum())} missing/non-finite feature value(s) in the {source}", problems)
    parts = [R]
    if copy_reader is not None:
        cp = fd[fd["reader"].astype(str) == copy_reader].set_index("image_id")
        C = cp.reindex(image_ids)[feats].astype(float)
        C.columns = [f"{f}@{copy_reader}" for f in feats]
        parts.append(C)
    clin_cols = list(clinical_columns)
    if clin_cols:
        parts.append(coh.loc[image_ids, clin_cols])
    X = pd.concat([p.reset_index(drop=True) for p in parts], axis=1)
    X.index = pd.MultiIndex.from_arrays([coh.loc[image_ids, "patient_id"].to_numpy(), image_ids],
                                        names=["patient_id", "image_id"])
    return X, list(R.columns) + (list(parts[1].columns) if copy_reader is not None else [])


def clinical_problems(cohort_df: pd.DataFrame, train_image_ids, clinical_cfg: dict, task_name: str,
                      source: str | None = "cohort table") -> list[Problem]:
    """What would stop the clinical models of a task on its training rows (``train_image_ids``): a predictor
    with no value there (``clinical.missing: impute`` has nothing to impute from), or no predictor with two
    different values (no clinical model can be fitted). Empty for a radiomics-only config."""
    predictors = [c for c in dict.fromkeys(clinical_cfg.get("predictors") or []) if c in cohort_df.columns]
    if not predictors:
        return []
    sub = cohort_df[cohort_df["image_id"].astype(str).isin(set(map(str, train_image_ids)))]
    problems, varying = [], []
    for c in predictors:
        values = sub[c].dropna()
        if values.empty:
            problems.append(Problem(
                f"task {task_name!r}: no training patient ({sub['patient_id'].nunique()}) has a value of this "
                "predictor, so there is nothing to learn or impute from (key 'clinical.missing'); fill it in or "
                "remove it from key 'clinical.predictors'", column=c, file=source))
        elif values.astype(str).nunique() > 1:
            varying.append(c)
    if not problems and not varying:
        problems.append(Problem(
            f"task {task_name!r}: every clinical predictor ({', '.join(predictors)}) has one single value in the "
            "training rows, so no clinical model can be fitted; change key 'clinical.predictors' (or set it to [] "
            "for the radiomics models only)", file=source))
    return problems


def _check_clinical(cohort_df, rows, task_cfg, clinical_cfg, source="cohort table", train_rows=None):
    """The task's clinical predictors and categorical columns; UsradError when they cannot be used.
    No predictor at all is fine: radiomics only (clinical, nomogram and combined are then not fitted)."""
    from .expr import (
        columns as _names_in,  # every column a label/subset expression reads (backticked too)
    )

    predictors = list(clinical_cfg.get("predictors", []))
    categorical = list(clinical_cfg.get("categorical", []))
    outcome = set(OUTCOME_COLUMNS) | set(_names_in(task_cfg["label"])) | set(_names_in(task_cfg.get("subset") or ""))
    problems = [Problem(f"key 'clinical.predictors': {c!r} is an outcome of task {task_cfg['name']!r}, not a "
                        "preoperative predictor", column=c) for c in predictors if c in outcome]
    problems += [Problem("clinical predictor (key 'clinical.predictors') is not a column of the cohort table",
                         column=c, file=source) for c in predictors if c not in cohort_df.columns]
    problems += [Problem("key 'clinical.categorical': column is not in clinical.predictors", column=c)
                 for c in categorical if c not in predictors]
    if problems:
        raise UsradError("Invalid clinical predictors", problems)
    if clinical_cfg.get("missing", "refuse") == "refuse":
        sub = cohort_df[cohort_df["image_id"].astype(str).isin(set(rows))]
        for c in predictors:
            for _, r in sub[sub[c].isna()].iterrows():
                problems.append(Problem("missing clinical value (set clinical.missing: impute to impute it)",
                                        patient=str(r["patient_id"]), column=c, file=source))
        if problems:
            raise UsradError(f"{len(problems)} missing clinical value(s)", problems)
    problems = clinical_problems(cohort_df, rows if train_rows is None else train_rows, clinical_cfg,
                                 task_cfg["name"], source)
    if problems:
        raise UsradError("The clinical predictors cannot be used", problems)
    return predictors, categorical


# --------------------------------------------------------------------------- CV machinery
def _fit_predict(model_name, feature_set, params, Ztr, ytr, gtr, Zva, seed, class_weight):
    with threadpool_limits(limits=1):
        return _fit_predict_1(model_name, feature_set, params, Ztr, ytr, gtr, Zva, seed, class_weight)


def _fit_predict_1(model_name, feature_set, params, Ztr, ytr, gtr, Zva, seed, class_weight):
    if Ztr.shape[1] == 0:  # the signature kept no feature: nothing to learn from, the training prevalence
        return np.full(len(Zva), float(np.mean(ytr)))
    clf = make_classifier(model_name, params, ytr, class_weight, seed, gtr)
    if feature_set == "combined":
        clf = Pipeline([("scale", StandardScaler()), ("clf", clf)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        clf.fit(Ztr, ytr)
        return clf.predict_proba(Zva)[:, 1]


def _fit_part(signature, clin_template, Xa, ya, Xb) -> dict:
    """The signature (and the clinical encoder) fitted on the rows ``Xa``, applied to ``Xa`` and ``Xb``."""
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sig = clone(signature).fit(Xa, ya)
        rad = fitted_radscore_branch(sig)
        out = dict(Z_tr=sig.transform(Xa), Z_va=sig.transform(Xb), p_va=sig.predict_proba(Xb)[:, 1],
                   rs_va=rad.transform(Xb)["rad_score"].to_numpy(float), b0=radscore_intercept(sig))
        if clin_template is not None:  # radiomics only: no combined feature set
            enc = clone(clin_template).fit(Xa, ya)
            out.update(C_tr=enc.transform(Xa), C_va=enc.transform(Xb))
    return out


def _fit_signature(signature, X, y):
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clone(signature).fit(X, y)


def _cv_signatures(signature, clin_template, Xtr, ytr, groups, k, seed, parallel) -> SimpleNamespace:
    """Every signature the nested CV needs, fitted in one parallel batch.

    ``outer``: grouped folds of the training rows; ``inner[f]``: grouped folds of outer fold f's training part
    (positions within it). ``po[f]`` / ``pi[f][j]``: the signature fitted on the training part of outer fold f
    / of inner fold j of it (:func:`_fit_part`). ``fold_rs``: the cross-fitted rad-score of every training row
    (outer folds) and ``stage2_rs`` the same with the final intercept (:func:`cross_fitted_radscore`: what the
    final second stage trains on); ``r[f]``: the cross-fitted rad-score of outer fold f's training part (its
    inner folds, intercept of outer fold f's signature), computed without its validation rows. ``sig``: the
    signature fitted on all training rows."""
    outer = grouped_folds(ytr, groups, k, seed)
    inner = [grouped_folds(ytr[a], groups[a], k, seed) for a, _ in outer]
    specs = list(outer) + [(a[ia], a[ib]) for (a, _), folds in zip(outer, inner) for ia, ib in folds]
    jobs = [delayed(_fit_part)(signature, clin_template, Xtr.iloc[a], ytr[a], Xtr.iloc[b]) for a, b in specs]
    pending = Parallel(n_jobs=parallel.n_jobs, prefer="processes", return_as="generator")(jobs)
    # the final signature is fitted here while the workers fit the fold signatures: a fitted object sent back
    # from a worker process serialises to different bytes (bundles must not depend on n_jobs)
    final = _fit_signature(signature, Xtr, ytr)
    res = [final] + list(pending)
    po, rest = res[1:1 + k], iter(res[1 + k:])
    pi = [[next(rest) for _ in folds] for folds in inner]
    fold_rs, stage2_rs, b0 = np.full(len(ytr), np.nan), np.full(len(ytr), np.nan), radscore_intercept(final)
    r = []
    for f, (a, b) in enumerate(outer):  # intercepts replaced as in cross_fitted_radscore
        fold_rs[b] = po[f]["rs_va"]
        stage2_rs[b] = po[f]["rs_va"] - po[f]["b0"] + b0
        r_f = np.full(len(a), np.nan)
        for j, (_, ib) in enumerate(inner[f]):
            r_f[ib] = pi[f][j]["rs_va"] - pi[f][j]["b0"] + po[f]["b0"]
        r.append(r_f)
    return SimpleNamespace(outer=outer, inner=inner, po=po, pi=pi, fold_rs=fold_rs, stage2_rs=stage2_rs, r=r,
                           sig=final)


def _stage2(rad_score, clinical: pd.DataFrame) -> pd.DataFrame:
    """Second-stage input ``[rad_score | encoded clinical columns]``."""
    return pd.concat([pd.DataFrame({"rad_score": np.asarray(rad_score, float)}, index=clinical.index), clinical],
                     axis=1)


def _views(cv: SimpleNamespace, ytr, groups, clinical_on: bool) -> dict:
    """``{fold key: (train Z, train y, train groups, validation Z)}`` of every fold a classifier is fitted on:
    ``("tune", f, feature_set)`` (outer fold f) and ``("inner", f, j, feature_set)`` (inner fold j of it).

    The combined feature set's rad-score is always cross-fitted on the rows it trains on: ``r[f]`` on outer
    fold f's training part and the fold signature on its validation part; in inner folds the column ``r[f]``
    is used as it is (both parts out-of-fold; the outer validation rows never enter it)."""
    views = {}
    for f, (a, b) in enumerate(cv.outer):
        po, ya, ga = cv.po[f], ytr[a], groups[a]
        views[("tune", f, "radiomics")] = (po["Z_tr"], ya, ga, po["Z_va"])
        if clinical_on:
            views[("tune", f, "combined")] = (_stage2(cv.r[f], po["C_tr"]), ya, ga, _stage2(po["rs_va"], po["C_va"]))
        for j, (ia, ib) in enumerate(cv.inner[f]):
            pi = cv.pi[f][j]
            views[("inner", f, j, "radiomics")] = (pi["Z_tr"], ya[ia], ga[ia], pi["Z_va"])
            if clinical_on:
                views[("inner", f, j, "combined")] = (_stage2(cv.r[f][ia], pi["C_tr"]), ya[ia], ga[ia],
                                                      _stage2(cv.r[f][ib], pi["C_va"]))
    return views


def _fold_aucs(y, p, folds) -> list[float]:
    """AUC of ``p`` in the validation part of every fold (NaN for a part with one class)."""
    return [float(roc_auc_score(y[b], p[b])) if len(set(y[b])) == 2 else float("nan") for _, b in folds]


def _fold_loglik(y, p, folds) -> list[float]:
    """Mean log-likelihood (minus the log loss) of ``p`` in the validation part of every fold."""
    q = np.clip(np.asarray(p, dtype=float), 1e-15, 1 - 1e-15)
    ll = y * np.log(q) + (1 - y) * np.log1p(-q)
    return [float(np.mean(ll[b])) for _, b in folds]


def _mean(values) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def _se(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def _best_point(scores_per_point: list[list[float]]) -> int:
    """Index of the grid point with the best (highest) mean fold score (ties: the first in grid order)."""
    means = [_mean(a) for a in scores_per_point]
    return max(range(len(means)), key=lambda i: (np.nan_to_num(means[i], nan=-np.inf), -i))


def _simplicity(name: str, candidates) -> tuple[int, int]:
    return (SIMPLICITY.index(name) if name in SIMPLICITY else len(SIMPLICITY), list(candidates).index(name))


def choose_model(candidates, fold_aucs: dict, rule: str = "one_se") -> dict:
    """Choose among pre-specified models from their fold AUCs (same folds for all).

    ``rule="one_se"``: the simplest candidate (:data:`SIMPLICITY`, then the order of ``candidates``) whose mean
    AUC is within one standard error (SD of the best model's fold AUCs / √folds) of the best mean — Breiman's
    1-SE rule (CART, 1984), the parsimony rule of glmnet's ``lambda.1se``; ``"best"``: the best mean.
    Returns ``{chosen, best, rule, reason, table}``; ``table``: one row per candidate (mean_auc, se_auc,
    within_one_se, chosen)."""
    if rule not in MODEL_CHOICE_RULES:
        raise ValueError(f"unknown model choice rule {rule!r}; choose from {MODEL_CHOICE_RULES}")
    means = {c: _mean(fold_aucs[c]) for c in candidates}
    ses = {c: _se(fold_aucs[c]) for c in candidates}
    order = sorted(candidates, key=lambda c: _simplicity(c, candidates))
    best = max(order, key=lambda c: (np.nan_to_num(means[c], nan=-np.inf), -order.index(c)))
    bar = means[best] - ses[best]
    within = [c for c in order if np.isfinite(means[c]) and means[c] >= bar - 1e-12]
    chosen = best if rule == "best" or not within else within[0]
    if chosen == best:
        reason = f"best mean CV AUC {means[best]:.3f}" + (" (the simplest within 1 SE)" if rule == "one_se" else "")
    else:
        reason = (f"simplest model within 1 SE of the best ({best}: AUC {means[best]:.3f}, SE {ses[best]:.3f}; "
                  f"{chosen}: {means[chosen]:.3f})")
    table = pd.DataFrame({"candidate": list(candidates), "mean_auc": [means[c] for c in candidates],
                          "se_auc": [ses[c] for c in candidates],
                          "within_one_se": [c in within for c in candidates],
                          "chosen": [c == chosen for c in candidates]})
    return dict(chosen=chosen, best=best, rule=rule, reason=reason, table=table)


def _run_grid(spaces: dict, cv: SimpleNamespace, views: dict, ytr, inner_needed: dict, seed, cw, parallel):
    """Every grid point of every tuned model fitted in every outer fold and (when its choice is tuned) every
    inner fold. Returns ``(tune, inner)``: out-of-fold predictions ``tune[(fs, m, i)]`` over the training rows
    (outer folds) and ``inner[(f, fs, m, i)]`` over outer fold f's training part (its inner folds)."""
    jobs = []
    for (fs, m), grid in spaces.items():
        for i, params in enumerate(grid):
            for f in range(len(cv.outer)):
                jobs.append((("tune", f, fs), fs, m, i, params))
                if inner_needed[(fs, m)]:
                    jobs += [(("inner", f, j, fs), fs, m, i, params) for j in range(len(cv.inner[f]))]
    preds = parallel(delayed(_fit_predict)(m, fs, params, *views[key][:3], views[key][3], seed, cw)
                     for key, fs, m, i, params in jobs)
    tune, inner = {}, {}
    for (key, fs, m, i, _), p in zip(jobs, preds):
        f = key[1]
        if key[0] == "tune":
            tune.setdefault((fs, m, i), np.full(len(ytr), np.nan))[cv.outer[f][1]] = p
        else:
            inner.setdefault((f, fs, m, i), np.full(len(cv.outer[f][0]), np.nan))[cv.inner[f][key[2]][1]] = p
    return tune, inner


def _tuned(spaces: dict, tune: dict, inner: dict, cv: SimpleNamespace, ytr, inner_needed: dict) -> dict:
    """Per tuned model ``(fs, m)``: its grid, the outer-fold AUCs and log-likelihoods of every grid point
    (``tune_aucs``, ``tune_ll``), the grid point of the final model (``i_final``: best mean out-of-fold
    log-likelihood over the outer folds) and, per outer fold f, the grid point its inner CV chose the same way
    (``fold_i[f]``) with that point's inner-fold AUCs (``fold_inner[f]``, for the choice among types).

    Hyperparameters are chosen by the log loss (binomial deviance), a proper scoring rule: AUC is blind to the
    scale of the risks, and on the demo-sized proxy it picked C = 0.01 for the combined logistic model by a
    margin of 0.003 (test calibration slope 2.2)."""
    out = {}
    for (fs, m), grid in spaces.items():
        tune_aucs = [_fold_aucs(ytr, tune[(fs, m, i)], cv.outer) for i in range(len(grid))]
        tune_ll = [_fold_loglik(ytr, tune[(fs, m, i)], cv.outer) for i in range(len(grid))]
        fold_i, fold_inner = [], []
        for f, (a, _) in enumerate(cv.outer):
            if not inner_needed[(fs, m)]:
                fold_i.append(0)
                fold_inner.append(None)
                continue
            ll = [_fold_loglik(ytr[a], inner[(f, fs, m, i)], cv.inner[f]) for i in range(len(grid))]
            fold_i.append(_best_point(ll))
            fold_inner.append(_fold_aucs(ytr[a], inner[(f, fs, m, fold_i[-1])], cv.inner[f]))
        out[(fs, m)] = SimpleNamespace(grid=grid, tune_aucs=tune_aucs, tune_ll=tune_ll, i_final=_best_point(tune_ll),
                                       fold_i=fold_i, fold_inner=fold_inner)
    return out


def _nested_oof(cv: SimpleNamespace, tune: dict, fs: str, picks) -> np.ndarray:
    """Nested out-of-fold predictions: outer fold f predicted by grid point ``picks[f] = (model, i)``, chosen
    inside that fold (its validation rows never took part in the choice)."""
    out = np.full(len(cv.fold_rs), np.nan)
    for f, (_, b) in enumerate(cv.outer):
        m, i = picks[f]
        out[b] = tune[(fs, m, i)][b]
    return out


def _combined_choice(tuned: dict, types: list, cv: SimpleNamespace, rule: str) -> SimpleNamespace:
    """The combined model's classifier type: on all training rows (outer-fold AUCs of each type's best grid
    point, :func:`choose_model`) and inside every outer fold (inner-fold AUCs), for the nested CV."""
    final = choose_model(types, {m: tuned[("combined", m)].tune_aucs[tuned[("combined", m)].i_final]
                                 for m in types}, rule)
    picks, per_fold = [], []
    for f in range(len(cv.outer)):
        if tuned[("combined", types[0])].fold_inner[f] is None:  # one type with one grid point: nothing to choose
            m = types[0]
        else:
            choice = choose_model(types, {t: tuned[("combined", t)].fold_inner[f] for t in types}, rule)
            per_fold.append(choice)
            m = choice["chosen"]
        picks.append((m, tuned[("combined", m)].fold_i[f]))
    return SimpleNamespace(final=final, picks=picks, per_fold=per_fold)


def _clinical_fold(clinical_template, clin_multi, Xa, ya, Xb, r_a, rs_b, seed) -> tuple[np.ndarray, np.ndarray]:
    """Clinical and nomogram models fitted on an outer fold's training part (nomogram on its cross-fitted
    rad-score ``r_a``), predicted on its validation part (rad-score ``rs_b`` of the fold signature)."""
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        p_clin = clone(clinical_template).fit(Xa, ya).predict_proba(Xb)[:, 1]
        clin = clone(clin_multi).fit(Xa, ya)
        nom = Pipeline([("scale", StandardScaler()), ("clf", _logistic(seed))]).fit(_stage2(r_a, clin.transform(Xa)), ya)
        p_nom = nom.predict_proba(_stage2(rs_b, clin.transform(Xb)))[:, 1]
    return p_clin, p_nom


def _fixed_cv(cv: SimpleNamespace, Xtr, ytr, clinical_template, clin_multi, seed, parallel) -> dict:
    """Out-of-fold predictions of the untuned models: ``radscore`` (fold signatures) and, with clinical
    predictors (``clinical_template`` not None), ``clinical`` and ``nomogram`` refitted in every outer fold."""
    fixed = {"radscore": np.full(len(ytr), np.nan)}
    for f, (_, b) in enumerate(cv.outer):
        fixed["radscore"][b] = cv.po[f]["p_va"]
    if clinical_template is None:
        return fixed
    res = parallel(delayed(_clinical_fold)(clinical_template, clin_multi, Xtr.iloc[a], ytr[a], Xtr.iloc[b], cv.r[f],
                                           cv.po[f]["rs_va"], seed) for f, (a, b) in enumerate(cv.outer))
    fixed["clinical"], fixed["nomogram"] = np.full(len(ytr), np.nan), np.full(len(ytr), np.nan)
    for (_, b), (p_clin, p_nom) in zip(cv.outer, res):
        fixed["clinical"][b], fixed["nomogram"][b] = p_clin, p_nom
    return fixed


CV_BASIS = {"fixed": "CV (nothing tuned)", "single": "CV (one configuration, nothing tuned)",
            "nested": "nested CV (the choice made again by inner CV inside every outer fold)"}


def _entry(pipeline, oof, t: SimpleNamespace, kind: str, classifier: str, params=None, basis="fixed", **extra) -> dict:
    """A fitted model with its out-of-fold predictions and their CV AUC (the honest one: nested if tuned)."""
    aucs = _fold_aucs(t.d.ytr, oof, t.cv.outer)
    return dict(pipeline=pipeline, oof=oof, fold_aucs=aucs, cv_auc=_mean(aucs), kind=kind, classifier=classifier,
                params=dict(params or {}), meta=dict(cv_auc_basis=CV_BASIS[basis], **extra))


def _tuning_meta(tm: SimpleNamespace, fold_choices: list[dict]) -> dict:
    tuned = tm.fold_inner[0] is not None
    return dict(basis="nested" if tuned else "single", cv_auc_tuning=_mean(tm.tune_aucs[tm.i_final]),
                nested_fold_choices=fold_choices if tuned else [])


def _radiomics_models(t: SimpleNamespace) -> dict[str, dict]:
    """``radscore`` and the radiomics classifiers fitted on all training rows (the final signature's selected
    features; a signature that kept none gives every classifier the rad-score model: the training prevalence)."""
    sig, ytr = t.cv.sig, t.d.ytr
    Ztr = sig.transform(t.d.Xtr)
    models = {"radscore": _entry(copy.deepcopy(sig), t.fixed["radscore"], t, "radiomics", "lasso")}
    for m in t.cfg["classifiers"]:
        tm = t.tuned[("radiomics", m)]
        params = tm.grid[tm.i_final]
        if Ztr.shape[1] == 0:
            log.warning("task %s: the signature kept no radiomics feature; %s predicts the training prevalence",
                        t.d.task, m)
            pipe, name, params = copy.deepcopy(sig), "prior", {}
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf = make_classifier(m, params, ytr, t.cw, t.seed, t.groups).fit(Ztr, ytr)
            pipe, name = Pipeline(copy.deepcopy(sig.steps) + [("clf", clf)]), m
        oof = _nested_oof(t.cv, t.tune, "radiomics", [(m, i) for i in tm.fold_i])
        models[m] = _entry(pipe, oof, t, "radiomics", name, params,
                           **_tuning_meta(tm, [{"hyperparameters": tm.grid[i]} for i in tm.fold_i]))
    return models


def _second_stage(t: SimpleNamespace, clinical: Pipeline, clf) -> Pipeline:
    """``RadiomicsClinicalFeatures → scaler → clf`` fitted on all training rows with their cross-fitted
    rad-score (``stage2_rs``: the outer folds, exactly the folds of ``RadiomicsClinicalFeatures.fit_transform``,
    so this is the state ``Pipeline.fit`` gives); new rows get the final signature's rad-score."""
    Xtr, ytr = t.d.Xtr, t.d.ytr
    feats = RadiomicsClinicalFeatures.from_fitted_radiomics(
        radscore_branch(t.signature), fitted_radscore_branch(t.cv.sig), clinical, Xtr, ytr, cv=t.k, random_state=t.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        head = Pipeline([("scale", StandardScaler()), ("clf", clf)]).fit(
            feats._frame(Xtr, t.cv.stage2_rs, feats.clinical_.transform(Xtr)), ytr)
    return Pipeline([("features", feats)] + head.steps)


def _clinical_models(t: SimpleNamespace) -> dict[str, dict]:
    """``clinical``, ``nomogram`` and ``combined`` fitted on all training rows."""
    Xtr, ytr = t.d.Xtr, t.d.ytr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clinical = clone(t.clinical_template).fit(Xtr, ytr)
    models = {"clinical": _entry(clinical, t.fixed["clinical"], t, "clinical", "logistic"),
              "nomogram": _entry(_second_stage(t, t.clin_multi, _logistic(t.seed)), t.fixed["nomogram"], t,
                                 "combined", "logistic")}
    final = t.comb.final
    m = final["chosen"]
    tm = t.tuned[("combined", m)]
    params = tm.grid[tm.i_final]
    pipe = _second_stage(t, t.enc_template, make_classifier(m, params, ytr, t.cw, t.seed, t.groups))
    oof = _nested_oof(t.cv, t.tune, "combined", t.comb.picks)
    candidates = {c: {"mean_auc": _finite(r.mean_auc), "se_auc": _finite(r.se_auc),
                      "hyperparameters": t.tuned[("combined", c)].grid[t.tuned[("combined", c)].i_final]}
                  for c, r in zip(final["table"].candidate, final["table"].itertuples())}
    choice = dict(rule=final["rule"], chosen=m, best=final["best"], reason=final["reason"], candidates=candidates)
    fold_choices = [{"classifier": c, "hyperparameters": t.tuned[("combined", c)].grid[i]} for c, i in t.comb.picks]
    meta = _tuning_meta(tm, fold_choices)
    if t.comb.per_fold:
        meta["basis"] = "nested"
        meta["nested_fold_choices"] = fold_choices
    models["combined"] = _entry(pipe, oof, t, "combined", m, params, model_choice=choice, **meta)
    return models


def _finite(v):
    """A number for bundle.json: NaN/inf become null (bundle.json holds finite numbers only)."""
    return float(v) if v is not None and np.isfinite(v) else None


def _cv_table(t: SimpleNamespace, models: dict) -> pd.DataFrame:
    """``models/cv_results.tsv``: every grid point's outer-fold AUCs and mean log loss (the tuning CV), how many
    outer folds' inner CV chose it, whether the final model uses it, and the final model's nested CV AUC."""
    rows = []

    def row(fs, m, params, aucs, ll, chosen, n_chosen, nested):
        return dict(feature_set=fs, classifier=m, params=json.dumps(params, sort_keys=True),
                    **{f"auc_fold{k + 1}": a for k, a in enumerate(aucs)}, mean_auc=_mean(aucs),
                    sd_auc=float(np.nanstd(aucs, ddof=1)) if np.isfinite(aucs).sum() > 1 else float("nan"),
                    se_auc=_se(aucs), mean_log_loss=-_mean(ll), n_outer_folds_chosen=n_chosen, chosen=chosen,
                    nested_mean_auc=nested)

    for (fs, m), tm in t.tuned.items():
        final_type = fs == "radiomics" or m == t.comb.final["chosen"]
        picks = [(m, i) for i in tm.fold_i] if fs == "radiomics" else t.comb.picks
        for i, params in enumerate(tm.grid):
            chosen = final_type and i == tm.i_final
            nested = models[m if fs == "radiomics" else "combined"]["cv_auc"] if chosen else float("nan")
            rows.append(row(fs, m, params, tm.tune_aucs[i], tm.tune_ll[i], chosen, sum(p == (m, i) for p in picks),
                            nested))
    for name, fs in (("radscore", "radiomics"), ("clinical", "clinical"), ("nomogram", "nomogram")):
        if name in models:
            rows.append(row(fs, name, {}, models[name]["fold_aucs"], _fold_loglik(t.d.ytr, models[name]["oof"], t.cv.outer),
                            True, len(t.cv.outer), models[name]["cv_auc"]))
    cv = pd.DataFrame(rows)
    cv.insert(0, "task", t.d.task)
    return cv


def _choice_table(t: SimpleNamespace, radiomics_best: dict) -> pd.DataFrame:
    """``models/model_choice.tsv``: every model choice, its candidates' mean and SE of the AUC, which were
    within one SE of the best, what was chosen and why — on all training rows and inside every outer fold."""
    frames = []

    def add(choice, decision, scope, basis):
        tab = choice["table"].assign(decision=decision, scope=scope, rule=choice["rule"], basis=basis)
        tab["reason"] = np.where(tab["chosen"], choice["reason"], "")
        frames.append(tab)

    add(radiomics_best, "radiomics_best_model", "all training rows", "nested CV AUC of each model")
    if t.clinical_on:
        add(t.comb.final, "combined classifier", "all training rows", "CV AUC of each type's best grid point")
        for f, choice in enumerate(t.comb.per_fold):
            add(choice, "combined classifier", f"outer fold {f + 1}", "inner CV AUC (outer fold left out)")
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "task", t.d.task)
    return out[["task", "decision", "scope", "candidate", "mean_auc", "se_auc", "within_one_se", "chosen", "rule",
                "basis", "reason"]]


def _predictions(t: SimpleNamespace, models: dict) -> tuple[pd.DataFrame, dict]:
    """The predictions table (every model on every row, plus ``cv`` = out-of-fold on the training rows) and
    each model's Youden threshold (on its out-of-fold or apparent training predictions)."""
    d, tr = t.d, t.d.tr
    rs_all = fitted_radscore_branch(t.cv.sig).transform(d.X)["rad_score"].to_numpy()
    meta_rows = d.rows[["patient_id", "image_id", "split"]].reset_index(drop=True).assign(y=d.y_all)
    tr_rows = meta_rows[tr].reset_index(drop=True)
    frames, thresholds = [], {}
    for name, m in models.items():
        p_all = m["pipeline"].predict_proba(d.X)[:, 1]
        has_rs = m["kind"] != "clinical"
        fr = meta_rows.assign(task=d.task, model=name, probability=p_all, rad_score=rs_all if has_rs else np.nan)
        fr.loc[tr, "split"] = "train"
        cvf = tr_rows.assign(split="cv", task=d.task, model=name, probability=m["oof"],
                             rad_score=t.cv.fold_rs if has_rs else np.nan)
        frames += [cvf, fr]
        thresholds[name] = _youden(d.ytr, m["oof"] if t.cfg["threshold_from"] == "cv" else p_all[tr])
    predictions = pd.concat(frames, ignore_index=True)[
        ["patient_id", "image_id", "task", "split", "model", "y", "probability", "rad_score"]]
    order = {s: i for i, s in enumerate(["cv", "train", "test", "external"])}
    predictions = predictions.assign(_s=predictions["split"].map(order)).sort_values(
        ["model", "_s", "patient_id", "image_id"], kind="mergesort").drop(columns="_s").reset_index(drop=True)
    return predictions, thresholds


def _write_selection(t: SimpleNamespace, out: Path) -> None:
    """``selection/``: ICC table, selected features, rad-score formula, LASSO path, features left per step."""
    steps = signature_steps(t.cv.sig)
    lasso_step, icc, uni_step, task = steps["lasso"], steps["icc"], steps["univariate"], t.d.task
    icc_tab = icc.icc_table()
    icc_tab.insert(0, "task", task)
    _write_tsv(icc_tab, out / "selection" / "icc.tsv")
    upos = {n: i for i, n in enumerate(uni_step.feature_names_in_)}
    selected = pd.DataFrame({"task": task, "feature": lasso_step.get_feature_names_out(), "coef": lasso_step.coef_})
    selected["icc"] = selected["feature"].map(dict(zip(icc_tab["feature"], icc_tab["icc"])))
    selected["mann_whitney_p"] = [float(uni_step.pvalues_[upos[f]]) for f in selected["feature"]]
    selected["univariate_auc"] = [float(uni_step.auc_[upos[f]]) for f in selected["feature"]]
    _write_tsv(selected, out / "selection" / "selected_features.tsv")
    lasso = t.cfg["lasso"]
    write_text(
        out / "selection" / "radscore_formula.txt",
        lasso_step.formula() + "\n# z(f) = (f - training mean) / training SD; means/SDs in the radscore bundle "
        f"(step 'scale').\n# intercept {lasso_step.intercept_!r}, C = {lasso_step.C_!r} "
        f"({'1-SE rule' if lasso['one_se_rule'] else 'best CV'}; {lasso['scoring']}).\n")
    lp = lasso_step.path_table()
    lp.insert(0, "task", task)
    _write_tsv(lp, out / "selection" / "lasso_path.tsv")
    counts = [("input (reference reader)", len(icc.base_features_))]
    for nm in ("icc", "nzv", "univariate", "redundancy", "mrmr", "lasso"):
        st = steps.get(nm, "passthrough")
        if st != "passthrough":
            counts.append((nm, len(st.get_feature_names_out())))
    _write_tsv(pd.DataFrame(counts, columns=["step", "n_features_after"]).assign(task=task)[
        ["task", "step", "n_features_after"]], out / "selection" / "steps.tsv")


def _common_meta(t: SimpleNamespace, feature_meta, sel_vars, indep, radiomics_best: dict) -> dict:
    d, rep, lasso_step = t.d, t.d.rep, t.cv.sig.named_steps["lasso"]
    return dict(
        task=d.task, seed=int(t.seed), n_train_images=int(d.tr.sum()),
        n_train_patients=len(set(d.Xtr.index.get_level_values("patient_id"))),
        reproducibility=dict(copy_reader=d.copy_reader, icc_form=rep["icc_form"],
                             icc_threshold=rep["icc_threshold"] if d.copy_reader else None,
                             source=("second reader" if d.copy_reader == "r2" else
                                     "perturbed mask" if d.copy_reader else "none")),
        selected_features=list(map(str, lasso_step.get_feature_names_out())),
        radscore_formula=lasso_step.formula(), versions=_versions(),
        pyradiomics=(feature_meta or {}).get("params") or (feature_meta or {}).get("params_text"),
        pyradiomics_params_sha256=(feature_meta or {}).get("params_sha256"),
        clinical_selected=sel_vars, clinical_independent=indep, radiomics_best_model=radiomics_best["chosen"],
        radiomics_best_reason=f"{radiomics_best['reason']} (rule {radiomics_best['rule']}, nested CV AUCs)",
        class_weight=t.cw, probabilities=("balanced class weights, recalibrated to the training prevalence (grouped "
                                          "Platt scaling)"
                                          if t.cw == "balanced" else "unweighted: at the training prevalence"),
        threshold_basis="out-of-fold CV predictions on training rows" if t.cfg["threshold_from"] == "cv"
        else "apparent predictions on training rows")


def _write_outputs(t: SimpleNamespace, models: dict, thresholds: dict, radiomics_best: dict, out_dir,
                   feature_meta) -> None:
    """Selection tables, Table 2, cv_results, model_choice and one bundle per model under ``out_dir``."""
    from .bundle import save_bundle

    out, d = Path(out_dir), t.d
    _write_selection(t, out)
    sel_vars, indep = [], []
    if t.clinical_on:  # Table 2's univariable and multivariable odds ratios
        Xc = clone(t.enc_template).fit(d.Xtr, d.ytr).transform(d.Xtr)
        uni, multi, sel_vars, indep = clinical_logit_tables(Xc, d.ytr, t.cfg["clinical_p_threshold"])
        _write_tsv(uni.assign(task=d.task), out / "tables" / "univariable.tsv")
        _write_tsv(multi.assign(task=d.task), out / "tables" / "multivariable.tsv")
    _write_tsv(_cv_table(t, models), out / "models" / "cv_results.tsv")
    _write_tsv(_choice_table(t, radiomics_best), out / "models" / "model_choice.tsv")
    common = _common_meta(t, feature_meta, sel_vars, indep, radiomics_best)
    for name, m in models.items():
        extra = {k: (_finite(v) if isinstance(v, float) else v) for k, v in m["meta"].items()}
        meta = dict(common, model=name, kind=m["kind"], classifier=m["classifier"], hyperparameters=m["params"],
                    cv_auc=_finite(m["cv_auc"]), threshold=thresholds[name], input_columns=list(map(str, d.X.columns)),
                    **extra)
        if name == "nomogram":  # training ranges of its inputs: the nomogram scales (usrad.nomogram, usrad.predict)
            meta["nomogram_inputs"] = nomogram_inputs(m["pipeline"], d.Xtr)
        save_bundle(m["pipeline"], out / "models" / name, meta)


def _youden(y, p) -> float:
    """Youden's J threshold; a model whose predictions are all equal (a signature that kept no feature predicts
    the training prevalence) has no ROC to choose from: its threshold is that value."""
    from .metrics import youden_threshold

    p = np.asarray(p, dtype=float)
    if p.size and np.ptp(p) == 0:
        return float(p[0])
    return youden_threshold(y, p)


def nomogram_inputs(pipeline, X_train: pd.DataFrame) -> dict:
    """``{input column: {min, max, binary}}`` of a nomogram pipeline's logistic inputs on the training rows."""
    Z = pipeline.named_steps["features"].transform(X_train)
    out = {}
    for c in Z.columns:
        v = Z[c].to_numpy(float)
        v = v[np.isfinite(v)]
        out[str(c)] = {"min": float(v.min()), "max": float(v.max()), "binary": bool(set(np.unique(v)) <= {0.0, 1.0})}
    return out


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("usrad", "scikit-learn", "xgboost-cpu", "numpy", "pandas", "scipy", "statsmodels", "skops",
                "pyradiomics-bhklab", "simpleitk"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _write_tsv(df: pd.DataFrame, path: Path) -> None:
    write_tsv(df, path, float_format="%.10g")


def write_predictions(predictions: pd.DataFrame, path) -> None:
    """The predictions table (one per task): deterministic TSV, written atomically."""
    _write_tsv(predictions, Path(path))


def read_predictions(path) -> pd.DataFrame:
    return read_table(path, text=("task", "split", "model"))


# --------------------------------------------------------------------------- the task
def fit_task(features_df: pd.DataFrame, cohort_df: pd.DataFrame, split_df: pd.DataFrame, task_cfg: dict,
             modelling_cfg: dict | None, clinical_cfg: dict, seed: int, n_jobs: int = 1, out_dir=None,
             feature_meta: dict | None = None) -> pd.DataFrame:
    """Fit every model of one task on its training rows; write bundles and tables; return the predictions.

    Predictions: ``patient_id, image_id, task, split, model, y, probability, rad_score`` (``y``: the 0/1
    outcome, so every metric is computed from this one table) with split ∈
    {``cv`` (out-of-fold on training rows; for tuned models nested: the choice made inside every outer fold),
    ``train`` (final model, apparent), ``test``, ``external``}. Files under ``out_dir`` (if given):
    ``models/{name}/`` bundles, ``models/cv_results.tsv``, ``models/model_choice.tsv``,
    ``tables/univariable.tsv``, ``tables/multivariable.tsv``,
    ``selection/{selected_features,icc,lasso_path,steps}.tsv``, ``selection/radscore_formula.txt``.
    """
    # BLAS threads on these small matrices only thrash (7× slower measured) and can change the last bits
    # of sums; parallelism comes from joblib's n_jobs (results are identical for any n_jobs).
    with threadpool_limits(limits=1):
        return _fit_task(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg, seed, n_jobs,
                         out_dir, feature_meta)


# --------------------------------------------------------------------------- checks before anything runs
def copy_reader_problems(cohort_df: pd.DataFrame, split_df: pd.DataFrame | None, cfg: dict) -> list[Problem]:
    """The ICC filter's second segmentation (``modelling.reproducibility.copy_reader``) against the cohort: a
    second reader named that no row has, or too few training images with one for the filter in every CV fold."""
    from .selection import ICCFilter

    ms = modelling_settings(cfg.get("modelling"))
    wanted = ms["reproducibility"].get("copy_reader", "auto")
    n_perturbed = int(((cfg.get("extraction") or {}).get("perturbed_masks")) or 0)
    has_r2 = cohort_df.get("mask_reader2", pd.Series("", index=cohort_df.index)).fillna("").astype(str) != ""
    key = "key 'modelling.reproducibility.copy_reader'"
    if wanted == "r2" and not has_r2.any():
        return [Problem(f"{key}: 'r2' (second reader), but no row of the manifest has a mask_reader2; use auto, a "
                        "perturbed mask (extraction.perturbed_masks) or null (no ICC filter)", column="mask_reader2")]
    resolved = "r2" if wanted == "r2" or (wanted == "auto" and has_r2.any()) else None
    if resolved is None or split_df is None:
        return []  # perturbed masks exist for every image; null/none: no filter
    k = int(ms["cv_folds"])
    need = math.ceil(ICCFilter().min_rows * k / (k - 1))
    train_ids = set(split_df.loc[split_df["split"] == "train", "image_id"].astype(str))
    problems = []
    for task in cfg.get("tasks") or []:
        rows = task_labels(cohort_df, task).dropna().index
        ids = cohort_df.loc[rows, "image_id"].astype(str)
        n = int((ids.isin(train_ids) & has_r2.loc[rows]).sum())
        if n < need:
            hint = "perturbed masks (extraction.perturbed_masks > 0) or null" if not n_perturbed else "'p1' or null"
            problems.append(Problem(
                f"{key}: task {task['name']!r} has only {n} training image(s) with a second reader's mask; the ICC "
                f"filter needs at least {need} ({ICCFilter().min_rows} in each of the {k} CV folds); use {hint}",
                column="mask_reader2"))
    return problems


def plan_problems(cohort_df: pd.DataFrame, cfg: dict) -> list[Problem]:
    """Everything a later rule (split, fit_task) would refuse that is known from the validated cohort table and
    config: the split and each task's classes in every part (:func:`usrad.split.split_problems`), the clinical
    predictors on each task's training rows (:func:`clinical_problems`) and the ICC filter's second
    segmentation (:func:`copy_reader_problems`). Called by ``usrad validate`` and rule ``validate_cohort``."""
    from .split import split_problems

    split_df, problems = split_problems(cohort_df, cfg)
    if split_df is not None:
        train_ids = set(split_df.loc[split_df["split"] == "train", "image_id"].astype(str))
        for task in cfg.get("tasks") or []:
            rows = task_labels(cohort_df, task).dropna().index
            ids = cohort_df.loc[rows, "image_id"].astype(str)
            problems += clinical_problems(cohort_df, ids[ids.isin(train_ids)], cfg.get("clinical") or {}, task["name"],
                                          source=None)
    problems += copy_reader_problems(cohort_df, split_df, cfg)
    return problems


def check_plan(cohort_df: pd.DataFrame, cfg: dict) -> None:
    """:func:`plan_problems` as one UsradError (every problem at once)."""
    problems = plan_problems(cohort_df, cfg)
    if problems:
        raise UsradError("The configuration cannot be run on this cohort", problems)


def _task_design(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg) -> SimpleNamespace:
    """Rows, labels, split and design matrix of one task (shared by :func:`fit_task` and the ablation)."""
    cfg = modelling_settings(modelling_cfg)
    task = task_cfg["name"]
    cohort = cohort_df.copy()
    cohort["patient_id"] = cohort["patient_id"].astype(str)
    cohort["image_id"] = cohort["image_id"].astype(str)
    labels = task_labels(cohort, task_cfg)
    rows = cohort.assign(label=labels.to_numpy())
    rows = rows[rows["label"].notna()]
    sp = split_df.assign(image_id=split_df["image_id"].astype(str)).set_index("image_id")["split"]
    missing = rows[~rows["image_id"].isin(sp.index)]
    if len(missing):
        raise UsradError("Images missing from the split file (re-run the split)",
                         [Problem("image not in the split", patient=r.patient_id, column="image_id")
                          for r in missing.itertuples()][:50])
    rows = rows.assign(split=rows["image_id"].map(sp)).sort_values(["patient_id", "image_id"], kind="mergesort")
    predictors, categorical = _check_clinical(cohort, set(rows["image_id"]), task_cfg, clinical_cfg,
                                              train_rows=set(rows.loc[rows["split"] == "train", "image_id"]))
    impute = clinical_cfg.get("missing", "refuse") == "impute"

    readers = features_df["reader"].astype(str).unique()
    rep = cfg["reproducibility"]
    copy_reader = pick_copy_reader(readers, rep.get("copy_reader", "auto"))
    if copy_reader is None:
        log.warning("task %s: no second reader or perturbed-mask rows; the ICC filter is off", task)
    X, rad_cols = build_design(features_df, cohort, rows["image_id"], predictors, copy_reader)
    if "split_group" in split_df.columns:  # patients sharing an image: one group in every CV (index level)
        group_of = split_df.assign(image_id=split_df["image_id"].astype(str)).set_index("image_id")["split_group"]
        ids = X.index.get_level_values("image_id")
        X.index = pd.MultiIndex.from_arrays([X.index.get_level_values("patient_id"), ids,
                                             ids.map(group_of).astype(str)],
                                            names=["patient_id", "image_id", "split_group"])
    y_all = rows["label"].astype(int).to_numpy()
    split_all = rows["split"].to_numpy()
    tr = split_all == "train"
    Xtr, ytr = X[tr], y_all[tr]
    patients_tr = Xtr.index.get_level_values("patient_id").to_numpy()
    groups_tr = cv_groups(Xtr)  # CV folds keep a patient's images together, and patients sharing an image too
    n_pat = pd.Series(ytr).groupby(patients_tr).max().value_counts()
    if min(n_pat.get(0, 0), n_pat.get(1, 0)) < cfg["cv_folds"]:
        raise UsradError(f"Task {task!r}: too few training patients to cross-validate", [Problem(
            f"training set has {n_pat.get(0, 0)} negative and {n_pat.get(1, 0)} positive patients; "
            f"modelling.cv_folds = {cfg['cv_folds']} needs at least that many of each", column="split")])
    return SimpleNamespace(cfg=cfg, task=task, cohort=cohort, rows=rows, predictors=predictors,
                           categorical=categorical, impute=impute, rep=rep, copy_reader=copy_reader, X=X,
                           rad_cols=rad_cols, y_all=y_all, split_all=split_all, tr=tr, Xtr=Xtr, ytr=ytr,
                           groups_tr=groups_tr)


def _signature(columns, cfg: dict, copy_reader, seed) -> Pipeline:
    """The unfitted radiomics signature on ``columns`` with the task's modelling settings."""
    rep, lasso = cfg["reproducibility"], cfg["lasso"]
    return signature_pipeline(
        columns, icc_threshold=rep["icc_threshold"] if copy_reader else None, icc_form=rep["icc_form"],
        copy_suffix=f"@{copy_reader}" if copy_reader else "@none",
        nzv_freq_cut=cfg["near_zero_variance"]["freq_cut"], nzv_unique_cut=cfg["near_zero_variance"]["unique_cut"],
        univariate_p=cfg["univariate"]["p_threshold"], univariate_min_features=cfg["univariate"]["min_features"],
        redundancy_threshold=cfg["redundancy"]["threshold"], mrmr_n_features=cfg["mrmr"]["n_features"],
        lasso_cv=lasso["cv_folds"], lasso_n_C=lasso["n_C"], lasso_one_se_rule=lasso["one_se_rule"],
        lasso_scoring=lasso["scoring"], class_weight=None, random_state=seed)  # the rad-score is a risk model


def _fit_task(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg, seed, n_jobs, out_dir,
              feature_meta):
    d = _task_design(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg)
    cfg = d.cfg
    clinical_on = bool(d.predictors)  # False: radiomics only (no clinical, nomogram or combined model)
    p_clin = cfg["clinical_p_threshold"]
    enc_template = clinical_branch(d.predictors, d.categorical, d.impute)
    clin_multi = clinical_branch(d.predictors, d.categorical, d.impute, p_clin, "multivariable")
    clinical_template = Pipeline([("features", clinical_branch(d.predictors, d.categorical, d.impute, p_clin,
                                                               "univariable")),
                                  ("scale", StandardScaler()), ("clf", _logistic(seed))])
    t = SimpleNamespace(d=d, cfg=cfg, seed=seed, k=int(cfg["cv_folds"]), cw=cfg["class_weight"],
                        groups=cv_groups(d.Xtr), clinical_on=clinical_on,
                        signature=_signature(d.rad_cols, cfg, d.copy_reader, seed), enc_template=enc_template,
                        clin_multi=clin_multi, clinical_template=clinical_template)
    parallel = Parallel(n_jobs=n_jobs, prefer="processes")
    clock = time.perf_counter()
    t.cv = _cv_signatures(t.signature, enc_template if clinical_on else None, d.Xtr, d.ytr, t.groups, t.k, seed,
                          parallel)
    n_sig = 1 + len(t.cv.outer) + sum(map(len, t.cv.inner))
    log.info("task %s: %d signatures fitted (final, outer and inner folds) in %.1f s", d.task, n_sig,
             time.perf_counter() - clock)

    # ---- tuning: every grid point in every outer fold; inside every outer fold the same choice by inner CV
    spaces = {("radiomics", m): search_space(m, cfg["search_spaces"]) for m in cfg["classifiers"]}
    types = list(cfg["combined_classifiers"]) if clinical_on else []
    spaces.update({("combined", m): search_space(m, cfg["search_spaces"]) for m in types})
    n_combined = sum(len(spaces[("combined", m)]) for m in types)
    inner_needed = {key: (len(grid) > 1 if key[0] == "radiomics" else n_combined > 1) for key, grid in spaces.items()}
    clock = time.perf_counter()
    views = _views(t.cv, d.ytr, t.groups, clinical_on)
    t.tune, inner = _run_grid(spaces, t.cv, views, d.ytr, inner_needed, seed, t.cw, parallel)
    t.tuned = _tuned(spaces, t.tune, inner, t.cv, d.ytr, inner_needed)
    t.comb = _combined_choice(t.tuned, types, t.cv, cfg["model_choice"]) if clinical_on else SimpleNamespace(
        final={"chosen": None}, picks=[], per_fold=[])
    t.fixed = _fixed_cv(t.cv, d.Xtr, d.ytr, clinical_template if clinical_on else None, clin_multi, seed, parallel)
    log.info("task %s: %d classifier fits (outer and inner folds) in %.1f s", d.task,
             sum(len(t.cv.outer) * len(g) * (1 + (len(t.cv.inner[0]) if inner_needed[key] else 0))
                 for key, g in spaces.items()), time.perf_counter() - clock)

    # ---- final fits on all training rows, model choice, predictions, files
    models = _radiomics_models(t)
    if clinical_on:
        models.update(_clinical_models(t))
    radiomics = ["radscore"] + list(dict.fromkeys(cfg["classifiers"]))
    radiomics_best = choose_model(radiomics, {n: models[n]["fold_aucs"] for n in radiomics}, cfg["model_choice"])
    predictions, thresholds = _predictions(t, models)
    if out_dir is not None:
        _write_outputs(t, models, thresholds, radiomics_best, out_dir, feature_meta)
    return predictions


# --------------------------------------------------------------------------- feature-class ablation
#: Feature classes of the ablation, by PyRadiomics feature name ``{image type}_{class}_{feature}``.
FEATURE_CLASSES = ("shape", "firstorder", "texture", "filtered", "all")
_TEXTURE = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")


def feature_class(name: str) -> str:
    """``shape`` / ``firstorder`` / ``texture`` (original image) or ``filtered`` (LoG, wavelet, … images)."""
    image_type, cls = (name.split("_") + ["", ""])[:2]
    if image_type != "original":
        return "filtered"
    if cls.startswith("shape"):
        return "shape"
    return "firstorder" if cls == "firstorder" else "texture" if cls in _TEXTURE else "other"


def feature_class_ablation(features_df: pd.DataFrame, cohort_df: pd.DataFrame, split_df: pd.DataFrame,
                           task_cfg: dict, modelling_cfg: dict | None, clinical_cfg: dict, seed: int,
                           n_boot: int = 2000, classes=FEATURE_CLASSES) -> pd.DataFrame:
    """Where the signal lives: the rad-score signature refitted on one feature class at a time.

    For each class the whole signature (ICC, NZV, Mann–Whitney, redundancy, LASSO) is fitted on the training
    rows restricted to that class's features, exactly as for the full rad-score, and scored on every split.
    Returns one row per class and split with the number of input and selected features, AUC and its
    patient-level bootstrap 95% CI (``metrics.bootstrap_auc``).
    """
    from .metrics import bootstrap_auc

    with threadpool_limits(limits=1):
        d = _task_design(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg)
        groups = d.X.index.get_level_values("patient_id").to_numpy()
        out = []
        for cls in classes:
            cols = [c for c in d.rad_cols if cls == "all" or feature_class(c) == cls]
            if not cols:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                sig = _signature(cols, d.cfg, d.copy_reader, seed).fit(d.Xtr, d.ytr)
            p = sig.predict_proba(d.X)[:, 1]
            n_sel = len(sig.named_steps["lasso"].get_feature_names_out())
            splits = np.where(d.tr, "train", d.split_all)
            for split in ("train", "test", "external"):
                m = splits == split
                if not m.any() or len(set(d.y_all[m])) < 2:
                    continue
                b = bootstrap_auc(d.y_all[m], p[m], groups=groups[m], n_boot=n_boot, seed=seed)
                out.append(dict(task=d.task, feature_class=cls, split=split, n_features=sum("@" not in c for c in cols),
                                n_selected=n_sel, n_images=int(m.sum()), n_patients=len(set(groups[m])),
                                auc=b["auc"], auc_low=b["low"], auc_high=b["high"]))
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- synthetic data (tests, docs)
def synthetic_modelling_data(n_patients: int = 200, n_features: int = 40, n_informative: int = 5,
                             signal: float = 2.0, seed: int = 0, second_image_fraction: float = 0.2,
                             reader2_noise: float = 0.15, copy_reader: str = "r2", feature_noise: float = 1.0):
    """Feature table (long: patient_id, image_id, reader, features) and cohort table with a known signal.

    A latent ``z`` per patient drives metastasis (``P = sigmoid(signal·z − 0.6)``) and the burden among N+.
    Features ``inf_0..`` = z + ``feature_noise``·N(0,1); ``noise_*`` = pure noise; ``inf_irreproducible`` is informative in
    reader 1 but independent noise in the copy reader (ICC ≈ 0); ``noise_reproducible`` is noise with a
    faithful copy. Every other copy = reader 1 + ``reader2_noise``·SD noise. Clinical: ``age``,
    ``us_size_mm`` (weakly related), ``us_node_suspicious`` (related), ``birads``, ``grade``.
    """
    rng = np.random.default_rng(seed)
    pids = [f"P{i:04d}" for i in range(n_patients)]
    z = rng.normal(size=n_patients)
    p_met = 1 / (1 + np.exp(-(signal * z - 0.6)))
    met = rng.random(n_patients) < p_met
    nodes = np.where(met, 1 + rng.poisson(np.exp(0.8 * z + 0.3)), 0)
    cohort_rows, feat_rows = [], []
    names = ([f"inf_{k}" for k in range(n_informative)] + ["inf_irreproducible", "noise_reproducible"]
             + [f"noise_{k}" for k in range(n_features - n_informative - 2)])
    for i, pid in enumerate(pids):
        n_img = 2 if rng.random() < second_image_fraction else 1
        clin = dict(age=float(np.round(rng.normal(52, 10), 1)),
                    us_size_mm=float(np.round(np.exp(rng.normal(3.0 + 0.15 * z[i], 0.4)), 1)),
                    us_node_suspicious=int(rng.random() < (0.6 if met[i] else 0.2)),
                    birads=str(rng.choice(["4a", "4b", "4c", "5"])), grade=int(rng.integers(1, 4)))
        for j in range(n_img):
            iid = f"{pid}_{j}"
            cohort_rows.append(dict(patient_id=pid, image_id=iid, **clin, n_positive_nodes=int(nodes[i])))
            base = np.concatenate([z[i] + rng.normal(scale=feature_noise, size=n_informative + 1),
                                   rng.normal(size=len(names) - n_informative - 1)])
            base = base * 10 + 50  # radiomics-like scale
            copy_ = base + rng.normal(scale=reader2_noise * 10, size=len(names))
            copy_[n_informative] = rng.normal(loc=50, scale=14)  # irreproducible
            feat_rows.append(dict(patient_id=pid, image_id=iid, reader="r1", **dict(zip(names, base))))
            feat_rows.append(dict(patient_id=pid, image_id=iid, reader=copy_reader, **dict(zip(names, copy_))))
    features = pd.DataFrame(feat_rows).sort_values(["patient_id", "image_id", "reader"]).reset_index(drop=True)
    cohort = pd.DataFrame(cohort_rows)
    return features, cohort
