"""Checks of a config that the schema cannot express: task expressions, predictors, split, ICC copy reader, harmonisation.

:func:`expression_problems` runs on the raw config (a config is data: a task expression is parsed, never run);
:func:`semantic_problems` and :func:`run_problems` on the schema-valid config with its defaults. Each returns every
problem it finds, each naming its key (:func:`usrad.config.validate_config` reports them together).
"""
from __future__ import annotations

import re

from .errors import Problem
from .expr import ExpressionError, columns, parse, shown

MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's random_state limit


def expression_problems(cfg: dict, source: str) -> list[Problem]:
    """Every task label/subset that is not a valid task expression (:mod:`usrad.expr`; docs/manifest.md, "Task
    expressions"), each naming ``tasks[i].label``/``subset``. Runs on the raw config: values of the wrong type are
    left to the schema check; whether the columns exist is checked against the manifest (usrad.cohort)."""
    tasks = cfg.get("tasks")
    problems = []
    for i, task in enumerate(tasks if isinstance(tasks, list) else []):
        if not isinstance(task, dict):
            continue
        for key in ("label", "subset"):
            text = task.get(key)
            if not isinstance(text, str) or (key == "subset" and not text.strip()):
                continue  # not text: the schema says so; an empty subset is no subset
            try:
                parse(text)
            except ExpressionError as err:
                name = f" (task {task['name']!r})" if isinstance(task.get("name"), str) else ""
                problems.append(Problem(f"key 'tasks[{i}].{key}'{name}: expression {shown(text)} is refused: {err.reason}",
                                        file=source))
    return problems


OUTCOME_COLUMNS = {"n_positive_nodes"}


def semantic_problems(cfg: dict, source: str) -> list[Problem]:
    problems = []
    if cfg.get("seed", 0) > MAX_SEED:
        problems.append(Problem(f"key 'seed': {cfg['seed']} is larger than the maximum {MAX_SEED}", file=source))
    results_dir = cfg.get("results_dir")
    if isinstance(results_dir, str) and any(part in (".", "..") for part in results_dir.split("/")):
        problems.append(Problem(f"key 'results_dir': {results_dir!r} contains '.' or '..'; outputs must stay under "
                                "results/ (e.g. results/busbra)", file=source))
    names = [t["name"] for t in cfg["tasks"]]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(f"key 'tasks': task name {name!r} is used more than once", file=source))
    if cfg["cohort"]["busbra"]["use"] and cfg["cohort"]["manifest"]:
        problems.append(Problem("key 'cohort.busbra.use': true needs cohort.manifest null (the BUS-BRA manifest is written "
                                "by the workflow)", file=source))
    clin = cfg["clinical"]
    for col in clin["predictors"]:
        if col in OUTCOME_COLUMNS:
            problems.append(Problem(f"key 'clinical.predictors': {col!r} is an outcome (known only after surgery), not a preoperative predictor", file=source))
    for col in clin["categorical"]:
        if col not in clin["predictors"]:
            problems.append(Problem(f"key 'clinical.categorical': {col!r} is not in clinical.predictors", file=source))
    return problems


#: Manifest columns that identify an image or locate its files: never predictors.
ID_COLUMNS = ("patient_id", "image_id", "image", "mask", "mask_reader2", "pixel_spacing_mm")


def run_problems(cfg: dict, source: str = "config") -> list[Problem]:
    """What a later rule would refuse, known from the (schema-valid) config alone: predictors, split and ICC
    copy reader, harmonisation. The checks that need the models (predicted models, search spaces) are
    :func:`usrad.plan.config_problems`, those that need the cohort :func:`usrad.plan.plan_problems`."""
    return (_predictor_problems(cfg, source) + _split_config_problems(cfg, source)
            + _copy_reader_config_problems(cfg, source) + _harmonize_config_problems(cfg, source))


def region_type_problems(regions: dict | None, enabled) -> list[str]:
    """Why ``extraction.regions`` (with rings) cannot be extracted with PyRadiomics parameters enabling the image
    types ``enabled``: each listed ``image_types`` entry they do not enable."""
    regions = regions or {}
    if not regions.get("rings_mm"):
        return []
    enabled = [str(t) for t in enabled]
    return [f"key 'extraction.regions.image_types': {t!r} is not an image type of the PyRadiomics parameters "
            f"(imageType: {', '.join(enabled) or 'none'})" for t in regions.get("image_types", ["Original"])
            if t not in enabled]


def roi_size_ok(n_pixels: int, minimum) -> bool:
    """Whether PyRadiomics extracts a ROI of ``n_pixels`` pixels under the params' ``minimumROISize`` ``minimum``:
    it refuses ``n_pixels <= minimum`` (checkMask), so a ROI needs more; without a minimum, at least one pixel.
    The one rule for the intake's lesion check and the peritumoral regions' (:mod:`usrad.manifest.images`,
    :mod:`usrad.extract.regions`)."""
    return n_pixels > int(minimum or 0)


def _twice(values: list) -> list:
    return sorted({v for v in values if values.count(v) > 1}, key=str)


