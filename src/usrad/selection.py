"""Radiomics signature: feature-selection transformers, all fitted on training rows only.

Every step is a scikit-learn transformer (``fit`` learns attributes ending in ``_``, ``transform``
applies them, ``get_feature_names_out`` keeps names, ``set_output(transform="pandas")`` works), so the
whole signature is ONE :class:`~sklearn.pipeline.Pipeline` (:func:`signature_pipeline`) that any
cross-validation refits inside every fold::

    ColumnPicker -> ICCFilter -> NearZeroVariance -> StandardScaler -> UnivariateFilter
                 -> RedundancyFilter -> MRMR (off by default) -> LassoSelector [-> RadScore]

Design contract for ``X`` (see docs/modelling.md):

* a :class:`pandas.DataFrame`, one row per image, index ``(patient_id, image_id)`` (a MultiIndex; the
  LASSO's inner CV reads ``patient_id`` from it to keep a patient's images in one fold);
* one column per radiomics feature of the reference reader (``r1``) plus, for the reproducibility
  filter, a copy of every feature from the second reader or a perturbed mask, named
  ``<feature><copy_suffix>`` (default suffix ``@r2``). :class:`ICCFilter` computes the ICC on the rows
  it is fitted on and drops every copy column, so test rows never influence it. Copies may be NaN for
  images without a second segmentation: the ICC uses the complete rows only.

Learned attributes are numpy arrays, lists and plain Python scalars only, so fitted steps serialise
with skops (see :mod:`usrad.bundle`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage, stats
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import l1_min_c
from sklearn.utils.validation import check_is_fitted

ICC_FORMS = ("ICC1", "ICC2", "ICC3")
ICC_FORM_NAMES = {
    "ICC1": "ICC(1,1): one-way random effects, absolute agreement, single rater",
    "ICC2": "ICC(2,1): two-way random effects, absolute agreement, single rater",
    "ICC3": "ICC(3,1): two-way mixed effects, consistency, single rater",
}


# --------------------------------------------------------------------------- helpers
def _require_frame(X, who: str) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"{who} needs a pandas DataFrame with feature names as columns, got {type(X).__name__}")
    return X


def _groups_from_index(X: pd.DataFrame) -> np.ndarray | None:
    """patient_id per row when X's index carries it (level or name ``patient_id``), else None."""
    names = list(X.index.names)
    if "patient_id" in names:
        return np.asarray(X.index.get_level_values("patient_id")).astype(str)
    return None


def icc_per_feature(r1: np.ndarray, r2: np.ndarray, form: str = "ICC2") -> np.ndarray:
    """ICC of every column between two readings (rows = images); thin wrapper of :func:`usrad.metrics.icc_per_feature`.

    NaN where a column has no variance (the filter treats NaN as not reproducible).
    """
    from .metrics import icc_per_feature as _icc

    a = pd.DataFrame(np.asarray(r1, dtype=float))
    b = pd.DataFrame(np.asarray(r2, dtype=float))
    return _icc(a, b, form=form).to_numpy(dtype=float)


