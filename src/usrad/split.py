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
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .atomic import write_tsv
from .errors import Problem, UsradError

SPLIT_VALUES = ("train", "test", "external")


def task_labels(cohort: pd.DataFrame, task: dict) -> pd.Series:
    """0/1 label per row of ``cohort`` (NaN outside the task's subset); wraps :func:`usrad.cohort.task_labels`."""
    from .cohort import task_labels as _labels

    return _labels(cohort, task).reindex(cohort.index).astype(float)


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
            raise UsradError("Cannot split by column", [Problem("split.by_column is not a cohort column",
                                                                column=by_column)])
        ext_vals = {str(v) for v in (external_values or [])}
        if not ext_vals:
            raise UsradError("Cannot split by column", [Problem(
                "split.external_values is empty: name the values that form the external set", column=by_column)])
        is_ext = df[by_column].astype(str).isin(ext_vals)
        mixed = df.groupby("patient_id")[by_column].agg(lambda s: s.astype(str).isin(ext_vals).nunique() > 1)
        for pid in mixed[mixed].index:
            problems.append(Problem(f"the patient's images are on both sides of the {by_column!r} split",
                                    patient=pid, column=by_column))
        if problems:
            raise UsradError("Cannot split by column", problems)
        if not is_ext.any():
            raise UsradError("Cannot split by column", [Problem(
                f"no row has {by_column} in {sorted(ext_vals)}", column=by_column)])
        split[is_ext] = "external"
        internal = ~is_ext

    strata = _strata(df, tasks)
    if test_size and test_size > 0:
        patients = np.asarray(sorted(df.loc[internal, "patient_id"].unique()))
        y = strata.loc[patients].to_numpy()
        counts = pd.Series(y).value_counts()
        if (counts < 2).any():  # a combined class too rare to stratify: fall back to the first task
            y = np.asarray([s[0] for s in y])
            if (pd.Series(y).value_counts() < 2).any():
                y = None
        _, test_patients = train_test_split(patients, test_size=test_size, random_state=seed, stratify=y)
        split[df["patient_id"].isin(set(test_patients)) & internal] = "test"

    out = pd.DataFrame({"patient_id": df["patient_id"], "image_id": df["image_id"], "split": split,
                        "stratum": df["patient_id"].map(strata)})
    return out


def write_split(split_df: pd.DataFrame, path) -> None:
    write_tsv(split_df, path)


def read_split(path) -> pd.DataFrame:
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype={"patient_id": str, "image_id": str, "split": str,
                                                 "stratum": str}, keep_default_na=False)
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
