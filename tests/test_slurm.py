"""The workflow on a real Slurm cluster (one node, this machine) through profiles/slurm.

A session fixture installs Slurm + MUNGE if needed (ci/setup-slurm.sh), starts munged, slurmctld and
slurmd as root with all their state in a temp dir, waits until the node is idle, and stops them after.
The pipeline runs once through `--profile profiles/slurm` and once locally with `--cores 2`; the result
tables must be byte-identical. A job that fails on the cluster must be reported with its log path and
leave no partial output.

Job steps on the cluster run `snakemake` from the repo's .venv on the same machine (the shared filesystem
is the same disk), so the .venv's bin/ is put first on PATH and sbatch exports it to the jobs.
"""
from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
SNAKEMAKE = str(VENV_BIN / "snakemake") if (VENV_BIN / "snakemake").exists() else str(Path(sys.executable).with_name("snakemake"))
SETUP_SCRIPT = REPO / "ci" / "setup-slurm.sh"
SLURM_PROFILE = REPO / "profiles" / "slurm"
SITE_CONF = Path("/etc/slurm/slurm.conf")
LOCK_FILE = Path("/tmp/usrad-slurm-test.lock")

# What the cluster run and the local run build: the small-cohort pipeline up to the task's predictions.
TARGETS = ["results/metastasis/predictions.tsv"]
# Result tables that must be byte-identical between the cluster run and the local run.
# (The cohort table is not among them: it holds absolute image paths, which differ between the two workdirs.)
COMPARED_TABLES = ["results/features/features.parquet", "results/split/split.tsv",
                   "results/metastasis/predictions.tsv", "results/metastasis/selection/selected_features.tsv",
                   "results/metastasis/models/cv_results.tsv"]
# The small cohort of these tests: 60 simulated patients (the smallest cohort whose metastasis task has
# >= 10 patients per class, which validation requires; the burden task would need more, so it is left out),
# extracted in 4 shards. Light modelling (one classifier, three folds, a short LASSO path): the tests are about the
# cluster (submission, grouping, failure reports, identical results), not the modelling, which other tests cover.
N_PATIENTS = 60
SMALL_CONFIG = {"cohort": {"simulate": {"n_patients": N_PATIENTS}}, "extraction": {"shards": 4, "min_images_per_shard": 1},
                "modelling": {"classifiers": ["lr"], "combined_classifiers": ["lr"], "cv_folds": 3,
                              "lasso": {"cv_folds": 3, "n_C": 8}}}

# Settings of this test cluster that a real site would not set: it has no accounting database, so job
# status comes from squeue; and its jobs take seconds, so status checks start early and stay frequent.
CI_PROFILE = {
    "slurm-status-command": "squeue",
    "slurm-init-seconds-before-status-checks": 2,
    "seconds-between-status-checks": 1,
}

SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SlurmCluster:
    """A running single-node cluster: `env` is the environment for sbatch/squeue and for snakemake."""

    root: Path
    env: dict
    procs: dict = field(default_factory=dict)

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def node_state(self) -> str:
        proc = self.run("sinfo", "--noheader", "--nodes=localhost", "--format=%t", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else f"sinfo failed: {proc.stderr.strip()}"

    def logs(self) -> str:
        out = []
        for name in ("munged", "slurmctld", "slurmd"):
            path = self.root / "log" / f"{name}.out"
            if path.exists():
                out.append(f"--- {path} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(out)


def _start(cluster: SlurmCluster, name: str, cmd: list[str]) -> None:
    out = open(cluster.root / "log" / f"{name}.out", "w")
    cluster.procs[name] = subprocess.Popen(cmd, env=cluster.env, stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
    time.sleep(0.5)
    if cluster.procs[name].poll() is not None:
        raise RuntimeError(f"{name} exited at start (code {cluster.procs[name].returncode}):\n{cluster.logs()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextlib.contextmanager
def _site_config_link(conf: Path):
    """Point /etc/slurm/slurm.conf at this cluster's config while it runs (restoring what was there)."""
    backup = None
    if SITE_CONF.is_symlink() and not SITE_CONF.exists():  # left dangling by a killed earlier session
        SITE_CONF.unlink()
    if SITE_CONF.is_symlink() or SITE_CONF.exists():
        backup = conf.parent / "site-slurm.conf.orig"
        shutil.move(str(SITE_CONF), backup)
    SITE_CONF.parent.mkdir(parents=True, exist_ok=True)
    SITE_CONF.symlink_to(conf)
    try:
        yield
    finally:
        SITE_CONF.unlink(missing_ok=True)
        if backup is not None:
            shutil.move(str(backup), SITE_CONF)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the Slurm test cluster needs root (to install packages and run slurmd)")
    root = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ)
    env["SLURMCTLD_PORT"], env["SLURMD_PORT"] = str(_free_port()), str(_free_port())
    setup = subprocess.run(["bash", str(SETUP_SCRIPT), str(root)], env=env, capture_output=True, text=True)
    if setup.returncode != 0:
        if not all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch")):
            pytest.skip(f"Slurm could not be installed by {SETUP_SCRIPT.name} (exit {setup.returncode}):\n"
                        f"{setup.stderr[-2000:]}")
        raise RuntimeError(f"{SETUP_SCRIPT} failed:\n{setup.stdout}\n{setup.stderr}")

    conf = root / "slurm.conf"
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "/usr/bin:/bin")])
    cluster = SlurmCluster(root=root, env=env)

    # One cluster per machine at a time: /etc/slurm/slurm.conf is shared.
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with _site_config_link(conf):
            try:
                munge = root / "munge"
                _start(cluster, "munged", ["munged", "--foreground", "--force", f"--socket={munge}/munge.socket",
                                           f"--key-file={munge}/munge.key", f"--seed-file={munge}/munged.seed",
                                           f"--pid-file={root}/run/munged.pid", f"--log-file={root}/log/munged.log"])
                _start(cluster, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)])
                _start(cluster, "slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(conf)])
                deadline = time.monotonic() + 60
                while (state := cluster.node_state()) != "idle":
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"node not idle after 60 s (state: {state!r}):\n{cluster.logs()}")
                    time.sleep(0.5)
                yield cluster
            finally:
                cluster.run("scancel", "--full", "--partition=debug", check=False)
                for name in ("slurmd", "slurmctld", "munged"):
                    if name in cluster.procs:
                        _stop(cluster.procs[name])


@dataclass
class Run:
    workdir: Path
    returncode: int
    output: str
    seconds: float

    @property
    def submissions(self) -> list[tuple[str, Path]]:
        """(Slurm job id, Slurm log path) of every sbatch submission of this run."""
        return [(jobid, Path(log)) for jobid, log in SUBMITTED.findall(self.output)]


def run_snakemake(workdir: Path, env: dict, *args: str) -> Run:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *args]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    (workdir / "snakemake.out").write_text(output)  # kept in pytest's temp dir for diagnosis
    return Run(workdir, proc.returncode, output, time.monotonic() - start)


def light_radiomics_params(path: Path) -> Path:
    """config/radiomics.yaml's settings, but the original image only (no LoG/wavelet) and three feature
    classes: real PyRadiomics extraction at a fraction of the cost."""
    params = yaml.safe_load((REPO / "config" / "radiomics.yaml").read_text())
    params["imageType"] = {"Original": {}}
    params["featureClass"] = {"shape2D": [], "firstorder": [], "glcm": []}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def write_config(workdir: Path, **overrides) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = {"radiomics_params": str(light_radiomics_params(workdir / "radiomics.yaml")),
           "tasks": [t for t in default["tasks"] if t["name"] == "metastasis"], **SMALL_CONFIG, **overrides}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def slurm_args(tmp: Path) -> list[str]:
    ci_profile = tmp / "ci-profile"
    ci_profile.mkdir(exist_ok=True)
    (ci_profile / "config.yaml").write_text(yaml.safe_dump(CI_PROFILE))
    return ["--profile", str(SLURM_PROFILE), "--profile", str(ci_profile)]


def extract_group_size() -> int:
    profile = yaml.safe_load((SLURM_PROFILE / "config.v8+.yaml").read_text())
    sizes = dict(item.split("=") for item in profile["group-components"])
    return int(sizes["extract"])


