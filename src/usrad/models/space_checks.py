"""Checks of ``modelling.search_spaces`` against the estimators: unknown classifiers or parameters, parameters usrad
fixes, values an estimator refuses, repeated values and grid points that fail to fit on toy data."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_limits

from ..errors import Problem
from ..settings import CLASSIFIERS
from .zoo import FIXED_PARAMS, make_classifier, search_space


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
