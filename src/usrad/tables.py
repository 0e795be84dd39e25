"""Reading our own TSV tables back: the one reader, so that no id ever changes on the way.

pandas' default reader turns ``NA``, ``N/A``, ``null``, ``nan``, ``None``, ``#N/A`` … into NaN, so patients
with such ids (legal text ids in a manifest) would all become "missing" and be merged, and ``007`` would
become ``7``. :func:`read_table` reads every table written by :func:`usrad.atomic.write_tsv` with:

* ``patient_id``, ``image_id`` and the named ``text`` columns as ``str``, exactly as written (an empty
  cell is ``""``);
* only an **empty** cell as a missing value in the other columns (``write_tsv`` writes NaN as an empty
  cell; no word is ever read as missing);
* ``surrogateescape`` decoding, so that a path in a folder whose name is not valid UTF-8 (written with
  ``surrogateescape`` by ``write_tsv``) comes back as the same path.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable

import pandas as pd

from .errors import Problem, UsradError

ID_COLUMNS = ("patient_id", "image_id")

# What a number is in a manifest cell: plain decimal digits 0-9, optional sign, optional decimal point and
# decimals, optional exponent (1e3, 1.5E-02). No underscores (Python's float('2_5') is 25), no thousands
# separators, no decimal comma, no inf/nan, no hexadecimal, no digits of other scripts.
NUMBER_PATTERN = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_number(value) -> float | None:
    """The finite number a manifest cell holds (see NUMBER_PATTERN), else None. Numbers (not bools) pass as they are."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)) or type(value).__module__ == "numpy":
        try:
            x = float(value)
        except (TypeError, ValueError):
            return None
        return x if math.isfinite(x) else None
    text = str(value).strip()
    if not NUMBER_PATTERN.fullmatch(text):
        return None
    x = float(text)
    return x if math.isfinite(x) else None  # 1e999 overflows to inf


def number_hint(value) -> str:
    """Why a cell that is not a number (:func:`parse_number` None) looks like one: '' or '; reason'."""
    text = str(value).strip()
    low = text.lower()
    if NUMBER_PATTERN.fullmatch(text):
        return "; the number is too large"
    if low.lstrip("+-") in ("inf", "infinity", "nan"):
        return "; infinite or not-a-number values are not allowed (leave the cell empty if it is missing)"
    if any(ch.isdigit() and ch not in "0123456789" for ch in text):
        return "; use the digits 0-9"
    if "_" in text and parse_number(text.replace("_", "")) is not None:
        return "; no underscores in a number"
    if "," in text and parse_number(text.replace(",", ".", 1)) is not None:
        return "; use a point as the decimal separator and no thousands separator (0.15, 1000)"
    if re.fullmatch(r"[+-]?\d{1,3}(?:[ \u00a0\u202f'.,]\d{3})+(?:[.,]\d+)?", text):
        return "; no thousands separators (1000, not 1,000)"
    if low.startswith(("0x", "-0x", "+0x", "0o", "0b")):
        return "; write a decimal number"
    if text.endswith("%") and parse_number(text[:-1]) is not None:
        return "; write the number without '%'"
    return ""


def read_table(path, text: Iterable[str] = (), levels: Iterable[str] = (), all_text: bool = False, sep: str = "\t",
               **kwargs) -> pd.DataFrame:
    """A TSV (or, with ``sep=","``, CSV) table of ours; ids and ``text`` columns as str (see module docstring).

    ``levels``: columns read as str whose empty cells stay missing (NaN), e.g. categorical predictors.
    ``all_text=True`` reads every column as str (empty cells ``""``). Other keyword arguments go to :func:`pandas.read_csv`
    (e.g. ``usecols``, ``float_precision``). A missing file raises FileNotFoundError (callers name what
    it should have been); a file that is not a table raises UsradError naming it.
    """
    path = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else path
    text_cols = tuple(dict.fromkeys((*ID_COLUMNS, *text)))
    dtype = str if all_text else {c: str for c in (*text_cols, *levels)}
    try:
        df = pd.read_csv(path, sep=sep, dtype=dtype, keep_default_na=False, na_values=[""], encoding="utf-8",
                         encoding_errors="surrogateescape", **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise UsradError(f"Cannot read table {path}", [Problem(
            f"not a readable table ({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})",
            file=str(path))]) from None
    for col in (df.columns if all_text else text_cols):
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    return df
