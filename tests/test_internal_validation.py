"""Harrell's optimism-corrected bootstrap (usrad.validation): honest on a known truth and under the null,
deterministic, resamples built correctly, and the workflow plans it only with internal_validation: bootstrap."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_workflow import planned_jobs

from usrad.errors import UsradError
from usrad.models import fit_task, synthetic_modelling_data
from usrad.validation import (
    COLUMNS,
    _development,
    draw_units,
    model_metrics,
    optimism_bootstrap,
    resample_inputs,
    validation_markdown,
)

REPO = Path(__file__).resolve().parents[1]
TASK = {"name": "metastasis", "label": "n_positive_nodes >= 1"}
NO_CLIN = {"predictors": [], "categorical": [], "missing": "refuse"}
CLIN = {"predictors": ["age", "us_size_mm", "us_node_suspicious", "birads", "grade"],
        "categorical": ["birads", "grade"], "missing": "refuse"}
#: Light pipeline: 3-fold CV, small LASSO path, one classifier with a 2-point grid (tuned inside every resample).
LIGHT = {"cv_folds": 3, "classifiers": ["lr"], "search_spaces": {"lr": {"C": [0.1, 1.0]}},
         "lasso": {"cv_folds": 3, "n_C": 8}}
QUIET = dict(progress=lambda line: None)


def _all_train(cohort):
    return pd.DataFrame({"patient_id": cohort.patient_id, "image_id": cohort.image_id, "split": "train",
                         "split_group": cohort.patient_id})


def _prefixed(table, prefix):
    return table.assign(patient_id=prefix + table.patient_id, image_id=prefix + table.image_id)


# --------------------------------------------------------------------------- resamples
def test_resample_copies_drawn_patients_as_train_and_keeps_originals_as_test():
    feats, coh = synthetic_modelling_data(n_patients=40, n_features=6, seed=2, second_image_fraction=0.5)
    dev = _development(coh, _all_train(coh), TASK)
    drawn = draw_units(dev, 7)
    f, c, s = resample_inputs(feats, coh, dev, drawn)
    assert s.image_id.is_unique and set(c.image_id) == set(s.image_id) and set(f.image_id) == set(s.image_id)
    test = s[s.split == "test"]
    assert sorted(test.image_id) == sorted(coh.image_id + "#0")  # every original row once, as the test set
    train = s[s.split == "train"]
    # one train patient per draw; a unit drawn k times has copies #1..#k, all in one CV group
    assert train.patient_id.nunique() == len(drawn)
    counts = pd.Series(drawn).value_counts()
    twice = counts.index[counts >= 2][0]
    copies = train[train.patient_id.str.rsplit("#", n=1).str[0] == twice]
    assert set(copies.patient_id.str.rsplit("#", n=1).str[1].astype(int)) == set(range(1, counts[twice] + 1))
    assert copies.split_group.nunique() == 1
    # stratified: each class keeps its number of patients
    lab = (coh.groupby("patient_id").n_positive_nodes.max() >= 1)
    assert lab.loc[list(drawn)].sum() == lab.sum()
    # feature values travel with the copy
    orig = feats.set_index(["image_id", "reader"])
    row = f[f.image_id.str.endswith("#1")].iloc[0]
    assert row["inf_0"] == orig.loc[(row.image_id.rsplit("#", 1)[0], row.reader), "inf_0"]


def test_unknown_model_is_refused_naming_it():
    feats, coh = synthetic_modelling_data(n_patients=40, n_features=6, seed=2)
    with pytest.raises(UsradError) as err:
        optimism_bootstrap(feats, coh, _all_train(coh), TASK, LIGHT, NO_CLIN, seed=1, n_resamples=2,
                           models=["radscore", "nomogram", "svm"], **QUIET)
    text = str(err.value)
    assert "'nomogram'" in text and "'svm'" in text and "radscore, lr" in text


# --------------------------------------------------------------------------- honesty
def test_corrected_auc_is_closer_to_fresh_sample_auc_than_apparent(tmp_path):
    """Known truth: 3 development samples of 150 patients (30 features, 5 informative); each model's AUC on 3,000
    fresh patients vs the apparent and the corrected AUC (12 resamples), averaged over the 3 samples."""
    errs = {"apparent": [], "corrected": []}
    for seed in (1, 2, 3):
        f, c = synthetic_modelling_data(n_patients=150, n_features=30, signal=2.0, feature_noise=1.5, seed=seed)
        ff, fc = synthetic_modelling_data(n_patients=3000, n_features=30, signal=2.0, feature_noise=1.5,
                                          seed=seed + 1000, second_image_fraction=0)
        ff, fc = _prefixed(ff, "F"), _prefixed(fc, "F")
        split = pd.concat([_all_train(c), _all_train(fc).assign(split="test")], ignore_index=True)
        pred = fit_task(pd.concat([f, ff]), pd.concat([c, fc]), split, TASK, LIGHT, NO_CLIN, seed=seed)
        tab = optimism_bootstrap(f, c, _all_train(c), TASK, LIGHT, NO_CLIN, seed=seed, n_resamples=12,
                                 models=["radscore", "lr"], n_jobs=2, **QUIET).set_index(["model", "metric"])
        for model in ("radscore", "lr"):
            g = pred[(pred.model == model) & (pred.split == "test")]
            fresh = model_metrics(g.y, g.probability)["auc"]
            row = tab.loc[(model, "auc")]
            assert row.n_resamples == 12 and row.n_failed == 0
            assert row.apparent == pytest.approx(model_metrics(*_train(pred, model))["auc"])
            errs["apparent"].append(row.apparent - fresh)
            errs["corrected"].append(row.corrected - fresh)
    apparent, corrected = np.mean(errs["apparent"]), np.mean(errs["corrected"])
    assert apparent > 0.025  # the apparent AUC is optimistic
    assert abs(corrected) < 0.035 and abs(corrected) < apparent


def _train(pred, model):
    g = pred[(pred.model == model) & (pred.split == "train")]
    return g.y, g.probability


def test_permuted_labels_apparent_auc_above_chance_corrected_at_chance():
    """Null: labels permuted between patients; the clinical model keeps every predictor (8 df, unpenalised)."""
    mc = {"cv_folds": 3, "clinical_p_threshold": 1.0, "lasso": {"cv_folds": 3, "n_C": 5}}
    for seed in (1, 2):
        f, c = synthetic_modelling_data(n_patients=100, n_features=10, seed=seed)
        per_patient = c.groupby("patient_id").n_positive_nodes.first()
        perm = pd.Series(np.random.default_rng(seed).permutation(per_patient.to_numpy()), index=per_patient.index)
        c["n_positive_nodes"] = c.patient_id.map(perm)
        tab = optimism_bootstrap(f, c, _all_train(c), TASK, mc, CLIN, seed=seed, n_resamples=15,
                                 models=["clinical"], n_jobs=2, **QUIET).set_index(["model", "metric"])
        auc_row, slope = tab.loc[("clinical", "auc")], tab.loc[("clinical", "calibration_slope")]
        assert auc_row.apparent > 0.6
        assert abs(auc_row.corrected - 0.5) < 0.07
        assert slope.apparent == pytest.approx(1.0, abs=1e-3)  # unpenalised logistic: apparent slope is 1
        assert slope.corrected < 0.6  # under the null the honest slope is far below 1 (overfitted)


# --------------------------------------------------------------------------- determinism, failures, output
@pytest.fixture(scope="module")
def small():
    feats, coh = synthetic_modelling_data(n_patients=60, n_features=8, seed=5)
    return feats, coh


def test_same_seed_gives_the_identical_table_for_one_and_two_jobs(small):
    feats, coh = small
    mc = dict(LIGHT, classifiers=[], lasso={"cv_folds": 3, "n_C": 5}, combined_classifiers=["lr"])
    lines = []
    one = optimism_bootstrap(feats, coh, _all_train(coh), TASK, mc, CLIN, seed=3, n_resamples=3, n_jobs=1,
                             progress=lines.append)
    two = optimism_bootstrap(feats, coh, _all_train(coh), TASK, mc, CLIN, seed=3, n_resamples=3, n_jobs=2, **QUIET)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    assert list(one.columns) == COLUMNS
    assert set(one.model) == {"radscore", "clinical", "nomogram", "combined"}
    assert sum("resample" in line for line in lines) == 3 and "apparent fit" in lines[0]
    other = optimism_bootstrap(feats, coh, _all_train(coh), TASK, mc, CLIN, seed=4, n_resamples=3, **QUIET)
    assert not np.allclose(other.optimism, one.optimism)
    md = validation_markdown(one)
    assert "| nomogram | AUC |" in md and "60 development patients" in md


def test_resample_that_cannot_be_fitted_is_skipped_and_counted():
    """A class of 6 patients with cv_folds 5: resamples drawing fewer than 5 distinct positive patients fail."""
    feats, coh = synthetic_modelling_data(n_patients=60, n_features=8, seed=5)
    pos = coh.groupby("patient_id").n_positive_nodes.max().ge(1)
    keep = set(pos.index[~pos]) | set(pos.index[pos][:6])
    coh, feats = coh[coh.patient_id.isin(keep)], feats[feats.patient_id.isin(keep)]
    mc = {"cv_folds": 5, "classifiers": [], "lasso": {"cv_folds": 3, "n_C": 5}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lines = []
        tab = optimism_bootstrap(feats, coh, _all_train(coh), TASK, mc, NO_CLIN, seed=1, n_resamples=6,
                                 models=["radscore"], progress=lines.append)
    row = tab.set_index("metric").loc["auc"]
    assert 1 <= row.n_failed < 6 and row.n_resamples + row.n_failed == 6
    assert np.isfinite(row.corrected)
    skipped = [line for line in lines if "failed, skipped" in line]
    assert len(skipped) == row.n_failed
    assert all(re.search(r"only [0-4] distinct positive patients drawn; modelling.cv_folds = 5", s) for s in skipped)


# --------------------------------------------------------------------------- workflow
def _planned(workdir: Path, mode: str) -> dict[str, int]:
    cfg = {"radiomics_params": str(REPO / "config" / "radiomics.yaml"), "extraction": {"shards": 2},
           "modelling": {"internal_validation": mode, "bootstrap_resamples": 20}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    return planned_jobs(workdir)


def test_workflow_plans_internal_validation_only_with_bootstrap(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "s").mkdir()
    assert _planned(tmp_path / "b", "bootstrap").get("internal_validation") == 2  # one job per task
    split = _planned(tmp_path / "s", "split")
    assert "internal_validation" not in split and split["fit_task"] == 2


def test_bootstrap_resamples_below_ten_is_refused_naming_the_key():
    from usrad.config import validate_config

    with pytest.raises(UsradError) as err:
        validate_config({"modelling": {"internal_validation": "bootstrap", "bootstrap_resamples": 3}})
    assert "bootstrap_resamples" in str(err.value)
