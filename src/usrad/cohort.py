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

import csv
import functools
import io
import math
import os
import sys
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import expr as expressions
from . import imageio
from .atomic import write_tsv
from .errors import Problem, UsradError
from .tables import number_hint, parse_number, read_table

PIXEL_HASH_COLUMN = "pixel_hash"  # written by validation: SHA-256 of the decoded grey pixels and their shape
REQUIRED_COLUMNS = ("patient_id", "image", "mask")
OPTIONAL_COLUMNS = ("mask_reader2", "image_id", "centre", "device", "pixel_spacing_mm")
PATH_COLUMNS = ("image", "mask", "mask_reader2")
TEXT_COLUMNS = ("patient_id", "image_id", "image", "mask", "mask_reader2", "centre", "device", PIXEL_HASH_COLUMN)
LEADING_COLUMNS = ("patient_id", "image_id", "image", "mask", "mask_reader2", "pixel_spacing_mm", "device", "centre",
                   PIXEL_HASH_COLUMN)
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "missing", "?", "-"})
MIN_PATIENTS_PER_CLASS = 10
REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST_SCHEMA_PATH = Path(str(resources.files(__package__).joinpath("schemas", "manifest.schema.yaml")))  # + allowed values
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


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip().lower() in MISSING_TOKENS


def _to_number(value):
    """The number of a cell (:func:`usrad.tables.parse_number`: plain decimal, optional sign and exponent), else None."""
    return parse_number(value)


def _not_a_number(cell: str) -> str:
    return f"value {cell!r} is not a number{number_hint(cell)}"


@functools.lru_cache(maxsize=1)
def value_rules() -> dict[str, dict]:
    """{column: rule} of the columns whose values have an allowed range or set (``usrad/schemas/manifest.schema.yaml``)."""
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
        return _not_a_number(cell)
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
                  limits: dict | None = None) -> tuple[list[Problem], list[Problem], str]:
    """Read image and masks of one row; (problems, warnings, pixel digest of the image or ''), the problems and
    warnings each naming row/patient/column/file."""
    def tag(problems, column):
        return [replace(p, row=row, patient=patient, column=p.column or column) for p in problems]

    problems, warnings = [], []
    ref = None
    try:
        if paths["image"]:  # an empty cell (or no image column) is reported by the caller
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
    return problems, warnings, imageio.pixel_digest(ref) if ref is not None else ""


# --------------------------------------------------------------------------------------------------
# Tasks

def _names_in(expr: str) -> list[str]:
    """Every column a task expression reads, plain or backticked (:func:`usrad.expr.columns`); [] if it is refused."""
    try:
        return expressions.columns(expr)
    except expressions.ExpressionError:
        return []


def _evaluate(df: pd.DataFrame, expr: str, task: str, key: str, mfile: str | None) -> tuple[pd.Series | None, list[Problem]]:
    """True/false of a task's ``key`` (label/subset) expression per row of ``df`` (rows with a problem: False), and
    the problems: a refused expression or unknown column (then None), a missing value it reads, a row without result."""
    where = f"task {task!r}: {key} expression {expressions.shown(expr)}"
    try:
        parsed = expressions.parse(expr)
    except expressions.ExpressionError as err:
        return None, [Problem(f"{where} cannot be evaluated: {err.reason}", file=mfile)]
    missing_cols = [n for n in parsed.columns if n not in df.columns]
    if missing_cols:
        return None, [Problem(f"{where} uses {', '.join(map(repr, missing_cols))}, which the manifest does not have",
                              column=missing_cols[0], file=mfile)]
    try:
        out = expressions.evaluate(parsed, df)
    except expressions.ExpressionError as err:  # values of the wrong type, e.g. text compared with a number
        return None, [Problem(f"{where} cannot be evaluated: {err.reason}", file=mfile)]
    problems, explained = [], pd.Series(False, index=df.index)
    for col in parsed.columns:
        bad = df[col].map(_is_missing)
        explained |= bad
        for idx in df.index[bad]:
            problems.append(Problem(f"{where} needs a value here, but it is missing", patient=str(df.at[idx, "patient_id"]),
                                    column=col, file=mfile, row=_row_of(df, idx)))
    for idx in df.index[out.isna() & ~explained]:
        problems.append(Problem(f"{where} has no value here (a calculation without result, e.g. 0/0)",
                                patient=str(df.at[idx, "patient_id"]), file=mfile, row=_row_of(df, idx)))
    return out.fillna(False).astype(bool), problems


