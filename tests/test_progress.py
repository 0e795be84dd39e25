"""The extraction stage's overall progress: shards' status files summed into one line, printed while the shards
run and by `usrad progress` (usrad.extract.progress)."""
from __future__ import annotations

import io
import json
import math
import os

import pytest
from test_bundle_safety import tiny_params_file
from test_extract import make_cohort

from usrad.cli import main
from usrad.errors import UsradError
from usrad.extract import extract_shard
from usrad.extract.progress import (STATUS_DIR, ShardStatus, duration, format_line, read_statuses, stage_identity,
                                    stage_line, summarize, watch)


def status(shard, done, total, n_shards=4, images=100, started=1000.0, updated=1010.0, finished=False,
           failed=False, stage="s1", cached=0) -> dict:
    return {"shard": shard, "n_shards": n_shards, "stage_images": images, "done": done, "total": total,
            "cached": cached, "started": started, "updated": updated, "finished": finished, "failed": failed,
            "stage": stage}


def write_statuses(folder, statuses) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for s in statuses:
        (folder / f"{s['shard']:03d}.json").write_text(json.dumps(s))


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


# ------------------------------------------------------------------------------------------- summing, formatting
def test_counts_rate_and_eta_are_the_stages_over_all_shards():
    shards = [status(0, 25, 25, finished=True, updated=1004.0), status(1, 10, 25), status(2, 5, 25, started=1002.0)]
    s = summarize(shards, now=1010.0)  # shard 3 has not started: no status file
    assert (s["done"], s["images"], s["finished"], s["started"], s["n_shards"]) == (40, 100, 1, 3, 4)
    assert s["rate"] == pytest.approx(4.0)  # 40 images in the 10 s since the first shard started
    assert s["eta"] == pytest.approx(15.0)  # 60 images left at 4 images/s
    assert s["printer"] == 1  # the lowest-numbered running shard prints the line
    assert format_line(s) == ("extraction: 40/100 images (40 %), 1 of 4 shards done, 1 not started, "
                              "4.0 images/s, ETA 15 s")


def test_a_complete_stage_says_how_long_it_took():
    shards = [status(i, 84 - (i < 2), 84 - (i < 2), n_shards=16, images=1342, started=1000.0 + i,
                     updated=1100.0 + 10 * i, finished=True) for i in range(16)]
    s = summarize(shards, now=5000.0)  # long after: the elapsed time is the stage's, not until now
    assert (s["done"], s["finished"], s["eta"], s["printer"]) == (1342, 16, 0.0, None)
    assert s["elapsed"] == pytest.approx(250.0)
    assert format_line(s) == "extraction: 1,342/1,342 images (100 %), 16 of 16 shards done in 4 min"


def test_failed_stalled_and_not_yet_started_stages_are_named():
    shards = [status(0, 3, 25, failed=True), status(1, 10, 25)]
    assert format_line(summarize(shards, now=1020.0)) == (  # a failed stage will not complete: no rate, no ETA
        "extraction: 13/100 images (13 %), 0 of 4 shards done, 1 failed (see their logs), 1 still running, "
        "2 not started")
    line = format_line(summarize(shards[1:], now=1010.0 + 360))  # 10 images in 370 s; shard 1 silent for 6 min
    assert line.endswith(", 0.03 images/s, ETA 56 min, no update for 6 min")
    first = summarize([status(0, 0, 25)], now=1000.0)  # no image done yet: no rate
    assert math.isnan(first["rate"]) and format_line(first).endswith("3 not started, ETA unknown")
    assert format_line(None) == "extraction: no shard has started yet"


def test_durations_are_rounded_to_seconds_minutes_or_hours():
    assert [duration(x) for x in (0, 45.4, 89.4, 180, 3599, 7500)] == ["0 s", "45 s", "89 s", "3 min", "60 min",
                                                                        "2 h 05 min"]


