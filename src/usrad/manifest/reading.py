"""Reading a manifest: its text (CSV or TSV), the cells, and the rules of ``usrad/schemas/manifest.schema.yaml``.

:func:`read_frame` turns the file into a frame of stripped text cells and lists the problems of the file,
the header and the rows; :func:`is_missing`, :func:`to_number` and :func:`value_problem` are the cell rules
every other check of :mod:`usrad.manifest` and :mod:`usrad.cohort` uses.
"""
from __future__ import annotations

import csv
import functools
import io
import unicodedata
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..errors import Problem
from ..tables import number_hint, parse_number

PIXEL_HASH_COLUMN = "pixel_hash"  # written by validation: SHA-256 of the decoded grey pixels and their shape
REQUIRED_COLUMNS = ("patient_id", "image", "mask")
OPTIONAL_COLUMNS = ("mask_reader2", "image_id", "centre", "device", "pixel_spacing_mm")
PATH_COLUMNS = ("image", "mask", "mask_reader2")
TEXT_COLUMNS = ("patient_id", "image_id", "image", "mask", "mask_reader2", "centre", "device", PIXEL_HASH_COLUMN)
LEADING_COLUMNS = ("patient_id", "image_id", "image", "mask", "mask_reader2", "pixel_spacing_mm", "device", "centre",
                   PIXEL_HASH_COLUMN)
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "missing", "?", "-"})
MANIFEST_SCHEMA_PATH = Path(str(resources.files("usrad").joinpath("schemas", "manifest.schema.yaml")))  # + allowed values
ID_DTYPES = {"patient_id": str, "image_id": str}


# --------------------------------------------------------------------------------------------------
# The text

def _delimiter(path: Path, header: str) -> str:
    counts = {d: header.count(d) for d in ("\t", ",", ";")}
    best = max(counts, key=lambda d: (counts[d], d == "\t"))
    if counts[best] > 0:
        return best
    return "\t" if path.name.lower().endswith((".tsv", ".tab", ".txt")) else ","


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict]], list[Problem]]:
    """Header, [(data row number, {column: stripped cell})], problems. Never raises."""
    mfile = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], [], [Problem("manifest file not found", file=mfile)]
    except OSError as exc:
        return [], [], [Problem(f"manifest cannot be read ({exc.strerror or exc})", file=mfile)]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [], [Problem(f"manifest is not UTF-8 text (byte {exc.start}); save it as 'CSV UTF-8'", file=mfile)]
    if "\x00" in text:
        return [], [], [Problem("manifest contains NUL bytes; it is not a text CSV/TSV file", file=mfile)]
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        return [], [], [Problem("manifest is empty (no header line)", file=mfile)]
    delim = _delimiter(path, first)
    records = []
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
        for rec in reader:
            records.append(rec)
    except csv.Error as exc:
        return [], [], [Problem(f"manifest cannot be parsed as {'TSV' if delim == chr(9) else 'CSV'}: {exc}", file=mfile)]
    records = [r for r in records if any(c.strip() for c in r)]
    if not records:
        return [], [], [Problem("manifest has no header line with column names", file=mfile)]
    header = [h.strip() for h in records[0]]
    problems = []
    for i, name in enumerate(header):
        if not name:
            problems.append(Problem(f"header cell {i + 1} is empty: every column needs a name", file=mfile, row=0))
    for name in sorted({h for h in header if h and header.count(h) > 1}):
        problems.append(Problem("column name appears more than once in the header", column=name, file=mfile, row=0))
    rows = []
    for n, rec in enumerate(records[1:], start=1):
        if len(rec) != len(header):
            pid = rec[header.index("patient_id")].strip() if "patient_id" in header and header.index("patient_id") < len(rec) else None
            problems.append(Problem(f"row has {len(rec)} cells but the header has {len(header)} columns",
                                    patient=pid or None, file=mfile, row=n))
            continue
        cells = {h: c.strip() for h, c in zip(header, rec)}
        rows.append((n, cells))
        for h, cell in cells.items():
            bad = next((ch for ch in cell if unicodedata.category(ch) == "Cc"), None)
            if bad is not None:
                problems.append(Problem(f"cell holds a line break or another control character (U+{ord(bad):04X}); "
                                        "remove it (a cell is one line of text)", patient=cells.get("patient_id") or None,
                                        column=h or None, file=mfile, row=n))
    if not rows and not problems:
        problems.append(Problem("manifest has a header but no data rows", file=mfile))
    return header, rows, problems


def data_rows(path) -> int | None:
    """The number of well-formed data rows of a manifest (or any CSV/TSV read the same way), None when it has no
    header or cannot be read; the problems themselves are for the manifest's validation to report."""
    header, rows, _ = _read_rows(Path(path))
    return len(rows) if header else None


