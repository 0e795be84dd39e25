"""fit_task: known signal recovered, no leakage from the test set, deterministic, clinical guard rails."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from usrad.bundle import load_bundle
from usrad.errors import UsradError
from usrad.metrics import auc
from usrad.models import build_design, fit_task, synthetic_modelling_data
from usrad.split import make_split

TASK = {"name": "metastasis", "label": "n_positive_nodes >= 1"}
TASKS = [TASK, {"name": "burden", "label": "n_positive_nodes >= 3", "subset": "n_positive_nodes >= 1"}]
CLIN = {"predictors": ["age", "us_size_mm", "us_node_suspicious", "birads", "grade"],
        "categorical": ["birads", "grade"], "missing": "refuse"}
FAST = {"classifiers": ["lr", "nb"], "combined_classifiers": ["lr", "nb"],
        "lasso": {"cv_folds": 5, "n_C": 15}}
SEED = 11


def _labels(cohort, image_ids):
    return (cohort.set_index("image_id").loc[list(image_ids), "n_positive_nodes"] >= 1).astype(int).to_numpy()


def _auc(pred, cohort, model, split):
    g = pred[(pred.model == model) & (pred.split == split)]
    return auc(_labels(cohort, g.image_id), g.probability.to_numpy())


@pytest.fixture(scope="module")
def data():
    feats, coh = synthetic_modelling_data(n_patients=240, n_features=30, signal=5.0, feature_noise=0.6, seed=3)
    sp = make_split(coh, TASKS, seed=SEED)
    return feats, coh, sp


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    feats, coh, sp = data
    out = tmp_path_factory.mktemp("fit_a")
    pred = fit_task(feats, coh, sp, TASK, FAST, CLIN, seed=SEED, n_jobs=1, out_dir=out)
    return pred, out


def test_known_signal_is_recovered_on_the_test_set(fitted, data):
    pred, _ = fitted
    coh = data[1]
    for model in ("radscore", "lr", "nomogram", "combined"):
        assert _auc(pred, coh, model, "test") > 0.85, model
    assert set(pred.columns) == {"patient_id", "image_id", "task", "split", "model", "y", "probability", "rad_score"}
    truth = (coh.set_index("image_id")["n_positive_nodes"] >= 1).astype(int)
    assert (pred["y"].to_numpy() == truth.loc[pred["image_id"]].to_numpy()).all()
    assert set(pred.split) == {"cv", "train", "test"}
    assert pred[pred.model == "clinical"].rad_score.isna().all()
    assert pred[pred.model == "radscore"].rad_score.notna().all()


def test_signature_keeps_informative_reproducible_features_only(fitted):
    _, out = fitted
    sel = pd.read_csv(out / "selection" / "selected_features.tsv", sep="\t")
    assert {f"inf_{k}" for k in range(5)} <= set(sel.feature) and set(sel.region) == {"lesion"}
    assert "inf_irreproducible" not in set(sel.feature)  # informative, but removed by the ICC filter
    inf = sel.feature.str.match(r"inf_\d")
    assert sel.coef[inf].abs().min() > max(sel.coef[~inf].abs().tolist(), default=0.0)
    icc = pd.read_csv(out / "selection" / "icc.tsv", sep="\t").set_index("feature")
    assert not icc.loc["inf_irreproducible", "kept"] and icc.loc["inf_0", "kept"]
    formula = (out / "selection" / "radscore_formula.txt").read_text()
    assert all(f"z({f})" in formula for f in sel.feature)
    path = pd.read_csv(out / "selection" / "lasso_path.tsv", sep="\t")
    assert path.chosen.any() and path.C.nunique() == 15


def test_permuted_labels_give_chance_test_auc(data, tmp_path):
    feats, coh, _ = data
    rng = np.random.default_rng(0)
    per_patient = coh.drop_duplicates("patient_id").set_index("patient_id")["n_positive_nodes"]
    shuffled = pd.Series(rng.permutation(per_patient.to_numpy()), index=per_patient.index)
    coh_p = coh.assign(n_positive_nodes=coh.patient_id.map(shuffled))
    sp = make_split(coh_p, TASKS, seed=SEED)
    pred = fit_task(feats, coh_p, sp, TASK, FAST, CLIN, seed=SEED, n_jobs=1, out_dir=None)
    for model in ("radscore", "lr"):
        assert abs(_auc(pred, coh_p, model, "test") - 0.5) < 0.1, model


def test_changing_test_features_and_labels_changes_nothing_fitted(data, fitted, tmp_path):
    feats, coh, sp = data
    pred_a, out_a = fitted
    test_ids = set(sp.loc[sp.split == "test", "image_id"])
    rng = np.random.default_rng(1)
    f2 = feats.copy()
    rows = f2.image_id.isin(test_ids)
    num = [c for c in f2.columns if c not in ("patient_id", "image_id", "reader")]
    f2.loc[rows, num] = f2.loc[rows, num].to_numpy() * rng.uniform(0.2, 3.0, size=(rows.sum(), len(num)))
    c2 = coh.copy()
    c2.loc[c2.image_id.isin(test_ids), "n_positive_nodes"] = np.where(
        c2.loc[c2.image_id.isin(test_ids), "n_positive_nodes"] >= 1, 0, 2)  # flip every test label
    c2.loc[c2.image_id.isin(test_ids), "us_node_suspicious"] = 1
    out_b = tmp_path / "fit_b"
    pred_b = fit_task(f2, c2, sp, TASK, FAST, CLIN, seed=SEED, n_jobs=1, out_dir=out_b)
    for name in ("radscore", "lr", "nb", "clinical", "nomogram", "combined"):
        ma = json.loads((out_a / "models" / name / "bundle.json").read_text())
        mb = json.loads((out_b / "models" / name / "bundle.json").read_text())
        for key in ("selected_features", "radscore_formula", "hyperparameters", "cv_auc", "threshold",
                    "clinical_selected", "clinical_independent", "model_sha256"):
            assert ma[key] == mb[key], (name, key)
    for rel in ("selection/lasso_path.tsv", "selection/icc.tsv", "tables/univariable.tsv",
                "tables/multivariable.tsv", "models/cv_results.tsv"):
        assert (out_a / rel).read_bytes() == (out_b / rel).read_bytes(), rel
    key = ["model", "split", "image_id"]
    a = pred_a.set_index(key).sort_index()
    b = pred_b.set_index(key).sort_index()
    fitted_rows = a.index.get_level_values("split").isin(["cv", "train"])
    pd.testing.assert_frame_equal(a[fitted_rows], b[fitted_rows])
    assert not np.allclose(a[~fitted_rows].probability, b[~fitted_rows].probability)  # test rows did change


def test_predictions_are_identical_for_one_or_two_jobs(data, fitted, tmp_path):
    feats, coh, sp = data
    pred_a, out_a = fitted
    pred_b = fit_task(feats, coh, sp, TASK, FAST, CLIN, seed=SEED, n_jobs=2, out_dir=tmp_path / "two")
    pd.testing.assert_frame_equal(pred_a, pred_b, check_exact=True)
    for name in ("lr", "nomogram"):
        assert (out_a / "models" / name / "model.skops").read_bytes() == (
            tmp_path / "two" / "models" / name / "model.skops").read_bytes()


def test_final_hyperparameters_have_the_best_cv_log_loss_and_the_reported_cv_auc_is_nested(fitted):
    _, out = fitted
    cv = pd.read_csv(out / "models" / "cv_results.tsv", sep="\t")
    tuned = cv[cv.classifier.isin(["lr", "nb"]) & (cv.feature_set == "radiomics")]
    for clf, g in tuned.groupby("classifier"):
        chosen = g[g.chosen]
        assert len(chosen) == 1 and chosen.mean_log_loss.iloc[0] == g.mean_log_loss.min()
        assert g.n_outer_folds_chosen.sum() == 5  # each outer fold's inner CV chose one grid point
        meta = json.loads((out / "models" / clf / "bundle.json").read_text())
        assert json.loads(chosen.params.iloc[0]) == meta["hyperparameters"]
        assert meta["cv_auc_tuning"] == pytest.approx(chosen.mean_auc.iloc[0])
        assert meta["cv_auc"] == pytest.approx(chosen.nested_mean_auc.iloc[0])
        assert meta["cv_auc_basis"].startswith("nested CV") and len(meta["nested_fold_choices"]) == 5
    comb = cv[(cv.feature_set == "combined") & cv.chosen]
    assert len(comb) == 1


def test_combined_type_is_the_simplest_within_one_se_of_the_best(fitted):
    _, out = fitted
    choice = pd.read_csv(out / "models" / "model_choice.tsv", sep="\t")
    final = choice[(choice.decision == "combined classifier") & (choice.scope == "all training rows")]
    best = final.loc[final.mean_auc.idxmax()]
    within = final[final.mean_auc >= best.mean_auc - best.se_auc]
    order = ["radscore", "lr", "nb", "knn", "svm", "rf", "xgb", "mlp"]
    simplest = min(within.candidate, key=order.index)
    assert final.loc[final.chosen, "candidate"].tolist() == [simplest]
    meta = json.loads((out / "models" / "combined" / "bundle.json").read_text())
    assert meta["classifier"] == simplest and meta["model_choice"]["chosen"] == simplest
    assert set(meta["model_choice"]["candidates"]) == {"lr", "nb"} and meta["model_choice"]["reason"]
    assert (choice.scope.str.startswith("outer fold")).sum() == 2 * 5  # the same choice inside every outer fold


def test_assembled_models_equal_a_plain_pipeline_fit(data, fitted):
    feats, coh, sp = data
    _, out = fitted
    for name in ("lr", "nb", "clinical", "nomogram", "combined"):
        model, _ = load_bundle(out / "models" / name)
        ids = sp.image_id.tolist()
        X, _ = build_design(feats, coh, ids, CLIN["predictors"], "r2")
        train = sp.split.eq("train").to_numpy()
        y = _labels(coh, ids)
        refit = clone(model).fit(X[train], y[train])
        np.testing.assert_allclose(refit.predict_proba(X)[:, 1], model.predict_proba(X)[:, 1], rtol=0, atol=1e-10)


def test_clinical_tables_report_odds_ratios_and_select_the_informative_variable(fitted):
    _, out = fitted
    uni = pd.read_csv(out / "tables" / "univariable.tsv", sep="\t")
    multi = pd.read_csv(out / "tables" / "multivariable.tsv", sep="\t")
    row = uni[uni.term == "us_node_suspicious"].iloc[0]
    assert row.selected and row.OR > 1.5 and row.ci_low < row.OR < row.ci_high and row.p_variable < 0.05
    assert set(uni.variable) == {"age", "us_size_mm", "us_node_suspicious", "birads", "grade"}
    assert set(multi.variable) == set(uni.loc[uni.selected, "variable"])
    assert {"birads[4b]", "birads[4c]", "birads[5]"} & set(uni.term)  # one-hot with a reference level


def test_clinical_model_refuses_n_positive_nodes_as_predictor(data):
    feats, coh, sp = data
    bad = dict(CLIN, predictors=CLIN["predictors"] + ["n_positive_nodes"])
    with pytest.raises(UsradError, match="n_positive_nodes"):
        fit_task(feats, coh, sp, TASK, FAST, bad, seed=SEED, n_jobs=1)


def test_missing_clinical_value_is_refused_naming_patient_and_column(data):
    feats, coh, sp = data
    c2 = coh.copy()
    c2.loc[3, "age"] = np.nan
    with pytest.raises(UsradError) as err:
        fit_task(feats, c2, sp, TASK, FAST, CLIN, seed=SEED, n_jobs=1)
    assert c2.loc[3, "patient_id"] in str(err.value) and "'age'" in str(err.value)


def test_missing_feature_value_is_refused_naming_patient_and_column(data):
    feats, coh, sp = data
    f2 = feats.copy()
    i = f2.index[(f2.reader == "r1")][5]
    f2.loc[i, "noise_3"] = np.nan
    with pytest.raises(UsradError) as err:
        fit_task(f2, coh, sp, TASK, FAST, CLIN, seed=SEED, n_jobs=1)
    assert f2.loc[i, "patient_id"] in str(err.value) and "noise_3" in str(err.value)
