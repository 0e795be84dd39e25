"""`make bench`: every benchmark on the full-size demo cohort (never run by the tests).

1. Simulates the 671-patient demo cohort (two reader masks) into bench/work/demo (reused if present).
2. Extraction stage vs PyRadiomics' batch CLI (bench_extraction.py) -> bench/results/extraction.tsv.
3. The whole pipeline at 168, 671 and 2,684 patients (bench_scaling.py; 41 min on 2 idle cores, 29 min of it
   the 2,684-patient run) -> bench/results/scaling.tsv, scaling_fit.tsv, scaling.png/.pdf.
   ``--skip-scaling`` leaves it out, ``--sizes 168,671`` runs fewer sizes.
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
    parser.add_argument("--skip-extraction", action="store_true", help="do not run the extraction benchmark")
    parser.add_argument("--skip-scaling", action="store_true", help="do not run the scaling benchmark")
    parser.add_argument("--sizes", default="168,671,2684", help="cohort sizes of the scaling benchmark")
    args = parser.parse_args()
    if not args.skip_extraction:
        cohort = demo_cohort_table(args.n_patients, args.seed)
        cmd = [sys.executable, str(HERE / "bench_extraction.py"), str(cohort), "--cores", str(args.cores)]
        rc = subprocess.call(cmd)
        if rc:
            return rc
    if not args.skip_scaling:
        cmd = [sys.executable, str(HERE / "bench_scaling.py"), "--sizes", args.sizes, "--cores", str(args.cores)]
        return subprocess.call(cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
