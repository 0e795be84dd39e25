"""Extraction benchmark: our Snakemake extraction stage vs PyRadiomics' own batch CLI on the same pairs.

    python bench/bench_extraction.py COHORT_TSV [--cores 2] [--snakefile Snakefile]
    python bench/bench_extraction.py --demo 40          # a small synthetic cohort, to check the bench runs

COHORT_TSV is a normalised cohort table (results/cohort/cohort.tsv, e.g. of the 671-patient simulated
cohort with two reader masks). In one run, the bench

1. measures the import time of ``radiomics`` (fresh interpreter) and the extraction time of one
   image × mask pair for a 350 × 300 px image with a 2 cm lesion at 0.1 mm (the project params);
2. times ``snakemake --cores N results/features/features.parquet`` in a fresh work directory
   (bench/work/extraction: clean results, empty cache) whose ``results/cohort/cohort.tsv`` is COHORT_TSV,
   only the rules ``extract_shard`` and ``merge_features`` allowed; the shard logs' ``usrad-extract-summary``
   lines give the summed in-process PyRadiomics time;
3. writes every image and mask as NRRD (spacing inside; not timed) and times
   ``pyradiomics batch.csv -j N --param config/radiomics.yaml`` on the same pairs, then checks that it
   computed the same values as our table;
4. prints both wall times, their ratio and our scheduling overhead
   = our wall ÷ (summed in-process extraction time ÷ cores), and writes bench/results/extraction.tsv
   (one row, with machine info).

With ``--repeat K`` steps 2 and 3 run K times, interleaved (ours, CLI, ours, CLI, …: a slow period of the
machine hits both), and the row gives the medians with min–max; ``--out`` names another result file (e.g.
bench/results/extraction_80.tsv for an 80-image subset).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import run_snakemake  # noqa: E402
PARAMS = REPO / "config" / "radiomics.yaml"
TARGET = "results/features/features.parquet"


# ------------------------------------------------------------------------------------------ machine info
def machine_info(cores: int) -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
        mem = round(mem_kb / 2 ** 20, 1)
    except (OSError, StopIteration):
        mem = float("nan")
    from importlib.metadata import version

    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu": cpu, "logical_cpus": os.cpu_count(),
            "cores_used": cores, "ram_gib": mem, "os": platform.platform(), "python": platform.python_version(),
            "pyradiomics": version("pyradiomics-bhklab"), "snakemake": version("snakemake"),
            "SimpleITK": sitk.__version__, "numpy": np.__version__}


# ------------------------------------------------------------------------------------------ micro bench
def import_seconds(repeats: int = 3) -> float:
    code = "import time; t = time.perf_counter(); import radiomics; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(repeats)]
    return statistics.median(runs)


def lesion_image(seed: int = 0) -> tuple[sitk.Image, sitk.Image]:
    """350 x 300 px at 0.1 mm (35 x 30 mm), hypoechoic 2 cm lesion with speckle-like texture, 8-bit grey levels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:300, :350]
    lesion = ((xx - 175) / 100.0) ** 2 + ((yy - 150) / 80.0) ** 2 <= 1  # 20 mm x 16 mm ellipse
    speckle = rng.rayleigh(1.0, size=(300, 350))
    arr = np.where(lesion, 50.0, 120.0) * speckle
    arr = np.clip(np.round(arr), 0, 255).astype(np.float32)
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((0.1, 0.1))
    mask = sitk.GetImageFromArray(lesion.astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask


def pair_seconds(repeats: int = 5) -> tuple[float, int]:
    from usrad.extract import get_extractor

    ex = get_extractor(PARAMS)
    image, mask = lesion_image()
    n = len(ex.extract(image, mask))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ex.extract(image, mask)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), n


