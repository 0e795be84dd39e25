"""Faults: the workflow killed during extraction and during model fitting resumes, and its final tables are
byte-identical to an uninterrupted run; no temporary file is left; no output escapes results/.

Both runs read one manifest that reaches its images through '..', a symbolic link and a folder name with a
space and non-ASCII characters (the session's small simulated cohort, first N_PATIENTS patients). The runs use
light PyRadiomics settings (original image; shape, first order, GLCM), 3 extraction shards and one
classifier, so that the faults, not the modelling, are what is tested:

1. reference: one uninterrupted run (`--cores 2`);
2. faulty: started, SIGKILLed (the whole process group: Snakemake and its jobs, as a power cut or the OOM
   killer would) as soon as the first shard table is written, while other shards are mid-way; then
   `snakemake --unlock` and `--rerun-incomplete` (what Snakemake's own message asks for), SIGTERMed (as
   `scancel` or a shutdown would) while `fit_task` runs; then `--rerun-incomplete` to the end.
"""
from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TARGETS = ["results/metastasis/predictions.tsv"]
N_PATIENTS = 40  # 18 N+ / 22 N0: the task's >= 10 patients per class
NOT_COMPARED = ("results/logs/", "results/benchmarks/")  # timings and Snakemake's messages


def light_radiomics_params(path: Path) -> Path:
    params = yaml.safe_load((REPO / "config" / "radiomics.yaml").read_text())
    params["imageType"] = {"Original": {}}
    params["featureClass"] = {"shape2D": [], "firstorder": [], "glcm": []}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def write_config(workdir: Path, manifest: Path) -> None:
    workdir.mkdir(parents=True)
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = {"cohort": {"manifest": str(manifest)},
           "radiomics_params": str(light_radiomics_params(workdir / "radiomics.yaml")),
           "extraction": {"shards": 3, "min_images_per_shard": 1},  # 3 jobs: one can finish before the kill
           "tasks": [t for t in default["tasks"] if t["name"] == "metastasis"],
           "clinical": {"predictors": ["age", "us_size_mm", "us_node_suspicious"], "categorical": []},
           "modelling": {"classifiers": ["lr"], "combined_classifiers": ["lr"], "cv_folds": 3,
                         "lasso": {"cv_folds": 3, "n_C": 8}}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def command(workdir: Path, *args: str) -> list[str]:
    # fit_task on one core: on 40 patients, starting joblib's worker processes costs more than it saves
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
            str(workdir / "config.yaml"), "--set-threads", "fit_task=1", "--cores", "2", *args]


def group_alive(pgid: int) -> bool:
    """Does a process of group ``pgid`` still run? (Zombies waiting for PID 1 to reap them do not count.)"""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def run(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(workdir, *args), capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-5000:]}")
    return proc


def run_until(workdir: Path, ready, sig: int, *args: str, timeout: float = 300) -> str:
    """Start Snakemake in its own process group, send ``sig`` to the whole group once ``ready()`` is true,
    wait until every process of the group is gone; return Snakemake's output."""
    log = workdir / f"killed-{sig}.out"
    with open(log, "w") as out:
        proc = subprocess.Popen(command(workdir, *args), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        start = time.monotonic()
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"the run ended before the fault was injected:\n{log.read_text()[-3000:]}")
            if time.monotonic() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                raise AssertionError("the fault point was never reached")
            time.sleep(0.05)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=120)
        for _ in range(600):  # the jobs (and their worker processes) die with it
            if not group_alive(proc.pid):
                break
            time.sleep(0.1)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("processes of the killed run survived")
    return log.read_text()


