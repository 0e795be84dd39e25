"""Journal tables for people: each paper table (Table 1, Table 2, Table 3, the DeLong comparisons) written as
Markdown, LaTeX, Word (.docx) and HTML next to its TSV (:func:`export_table`; the TSV stays the machines' copy).

The four files hold the same cells as the formatted TSV they come from (no number is recomputed here), with a
title and footnotes. Every file is byte-identical for the same table: the .docx is a zip whose entries carry a
fixed timestamp (:func:`write_docx`). The HTML file is what ``snakemake --report`` shows inline (an iframe).
:func:`export_table1` and :func:`export_task_tables` choose the columns, titles and notes of each table.
"""
from __future__ import annotations

import datetime
import html
import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import docx
import pandas as pd
from docx.enum.section import WD_ORIENT
from docx.shared import Mm, Pt

from ..atomic import atomic_path, write_text
from ..nomogram import VARIABLE_LABELS
from ..tables import read_table
from .outputs import EXPORT_FORMATS, TASK_EXPORTS
from .style import SPLIT_TITLES
from .tables import NOT_ESTIMABLE, OR_MAX

#: The zip timestamp of every .docx entry (the earliest a zip can hold): same table, same bytes.
DOCX_DATE = (1980, 1, 1, 0, 0, 0)

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "≥": r"$\geq$", "≤": r"$\leq$", "−": r"$-$", "–": "--", "χ²": r"$\chi^2$",
                  "<": r"$<$", ">": r"$>$"}


