"""Manifest intake and validation; the normalised cohort table.

A manifest is a CSV or TSV with one row per image (format: ``docs/manifest.md``, row schema:
``usrad/schemas/manifest.schema.yaml``). :func:`validate_manifest` reads it and collects *every* problem at
once (each naming row, patient, column and file); :func:`load_cohort` raises them as one
:class:`~usrad.errors.UsradError`. The result is the normalised cohort table of ``docs/architecture.md``:
one row per image, ids as strings, absolute paths, ``pixel_spacing_mm`` float (NaN when the file carries
spacing), ``mask_reader2`` empty when there is no second reader, ``pixel_hash`` (SHA-256 of the image's
decoded grey pixels, '' when the pixels were not read), then the other columns as in the manifest (numbers
parsed by :func:`usrad.tables.parse_number`, missing values NaN, categorical levels that are numbers in
their plain form).

Rules that keep a manifest from giving a silently wrong result (``docs/manifest.md``): ids are exact text,
never missing values; a number is a plain decimal; clinical predictors are patient-level; one spelling per
categorical level; a mask marks a lesion, not the image; images with identical pixels may not carry two
labels (and are kept on one side of the split); a missing column does not stop the other checks.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_tsv
from .errors import Problem, UsradError
from .manifest.images import duplicate_pixel_findings, pixel_findings
from .manifest.paths import fill_image_ids, parse_spacings, resolve_paths, same_file_problems
from .manifest.reading import (
    LEADING_COLUMNS, MANIFEST_SCHEMA_PATH, OPTIONAL_COLUMNS, PIXEL_HASH_COLUMN, REQUIRED_COLUMNS, TEXT_COLUMNS,
    in_manifest_order, is_missing, printable, read_frame, to_number, value_rules)
from .manifest.values import (clinical_problems, id_findings, outcome_problems, patient_value_findings,
                              spelling_problems)
from .settings import training_patients_per_class
from .tables import parse_number, read_table
from .tasks import MIN_PATIENTS_PER_CLASS, class_counts, class_problems, names_in, task_label_findings, task_labels

__all__ = ["MANIFEST_SCHEMA_PATH", "OPTIONAL_COLUMNS", "PIXEL_HASH_COLUMN", "RADIOMICS_ONLY_NOTE", "REQUIRED_COLUMNS",
           "external_rows", "load_cohort", "min_patients_per_class", "read_cohort_table", "summary", "task_labels",
           "validate_manifest", "value_rules", "write_cohort_table"]


# --------------------------------------------------------------------------------------------------
# Validation

def validate_manifest(manifest_path, cfg: dict, check_images: bool = True) -> tuple[pd.DataFrame, list[Problem]]:
    """Read and check a manifest; return (normalised cohort table, every problem found). Never raises UsradError.

    ``check_images=False`` skips reading the pixels (files are still checked to exist; pixel duplicates are
    then not found). Findings that are not errors (a lesion mask touching the image border, an image with the
    same pixels as another patient's, a patient id that reads like a missing value) are in
    ``df.attrs["warnings"]`` (Problems too). When ``cfg`` names a PyRadiomics params file
    (``radiomics_params``), every lesion must be at least its ``minimumROISize`` pixels and span
    ``minimumROIDimensions`` dimensions. A missing column does not stop the checks of the others.
    """
    mpath = Path(os.fsdecode(manifest_path))
    mfile = str(mpath)
    header_names, df, problems = read_frame(mpath, cfg)
    if df is None:
        return pd.DataFrame(columns=list(LEADING_COLUMNS)), in_manifest_order(problems)
    if df.empty:
        return _finalise(df, header_names, {}), in_manifest_order(problems)
    has_ids = "patient_id" in df.columns
    df["patient_id"] = df["patient_id"].astype(str) if has_ids else ""
    found, warnings = id_findings(df, mfile) if has_ids else ([], [])
    problems += found
    raw_images = list(df["image"]) if "image" in df.columns else [""] * len(df)
    problems += resolve_paths(df, mpath.resolve().parent, mfile)
    found, real = same_file_problems(df)
    problems += found + fill_image_ids(df, raw_images, real, mfile) + parse_spacings(df, mfile)
    found, warned, digests = pixel_findings(df, cfg, check_images)
    problems += found
    warnings += warned
    df[PIXEL_HASH_COLUMN] = digests  # replaces a manifest column of that name: it is computed

    found, parsed = clinical_problems(df, cfg, mfile)
    problems += found
    for col in ("centre", "device"):
        if col in header_names:
            problems += spelling_problems(df, col, list(df[col]), mfile)
    if has_ids:
        found, warned = patient_value_findings(df, parsed, cfg, mfile)
        problems += found
        warnings += warned
    problems += outcome_problems(df, cfg, mfile)
    out = _finalise(df, header_names, parsed)
    found, labels = _task_findings(out, df, cfg, mfile, problems, has_ids)
    problems += found
    found, warned = duplicate_pixel_findings(df, digests, labels, mfile)
    problems += found
    out.attrs["warnings"] = in_manifest_order(warnings + warned)
    return out, in_manifest_order(problems)


def _without_cells(frame: pd.DataFrame, bad: set[tuple[int, str]]) -> pd.DataFrame:
    """``frame`` with the cells (row, column) that have a reported problem made missing, and a column parsed as
    numbers where its remaining cells all are, so that the rest of it can still be checked."""
    data = frame.copy()
    for col in {c for _, c in bad}:
        hit = data["_row"].isin({r for r, c in bad if c == col})
        cells = data[col].astype(object).where(~hit, None)
        missing = cells.map(is_missing)
        if cells[~missing].map(lambda v: to_number(v) is not None).all():
            data[col] = cells.map(lambda v: np.nan if is_missing(v) else to_number(v)).astype(float)
        else:
            data[col] = cells.where(~missing, np.nan)
    return data


def _task_findings(out: pd.DataFrame, df: pd.DataFrame, cfg: dict, mfile: str, earlier: list[Problem],
                   has_ids: bool) -> tuple[list[Problem], dict[str, pd.Series]]:
    """Problems of the tasks and {task: 0/1 label per row} for the rows without a problem of that task.

    A task whose columns have bad cells (already reported) is still evaluated with those cells missing, so
    that its other cells (e.g. missing outcomes) are reported too; its class counts are then not checked.
    """
    frame = out.assign(_row=df["_row"])
    minimum = min_patients_per_class(cfg)
    problems, labels = [], {}
    for task in cfg.get("tasks", []):
        names = set(names_in(task.get("label") or "") + names_in(task.get("subset") or ""))
        bad = {(p.row, p.column) for p in earlier if p.row and p.column in names}
        label, probs = task_label_findings(_without_cells(frame, bad) if bad else frame, task, mfile)
        bad_patients = {p.patient for p in earlier if p.row and p.column in names}
        kept = [p for p in probs if (p.row, p.column) not in bad
                and not (p.row is None and p.patient is not None and (not has_ids or p.patient in bad_patients))]
        problems += kept
        if label is None:
            continue
        if not kept and not bad and has_ids:
            problems += class_problems(out, label, task, mfile, minimum)
        skip_rows = {r for r, _ in bad} | {p.row for p in kept if p.row}
        skip_patients = {p.patient for p in kept if p.row is None and p.patient is not None}
        usable = ~frame.loc[label.index, "_row"].isin(skip_rows) & ~frame.loc[label.index, "patient_id"].isin(skip_patients)
        labels[task.get("name", "?")] = label[usable.to_numpy()]
    return problems, labels


def _finalise(df: pd.DataFrame, header_names: list[str], parsed: dict) -> pd.DataFrame:
    df = df.copy()
    for col in ("image_id", "mask_reader2", PIXEL_HASH_COLUMN):
        if col not in df.columns:
            df[col] = ""
    if "pixel_spacing_mm" not in df.columns:
        df["pixel_spacing_mm"] = np.nan
    for col, values in parsed.items():
        df[col] = pd.Series(values, index=df.index, dtype=object)
        if all(isinstance(v, float) for v in values):
            df[col] = df[col].astype(float)
        else:
            df[col] = df[col].where(df[col].map(lambda v: not is_missing(v)), np.nan)
    for col in df.columns:
        if col in LEADING_COLUMNS or col in parsed or col == "_row":
            continue
        cells = df[col]
        missing = cells.map(is_missing)
        nums = cells.map(to_number)
        if (~missing).any() and nums[~missing].notna().all():
            df[col] = nums.where(~missing, np.nan).astype(float)  # parsed by the same rule as every cell
        else:
            df[col] = cells.where(~missing, np.nan)
    for col in TEXT_COLUMNS:
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    lead = [c for c in LEADING_COLUMNS if c in df.columns]
    rest = [c for c in header_names if c not in lead]
    return df[lead + rest].reset_index(drop=True)


def load_cohort(manifest_path, cfg: dict) -> pd.DataFrame:
    """The normalised cohort table of a manifest; UsradError listing every problem if there is any."""
    df, problems = validate_manifest(manifest_path, cfg, check_images=True)
    if problems:
        raise UsradError(f"Manifest {printable(os.fsdecode(manifest_path))} has problems", problems)
    return df


# --------------------------------------------------------------------------------------------------
# What the config asks of the cohort's classes and external set

def external_rows(values: pd.Series, external_values) -> pd.Series:
    """Rows whose value is one of ``external_values`` (text, as in the config). A numeric column also matches
    numerically, so ``"1"`` matches a cohort value read as ``1.0``."""
    wanted = {str(v) for v in external_values}
    hit = values.astype(str).isin(wanted)
    numbers = {parse_number(v) for v in wanted if parse_number(v) is not None}
    if numbers and pd.api.types.is_numeric_dtype(values):
        hit |= values.isin(numbers)
    return hit


def min_patients_per_class(cfg: dict) -> int:
    """Patients needed per class (in the part of the cohort that is split into training and test):
    MIN_PATIENTS_PER_CLASS, or more when the training part (1 - split.test_size of them) must hold
    :func:`usrad.settings.training_patients_per_class` (modelling.cv_folds; an SVM's Platt scaling)."""
    test_size = (cfg.get("split") or {}).get("test_size", 0.25)
    share = max(1e-9, 1 - test_size)
    return max(MIN_PATIENTS_PER_CLASS, math.ceil(round(training_patients_per_class(cfg) / share, 9)))  # 7/0.1 is 70


# --------------------------------------------------------------------------------------------------
# The cohort table on disk

def write_cohort_table(df: pd.DataFrame, path) -> None:
    """Write the cohort table as TSV, atomically (temporary file + os.replace), byte-identical for equal input."""
    write_tsv(df, path)


def read_cohort_table(path, categorical=()) -> pd.DataFrame:
    """Read a cohort table written by :func:`write_cohort_table`.

    Ids, paths, device/centre and the ``categorical`` columns (e.g. ``cfg["clinical"]["categorical"]``) are
    read as str, so the table equals the one written (an id ``NA`` or ``007`` stays that text: see
    :func:`usrad.tables.read_table`); empty cells are NaN (``""`` in the text columns).
    """
    try:
        df = read_table(path, text=TEXT_COLUMNS, levels=categorical)
    except FileNotFoundError:
        raise UsradError(f"Cohort table not found: {printable(os.fsdecode(path))}") from None
    if "pixel_spacing_mm" in df.columns:
        df["pixel_spacing_mm"] = df["pixel_spacing_mm"].astype(float)
    return df


# --------------------------------------------------------------------------------------------------
# usrad validate's summary (the command: usrad.plan.validate_command)

RADIOMICS_ONLY_NOTE = "radiomics only: no clinical predictors; clinical, nomogram and combined models are not fitted"


def summary(df: pd.DataFrame, cfg: dict) -> str:
    """``OK: N patients, M images, tasks: ...``, a line for a radiomics-only config and for an external set, then
    the warnings of the validation (if any), one per line."""
    parts = []
    for task in cfg.get("tasks", []):
        neg, pos = class_counts(df, task)
        parts.append(f"{task['name']} ({neg} negative / {pos} positive patients)")
    text = f"OK: {df['patient_id'].nunique()} patients, {len(df)} images, tasks: " + ", ".join(parts)
    if "clinical" in cfg and not (cfg.get("clinical") or {}).get("predictors"):
        text += "\n" + RADIOMICS_ONLY_NOTE
    by = (cfg.get("split") or {}).get("by_column")
    if by and by in df.columns:
        ext = external_rows(df[by], (cfg.get("split") or {}).get("external_values") or [])
        text += (f"\nexternal set ({by} in {sorted(map(str, cfg['split']['external_values']))}): "
                 f"{df.loc[ext, 'patient_id'].nunique()} patients, never trained on; development part: "
                 f"{df.loc[~ext, 'patient_id'].nunique()} patients")
    warnings = df.attrs.get("warnings") or []
    if warnings:
        text += f"\nWarnings ({len(warnings)}; not errors, but look at these images):\n" + "\n".join(f"  - {w}" for w in warnings)
    return text