def outputs(workdir: Path) -> dict[str, bytes]:
    found = {}
    for path in sorted((workdir / "results").rglob("*")):
        rel = str(path.relative_to(workdir))
        if path.is_file() and not rel.startswith(NOT_COMPARED) and path.name != ".snakemake_timestamp":
            found[rel] = path.read_bytes()
    return found


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def cohort_behind_dotdot_and_symlink(small_cohort, tmp_path_factory):
    """A manifest whose paths go up ('..') and through a symlinked folder named with a space and an umlaut."""
    root = tmp_path_factory.mktemp("faults")
    (root / "Bilder Köln").symlink_to(small_cohort.parent, target_is_directory=True)
    manifest = pd.read_csv(small_cohort, sep="\t", dtype=str, keep_default_na=False)
    manifest = manifest[manifest["patient_id"].isin(sorted(manifest["patient_id"].unique())[:N_PATIENTS])]
    for col in ("image", "mask", "mask_reader2"):
        manifest[col] = ["../../Bilder Köln/" + p if p else p for p in manifest[col]]
    folder = root / "manifests" / "v1"
    folder.mkdir(parents=True)
    manifest.to_csv(folder / "manifest.tsv", sep="\t", index=False)
    return root, folder / "manifest.tsv", small_cohort.parent


@pytest.fixture(scope="module")
def reference_and_resumed(cohort_behind_dotdot_and_symlink):
    root, manifest, images = cohort_behind_dotdot_and_symlink
    images_before = tree(images)
    timings = {}

    def cpu() -> float:  # CPU seconds of finished child processes (Snakemake and its jobs)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    cpu0 = cpu()

    reference = root / "reference"
    write_config(reference, manifest)
    start = time.monotonic()
    run(reference, *TARGETS)
    timings["reference"] = time.monotonic() - start
    timings["reference_cpu"] = cpu() - cpu0

    faulty = root / "faulty"
    write_config(faulty, manifest)
    shards = faulty / "results" / "features" / "shards"
    cache = faulty / "results" / "features" / "cache"
    start = time.monotonic()
    killed_extraction = run_until(faulty, lambda: shards.is_dir() and any(shards.glob("*.parquet")),
                                  signal.SIGKILL, *TARGETS)
    killed_at = time.time()
    state_after_kill1 = {
        "shards": sorted(p.name for p in shards.glob("*.parquet")),
        "cached": sum(1 for _ in cache.rglob("*.json")) if cache.is_dir() else 0,
        "merged": (faulty / "results" / "features" / "features.parquet").exists(),
    }
    locks = sorted(p.name for p in (faulty / ".snakemake" / "locks").glob("*"))
    run(faulty, "--unlock")  # after a SIGKILL Snakemake's lock stays: "Directory cannot be locked ... --unlock"
    fit_log = faulty / "results" / "logs" / "metastasis" / "fit_task.log"
    predictions = faulty / "results" / "metastasis" / "predictions.tsv"

    def fitting() -> bool:  # fit_task's script has started (its log exists); let it get into the fitting
        if not fit_log.exists():
            return False
        time.sleep(1.5)
        return True

    killed_fit = run_until(faulty, fitting, signal.SIGTERM, *TARGETS, "--rerun-incomplete")
    state_after_kill2 = {"predictions": predictions.exists(),
                         "features": (faulty / "results" / "features" / "features.parquet").exists()}
    resumed = run(faulty, *TARGETS, "--rerun-incomplete")
    timings["faulty"] = time.monotonic() - start
    timings["faulty_cpu"] = cpu() - cpu0 - timings["reference_cpu"]
    (root / "timings.json").write_text(json.dumps(timings))
    print(f"\n[faults] reference run {timings['reference']:.1f} s ({timings['reference_cpu']:.1f} s CPU); killed + "
          f"resumed runs {timings['faulty']:.1f} s ({timings['faulty_cpu']:.1f} s CPU); "
          f"after the SIGKILL: {state_after_kill1}")
    return dict(reference=reference, faulty=faulty, images=images, images_before=images_before, root=root,
                kill1=state_after_kill1, kill2=state_after_kill2, locks=locks, resumed=resumed, killed_at=killed_at,
                killed_outputs=(killed_extraction, killed_fit))


