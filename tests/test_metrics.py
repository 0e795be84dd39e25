"""Metrics reproduce mature tools' published values (../shared/data/reference-stats) and known truths.

References: R pROC (AUC, DeLong, roc.test, coords), R/Python dcurves, pingouin ICC, easystats
performance_hosmer / ResourceSelection hoslem.test, Newcombe (1998) Wilson intervals.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.metrics import roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from usrad import metrics as M
from usrad.metrics import bootstrap as MB
from usrad.metrics import discrimination as MD
from usrad.errors import UsradError

REF = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-stats"


@pytest.fixture(scope="module")
def ref():
    if not (REF / "aSAH.csv").exists():
        pytest.skip(f"reference statistics not found at {REF} (expected ../shared/data/reference-stats)")
    return REF


@pytest.fixture(scope="module")
def asah(ref):
    d = pd.read_csv(ref / "aSAH.csv")
    d["y"] = (d["outcome"] == "Poor").astype(int)  # pROC: levels (Good, Poor) -> case = Poor
    return d


@pytest.fixture(scope="module")
def df_binary(ref):
    d = pd.read_csv(ref / "dcurves_df_binary.csv")
    d["cancer"] = d["cancer"].astype(bool)
    return d


def _binormal(n, d_prime, prevalence, seed):
    """Scores N(d', 1) for cases and N(0, 1) for controls: true AUC = Phi(d'/sqrt 2)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    y[:2] = [0, 1]
    return y, rng.normal(size=n) + d_prime * y


# ------------------------------------------------------------------------------------------ pROC
def test_auc_equals_pROC_published_values(asah):
    assert M.auc(asah.y, asah.wfns) == pytest.approx(0.823678861788618, abs=1e-12)
    assert M.auc(asah.y, asah.ndka) == pytest.approx(0.611957994579946, abs=1e-12)
    assert M.auc(asah.y, asah.s100b) == pytest.approx(0.731368563685637, abs=1e-12)


def test_delong_variance_and_covariance_equal_pROC(asah):
    aucs, cov = M.delong_auc_cov(asah.y, [asah.wfns, asah.ndka, asah.s100b])
    expected = np.array([
        [0.00146991470882363, -0.000532967856762438, 0.00119615567376754],
        [-0.000532967856762438, 0.0031908105493913, -0.000756164938056579],
        [0.00119615567376754, -0.000756164938056579, 0.00266868245717244],
    ])
    np.testing.assert_allclose(cov, expected, rtol=1e-10, atol=0)
    np.testing.assert_allclose(aucs, [0.823678861788618, 0.611957994579946, 0.731368563685637], atol=1e-12)


def test_delong_ci_equals_pROC_ci_auc(asah):
    ci = M.delong_ci(asah.y, asah.ndka)
    assert (ci["low"], ci["auc"], ci["high"]) == pytest.approx(
        (0.501244999271703, 0.611957994579946, 0.722670989888189), abs=1e-9)
    female = asah[asah.gender == "Female"]
    ci = M.delong_ci(female.y, female.ndka)
    assert (ci["low"], ci["auc"], ci["high"]) == pytest.approx((0.5261398281, 0.6671428571, 0.8081458862), abs=1e-9)
    ci = M.delong_ci(asah.y, asah.s100b)  # printed by pROC as "95% CI: 0.6301-0.8326 (DeLong)"
    assert (round(ci["low"], 4), round(ci["high"], 4)) == (0.6301, 0.8326)


@pytest.mark.parametrize("a, b, z, p, low, high", [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, 0.0104061769564846, 0.174214419249478),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, 0.0634011709339876, 0.3600405634833566),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054, -0.2876917446341914, 0.0488706064228094),
])
def test_delong_paired_test_equals_pROC_roc_test(asah, a, b, z, p, low, high):
    r = M.delong_test(asah.y, asah[a], asah[b])
    assert r["z"] == pytest.approx(z, abs=1e-9)
    assert r["p_value"] == pytest.approx(p, abs=1e-9)
    assert (r["low"], r["high"]) == pytest.approx((low, high), abs=1e-9)
    assert r["diff"] == pytest.approx(M.auc(asah.y, asah[a]) - M.auc(asah.y, asah[b]), abs=1e-14)
    rev = M.delong_test(asah.y, asah[b], asah[a])
    assert rev["z"] == pytest.approx(-z, abs=1e-9) and rev["p_value"] == pytest.approx(p, abs=1e-9)
    assert (rev["low"], rev["high"]) == pytest.approx((-high, -low), abs=1e-9)


def test_delong_one_sided_p_values_equal_pROC(asah):
    greater = M.delong_test(asah.y, asah.wfns, asah.s100b, alternative="greater")
    less = M.delong_test(asah.y, asah.wfns, asah.s100b, alternative="less")
    assert greater["p_value"] == pytest.approx(0.0135878911145941, abs=1e-9)
    assert less["p_value"] == pytest.approx(0.986412108885406, abs=1e-9)


def test_delong_test_refuses_an_unknown_alternative():
    with pytest.raises(UsradError, match="alternative must be 'two-sided', 'greater' or 'less', got 'bigger'"):
        M.delong_test([0, 1, 0, 1], [0.1, 0.4, 0.35, 0.8], [0.2, 0.3, 0.1, 0.5], alternative="bigger")


def test_delong_test_of_a_model_against_itself_gives_z0_p1(asah):
    r = M.delong_test(asah.y, asah.wfns, asah.wfns)
    assert (r["z"], r["p_value"], r["diff"]) == (0.0, 1.0, 0.0)


def test_youden_threshold_and_metrics_equal_pROC_best_coords_s100b(asah, ref):
    t = M.youden_threshold(asah.y, asah.s100b)
    assert t == pytest.approx(0.205, abs=1e-12)
    coords = pd.read_csv(ref / "expected_pROC_coords_s100b.csv")
    best = coords.iloc[17]  # R row 18, pROC's "best"
    assert best["threshold"] == pytest.approx(0.205) and best["youden"] == coords["youden"].max()
    tm = M.threshold_metrics(asah.y, asah.s100b, t, n_boot=200)
    for ours, theirs in [("sensitivity", "sensitivity"), ("specificity", "specificity"),
                         ("accuracy", "accuracy"), ("ppv", "ppv"), ("npv", "npv")]:
        assert tm.loc[ours, "estimate"] == pytest.approx(best[theirs], abs=1e-12), ours
    assert [tm.attrs[k] for k in ("tp", "fp", "tn", "fn")] == [26, 14, 58, 15]
    assert [best[k] for k in ("tp", "fp", "tn", "fn")] == [26, 14, 58, 15]


