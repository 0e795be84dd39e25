"""usrad predict: a bundle scores new patients with exactly the training run's numbers, and refuses what it
cannot score correctly (missing clinical column, other feature set, empty mask) with the manifest messages."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from usrad.errors import UsradError

REPO = Path(__file__).resolve().parents[1]
TASK = "metastasis"
N_BOOT = 100
# one_se_rule off: on 60 training patients the 1-SE rule (corrected SE) may honestly pick the empty signature,
# and these tests need a signature with features
FAST = {"classifiers": ["lr", "nb"], "combined_classifiers": ["nb"], "lasso": {"cv_folds": 5, "n_C": 10, "one_se_rule": False}}


def fitted_task(tmp_path_factory, small_features, default_config) -> dict:
    """Fit the metastasis task on the small session cohort once per session (shared with test_card.py through
    a folder under the session's base temp dir), with its performance table and model cards."""
    from usrad.reporting.card import write_task_cards
    from usrad.reporting.evaluation import bundle_thresholds, read_bundles, task_performance
    from usrad.extract import feature_table_metadata, row_content
    from usrad.features import write_feature_table
    from usrad.models import fit_task, write_predictions
    from usrad.split import make_split

    root = tmp_path_factory.getbasetemp() / "predict_fitted_task"
    task_dir = root / "results" / TASK
    cfg = copy.deepcopy(default_config)
    cfg["modelling"] = {**cfg.get("modelling", {}), **FAST}
    cfg["tasks"] = [t for t in cfg["tasks"] if t["name"] == TASK]
    info = {"root": root, "task_dir": task_dir, "cfg": cfg, "features_path": root / "features.parquet",
            "memory": root / "predictions_in_memory.parquet", "cards": task_dir / "card"}
    if (root / "done").exists():
        return info
    table, cohort = small_features
    # as `usrad extract` writes it: with the content SHA-256 of every row (predict matches rows by content)
    meta = feature_table_metadata(REPO / "config" / "radiomics.yaml", row_content(cohort))
    write_feature_table(table, info["features_path"], meta)
    split = make_split(cohort, cfg["tasks"], seed=cfg["seed"])
    pred = fit_task(table, cohort, split, cfg["tasks"][0], cfg["modelling"], cfg["clinical"], seed=cfg["seed"],
                    n_jobs=2, out_dir=task_dir, feature_meta=meta)
    write_predictions(pred, task_dir / "predictions.tsv")
    pred.to_parquet(info["memory"])
    thr = bundle_thresholds(read_bundles(task_dir / "models"))
    perf = task_performance(pred, thr, N_BOOT, cfg["seed"], 1)
    (task_dir / "tables").mkdir(parents=True, exist_ok=True)
    perf.to_csv(task_dir / "tables" / "table3_performance.tsv", sep="\t", index=False)
    write_task_cards(task_dir, info["cards"], demo=True, task=cfg["tasks"][0])
    (root / "done").write_text("ok\n")
    return info


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, small_features, default_config):
    return fitted_task(tmp_path_factory, small_features, default_config)


def new_patient_manifest(source_manifest: Path, patients, out: Path, drop=("n_positive_nodes", "mask_reader2")) -> Path:
    """A manifest of some patients of ``source_manifest`` without the outcome (absolute paths)."""
    m = pd.read_csv(source_manifest, sep="\t", dtype=str, keep_default_na=False)
    m = m[m["patient_id"].isin(list(patients))]
    for c in ("image", "mask", "mask_reader2"):
        m[c] = [str((source_manifest.parent / p).resolve()) for p in m[c]]
    m = m.drop(columns=[c for c in drop if c in m.columns])
    out.parent.mkdir(parents=True, exist_ok=True)
    m.to_csv(out, index=False)
    return out


def _test_patients(fitted, model="nomogram") -> pd.DataFrame:
    mem = pd.read_parquet(fitted["memory"])
    return mem[(mem.model == model) & (mem.split == "test")].set_index("image_id")


