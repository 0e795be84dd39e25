"""What a finished run knows for the reporting checklists (:func:`run_facts`): short texts, each with the results
files it is read from (through the summary's readers, :func:`usrad.reporting.sources.resolve_source`), and whether
the quality criterion it answers is met (:class:`Fact`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..tables import read_table
from .sources import fmt_value, resolve_source, settings_value
from .style import CONTROL_LABELS


@dataclass
class Fact:
    """One thing the run knows: a short text, the files (relative to the working directory) it comes from, and
    ``met`` = False when the run shows that the criterion is not met (e.g. no external test set)."""

    value: str
    sources: list[str] = field(default_factory=list)
    met: bool = True


def _bundle(root: Path, results: str, task: str, names=("combined", "radscore")) -> tuple[str, dict]:
    for name in names:
        path = f"{results}/{task}/models/{name}/bundle.json"
        if (root / path).exists():
            return path, json.loads((root / path).read_text())
    return "", {}


def extraction_facts(root: Path, results: str) -> dict[str, Fact]:
    """Software, parameters, pre-processing, discretisation, filters and feature counts (feature-table metadata)."""
    feat = f"{results}/features/features.parquet"
    versions = resolve_source(root, feat, "meta:/versions")
    setting = resolve_source(root, feat, "params:/setting") or {}
    image_types = resolve_source(root, feat, "params:/imageType") or {}
    counts = resolve_source(root, feat, "meta:/feature_counts")
    sha = resolve_source(root, feat, "meta:/params_sha256")
    soft = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    bins = (f"fixed bin width {fmt_value(setting['binWidth'], 'g')}" if "binWidth" in setting
            else f"fixed bin count {setting.get('binCount')}")
    spacing = setting.get("resampledPixelSpacing")
    filters = ", ".join(image_types) + (f"; LoG sigma {', '.join(fmt_value(s, 'g') for s in setting['sigma'])} mm"
                                        if "LoG" in image_types and setting.get("sigma") else "")
    by_class = ", ".join(f"{k} {v}" for k, v in counts["by_class"].items())
    if counts.get("by_region"):  # peritumoral rings: the lesion's and each ring's features (README)
        by_class += "; by region: " + ", ".join(f"{k} {v}" for k, v in counts["by_region"].items())
    return {
        "software": Fact(f"extraction: {soft}", [feat]),
        "params": Fact(f"PyRadiomics parameter file (SHA-256 {sha[:12]}) stored in the feature table; settings it "
                       "does not list are PyRadiomics defaults", [feat]),
        "preprocessing": Fact(f"2D images; normalize {setting.get('normalize')}, voxelArrayShift "
                              f"{setting.get('voxelArrayShift')}, minimumROISize {setting.get('minimumROISize')}, "
                              f"force2D {setting.get('force2D')}", [feat]),
        "resampling": Fact("no resampling (native pixel spacing)" if spacing is None else
                           f"resampled to {spacing} mm ({setting.get('interpolator')})", [feat]),
        "discretisation": Fact(bins, [feat]),
        "filters": Fact(f"image types {filters}", [feat]),
        "feature_classes": Fact(f"{counts['total']} features per image ({by_class})", [feat]),
    }


def _task_facts(root: Path, results: str, task: str) -> dict[str, str]:
    """One task's numbers for the modelling items, as texts."""
    steps = f"{results}/{task}/selection/steps.tsv"
    perf = f"{results}/{task}/tables/table3_performance.tsv"
    st = read_table(root / steps, all_text=True)
    pf = read_table(root / perf, all_text=True)
    head = "combined" if "combined" in set(pf["model"]) else "radscore"
    n_sel = int(float(st["n_features_after"].iloc[-1]))
    tr = pf[(pf["model"] == "radscore") & (pf["split"] == "train")].iloc[0]
    events = int(float(tr["n_pos"]))

    def perf_text(split):
        loc = f"model={head};split={split}"
        a, lo, hi, se, sp = (fmt_value(resolve_source(root, perf, f"col={c};{loc}"), f) for c, f in (
            ("auc", ".3f"), ("auc_boot_low", ".3f"), ("auc_boot_high", ".3f"), ("sensitivity", "%"),
            ("specificity", "%")))
        return f"{split} AUC {a} ({lo}–{hi}), sensitivity {se}, specificity {sp}"
    splits = [s for s in ("train", "test", "external") if s in set(pf["split"])]
    return {"head": head, "chain": " → ".join(f"{s} {int(float(n))}" for s, n in zip(st["step"], st["n_features_after"])),
            "epv": f"{n_sel} selected features, {events} training events in {int(float(tr['n_patients']))} patients "
                   f"({events / max(n_sel, 1):.0f} events per feature)",
            "perf": f"{head}: " + "; ".join(perf_text(s) for s in splits),
            "events": "; ".join(f"{s} n {int(float(r['n']))}, events {int(float(r['n_pos']))}"
                                for s, r in pf[pf["model"] == head].set_index("split").iterrows())}


