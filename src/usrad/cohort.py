"""Manifest intake and validation; the normalised cohort table.

A manifest is a CSV or TSV with one row per image (format: ``docs/manifest.md``, row schema:
``config/manifest.schema.yaml``). :func:`validate_manifest` reads it and collects *every* problem at
once (each naming row, patient, column and file); :func:`load_cohort` raises them as one
:class:`~usrad.errors.UsradError`. The result is the normalised cohort table of ``docs/architecture.md``:
one row per image, ids as strings, absolute paths, ``pixel_spacing_mm`` float (NaN when the file carries
spacing), ``mask_reader2`` empty when there is no second reader, then the other columns as in the manifest
(numbers parsed, missing values NaN).
"""
from __future__ import annotations

import ast
import csv
import functools
import io
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import imageio
from .atomic import write_tsv
from .errors import Problem, UsradError

REQUIRED_COLUMNS = ("patient_id", "image", "mask")
OPTIONAL_COLUMNS = ("mask_reader2", "image_id", "centre", "device", "pixel_spacing_mm")
PATH_COLUMNS = ("image", "mask", "mask_reader2")
TEXT_COLUMNS = ("patient_id", "image_id", "image", "mask", "mask_reader2", "centre", "device")
LEADING_COLUMNS = ("patient_id", "image_id", "image", "mask", "mask_reader2", "pixel_spacing_mm", "device", "centre")
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "missing", "?", "-"})
MIN_PATIENTS_PER_CLASS = 10
REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST_SCHEMA_PATH = REPO_ROOT / "config" / "manifest.schema.yaml"  # also holds the allowed values of known columns
ID_DTYPES = {"patient_id": str, "image_id": str}
_MAX_WORKERS = 4


# --------------------------------------------------------------------------------------------------
# Reading the manifest text

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
        rows.append((n, {h: c.strip() for h, c in zip(header, rec)}))
    if not rows and not problems:
        problems.append(Problem("manifest has a header but no data rows", file=mfile))
    return header, rows, problems


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip().lower() in MISSING_TOKENS


def _to_number(value):
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


@functools.lru_cache(maxsize=1)
def value_rules() -> dict[str, dict]:
    """{column: rule} of the columns whose values have an allowed range or set (``config/manifest.schema.yaml``)."""
    with open(MANIFEST_SCHEMA_PATH, encoding="utf-8") as fh:
        props = yaml.safe_load(fh)["properties"]
    keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum")
    return {col: rule for col, rule in props.items()
            if col not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS and any(k in rule for k in keys)}


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _value_problem(col: str, cell: str, rule: dict) -> str | None:
    """Why ``cell`` is not an allowed value of ``col`` (None if it is)."""
    x = _to_number(cell)
    if "enum" in rule:
        allowed = rule["enum"]
        numbers = [float(a) for a in allowed if isinstance(a, (int, float)) and not isinstance(a, bool)]
        if (x is not None and x in numbers) or cell in {str(a) for a in allowed}:
            return None
        if sorted(numbers) == [0.0, 1.0] and len(allowed) == 2:
            return f"value {cell!r} in a 0/1 (yes/no) column; use 0 or 1"
        return f"value {cell!r} is not one of the allowed values {', '.join(map(str, allowed))}"
    if x is None:
        return f"value {cell!r} is not a number"
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
# Paths

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
# Images

def _params_file(value) -> Path:
    """The PyRadiomics params file of the config: as given (relative to the working directory), else relative
    to the repository (the shipped ``config/radiomics.yaml``)."""
    path = Path(os.path.expanduser(str(value)))
    if path.is_absolute() or path.exists():
        return path
    return REPO_ROOT / path if (REPO_ROOT / path).exists() else path


def roi_limits(cfg: dict) -> tuple[dict, list[Problem]]:
    """Minimum ROI of the configured PyRadiomics parameters: ``{"size": int | None, "dims": int, "params": str}``
    (empty when the config names no params file) and the problems reading it."""
    value = cfg.get("radiomics_params")
    if not value:
        return {}, []
    path = _params_file(value)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, [Problem("PyRadiomics parameter file (config key 'radiomics_params') not found", file=str(path))]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        return {}, [Problem(f"PyRadiomics parameter file (config key 'radiomics_params') cannot be read as YAML ({reason})",
                            file=str(path))]
    setting = params.get("setting") if isinstance(params, dict) else None
    setting = setting if isinstance(setting, dict) else {}
    size, dims = setting.get("minimumROISize"), setting.get("minimumROIDimensions", 2)
    size = int(size) if isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0 else None
    dims = int(dims) if isinstance(dims, (int, float)) and not isinstance(dims, bool) and 1 <= dims <= 2 else 2
    return {"size": size, "dims": dims, "params": str(path)}, []