def test_predicting_the_test_patients_gives_the_training_runs_probabilities_and_rad_scores(fitted, small_cohort,
                                                                                          tmp_path):
    from usrad.models import read_predictions
    from usrad.predict import predict_manifest, read_predictions_table

    written = read_predictions(fitted["task_dir"] / "predictions.tsv")
    for model in ("nomogram", "radscore", "lr", "clinical", "combined"):
        expected = _test_patients(fitted, model)
        manifest = new_patient_manifest(small_cohort, expected["patient_id"].unique(), tmp_path / f"{model}.csv")
        out = tmp_path / f"{model}_preds.csv"
        got = predict_manifest(fitted["task_dir"] / "models" / model, manifest, out=out,
                               features=fitted["features_path"]).set_index("image_id")
        assert len(got) == len(expected) > 10
        exp = expected.loc[got.index]
        assert np.abs(got["probability"] - exp["probability"]).max() <= 1e-12, model
        if model == "clinical":
            assert got["rad_score"].isna().all()
        else:
            assert np.abs(got["rad_score"] - exp["rad_score"]).max() <= 1e-12, model
        # the file round-trips at full precision and agrees with the written predictions table (10 digits)
        back = read_predictions_table(out).set_index("image_id").loc[got.index]
        assert (back["probability"].to_numpy() == got["probability"].to_numpy()).all()
        w = written[(written.model == model) & (written.split == "test")].set_index("image_id").loc[got.index]
        assert np.allclose(back["probability"], w["probability"], rtol=1e-9, atol=0), model
        thr = json.loads((fitted["task_dir"] / "models" / model / "bundle.json").read_text())["threshold"]
        assert ((got["probability"] >= thr) == (got["decision"] == "positive")).all()


def test_extracting_three_new_patients_from_their_images_reproduces_the_training_probabilities(fitted, small_cohort,
                                                                                               tmp_path):
    from usrad.cli import main

    expected = _test_patients(fitted)
    patients = sorted(expected["patient_id"].unique())[:3]
    manifest = new_patient_manifest(small_cohort, patients, tmp_path / "new.csv")
    out = tmp_path / "preds.tsv"
    assert main(["predict", "--model", str(fitted["task_dir"] / "models" / "nomogram"), "--manifest", str(manifest),
                 "--out", str(out)]) == 0
    got = pd.read_csv(out, sep="\t", dtype={"patient_id": str, "image_id": str}).set_index("image_id")
    assert sorted(got["patient_id"].unique()) == patients
    exp = expected.loc[got.index]
    assert np.abs(got["probability"] - exp["probability"]).max() <= 1e-12
    assert np.abs(got["rad_score"] - exp["rad_score"]).max() <= 1e-12
    # nomogram points: the total read off the scales gives back the model's probability
    from usrad.bundle import load_bundle
    from usrad.nomogram import nomogram_spec

    nomo = nomogram_spec(*load_bundle(fitted["task_dir"] / "models" / "nomogram"))["nomogram"]
    pts = [c for c in got.columns if c.startswith("points_")]
    assert pts[0] == "points_rad_score" and len(pts) == len(nomo.variables)
    assert np.allclose(got[pts].sum(axis=1), got["total_points"], rtol=0, atol=1e-9)
    assert np.allclose([nomo.probability(t) for t in got["total_points"]], got["probability"], rtol=1e-9, atol=0)
    assert (got[pts] >= -1e-9).all().all() and (got[pts] <= 100 + 1e-9).all().all()


def test_top_contributions_are_coefficient_times_z_terms_or_the_rad_score_terms_for_nonlinear_models(
        fitted, small_cohort, tmp_path):
    from usrad.bundle import load_bundle
    from usrad.predict import contributions, predict_manifest

    expected = _test_patients(fitted, "radscore")
    manifest = new_patient_manifest(small_cohort, expected["patient_id"].unique()[:5], tmp_path / "m.csv")
    got = predict_manifest(fitted["task_dir"] / "models" / "radscore", manifest, features=fitted["features_path"])
    pipe, meta = load_bundle(fitted["task_dir"] / "models" / "radscore")
    from usrad.predict import design_matrix, model_inputs, validate_new_patients
    from usrad.features import read_feature_table

    inputs = model_inputs(pipe, meta)
    X = design_matrix(validate_new_patients(manifest, inputs), read_feature_table(fitted["features_path"])[0], inputs)
    terms, basis = contributions(pipe, X)
    assert basis == "log-odds of the model"
    assert list(terms.columns) == meta["selected_features"]
    # the terms add up to the rad-score (intercept + Σ β·z)
    lasso = pipe.named_steps["lasso"]
    assert np.allclose(terms.sum(axis=1).to_numpy() + lasso.intercept_, got["rad_score"], rtol=0, atol=1e-12)
    first = got["top_contributions"].iloc[0].split("; ")[0]
    top = terms.iloc[0].abs().idxmax()
    assert first.startswith(top + " ") and float(first.rsplit(" ", 1)[1]) == pytest.approx(terms.iloc[0][top], abs=5e-4)
    # a classifier without an additive form (the small run's combined model is naive Bayes): rad-score terms
    comb, comb_meta = load_bundle(fitted["task_dir"] / "models" / "combined")
    assert comb_meta["classifier"] == "nb"
    cterms, cbasis = contributions(comb, design_matrix(validate_new_patients(manifest, model_inputs(comb, comb_meta)),
                                                       read_feature_table(fitted["features_path"])[0],
                                                       model_inputs(comb, comb_meta)))
    assert cbasis == "rad-score terms" and list(cterms.columns) == meta["selected_features"]
    assert np.allclose(cterms.to_numpy(), terms.to_numpy(), rtol=0, atol=1e-12)


