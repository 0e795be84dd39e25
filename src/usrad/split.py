"""The train/test split: made once per cohort, saved, and reused by every task and model.

* Patient level: all images of a patient land on the same side (the modelling unit is the image row).
* Stratified by the combined outcome class over all tasks, e.g. for ``metastasis`` (N0 vs N+) and
  ``burden`` (among N+: 1–2 vs ≥3 nodes) the classes 0 = N0, 1 = N+ 1–2, 2 = N+ ≥3, so both tasks are
  balanced. A subset task (burden) just keeps the rows of its subset: each N+ patient stays in the
  split it has for metastasis.
* Optional external validation: rows whose ``by_column`` value is in ``external_values`` (a centre or a
  device) form the ``external`` set and are never trained on; the rest is split as above
  (``test_size=0`` puts all of it in training).

The split file (TSV): ``patient_id, image_id, split`` with split ∈ {train, test, external}, sorted by
(patient_id, image_id), plus a ``stratum`` column for the record.

:func:`split_problems` makes the same split before anything runs (``usrad validate``, rule validate_cohort) and
lists what would stop a later rule: no development or no external rows, a split that cannot be stratified, and
each task's classes too small in one part (:func:`part_class_problems`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .atomic import write_tsv
from .cohort import external_rows, min_patients_per_class
from .errors import Problem, UsradError
from .settings import training_patients_per_class
from .tables import read_table
from .tasks import class_problems
from .tasks import task_labels as subset_labels

__all__ = ["SPLIT_VALUES", "external_rows", "make_split", "min_patients_per_class", "part_class_problems",
           "read_split", "split_groups", "split_problems", "task_labels", "task_split", "training_patients_per_class",
           "write_split"]

SPLIT_VALUES = ("train", "test", "external")


def task_labels(cohort: pd.DataFrame, task: dict) -> pd.Series:
    """0/1 label per row of ``cohort`` (NaN outside the task's subset); wraps :func:`usrad.tasks.task_labels`."""
    return subset_labels(cohort, task).reindex(cohort.index).astype(float)


def _strata(cohort: pd.DataFrame, tasks: list[dict]) -> pd.Series:
    """One stratum string per patient, combining every task's label (NaN → '-')."""
    parts = []
    for task in tasks:
        lab = task_labels(cohort, task)
        parts.append(lab.map(lambda v: "-" if pd.isna(v) else str(int(v))))
    combined = parts[0].str.cat(parts[1:], sep="") if len(parts) > 1 else parts[0]
    per_patient = combined.groupby(cohort["patient_id"].astype(str)).agg(lambda s: max(s))
    return per_patient


def make_split(cohort: pd.DataFrame, tasks: list[dict], seed: int, test_size: float = 0.25,
               by_column: str | None = None, external_values=None) -> pd.DataFrame:
    """Split the cohort's images into train/test(/external) at patient level, stratified (see module doc)."""
    problems = []
    for col in ("patient_id", "image_id"):
        if col not in cohort.columns:
            problems.append(Problem("required column is missing", column=col))
    if problems:
        raise UsradError("Cannot split the cohort", problems)
    df = cohort.copy()
    df["patient_id"] = df["patient_id"].astype(str)
    df["image_id"] = df["image_id"].astype(str)
    df = df.sort_values(["patient_id", "image_id"], kind="mergesort").reset_index(drop=True)
    split = pd.Series("train", index=df.index, dtype=object)

    internal = pd.Series(True, index=df.index)
    if by_column is not None:
        if by_column not in df.columns:
            raise UsradError("Cannot split by column", [Problem(
                f"key 'split.by_column': {by_column!r} is not a cohort column", column=by_column)])
        ext_vals = {str(v) for v in (external_values or [])}
        if not ext_vals:
            raise UsradError("Cannot split by column", [Problem(
                "key 'split.external_values' is empty: name the values that form the external set", column=by_column)])
        is_ext = external_rows(df[by_column], ext_vals)
        mixed = df.groupby("patient_id")[by_column].agg(lambda s: external_rows(s, ext_vals).nunique() > 1)
        for pid in mixed[mixed].index:
            problems.append(Problem(f"the patient's images are on both sides of the {by_column!r} split",
                                    patient=pid, column=by_column))
        if problems:
            raise UsradError("Cannot split by column", problems)
        if not is_ext.any():
            raise UsradError("Cannot split by column", [Problem(
                f"key 'split.external_values': no row has {by_column} in {sorted(ext_vals)} (values present: "
                f"{_some_values(df[by_column])})", column=by_column)])
        if is_ext.all():
            raise UsradError("Cannot split by column", [Problem(
                f"key 'split.external_values': every row has {by_column} in {sorted(ext_vals)}, so no patient is "
                "left for training (the external set is never trained on)", column=by_column)])
        split[is_ext] = "external"
        internal = ~is_ext

    strata = _strata(df, tasks)
    groups = split_groups(df)
    _check_groups(df, groups, internal, by_column)
    if test_size and test_size > 0:  # split groups (patients, or patients sharing an image), not images
        patients = np.asarray(sorted(groups[df.loc[internal, "patient_id"].unique()].unique()))
        y = strata.groupby(groups).max().loc[patients].to_numpy()
        counts = pd.Series(y).value_counts()
        if (counts < 2).any():  # a combined class too rare to stratify: fall back to the first task
            y = np.asarray([s[0] for s in y])
            if (pd.Series(y).value_counts() < 2).any():
                y = None
        try:
            _, test_patients = train_test_split(patients, test_size=test_size, random_state=seed, stratify=y)
        except ValueError as exc:  # e.g. a test set smaller than the number of outcome classes
            raise UsradError("Cannot split the cohort", [Problem(
                f"key 'split.test_size': {test_size} of {len(patients)} patients cannot be split into a training "
                f"and a test set stratified by outcome ({exc})")]) from None
        split[df["patient_id"].map(groups).isin(set(test_patients)) & internal] = "test"

    out = pd.DataFrame({"patient_id": df["patient_id"], "image_id": df["image_id"], "split": split,
                        "stratum": df["patient_id"].map(strata), "split_group": df["patient_id"].map(groups)})
    return out


def split_groups(cohort: pd.DataFrame) -> pd.Series:
    """Patient id -> split group. Patients whose images have identical pixels (cohort column ``pixel_hash``,
    written by validation) are one group, transitively, so that the same image is never on both sides of a
    split (train/test, or CV folds grouped by this column); every other patient is a group of its own. A
    group is named by its smallest patient id."""
    pids = cohort["patient_id"].astype(str)
    parent = {p: p for p in sorted(pids.unique())}

    def root(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    if "pixel_hash" in cohort.columns:
        hashes = cohort["pixel_hash"].fillna("").astype(str)
        for digest, members in pids.groupby(hashes):
            roots = sorted({root(p) for p in members})
            if digest and len(roots) > 1:
                for r in roots[1:]:
                    parent[r] = roots[0]
    return pd.Series({p: root(p) for p in parent}, dtype=object).rename("split_group")


def _check_groups(df: pd.DataFrame, groups: pd.Series, internal: pd.Series, by_column: str | None) -> None:
    """A split group (patients sharing an image) must not straddle the external set and the rest."""
    external = set(df.loc[~internal, "patient_id"])
    problems = []
    for group, members in groups.groupby(groups):
        sides = {p in external for p in members.index}
        if len(sides) > 1:
            inside = [p for p in members.index if p in external]
            problems.append(Problem(
                f"patients {', '.join(map(repr, members.index))} have images with identical pixels (column 'pixel_hash'), "
                f"but only {', '.join(map(repr, inside))} is in the external set: the same image would be trained on "
                "and used for external validation; remove the duplicate", patient=group, column=by_column))
    if problems:
        raise UsradError("Cannot split the cohort", problems)


def _some_values(values: pd.Series, n: int = 8) -> str:
    uniq = sorted(map(str, pd.unique(values.dropna())))
    return ", ".join(map(repr, uniq[:n])) + (f", … ({len(uniq)} values)" if len(uniq) > n else "") if uniq else "none"


def write_split(split_df: pd.DataFrame, path) -> None:
    write_tsv(split_df, path)


def read_split(path) -> pd.DataFrame:
    path = Path(path)
    try:
        df = read_table(path, text=("split", "stratum", "split_group"))
    except FileNotFoundError:
        raise UsradError(f"Split file not found: {path}") from None
    problems = [Problem("required column is missing", column=c, file=str(path))
                for c in ("patient_id", "image_id", "split") if c not in df.columns]
    if problems:
        raise UsradError(f"Invalid split file {path}", problems)
    bad = df[~df["split"].isin(SPLIT_VALUES)]
    for i, r in bad.iterrows():
        problems.append(Problem(f"split value {r['split']!r} is not one of {SPLIT_VALUES}",
                                patient=r["patient_id"], column="split", file=str(path), row=int(i) + 1))
    both = df.groupby("patient_id")["split"].nunique()
    for pid in both[both > 1].index:
        problems.append(Problem("the patient's images are on both sides of the split", patient=pid,
                                column="split", file=str(path)))
    if problems:
        raise UsradError(f"Invalid split file {path}", problems)
    return df


def task_split(split_df: pd.DataFrame, cohort: pd.DataFrame, task: dict) -> pd.DataFrame:
    """Rows of ``task`` (its subset) with their split and label: patient_id, image_id, split, label."""
    df = cohort.copy()
    df["patient_id"] = df["patient_id"].astype(str)
    df["image_id"] = df["image_id"].astype(str)
    df["label"] = task_labels(df, task).to_numpy()
    df = df[df["label"].notna()]
    merged = df[["patient_id", "image_id", "label"]].merge(
        split_df[["image_id", "split"]], on="image_id", how="left", validate="one_to_one")
    missing = merged[merged["split"].isna()]
    if len(missing):
        raise UsradError("Images missing from the split file (re-run the split)",
                         [Problem("image not in the split", patient=r.patient_id, column="image_id")
                          for r in missing.itertuples()])
    merged["label"] = merged["label"].astype(int)
    return merged.sort_values(["patient_id", "image_id"], kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# checks before anything runs (usrad validate, rule validate_cohort): the split that will be used

def split_problems(cohort: pd.DataFrame, cfg: dict) -> tuple[pd.DataFrame | None, list[Problem]]:
    """The split rule ``split`` will make from ``cohort`` and ``cfg`` (same seed, same function) and every
    problem of it: a split that cannot be made, or a task whose classes are too small in one part
    (development, training, test, external). Each problem names the config key."""
    sp = cfg.get("split") or {}
    try:
        split = make_split(cohort, list(cfg.get("tasks") or []), seed=int(cfg.get("seed", 0)),
                           test_size=sp.get("test_size", 0.25), by_column=sp.get("by_column"),
                           external_values=sp.get("external_values"))
    except UsradError as err:
        return None, list(err.problems)
    problems = []
    for task in cfg.get("tasks") or []:
        problems += part_class_problems(cohort, split, task, cfg)
    return split, problems


def _part_counts(cohort: pd.DataFrame, split: pd.DataFrame, task: dict) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per patient of the task: label (0/1), part (train/test/external); and the row labels (cohort index)."""
    labels = task_labels(cohort, task).dropna().astype(int)
    pids = cohort.loc[labels.index, "patient_id"].astype(str)
    per_patient = labels.groupby(pids).max()
    part = split.assign(patient_id=split["patient_id"].astype(str)).groupby("patient_id")["split"].first()
    return per_patient, part.reindex(per_patient.index), labels


def part_class_problems(cohort: pd.DataFrame, split: pd.DataFrame, task: dict, cfg: dict) -> list[Problem]:
    """Class counts of one task in each part of ``split``: the development part (everything but the
    external set) needs :func:`min_patients_per_class` patients per class, the training set
    :func:`training_patients_per_class`, and the test and external sets both classes (else their AUC is
    undefined)."""
    sp = cfg.get("split") or {}
    by, test_size = sp.get("by_column"), sp.get("test_size", 0.25)
    per_patient, part, labels = _part_counts(cohort, split, task)
    name, problems = task["name"], []
    if by is not None:
        dev_rows = labels[cohort.loc[labels.index, "patient_id"].astype(str).map(part).ne("external").to_numpy()]
        where = f"the development part (rows whose {by} is not in key 'split.external_values')"
        problems += class_problems(cohort, dev_rows, task, None, min_patients_per_class(cfg), part=where)
        if problems:
            return problems

    def count(which: str, k: int) -> int:
        return int(((part == which) & (per_patient == k)).sum())

    need = training_patients_per_class(cfg)
    k = int((cfg.get("modelling") or {}).get("cv_folds", 5))
    for cls, word in ((0, "negative"), (1, "positive")):
        n = count("train", cls)
        if n < need:
            problems.append(Problem(
                f"task {name!r}: the training set has only {n} {word} patient(s) (key 'split.test_size' = {test_size}"
                f"{'; the external set is never trained on' if by else ''}); key 'modelling.cv_folds' = {k}"
                f"{' with an SVM (5-fold Platt scaling inside each fold)' if need > k else ''} needs at least "
                f"{need} per class: lower split.test_size or cv_folds, or add patients"))
    held_out = ([("test", "the test set", "key 'split.test_size'")] if test_size and test_size > 0 else []) + (
        [("external", "the external set", "key 'split.external_values'")] if by is not None else [])
    for which, what, key in held_out:
        n_part = {cls: count(which, cls) for cls in (0, 1)}
        missing = [word for cls, word in ((0, "negative"), (1, "positive")) if n_part[cls] == 0]
        if missing:
            problems.append(Problem(
                f"task {name!r}: {what} has {n_part[0]} negative and {n_part[1]} positive patient(s), so its AUC "
                f"is undefined (no {' or '.join(missing)} patient); change {key}"))
    return problems
