"""The design matrix of a task: the copy reader, the wide matrix of radiomics columns, their reproducibility copies and
the raw clinical columns (:func:`build_design`), the checks of the clinical predictors, one task's rows and matrix
(:func:`task_design`) and its unfitted radiomics signature (:func:`task_signature`)."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from ..config_checks import OUTCOME_COLUMNS
from ..errors import Problem, UsradError
from ..expr import columns as expression_columns  # every column a label/subset expression reads (backticked too)
from ..selection import signature_pipeline
from ..settings import modelling_settings
from ..split import task_labels
from .folds import cv_groups

log = logging.getLogger("usrad.models")


def pick_copy_reader(readers, wanted: str | None = "auto") -> str | None:
    readers = sorted(set(map(str, readers)))
    if wanted in (None, "none"):
        return None
    if wanted != "auto":
        if wanted not in readers:
            raise UsradError("Reproducibility copy not in the feature table", [Problem(
                f"modelling.reproducibility.copy_reader {wanted!r} not among the table's readers {readers}",
                column="reader")])
        return wanted
    if "r2" in readers:
        return "r2"
    perturbed = [r for r in readers if re.fullmatch(r"p\d+", r)]
    return perturbed[0] if perturbed else None


def build_design(features_df: pd.DataFrame, cohort_df: pd.DataFrame, image_ids, clinical_columns=(),
                 copy_reader: str | None = "r2", reference_reader: str = "r1", source: str = "feature table"):
    """Wide design matrix for ``image_ids`` (in that order), index ``(patient_id, image_id)``.

    Returns ``(X, feature_columns)``: reference-reader features, their ``@<copy_reader>`` copies (NaN where
    an image has no copy), then the raw clinical columns. Missing or non-finite reference features →
    UsradError naming patient and column.
    """
    id_cols = ["patient_id", "image_id", "reader"]
    feats = [c for c in features_df.columns if c not in id_cols]
    fd = features_df.copy()
    fd["image_id"] = fd["image_id"].astype(str)
    fd["patient_id"] = fd["patient_id"].astype(str)
    ref = fd[fd["reader"].astype(str) == reference_reader].set_index("image_id")
    image_ids = [str(i) for i in image_ids]
    problems = []
    missing = [i for i in image_ids if i not in ref.index]
    coh = cohort_df.assign(image_id=cohort_df["image_id"].astype(str),
                           patient_id=cohort_df["patient_id"].astype(str)).set_index("image_id")
    for i in missing[:50]:
        problems.append(Problem(f"image {i!r} has no {reference_reader} row", patient=coh.at[i, "patient_id"]
                                if i in coh.index else None, column="reader", file=source))
    if problems:
        raise UsradError(f"{len(missing)} image(s) missing from the {source}", problems)
    R = ref.loc[image_ids, feats].astype(float)
    bad = ~np.isfinite(R.to_numpy())
    if bad.any():
        rr, cc = np.nonzero(bad)
        for r, c in list(zip(rr, cc))[:50]:
            problems.append(Problem("feature value is missing or not finite",
                                    patient=str(ref.loc[image_ids[r], "patient_id"]), column=feats[c], file=source))
        raise UsradError(f"{int(bad.sum())} missing/non-finite feature value(s) in the {source}", problems)
    parts = [R]
    if copy_reader is not None:
        cp = fd[fd["reader"].astype(str) == copy_reader].set_index("image_id")
        C = cp.reindex(image_ids)[feats].astype(float)
        C.columns = [f"{f}@{copy_reader}" for f in feats]
        parts.append(C)
    clin_cols = list(clinical_columns)
    if clin_cols:
        parts.append(coh.loc[image_ids, clin_cols])
    X = pd.concat([p.reset_index(drop=True) for p in parts], axis=1)
    X.index = pd.MultiIndex.from_arrays([coh.loc[image_ids, "patient_id"].to_numpy(), image_ids],
                                        names=["patient_id", "image_id"])
    return X, list(R.columns) + (list(parts[1].columns) if copy_reader is not None else [])


def clinical_problems(cohort_df: pd.DataFrame, train_image_ids, clinical_cfg: dict, task_name: str,
                      source: str | None = "cohort table") -> list[Problem]:
    """What would stop the clinical models of a task on its training rows (``train_image_ids``): a predictor
    with no value there (``clinical.missing: impute`` has nothing to impute from), or no predictor with two
    different values (no clinical model can be fitted). Empty for a radiomics-only config."""
    predictors = [c for c in dict.fromkeys(clinical_cfg.get("predictors") or []) if c in cohort_df.columns]
    if not predictors:
        return []
    sub = cohort_df[cohort_df["image_id"].astype(str).isin(set(map(str, train_image_ids)))]
    problems, varying = [], []
    for c in predictors:
        values = sub[c].dropna()
        if values.empty:
            problems.append(Problem(
                f"task {task_name!r}: no training patient ({sub['patient_id'].nunique()}) has a value of this "
                "predictor, so there is nothing to learn or impute from (key 'clinical.missing'); fill it in or "
                "remove it from key 'clinical.predictors'", column=c, file=source))
        elif values.astype(str).nunique() > 1:
            varying.append(c)
    if not problems and not varying:
        problems.append(Problem(
            f"task {task_name!r}: every clinical predictor ({', '.join(predictors)}) has one single value in the "
            "training rows, so no clinical model can be fitted; change key 'clinical.predictors' (or set it to [] "
            "for the radiomics models only)", file=source))
    return problems


def _check_clinical(cohort_df, rows, task_cfg, clinical_cfg, source="cohort table", train_rows=None):
    """The task's clinical predictors and categorical columns; UsradError when they cannot be used.
    No predictor at all is fine: radiomics only (clinical, nomogram and combined are then not fitted)."""
    predictors = list(clinical_cfg.get("predictors", []))
    categorical = list(clinical_cfg.get("categorical", []))
    outcome = set(OUTCOME_COLUMNS) | set(expression_columns(task_cfg["label"])) | set(expression_columns(task_cfg.get("subset") or ""))
    problems = [Problem(f"key 'clinical.predictors': {c!r} is an outcome of task {task_cfg['name']!r}, not a "
                        "preoperative predictor", column=c) for c in predictors if c in outcome]
    problems += [Problem("clinical predictor (key 'clinical.predictors') is not a column of the cohort table",
                         column=c, file=source) for c in predictors if c not in cohort_df.columns]
    problems += [Problem("key 'clinical.categorical': column is not in clinical.predictors", column=c)
                 for c in categorical if c not in predictors]
    if problems:
        raise UsradError("Invalid clinical predictors", problems)
    if clinical_cfg.get("missing", "refuse") == "refuse":
        sub = cohort_df[cohort_df["image_id"].astype(str).isin(set(rows))]
        for c in predictors:
            for _, r in sub[sub[c].isna()].iterrows():
                problems.append(Problem("missing clinical value (set clinical.missing: impute to impute it)",
                                        patient=str(r["patient_id"]), column=c, file=source))
        if problems:
            raise UsradError(f"{len(problems)} missing clinical value(s)", problems)
    problems = clinical_problems(cohort_df, rows if train_rows is None else train_rows, clinical_cfg,
                                 task_cfg["name"], source)
    if problems:
        raise UsradError("The clinical predictors cannot be used", problems)
    return predictors, categorical


@dataclass
class TaskDesign:
    """One task's rows and design matrix (:func:`task_design`)."""

    cfg: dict  #: the modelling settings (:func:`usrad.settings.modelling_settings`)
    task: str  #: the task's name
    cohort: pd.DataFrame  #: the cohort table, ids as text
    rows: pd.DataFrame  #: the task's rows (cohort columns, ``label``, ``split``), sorted by patient and image
    predictors: list  #: clinical predictors (empty: radiomics only)
    categorical: list  #: the categorical ones among them
    impute: bool  #: ``clinical.missing: impute``
    rep: dict  #: ``modelling.reproducibility``
    copy_reader: str | None  #: the ICC filter's second segmentation (None: no filter)
    X: pd.DataFrame  #: design matrix of every row (:func:`build_design`; index level ``split_group`` if known)
    rad_cols: list  #: its radiomics columns (reference reader, then the ``@<copy>`` copies)
    y_all: np.ndarray  #: 0/1 label of every row
    split_all: np.ndarray  #: split of every row
    tr: np.ndarray  #: training rows (boolean mask)
    Xtr: pd.DataFrame  #: design matrix of the training rows
    ytr: np.ndarray  #: their labels
    groups_tr: np.ndarray | None  #: their CV groups (:func:`usrad.models.cv_groups`)


