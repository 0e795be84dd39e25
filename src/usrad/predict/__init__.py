"""Score new patients with a trained model bundle (``usrad predict``).

One function does it all: :func:`predict_manifest` (bundle folder + manifest of new patients → table).

1. The manifest is checked by :func:`usrad.cohort.validate_manifest` — the same code and messages as
   ``usrad validate`` — with the clinical variables the model uses as the required predictors and no task
   (new patients have no outcome column). A categorical level the model never saw in training is warned
   about (:class:`UnseenLevelWarning`) and scored as the reference level, as in the training run.
2. Features are extracted with exactly the PyRadiomics parameter text recorded in the bundle (written to a
   file whose SHA-256 must equal the bundle's), reference-reader mask only. A precomputed feature table
   (``features=``) is accepted only if its parameter SHA-256 is the bundle's and it has every feature; its
   rows are matched to the new images by content (SHA-256 of image and mask, pixel spacing; recorded by
   ``usrad extract``), never by ``image_id``: a new image the table does not hold is an error.
3. The design matrix is built by :func:`usrad.models.build_design` exactly as in training and the frozen
   pipeline gives the probability; the rad-score is the bundle's LASSO signature (NaN for ``clinical``).

Output, one row per image (the modelling unit; most patients have one): ``patient_id, image_id, task,
model, probability, rad_score, threshold, decision`` (``positive`` iff probability ≥ the bundle's
threshold, chosen on training data), ``top_contributions`` (the largest terms on the log-odds scale, see
:func:`contributions`) and, for the ``nomogram`` model, ``points_<variable>`` and ``total_points`` on the
classic 0–100 nomogram scale. Floats are written with full precision (shortest round-trip repr).

A library version different from the one the bundle records (PyRadiomics, scikit-learn) gives a
:class:`VersionWarning`: features or fitted estimators may then differ slightly.
"""
from __future__ import annotations

from .model import (CHECKED_VERSIONS, VersionWarning, fitted_signature_steps, load_model, model_inputs,
                    version_mismatches)
from .patients import (UnseenLevelWarning, design_matrix, features_by_content, new_patient_features,
                       validate_new_patients)
from .scoring import (OUTPUT_COLUMNS, TOP_K, contributions, nomogram_points, predict_manifest, rad_scores,
                      read_predictions_table, score, write_predictions_table)

__all__ = ["CHECKED_VERSIONS", "OUTPUT_COLUMNS", "TOP_K", "UnseenLevelWarning", "VersionWarning", "contributions",
           "design_matrix", "features_by_content", "fitted_signature_steps", "load_model", "model_inputs",
           "new_patient_features", "nomogram_points", "predict_manifest", "rad_scores", "read_predictions_table",
           "score", "validate_new_patients", "version_mismatches", "write_predictions_table"]
