"""The predictions table of a task (every model on every row, plus the out-of-fold ``cv`` rows), each model's
Youden threshold, and the table on disk (:func:`write_predictions`, :func:`read_predictions`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_tsv
from ..metrics import youden_threshold
from ..tables import read_table
from .fitting import NestedCV, TaskPlan
from .stacking import fitted_radscore_branch


def prediction_table(plan: TaskPlan, cv: NestedCV, models: dict) -> tuple[pd.DataFrame, dict]:
    """Stage 7: the predictions table (every model on every row, plus ``cv`` = out-of-fold on the training rows)
    and each model's Youden threshold (on its out-of-fold or apparent training predictions)."""
    design, tr = plan.design, plan.design.tr
    rs_all = fitted_radscore_branch(cv.signatures.final).transform(design.X)["rad_score"].to_numpy()
    meta_rows = design.rows[["patient_id", "image_id", "split"]].reset_index(drop=True).assign(y=design.y_all)
    tr_rows = meta_rows[tr].reset_index(drop=True)
    frames, thresholds = [], {}
    for name, m in models.items():
        p_all = m["pipeline"].predict_proba(design.X)[:, 1]
        has_rs = m["kind"] != "clinical"
        fr = meta_rows.assign(task=design.task, model=name, probability=p_all, rad_score=rs_all if has_rs else np.nan)
        fr.loc[tr, "split"] = "train"
        cvf = tr_rows.assign(split="cv", task=design.task, model=name, probability=m["oof"],
                             rad_score=cv.signatures.fold_radscore if has_rs else np.nan)
        frames += [cvf, fr]
        thresholds[name] = youden(design.ytr, m["oof"] if plan.cfg["threshold_from"] == "cv" else p_all[tr])
    predictions = pd.concat(frames, ignore_index=True)[
        ["patient_id", "image_id", "task", "split", "model", "y", "probability", "rad_score"]]
    order = {s: i for i, s in enumerate(["cv", "train", "test", "external"])}
    predictions = predictions.assign(_s=predictions["split"].map(order)).sort_values(
        ["model", "_s", "patient_id", "image_id"], kind="mergesort").drop(columns="_s").reset_index(drop=True)
    return predictions, thresholds


def youden(y, p) -> float:
    """Youden's J threshold; a model whose predictions are all equal (a signature that kept no feature predicts
    the training prevalence) has no ROC to choose from: its threshold is that value."""
    p = np.asarray(p, dtype=float)
    if p.size and np.ptp(p) == 0:
        return float(p[0])
    return youden_threshold(y, p)


def write_table(df: pd.DataFrame, path: Path) -> None:
    """A table of the models' outputs: deterministic TSV (floats ``%.10g``), written atomically."""
    write_tsv(df, path, float_format="%.10g")


def write_predictions(predictions: pd.DataFrame, path) -> None:
    """The predictions table (one per task): deterministic TSV, written atomically."""
    write_table(predictions, Path(path))


def read_predictions(path) -> pd.DataFrame:
    """A predictions table written by :func:`write_predictions` (task, split and model read as text)."""
    return read_table(path, text=("task", "split", "model"))