def test_missing_corrupt_and_earlier_runs_status_files_are_skipped_not_fatal(tmp_path):
    folder = tmp_path / "progress"
    assert read_statuses(folder) == [] and stage_line(tmp_path) == "extraction: no shard has started yet"
    write_statuses(folder, [status(0, 5, 25, stage="new", started=2000.0, updated=2001.0),
                            status(1, 25, 25, stage="old", finished=True)])  # a finished shard of an earlier run
    (folder / "002.json").write_text("{\"shard\": 2, \"done\"")  # half-written
    (folder / "003.json").write_text("[1, 2]")
    (folder / "004.json").write_text(json.dumps({**status(4, 1, 25), "done": "many"}))
    (folder / "005.json").write_text(json.dumps({k: v for k, v in status(5, 1, 25).items() if k != "stage"}))
    (folder / "006.json").mkdir()  # unreadable as a file
    assert sorted(s["shard"] for s in read_statuses(folder)) == [0, 1]
    s = summarize(read_statuses(folder), now=2010.0)
    assert (s["done"], s["started"], s["finished"]) == (5, 1, 0)  # only the latest-started stage counts


def test_the_stage_identity_changes_with_a_rewritten_cohort_table(tmp_path):
    cohort, params = tmp_path / "cohort.tsv", tmp_path / "params.yaml"
    cohort.write_text("patient_id\nP1\n")
    params.write_text("setting: {}\n")
    first = stage_identity(cohort, params, 4)
    assert stage_identity(cohort, params, 4) == first and stage_identity(cohort, params, 8) != first
    os.utime(cohort, ns=(0, cohort.stat().st_mtime_ns + 10 ** 9))  # the same rows, written again
    assert stage_identity(cohort, params, 4) != first


# ------------------------------------------------------------------------------------------- shards' status files
def test_shards_write_their_status_and_only_the_lowest_running_shard_prints(tmp_path):
    folder, clock, out = tmp_path / "progress", Clock(1000.0), {0: io.StringIO(), 1: io.StringIO()}
    shard = {i: ShardStatus(folder, i, 2, 10, 5, "s1", stream=out[i], clock=clock, write_every=5, print_every=20)
             for i in (0, 1)}

    def on_disk(i):
        return json.loads((folder / f"{i:03d}.json").read_text())

    clock.t = 1001.0
    shard[1].update(1, cached=0)
    assert on_disk(1)["done"] == 0  # written at most every 5 s
    clock.t = 1005.0
    shard[1].update(2, cached=0)
    shard[0].update(4, cached=4)
    assert (on_disk(1)["done"], on_disk(0)["done"], on_disk(0)["cached"], on_disk(0)["updated"]) == (2, 4, 4, 1005.0)
    clock.t = 1020.0
    shard[1].update(3, cached=0)  # due to print, but shard 0 is the lowest-numbered running shard
    shard[0].update(5, cached=4)
    assert out[1].getvalue() == ""
    assert out[0].getvalue() == "extraction: 8/10 images (80 %), 0 of 2 shards done, 0.40 images/s, ETA 5 s\n"
    shard[0].end()  # the stage is not complete: no line
    clock.t = 1030.0
    shard[1].update(4, cached=0)  # 10 s after its last look: not due
    clock.t = 1041.0
    shard[1].update(5, cached=0)  # shard 1 is the lowest running shard now
    assert out[1].getvalue() == "extraction: 10/10 images (100 %), 1 of 2 shards done, 0.24 images/s, ETA 0 s\n"
    clock.t = 1050.0
    shard[1].end()  # shard 1 completes the stage: it prints the final line
    assert out[1].getvalue().splitlines()[-1] == "extraction: 10/10 images (100 %), 2 of 2 shards done in 50 s"
    assert len(out[0].getvalue().splitlines()) == 1 and (on_disk(0)["finished"], on_disk(1)["finished"]) == (True, True)
    assert not list(folder.glob("*.tmp"))


