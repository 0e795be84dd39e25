"""The methods-and-results summary (:func:`write_summary`): ``summary.md`` (and ``summary.html``,
:func:`markdown_html`) whose every number is read from a file under ``results/`` and listed in
``summary_sources.tsv`` (:mod:`usrad.reporting.sources`).
"""
from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..atomic import write_text
from ..tables import read_table
from .evaluation import MAIN_MODELS, best_classifier, read_bundles
from .sources import Sources, resolve_source, settings_value
from .style import model_label, write_table
from .summary_methods import (
    SummaryContext, cohort_lines, evaluation_lines, extraction_lines, header_lines, modelling_lines, qc_lines,
    reproducibility_lines, study_lines
)
from .tables import oracle_auc_rows
from .wording import task_wording


#: The reference study's published results (test set), shown beside the demo's (clearly labelled simulated).
REFERENCE_STUDY = pd.DataFrame([
    {"task": "metastasis", "model": "combined", "metric": "auc", "value": 0.920},
    {"task": "burden", "model": "combined", "metric": "auc", "value": 0.939},
    {"task": "metastasis", "model": "combined", "metric": "sensitivity", "value": 0.90},
    {"task": "metastasis", "model": "combined", "metric": "specificity", "value": 0.82},
])
METRIC_LABELS = {"auc": "AUC", "sensitivity": "Sensitivity", "specificity": "Specificity"}


def write_summary(root, tasks: Sequence[str], out_md, out_sources, out_html=None, demo: bool = True,
                  ground_truth=None, results_dir: str = "results",
                  radiomics_only: bool | None = None,
                  task_configs: Sequence[dict] | None = None, study: dict | None = None) -> tuple[str, pd.DataFrame]:
    """The methods-and-results summary (markdown, optional HTML) and its sources table.

    ``radiomics_only`` (None: no ``clinical`` bundle in the first task) says that only the rad-score and the
    radiomics classifiers were fitted: the text says so, and the comparison with the reference study (whose
    headline model is the combined one) and the combined-vs-clinical comparison are left out. ``task_configs`` (the
    config's ``tasks`` items) word each task's heading with its outcome (:func:`usrad.reporting.wording.task_wording`);
    ``study`` (the config's ``study`` section) gives the Study section (:func:`study_lines`).

    ``root`` is the working directory holding ``results/``; every number in the text is read from a
    results file by :func:`resolve_source` and listed in ``out_sources``. Writes
    ``results/report/reference_study.tsv`` (the reference study's published numbers) and, for the demo,
    ``results/report/oracle_auc.tsv`` (AUC of the Bayes-optimal probabilities on the test set).
    """
    root = Path(root)
    results = str(results_dir).rstrip("/")
    rep_dir = root / results / "report"
    ref_file = rep_dir / "reference_study.tsv"
    write_table(REFERENCE_STUDY, ref_file.with_suffix(""))
    if radiomics_only is None:
        radiomics_only = "clinical" not in read_bundles(root / results / tasks[0] / "models")
    c = SummaryContext(root=root, results=results, sources=Sources(root), demo=demo, radiomics_only=radiomics_only,
                 feat=f"{results}/features/features.parquet", counts=f"{results}/report/cohort_counts.tsv",
                 settings=f"{results}/{tasks[0]}/tables/evaluation_settings.tsv")
    lines = header_lines(c) + study_lines(study) + ["## Methods", ""]
    for step in (cohort_lines, qc_lines, extraction_lines, reproducibility_lines, modelling_lines, evaluation_lines):
        lines += step(c)
    lines += ["## Results", ""]
    configs = {str(t.get("name")): t for t in task_configs or []}
    for task in tasks:
        lines += _task_lines(c, task, task_wording(configs.get(task), task)["outcome"])
    oracle_rows = oracle_auc_rows(root / results, tasks, ground_truth, rep_dir)
    lines += _reference_lines(c, tasks, oracle_rows, ref_file, rep_dir)
    lines += _checklist_lines(c, tasks)
    md = "\n".join(lines) + "\n"
    write_text(out_md, md)
    table = c.sources.table()
    write_table(table, Path(out_sources).with_suffix(""))
    if out_html is not None:
        write_text(out_html, markdown_html(md))
    return md, table


