"""Shared by the bench scripts: run one Snakemake command, keep its output, stop the bench if it fails."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def run_snakemake(cmd: list[str], work: Path, what: str = "") -> float:
    """Run ``cmd``; its stdout + stderr go to ``work/snakemake.out``. Returns the wall time in seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (work / "snakemake.out").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({proc.returncode}){what}; see {work / 'snakemake.out'}\n{proc.stderr[-3000:]}")
    return wall
