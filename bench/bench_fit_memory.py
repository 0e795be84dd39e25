"""Peak memory of fitting one task (``usrad.models.fit_task``) at a large cohort: the demo table copied k times.

    python bench/bench_fit_memory.py [--copies 4] [--n-jobs 2] [--task metastasis] [--results results]

Reads the demo run's feature and cohort tables (``results/features/features.parquet``,
``results/cohort/cohort.tsv``), stacks ``--copies`` copies with new patient and image ids (every copy after the
first with its features multiplied by 1 + N(0, 0.001), so no two patients are identical), makes the split of the
config and fits the task with ``n_jobs``, sampling every 0.2 s the resident set (RSS) and proportional set (PSS)
of this process and of its loky workers. Writes one row to ``bench/results/fit_memory.tsv`` (a row of the same
copies, n_jobs and task is replaced): peak RSS of the main process, peak summed RSS and PSS of the process tree,
fit seconds. The harness itself holds the stacked tables (~100 MiB at 4 copies) before the fit starts.
"""
from __future__ import annotations

import argparse
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import rss_pss, upsert_rows  # noqa: E402


def stacked(features: pd.DataFrame, cohort: pd.DataFrame, copies: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    feats, cohorts = [], []
    cols = [c for c in features.columns if c not in ("patient_id", "image_id", "reader")]
    for i in range(copies):
        f, c = features.copy(), cohort.copy()
        for df in (f, c):
            df["patient_id"] = df["patient_id"].astype(str) + f"_{i}"
            df["image_id"] = df["image_id"].astype(str) + f"_{i}"
        if i:
            f[cols] = f[cols].to_numpy() * (1 + 1e-3 * rng.standard_normal((len(f), len(cols))))
        feats.append(f)
        cohorts.append(c)
    return pd.concat(feats, ignore_index=True), pd.concat(cohorts, ignore_index=True)


class TreeMemory(threading.Thread):
    """Peak RSS of this process and peak summed RSS / PSS of it and its children, sampled every ``interval`` s."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.me, self.interval, self.stop_event = psutil.Process(), interval, threading.Event()
        self.peak = {"main_rss": 0, "tree_rss": 0, "tree_pss": 0}

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            rss = pss = 0
            for proc in [self.me] + self.me.children(recursive=True):
                try:
                    p_rss, p_pss = rss_pss(proc)
                except (psutil.Error, OSError):  # exited between listing and reading
                    continue
                rss, pss = rss + p_rss, pss + p_pss
            self.peak["tree_rss"] = max(self.peak["tree_rss"], rss)
            self.peak["tree_pss"] = max(self.peak["tree_pss"], pss)
            self.peak["main_rss"] = max(self.peak["main_rss"], self.me.memory_info().rss)


def main(argv=None) -> int:
    from usrad.cohort import read_cohort_table
    from usrad.config import load_config
    from usrad.features import read_feature_table
    from usrad.models import fit_task
    from usrad.split import make_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--task", default="metastasis")
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fit_memory.tsv")
    args = parser.parse_args(argv)
    cfg = load_config(REPO / "config" / "config.yaml")
    features, _ = read_feature_table(args.results / "features" / "features.parquet")
    cohort = read_cohort_table(args.results / "cohort" / "cohort.tsv", categorical=cfg["clinical"]["categorical"])
    features, cohort = stacked(features, cohort, args.copies)
    split = make_split(cohort, cfg["tasks"], seed=cfg["seed"], test_size=cfg["split"]["test_size"])
    task = next(t for t in cfg["tasks"] if t["name"] == args.task)
    watch = TreeMemory()
    start_rss = watch.me.memory_info().rss
    watch.start()
    t0 = time.perf_counter()
    fit_task(features, cohort, split, task, cfg["modelling"], cfg["clinical"], seed=cfg["seed"], n_jobs=args.n_jobs)
    seconds = time.perf_counter() - t0
    watch.stop_event.set()
    watch.join()
    mib = 2 ** 20
    row = {"task": args.task, "copies": args.copies, "n_patients": cohort["patient_id"].nunique(),
           "n_rows": len(features), "n_jobs": args.n_jobs, "start_main_rss_mib": round(start_rss / mib),
           **{f"peak_{k}_mib": round(v / mib) for k, v in watch.peak.items()}, "fit_seconds": round(seconds, 1),
           "load": round(psutil.getloadavg()[0], 1), "machine": platform.node(), "date": time.strftime("%Y-%m-%d")}
    upsert_rows(args.out, row, ["task", "copies", "n_jobs"])
    print("\n".join(f"{k}\t{v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
