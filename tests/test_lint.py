"""Snakemake hygiene: `snakemake --lint` finds nothing and `snakefmt --check` would change no file."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEFILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]


def test_snakemake_lint_is_clean():
    proc = subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--lint"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in text, text[-5000:]


def test_snakefmt_would_change_no_file():
    assert len(SNAKEFILES) >= 8
    proc = subprocess.run([str(BIN / "snakefmt"), "--check", *map(str, SNAKEFILES)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]


def test_workflow_catalog_files_are_present():
    import yaml

    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert {"mandatory-flags", "software-stack-deployment", "report"} <= set(usage)
    assert usage["software-stack-deployment"]["conda"] is True
    readme = (REPO / "config" / "README.md").read_text()
    for key in ("cohort.manifest", "tasks", "modelling", "--config cohort='{simulate: {n_patients: 160}}'"):
        assert key in readme, key
    for path in ("Snakefile", "rules", "envs", "workflow/scripts", "config/config.yaml",
                 "src/usrad/schemas/config.schema.yaml"):
        assert (REPO / path).exists(), path
