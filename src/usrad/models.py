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
* ``combined``: rad-score + all clinical predictors → the classifier type with the best CV AUC on them.

Tuning: stratified, patient-grouped ``cv_folds``-fold CV on the training rows, AUC. Because the signature
does not depend on any classifier hyperparameter, it is fitted once per fold (on that fold's training
part) and every classifier/grid point is fitted on its output; this is exactly what GridSearchCV over the
full pipeline would compute, without refitting the signature ~300 times. The final models are assembled
from the signature fitted once on all training rows — the same state ``Pipeline.fit`` produces (tested).
"""
from __future__ import annotations

import copy
import itertools
import json
import logging
import re
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
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from .atomic import write_text, write_tsv
from .config import OUTCOME_COLUMNS
from .errors import Problem, UsradError
from .selection import ColumnPicker, RadScore, signature_pipeline
from .split import task_labels

log = logging.getLogger(__name__)

CLASSIFIERS = ("lr", "svm", "rf", "xgb", "knn", "nb", "mlp")

#: Bounded search spaces (documented in docs/modelling.md). Small on purpose: 2 tasks × 11 models on 671
#: patients must fit in a few minutes on 2 cores.
SEARCH_SPACES: dict[str, dict[str, list]] = {
    "lr": {"C": [0.01, 0.1, 1.0, 10.0]},
    "svm": {"C": [0.1, 1.0, 10.0], "gamma": ["scale", 0.01]},
    "rf": {"max_depth": [3, None], "min_samples_leaf": [1, 5]},
    "xgb": {"n_estimators": [100, 300], "max_depth": [2, 4]},
    "knn": {"n_neighbors": [5, 15, 31], "weights": ["uniform", "distance"]},
    "nb": {"var_smoothing": [1e-9, 1e-6, 1e-3]},
    "mlp": {"hidden_layer_sizes": [[16], [32, 16]], "alpha": [1e-3, 1e-1]},
}

DEFAULTS = {
    "cv_folds": 5,
    "class_weight": "balanced",
    "classifiers": list(CLASSIFIERS),
    "combined_classifiers": list(CLASSIFIERS),
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


# --------------------------------------------------------------------------- classifiers
def search_space(name: str, overrides: dict | None = None) -> list[dict]:
    """The grid of ``name`` as a list of parameter dicts (config ``search_spaces`` replaces a model's grid)."""
    space = dict(SEARCH_SPACES[name])
    if overrides and name in overrides:
        space = dict(overrides[name])
    keys = sorted(space)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(space[k] for k in keys))]


def make_classifier(name: str, params: dict, y_train, class_weight="balanced", seed: int = 0):
    """An unfitted classifier; class weights computed from ``y_train`` (training labels only)."""
    params = dict(params)
    balanced = class_weight == "balanced"
    cw = "balanced" if balanced else None
    if name == "lr":
        return LogisticRegression(max_iter=5000, class_weight=cw, random_state=seed, **params)
    if name == "svm":
        # Platt scaling on internal 5-fold CV of the training rows (sklearn ≥1.9: SVC(probability=True) is deprecated)
        return CalibratedClassifierCV(SVC(kernel="rbf", class_weight=cw, random_state=seed, **params),
                                      method="sigmoid", cv=5, ensemble=False)
    if name == "rf":
        return RandomForestClassifier(n_estimators=100, class_weight=cw, random_state=seed, n_jobs=1, **params)
    if name == "xgb":
        from xgboost import XGBClassifier

        y = np.asarray(y_train).astype(int)
        spw = float((y == 0).sum() / max((y == 1).sum(), 1)) if balanced else 1.0
        return XGBClassifier(learning_rate=0.05, subsample=0.8, colsample_bytree=0.8, tree_method="hist",
                             scale_pos_weight=spw, eval_metric="logloss", n_jobs=1, random_state=seed, **params)
    if name == "knn":
        # A grid point larger than a small training fold is clipped (k-NN needs k <= n samples).
        if "n_neighbors" in params:
            params["n_neighbors"] = int(min(params["n_neighbors"], max(1, len(y_train) - 1)))
        return KNeighborsClassifier(**params)
    if name == "nb":
        return GaussianNB(priors=[0.5, 0.5] if balanced else None, **params)
    if name == "mlp":
        if "hidden_layer_sizes" in params:
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        return MLPClassifier(solver="lbfgs", max_iter=300, random_state=seed, **params)
    raise ValueError(f"unknown classifier {name!r}; choose from {CLASSIFIERS}")