def test_missing_clinical_column_is_refused_with_the_manifest_validation_message(fitted, small_cohort, tmp_path):
    from usrad.bundle import load_bundle
    from usrad.predict import model_inputs, predict_manifest

    pipe, meta = load_bundle(fitted["task_dir"] / "models" / "nomogram")
    used = model_inputs(pipe, meta)["clinical_used"]
    assert used, "the nomogram uses at least one clinical predictor"
    pids = _test_patients(fitted)["patient_id"].unique()[:3]
    manifest = new_patient_manifest(small_cohort, pids, tmp_path / "m.csv", drop=("n_positive_nodes", "mask_reader2", used[0]))
    with pytest.raises(UsradError) as err:
        predict_manifest(fitted["task_dir"] / "models" / "nomogram", manifest, features=fitted["features_path"])
    (p,) = err.value.problems
    assert p.column == used[0] and p.file == str(manifest)
    assert "clinical predictor (config clinical.predictors) column is missing from the header" in p.message
    # a variable the model does not use may be absent: the radiomics-only model scores the same file
    out = predict_manifest(fitted["task_dir"] / "models" / "radscore", manifest, features=fitted["features_path"])
    assert len(out) == len(pids)


def test_missing_clinical_value_is_refused_and_an_unseen_level_is_scored_as_reference_with_a_warning(
        fitted, small_cohort, tmp_path):
    from usrad.bundle import load_bundle
    from usrad.predict import UnseenLevelWarning, model_inputs, predict_manifest

    model = fitted["task_dir"] / "models" / "combined"  # uses every clinical predictor
    pipe, meta = load_bundle(model)
    inputs = model_inputs(pipe, meta)
    pids = sorted(_test_patients(fitted)["patient_id"].unique())[:3]
    manifest = new_patient_manifest(small_cohort, pids, tmp_path / "m.csv")
    m = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    num = [c for c in inputs["clinical_used"] if c not in inputs["categorical"]][0]
    m.loc[1, num] = ""
    m.to_csv(manifest, index=False)
    with pytest.raises(UsradError) as err:
        predict_manifest(model, manifest, features=fitted["features_path"])
    (p,) = err.value.problems
    assert (p.patient, p.column, p.file, p.row) == (pids[1], num, str(manifest), 2)
    assert "clinical value is missing" in p.message
    # an unseen level: warned about, and scored exactly like its reference level
    cat = inputs["categorical"][0]
    m = pd.read_csv(new_patient_manifest(small_cohort, pids, tmp_path / "m2.csv"), dtype=str, keep_default_na=False)
    ref = str(pipe.named_steps["features"].clinical_.named_steps["encode"].reference_[cat])
    m.loc[2, cat] = ref
    m.to_csv(tmp_path / "ref.csv", index=False)
    m.loc[2, cat] = "zz"
    m.to_csv(tmp_path / "zz.csv", index=False)
    with pytest.warns(UnseenLevelWarning, match=f"patient '{pids[2]}', column '{cat}'.*'zz' was not seen"):
        zz = predict_manifest(model, tmp_path / "zz.csv", features=fitted["features_path"])
    as_ref = predict_manifest(model, tmp_path / "ref.csv", features=fitted["features_path"])
    assert (zz["probability"].to_numpy() == as_ref["probability"].to_numpy()).all()