def missing_data_fact(root: Path, results: str, settings: str) -> Fact:
    """How many clinical values the cohort table lacks (per predictor) and what the run did with them; image features
    are never missing (a failed extraction stops the run naming the patient and file)."""
    cohort = f"{results}/cohort/cohort.tsv"
    kv = read_table(root / settings, all_text=True).set_index("key")["value"]  # older runs lack the two keys
    predictors = [p for p in kv.get("clinical_predictors", "").split(",") if p]
    table = read_table(root / cohort, all_text=True) if (root / cohort).exists() else pd.DataFrame()
    counts = {p: int((table[p].str.strip() == "").sum()) for p in predictors if p in table.columns}
    rule = kv.get("clinical_missing", "refuse")
    what = {"refuse": "a missing value is refused when the manifest is validated (no patient dropped silently)",
            "impute": "imputed (median / most frequent level) inside the pipeline, fitted on training rows only"}
    amount = (f"{sum(counts.values())} missing clinical values in {len(table)} images"
              + (f" ({', '.join(f'{p} {n}' for p, n in counts.items() if n)})" if any(counts.values()) else "")
              if counts else "no clinical predictors")
    return Fact(f"{amount}; clinical.missing: {rule}: {what.get(rule, rule)}; image features: none missing (an "
                "image whose extraction fails stops the run, naming the patient and file)", [settings, cohort])


