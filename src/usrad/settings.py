"""Modelling settings: what a config's ``modelling`` and ``clinical`` sections ask of the models.

The schema (``usrad/schemas/config.schema.yaml``, read by :mod:`usrad.config`) is the one place the defaults and
the classifiers live: :func:`modelling_settings` fills a ``modelling`` section from it, :data:`CLASSIFIERS` is its
list of classifiers, :func:`model_names` the bundles a config fits (and :func:`predict_model_problems` the
predicted models it does not fit) and :func:`training_patients_per_class` what
the cross-validation needs of a task's training set. Pure config arithmetic: no estimator is made here.
"""
from __future__ import annotations

import copy
import math

from .config import load_schema, section_defaults
from .errors import Problem

#: The radiomics classifiers (the schema's ``modelling.classifiers`` enum), in display order.
CLASSIFIERS = tuple(load_schema()["properties"]["modelling"]["properties"]["classifiers"]["items"]["enum"])
#: Models that need at least one clinical predictor: not fitted when ``clinical.predictors`` is empty.
CLINICAL_MODELS = ("clinical", "nomogram", "combined")
#: Grouped inner folds of the Platt scaling of the SVM, naive Bayes and balanced models
#: (:func:`usrad.models.make_classifier`; fewer when a class has fewer training groups, at least 2).
SVM_CALIBRATION_FOLDS = 5
#: Keys of ``modelling`` that configure the internal validation (:mod:`usrad.validation`), not the models.
VALIDATION_KEYS = ("internal_validation", "bootstrap_resamples")
#: Keys of ``modelling`` that choose which rules run (the ablation, the internal validation), not how a model is
#: fitted or evaluated: the workflow leaves them out of fit_task's and evaluate_task's params.
WORKFLOW_SWITCHES = ("ablation", *VALIDATION_KEYS)
#: Keys of a ``tasks[]`` item that only word the reports (model cards, summary, nomogram pages): the workflow leaves
#: them out of the params of the rules that fit or split, so rewording a task refits nothing.
TASK_TEXT_KEYS = ("outcome", "outcome_short", "population", "decision", "harms", "positive_label", "negative_label")


def model_tasks(tasks: list) -> list[dict]:
    """The ``tasks`` items without their wording keys (:data:`TASK_TEXT_KEYS`)."""
    return [{k: v for k, v in t.items() if k not in TASK_TEXT_KEYS} for t in tasks]


def modelling_settings(modelling_cfg: dict | None) -> dict:
    """The schema's ``modelling`` defaults overlaid with the config's ``modelling`` section (nested one level;
    ``search_spaces`` is replaced, not merged)."""
    out = section_defaults("modelling")
    for key, value in (modelling_cfg or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "search_spaces":
            out[key].update(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def radiomics_only(cfg: dict | None) -> bool:
    """True when the config lists no clinical predictor: only the rad-score and the radiomics classifiers."""
    return not list(((cfg or {}).get("clinical") or {}).get("predictors") or [])


def model_names(cfg: dict | None) -> list[str]:
    """The bundles :func:`usrad.models.fit_task` writes for every task of ``cfg`` (a whole config), in display
    order: ``radscore``, the radiomics classifiers, then (unless radiomics only) ``clinical, nomogram, combined``."""
    ms = modelling_settings((cfg or {}).get("modelling"))
    names = ["radscore"] + [m for m in dict.fromkeys(ms["classifiers"])]
    return names if radiomics_only(cfg) else names + list(CLINICAL_MODELS)


def training_patients_per_class(cfg: dict) -> int:
    """Training patients each class of a task needs: ``modelling.cv_folds`` (the CV that tunes and compares
    the models), and when an SVM is fitted, enough in every fold's training part for its 5-fold Platt scaling."""
    ms = modelling_settings(cfg.get("modelling"))
    k = int(ms["cv_folds"])
    used = set(ms["classifiers"]) | (set() if radiomics_only(cfg) else set(ms["combined_classifiers"]))
    need = k
    if "svm" in used:
        need = max(need, math.ceil(SVM_CALIBRATION_FOLDS * k / (k - 1)))
    return need


def predict_model_problems(cfg: dict, source: str = "config") -> list[Problem]:
    """``predict_models`` must be bundles the run writes (checked when ``predict_manifest`` is set)."""
    if not cfg["predict_manifest"]:
        return []
    names = model_names(cfg)
    why = " (radiomics only: clinical.predictors is empty)" if radiomics_only(cfg) else ""
    return [Problem(f"key 'predict_models': {m!r} is not fitted by this configuration{why}; choose from "
                    f"{', '.join(names)}", file=source) for m in dict.fromkeys(cfg["predict_models"]) if m not in names]
