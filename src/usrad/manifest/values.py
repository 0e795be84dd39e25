"""The values of a manifest: clinical predictors (numbers, ranges, 0/1 columns, categorical levels and their
spellings), task outcomes, patient ids, and values that must be the same on every row of a patient."""
from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd

from ..errors import Problem
from ..tasks import task_columns
from .reading import (LEADING_COLUMNS, MISSING_TOKENS, image_level_columns, is_missing, not_a_number, to_number,
                      value_problem, value_rules)


# --------------------------------------------------------------------------------------------------
# Clinical predictors

def clinical_problems(df: pd.DataFrame, cfg: dict, mfile: str) -> tuple[list[Problem], dict]:
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
            if is_missing(cell):
                if not impute:
                    problems.append(Problem("clinical value is missing (set clinical.missing: impute to allow missing values)",
                                            patient=pid, column=col, file=mfile, row=row))
                values.append(np.nan)
            elif col in categorical:
                why = value_problem(col, cell, rule) if rule else None
                if why:
                    problems.append(Problem(why, patient=pid, column=col, file=mfile, row=row))
                values.append(_level(cell))
            else:
                x = to_number(cell)
                if x is None:
                    hint = "; code yes/no as 1/0" if cell.lower() in ("yes", "no", "y", "n", "true", "false", "pos", "neg") else ""
                    problems.append(Problem(not_a_number(cell) + hint, patient=pid, column=col, file=mfile, row=row))
                    values.append(np.nan)
                else:
                    why = value_problem(col, cell, rule) if rule else None
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
            problems += spelling_problems(df, col, values, mfile)
        parsed[col] = values
    return problems, parsed


def _level(cell: str) -> str:
    """A categorical level as text; a number written any way (``2``, ``2.0``, ``02``, ``+2``) is one level, its
    plain form (``'2'``, ``'2.5'``)."""
    x = to_number(cell)
    if x is None:
        return cell
    return str(int(x)) if x == int(x) and abs(x) < 2 ** 53 else repr(x)


def _spelling_key(text: str) -> str:
    """What two spellings of one level share: Unicode compatibility form, case, inner spaces, number form."""
    return _level(" ".join(unicodedata.normalize("NFKC", text).casefold().split()))


def spelling_problems(df: pd.DataFrame, col: str, values: list, mfile: str) -> list[Problem]:
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


# --------------------------------------------------------------------------------------------------
# Outcomes

def outcome_problems(df: pd.DataFrame, cfg: dict, mfile: str) -> list[Problem]:
    """Values of the task (outcome) columns that are not allowed.

    A column with a range in the manifest schema (e.g. ``n_positive_nodes``: whole number 0-100) is checked
    against it; any other task column whose values are mostly numbers must hold only numbers (a stray word
    would make the task's comparison fail). Predictor columns are checked with the clinical columns.
    """
    predictors = set(cfg.get("clinical", {}).get("predictors", []))
    rules = value_rules()
    problems = []
    for col, tasks in task_columns(cfg).items():
        if col not in df.columns or col in predictors or col in LEADING_COLUMNS:
            continue
        cells = df[col]
        given = cells[~cells.map(is_missing)]
        numeric = given.map(lambda c: to_number(c) is not None)
        rule = rules.get(col)
        for idx, cell in given.items():
            if rule is not None:
                why = value_problem(col, cell, rule)
            elif numeric.mean() >= 0.5 and not numeric[idx]:
                why = f"{not_a_number(cell)}, unlike the rest of this column"
            else:
                why = None
            if why:
                used_by = ", ".join(map(repr, tasks))
                problems.append(Problem(f"{why} (outcome used by task {used_by})", patient=str(df.at[idx, "patient_id"]) or None,
                                        column=col, file=mfile, row=int(df.at[idx, "_row"])))
    return problems


# --------------------------------------------------------------------------------------------------
# Patients

def _id_key(pid: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", pid).casefold().split())


def id_findings(df: pd.DataFrame, mfile: str) -> tuple[list[Problem], list[Problem]]:
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


def _value_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.15g}"
    return repr(value) if isinstance(value, str) else str(value)


def patient_value_findings(df: pd.DataFrame, parsed: dict, cfg: dict, mfile: str) -> tuple[list[Problem], list[Problem]]:
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
                if is_missing(value) and not impute:
                    continue  # reported as missing
                seen.setdefault("missing" if is_missing(value) else value, []).append(int(df.at[idx, "_row"]))
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
