"""The path columns of a manifest: absolute paths, the same file listed twice, image ids, pixel spacings."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import imageio
from ..errors import Problem
from ..tables import number_hint
from .reading import PATH_COLUMNS, is_missing, to_number


# --------------------------------------------------------------------------------------------------
# One path

def _resolve_path(cell: str, base: Path) -> str:
    """Absolute path of a manifest cell (relative to the manifest's folder); keeps the user's file names."""
    p = Path(os.path.expanduser(cell))
    if not p.is_absolute():
        p = base / p
    if not p.exists() and "\\" in cell:  # a manifest written on Windows
        alt = Path(os.path.expanduser(cell.replace("\\", "/")))
        alt = alt if alt.is_absolute() else base / alt
        if alt.exists():
            p = alt
    norm = os.path.abspath(p)
    if p.exists():
        try:
            if not os.path.exists(norm) or not os.path.samefile(p, norm):
                norm = os.path.realpath(p)  # '..' after a symlinked folder: let the OS decide
        except OSError:
            norm = os.path.realpath(p)
    return norm


def _stem(path: str) -> str:
    name = os.path.basename(path)
    low = name.lower()
    for ext in sorted(imageio.SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if low.endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]


def _derive_image_ids(cells: list[str]) -> list[str]:
    """Image id = file name without extension; where that is not unique, the manifest-relative path."""
    stems = [_stem(c.replace("\\", "/")) for c in cells]
    counts = pd.Series(stems).value_counts()
    out = []
    for cell, stem in zip(cells, stems):
        if counts[stem] == 1:
            out.append(stem)
        else:
            rel = cell.replace("\\", "/")
            rel = rel[: len(rel) - (len(os.path.basename(rel)) - len(stem))]
            out.append(rel.strip("/").replace("/", "__").replace("..", "up"))
    return out


# --------------------------------------------------------------------------------------------------
# The columns

def resolve_paths(df: pd.DataFrame, base: Path, mfile: str) -> list[Problem]:
    """Make the path columns absolute (a column the manifest lacks becomes empty: reported as missing)."""
    problems = []
    for col in PATH_COLUMNS:
        if col not in df.columns:
            df[col] = ""
            continue
        resolved = []
        for idx, cell in df[col].items():
            if cell == "":
                if col != "mask_reader2":
                    problems.append(Problem(f"{col} path is empty", patient=df.at[idx, "patient_id"] or None, column=col,
                                            file=mfile, row=int(df.at[idx, "_row"])))
                resolved.append("")
            else:
                resolved.append(_resolve_path(cell, base))
        df[col] = resolved
    return problems


def same_file_problems(df: pd.DataFrame) -> tuple[list[Problem], dict[str, int]]:
    """An image file listed twice, a mask that is its image; and {real path: first row index}."""
    problems, real = [], {}
    for idx in df.index:
        pid, row = df.at[idx, "patient_id"] or None, int(df.at[idx, "_row"])
        img = df.at[idx, "image"]
        if not img:
            continue
        key = os.path.realpath(img)
        if key in real:
            first_row = int(df.at[real[key], "_row"])
            problems.append(Problem(f"the same image is already listed on row {first_row}; each image may appear once "
                                    "(several images of one patient are fine)", patient=pid, column="image", file=img, row=row))
        else:
            real[key] = idx
        for col in ("mask", "mask_reader2"):
            m = df.at[idx, col]
            if m and os.path.realpath(m) == key:
                problems.append(Problem("the mask path is the image itself", patient=pid, column=col, file=m, row=row))
    return problems, real


def fill_image_ids(df: pd.DataFrame, raw_images: list[str], real: dict[str, int], mfile: str) -> list[Problem]:
    """Fill ``image_id`` (given, else derived from the file name) and check it is unique."""
    if "image_id" in df.columns and (df["image_id"] != "").all():
        ids = df["image_id"].astype(str)
    else:
        derived = pd.Series(_derive_image_ids(raw_images), index=df.index)
        ids = df["image_id"].where(df["image_id"] != "", derived) if "image_id" in df.columns else derived
    df["image_id"] = ids.astype(str)
    problems = []
    dup = df["image_id"].duplicated(keep="first") & (df["image_id"] != "")  # '': no image path (reported)
    for idx in df.index[dup]:
        img = df.at[idx, "image"]
        if img and real.get(os.path.realpath(img), idx) != idx:
            continue  # already reported as a duplicate image
        problems.append(Problem(f"image_id {df.at[idx, 'image_id']!r} is used on more than one row; ids must be unique",
                                patient=df.at[idx, "patient_id"] or None, column="image_id", file=mfile,
                                row=int(df.at[idx, "_row"])))
    return problems


def parse_spacings(df: pd.DataFrame, mfile: str) -> list[Problem]:
    """Parse ``pixel_spacing_mm`` (NaN where empty or bad)."""
    problems, spacing = [], []
    for idx in df.index:
        cell = df.at[idx, "pixel_spacing_mm"] if "pixel_spacing_mm" in df.columns else ""
        if is_missing(cell):
            spacing.append(np.nan)
            continue
        x = to_number(cell)
        if x is None or x <= 0:
            problems.append(Problem(f"pixel spacing {cell!r} is not a positive number (mm per pixel){number_hint(cell)}",
                                    patient=df.at[idx, "patient_id"] or None, column="pixel_spacing_mm", file=mfile,
                                    row=int(df.at[idx, "_row"])))
            spacing.append(np.nan)
        else:
            spacing.append(x)
    df["pixel_spacing_mm"] = pd.Series(spacing, index=df.index, dtype=float)
    return problems