def modelling_facts(root: Path, results: str, tasks) -> dict[str, Fact]:
    """Robustness, selection, sample size, split, tuning, metrics, calibration, comparisons, availability."""
    settings = f"{results}/{tasks[0]}/tables/evaluation_settings.tsv"
    counts = f"{results}/report/cohort_counts.tsv"

    def s(key):
        return settings_value(root / settings, key)
    per = {t: _task_facts(root, results, t) for t in tasks}
    files = {k: [f"{results}/{t}/{k}" for t in tasks] for k in (
        "selection/steps.tsv", "tables/table3_performance.tsv", "tables/calibration.tsv", "tables/delong.tsv",
        "figures/decision_curve.png", "tables/shap_importance.tsv", "models/model_choice.tsv")}

    def joined(key):
        return "; ".join(f"{t}: {per[t][key]}" for t in tasks)
    ct = read_table(root / counts, all_text=True)
    ct = ct[ct["task"] == tasks[0]].set_index("split")
    bundle_path, bundle = _bundle(root, results, tasks[0])
    facts = {
        "icc": Fact(f"{s('icc_form')} ≥ {s('icc_threshold')} ({s('icc_source')}), inside every CV fold", [settings])
        if s("icc_threshold") else Fact("no second reading: ICC filter off", [settings], met=False),
        "redundancy": Fact(f"near-zero variance, Mann–Whitney P < {s('univariate_p')}, Spearman |rho| > "
                           f"{s('redundancy_threshold')}, LASSO; {joined('chain')}", [settings, *files["selection/steps.tsv"]]),
        "sample_size": Fact(joined("epv"), [*files["selection/steps.tsv"], *files["tables/table3_performance.tsv"]]),
        "split": Fact(f"patient-level, stratified by outcome, test fraction {s('test_size')}: training "
                      f"{ct.loc['train', 'patients']} / test {ct.loc['test', 'patients']} patients",
                      [counts, settings, f"{results}/split/split.tsv"]),
        "leakage": Fact(f"every selection step and the tuning refitted inside each of the {s('cv_folds')} "
                        "patient-grouped CV folds; test set used once", [settings]),
        "tuning": Fact(f"grid search on {s('tuning_score')}; model choice by the {s('model_choice')} rule",
                       [settings, *files["models/model_choice.tsv"]]),
        "class_balance": Fact(f"training: {ct.loc['train', 'positive']} positive / {ct.loc['train', 'negative']} "
                              f"negative; class_weight {s('class_weight')} (probabilities at the training prevalence)",
                              [counts, settings]),
        "models": Fact(f"classifiers {s('classifiers')}; combined classifiers {s('combined_classifiers')}; "
                       f"headline model {per[tasks[0]]['head']}", [settings, bundle_path] if bundle_path else [settings]),
        "metrics": Fact(joined("perf"), files["tables/table3_performance.tsv"]),
        "events": Fact(joined("events"), files["tables/table3_performance.tsv"]),
        "uncertainty": Fact(f"{fmt_value(s('ci_level'), '%')} CIs: {s('auc_ci')}; {s('proportion_ci')}; "
                            f"{s('n_boot')} resamples", [settings]),
        "tests": Fact(f"{s('auc_comparison')}", files["tables/delong.tsv"]),
        "calibration": Fact(f"intercept, slope (CIs {s('calibration_ci')}), Brier, Hosmer–Lemeshow, "
                            f"{s('calibration_curve')}", files["tables/calibration.tsv"]),
        "decision": Fact("decision curves (net benefit, treat all / treat none)", files["figures/decision_curve.png"]),
        "simple": Fact("rad-score (LASSO logistic regression) against every classifier, DeLong",
                       files["tables/table3_performance.tsv"] + files["tables/delong.tsv"]),
        "threshold": Fact(f"probability; Youden threshold from {s('threshold_basis')}", [settings]),
        "internal_test": Fact("independent held-out test set (same source)", [counts]),
        "external": Fact(f"external set of {ct.loc['external', 'patients']} patients", [counts])
        if "external" in ct.index else Fact("no external test set in this run", [counts], met=False),
        "interpretability": Fact("SHAP importance of the best classifier", files["tables/shap_importance.tsv"]),
        "missing_data": missing_data_fact(root, results, settings),
        "single_set": Fact("one imaging set: B-mode ultrasound images, no multi-parametric input", [f"{results}/cohort/cohort.tsv"]),
    }
    if bundle.get("clinical_selected"):
        facts["clinical"] = Fact(f"combined (rad-score + {', '.join(bundle['clinical_selected'])}) vs clinical "
                                 "model, DeLong", files["tables/delong.tsv"])
    if bundle_path:
        facts["scaling"] = Fact("z-scores fitted on the training rows of each fold, inside the pipeline", [bundle_path])
        facts["software_models"] = Fact("modelling: " + ", ".join(f"{k} {v}" for k, v in sorted(
            bundle.get("versions", {}).items())), [bundle_path])
    controls = [f"{results}/{t}/tables/negative_controls.tsv" for t in tasks]
    if all((root / p).exists() for p in controls):
        facts["negative_controls"] = Fact(_controls_text(root, tasks, controls), controls)
    facts["model_files"] = Fact("model bundles (model file + bundle.json with SHA-256 manifest)",
                                [f"{results}/{t}/models" for t in tasks])
    for key, rel in (("workflow", "report/figures/workflow.png"), ("flow", "report/figures/flow.png"),
                     ("table1", "report/table1.tsv"), ("feature_dictionary", "report/feature_dictionary.tsv")):
        facts[key] = Fact(rel.rsplit("/", 1)[-1], [f"{results}/{rel}"])
    return {k: f for k, f in facts.items() if all((root / p).exists() for p in f.sources)}


def _controls_text(root: Path, tasks, paths) -> str:
    """The negative controls' test AUCs of the all-feature rad-score, per task (README, "Negative controls")."""
    parts = []
    for task, path in zip(tasks, paths):
        t = read_table(root / path, text=("task", "control"))
        t = t[(t["feature_class"] == "all") & (t["split"] == "test")]
        parts.append(f"{task}: " + ", ".join(f"{CONTROL_LABELS.get(c, c)} {a:.3f}" for c, a in zip(t["control"], t["auc"])))
    return ("negative controls through the identical pipeline, rad-score test AUC (a signature that survives "
            "scrambled images measures size, position or marks): " + "; ".join(parts))


def run_facts(root, results: str, tasks) -> dict[str, Fact]:
    """Every fact of a finished run under ``root/results`` (facts whose files are missing are left out)."""
    root = Path(root)
    return {**extraction_facts(root, results), **modelling_facts(root, results, tasks)}
