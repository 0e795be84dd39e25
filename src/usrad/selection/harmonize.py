"""ComBat harmonisation across devices or centres (parametric empirical Bayes), learned on training rows only.

:class:`ComBatHarmonizer` is Johnson et al. 2007's parametric ComBat with covariates protected (Fortin et al.
2018), with neuroHarmonize's learn/apply split: ``fit`` estimates, on the rows it is given, the pooled
location/scale of every feature (a least-squares fit of ``features ~ batch + covariates``) and the
empirical-Bayes shrunk additive (``gamma_``) and multiplicative (``delta_``) effect of every batch;
``transform`` removes them from any rows of those batches (test rows never change the estimates). The numbers
equal neuroHarmonize 2.5.2's ``harmonizationLearn``/``harmonizationApply`` (``ref_batch=None``, ``eb=True``, no
smooth terms; tested to 1e-9 against a stored run of the library) — hand-written because the library pins
``numpy<2`` and pulls in nibabel and statsmodels for these ~60 lines of linear algebra, and its apply step
fails on rows that hold only some of the training batches (a single held-out device).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import StrOptions  # scikit-learn's own validators
from sklearn.utils.validation import check_is_fitted, validate_data

from ..errors import UsradError

__all__ = ["UNSEEN_MODES", "ComBatHarmonizer", "combat_fit"]

#: What ``transform`` does with a row whose batch was not in the training rows.
UNSEEN_MODES = ("refuse", "identity")


def _it_sol(s, g_hat, d_hat, g_bar, t2, a, b, conv=1e-4):
    """The EB posterior of one batch's (gamma, delta) per feature, iterated as neuroCombat's ``it_sol``."""
    n = s.shape[0]
    g_old, d_old = g_hat.copy(), d_hat.copy()
    while True:
        g_new = (t2 * n * g_hat + d_old * g_bar) / (t2 * n + d_old)
        d_new = (0.5 * ((s - g_new) ** 2).sum(axis=0) + b) / (n / 2.0 + a - 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero effect: inf/nan, as in neuroCombat's loop
            change = max((np.abs(g_new - g_old) / g_old).max(), (np.abs(d_new - d_old) / d_old).max())
        g_old, d_old = g_new, d_new
        if not change > conv:
            return g_new, d_new


def combat_fit(X: np.ndarray, codes: np.ndarray, C: np.ndarray, n_batch: int, eb: bool = True) -> dict:
    """ComBat's estimates from training rows: ``X`` (rows × features, finite, no constant column), ``codes``
    (batch code 0..n_batch-1 of every row, each code ≥ 2 rows), ``C`` (rows × covariates, may have 0 columns).

    Returns ``{grand_mean, var_pooled, beta, gamma, delta}`` (beta: covariates × features; gamma, delta:
    batches × features)."""
    n = len(X)
    D = np.hstack([np.eye(n_batch)[codes], C])
    B = np.linalg.inv(D.T @ D) @ D.T @ X
    counts = np.bincount(codes, minlength=n_batch)
    grand_mean = (counts / n) @ B[:n_batch]
    var_pooled = ((X - D @ B) ** 2).mean(axis=0)
    s = (X - grand_mean - C @ B[n_batch:]) / np.sqrt(var_pooled)
    gamma = np.vstack([s[codes == i].mean(axis=0) for i in range(n_batch)])
    delta = np.vstack([s[codes == i].var(axis=0, ddof=1) for i in range(n_batch)])
    if eb and X.shape[1] > 1:
        for i in range(n_batch):
            m, s2 = delta[i].mean(), delta[i].var(ddof=1)
            a, b = (2 * s2 + m ** 2) / s2, (m * s2 + m ** 3) / s2
            gamma[i], delta[i] = _it_sol(s[codes == i], gamma[i], delta[i], gamma[i].mean(), gamma[i].var(ddof=1),
                                         a, b)
    return {"grand_mean": grand_mean, "var_pooled": var_pooled, "beta": B[n_batch:], "gamma": gamma,
            "delta": delta}


def _labels(X: pd.DataFrame, name: str, what: str) -> pd.Series:
    """The values of ``name`` per row: an index level of X, else a column of X; UsradError if neither."""
    if name in X.index.names:
        return pd.Series(X.index.get_level_values(name), index=X.index)
    if name in X.columns:
        return X[name]
    raise UsradError(f"ComBatHarmonizer: the {what} {name!r} is neither an index level nor a column of X "
                     f"(index levels {list(X.index.names)})")


class ComBatHarmonizer(TransformerMixin, BaseEstimator):
    """ComBat by the batch ``by`` (e.g. ``device`` or ``centre``), protecting the numeric ``covariates``.

    ``X`` is a DataFrame; ``by`` and every covariate is an index level of X (they then pass through every later
    step untouched) or a column of X (consumed: dropped from the output). All other columns are features; a
    column ``<feature><copy_suffix>`` (the ICC filter's second reading) gets its feature's correction and is not
    used to fit. Constant features are passed through unchanged. The output is a DataFrame with X's index and the
    feature columns in X's order. Batch labels are compared as strings.

    A row of a batch not seen in ``fit``: ``unseen="refuse"`` (default) raises a UsradError naming the values;
    ``unseen="identity"`` returns such rows unchanged (as if that batch had no effect: gamma 0, delta 1) — a
    documented choice for external validation on a new device, whose rows are then not harmonised.
    ``by=None`` is the identity (the step off); arrays are accepted only then (they carry no batch labels).

    Attributes
    ----------
    feature_names_in_, n_features_in_ : ndarray of str, int
        All input columns (names only when fitted on a DataFrame) and their number.
    features_out_ : list of str
        The output columns (the features, copies included).
    harmonized_ : list of str
        The fitted features (not copies, not constant).
    batches_ : list of str
        The training batches, sorted (the rows of ``gamma_`` and ``delta_``).
    n_per_batch_ : list of int
        Training rows per batch.
    grand_mean_, var_pooled_ : ndarray of shape (n_harmonized,)
        Pooled mean (batch-size weighted) and residual variance of every fitted feature.
    beta_ : ndarray of shape (n_covariates, n_harmonized)
        Covariate coefficients (their effect is kept).
    gamma_, delta_ : ndarray of shape (n_batches, n_harmonized)
        EB additive and multiplicative batch effects, in units of the standardised feature.
    """

    _parameter_constraints = {"by": [str, None], "covariates": [list, tuple], "unseen": [StrOptions(set(UNSEEN_MODES))],
                              "copy_suffix": [str], "eb": ["boolean"]}

    def __init__(self, by=None, covariates=(), unseen="refuse", copy_suffix="@r2", eb=True):
        self.by = by
        self.covariates = covariates
        self.unseen = unseen
        self.copy_suffix = copy_suffix
        self.eb = eb

    def _columns(self, X):
        """(consumed columns, feature columns, copy columns) of X."""
        consumed = [c for c in [self.by, *self.covariates] if c in X.columns and c not in X.index.names]
        feats = [c for c in X.columns if c not in consumed]
        names = {str(c) for c in feats}
        copies = [c for c in feats if str(c).endswith(self.copy_suffix) and str(c)[:-len(self.copy_suffix)] in names]
        return consumed, feats, copies

    def _covariates(self, X) -> np.ndarray:
        C = np.column_stack([pd.to_numeric(_labels(X, c, "covariate"), errors="coerce").to_numpy(float)
                             for c in self.covariates]) if self.covariates else np.zeros((len(X), 0))
        if np.isnan(C).any():
            bad = [c for j, c in enumerate(self.covariates) if np.isnan(C[:, j]).any()]
            raise UsradError(f"ComBatHarmonizer: covariate(s) {bad} must be numeric without missing values")
        return C

    def fit(self, X, y=None):
        self._validate_params()
        if self.by is None:
            validate_data(self, X, reset=True)
            self.features_out_ = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else []
            return self
        if not isinstance(X, pd.DataFrame):
            raise UsradError("ComBatHarmonizer: X must be a DataFrame (the batch labels come from its index or columns)")
        batch = _labels(X, self.by, "batch key").astype(str)
        consumed, feats, copies = self._columns(X)
        fitted = [c for c in feats if c not in copies]
        A = X[fitted].to_numpy(dtype=float)
        if not np.isfinite(A).all():
            bad = [str(c) for c, ok in zip(fitted, np.isfinite(A).all(axis=0)) if not ok]
            raise UsradError(f"ComBatHarmonizer: features with missing or infinite training values: {bad[:5]}")
        varying = np.ptp(A, axis=0) > 0 if len(A) else np.zeros(len(fitted), dtype=bool)
        self.batches_, codes, counts = (list(v) for v in np.unique(batch.to_numpy(), return_inverse=True,
                                                                    return_counts=True))
        small = [b for b, k in zip(self.batches_, counts) if k < 2]
        if small:
            raise UsradError(f"ComBatHarmonizer: batch(es) of {self.by!r} with fewer than 2 training rows: {small}")
        est = combat_fit(A[:, varying], np.asarray(codes), self._covariates(X), len(self.batches_), self.eb)
        self.harmonized_ = [str(c) for c, v in zip(fitted, varying) if v]
        self.n_per_batch_ = [int(k) for k in counts]
        self.grand_mean_, self.var_pooled_, self.beta_ = est["grand_mean"], est["var_pooled"], est["beta"]
        self.gamma_, self.delta_ = est["gamma"], est["delta"]
        self.features_out_ = [str(c) for c in feats]
        self._record(X, list(X.columns), X.shape[1])
        return self

    def _record(self, X, names, n):
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray([str(c) for c in names], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.n_features_in_ = n

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        if self.by is None:
            A = validate_data(self, X, reset=False)
            return X if isinstance(X, pd.DataFrame) else A
        batch = _labels(X, self.by, "batch key").astype(str).to_numpy()
        known = np.isin(batch, self.batches_)
        if not known.all() and self.unseen == "refuse":
            raise UsradError(f"ComBatHarmonizer: value(s) of {self.by!r} not seen in the training rows: "
                             f"{sorted(set(batch[~known]))} (trained on {self.batches_}; "
                             "modelling.harmonize.unseen: identity passes such rows through unharmonised)")
        missing = [c for c in self.features_out_ if c not in X.columns]
        if missing:
            raise UsradError(f"ComBatHarmonizer: columns missing from X: {missing[:5]}")
        out = X.loc[:, self.features_out_].astype(float)
        C = self._covariates(X)
        codes = np.minimum(np.searchsorted(self.batches_, batch), len(self.batches_) - 1)  # unseen: replaced below
        gamma, delta = self.gamma_[codes], self.delta_[codes]
        pos = {c: j for j, c in enumerate(self.harmonized_)}
        base = {c: c[:-len(self.copy_suffix)] if c.endswith(self.copy_suffix) and c not in pos else c
                for c in self.features_out_}
        cols = [c for c in self.features_out_ if base[c] in pos]
        j = [pos[base[c]] for c in cols]
        fit_mean = self.grand_mean_[j] + C @ self.beta_[:, j]
        sd = np.sqrt(self.var_pooled_[j])
        raw = out[cols].to_numpy(float)
        adjusted = ((raw - fit_mean) / sd - gamma[:, j]) / np.sqrt(delta[:, j]) * sd + fit_mean
        out[cols] = np.where(known[:, None], adjusted, raw)  # unseen rows (identity mode): exactly as given
        return out

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_features_in_")
        if self.by is None and not self.features_out_:
            return np.asarray([f"x{i}" for i in range(self.n_features_in_)] if input_features is None
                              else input_features, dtype=object)
        return np.asarray(self.features_out_, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


ComBatHarmonizer.__module__ = "usrad.selection"  # its pickled path (bundles, usrad.bundle.TRUSTED_TYPES)