def _task_lines(c: SummaryContext, task: str, outcome: str) -> list[str]:
    """One task's results: selection chain, performance table, best classifier, DeLong, calibration, internal
    validation."""
    root, results, sources, lvl = c.root, c.results, c.sources, c.values["lvl"]
    lines: list[str] = []
    perf = f"{results}/{task}/tables/table3_performance.tsv"
    steps = f"{results}/{task}/selection/steps.tsv"
    bundles = read_bundles(root / results / task / "models")
    best = best_classifier(bundles)
    lines.append(f"### Task `{task}`: {outcome}")
    lines.append("")
    st = read_table(root / steps, all_text=True)
    chain = " → ".join(f"{s} {sources.num(f'{task}_step_{s}', steps, f'col=n_features_after;step={s}', 'd')}"
                       for s in st["step"])
    lines.append(f"Feature selection (features left after each step): {chain}.")
    lines.append("")
    splits_present = set(read_table(root / perf, text=("split",), usecols=["split"])["split"])
    shown = [s for s in ("train", "test", "external") if s in splits_present]
    lines.append("| model | split | n | AUC (CI) | sensitivity | specificity | Brier |")
    lines.append("|---|---|---|---|---|---|---|")
    pdf = read_table(root / perf, text=("model", "split"))
    for m in [m for m in MAIN_MODELS if m in set(pdf["model"])] + [best]:
        for s in shown:
            loc = f"model={m};split={s}"
            a = sources.num(f"{task}_{m}_{s}_auc", perf, f"col=auc;{loc}")
            lo = sources.num(f"{task}_{m}_{s}_auc_low", perf, f"col=auc_boot_low;{loc}")
            hi = sources.num(f"{task}_{m}_{s}_auc_high", perf, f"col=auc_boot_high;{loc}")
            se = sources.num(f"{task}_{m}_{s}_sens", perf, f"col=sensitivity;{loc}", "%")
            sp = sources.num(f"{task}_{m}_{s}_spec", perf, f"col=specificity;{loc}", "%")
            br = sources.num(f"{task}_{m}_{s}_brier", perf, f"col=brier;{loc}")
            n = sources.num(f"{task}_{m}_{s}_n", perf, f"col=n;{loc}", "d")
            lines.append(f"| {model_label(m)}{' (best classifier)' if m == best else ''} | {s} | {n} | "
                         f"{a} ({lo}–{hi}) | {se} | {sp} | {br} |")
    lines.append("")
    cvf = f"{results}/{task}/models/{best}/bundle.json"
    lines.append(f"Best radiomics classifier by cross-validated AUC: {model_label(best)} "
                 f"(CV AUC {sources.num(f'{task}_best_cv_auc', cvf, 'json:/cv_auc')}).")
    dl = f"{results}/{task}/tables/delong.tsv"
    dtab = read_table(root / dl, all_text=True)
    fitted = set(pdf["model"])
    for a, b in (("combined", "clinical"), ("combined", "radscore")):
        if c.radiomics_only or not {a, b} <= fitted:  # no clinical model (radiomics only): no such comparison
            continue
        hit = dtab[(dtab["model_1"] == a) & (dtab["model_2"] == b) & (dtab["split"] == "test")]
        if len(hit):
            lines.append(_delong_sentence(sources, task, dl, a, b, lvl))
    headline = "combined" if "combined" in set(pdf["model"]) else "radscore"
    if "test" in splits_present and headline in set(pdf["model"]):
        lines.append(_calibration_sentence(sources, task, f"{results}/{task}/tables/calibration.tsv", headline, lvl))
    lines.append("")
    lines += _internal_validation_lines(root, sources, results, task)
    return lines