def _logistic(class_weight, seed):
    return LogisticRegression(C=np.inf, max_iter=5000, class_weight="balanced" if class_weight == "balanced" else None,
                              random_state=seed)


# --------------------------------------------------------------------------- clinical
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
                ref = sorted(counts[counts == counts.max()].index)[0]
                self.levels_[c] = [lv for lv in levels if lv != ref]
                self.reference_[c] = ref
                self.fill_[c] = ref
                out += [f"{c}[{lv}]" for lv in self.levels_[c]]
            else:
                self.fill_[c] = float(pd.to_numeric(X[c], errors="coerce").median())
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


def _variable_of(column: str) -> str:
    return column.split("[", 1)[0]


def _fit_logit(y: np.ndarray, X: pd.DataFrame):
    """statsmodels Logit with intercept; None when it cannot be estimated (separation, singular design)."""
    import statsmodels.api as sm

    design = sm.add_constant(X.astype(float), has_constant="add")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in ("newton", "bfgs"):
            try:
                res = sm.Logit(y.astype(float), design).fit(disp=0, maxiter=200, method=method)
            except Exception:  # noqa: BLE001 - LinAlgError, PerfectSeparationError: not estimable
                continue
            if res.mle_retvals.get("converged", False) and np.all(np.isfinite(res.bse)):
                return res
    return None


def _lr_pvalue(full, reduced_llf: float, df: int) -> float:
    from scipy import stats

    if full is None or not np.isfinite(reduced_llf):
        return float("nan")
    stat = max(2.0 * (full.llf - reduced_llf), 0.0)
    return float(stats.chi2.sf(stat, df))


def clinical_logit_tables(Xenc: pd.DataFrame, y, p_threshold: float = 0.05):
    """Univariable and multivariable logistic regressions (statsmodels, unweighted) on encoded clinical data.

    Returns ``(univariable, multivariable, selected, independent)``: tidy tables (one row per term:
    variable, term, OR, ci_low, ci_high, p_wald, p_variable = likelihood-ratio test of the whole variable,
    plus ``selected``/``independent``) and the variable lists. ``selected``: univariable p_variable
    < ``p_threshold`` (if none, the single variable with the smallest p); ``independent``: selected
    variables with multivariable p_variable < ``p_threshold`` (if none, the smallest).
    """
    import statsmodels.api as sm

    y = np.asarray(y).astype(int)
    variables = list(dict.fromkeys(_variable_of(c) for c in Xenc.columns))
    groups = {v: [c for c in Xenc.columns if _variable_of(c) == v] for v in variables}
    null_llf = float(sm.Logit(y.astype(float), np.ones((len(y), 1))).fit(disp=0).llf)

    def rows_of(res, cols, pvar, model):
        out = []
        for c in cols:
            if res is None:
                out.append(dict(model=model, variable=_variable_of(c), term=c, OR=np.nan, ci_low=np.nan,
                                ci_high=np.nan, p_wald=np.nan, p_variable=pvar[_variable_of(c)]))
                continue
            b, se, p = float(res.params[c]), float(res.bse[c]), float(res.pvalues[c])
            out.append(dict(model=model, variable=_variable_of(c), term=c, OR=float(np.exp(b)),
                            ci_low=float(np.exp(b - 1.959963984540054 * se)),
                            ci_high=float(np.exp(b + 1.959963984540054 * se)), p_wald=p,
                            p_variable=pvar[_variable_of(c)]))
        return out

    uni_rows, p_uni = [], {}
    for v in variables:
        res = _fit_logit(y, Xenc[groups[v]])
        p_uni[v] = _lr_pvalue(res, null_llf, len(groups[v]))
        uni_rows += rows_of(res, groups[v], p_uni, "univariable")
    ranked = sorted((p for p in p_uni.items() if np.isfinite(p[1])), key=lambda kv: (kv[1], kv[0]))
    selected = [v for v in variables if np.isfinite(p_uni[v]) and p_uni[v] < p_threshold]
    if not selected and ranked:
        selected = [ranked[0][0]]
    uni = pd.DataFrame(uni_rows)
    uni["selected"] = uni["variable"].isin(selected)

    cols = [c for v in selected for c in groups[v]]
    full = _fit_logit(y, Xenc[cols]) if cols else None
    p_multi = {}
    for v in selected:
        rest = [c for c in cols if _variable_of(c) != v]
        red = _fit_logit(y, Xenc[rest]) if rest else None
        red_llf = null_llf if not rest else (float(red.llf) if red is not None else float("nan"))
        p_multi[v] = _lr_pvalue(full, red_llf, len(groups[v]))
    independent = [v for v in selected if np.isfinite(p_multi[v]) and p_multi[v] < p_threshold]
    if not independent and selected:
        finite = sorted((p for p in p_multi.items() if np.isfinite(p[1])), key=lambda kv: (kv[1], kv[0]))
        independent = [finite[0][0]] if finite else list(selected)
    multi = pd.DataFrame(rows_of(full, cols, p_multi, "multivariable"),
                         columns=["model", "variable", "term", "OR", "ci_low", "ci_high", "p_wald", "p_variable"])
    multi["independent"] = multi["variable"].isin(independent)
    return uni, multi, selected, independent