def _row_of(df: pd.DataFrame, idx) -> int | None:
    if "_row" in df.columns:
        return int(df.at[idx, "_row"])
    return None


def _task_labels(df: pd.DataFrame, task: dict, mfile: str | None = None) -> tuple[pd.Series | None, list[Problem]]:
    name = task.get("name", "?")
    subset_expr = task.get("subset") if str(task.get("subset") or "").strip() else None  # null or blank: every patient
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
            problems.append(Problem(f"task {name!r}: subset {expressions.shown(subset_expr)} is true for some images of this "
                                    "patient and false for others",
                                    patient=pid, file=mfile))
    agree = label.groupby(sub["patient_id"].astype(str)).nunique()
    for pid in agree.index[agree > 1]:
        problems.append(Problem(f"task {name!r}: label {expressions.shown(task['label'])} differs between images of this patient",
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
    """Patients needed per class (in the part of the cohort that is split into training and test):
    MIN_PATIENTS_PER_CLASS, or more when the training part (1 - split.test_size of them) must hold
    :func:`usrad.split.training_patients_per_class` (modelling.cv_folds; an SVM's Platt scaling)."""
    from .split import training_patients_per_class

    test_size = (cfg.get("split") or {}).get("test_size", 0.25)
    share = max(1e-9, 1 - test_size)
    return max(MIN_PATIENTS_PER_CLASS, math.ceil(round(training_patients_per_class(cfg) / share, 9)))  # 7/0.1 is 70


def _class_problems(df: pd.DataFrame, label: pd.Series, task: dict, mfile: str | None,
                    minimum: int = MIN_PATIENTS_PER_CLASS, part: str | None = None) -> list[Problem]:
    """A task whose patients (``label``: rows of ``df``) lack a class or have fewer than ``minimum`` patients in
    one; ``part`` names the part of the cohort counted (default: the whole cohort)."""
    per_patient = label.groupby(df.loc[label.index, "patient_id"].astype(str)).max()
    counts = {k: int((per_patient == k).sum()) for k in (0, 1)}
    name = task["name"]
    where = f" in {part}" if part else ""
    under = f"label {task['label']!r}" + (f" and subset {task['subset']!r}" if task.get("subset") else "")
    if counts[0] == 0 and counts[1] == 0:
        return [Problem(f"task {name!r}: no patient{where} under {under}; a model needs both classes", file=mfile)]
    if counts[0] == 0 or counts[1] == 0:
        only = "positive" if counts[0] == 0 else "negative"
        return [Problem(f"task {name!r}: all {max(counts.values())} patients{where} are {only} under {under}"
                        "; a model needs both classes", file=mfile)]
    small = [k for k in (0, 1) if counts[k] < minimum]
    if small:
        shown = ", ".join(f"{counts[k]} {'positive' if k else 'negative'}" for k in small)
        return [Problem(f"task {name!r}: only {shown} patient(s){where}; cross-validation needs at least "
                        f"{minimum} patients per class (keys 'modelling.cv_folds', 'split.test_size')", file=mfile)]
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
            pid, row = str(df.at[idx, "patient_id"]) or None, int(df.at[idx, "_row"])
            if _is_missing(cell):
                if not impute:
                    problems.append(Problem("clinical value is missing (set clinical.missing: impute to allow missing values)",
                                            patient=pid, column=col, file=mfile, row=row))
                values.append(np.nan)
            elif col in categorical:
                why = _value_problem(col, cell, rule) if rule else None
                if why:
                    problems.append(Problem(why, patient=pid, column=col, file=mfile, row=row))
                values.append(_level(cell))
            else:
                x = _to_number(cell)
                if x is None:
                    hint = "; code yes/no as 1/0" if cell.lower() in ("yes", "no", "y", "n", "true", "false", "pos", "neg") else ""
                    problems.append(Problem(_not_a_number(cell) + hint, patient=pid, column=col, file=mfile, row=row))
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
                                            patient=str(df.at[idx, "patient_id"]) or None, column=col, file=mfile,
                                            row=int(df.at[idx, "_row"])))
        if col in categorical:
            problems += _spelling_problems(df, col, values, mfile)
        parsed[col] = values
    return problems, parsed