def task_design(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg) -> TaskDesign:
    """Rows, labels, split and design matrix of one task (shared by :func:`usrad.models.fit_task`, the ablation
    and the tests); UsradError when the task cannot be fitted (images missing from the split, unusable clinical
    predictors, too few training patients to cross-validate)."""
    cfg = modelling_settings(modelling_cfg)
    task = task_cfg["name"]
    cohort = cohort_df.copy()
    cohort["patient_id"] = cohort["patient_id"].astype(str)
    cohort["image_id"] = cohort["image_id"].astype(str)
    labels = task_labels(cohort, task_cfg)
    rows = cohort.assign(label=labels.to_numpy())
    rows = rows[rows["label"].notna()]
    sp = split_df.assign(image_id=split_df["image_id"].astype(str)).set_index("image_id")["split"]
    missing = rows[~rows["image_id"].isin(sp.index)]
    if len(missing):
        raise UsradError("Images missing from the split file (re-run the split)",
                         [Problem("image not in the split", patient=r.patient_id, column="image_id")
                          for r in missing.itertuples()][:50])
    rows = rows.assign(split=rows["image_id"].map(sp)).sort_values(["patient_id", "image_id"], kind="mergesort")
    predictors, categorical = _check_clinical(cohort, set(rows["image_id"]), task_cfg, clinical_cfg,
                                              train_rows=set(rows.loc[rows["split"] == "train", "image_id"]))
    impute = clinical_cfg.get("missing", "refuse") == "impute"

    readers = features_df["reader"].astype(str).unique()
    rep = cfg["reproducibility"]
    copy_reader = pick_copy_reader(readers, rep.get("copy_reader", "auto"))
    if copy_reader is None:
        log.warning("task %s: no second reader or perturbed-mask rows; the ICC filter is off", task)
    X, rad_cols = build_design(features_df, cohort, rows["image_id"], predictors, copy_reader)
    if "split_group" in split_df.columns:  # patients sharing an image: one group in every CV (index level)
        group_of = split_df.assign(image_id=split_df["image_id"].astype(str)).set_index("image_id")["split_group"]
        ids = X.index.get_level_values("image_id")
        X.index = pd.MultiIndex.from_arrays([X.index.get_level_values("patient_id"), ids,
                                             ids.map(group_of).astype(str)],
                                            names=["patient_id", "image_id", "split_group"])
    X = harmonize_levels(X, rows, cfg["harmonize"], task_cfg)
    y_all = rows["label"].astype(int).to_numpy()
    split_all = rows["split"].to_numpy()
    tr = split_all == "train"
    Xtr, ytr = X[tr], y_all[tr]
    patients_tr = Xtr.index.get_level_values("patient_id").to_numpy()
    groups_tr = cv_groups(Xtr)  # CV folds keep a patient's images together, and patients sharing an image too
    n_pat = pd.Series(ytr).groupby(patients_tr).max().value_counts()
    if min(n_pat.get(0, 0), n_pat.get(1, 0)) < cfg["cv_folds"]:
        raise UsradError(f"Task {task!r}: too few training patients to cross-validate", [Problem(
            f"training set has {n_pat.get(0, 0)} negative and {n_pat.get(1, 0)} positive patients; "
            f"modelling.cv_folds = {cfg['cv_folds']} needs at least that many of each", column="split")])
    return TaskDesign(cfg=cfg, task=task, cohort=cohort, rows=rows, predictors=predictors,
                           categorical=categorical, impute=impute, rep=rep, copy_reader=copy_reader, X=X,
                           rad_cols=rad_cols, y_all=y_all, split_all=split_all, tr=tr, Xtr=Xtr, ytr=ytr,
                           groups_tr=groups_tr)


