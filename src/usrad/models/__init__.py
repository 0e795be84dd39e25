"""Leak-free model fitting for one task: radiomics classifiers, rad-score, clinical, nomogram, combined.

Entry point for the rule script: :func:`fit_task`. Everything learned is learned on the task's training
rows (``split == "train"``) only; test and external rows are only ever passed to ``predict_proba``.
The method, every knob and the search spaces are documented in docs/modelling.md; the defaults are the
schema's (:func:`usrad.settings.modelling_settings`).

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
bundles of a config. :func:`usrad.plan.plan_problems` lists, before anything runs, what fitting would refuse;
:func:`search_space_problems` checks ``modelling.search_spaces`` against the estimators.

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

The modules, bottom to top: :mod:`~usrad.models.folds` (grouped folds), :mod:`~usrad.models.zoo` (classifiers,
search spaces), :mod:`~usrad.models.space_checks` (checks of the search spaces), :mod:`~usrad.models.stacking`
(rad-score branch, cross-fitting, second-stage features), :mod:`~usrad.models.design` (design matrix, one task's
rows), :mod:`~usrad.models.choice` (fold scores, 1-SE rule), :mod:`~usrad.models.signatures` (the nested CV's
signatures), :mod:`~usrad.models.tuning` (grid CV), :mod:`~usrad.models.fitting` (the stages of a task's fit),
:mod:`~usrad.models.predictions` (predictions table), :mod:`~usrad.models.outputs` (files),
:mod:`~usrad.models.task` (:func:`fit_task`), :mod:`~usrad.models.ablation`, :mod:`~usrad.models.synthetic`.
"""
from __future__ import annotations

from ..clinical import ClinicalEncoder, ClinicalSelector, clinical_branch, clinical_logit_tables
from ..settings import (
    CLASSIFIERS,
    CLINICAL_MODELS,
    SVM_CALIBRATION_FOLDS,
    model_names,
    modelling_settings,
    radiomics_only,
)
from .ablation import FEATURE_CLASSES, feature_class, feature_class_ablation, negative_control_table
from .choice import MODEL_CHOICE_RULES, SIMPLICITY, choose_model
from .design import (TaskDesign, build_design, clinical_problems, harmonize_levels, pick_copy_reader, task_design,
                     task_signature)
from .fitting import CV_BASIS
from .folds import cv_groups, grouped_folds
from .outputs import nomogram_inputs
from .predictions import read_predictions, write_predictions
from .space_checks import search_space_problems
from .stacking import (
    RadiomicsClinicalFeatures,
    cross_fitted_radscore,
    fitted_radscore_branch,
    radscore_branch,
    radscore_intercept,
)
from .synthetic import synthetic_modelling_data
from .task import fit_task
from .zoo import FIXED_PARAMS, SEARCH_SPACES, make_classifier, search_space, unpenalised_logistic

__all__ = [
    "CLASSIFIERS", "CLINICAL_MODELS", "CV_BASIS", "FEATURE_CLASSES", "FIXED_PARAMS", "MODEL_CHOICE_RULES",
    "SEARCH_SPACES", "SIMPLICITY", "SVM_CALIBRATION_FOLDS", "ClinicalEncoder", "ClinicalSelector",
    "RadiomicsClinicalFeatures", "TaskDesign", "build_design", "choose_model", "clinical_branch",
    "clinical_logit_tables", "clinical_problems", "cross_fitted_radscore", "cv_groups", "feature_class",
    "feature_class_ablation", "negative_control_table", "fit_task", "fitted_radscore_branch", "grouped_folds", "harmonize_levels", "make_classifier",
    "model_names", "modelling_settings", "nomogram_inputs", "pick_copy_reader", "radiomics_only", "radscore_branch",
    "radscore_intercept", "read_predictions", "search_space", "search_space_problems", "synthetic_modelling_data",
    "task_design", "task_signature", "unpenalised_logistic", "write_predictions",
]
