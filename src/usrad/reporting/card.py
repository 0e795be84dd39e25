"""Model cards, written by the ``model_card`` rule after the evaluation (the test performance with its CIs
comes from ``results/{task}/tables/table3_performance.tsv``) into ``results/{task}/card/``: one card per
model (``<model>.md`` and ``<model>.json``, :func:`model_card`, :func:`card_markdown`) and, for the nomogram
bundle, the printable nomogram and its browser page (:mod:`usrad.reporting.nomogram_page`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..atomic import write_text
from ..bundle import load_bundle, read_bundle_meta
from ..errors import Problem, UsradError
from ..models import read_predictions
from ..nomogram import nomogram_spec
from ..predict import model_inputs
from ..tables import read_table
from .nomogram_page import nomogram_formula, write_nomogram
from .wording import intended_use, task_wording


FORMAT = "usrad-model-card/1"
METRICS = ("sensitivity", "specificity", "accuracy", "ppv", "npv", "f1")
SPLIT_NAMES = {"cv": "training set, cross-validated (out-of-fold)", "train": "training set (apparent)",
               "test": "internal test set", "external": "external validation set"}


def _num(v):
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return v
    return None if not math.isfinite(x) else x


def _perf_rows(performance: pd.DataFrame, model: str) -> dict[str, dict]:
    out = {}
    for _, r in performance[performance["model"] == model].iterrows():
        d = {"n_images": int(r["n"]), "n_positive_images": int(r["n_pos"]),
             "n_patients": None if pd.isna(r.get("n_patients")) else int(r["n_patients"]),
             "auc": {"estimate": _num(r["auc"]), "ci_low": _num(r["auc_boot_low"]), "ci_high": _num(r["auc_boot_high"]),
                     "ci_method": "patient-level bootstrap percentile"},
             "threshold": _num(r["threshold"]),
             "confusion": {k: int(r[k]) for k in ("tp", "fp", "tn", "fn")}}
        for m in METRICS:
            d[m] = {"estimate": _num(r[m]), "ci_low": _num(r[f"{m}_low"]), "ci_high": _num(r[f"{m}_high"])}
        d["calibration"] = {
            "brier": _num(r["brier"]),
            "intercept": {"estimate": _num(r["cal_intercept"]), "ci_low": _num(r["cal_intercept_low"]),
                          "ci_high": _num(r["cal_intercept_high"])},
            "slope": {"estimate": _num(r["cal_slope"]), "ci_low": _num(r["cal_slope_low"]),
                      "ci_high": _num(r["cal_slope_high"])},
            "hosmer_lemeshow": {"statistic": _num(r["hl_statistic"]), "df": _num(r["hl_df"]), "p": _num(r["hl_p"])}}
        out[str(r["split"])] = d
    return out


def _training_cohort(predictions: pd.DataFrame | None, model: str, meta: dict) -> dict:
    out = {"n_patients": meta.get("n_train_patients"), "n_images": meta.get("n_train_images")}
    if predictions is not None:
        tr = predictions[(predictions["model"] == model) & (predictions["split"] == "train")]
        per_patient = tr.groupby(tr["patient_id"].astype(str))["y"].max()
        out.update(n_positive_patients=int((per_patient == 1).sum()), n_negative_patients=int((per_patient == 0).sum()),
                   prevalence=float((per_patient == 1).mean()) if len(per_patient) else None)
    return out


def _limitations(meta: dict, perf: dict, model: str, demo: bool, harms: str) -> list[str]:
    """The card's limitations: simulated data, internal validation only, image level, the threshold, the
    acquisition, miscalibration on a held-out set, and a combined model without a formula."""
    held_out = [s for s in ("test", "external") if s in perf]
    limitations = []
    if demo:
        limitations.append("SIMULATED DATA: trained and evaluated on usrad's simulated demo cohort. The numbers "
                           "describe the software, not a clinical model; do not use it for any patient.")
    if "external" not in perf:
        limitations.append("Internal validation only (a random patient-level split of one cohort); no external "
                           "validation on another centre or device.")
    limitations += [
        "Image-level model: a patient with several images gets one prediction per image.",
        f"The threshold ({float(meta['threshold']):.3f}) maximises Youden's J on the training data "
        f"({meta.get('threshold_basis', '')}); the clinically right threshold depends on the harms of {harms} "
        "(see the decision curve).",
        "Radiomics features depend on the ultrasound device, pixel spacing, image export and the lesion "
        "segmentation protocol; new images must be acquired and segmented as in training, and features are "
        "extracted with exactly the PyRadiomics parameters recorded in the bundle.",
    ]
    for split in held_out:
        sl = perf[split]["calibration"]["slope"]
        if sl["ci_low"] is not None and sl["ci_high"] is not None and not (sl["ci_low"] <= 1 <= sl["ci_high"]):
            limitations.append(f"Miscalibrated on the {SPLIT_NAMES[split]}: calibration slope "
                               f"{sl['estimate']:.2f} (95% CI {sl['ci_low']:.2f}–{sl['ci_high']:.2f}) excludes 1.")
    if model == "combined" and meta.get("classifier") != "logistic":
        limitations.append(f"A {meta.get('classifier')} classifier: no additive formula; the printable nomogram and "
                           "the browser page compute the `nomogram` model instead.")
    return limitations


def model_card(model_dir, performance: pd.DataFrame, predictions: pd.DataFrame | None = None, demo: bool = False,
               task: dict | None = None) -> dict:
    """The model card of one bundle as a JSON-able dict (see the module docstring); ``task`` is the task's
    config item, whose wording (:func:`usrad.reporting.wording.task_wording`) the intended use and limitations use."""
    meta = read_bundle_meta(model_dir)
    if meta.get("kind") == "radiomics":  # no clinical input: the metadata says all (loading costs ~0.4 s a model)
        pipeline, inputs = None, {"radiomics": list(meta.get("selected_features") or []), "clinical_used": [],
                                  "categorical": [], "impute": False}
    else:
        pipeline, meta = load_bundle(model_dir)
        inputs = model_inputs(pipeline, meta)
    model, wording = meta["model"], task_wording(task, meta["task"])
    perf = _perf_rows(performance, model)
    if not perf:
        raise UsradError(f"No performance rows for model {model!r}", [
            Problem("model missing from the performance table (re-run evaluate_task)", column="model")])
    limitations = _limitations(meta, perf, model, demo, wording["harms"])
    card = {
        "format": FORMAT,
        "model": {"task": meta["task"], "name": model, "kind": meta.get("kind"), "classifier": meta.get("classifier"),
                  "hyperparameters": meta.get("hyperparameters"), "cv_auc": _num(meta.get("cv_auc")),
                  "model_sha256": meta.get("model_sha256"), "seed": meta.get("seed")},
        "intended_use": intended_use(wording, bool(inputs["clinical_used"])),
        "simulated_data": bool(demo),
        "training_cohort": _training_cohort(predictions, model, meta),
        "preoperative_variables": {
            "clinical": list(inputs["clinical_used"]),
            "categorical": [c for c in inputs["clinical_used"] if c in inputs["categorical"]],
            "missing_values": "imputed (training median / most frequent level)" if inputs["impute"] else "refused",
            "radiomics": list(meta.get("selected_features") or []) if inputs["radiomics"] else [],
            "pyradiomics_params_sha256": meta.get("pyradiomics_params_sha256") if inputs["radiomics"] else None},
        # every model but the clinical one uses the signature, even one that kept no feature (a constant rad-score)
        "radscore_formula": meta.get("radscore_formula") if meta.get("kind") != "clinical" else None,
        "radscore_note": ("z(f) = (f − training mean) / training SD; means and SDs are in the bundle"
                          if inputs["radiomics"] else ("the signature kept no radiomics feature: the rad-score is "
                                                       "a constant" if meta.get("kind") != "clinical" else None)),
        "threshold": {"value": float(meta["threshold"]), "basis": meta.get("threshold_basis"),
                      "rule": "positive if probability ≥ threshold (Youden's J)"},
        "performance": perf,
        "reproducibility_filter": meta.get("reproducibility"),
        "limitations": limitations,
        "versions": meta.get("versions"),
        "how_to_score": f"usrad predict --model {Path(model_dir).as_posix()} --manifest new_patients.csv --out preds.csv",
    }
    if model == "nomogram" and "nomogram_inputs" in meta:
        spec = nomogram_spec(pipeline, meta)
        card["nomogram"] = {"formula": nomogram_formula(spec), "printable": ["nomogram.png", "nomogram.pdf"],
                            "browser_page": "nomogram.html"}
    return card


def _ci(d: dict, digits: int = 3, pct: bool = False) -> str:
    if d is None or d.get("estimate") is None:
        return "n/a"
    f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.{digits}f}")
    if d.get("ci_low") is None or d.get("ci_high") is None:
        return f(d["estimate"])
    sep = "–" if d["ci_low"] >= 0 else " to "  # "-0.72–-0.22" would be hard to read
    return f"{f(d['estimate'])} ({f(d['ci_low'])}{sep}{f(d['ci_high'])})"


def card_markdown(card: dict) -> str:
    """The model card as Markdown (everything in the JSON, for a human reader)."""
    m, tc, pv = card["model"], card["training_cohort"], card["preoperative_variables"]
    lines = [f"# Model card: `{m['name']}` — task `{m['task']}`", ""]
    if card["simulated_data"]:
        lines += ["> **SIMULATED DATA — not for clinical use.** This model was trained on usrad's simulated demo "
                  "cohort.", ""]
    lines += ["## Intended use", "", card["intended_use"], "",
              "## Model", "",
              f"- Kind: {m['kind']}; classifier: {m['classifier']}; hyperparameters: "
              f"`{json.dumps(m['hyperparameters'], sort_keys=True)}`",
              f"- Cross-validated AUC on the training set: {m['cv_auc']:.3f}" if m["cv_auc"] is not None else "- CV AUC: n/a",
              f"- Bundle SHA-256: `{m['model_sha256']}`; seed {m['seed']}", "",
              "## Training cohort", "",
              f"- {tc['n_patients']} patients, {tc['n_images']} images"
              + (f"; {tc['n_positive_patients']} positive / {tc['n_negative_patients']} negative patients "
                 f"(prevalence {100 * tc['prevalence']:.1f}%)" if tc.get("prevalence") is not None else ""), "",
              "## Preoperative inputs", "",
              "- Clinical: " + (", ".join(f"`{c}`" for c in pv["clinical"]) or "none")
              + (f" (categorical: {', '.join(pv['categorical'])})" if pv["categorical"] else "")
              + f"; missing values {pv['missing_values']}",
              "- Radiomics: " + (f"{len(pv['radiomics'])} PyRadiomics features of the lesion on B-mode ultrasound "
                                 f"(params SHA-256 `{pv['pyradiomics_params_sha256']}`)" if pv["radiomics"] else "none"),
              ""]
    if card.get("radscore_formula"):
        lines += ["## Rad-score", "", f"`{card['radscore_formula']}`", "", card["radscore_note"], ""]
    if card.get("nomogram"):
        lines += ["## Nomogram", "", f"`{card['nomogram']['formula']}`", "",
                  "Printable: `nomogram.png`, `nomogram.pdf`; in a browser (no server): `nomogram.html`.", ""]
    th = card["threshold"]
    lines += ["## Threshold", "", f"{th['value']:.4f} — {th['rule']}; chosen on {th['basis']}.", "",
              "## Performance (95% CIs)", "",
              "| split | patients | images (pos.) | AUC | sensitivity | specificity | accuracy | PPV | NPV |",
              "|---|---|---|---|---|---|---|---|---|"]
    for split, d in card["performance"].items():
        lines.append(f"| {SPLIT_NAMES.get(split, split)} | {d['n_patients'] if d['n_patients'] is not None else ''} | "
                     f"{d['n_images']} ({d['n_positive_images']}) | {_ci(d['auc'])} | "
                     + " | ".join(_ci(d[k]) for k in ("sensitivity", "specificity", "accuracy", "ppv", "npv")) + " |")
    lines += ["", "AUC: patient-level bootstrap percentile CI; proportions: Wilson CIs.", "",
              "## Calibration", "", "| split | Brier | calibration intercept | calibration slope | Hosmer–Lemeshow p |",
              "|---|---|---|---|---|"]
    for split, d in card["performance"].items():
        c = d["calibration"]
        hl = c["hosmer_lemeshow"]["p"]
        lines.append(f"| {SPLIT_NAMES.get(split, split)} | {c['brier']:.3f} | {_ci(c['intercept'], 2)} | "
                     f"{_ci(c['slope'], 2)} | {'n/a' if hl is None else f'{hl:.3f}'} |")
    lines += ["", "## Limitations", ""] + [f"- {x}" for x in card["limitations"]]
    lines += ["", "## Scoring new patients", "", f"`{card['how_to_score']}`", "",
              "## Versions", "", ", ".join(f"{k} {v}" for k, v in sorted((card["versions"] or {}).items())), ""]
    return "\n".join(lines)


def write_model_card(card: dict, out_md, out_json) -> None:
    write_text(out_json, json.dumps(card, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n")
    write_text(out_md, card_markdown(card))


def write_task_cards(task_dir, out_dir, models=None, demo: bool = False, task: dict | None = None) -> dict:
    """Cards of every bundle under ``task_dir/models`` (or ``models``) plus the nomogram files, in ``out_dir``,
    worded from ``task`` (the task's config item, :func:`usrad.reporting.wording.task_wording`).

    Reads ``task_dir/tables/table3_performance.tsv`` and ``task_dir/predictions.tsv``. Returns
    ``{name: path}`` of everything written.
    """
    task_dir, out_dir = Path(task_dir), Path(out_dir)
    perf_path = task_dir / "tables" / "table3_performance.tsv"
    try:
        performance = read_table(perf_path, text=("model", "split"))
    except FileNotFoundError:
        raise UsradError("The performance table is missing (run evaluate_task first)",
                         [Problem("file not found", file=str(perf_path))]) from None
    predictions = read_predictions(task_dir / "predictions.tsv")
    names = list(models) if models is not None else sorted(p.parent.name for p in (task_dir / "models").glob("*/bundle.json"))
    written = {}
    for name in names:
        card = model_card(task_dir / "models" / name, performance, predictions, demo=demo, task=task)
        write_model_card(card, out_dir / f"{name}.md", out_dir / f"{name}.json")
        written[f"{name}.md"], written[f"{name}.json"] = out_dir / f"{name}.md", out_dir / f"{name}.json"
    if "nomogram" in names:
        for k, p in write_nomogram(task_dir / "models" / "nomogram", out_dir, demo=demo, task=task).items():
            written[f"nomogram.{k}"] = p
    return written
