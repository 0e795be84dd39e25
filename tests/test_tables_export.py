"""The paper tables for people (Markdown, LaTeX, .docx, HTML next to each TSV) and the readable cells of
Tables 1–3: not applicable instead of missing, yes/no and class names instead of 0/1, bounded odds ratios,
counts as integers."""
from __future__ import annotations

import re

import docx
import numpy as np
import pandas as pd
import pytest

from usrad.reporting.cohort import cohort_report
from usrad.reporting.export import export_table, latex_escape
from usrad.reporting.outputs import EXPORT_FORMATS, TASK_EXPORTS, task_exports
from usrad.reporting.tables import NOT_ESTIMABLE, fmt_or_ci, performance_tables, table2

TASKS = [{"name": "metastasis", "description": "ALN metastasis: N0 vs N+", "label": "n_positive_nodes >= 1"},
         {"name": "burden", "description": "ALN burden among N+: 1-2 vs >=3 positive nodes",
          "label": "n_positive_nodes >= 3", "subset": "n_positive_nodes >= 1"}]


def docx_rows(path) -> list[list[str]]:
    return [[c.text for c in row.cells] for row in docx.Document(str(path)).tables[0].rows]


@pytest.fixture(scope="module")
def cohort_tables(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 60
    nodes = rng.choice([0, 0, 1, 2, 4, 6], size=n)
    cohort = pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(n)], "image_id": [f"I{i:03d}" for i in range(n)],
                           "age": rng.normal(55, 10, n).round(1), "er": rng.integers(0, 2, n),
                           "n_positive_nodes": nodes})
    split = cohort[["patient_id", "image_id"]].assign(split=np.where(np.arange(n) % 4 == 0, "test", "train"))
    cfg = {"tasks": TASKS, "clinical": {"predictors": ["age", "er"], "categorical": []}}
    out = tmp_path_factory.mktemp("cohort_report")
    cohort_report(cohort, split, cfg, out)
    return out, cohort


def test_table1_shows_the_burden_of_n0_patients_as_not_applicable_and_levels_by_name(cohort_tables):
    out, cohort = cohort_tables
    t1 = pd.read_csv(out / "table1.tsv", sep="\t", dtype=str, keep_default_na=False)
    burden = t1[t1["variable"].str.startswith("burden")]
    n0 = int((cohort["n_positive_nodes"] == 0).sum())
    assert "Missing" not in set(burden["level"])
    na = burden[burden["level"].str.startswith("Not applicable")]
    assert len(na) == 1 and int(na.iloc[0]["overall (n=60)"]) == n0
    assert list(burden["level"][1:3]) == ["1-2", ">=3 positive nodes"]
    assert list(t1.loc[t1["variable"] == "metastasis", "level"][1:]) == ["N0", "N+"]
    assert list(t1.loc[t1["variable"] == "ER", "level"][1:]) == ["No", "Yes"]
    assert not ({"0", "1"} & set(t1.loc[t1["p"] == "", "level"]))
    # the people's copies: every row, and the note saying why
    md = (out / "table1.md").read_text()
    assert "Not applicable (outside the subset)" in md and "not a missing value" in md
    rows = docx_rows(out / "table1.docx")
    assert len(rows) == len(t1) + 1
    assert [r[2] for r in rows[1:]] == list(t1["overall (n=60)"])


def test_table2_shows_a_separated_or_as_not_estimable_and_bounds_in_a_few_characters():
    uni = pd.DataFrame({"variable": ["a", "b", "c", "d"], "term": ["a", "b", "c", "d"],
                        "OR": [2.0, 1e200, np.inf, 3.5], "ci_low": [0.0, 2e3, 1.0, 0.0004],
                        "ci_high": [np.inf, np.inf, np.inf, 10 ** 200], "p_variable": [0.5, 0.01, 0.2, 0.03]})
    multi = uni.iloc[[0, 3]].assign(OR=[np.nan, 3.0])
    t2 = table2(uni, multi)
    cells = t2[["univariable OR (95% CI)", "multivariable OR (95% CI)"]].to_numpy().ravel()
    assert not any("inf" in c.lower() for c in cells)
    bounds = [b for c in cells for b in re.findall(r"(\S+) \((.*?)–(.*?)\)", c) for b in b]
    assert bounds and max(map(len, bounds)) <= 7, bounds  # e.g. 1000.00, >1000, <0.01
    assert list(t2["univariable OR (95% CI)"]) == ["2.00 (<0.01–>1000)", ">1000 (>1000–>1000)", NOT_ESTIMABLE,
                                                   "3.50 (<0.01–>1000)"]
    assert list(t2["multivariable OR (95% CI)"]) == [NOT_ESTIMABLE, "", "", "3.00 (<0.01–>1000)"]
    assert fmt_or_ci(1.234, 0.5, 3.25) == "1.23 (0.50–3.25)"


def test_counts_of_table3_print_as_integers(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    pred = pd.DataFrame({"patient_id": [f"P{i // 2}" for i in range(n)], "image_id": [f"I{i}" for i in range(n)],
                         "task": "t", "split": "test", "model": "lr", "y": np.repeat(rng.integers(0, 2, n // 2), 2)})
    pred["probability"] = np.clip(0.3 + 0.4 * pred["y"] + rng.normal(0, 0.2, n), 0.01, 0.99)
    performance_tables(pred, {"lr": 0.5}, stem=tmp_path / "perf", n_boot=20)
    text = (tmp_path / "perf.tsv").read_text().splitlines()
    head, row = text[0].split("\t"), text[1].split("\t")
    for col in ("n", "n_pos", "n_patients", "tp", "fp", "tn", "fn"):
        assert re.fullmatch(r"\d+", row[head.index(col)]), (col, row[head.index(col)])
    assert row[head.index("n_patients")] == "20"


def test_markdown_latex_html_and_docx_hold_every_row_and_are_byte_identical(tmp_path):
    df = pd.DataFrame({"Model": ["A | B", "C_1", "D & E"], "AUC (95% CI)": ["0.81 (0.70–0.90)", "0.5", "−0.1"],
                       "n": [10, 20, np.nan]})
    paths = export_table(df, tmp_path / "t", "Table X. Something 100%", ["note ≥ 3"])
    assert set(paths) == set(EXPORT_FORMATS)
    md = paths["md"].read_text()
    assert md.count("\n| ") == 1 + len(df) and r"A \| B" in md and "note ≥ 3" in md
    tex = paths["tex"].read_text()
    assert tex.count(r" \\") == 1 + len(df) and r"C\_1" in tex and r"D \& E" in tex and r"100\%" in tex
    assert r"0.81 (0.70--0.90)" in tex and "$-$0.1" in tex and "nan" not in tex
    page = paths["html"].read_text()
    assert page.count("<tr>") == 1 + len(df) and "A | B" in page and "D &amp; E" in page
    rows = docx_rows(paths["docx"])
    assert rows == [list(df.columns), ["A | B", "0.81 (0.70–0.90)", "10.0"], ["C_1", "0.5", "20.0"],
                    ["D & E", "−0.1", ""]]
    first = {k: p.read_bytes() for k, p in paths.items()}
    again = export_table(df, tmp_path / "u", "Table X. Something 100%", ["note ≥ 3"])
    assert {k: p.read_bytes() for k, p in again.items()} == first
    assert latex_escape("χ² ± x_1 < 2") == r"$\chi^2$ $\pm$ x\_1 $<$ 2"


def test_task_exports_follow_the_config():
    assert task_exports() == tuple(TASK_EXPORTS)
    assert "table2_odds_ratios" not in task_exports({"clinical": {"predictors": []}})
