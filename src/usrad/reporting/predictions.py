"""Access to the predictions table the figures and tables draw from, and to the metric tables the figures draw.

*predictions*: one row per image × model × split, columns ``patient_id, image_id, task, split``
(``cv``/``train``/``test``/``external``), ``model``, ``probability`` and the outcome ``y`` (0/1,
:data:`usrad.reporting.style.LABEL`); optional ``rad_score``. *thresholds*: ``{model: threshold}`` or
``{(task, model): threshold}``, fixed on the training data. :func:`check_predictions` checks the table;
:func:`task_of`, :func:`models_present`, :func:`splits_present`, :func:`select_rows` pick what to draw
(the first three also work on any table with ``task, model, split`` columns); :func:`table_rows` picks one
(task, model, split)'s rows of such a table; :func:`radscore_values` the rad-scores of each class.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ..errors import Problem, UsradError
from .style import ALL_SPLITS, BASE_MODELS, CLASSIFIERS, LABEL, PREDICTION_COLUMNS, SPLITS


def check_predictions(predictions: pd.DataFrame, file: str | None = None) -> pd.DataFrame:
    """The predictions table with checked columns and types, or :class:`UsradError` listing problems."""
    problems = [Problem("required column is missing"
                        + (" (attach the outcome with attach_outcome)" if c == LABEL else ""),
                        column=c, file=file)
                for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if problems:
        raise UsradError("Predictions table is not usable", problems)
    df = predictions.copy()
    df["patient_id"] = df["patient_id"].astype(str)
    df["image_id"] = df["image_id"].astype(str)
    bad_split = ~df["split"].isin(ALL_SPLITS)
    for _, r in df[bad_split].head(10).iterrows():
        problems.append(Problem(f"split must be one of {list(ALL_SPLITS)}, got {r['split']!r}",
                                patient=r["patient_id"], column="split", file=file))
    prob = pd.to_numeric(df["probability"], errors="coerce")
    bad_p = ~prob.between(0, 1)
    for _, r in df[bad_p].head(10).iterrows():
        problems.append(Problem(f"probability must be in [0, 1], got {r['probability']!r} (model {r['model']})",
                                patient=r["patient_id"], column="probability", file=file))
    yy = pd.to_numeric(df[LABEL], errors="coerce")
    bad_y = ~yy.isin((0, 1))
    for _, r in df[bad_y].head(10).iterrows():
        problems.append(Problem(f"outcome must be 0/1, got {r[LABEL]!r}", patient=r["patient_id"],
                                column=LABEL, file=file))
    if problems:
        raise UsradError("Predictions table is not usable", problems)
    df["probability"] = prob.astype(float)
    df[LABEL] = yy.astype(int)
    return df


def select_rows(pred: pd.DataFrame, task: str | None, split: str, model: str) -> pd.DataFrame:
    sel = pred[(pred["split"] == split) & (pred["model"] == model)]
    if task is not None:
        sel = sel[sel["task"] == task]
    return sel.sort_values(["patient_id", "image_id"], kind="mergesort")


def table_rows(table: pd.DataFrame, task: str | None, split: str, model: str) -> pd.DataFrame:
    """The rows of one (task, split, model) of a metric table (Table 3, a curve table), in the table's order."""
    sel = table[(table["split"] == split) & (table["model"] == model)]
    return sel if task is None else sel[sel["task"] == task]


def models_present(pred: pd.DataFrame, task, models) -> list[str]:
    """``models`` checked against the table; ``None``: every model; ``BASE_MODELS``: the main ones present."""
    avail = set(pred.loc[pred["task"] == task, "model"]) if task is not None else set(pred["model"])
    if models is None:
        order = list(BASE_MODELS) + ["best_combined"] + list(CLASSIFIERS)
        extra = sorted(avail - set(order))
        return [m for m in order if m in avail] + extra
    if tuple(models) == BASE_MODELS:
        present = [m for m in BASE_MODELS if m in avail]
        if not present:
            raise UsradError(f"Predictions table has none of the main models for task {task!r}",
                             [Problem(f"expected some of {list(BASE_MODELS)}, found {sorted(avail)}", column="model")])
        return present
    missing = [m for m in models if m not in avail]
    if missing:
        raise UsradError(f"Predictions table has no rows for some models of task {task!r}",
                         [Problem(f"model {m!r} not found", column="model") for m in missing])
    return list(models)


