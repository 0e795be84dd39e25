"""The stages of fitting one task: its plan (design matrix, settings, unfitted templates), the nested CV (fold
signatures, grid CV, the combined model's type, the untuned models), the final fits on all training rows, and
Table 2's clinical odds ratios. Nothing here writes a file (:mod:`usrad.models.outputs` does)."""
from __future__ import annotations

import copy
import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ..clinical import clinical_branch, clinical_logit_tables
from .choice import fold_aucs, mean_score
from .design import TaskDesign, task_design, task_signature
from .folds import cv_groups
from .signatures import FoldSignatures, classifier_folds, cv_signatures
from .stacking import RadiomicsClinicalFeatures, fitted_radscore_branch, radscore_branch
from .tuning import CombinedChoice, TunedModel, combined_choice, fixed_cv, nested_oof, run_grid, tuned_models
from .zoo import make_classifier, search_space, unpenalised_logistic

log = logging.getLogger("usrad.models")

CV_BASIS = {"fixed": "CV (nothing tuned)", "single": "CV (one configuration, nothing tuned)",
            "nested": "nested CV (the choice made again by inner CV inside every outer fold)"}


@dataclass
class TaskPlan:
    """What is fitted for one task (:func:`task_plan`): its design, settings and unfitted templates."""

    design: TaskDesign
    cfg: dict  #: the modelling settings
    seed: int
    k: int  #: outer (and inner) CV folds
    cw: str | None  #: ``modelling.class_weight``
    groups: np.ndarray  #: CV groups of the training rows
    clinical_on: bool  #: False: radiomics only (no clinical, nomogram or combined model)
    signature: Pipeline  #: the unfitted radiomics signature
    enc_template: Pipeline  #: the clinical encoder (all predictors)
    clin_multi: Pipeline  #: the nomogram's clinical branch (multivariable selection)
    clinical_template: Pipeline  #: the unfitted clinical model


@dataclass
class NestedCV:
    """The nested CV of one task (:func:`nested_cv`)."""

    signatures: FoldSignatures
    tune: dict  #: out-of-fold predictions of every grid point over the outer folds
    tuned: dict[tuple[str, str], TunedModel]
    comb: CombinedChoice
    fixed: dict  #: out-of-fold predictions of the untuned models


def task_plan(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg, seed) -> TaskPlan:
    """Stage 1, the design: the task's design matrix, its settings and its unfitted models."""
    design = task_design(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg)
    cfg = design.cfg
    p_clin = cfg["clinical_p_threshold"]
    enc_template = clinical_branch(design.predictors, design.categorical, design.impute)
    clin_multi = clinical_branch(design.predictors, design.categorical, design.impute, p_clin, "multivariable")
    clinical_template = Pipeline([("features", clinical_branch(design.predictors, design.categorical, design.impute,
                                                               p_clin, "univariable")),
                                  ("scale", StandardScaler()), ("clf", unpenalised_logistic(seed))])
    return TaskPlan(design=design, cfg=cfg, seed=seed, k=int(cfg["cv_folds"]), cw=cfg["class_weight"],
                    groups=cv_groups(design.Xtr), clinical_on=bool(design.predictors),
                    signature=task_signature(design.rad_cols, cfg, design.copy_reader, seed),
                    enc_template=enc_template, clin_multi=clin_multi, clinical_template=clinical_template)


def fold_signatures(plan: TaskPlan, parallel) -> FoldSignatures:
    """Stage 2, the outer- and inner-fold signatures (and the final one)."""
    design, clock = plan.design, time.perf_counter()
    sigs = cv_signatures(plan.signature, plan.enc_template if plan.clinical_on else None, design.Xtr, design.ytr,
                         plan.groups, plan.k, plan.seed, parallel)
    n_sig = 1 + len(sigs.outer) + sum(map(len, sigs.inner))
    log.info("task %s: %d signatures fitted (final, outer and inner folds) in %.1f s", design.task, n_sig,
             time.perf_counter() - clock)
    return sigs