def test_extract_shard_with_a_status_folder_writes_the_same_table_and_reports_the_stage(tmp_path, tmp_path_factory,
                                                                                        capsys):
    cohort = make_cohort(tmp_path / "images", ["P1", "P2", "P3"])
    cohort_path = tmp_path / "cohort.tsv"
    cohort.to_csv(cohort_path, sep="\t", index=False)
    params = tiny_params_file(tmp_path_factory)
    results = tmp_path / "results"
    for shard in (0, 1):
        extract_shard(cohort_path, params, shard, 2, tmp_path / f"plain{shard}.parquet", log=io.StringIO())
        extract_shard(cohort_path, params, shard, 2, tmp_path / f"status{shard}.parquet", log=io.StringIO(),
                      status_dir=results / STATUS_DIR)
        assert (tmp_path / f"plain{shard}.parquet").read_bytes() == (tmp_path / f"status{shard}.parquet").read_bytes()
    statuses = read_statuses(results / STATUS_DIR)
    assert [(s["shard"], s["finished"], s["done"] == s["total"]) for s in statuses] == [(0, True, True),
                                                                                        (1, True, True)]
    assert sum(s["total"] for s in statuses) == 3 and {s["stage_images"] for s in statuses} == {3}
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("extraction:")] == [
        err[-1]] and err[-1].startswith("extraction: 3/3 images (100 %), 2 of 2 shards done in ")

    # usrad progress prints the same line from the status files, once or watching until the stage is complete
    assert main(["progress", str(results)]) == 0
    assert capsys.readouterr().out.startswith("extraction: 3/3 images (100 %), 2 of 2 shards done in ")
    assert main(["progress", str(results), "--watch", "0.01"]) == 0
    assert capsys.readouterr().out.count("extraction: 3/3 images") == 1


def test_a_failed_shard_is_marked_and_a_killed_one_does_not_silence_the_others(tmp_path, tmp_path_factory, capsys):
    killed, alive = status(0, 3, 25, updated=1000.0), status(1, 10, 25, updated=1395.0)
    assert summarize([killed, alive], now=1400.0)["printer"] == 1  # shard 0 silent for 400 s: shard 1 prints
    cohort = make_cohort(tmp_path / "images", ["P1", "P2"])
    cohort.loc[:, "image"] = str(tmp_path / "images" / "missing.nrrd")
    cohort.to_csv(tmp_path / "cohort.tsv", sep="\t", index=False)
    folder = tmp_path / "results" / STATUS_DIR
    with pytest.raises(UsradError):
        extract_shard(tmp_path / "cohort.tsv", tiny_params_file(tmp_path_factory), 0, 1, tmp_path / "shard.parquet",
                      log=io.StringIO(), status_dir=folder)
    [failed] = read_statuses(folder)
    assert (failed["failed"], failed["finished"], failed["done"], failed["total"]) == (True, False, 2, 2)
    assert capsys.readouterr().err == "extraction: 2/2 images (100 %), 0 of 1 shards done, 1 failed (see their logs)\n"
    quiet = io.StringIO()
    ShardStatus(tmp_path / "other", 0, 1, 2, 2, "s1", stream=quiet).end(failed=True, announce=False)  # Ctrl-C
    assert quiet.getvalue() == "" and read_statuses(tmp_path / "other")[0]["failed"]


def test_usrad_progress_of_a_running_stage_and_of_a_missing_folder(tmp_path, capsys):
    write_statuses(tmp_path / "results" / STATUS_DIR, [status(0, 10, 50, n_shards=2, started=1e12, updated=1e12)])
    assert main(["progress", str(tmp_path / "results")]) == 0
    assert capsys.readouterr().out.startswith("extraction: 10/100 images (10 %), 0 of 2 shards done, 1 not started")
    assert main(["progress", str(tmp_path / "nowhere")]) == 2
    assert "folder not found (option RESULTS_DIR)" in capsys.readouterr().err
    assert main(["progress", str(tmp_path), "--watch", "0"]) == 2  # not a positive number of seconds


def test_watch_prints_every_interval_until_stopped(tmp_path):
    write_statuses(tmp_path / STATUS_DIR, [status(0, 10, 50, n_shards=2)])
    clock, out, sleeps = Clock(1010.0), io.StringIO(), []

    def sleep(seconds):
        sleeps.append(seconds)
        clock.t += seconds
        if len(sleeps) == 3:
            raise KeyboardInterrupt  # Ctrl-C: the watch ends quietly

    assert watch(tmp_path, 30, stream=out, sleep=sleep, clock=clock).startswith("extraction: 10/100 images")
    assert sleeps == [30, 30, 30] and len(out.getvalue().splitlines()) == 3
    assert watch(tmp_path, 30, stream=io.StringIO(), sleep=sleep, clock=clock, rounds=1)
