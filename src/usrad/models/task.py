"""Fitting one task, stage by stage (:func:`fit_task`, the rule script's entry point): design, outer-fold
signatures, grid CV and the untuned models, final fits, model choice, predictions, files."""
from __future__ import annotations

import pandas as pd
from joblib import Parallel
from threadpoolctl import threadpool_limits

from .choice import choose_model
from .fitting import clinical_models, clinical_tables, fold_signatures, nested_cv, radiomics_models, task_plan
from .outputs import write_task_files
from .predictions import prediction_table


def fit_task(features_df: pd.DataFrame, cohort_df: pd.DataFrame, split_df: pd.DataFrame, task_cfg: dict,
             modelling_cfg: dict | None, clinical_cfg: dict, seed: int, n_jobs: int = 1, out_dir=None,
             feature_meta: dict | None = None) -> pd.DataFrame:
    """Fit every model of one task on its training rows; write bundles and tables; return the predictions.

    Predictions: ``patient_id, image_id, task, split, model, y, probability, rad_score`` (``y``: the 0/1
    outcome, so every metric is computed from this one table) with split ∈
    {``cv`` (out-of-fold on training rows; for tuned models nested: the choice made inside every outer fold),
    ``train`` (final model, apparent), ``test``, ``external``}. Files under ``out_dir`` (if given):
    ``models/{name}/`` bundles, ``models/cv_results.tsv``, ``models/model_choice.tsv``,
    ``tables/univariable.tsv``, ``tables/multivariable.tsv``,
    ``selection/{selected_features,icc,lasso_path,steps}.tsv``, ``selection/radscore_formula.txt``.
    """
    # BLAS threads on these small matrices only thrash (7× slower measured) and can change the last bits
    # of sums; parallelism comes from joblib's n_jobs (results are identical for any n_jobs).
    with threadpool_limits(limits=1):
        return _fit_task_stages(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg, seed, n_jobs,
                                out_dir, feature_meta)


def _fit_task_stages(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg, seed, n_jobs, out_dir,
                     feature_meta) -> pd.DataFrame:
    plan = task_plan(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg, seed)
    parallel = Parallel(n_jobs=n_jobs, prefer="processes")
    cv = nested_cv(plan, fold_signatures(plan, parallel), parallel)
    models = radiomics_models(plan, cv)
    if plan.clinical_on:
        models.update(clinical_models(plan, cv))
    radiomics = ["radscore"] + list(dict.fromkeys(plan.cfg["classifiers"]))
    radiomics_best = choose_model(radiomics, {n: models[n]["fold_aucs"] for n in radiomics}, plan.cfg["model_choice"])
    predictions, thresholds = prediction_table(plan, cv, models)
    if out_dir is not None:
        write_task_files(out_dir, plan, cv, models, thresholds, radiomics_best, clinical_tables(plan), feature_meta)
    return predictions