def test_empty_mask_is_refused_naming_patient_column_and_file(fitted, small_cohort, tmp_path):
    import SimpleITK as sitk

    from usrad.predict import predict_manifest

    pids = sorted(_test_patients(fitted)["patient_id"].unique())[:2]
    manifest = new_patient_manifest(small_cohort, pids, tmp_path / "m.csv")
    m = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    mask = sitk.ReadImage(m.loc[0, "mask"])
    empty = sitk.Image(mask.GetSize(), mask.GetPixelID())
    empty.CopyInformation(mask)
    bad = tmp_path / "empty_mask.nrrd"
    sitk.WriteImage(empty, str(bad))
    m.loc[0, "mask"] = str(bad)
    m.to_csv(manifest, index=False)
    with pytest.raises(UsradError) as err:
        predict_manifest(fitted["task_dir"] / "models" / "nomogram", manifest)
    (p,) = err.value.problems
    assert (p.patient, p.column, p.file) == (pids[0], "mask", str(bad))
    assert "mask is empty" in p.message


def test_feature_table_with_other_params_or_missing_features_is_refused(fitted, small_cohort, tmp_path):
    from usrad.features import read_feature_table, write_feature_table
    from usrad.predict import predict_manifest

    table, meta = read_feature_table(fitted["features_path"])
    pids = _test_patients(fitted)["patient_id"].unique()[:3]
    manifest = new_patient_manifest(small_cohort, pids, tmp_path / "m.csv")
    model = fitted["task_dir"] / "models" / "lr"
    other = tmp_path / "other_params.parquet"
    write_feature_table(table, other, dict(meta, params_text=meta["params_text"] + "# changed\n",
                                           params_sha256="0" * 64))
    with pytest.raises(UsradError) as err:
        predict_manifest(model, manifest, features=other)
    assert err.value.problems[0].file == str(other) and "different PyRadiomics settings" in str(err.value)
    bundle = json.loads((model / "bundle.json").read_text())
    dropped = bundle["selected_features"][0]
    fewer = tmp_path / "fewer.parquet"
    write_feature_table(table.drop(columns=[dropped]), fewer, meta)
    with pytest.raises(UsradError) as err:
        predict_manifest(model, manifest, features=fewer)
    assert any(p.column == dropped and p.file == str(fewer) for p in err.value.problems)


def test_other_scikit_learn_version_than_the_bundle_warns_but_scores(fitted, small_cohort, tmp_path):
    from usrad.predict import VersionWarning, predict_manifest

    src = fitted["task_dir"] / "models" / "nomogram"
    dst = tmp_path / "nomogram"
    shutil.copytree(src, dst)
    meta = json.loads((dst / "bundle.json").read_text())
    meta["versions"]["scikit-learn"] = "0.24.2"
    (dst / "bundle.json").write_text(json.dumps(meta))
    from usrad.bundle import MANIFEST_FILE, manifest_text  # bundle.json is hashed: re-seal the edited bundle

    (dst / MANIFEST_FILE).write_text(manifest_text({n: (dst / n).read_bytes() for n in ("bundle.json", "model.skops")}))
    pids = _test_patients(fitted)["patient_id"].unique()[:2]
    manifest = new_patient_manifest(small_cohort, pids, tmp_path / "m.csv")
    with pytest.warns(VersionWarning, match="scikit-learn .* trained with 0.24.2"):
        out = predict_manifest(dst, manifest, features=fitted["features_path"])
    assert len(out) == 2
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", VersionWarning)  # the unmodified bundle: no warning
        predict_manifest(src, manifest, features=fitted["features_path"])


def test_cli_predict_reports_a_refusal_without_traceback(fitted, small_cohort, tmp_path, capsys):
    from usrad.cli import main

    manifest = new_patient_manifest(small_cohort, _test_patients(fitted)["patient_id"].unique()[:1],
                                    tmp_path / "m.csv", drop=("n_positive_nodes", "mask_reader2", "image"))
    code = main(["predict", "--model", str(fitted["task_dir"] / "models" / "nomogram"), "--manifest", str(manifest),
                 "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "column 'image'" in err and "Traceback" not in err
    assert not (tmp_path / "p.csv").exists()