def read_frame(mpath: Path, cfg: dict) -> tuple[list[str], pd.DataFrame | None, list[Problem]]:
    """Column names, the cells as a frame (``_row`` = data row number; None if there is no header), problems
    of the header and rows (missing required and predictor columns included)."""
    mfile = str(mpath)
    header, rows, problems = _read_rows(mpath)
    if not header:
        return [], None, problems
    needed = list(REQUIRED_COLUMNS) + [c for c in cfg.get("clinical", {}).get("predictors", []) if c not in REQUIRED_COLUMNS]
    harmonize = (cfg.get("modelling") or {}).get("harmonize") or {}
    by = [harmonize["by"]] if harmonize.get("by") else []
    kinds = {c: "harmonisation batch (config modelling.harmonize.by)" for c in by}
    kinds.update({c: "protected covariate (config modelling.harmonize.covariates)"
                  for c in (harmonize.get("covariates") or []) if by})
    for col in needed + [c for c in kinds if c not in needed]:
        if col not in header:
            kind = kinds.get(col) or ("clinical predictor (config clinical.predictors)" if col not in REQUIRED_COLUMNS
                                      else "required")
            problems.append(Problem(f"{kind} column is missing from the header", column=col, file=mfile, row=0))
    header_names = [h for h in dict.fromkeys(header) if h]
    df = pd.DataFrame([[r[h] for h in header_names] for _, r in rows], columns=header_names, dtype=object)
    df.insert(0, "_row", [n for n, _ in rows])
    return header_names, df, problems


# --------------------------------------------------------------------------------------------------
# Cells

def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip().lower() in MISSING_TOKENS


def to_number(value):
    """The number of a cell (:func:`usrad.tables.parse_number`: plain decimal, optional sign and exponent), else None."""
    return parse_number(value)


def not_a_number(cell: str) -> str:
    return f"value {cell!r} is not a number{number_hint(cell)}"


@functools.lru_cache(maxsize=1)
def value_rules() -> dict[str, dict]:
    """{column: rule} of the columns whose values have an allowed range or set (``usrad/schemas/manifest.schema.yaml``)."""
    with open(MANIFEST_SCHEMA_PATH, encoding="utf-8") as fh:
        props = yaml.safe_load(fh)["properties"]
    keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum")
    return {col: rule for col, rule in props.items()
            if col not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS and any(k in rule for k in keys)}


@functools.lru_cache(maxsize=1)
def image_level_columns() -> tuple[str, ...]:
    """Clinical columns that describe the lesion on one image and may differ between a patient's images
    (``x-image-level`` of ``usrad/schemas/manifest.schema.yaml``); every other clinical predictor is patient-level."""
    with open(MANIFEST_SCHEMA_PATH, encoding="utf-8") as fh:
        return tuple(yaml.safe_load(fh).get("x-image-level") or ())


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def value_problem(col: str, cell: str, rule: dict) -> str | None:
    """Why ``cell`` is not an allowed value of ``col`` (None if it is)."""
    x = to_number(cell)
    if "enum" in rule:
        allowed = rule["enum"]
        numbers = [float(a) for a in allowed if isinstance(a, (int, float)) and not isinstance(a, bool)]
        if (x is not None and x in numbers) or cell in {str(a) for a in allowed}:
            return None
        if sorted(numbers) == [0.0, 1.0] and len(allowed) == 2:
            return f"value {cell!r} in a 0/1 (yes/no) column; use 0 or 1"
        return f"value {cell!r} is not one of the allowed values {', '.join(map(str, allowed))}"
    if x is None:
        return not_a_number(cell)
    if rule.get("type") == "integer" and x != round(x):
        return f"value {cell!r} is not a whole number"
    lo, hi = rule.get("minimum"), rule.get("maximum")
    lo_open, hi_open = rule.get("exclusiveMinimum"), rule.get("exclusiveMaximum")
    bad = (lo is not None and x < lo) or (hi is not None and x > hi) or \
          (lo_open is not None and x <= lo_open) or (hi_open is not None and x >= hi_open)
    if not bad:
        return None
    low = f"more than {_fmt(lo_open)}" if lo_open is not None else (_fmt(lo) if lo is not None else None)
    high = f"less than {_fmt(hi_open)}" if hi_open is not None else (_fmt(hi) if hi is not None else None)
    shown = f"{low} to {high}" if low and high else (f"at least {low}" if low else f"at most {high}")
    note = rule.get("x-range-note")
    return f"value {cell!r} is outside the allowed range of {col} ({shown}{'; ' + note if note else ''})"


# --------------------------------------------------------------------------------------------------
# Problems as reported

def printable(text):
    """``text`` with the bytes of a name that is not valid UTF-8 (surrogates) shown as ``\\xff``, so it can be
    printed and written to a UTF-8 log."""
    if not isinstance(text, str):
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def in_manifest_order(problems: list[Problem]) -> list[Problem]:
    """Problems in manifest order (header, each data row, then cohort-level ones), printable, no empty patient."""
    shown = [replace(p, message=printable(p.message), file=printable(p.file), patient=printable(p.patient) or None)
             for p in problems]
    return sorted(shown, key=lambda p: (p.row is None, p.row or 0))