def _mann_whitney(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Mann–Whitney U p-value and AUC (= U / n1 n0) of every column."""
    pos, neg = X[y == 1], X[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("the univariate filter needs both classes in the training rows")
    res = stats.mannwhitneyu(pos, neg, alternative="two-sided", method="asymptotic", axis=0)
    auc = np.asarray(res.statistic, dtype=float) / (len(pos) * len(neg))
    p = np.asarray(res.pvalue, dtype=float)
    p = np.where(np.isnan(p), 1.0, p)  # constant column: no evidence
    return p, auc


def _spearman_matrix(X: np.ndarray) -> np.ndarray:
    ranks = stats.rankdata(X, axis=0)
    if ranks.shape[1] == 1:
        return np.ones((1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(ranks, rowvar=False)
    return np.nan_to_num(rho, nan=0.0)


class _NamesMixin:
    """get_feature_names_out from a boolean/int support over feature_names_in_."""

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "support_")
        return np.asarray(self.feature_names_in_)[self.support_].astype(object)

    def transform(self, X):
        check_is_fitted(self, "support_")
        X = _require_frame(X, type(self).__name__)
        missing = [c for c in np.asarray(self.feature_names_in_)[self.support_] if c not in X.columns]
        if missing:
            raise ValueError(f"{type(self).__name__}: columns missing from X: {missing[:5]}")
        return X.loc[:, list(self.get_feature_names_out())]


# --------------------------------------------------------------------------- transformers
class ColumnPicker(_NamesMixin, TransformerMixin, BaseEstimator):
    """Keep the listed columns (stateless apart from checking they exist); the pipeline's entry door."""

    def __init__(self, columns=None):
        self.columns = columns

    def fit(self, X, y=None):
        X = _require_frame(X, "ColumnPicker")
        cols = list(X.columns) if self.columns is None else list(self.columns)
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise ValueError(f"ColumnPicker: columns missing from X: {missing[:5]}")
        self.feature_names_in_ = np.asarray(cols, dtype=object)
        self.n_features_in_ = len(cols)
        self.support_ = np.ones(len(cols), dtype=bool)
        return self


class ICCFilter(_NamesMixin, TransformerMixin, BaseEstimator):
    """Reproducibility filter: keep features whose ICC between the two segmentations is ≥ ``threshold``.

    ``X`` holds every feature ``f`` and its copy ``f + copy_suffix`` (second reader or perturbed mask).
    ``fit`` computes the ICC (``form``: ICC1/ICC2/ICC3, single rater; default ICC2 = ICC(2,1), two-way
    random, absolute agreement) on the rows it is given that have both values; ``transform`` drops every
    copy column and the features below the threshold (NaN ICC, i.e. no between-image variance, is
    dropped). ``threshold=None`` only drops the copies. Features without a copy column are an error
    unless ``keep_uncopied=True``.
    """

    def __init__(self, threshold=0.75, form="ICC2", copy_suffix="@r2", keep_uncopied=False, min_rows=5):
        self.threshold = threshold
        self.form = form
        self.copy_suffix = copy_suffix
        self.keep_uncopied = keep_uncopied
        self.min_rows = min_rows

    def fit(self, X, y=None):
        X = _require_frame(X, "ICCFilter")
        cols = [str(c) for c in X.columns]
        copies = {c for c in cols if c.endswith(self.copy_suffix)}
        base = [c for c in cols if c not in copies]
        self.feature_names_in_ = np.asarray(cols, dtype=object)
        self.n_features_in_ = len(cols)
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


class NearZeroVariance(_NamesMixin, TransformerMixin, BaseEstimator):
    """Drop constant and near-zero-variance features (caret's ``nearZeroVar`` rule, scale-free).

    A feature is dropped when it is constant, or when the ratio of the most to the second most frequent
    value exceeds ``freq_cut`` AND the fraction of distinct values is below ``unique_cut``.
    """

    def __init__(self, freq_cut=19.0, unique_cut=0.1):
        self.freq_cut = freq_cut
        self.unique_cut = unique_cut

    def fit(self, X, y=None):
        X = _require_frame(X, "NearZeroVariance")
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
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = X.shape[1]
        self.support_ = np.asarray(keep, dtype=bool)
        if not self.support_.any():
            raise ValueError("NearZeroVariance: every feature is (near) constant on the training rows")
        return self


class UnivariateFilter(_NamesMixin, TransformerMixin, BaseEstimator):
    """Keep features whose two-sided Mann–Whitney U p-value is < ``p_threshold``.

    When fewer than ``min_features`` pass, the ``min_features`` with the smallest p are kept (so that a
    task without univariate signal still yields a model; it then scores near chance). No multiple-testing
    correction: this is a screening step before LASSO, as in the reference study.
    """

    def __init__(self, p_threshold=0.05, min_features=5):
        self.p_threshold = p_threshold
        self.min_features = min_features

    def fit(self, X, y):
        X = _require_frame(X, "UnivariateFilter")
        y = np.asarray(y).astype(int)
        p, auc = _mann_whitney(X.to_numpy(dtype=float), y)
        keep = p < self.p_threshold
        if keep.sum() < min(self.min_features, X.shape[1]):
            order = np.lexsort((np.arange(len(p)), p))  # stable: ties by column order
            keep = np.zeros(len(p), dtype=bool)
            keep[order[: min(self.min_features, X.shape[1])]] = True
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = X.shape[1]
        self.pvalues_ = p
        self.auc_ = auc
        self.support_ = keep
        return self


class RedundancyFilter(_NamesMixin, TransformerMixin, BaseEstimator):
    """Of every pair with |Spearman ρ| > ``threshold``, keep the feature more related to the outcome.

    Features are ranked by Mann–Whitney p (ties: larger |AUC − 0.5|, then column order) and kept greedily
    when their |ρ| with every already-kept feature is ≤ ``threshold``.
    """

    def __init__(self, threshold=0.9):
        self.threshold = threshold

    def fit(self, X, y):
        X = _require_frame(X, "RedundancyFilter")
        y = np.asarray(y).astype(int)
        A = X.to_numpy(dtype=float)
        p, auc = _mann_whitney(A, y)
        order = np.lexsort((np.arange(len(p)), -np.abs(auc - 0.5), p))
        rho = np.abs(_spearman_matrix(A))
        kept: list[int] = []
        for j in order:
            if all(rho[j, i] <= self.threshold for i in kept):
                kept.append(int(j))
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = X.shape[1]
        self.support_ = np.isin(np.arange(X.shape[1]), kept)
        return self


class MRMR(_NamesMixin, TransformerMixin, BaseEstimator):
    """Greedy minimum-redundancy maximum-relevance selection of ``n_features`` (MID criterion).

    Relevance = |Spearman ρ(feature, y)|, redundancy = mean |Spearman ρ| with the features already
    chosen; each step adds the feature maximising relevance − redundancy. ``n_features=None`` keeps all.
    """

    def __init__(self, n_features=None):
        self.n_features = n_features

    def fit(self, X, y):
        X = _require_frame(X, "MRMR")
        y = np.asarray(y).astype(float)
        A = X.to_numpy(dtype=float)
        m = A.shape[1]
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = m
        if self.n_features is None or self.n_features >= m:
            self.support_ = np.ones(m, dtype=bool)
            self.order_ = np.arange(m)
            return self
        rho = np.abs(_spearman_matrix(np.column_stack([A, y])))
        relevance, rho = rho[:-1, -1], rho[:-1, :-1]
        chosen = [int(np.argmax(relevance))]
        while len(chosen) < self.n_features:
            rest = [j for j in range(m) if j not in chosen]
            score = [relevance[j] - rho[j, chosen].mean() for j in rest]
            chosen.append(rest[int(np.argmax(score))])
        self.order_ = np.asarray(chosen)
        self.support_ = np.isin(np.arange(m), chosen)
        return self


class LassoSelector(_NamesMixin, TransformerMixin, BaseEstimator):
    """L1-penalised logistic regression with (grouped) stratified k-fold CV over C; keeps the non-zero features.

    The C grid is ``n_C`` log-spaced values from sklearn's ``l1_min_c`` (the smallest C with a non-zero
    coefficient) to ``l1_min_c × c_span``. The CV score is ``scoring`` (``neg_log_loss`` = binomial deviance,
    glmnet's default, or ``roc_auc``). ``one_se_rule=True`` picks the smallest C (strongest penalty) whose mean
    CV score is within one standard error of the best (glmnet's ``lambda.1se``); else the best C. If that C
    keeps fewer than ``min_features`` features, the next larger C is used (``fallback_`` records it).

    ``transform`` returns the selected (z-scored) features; ``decision_function`` returns the rad-score
    ``intercept_ + Σ coef_ᵢ · zᵢ`` and ``predict_proba`` its logistic transform, so a pipeline ending in
    this step is the rad-score model. When X's index carries ``patient_id`` the folds are grouped by it.
    """

    def __init__(self, cv=10, n_C=30, c_span=1e2, one_se_rule=True, scoring="neg_log_loss",
                 class_weight="balanced", min_features=1, max_iter=1000, random_state=None):
        self.cv = cv
        self.n_C = n_C
        self.c_span = c_span
        self.one_se_rule = one_se_rule
        self.scoring = scoring
        self.class_weight = class_weight
        self.min_features = min_features
        self.max_iter = max_iter
        self.random_state = random_state

    def _model(self, C):
        # liblinear penalises the intercept; intercept_scaling=10 makes that penalty small (the features are
        # z-scored and the classes balanced, so the intercept is near 0 anyway). Measured on the 671-patient
        # demo features: intercept_scaling=100 with tol=1e-6 took ~100x longer per fit at weak penalties
        # (minutes per LASSO) for the same selected features.
        return LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", intercept_scaling=10.0,
                                  class_weight=self.class_weight, max_iter=self.max_iter, tol=1e-4,
                                  random_state=0)

    @staticmethod
    def _score(scoring, y, p):
        if scoring == "roc_auc":
            from sklearn.metrics import roc_auc_score
            return roc_auc_score(y, p)
        if scoring == "neg_log_loss":
            p = np.clip(p, 1e-15, 1 - 1e-15)
            return float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        raise ValueError(f"unknown scoring {scoring!r}; use 'neg_log_loss' or 'roc_auc'")

    def fit(self, X, y):
        X = _require_frame(X, "LassoSelector")
        y = np.asarray(y).astype(int)
        A = X.to_numpy(dtype=float)
        names = np.asarray([str(c) for c in X.columns], dtype=object)
        # smallest C with a non-zero coefficient for centred features (the intercept column must not enter
        # l1_min_c: with a large intercept_scaling it would dominate and start the grid ~50x too low)
        c0 = l1_min_c(A - A.mean(axis=0), y, loss="log", fit_intercept=False)
        Cs = c0 * np.logspace(0, np.log10(self.c_span), self.n_C)
        groups = _groups_from_index(X)
        n_min = int(min(np.bincount(y, minlength=2)))
        n_splits = int(max(2, min(self.cv, n_min)))
        if groups is not None:
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
            folds = list(splitter.split(A, y, groups))
        else:
            splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
            folds = list(splitter.split(A, y))
        scores = np.full((len(Cs), len(folds)), np.nan)
        for f, (tr, va) in enumerate(folds):
            if len(np.unique(y[tr])) < 2 or len(np.unique(y[va])) < 2:
                continue
            for i, C in enumerate(Cs):
                m = self._model(C).fit(A[tr], y[tr])
                scores[i, f] = self._score(self.scoring, y[va], m.predict_proba(A[va])[:, 1])
        mean = np.nanmean(scores, axis=1)
        se = np.nanstd(scores, axis=1, ddof=1) / np.sqrt(np.sum(~np.isnan(scores), axis=1))
        best = int(np.nanargmax(mean))
        if self.one_se_rule:
            ok = np.where(mean >= mean[best] - se[best])[0]
            chosen = int(ok.min())
        else:
            chosen = best
        path = np.zeros((len(Cs), A.shape[1]))
        intercepts = np.zeros(len(Cs))
        for i, C in enumerate(Cs):
            m = self._model(C).fit(A, y)
            path[i] = m.coef_[0]
            intercepts[i] = m.intercept_[0]
        self.fallback_ = False
        need = min(self.min_features, A.shape[1])
        while np.count_nonzero(path[chosen]) < need and chosen < len(Cs) - 1:
            chosen += 1
            self.fallback_ = True
        self.Cs_ = Cs
        self.cv_scores_ = scores
        self.cv_mean_ = mean
        self.cv_se_ = se
        self.C_best_ = float(Cs[best])
        self.C_ = float(Cs[chosen])
        self.coef_path_ = path
        self.intercept_path_ = intercepts
        support = path[chosen] != 0
        self.feature_names_in_ = names
        self.n_features_in_ = A.shape[1]
        self.support_ = support
        self.coef_ = path[chosen][support].copy()
        self.intercept_ = float(intercepts[chosen])
        self.classes_ = np.array([0, 1])
        self.n_splits_ = n_splits
        return self

    def decision_function(self, X):
        Z = self.transform(X).to_numpy(dtype=float)
        return self.intercept_ + Z @ self.coef_

    def predict_proba(self, X):
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def formula(self, digits: int = 6) -> str:
        """The rad-score as an explicit formula over z-scored features."""
        check_is_fitted(self, "coef_")
        terms = [f"{self.intercept_:+.{digits}f}"]
        for name, b in zip(self.get_feature_names_out(), self.coef_):
            terms.append(f"{b:+.{digits}f} * z({name})")
        return "rad_score = " + " ".join(terms)

    def path_table(self) -> pd.DataFrame:
        """Long table C, log10_C, feature, coef + CV mean/SE per C (selection/lasso_path.tsv)."""
        check_is_fitted(self, "coef_path_")
        rows = []
        for i, C in enumerate(self.Cs_):
            for j, name in enumerate(self.feature_names_in_):
                rows.append((float(C), float(np.log10(C)), name, float(self.coef_path_[i, j]),
                             float(self.cv_mean_[i]), float(self.cv_se_[i]), bool(C == self.C_)))
        return pd.DataFrame(rows, columns=["C", "log10_C", "feature", "coef", "cv_mean_score", "cv_se",
                                           "chosen"])