# ------------------------------------------------------------------------------------------ demo cohort
def demo_cohort(folder: Path, n_images: int, seed: int = 7) -> Path:
    """n_images synthetic 350 x 300 PNG images (spacing in the table) with two reader masks each."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    yy, xx = np.mgrid[:300, :350]
    for i in range(n_images):
        a, b = rng.uniform(40, 110), rng.uniform(30, 90)
        cx, cy = rng.uniform(120, 230), rng.uniform(100, 200)
        arr = np.clip(np.round(np.where(((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1, 50.0, 120.0)
                               * rng.rayleigh(1.0, (300, 350))), 0, 255).astype(np.uint8)
        paths = {"image": folder / f"img{i:03d}.png"}
        Image.fromarray(arr).save(paths["image"])
        for col, grow in (("mask", 0.0), ("mask_reader2", rng.uniform(-6, 6))):
            m = ((xx - cx) / (a + grow)) ** 2 + ((yy - cy) / (b + grow)) ** 2 <= 1
            paths[col] = folder / f"{col}{i:03d}.png"
            Image.fromarray((m * 255).astype(np.uint8)).save(paths[col])
        rows.append({"patient_id": f"D{i // 2:03d}", "image_id": f"D{i // 2:03d}-{i % 2}",
                     **{k: str(v) for k, v in paths.items()}, "pixel_spacing_mm": 0.1})
    path = folder / "cohort.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


# ------------------------------------------------------------------------------------------ stages
def run_ours(cohort_tsv: Path, work: Path, snakefile: Path, cores: int, shards: int, rules: list[str],
             min_images: int = 40) -> dict:
    from usrad.extract import SUMMARY_TAG

    (work / "results" / "cohort").mkdir(parents=True)
    shutil.copyfile(cohort_tsv, work / "results" / "cohort" / "cohort.tsv")
    # check_plan's stamp (extract_shard waits for the plan checks; not run here: the cohort table is given)
    (work / "results" / "cohort" / "plan.txt").write_text("benchmark: cohort table given, plan not checked\n")
    # the workflow plans its extraction jobs from the config's cohort size: here the table's rows (one image each)
    n_images = len(pd.read_csv(cohort_tsv, sep="\t"))
    (work / "config.yaml").write_text(yaml.safe_dump({
        "radiomics_params": str(PARAMS), "cohort": {"simulate": {"n_patients": max(20, n_images)}},
        "extraction": {"shards": shards, "min_images_per_shard": min_images}}))
    cmd = [str(BIN / "snakemake"), "-s", str(snakefile), "--directory", str(work), "--configfile",
           str(work / "config.yaml"), "--cores", str(cores), "--allowed-rules", *rules, "--", TARGET]
    wall = run_snakemake(cmd, work)
    summaries = []
    for path in sorted(work.rglob("*")):
        if path.is_file() and (path.suffix == ".log" or "logs" in path.relative_to(work).parts):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith(SUMMARY_TAG):
                    summaries.append(json.loads(line[len(SUMMARY_TAG):]))
    if not summaries:
        sys.exit(f"no '{SUMMARY_TAG}' line in the logs under {work}: does the extract_shard rule log to a *.log file?")
    return {"wall_s": wall, "shard_logs": len(summaries),
            "extraction_s": sum(s["extraction_seconds"] for s in summaries),
            "extracted": sum(s["extracted"] for s in summaries), "cached": sum(s["cached"] for s in summaries)}


def write_nrrd_pairs(cohort_tsv: Path, folder: Path) -> Path:
    """Every image and reader mask as NRRD (through usrad.imageio, so PyRadiomics sees the same arrays)."""
    from usrad.cohort import read_cohort_table
    from usrad.extract import READERS
    from usrad.imageio import read_image, read_mask

    folder.mkdir(parents=True)
    cohort = read_cohort_table(cohort_tsv)
    rows = []
    for rec in cohort.to_dict("records"):
        spacing = rec.get("pixel_spacing_mm")
        image = read_image(rec["image"], None if pd.isna(spacing) else spacing)
        img_path = folder / f"{rec['image_id']}_image.nrrd"
        sitk.WriteImage(image, str(img_path))
        for reader, col in READERS:
            if isinstance(rec.get(col), str) and rec[col]:
                mask_path = folder / f"{rec['image_id']}_{reader}.nrrd"
                sitk.WriteImage(read_mask(rec[col], image), str(mask_path))
                rows.append({"Image": str(img_path), "Mask": str(mask_path), "patient_id": rec["patient_id"],
                             "image_id": rec["image_id"], "reader": reader})
    batch = folder.parent / "batch.csv"
    with open(batch, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["Image", "Mask", "patient_id", "image_id", "reader"])
        w.writeheader()
        w.writerows(rows)
    return batch


def run_pyradiomics(batch: Path, cores: int) -> tuple[float, Path]:
    out = batch.with_name("pyradiomics_out.csv")
    out.unlink(missing_ok=True)  # the CLI appends to an existing output file
    cmd = [str(BIN / "pyradiomics"), str(batch), "-j", str(cores), "--param", str(PARAMS), "-o", str(out),
           "-f", "csv", "--verbosity", "1"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        sys.exit(f"pyradiomics batch failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, out


def agreement(ours_path: Path, theirs_path: Path) -> tuple[int, float]:
    """(pairs compared, max relative difference over all features) between our table and the CLI's CSV."""
    from usrad.features import feature_columns, read_feature_table

    ours, _ = read_feature_table(ours_path)
    theirs = pd.read_csv(theirs_path, dtype={"patient_id": str, "image_id": str})
    feats = feature_columns(ours)
    merged = ours.merge(theirs[["patient_id", "image_id", "reader", *feats]], on=["patient_id", "image_id", "reader"],
                        suffixes=("", "_cli"))
    a = merged[feats].to_numpy(float)
    b = merged[[f + "_cli" for f in feats]].to_numpy(float)
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
    rel[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0
    return len(merged), float(np.nanmax(rel)) if rel.size else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cohort", nargs="?", type=Path, help="normalised cohort table (cohort.tsv)")
    ap.add_argument("--demo", type=int, metavar="N", help="make and use a synthetic cohort of N images instead")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--shards", type=int, default=16, help="extraction shards (config extraction.shards)")
    ap.add_argument("--snakefile", type=Path, default=next((p for p in (REPO / "Snakefile", REPO / "workflow" / "Snakefile")
                                                            if p.exists()), REPO / "Snakefile"))
    ap.add_argument("--rules", nargs="+", default=["extract_shard", "merge_features"])
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "extraction")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "extraction.tsv")
    ap.add_argument("--min-images-per-shard", type=int, default=40, help="config extraction.min_images_per_shard")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run ours and the CLI this many times, interleaved; the row gives medians and min-max")
    args = ap.parse_args(argv)
    if (args.cohort is None) == (args.demo is None):
        ap.error("give a cohort table or --demo N")
    args.work = args.work.resolve()  # the CLI reads batch.csv's relative paths from the CSV's folder

    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    cohort_tsv = demo_cohort(args.work / "demo", args.demo) if args.demo else args.cohort.resolve()
    n_images = len(pd.read_csv(cohort_tsv, sep="\t"))

    info = machine_info(args.cores)
    print(f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, {info['ram_gib']} GiB; using {args.cores} cores")
    imp = import_seconds()
    pair, n_features = pair_seconds()
    print(f"import radiomics: {imp:.2f} s; one 350x300 px image x 2 cm lesion mask: {pair:.3f} s, {n_features} features")

    batch = write_nrrd_pairs(cohort_tsv, args.work / "pyradiomics" / "nrrd")
    runs = []
    for k in range(args.repeat):  # interleaved: a slow period of the machine hits both tools
        work = args.work / f"ours{k}"
        ours = run_ours(cohort_tsv, work, args.snakefile.resolve(), args.cores, args.shards, args.rules,
                        args.min_images_per_shard)
        theirs_wall, theirs_out = run_pyradiomics(batch, args.cores)
        runs.append((ours, theirs_wall))
        print(f"run {k + 1}/{args.repeat}: ours {ours['wall_s']:.1f} s ({ours['shard_logs']} jobs, "
              f"{ours['extraction_s']:.1f} s summed PyRadiomics time), pyradiomics batch {theirs_wall:.1f} s, "
              f"ratio {ours['wall_s'] / theirs_wall:.3f}")
    n_cmp, max_rel = agreement(work / TARGET, theirs_out)
    ours_w = [o["wall_s"] for o, _ in runs]
    theirs_w = [t for _, t in runs]
    ratios = [o / t for o, t in zip(ours_w, theirs_w)]
    ours = runs[0][0]
    theirs_wall = statistics.median(theirs_w)
    extraction_s = statistics.median(o["extraction_s"] for o, _ in runs)
    ideal = extraction_s / args.cores
    row = {**info, "n_images": n_images, "n_pairs": ours["extracted"] + ours["cached"], "n_features": n_features,
           "radiomics_import_s": round(imp, 3), "pair_350x300_2cm_s": round(pair, 4),
           "extraction_jobs": ours["shard_logs"], "repeats": args.repeat,
           "ours_wall_s": round(statistics.median(ours_w), 2), "pyradiomics_batch_wall_s": round(theirs_wall, 2),
           "ratio_ours_to_pyradiomics": round(statistics.median(ratios), 3),
           "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
           "ours_wall_min_max_s": f"{min(ours_w):.2f}-{max(ours_w):.2f}",
           "pyradiomics_wall_min_max_s": f"{min(theirs_w):.2f}-{max(theirs_w):.2f}",
           "summed_extraction_s": round(extraction_s, 2),
           "floor_s": round(ideal, 2),
           "scheduling_overhead": round(statistics.median(ours_w) / ideal, 3) if ideal > 0 else float("nan"),
           "pairs_compared": n_cmp, "max_rel_diff_vs_cli": max_rel}
    print(f"pyradiomics batch -j {args.cores}: {theirs_wall:.1f} s wall (median)")
    print(f"ratio ours/pyradiomics: {row['ratio_ours_to_pyradiomics']:.2f} (median; {row['ratio_min']:.2f}-"
          f"{row['ratio_max']:.2f}); floor (summed PyRadiomics time / cores) {row['floor_s']:.1f} s; scheduling overhead "
          f"(our wall / (summed extraction / {args.cores} cores)): {row['scheduling_overhead']:.2f}")
    print(f"same values as the CLI: {n_cmp} pairs compared, max relative difference {max_rel:.2e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(args.out, sep="\t", index=False)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
