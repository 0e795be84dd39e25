"""usrad.clinical: full-rank designs, Firth under separation, patient-level screening, same results as before."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usrad import clinical
from usrad.clinical import (ClinicalEncoder, ClinicalSelector, clinical_branch, clinical_logit_tables,
                            full_rank_columns, patient_level)
from usrad.reporting.tables import table2


def _index(n_patients: int, images: int = 1) -> pd.MultiIndex:
    pids = np.repeat([f"P{i:04d}" for i in range(n_patients)], images)
    return pd.MultiIndex.from_arrays([pids, [f"{p}_{j}" for p, j in zip(pids, np.tile(range(images), n_patients))]],
                                     names=["patient_id", "image_id"])


def _subtype_cohort(n: int = 400, seed: int = 4) -> tuple[pd.DataFrame, np.ndarray]:
    """her2 ⇔ subtype HER2 (as in usrad.simulate), both related to the outcome."""
    rng = np.random.default_rng(seed)
    sub = rng.choice(["LumA", "LumB", "HER2", "TN"], n, p=[0.27, 0.35, 0.26, 0.12])
    eta = -1.0 + 1.2 * (sub == "HER2") + 0.8 * (sub == "TN")
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    raw = pd.DataFrame({"age": rng.normal(55, 10, n).round(), "her2": (sub == "HER2").astype(int), "subtype": sub},
                       index=_index(n))
    return raw, y


def _encode(raw: pd.DataFrame, y, categorical=("subtype",)) -> pd.DataFrame:
    return clinical_branch(list(raw.columns), list(categorical), False).fit(raw, y).transform(raw)


def _no_absurd_numbers(table: pd.DataFrame) -> None:
    """Table 2 as the report prints it: no 'inf'/'nan', every number a finite OR of a few characters (bounds beyond
    1000 or below 0.01 as '>1000' / '<0.01', an OR the fit cannot give as 'not estimable')."""
    for col in ("univariable OR (95% CI)", "multivariable OR (95% CI)"):
        for text in table[col]:
            assert "inf" not in text.lower() and "nan" not in text.lower(), text
            if text in ("not estimable", ""):
                continue
            for part in text.replace("(", " ").replace(")", " ").replace("–", " ").split():
                if part not in ("NA", ">1000", "<0.01"):
                    assert 0.01 <= float(part) <= 1000 and len(part) <= 7, text


# --------------------------------------------------------------------------- rank
def test_aliased_her2_column_is_dropped_with_its_reason_and_table2_cis_are_finite():
    raw, y = _subtype_cohort()
    uni, multi, selected, independent = clinical_logit_tables(_encode(raw, y), y)
    assert {"her2", "subtype"} <= set(selected)
    row = multi.set_index("term").loc["subtype[HER2]"]
    assert np.isnan(row.OR) and "dropped: aliased with her2" in row.note  # the earlier predictor (config order) stays
    [dropped] = multi.attrs["dropped"]
    assert dropped["term"] == "subtype[HER2]" and dropped["variable"] == "subtype"
    assert dropped["reason"].startswith("aliased with her2") and not uni.attrs["dropped"]
    est = multi[multi.term != "subtype[HER2]"]
    assert np.isfinite(est[["OR", "ci_low", "ci_high"]].to_numpy()).all()
    assert (est.ci_high < 100).all() and (est.ci_low > 0.01).all()
    her2 = multi.set_index("term").loc["her2"]
    assert her2.OR == pytest.approx(uni.set_index("term").loc["subtype[HER2]"].OR / 1.0, rel=0.5)
    assert np.isnan(her2.p_variable) and "not testable" in her2.note  # adds nothing beside the whole subtype
    assert independent == ["subtype"]
    _no_absurd_numbers(table2(uni, multi))


def test_rank_check_keeps_the_earlier_column_and_drops_constants():
    X = pd.DataFrame({"a": [0, 1, 0, 1, 1.0], "k": 3.0, "b": [1, 0, 1, 0, 0.0], "c": [0, 2, 1, 3, 2.0],
                      "d": [1, 3, 1, 3, 3.0]})
    kept, dropped = full_rank_columns(X)
    assert kept == ["a", "c"]
    reasons = {d["term"]: d["reason"] for d in dropped}
    assert reasons["k"].startswith("constant")
    assert reasons["b"].startswith("aliased with a")  # b = 1 - a
    assert reasons["d"].startswith("aliased with a")  # d = 1 + 2a
    assert full_rank_columns(X, ["b", "a"])[0] == ["b"]  # order decides, deterministically


def test_selector_leaves_aliased_columns_out_of_its_output():
    raw, y = _subtype_cohort()
    Xe = _encode(raw, y)
    uni_sel = ClinicalSelector(stage="univariable").fit(Xe, y)
    assert list(uni_sel.get_feature_names_out()) == ["her2", "subtype[LumA]", "subtype[TN]"]
    assert uni_sel.dropped_ and uni_sel.dropped_[0].startswith("subtype[HER2]: aliased with her2")
    multi_sel = ClinicalSelector(stage="multivariable").fit(Xe, y)
    assert list(multi_sel.get_feature_names_out()) == ["subtype[HER2]", "subtype[LumA]", "subtype[TN]"]
    assert multi_sel.variables_ == ["subtype"]


# --------------------------------------------------------------------------- separation
def _separated(n: int = 160, seed: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    """``marker`` = 1 only in positive patients (quasi-complete separation); ``age`` unrelated."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    marker = ((rng.random(n) < 0.3) & (y == 1)).astype(float)
    return pd.DataFrame({"age": rng.normal(55, 10, n).round(), "marker": marker}, index=_index(n)), y