class RadScore(TransformerMixin, BaseEstimator):
    """Outputs one column ``rad_score`` = intercept + Σ βᵢ·zᵢ of a :class:`LassoSelector` fitted in ``fit``."""

    def __init__(self, selector=None):
        self.selector = selector

    def fit(self, X, y):
        sel = self.selector if self.selector is not None else LassoSelector()
        self.selector_ = clone(sel).fit(X, y)
        self.n_features_in_ = self.selector_.n_features_in_
        self.feature_names_in_ = self.selector_.feature_names_in_
        return self

    @classmethod
    def from_fitted(cls, selector: LassoSelector) -> "RadScore":
        """A fitted RadScore around an already fitted selector (same state ``fit`` would produce)."""
        check_is_fitted(selector, "coef_")
        rs = cls(selector=clone(selector))
        rs.selector_ = selector
        rs.n_features_in_ = selector.n_features_in_
        rs.feature_names_in_ = selector.feature_names_in_
        return rs

    def transform(self, X):
        check_is_fitted(self, "selector_")
        score = self.selector_.decision_function(X)
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame({"rad_score": score}, index=index)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(["rad_score"], dtype=object)


def signature_pipeline(columns, *, icc_threshold=0.75, icc_form="ICC2", copy_suffix="@r2",
                       nzv_freq_cut=19.0, nzv_unique_cut=0.1, univariate_p=0.05, univariate_min_features=5,
                       redundancy_threshold=0.9, mrmr_n_features=None, lasso_cv=10, lasso_n_C=30,
                       lasso_one_se_rule=True, lasso_scoring="neg_log_loss", class_weight="balanced",
                       random_state=None) -> Pipeline:
    """The unfitted selection chain ending in the LASSO selector (see module docstring)."""
    steps = [
        ("columns", ColumnPicker(columns)),
        ("icc", ICCFilter(threshold=icc_threshold, form=icc_form, copy_suffix=copy_suffix)),
        ("nzv", NearZeroVariance(freq_cut=nzv_freq_cut, unique_cut=nzv_unique_cut)),
        ("scale", StandardScaler()),
        ("univariate", UnivariateFilter(p_threshold=univariate_p, min_features=univariate_min_features)),
        ("redundancy", RedundancyFilter(threshold=redundancy_threshold)),
        ("mrmr", MRMR(n_features=mrmr_n_features) if mrmr_n_features else "passthrough"),
        ("lasso", LassoSelector(cv=lasso_cv, n_C=lasso_n_C, one_se_rule=lasso_one_se_rule,
                                scoring=lasso_scoring, class_weight=class_weight, random_state=random_state)),
    ]
    return Pipeline(steps).set_output(transform="pandas")


