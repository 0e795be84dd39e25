"""Shared by the bench scripts: run one Snakemake command, keep its output, stop the bench if it fails, and
watch the peak memory of every job it runs."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

_TMP_SCRIPT = re.compile(r"^tmp[^.]+\.")  # snakemake runs a `script:` as .snakemake/scripts/tmpXXXXXXXX.<name>.py


def rss_pss(proc) -> tuple[int, int]:
    """RSS and PSS in bytes from one read of ``/proc/<pid>/smaps_rollup`` (one instant, so PSS ≤ RSS; psutil's
    ``memory_full_info`` reads RSS and PSS from two files, and a fast-growing job could show PSS > RSS)."""
    fields = {}
    with open(f"/proc/{proc.pid}/smaps_rollup") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                fields[key] = int(rest.split()[0]) * 1024
    return fields["Rss"], fields["Pss"]


def upsert_rows(path: Path, row: dict, keys: list[str]) -> "pd.DataFrame":
    """Write ``row`` to the TSV ``path``, replacing a row with the same values of ``keys`` (compared as text);
    the other rows are kept. Returns the table written."""
    import pandas as pd

    table = pd.DataFrame([row])
    if path.exists():
        old = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        if set(keys) <= set(old.columns):
            same = (old[keys] == table[keys].astype(str).iloc[0]).all(axis=1)
            table = pd.concat([old[~same], table], ignore_index=True)  # old rows kept as their text
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False)
    return table


class JobMemory(threading.Thread):
    """Peak memory and CPU time of every Snakemake ``script:`` job run in ``work``, sampled every ``interval`` s.

    Snakemake's own ``benchmark:`` samples only every 30 s: it misses short memory peaks (a fit_task read
    978 MiB there and 986 MiB here at 0.2 s), and its ``cpu_time`` is the last sample's, so a 30-s extraction
    shard is credited with half its CPU. A job is a ``python <work>/.snakemake/scripts/tmp….<name>.py``
    process with all its descendants (joblib's loky workers); per job we keep ``cpu_s`` (user + system of the
    tree, at most ``interval`` short) and the peak of

    * ``rss``: the summed resident set of the process tree. It counts the shared library pages (numpy, pandas,
      scikit-learn: ~200 MiB) once per process, so a job with two loky workers is charged them three times;
    * ``pss``: the summed proportional set size: each shared page split among the processes that map it,
      i.e. what the job adds to the machine's memory, and close to what a Slurm cgroup limit charges.
    """

    def __init__(self, work: Path, interval: float = 0.5):
        super().__init__(daemon=True)
        self.marker = str(Path(work).resolve() / ".snakemake" / "scripts") + "/"
        self.interval = interval
        self.peaks: dict[int, dict] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def sample(self) -> None:
        import psutil

        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            script = next((a for a in cmd[1:3] if a.startswith(self.marker)), None)
            if script is None:
                continue
            try:
                tree = [proc] + proc.children(recursive=True)
            except psutil.Error:
                continue
            rss = pss = cpu = 0
            for p in tree:
                try:
                    (p_rss, p_pss), times = rss_pss(p), p.cpu_times()
                except (psutil.Error, OSError):  # exited between listing and reading
                    continue
                rss += p_rss
                pss += p_pss
                # own CPU; for the job's process also that of its children already waited for (finished workers)
                cpu += times.user + times.system + (times.children_user + times.children_system if p is proc else 0)
            rec = self.peaks.setdefault(proc.pid, {"script": _TMP_SCRIPT.sub("", Path(script).name),
                                                   "rss_mib": 0.0, "pss_mib": 0.0, "cpu_s": 0.0, "processes": 0})
            rec["rss_mib"] = max(rec["rss_mib"], round(rss / 2**20, 1))
            rec["pss_mib"] = max(rec["pss_mib"], round(pss / 2**20, 1))
            rec["cpu_s"] = max(rec["cpu_s"], round(cpu, 2))
            rec["processes"] = max(rec["processes"], len(tree))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(sorted(self.peaks.values(), key=lambda r: (r["script"], -r["pss_mib"])),
                                   indent=1))


def run_snakemake(cmd: list[str], work: Path, what: str = "", watch_memory: bool = False) -> float:
    """Run ``cmd``; its stdout + stderr go to ``work/snakemake.out``. Returns the wall time in seconds.

    With ``watch_memory``, the peak memory of every job goes to ``work/job_memory.json`` (:class:`JobMemory`).
    """
    watch = JobMemory(work) if watch_memory else None
    if watch is not None:
        watch.start()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        if watch is not None:
            watch.stop()
            watch.write(work / "job_memory.json")
    wall = time.perf_counter() - t0
    (work / "snakemake.out").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({proc.returncode}){what}; see {work / 'snakemake.out'}\n{proc.stderr[-3000:]}")
    return wall