@pytest.fixture(scope="module")
def cluster_and_local_runs(slurm_cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slurm_runs")
    on_cluster, local = tmp / "cluster", tmp / "local"
    for workdir in (on_cluster, local):
        write_config(workdir)
    cluster_run = run_snakemake(on_cluster, slurm_cluster.env, *slurm_args(tmp), *TARGETS)
    assert cluster_run.returncode == 0, f"cluster run failed:\n{cluster_run.output[-6000:]}\n{slurm_cluster.logs()}"
    local_run = run_snakemake(local, slurm_cluster.env, "--cores", "2", *TARGETS)
    assert local_run.returncode == 0, f"local run failed:\n{local_run.output[-6000:]}"
    print(f"\n[slurm] cluster run: {len(cluster_run.submissions)} sbatch submissions, {cluster_run.seconds:.1f} s; "
          f"local run (--cores 2): {local_run.seconds:.1f} s")
    return cluster_run, local_run


def test_cluster_run_gives_byte_identical_tables_to_local_run(cluster_and_local_runs):
    cluster_run, local_run = cluster_and_local_runs
    for table in COMPARED_TABLES:
        a, b = cluster_run.workdir / table, local_run.workdir / table
        assert a.read_bytes() == b.read_bytes(), f"{table} differs between the cluster and the local run"
    features = pd.read_parquet(cluster_run.workdir / "results/features/features.parquet")
    assert features["patient_id"].nunique() == N_PATIENTS


def test_cluster_run_submits_jobs_to_slurm_and_bundles_extraction_shards(cluster_and_local_runs, slurm_cluster):
    cluster_run, local_run = cluster_and_local_runs
    assert not local_run.submissions
    kinds = [log.relative_to(cluster_run.workdir / ".snakemake" / "slurm_logs").parts[0]
             for _, log in cluster_run.submissions]
    # The shards go out in bundles of `group-components: extract=N`, never one by one; localrules stay local.
    n_shards = SMALL_CONFIG["extraction"]["shards"]
    bundles = [k for k in kinds if k.startswith("group_extract")]
    assert len(bundles) == math.ceil(n_shards / extract_group_size()) < n_shards
    assert "rule_extract_shard" not in kinds and "rule_merge_features" not in kinds
    # Slurm really ran them: every submitted job is known to slurmctld and COMPLETED.
    states = slurm_cluster.run("squeue", "--noheader", "--states=all", "--format=%i %T").stdout.split("\n")
    state_of = dict(line.split() for line in states if line.strip())
    assert {jobid: state_of.get(jobid) for jobid, _ in cluster_run.submissions} == {
        jobid: "COMPLETED" for jobid, _ in cluster_run.submissions}


def test_failed_cluster_job_is_reported_with_its_log_and_leaves_no_output(cluster_and_local_runs, slurm_cluster,
                                                                          tmp_path):
    cluster_run, _ = cluster_and_local_runs
    # A user manifest (the demo cohort's) in which one patient's image is not an image.
    demo = cluster_run.workdir / "results" / "demo"
    manifest = pd.read_csv(demo / "manifest.tsv", sep="\t", dtype=str, keep_default_na=False)
    for col in ("image", "mask", "mask_reader2"):
        manifest[col] = [str((demo / p).resolve()) if p else p for p in manifest[col]]
    corrupt = tmp_path / "corrupt_image.png"
    corrupt.write_bytes(b"this is not an image\n" * 10)
    patient = manifest.at[3, "patient_id"]
    manifest.at[3, "image"] = str(corrupt)
    manifest.to_csv(tmp_path / "manifest.tsv", sep="\t", index=False)

    workdir = tmp_path / "run"
    write_config(workdir, cohort={"manifest": str(tmp_path / "manifest.tsv")})
    run = run_snakemake(workdir, slurm_cluster.env, *slurm_args(tmp_path), *TARGETS)

    assert run.returncode != 0
    [(jobid, slurm_log)] = [(j, log) for j, log in run.submissions if "rule_validate_cohort" in log.parts]
    # Snakemake's error report names the failed Slurm job and both logs: the rule's and Slurm's.
    report = re.search(r"Error in rule validate_cohort:\n    message: (.*)\n(?:    .*\n)*?    log: (.*) \(check log",
                       run.output)
    assert report, run.output[-4000:]
    assert f"SLURM-job '{jobid}' failed" in report.group(1)
    assert report.group(2).split(", ") == ["results/logs/validate_cohort.log", str(slurm_log)]
    # The Slurm log exists and says which patient and which file.
    text = slurm_log.read_text()
    assert str(corrupt) in text and patient in text
    state = slurm_cluster.run("squeue", "--noheader", "--states=all", f"--jobs={jobid}", "--format=%T").stdout.strip()
    assert state == "FAILED"
    # No partial output: the failed rule's output and everything downstream are absent.
    assert not (workdir / "results" / "cohort" / "cohort.tsv").exists()
    assert not (workdir / "results" / "features").exists()
