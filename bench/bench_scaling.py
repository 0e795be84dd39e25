"""Scaling benchmark: the whole pipeline (`snakemake --cores N`, i.e. `make demo`) at several cohort sizes.

    python bench/bench_scaling.py [--sizes 168,671,2684] [--cores 2] [--work bench/work/scaling]
    python bench/bench_scaling.py --report-only      # re-read finished runs, rewrite the TSV and plot

For each size n, a work directory ``bench/work/scaling/n{n}/`` gets the repository's config with
``cohort.simulate.n_patients = n`` and runs the default target from scratch, except that a simulated cohort
already there (``results/demo/``, with its ``benchmarks/simulate.tsv``) is kept (``--resimulate`` to redo it).
From the run it takes

* the whole pipeline's wall time (the snakemake process);
* every job's wall time from snakemake's own log (``[date]`` before ``rule X:`` and ``Finished jobid``),
  summed per stage: ``simulate``, then the rules file a rule lives in (``cohort``, ``features``, ``models``,
  ``evaluate``, ``report``, ``predict``);
* every job's peak memory (MiB): summed RSS and PSS of its process tree, sampled every 0.5 s
  (``benchlib.JobMemory``, kept in ``job_memory.json``); the ``benchmark:`` TSVs' ``max_rss`` (sampled every
  30 s) only for runs made before the watcher;

and writes ``bench/results/scaling.tsv`` (one row per size × stage, with machine info), the fitted
log-log exponent of time against patients per stage and in total (``bench/results/scaling_fit.tsv``; 1.0 =
linear), and ``bench/results/scaling.png`` / ``.pdf``. Sizes that are already finished (a
``bench.json`` in their work directory) are not rerun unless ``--rerun``.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))
from bench_extraction import machine_info  # noqa: E402
from benchlib import run_snakemake  # noqa: E402

DEFAULT_SIZES = (168, 671, 2684)
_START = re.compile(r"^(?:local)?rule (\w+):$")
_FINISH = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_JOB = re.compile(r"^Job (\d+): (\w+)")  # Snakemake 9's compact job line (profiles/default): "Job 4: simulate, log …"


def rule_stages(repo: Path = REPO) -> dict[str, str]:
    """Rule name -> stage: ``simulate`` for the simulation, else the stem of the rules file it is defined in."""
    stages = {}
    for smk in sorted((repo / "rules").glob("*.smk")):
        for line in smk.read_text().splitlines():
            m = re.match(r"^rule (\w+):", line)
            if m:
                stages[m.group(1)] = "simulate" if m.group(1) == "simulate" else smk.stem
    return stages


def job_times(snakemake_log: str) -> pd.DataFrame:
    """One row per finished job of a snakemake log: ``rule``, ``jobid``, ``start``, ``end``, ``seconds``."""
    stamp, pending, started, rows = None, None, {}, []
    for line in snakemake_log.splitlines():
        if m := _STAMP.match(line.strip()):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _START.match(line.strip()):
            pending = (m.group(1), stamp)
        elif m := _JOB.match(line.strip()):
            started[int(m.group(1))] = (m.group(2), stamp)
        elif (m := _JOBID.match(line)) and pending is not None:
            started[int(m.group(1))] = pending
            pending = None
        elif m := _FINISH.match(line.strip()):
            jobid, rule = int(m.group(1)), m.group(2)
            if jobid in started:
                start = started.pop(jobid)[1]
                rows.append({"rule": rule, "jobid": jobid, "start": start, "end": stamp,
                             "seconds": (stamp - start).total_seconds()})
    return pd.DataFrame(rows, columns=["rule", "jobid", "start", "end", "seconds"])


def script_stages(repo: Path = REPO) -> dict[str, str]:
    """Rule script file name (``fit_task.py``) -> stage, from the ``script:`` of each rule."""
    stages, out = rule_stages(repo), {}
    for smk in sorted((repo / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            rule = block.split(":", 1)[0].strip()
            if m := re.search(r'script:\s*"[^"]*?(\w+\.py)"', block):
                out[m.group(1)] = stages.get(rule, "other")
    return out


def job_memory(work: Path) -> pd.DataFrame | None:
    """``script``, ``stage``, ``rss_mib``, ``pss_mib``, ``cpu_s`` per job from the watcher's ``job_memory.json``
    (None for a run made before the watcher)."""
    path = work / "job_memory.json"
    if not path.exists():
        return None
    df = pd.DataFrame(json.loads(path.read_text()), columns=["script", "rss_mib", "pss_mib", "cpu_s", "processes"])
    stage_of = script_stages()
    df["stage"] = df["script"].map(lambda s: stage_of.get(s, "other"))
    return df


def benchmark_memory(results: Path) -> pd.DataFrame:
    """``file``, ``s``, ``max_rss`` (MiB), ``cpu_time`` (s) of every benchmark TSV under ``results/benchmarks``."""
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        df = pd.read_csv(path, sep="\t")
        if len(df):
            rows.append({"file": path.relative_to(results / "benchmarks").as_posix(), "s": float(df["s"].iloc[-1]),
                         "max_rss": float(pd.to_numeric(df["max_rss"], errors="coerce").iloc[-1]),
                         "cpu_time": float(pd.to_numeric(df["cpu_time"], errors="coerce").iloc[-1])})
    return pd.DataFrame(rows, columns=["file", "s", "max_rss", "cpu_time"])


def _stage_of_benchmark(name: str) -> str:
    if name.startswith("simulate"):
        return "simulate"
    if name.startswith("extract/"):
        return "features"
    if name.endswith("fit_task.tsv"):
        return "models"
    return "evaluate"


def prepare(work: Path, n: int, cores: int, resimulate: bool) -> None:
    """A fresh work directory for size ``n``; a simulated cohort already in it is kept unless ``resimulate``."""
    results = work / "results"
    keep_demo = (results / "demo" / "manifest.tsv").exists() and (results / "benchmarks" / "simulate.tsv").exists() \
        and not resimulate
    if keep_demo:
        for child in results.iterdir():
            if child.name not in ("demo", "benchmarks"):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        for child in (results / "benchmarks").iterdir():
            if child.name != "simulate.tsv":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        for sub in (results / "demo").iterdir():  # outputs of other rules written inside demo/
            if sub.name not in ("images", "masks", "manifest.tsv", "ground_truth.tsv"):
                shutil.rmtree(sub) if sub.is_dir() else sub.unlink()
    elif results.exists():
        shutil.rmtree(results)
    for stale in (work / ".snakemake", work / "bench.json"):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump({
        "cohort": {"simulate": {"n_patients": int(n)}},
        "radiomics_params": str(REPO / "config" / "radiomics.yaml"),
    }))
    (work / "kept_simulation").write_text("yes\n" if keep_demo else "no\n")


def run_size(work: Path, n: int, cores: int, resimulate: bool) -> dict:
    prepare(work, n, cores, resimulate)
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(REPO / "config" / "config.yaml"), str(work / "config.yaml"),
           "--cores", str(cores), "--rerun-triggers", "mtime"]
    print(f"[{time.strftime('%H:%M:%S')}] n={n}: {' '.join(cmd)}", flush=True)
    wall = run_snakemake(cmd, work, f" at n={n}", watch_memory=True)
    summary = {"n_patients": n, "cores": cores, "wall_s": round(wall, 2),
               "kept_simulation": (work / "kept_simulation").read_text().strip() == "yes"}
    (work / "bench.json").write_text(json.dumps(summary))
    print(f"[{time.strftime('%H:%M:%S')}] n={n}: pipeline wall {wall:.0f} s", flush=True)
    return summary


def collect(work: Path, summary: dict, stages: dict[str, str]) -> pd.DataFrame:
    """One row per stage (and ``total``) of one finished size."""
    results = work / "results"
    jobs = job_times((work / "snakemake.out").read_text())
    jobs = jobs[jobs["rule"] != "all"].copy()  # the target rule does no work
    jobs["stage"] = jobs["rule"].map(lambda r: stages.get(r, "other"))
    mem = benchmark_memory(results)
    mem["stage"] = mem["file"].map(_stage_of_benchmark)
    watched = job_memory(work)
    if watched is not None and summary["kept_simulation"]:  # the reused simulation was not watched
        watched = watched[watched["stage"] != "simulate"]

    def measured(stage=None):
        """Peak summed RSS and PSS of one job and CPU seconds of all jobs (of ``stage``), from the 0.5-s watcher;
        from the benchmark TSVs (30-s samples, heavy rules only) for runs made before it."""
        if watched is not None and len(w := watched if stage is None else watched[watched["stage"] == stage]):
            return {"peak_rss_mib": round(float(w["rss_mib"].max()), 1),
                    "peak_pss_mib": round(float(w["pss_mib"].max()), 1),
                    "cpu_seconds": round(float(w["cpu_s"].sum()), 1) if w["cpu_s"].notna().all() else np.nan}
        m = mem if stage is None else mem[mem["stage"] == stage]
        if not len(m):
            return {"peak_rss_mib": np.nan, "peak_pss_mib": np.nan, "cpu_seconds": np.nan}
        return {"peak_rss_mib": round(float(m["max_rss"].max()), 1), "peak_pss_mib": np.nan,
                "cpu_seconds": round(float(m["cpu_time"].sum()), 1)}

    rows = []
    sim = mem[mem["stage"] == "simulate"]
    if summary["kept_simulation"] and len(sim):  # simulation reused: its time comes from its benchmark TSV
        jobs = pd.concat([jobs[jobs["stage"] != "simulate"],
                          pd.DataFrame([{"rule": "simulate", "stage": "simulate", "seconds": float(sim["s"].iloc[0])}])])
    for stage, grp in jobs.groupby("stage", sort=False):
        rows.append({"stage": stage, "jobs": len(grp), "job_seconds": round(float(grp["seconds"].sum()), 1),
                     "max_job_seconds": round(float(grp["seconds"].max()), 1), **measured(stage)})
    wall = summary["wall_s"] + (float(sim["s"].iloc[0]) if summary["kept_simulation"] and len(sim) else 0.0)
    rows.append({"stage": "total", "jobs": int(len(jobs)), "job_seconds": round(float(jobs["seconds"].sum()), 1),
                 "max_job_seconds": round(float(jobs["seconds"].max()), 1), **measured(), "wall_s": round(wall, 1)})
    out = pd.DataFrame(rows)
    out.insert(0, "n_patients", summary["n_patients"])
    out["simulation_reused"] = summary["kept_simulation"]
    return out


def exponents(table: pd.DataFrame) -> pd.DataFrame:
    """Log-log slope of time against patients per stage (job seconds) and for the total (wall and job seconds)."""
    rows = []
    for stage, grp in table.groupby("stage", sort=False):
        grp = grp[grp["job_seconds"] > 0]
        if grp["n_patients"].nunique() < 2:
            continue
        x = np.log(grp["n_patients"].to_numpy(float))
        rows.append({"stage": stage, "measure": "job_seconds", "sizes": ",".join(map(str, grp["n_patients"])),
                     "exponent": round(float(np.polyfit(x, np.log(grp["job_seconds"].to_numpy(float)), 1)[0]), 3)})
        cpu = grp[grp["cpu_seconds"] > 0]
        if cpu["n_patients"].nunique() >= 2:  # CPU time: robust to machine load
            rows.append({"stage": stage, "measure": "cpu_seconds", "sizes": ",".join(map(str, cpu["n_patients"])),
                         "exponent": round(float(np.polyfit(np.log(cpu["n_patients"].to_numpy(float)),
                                                            np.log(cpu["cpu_seconds"].to_numpy(float)), 1)[0]), 3)})
        if stage == "total" and grp["wall_s"].notna().all():
            rows.append({"stage": "total", "measure": "wall_s", "sizes": ",".join(map(str, grp["n_patients"])),
                         "exponent": round(float(np.polyfit(x, np.log(grp["wall_s"].to_numpy(float)), 1)[0]), 3)})
    return pd.DataFrame(rows, columns=["stage", "measure", "sizes", "exponent"])


def plot(table: pd.DataFrame, fits: pd.DataFrame, out_png: Path, cores: int) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [1.25, 1]})
    slope = {r.stage: r.exponent for r in fits.itertuples() if r.measure == "cpu_seconds"}
    wall_slope = next((r.exponent for r in fits.itertuples() if r.measure == "wall_s"), None)
    sizes = sorted(table["n_patients"].unique())
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    order = ["simulate", "cohort", "features", "models", "evaluate", "report", "predict"]
    stages = [s for s in table["stage"].unique() if s != "total"]
    colour_of = {s: cycle[i % len(cycle)] for i, s in enumerate(sorted(stages, key=lambda s: (
        order.index(s) if s in order else len(order), s)))}
    colour_of["total"] = "k"
    for stage, grp in table[table["cpu_seconds"].notna()].groupby("stage", sort=False):
        grp = grp.sort_values("n_patients")
        label = f"{stage} CPU (slope {slope[stage]:.2f})" if stage in slope else f"{stage} CPU"
        ax_t.plot(grp["n_patients"], grp["cpu_seconds"] / 60, "o-", label=label, color=colour_of[stage],
                  **({"lw": 2} if stage == "total" else {}))
    tot = table[table["stage"] == "total"].sort_values("n_patients")
    ax_t.plot(tot["n_patients"], tot["wall_s"] / 60, "^--", color="grey", lw=2,
              label=f"pipeline wall, {cores} cores" + (f" (slope {wall_slope:.2f})" if wall_slope is not None else ""))
    ref = tot["cpu_seconds"].iloc[0] / 60 * np.asarray(sizes, float) / sizes[0]
    ax_t.plot(sizes, ref, ":", color="k", label="total CPU if linear from the smallest size")
    ax_t.set(xscale="log", yscale="log", xlabel="patients (log)", ylabel="minutes (log)",
             title="CPU time per stage and pipeline wall")
    ax_t.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    for stage, grp in table[(table["stage"] != "total") & table["peak_rss_mib"].notna()].groupby("stage", sort=False):
        grp, colour = grp.sort_values("n_patients"), colour_of[stage]
        has_pss = grp["peak_pss_mib"].notna().any()
        if has_pss:
            ax_m.plot(grp["n_patients"], grp["peak_pss_mib"] / 1024, "o-", color=colour, label=stage)
        ax_m.plot(grp["n_patients"], grp["peak_rss_mib"] / 1024, "x:", color=colour, alpha=0.8,
                  label=None if has_pss else stage)
    ax_m.plot([], [], "o-", color="k", label="PSS (shared pages split)")
    ax_m.plot([], [], "x:", color="k", label="summed RSS (shared pages\nonce per process)")
    ax_m.axhline(1.0, color="red", ls="--", lw=1, label="1 GiB target")
    ax_m.set(xscale="log", xlabel="patients (log)", ylabel="peak memory of one job (GiB)",
             title="Peak memory per job (process tree, sampled every 0.5 s)")
    ax_m.set_ylim(0, max(1.2, float(table["peak_rss_mib"].max()) / 1024 * 1.15))
    ax_m.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    for ax in (ax_t, ax_m):
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(sizes, [str(s) for s in sizes])
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120, metadata={"Software": None})
    fig.savefig(out_png.with_suffix(".pdf"), metadata={"Creator": None, "Producer": None, "CreationDate": None})
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated cohort sizes (patients), default %(default)s")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--work", type=Path, default=HERE / "work" / "scaling")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scaling.tsv")
    parser.add_argument("--rerun", action="store_true", help="rerun sizes that are already finished")
    parser.add_argument("--resimulate", action="store_true", help="do not reuse a simulated cohort")
    parser.add_argument("--report-only", action="store_true", help="only collect finished sizes")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in str(args.sizes).split(",") if s.strip()})
    stages = rule_stages()
    tables = []
    for n in sizes:
        work = args.work / f"n{n}"
        done = work / "bench.json"
        if args.report_only or (done.exists() and not args.rerun):
            if not done.exists():
                print(f"n={n}: not run yet (no {done})")
                continue
            summary = json.loads(done.read_text())
        else:
            summary = run_size(work, n, args.cores, args.resimulate)
        tables.append(collect(work, summary, stages))
    if not tables:
        return 1
    table = pd.concat(tables, ignore_index=True)
    fits = exponents(table)
    info = machine_info(args.cores)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.assign(**info).to_csv(args.out, sep="\t", index=False)
    fits.assign(**info).to_csv(args.out.with_name("scaling_fit.tsv"), sep="\t", index=False)
    plot(table, fits, args.out.with_suffix(".png"), args.cores)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False))
        print(fits.to_string(index=False))
    print(f"written {args.out}, {args.out.with_name('scaling_fit.tsv')}, {args.out.with_suffix('.png')} (+ .pdf)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
