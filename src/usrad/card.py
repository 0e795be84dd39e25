"""Model cards (Markdown + JSON) for every bundle of a task, and the nomogram a surgeon can read.

Written by the ``model_card`` rule after the evaluation (the test performance with its CIs comes from
``results/{task}/tables/table3_performance.tsv``) into ``results/{task}/card/``:

* ``{model}.md`` / ``{model}.json`` for every bundle: intended use, training cohort, preoperative inputs,
  rad-score formula, threshold, performance (AUC with bootstrap CI, sensitivity, specificity … with CIs) on
  every split, calibration, limitations (simulated data where it is) and library versions.
* ``nomogram.png`` / ``nomogram.pdf``: the printable nomogram of the ``nomogram`` model (logistic regression
  on rad-score + independent clinical predictors; the paper's "combined model with nomogram").
* ``nomogram.html``: one self-contained page (no server, no network) that computes the same model's
  probability from the rad-score (from ``usrad predict``) and the clinical values, with the same arithmetic
  as scikit-learn (one-hot encoding, standardisation with the training mean/SD, logistic). Inputs can be
  given in the URL query (``nomogram.html?rad_score=0.4&us_size_mm=22``); the probability is written with
  17 significant digits to ``data-probability`` of ``#probability``.

The ``combined`` model may be an SVM or XGBoost that a browser page cannot reproduce exactly; the page and
the printable nomogram are the ``nomogram`` model's only.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import pandas as pd

from . import plots
from .atomic import write_text
from .errors import Problem, UsradError
from .nomogram import nomogram_spec
from .tables import read_table

FORMAT = "usrad-model-card/1"
TASK_LABELS = {"metastasis": "axillary lymph node metastasis (N+ vs N0)",
               "burden": "high axillary nodal burden (≥ 3 vs 1–2 positive nodes, among N+ patients)"}
METRICS = ("sensitivity", "specificity", "accuracy", "ppv", "npv", "f1")
SPLIT_NAMES = {"cv": "training set, cross-validated (out-of-fold)", "train": "training set (apparent)",
               "test": "internal test set", "external": "external validation set"}


# --------------------------------------------------------------------------------------------------
# the nomogram model in numbers
# --------------------------------------------------------------------------------------------------
def nomogram_formula(spec: dict, digits: int = 4) -> str:
    """``logit p = b0 + b1·rad_score + …`` in raw units (categorical: one term per non-reference level)."""
    terms = [f"{spec['js']['raw_intercept']:.{digits}f}"]
    for v in spec["js"]["variables"]:
        if v["kind"] == "categorical":
            terms += [f"{b:+.{digits}f}·[{v['name']} = {lv}]" for lv, b in v["raw"].items() if lv != v["reference"]]
        else:
            terms.append(f"{v['raw']:+.{digits}f}·{v['name']}")
    return "logit p = " + " ".join(terms)


# --------------------------------------------------------------------------------------------------
# printable nomogram and the browser page
# --------------------------------------------------------------------------------------------------
def write_nomogram(model_dir, out_dir, demo: bool = False) -> dict[str, Path]:
    """``nomogram.png``, ``nomogram.pdf`` and ``nomogram.html`` of the nomogram bundle in ``model_dir``."""
    from .bundle import load_bundle
    from .report import _thin_ticks, spaced_probabilities

    pipeline, meta = load_bundle(model_dir)
    spec = nomogram_spec(pipeline, meta)
    _thin_ticks(spec["model"].intercept, spec["model"].variables)
    out_dir = Path(out_dir)
    task = meta.get("task", "")
    outcome = {"metastasis": "Risk of ALN metastasis", "burden": "Risk of high ALN burden"}.get(task, f"Risk ({task})")
    title = (f"Nomogram: {TASK_LABELS.get(task, task)}"
             + (" — SIMULATED DATA, not for clinical use" if demo else ""))
    plots.nomogram_figure(spec["model"].intercept, spec["model"].variables, out_dir / "nomogram",
                          outcome_label=outcome, probabilities=spaced_probabilities(spec["model"]), title=title)
    png = out_dir / "nomogram.png"
    page = nomogram_html(spec, meta, demo=demo, png=png)
    html_path = write_text(out_dir / "nomogram.html", page)
    return {"png": png, "pdf": out_dir / "nomogram.pdf", "html": html_path}


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 56rem; margin: 1.5rem auto; padding: 0 1rem; color: #222; }}
h1 {{ font-size: 1.4rem; }}
.warn {{ background: #fde2e1; border: 1px solid #d55e00; padding: .6rem .8rem; font-weight: bold; }}
.note {{ color: #555; font-size: .92rem; }}
form {{ display: grid; grid-template-columns: 16rem 12rem 6rem; gap: .45rem .8rem; align-items: center; margin: 1rem 0; }}
form .pts {{ text-align: right; font-variant-numeric: tabular-nums; color: #555; }}
input, select {{ font-size: 1rem; padding: .15rem .3rem; }}
.result {{ font-size: 1.25rem; border-top: 2px solid #222; padding-top: .6rem; }}
#probability {{ font-weight: bold; font-size: 1.6rem; }}
.err {{ color: #b00; }}
img {{ max-width: 100%; border: 1px solid #ccc; margin-top: 1rem; }}
code {{ background: #f3f3f3; padding: 0 .2rem; }}
@media print {{ form input, form select {{ border: none; }} .noprint {{ display: none; }} }}
</style>
</head>
<body>
<h1>{title}</h1>
{warning}
<p class="note">This page computes the <b>nomogram</b> model of task <code>{task}</code>: logistic regression on
the rad-score and the independent clinical predictors, exactly as <code>usrad predict --model
{model_path}</code> does (same coefficients, one-hot encoding and standardisation; model SHA-256
<code>{sha}</code>). The rad-score comes from the ultrasound image and cannot be computed in a browser: take it
from the <code>rad_score</code> column of <code>usrad predict</code>. The <code>combined</code> model (best
cross-validated classifier on all clinical predictors) is not on this page.</p>
<form id="inputs" onsubmit="return false">
{rows}
<span><b>Total points</b></span><span></span><span class="pts" id="total-points"></span>
</form>
<div class="result">Probability: <output id="probability" data-probability="">–</output>
<div id="decision"></div><div id="error" class="err"></div></div>
<p class="note">Decision threshold {threshold_text} (Youden's J, chosen on the training data); a probability at or
above it is reported as <i>positive</i>. Points: each predictor on the classic 0–{max_points:g} scale (the
predictor with the widest effect spans {max_points:g} points); the probability is computed from the
exact model, not read off the chart.{impute_note}</p>
<p class="note">On paper (<code>nomogram.pdf</code>, below): for each predictor, go straight up from its value to
the <i>Points</i> scale; add the points; go straight down from the sum on <i>Total points</i> to the risk scale.</p>
<img class="print" alt="Printable nomogram" src="data:image/png;base64,{png}">
<script>
"use strict";
const MODEL = {model_json};
function el(id) {{ return document.getElementById(id); }}
function readInputs() {{
  const vals = {{}}, errors = [];
  for (const v of MODEL.variables) {{
    let s = el("in-" + v.name).value.trim();
    if (s === "") {{
      if (MODEL.impute && v.kind !== "radscore") {{ s = String(v.fill); }}
      else {{ errors.push(v.label + ": value missing"); continue; }}
    }}
    if (v.kind === "categorical") {{
      if (!v.levels.includes(s)) {{ errors.push(v.label + ": " + s + " is not one of " + v.levels.join(", ")); continue; }}
      vals[v.name] = s;
    }} else {{
      const x = Number(s);
      if (!Number.isFinite(x)) {{ errors.push(v.label + ": " + s + " is not a number"); continue; }}
      if (v.kind === "binary" && x !== 0 && x !== 1) {{ errors.push(v.label + ": use 0 (no) or 1 (yes)"); continue; }}
      vals[v.name] = x;
    }}
  }}
  return [vals, errors];
}}
function probability(vals) {{
  // scikit-learn's arithmetic: encode, z = (x - mean) / scale, lp = sum(coef * z) + intercept, p = 1 / (1 + exp(-lp))
  let lp = 0;
  MODEL.columns.forEach((c, j) => {{
    const m = c.match(/^(.*)\\[(.*)\\]$/);
    const x = (m && !(c in vals)) ? (vals[m[1]] === m[2] ? 1 : 0) : vals[c];
    lp += MODEL.coef[j] * ((x - MODEL.mean[j]) / MODEL.scale[j]);
  }});
  lp += MODEL.intercept;
  return 1 / (1 + Math.exp(-lp));
}}
function points(v, value) {{
  const term = v.kind === "categorical" ? v.raw[value] : (v.kind === "binary" ? v.raw * value : v.raw * value);
  return (term - v.min_term) / MODEL.points_scale;
}}
function update() {{
  const [vals, errors] = readInputs();
  const out = el("probability");
  el("error").textContent = errors.join("; ");
  if (errors.length) {{
    out.textContent = "–"; out.dataset.probability = ""; el("decision").textContent = "";
    for (const v of MODEL.variables) el("pts-" + v.name).textContent = "";
    el("total-points").textContent = "";
    return;
  }}
  const p = probability(vals);
  out.dataset.probability = p.toPrecision(17);
  out.textContent = (100 * p).toFixed(1) + " %";
  el("decision").textContent = p >= MODEL.threshold ? "At or above the threshold: positive" : "Below the threshold: negative";
  let total = 0;
  for (const v of MODEL.variables) {{
    const pt = points(v, vals[v.name]);
    total += pt;
    el("pts-" + v.name).textContent = pt.toFixed(1) + " pts";
  }}
  el("total-points").textContent = total.toFixed(1) + " pts";
  el("total-points").dataset.points = total.toPrecision(17);
}}
const query = new URLSearchParams(window.location.search);
for (const v of MODEL.variables) {{
  const input = el("in-" + v.name);
  if (query.has(v.name)) input.value = query.get(v.name);
  input.addEventListener("input", update);
  input.addEventListener("change", update);
}}
update();
</script>
</body>
</html>
"""