def test_separated_predictor_gets_a_firth_fit_with_finite_or_and_a_note():
    import statsmodels.api as sm
    from firthmodels import FirthLogisticRegression

    X, y = _separated()
    ml = sm.Logit(y, sm.add_constant(X[["marker"]])).fit(disp=0, maxiter=200, warn_convergence=False)
    assert abs(ml.params["marker"]) > 8  # what plain ML does here: an "OR" in the thousands and beyond
    uni, multi, selected, _ = clinical_logit_tables(X, y)
    row = uni.set_index("term").loc["marker"]
    assert row.method == "Firth" and row.note.startswith("Firth (separation")
    assert "marker" in row.note and np.isfinite([row.OR, row.ci_low, row.ci_high, row.p_variable]).all()
    assert 1 < row.ci_low < row.OR < row.ci_high < 1e6 and row.p_variable < 0.05
    firth = FirthLogisticRegression(backend="numpy").fit(X[["marker"]].to_numpy(), y)
    assert np.log(row.OR) == pytest.approx(firth.coef_[0], abs=1e-3)  # it IS the Firth estimate
    assert uni.set_index("term").loc["age"].method == "ML"  # the other variable keeps its ML fit
    assert "marker" in selected
    m = multi.set_index("term").loc["marker"]
    assert m.method == "Firth" and np.isfinite([m.OR, m.ci_low, m.ci_high]).all()


def test_categorical_level_with_one_outcome_class_is_fitted_by_firth():
    rng = np.random.default_rng(5)
    n = 200
    y = (rng.random(n) < 0.45).astype(int)
    birads = np.where(rng.random(n) < 0.5, "4a", "4b")
    birads[(y == 1) & (rng.random(n) < 0.25)] = "5"  # every BI-RADS 5 patient is positive
    raw = pd.DataFrame({"birads": birads}, index=_index(n))
    Xe = _encode(raw, y, categorical=("birads",))
    uni, *_ = clinical_logit_tables(Xe, y)
    row = uni.set_index("term").loc["birads[5]"]
    assert row.method == "Firth" and "birads[5]" in row.note and np.isfinite([row.OR, row.ci_high]).all()


def test_penalised_lr_test_equals_firthmodels_own():
    from firthmodels import FirthLogisticRegression

    X, y = _separated()
    A = X[["age", "marker"]]
    fit = clinical.fit_logit(y, A)
    lib = FirthLogisticRegression(**clinical.FIRTH_SETTINGS).fit(A.to_numpy(), y).lrt()
    assert fit.method == "Firth" and fit.llf == pytest.approx(lib.loglik_, abs=1e-8)
    for i, rest in enumerate((["marker"], ["age"])):
        assert clinical.lr_pvalue(fit, y, A[rest], 1) == pytest.approx(lib.lrt_pvalues_[i], rel=1e-5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(12, 60), alias=st.booleans(), separate=st.booleans())
def test_tables_never_report_an_infinite_or_huge_odds_ratio(seed, n, alias, separate):
    rng = np.random.default_rng(seed)
    y = np.r_[0, 1, (rng.random(n - 2) < 0.3)].astype(int)
    a = rng.integers(0, 2, n).astype(float)
    X = pd.DataFrame({"a": a, "b": 1 - a if alias else rng.integers(0, 2, n).astype(float),
                      "c": np.where(y == 1, 1.0, 0.0) if separate else rng.normal(size=n),
                      "k": np.ones(n)}, index=_index(n))
    uni, multi, *_ = clinical_logit_tables(X, y)
    for tab in (uni, multi):
        vals = tab[["OR", "ci_low", "ci_high"]].to_numpy()
        assert not np.isinf(vals).any()
        assert (np.isnan(vals) | ((vals > 1e-13) & (vals < 1e13))).all()
        nan_rows = np.isnan(vals).any(axis=1)
        assert (tab.loc[nan_rows, "note"].str.len() > 0).all()  # every NaN says why
    _no_absurd_numbers(table2(uni, multi))