def _predictor_problems(cfg: dict, source: str) -> list[Problem]:
    """Predictors listed twice, id/path columns, columns a task's label/subset uses (leakage), the split column."""
    def names_in(text) -> set[str]:
        try:
            return set(columns(text))
        except ExpressionError:  # reported by _expression_problems
            return set()

    clin = cfg["clinical"]
    preds = list(clin["predictors"])
    problems = [Problem(f"key 'clinical.predictors': {c!r} is listed twice", file=source) for c in _twice(preds)]
    problems += [Problem(f"key 'clinical.categorical': {c!r} is listed twice", file=source)
                 for c in _twice(list(clin["categorical"]))]
    problems += [Problem(f"key 'clinical.predictors': {c!r} identifies an image or its files, it is not a clinical "
                         "variable", file=source) for c in dict.fromkeys(preds) if c in ID_COLUMNS]
    for task in cfg["tasks"]:
        for part in ("label", "subset"):
            used = names_in(task.get(part)) - OUTCOME_COLUMNS  # outcomes: reported by _semantic_problems
            problems += [Problem(f"key 'clinical.predictors': {c!r} is used by the {part} of task {task['name']!r}; "
                                 "a task's own outcome as a predictor is leakage", file=source)
                         for c in dict.fromkeys(preds) if c in used]
    by = cfg["split"]["by_column"]
    if by is not None and by in preds:
        problems.append(Problem(f"key 'split.by_column': {by!r} is also a clinical predictor, but its external values "
                                "are never seen in training; remove it from clinical.predictors", file=source))
    return problems


def _split_config_problems(cfg: dict, source: str) -> list[Problem]:
    sp = cfg["split"]
    problems = []
    if sp["by_column"] is None:
        if not sp["test_size"]:
            problems.append(Problem("key 'split.test_size': 0 leaves no test set; give a fraction such as 0.25, or "
                                    "hold out an external set with split.by_column and split.external_values", file=source))
        if sp["external_values"]:
            problems.append(Problem("key 'split.external_values': set split.by_column (the column these values are "
                                    "in), or leave external_values empty", file=source))
    elif not sp["external_values"]:
        problems.append(Problem(f"key 'split.external_values' is empty: name the values of {sp['by_column']!r} that form "
                                "the external set", file=source))
    problems += [Problem(f"key 'split.external_values': {v!r} is listed twice", file=source)
                 for v in _twice(list(sp["external_values"]))]
    return problems


def _copy_reader_config_problems(cfg: dict, source: str) -> list[Problem]:
    """``modelling.reproducibility.copy_reader`` must name a segmentation the feature table will have."""
    wanted = cfg["modelling"]["reproducibility"]["copy_reader"]
    n = cfg["extraction"]["perturbed_masks"]
    key = "key 'modelling.reproducibility.copy_reader'"
    if wanted in (None, "auto", "none", "r2"):
        return []
    if wanted == "r1":
        return [Problem(f"{key}: 'r1' is the reference segmentation itself; use r2, p1 … or auto", file=source)]
    m = re.fullmatch(r"p([1-9][0-9]*)", str(wanted))
    if m and int(m.group(1)) <= n:
        return []
    if m:
        return [Problem(f"{key}: {wanted!r} needs extraction.perturbed_masks >= {m.group(1)} (it is {n})", file=source)]
    perturbed = [f"p{i}" for i in range(1, n + 1)]
    return [Problem(f"{key}: {wanted!r} is not a segmentation of the feature table; choose auto, r2"
                    f"{', ' + ', '.join(perturbed) if perturbed else ''} or null", file=source)]


def _harmonize_config_problems(cfg: dict, source: str) -> list[Problem]:
    """``modelling.harmonize``: its batch column and covariates are neither outcomes nor a task's label/subset
    columns (ComBat would carry the outcome into the features), the batch is not also a covariate, and a batch
    that is the external split's column is not refused for every external row."""
    hz = cfg["modelling"]["harmonize"]
    by, key = hz["by"], "key 'modelling.harmonize"
    if by is None:
        return []
    outcome = set(OUTCOME_COLUMNS)
    for task in cfg["tasks"]:
        for part in ("label", "subset"):
            try:
                outcome |= set(columns(task.get(part) or ""))
            except ExpressionError:  # reported by expression_problems
                pass
    problems = [Problem(f"{key}.{k}': {c!r} is an outcome or used by a task's label/subset; harmonising by it "
                        "would carry the outcome into the features", file=source)
                for k, cols in (("by", [by]), ("covariates", hz["covariates"])) for c in cols if c in outcome]
    if by in hz["covariates"]:
        problems.append(Problem(f"{key}.covariates': {by!r} is the batch column (modelling.harmonize.by) itself; a "
                                "covariate is protected, the batch is removed", file=source))
    if by == cfg["split"]["by_column"] and hz["unseen"] == "refuse":
        problems.append(Problem(f"{key}.by': {by!r} is also split.by_column, so no external row's batch is seen in "
                                "training and every one would be refused; set modelling.harmonize.unseen: identity, "
                                "or harmonise by another column", file=source))
    return problems


__all__ = ["MAX_SEED", "OUTCOME_COLUMNS", "ID_COLUMNS", "expression_problems", "semantic_problems", "run_problems",
           "region_type_problems", "roi_size_ok"]
