"""Task labels: the 0/1 label of a task (its ``label`` and ``subset`` expressions, :mod:`usrad.expr`) per row of
a manifest or cohort table, its problems, and the patients per class."""
from __future__ import annotations

import pandas as pd

from . import expr as expressions
from .errors import Problem, UsradError
from .manifest.reading import is_missing

MIN_PATIENTS_PER_CLASS = 10


def names_in(expr: str) -> list[str]:
    """Every column a task expression reads, plain or backticked (:func:`usrad.expr.columns`); [] if it is refused."""
    try:
        return expressions.columns(expr)
    except expressions.ExpressionError:
        return []


def task_columns(cfg: dict) -> dict[str, list[str]]:
    """{column: [tasks whose label/subset expression uses it]}."""
    used: dict[str, list[str]] = {}
    for task in cfg.get("tasks", []):
        for key in ("label", "subset"):
            if task.get(key):
                for name in names_in(task[key]):
                    used.setdefault(name, [])
                    if task.get("name") not in used[name]:
                        used[name].append(task.get("name"))
    return used


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
        bad = df[col].map(is_missing)
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


def task_label_findings(df: pd.DataFrame, task: dict, mfile: str | None = None) -> tuple[pd.Series | None, list[Problem]]:
    """0/1 labels of ``task`` for the rows of ``df`` in its subset (None when an expression cannot be evaluated)
    and every problem: values the expressions need that are missing, a patient whose images disagree."""
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
    label, problems = task_label_findings(cohort_df, task)
    if problems or label is None:
        raise UsradError(f"Task {task.get('name', '?')!r} cannot be labelled", problems)
    return label


def class_problems(df: pd.DataFrame, label: pd.Series, task: dict, mfile: str | None,
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