def _input_row(v: dict) -> str:
    name, label = html.escape(v["name"]), html.escape(v["label"])
    if v["kind"] == "categorical":
        opts = "".join(f'<option value="{html.escape(lv)}"{" selected" if lv == v["reference"] else ""}>'
                       f'{html.escape(lv)}</option>' for lv in v["levels"])
        field = f'<select id="in-{name}" name="{name}">{opts}</select>'
    elif v["kind"] == "binary":
        field = (f'<select id="in-{name}" name="{name}"><option value="0" selected>No (0)</option>'
                 f'<option value="1">Yes (1)</option></select>')
    else:
        lo, hi = v["range"]
        hint = f"training range {lo:.4g} to {hi:.4g}"
        field = f'<input id="in-{name}" name="{name}" type="text" inputmode="decimal" title="{hint}" placeholder="{hint}">'
    return f'<label for="in-{name}">{label}</label>{field}<span class="pts" id="pts-{name}"></span>'


def nomogram_html(spec: dict, meta: dict, demo: bool = False, png=None, model_path: str | None = None) -> str:
    """The self-contained HTML page of the nomogram model (see the module docstring)."""
    js = spec["js"]
    task = str(meta.get("task", ""))
    title = f"Nomogram — {TASK_LABELS.get(task, task)}"
    warning = ('<p class="warn">Built from SIMULATED data (usrad demo cohort): for trying the software only, '
               "not for any clinical decision.</p>") if demo else ""
    png_b64 = base64.b64encode(Path(png).read_bytes()).decode("ascii") if png is not None else ""
    impute_note = (" An empty clinical field is filled with the training median / most frequent level."
                   if js["impute"] else "")
    return _PAGE.format(
        title=html.escape(title), warning=warning, task=html.escape(task),
        model_path=html.escape(model_path or f"results/{task}/models/nomogram"), sha=html.escape(str(js["model_sha256"])),
        rows="\n".join(_input_row(v) for v in js["variables"]), threshold_text=f"{js['threshold']:.3f}",
        max_points=js["max_points"], impute_note=impute_note, png=png_b64,
        model_json=json.dumps(js, sort_keys=True, allow_nan=False).replace("</", "<\\/"))


