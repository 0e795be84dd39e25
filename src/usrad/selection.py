"""Radiomics signature: feature-selection transformers, all fitted on training rows only.

Every step is a scikit-learn transformer (``fit`` learns attributes ending in ``_``, ``transform``
applies them, ``get_feature_names_out`` keeps names, ``set_output(transform="pandas")`` works), so the
whole signature is ONE :class:`~sklearn.pipeline.Pipeline` (:func:`signature_pipeline`) that any
cross-validation refits inside every fold::

    ColumnPicker -> ICCFilter -> NearZeroVariance -> StandardScaler
                 -> LassoSelector(filters = UnivariateFilter -> RedundancyFilter -> MRMR (off by default))
                    [wrapped in RadScore for the one-column rad-score]

The supervised filters live inside the LASSO step, which chooses its C by a CV over the chain
``filters -> LASSO`` (filters refitted on every inner training fold, :func:`sklearn.model_selection.cross_validate`);
the unsupervised steps cannot carry outcome information and are fitted once. :func:`signature_steps`
flattens a fitted signature to ``{columns, icc, nzv, scale, univariate, redundancy, mrmr, lasso}``.

Design contract for ``X`` (see docs/modelling.md):

* a :class:`pandas.DataFrame`, one row per image, index ``(patient_id, image_id)`` (a MultiIndex; the
  LASSO's inner CV reads ``patient_id`` — or a ``split_group`` level if present — from it to keep a
  patient's images in one fold; ``fit(X, y, lasso__groups=...)`` overrides it);
* one column per radiomics feature of the reference reader (``r1``) plus, for the reproducibility
  filter, a copy of every feature from the second reader or a perturbed mask, named
  ``<feature><copy_suffix>`` (default suffix ``@r2``). :class:`ICCFilter` computes the ICC on the rows
  it is fitted on and drops every copy column, so test rows never influence it. Copies may be NaN for
  images without a second segmentation: the ICC uses the complete rows only.

Learned attributes are numpy arrays, lists, plain Python scalars and (``LassoSelector.filters_``) a fitted
Pipeline of the filters above, so fitted steps serialise with skops (see :mod:`usrad.bundle`).
"""
from __future__ import annotations

from functools import partial
from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy import ndimage, special, stats
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.feature_selection import SelectorMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import l1_min_c
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions  # scikit-learn's own validators
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_is_fitted, validate_data

ICC_FORMS = ("ICC1", "ICC2", "ICC3")
ICC_FORM_NAMES = {
    "ICC1": "ICC(1,1): one-way random effects, absolute agreement, single rater",
    "ICC2": "ICC(2,1): two-way random effects, absolute agreement, single rater",
    "ICC3": "ICC(3,1): two-way mixed effects, consistency, single rater",
}


# --------------------------------------------------------------------------- helpers
def _groups_from_index(X: pd.DataFrame) -> np.ndarray | None:
    """CV group per row from X's index: level ``split_group`` if present, else ``patient_id``, else None."""
    names = list(X.index.names)
    for level in ("split_group", "patient_id"):
        if level in names:
            return np.asarray(X.index.get_level_values(level)).astype(str)
    return None


def icc_per_feature(r1: np.ndarray, r2: np.ndarray, form: str = "ICC2") -> np.ndarray:
    """ICC of every column between two readings (rows = images); thin wrapper of :func:`usrad.metrics.icc_per_feature`.

    NaN where a column has no variance (the filter treats NaN as not reproducible).
    """
    from .metrics import icc_per_feature as _icc

    a = pd.DataFrame(np.asarray(r1, dtype=float))
    b = pd.DataFrame(np.asarray(r2, dtype=float))
    return _icc(a, b, form=form).to_numpy(dtype=float)


