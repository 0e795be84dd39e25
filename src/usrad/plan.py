"""What a config asks of a cohort: every check, before anything runs, that needs the models or the split.

:mod:`usrad.config` checks a config against the schema and itself; here are the checks that need more: the
predicted models are bundles the config fits (:func:`usrad.settings.predict_model_problems`) and the search
spaces fit on toy data (:func:`config_problems`,
run with the config's own by :func:`validate_config` and :func:`load_config`, so every problem is reported at
once), and against a validated cohort table the split, each task's classes per part, the clinical predictors on
the training rows and the ICC filter's second segmentation (:func:`plan_problems`, :func:`check_plan`).
``usrad validate`` is :func:`validate_command`.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

from . import config as schema_config
from .cohort import load_cohort, summary
from .errors import Problem, UsradError
from .models import clinical_problems, search_space_problems
from .selection import ICCFilter
from .settings import modelling_settings, predict_model_problems
from .split import split_problems, task_labels

VALIDATE_PROBLEMS_EXIT = 2  # the CLI's exit status for a user's mistake


def search_space_config_problems(cfg: dict, source: str = "config") -> list[Problem]:
    """Every problem of ``modelling.search_spaces`` (:func:`usrad.models.search_space_problems`)."""
    spaces = cfg["modelling"]["search_spaces"]
    if not spaces:
        return []
    return search_space_problems(spaces, cfg["modelling"]["class_weight"], source)


#: The checks of a schema-valid config that need the models (:func:`usrad.config.validate_config`'s ``checks``).
CONFIG_CHECKS = (predict_model_problems, search_space_config_problems)


def config_problems(cfg: dict, source: str = "config") -> list[Problem]:
    """What a later rule would refuse that needs the models to know, from a schema-valid config with its
    defaults: predicted models the config does not fit, and search spaces the estimators refuse."""
    return [p for check in CONFIG_CHECKS for p in check(cfg, source)]


def validate_config(config: dict | None, schema: dict | None = None, source: str = "config",
                    text_values: bool = False) -> dict:
    """:func:`usrad.config.validate_config` with :func:`config_problems`: every problem at once."""
    return schema_config.validate_config(config, schema, source, text_values, checks=CONFIG_CHECKS)


def load_config(path: str | Path, schema: dict | None = None) -> dict:
    """:func:`usrad.config.load_config` with :func:`config_problems`: every problem at once."""
    return schema_config.load_config(path, schema, checks=CONFIG_CHECKS)


def copy_reader_problems(cohort_df: pd.DataFrame, split_df: pd.DataFrame | None, cfg: dict) -> list[Problem]:
    """The ICC filter's second segmentation (``modelling.reproducibility.copy_reader``) against the cohort: a
    second reader named that no row has, or too few training images with one for the filter in every CV fold."""
    ms = modelling_settings(cfg.get("modelling"))
    wanted = ms["reproducibility"].get("copy_reader", "auto")
    n_perturbed = int(((cfg.get("extraction") or {}).get("perturbed_masks")) or 0)
    has_r2 = cohort_df.get("mask_reader2", pd.Series("", index=cohort_df.index)).fillna("").astype(str) != ""
    key = "key 'modelling.reproducibility.copy_reader'"
    if wanted == "r2" and not has_r2.any():
        return [Problem(f"{key}: 'r2' (second reader), but no row of the manifest has a mask_reader2; use auto, a "
                        "perturbed mask (extraction.perturbed_masks) or null (no ICC filter)", column="mask_reader2")]
    resolved = "r2" if wanted == "r2" or (wanted == "auto" and has_r2.any()) else None
    if resolved is None or split_df is None:
        return []  # perturbed masks exist for every image; null/none: no filter
    k = int(ms["cv_folds"])
    need = math.ceil(ICCFilter().min_rows * k / (k - 1))
    train_ids = set(split_df.loc[split_df["split"] == "train", "image_id"].astype(str))
    problems = []
    for task in cfg.get("tasks") or []:
        rows = task_labels(cohort_df, task).dropna().index
        ids = cohort_df.loc[rows, "image_id"].astype(str)
        n = int((ids.isin(train_ids) & has_r2.loc[rows]).sum())
        if n < need:
            hint = "perturbed masks (extraction.perturbed_masks > 0) or null" if not n_perturbed else "'p1' or null"
            problems.append(Problem(
                f"{key}: task {task['name']!r} has only {n} training image(s) with a second reader's mask; the ICC "
                f"filter needs at least {need} ({ICCFilter().min_rows} in each of the {k} CV folds); use {hint}",
                column="mask_reader2"))
    return problems


def plan_problems(cohort_df: pd.DataFrame, cfg: dict) -> list[Problem]:
    """Everything a later rule (split, fit_task) would refuse that is known from the validated cohort table and
    config: the split and each task's classes in every part (:func:`usrad.split.split_problems`), the clinical
    predictors on each task's training rows (:func:`usrad.models.clinical_problems`) and the ICC filter's second
    segmentation (:func:`copy_reader_problems`). Called by ``usrad validate`` and rule ``validate_cohort``."""
    split_df, problems = split_problems(cohort_df, cfg)
    if split_df is not None:
        train_ids = set(split_df.loc[split_df["split"] == "train", "image_id"].astype(str))
        for task in cfg.get("tasks") or []:
            rows = task_labels(cohort_df, task).dropna().index
            ids = cohort_df.loc[rows, "image_id"].astype(str)
            problems += clinical_problems(cohort_df, ids[ids.isin(train_ids)], cfg.get("clinical") or {}, task["name"],
                                          source=None)
    problems += copy_reader_problems(cohort_df, split_df, cfg)
    return problems


def check_plan(cohort_df: pd.DataFrame, cfg: dict) -> None:
    """:func:`plan_problems` as one UsradError (every problem at once)."""
    problems = plan_problems(cohort_df, cfg)
    if problems:
        raise UsradError("The configuration cannot be run on this cohort", problems)


def validate_command(manifest, config_path=None) -> int:
    """``usrad validate MANIFEST [--config FILE]``: print a summary (and warnings) or every problem of the config
    and the manifest; return the exit code (0 valid, 2 problems). Reads only; writes nothing."""
    try:
        cfg = load_config(config_path) if config_path else validate_config({}, source="(defaults)")
        df = load_cohort(manifest, cfg)
        check_plan(df, cfg)  # what the split and the models would refuse later: the split, classes per part, ...
        print(summary(df, cfg))
    except UsradError as err:
        print(err.render(), file=sys.stderr)
        return VALIDATE_PROBLEMS_EXIT
    return 0
