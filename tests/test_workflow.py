"""The Snakemake workflow end to end on a small cohort: outputs, no-op reruns, incremental extraction."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_faults import light_radiomics_params

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def test_conda_env_pins_exactly_the_requirements():
    env = yaml.safe_load((REPO / "envs" / "usrad.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    reqs = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert pip == reqs


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def planned_jobs(workdir: Path, *targets: str) -> dict[str, int]:
    proc = run_snakemake(workdir, *targets, "--dry-run", "--quiet", "rules")
    counts = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"^\s*(\w+)\s+(\d+)\s*$", line)
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def write_config(workdir: Path, **overrides) -> None:
    cfg = {"radiomics_params": str(REPO / "config" / "radiomics.yaml"), "extraction": {"shards": 4}}
    cfg.update(overrides)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_default_config_plans_simulation_validation_and_sharded_extraction(tmp_path):
    write_config(tmp_path, extraction={"shards": 16})
    jobs = planned_jobs(tmp_path, "results/features/features.parquet")
    assert jobs == {"simulate": 1, "validate_cohort": 1, "check_plan": 1, "extract_shard": 16, "merge_features": 1}


PREDICTIONS = ("results/metastasis/predictions.tsv", "results/burden/predictions.tsv")


#: every classifier type (each one's threads and seeds are what --cores could change), one grid point each and
#: three folds: the tests below are about the workflow (cores, reruns, the cache), not the tuning
ONE_POINT = {"lr": {"C": [1.0]}, "svm": {"C": [1.0]}, "rf": {"max_depth": [3], "min_samples_leaf": [5]},
             "xgb": {"n_estimators": [50], "max_depth": [2]}, "knn": {"n_neighbors": [15]},
             "nb": {"var_smoothing": [1e-9]}, "mlp": {"hidden_layer_sizes": [[8]], "alpha": [1.0]}}
LIGHT_MODELLING = {"cv_folds": 3, "search_spaces": ONE_POINT, "combined_classifiers": ["lr", "rf", "xgb"],
                   "lasso": {"cv_folds": 3, "n_C": 8}}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, small_cohort):
    """The whole pipeline (up to every task's predictions) on the small cohort minus its last patient, with the
    original image's shape, first-order and GLCM features only (real PyRadiomics, a fraction of the time)."""
    workdir = tmp_path_factory.mktemp("small_run")
    manifest = pd.read_csv(small_cohort, sep="\t", dtype=str)
    first = small_cohort.parent / "first.tsv"
    manifest.iloc[:-1].to_csv(first, sep="\t", index=False)
    write_config(workdir, cohort={"manifest": str(first)}, modelling=LIGHT_MODELLING,
                 radiomics_params=str(light_radiomics_params(workdir / "radiomics.yaml")))
    run_snakemake(workdir, *PREDICTIONS)
    return workdir, manifest, first


@pytest.mark.slow
def test_same_seed_gives_byte_identical_predictions_and_bundles_with_1_and_2_cores(small_run):
    workdir, _, _ = small_run
    outputs = sorted((workdir / "results").glob("*/predictions.tsv")) + sorted((workdir / "results").glob("*/models/*/model.skops"))
    assert len(outputs) >= 2 * 12
    before = {p: p.read_bytes() for p in outputs}
    run_snakemake(workdir, "--cores", "1", "--forcerun", "split", "fit_task", "--", *PREDICTIONS)
    changed = [str(p.relative_to(workdir)) for p in outputs if p.read_bytes() != before[p]]
    assert not changed, f"differ between --cores 2 and --cores 1: {changed}"


@pytest.mark.slow
def test_features_rerun_noop_and_adding_a_patient_extracts_only_that_patient(small_run):
    from usrad.features import read_feature_table

    workdir, manifest, first_path = small_run
    first = manifest.iloc[:-1]
    target = "results/features/features.parquet"
    table, meta = read_feature_table(workdir / target)
    n_second = int((first["mask_reader2"].fillna("") != "").sum())
    assert len(table) == len(first) + n_second
    assert set(table["reader"]) == {"r1", "r2"}
    assert meta["params_sha256"]

    # Unchanged workflow: nothing to do.
    assert planned_jobs(workdir, *PREDICTIONS) == {}

    # One more patient: the shard jobs rerun (the cohort table changed), but the per-image cache means
    # only the new patient's images reach PyRadiomics.
    cache = workdir / "results" / "features" / "cache"
    before = {p.name: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    manifest.to_csv(first_path, sep="\t", index=False)
    jobs = planned_jobs(workdir, target)
    # 80 images, extraction.shards 4, min_images_per_shard 40 (default): 2 extraction jobs
    assert jobs == {"validate_cohort": 1, "check_plan": 1, "extract_shard": 2, "merge_features": 1}
    run_snakemake(workdir, target)
    after = {p.name: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert len(after) == len(before) + 2, "exactly the new patient's two reader masks are extracted"
    assert all(after[name] == mtime for name, mtime in before.items()), "cached entries must not be recomputed"
    table2, _ = read_feature_table(workdir / target)
    assert len(table2) == len(table) + 2
    old = table2[table2["patient_id"].isin(table["patient_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, table.reset_index(drop=True))