def _level(cell: str) -> str:
    """A categorical level as text; a number written any way (``2``, ``2.0``, ``02``, ``+2``) is one level, its
    plain form (``'2'``, ``'2.5'``)."""
    x = _to_number(cell)
    if x is None:
        return cell
    return str(int(x)) if x == int(x) and abs(x) < 2 ** 53 else repr(x)


def _spelling_key(text: str) -> str:
    """What two spellings of one level share: Unicode compatibility form, case, inner spaces, number form."""
    return _level(" ".join(unicodedata.normalize("NFKC", text).casefold().split()))


def _spelling_problems(df: pd.DataFrame, col: str, values: list, mfile: str) -> list[Problem]:
    """Rows whose level of ``col`` is another spelling (case, spaces, Unicode form, number form) of a level
    written differently on other rows: levels are compared as exact text, so they would be two levels."""
    forms: dict[str, dict[str, list]] = {}
    for idx, value in zip(df.index, values):
        if isinstance(value, str) and value:
            forms.setdefault(_spelling_key(value), {}).setdefault(value, []).append(idx)
    problems = []
    for spellings in forms.values():
        if len(spellings) < 2:
            continue
        main = max(spellings, key=lambda f: len(spellings[f]))  # the most frequent; ties: the first written
        rows = [int(df.at[i, "_row"]) for i in spellings[main]]
        for form, idxs in spellings.items():
            if form == main:
                continue
            for idx in idxs:
                problems.append(Problem(
                    f"level {form!r} is written {main!r} on {len(rows)} other row(s) (row {', '.join(map(str, rows[:5]))}"
                    f"{', ...' if len(rows) > 5 else ''}): levels are compared as exact text, so these would be two "
                    f"levels; write it the same way on every row", patient=str(df.at[idx, "patient_id"]) or None,
                    column=col, file=mfile, row=int(df.at[idx, "_row"])))
    return problems


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


def _outcome_problems(df: pd.DataFrame, cfg: dict, mfile: str) -> list[Problem]:
    """Values of the task (outcome) columns that are not allowed.

    A column with a range in the manifest schema (e.g. ``n_positive_nodes``: whole number 0-100) is checked
    against it; any other task column whose values are mostly numbers must hold only numbers (a stray word
    would make the task's comparison fail). Predictor columns are checked with the clinical columns.
    """
    predictors = set(cfg.get("clinical", {}).get("predictors", []))
    rules = value_rules()
    problems = []
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
                why = f"{_not_a_number(cell)}, unlike the rest of this column"
            else:
                why = None
            if why:
                used_by = ", ".join(map(repr, tasks))
                problems.append(Problem(f"{why} (outcome used by task {used_by})", patient=str(df.at[idx, "patient_id"]) or None,
                                        column=col, file=mfile, row=int(df.at[idx, "_row"])))
    return problems