# --------------------------------------------------------------------------- mask perturbation
def _disk(radius: int) -> np.ndarray:
    r = int(radius)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx ** 2 + yy ** 2) <= r ** 2


def perturb_mask(mask_array, rng: np.random.Generator, mode: str = "random", radius: int = 1,
                 max_shift: int = 2) -> np.ndarray:
    """A plausible second segmentation of a 2D binary mask, for the ICC filter without a second reader.

    ``mode``: ``erode`` / ``dilate`` by a disk of ``radius`` pixels, ``jitter`` = translate by up to
    ``max_shift`` pixels in each axis, ``random`` = one of the three drawn from ``rng``. The result is
    uint8 0/1 of the same shape and never empty (an erosion that would empty the mask returns the input).
    """
    m = np.asarray(mask_array) > 0
    if m.ndim != 2:
        raise ValueError(f"perturb_mask expects a 2D mask, got shape {m.shape}")
    if not m.any():
        raise ValueError("perturb_mask: the mask is empty")
    if mode == "random":
        mode = str(rng.choice(["erode", "dilate", "jitter"]))
    if mode == "erode":
        out = ndimage.binary_erosion(m, structure=_disk(radius))
    elif mode == "dilate":
        out = ndimage.binary_dilation(m, structure=_disk(radius))
    elif mode == "jitter":
        dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
        out = ndimage.shift(m.astype(np.uint8), (dy, dx), order=0, mode="constant", cval=0) > 0
    else:
        raise ValueError(f"unknown perturbation mode {mode!r}")
    if not out.any():
        out = m
    return out.astype(np.uint8)
