"""Rules get only the config keys they read, in a canonical form: after a run, a configfile that restates every
default in another key order, or a new `predict_manifest`, leaves the model fits and the evaluation alone; nested
`--config KEY="{...}"` values (text, as Snakemake passes them) are read by the schema's type."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from test_faults import write_config as write_light_config
from test_workflow import planned_jobs, write_config
from usrad.config import canonical, load_schema, validate_config

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TARGETS = ("results/metastasis/predictions.tsv", "results/metastasis/tables/table3_performance.tsv")
N_PATIENTS = 40


def reversed_keys(value):
    """``value`` with every mapping's keys in reverse order (lists keep theirs)."""
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def test_canonical_sorts_every_mapping_and_keeps_list_order():
    a = {"b": {"y": 1, "x": [{"q": 1, "p": 2}]}, "a": (3, 1)}
    assert list(canonical(a)) == ["a", "b"] and list(canonical(a)["b"]) == ["x", "y"]
    assert list(canonical(a)["b"]["x"][0]) == ["p", "q"] and canonical(a)["a"] == [3, 1]
    assert repr(canonical(a)) == repr(canonical(reversed_keys(a)))


def test_text_values_are_read_by_the_schema_type_only_where_the_schema_wants_no_text():
    raw = {"cohort": {"simulate": {"n_patients": "160"}, "manifest": "null"},
           "modelling": {"cv_folds": "3", "ablation": "true", "threshold_from": "cv"},
           "split": {"test_size": "0.3"}}
    cfg = validate_config(raw, text_values=True)
    assert cfg["cohort"]["simulate"]["n_patients"] == 160
    assert cfg["modelling"]["cv_folds"] == 3 and cfg["modelling"]["ablation"] is True
    assert cfg["split"]["test_size"] == 0.3
    assert cfg["cohort"]["manifest"] == "null"  # the schema allows text here: it stays text
    with pytest.raises(Exception, match="modelling.cv_folds"):
        validate_config({"modelling": {"cv_folds": "three"}}, text_values=True)
    with pytest.raises(Exception, match="is text here"):  # the strict default (usrad validate, configfiles)
        validate_config({"modelling": {"cv_folds": "3"}}, load_schema())


def test_nested_config_on_the_command_line_is_accepted(tmp_path):
    write_config(tmp_path)
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
           str(tmp_path / "config.yaml"), "--cores", "1", "-n", "--quiet", "rules",
           "--config", "cohort={simulate: {n_patients: 160}}", "modelling={cv_folds: 3}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "simulate" in proc.stdout + proc.stderr


def _dry_run(workdir: Path, configfile: Path, *targets: str) -> dict[str, int]:
    (workdir / "config.yaml").write_text(configfile.read_text())
    return planned_jobs(workdir, *targets)


@pytest.fixture(scope="module")
def light_run(tmp_path_factory, small_cohort):
    """Task metastasis fitted and evaluated on the first patients of the small cohort (light settings)."""
    manifest = pd.read_csv(small_cohort, sep="\t", dtype=str)
    keep = list(dict.fromkeys(manifest["patient_id"]))[:N_PATIENTS]
    path = small_cohort.parent / "rule_params.tsv"
    manifest[manifest["patient_id"].isin(keep)].to_csv(path, sep="\t", index=False)
    workdir = tmp_path_factory.mktemp("rule_params") / "run"
    write_light_config(workdir, path)
    base = workdir / "base.yaml"
    base.write_text((workdir / "config.yaml").read_text())
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(workdir / "config.yaml"), "--set-threads", "fit_task=1", "--cores", "2", *TARGETS]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return workdir, base


@pytest.mark.slow
def test_restated_defaults_in_another_key_order_rerun_nothing(light_run):
    workdir, base = light_run
    assert _dry_run(workdir, base, *TARGETS) == {}
    full = validate_config(yaml.safe_load(base.read_text()))  # every default written out
    shuffled = workdir / "shuffled.yaml"
    shuffled.write_text(yaml.safe_dump(reversed_keys(full), sort_keys=False))
    assert list(yaml.safe_load(shuffled.read_text())) != list(full)
    assert _dry_run(workdir, shuffled, *TARGETS) == {}


@pytest.mark.slow
def test_a_new_predict_manifest_plans_only_the_prediction(light_run, small_cohort):
    workdir, base = light_run
    cfg = yaml.safe_load(base.read_text())
    cfg["predict_manifest"] = str(small_cohort)
    changed = workdir / "predict.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    assert _dry_run(workdir, changed, *TARGETS) == {}
    assert _dry_run(workdir, changed, *TARGETS, "results/predict/metastasis/combined/predictions.tsv") == {
        "predict": 1}