def _sorted_ranks(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average ranks (ties share the mean rank) of every column of ``A`` (rows × features), all at once.

    Returns ``(order, ranks, tie)``: ``order[j]`` sorts column j, ``ranks[j]`` are the 1-based average ranks
    of its sorted entries, ``tie[j]`` = Σ (t³ − t) over its tie groups of size t. Row-major (one row per
    feature): sorting along rows is ~5x faster than ``scipy.stats.rankdata(axis=0)``.
    """
    n, m = A.shape
    T = np.ascontiguousarray(A.T)
    order = np.argsort(T, axis=1)  # the order within ties does not matter (average ranks)
    S = np.take_along_axis(T, order, axis=1)
    first = np.ones((m, n), dtype=bool)
    first[:, 1:] = S[:, 1:] != S[:, :-1]  # a tie group starts here
    flat = first.ravel()  # row by row: a group never spans two features
    start = np.flatnonzero(flat)
    size = np.diff(np.append(start, n * m))
    avg_rank = (start % n) + (size + 1) / 2.0
    ranks = avg_rank[np.cumsum(flat) - 1].reshape(m, n)
    tie = np.bincount(start // n, weights=size.astype(float) ** 3 - size, minlength=m)
    return order, ranks, tie


def _mann_whitney(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Mann–Whitney U p-value and AUC (= U / n1 n0) of every column, all columns at once.

    The p-value is scipy's ``mannwhitneyu(method="asymptotic")`` (normal approximation with tie and
    continuity corrections; equal to it, tested). A constant column, or one with a NaN, gets p = 1 (no
    evidence; its AUC is 0.5 resp. NaN).
    """
    A = np.asarray(X, dtype=float)
    pos = np.asarray(y).astype(int) == 1
    n = len(A)
    n1 = int(pos.sum())
    n0 = n - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("the univariate filter needs both classes in the training rows")
    order, ranks, tie = _sorted_ranks(A)
    U1 = (ranks * pos[order]).sum(axis=1) - n1 * (n1 + 1) / 2
    sd = np.sqrt(n1 * n0 / 12 * ((n + 1) - tie / (n * (n - 1))))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.maximum(U1, n1 * n0 - U1) - n1 * n0 / 2 - 0.5) / sd
    p = np.clip(2 * special.ndtr(-z), 0.0, 1.0)
    bad = np.isnan(A).any(axis=0)
    p = np.where(np.isnan(p) | bad, 1.0, p)
    auc = np.where(bad, np.nan, U1 / (n1 * n0))
    return p, auc


