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

Modules, bottom to top: :mod:`~usrad.selection.base` (:class:`Selector`, the selectors' base class),
:mod:`~usrad.selection.harmonize` (ComBatHarmonizer, optional ComBat by device or centre, off by default),
:mod:`~usrad.selection.ranks` (vectorised Mann–Whitney and Spearman), :mod:`~usrad.selection.unsupervised`
(ColumnPicker, ICCFilter, NearZeroVariance), :mod:`~usrad.selection.supervised` (UnivariateFilter,
RedundancyFilter, MRMR), :mod:`~usrad.selection.l1path` (the L1 path over a C grid), :mod:`~usrad.selection.lasso`
(LassoSelector), :mod:`~usrad.selection.radscore` (RadScore), :mod:`~usrad.selection.pipeline` (the signature).
The pickled classes keep ``usrad.selection.<Class>`` as their path (``__module__``), as in the bundles.

Learned attributes are numpy arrays, lists, plain Python scalars and (``LassoSelector.filters_``) a fitted
Pipeline of the filters above, so fitted steps serialise with skops (see :mod:`usrad.bundle`).
"""
from __future__ import annotations

from .base import Selector
from .harmonize import UNSEEN_MODES, ComBatHarmonizer, combat_fit
from .l1path import L1Path, empty_model_c, path_scores, score_path
from .lasso import LassoSelector
from .pipeline import SIGNATURE_STEPS, signature_pipeline, signature_steps, supervised_filters
from .radscore import RadScore
from .ranks import mann_whitney, sorted_ranks, spearman_matrix
from .supervised import MRMR, RedundancyFilter, UnivariateFilter
from .unsupervised import ICC_FORM_NAMES, ICC_FORMS, ColumnPicker, ICCFilter, NearZeroVariance, icc_per_feature

__all__ = [
    "ICC_FORMS", "ICC_FORM_NAMES", "MRMR", "SIGNATURE_STEPS", "UNSEEN_MODES", "ColumnPicker", "ComBatHarmonizer", "ICCFilter", "L1Path", "LassoSelector",
    "NearZeroVariance", "RadScore", "RedundancyFilter", "Selector", "UnivariateFilter", "combat_fit", "empty_model_c",
    "icc_per_feature", "mann_whitney", "path_scores", "score_path", "signature_pipeline", "signature_steps",
    "sorted_ranks", "spearman_matrix", "supervised_filters",
]