@functools.lru_cache(maxsize=1)
def image_level_columns() -> tuple[str, ...]:
    """Clinical columns that describe the lesion on one image and may differ between a patient's images
    (``x-image-level`` of ``usrad/schemas/manifest.schema.yaml``); every other clinical predictor is patient-level."""
    with open(MANIFEST_SCHEMA_PATH, encoding="utf-8") as fh:
        return tuple(yaml.safe_load(fh).get("x-image-level") or ())


def _printable(text):
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


def _report(problems: list[Problem]) -> list[Problem]:
    """Problems in manifest order (header, each data row, then cohort-level ones), printable, no empty patient."""
    shown = [replace(p, message=_printable(p.message), file=_printable(p.file), patient=_printable(p.patient) or None)
             for p in problems]
    return sorted(shown, key=lambda p: (p.row is None, p.row or 0))


def _frame(mpath: Path, cfg: dict) -> tuple[list[str], pd.DataFrame | None, list[Problem]]:
    """Column names, the cells as a frame (``_row`` = data row number; None if there is no header), problems
    of the header and rows (missing required and predictor columns included)."""
    mfile = str(mpath)
    header, rows, problems = _read_rows(mpath)
    if not header:
        return [], None, problems
    needed = list(REQUIRED_COLUMNS) + [c for c in cfg.get("clinical", {}).get("predictors", []) if c not in REQUIRED_COLUMNS]
    for col in needed:
        if col not in header:
            kind = "clinical predictor (config clinical.predictors)" if col not in REQUIRED_COLUMNS else "required"
            problems.append(Problem(f"{kind} column is missing from the header", column=col, file=mfile, row=0))
    header_names = [h for h in dict.fromkeys(header) if h]
    df = pd.DataFrame([[r[h] for h in header_names] for _, r in rows], columns=header_names, dtype=object)
    df.insert(0, "_row", [n for n, _ in rows])
    return header_names, df, problems


