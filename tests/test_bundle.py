"""Model bundles: skops + JSON sidecar; every model type round-trips; tampering is refused."""
from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import GradientBoostingClassifier

from usrad.bundle import MODEL_FILE, META_FILE, TRUSTED_TYPES, load_bundle, read_bundle_meta, save_bundle
from usrad.errors import UsradError
from usrad.extract import file_sha256
from usrad.models import CLASSIFIERS, build_design, fit_task, synthetic_modelling_data
from usrad.split import make_split

TASK = {"name": "metastasis", "label": "n_positive_nodes >= 1"}
CLIN = {"predictors": ["age", "us_size_mm", "us_node_suspicious", "birads", "grade"],
        "categorical": ["birads", "grade"]}
ONE_POINT = {"lr": {"C": [1.0]}, "svm": {"C": [1.0], "gamma": ["scale"]}, "rf": {"max_depth": [3]},
             "xgb": {"n_estimators": [50], "max_depth": [2]}, "knn": {"n_neighbors": [15]},
             "nb": {"var_smoothing": [1e-9]}, "mlp": {"hidden_layer_sizes": [[8]], "alpha": [0.1]}}
CFG = {"classifiers": list(CLASSIFIERS), "combined_classifiers": ["xgb"], "search_spaces": ONE_POINT,
       "lasso": {"cv_folds": 5, "n_C": 10}}
META = {"version": 1, "feature": "x"}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    feats, coh = synthetic_modelling_data(n_patients=160, n_features=20, signal=3.0, seed=8)
    sp = make_split(coh, [TASK], seed=2)
    out = tmp_path_factory.mktemp("bundles")
    params = "setting:\n  binWidth: 25\n"  # bundle.json is checked: the SHA-256 must be the text's
    fmeta = {"params": params, "params_sha256": hashlib.sha256(params.encode("utf-8")).hexdigest()}
    pred = fit_task(feats, coh, sp, TASK, CFG, CLIN, seed=4, n_jobs=2, out_dir=out, feature_meta=fmeta)
    X, _ = build_design(feats, coh, sorted(sp.image_id), CLIN["predictors"], "r2")
    return pred, out, X


@pytest.mark.parametrize("name", ["radscore", *CLASSIFIERS, "clinical", "nomogram", "combined"])
def test_every_bundle_round_trips_to_identical_probabilities(fitted, name):
    pred, out, X = fitted
    model, meta = load_bundle(out / "models" / name)
    p = pred[(pred.model == name) & (pred.split != "cv")].set_index("image_id").probability
    got = model.predict_proba(X.loc[(slice(None), list(p.index)), :])[:, 1]
    np.testing.assert_array_equal(got, p.to_numpy())
    assert meta["model"] == name and meta["task"] == "metastasis"
    assert 0 < meta["threshold"] < 1 and 0 <= meta["cv_auc"] <= 1
    assert meta["selected_features"] and meta["radscore_formula"].startswith("rad_score = ")
    assert meta["versions"]["scikit-learn"] and meta["pyradiomics"].startswith("setting:")
    assert meta["reproducibility"] == {"copy_reader": "r2", "icc_form": "ICC2", "icc_threshold": 0.75,
                                       "source": "second reader"}


def test_xgboost_model_is_stored_inside_skops(fitted):
    _, out, _ = fitted
    model, meta = load_bundle(out / "models" / "xgb")
    assert type(model.steps[-1][1]).__name__ == "XGBClassifier"
    assert meta["hyperparameters"] == {"max_depth": 2, "n_estimators": 50}
    assert "xgboost.core.Booster" in sio.get_untrusted_types(file=out / "models" / "xgb" / MODEL_FILE)


def test_saving_the_same_model_twice_gives_identical_bytes(fitted, tmp_path):
    _, out, _ = fitted
    model, _ = load_bundle(out / "models" / "rf")
    save_bundle(model, tmp_path / "a", META)
    save_bundle(model, tmp_path / "b", META)
    assert (tmp_path / "a" / MODEL_FILE).read_bytes() == (tmp_path / "b" / MODEL_FILE).read_bytes()
    assert (tmp_path / "a" / META_FILE).read_bytes() == (tmp_path / "b" / META_FILE).read_bytes()


def test_a_tampered_model_file_is_refused(fitted, tmp_path):
    _, out, _ = fitted
    model, _ = load_bundle(out / "models" / "lr")
    save_bundle(model, tmp_path / "t", META)
    path = tmp_path / "t" / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UsradError, match="modified after it was written"):
        load_bundle(tmp_path / "t")


def test_a_model_with_an_untrusted_type_is_refused_even_with_a_matching_hash(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), np.r_[np.zeros(20), np.ones(20)]
    evil = GradientBoostingClassifier(n_estimators=3).fit(X, y)
    d = tmp_path / "evil"
    d.mkdir()
    sio.dump(evil, d / MODEL_FILE)  # written by someone else, sidecar forged to match
    (d / META_FILE).write_text(json.dumps({"format": "usrad-bundle/1", "model_file": MODEL_FILE,
                                           "model_sha256": file_sha256(d / MODEL_FILE)}))
    assert "sklearn.ensemble._gb.GradientBoostingClassifier" not in TRUSTED_TYPES
    with pytest.raises(UsradError, match="GradientBoostingClassifier"):
        load_bundle(d)


def test_missing_or_foreign_bundle_metadata_is_a_user_error(tmp_path):
    with pytest.raises(UsradError, match="not found"):
        load_bundle(tmp_path / "nothing")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / META_FILE).write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(UsradError, match="Unknown model bundle format"):
        read_bundle_meta(tmp_path / "x")


def test_bundle_files_are_plain_zip_without_pickles(fitted):
    _, out, _ = fitted
    names = zipfile.ZipFile(out / "models" / "combined" / MODEL_FILE).namelist()
    assert "schema.json" in names
    assert all(n == "schema.json" or n.endswith((".npy", ".json", ".bin")) for n in names), names
