"""The reporting checklists of a run (:func:`write_checklists`): CLEAR (58 items), METRICS (30 items, with the
METRICS score the run supports, :func:`metrics_score`) and TRIPOD+AI (27 main items), each item ``filled`` from
the results files or the ``study.*`` config keys, ``partly``, or ``needs a person``.
"""
from __future__ import annotations

from importlib import resources
from io import StringIO
from pathlib import Path

import pandas as pd

from ..atomic import write_text
from .checklist_facts import Fact, run_facts
from .checklist_items import FIXED_CONDITIONS, ITEMS
from .style import write_table

STANDARDS = {"clear": "CLEAR (Kocak et al. 2023)", "metrics": "METRICS (Kocak et al. 2024)",
             "tripod_ai": "TRIPOD+AI (Collins et al. 2024)"}
COLUMNS = ["item", "section", "topic", "status", "value", "source"]
#: METRICS items that apply only under a condition (metrics_scoring.md, section 3).
CONDITIONAL = {8: (1,), 9: (1, 2), 10: (1,), 12: (3,), 14: (4,), 15: (4,), 16: (4,), 17: (5,)}
BANDS = ((20, "very low"), (40, "low"), (60, "moderate"), (80, "good"))


def read_standard(name: str) -> pd.DataFrame:
    """The item list of a standard as shipped in ``usrad/data/reporting_standards/`` (SOURCES.md there)."""
    text = resources.files("usrad").joinpath(f"data/reporting_standards/{name}.tsv").read_text(encoding="utf-8")
    return pd.read_csv(StringIO(text), sep="\t", dtype=str, keep_default_na=False)


def main_items(table: pd.DataFrame) -> list[str]:
    """The main item numbers (``3a``, ``3b`` → ``3``), in order."""
    return list(dict.fromkeys(table["item"].str.extract(r"^(\d+)")[0]))


def item_row(item: str, facts: dict[str, Fact], study: dict, spec) -> tuple[str, str, list[str], bool]:
    """(status, value, sources, met) of one item from the run's facts and the study keys the config gives."""
    fact_keys, study_keys, complete = spec or ((), (), False)
    have = [facts[k] for k in fact_keys if k in facts]
    given = [k for k in study_keys if str(study.get(k) or "").strip()]
    values = [f.value for f in have] + [f"{k}: {str(study[k]).strip()}" for k in given]
    sources = list(dict.fromkeys(p for f in have for p in f.sources)) + (["config"] if given else [])
    missing = [f"study.{k}" for k in study_keys if k not in given]
    everything = len(have) == len(fact_keys) and not missing
    if values and everything and (complete or given):
        status = "filled"
    elif values:
        status = "partly"
    else:
        status = "needs a person"
    if status != "filled":
        values.append("to supply: " + (", ".join(missing) if missing else "the authors' text"))
    return status, "; ".join(values), sources, all(f.met for f in have)


def checklist_table(name: str, facts: dict[str, Fact], study: dict) -> pd.DataFrame:
    """One row per item of the standard ``name``."""
    std = read_standard(name)
    rows = []
    for r in std.itertuples(index=False):
        status, value, sources, met = item_row(r.item, facts, study, ITEMS[name].get(r.item))
        section = r.category if name == "metrics" else r.section
        row = {"item": r.item, "section": section, "topic": r.topic, "status": status, "value": value,
               "source": ", ".join(sources)}
        if name == "metrics":
            from_run = "config" not in sources  # a study.* text is the authors' word: a person confirms it
            row.update(weight=r.weight, answer="yes" if status == "filled" and met and from_run else
                       "no" if status == "filled" and not met else "to confirm")
        rows.append(row)
    return pd.DataFrame(rows)


def applicable(conditions: dict[int, bool], items) -> list[int]:
    """The METRICS items that apply under ``conditions`` (1–5 → yes/no)."""
    return [int(i) for i in items if all(conditions[c] for c in CONDITIONAL.get(int(i), ()))]


def metrics_score(table: pd.DataFrame, conditions: dict[int, bool], answers=("yes",)) -> float:
    """100 × Σ weight of applicable items whose answer is in ``answers`` / Σ weight of applicable items, to one
    decimal (metrics_scoring.md, section 4)."""
    app = set(applicable(conditions, table["item"]))
    w = table.assign(i=table["item"].astype(int), w=table["weight"].astype(float))
    w = w[w["i"].isin(app)]
    return round(100 * w.loc[w["answer"].isin(answers), "w"].sum() / w["w"].sum(), 1)


def band(score: float) -> str:
    return next((label for limit, label in BANDS if score < limit), "excellent")


def _markdown(name: str, table: pd.DataFrame, extra: list[str]) -> str:
    counts = table["status"].value_counts()
    lines = [f"# {STANDARDS[name]} checklist of this run", "",
             f"Filled {counts.get('filled', 0)}, partly {counts.get('partly', 0)}, needs a person "
             f"{counts.get('needs a person', 0)} of {len(table)} items. Values come from the files in the source "
             "column (`config`: the `study.*` keys); docs/checklists.md explains the statuses.", "", *extra,
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in table[COLUMNS].itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in r) + " |")
    return "\n".join(lines) + "\n"


def _metrics_lines(table: pd.DataFrame, conditions: dict[int, bool]) -> list[str]:
    now = metrics_score(table, conditions)
    best = metrics_score(table, conditions, ("yes", "to confirm"))
    confirm = ", ".join(table.loc[(table["answer"] == "to confirm") &
                                  table["item"].astype(int).isin(applicable(conditions, table["item"])), "item"])
    cond = ", ".join(f"{c} {'yes' if v else 'no'}" for c, v in sorted(conditions.items()))
    return [f"**METRICS score this run supports: {now}% ({band(now)})**, counting only the items the run shows "
            f"are met; {best}% ({band(best)}) if a person confirms every item still open. Conditions: {cond}. "
            f"Items a person must still confirm: {confirm or 'none'}.", ""]


def write_checklists(root, results: str, tasks, study: dict | None, out_dir) -> dict[str, pd.DataFrame]:
    """``checklist_{clear,metrics,tripod_ai}.{tsv,md}`` in ``out_dir`` from the finished run under ``root/results``
    and the config's ``study`` section; returns the tables."""
    study, out_dir = dict(study or {}), Path(out_dir)
    facts = run_facts(root, results, tasks)
    facts["checklists"] = Fact("CLEAR, METRICS and TRIPOD+AI checklists written from this run",
                               [f"{results}/report/checklist_{n}.tsv" for n in STANDARDS])
    conditions = {**FIXED_CONDITIONS, 2: bool(study.get("fully_automated_segmentation"))}
    tables = {}
    for name in STANDARDS:
        table = checklist_table(name, facts, study)
        extra = _metrics_lines(table, conditions) if name == "metrics" else []
        if name == "metrics":
            table.loc[~table["item"].astype(int).isin(applicable(conditions, table["item"])), "answer"] = "n/a"
        write_table(table, out_dir / f"checklist_{name}")
        write_text(out_dir / f"checklist_{name}.md", _markdown(name, table, extra))
        tables[name] = table
    return tables
