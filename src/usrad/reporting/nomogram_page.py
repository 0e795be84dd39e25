"""The model card's printable nomogram and browser page: :func:`write_nomogram` writes ``nomogram.png``,
``nomogram.pdf`` and ``nomogram.html`` (:func:`nomogram_html`: the page computes the nomogram model exactly as
``usrad predict`` does, from :func:`usrad.nomogram.nomogram_spec`); :func:`nomogram_formula` its formula.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path


from ..atomic import write_text
from ..bundle import load_bundle
from ..nomogram import nomogram_spec
from .nomogram_figure import nomogram_figure, spaced_probabilities, thin_ticks
from .wording import risk_label, task_wording


def nomogram_formula(spec: dict, digits: int = 4) -> str:
    """``logit p = b0 + b1·rad_score + …`` in raw units (categorical: one term per non-reference level)."""
    terms = [f"{spec['js']['raw_intercept']:.{digits}f}"]
    for v in spec["js"]["variables"]:
        if v["kind"] == "categorical":
            terms += [f"{b:+.{digits}f}·[{v['name']} = {lv}]" for lv, b in v["raw"].items() if lv != v["reference"]]
        else:
            terms.append(f"{v['raw']:+.{digits}f}·{v['name']}")
    return "logit p = " + " ".join(terms)


def write_nomogram(model_dir, out_dir, demo: bool = False, task: dict | None = None) -> dict[str, Path]:
    """``nomogram.png``, ``nomogram.pdf`` and ``nomogram.html`` of the nomogram bundle in ``model_dir``, worded
    from ``task`` (the task's config item, :func:`usrad.reporting.wording.task_wording`)."""
    pipeline, meta = load_bundle(model_dir)
    spec = nomogram_spec(pipeline, meta)
    thin_ticks(spec["model"].intercept, spec["model"].variables)
    out_dir = Path(out_dir)
    wording = task_wording(task, meta.get("task", ""))
    title = f"Nomogram: {wording['outcome']}" + (" — SIMULATED DATA, not for clinical use" if demo else "")
    nomogram_figure(spec["model"].intercept, spec["model"].variables, out_dir / "nomogram",
                    outcome_label=risk_label(wording), probabilities=spaced_probabilities(spec["model"]), title=title)
    png = out_dir / "nomogram.png"
    page = nomogram_html(spec, meta, demo=demo, png=png, task_cfg=task)
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
form {{ display: grid; grid-template-columns: 16rem 12rem 6rem 1fr; gap: .45rem .8rem; align-items: center; margin: 1rem 0; }}
form .pts {{ text-align: right; font-variant-numeric: tabular-nums; color: #555; }}
form .range {{ color: #555; font-size: .85rem; }}
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
<span><b>Total points</b></span><span></span><span class="pts" id="total-points"></span><span></span>
</form>
<div id="range-warning" class="warn" hidden></div>
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
function outOfRange(vals) {{
  // numeric inputs outside the training range: points and probability are extrapolated beyond the data
  const out = [];
  for (const v of MODEL.variables) {{
    if (!v.range || !(v.name in vals)) continue;
    const x = vals[v.name];
    if (x < v.range[0] || x > v.range[1]) out.push(v.label + " " + x + " is outside the training range " +
                                                   v.range[0].toPrecision(4) + " to " + v.range[1].toPrecision(4));
  }}
  return out;
}}
function update() {{
  const [vals, errors] = readInputs();
  const out = el("probability");
  const outside = outOfRange(vals), warn = el("range-warning");
  warn.textContent = outside.length ? "Warning: " + outside.join("; ") +
    ". The model was not trained on such values: the points and the probability are extrapolated." : "";
  warn.hidden = !outside.length;
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
        return (f'<label for="in-{name}">{label}</label>{field}<span class="pts" id="pts-{name}"></span>'
                f'<span class="range" id="range-{name}">{hint}</span>')
    return f'<label for="in-{name}">{label}</label>{field}<span class="pts" id="pts-{name}"></span><span></span>'


def nomogram_html(spec: dict, meta: dict, demo: bool = False, png=None, model_path: str | None = None,
                  task_cfg: dict | None = None) -> str:
    """The self-contained HTML page of the nomogram model (see the module docstring), worded from ``task_cfg``
    (the task's config item); each numeric field shows its training range and the page warns when a value
    lies outside it."""
    js = spec["js"]
    task = str(meta.get("task", ""))
    title = f"Nomogram — {task_wording(task_cfg, task)['outcome']}"
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