def _mask_findings(arr: np.ndarray, limits: dict) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the lesion of a 0/1 mask array: too small for PyRadiomics, touching the border."""
    errors, warnings = [], []
    n = int(arr.sum())
    if limits:
        extent = sum(int(np.any(arr, axis=1 - a).sum() > 1) for a in (0, 1))  # axes along which the ROI spans > 1 px
        if limits["size"] is not None and n < limits["size"]:
            errors.append(f"lesion has {n} pixels, fewer than minimumROISize {limits['size']} of the PyRadiomics "
                          f"parameters ({limits['params']}): too small for texture features; check the mask")
        elif extent < limits["dims"]:
            errors.append(f"lesion ({n} pixels) spans only {extent} dimension(s); PyRadiomics needs minimumROIDimensions "
                          f"{limits['dims']} (a line or a single pixel is not a lesion outline)")
    if arr[0].any() or arr[-1].any() or arr[:, 0].any() or arr[:, -1].any():
        warnings.append("lesion mask touches the image border: the lesion may be cut off, so its shape features "
                        "describe only the visible part")
    return errors, warnings


def _check_images(row: int, patient: str, paths: dict[str, str], spacing: float,
                  limits: dict | None = None) -> tuple[list[Problem], list[Problem]]:
    """Read image and masks of one row; (problems, warnings), each naming row/patient/column/file."""
    def tag(problems, column):
        return [replace(p, row=row, patient=patient, column=p.column or column) for p in problems]

    problems, warnings = [], []
    try:
        ref = imageio.read_image(paths["image"], None if np.isnan(spacing) else spacing)
    except UsradError as err:
        problems += tag(err.problems, "image")
        ref = None
        if any(p.column == imageio.SPACING_COLUMN for p in err.problems):
            try:  # the pixels may be fine: check the masks against them with a placeholder spacing
                ref = imageio.read_image(paths["image"], 1.0)
                ref.SetSpacing((1.0, 1.0))
            except UsradError:
                ref = None
    for col in ("mask", "mask_reader2"):
        path = paths.get(col)
        if not path:
            continue
        if ref is None:
            if not os.path.isfile(path):
                problems.append(Problem("file not found", patient=patient, column=col, file=path, row=row))
            continue
        try:
            mask = imageio.read_mask(path, ref)
        except UsradError as err:
            problems += tag([replace(p, column=None) if p.column == imageio.SPACING_COLUMN else p for p in err.problems], col)
            continue
        errors, warns = _mask_findings(imageio.pixels(mask), limits or {})
        problems += [Problem(m, patient=patient, column=col, file=path, row=row) for m in errors]
        warnings += [Problem(m, patient=patient, column=col, file=path, row=row) for m in warns]
    return problems, warnings


# --------------------------------------------------------------------------------------------------
# Tasks

def _names_in(expr: str) -> list[str]:
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return []
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in ("True", "False")})


def _evaluate(df: pd.DataFrame, expr: str, task: str, key: str, mfile: str | None) -> tuple[pd.Series | None, list[Problem]]:
    where = f"task {task!r}: {key} expression {expr!r}"
    missing_cols = [n for n in _names_in(expr) if n not in df.columns]
    if missing_cols:
        return None, [Problem(f"{where} uses {', '.join(map(repr, missing_cols))}, which the manifest does not have",
                              column=missing_cols[0], file=mfile)]
    try:
        out = df.eval(expr, engine="python")
    except Exception as exc:  # any error in a user's expression is the user's to fix
        return None, [Problem(f"{where} cannot be evaluated ({type(exc).__name__}: {exc})", file=mfile)]
    if not isinstance(out, pd.Series) or len(out) != len(df) or not (
            pd.api.types.is_bool_dtype(out) or set(pd.unique(out)) <= {True, False}):
        return None, [Problem(f"{where} does not give true/false for each row", file=mfile)]
    problems = []
    for col in _names_in(expr):
        bad = df[col].map(_is_missing)
        for idx in df.index[bad]:
            problems.append(Problem(f"{where} needs a value here, but it is missing", patient=str(df.at[idx, "patient_id"]),
                                    column=col, file=mfile, row=_row_of(df, idx)))
    return out.astype(bool), problems


def _row_of(df: pd.DataFrame, idx) -> int | None:
    if "_row" in df.columns:
        return int(df.at[idx, "_row"])
    return None


def _task_labels(df: pd.DataFrame, task: dict, mfile: str | None = None) -> tuple[pd.Series | None, list[Problem]]:
    name = task.get("name", "?")
    subset_expr = task.get("subset")
    problems = []
    if subset_expr:
        subset, probs = _evaluate(df, subset_expr, name, "subset", mfile)
        problems += probs
        if subset is None:
            return None, problems
        sub = df.loc[subset]
    else:
        sub = df
    label, probs = _evaluate(sub, task["label"], name, "label", mfile) if len(sub) else (pd.Series(dtype=bool), [])
    problems += probs
    if label is None:
        return None, problems
    label = label.astype(int).rename(name)
    if subset_expr:
        member = subset.groupby(df["patient_id"].astype(str)).nunique()
        for pid in member.index[member > 1]:
            problems.append(Problem(f"task {name!r}: subset {subset_expr!r} is true for some images of this patient and false for others",
                                    patient=pid, file=mfile))
    agree = label.groupby(sub["patient_id"].astype(str)).nunique()
    for pid in agree.index[agree > 1]:
        problems.append(Problem(f"task {name!r}: label {task['label']!r} differs between images of this patient",
                                patient=pid, file=mfile))
    return label, problems


def task_labels(cohort_df: pd.DataFrame, task: dict) -> pd.Series:
    """0/1 labels of ``task`` (config dict with ``name``, ``label``, optional ``subset``) for the rows in its subset.

    The index is aligned to ``cohort_df``'s rows in the subset. Labels are patient-level: all images of a
    patient must agree. Raises UsradError listing every problem.
    """
    label, problems = _task_labels(cohort_df, task)
    if problems or label is None:
        raise UsradError(f"Task {task.get('name', '?')!r} cannot be labelled", problems)
    return label


def min_patients_per_class(cfg: dict) -> int:
    """Patients needed per class: MIN_PATIENTS_PER_CLASS, or more when modelling.cv_folds on the training part
    (1 - split.test_size of the patients) needs it."""
    folds = (cfg.get("modelling") or {}).get("cv_folds", 5)
    test_size = (cfg.get("split") or {}).get("test_size", 0.25)
    return max(MIN_PATIENTS_PER_CLASS, math.ceil(folds / max(1e-9, 1 - test_size)))


def _class_problems(df: pd.DataFrame, label: pd.Series, task: dict, mfile: str, minimum: int = MIN_PATIENTS_PER_CLASS) -> list[Problem]:
    per_patient = label.groupby(df.loc[label.index, "patient_id"].astype(str)).max()
    counts = {k: int((per_patient == k).sum()) for k in (0, 1)}
    name = task["name"]
    if counts[0] == 0 or counts[1] == 0:
        only = "positive" if counts[0] == 0 else "negative"
        return [Problem(f"task {name!r}: all {max(counts.values())} patients are {only} under label {task['label']!r}"
                        + (f" and subset {task['subset']!r}" if task.get("subset") else "")
                        + "; a model needs both classes", file=mfile)]
    small = [k for k in (0, 1) if counts[k] < minimum]
    if small:
        shown = ", ".join(f"{counts[k]} {'positive' if k else 'negative'}" for k in small)
        return [Problem(f"task {name!r}: only {shown} patient(s); cross-validation needs at least "
                        f"{minimum} patients per class", file=mfile)]
    return []


def class_counts(cohort_df: pd.DataFrame, task: dict) -> tuple[int, int]:
    """(negative, positive) patient counts of a task."""
    label = task_labels(cohort_df, task)
    per_patient = label.groupby(cohort_df.loc[label.index, "patient_id"].astype(str)).max()
    return int((per_patient == 0).sum()), int((per_patient == 1).sum())


# --------------------------------------------------------------------------------------------------
# Validation

def _clinical_problems(df: pd.DataFrame, cfg: dict, mfile: str) -> tuple[list[Problem], dict]:
    """Problems of clinical columns and the parsed values {column: list}."""
    clin = cfg.get("clinical", {})
    predictors = list(clin.get("predictors", []))
    categorical = set(clin.get("categorical", []))
    impute = clin.get("missing", "refuse") == "impute"
    rules = value_rules()
    problems, parsed = [], {}
    for col in predictors:
        if col not in df.columns:
            continue  # reported as a missing column
        rule = rules.get(col)
        values = []
        for idx, cell in df[col].items():
            pid, row = str(df.at[idx, "patient_id"]), int(df.at[idx, "_row"])
            if _is_missing(cell):
                if not impute:
                    problems.append(Problem("clinical value is missing (set clinical.missing: impute to allow missing values)",
                                            patient=pid, column=col, file=mfile, row=row))
                values.append(np.nan)
            elif col in categorical:
                why = _value_problem(col, cell, rule) if rule else None
                if why:
                    problems.append(Problem(why, patient=pid, column=col, file=mfile, row=row))
                values.append(cell)
            else:
                x = _to_number(cell)
                if x is None:
                    hint = "; code yes/no as 1/0" if cell.lower() in ("yes", "no", "y", "n", "true", "false", "pos", "neg") else ""
                    problems.append(Problem(f"value {cell!r} is not a number{hint}", patient=pid, column=col, file=mfile, row=row))
                    values.append(np.nan)
                else:
                    why = _value_problem(col, cell, rule) if rule else None
                    if why:
                        problems.append(Problem(why, patient=pid, column=col, file=mfile, row=row))
                    values.append(x)
        if col not in categorical and rule is None:
            nums = pd.Series(values, index=df.index, dtype=float)
            valid = nums.dropna()
            other = valid[~valid.isin([0.0, 1.0])]
            # a 0/1 (yes/no) column: nearly all values are 0 or 1, both occur; the rest are typing errors
            if len(valid) >= 5 and {0.0, 1.0} <= set(valid) and 0 < len(other) <= 0.1 * len(valid):
                for idx in other.index:
                    problems.append(Problem(f"value {df.at[idx, col]!r} in a 0/1 (yes/no) column; use 0 or 1",
                                            patient=str(df.at[idx, "patient_id"]), column=col, file=mfile, row=int(df.at[idx, "_row"])))
        parsed[col] = values
    return problems, parsed


def _task_columns(cfg: dict) -> dict[str, list[str]]:
    """{column: [tasks whose label/subset expression uses it]}."""
    used: dict[str, list[str]] = {}
    for task in cfg.get("tasks", []):
        for key in ("label", "subset"):
            if task.get(key):
                for name in _names_in(task[key]):
                    used.setdefault(name, [])
                    if task.get("name") not in used[name]:
                        used[name].append(task.get("name"))
    return used


def _outcome_problems(df: pd.DataFrame, cfg: dict, mfile: str) -> tuple[list[Problem], set[str]]:
    """Values of the task (outcome) columns that are not allowed; the columns that have such values.

    A column with a range in the manifest schema (e.g. ``n_positive_nodes``: whole number 0-100) is checked
    against it; any other task column whose values are mostly numbers must hold only numbers (a stray word
    would make the task's comparison fail). Predictor columns are checked with the clinical columns.
    """
    predictors = set(cfg.get("clinical", {}).get("predictors", []))
    rules = value_rules()
    problems, bad_columns = [], set()
    for col, tasks in _task_columns(cfg).items():
        if col not in df.columns or col in predictors or col in LEADING_COLUMNS:
            continue
        cells = df[col]
        given = cells[~cells.map(_is_missing)]
        numeric = given.map(lambda c: _to_number(c) is not None)
        rule = rules.get(col)
        for idx, cell in given.items():
            if rule is not None:
                why = _value_problem(col, cell, rule)
            elif numeric.mean() >= 0.5 and not numeric[idx]:
                why = f"value {cell!r} is not a number, unlike the rest of this column"
            else:
                why = None
            if why:
                used_by = ", ".join(map(repr, tasks))
                problems.append(Problem(f"{why} (outcome used by task {used_by})", patient=str(df.at[idx, "patient_id"]),
                                        column=col, file=mfile, row=int(df.at[idx, "_row"])))
                bad_columns.add(col)
    return problems, bad_columns


def validate_manifest(manifest_path, cfg: dict, check_images: bool = True) -> tuple[pd.DataFrame, list[Problem]]:
    """Read and check a manifest; return (normalised cohort table, every problem found). Never raises UsradError.

    ``check_images=False`` skips reading the pixels (files are still checked to exist). Findings that are
    not errors (a lesion mask touching the image border) are in ``df.attrs["warnings"]`` (Problems too).
    When ``cfg`` names a PyRadiomics params file (``radiomics_params``), every lesion must be at least its
    ``minimumROISize`` pixels and span ``minimumROIDimensions`` dimensions.
    """
    mpath = Path(manifest_path)
    mfile = str(mpath)
    header, rows, problems = _read_rows(mpath)
    if not header:
        return pd.DataFrame(columns=list(LEADING_COLUMNS)), problems
    needed = list(REQUIRED_COLUMNS) + [c for c in cfg.get("clinical", {}).get("predictors", []) if c not in REQUIRED_COLUMNS]
    for col in needed:
        if col not in header:
            kind = "clinical predictor (config clinical.predictors)" if col not in REQUIRED_COLUMNS else "required"
            problems.append(Problem(f"{kind} column is missing from the header", column=col, file=mfile, row=0))
    header_names = [h for h in dict.fromkeys(header) if h]
    df = pd.DataFrame([[r[h] for h in header_names] for _, r in rows], columns=header_names, dtype=object)
    df.insert(0, "_row", [n for n, _ in rows])
    if any(c not in header for c in REQUIRED_COLUMNS) or df.empty:
        return _finalise(df, header_names, {}), problems

    base = mpath.resolve().parent
    df["patient_id"] = df["patient_id"].astype(str)
    for idx in df.index:
        if df.at[idx, "patient_id"] == "":
            problems.append(Problem("patient_id is empty", column="patient_id", file=mfile, row=int(df.at[idx, "_row"])))

    # paths
    raw_images = list(df["image"])
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
    real = {}
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

    # image ids
    if "image_id" in df.columns and (df["image_id"] != "").all():
        ids = df["image_id"].astype(str)
    else:
        derived = _derive_image_ids(raw_images)
        ids = df["image_id"].where(df["image_id"] != "", pd.Series(derived, index=df.index)) if "image_id" in df.columns \
            else pd.Series(derived, index=df.index)
    df["image_id"] = ids.astype(str)
    dup = df["image_id"].duplicated(keep="first")
    for idx in df.index[dup]:
        if df.at[idx, "image"] and os.path.realpath(df.at[idx, "image"]) in real and real[os.path.realpath(df.at[idx, "image"])] != idx:
            continue  # already reported as a duplicate image
        problems.append(Problem(f"image_id {df.at[idx, 'image_id']!r} is used on more than one row; ids must be unique",
                                patient=df.at[idx, "patient_id"] or None, column="image_id", file=mfile, row=int(df.at[idx, "_row"])))

    # pixel spacing
    spacing = []
    for idx in df.index:
        cell = df.at[idx, "pixel_spacing_mm"] if "pixel_spacing_mm" in df.columns else ""
        if _is_missing(cell):
            spacing.append(np.nan)
            continue
        x = _to_number(cell)
        if x is None or x <= 0:
            problems.append(Problem(f"pixel spacing {cell!r} is not a positive number (mm per pixel)", patient=df.at[idx, "patient_id"] or None,
                                    column="pixel_spacing_mm", file=mfile, row=int(df.at[idx, "_row"])))
            spacing.append(np.nan)
        else:
            spacing.append(x)
    df["pixel_spacing_mm"] = pd.Series(spacing, index=df.index, dtype=float)

    # files and pixels
    limits, params_problems = roi_limits(cfg) if check_images else ({}, [])
    problems += params_problems
    jobs = [(int(df.at[i, "_row"]), df.at[i, "patient_id"] or None, {c: df.at[i, c] for c in PATH_COLUMNS},
             float(df.at[i, "pixel_spacing_mm"]), limits) for i in df.index]
    warnings: list[Problem] = []
    if check_images:
        workers = max(1, min(_MAX_WORKERS, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for found, warned in pool.map(lambda j: _check_images(*j), jobs):  # map keeps row order: deterministic
                problems += found
                warnings += warned
    else:
        for row, pid, paths, _, _ in jobs:
            for col, path in paths.items():
                if path and not os.path.isfile(path):
                    problems.append(Problem("file not found", patient=pid, column=col, file=path, row=row))

    # clinical columns, then the other columns parsed as numbers where they all are
    clin_problems, parsed = _clinical_problems(df, cfg, mfile)
    problems += clin_problems
    outcome_problems, bad_outcomes = _outcome_problems(df, cfg, mfile)
    problems += outcome_problems
    out = _finalise(df, header_names, parsed)

    # tasks (a task whose outcome column has bad values is not evaluated: those values are listed already)
    minimum = min_patients_per_class(cfg)
    for task in cfg.get("tasks", []):
        if bad_outcomes & set(_names_in(task.get("label") or "") + _names_in(task.get("subset") or "")):
            continue
        label, probs = _task_labels(out.assign(_row=df["_row"]), task, mfile)
        problems += probs
        if label is not None and not probs:
            problems += _class_problems(out, label, task, mfile, minimum)
    out.attrs["warnings"] = warnings
    # one report in manifest order: header, then each data row (all its cells), then cohort-level problems
    problems.sort(key=lambda p: (p.row is None, p.row or 0))
    return out, problems


def _finalise(df: pd.DataFrame, header_names: list[str], parsed: dict) -> pd.DataFrame:
    df = df.copy()
    for col in ("image_id", "mask_reader2"):
        if col not in df.columns:
            df[col] = ""
    if "pixel_spacing_mm" not in df.columns:
        df["pixel_spacing_mm"] = np.nan
    for col, values in parsed.items():
        df[col] = pd.Series(values, index=df.index, dtype=object)
        if all(isinstance(v, float) for v in values):
            df[col] = df[col].astype(float)
        else:
            df[col] = df[col].where(df[col].map(lambda v: not _is_missing(v)), np.nan)
    for col in df.columns:
        if col in LEADING_COLUMNS or col in parsed or col == "_row":
            continue
        cells = df[col]
        missing = cells.map(_is_missing)
        nums = cells.map(_to_number)
        if (~missing).any() and nums[~missing].notna().all():
            numeric = pd.to_numeric(cells.where(~missing, np.nan), errors="coerce")
            df[col] = numeric
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
        raise UsradError(f"Manifest {manifest_path} has problems", problems)
    return df


# --------------------------------------------------------------------------------------------------
# The cohort table on disk

def write_cohort_table(df: pd.DataFrame, path) -> None:
    """Write the cohort table as TSV, atomically (temporary file + os.replace), byte-identical for equal input."""
    write_tsv(df, path)


def read_cohort_table(path, categorical=()) -> pd.DataFrame:
    """Read a cohort table written by :func:`write_cohort_table`.

    Ids, paths, device/centre and the ``categorical`` columns (e.g. ``cfg["clinical"]["categorical"]``) are
    read as str, so the table equals the one written; empty cells are NaN (``""`` in the text columns).
    """
    dtypes = {c: str for c in (*TEXT_COLUMNS, *categorical)}
    try:
        df = pd.read_csv(path, sep="\t", dtype=dtypes, keep_default_na=False, na_values=[""],
                         encoding="utf-8")
    except FileNotFoundError:
        raise UsradError(f"Cohort table not found: {path}") from None
    for col in TEXT_COLUMNS:
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    if "pixel_spacing_mm" in df.columns:
        df["pixel_spacing_mm"] = df["pixel_spacing_mm"].astype(float)
    return df


# --------------------------------------------------------------------------------------------------
# usrad validate

def summary(df: pd.DataFrame, cfg: dict) -> str:
    """``OK: N patients, M images, tasks: ...``, then the warnings of the validation (if any), one per line."""
    parts = []
    for task in cfg.get("tasks", []):
        neg, pos = class_counts(df, task)
        parts.append(f"{task['name']} ({neg} negative / {pos} positive patients)")
    text = f"OK: {df['patient_id'].nunique()} patients, {len(df)} images, tasks: " + ", ".join(parts)
    warnings = df.attrs.get("warnings") or []
    if warnings:
        text += f"\nWarnings ({len(warnings)}; not errors, but look at these images):\n" + "\n".join(f"  - {w}" for w in warnings)
    return text


VALIDATE_PROBLEMS_EXIT = 2  # the CLI's exit status for a user's mistake


def validate_command(manifest, config_path=None) -> int:
    """``usrad validate MANIFEST [--config FILE]``: print a summary (and warnings) or every problem of the config
    and the manifest; return the exit code (0 valid, 2 problems). Reads only; writes nothing."""
    from .config import load_config, validate_config

    try:
        cfg = load_config(config_path) if config_path else validate_config({}, source="(defaults)")
        df = load_cohort(manifest, cfg)
        print(summary(df, cfg))
    except UsradError as err:
        print(err.render(), file=sys.stderr)
        return VALIDATE_PROBLEMS_EXIT
    return 0
