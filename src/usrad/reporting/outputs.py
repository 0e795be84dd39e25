"""What one task's evaluation writes: the figure stems and tables of :func:`usrad.reporting.evaluation.evaluate_task`
and its bootstrap size, for the workflow's rules to list as outputs.

Pure config arithmetic (it imports only :mod:`usrad.settings`), so that reading the Snakefile does not load
matplotlib, scikit-learn or XGBoost: every Snakemake parse, on the workstation and in every cluster job, reads it.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..settings import radiomics_only

#: Bootstrap resamples of every confidence interval of the evaluation (patient-level, seeded from the config seed).
N_BOOT = 2000

#: Figure stems written by ``evaluate_task`` under ``results/{task}/figures/`` (each ``.png`` + ``.pdf``).
TASK_FIGURES = ("roc", "forest", "calibration", "decision_curve", "radscore", "confusion", "icc", "lasso_cv",
                "lasso_path", "nomogram", "shap")

#: Tables written by ``evaluate_task`` under ``results/{task}/tables/`` (``.tsv``).
TASK_TABLES = ("table2_odds_ratios", "table3_performance", "table3_performance_formatted", "delong",
               "delong_formatted", "calibration", "calibration_curve", "roc_curve", "roc_band", "decision_curve",
               "radscore_by_class", "nomogram_points", "shap_importance", "evaluation_settings")

#: The people's copies of each paper table (:mod:`usrad.reporting.export`), next to its TSV.
EXPORT_FORMATS = ("md", "tex", "docx", "html")

#: Paper tables written by ``evaluate_task`` for people as ``results/{task}/tables/<stem>.{md,tex,docx,html}``:
#: stem → the formatted TSV of :data:`TASK_TABLES` they are made from.
TASK_EXPORTS = {"table2_odds_ratios": "table2_odds_ratios", "table3_performance": "table3_performance_formatted",
                "delong": "delong_formatted"}

#: Outputs of the clinical models only: absent when the config lists no clinical predictor (radiomics only).
CLINICAL_FIGURES = ("nomogram",)
CLINICAL_TABLES = ("table2_odds_ratios", "nomogram_points")


def task_figures(cfg: Mapping | None = None) -> tuple[str, ...]:
    """The figure stems ``evaluate_task`` writes for ``cfg`` (all of :data:`TASK_FIGURES`; without the
    nomogram when ``cfg`` is radiomics only)."""
    drop = CLINICAL_FIGURES if cfg is not None and radiomics_only(cfg) else ()
    return tuple(f for f in TASK_FIGURES if f not in drop)


def task_tables(cfg: Mapping | None = None) -> tuple[str, ...]:
    """The tables ``evaluate_task`` writes for ``cfg`` (all of :data:`TASK_TABLES`; without Table 2 and the
    nomogram points when ``cfg`` is radiomics only)."""
    drop = CLINICAL_TABLES if cfg is not None and radiomics_only(cfg) else ()
    return tuple(t for t in TASK_TABLES if t not in drop)


def task_exports(cfg: Mapping | None = None) -> tuple[str, ...]:
    """The stems of :data:`TASK_EXPORTS` ``evaluate_task`` writes for ``cfg`` (no Table 2 when radiomics only)."""
    tables = task_tables(cfg)
    return tuple(stem for stem, source in TASK_EXPORTS.items() if source in tables)