def test_confusion_counts_equal_pROC_coords_at_every_threshold(asah, ref):
    coords = pd.read_csv(ref / "expected_pROC_coords_s100b.csv")
    coords = coords[np.isfinite(coords.threshold)]
    assert len(coords) == 49
    for _, row in coords.iterrows():
        c = M.confusion(asah.y, asah.s100b, row.threshold)
        assert [c[k] for k in ("tp", "fp", "tn", "fn")] == list(
            np.round([row.tp, row.fp, row.tn, row.fn])), row.threshold  # pROC stores counts as se*n (floats)


def test_roc_curve_equals_pROC_coords_and_its_area_is_the_auc(asah, ref):
    """The empirical curve is pROC's (every threshold, from (0, 0) to (1, 1)); the trapezoid area under it
    is the Mann–Whitney AUC (ties count one half), whose U test is scipy's."""
    coords = pd.read_csv(ref / "expected_pROC_coords_s100b.csv").sort_values(["fpr", "tpr"], kind="mergesort")
    curve = M.roc_curve(asah.y, asah.s100b)
    assert len(curve) == asah.s100b.nunique() + 1 == len(coords)
    np.testing.assert_allclose(curve["fpr"], coords["fpr"], atol=1e-12)
    np.testing.assert_allclose(curve["tpr"], coords["tpr"], atol=1e-12)
    assert np.trapezoid(curve["tpr"], curve["fpr"]) == pytest.approx(M.auc(asah.y, asah.s100b), abs=1e-12)
    pos, neg = asah.s100b[asah.y == 1], asah.s100b[asah.y == 0]
    assert M.mann_whitney_p(pos, neg) == pytest.approx(stats.mannwhitneyu(pos, neg).pvalue, rel=1e-12)
    assert np.isnan(M.mann_whitney_p(pos, []))


def test_youden_prefers_the_most_sensitive_of_tied_thresholds():
    # thresholds 1.5 (se 1, sp 0.5) and 3.5 (se 0.5, sp 1) tie at J = 0.5; 2.5 gives se .5 sp .5
    y = np.array([0, 1, 0, 1])
    p = np.array([1.0, 2.0, 3.0, 4.0])
    assert M.youden_threshold(y, p) == 1.5
    with pytest.raises(UsradError, match="all 4 predicted probabilities are equal"):
        M.youden_threshold(y, np.full(4, 0.3))


# ------------------------------------------------------------------------------------------ bootstrap
def test_bootstrap_ci_contains_auc_and_narrows_as_n_grows():
    true_auc = stats.norm.cdf(1.0 / np.sqrt(2))  # d' = 1 -> 0.760
    widths = {}
    for n in (100, 1000):
        y, p = _binormal(n, 1.0, 0.35, seed=n)
        b = M.bootstrap_auc(y, p, n_boot=2000, seed=0)
        assert b["low"] < b["auc"] < b["high"]
        assert b["low"] < true_auc < b["high"]
        widths[n] = b["high"] - b["low"]
    # the CI width scales ~ 1/sqrt(n): a factor ~3.2 here
    assert widths[1000] < 0.5 * widths[100]
    assert 0.03 < widths[1000] < 0.09


def test_permuted_labels_give_auc_near_one_half():
    y, p = _binormal(4000, 1.5, 0.35, seed=7)
    assert M.auc(y, p) > 0.8
    y_perm = np.random.default_rng(8).permutation(y)
    b = M.bootstrap_auc(y_perm, p, n_boot=500, seed=1)
    assert abs(b["auc"] - 0.5) < 0.03
    assert b["low"] < 0.5 < b["high"]


def _loop_reference(y, p, groups, n_boot, seed):
    """Slow reference: rebuild each resampled data set from the same draws and call sklearn."""
    unit_of_image, stratum = MB.bootstrap_units(y, groups)
    draws = MB.draw_units(stratum, n_boot, seed)
    images_of_unit = [np.flatnonzero(unit_of_image == u) for u in range(len(stratum))]
    out = []
    for row in draws:
        idx = np.concatenate([images_of_unit[u] for u in row])
        out.append(roc_auc_score(y[idx], p[idx]))
    return draws, np.array(out)


@pytest.mark.parametrize("grouped", [False, True])
def test_vectorised_bootstrap_equals_a_loop_over_the_same_resamples(grouped, monkeypatch):
    rng = np.random.default_rng(3)
    n_pat = 40
    pat = np.repeat(np.arange(n_pat), rng.integers(1, 4, n_pat))  # 1-3 images per patient
    y = (rng.random(n_pat) < 0.4).astype(int)[pat]
    p = np.round(rng.random(len(pat)) + 0.4 * y, 1)                  # rounded: many ties
    groups = np.array([f"P{i:03d}" for i in pat]) if grouped else None
    draws, slow = _loop_reference(y, p, groups, n_boot=60, seed=11)
    unit_of_image, stratum = MB.bootstrap_units(y, groups)
    fast = MD.weighted_auc(y, p, MB.unit_counts(draws, len(stratum))[:, unit_of_image])
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    monkeypatch.setattr(MD, "BLOCK_CELLS", 7 * len(np.unique(p)))  # memory blocks of 7 resamples: same values
    w = MB.unit_counts(draws, len(stratum))[:, unit_of_image]
    np.testing.assert_array_equal(MD.weighted_auc(y, p, w), fast)
    b = M.bootstrap_auc(y, p, groups=groups, n_boot=60, seed=11)  # the public function uses the same draws
    assert (b["low"], b["high"]) == pytest.approx(tuple(np.quantile(slow, [0.025, 0.975])), abs=1e-12)


