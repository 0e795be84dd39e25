"""Patient-level statistics keep their promise: coverage of the intervals on simulated clustered data.

Every interval of :mod:`usrad.metrics` that takes ``groups`` is checked here by simulation against a
known truth, with several images per patient (BUS-BRA has 1.76 per patient): the 95 % intervals must
cover the truth in 93–97 % of ≥ 1,000 simulated test sets of 150 patients, and the image-level
version of the same interval must visibly fail (< 92 %) with near-identical views, so that each test
can fail. With 1,000 sets the Monte Carlo SE of a coverage of 95 % is 0.7 %. Hosmer–Lemeshow is
checked by its false-rejection rate on perfectly calibrated samples. ``bench/bench_coverage.py`` runs
the same scenarios (imported from here) with more sets and writes ``bench/results/coverage.tsv``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from usrad import metrics as M

N_SETS = 1000
N_PATIENTS = 150
D_PRIME = 1.0       # separation of the patient-level latent score: true AUC 0.76 (model 2: 0.71)
TWIN_SD = 0.15      # image-level noise around the patient's score: the two views are near twins
MODEL2_SD = 0.8     # extra patient-level noise of the weaker model 2
THRESHOLD = 0.75


def _phi(x):
    return stats.norm.cdf(x)


@dataclass
class TwinSets:
    """``n_sets`` simulated test sets, two views per patient, labels per patient; arrays ``(n_sets, n_images)``."""

    y: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    groups: np.ndarray
    auc1: float
    auc2: float
    sensitivity: float
    specificity: float
    ppv: float
    npv: float


def twin_sets(n_sets: int = N_SETS, n_patients: int = N_PATIENTS, seed: int = 0, twin_sd: float = TWIN_SD,
              d_prime: float = D_PRIME) -> TwinSets:
    """Patient score x = d·y + N(0, 1); view j: x + twin_sd·e_j (model 1), x + 0.8·u + twin_sd·e'_j (model 2).

    (The default d' = 1 gives AUC 0.76. At AUC 0.86 with ~60 positive patients DeLong's Wald interval
    itself covers only ~93 %, with or without clustering — a known small-sample property, reported by
    ``bench/bench_coverage.py``, scenario ``twins-auc-0.86``, not what these tests are about.)

    True image-level AUCs Φ(d / sqrt(2(1 + σ²))); sensitivity/specificity at :data:`THRESHOLD` from the
    normal model, PPV/NPV from them and the expected prevalence. Every set has at least 10 positive and
    10 negative patients (the other patients are positive with probability 0.4).
    """
    rng = np.random.default_rng(seed)
    y_pat = (rng.random((n_sets, n_patients)) < 0.4).astype(int)
    y_pat[:, :10], y_pat[:, 10:20] = 1, 0
    x = d_prime * y_pat + rng.normal(size=(n_sets, n_patients))
    u = MODEL2_SD * rng.normal(size=(n_sets, n_patients))
    def rep(a):
        return np.repeat(a, 2, axis=1)

    s1 = rep(x) + twin_sd * rng.normal(size=(n_sets, 2 * n_patients))
    s2 = rep(x + u) + twin_sd * rng.normal(size=(n_sets, 2 * n_patients))
    v1, v2 = 1 + twin_sd ** 2, 1 + MODEL2_SD ** 2 + twin_sd ** 2
    se, sp = float(_phi((d_prime - THRESHOLD) / np.sqrt(v1))), float(_phi(THRESHOLD / np.sqrt(v1)))
    prev = (10 + 0.4 * (n_patients - 20)) / n_patients
    return TwinSets(y=rep(y_pat), s1=s1, s2=s2, groups=np.repeat(np.arange(n_patients), 2),
                    auc1=float(_phi(d_prime / np.sqrt(2 * v1))), auc2=float(_phi(d_prime / np.sqrt(2 * v2))),
                    sensitivity=se, specificity=sp, ppv=prev * se / (prev * se + (1 - prev) * (1 - sp)),
                    npv=(1 - prev) * sp / ((1 - prev) * sp + prev * (1 - se)))


def mixed_sets(n_sets: int = N_SETS, n_patients: int = N_PATIENTS, seed: int = 0):
    """1–3 images per patient, a label per image (lesion), scores sharing a patient effect r.

    y_ij ~ Bernoulli(expit(r_i − 0.5)), s_ij = 1.2·y_ij + 0.8·r_i + N(0, 1): positive and negative images
    of one patient are correlated, so the cross term S11 of Obuchowski's variance matters. Returns a
    list of (y, s, groups) and the true AUC, computed on 400,000 patients.
    """
    def draw(rng, n_pat):
        sizes = rng.integers(1, 4, n_pat)
        pat = np.repeat(np.arange(n_pat), sizes)
        r = rng.normal(size=n_pat)[pat]
        y = (rng.random(len(pat)) < 1 / (1 + np.exp(-(r - 0.5)))).astype(int)
        return y, 1.2 * y + 0.8 * r + rng.normal(size=len(pat)), pat

    y_big, s_big, _ = draw(np.random.default_rng(10_000 + seed), 400_000)
    truth = M.auc(y_big, s_big)
    rng = np.random.default_rng(seed)
    return [draw(rng, n_patients) for _ in range(n_sets)], truth


def coverage(low, high, truth) -> float:
    low, high = np.asarray(low), np.asarray(high)
    return float(np.mean((low <= truth) & (truth <= high)))


def delong_coverage(sets: TwinSets, grouped: bool) -> dict:
    """Coverage of the DeLong AUC CI (model 1) and of the AUC-difference CI over the simulated sets."""
    auc_lo, auc_hi, d_lo, d_hi = [], [], [], []
    for i in range(sets.y.shape[0]):
        g = sets.groups if grouped else None
        ci = M.delong_ci(sets.y[i], sets.s1[i], groups=g)
        r = M.delong_test(sets.y[i], sets.s1[i], sets.s2[i], groups=g)
        auc_lo.append(ci["low"]), auc_hi.append(ci["high"]), d_lo.append(r["diff_low"]), d_hi.append(r["diff_high"])
    return {"auc": coverage(auc_lo, auc_hi, sets.auc1), "diff": coverage(d_lo, d_hi, sets.auc1 - sets.auc2)}


def proportion_coverage(sets: TwinSets, grouped: bool, metrics=("sensitivity", "specificity")) -> dict:
    """Coverage of the proportion CIs (e.g. sensitivity) of :func:`usrad.metrics.threshold_metrics`."""
    out = {k: [] for k in metrics}
    for i in range(sets.y.shape[0]):
        tm = M.threshold_metrics(sets.y[i], sets.s1[i], THRESHOLD, groups=sets.groups if grouped else None,
                                 n_boot=1)
        for k, limits in out.items():
            limits.append((tm.loc[k, "low"], tm.loc[k, "high"]))
    return {k: coverage(*np.array(v).T, getattr(sets, k)) for k, v in out.items()}


def calibrated_sets(n_sets: int, n: int = 500, seed: int = 0):
    """Perfectly calibrated samples: lp ~ N(-0.5, 1.5), p = expit(lp), y ~ Bernoulli(p); ``(n_sets, n)``."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-0.5, 1.5, size=(n_sets, n))))
    return (rng.random((n_sets, n)) < p).astype(int), p


