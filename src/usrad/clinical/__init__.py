"""Clinical predictors: encoding, patient-level screening and the odds-ratio tables ("Table 2").

The clinical part of the modelling (docs/modelling.md §4), fitted on training rows only:

* :class:`ClinicalEncoder`: raw clinical columns → numeric design (one-hot ``var[level]``).
* :func:`clinical_logit_tables`: univariable and multivariable logistic regressions → Table 2, the
  selected and the independent variables.
* :class:`ClinicalSelector`: keeps the columns of the selected (or independent) variables in a pipeline.
* :func:`clinical_branch`: ``ColumnPicker → ClinicalEncoder [→ ClinicalSelector]``.

What makes the tables honest:

* **One row per patient.** Clinical predictors and outcomes are patient-level, so with two images of a
  patient an image-level screen would count the patient twice (a null variable passes p < 0.05 about
  16 % of the time instead of 5 %). The tables are computed on one row per patient: the ``patient_id``
  level of the design matrix's index (:func:`usrad.models.build_design`) or ``groups``; an image-level
  column (``x-image-level``: BI-RADS, size) that differs between a patient's images is averaged.
* **Full rank.** Before every fit the encoded columns are checked in order (config order): a constant
  column, or one that is a linear combination of the intercept and the columns kept before it (``her2``
  and ``subtype[HER2]`` when HER2+ ⇔ subtype HER2), is dropped, logged and listed in the table's
  ``note`` (which column, aliased with what) and in ``table.attrs["dropped"]``.
* **Separation.** A model whose data are (quasi-)completely separated (linear programme of Konis 2007,
  ``firthmodels.detect_separation``), whose ML fit does not converge or gives a coefficient above
  :data:`MAX_ABS_STD_COEF` per SD, is fitted by Firth's penalised likelihood (Heinze & Schemper 2002,
  ``firthmodels.FirthLogisticRegression``): finite ORs with profile penalised-likelihood CIs and
  penalised likelihood-ratio tests; the table says so (``method`` ``Firth``, ``note`` "Firth
  (separation…)").
* An OR or CI that still cannot be estimated is NaN with the reason in ``note`` — never inf.

Modules, bottom to top: :mod:`~usrad.clinical.design` (one row per patient, the full-rank check),
:mod:`~usrad.clinical.firth` (Firth's penalised likelihood), :mod:`~usrad.clinical.logit` (one ML or Firth fit,
LR tests), :mod:`~usrad.clinical.tables` (the odds-ratio tables), :mod:`~usrad.clinical.estimators` (the pipeline
steps; the pickled classes keep ``usrad.clinical.<Class>`` as their path, as in the bundles).
"""
from __future__ import annotations

from __future__ import annotations

from .design import RANK_TOL, full_rank_columns, patient_ids, patient_level, variable_of
from .estimators import ClinicalEncoder, ClinicalSelector, clinical_branch
from .firth import MAX_ABS_LOG_OR
from .logit import FIRTH_FALLBACK, FIRTH_SETTINGS, MAX_ABS_STD_COEF, Z95, LogitFit, fit_logit, lr_pvalue
from .tables import ADDED_COLUMNS, TABLE_COLUMNS, clinical_logit_tables

__all__ = ["ADDED_COLUMNS", "FIRTH_FALLBACK", "FIRTH_SETTINGS", "MAX_ABS_LOG_OR", "MAX_ABS_STD_COEF", "RANK_TOL",
           "TABLE_COLUMNS", "Z95", "ClinicalEncoder", "ClinicalSelector", "LogitFit", "clinical_branch",
           "clinical_logit_tables", "fit_logit", "full_rank_columns", "lr_pvalue", "patient_ids", "patient_level",
           "variable_of"]
