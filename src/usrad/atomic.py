"""Atomic output: write to a temporary file beside the target, then os.replace, so a crash or a kill
never leaves a half-written file under its final name.

The temporary file is ``.{name}.{host}.{pid}.{random}.tmp`` in the target's folder. A process killed with
SIGKILL (or a power cut) cannot remove its temporary file; the next successful write of the same target
removes such leftovers: those whose writer process (same host) no longer runs, or, for another host's, those
older than a day. So a resumed workflow leaves no ``*.tmp`` file behind.
"""
from __future__ import annotations

import os
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

TMP_SUFFIX = ".tmp"
STALE_SECONDS = 24 * 3600  # a temporary file of another host is a leftover after this long


def _host() -> str:
    return "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname()) or "host"


def _prefix(path: Path) -> str:
    return f".{path.name}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def stale_temporaries(path) -> list[Path]:
    """Leftover temporary files of earlier, interrupted writes of ``path`` (see module docstring)."""
    path = Path(path)
    prefix, host = _prefix(path), _host()
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    stale = []
    for name in names:
        if not (name.startswith(prefix) and name.endswith(TMP_SUFFIX)):
            continue
        parts = name[len(prefix):-len(TMP_SUFFIX)].split(".")
        candidate = path.parent / name
        if len(parts) == 3 and parts[1].isdigit():
            if parts[0] == host:
                if int(parts[1]) != os.getpid() and not _alive(int(parts[1])):
                    stale.append(candidate)
                continue
        try:  # another host's (or an old-style name): only when clearly abandoned
            if time.time() - candidate.stat().st_mtime > STALE_SECONDS:
                stale.append(candidate)
        except OSError:
            pass
    return sorted(stale)


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(os.fsdecode(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{_prefix(path)}{_host()}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared like any other file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    for leftover in stale_temporaries(path):
        try:
            leftover.unlink()
        except OSError:
            pass


def write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_tsv(df: pd.DataFrame, path, float_format: str | None = None) -> Path:
    """Deterministic TSV (no index, ``\\n`` line ends, empty cells for NaN), UTF-8, written atomically.

    Text that came from file names which are not valid UTF-8 (Python holds their bytes as surrogates) is
    written back as those bytes (``surrogateescape``), so :func:`usrad.tables.read_table` restores the path.
    """
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, na_rep="", lineterminator="\n", float_format=float_format,
                  encoding="utf-8", errors="surrogateescape")
    return Path(os.fsdecode(path))
