"""Overall progress of the extraction stage: every shard's counters in a status file, summed into one line.

Each extract_shard job writes ``{shard}.json`` to ``{results}/logs/extract/progress/`` (:data:`STATUS_DIR`),
atomically, every few seconds and when it ends: images done and its total, masks taken from the cache, start and
last update (seconds since the epoch, comparable between cluster nodes), the stage's image and shard counts and
the stage's identity (the cohort table's and params' SHA-256 and the shard count). :func:`summarize` sums the
files of the current stage (the identity of the latest-started shard: files of an earlier run with another
cohort are ignored; unreadable or corrupt files are skipped) and :func:`format_line` writes one line::

    extraction: 412/1,342 images (31 %), 3 of 16 shards done, 11 not started, 5.1 images/s, ETA 3 min

The rate is the stage's (images done by all shards / time since the first shard started), so is the ETA. The
lowest-numbered running shard prints that line to stderr (the terminal of a local run) every
:data:`PRINT_EVERY` seconds, the last shard to finish prints the final one; ``usrad progress`` prints it from
the status files, for a cluster run whose shards' stderr goes to Slurm logs. The files are under
``results/logs/``: no declared output, not compared between runs, no result file's bytes depend on them.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

from ..atomic import write_text
from .digests import file_sha256

STATUS_DIR = Path("logs") / "extract" / "progress"
WRITE_EVERY = 2.0  # seconds between two status writes of a shard
PRINT_EVERY = 20.0  # seconds between two overall lines on the terminal
STALLED_AFTER = 300.0  # seconds without an update from a running shard: the line says so
FIELDS = {"shard": int, "n_shards": int, "stage_images": int, "done": int, "total": int, "cached": int,
          "started": float, "updated": float, "finished": bool, "failed": bool, "stage": str}


def status_dir(results_dir) -> Path:
    """The folder of the shards' status files of a results folder."""
    return Path(results_dir) / STATUS_DIR


