"""The summary's sources: every number the summary prints is read from a results file
(:func:`resolve_source`: a TSV cell, a JSON pointer, a YAML key or a feature-table metadata field), formatted
(:func:`fmt_value`) and recorded in ``summary_sources.tsv`` (:class:`Sources`); :func:`numbers_in` finds the
numbers of a text.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ..errors import Problem, UsradError
from ..features import read_meta
from ..tables import read_table
from .style import fmt_p


def fmt_value(value, fmt: str) -> str:
    if fmt == "s":
        return str(value)
    if fmt == "%":  # fraction → whole percent
        return f"{100 * float(value):.0f}%"
    if fmt == "d":
        return f"{int(round(float(value)))}"
    if fmt == "p":
        return fmt_p(float(value))
    return format(float(value), fmt)


def _pointer(obj, pointer: str):
    for part in [p for p in pointer.split("/") if p]:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def resolve_source(root, file: str, locator: str):
    """The raw value a summary number came from.

    ``file`` is relative to ``root`` (the working directory). Locators: TSV ``col=<column>;<key>=<value>;…``
    (the unique row matching every key), JSON ``json:/a/b``, feature-table metadata ``meta:/a/b``, and the
    YAML params text inside it ``params:/setting/binWidth``; ``count=<column>:<value>`` counts TSV rows (``count=``: all rows)."""
    path = Path(root) / file
    if locator.startswith("json:"):
        return _pointer(json.loads(path.read_text()), locator[5:])
    if locator.startswith(("meta:", "params:")):
        meta = read_meta(path)
        if locator.startswith("meta:"):
            return _pointer(meta, locator[5:])
        import yaml

        return _pointer(yaml.safe_load(meta.get("params_text") or meta.get("params")), locator[7:])
    df = read_table(path, all_text=True)
    parts = dict(p.split("=", 1) for p in locator.split(";") if p)
    if "count" in parts:
        col, _, val = parts.pop("count").partition(":")
        sel = df
        for k, v in parts.items():
            sel = sel[sel[k] == v]
        return int((sel[col] == val).sum()) if col else len(sel)
    col = parts.pop("col")
    sel = df
    for k, v in parts.items():
        sel = sel[sel[k] == v]
    if len(sel) != 1:
        raise UsradError("Summary source is ambiguous", [Problem(f"{len(sel)} rows match {locator!r}", file=str(path))])
    return sel[col].iloc[0]


class Sources:
    def __init__(self, root):
        self.root = Path(root)
        self.rows: list[dict] = []

    def num(self, key: str, file, locator: str, fmt: str = ".3f") -> str:
        file = str(Path(file).relative_to(self.root)) if Path(file).is_absolute() else str(file)
        raw = resolve_source(self.root, file, locator)
        text = fmt_value(raw, fmt)
        self.rows.append({"key": key, "text": text, "file": file, "locator": locator, "format": fmt})
        return text

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["key", "text", "file", "locator", "format"])


_NUMBER = re.compile(r"(?<![\w.])[-−]?\d+(?:\.\d+)*%?")


def numbers_in(markdown: str) -> list[str]:
    """Every number in a markdown text outside code spans (`` `…` ``), as written (e.g. ``0.912``, ``80``, ``3.1.4``, ``90%``)."""
    text = re.sub(r"`[^`]*`", " ", markdown)
    return [m.group(0).replace("−", "-") for m in _NUMBER.finditer(text)]


def settings_value(tab_file: Path, key: str) -> str:
    df = read_table(tab_file, all_text=True)
    return df.loc[df["key"] == key, "value"].iloc[0]