class ClinicalSelector(TransformerMixin, BaseEstimator):
    """Keeps the encoded clinical columns of the variables chosen by :func:`clinical_logit_tables`:
    ``stage="univariable"`` → univariable p < ``p_threshold``; ``"multivariable"`` → the independent ones."""

    def __init__(self, p_threshold=0.05, stage="univariable"):
        self.p_threshold = p_threshold
        self.stage = stage

    def fit(self, X, y):
        _, _, selected, independent = clinical_logit_tables(X, y, self.p_threshold)
        chosen = selected if self.stage == "univariable" else independent
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = X.shape[1]
        self.variables_ = list(chosen)
        self.support_ = np.asarray([_variable_of(c) in chosen for c in X.columns], dtype=bool)
        return self

    def transform(self, X):
        check_is_fitted(self, "support_")
        return X.loc[:, list(self.get_feature_names_out())]

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_in_, dtype=object)[self.support_]


class RadiomicsClinicalFeatures(TransformerMixin, BaseEstimator):
    """``[rad_score | clinical columns]``: fits a radiomics branch (ending in RadScore) and a clinical branch
    side by side on the same design matrix and concatenates their outputs."""

    def __init__(self, radiomics=None, clinical=None):
        self.radiomics = radiomics
        self.clinical = clinical

    def fit(self, X, y):
        return self._fit(X, y, clone(self.radiomics).fit(X, y))

    def _fit(self, X, y, fitted_radiomics):
        self.radiomics_ = fitted_radiomics
        self.clinical_ = clone(self.clinical).fit(X, y)
        self.feature_names_out_ = list(self.radiomics_.get_feature_names_out()) + list(
            self.clinical_.get_feature_names_out())
        self.n_features_in_ = X.shape[1]
        return self

    @classmethod
    def from_fitted_radiomics(cls, radiomics_template, fitted_radiomics, clinical, X, y):
        """Same state as ``fit`` when ``fitted_radiomics`` is ``radiomics_template`` fitted on (X, y)."""
        return cls(radiomics=radiomics_template, clinical=clinical)._fit(X, y, fitted_radiomics)

    def transform(self, X):
        check_is_fitted(self, "radiomics_")
        parts = [self.radiomics_.transform(X), self.clinical_.transform(X)]
        out = pd.concat([pd.DataFrame(np.asarray(p, dtype=float), index=X.index) for p in parts], axis=1)
        out.columns = self.feature_names_out_
        return out

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_out_, dtype=object)