def stage_identity(cohort_path, params_path, n_shards: int) -> str:
    """The identity of one extraction stage: the cohort table (content and modification time: a rewritten table
    is a new run), the params and the shard count."""
    parts = [file_sha256(cohort_path), str(os.stat(cohort_path).st_mtime_ns), file_sha256(params_path), str(n_shards)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def read_statuses(folder) -> list[dict]:
    """The valid status files of ``folder`` (none when it is missing); a file being replaced, unreadable, not JSON
    or without the expected fields is skipped."""
    statuses = []
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and all(type(data.get(k)) is t or (t is float and type(data.get(k)) is int)
                                              for k, t in FIELDS.items()):
                statuses.append(data)
        except (OSError, ValueError):
            continue
    return statuses


def summarize(statuses: list[dict], now: float) -> dict | None:
    """The stage's counters summed over its shards' statuses (None without any): ``images``, ``done``, ``cached``,
    ``n_shards``, ``started`` (shards with a status), ``finished``, ``failed``, ``running``, ``rate`` (images/s,
    NaN before the first image), ``eta`` and ``elapsed`` (seconds; ETA NaN when unknown, 0 when complete),
    ``stalled`` (seconds since the last update of a running shard, 0 when none is running) and ``printer`` (the
    lowest-numbered running shard updated within :data:`STALLED_AFTER` s: a killed shard does not silence the
    others)."""
    if not statuses:
        return None
    stage = max(statuses, key=lambda s: (s["started"], s["shard"]))["stage"]
    shards = {s["shard"]: s for s in statuses if s["stage"] == stage}.values()
    images, n_shards = max(s["stage_images"] for s in shards), max(s["n_shards"] for s in shards)
    done, finished = sum(s["done"] for s in shards), sum(s["finished"] for s in shards)
    running = [s for s in shards if not s["finished"] and not s["failed"]]
    complete = finished >= n_shards
    end = max(s["updated"] for s in shards) if complete else now
    elapsed = max(end - min(s["started"] for s in shards), 0.0)
    rate = done / elapsed if done and elapsed > 0 else math.nan
    eta = 0.0 if complete else (max(images - done, 0) / rate if rate > 0 else math.nan)
    return {"images": images, "done": done, "cached": sum(s["cached"] for s in shards), "n_shards": n_shards,
            "started": len(shards), "finished": finished, "failed": sum(s["failed"] for s in shards),
            "running": len(running),
            "rate": rate, "eta": eta, "elapsed": elapsed,
            "stalled": max(now - max(s["updated"] for s in running), 0.0) if running else 0.0,
            "printer": min((s["shard"] for s in running if now - s["updated"] <= STALLED_AFTER), default=None)}


def duration(seconds: float) -> str:
    """``45 s``, ``3 min``, ``2 h 05 min`` (rounded)."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


def format_line(summary: dict | None) -> str:
    """The one overall line of a :func:`summarize` result."""
    if summary is None:
        return "extraction: no shard has started yet"
    s = summary
    line = (f"extraction: {s['done']:,}/{s['images']:,} images ({100 * s['done'] / max(s['images'], 1):.0f} %), "
            f"{s['finished']} of {s['n_shards']} shards done")
    if s["finished"] >= s["n_shards"]:
        return line + f" in {duration(s['elapsed'])}"
    not_started = f", {s['n_shards'] - s['started']} not started" if s["started"] < s["n_shards"] else ""
    if s["failed"]:  # the stage will not complete: no rate or ETA
        running = f", {s['running']} still running" if s["running"] else ""
        return line + f", {s['failed']} failed (see their logs)" + running + not_started
    line += not_started
    if not math.isnan(s["rate"]):
        line += f", {s['rate']:.{1 if s['rate'] >= 0.95 else 2}f} images/s"
    line += f", ETA {duration(s['eta'])}" if not math.isnan(s["eta"]) else ", ETA unknown"
    if s["stalled"] > STALLED_AFTER:
        line += f", no update for {duration(s['stalled'])}"
    return line


def stage_line(results_dir, now: float | None = None) -> str:
    """The overall line of the extraction of a results folder, from its status files."""
    now = time.time() if now is None else now
    return format_line(summarize(read_statuses(status_dir(results_dir)), now))


def watch(results_dir, every: float, stream=None, sleep=time.sleep, clock=time.time, rounds: int | None = None) -> str:
    """Print the overall line every ``every`` seconds until the stage is complete, a shard failed, Ctrl-C or
    ``rounds`` lines; returns the last line."""
    stream = stream if stream is not None else sys.stdout
    n, line = 0, ""
    try:
        while True:
            summary = summarize(read_statuses(status_dir(results_dir)), clock())
            line = format_line(summary)
            print(line, file=stream, flush=True)
            n += 1
            if summary and (summary["finished"] >= summary["n_shards"] or summary["failed"]) or n == rounds:
                return line
            sleep(every)
    except KeyboardInterrupt:  # Ctrl-C ends the watch: not an error
        return line


class ShardStatus:
    """A shard's status file, written by :meth:`update` (at most every :data:`WRITE_EVERY` s, and at the end) and
    the overall line printed to ``stream`` by the lowest-numbered running shard every :data:`PRINT_EVERY` s."""

    def __init__(self, folder, shard: int, n_shards: int, stage_images: int, total: int, stage: str,
                 stream=None, clock=time.time, write_every: float = WRITE_EVERY, print_every: float = PRINT_EVERY):
        self.folder, self.path = Path(folder), Path(folder) / f"{shard:03d}.json"
        self.stream = stream if stream is not None else sys.stderr
        self.clock, self.write_every, self.print_every = clock, write_every, print_every
        self.started = self.printed = clock()  # the first overall line after print_every seconds
        self.written = -math.inf
        self.state = {"shard": shard, "n_shards": n_shards, "stage_images": stage_images, "done": 0, "total": total,
                      "cached": 0, "started": self.started, "updated": self.started, "finished": False,
                      "failed": False, "stage": stage}
        self._write()

    def update(self, done: int, cached: int) -> None:
        self.state.update(done=done, cached=cached)
        now = self.clock()
        if now - self.written >= self.write_every:
            self._write()
        if now - self.printed >= self.print_every:
            summary = summarize(read_statuses(self.folder), now)
            self.printed = now
            if summary is not None and summary["printer"] == self.state["shard"]:
                self._print(summary)

    def end(self, failed: bool = False, announce: bool = True) -> None:
        """The shard's last status; the shard that completes the stage (or fails) prints the overall line, unless
        not ``announce`` (Ctrl-C)."""
        self.state.update(finished=not failed, failed=failed)
        self._write()
        summary = summarize(read_statuses(self.folder), self.clock())
        if announce and summary is not None and (failed or summary["finished"] >= summary["n_shards"]):
            self._print(summary)

    def _write(self) -> None:
        self.written = self.state["updated"] = self.clock()
        try:
            write_text(self.path, json.dumps(self.state, sort_keys=True) + "\n")
        except OSError:
            pass  # a progress display never fails the extraction

    def _print(self, summary: dict) -> None:
        print(format_line(summary), file=self.stream, flush=True)


__all__ = ["PRINT_EVERY", "STATUS_DIR", "ShardStatus", "duration", "format_line", "read_statuses", "stage_identity",
           "stage_line", "status_dir", "summarize", "watch"]