def _id_key(pid: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", pid).casefold().split())


def _id_findings(df: pd.DataFrame, mfile: str) -> tuple[list[Problem], list[Problem]]:
    """Empty patient ids (errors); ids that read like a missing value, or that differ from another id only in
    case, spaces or Unicode form (warnings: they are kept as exact text, never merged)."""
    problems, warnings = [], []
    first: dict[str, int] = {}
    for idx, pid in df["patient_id"].items():
        if pid == "":
            problems.append(Problem("patient_id is empty", column="patient_id", file=mfile, row=int(df.at[idx, "_row"])))
        first.setdefault(pid, idx)
    counts = df["patient_id"].value_counts()
    variants: dict[str, list[str]] = {}
    for pid, idx in first.items():
        if not pid:
            continue
        variants.setdefault(_id_key(pid), []).append(pid)
        if pid.lower() in MISSING_TOKENS:
            warnings.append(Problem(f"patient_id {pid!r} reads like a missing value; it is kept as the text {pid!r}, so its "
                                    f"{counts[pid]} row(s) are one patient (if it means 'unknown', give each patient its own id)",
                                    patient=pid, column="patient_id", file=mfile, row=int(df.at[idx, "_row"])))
    for ids in variants.values():
        for pid in ids[1:]:
            warnings.append(Problem(f"patient ids {', '.join(map(repr, ids))} differ only in upper/lower case, spaces or "
                                    f"Unicode form: they are {len(ids)} different patients (if they are one, write the id the "
                                    "same way on every row)", patient=pid, column="patient_id", file=mfile,
                                    row=int(df.at[first[pid], "_row"])))
    return problems, warnings


def _resolve_paths(df: pd.DataFrame, base: Path, mfile: str) -> list[Problem]:
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


def _same_file_problems(df: pd.DataFrame) -> tuple[list[Problem], dict[str, int]]:
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


def _image_ids(df: pd.DataFrame, raw_images: list[str], real: dict[str, int], mfile: str) -> list[Problem]:
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


def _spacings(df: pd.DataFrame, mfile: str) -> list[Problem]:
    """Parse ``pixel_spacing_mm`` (NaN where empty or bad)."""
    problems, spacing = [], []
    for idx in df.index:
        cell = df.at[idx, "pixel_spacing_mm"] if "pixel_spacing_mm" in df.columns else ""
        if _is_missing(cell):
            spacing.append(np.nan)
            continue
        x = _to_number(cell)
        if x is None or x <= 0:
            problems.append(Problem(f"pixel spacing {cell!r} is not a positive number (mm per pixel){number_hint(cell)}",
                                    patient=df.at[idx, "patient_id"] or None, column="pixel_spacing_mm", file=mfile,
                                    row=int(df.at[idx, "_row"])))
            spacing.append(np.nan)
        else:
            spacing.append(x)
    df["pixel_spacing_mm"] = pd.Series(spacing, index=df.index, dtype=float)
    return problems


def _pixel_findings(df: pd.DataFrame, cfg: dict, check_images: bool) -> tuple[list[Problem], list[Problem], list[str]]:
    """Read every image and mask (or, without ``check_images``, check the files exist): problems, warnings and
    the pixel digest of each row's image ('' where it was not read)."""
    limits, problems = roi_limits(cfg) if check_images else ({}, [])
    jobs = [(int(df.at[i, "_row"]), df.at[i, "patient_id"] or None, {c: df.at[i, c] for c in PATH_COLUMNS},
             float(df.at[i, "pixel_spacing_mm"]), limits) for i in df.index]
    warnings: list[Problem] = []
    digests = [""] * len(jobs)
    if check_images:
        workers = max(1, min(_MAX_WORKERS, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for k, (found, warned, digest) in enumerate(pool.map(lambda j: _check_images(*j), jobs)):  # in row order
                problems += found
                warnings += warned
                digests[k] = digest
    else:
        for row, pid, paths, _, _ in jobs:
            for col, path in paths.items():
                if path and not os.path.isfile(path):
                    problems.append(Problem("file not found", patient=pid, column=col, file=path, row=row))
    return problems, warnings, digests


def _value_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.15g}"
    return repr(value) if isinstance(value, str) else str(value)


def _patient_value_findings(df: pd.DataFrame, parsed: dict, cfg: dict, mfile: str) -> tuple[list[Problem], list[Problem]]:
    """Clinical predictors are patient-level: a patient whose rows hold different values of one (a missing value
    counts, with clinical.missing: impute) is an error; for the image-level columns (:func:`image_level_columns`,
    e.g. BI-RADS of a left and a right lesion) a warning."""
    impute = cfg.get("clinical", {}).get("missing", "refuse") == "impute"
    per_image = set(image_level_columns())
    groups = [df.index[pos] for pid, pos in df.groupby("patient_id", sort=False).indices.items() if pid and len(pos) > 1]
    problems, warnings = [], []
    for col, values in parsed.items():
        series = pd.Series(values, index=df.index, dtype=object)
        for idxs in groups:
            seen: dict = {}
            for idx in idxs:
                value = series[idx]
                if _is_missing(value) and not impute:
                    continue  # reported as missing
                seen.setdefault("missing" if _is_missing(value) else value, []).append(int(df.at[idx, "_row"]))
            if len(seen) < 2:
                continue
            detail = "; ".join(f"{k if k == 'missing' else _value_text(k)} on row {', '.join(map(str, r))}"
                               for k, r in seen.items())
            pid, row = str(df.at[idxs[0], "patient_id"]), list(seen.values())[1][0]
            if col in per_image:
                warnings.append(Problem(f"{col} differs between this patient's images ({detail}): fine for two lesions (e.g. "
                                        "left and right breast), otherwise correct it", patient=pid, column=col, file=mfile,
                                        row=row))
            else:
                problems.append(Problem(f"clinical values are per patient, but this patient's rows disagree ({detail}); give "
                                        "every image of the patient the same value", patient=pid, column=col, file=mfile,
                                        row=row))
    return problems, warnings


def _without_cells(frame: pd.DataFrame, bad: set[tuple[int, str]]) -> pd.DataFrame:
    """``frame`` with the cells (row, column) that have a reported problem made missing, and a column parsed as
    numbers where its remaining cells all are, so that the rest of it can still be checked."""
    data = frame.copy()
    for col in {c for _, c in bad}:
        hit = data["_row"].isin({r for r, c in bad if c == col})
        cells = data[col].astype(object).where(~hit, None)
        missing = cells.map(_is_missing)
        if cells[~missing].map(lambda v: _to_number(v) is not None).all():
            data[col] = cells.map(lambda v: np.nan if _is_missing(v) else _to_number(v)).astype(float)
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
        names = set(_names_in(task.get("label") or "") + _names_in(task.get("subset") or ""))
        bad = {(p.row, p.column) for p in earlier if p.row and p.column in names}
        label, probs = _task_labels(_without_cells(frame, bad) if bad else frame, task, mfile)
        bad_patients = {p.patient for p in earlier if p.row and p.column in names}
        kept = [p for p in probs if (p.row, p.column) not in bad
                and not (p.row is None and p.patient is not None and (not has_ids or p.patient in bad_patients))]
        problems += kept
        if label is None:
            continue
        if not kept and not bad and has_ids:
            problems += _class_problems(out, label, task, mfile, minimum)
        skip_rows = {r for r, _ in bad} | {p.row for p in kept if p.row}
        skip_patients = {p.patient for p in kept if p.row is None and p.patient is not None}
        usable = ~frame.loc[label.index, "_row"].isin(skip_rows) & ~frame.loc[label.index, "patient_id"].isin(skip_patients)
        labels[task.get("name", "?")] = label[usable.to_numpy()]
    return problems, labels


def _duplicate_pixel_findings(df: pd.DataFrame, digests: list[str], labels: dict[str, pd.Series],
                              mfile: str) -> tuple[list[Problem], list[Problem]]:
    """Images with identical pixels in different files: an error when a task labels them differently, else a
    warning (the split keeps their patients together: column ``pixel_hash``)."""
    groups: dict[str, list] = {}
    for idx, digest in zip(df.index, digests):
        if digest:
            groups.setdefault(digest, []).append(idx)
    problems, warnings = [], []
    for idxs in (g for g in groups.values() if len(g) > 1):
        first = idxs[0]
        f_row, f_pid, f_img = int(df.at[first, "_row"]), df.at[first, "patient_id"], df.at[first, "image"]
        for idx in idxs[1:]:
            img, pid, row = df.at[idx, "image"], df.at[idx, "patient_id"], int(df.at[idx, "_row"])
            if os.path.realpath(img) == os.path.realpath(f_img):
                continue  # the same file twice: already refused
            where = f"row {f_row} (patient {f_pid!r}, file {f_img})"
            conflicts = [f"task {t!r} labels this one {int(lab[idx])} and that one {int(lab[first])}"
                         for t, lab in labels.items() if idx in lab.index and first in lab.index and lab[idx] != lab[first]]
            if conflicts:
                problems.append(Problem(f"image has the same pixels as {where}, but {'; '.join(conflicts)}: one image cannot "
                                        "have two labels; find out which is right and remove the other row",
                                        patient=pid or None, column="image", file=img, row=row))
            elif pid == f_pid:
                warnings.append(Problem(f"image has the same pixels as row {f_row} of the same patient (file {f_img}): the "
                                        "image is counted twice", patient=pid or None, column="image", file=img, row=row))
            else:
                warnings.append(Problem(f"image has the same pixels as {where}: probably one image under two patient ids; "
                                        "both patients are kept on the same side of the train/test split",
                                        patient=pid or None, column="image", file=img, row=row))
    return problems, warnings


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
    header_names, df, problems = _frame(mpath, cfg)
    if df is None:
        return pd.DataFrame(columns=list(LEADING_COLUMNS)), _report(problems)
    if df.empty:
        return _finalise(df, header_names, {}), _report(problems)
    has_ids = "patient_id" in df.columns
    df["patient_id"] = df["patient_id"].astype(str) if has_ids else ""
    found, warnings = _id_findings(df, mfile) if has_ids else ([], [])
    problems += found
    raw_images = list(df["image"]) if "image" in df.columns else [""] * len(df)
    problems += _resolve_paths(df, mpath.resolve().parent, mfile)
    found, real = _same_file_problems(df)
    problems += found + _image_ids(df, raw_images, real, mfile) + _spacings(df, mfile)
    found, warned, digests = _pixel_findings(df, cfg, check_images)
    problems += found
    warnings += warned
    df[PIXEL_HASH_COLUMN] = digests  # replaces a manifest column of that name: it is computed

    found, parsed = _clinical_problems(df, cfg, mfile)
    problems += found
    for col in ("centre", "device"):
        if col in header_names:
            problems += _spelling_problems(df, col, list(df[col]), mfile)
    if has_ids:
        found, warned = _patient_value_findings(df, parsed, cfg, mfile)
        problems += found
        warnings += warned
    problems += _outcome_problems(df, cfg, mfile)
    out = _finalise(df, header_names, parsed)
    found, labels = _task_findings(out, df, cfg, mfile, problems, has_ids)
    problems += found
    found, warned = _duplicate_pixel_findings(df, digests, labels, mfile)
    problems += found
    out.attrs["warnings"] = _report(warnings + warned)
    return out, _report(problems)


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
            df[col] = df[col].where(df[col].map(lambda v: not _is_missing(v)), np.nan)
    for col in df.columns:
        if col in LEADING_COLUMNS or col in parsed or col == "_row":
            continue
        cells = df[col]
        missing = cells.map(_is_missing)
        nums = cells.map(_to_number)
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
        raise UsradError(f"Manifest {_printable(os.fsdecode(manifest_path))} has problems", problems)
    return df


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
        raise UsradError(f"Cohort table not found: {_printable(os.fsdecode(path))}") from None
    if "pixel_spacing_mm" in df.columns:
        df["pixel_spacing_mm"] = df["pixel_spacing_mm"].astype(float)
    return df


# --------------------------------------------------------------------------------------------------
# usrad validate

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
        from .split import external_rows

        ext = external_rows(df[by], (cfg.get("split") or {}).get("external_values") or [])
        text += (f"\nexternal set ({by} in {sorted(map(str, cfg['split']['external_values']))}): "
                 f"{df.loc[ext, 'patient_id'].nunique()} patients, never trained on; development part: "
                 f"{df.loc[~ext, 'patient_id'].nunique()} patients")
    warnings = df.attrs.get("warnings") or []
    if warnings:
        text += f"\nWarnings ({len(warnings)}; not errors, but look at these images):\n" + "\n".join(f"  - {w}" for w in warnings)
    return text


VALIDATE_PROBLEMS_EXIT = 2  # the CLI's exit status for a user's mistake


def validate_command(manifest, config_path=None) -> int:
    """``usrad validate MANIFEST [--config FILE]``: print a summary (and warnings) or every problem of the config
    and the manifest; return the exit code (0 valid, 2 problems). Reads only; writes nothing."""
    from .config import load_config, validate_config
    from .models import check_plan

    try:
        cfg = load_config(config_path) if config_path else validate_config({}, source="(defaults)")
        df = load_cohort(manifest, cfg)
        check_plan(df, cfg)  # what the split and the models would refuse later: the split, classes per part, ...
        print(summary(df, cfg))
    except UsradError as err:
        print(err.render(), file=sys.stderr)
        return VALIDATE_PROBLEMS_EXIT
    return 0