def hl_rejection_rate(y, p, validation: bool, alpha: float = 0.05) -> float:
    return float(np.mean([M.hosmer_lemeshow(y[i], p[i], validation=validation)["p_value"] < alpha
                          for i in range(len(y))]))


def _batched_logit_fit(x, y, iters=25):
    """Apparent fits: logistic regression of y on x, one per row (vectorised Newton), fitted probabilities."""
    X = np.stack([np.ones_like(x), x], axis=-1)                     # (sets, n, 2)
    beta = np.zeros((x.shape[0], 2))
    for _ in range(iters):
        mu = 1 / (1 + np.exp(-np.einsum("snk,sk->sn", X, beta)))
        grad = np.einsum("snk,sn->sk", X, y - mu)
        hess = np.einsum("snk,snl,sn->skl", X, X, mu * (1 - mu))
        beta += np.linalg.solve(hess, grad[..., None])[..., 0]
    return 1 / (1 + np.exp(-np.einsum("snk,sk->sn", X, beta)))


def calibration_truth_and_sets(n_sets: int = N_SETS, n_patients: int = N_PATIENTS, seed: int = 0):
    """Two views per patient of a miscalibrated model; the truth fitted on 300,000 patients.

    Patient risk lp ~ N(-0.5, 1.2), y ~ Bernoulli(expit(lp)) per patient; view j predicts
    expit((lp − 0.3)/0.8 + 0.15·e_j): slope ≈ 0.8, intercept ≠ 0. Returns (truth dict, y, p, groups).
    """
    def draw(rng, shape):
        lp = rng.normal(-0.5, 1.2, size=shape)
        y = (rng.random(shape) < 1 / (1 + np.exp(-lp))).astype(int)
        view = np.repeat((lp - 0.3) / 0.8, 2, axis=-1) + 0.15 * rng.normal(size=shape[:-1] + (2 * shape[-1],))
        return np.repeat(y, 2, axis=-1), 1 / (1 + np.exp(-view))

    y_big, p_big = draw(np.random.default_rng(20_000 + seed), (300_000,))
    big = M.calibration_intercept_slope(y_big, p_big)
    y, p = draw(np.random.default_rng(seed), (n_sets, n_patients))
    return {"intercept": big["intercept"], "slope": big["slope"]}, y, p, np.repeat(np.arange(n_patients), 2)


def calibration_coverage(truth, y, p, groups, grouped: bool) -> dict:
    lims = {"intercept": [], "slope": []}
    for i in range(len(y)):
        c = M.calibration_intercept_slope(y[i], p[i], groups=groups if grouped else None)
        for k, limits in lims.items():
            limits.append((c[f"{k}_low"], c[f"{k}_high"]))
    return {k: coverage(*np.array(v).T, truth[k]) for k, v in lims.items()}


# ------------------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def twins():
    return twin_sets()