def task_of(pred: pd.DataFrame, task: str | None) -> str | None:
    tasks = sorted(pred["task"].unique())
    if task is None:
        if len(tasks) > 1:
            raise UsradError("Predictions table holds several tasks; say which one to plot",
                             [Problem(f"tasks present: {tasks}", column="task")])
        return tasks[0] if tasks else None
    if task not in tasks:
        raise UsradError(f"Predictions table has no rows for task {task!r}",
                         [Problem(f"tasks present: {tasks}", column="task")])
    return task


def splits_present(pred: pd.DataFrame, task, splits) -> list[str]:
    avail = set(pred.loc[pred["task"] == task, "split"]) if task is not None else set(pred["split"])
    bad = [s for s in splits if s not in ALL_SPLITS]
    if bad:
        raise UsradError("Unknown split requested", [Problem(f"split {s!r} is not one of {list(ALL_SPLITS)}",
                                                             column="split") for s in bad])
    out = [s for s in splits if s in avail]
    if not out:
        raise UsradError(f"Predictions table has none of the splits {list(splits)} for task {task!r}",
                         [Problem(f"splits present: {sorted(avail)}", column="split")])
    return out


def attach_outcome(predictions: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """Add the outcome column ``y`` to a predictions table from ``outcomes`` (``image_id``, optional
    ``task``, and ``y``), joined on ``image_id`` (and ``task`` when both have it). Rows without an outcome
    are a :class:`UsradError` naming patient and image."""
    keys = ["image_id"] + (["task"] if "task" in outcomes.columns and "task" in predictions.columns else [])
    missing = [c for c in keys + [LABEL] if c not in outcomes.columns]
    if missing:
        raise UsradError("Outcome table is not usable", [Problem("required column is missing", column=c)
                                                         for c in missing])
    o = outcomes[keys + [LABEL]].assign(image_id=outcomes["image_id"].astype(str)).drop_duplicates(keys)
    out = predictions.drop(columns=[LABEL], errors="ignore").assign(
        image_id=predictions["image_id"].astype(str)).merge(o, on=keys, how="left", validate="many_to_one")
    lost = out[out[LABEL].isna()]
    if len(lost):
        raise UsradError(f"{len(lost)} prediction(s) have no outcome", [
            Problem(f"no outcome for image {r['image_id']!r}", patient=str(r["patient_id"]), column=LABEL)
            for _, r in lost.head(10).iterrows()])
    return out


def threshold_of(thresholds: Mapping, task, model) -> float:
    if (task, model) in thresholds:
        return float(thresholds[(task, model)])
    if model in thresholds:
        return float(thresholds[model])
    raise UsradError("No threshold for a model", [Problem(
        f"thresholds has no entry for model {model!r} (task {task!r}); thresholds are fixed on training data",
        column="model")])


def radscore_values(predictions: pd.DataFrame, task: str | None = None, model: str | None = None,
                    splits: Sequence[str] = SPLITS) -> tuple[str | None, str, list[str], dict]:
    """The ``rad_score`` column of ``model``'s rows (default ``radscore``, else ``radiomics``) by split and class:
    ``(task, model, splits, {split: {0: negative cases' scores, 1: positive cases'}})``; a split without
    rad-scores is not in the mapping."""
    pred = check_predictions(predictions)
    task = task_of(pred, task)
    if "rad_score" not in pred.columns:
        raise UsradError("Cannot draw the rad-score figure", [Problem("column is missing", column="rad_score")])
    if model is None:
        have = set(pred.loc[pred["task"] == task, "model"])
        model = "radscore" if "radscore" in have else "radiomics"
    models_present(pred, task, [model])
    splits = splits_present(pred, task, splits)
    values = {}
    for split in splits:
        d = select_rows(pred, task, split, model).dropna(subset=["rad_score"])
        if not d.empty:
            values[split] = {c: d.loc[d[LABEL] == c, "rad_score"].to_numpy(float) for c in (0, 1)}
    return task, model, splits, values