def nested_cv(plan: TaskPlan, sigs: FoldSignatures, parallel) -> NestedCV:
    """Stages 3-4, grid CV and the untuned models: every grid point in every outer fold; inside every outer fold
    the same choice by inner CV; the combined model's type; the clinical and nomogram models per outer fold."""
    design, cfg = plan.design, plan.cfg
    spaces = {("radiomics", m): search_space(m, cfg["search_spaces"]) for m in cfg["classifiers"]}
    types = list(cfg["combined_classifiers"]) if plan.clinical_on else []
    spaces.update({("combined", m): search_space(m, cfg["search_spaces"]) for m in types})
    n_combined = sum(len(spaces[("combined", m)]) for m in types)
    inner_needed = {key: (len(grid) > 1 if key[0] == "radiomics" else n_combined > 1) for key, grid in spaces.items()}
    clock = time.perf_counter()
    folds = classifier_folds(sigs, design.ytr, plan.groups, plan.clinical_on)
    tune, inner = run_grid(spaces, sigs, folds, design.ytr, inner_needed, plan.seed, plan.cw, parallel)
    tuned = tuned_models(spaces, tune, inner, sigs, design.ytr, inner_needed)
    comb = (combined_choice(tuned, types, sigs, cfg["model_choice"]) if plan.clinical_on
            else CombinedChoice(final={"chosen": None}, picks=[], per_fold=[]))
    fixed = fixed_cv(sigs, design.Xtr, design.ytr, plan.clinical_template if plan.clinical_on else None,
                     plan.clin_multi, plan.seed, parallel)
    log.info("task %s: %d classifier fits (outer and inner folds) in %.1f s", design.task,
             sum(len(sigs.outer) * len(g) * (1 + (len(sigs.inner[0]) if inner_needed[key] else 0))
                 for key, g in spaces.items()), time.perf_counter() - clock)
    return NestedCV(signatures=sigs, tune=tune, tuned=tuned, comb=comb, fixed=fixed)


def model_entry(pipeline, oof, plan: TaskPlan, cv: NestedCV, kind: str, classifier: str, params=None,
                basis="fixed", **extra) -> dict:
    """A fitted model with its out-of-fold predictions and their CV AUC (the honest one: nested if tuned)."""
    aucs = fold_aucs(plan.design.ytr, oof, cv.signatures.outer)
    return dict(pipeline=pipeline, oof=oof, fold_aucs=aucs, cv_auc=mean_score(aucs), kind=kind, classifier=classifier,
                params=dict(params or {}), meta=dict(cv_auc_basis=CV_BASIS[basis], **extra))


def _tuning_meta(model: TunedModel, fold_choices: list[dict]) -> dict:
    tuned = model.fold_inner[0] is not None
    return dict(basis="nested" if tuned else "single", cv_auc_tuning=mean_score(model.tune_aucs[model.i_final]),
                nested_fold_choices=fold_choices if tuned else [])


def radiomics_models(plan: TaskPlan, cv: NestedCV) -> dict[str, dict]:
    """Stage 5a: ``radscore`` and the radiomics classifiers fitted on all training rows (the final signature's
    selected features; a signature that kept none gives every classifier the rad-score model: the training
    prevalence)."""
    sig, ytr = cv.signatures.final, plan.design.ytr
    Ztr = sig.transform(plan.design.Xtr)
    models = {"radscore": model_entry(copy.deepcopy(sig), cv.fixed["radscore"], plan, cv, "radiomics", "lasso")}
    for m in plan.cfg["classifiers"]:
        tuned_model = cv.tuned[("radiomics", m)]
        params = tuned_model.grid[tuned_model.i_final]
        if Ztr.shape[1] == 0:
            log.warning("task %s: the signature kept no radiomics feature; %s predicts the training prevalence",
                        plan.design.task, m)
            pipe, name, params = copy.deepcopy(sig), "prior", {}
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf = make_classifier(m, params, ytr, plan.cw, plan.seed, plan.groups).fit(Ztr, ytr)
            pipe, name = Pipeline(copy.deepcopy(sig.steps) + [("clf", clf)]), m
        oof = nested_oof(cv.signatures, cv.tune, "radiomics", [(m, i) for i in tuned_model.fold_i])
        models[m] = model_entry(pipe, oof, plan, cv, "radiomics", name, params,
                                **_tuning_meta(tuned_model, [{"hyperparameters": tuned_model.grid[i]}
                                                             for i in tuned_model.fold_i]))
    return models


