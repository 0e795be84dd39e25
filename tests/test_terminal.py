"""What the terminal shows of a workflow run: one short line per job, no `Shell command: None`, no file lists.

A dry run of the demo's config (`make demo` runs `snakemake --cores N` with profiles/default) prints the same
job lines as the real run; the real run's terminal is checked by tests/test_determinism.py.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
MAX_LINE = 200


def terminal_problems(text: str) -> list[str]:
    """Lines of a run's terminal output a user should not see: wider than MAX_LINE characters (except the
    `Command:` line, which echoes the user's own command, and the rule names of a dry run's closing summary) or
    Snakemake 9's `Shell command: None`."""
    problems = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        # a dry run's closing "Reasons:" block lists rule names (one line per reason, growing with the rules)
        rule_names = i and lines[i - 1].rstrip().endswith(":") and re.fullmatch(r" {8}\w+(, \w+)*", line)
        if "Shell command" in line:
            problems.append(f"shell command line: {line[:120]}")
        elif len(line) > MAX_LINE and not line.lstrip().startswith("Command: ") and not rule_names:
            problems.append(f"{len(line)} characters: {line[:120]}...")
    return problems


def test_a_dry_run_of_the_demo_shows_one_short_line_per_job(tmp_path):
    (tmp_path / "config").symlink_to(REPO / "config")  # the demo's config, read relative to the work folder
    proc = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
                           "--dry-run"], capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert terminal_problems(text) == []
    jobs = re.findall(r"^ *Job \d+: (.*)$", text, flags=re.M)
    # every job of the demo, each named with its wildcards and log, and no job's file lists or reasons
    assert len(jobs) == int(re.search(r"^total\s+(\d+)$", text, flags=re.M).group(1))
    assert "extract_shard (shard=000), log results/logs/extract/000.log" in jobs
    assert "fit_task (task=metastasis), log results/logs/metastasis/fit_task.log" in jobs
    assert "all" in jobs
    assert not re.search(r"^ *(input|output|reason|Reason): ", text, flags=re.M)


def test_long_lines_and_shell_command_lines_are_found():
    assert terminal_problems("Job 1: simulate\n  Command: snakemake " + "x" * 300) == []
    assert len(terminal_problems("Shell command: None\n    input: " + "results/a.tsv, " * 20)) == 2
    names = ", ".join(f"rule_{k}" for k in range(30))
    assert terminal_problems(f"    output files have to be generated:\n        {names}") == []
    assert len(terminal_problems(f"    output: {names}")) == 1