def _reference_lines(c: SummaryContext, tasks: Sequence[str], oracle_rows: list, ref_file: Path,
                     rep_dir: Path) -> list[str]:
    """The demo's test results beside the reference study's (and the oracle's), for the reference study's outcomes."""
    results, sources = c.results, c.sources
    lines: list[str] = []
    shown_ref = REFERENCE_STUDY[REFERENCE_STUDY["task"].isin(tasks)]
    if c.radiomics_only:  # the reference study's numbers are those of its combined model, not fitted here
        shown_ref = shown_ref.iloc[0:0]
    if not shown_ref.empty:  # only for the reference study's outcomes
        lines.append("## Demo results beside the reference study")
        lines.append("")
        lines.append("| task | metric | this run (" + ("simulated data" if c.demo else "this cohort") + ", test set) | "
                     "reference study (published) |" + (" oracle (Bayes-optimal, simulated) |" if oracle_rows else ""))
        lines.append("|---|---|---|---|" + ("---|" if oracle_rows else ""))
    for _, r in shown_ref.iterrows():
        task, metric = r["task"], r["metric"]
        perf = f"{results}/{task}/tables/table3_performance.tsv"
        fmt = ".3f" if metric == "auc" else "%"
        ours = sources.num(f"{task}_{metric}_demo", perf, f"col={metric};model=combined;split=test", fmt)
        ref = sources.num(f"{task}_{metric}_reference", ref_file, f"col=value;task={task};metric={metric}", fmt)
        orc = ""
        if oracle_rows:
            orc = (sources.num(f"{task}_oracle_auc", rep_dir / "oracle_auc.tsv", f"col=auc;task={task}")
                   if metric == "auc" and any(o["task"] == task for o in oracle_rows) else "")
            orc = f" {orc} |"
        lines.append(f"| {task} | {METRIC_LABELS.get(metric, metric)} | {ours} | {ref} |{orc}")
    lines.append("")
    return lines


def _checklist_lines(c: SummaryContext, tasks: Sequence[str]) -> list[str]:
    """The reporting checklist: each item with this run's value and its source."""
    root, results, sources = c.root, c.results, c.sources
    pyr, sitk, bw, sig, n_feat, cls_txt, image_types, n_tr, n_te, icc_form, icc_thr, folds, nb = (
        c.values[k] for k in ("pyr", "sitk", "bw", "sig", "n_feat", "cls_txt", "image_types", "n_tr", "n_te",
                              "icc_form", "icc_thr", "folds", "nb"))
    lines: list[str] = []
    lines.append("## Reporting checklist")
    lines.append("")
    lines.append("| item | this run | source |")
    lines.append("|---|---|---|")
    sha = resolve_source(root, c.feat, "meta:/params_sha256")
    lines.append(f"| Extraction software | PyRadiomics {pyr}, SimpleITK {sitk} | `{c.feat}` metadata |")
    lines.append(f"| Dimensionality | two-dimensional (true 2D images; `force2D: "
                 f"{str(resolve_source(root, c.feat, 'params:/setting/force2D')).lower()}`) | params |")
    lines.append(f"| Discretisation | fixed bin width {bw} | params `{sha[:12]}` |")
    lines.append(f"| Filters | `{', '.join(image_types)}`" + (f"; LoG sigma {', '.join(sig)} mm" if sig else "")
                 + " | params |")
    lines.append(f"| Features per class | {cls_txt}; total {n_feat} | feature table metadata |")
    lines.append(f"| Split | patient-level, stratified; training {n_tr} / test {n_te} patients | `{c.counts}` |")
    lines.append("| Leakage prevention | every selection step and the tuning refitted inside each CV fold; test set "
                 "used once | `docs/modelling.md` |")
    if icc_thr:
        lines.append(f"| ICC | `{icc_form}`, threshold {sources.num('icc_threshold_checklist', c.settings, 'col=value;key=icc_threshold', 'g')} "
                     f"| `{c.settings}` |")
    for task in tasks:
        steps = f"{results}/{task}/selection/steps.tsv"
        st = read_table(root / steps, all_text=True)
        chain = " → ".join(f"{s} {sources.num(f'{task}_chk_{s}', steps, f'col=n_features_after;step={s}', 'd')}"
                           for s in st["step"])
        lines.append(f"| Selection ({task}) | {chain} | `{steps}` |")
    lines.append(f"| Tuning | grid search on the log loss, {folds}-fold patient-grouped stratified CV; nested CV AUCs; "
                 f"model choice by the `{settings_value(root / c.settings, 'model_choice')}` rule | `{c.settings}`, "
                 "`models/model_choice.tsv` |")
    lines.append(f"| Metrics with CIs | patient-level: AUC ({nb} patient bootstrap resamples), design-effect Wilson CIs "
                 "at the threshold, clustered DeLong AUC differences with CIs | `tables/table3_performance.tsv`, "
                 "`tables/delong.tsv` |")
    lines.append("| Calibration | smoothed curves with patient-bootstrap bands; intercept and slope with cluster-robust "
                 "CIs; mean predicted vs observed risk; Brier; Hosmer–Lemeshow | `tables/calibration.tsv`, "
                 "`figures/calibration.png` |")
    lines.append("| Decision curves | net benefit vs threshold, treat-all / treat-none | `figures/decision_curve.png` |")
    lines.append("")
    return lines


