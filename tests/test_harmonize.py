"""ComBatHarmonizer on known truth: a per-device additive + multiplicative shift is removed (the device can no longer
be predicted from the features), the outcome signal and a protected covariate's effect are kept, the numbers equal
neuroHarmonize's learn/apply, unseen devices are refused (or passed through when chosen), and it is deterministic."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from usrad.bundle import TRUSTED_TYPES, load_bundle, types_in
from usrad.config import validate_config
from usrad.errors import UsradError
from usrad.manifest.reading import read_frame
from usrad.models import build_design, fit_task, synthetic_modelling_data, task_signature
from usrad.models.design import harmonize_levels
from usrad.predict.model import model_inputs
from usrad.predict.patients import design_matrix
from usrad.selection import ComBatHarmonizer
from usrad.settings import modelling_settings
from usrad.split import make_split

REFERENCE = Path(__file__).parent / "data" / "combat_reference.csv"


def _cohort(n=240, p=30, seed=0, age_confounded=False, gain=(0.5, 2.0)):
    """(X with the device effect, X without it, y, age): 3 devices, y independent of device, 4 signal features
    shifted by 0.9 SD in y = 1, 3 features with a slope 0.05 per year of age; every feature gets a per-device
    offset ~ N(0, 1.5) and gain ~ U(*gain)."""
    rng = np.random.default_rng(seed)
    device = np.array(["dev_a", "dev_b", "dev_c"])[np.arange(n) % 3]
    y = (rng.permutation(n) % 2).astype(int)
    age = rng.normal(55, 10, n) + (np.where(device == "dev_c", 12.0, 0.0) if age_confounded else 0.0)
    clean = rng.normal(size=(n, p))
    clean[:, :4] += 0.9 * y[:, None]
    clean[:, 4:7] += 0.05 * (age[:, None] - 55)
    X = clean.copy()
    for d in np.unique(device):
        rows = device == d
        X[rows] = X[rows] * rng.uniform(*gain, p) + rng.normal(0, 1.5, p)
    index = pd.MultiIndex.from_arrays([[f"P{i:03d}" for i in range(n)], device], names=["patient_id", "device"])
    cols = [f"f{j:02d}" for j in range(p)]
    return (pd.DataFrame(X, index=index, columns=cols), pd.DataFrame(clean, index=index, columns=cols), y,
            pd.Series(age, index=index, name="age"))


def _cv_auc(steps, X, target, seed=0):
    """Cross-validated AUC (one-vs-rest for a multi-class target) of ``steps -> scaler -> logistic``; every step
    is fitted on the training folds only."""
    model = make_pipeline(*steps, StandardScaler(), LogisticRegression(max_iter=2000))
    proba = cross_val_predict(model, X, target, cv=StratifiedKFold(5, shuffle=True, random_state=seed),
                              method="predict_proba")
    return roc_auc_score(target, proba if proba.shape[1] > 2 else proba[:, 1], multi_class="ovr")


def test_harmonisation_removes_a_known_device_effect_and_keeps_the_signal():
    X, clean, y, _ = _cohort()
    device = X.index.get_level_values("device").to_numpy()
    before = _cv_auc([], X, device)
    after = _cv_auc([ComBatHarmonizer(by="device")], X, device)
    assert before > 0.9 and after < 0.6, (before, after)
    truth = _cv_auc([], clean, y)  # y is not confounded with the device: harmonising must not lose it
    harmonised = _cv_auc([ComBatHarmonizer(by="device")], X, y)
    assert abs(harmonised - truth) < 0.03, (truth, harmonised)


def test_a_protected_covariate_keeps_its_effect_when_it_is_confounded_with_the_device():
    """Additive device effects only: ComBat's covariate effect is common to the devices, which a per-device gain
    on the features (the other tests) would break for the age slope itself."""
    X, clean, _, age = _cohort(age_confounded=True, gain=(1.0, 1.0))  # dev_c's patients are 12 years older
    Xa = X.assign(age=age)  # a column: consumed by the step, not in its output
    cols = ["f04", "f05", "f06"]  # slope 0.05 per year

    def age_r(frame):
        return np.mean([np.corrcoef(age, frame[c])[0, 1] for c in cols])

    protected = ComBatHarmonizer(by="device", covariates=["age"]).fit_transform(Xa)
    unprotected = ComBatHarmonizer(by="device").fit_transform(X)  # age, a column of Xa, would be a feature
    assert list(protected.columns) == list(unprotected.columns) == list(X.columns)
    truth = age_r(clean)
    assert abs(age_r(protected) - truth) < 0.05 < truth - age_r(unprotected), (truth, age_r(protected),
                                                                               age_r(unprotected))


def test_fit_on_train_rows_and_apply_to_test_rows_equal_neuroharmonize():
    """tests/data/combat_reference.csv: inputs (part, device, age, f0..f5) and neuroHarmonize 2.5.2's output
    (h0..h5) of ``harmonizationLearn`` on the train rows (covariate age) and ``harmonizationApply`` on the test
    rows; :func:`_library_reference` is the script that wrote it."""
    ref = pd.read_csv(REFERENCE)
    X = ref.set_index(["part", "device"])[["age"] + [f"f{j}" for j in range(6)]]
    train = X.index.get_level_values("part") == "train"
    h = ComBatHarmonizer(by="device", covariates=["age"]).fit(X[train])
    got = np.vstack([h.transform(X[train]), h.transform(X[~train])])
    want = np.vstack([ref.loc[train, [f"h{j}" for j in range(6)]], ref.loc[~train, [f"h{j}" for j in range(6)]]])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.abs(want - X[[f"f{j}" for j in range(6)]].to_numpy()[np.r_[np.flatnonzero(train),
                                                                          np.flatnonzero(~train)]]).max() > 1


def _library_reference():  # pragma: no cover - the generator of the stored reference (needs neuroHarmonize 2.5.2)
    from neuroHarmonize import harmonizationApply, harmonizationLearn
    rng = np.random.default_rng(2007)
    n, p = 60, 6
    device = rng.permutation(np.repeat(["A", "B", "C"], [24, 18, 18]))
    age = rng.integers(30, 80, n).astype(float)
    X = rng.normal(size=(n, p)) + 0.03 * age[:, None]
    for d, (g, o) in {"A": (1.0, 0.0), "B": (1.6, 0.8), "C": (0.6, -0.5)}.items():
        X[device == d] = X[device == d] * g + o
    rank = pd.Series(device).groupby(device).cumcount().to_numpy()
    part = np.where(rank < np.vectorize({"A": 19, "B": 13, "C": 13}.get)(device), "train", "test")
    cov = pd.DataFrame({"SITE": device, "age": age})
    tr = part == "train"
    model, h_train = harmonizationLearn(X[tr], cov[tr].reset_index(drop=True))
    H = np.empty_like(X)
    H[tr], H[~tr] = h_train, harmonizationApply(X[~tr], cov[~tr].reset_index(drop=True), model)
    df = pd.DataFrame({"part": part, "device": device, "age": age})
    for j in range(p):
        df[f"f{j}"] = X[:, j]
    for j in range(p):
        df[f"h{j}"] = H[:, j]
    return df


def test_the_stored_reference_is_what_neuroharmonize_writes():
    pytest.importorskip("neuroHarmonize")
    pd.testing.assert_frame_equal(_library_reference(), pd.read_csv(REFERENCE), rtol=1e-12)


def test_an_unseen_device_is_refused_naming_it_or_passed_through_when_chosen():
    X, _, _, _ = _cohort(n=90, p=8)
    train = X.index.get_level_values("device") != "dev_c"
    h = ComBatHarmonizer(by="device").fit(X[train])
    with pytest.raises(UsradError, match=r"value\(s\) of 'device' not seen in the training rows: \['dev_c'\]"):
        h.transform(X)
    ident = ComBatHarmonizer(by="device", unseen="identity").fit(X[train])
    out = ident.transform(X)
    pd.testing.assert_frame_equal(out[~train], X[~train])  # the new device: exactly as given
    pd.testing.assert_frame_equal(out[train], h.transform(X[train]))
    assert not np.allclose(out[train], X[train])
    with pytest.raises(UsradError, match="'centre' is neither an index level nor a column"):
        ComBatHarmonizer(by="centre").fit(X)
    with pytest.raises(UsradError, match=r"fewer than 2 training rows: \['dev_c'\]"):
        ComBatHarmonizer(by="device").fit(X[train | (np.arange(90) == 2)])


def test_copies_get_their_features_correction_and_the_fit_is_deterministic():
    X, _, y, _ = _cohort(n=90, p=8)
    XX = X.assign(**{"f00@r2": X["f00"] + 0.01, "f01@r2": np.where(np.arange(90) % 4 == 0, np.nan, X["f01"])})
    a = ComBatHarmonizer(by="device").fit(XX)
    out = a.transform(XX)
    assert a.harmonized_ == list(X.columns) and list(out.columns) == list(XX.columns)
    pd.testing.assert_frame_equal(out[list(X.columns)], ComBatHarmonizer(by="device").fit_transform(X))
    ratio = (out["f00@r2"] - out["f00"]) / 0.01  # the same affine map per device: a constant shift is rescaled
    assert ratio.groupby(level="device").std().max() < 1e-9 and ratio.nunique() > 1
    assert out["f01@r2"].isna().sum() == 23
    b = ComBatHarmonizer(by="device").fit(XX)
    assert out.equals(b.transform(XX)) and np.array_equal(a.gamma_, b.gamma_)
    const = X.assign(f07=3.0)
    pd.testing.assert_series_equal(ComBatHarmonizer(by="device").fit_transform(const)["f07"], const["f07"])


def test_a_fitted_harmonizer_round_trips_through_skops_with_trusted_types_only(tmp_path):
    X, _, _, _ = _cohort(n=60, p=5)
    h = ComBatHarmonizer(by="device").fit(X)
    data = sio.dumps(h)
    assert set(types_in(data)) <= set(TRUSTED_TYPES)
    back = sio.loads(data, trusted=types_in(data))
    pd.testing.assert_frame_equal(back.transform(X), h.transform(X))


@parametrize_with_checks([ComBatHarmonizer()])
def test_the_harmonizer_passes_the_scikit_learn_estimator_checks(estimator, check):
    """With ``by=None`` (the step off: identity), on arrays; arrays carry no batch labels, so the ComBat itself is
    tested on DataFrames above."""
    check(estimator)


def test_the_signature_gets_the_harmonize_step_only_when_on_and_fits_with_the_batch_as_an_index_level():
    cfg = modelling_settings({})
    assert [n for n, _ in task_signature(["f00"], cfg, "r2", 0).steps] == ["columns", "icc", "nzv", "scale", "lasso"]
    X, _, y, age = _cohort(n=150, p=10)
    rows = pd.DataFrame({"device": X.index.get_level_values("device"), "age": age.to_numpy()})
    task = {"name": "t", "label": "n_positive_nodes >= 1"}
    on = modelling_settings({"harmonize": {"by": "device", "covariates": ["age"]}})
    Xh = harmonize_levels(X.droplevel("device"), rows, on["harmonize"], task)
    assert list(Xh.index.names) == ["patient_id", "device", "age"]
    sig = task_signature(list(X.columns), on, None, 0)
    assert [n for n, _ in sig.steps][:3] == ["columns", "harmonize", "icc"]
    sig.fit(Xh, y)
    assert sig.named_steps["harmonize"].batches_ == ["dev_a", "dev_b", "dev_c"]
    assert len(sig.transform(Xh).columns) >= 1
    inputs = model_inputs(sig, {})  # usrad predict: what the bundle reads, and the new patients' design matrix
    assert inputs["harmonize"] == {"by": "device", "covariates": ["age"]}
    cohort = rows.assign(patient_id=X.index.get_level_values("patient_id"), image_id=[f"I{i}" for i in range(150)])
    new = design_matrix(cohort, None, {**inputs, "radiomics": [], "clinical": ["age"], "clinical_used": ["age"]})
    assert list(new.index.names) == ["patient_id", "image_id", "device", "age"]
    assert list(new.index.get_level_values("device")) == list(rows["device"])
    with pytest.raises(UsradError, match="modelling.harmonize.covariates.*'n_positive_nodes' is an outcome"):
        harmonize_levels(X, rows.assign(n_positive_nodes=1), {"by": "device", "covariates": ["n_positive_nodes"]},
                         task)
    with pytest.raises(UsradError, match="column 'centre'"):
        harmonize_levels(X, rows, {"by": "centre", "covariates": []}, task)


def test_a_manifest_without_the_batch_column_is_refused_naming_the_key(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id,image,mask,age\nP1,a.nrrd,b.nrrd,50\n")
    cfg = {"modelling": {"harmonize": {"by": "device", "covariates": ["age", "bmi"]}}}
    _, _, problems = read_frame(manifest, cfg)
    text = [str(p) for p in problems]
    assert text == [f"row 0, column 'device', file {manifest}: harmonisation batch (config modelling.harmonize.by) "
                    "column is missing from the header",
                    f"row 0, column 'bmi', file {manifest}: protected covariate (config modelling.harmonize.covariates) "
                    "column is missing from the header"]
    assert read_frame(manifest, {"modelling": {"harmonize": {"by": None, "covariates": ["bmi"]}}})[2] == []


def test_the_config_key_is_off_by_default_and_its_mode_is_checked():
    assert validate_config({})["modelling"]["harmonize"] == {"by": None, "covariates": [], "unseen": "refuse"}
    with pytest.raises(UsradError, match=r"modelling\.harmonize\.unseen"):
        validate_config({"modelling": {"harmonize": {"by": "device", "unseen": "pooled"}}})


def test_harmonising_by_an_outcome_the_batch_as_covariate_or_the_refused_external_column_is_refused_at_once():
    tasks = [{"name": "recurrence", "label": "recurrence == 1"}]  # a task's label column is an outcome too
    cfg = {"tasks": tasks, "modelling": {"harmonize": {"by": "n_positive_nodes", "covariates": ["recurrence", "age"]}}}
    with pytest.raises(UsradError) as err:
        validate_config(cfg)
    messages = [p.message for p in err.value.problems]
    assert len(messages) == 2, messages  # the batch and one covariate; age is fine
    assert "modelling.harmonize.by': 'n_positive_nodes' is an outcome" in messages[0]
    assert "modelling.harmonize.covariates': 'recurrence' is an outcome" in messages[1]
    with pytest.raises(UsradError, match="is the batch column") as err:
        validate_config({"modelling": {"harmonize": {"by": "device", "covariates": ["device"]}}})
    assert len(err.value.problems) == 1
    external = {"split": {"by_column": "device", "external_values": ["D"], "test_size": 0}}
    with pytest.raises(UsradError, match="also split.by_column") as err:
        validate_config({**external, "modelling": {"harmonize": {"by": "device"}}})
    assert len(err.value.problems) == 1
    validated = validate_config({**external, "modelling": {"harmonize": {"by": "device", "unseen": "identity"}}})
    assert validated["modelling"]["harmonize"]["unseen"] == "identity"


def test_fit_task_with_harmonize_on_writes_bundles_that_carry_the_step_and_score_as_in_training(tmp_path):
    """The whole radiomics branch (radiomics only, one LR grid point): device B's features are 1.5 x + 20."""
    feats, coh = synthetic_modelling_data(n_patients=160, n_features=20, signal=3.0, seed=8)
    coh["device"] = np.where(coh["patient_id"].str[-1].astype(int) % 2 == 0, "A", "B")
    cols = [c for c in feats.columns if c not in ("patient_id", "image_id", "reader")]
    on_b = feats["image_id"].map(dict(zip(coh["image_id"], coh["device"]))) == "B"
    feats.loc[on_b, cols] = feats.loc[on_b, cols] * 1.5 + 20
    task = {"name": "metastasis", "label": "n_positive_nodes >= 1"}
    split = make_split(coh, [task], seed=2)
    params = "setting:\n  binWidth: 25\n"
    meta = {"params": params, "params_sha256": hashlib.sha256(params.encode("utf-8")).hexdigest()}
    cfg = {"classifiers": ["lr"], "search_spaces": {"lr": {"C": [1.0]}}, "lasso": {"cv_folds": 5, "n_C": 10},
           "harmonize": {"by": "device", "covariates": ["age"]}}
    pred = fit_task(feats, coh, split, task, cfg, {"predictors": []}, seed=4, n_jobs=1, out_dir=tmp_path,
                    feature_meta=meta)
    model, _ = load_bundle(tmp_path / "models" / "radscore")
    step = model.named_steps["harmonize"]
    assert step.batches_ == ["A", "B"] and step.covariates == ["age"]
    assert step.gamma_[1].mean() > step.gamma_[0].mean()  # B's offset, learned on the training rows only
    p = pred[(pred.model == "radscore") & (pred.split == "test")].set_index("image_id").probability
    rows = coh.set_index("image_id").loc[list(p.index)].reset_index()
    X, _ = build_design(feats, coh, list(p.index), (), "r2")
    X = harmonize_levels(X, rows, {"by": "device", "covariates": ["age"]})
    np.testing.assert_array_equal(model.predict_proba(X)[:, 1], p.to_numpy())
