"""CPU cost of peritumoral rings (extraction.regions) against the lesion alone, interleaved image by image.

    python bench/bench_rings.py COHORT_TSV [--n 40] [--rings 1,3,5] [--image-types Original] [--params config/radiomics.yaml] [--profile]

For each of the first ``--n`` images of a normalised cohort table (every reader's mask, no cache), runs
``usrad.extract.extract_cohort`` on that image twice, the lesion alone and with ``rings_mm`` = ``--rings``,
alternating which goes first, and times each with ``time.process_time`` (the whole call: reading, hashing,
region masks, PyRadiomics) and by its ``extraction_seconds`` (the in-process PyRadiomics time of the summary
line). Writes one row per (rings, image types) to ``bench/results/rings.tsv`` (totals and the ratio rings ÷
lesion; a row of the same settings is replaced). ``--profile``: the 15 largest
cumulative entries of a cProfile of the rings runs, to stderr.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import platform
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import upsert_rows  # noqa: E402


def _timed(extract, rows, params, regions, profiler=None) -> tuple[float, float]:
    t0 = time.process_time()
    if profiler is not None:
        profiler.enable()
    df = extract(rows, params, progress=False, log=io.StringIO(), regions=regions)
    if profiler is not None:
        profiler.disable()
    return time.process_time() - t0, df.attrs["extraction"]["extraction_seconds"]


def main(argv=None) -> int:
    from usrad.cohort import read_cohort_table
    from usrad.extract import extract_cohort, get_extractor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--rings", default="1,3,5")
    parser.add_argument("--image-types", default="Original")
    parser.add_argument("--params", type=Path, default=REPO / "config" / "radiomics.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "rings.tsv")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    cohort = read_cohort_table(args.cohort).iloc[:args.n]
    rings = {"rings_mm": [float(w) for w in args.rings.split(",")], "image_types": args.image_types.split(",")}
    get_extractor(args.params).expected_features()  # warm-up: import and the first extraction outside the timing
    profiler = cProfile.Profile() if args.profile else None
    totals = {"lesion_cpu_s": 0.0, "lesion_extraction_s": 0.0, "rings_cpu_s": 0.0, "rings_extraction_s": 0.0}
    for i in range(len(cohort)):
        rows = cohort.iloc[i:i + 1]
        for which in (("lesion", "rings") if i % 2 == 0 else ("rings", "lesion")):
            cpu, ext = _timed(extract_cohort, rows, args.params, rings if which == "rings" else None,
                              profiler if which == "rings" else None)
            totals[f"{which}_cpu_s"] += cpu
            totals[f"{which}_extraction_s"] += ext
    n_masks = int(cohort["mask"].notna().sum() + cohort["mask_reader2"].fillna("").astype(str).ne("").sum())
    result = {"machine": platform.node(), "python": platform.python_version(), "n_images": len(cohort),
              "n_masks": n_masks, "rings_mm": args.rings, "image_types": args.image_types,
              **{k: round(v, 3) for k, v in totals.items()},
              "cpu_ratio": round(totals["rings_cpu_s"] / totals["lesion_cpu_s"], 3),
              "extraction_ratio": round(totals["rings_extraction_s"] / totals["lesion_extraction_s"], 3)}
    upsert_rows(args.out, result, ["rings_mm", "image_types"])
    print("\n".join(f"{k}\t{v}" for k, v in result.items()))
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