def _spearman_matrix(X: np.ndarray) -> np.ndarray:
    """|Spearman ρ| inputs: Pearson correlation of the average ranks of every pair of columns (0 if undefined)."""
    A = np.asarray(X, dtype=float)
    if A.shape[1] == 1:
        return np.ones((1, 1))
    order, ranks, _ = _sorted_ranks(A)
    R = np.empty_like(ranks)
    np.put_along_axis(R, order, ranks, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(R)
    return np.nan_to_num(rho, nan=0.0)


class _Selector(SelectorMixin, BaseEstimator):
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


# --------------------------------------------------------------------------- transformers
class ColumnPicker(_Selector):
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


class ICCFilter(_Selector):
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


class NearZeroVariance(_Selector):
    """Drop constant and near-zero-variance features (caret's ``nearZeroVar`` rule, scale-free).

    A feature is dropped when it is constant, or when the ratio of the most to the second most frequent
    value exceeds ``freq_cut`` AND the fraction of distinct values is below ``unique_cut``.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        Input columns (only when fitted on a DataFrame).
    n_features_in_ : int
        Number of input columns.
    support_ : ndarray of bool
        Kept columns.
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


class UnivariateFilter(_Selector):
    """Keep features whose two-sided Mann–Whitney U p-value is < ``p_threshold``.

    When fewer than ``min_features`` pass, the ``min_features`` with the smallest p are kept (so that a
    task without univariate signal still yields a model; it then scores near chance). No multiple-testing
    correction: this is a screening step before LASSO, as in the reference study.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        Input columns (only when fitted on a DataFrame).
    n_features_in_ : int
        Number of input columns.
    support_ : ndarray of bool
        Kept columns.
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
        X, y = self._fit_input(X, y)
        y = np.asarray(y).astype(int)
        p, auc = _mann_whitney(X.to_numpy(dtype=float), y)
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


class RedundancyFilter(_Selector):
    """Of every pair with |Spearman ρ| > ``threshold``, keep the feature more related to the outcome.

    Features are ranked by Mann–Whitney p (ties: larger |AUC − 0.5|, then column order) and kept greedily
    when their |ρ| with every already-kept feature is ≤ ``threshold``.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        Input columns (only when fitted on a DataFrame).
    n_features_in_ : int
        Number of input columns.
    support_ : ndarray of bool
        Kept columns.
    """

    _supervised = True
    _parameter_constraints = {"threshold": [Interval(Real, 0, 1, closed="both")]}

    def __init__(self, threshold=0.9):
        self.threshold = threshold

    def fit(self, X, y):
        X_in = X
        X, y = self._fit_input(X, y)
        y = np.asarray(y).astype(int)
        A = X.to_numpy(dtype=float)
        p, auc = _mann_whitney(A, y)
        order = np.lexsort((np.arange(len(p)), -np.abs(auc - 0.5), p))
        rho = np.abs(_spearman_matrix(A))
        kept: list[int] = []
        blocked = np.zeros(A.shape[1], dtype=bool)  # |rho[j, i]| > threshold with some kept i
        for j in order:
            if not blocked[j]:
                kept.append(int(j))
                blocked |= rho[:, j] > self.threshold
        self._record_input(X_in, list(X.columns))
        self.support_ = np.isin(np.arange(X.shape[1]), kept)
        return self


class MRMR(_Selector):
    """Greedy minimum-redundancy maximum-relevance selection of ``n_features`` (MID criterion).

    Relevance = |Spearman ρ(feature, y)|, redundancy = mean |Spearman ρ| with the features already
    chosen; each step adds the feature maximising relevance − redundancy. ``n_features=None`` keeps all.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        Input columns (only when fitted on a DataFrame).
    n_features_in_ : int
        Number of input columns.
    support_ : ndarray of bool
        Kept columns.
    order_ : ndarray of int
        Indices of the kept columns in the order they were chosen.
    """

    _supervised = True
    _parameter_constraints = {"n_features": [Interval(Integral, 1, None, closed="left"), None]}

    def __init__(self, n_features=None):
        self.n_features = n_features

    def fit(self, X, y):
        X_in = X
        X, y = self._fit_input(X, y)
        y = np.asarray(y).astype(float)
        A = X.to_numpy(dtype=float)
        m = A.shape[1]
        self._record_input(X_in, list(X.columns))
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


# --------------------------------------------------------------------------- LASSO
def _l1_logistic(C, class_weight, max_iter, random_state) -> LogisticRegression:
    # liblinear penalises the intercept; intercept_scaling=10 makes that penalty small (the features are
    # z-scored and the classes balanced, so the intercept is near 0 anyway). Measured on the 671-patient
    # demo features: intercept_scaling=100 with tol=1e-6 took ~100x longer per fit at weak penalties
    # (minutes per LASSO) for the same selected features.
    return LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", intercept_scaling=10.0,
                              class_weight=class_weight, max_iter=max_iter, tol=1e-4, random_state=random_state)


def empty_model_c(X, y, class_weight="balanced") -> float:
    """The C at and below which the L1 logistic regression keeps no feature (every coefficient 0).

    With the intercept at its (weighted) maximum-likelihood value p̂, coefficient j stays 0 while
    C·|Σᵢ sᵢ (yᵢ − p̂) xᵢⱼ| ≤ 1 (sᵢ: the class weight of row i). That is scikit-learn's ``l1_min_c`` (log
    loss, no intercept) on the rows sᵢ·(xᵢ − x̄) centred with the same weights; with ``class_weight=None``
    it is ``l1_min_c`` of the centred features.
    """
    A = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
    s = compute_sample_weight(class_weight, y)
    centred = A - np.average(A, axis=0, weights=s)
    return float(l1_min_c(centred * s[:, None], y, loss="log", fit_intercept=False))