def clinical_branch(columns, categorical, impute, p_threshold=None, stage="univariable") -> Pipeline:
    steps = [("columns", ColumnPicker(list(columns))),
             ("encode", ClinicalEncoder(columns=list(columns), categorical=list(categorical), impute=impute))]
    if p_threshold is not None:
        steps.append(("select", ClinicalSelector(p_threshold=p_threshold, stage=stage)))
    return Pipeline(steps)


def radscore_branch(signature: Pipeline) -> Pipeline:
    steps = list(copy.deepcopy(signature.steps))
    name, lasso = steps[-1]
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


def _check_clinical(cohort_df, rows, task_cfg, clinical_cfg, source="cohort table"):
    from .cohort import _names_in  # the names a label/subset expression uses

    predictors = list(clinical_cfg.get("predictors", []))
    categorical = list(clinical_cfg.get("categorical", []))
    outcome = set(OUTCOME_COLUMNS) | set(_names_in(task_cfg["label"])) | set(_names_in(task_cfg.get("subset") or ""))
    problems = [] if predictors else [Problem(
        "no clinical predictor: the clinical, nomogram and combined models need at least one preoperative variable",
        file="config clinical.predictors")]
    problems += [Problem(f"{c!r} is an outcome of task {task_cfg['name']!r}, not a preoperative predictor",
                        column=c, file="config clinical.predictors") for c in predictors if c in outcome]
    problems += [Problem("clinical predictor is not a column of the cohort table", column=c, file=source)
                 for c in predictors if c not in cohort_df.columns]
    problems += [Problem("categorical column is not in clinical.predictors", column=c, file="config clinical.categorical")
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
    return predictors, categorical


# --------------------------------------------------------------------------- CV machinery
def _fit_predict(model_name, feature_set, params, Ztr, ytr, Zva, seed, class_weight):
    with threadpool_limits(limits=1):
        return _fit_predict_1(model_name, feature_set, params, Ztr, ytr, Zva, seed, class_weight)


def _fit_predict_1(model_name, feature_set, params, Ztr, ytr, Zva, seed, class_weight):
    clf = make_classifier(model_name, params, ytr, class_weight, seed)
    if feature_set == "combined":
        clf = Pipeline([("scale", StandardScaler()), ("clf", clf)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        clf.fit(Ztr, ytr)
        return clf.predict_proba(Zva)[:, 1]


def _fold_signature(signature, clin_template, Xtr, ytr, Xva):
    with threadpool_limits(limits=1):
        return _fold_signature_1(signature, clin_template, Xtr, ytr, Xva)


def _fold_signature_1(signature, clin_template, Xtr, ytr, Xva):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sig = clone(signature).fit(Xtr, ytr)
        rad = fitted_radscore_branch(sig)
        enc = clone(clin_template).fit(Xtr, ytr)
    out = {
        "sig": sig,
        "Z_tr": sig.transform(Xtr), "Z_va": sig.transform(Xva),
        "radscore_va": sig.predict_proba(Xva)[:, 1],
        "rs_tr": rad.transform(Xtr)["rad_score"].to_numpy(), "rs_va": rad.transform(Xva)["rad_score"].to_numpy(),
    }
    C_tr, C_va = enc.transform(Xtr), enc.transform(Xva)
    out["comb_tr"] = pd.concat([pd.DataFrame({"rad_score": out["rs_tr"]}, index=Xtr.index), C_tr], axis=1)
    out["comb_va"] = pd.concat([pd.DataFrame({"rad_score": out["rs_va"]}, index=Xva.index), C_va], axis=1)
    return out


def _youden(y, p) -> float:
    from .metrics import youden_threshold

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
    return pd.read_csv(path, sep="\t", dtype={"patient_id": str, "image_id": str, "task": str, "split": str,
                                                "model": str})


# --------------------------------------------------------------------------- the task
def fit_task(features_df: pd.DataFrame, cohort_df: pd.DataFrame, split_df: pd.DataFrame, task_cfg: dict,
             modelling_cfg: dict | None, clinical_cfg: dict, seed: int, n_jobs: int = 1, out_dir=None,
             feature_meta: dict | None = None) -> pd.DataFrame:
    """Fit every model of one task on its training rows; write bundles and tables; return the predictions.

    Predictions: ``patient_id, image_id, task, split, model, y, probability, rad_score`` (``y``: the 0/1
    outcome, so every metric is computed from this one table) with split ∈
    {``cv`` (out-of-fold on training rows, chosen hyperparameters), ``train`` (final model, apparent),
    ``test``, ``external``}. Files under ``out_dir`` (if given): ``models/{name}/`` bundles,
    ``models/cv_results.tsv``, ``tables/univariable.tsv``, ``tables/multivariable.tsv``,
    ``selection/{selected_features,icc,lasso_path,steps}.tsv``, ``selection/radscore_formula.txt``.
    """
    # BLAS threads on these small matrices only thrash (7× slower measured) and can change the last bits
    # of sums; parallelism comes from joblib's n_jobs (results are identical for any n_jobs).
    with threadpool_limits(limits=1):
        return _fit_task(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg, seed, n_jobs,
                         out_dir, feature_meta)


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
    predictors, categorical = _check_clinical(cohort, set(rows["image_id"]), task_cfg, clinical_cfg)
    impute = clinical_cfg.get("missing", "refuse") == "impute"

    readers = features_df["reader"].astype(str).unique()
    rep = cfg["reproducibility"]
    copy_reader = pick_copy_reader(readers, rep.get("copy_reader", "auto"))
    if copy_reader is None:
        log.warning("task %s: no second reader or perturbed-mask rows; the ICC filter is off", task)
    X, rad_cols = build_design(features_df, cohort, rows["image_id"], predictors, copy_reader)
    y_all = rows["label"].astype(int).to_numpy()
    split_all = rows["split"].to_numpy()
    tr = split_all == "train"
    Xtr, ytr = X[tr], y_all[tr]
    groups_tr = Xtr.index.get_level_values("patient_id").to_numpy()
    n_pat = pd.Series(ytr).groupby(groups_tr).max().value_counts()
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
        lasso_scoring=lasso["scoring"], class_weight=cfg["class_weight"], random_state=seed)


def _fit_task(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg, seed, n_jobs, out_dir,
              feature_meta):
    from .bundle import save_bundle

    d = _task_design(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg)
    cfg, task, rows, predictors, categorical, impute = d.cfg, d.task, d.rows, d.predictors, d.categorical, d.impute
    rep, copy_reader, X, y_all = d.rep, d.copy_reader, d.X, d.y_all
    tr, Xtr, ytr, groups_tr = d.tr, d.Xtr, d.ytr, d.groups_tr
    cw = cfg["class_weight"]
    lasso = cfg["lasso"]
    signature = _signature(d.rad_cols, cfg, copy_reader, seed)
    p_clin = cfg["clinical_p_threshold"]
    enc_template = clinical_branch(predictors, categorical, impute)
    clin_uni = clinical_branch(predictors, categorical, impute, p_clin, "univariable")
    clin_multi = clinical_branch(predictors, categorical, impute, p_clin, "multivariable")

    def clinical_model():
        return Pipeline([("features", clone(clin_uni)), ("scale", StandardScaler()), ("clf", _logistic(cw, seed))])

    # ---- outer CV on training rows
    folds = list(StratifiedGroupKFold(n_splits=cfg["cv_folds"], shuffle=True, random_state=seed)
                 .split(Xtr, ytr, groups_tr))
    parallel = Parallel(n_jobs=n_jobs, prefer="processes")
    fold_out = parallel(delayed(_fold_signature)(signature, enc_template, Xtr.iloc[a], ytr[a], Xtr.iloc[b])
                        for a, b in folds)
    spaces = {("radiomics", m): search_space(m, cfg["search_spaces"]) for m in cfg["classifiers"]}
    spaces.update({("combined", m): search_space(m, cfg["search_spaces"]) for m in cfg["combined_classifiers"]})
    jobs = [(fs, m, i, params, f) for (fs, m), grid in spaces.items() for i, params in enumerate(grid)
            for f in range(len(folds))]

    def job_data(fs, f):
        fo = fold_out[f]
        return (fo["Z_tr"], fo["Z_va"]) if fs == "radiomics" else (fo["comb_tr"], fo["comb_va"])

    preds = parallel(delayed(_fit_predict)(m, fs, params, job_data(fs, f)[0], ytr[folds[f][0]],
                                           job_data(fs, f)[1], seed, cw) for fs, m, i, params, f in jobs)
    oof = {}
    for (fs, m, i, params, f), p in zip(jobs, preds):
        oof.setdefault((fs, m, i), np.full(len(ytr), np.nan))[folds[f][1]] = p

    def fold_aucs(p):
        return [roc_auc_score(ytr[b], p[b]) for _, b in folds]

    # fixed (untuned) models: radscore, clinical, nomogram — CV predictions per fold
    fixed = {"radscore": np.full(len(ytr), np.nan), "clinical": np.full(len(ytr), np.nan),
             "nomogram": np.full(len(ytr), np.nan)}
    fold_rs = np.full(len(ytr), np.nan)
    for f, (a, b) in enumerate(folds):
        fo = fold_out[f]
        fixed["radscore"][b] = fo["radscore_va"]
        fold_rs[b] = fo["rs_va"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fixed["clinical"][b] = clinical_model().fit(Xtr.iloc[a], ytr[a]).predict_proba(Xtr.iloc[b])[:, 1]
            feats = RadiomicsClinicalFeatures.from_fitted_radiomics(
                radscore_branch(signature), fitted_radscore_branch(fo["sig"]), clin_multi, Xtr.iloc[a], ytr[a])
            nom = Pipeline([("scale", StandardScaler()), ("clf", _logistic(cw, seed))]).fit(
                feats.transform(Xtr.iloc[a]), ytr[a])
            fixed["nomogram"][b] = nom.predict_proba(feats.transform(Xtr.iloc[b]))[:, 1]

    cv_rows, best = [], {}
    for (fs, m), grid in spaces.items():
        scored = []
        for i, params in enumerate(grid):
            aucs = fold_aucs(oof[(fs, m, i)])
            scored.append((float(np.mean(aucs)), i))
            cv_rows.append(dict(feature_set=fs, classifier=m, params=json.dumps(params, sort_keys=True),
                                **{f"auc_fold{k + 1}": a for k, a in enumerate(aucs)},
                                mean_auc=float(np.mean(aucs)), sd_auc=float(np.std(aucs, ddof=1))))
        top = max(scored, key=lambda t: (t[0], -t[1]))
        best[(fs, m)] = (grid[top[1]], top[0], oof[(fs, m, top[1])])
    for name, p in fixed.items():
        aucs = fold_aucs(p)
        cv_rows.append(dict(feature_set={"radscore": "radiomics", "clinical": "clinical",
                                         "nomogram": "nomogram"}[name], classifier=name, params="{}",
                            **{f"auc_fold{k + 1}": a for k, a in enumerate(aucs)},
                            mean_auc=float(np.mean(aucs)), sd_auc=float(np.std(aucs, ddof=1))))
    cv = pd.DataFrame(cv_rows)
    combined_type = max(cfg["combined_classifiers"], key=lambda m: (best[("combined", m)][1],
                                                                     -cfg["combined_classifiers"].index(m)))

    # ---- final fits on all training rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sig = clone(signature).fit(Xtr, ytr)
        rad_fitted = fitted_radscore_branch(sig)
        Ztr = sig.transform(Xtr)
        models: dict[str, dict] = {}
        models["radscore"] = dict(pipeline=copy.deepcopy(sig), params={}, cv_auc=float(np.mean(fold_aucs(fixed["radscore"]))),
                                  oof=fixed["radscore"], kind="radiomics", classifier="lasso")
        for m in cfg["classifiers"]:
            params, auc_cv, p_oof = best[("radiomics", m)]
            clf = make_classifier(m, params, ytr, cw, seed).fit(Ztr, ytr)
            pipe = Pipeline(copy.deepcopy(sig.steps) + [("clf", clf)])
            models[m] = dict(pipeline=pipe, params=params, cv_auc=auc_cv, oof=p_oof, kind="radiomics", classifier=m)
        models["clinical"] = dict(pipeline=clinical_model().fit(Xtr, ytr), params={},
                                  cv_auc=float(np.mean(fold_aucs(fixed["clinical"]))), oof=fixed["clinical"],
                                  kind="clinical", classifier="logistic")
        feats = RadiomicsClinicalFeatures.from_fitted_radiomics(radscore_branch(signature), rad_fitted, clin_multi, Xtr, ytr)
        head = Pipeline([("scale", StandardScaler()), ("clf", _logistic(cw, seed))]).fit(feats.transform(Xtr), ytr)
        models["nomogram"] = dict(pipeline=Pipeline([("features", feats)] + head.steps), params={},
                                  cv_auc=float(np.mean(fold_aucs(fixed["nomogram"]))), oof=fixed["nomogram"],
                                  kind="combined", classifier="logistic")
        params, auc_cv, p_oof = best[("combined", combined_type)]
        feats_c = RadiomicsClinicalFeatures.from_fitted_radiomics(radscore_branch(signature), rad_fitted,
                                                                  enc_template, Xtr, ytr)
        clf = make_classifier(combined_type, params, ytr, cw, seed)
        head = Pipeline([("scale", StandardScaler()), ("clf", clf)]).fit(feats_c.transform(Xtr), ytr)
        models["combined"] = dict(pipeline=Pipeline([("features", feats_c)] + head.steps), params=params,
                                  cv_auc=auc_cv, oof=p_oof, kind="combined", classifier=combined_type)

    radiomics_best = max(["radscore"] + list(cfg["classifiers"]), key=lambda n: (models[n]["cv_auc"], n == "radscore"))
    cv["chosen"] = False
    for (fs, m), (params, _, _) in best.items():
        is_final = (fs == "radiomics") or (m == combined_type)
        cv.loc[(cv.feature_set == fs) & (cv.classifier == m) & (cv.params == json.dumps(params, sort_keys=True)),
               "chosen"] = is_final
    cv.loc[cv.classifier.isin(["radscore", "clinical", "nomogram"]), "chosen"] = True
    cv.insert(0, "task", task)

    # ---- predictions
    rs_all = rad_fitted.transform(X)["rad_score"].to_numpy()
    lasso_step = sig.named_steps["lasso"]
    meta_rows = rows[["patient_id", "image_id", "split"]].reset_index(drop=True).assign(y=y_all)
    tr_rows = meta_rows[tr].reset_index(drop=True)
    out_frames = []
    thresholds = {}
    for name, m in models.items():
        p_all = m["pipeline"].predict_proba(X)[:, 1]
        has_rs = m["kind"] != "clinical"
        fr = meta_rows.assign(task=task, model=name, probability=p_all, rad_score=rs_all if has_rs else np.nan)
        fr.loc[tr, "split"] = "train"
        cvf = tr_rows.assign(split="cv", task=task, model=name, probability=m["oof"],
                             rad_score=fold_rs if has_rs else np.nan)
        out_frames += [cvf, fr]
        basis = m["oof"] if cfg["threshold_from"] == "cv" else p_all[tr]
        thresholds[name] = _youden(ytr, basis)
    predictions = pd.concat(out_frames, ignore_index=True)[
        ["patient_id", "image_id", "task", "split", "model", "y", "probability", "rad_score"]]
    order = {s: i for i, s in enumerate(["cv", "train", "test", "external"])}
    predictions = predictions.assign(_s=predictions["split"].map(order)).sort_values(
        ["model", "_s", "patient_id", "image_id"], kind="mergesort").drop(columns="_s").reset_index(drop=True)

    # ---- files
    if out_dir is not None:
        out = Path(out_dir)
        icc = sig.named_steps["icc"]
        icc_tab = icc.icc_table()
        icc_tab.insert(0, "task", task)
        _write_tsv(icc_tab, out / "selection" / "icc.tsv")
        uni_step = sig.named_steps["univariate"]
        upos = {n: i for i, n in enumerate(uni_step.feature_names_in_)}
        icc_map = dict(zip(icc_tab["feature"], icc_tab["icc"]))
        selected = pd.DataFrame({"task": task, "feature": lasso_step.get_feature_names_out(), "coef": lasso_step.coef_})
        selected["icc"] = selected["feature"].map(icc_map)
        selected["mann_whitney_p"] = [float(uni_step.pvalues_[upos[f]]) for f in selected["feature"]]
        selected["univariate_auc"] = [float(uni_step.auc_[upos[f]]) for f in selected["feature"]]
        _write_tsv(selected, out / "selection" / "selected_features.tsv")
        write_text(
            out / "selection" / "radscore_formula.txt",
            lasso_step.formula() + "\n# z(f) = (f - training mean) / training SD; means/SDs in the radscore bundle "
            f"(step 'scale').\n# intercept {lasso_step.intercept_!r}, C = {lasso_step.C_!r} "
            f"({'1-SE rule' if lasso['one_se_rule'] else 'best CV'}; {lasso['scoring']}).\n")
        lp = lasso_step.path_table()
        lp.insert(0, "task", task)
        _write_tsv(lp, out / "selection" / "lasso_path.tsv")
        steps = [("input (reference reader)", len(icc.base_features_))]
        for nm in ("icc", "nzv", "univariate", "redundancy", "mrmr", "lasso"):
            st = sig.named_steps[nm]
            if st != "passthrough":
                steps.append((nm, len(st.get_feature_names_out())))
        _write_tsv(pd.DataFrame(steps, columns=["step", "n_features_after"]).assign(task=task)[
            ["task", "step", "n_features_after"]], out / "selection" / "steps.tsv")
        Xc = clinical_branch(predictors, categorical, impute).fit(Xtr, ytr).transform(Xtr)
        uni, multi, sel_vars, indep = clinical_logit_tables(Xc, ytr, p_clin)
        _write_tsv(uni.assign(task=task), out / "tables" / "univariable.tsv")
        _write_tsv(multi.assign(task=task), out / "tables" / "multivariable.tsv")
        _write_tsv(cv, out / "models" / "cv_results.tsv")
        common = dict(
            task=task, seed=int(seed), n_train_images=int(tr.sum()), n_train_patients=int(len(set(groups_tr))),
            reproducibility=dict(copy_reader=copy_reader, icc_form=rep["icc_form"],
                                 icc_threshold=rep["icc_threshold"] if copy_reader else None,
                                 source=("second reader" if copy_reader == "r2" else
                                         "perturbed mask" if copy_reader else "none")),
            selected_features=list(map(str, lasso_step.get_feature_names_out())),
            radscore_formula=lasso_step.formula(), versions=_versions(),
            pyradiomics=(feature_meta or {}).get("params") or (feature_meta or {}).get("params_text"),
            pyradiomics_params_sha256=(feature_meta or {}).get("params_sha256"),
            clinical_selected=sel_vars, clinical_independent=indep, radiomics_best_model=radiomics_best,
            threshold_basis="out-of-fold CV predictions on training rows" if cfg["threshold_from"] == "cv"
            else "apparent predictions on training rows")
        for name, m in models.items():
            meta = dict(common, model=name, kind=m["kind"], classifier=m["classifier"],
                        hyperparameters=m["params"], cv_auc=m["cv_auc"], threshold=thresholds[name],
                        input_columns=list(map(str, X.columns)))
            if name == "nomogram":  # training ranges of its inputs: the nomogram scales (usrad.card, usrad.predict)
                meta["nomogram_inputs"] = nomogram_inputs(m["pipeline"], Xtr)
            save_bundle(m["pipeline"], out / "models" / name, meta)
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
