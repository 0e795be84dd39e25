"""The bundle folder: its format, file names and ``MANIFEST.sha256`` (the SHA-256 of every other file), and
reading the folder back (every regular file once; changed, missing or extra files named)."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..errors import Problem, UsradError

FORMAT = "usrad-bundle/2"
OLD_FORMATS = ("usrad-bundle/1",)
MODEL_FILE = "model.skops"
META_FILE = "bundle.json"
MANIFEST_FILE = "MANIFEST.sha256"
BUNDLE_FILES = (META_FILE, MODEL_FILE)
REBUILD = "rebuild it with the workflow (e.g. snakemake --cores 2 --forcerun fit_task)"
_MANIFEST_HEADER = f"# usrad model bundle ({FORMAT}): SHA-256 of every file of this folder; any change is refused"


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data``, as 64 hex digits (the manifest's and ``model_sha256``'s form)."""
    return hashlib.sha256(data).hexdigest()


def manifest_text(files: dict[str, bytes]) -> str:
    """``MANIFEST.sha256`` of ``{file name: bytes}`` (``sha256sum`` format, names sorted)."""
    return _MANIFEST_HEADER + "\n" + "".join(f"{sha256_hex(files[n])}  {n}\n" for n in sorted(files))


# ------------------------------------------------------------------------------------- reading a bundle
def bundle_folder(path) -> Path:
    """The bundle folder a user named: the folder itself, or the folder of its ``bundle.json`` (or other file)."""
    p = Path(path)
    if p.is_file() and p.name in (META_FILE, MODEL_FILE, MANIFEST_FILE):
        return p.parent
    if not p.exists():
        raise UsradError(f"Model bundle not found: {p}", [Problem("model bundle folder not found", file=str(p))])
    if not p.is_dir():
        raise UsradError(f"Not a model bundle: {p} is a file", [Problem(
            f"is a file; give the bundle's folder (with {META_FILE}, {MODEL_FILE} and {MANIFEST_FILE}), "
            "e.g. results/metastasis/models/nomogram", file=str(p))])
    if not any(os.path.lexists(p / n) for n in (META_FILE, MANIFEST_FILE)):
        raise UsradError(f"Model bundle not found: {p}", [Problem(
            f"the folder has no {META_FILE}: not a model bundle (e.g. results/metastasis/models/nomogram)",
            file=str(p))])
    return p


def read_folder(d: Path) -> tuple[dict[str, bytes], list[Problem]]:
    """The bytes of every regular file of the folder; a symbolic link, sub-folder or unreadable entry is a problem."""
    files: dict[str, bytes] = {}
    problems: list[Problem] = []
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError as exc:
        raise UsradError(f"Cannot read model bundle {d}", [Problem(f"cannot list the folder ({exc.strerror or exc})",
                                                                   file=str(d))]) from None
    for e in entries:
        where = str(d / e.name)
        if e.is_symlink():
            problems.append(Problem("is a symbolic link; a bundle holds its own regular files only (copy it with "
                                    "cp -rL)", file=where))
        elif e.is_dir():
            problems.append(Problem("unexpected folder inside the bundle", file=where))
        elif not e.is_file():
            problems.append(Problem("not a regular file", file=where))
        else:
            try:
                files[e.name] = Path(where).read_bytes()
            except OSError as exc:
                problems.append(Problem(f"cannot read it ({exc.strerror or exc})", file=where))
    return files, problems


_MANIFEST_LINE = re.compile(r"([0-9a-f]{64})  (.+)")


def plain_name(name) -> bool:
    """A file name of the bundle folder itself: no folder part, not absolute, not '.' or '..'."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and name.strip() == name)


def manifest_problems(d: Path, files: dict[str, bytes]) -> list[Problem]:
    """Every difference between the folder and its manifest (changed, missing, extra, malformed)."""
    mpath = str(d / MANIFEST_FILE)
    try:
        lines = files[MANIFEST_FILE].decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return [Problem("the manifest is not UTF-8 text", file=mpath)]
    listed: dict[str, str] = {}
    problems = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _MANIFEST_LINE.fullmatch(line)
        if m is None or not plain_name(m.group(2)):
            problems.append(Problem(f"line {n} is not '<sha256>  <file name of this folder>': {line[:80]!r}",
                                    file=mpath))
        elif m.group(2) in listed or m.group(2) == MANIFEST_FILE:
            problems.append(Problem(f"line {n} lists {m.group(2)!r} again", file=mpath))
        else:
            listed[m.group(2)] = m.group(1)
    for name in BUNDLE_FILES:
        if name not in listed:
            problems.append(Problem("the manifest does not list this file of every bundle", file=str(d / name)))
    for name, want in listed.items():
        if name not in files:
            problems.append(Problem(f"file listed in {MANIFEST_FILE} is missing", file=str(d / name)))
        elif sha256_hex(files[name]) != want:
            problems.append(Problem(f"SHA-256 {sha256_hex(files[name])} differs from {want} recorded in {MANIFEST_FILE}: "
                                    "the file (or the manifest) was changed", file=str(d / name)))
    for name in sorted(set(files) - set(listed) - {MANIFEST_FILE}):
        problems.append(Problem(f"extra file, not listed in {MANIFEST_FILE} (remove it)", file=str(d / name)))
    return problems