def _path_scores(scoring: str, y: np.ndarray, D: np.ndarray, class_weight="balanced") -> np.ndarray:
    """Score of every column of the decision values ``D`` (rows × C grid): mean log-likelihood or AUC.

    The log-likelihood is weighted by ``class_weight`` (computed on these rows), i.e. it is the loss the
    LASSO minimises: with balanced weights the mean of the two classes' mean log-likelihoods. Unweighted,
    the empty balanced model (p = 0.5 for all) would pay log 2 − H(prevalence) for the class imbalance,
    which noise features with skewed values can win back by chance — a bias towards non-empty models.
    NaN when ``y`` holds one class only (no score for that fold).
    """
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return np.full(D.shape[1], np.nan)
    if scoring == "neg_log_loss":
        p = np.clip(special.expit(D), 1e-15, 1 - 1e-15)
        loglik = y[:, None] * np.log(p) + (1 - y[:, None]) * np.log(1 - p)
        return np.average(loglik, axis=0, weights=compute_sample_weight(class_weight, y))
    ranks = stats.rankdata(D, axis=0)  # AUC = Mann–Whitney U / (n1 n0), ties count one half
    return (ranks[y == 1].sum(axis=0) - n1 * (n1 + 1) / 2) / (n1 * n0)


class _L1Path(BaseEstimator):
    """The L1 logistic regression at every C of a fixed grid, fitted on the same rows (one inner-CV fit).

    liblinear has no warm start; a fit at a C below the empty-model C stops at once (w = 0 is optimal).
    """

    def __init__(self, Cs=(1.0,), class_weight="balanced", max_iter=1000, random_state=0):
        self.Cs = Cs
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y):
        A = np.asarray(X, dtype=float)
        y = np.asarray(y).astype(int)
        self.coef_path_ = np.zeros((len(self.Cs), A.shape[1]))
        self.intercept_path_ = np.zeros(len(self.Cs))
        for i, C in enumerate(self.Cs):
            m = _l1_logistic(C, self.class_weight, self.max_iter, self.random_state).fit(A, y)
            self.coef_path_[i] = m.coef_[0]
            self.intercept_path_[i] = m.intercept_[0]
        return self

    def decision_path(self, X) -> np.ndarray:
        """Decision values, rows × C grid."""
        return self.intercept_path_[None, :] + np.asarray(X, dtype=float) @ self.coef_path_.T


def _score_path(estimator, X, y, scoring: str) -> dict:
    """cross_validate scorer: one score per C (keys ``C000``, ``C001`` …) of a [filters →] _L1Path fit."""
    if isinstance(estimator, Pipeline):
        X, estimator = estimator[:-1].transform(X), estimator[-1]
    scores = _path_scores(scoring, np.asarray(y).astype(int), estimator.decision_path(X), estimator.class_weight)
    return {f"C{i:03d}": float(s) for i, s in enumerate(scores)}


