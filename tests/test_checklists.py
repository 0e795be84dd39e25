"""The reporting checklists: item counts, every filled item's source file exists, the METRICS score by the
published weights and conditions, the study.* config keys, and the feature dictionary's IBSI codes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from usrad.config import load_config
from usrad.extract import provenance
from usrad.features import write_feature_table
from usrad.reporting.checklists import main_items, metrics_score, read_standard, write_checklists
from usrad.reporting.evaluation import evaluation_settings
from usrad.reporting.feature_dictionary import feature_dictionary, write_feature_dictionary
from usrad.reporting.style import write_table

REPO = Path(__file__).resolve().parents[1]
TASK = "metastasis"
#: The METRICS item weights as published (metrics_scoring.md, section 6), typed in again for the hand computation.
W = {1: .0368, 2: .0735, 3: .0919, 4: .0438, 5: .0292, 6: .0438, 7: .0292, 8: .0337, 9: .0225, 10: .0112,
     11: .0622, 12: .0311, 13: .0415, 14: .0200, 15: .0200, 16: .0300, 17: .0200, 18: .0599, 19: .0300,
     20: .0352, 21: .0234, 22: .0176, 23: .0117, 24: .0293, 25: .0176, 26: .0375, 27: .0749, 28: .0075,
     29: .0075, 30: .0075}
FEATURES = ["original_shape2D_Sphericity", "original_firstorder_TotalEnergy", "original_glcm_Idm",
            "original_glcm_Idmn", "original_glcm_Idn", "original_glcm_MCC", "wavelet-LH_glszm_ZoneVariance",
            "log-sigma-1-0-mm-3D_gldm_DependenceEntropy"]


def _results_tree(root: Path) -> None:
    """A small finished run under root/results: a real feature table (provenance of config/radiomics.yaml), the
    real evaluation settings, and the tables the checklists read, with the columns the workflow writes."""
    res = root / "results"
    rng = np.random.default_rng(0)
    ids = pd.DataFrame({"patient_id": [f"P{i}" for i in range(6)], "image_id": [f"P{i}" for i in range(6)],
                        "reader": "r1"})
    feats = pd.concat([ids, pd.DataFrame(rng.normal(size=(6, len(FEATURES))), columns=FEATURES)], axis=1)
    write_feature_table(feats, res / "features" / "features.parquet", provenance(REPO / "config" / "radiomics.yaml"))
    bundle = {"reproducibility": {"icc_form": "ICC2", "icc_threshold": 0.75, "source": "second reader"},
              "threshold_basis": "out-of-fold CV predictions on training rows", "clinical_selected": ["ki67"],
              "versions": {"scikit-learn": "1.9.1"}}
    cfg = load_config(REPO / "config" / "config.yaml")
    t = res / TASK
    write_table(evaluation_settings(cfg, 2000, 1, {"combined": bundle}), t / "tables" / "evaluation_settings")
    (t / "models" / "combined").mkdir(parents=True)
    (t / "models" / "combined" / "bundle.json").write_text(json.dumps(bundle))
    write_table(pd.DataFrame({"task": TASK, "step": ["input (reference reader)", "icc", "lasso"],
                              "n_features_after": [8, 7, 2]}), t / "selection" / "steps")
    perf = pd.DataFrame([{"task": TASK, "model": m, "split": s, "n": n, "n_pos": p, "n_patients": n, "auc": 0.8,
                          "auc_boot_low": 0.7, "auc_boot_high": 0.9, "sensitivity": 0.7, "specificity": 0.8}
                         for m in ("radscore", "combined") for s, n, p in (("train", 60, 20), ("test", 20, 7))])
    write_table(perf, t / "tables" / "table3_performance")
    for name in ("calibration", "delong", "shap_importance"):
        write_table(pd.DataFrame({"model": ["combined"]}), t / "tables" / name)
    write_table(pd.DataFrame({"split": ["all", "train", "test"], "patients": [80, 60, 20], "images": [80, 60, 20],
                              "positive": [27, 20, 7], "negative": [53, 40, 13], "task": TASK}),
                res / "report" / "cohort_counts")
    for rel in ("split/split.tsv", "cohort/cohort.tsv", f"{TASK}/models/model_choice.tsv", "report/table1.tsv",
                f"{TASK}/figures/decision_curve.png", "report/figures/workflow.png"):
        (res / rel).parent.mkdir(parents=True, exist_ok=True)
        (res / rel).write_text("x\n")
    write_feature_dictionary(res / "features" / "features.parquet", res / "report" / "feature_dictionary.tsv")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("checklists")
    _results_tree(root)
    tables = write_checklists(root, "results", [TASK], {}, root / "results" / "report")
    return root, tables


def test_the_standards_have_58_30_and_27_main_items():
    assert len(read_standard("clear")) == 58
    assert len(read_standard("metrics")) == 30
    tripod = read_standard("tripod_ai")
    assert len(tripod) == 52 and len(main_items(tripod)) == 27
    assert abs(read_standard("metrics")["weight"].astype(float).sum() - 1) < 1e-9


def test_every_filled_item_names_files_that_exist(run):
    root, tables = run
    assert {n: len(t) for n, t in tables.items()} == {"clear": 58, "metrics": 30, "tripod_ai": 52}
    for name, table in tables.items():
        on_disk = pd.read_csv(root / "results" / "report" / f"checklist_{name}.tsv", sep="\t", dtype=str,
                              keep_default_na=False)
        assert list(on_disk["item"]) == list(table["item"])
        filled = on_disk[on_disk["status"] == "filled"]
        assert len(filled) >= 8, name
        for r in filled.itertuples():
            files = [f.strip() for f in r.source.split(",") if f.strip()]
            assert files, (name, r.item)
            assert all(f == "config" or (root / f).exists() for f in files), (name, r.item, files)
    clear = tables["clear"].set_index("item")
    assert clear.loc["23", "status"] == "filled" and "fixed bin width 5" in clear.loc["23", "value"]
    assert clear.loc["11", "status"] == "needs a person" and "study.eligibility" in clear.loc["11", "value"]
    assert "753" not in clear.loc["27", "value"] and f"{len(FEATURES)} features" in clear.loc["27", "value"]


def test_metrics_score_is_the_published_weighted_and_normalised_one(run):
    table = read_standard("metrics").assign(answer="no")
    yes = {1, 2, 3, 8, 9, 11, 12, 13, 18, 27}
    table.loc[table["item"].astype(int).isin(yes), "answer"] = "yes"
    # manual segmentation, hand-crafted tabular features: items 9 and 17 do not apply (denominator 0.9575)
    cond = {1: True, 2: False, 3: True, 4: True, 5: False}
    by_hand = 100 * sum(W[i] for i in yes - {9}) / (1 - W[9] - W[17])
    assert metrics_score(table, cond) == round(by_hand, 1) == 52.8  # 0.5055 / 0.9575
    # no segmentation at all: items 8, 9, 10 drop out of numerator and denominator
    cond_none = {1: False, 2: False, 3: True, 4: True, 5: False}
    assert metrics_score(table, cond_none) == round(
        100 * sum(W[i] for i in yes - {8, 9}) / (1 - W[8] - W[9] - W[10] - W[17]), 1)
    root, tables = run
    met = tables["metrics"]
    md = (root / "results" / "report" / "checklist_metrics.md").read_text()
    assert f"supports: {metrics_score(met, cond)}%" in md
    assert met.set_index("item").loc["27", "answer"] == "no"  # no external test set in the run
    assert met.set_index("item").loc["9", "answer"] == "n/a"


def test_a_study_key_in_the_config_fills_its_items_from_config(run, tmp_path):
    root, before = run
    study = {"eligibility": "Women with biopsy-proven invasive breast cancer", "ethics": "IRB 2024-17"}
    after = write_checklists(root, "results", [TASK], study, tmp_path)
    for name, item, key in (("clear", "11", "eligibility"), ("metrics", "2", "eligibility"),
                            ("tripod_ai", "6b", "eligibility"), ("clear", "8", "ethics"), ("tripod_ai", "17", "ethics")):
        b, a = before[name].set_index("item").loc[item], after[name].set_index("item").loc[item]
        assert b["status"] == "needs a person" and a["status"] == "filled", (name, item)
        assert a["source"] == "config" and study[key] in a["value"]
    assert after["metrics"].set_index("item").loc["2", "answer"] == "to confirm"  # the authors' word, not the run's


def test_feature_dictionary_gives_the_ibsi_code_where_one_exists(run):
    root, _ = run
    d = pd.read_csv(root / "results" / "report" / "feature_dictionary.tsv", sep="\t", dtype=str,
                    keep_default_na=False).set_index("feature")
    assert list(d.index) == FEATURES
    codes = d["ibsi_code"].to_dict()
    assert codes["original_glcm_Idm"] == "WF0Z" and codes["original_glcm_Idmn"] == "1QCO"
    assert codes["original_glcm_Idn"] == "NDRX" and codes["wavelet-LH_glszm_ZoneVariance"] == "3NSA"
    assert codes["original_shape2D_Sphericity"] == codes["original_glcm_MCC"] == ""
    assert codes["original_firstorder_TotalEnergy"] == ""
    assert tuple(d.loc["log-sigma-1-0-mm-3D_gldm_DependenceEntropy", ["image_type", "feature_class"]]) == (
        "log-sigma-1-0-mm-3D", "gldm")
    assert feature_dictionary(["original_ngtdm_Busyness"])["ibsi_code"].tolist() == ["NQ30"]


def test_missing_data_items_count_the_missing_clinical_values_per_predictor(tmp_path):
    _results_tree(tmp_path)
    pd.DataFrame({"patient_id": ["a", "b", "c"], "age": ["50", "", "60"], "ki67": ["0.2", "", ""],
                  "us_size_mm": ["1", "2", "3"], "other": ["", "", ""]}).to_csv(
        tmp_path / "results" / "cohort" / "cohort.tsv", sep="\t", index=False)
    tables = write_checklists(tmp_path, "results", [TASK], {}, tmp_path / "out")
    for name, item in (("clear", "29"), ("tripod_ai", "11")):
        row = tables[name].set_index("item").loc[item]
        assert row["status"] == "filled", (name, row["value"])
        assert row["value"].startswith("3 missing clinical values in 3 images (age 1, ki67 2); clinical.missing: "
                                       "refuse"), row["value"]  # 'other' is not a predictor of config.yaml
        assert "results/cohort/cohort.tsv" in row["source"]
