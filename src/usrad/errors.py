"""User-facing errors: every problem names the patient, the column and the file.

A :class:`UsradError` is a user's mistake (bad manifest, bad config, bad image). The CLI and the rule
scripts print its message and exit non-zero without a traceback; anything else is a bug.
"""
from __future__ import annotations

import shutil
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One problem found in a cohort or config."""

    message: str
    patient: str | None = None
    column: str | None = None
    file: str | None = None
    row: int | None = None  # 1-based data row of the manifest (header is row 0)

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.patient is not None:
            where.append(f"patient {self.patient!r}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.file is not None:
            where.append(f"file {self.file}")
        return (", ".join(where) + ": " if where else "") + self.message


class UsradError(Exception):
    """An error caused by user input; its message is meant to be read, not debugged."""

    def __init__(self, summary: str, problems: list[Problem] | None = None):
        self.summary = summary
        self.problems = list(problems or [])
        super().__init__(self.render())

    def render(self) -> str:
        if not self.problems:
            return self.summary
        lines = [f"{self.summary} ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


@contextmanager
def rule_errors(smk):
    """Context for a rule script: a UsradError goes to the rule's log and stderr, the rule's outputs are
    removed (nothing half-written is left) and the job exits 1, without a traceback. Python warnings (e.g.
    numpy's overflow warnings) are written to the rule's log, not to the terminal."""
    shown = warnings.showwarning
    if smk.log:
        warnings.showwarning = _to_log(smk.log[0])
    try:
        yield
    except UsradError as err:
        text = err.render()
        for log_path in smk.log:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a", encoding="utf-8", errors="backslashreplace") as fh:
                fh.write(text + "\n")
        for out in smk.output:
            path = Path(out)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        print(text, file=sys.stderr)
        sys.exit(1)
    finally:
        warnings.showwarning = shown


def _to_log(log_path):
    """A ``warnings.showwarning`` that appends each warning to the rule's log file."""
    def show(message, category, filename, lineno, file=None, line=None):
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(warnings.formatwarning(message, category, filename, lineno, line))
    return show