def harmonize_levels(X: pd.DataFrame, rows: pd.DataFrame, harmonize: dict, task_cfg: dict | None = None) -> pd.DataFrame:
    """X with the batch column and protected covariates of ``modelling.harmonize`` (cohort columns of ``rows``,
    aligned with X) appended as index levels, read there by the signature's ComBat step; X itself when off.
    UsradError when a covariate is an outcome of the task (``task_cfg``; None: new patients, no outcome) or when a
    column is not in the cohort table."""
    if not harmonize.get("by"):
        return X
    cols = [harmonize["by"], *[c for c in harmonize.get("covariates") or [] if c != harmonize["by"]]]
    outcome = set() if task_cfg is None else set(OUTCOME_COLUMNS) | set(expression_columns(task_cfg["label"])) | set(
        expression_columns(task_cfg.get("subset") or ""))
    problems = [Problem(f"key 'modelling.harmonize.covariates': {c!r} is an outcome of task {task_cfg['name']!r}; "
                        "protecting it needs it for new patients too", column=c) for c in cols[1:] if c in outcome]
    problems += [Problem("key 'modelling.harmonize' names a column that is not in the cohort table", column=c,
                         file="cohort table") for c in cols if c not in rows.columns]
    if problems:
        raise UsradError("Invalid harmonisation settings", problems)
    levels = [X.index.get_level_values(n) for n in X.index.names]
    values = [rows[c].astype(str).to_numpy() if i == 0 else rows[c].to_numpy() for i, c in enumerate(cols)]
    X = X.copy()
    X.index = pd.MultiIndex.from_arrays(levels + values, names=list(X.index.names) + cols)
    return X


def task_signature(columns, cfg: dict, copy_reader, seed) -> Pipeline:
    """The unfitted radiomics signature on ``columns`` with the task's modelling settings."""
    rep, lasso = cfg["reproducibility"], cfg["lasso"]
    return signature_pipeline(
        columns, icc_threshold=rep["icc_threshold"] if copy_reader else None, icc_form=rep["icc_form"],
        copy_suffix=f"@{copy_reader}" if copy_reader else "@none",
        nzv_freq_cut=cfg["near_zero_variance"]["freq_cut"], nzv_unique_cut=cfg["near_zero_variance"]["unique_cut"],
        univariate_p=cfg["univariate"]["p_threshold"], univariate_min_features=cfg["univariate"]["min_features"],
        redundancy_threshold=cfg["redundancy"]["threshold"], mrmr_n_features=cfg["mrmr"]["n_features"],
        lasso_cv=lasso["cv_folds"], lasso_n_C=lasso["n_C"], lasso_one_se_rule=lasso["one_se_rule"],
        lasso_scoring=lasso["scoring"], class_weight=None, random_state=seed,  # the rad-score is a risk model
        harmonize=cfg.get("harmonize"))
