"""The whole signature as one scikit-learn Pipeline, and its fitted steps flattened in chain order."""
from __future__ import annotations

from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from .harmonize import ComBatHarmonizer
from .lasso import LassoSelector
from .radscore import RadScore
from .supervised import MRMR, RedundancyFilter, UnivariateFilter
from .unsupervised import ColumnPicker, ICCFilter, NearZeroVariance

__all__ = ["SIGNATURE_STEPS", "signature_pipeline", "signature_steps", "supervised_filters"]


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
                       random_state=None, harmonize=None) -> Pipeline:
    """The unfitted selection chain ending in the LASSO selector (see module docstring).

    The unsupervised steps (columns, ICC, near-zero variance, scaling) are fitted once on all rows; the
    supervised filters are the LASSO's ``filters``, refitted inside every fold of its inner CV. ``harmonize``
    (``modelling.harmonize``: ``{by, covariates, unseen}``) with a ``by`` adds a :class:`ComBatHarmonizer` step
    ``harmonize`` after the column picker (its batch and covariates are index levels of X); without, the chain is
    as it was.
    """
    filters = supervised_filters(univariate_p, univariate_min_features, redundancy_threshold, mrmr_n_features)
    steps = [
        ("columns", ColumnPicker(columns)),
        *([("harmonize", ComBatHarmonizer(by=harmonize["by"], covariates=list(harmonize.get("covariates") or []),
                                          unseen=harmonize.get("unseen", "refuse"), copy_suffix=copy_suffix))]
          if harmonize and harmonize.get("by") else []),
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