# --------------------------------------------------------------------------- patient level
def _null_screen(seed: int, n: int = 120) -> tuple[float, float]:
    """p of a null predictor with two identical-covariate images per patient: (patient-level, image-level)."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=n), (rng.random(n) < 0.4).astype(int)
    X = pd.DataFrame({"x": np.repeat(x, 2)}, index=_index(n, images=2))
    yy = np.repeat(y, 2)
    patient = clinical_logit_tables(X, yy)[0].p_variable.iloc[0]
    image = clinical_logit_tables(X, yy, groups=np.arange(2 * n))[0].p_variable.iloc[0]
    return patient, image


def test_screening_counts_patients_not_images_false_positive_rate():
    p = np.array([_null_screen(seed) for seed in range(400)])
    fpr_patient, fpr_image = (p < 0.05).mean(axis=0)
    assert 0.03 <= fpr_patient <= 0.075, fpr_patient
    assert fpr_image > 0.10, fpr_image  # counting each image: the same data "significant" ~16 % of the time


def test_selector_reads_patient_ids_from_the_design_index():
    rng = np.random.default_rng(8)
    n = 150
    susp = (rng.random(n) < 0.4).astype(float)
    y = (rng.random(n) < np.where(susp == 1, 0.6, 0.3)).astype(int)
    X = pd.DataFrame({"susp": np.repeat(susp, 2), "age": np.repeat(rng.normal(50, 9, n), 2)}, index=_index(n, 2))
    sel = ClinicalSelector().fit(X, np.repeat(y, 2))
    assert sel.n_patients_ == n
    flat = X.reset_index(drop=True)  # no patient ids: each row counts
    assert ClinicalSelector().fit(flat, np.repeat(y, 2)).n_patients_ == 2 * n
    _, _, sel_tab, _ = clinical_logit_tables(X.iloc[::2], y)  # one image per patient: the same screen
    assert sel.variables_ == sel_tab


def test_image_level_values_are_averaged_and_outcomes_must_agree_within_a_patient():
    X = pd.DataFrame({"size": [10.0, 20.0, 30.0]}, index=pd.MultiIndex.from_arrays(
        [["A", "A", "B"], ["a1", "a2", "b1"]], names=["patient_id", "image_id"]))
    Xp, yp, averaged = patient_level(X, [1, 1, 0])
    assert Xp["size"].tolist() == [15.0, 30.0] and yp.tolist() == [1, 0] and averaged == ["size"]
    with pytest.raises(ValueError, match="patient.*A"):
        patient_level(X, [1, 0, 0])


# --------------------------------------------------------------------------- same as before on a normal design
def test_encoder_tables_and_selector_match_models_on_one_image_per_patient():
    from usrad import models
    from usrad.models import synthetic_modelling_data

    _, coh = synthetic_modelling_data(n_patients=300, second_image_fraction=0.0, seed=1)
    cols, cat = ["age", "us_size_mm", "us_node_suspicious", "birads", "grade"], ["birads", "grade"]
    raw = coh.set_index(["patient_id", "image_id"])[cols]
    y = (coh.n_positive_nodes >= 1).astype(int).to_numpy()
    old_enc = models.ClinicalEncoder(columns=cols, categorical=cat).fit(raw, y)
    new_enc = ClinicalEncoder(columns=cols, categorical=cat).fit(raw, y)
    pd.testing.assert_frame_equal(old_enc.transform(raw), new_enc.transform(raw))
    assert (old_enc.levels_, old_enc.reference_, old_enc.fill_) == (new_enc.levels_, new_enc.reference_, new_enc.fill_)
    Xe = new_enc.transform(raw)
    old, new = models.clinical_logit_tables(Xe, y, 0.05), clinical_logit_tables(Xe, y, 0.05)
    assert old[2:] == new[2:] and len(new[2]) >= 1
    for o, n in zip(old[:2], new[:2]):
        pd.testing.assert_frame_equal(o, n[o.columns], check_exact=False, rtol=1e-7)
        assert (n.method == "ML").all() and (n.note == "").all() and not n.attrs["dropped"]
    for stage in ("univariable", "multivariable"):
        o = models.ClinicalSelector(stage=stage).fit(Xe, y)
        s = ClinicalSelector(stage=stage).fit(Xe, y)
        assert o.variables_ == s.variables_ and (o.support_ == s.support_).all()
        pd.testing.assert_frame_equal(o.transform(Xe), s.transform(Xe))
    o_branch = models.clinical_branch(cols, cat, False, 0.05, "multivariable").fit(raw, y)
    n_branch = clinical_branch(cols, cat, False, 0.05, "multivariable").fit(raw, y)
    pd.testing.assert_frame_equal(o_branch.transform(raw), n_branch.transform(raw))