class LassoSelector(_Selector):
    """L1-penalised logistic regression, C tuned by (grouped) stratified k-fold CV over the whole chain
    ``filters → LASSO``; keeps the features with a non-zero coefficient (possibly none).

    ``filters`` (optional, unfitted; e.g. Mann–Whitney → redundancy → mRMR) are the supervised screening
    steps before the LASSO: they are refitted on the training part of every inner fold, so the CV that
    picks C sees the filters' optimism too, then fitted on all rows for the final model (``filters_``).
    The C grid is ``n_C`` log-spaced values from ``c_low × C₀`` to ``c_span × C₀``, C₀ = :func:`empty_model_c`
    of the filtered rows (below C₀ every coefficient is 0): with ``c_low < 1`` the empty model — "no
    radiomics signal" — is on the grid. The CV score is ``scoring`` (``neg_log_loss`` = binomial deviance,
    glmnet's default, weighted by ``class_weight`` like the fit; or ``roc_auc``). ``one_se_rule=True`` picks
    the smallest C (strongest penalty) whose mean CV score is within one standard error of the best
    (glmnet's ``lambda.1se``); else the best C. The SE is Nadeau & Bengio's SD·√(1/k + n_test/n_train)
    (``corrected_se=True``; the naive SD/√k treats the overlapping folds as independent and is ~1.45x too
    small at k = 10: on permuted labels the naive rule kept features in 30 % of 30 simulated cohorts, the
    corrected one in 17 %, mostly a single one). If the chosen C keeps fewer than ``min_features``
    features, the next larger C is used (``fallback_``).

    ``transform`` returns the selected (z-scored) input columns — an (n, 0) frame when none is kept;
    ``decision_function`` returns the rad-score ``intercept_ + Σ coef_ᵢ · zᵢ`` (for an empty model the
    constant weighted training log-odds, 0 with balanced class weights) and ``predict_proba`` its logistic
    transform. Folds are grouped by ``groups`` if given to ``fit``, else by the index level ``split_group``
    or ``patient_id`` of X. ``random_state`` seeds the folds and liblinear (None: unseeded folds, liblinear 0);
    the workflow passes the config's ``seed`` (:func:`signature_pipeline`).

    The inner CV is scikit-learn's: :func:`~sklearn.model_selection.cross_validate` of a clone of the chain
    ``filters → L1 path`` over a :class:`~sklearn.model_selection.StratifiedGroupKFold` (or
    :class:`~sklearn.model_selection.StratifiedKFold` without groups). What is not delegated, and why:

    * not ``GridSearchCV`` over ``C``: it would refit the filters once per C and fold (``n_C`` times the
      work, the redundancy filter's Spearman matrix being the slow part), whereas one fold's filters serve the
      whole C grid here (the ``_L1Path`` step fits every C on the same filtered rows); the 1-SE rule with the
      corrected SE, ``min_features`` and the per-fold number of kept features are not GridSearchCV's either.
    * not ``LogisticRegressionCV``: it cannot refit upstream filters inside its folds (the honest LASSO of
      issue 15), has no 1-SE rule and scores by unweighted log loss or AUC, not the class-weighted deviance.
    * not ``check_cv``: it builds an unshuffled, unseeded, ungrouped splitter from an integer; the number of
      folds is also capped here by the patients of the smaller class.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        Input columns (only when fitted on a DataFrame).
    n_features_in_ : int
        Number of input columns.
    support_ : ndarray of bool
        Input columns with a non-zero coefficient at the chosen C.
    coef_ : ndarray of float
        Coefficients of the kept columns (in input order), on the z-scored features.
    intercept_ : float
        Intercept of the rad-score.
    classes_ : ndarray
        ``[0, 1]``.
    filters_ : Pipeline or None
        The ``filters`` fitted on all rows.
    Cs_, cv_scores_, cv_mean_, cv_se_ : ndarray
        The C grid, CV score per (C, fold), mean and SE per C.
    cv_n_nonzero_ : ndarray of int
        Kept features per (C, fold).
    n_splits_ : int
        Inner folds used.
    cv_test_fraction_ : float
        Mean n_test / n_train of the folds (the SE correction).
    C_best_, C_, C_empty_ : float
        Best, chosen and empty-model C.
    fallback_ : bool
        True when ``min_features`` moved the choice to a larger C.
    coef_path_, intercept_path_ : ndarray
        The fit on all (filtered) rows at every C.
    path_features_ : ndarray of str
        The columns after the filters (the columns of ``coef_path_``).
    n_train_ : int
        Training rows.
    """

    _supervised = True
    _parameter_constraints = {
        "cv": [Interval(Integral, 2, None, closed="left")], "n_C": [Interval(Integral, 1, None, closed="left")],
        "c_span": [Interval(Real, 0, None, closed="neither")], "one_se_rule": ["boolean"],
        "scoring": [StrOptions({"neg_log_loss", "roc_auc"})], "class_weight": [StrOptions({"balanced"}), dict, None],
        "min_features": [Interval(Integral, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")], "random_state": ["random_state"],
        "filters": [HasMethods(["fit", "transform"]), None], "c_low": [Interval(Real, 0, None, closed="neither")],
        "corrected_se": ["boolean"]}

    def __init__(self, cv=10, n_C=30, c_span=1e2, one_se_rule=True, scoring="neg_log_loss",
                 class_weight="balanced", min_features=0, max_iter=1000, random_state=None, filters=None,
                 c_low=0.5, corrected_se=True):
        self.cv = cv
        self.n_C = n_C
        self.c_span = c_span
        self.one_se_rule = one_se_rule
        self.scoring = scoring
        self.class_weight = class_weight
        self.min_features = min_features
        self.max_iter = max_iter
        self.random_state = random_state
        self.filters = filters
        self.c_low = c_low
        self.corrected_se = corrected_se

    def _lr_seed(self):
        return 0 if self.random_state is None else self.random_state

    def _splitter(self, y, groups):
        """The inner CV splitter; folds ≤ the number of patients (groups) of the smaller class."""
        if groups is None:
            n_min = int(min(np.bincount(y, minlength=2)))
        else:
            n_min = min(len(set(groups[y == k])) for k in (0, 1))
        n_splits = int(max(2, min(self.cv, n_min)))
        if groups is not None:
            return StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state), n_splits
        return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state), n_splits

    def _inner_cv(self, X, y, groups, Cs):
        """(scores, n_nonzero), each C grid × folds, of the chain refitted on every inner training fold."""
        path = _L1Path(Cs=Cs, class_weight=self.class_weight, max_iter=self.max_iter, random_state=self._lr_seed())
        est = path if self.filters is None else Pipeline([("filters", clone(self.filters)), ("path", path)])
        splitter, self.n_splits_ = self._splitter(y, groups)
        res = cross_validate(est, X, y, groups=groups, cv=splitter, error_score="raise", return_estimator=True,
                             return_indices=True, scoring=partial(_score_path, scoring=self.scoring))
        scores = np.array([res[f"test_C{i:03d}"] for i in range(len(Cs))], dtype=float)
        fitted = [e if self.filters is None else e[-1] for e in res["estimator"]]
        n_nonzero = np.array([np.count_nonzero(e.coef_path_, axis=1) for e in fitted], dtype=int).T
        idx = res["indices"]
        self.cv_test_fraction_ = float(np.mean([len(v) / len(t) for t, v in zip(idx["train"], idx["test"])]))
        return scores, n_nonzero

    def _standard_error(self, scores) -> np.ndarray:
        """SE of the mean CV score per C: SD·√(1/k + n_test/n_train) (Nadeau & Bengio's correction for the
        overlapping training folds) if ``corrected_se``, else the naive SD/√k."""
        k = np.sum(~np.isnan(scores), axis=1)
        sd = np.nanstd(scores, axis=1, ddof=1)
        return sd * np.sqrt(1 / k + self.cv_test_fraction_) if self.corrected_se else sd / np.sqrt(k)

    def _choose(self, mean, se, n_nonzero) -> tuple[int, int]:
        """(best, chosen) grid indices: best mean score; chosen by the 1-SE rule and ``min_features``."""
        if np.all(np.isnan(mean)):
            raise ValueError("LassoSelector: no inner CV fold has both classes in its validation rows")
        best = int(np.nanargmax(mean))
        chosen = int(np.where(mean >= mean[best] - np.nan_to_num(se[best]))[0].min()) if self.one_se_rule else best
        self.fallback_ = False
        while n_nonzero[chosen] < self.min_features and chosen < len(n_nonzero) - 1:
            chosen += 1
            self.fallback_ = True
        return best, chosen

    def fit(self, X, y, groups=None):
        X_in = X
        X, y = self._fit_input(X, y)
        if not set(np.unique(y)) <= {0, 1}:
            raise ValueError(f"LassoSelector: y must be binary 0/1, got the values {sorted(np.unique(y))[:5]}")
        y = np.asarray(y).astype(int)
        self.filters_ = clone(self.filters).fit(X, y) if self.filters is not None else None
        Xf = self.filters_.transform(X) if self.filters_ is not None else X
        A = np.asarray(Xf, dtype=float)
        self.C_empty_ = empty_model_c(A, y, self.class_weight)
        Cs = self.C_empty_ * np.logspace(np.log10(self.c_low), np.log10(self.c_span), self.n_C)
        groups = np.asarray(groups).astype(str) if groups is not None else _groups_from_index(X)
        scores, cv_nonzero = self._inner_cv(X, y, groups, Cs)
        mean = np.nanmean(scores, axis=1)
        se = self._standard_error(scores)
        full = _L1Path(Cs=Cs, class_weight=self.class_weight, max_iter=self.max_iter,
                       random_state=self._lr_seed()).fit(A, y)
        best, chosen = self._choose(mean, se, np.count_nonzero(full.coef_path_, axis=1))
        self.Cs_, self.cv_scores_, self.cv_mean_, self.cv_se_ = Cs, scores, mean, se
        self.cv_n_nonzero_ = cv_nonzero
        self.C_best_, self.C_ = float(Cs[best]), float(Cs[chosen])
        self.coef_path_, self.intercept_path_ = full.coef_path_, full.intercept_path_
        self.path_features_ = np.asarray([str(c) for c in Xf.columns], dtype=object)
        self._record_input(X_in, list(X.columns))
        names = np.asarray([str(c) for c in X.columns], dtype=object)
        coef = dict(zip(self.path_features_, full.coef_path_[chosen]))
        self.support_ = np.asarray([coef.get(c, 0.0) != 0 for c in names], dtype=bool)
        self.coef_ = np.asarray([coef[c] for c in names[self.support_]], dtype=float)
        self.intercept_ = float(full.intercept_path_[chosen]) if self.support_.any() else _log_odds(y, self.class_weight)
        self.classes_ = np.array([0, 1])
        self.n_train_ = len(y)
        return self

    def decision_function(self, X):
        Z = np.asarray(self.transform(X), dtype=float)
        return self.intercept_ + Z @ self.coef_

    def predict_proba(self, X):
        p = special.expit(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def formula(self, digits: int = 6) -> str:
        """The rad-score as an explicit formula over z-scored features (just the intercept if none is kept)."""
        check_is_fitted(self, "coef_")
        terms = [f"{self.intercept_:+.{digits}f}"]
        for name, b in zip(self.get_feature_names_out(), self.coef_):
            terms.append(f"{b:+.{digits}f} * z({name})")
        return "rad_score = " + " ".join(terms)

    def path_table(self) -> pd.DataFrame:
        """Long table C, log10_C, feature, coef, CV mean/SE, chosen per (C, feature after the filters), plus
        ``n_nonzero`` (features kept at that C on all rows), ``cv_n_nonzero`` (mean over the inner folds) and
        ``log_lambda`` = ln(1 / (C·n)), glmnet's λ (selection/lasso_path.tsv)."""
        check_is_fitted(self, "coef_path_")
        n_C, n_f = self.coef_path_.shape
        C = np.repeat(self.Cs_, n_f)
        return pd.DataFrame({
            "C": C, "log10_C": np.log10(C), "feature": np.tile(self.path_features_, n_C),
            "coef": self.coef_path_.ravel(), "cv_mean_score": np.repeat(self.cv_mean_, n_f),
            "cv_se": np.repeat(self.cv_se_, n_f), "chosen": C == self.C_,
            "n_nonzero": np.repeat(np.count_nonzero(self.coef_path_, axis=1), n_f),
            "cv_n_nonzero": np.repeat(self.cv_n_nonzero_.mean(axis=1), n_f),
            "log_lambda": -np.log(C * self.n_train_)})


def _log_odds(y: np.ndarray, class_weight) -> float:
    """Training log-odds under the class weights: the intercept of the empty model (exactly 0 for
    ``balanced``, where each class weighs n/2; log(n1/n0) without weights)."""
    if class_weight == "balanced":
        return 0.0
    s = compute_sample_weight(class_weight, y)
    return float(np.log(s[y == 1].sum() / s[y == 0].sum()))


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


def supervised_filters(univariate_p=0.05, univariate_min_features=5, redundancy_threshold=0.9,
                       mrmr_n_features=None) -> Pipeline:
    """The supervised screening chain Mann–Whitney → redundancy → mRMR (off by default), unfitted."""
    return Pipeline([
        ("univariate", UnivariateFilter(p_threshold=univariate_p, min_features=univariate_min_features)),
        ("redundancy", RedundancyFilter(threshold=redundancy_threshold)),
        ("mrmr", MRMR(n_features=mrmr_n_features) if mrmr_n_features else "passthrough"),
    ])


def signature_pipeline(columns, *, icc_threshold=0.75, icc_form="ICC2", copy_suffix="@r2",
                       nzv_freq_cut=19.0, nzv_unique_cut=0.1, univariate_p=0.05, univariate_min_features=5,
                       redundancy_threshold=0.9, mrmr_n_features=None, lasso_cv=10, lasso_n_C=30,
                       lasso_one_se_rule=True, lasso_scoring="neg_log_loss", class_weight="balanced",
                       random_state=None) -> Pipeline:
    """The unfitted selection chain ending in the LASSO selector (see module docstring).

    The unsupervised steps (columns, ICC, near-zero variance, scaling) are fitted once on all rows; the
    supervised filters are the LASSO's ``filters``, refitted inside every fold of its inner CV.
    """
    filters = supervised_filters(univariate_p, univariate_min_features, redundancy_threshold, mrmr_n_features)
    steps = [
        ("columns", ColumnPicker(columns)),
        ("icc", ICCFilter(threshold=icc_threshold, form=icc_form, copy_suffix=copy_suffix)),
        ("nzv", NearZeroVariance(freq_cut=nzv_freq_cut, unique_cut=nzv_unique_cut)),
        ("scale", StandardScaler()),
        ("lasso", LassoSelector(cv=lasso_cv, n_C=lasso_n_C, one_se_rule=lasso_one_se_rule, scoring=lasso_scoring,
                                class_weight=class_weight, random_state=random_state, filters=filters)),
    ]
    return Pipeline(steps).set_output(transform="pandas")


#: Step names of a fitted signature as :func:`signature_steps` returns them, in chain order.
SIGNATURE_STEPS = ("columns", "icc", "nzv", "scale", "univariate", "redundancy", "mrmr", "lasso")


def signature_steps(signature: Pipeline) -> dict:
    """``{step name: fitted step}`` of a fitted signature (or rad-score branch), the LASSO's fitted inner
    filters (``univariate``, ``redundancy``, ``mrmr``; ``"passthrough"`` when off) included, in chain order.
    The last step is returned under ``lasso`` as the :class:`LassoSelector` (unwrapped from a RadScore)."""
    out: dict = {}
    for name, step in signature.steps:
        if isinstance(step, RadScore):
            check_is_fitted(step, "selector_")
            step, name = step.selector_, "lasso"
        if isinstance(step, LassoSelector):
            check_is_fitted(step, "support_")
            if step.filters_ is not None:
                out.update(dict(step.filters_.named_steps))
        out[name] = step
    return out


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