def _second_stage(plan: TaskPlan, cv: NestedCV, clinical: Pipeline, clf) -> Pipeline:
    """``RadiomicsClinicalFeatures → scaler → clf`` fitted on all training rows with their cross-fitted
    rad-score (``stage2_radscore``: the outer folds, exactly the folds of
    ``RadiomicsClinicalFeatures.fit_transform``, so this is the state ``Pipeline.fit`` gives); new rows get the
    final signature's rad-score."""
    Xtr, ytr, sigs = plan.design.Xtr, plan.design.ytr, cv.signatures
    feats = RadiomicsClinicalFeatures.from_fitted_radiomics(
        radscore_branch(plan.signature), fitted_radscore_branch(sigs.final), clinical, Xtr, ytr, cv=plan.k,
        random_state=plan.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        head = Pipeline([("scale", StandardScaler()), ("clf", clf)]).fit(
            feats.features_frame(Xtr, sigs.stage2_radscore, feats.clinical_.transform(Xtr)), ytr)
    return Pipeline([("features", feats)] + head.steps)


def clinical_models(plan: TaskPlan, cv: NestedCV) -> dict[str, dict]:
    """Stage 5b: ``clinical``, ``nomogram`` and ``combined`` fitted on all training rows."""
    Xtr, ytr = plan.design.Xtr, plan.design.ytr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clinical = clone(plan.clinical_template).fit(Xtr, ytr)
    models = {"clinical": model_entry(clinical, cv.fixed["clinical"], plan, cv, "clinical", "logistic"),
              "nomogram": model_entry(_second_stage(plan, cv, plan.clin_multi, unpenalised_logistic(plan.seed)),
                                      cv.fixed["nomogram"], plan, cv, "combined", "logistic")}
    final = cv.comb.final
    m = final["chosen"]
    tuned_model = cv.tuned[("combined", m)]
    params = tuned_model.grid[tuned_model.i_final]
    pipe = _second_stage(plan, cv, plan.enc_template, make_classifier(m, params, ytr, plan.cw, plan.seed, plan.groups))
    oof = nested_oof(cv.signatures, cv.tune, "combined", cv.comb.picks)
    candidates = {c: {"mean_auc": json_number(r.mean_auc), "se_auc": json_number(r.se_auc),
                      "hyperparameters": cv.tuned[("combined", c)].grid[cv.tuned[("combined", c)].i_final]}
                  for c, r in zip(final["table"].candidate, final["table"].itertuples())}
    choice = dict(rule=final["rule"], chosen=m, best=final["best"], reason=final["reason"], candidates=candidates)
    fold_choices = [{"classifier": c, "hyperparameters": cv.tuned[("combined", c)].grid[i]} for c, i in cv.comb.picks]
    meta = _tuning_meta(tuned_model, fold_choices)
    if cv.comb.per_fold:
        meta["basis"] = "nested"
        meta["nested_fold_choices"] = fold_choices
    models["combined"] = model_entry(pipe, oof, plan, cv, "combined", m, params, model_choice=choice, **meta)
    return models


def clinical_tables(plan: TaskPlan) -> tuple[pd.DataFrame | None, pd.DataFrame | None, list, list]:
    """Table 2: univariable and multivariable odds ratios of the clinical predictors on the training rows, the
    selected and the independent predictors (``None, None, [], []`` for radiomics only)."""
    if not plan.clinical_on:
        return None, None, [], []
    design = plan.design
    Xc = clone(plan.enc_template).fit(design.Xtr, design.ytr).transform(design.Xtr)
    return clinical_logit_tables(Xc, design.ytr, plan.cfg["clinical_p_threshold"])


def json_number(v):
    """A number for bundle.json: NaN/inf become null (bundle.json holds finite numbers only)."""
    return float(v) if v is not None and np.isfinite(v) else None