def _internal_validation_lines(root: Path, sources: Sources, results: str, task: str) -> list[str]:
    """Harrell's optimism-corrected bootstrap of the task (``modelling.internal_validation: bootstrap``): AUC and
    calibration slope, apparent / optimism / corrected, per model; nothing when the table was not made."""
    iv = f"{results}/{task}/tables/internal_validation.tsv"
    if not (root / iv).exists():
        return []
    tab = read_table(root / iv, text=("model", "metric"))
    n = sources.num(f"{task}_iv_resamples", iv, f"col=n_resamples;model={tab['model'].iloc[0]};metric=auc", "d")
    lines = [f"Internal validation of the development set (Harrell's optimism-corrected bootstrap, {n} resamples, the "
             "whole pipeline refitted on each):", "",
             "| model | AUC apparent | optimism | corrected | calibration slope apparent | corrected |",
             "|---|---|---|---|---|---|"]
    for m in dict.fromkeys(tab["model"]):
        cells = [sources.num(f"{task}_iv_{m}_{metric}_{col}", iv, f"col={col};model={m};metric={metric}")
                 for metric, cols in (("auc", ("apparent", "optimism", "corrected")),
                                      ("calibration_slope", ("apparent", "corrected"))) for col in cols]
        lines.append(f"| {model_label(m)} | " + " | ".join(cells) + " |")
    return lines + [""]


def _delong_sentence(sources: Sources, task: str, dl: str, a: str, b: str, lvl: str) -> str:
    """The test-set AUC comparison of models ``a`` and ``b``, every number from the DeLong table ``dl``."""
    loc = f"model_1={a};model_2={b};split=test"
    key = f"{task}_delong_{a}_{b}"
    return (f"Paired AUC comparison (clustered DeLong), {a} vs {b} (test set): AUC difference "
            f"{sources.num(f'{key}_diff', dl, f'col=diff;{loc}')} ({lvl} CI "
            f"{sources.num(f'{key}_diff_low', dl, f'col=diff_low;{loc}')} to "
            f"{sources.num(f'{key}_diff_high', dl, f'col=diff_high;{loc}')}), "
            f"P {sources.num(f'{key}_p', dl, f'col=p_value;{loc}', 'p')}.")


def _calibration_sentence(sources: Sources, task: str, cal: str, model: str, lvl: str) -> str:
    """The test-set calibration of ``model``, every number from the calibration table ``cal``."""
    loc = f"model={model};split=test"

    def num(name, col, fmt=".2f"):
        return sources.num(f"{task}_cal_{name}", cal, f"col={col};{loc}", fmt)
    return (f"Calibration of the {model} model on the test set: slope {num('slope', 'slope')} ({lvl} CI "
            f"{num('slope_low', 'slope_low')} to {num('slope_high', 'slope_high')}), intercept "
            f"{num('int', 'intercept')} ({num('int_low', 'intercept_low')} to {num('int_high', 'intercept_high')}); "
            f"mean predicted risk {num('mean_predicted', 'mean_predicted')} against an observed prevalence of "
            f"{num('observed', 'observed')}; Brier score {num('brier', 'brier', '.3f')}; Hosmer–Lemeshow P "
            f"{num('hl_p', 'hl_p', 'p')} (`tables/calibration.tsv`, `figures/calibration.png`).")


def markdown_html(md: str) -> str:
    """A small self-contained HTML rendering of the summary (headings, paragraphs, tables, code spans)."""
    out, in_table = [], False

    def inline(s):
        s = html.escape(s)
        s = re.sub(r"`([^`]*)`", r"<code>\1</code>", s)
        return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells) + "</tr>")
                continue
            out.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        m = re.match(r"^(#+) (.*)", line)
        if m:
            k = len(m.group(1))
            out.append(f"<h{k}>{inline(m.group(2))}</h{k}>")
        elif line.startswith("> "):
            out.append(f"<blockquote>{inline(line[2:])}</blockquote>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    if in_table:
        out.append("</table>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px}blockquote{background:#fff3cd;padding:.5em}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>usrad summary</title><style>{style}</style>"
            f"</head><body>\n" + "\n".join(out) + "\n</body></html>\n")
