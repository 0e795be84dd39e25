"""A cohort with images, masks and an outcome but no clinical column (clinical.predictors: []): the real
workflow fits and reports the radiomics models only (rad-score and classifiers), end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CLINICAL_COLUMNS = ["age", "us_size_mm", "us_node_suspicious", "birads", "er", "pr", "her2", "ki67", "grade",
                    "histology", "subtype"]
RADIOMICS_MODELS = ["radscore", "lr", "nb"]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=1800)
    if proc.returncode != 0:
        raise AssertionError(f"{cmd[:3]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def radiomics_run(small_cohort, small_feature_cache, tmp_path_factory):
    """The whole workflow (`snakemake`, default target: every table, figure, card and the summary), then
    `snakemake --report`, on the small simulated cohort with its clinical columns removed (the images' features
    read from the session's feature cache when another test has extracted them already)."""
    manifest = pd.read_csv(small_cohort, sep="\t", dtype=str, keep_default_na=False)
    assert set(CLINICAL_COLUMNS) <= set(manifest.columns)
    only = small_cohort.parent / "radiomics_only.tsv"  # beside the original: the relative paths stay valid
    manifest.drop(columns=CLINICAL_COLUMNS).to_csv(only, sep="\t", index=False)
    workdir = tmp_path_factory.mktemp("radiomics_only")
    from usrad.simulate import simulate_cohort

    new = simulate_cohort(workdir / "new", n_patients=3, seed=7, progress=False)  # new patients to score
    new_only = new.parent / "radiomics_only.tsv"
    pd.read_csv(new, sep="\t", dtype=str, keep_default_na=False).drop(columns=CLINICAL_COLUMNS + ["n_positive_nodes"]).to_csv(
        new_only, sep="\t", index=False)
    cfg = {"cohort": {"manifest": str(only)}, "radiomics_params": str(REPO / "config" / "radiomics.yaml"),
           "predict_manifest": str(new_only), "predict_models": ["radscore", "lr"],
           "extraction": {"shards": 2, "cache_dir": str(small_feature_cache)}, "clinical": {"predictors": [], "categorical": []},
           "tasks": [{"name": "metastasis", "description": "ALN metastasis: N0 vs N+", "label": "n_positive_nodes >= 1"}],
           "modelling": {"classifiers": ["lr", "nb"], "lasso": {"n_C": 15}}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    validate = run([str(Path(sys.executable).with_name("usrad")), "validate", str(only), "--config",
                    str(workdir / "config.yaml")], workdir)
    smk = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(workdir / "config.yaml"), "--cores", "2"]
    run(smk, workdir)
    run(smk + ["--report", "results/report/report.html"], workdir)
    return workdir, validate.stdout


@pytest.mark.slow
def test_radiomics_only_run_writes_no_clinical_nomogram_or_combined_output(radiomics_run):
    workdir, validate_out = radiomics_run
    assert "radiomics only: no clinical predictors; clinical, nomogram and combined models are not fitted" in validate_out
    results = workdir / "results"
    task = results / "metastasis"
    assert sorted(p.name for p in (task / "models").iterdir() if p.is_dir()) == sorted(RADIOMICS_MODELS)
    clinical_named = [str(p.relative_to(results)) for p in results.rglob("*")
                      if any(w in p.name for w in ("nomogram", "clinical", "combined", "univariable",
                                                   "multivariable", "table2"))]
    assert clinical_named == []
    pred = pd.read_csv(task / "predictions.tsv", sep="\t")
    assert sorted(pred["model"].unique()) == sorted(RADIOMICS_MODELS) and pred["rad_score"].notna().all()
    for name in ("roc", "forest", "calibration", "decision_curve", "radscore", "confusion", "shap"):
        assert (task / "figures" / f"{name}.png").stat().st_size > 10_000
    assert (results / "report" / "report.html").stat().st_size > 100_000
    for model in ("radscore", "lr"):  # the predict targets: new patients scored by the radiomics bundles
        scored = pd.read_csv(results / "predict" / "metastasis" / model / "predictions.tsv", sep="\t")
        assert scored["patient_id"].nunique() == 3 and scored["probability"].between(0, 1).all()
    assert sorted(p.name for p in (results / "predict" / "metastasis").iterdir() if p.is_dir()) == ["lr", "radscore"]


@pytest.mark.slow
def test_radiomics_models_recover_the_simulated_signal_on_the_test_set(radiomics_run):
    workdir, _ = radiomics_run
    perf = pd.read_csv(workdir / "results" / "metastasis" / "tables" / "table3_performance.tsv", sep="\t")
    test = perf[perf["split"] == "test"].set_index("model")
    assert sorted(test.index) == sorted(RADIOMICS_MODELS)
    assert (test["auc"] > 0.6).all(), test["auc"].to_dict()


@pytest.mark.slow
def test_summary_says_radiomics_only_and_every_radiomics_model_has_a_card(radiomics_run):
    workdir, _ = radiomics_run
    results = workdir / "results"
    summary = (results / "report" / "summary.md").read_text()
    assert "**Radiomics only.**" in summary and "No clinical model (radiomics only)." in summary
    assert "reference study" not in summary  # its headline numbers are the combined model's
    assert "vs clinical" not in summary  # no clinical model: no combined-vs-clinical comparison
    perf = pd.read_csv(results / "metastasis" / "tables" / "table3_performance.tsv", sep="\t")
    auc = perf.set_index(["model", "split"]).loc[("radscore", "test"), "auc"]
    assert f"{auc:.3f}" in summary
    for model in RADIOMICS_MODELS:
        card = json.loads((results / "metastasis" / "card" / f"{model}.json").read_text())
        assert card["model"]["name"] == model and card["preoperative_variables"]["clinical"] == []
        assert card["performance"]["test"]["auc"]["estimate"] == pytest.approx(
            perf.set_index(["model", "split"]).loc[(model, "test"), "auc"])
        assert (results / "metastasis" / "card" / f"{model}.md").read_text().startswith(f"# Model card: `{model}`")
