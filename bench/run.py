"""`make bench`: every benchmark on the full-size demo cohort (never run by the tests).

1. Simulates the 671-patient demo cohort (two reader masks) into bench/work/demo (reused if present).
2. Extraction stage vs PyRadiomics' batch CLI (bench_extraction.py) -> bench/results/extraction.tsv.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def demo_cohort_table(n_patients: int, seed: int) -> Path:
    from usrad.cohort import load_cohort, write_cohort_table
    from usrad.config import load_config
    from usrad.simulate import simulate_cohort

    out = HERE / "work" / f"demo{n_patients}"
    manifest = out / "manifest.tsv"
    if not manifest.exists():
        simulate_cohort(out, n_patients=n_patients, seed=seed, progress=True)
    cohort_path = out / "cohort.tsv"
    if not cohort_path.exists():
        write_cohort_table(load_cohort(manifest, load_config(REPO / "config" / "config.yaml")), cohort_path)
    return cohort_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-patients", type=int, default=671)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    cohort = demo_cohort_table(args.n_patients, args.seed)
    cmd = [sys.executable, str(HERE / "bench_extraction.py"), str(cohort), "--cores", str(args.cores)]
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