def test_faults_were_injected_mid_extraction_and_mid_fit(reference_and_resumed):
    r = reference_and_resumed
    assert 1 <= len(r["kill1"]["shards"]) < 3 and not r["kill1"]["merged"], r["kill1"]
    assert r["kill2"] == {"predictions": False, "features": True}, "the second fault must hit fit_task"
    # After a SIGKILL the lock stays (the README's troubleshooting says: snakemake --unlock).
    assert r["locks"], "a SIGKILLed run leaves its lock"


def test_resumed_run_reuses_finished_extraction_work(reference_and_resumed):
    r = reference_and_resumed
    faulty = r["faulty"]
    summaries = []  # of the shard jobs run after the kill (a shard finished before it keeps its first log)
    for log in sorted((faulty / "results" / "logs" / "extract").glob("*.log")):
        if log.stat().st_mtime > r["killed_at"]:
            summaries += [json.loads(m) for m in re.findall(r"usrad-extract-summary (\{.*\})", log.read_text())]
    cohort = pd.read_csv(faulty / "results" / "cohort" / "cohort.tsv", sep="\t", dtype=str, keep_default_na=False)
    n_pairs = len(cohort) + int((cohort["mask_reader2"] != "").sum())
    # every image x mask extracted before the kill came from the per-image cache; only the rest was extracted
    assert r["kill1"]["cached"] >= 1
    assert sum(s["extracted"] for s in summaries) == n_pairs - r["kill1"]["cached"]
    assert sum(s["cached"] for s in summaries) + sum(s["extracted"] for s in summaries) == sum(s["pairs"] for s in summaries)


def test_killed_and_resumed_run_gives_byte_identical_results(reference_and_resumed):
    ref, res = outputs(reference_and_resumed["reference"]), outputs(reference_and_resumed["faulty"])
    assert sorted(ref) == sorted(res)
    for must in ("results/features/features.parquet", "results/metastasis/predictions.tsv",
                 "results/metastasis/selection/selected_features.tsv", "results/metastasis/models/cv_results.tsv",
                 "results/metastasis/tables/multivariable.tsv", "results/metastasis/models/combined/model.skops",
                 "results/split/split.tsv", "results/cohort/cohort.tsv"):
        assert must in ref
    differ = [name for name in ref if ref[name] != res[name]]
    assert not differ, f"differ between the uninterrupted and the resumed run: {differ}"
    features = pd.read_parquet(reference_and_resumed["faulty"] / "results" / "features" / "features.parquet")
    assert features["patient_id"].nunique() == N_PATIENTS and set(features["reader"]) == {"r1", "r2"}


def test_no_temporary_or_partial_file_is_left(reference_and_resumed):
    faulty = reference_and_resumed["faulty"]
    leftovers = [str(p.relative_to(faulty)) for p in (faulty / "results").rglob("*")
                 if p.name.endswith(".tmp") or (p.name.startswith(".") and p.name != ".snakemake_timestamp")]
    assert leftovers == []
    cohort = pd.read_csv(faulty / "results" / "cohort" / "cohort.tsv", sep="\t", dtype=str, keep_default_na=False)
    n_pairs = len(cohort) + int((cohort["mask_reader2"] != "").sum())
    assert sum(1 for _ in (faulty / "results" / "features" / "cache").rglob("*.json")) == n_pairs


def test_outputs_stay_under_results_although_inputs_are_reached_through_dotdot_and_a_symlink(reference_and_resumed):
    r = reference_and_resumed
    assert tree(r["images"]) == r["images_before"], "nothing may be written beside the images"
    for workdir in (r["reference"], r["faulty"]):
        top = sorted(p.name for p in workdir.iterdir())
        assert [n for n in top if n not in (".snakemake", "config.yaml", "radiomics.yaml") and not n.startswith("killed-")] \
            == ["results"], top
    assert sorted(p.name for p in r["root"].iterdir()) == ["Bilder Köln", "faulty", "manifests", "reference", "timings.json"]
    cohort = pd.read_csv(r["faulty"] / "results" / "cohort" / "cohort.tsv", sep="\t", dtype=str)
    assert cohort["image"].iloc[0].startswith(str(r["root"] / "Bilder Köln")) or \
        cohort["image"].iloc[0].startswith(str(r["images"]))