# --------------------------------------------------------------------------------------------------
# model card
# --------------------------------------------------------------------------------------------------
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


def model_card(model_dir, performance: pd.DataFrame, predictions: pd.DataFrame | None = None, demo: bool = False,
               task_description: str | None = None) -> dict:
    """The model card of one bundle as a JSON-able dict (see the module docstring)."""
    from .bundle import load_bundle, read_bundle_meta
    from .predict import model_inputs

    meta = read_bundle_meta(model_dir)
    if meta.get("kind") == "radiomics":  # no clinical input: the metadata says all (loading costs ~0.4 s a model)
        pipeline, inputs = None, {"radiomics": list(meta.get("selected_features") or []), "clinical_used": [],
                                  "categorical": [], "impute": False}
    else:
        pipeline, meta = load_bundle(model_dir)
        inputs = model_inputs(pipeline, meta)
    model, task = meta["model"], meta["task"]
    perf = _perf_rows(performance, model)
    if not perf:
        raise UsradError(f"No performance rows for model {model!r}", [
            Problem("model missing from the performance table (re-run evaluate_task)", column="model")])
    outcome = TASK_LABELS.get(task) or f"the positive class of task {task!r}" + (
        f" ({task_description})" if task_description else "")
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
        f"({meta.get('threshold_basis', '')}); the clinically right threshold depends on the harms of a missed "
        "metastasis versus an unnecessary axillary dissection (see the decision curve).",
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
    card = {
        "format": FORMAT,
        "model": {"task": task, "name": model, "kind": meta.get("kind"), "classifier": meta.get("classifier"),
                  "hyperparameters": meta.get("hyperparameters"), "cv_auc": _num(meta.get("cv_auc")),
                  "model_sha256": meta.get("model_sha256"), "seed": meta.get("seed")},
        "intended_use": (f"Research use: preoperative estimate of the probability of {outcome} in women with "
                         "breast cancer, from a B-mode ultrasound image with a lesion mask"
                         + (" and the preoperative clinical variables listed" if inputs["clinical_used"] else "")
                         + ", to support (not replace) the decision on axillary surgery. Only for patients like "
                           "those of the training cohort."),
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


def write_task_cards(task_dir, out_dir, models=None, demo: bool = False, task_description: str | None = None) -> dict:
    """Cards of every bundle under ``task_dir/models`` (or ``models``) plus the nomogram files, in ``out_dir``.

    Reads ``task_dir/tables/table3_performance.tsv`` and ``task_dir/predictions.tsv``. Returns
    ``{name: path}`` of everything written.
    """
    from .models import read_predictions

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
        card = model_card(task_dir / "models" / name, performance, predictions, demo=demo,
                          task_description=task_description)
        write_model_card(card, out_dir / f"{name}.md", out_dir / f"{name}.json")
        written[f"{name}.md"], written[f"{name}.json"] = out_dir / f"{name}.md", out_dir / f"{name}.json"
    if "nomogram" in names:
        for k, p in write_nomogram(task_dir / "models" / "nomogram", out_dir, demo=demo).items():
            written[f"nomogram.{k}"] = p
    return written
