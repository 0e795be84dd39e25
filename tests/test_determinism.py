"""Same config + seed -> every output of the whole workflow byte-identical, whatever the cores and hash seed.

Two complete runs (`all` target: simulation, extraction, models, evaluation, figures PNG + PDF, tables,
rule graph, model cards, summary) of a small light demo: one with `--cores 2` and PYTHONHASHSEED=1, one with
`--cores 1` and PYTHONHASHSEED=2 (Python's string-hash order is what made the rule graph differ between two
identical runs). Every file under results/ is compared except logs and benchmarks (timings).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_faults import light_radiomics_params
from test_terminal import terminal_problems

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
NOT_COMPARED = ("results/logs/", "results/benchmarks/")


def light_config(workdir: Path) -> None:
    workdir.mkdir(parents=True)
    light_radiomics_params(workdir / "radiomics.yaml")
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = {"cohort": {"simulate": {"n_patients": 48}},
           "radiomics_params": str(workdir / "radiomics.yaml"),
           "extraction": {"shards": 2},
           "tasks": [t for t in default["tasks"] if t["name"] == "metastasis"],
           "clinical": {"predictors": ["age", "us_size_mm", "us_node_suspicious"], "categorical": []},
           "modelling": {"classifiers": ["lr"], "combined_classifiers": ["lr"], "cv_folds": 3,
                         "lasso": {"cv_folds": 3, "n_C": 8}}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def run(workdir: Path, cores: int, hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(workdir / "config.yaml"), "--cores", str(cores), "--set-threads", "fit_task=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


def digests(workdir: Path) -> dict[str, str]:
    out = {}
    for path in sorted((workdir / "results").rglob("*")):
        name = str(path.relative_to(workdir))
        if path.is_file() and not name.startswith(NOT_COMPARED):
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("determinism") / "work"  # one folder: absolute paths in tables agree
    light_config(workdir)
    terminal = run(workdir, cores=2, hash_seed="1")
    first = digests(workdir)
    shutil.rmtree(workdir / "results")
    shutil.rmtree(workdir / ".snakemake")
    run(workdir, cores=1, hash_seed="2")
    return first, digests(workdir), terminal, workdir


def test_every_output_of_two_identical_runs_is_byte_identical(two_runs):
    a, b, _, _ = two_runs
    assert sorted(a) == sorted(b)
    for must in ("results/report/rulegraph.dot", "results/report/figures/workflow.pdf",
                 "results/report/figures/workflow.png", "results/report/summary.md",
                 "results/metastasis/figures/roc.pdf", "results/metastasis/tables/table3_performance.tsv"):
        assert must in a, f"{must} was not produced"
    differ = [name for name in a if a[name] != b[name]]
    assert not differ, f"differ between two runs of the same config and seed: {differ}"


def test_the_terminal_shows_short_job_lines_and_the_extraction_stages_progress(two_runs):
    """What `make demo` shows (profiles/default): no line over 200 characters, no `Shell command: None`, and the
    extraction's overall line from the shards' status files (results/logs/extract/progress/, not compared)."""
    _, _, terminal, workdir = two_runs
    assert terminal_problems(terminal) == []
    lines = [line for line in terminal.splitlines() if line.startswith("extraction: ")]
    assert lines and lines[-1].startswith("extraction: 48/48 images (100 %), 2 of 2 shards done in "), lines
    assert sorted(p.name for p in (workdir / "results" / "logs" / "extract" / "progress").iterdir()) == [
        "000.json", "001.json"]