def test_truth_of_the_twin_simulation_matches_a_very_large_sample():
    big = twin_sets(n_sets=1, n_patients=200_000, seed=99)
    y, g = big.y[0], big.groups
    for s, truth in ((big.s1[0], big.auc1), (big.s2[0], big.auc2)):
        ci = M.delong_ci(y, s, groups=g, level=0.999)                 # the big sample's own 99.9 % interval
        assert ci["low"] <= truth <= ci["high"] and ci["high"] - ci["low"] < 0.01, (truth, ci)
    tm = M.threshold_metrics(y, big.s1[0], THRESHOLD, groups=g, n_boot=1, level=0.999)
    for metric in ("sensitivity", "specificity", "ppv", "npv"):
        lo, hi = tm.loc[metric, ["low", "high"]]
        assert lo <= getattr(big, metric) <= hi and hi - lo < 0.02, (metric, getattr(big, metric), lo, hi)


def test_clustered_delong_auc_and_difference_cis_cover_the_truth_with_two_views_per_patient(twins):
    grouped = delong_coverage(twins, grouped=True)
    assert 0.93 <= grouped["auc"] <= 0.97, grouped
    assert 0.93 <= grouped["diff"] <= 0.97, grouped
    plain = delong_coverage(twins, grouped=False)                     # images as independent: overconfident
    assert plain["auc"] < 0.92 and plain["diff"] < 0.92, plain


def test_clustered_delong_covers_the_truth_when_patients_have_positive_and_negative_images():
    sets, truth = mixed_sets()
    lo, hi = zip(*[(c["low"], c["high"]) for c in (M.delong_ci(y, s, groups=g) for y, s, g in sets)])
    assert 0.93 <= coverage(lo, hi, truth) <= 0.97, coverage(lo, hi, truth)


def test_design_effect_wilson_covers_sensitivity_and_specificity_with_two_views_per_patient(twins):
    grouped = proportion_coverage(twins, grouped=True)
    assert all(0.93 <= v <= 0.97 for v in grouped.values()), grouped
    plain = proportion_coverage(twins, grouped=False)
    assert all(v < 0.92 for v in plain.values()), plain


def test_hosmer_lemeshow_rejects_5_percent_of_calibrated_validation_samples_with_g_degrees_of_freedom():
    y, p = calibrated_sets(1000, seed=1)
    assert 0.03 <= hl_rejection_rate(y, p, validation=True) <= 0.075
    assert hl_rejection_rate(y, p, validation=False) > 0.09         # g - 2 on validation data: the audit's 11.7 %


def test_hosmer_lemeshow_with_g_minus_2_is_right_for_apparent_predictions():
    y, p = calibrated_sets(1000, seed=2)
    fitted = _batched_logit_fit(np.log(p / (1 - p)), y)               # refitted on the same rows
    assert 0.03 <= hl_rejection_rate(y, fitted, validation=False) <= 0.075
    assert hl_rejection_rate(y, fitted, validation=True) < 0.03       # df = g would be too lenient here


def test_cluster_robust_calibration_intercept_and_slope_cis_cover_the_truth():
    truth, y, p, groups = calibration_truth_and_sets()
    assert truth["slope"] == pytest.approx(0.78, abs=0.03) and abs(truth["intercept"]) > 0.1
    grouped = calibration_coverage(truth, y, p, groups, grouped=True)
    assert all(0.93 <= v <= 0.97 for v in grouped.values()), grouped
    plain = calibration_coverage(truth, y, p, groups, grouped=False)
    assert all(v < 0.92 for v in plain.values()), plain


def calibrated_twin_sets(n_sets: int, n_patients: int = N_PATIENTS, seed: int = 3):
    """Two identical views per patient of a perfectly calibrated model (the truth is the diagonal)."""
    rng = np.random.default_rng(seed)
    lp = rng.normal(-0.5, 1.2, size=(n_sets, n_patients))
    y_pat = (rng.random(lp.shape) < 1 / (1 + np.exp(-lp))).astype(int)
    return np.repeat(y_pat, 2, axis=1), np.repeat(1 / (1 + np.exp(-lp)), 2, axis=1), np.repeat(np.arange(n_patients), 2)


def band_coverage(y, p, groups, grid, n_boot: int = 100) -> np.ndarray:
    """Pointwise coverage of the diagonal by :func:`usrad.metrics.smoothed_calibration` at ``grid``."""
    bands = [M.smoothed_calibration(y[i], p[i], groups=groups, n_boot=n_boot, seed=i, grid=grid) for i in range(len(y))]
    lo, hi = np.array([b["lower"] for b in bands]), np.array([b["upper"] for b in bands])
    return ((lo <= grid) & (grid <= hi)).mean(axis=0)


def test_smoothed_calibration_band_covers_the_true_curve_only_when_resampling_patients():
    y, p, groups = calibrated_twin_sets(250)
    grid = np.array([0.1, 0.3, 0.5, 0.7])
    by_patient = band_coverage(y, p, groups, grid)
    assert 0.93 <= by_patient.mean() <= 0.975 and by_patient.min() >= 0.9, by_patient
    by_image = band_coverage(y, p, None, grid)                        # twins counted twice: too narrow
    assert by_image.mean() < 0.88, by_image
