"""Classification at a threshold: confusion counts, Wilson CIs with a design effect, threshold metrics, Youden."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import Problem, UsradError
from .bootstrap import image_weights, percentile_ci, resampling_degenerate
from .checks import LEVEL, check_groups, check_options, check_yp, cluster_codes


def confusion(y, p, threshold: float) -> dict:
    """Confusion-matrix counts ``tp, fp, tn, fn`` with positive iff ``p >= threshold``."""
    y, p = check_yp(y, p, need_both=False)
    pred = p >= threshold
    pos = y == 1
    return {"tp": int(np.sum(pred & pos)), "fp": int(np.sum(pred & ~pos)),
            "tn": int(np.sum(~pred & ~pos)), "fn": int(np.sum(~pred & pos))}


def wilson_ci(successes, n, level: float = LEVEL, deff=None) -> tuple:
    """Wilson score interval (statsmodels ``proportion_confint(method="wilson")``); NaN where ``n == 0``.

    Vectorised over arrays of counts; scalars give a tuple of floats. ``deff`` (design effect, e.g. from
    :func:`design_effect`; values below 1 count as 1) turns it into the interval of a clustered sample:
    the Wilson interval of the same proportion with the effective size ``n / deff`` (Korn & Graubard
    1998, Survey Methodology 24:193, with the effective size truncated at ``n``). ``deff=None``: 1.
    """
    from statsmodels.stats.proportion import proportion_confint

    check_options(level=level)
    k = np.asarray(successes, dtype=float)
    nn = np.asarray(n, dtype=float)
    if deff is not None:  # same proportion, effective size n / max(deff, 1); a NaN deff gives NaN
        prop = k / np.where(nn > 0, nn, 1.0)
        nn = nn / np.maximum(np.asarray(deff, dtype=float), 1.0)
        k = prop * nn
    safe = np.where(nn > 0, nn, 1.0)
    lo, hi = proportion_confint(k, safe, alpha=1 - level, method="wilson")
    lo, hi = np.where(nn > 0, lo, np.nan), np.where(nn > 0, hi, np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def design_effect(hits, groups) -> float:
    """Design effect of a proportion estimated from clustered 0/1 outcomes (e.g. images within patients).

    ``hits``: one 0/1 value per image of the denominator (e.g. "called positive" for every positive
    image, for the sensitivity); ``groups``: their patient IDs. The proportion p = Σk_i / Σn_i is a ratio
    estimator; its cluster-robust variance is I/(I−1)·Σ(k_i − p·n_i)² / n² over the I patients, and the
    design effect is that variance divided by the binomial one, n/(n−1)·p(1−p)/n (each with its own
    small-sample factor, so one image per patient gives exactly 1). When p is 0 or 1 or there is a
    single patient the clustering cannot be estimated and the worst case is used: all images of a patient
    alike, deff = Σn_i²/n (Kish), i.e. an effective size of (Σn_i)²/Σn_i² (the number of patients when
    they have equally many images). NaN for an empty denominator.
    """
    h = np.asarray(hits, dtype=float).ravel()
    g = check_groups(groups, len(h))
    if len(h) == 0:
        return float("nan")
    codes, n_clusters = cluster_codes(g)
    n_i = np.bincount(codes, minlength=n_clusters).astype(float)
    if n_i.max() == 1:
        return 1.0
    n = float(len(h))
    p = float(h.mean())
    if n_clusters < 2 or p in (0.0, 1.0):
        return float(np.sum(n_i ** 2) / n)
    k_i = np.bincount(codes, weights=h, minlength=n_clusters)
    var_cluster = n_clusters / (n_clusters - 1) * np.sum((k_i - p * n_i) ** 2) / n ** 2
    var_binomial = p * (1 - p) / (n - 1)
    return float(var_cluster / var_binomial)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def _proportion_rows(y: np.ndarray, pred: np.ndarray, g: np.ndarray | None, level: float) -> list[tuple]:
    """(metric, estimate, low, high, numerator, denominator, ci_method, deff, n_effective) per proportion."""
    pos = y == 1
    masks = {"sensitivity": (pos, pred), "specificity": (~pos, ~pred), "accuracy": (np.ones_like(pos), pred == pos),
             "ppv": (pred, pos), "npv": (~pred, ~pos)}
    rows = []
    for name, (denominator, hit) in masks.items():
        k, d = int(np.sum(denominator & hit)), int(np.sum(denominator))
        deff = 1.0 if g is None else (design_effect(hit[denominator], g[denominator]) if d else float("nan"))
        lo, hi = wilson_ci(k, d, level, deff=None if g is None else deff)
        method = "wilson" if g is None else "wilson, design effect (patients)"
        rows.append((name, _ratio(k, d), lo, hi, k, d, method, deff, d / max(deff, 1.0) if d else float("nan")))
    return rows


def threshold_metrics(y, p, threshold: float, groups=None, n_boot: int = 2000, seed: int = 0,
                      level: float = LEVEL) -> pd.DataFrame:
    """Sensitivity, specificity, accuracy, PPV, NPV, F1 at ``threshold``, each with a 95% CI.

    Proportions get Wilson score intervals. Without ``groups`` these treat the images as independent.
    With ``groups`` (patient IDs) each gets the design-effect-adjusted Wilson interval
    (:func:`design_effect`, :func:`wilson_ci` with ``deff``): the Wilson interval at the effective
    sample size n / deff, deff from the ratio-estimator (cluster-robust) variance over patients.
    Chosen over a cluster bootstrap because it is deterministic and cheap, and because it keeps the
    Wilson interval's good coverage near 0 and 1 (sensitivities of 0.9+ on a few dozen positive
    patients), where a percentile bootstrap collapses onto the estimate (a resample of an all-positive
    set is all-positive); its coverage with two near-identical views per patient is checked in
    ``tests/test_metrics_clustered.py`` (~95 %, plain Wilson ~84 %). F1 is not a binomial proportion:
    its CI is the percentile bootstrap over the same stratified resamples as :func:`bootstrap_auc`
    (patients when ``groups`` is given). Returns a DataFrame indexed by metric with columns
    ``estimate, low, high, numerator, denominator, ci_method, deff, n_effective`` (deff 1 and
    n_effective = denominator without groups; NaN for F1); the counts are in ``.attrs``
    (``tp, fp, tn, fn``) and also as rows of :func:`confusion`.
    """
    y, p = check_yp(y, p)
    g = check_groups(groups, len(y))
    check_options(level=level, n_boot=n_boot, seed=seed)
    c = confusion(y, p, threshold)
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    pred, pos = p >= threshold, y == 1
    rows = _proportion_rows(y, pred, g, level)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    w = image_weights(y, g, n_boot, seed)
    btp, bfp, bfn = w @ (pred & pos), w @ (pred & ~pos), w @ (~pred & pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        bf1 = np.where(2 * btp + bfp + bfn > 0, 2 * btp / (2 * btp + bfp + bfn), np.nan)
    lo, hi = percentile_ci(bf1, level) if not resampling_degenerate(y, g) else (float("nan"),) * 2
    rows.append(("f1", f1, lo, hi, 2 * tp, 2 * tp + fp + fn, f"bootstrap percentile ({n_boot})", float("nan"),
                 float("nan")))
    out = pd.DataFrame(rows, columns=["metric", "estimate", "low", "high", "numerator", "denominator",
                                      "ci_method", "deff", "n_effective"]).set_index("metric")
    out.attrs.update(c, threshold=float(threshold))
    return out


def youden_threshold(y, p) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity − 1 (positive iff ``p >= t``).

    Candidates are the midpoints between consecutive distinct predicted values (pROC's thresholds
    without ±Inf), so the chosen threshold does not sit on a training prediction. Ties: the lowest
    threshold, i.e. the most sensitive operating point (missing a metastasis costs more than an extra
    axillary work-up). Use on training data only; equals pROC ``coords(roc, "best")`` on aSAH s100b.
    """
    y, p = check_yp(y, p)
    levels = np.unique(p)
    if len(levels) < 2:
        raise UsradError("Cannot choose a threshold", [Problem(
            f"all {len(p)} predicted probabilities are equal ({levels[0]!r})", column="p")])
    cand = (levels[:-1] + levels[1:]) / 2
    # number of cases/controls with p >= cand[i] via counts per level
    _, inv = np.unique(p, return_inverse=True)
    pos_per = np.bincount(inv, weights=y, minlength=len(levels))
    neg_per = np.bincount(inv, weights=1 - y, minlength=len(levels))
    pos_ge = np.cumsum(pos_per[::-1])[::-1][1:]  # p >= cand[i]  <=>  level index >= i + 1
    neg_ge = np.cumsum(neg_per[::-1])[::-1][1:]
    j = pos_ge / pos_per.sum() + (1 - neg_ge / neg_per.sum())
    best = np.flatnonzero(j >= j.max() - 1e-12)
    return float(cand[best[0]])
