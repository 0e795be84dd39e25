"""The one metrics package: discrimination, classification at a threshold, calibration, decision curves, ICC.

Every number in the paper's tables comes from here, so each function is checked in
``tests/test_metrics.py`` against the published values of a mature tool (``../shared/data/reference-stats``):
R pROC (AUC, DeLong variance/covariance/CI, paired ``roc.test``, Youden "best" coordinates),
R/Python dcurves (net benefit), pingouin (ICC) and R ``performance_hosmer`` (Hosmer–Lemeshow).

Conventions (shared by all functions)
- ``y`` is the binary outcome (0/1 or bool); ``p`` the predicted probability (or any score where higher
  means "more likely positive"; there is no automatic direction flipping as in pROC's ``direction="auto"``).
- A case is called positive iff ``p >= threshold`` (pROC's and dcurves' convention).
- 95% intervals everywhere (``level`` argument where it makes sense).
- ``groups`` (patient IDs, one per image) makes every interval patient-level (the patients, not the
  images, are the independent units): the bootstrap resamples patients, DeLong uses the clustered
  variance of Obuchowski (1997), proportions get design-effect-adjusted Wilson intervals, the
  calibration intercept and slope cluster-robust (sandwich) CIs. With one image per patient every
  result equals the one without ``groups``. Coverage of each is checked by simulation in
  ``tests/test_metrics_clustered.py`` and ``bench/bench_coverage.py``.
- Hosmer–Lemeshow: ``validation=True`` (default) for predictions not fitted on the same rows (df = g),
  ``False`` for apparent predictions (df = g − 2).
- Calibration functions need probabilities in [0, 1] (a score is refused).
- Bad input (non-binary outcome, NaN probability, a single class, mismatched lengths) raises
  :class:`usrad.errors.UsradError` naming the offending argument.

Public API
- Discrimination: :func:`auc`, :func:`bootstrap_auc`, :func:`delong_auc_cov`, :func:`delong_ci`,
  :func:`delong_test`, :func:`mann_whitney_p` (a score between the classes); ROC curves: :func:`roc_curve` (empirical) and :func:`roc_band` (pointwise bootstrap
  band from the resamples of :func:`bootstrap_auc`; :func:`roc_points`, :func:`tpr_on_grid`).
- At a threshold: :func:`confusion`, :func:`wilson_ci`, :func:`design_effect`, :func:`threshold_metrics`,
  :func:`youden_threshold`.
- Calibration: :func:`brier_score`, :func:`calibration_intercept_slope`, :func:`reliability_curve`,
  :func:`smoothed_calibration` (flexible curve with a patient-level bootstrap band), :func:`hosmer_lemeshow`.
- Decision curves: :func:`decision_curve` (wraps ``dcurves.dca``).
- Reproducibility: :func:`icc_per_feature` (vectorised, equal to pingouin to 1e-10).
- Summary: :func:`performance_table` — one flat row per (model, data set), used by every table.

Modules (this package re-exports their public API: ``from usrad.metrics import auc`` / ``metrics.auc``)
- :mod:`.checks` (input validation of y/p/groups/options), :mod:`.bootstrap` (resampling counts shared by
  the AUC, F1 and calibration-band bootstraps), :mod:`.discrimination`, :mod:`.proportions` (at a
  threshold), :mod:`.roc` (ROC curve and band), :mod:`.calibration`, :mod:`.decision`, :mod:`.reliability`
  (ICC), :mod:`.tables`.
"""
from __future__ import annotations

from .bootstrap import image_weights
from .calibration import (
    EPS, brier_score, calibration_intercept_slope, hosmer_lemeshow, reliability_curve, smoothed_calibration,
)
from .checks import LEVEL, RCS_KNOT_QUANTILES, check_groups, check_options, check_probabilities, check_yp
from .decision import DCA_THRESHOLDS, decision_curve
from .discrimination import (
    auc, bootstrap_auc, delong_auc_cov, delong_ci, delong_method, delong_test, mann_whitney_p,
)
from .proportions import confusion, design_effect, threshold_metrics, wilson_ci, youden_threshold
from .reliability import ICC_FORMS, icc_per_feature
from .roc import FPR_GRID, roc_band, roc_curve, roc_points, tpr_on_grid
from .tables import performance_table

__all__ = [
    "DCA_THRESHOLDS", "EPS", "FPR_GRID", "ICC_FORMS", "LEVEL", "RCS_KNOT_QUANTILES",
    "auc", "bootstrap_auc", "brier_score", "calibration_intercept_slope", "check_groups", "check_options",
    "check_probabilities", "check_yp", "confusion", "decision_curve", "delong_auc_cov", "delong_ci",
    "delong_method", "delong_test", "design_effect", "hosmer_lemeshow", "icc_per_feature", "image_weights",
    "mann_whitney_p", "performance_table", "reliability_curve", "roc_band", "roc_curve", "roc_points",
    "smoothed_calibration", "threshold_metrics", "tpr_on_grid", "wilson_ci", "youden_threshold",
]