def markdown_text(df: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """A GitHub/Pandoc pipe table with its title above and its notes below (``|`` in a cell escaped)."""
    def row(cells):
        return "| " + " | ".join(str(c).replace("|", r"\|") for c in cells) + " |"
    lines = [f"**{title}**", "", row(df.columns), "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += [row(r) for r in df.itertuples(index=False, name=None)]
    return "\n".join(lines + [""] + [f"{n}  " for n in notes]).rstrip() + "\n"


def latex_escape(text) -> str:
    """``text`` for a LaTeX cell: special characters escaped, ±, ≥, −, –, χ², <, > as LaTeX."""
    out, s, i = [], str(text), 0
    while i < len(s):
        two = s[i:i + 2]
        if two in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[two])
            i += 2
            continue
        out.append(_LATEX_SPECIAL.get(s[i], s[i]))
        i += 1
    return "".join(out)


def latex_text(df: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """A ``table`` float (booktabs rules: ``\\usepackage{booktabs}``) with a caption and the notes below."""
    def row(cells):
        return " & ".join(latex_escape(c) for c in cells) + r" \\"
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small", rf"\caption{{{latex_escape(title)}}}",
             r"\begin{tabular}{" + "l" * len(df.columns) + "}", r"\toprule", row(df.columns), r"\midrule"]
    lines += [row(r) for r in df.itertuples(index=False, name=None)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\smallskip\footnotesize {latex_escape(n)}" for n in notes]
    return "\n".join(lines + [r"\end{table}"]) + "\n"


def html_text(df: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """A self-contained HTML page with the table (what the Snakemake report shows)."""
    esc = html.escape
    head = "".join(f"<th>{esc(str(c))}</th>" for c in df.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>"
                     for r in df.itertuples(index=False, name=None))
    foot = "".join(f"<p class=\"note\">{esc(n)}</p>" for n in notes)
    style = ("body{font-family:DejaVu Sans,Arial,sans-serif;font-size:13px;margin:1em}"
             "table{border-collapse:collapse}th,td{padding:2px 8px;text-align:left;white-space:nowrap}"
             "thead th{border-top:2px solid #000;border-bottom:1px solid #000}"
             "tbody tr:last-child td{border-bottom:2px solid #000}.note{font-size:11px;margin:4px 0}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{style}</style></head><body>\n<p><b>{esc(title)}</b></p>\n<table><thead><tr>{head}</tr>"
            f"</thead><tbody>\n{body}\n</tbody></table>\n{foot}\n</body></html>\n")


def write_docx(df: pd.DataFrame, path, title: str, notes: Sequence[str] = ()) -> Path:
    """A Word document with the title, the table (header row bold, 8 pt; landscape when it has more than six
    columns) and the notes; zip entries with the fixed :data:`DOCX_DATE`, so the bytes depend on the table only."""
    doc = docx.Document()
    doc.core_properties.created = doc.core_properties.modified = datetime.datetime(*DOCX_DATE)
    if len(df.columns) > 6:
        sec = doc.sections[0]
        sec.orientation, sec.page_width, sec.page_height = WD_ORIENT.LANDSCAPE, Mm(297), Mm(210)
    doc.add_paragraph().add_run(title).bold = True
    table = doc.add_table(rows=1, cols=len(df.columns))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, df.columns):
        cell.text = str(text)
        cell.paragraphs[0].runs[0].bold = True
    for r in df.itertuples(index=False, name=None):
        for cell, text in zip(table.add_row().cells, r):
            cell.text = str(text)
    for row in table.rows:
        for cell in row.cells:
            for run in cell.paragraphs[0].runs:
                run.font.size = Pt(8)
    for n in notes:
        doc.add_paragraph().add_run(n).font.size = Pt(8)
    raw = io.BytesIO()
    doc.save(raw)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(raw) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(zipfile.ZipInfo(info.filename, DOCX_DATE), src.read(info.filename),
                             compress_type=zipfile.ZIP_DEFLATED)
    return Path(path)


def export_table(df: pd.DataFrame, stem, title: str, notes: Sequence[str] = ()) -> dict[str, Path]:
    """``<stem>.md``, ``.tex``, ``.docx`` and ``.html`` (:data:`usrad.reporting.outputs.EXPORT_FORMATS`) of
    ``df`` (cells as text, NaN empty), with ``title`` and ``notes``; returns the paths by format."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    df = df.astype(object).where(df.notna(), "").astype(str)
    paths = export_paths(stem)
    write_text(paths["md"], markdown_text(df, title, notes))
    write_text(paths["tex"], latex_text(df, title, notes))
    write_text(paths["html"], html_text(df, title, notes))
    write_docx(df, paths["docx"], title, notes)
    return paths


def table1_for_people(t1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as printed: ``Characteristic`` (once per variable), ``Level``, the three group columns, ``P``."""
    groups = [c for c in t1.columns if c.startswith(("overall (n=", "train (n=", "test (n="))]
    out = t1[["variable", "level", *groups, "p"]].copy()
    out.loc[out["variable"].eq(out["variable"].shift()), "variable"] = ""
    titles = {"overall": "Overall", "train": "Training", "test": "Test"}
    return out.rename(columns={"variable": "Characteristic", "level": "Level", "p": "P",
                               **{c: titles[c.split(" ")[0]] + c[len(c.split(" ")[0]):] for c in groups}})


def export_table1(t1: pd.DataFrame, stem) -> dict[str, Path]:
    """Table 1 (:func:`usrad.reporting.cohort.table1`) for people, next to ``<stem>.tsv``."""
    tests = ", ".join(sorted({t for t in t1["test_used"].dropna().astype(str) if t}))
    notes = ["Continuous variables: mean ± SD or median [IQR]; categorical: n (%) of the patients with a value."]
    if tests:
        notes.append(f"P, training vs test: {tests}.")
    if t1["level"].astype(str).str.startswith("Not applicable").any():
        notes.append("Not applicable: the task is defined only for the patients in its subset; the others have no "
                     "label, which is not a missing value.")
    return export_table(table1_for_people(t1), stem, "Table 1. Baseline characteristics of the training and test "
                                                     "patients", notes)


def _table2_notes(t2: pd.DataFrame) -> list[str]:
    cells = t2[[c for c in t2.columns if "OR" in c]].astype(str).to_numpy().ravel()
    notes = ["OR, odds ratio per unit (per level against the reference for categorical variables); P, likelihood-"
             "ratio test per variable; multivariable: the variables selected for the clinical model."]
    if any(NOT_ESTIMABLE in c for c in cells):
        notes.append(f"{NOT_ESTIMABLE}: the fit gives no finite odds ratio (e.g. a constant or aliased column); the "
                     "reason is in the note column of univariable.tsv / multivariable.tsv.")
    if any(">" in c or "<" in c for c in cells):
        notes.append(f">{OR_MAX:.0f} / <0.01: an odds ratio or confidence bound beyond what the data bound (e.g. "
                     "near separation, Firth's penalised fit); its value is in univariable.tsv / multivariable.tsv.")
    return notes


def table2_for_people(t2: pd.DataFrame) -> pd.DataFrame:
    """Table 2 as printed: the variable's label (once per variable), the level of a categorical term, the ORs."""
    term = [t[len(v) + 1:-1] if t.startswith(f"{v}[") else "" for v, t in zip(t2["variable"], t2["term"])]
    var = t2["variable"].map(lambda v: VARIABLE_LABELS.get(v, v))
    out = pd.DataFrame({"Variable": var.where(~t2["variable"].eq(t2["variable"].shift()), ""), "Level": term})
    return pd.concat([out, t2.drop(columns=["variable", "term"]).rename(columns=lambda c: c[0].upper() + c[1:])],
                     axis=1)


def export_task_tables(tab_dir, task: str, tables: Sequence[str] | None = None) -> dict[str, dict[str, Path]]:
    """Table 2, Table 3 and the DeLong comparisons of one task (:data:`usrad.reporting.outputs.TASK_EXPORTS`:
    stem → the formatted TSV it is made from) for people, under ``tab_dir``; ``tables``: the TSVs written
    (default: all that exist)."""
    tab_dir = Path(tab_dir)
    out = {}
    for stem, source in TASK_EXPORTS.items():
        if (tables is not None and source not in tables) or not (tab_dir / f"{source}.tsv").exists():
            continue
        df = read_table(tab_dir / f"{source}.tsv", all_text=True)
        title, notes = _titles(df, stem, task)
        if stem == "table2_odds_ratios":
            df = table2_for_people(df)
        if "task" in df.columns:
            df = df.drop(columns="task")
        if "split" in df.columns:
            df = df.assign(split=df["split"].map(lambda s: SPLIT_TITLES.get(s, s))) \
                .rename(columns={"split": "Data set", "model": "Model"})
        out[stem] = export_table(df, tab_dir / stem, title, notes)
    return out


def _titles(df: pd.DataFrame, stem: str, task: str) -> tuple[str, list[str]]:
    """Title and notes of one task table."""
    if stem == "table2_odds_ratios":
        return f"Table 2. Clinical predictors of {task}: univariable and multivariable logistic regression " \
               "(training set)", _table2_notes(df)
    if stem == "table3_performance":
        return f"Table 3. Performance of the models for {task}", [
            "95% CIs at the patient level (AUC and F1: patient bootstrap; proportions: Wilson with the design "
            "effect); threshold fixed on the training set. Training set (cross-validated): out-of-fold "
            "predictions. All numbers: table3_performance.tsv."]
    return f"Paired comparison of AUCs for {task} (DeLong)", [
        "AUC difference: first minus second model, with its 95% CI; P, two-sided DeLong test (clustered by "
        "patient). All numbers: delong.tsv."]


def export_paths(stem) -> Mapping[str, Path]:
    """The exported files of ``stem`` by format."""
    stem = Path(stem)
    return {fmt: stem.with_name(f"{stem.name}.{fmt}") for fmt in EXPORT_FORMATS}