def test_patient_bootstrap_is_not_fooled_by_duplicated_images():
    y, p = _binormal(300, 1.0, 0.4, seed=5)
    one = M.bootstrap_auc(y, p, n_boot=2000, seed=2)
    # every patient imaged twice with the same score: no new information
    y2, p2, g2 = np.repeat(y, 2), np.repeat(p, 2), np.repeat([f"P{i}" for i in range(300)], 2)
    naive = M.bootstrap_auc(y2, p2, n_boot=2000, seed=2)
    by_patient = M.bootstrap_auc(y2, p2, groups=g2, n_boot=2000, seed=2)
    w_one, w_naive, w_pat = (b["high"] - b["low"] for b in (one, naive, by_patient))
    assert by_patient["auc"] == pytest.approx(one["auc"], abs=1e-14)
    assert w_pat == pytest.approx(w_one, rel=0.1)         # the honest width
    assert w_naive < 0.8 * w_one                           # image-level resampling is overconfident (~1/sqrt 2)


def test_bootstrap_agrees_with_scipy_bootstrap_within_monte_carlo_error():
    y, p = _binormal(400, 0.8, 0.3, seed=9)

    def auc_two_samples(cases, controls, axis=-1):
        r = stats.rankdata(np.concatenate([cases, controls], axis=axis), axis=axis)
        m, n = cases.shape[axis], controls.shape[axis]
        return (r[..., :m].sum(axis=-1) - m * (m + 1) / 2) / (m * n)

    ref = stats.bootstrap((p[y == 1], p[y == 0]), auc_two_samples, n_resamples=2000, method="percentile",
                          vectorized=True, random_state=np.random.default_rng(0))
    ours = M.bootstrap_auc(y, p, n_boot=2000, seed=0)
    assert ours["low"] == pytest.approx(ref.confidence_interval.low, abs=0.012)
    assert ours["high"] == pytest.approx(ref.confidence_interval.high, abs=0.012)


def test_bootstrap_is_reproducible_by_seed():
    y, p = _binormal(200, 1.0, 0.3, seed=1)
    assert M.bootstrap_auc(y, p, seed=4) == M.bootstrap_auc(y, p, seed=4)
    assert M.bootstrap_auc(y, p, seed=4)["low"] != M.bootstrap_auc(y, p, seed=5)["low"]


# ------------------------------------------------------------------------------------------ threshold metrics
def test_wilson_ci_equals_statsmodels_and_newcombe_1998():
    k = np.array([81, 15, 0, 1, 29, 7])
    n = np.array([263, 148, 20, 29, 29, 10])
    lo, hi = M.wilson_ci(k, n)
    ref_lo, ref_hi = proportion_confint(k, n, method="wilson")
    np.testing.assert_allclose(lo, ref_lo, atol=1e-14)
    np.testing.assert_allclose(hi, ref_hi, atol=1e-14)
    # Newcombe (1998) Stat Med 17:857, Table I, method 3 (Wilson score)
    np.testing.assert_allclose(np.round(lo[:4], 4), [0.2553, 0.0624, 0.0, 0.0061])
    np.testing.assert_allclose(np.round(hi[:4], 4), [0.3662, 0.1605, 0.1611, 0.1718])
    assert all(np.isnan(M.wilson_ci(0, 0)))


