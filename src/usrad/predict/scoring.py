"""Scoring: probability, decision at the bundle's threshold, rad-score, the largest contributions to the
log-odds and nomogram points of each image; :func:`predict_manifest` does it all; the predictions table."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from ..atomic import atomic_path
from ..models import RadiomicsClinicalFeatures, fitted_radscore_branch
from ..nomogram import nomogram_spec
from ..selection import LassoSelector
from ..tables import read_table
from .model import VersionWarning, fitted_signature_steps, load_model, model_inputs, version_mismatches
from .patients import design_matrix, new_patient_features, validate_new_patients

TOP_K = 3
OUTPUT_COLUMNS = ("patient_id", "image_id", "task", "model", "probability", "rad_score", "threshold", "decision",
                  "top_contributions")


def rad_scores(pipeline, X: pd.DataFrame) -> np.ndarray:
    """The rad-score of every row (the bundle's LASSO signature, as in training); NaN without a signature."""
    first = pipeline.steps[0][1]
    if isinstance(first, RadiomicsClinicalFeatures):
        return first.radiomics_.transform(X)["rad_score"].to_numpy(float)
    sig = fitted_signature_steps(pipeline)
    if sig is None:
        return np.full(len(X), np.nan)
    return fitted_radscore_branch(Pipeline(sig)).transform(X)["rad_score"].to_numpy(float)


def contributions(pipeline, X: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Each term's contribution to the log-odds: coefficient × standardized value.

    Linear models (``radscore``: LASSO on z-scores; ``lr``, ``clinical``, ``nomogram`` and a logistic
    ``combined``: logistic regression on standardized inputs) give their own terms. For the other
    classifiers (SVM, RF, XGBoost, k-NN, naive Bayes, MLP) there is no additive decomposition: the terms of
    the rad-score (its LASSO features) are given instead. Returns ``(table rows × terms, basis)``.
    """
    final = pipeline.steps[-1][1]
    if isinstance(final, (LassoSelector, LogisticRegression)):
        head = Pipeline(pipeline.steps[:-1])
        Z = head.transform(X)
        if isinstance(final, LassoSelector):
            Z = final.transform(Z)
            coef, names = np.asarray(final.coef_, float), list(final.get_feature_names_out())
        else:
            coef = np.asarray(final.coef_, float).ravel()
            names = [str(n) for n in head.get_feature_names_out()]
        Z = np.asarray(Z, dtype=float)
        return pd.DataFrame(Z * coef, index=X.index, columns=names), "log-odds of the model"
    sig = fitted_signature_steps(pipeline)
    if sig is None and hasattr(pipeline.steps[0][1], "radiomics_"):
        sig = pipeline.steps[0][1].radiomics_.steps
    if sig is None:
        return pd.DataFrame(index=X.index), "none"
    lasso = sig[-1][1]
    selector = getattr(lasso, "selector_", lasso)  # RadScore wraps the fitted LassoSelector
    Z = selector.transform(Pipeline(sig[:-1]).transform(X))
    terms = np.asarray(Z, dtype=float) * np.asarray(selector.coef_, float)
    return pd.DataFrame(terms, index=X.index, columns=list(selector.get_feature_names_out())), "rad-score terms"


def _top_text(row: pd.Series, k: int = TOP_K) -> str:
    if row.empty:
        return ""
    order = np.argsort(-np.abs(row.to_numpy(float)), kind="mergesort")[:k]
    return "; ".join(f"{row.index[i]} {row.iloc[i]:+.3f}" for i in order)


def nomogram_points(pipeline, meta: dict, X: pd.DataFrame) -> pd.DataFrame | None:
    """``points_<variable>`` and ``total_points`` of each row on the nomogram scales (nomogram bundles only)."""
    if meta.get("model") != "nomogram" or "nomogram_inputs" not in meta:
        return None
    spec = nomogram_spec(pipeline, meta)
    nomo = spec["nomogram"]
    values = spec["values"](X)
    rows = []
    for vals in values:
        pts = {f"points_{v.name}": nomo.points(v, vals[v.name]) for v in nomo.variables}
        pts["total_points"] = float(sum(pts.values()))
        rows.append(pts)
    return pd.DataFrame(rows, index=X.index)


def predict_manifest(model_dir, manifest, out=None, features=None, cache_dir=None, progress: bool = False,
                     top_k: int = TOP_K) -> pd.DataFrame:
    """Score every image of ``manifest`` with the bundle in ``model_dir``; write ``out`` (CSV if it ends in
    ``.csv``, else TSV) atomically when given. See the module docstring for the columns."""
    pipeline, meta = load_model(model_dir)
    for msg in version_mismatches(meta):
        warnings.warn(msg, VersionWarning, stacklevel=2)
    inputs = model_inputs(pipeline, meta)
    cohort = validate_new_patients(manifest, inputs)
    feats = new_patient_features(cohort, meta, inputs, features=features, cache_dir=cache_dir, progress=progress)
    X = design_matrix(cohort, feats, inputs)
    return score(pipeline, meta, X, out=out, top_k=top_k)


def score(pipeline, meta: dict, X: pd.DataFrame, out=None, top_k: int = TOP_K) -> pd.DataFrame:
    """The output table for design matrix ``X`` (index ``patient_id, image_id``)."""
    p = pipeline.predict_proba(X)[:, 1]
    thr = float(meta["threshold"])
    contrib, basis = contributions(pipeline, X)
    table = pd.DataFrame({
        "patient_id": X.index.get_level_values("patient_id").astype(str),
        "image_id": X.index.get_level_values("image_id").astype(str),
        "task": meta.get("task"), "model": meta.get("model"), "probability": p, "rad_score": rad_scores(pipeline, X),
        "threshold": thr, "decision": np.where(p >= thr, "positive", "negative"),
        "top_contributions": [_top_text(contrib.iloc[i], top_k) for i in range(len(X))],
    })
    table.attrs["contribution_basis"] = basis
    pts = nomogram_points(pipeline, meta, X)
    if pts is not None:
        table = pd.concat([table, pts.reset_index(drop=True)], axis=1)
    if out is not None:
        write_predictions_table(table, out)
    return table


def write_predictions_table(table: pd.DataFrame, path) -> Path:
    """CSV (``.csv``) or TSV, full float precision (round-trip repr), written atomically."""
    path = Path(path)
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep=sep, index=False, na_rep="", lineterminator="\n")
    return path


def read_predictions_table(path) -> pd.DataFrame:
    path = Path(path)
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    return read_table(path, sep=sep, float_precision="round_trip")
