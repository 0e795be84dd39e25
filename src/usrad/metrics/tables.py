"""Summary: :func:`performance_table`, one flat row of every headline metric per (model, data set)."""
from __future__ import annotations

import numpy as np

from .calibration import brier_score, calibration_intercept_slope, hosmer_lemeshow
from .checks import LEVEL, check_groups, check_options, check_yp
from .discrimination import bootstrap_auc, delong_ci
from .proportions import threshold_metrics


def performance_table(y, p, threshold: float, groups=None, n_boot: int = 2000, seed: int = 0,
                      level: float = LEVEL, validation: bool = True) -> dict:
    """One flat row of every headline metric (use ``pd.DataFrame([row, ...])`` to build a table).

    Keys: ``n, n_pos, n_patients`` (NaN without groups), ``auc, auc_boot_low, auc_boot_high,
    auc_delong_low, auc_delong_high``; ``threshold, tp, fp, tn, fn``; for each of ``sensitivity,
    specificity, accuracy, ppv, npv, f1``: the estimate and ``_low``/``_high`` (Wilson; F1 bootstrap);
    ``brier, cal_intercept(_low/_high), cal_slope(_low/_high), hl_statistic, hl_df, hl_p``.

    With ``groups`` (patient IDs) every interval is patient-level: the bootstrap (AUC, F1) resamples
    patients, the DeLong CI is the clustered one (Obuchowski 1997), the proportions get
    design-effect-adjusted Wilson intervals and the calibration intercept and slope cluster-robust CIs;
    with one image per patient these equal the image-level ones. ``validation``: the predictions were
    not fitted on these rows (test, external, out-of-fold) — Hosmer–Lemeshow then has df = G; pass
    ``False`` for apparent (training-set) predictions (df = G − 2), see :func:`hosmer_lemeshow`.
    Hosmer–Lemeshow treats images as independent.
    """
    y, p = check_yp(y, p)
    g = check_groups(groups, len(y))
    check_options(level=level, n_boot=n_boot, seed=seed, validation=validation)
    boot = bootstrap_auc(y, p, groups=g, n_boot=n_boot, seed=seed, level=level)
    dl = delong_ci(y, p, level=level, groups=g)
    tm = threshold_metrics(y, p, threshold, groups=g, n_boot=n_boot, seed=seed, level=level)
    cal = calibration_intercept_slope(y, p, level=level, groups=g)
    hl = hosmer_lemeshow(y, p, validation=validation)
    row = {"n": len(y), "n_pos": int(y.sum()),
           "n_patients": float(len(np.unique(g))) if g is not None else float("nan"),
           "auc": boot["auc"], "auc_boot_low": boot["low"], "auc_boot_high": boot["high"],
           "auc_delong_low": dl["low"], "auc_delong_high": dl["high"],
           "threshold": float(threshold), **{k: tm.attrs[k] for k in ("tp", "fp", "tn", "fn")}}
    for metric, r in tm.iterrows():
        row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = r["estimate"], r["low"], r["high"]
    row.update(brier=brier_score(y, p),
               cal_intercept=cal["intercept"], cal_intercept_low=cal["intercept_low"],
               cal_intercept_high=cal["intercept_high"], cal_slope=cal["slope"],
               cal_slope_low=cal["slope_low"], cal_slope_high=cal["slope_high"],
               hl_statistic=hl["statistic"], hl_df=hl["df"], hl_p=hl["p_value"])
    return row