def test_threshold_metrics_use_the_right_numerators_and_denominators():
    #          TP  TP  TP  FN  FP  TN  TN  TN  TN  TN  (positive iff p >= 0.5)
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([.9, .8, .5, .2, .7, .49, .3, .2, .1, .1])
    tm = M.threshold_metrics(y, p, 0.5, n_boot=500, seed=0)
    assert tm.attrs["tp"] == 3 and tm.attrs["fn"] == 1 and tm.attrs["fp"] == 1 and tm.attrs["tn"] == 5
    expected = {"sensitivity": (3, 4), "specificity": (5, 6), "accuracy": (8, 10), "ppv": (3, 4), "npv": (5, 6)}
    for metric, (k, d) in expected.items():
        assert tm.loc[metric, "estimate"] == pytest.approx(k / d)
        lo, hi = proportion_confint(k, d, method="wilson")
        assert (tm.loc[metric, "low"], tm.loc[metric, "high"]) == pytest.approx((lo, hi), abs=1e-14), metric
    assert tm.loc["f1", "estimate"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert tm.loc["f1", "low"] < tm.loc["f1", "estimate"] < tm.loc["f1", "high"]


def test_f1_bootstrap_interval_narrows_with_n_and_covers_truth():
    widths = []
    for n in (200, 2000):
        y, p = _binormal(n, 1.5, 0.4, seed=n)
        tm = M.threshold_metrics(y, p, 0.75, n_boot=1000, seed=0)
        f1 = tm.loc["f1"]
        assert f1["low"] < f1["estimate"] < f1["high"]
        widths.append(f1["high"] - f1["low"])
    assert widths[1] < 0.5 * widths[0]


# ------------------------------------------------------------------------------------------ calibration
def _calibrated(n, seed, scale=1.0, shift=0.0):
    """Outcomes drawn from expit(lp); predictions expit(scale * lp + shift)."""
    rng = np.random.default_rng(seed)
    lp = rng.normal(-0.5, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int)
    return y, 1 / (1 + np.exp(-(scale * lp + shift)))


def test_calibration_slope_one_and_intercept_zero_when_perfectly_calibrated():
    y, p = _calibrated(20000, seed=1)
    c = M.calibration_intercept_slope(y, p)
    assert c["slope"] == pytest.approx(1.0, abs=0.06)
    assert c["intercept"] == pytest.approx(0.0, abs=0.05)
    assert c["slope_low"] < 1.0 < c["slope_high"]
    assert c["intercept_low"] < 0.0 < c["intercept_high"]
    assert M.hosmer_lemeshow(y, p)["p_value"] > 0.05


def test_calibration_detects_overfitted_and_shifted_predictions():
    y, p = _calibrated(20000, seed=2, scale=2.0)       # too extreme: slope should be ~1/2
    assert M.calibration_intercept_slope(y, p)["slope"] == pytest.approx(0.5, abs=0.04)
    assert M.hosmer_lemeshow(y, p)["p_value"] < 1e-6
    y, p = _calibrated(20000, seed=3, shift=1.0)       # systematic over-prediction: intercept ~ -1
    c = M.calibration_intercept_slope(y, p)
    assert c["intercept"] == pytest.approx(-1.0, abs=0.07)
    assert c["slope"] == pytest.approx(1.0, abs=0.06)


def test_hosmer_lemeshow_equals_performance_hosmer_on_mtcars(ref):
    mt = pd.read_csv(ref / "mtcars.csv")
    fit = sm.Logit(mt.vs, sm.add_constant(mt[["wt", "mpg"]])).fit(disp=0)
    np.testing.assert_allclose(fit.params, [-12.5412, 0.58286, 0.52406], atol=1e-4)
    hl = M.hosmer_lemeshow(mt.vs, fit.predict(), validation=False)  # apparent: fitted on these rows
    assert round(hl["statistic"], 3) == 5.137 and hl["df"] == 8 and round(hl["p_value"], 3) == 0.743
    assert hl["table"]["n"].sum() == 32 and len(hl["table"]) == 10
    # secondary reference: ResourceSelection::hoslem.test(am ~ wt + hp, g = 6)
    fit = sm.Logit(mt.am, sm.add_constant(mt[["wt", "hp"]])).fit(disp=0)
    hl = M.hosmer_lemeshow(mt.am, fit.predict(), g=6, validation=False)
    assert round(hl["statistic"], 4) == 2.3502 and hl["df"] == 4 and round(hl["p_value"], 4) == 0.6717


def test_hosmer_lemeshow_drops_duplicate_breaks_like_resourceselection():
    # 4 distinct predictions x 50: type-7 deciles collapse to breaks 0.1, 0.3, 0.4, 0.5, 0.7 (right-closed)
    p = np.repeat([0.1, 0.3, 0.5, 0.7], 50)
    y = np.concatenate([np.r_[np.ones(10), np.zeros(40)], np.r_[np.ones(10), np.zeros(40)],
                        np.r_[np.ones(30), np.zeros(20)], np.r_[np.ones(30), np.zeros(20)]])
    hl = M.hosmer_lemeshow(y, p, validation=False)  # ResourceSelection's df = G - 2
    assert list(hl["table"]["n"]) == [100, 50, 50] and hl["df"] == 1
    o1, e1, n = np.array([20, 30, 30]), np.array([20.0, 25.0, 35.0]), np.array([100, 50, 50])
    chi2 = np.sum((o1 - e1) ** 2 / e1 + (o1 - e1) ** 2 / (n - e1))
    assert hl["statistic"] == pytest.approx(chi2, abs=1e-12)
    assert hl["p_value"] == pytest.approx(stats.chi2.sf(chi2, 1), abs=1e-12)


def test_reliability_curve_uses_quantile_bins_and_tracks_observed_risk():
    y, p = _calibrated(5000, seed=4)
    rc = M.reliability_curve(y, p, n_bins=10)
    assert len(rc) == 10 and rc["n"].sum() == 5000 and rc["n"].between(499, 501).all()
    assert rc["mean_predicted"].is_monotonic_increasing
    inside = (rc.observed_low <= rc.mean_predicted) & (rc.mean_predicted <= rc.observed_high)
    assert inside.sum() >= 8  # 95% Wilson intervals of a calibrated model
    y, p = _calibrated(5000, seed=4, shift=1.5)
    rc = M.reliability_curve(y, p, n_bins=10)
    assert (rc.mean_predicted > rc.observed_high).sum() >= 8


def test_brier_score_known_values():
    assert M.brier_score([0, 1, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.25
    assert M.brier_score([0, 1], [0.1, 0.7]) == pytest.approx((0.01 + 0.09) / 2)


# ------------------------------------------------------------------------------------------ decision curves
def _nb(table, model, t):
    return table.loc[(table.model == model) & np.isclose(table.threshold, t), "net_benefit"].item()


def test_decision_curve_equals_R_dcurves_test_values(df_binary, ref):
    d = M.decision_curve(df_binary.cancer, {"cancerpredmarker": df_binary.cancerpredmarker}, thresholds=[0.25])
    assert [_nb(d, m, 0.25) for m in ("all", "none", "cancerpredmarker")] == pytest.approx(
        [-0.1466667, 0, 0.0640000], abs=1e-6)
    nia = d.set_index("model")["net_intervention_avoided"]
    assert [nia["all"], nia["none"], nia["cancerpredmarker"]] == pytest.approx([0.0, 0.44, 0.632], abs=1e-9)
    # a 0/1 predictor at threshold 0: the 0s count as negatives (dcurves' eps convention)
    d = M.decision_curve(df_binary.cancer, {"famhistory": df_binary.famhistory}, thresholds=[0.0])
    assert [_nb(d, m, 0.0) for m in ("all", "none", "famhistory")] == pytest.approx([0.14, 0, 0.032], abs=1e-12)
    cc = pd.read_csv(ref / "dcurves_df_case_control.csv")
    d = M.decision_curve(cc.casecontrol, {"m": cc.cancerpredmarker}, thresholds=[0.25], prevalence=0.15)
    assert [_nb(d, m, 0.25) for m in ("all", "none", "m")] == pytest.approx(
        [-0.13333333, 0, 0.01495671], abs=1e-8)


def test_decision_curve_full_table_equals_R_famhistory(df_binary, ref):
    expected = pd.read_csv(ref / "expected_dcurves_famhistory_R.csv")
    d = M.decision_curve(df_binary.cancer, {"famhistory": df_binary.famhistory})
    assert len(d) == len(expected) == 300
    merged = expected.assign(threshold=expected.threshold.round(2)).merge(
        d.assign(threshold=d.threshold.round(2)), left_on=["variable", "threshold"],
        right_on=["model", "threshold"], suffixes=("_R", ""))
    assert len(merged) == 300
    np.testing.assert_allclose(merged.net_benefit, merged.net_benefit_R, atol=1e-12)
    finite = np.isfinite(merged.net_intervention_avoided_R)
    np.testing.assert_allclose(merged.net_intervention_avoided[finite], merged.net_intervention_avoided_R[finite],
                               atol=1e-9)


@pytest.mark.parametrize("csv, predictor, harm", [
    ("expected_dcurves_marker_asprob_harm_R.csv", "marker", 0.0333),
    ("expected_dcurves_age_R.csv", "age", 0.0),
])
def test_decision_curve_of_a_converted_predictor_with_harm_equals_R(df_binary, ref, csv, predictor, harm):
    expected = pd.read_csv(ref / csv)
    fit = sm.Logit(df_binary.cancer.astype(int), sm.add_constant(df_binary[[predictor]])).fit(disp=0)
    thresholds = sorted(expected.threshold.round(2).unique())
    d = M.decision_curve(df_binary.cancer, {predictor: fit.predict()}, thresholds=thresholds,
                         harm={predictor: harm})
    merged = expected.assign(threshold=expected.threshold.round(2)).merge(
        d.assign(threshold=d.threshold.round(2)), left_on=["variable", "threshold"],
        right_on=["model", "threshold"], suffixes=("_R", ""))
    assert len(merged) == len(expected) and set(merged.model) == {"all", "none", predictor}
    np.testing.assert_allclose(merged.net_benefit, merged.net_benefit_R, atol=1e-9)


def test_treat_all_net_benefit_is_prevalence_minus_weighted_false_positives():
    y, p = _calibrated(500, seed=6)
    d = M.decision_curve(y, p)
    prev = y.mean()
    allrows = d[d.model == "all"]
    pt = allrows.threshold.to_numpy()
    np.testing.assert_allclose(allrows.net_benefit, prev - (1 - prev) * pt / (1 - pt), atol=1e-12)
    assert (d.loc[d.model == "none", "net_benefit"].abs() < 1e-12).all()
    # a calibrated model beats both defaults somewhere in the clinically relevant range
    model = d[d.model == "model"].net_benefit.to_numpy()
    assert (model[10:50] > np.maximum(allrows.net_benefit.to_numpy()[10:50], 0)).all()


# ------------------------------------------------------------------------------------------ ICC
FORMS = ["ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k"]


def _pingouin_all(readings, feature):
    long = pd.concat([r[[feature]].rename(columns={feature: "x"}).assign(rater=j, target=r.index)
                      for j, r in enumerate(readings)], ignore_index=True)
    out = pg.intraclass_corr(long, targets="target", raters="rater", ratings="x", nan_policy="omit")
    return dict(zip(FORMS, out["ICC"]))


def _readings_from_wide(wide):
    return [wide[[c]].rename(columns={c: "score"}) for c in wide.columns]


def test_icc_equals_pingouin_reference_values(ref):
    wine = pd.read_csv(ref / "pingouin_icc.csv").pivot(index="Wine", columns="Judge", values="Scores")
    sf = pd.read_csv(ref / "shrout_fleiss_wide.csv").set_index("S")
    published = {  # pingouin tests / docstring (2 dp), validated there against R psych::ICC
        "wine": [0.73, 0.73, 0.73, 0.91, 0.91, 0.92],
        "sf": [0.17, 0.29, 0.71, 0.44, 0.62, 0.91],
    }
    for name, wide in (("wine", wine), ("sf", sf)):
        readings = _readings_from_wide(wide)
        ours = [M.icc_per_feature(*readings, form=f)["score"] for f in FORMS]
        assert list(np.round(ours, 2)) == published[name]
        theirs = _pingouin_all(readings, "score")
        np.testing.assert_allclose(ours, [theirs[f] for f in FORMS], atol=1e-10, rtol=0)
    readings = _readings_from_wide(sf)
    assert M.icc_per_feature(*readings)["score"] == pytest.approx(0.2898, abs=1e-4)  # default = ICC(A,1)


@pytest.mark.parametrize("k", [2, 3])
def test_vectorised_icc_equals_pingouin_on_random_features(k):
    rng = np.random.default_rng(k)
    n, f = 25, 6
    truth = rng.normal(size=(n, f)) * rng.uniform(0.1, 1000, f)                     # wildly different scales
    noise = rng.uniform(0.05, 2, f) * truth.std(axis=0)
    bias = rng.normal(size=(k, 1, f)) * noise
    readings = [pd.DataFrame(truth + bias[j] + rng.normal(size=(n, f)) * noise,
                             index=[f"L{i}" for i in range(n)], columns=[f"feat{c}" for c in range(f)])
                for j in range(k)]
    readings[1].iloc[[3, 7], [0, 2]] = np.nan                                        # omitted per feature
    readings[-1] = readings[-1].iloc[::-1]                                           # row order irrelevant
    for form in FORMS:
        ours = M.icc_per_feature(*readings, form=form)
        theirs = [_pingouin_all(readings, c)[form] for c in readings[0].columns]
        np.testing.assert_allclose(ours.to_numpy(), theirs, atol=1e-10, rtol=0, err_msg=form)


def test_icc_separates_reproducible_from_irreproducible_features():
    rng = np.random.default_rng(0)
    n = 200
    truth = rng.normal(size=n)
    r1 = pd.DataFrame({"stable": truth + 0.1 * rng.normal(size=n), "noisy": rng.normal(size=n),
                       "biased": truth, "constant": 1.0})
    r2 = pd.DataFrame({"stable": truth + 0.1 * rng.normal(size=n), "noisy": rng.normal(size=n),
                       "biased": truth + 2.0, "constant": 1.0})
    icc2 = M.icc_per_feature(r1, r2)
    icc3 = M.icc_per_feature(r1, r2, form="ICC(C,1)")
    assert icc2["stable"] > 0.97 and abs(icc2["noisy"]) < 0.15
    # a reader offset destroys absolute agreement (default ICC2) but not consistency (ICC3)
    assert icc3["biased"] == pytest.approx(1.0) and icc2["biased"] < 0.4
    assert np.isnan(icc2["constant"])


def test_icc_with_mismatched_lesions_names_the_lesion_and_feature():
    r1 = pd.DataFrame({"a": [1.0, 2, 3], "b": [1.0, 2, 3]}, index=["P1", "P2", "P3"])
    r2 = pd.DataFrame({"a": [1.0, 2, 3]}, index=["P1", "P2", "P9"])
    with pytest.raises(UsradError) as err:
        M.icc_per_feature(r1, r2)
    msg = str(err.value)
    assert "patient 'P3'" in msg and "patient 'P9'" in msg and "column 'b'" in msg
    with pytest.raises(UsradError, match="unknown ICC form"):
        M.icc_per_feature(r1, r1, form="ICC4")


# ------------------------------------------------------------------------------------------ summary row
def test_performance_table_row_agrees_with_the_component_functions():
    y, p = _calibrated(600, seed=10)
    groups = np.repeat([f"P{i}" for i in range(300)], 2)
    row = M.performance_table(y, p, threshold=0.4, groups=groups, n_boot=500, seed=3)
    boot = M.bootstrap_auc(y, p, groups=groups, n_boot=500, seed=3)
    tm = M.threshold_metrics(y, p, 0.4, groups=groups, n_boot=500, seed=3)
    assert row["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert (row["auc_boot_low"], row["auc_boot_high"]) == (boot["low"], boot["high"])
    dl = M.delong_ci(y, p, groups=groups)  # patient-level (clustered) DeLong
    assert (row["auc_delong_low"], row["auc_delong_high"]) == pytest.approx((dl["low"], dl["high"]))
    for metric in ("sensitivity", "specificity", "accuracy", "ppv", "npv", "f1"):
        assert (row[metric], row[f"{metric}_low"], row[f"{metric}_high"]) == tuple(
            tm.loc[metric, ["estimate", "low", "high"]]), metric
    assert row["tp"] + row["fn"] == y.sum() and row["n"] == 600 and row["n_patients"] == 300
    assert row["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert row["cal_slope"] == pytest.approx(M.calibration_intercept_slope(y, p)["slope"])
    assert row["hl_df"] == 10 and 0 <= row["hl_p"] <= 1  # validation data: df = g
    assert all(np.isfinite(v) for v in row.values())
    assert M.performance_table(y, p, 0.4, groups=groups, n_boot=500, seed=3) == row  # deterministic


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("y, p, message", [
    ([0, 1, 2], [0.1, 0.2, 0.3], "outcome must be 0/1"),
    (["no", "yes", "no"], [0.1, 0.2, 0.3], "outcome must be 0/1"),
    ([0, 1, 0], [0.1, np.nan, 0.3], "NaN or infinite"),
    ([1, 1, 1], [0.1, 0.2, 0.3], "single class"),
    ([0, 1, 0], [0.1, 0.2], "outcome has 3 values but predictions have 2"),
])
def test_bad_inputs_raise_usrad_error_naming_the_argument(y, p, message):
    for fn in (M.auc, M.delong_ci, lambda a, b: M.performance_table(a, b, 0.5, n_boot=10)):
        with pytest.raises(UsradError, match=message):
            fn(y, p)
    with pytest.raises(UsradError, match="one patient ID per prediction"):
        M.bootstrap_auc([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], groups=["a", "b"])


# ------------------------------------------------------------------------------------------ patient level (issue 15)
def _obuchowski_by_pairs(y, scores, groups):
    """Slow reference: Obuchowski (1997) covariance from explicit case x control comparisons per cluster."""
    y, scores, groups = np.asarray(y), np.atleast_2d(scores), np.asarray(groups)
    ids = list(dict.fromkeys(groups))
    case, ctrl = y == 1, y == 0
    M_, N_ = case.sum(), ctrl.sum()
    k = scores.shape[0]
    aucs, X, Y = np.zeros(k), np.zeros((k, len(ids))), np.zeros((k, len(ids)))
    for r in range(k):
        s = scores[r]
        psi = (s[case][:, None] > s[ctrl][None, :]) + 0.5 * (s[case][:, None] == s[ctrl][None, :])
        aucs[r] = psi.mean()
        v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
        for i, g in enumerate(ids):
            X[r, i] = v10[groups[case] == g].sum()
            Y[r, i] = v01[groups[ctrl] == g].sum()
    m_i = np.array([np.sum(case & (groups == g)) for g in ids])
    n_i = np.array([np.sum(ctrl & (groups == g)) for g in ids])
    n_cl, i10, i01 = len(ids), np.sum(m_i > 0), np.sum(n_i > 0)
    cov = np.zeros((k, k))
    for r in range(k):
        for s_ in range(k):
            dxr, dxs = X[r] - m_i * aucs[r], X[s_] - m_i * aucs[s_]
            dyr, dys = Y[r] - n_i * aucs[r], Y[s_] - n_i * aucs[s_]
            s10 = i10 / ((i10 - 1) * M_) * np.sum(dxr * dxs)
            s01 = i01 / ((i01 - 1) * N_) * np.sum(dyr * dys)
            s11_rs, s11_sr = n_cl / (n_cl - 1) * np.sum(dxr * dys), n_cl / (n_cl - 1) * np.sum(dxs * dyr)
            cov[r, s_] = s10 / M_ + s01 / N_ + (s11_rs + s11_sr) / (M_ * N_)
    return aucs, cov


def _mixed_clusters(n_pat, seed):
    """1-3 images per patient, labels per image (a patient can have both), scores sharing a patient effect."""
    rng = np.random.default_rng(seed)
    pat = np.repeat(np.arange(n_pat), rng.integers(1, 4, n_pat))
    r = rng.normal(size=n_pat)[pat]
    y = (rng.random(len(pat)) < 1 / (1 + np.exp(-(r - 0.3)))).astype(int)
    s1 = np.round(y + 0.8 * r + rng.normal(size=len(pat)), 1)           # rounded: ties
    s2 = np.round(0.5 * y + 0.8 * r + rng.normal(size=len(pat)), 1)
    return y, np.vstack([s1, s2]), np.array([f"P{i:03d}" for i in pat])


def test_clustered_delong_equals_a_direct_pairwise_obuchowski_computation():
    y, s, g = _mixed_clusters(60, seed=1)
    assert len(set(g[y == 1]) & set(g[y == 0])) > 5          # patients with both positive and negative images
    aucs, cov = M.delong_auc_cov(y, s, groups=g)
    ref_aucs, ref_cov = _obuchowski_by_pairs(y, s, g)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-14)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-10, atol=1e-16)
    assert not np.allclose(cov, M.delong_auc_cov(y, s)[1], rtol=0.02)  # the clustering matters here
    r = M.delong_test(y, s[0], s[1], groups=g)
    assert r["var_diff"] == pytest.approx(ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1], rel=1e-10)
    half = stats.norm.ppf(0.975) * np.sqrt(r["var_diff"])
    assert (r["diff_low"], r["diff_high"]) == pytest.approx((r["diff"] - half, r["diff"] + half), abs=1e-14)
    assert r["method"].startswith("clustered")


def test_clustered_delong_with_one_image_per_patient_equals_pROC(asah):
    ids = np.array([f"P{i}" for i in range(len(asah))])
    _, cov = M.delong_auc_cov(asah.y, [asah.wfns, asah.ndka, asah.s100b], groups=ids)
    np.testing.assert_allclose(cov, M.delong_auc_cov(asah.y, [asah.wfns, asah.ndka, asah.s100b])[1],
                               rtol=1e-12, atol=0)
    ci = M.delong_ci(asah.y, asah.ndka, groups=ids)
    assert (ci["low"], ci["auc"], ci["high"]) == pytest.approx(
        (0.501244999271703, 0.611957994579946, 0.722670989888189), abs=1e-9)
    r = M.delong_test(asah.y, asah.wfns, asah.s100b, groups=ids)
    assert (r["z"], r["p_value"]) == pytest.approx((2.20898359144091, 0.0271757822291882), abs=1e-9)
    assert (r["diff_low"], r["diff_high"]) == pytest.approx((0.0104061769564846, 0.174214419249478), abs=1e-9)
    plain = M.delong_test(asah.y, asah.wfns, asah.s100b)
    assert (plain["diff_low"], plain["diff_high"]) == (plain["low"], plain["high"])


def test_duplicated_images_give_the_single_image_delong_variance_only_with_patient_ids(asah):
    y2 = np.repeat(asah.y.to_numpy(), 2)
    s2 = np.repeat(asah[["wfns", "ndka"]].to_numpy().T, 2, axis=1)
    ids = np.repeat([f"P{i}" for i in range(len(asah))], 2)
    single = M.delong_auc_cov(asah.y, asah[["wfns", "ndka"]].to_numpy().T)[1]
    np.testing.assert_allclose(M.delong_auc_cov(y2, s2, groups=ids)[1], single, rtol=1e-12)
    naive = M.delong_auc_cov(y2, s2)[1]
    assert np.all(naive / single < 0.51)                      # images as independent: about half the variance
    assert M.delong_ci(y2, s2[1], groups=ids)["low"] == pytest.approx(0.501244999271703, abs=1e-9)


def test_clustered_delong_needs_two_patients_of_each_class_else_nan():
    y = [0, 1, 1, 0, 0]
    p = [0.1, 0.8, 0.7, 0.3, 0.5]
    one_positive_patient = ["A", "B", "B", "C", "D"]
    ci = M.delong_ci(y, p, groups=one_positive_patient)
    assert ci["auc"] == 1.0 and np.isnan(ci["var"]) and np.isnan(ci["low"]) and np.isnan(ci["high"])
    r = M.delong_test(y, p, np.array(p) ** 2 + 0.01 * np.arange(5), groups=one_positive_patient)
    assert np.isnan(r["p_value"]) and np.isnan(r["diff_low"]) and np.isfinite(r["diff"])
    mixed_types = np.array([1, "a", 2, "b", 3], dtype=object)      # numbers and strings: compared as strings
    assert np.isfinite(M.delong_ci(y, p, groups=mixed_types)["var"])


def test_design_effect_is_one_for_single_images_two_for_identical_twins_and_kish_when_unestimable():
    rng = np.random.default_rng(0)
    hits = (rng.random(200) < 0.7).astype(int)
    assert M.design_effect(hits, np.arange(200)) == 1.0
    twins = M.design_effect(np.repeat(hits, 2), np.repeat(np.arange(200), 2))
    assert twins == pytest.approx(2 * (200 / 199) / (400 / 399), rel=1e-12)   # = 2 up to the (I-1), (n-1) factors
    sizes = np.array([1, 2, 3, 4])
    groups = np.repeat(np.arange(4), sizes)
    assert M.design_effect(np.ones(10), groups) == pytest.approx(np.sum(sizes ** 2) / 10)   # p = 1: Kish bound
    assert M.design_effect(np.zeros(6), np.zeros(6)) == 6.0                                # one patient: n_eff 1
    lo, hi = M.wilson_ci(30, 40, deff=2.0)
    assert (lo, hi) == pytest.approx(M.wilson_ci(15, 20), abs=1e-14)
    assert M.wilson_ci(30, 40, deff=0.5) == M.wilson_ci(30, 40)                            # deff < 1 counts as 1


def test_threshold_metrics_with_patient_ids_widen_only_when_images_are_clustered():
    rng = np.random.default_rng(4)
    y = (rng.random(300) < 0.4).astype(int)
    p = rng.random(300) * 0.6 + 0.3 * y
    ids = np.array([f"P{i}" for i in range(300)])
    single = M.threshold_metrics(y, p, 0.5, n_boot=50)
    grouped = M.threshold_metrics(y, p, 0.5, groups=ids, n_boot=50)
    np.testing.assert_array_equal(grouped.loc[grouped.index != "f1", ["low", "high"]],
                                  single.loc[single.index != "f1", ["low", "high"]])
    twins = M.threshold_metrics(np.repeat(y, 2), np.repeat(p, 2), 0.5, groups=np.repeat(ids, 2), n_boot=50)
    naive = M.threshold_metrics(np.repeat(y, 2), np.repeat(p, 2), 0.5, n_boot=50)
    for metric in ("sensitivity", "specificity", "accuracy", "ppv", "npv"):
        assert twins.loc[metric, "estimate"] == single.loc[metric, "estimate"]
        assert twins.loc[metric, "deff"] == pytest.approx(2.0, rel=0.01), metric
        # twins with patient IDs: the single-image interval (n_eff = n/2); without IDs: too narrow
        assert (twins.loc[metric, "low"], twins.loc[metric, "high"]) == pytest.approx(
            (single.loc[metric, "low"], single.loc[metric, "high"]), abs=3e-3), metric
        assert naive.loc[metric, "high"] - naive.loc[metric, "low"] < 0.75 * (
            twins.loc[metric, "high"] - twins.loc[metric, "low"]), metric
    assert twins.loc["sensitivity", "ci_method"] == "wilson, design effect (patients)"


def test_hosmer_lemeshow_uses_g_degrees_of_freedom_on_validation_data_and_g_minus_2_on_apparent():
    y, p = _calibrated(3000, seed=12)
    val, app = M.hosmer_lemeshow(y, p), M.hosmer_lemeshow(y, p, validation=False)
    assert val["statistic"] == app["statistic"] and val["validation"] and not app["validation"]
    assert (val["df"], app["df"]) == (10, 8)
    assert val["p_value"] == pytest.approx(stats.chi2.sf(val["statistic"], 10), abs=1e-14)
    assert app["p_value"] == pytest.approx(stats.chi2.sf(app["statistic"], 8), abs=1e-14)
    assert M.hosmer_lemeshow(y, p, g=6)["df"] == 6
    for bad in (1, 0, 2.5, "10", True):
        with pytest.raises(UsradError, match="column 'g'"):
            M.hosmer_lemeshow(y, p, g=bad)


def test_calibration_ci_is_cluster_robust_with_patient_ids():
    y, p = _calibrated(1500, seed=13, scale=0.8)
    ids = np.array([f"P{i}" for i in range(1500)])
    plain = M.calibration_intercept_slope(y, p)
    assert M.calibration_intercept_slope(y, p, groups=ids) == {**plain, "n_patients": 1500.0}  # one image each
    assert plain["cov_type"] == "model" and np.isnan(plain["n_patients"])
    assert plain["slope_p"] == pytest.approx(2 * stats.norm.sf(abs(plain["slope"] - 1) / plain["slope_se"]))
    y2, p2, ids2 = np.repeat(y, 2), np.repeat(p, 2), np.repeat(ids, 2)
    twins, naive = M.calibration_intercept_slope(y2, p2, groups=ids2), M.calibration_intercept_slope(y2, p2)
    assert twins["cov_type"] == "cluster" and twins["n_patients"] == 1500
    lp = np.log(p / (1 - p))
    sandwich = {  # robust SEs of the single images (statsmodels, one cluster per image)
        "intercept": sm.GLM(y, np.ones((1500, 1)), family=sm.families.Binomial(), offset=lp).fit(
            cov_type="cluster", cov_kwds={"groups": np.arange(1500)}).bse[0],
        "slope": sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit(
            cov_type="cluster", cov_kwds={"groups": np.arange(1500)}).bse[1]}
    for key in ("intercept", "slope"):
        assert twins[key] == pytest.approx(plain[key], abs=1e-9)
        # duplicated images with patient IDs: the single-image width; without IDs: 1/sqrt(2) of it
        assert twins[f"{key}_se"] == pytest.approx(sandwich[key], rel=1e-3), key
        assert naive[f"{key}_se"] == pytest.approx(plain[f"{key}_se"] / np.sqrt(2), rel=0.01), key
        assert twins[f"{key}_se"] > 1.3 * naive[f"{key}_se"], key


@pytest.mark.parametrize("fn", [M.brier_score, M.calibration_intercept_slope, M.reliability_curve,
                                M.hosmer_lemeshow, M.smoothed_calibration])
def test_calibration_functions_refuse_scores_that_are_not_probabilities(fn):
    with pytest.raises(UsradError, match=r"column 'p'.*not probabilities in \[0, 1\].*position 2"):
        fn([0, 1, 0, 1], [0.1, 0.9, 1.7, 0.4])
    with pytest.raises(UsradError, match="not probabilities"):
        fn([0, 1, 0, 1], [0.1, 0.9, -0.2, 0.4])


def test_smoothed_calibration_follows_the_diagonal_when_calibrated_and_bends_when_overfitted():
    y, p = _calibrated(4000, seed=14)
    sc = M.smoothed_calibration(y, p, n_boot=200, seed=1)
    assert list(sc.columns) == ["p_grid", "observed", "lower", "upper"] and len(sc) == 101
    assert (sc.lower <= sc.observed).all() and (sc.observed <= sc.upper).all()
    assert np.max(np.abs(sc.observed - sc.p_grid)[sc.p_grid.between(0.05, 0.95)]) < 0.05
    assert ((sc.lower <= sc.p_grid) & (sc.p_grid <= sc.upper)).mean() > 0.9
    assert len(sc.attrs["knots"]) == 3 and sc.attrs["n_failed"] == 0
    assert len(M.smoothed_calibration(y, p, n_boot=20, knots=5).attrs["knots"]) == 5
    y, p = _calibrated(4000, seed=14, scale=2.0)                     # too extreme predictions
    sc = M.smoothed_calibration(y, p, n_boot=200, seed=1, grid=[0.05, 0.5, 0.95])
    assert sc.loc[0, "lower"] > 0.05 and sc.loc[2, "upper"] < 0.95  # observed risk less extreme than predicted
    assert sc.loc[1, "lower"] < 0.5 < sc.loc[1, "upper"]


def test_smoothed_calibration_band_is_patient_level_and_seeded():
    y, p = _calibrated(600, seed=15)
    ids = np.array([f"P{i:04d}" for i in range(600)])                # sorted like the images: same resamples
    single = M.smoothed_calibration(y, p, n_boot=100, seed=3)
    twins = M.smoothed_calibration(np.repeat(y, 2), np.repeat(p, 2), groups=np.repeat(ids, 2), n_boot=100, seed=3)
    naive = M.smoothed_calibration(np.repeat(y, 2), np.repeat(p, 2), n_boot=100, seed=3)
    np.testing.assert_allclose(twins.to_numpy(), single.to_numpy(), atol=1e-8)   # a duplicate adds nothing
    assert np.median((naive.upper - naive.lower) / (single.upper - single.lower)) < 0.8
    again = M.smoothed_calibration(y, p, n_boot=100, seed=3)
    pd.testing.assert_frame_equal(again, single)
    assert not np.allclose(M.smoothed_calibration(y, p, n_boot=100, seed=4).lower, single.lower)


def test_smoothed_calibration_is_fast_and_handles_few_distinct_predictions():
    y, p = _calibrated(1000, seed=16)
    ids = np.repeat(np.arange(500), 2)
    best = min(_timed(lambda: M.smoothed_calibration(y, p, groups=ids, n_boot=200)) for _ in range(3))
    assert best < 1.0, f"{best:.2f} s for 1,000 rows and 200 resamples"
    p2 = np.where(p > 0.4, 0.7, 0.2)                                  # two distinct values: no spline
    sc = M.smoothed_calibration(y, p2, n_boot=50, grid=[0.2, 0.7])
    assert sc.attrs["knots"] == [] and "too few distinct" in sc.attrs["method"]
    for q in (0.2, 0.7):                                              # the logistic fit reproduces the two rates
        assert sc.loc[sc.p_grid == q, "observed"].item() == pytest.approx(y[p2 == q].mean(), abs=1e-6)
    with pytest.raises(UsradError, match="column 'grid'"):
        M.smoothed_calibration(y, p, grid=[0.5, 1.5])


def _timed(fn):
    import time

    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
