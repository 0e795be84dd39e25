"""Fuzz of manifest + config + task expressions through `usrad validate`, as a careless or hostile collaborator
would write them: the command exits 0 (valid) or 2 with a message, never a traceback; it writes no file and
runs no code from the config (a sentinel file that a dangerous expression would create never appears).

The manifest helpers (36 PNG patients) are test_cohort's. The number of examples is USRAD_FUZZ_EXAMPLES
(default 60 here; set it higher for a longer red-team run).
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

import pandas as pd
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_cohort import make_manifest
from usrad.cli import main as usrad_main

REPO = Path(__file__).resolve().parents[1]
PARAMS = str(REPO / "config" / "radiomics.yaml")
SENTINEL = "usrad_fuzz_sentinel"

COLUMNS = ["n_positive_nodes", "age", "er", "histology", "`n positive nodes`", "`age`", "missing_col", "patient_id"]
LITERALS = ["1", "3", "0.5", "-2", "'IDC'", "\"ILC\"", "True", "false", "1e3", "2_5", "''"]
OPERATORS = [">=", ">", "<", "<=", "==", "!=", "+", "-", "*", "/", " and ", " or ", " & ", " | "]
DANGEROUS = [  # each would write the sentinel or call something under DataFrame.eval(engine="python")
    "@os.system('touch {s}') == 0",
    "n_positive_nodes.to_csv('{s}') == 0",
    "__import__('os').system('touch {s}') == 0",
    "open('{s}', 'w').close() is None",
    "age.__class__.__init__.__globals__",
    "(lambda: 1)() == 1",
    "[x for x in age] == 1",
    "age[0] > 1",
    "age.max() > 1",
    "n_positive_nodes in {{1, 2}}",
    "`n_positive_nodes`.to_csv('{s}') == 0",
    "(" * 200 + "age" + ")" * 200 + " > 1",
    "age > " + "1 + " * 500 + "1",
]
NASTY_CELLS = ["", " ", "NA", "N/A", "null", "nan", "None", "2_5", "1e309", "-inf", "١٢", "0x10", "+5", "5.", "1,5",
               "=cmd|' /C calc'!A0", "../../etc/passwd", "imgs/P000.png", "\x00", "é", "2.0", "02", "yes", "9" * 40]


def expressions():
    atom = st.one_of(st.sampled_from(COLUMNS), st.sampled_from(LITERALS))
    simple = st.builds(lambda a, op, b: f"{a} {op} {b}", atom, st.sampled_from(OPERATORS), atom)
    combined = st.recursive(simple, lambda inner: st.one_of(
        st.builds(lambda a, op, b: f"({a}){op}({b})", inner, st.sampled_from([" and ", " or ", " & ", " | "]), inner),
        st.builds(lambda a: f"not ({a})", inner),
        st.builds(lambda a: f"~({a})", inner),
        st.builds(lambda c, vals: f"{c} in [{', '.join(vals)}]", st.sampled_from(COLUMNS),
                  st.lists(st.sampled_from(LITERALS), max_size=3))), max_leaves=6)
    valid = st.sampled_from(["n_positive_nodes >= 1", "n_positive_nodes >= 3", "`n_positive_nodes` > 0",
                             "(n_positive_nodes >= 1) & (age > 50)", "histology in ['IDC', 'ILC']",
                             "not (n_positive_nodes == 0)", "er == 1 or n_positive_nodes >= 2"])
    return st.one_of(valid, valid, combined, st.sampled_from(DANGEROUS), st.text(max_size=12))


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@st.composite
def cohorts(draw):
    """(manifest edits, config dict): a few cells, columns and config keys changed at random."""
    edits = draw(st.lists(st.tuples(st.integers(0, 35), st.sampled_from(
        ["patient_id", "image", "mask", "pixel_spacing_mm", "age", "er", "histology", "n_positive_nodes"]),
        st.sampled_from(NASTY_CELLS)), max_size=4))
    drop = draw(st.lists(st.sampled_from(["mask", "age", "n_positive_nodes", "pixel_spacing_mm"]), max_size=1))
    rename = draw(st.sampled_from([None, ("n_positive_nodes", "n positive nodes"), ("age", "Age")]))
    tasks = [{"name": "t1", "label": draw(expressions())}]
    if draw(st.booleans()):
        tasks.append({"name": "t2", "label": draw(expressions()), "subset": draw(expressions())})
    if draw(st.integers(0, 3)):  # mostly a valid set, so that the manifest and the expressions are reached
        predictors, categorical = ["age", "er", "histology"], ["histology"]
    else:
        predictors = draw(st.lists(st.sampled_from(["age", "er", "histology", "n_positive_nodes", "patient_id", "Age"]),
                                   max_size=4))
        categorical = draw(st.lists(st.sampled_from(["histology", "er", "birads"]), max_size=2))
    cfg = {"tasks": tasks, "clinical": {"predictors": predictors, "categorical": categorical,
                                        "missing": draw(st.sampled_from(["refuse", "impute"]))},
           "radiomics_params": PARAMS}
    if not draw(st.integers(0, 3)):
        cfg["split"] = draw(st.sampled_from([{"test_size": 0.0}, {"test_size": 0.9}, {"by_column": "histology",
                                             "external_values": ["IDC"]}, {"by_column": "histology",
                                             "external_values": ["IDC", "ILC", "other"]}, {"by_column": "nope"}]))
    if not draw(st.integers(0, 3)):
        cfg["modelling"] = draw(st.sampled_from([{"classifiers": ["lr", "lr"]}, {"cv_folds": 30},
                                                 {"search_spaces": {"lr": {"C": [-1]}}},
                                                 {"search_spaces": {"svm": {"no_such_param": [1]}}}]))
    return edits, drop, rename, cfg


@settings(max_examples=int(os.environ.get("USRAD_FUZZ_EXAMPLES", 60)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cohorts())
def test_fuzzed_manifest_config_and_expressions_give_ok_or_a_message(tmp_path_factory, case):
    edits, drop, rename, cfg = case
    root = tmp_path_factory.mktemp("fuzz")
    manifest = make_manifest(root / "cohort")
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    for row, col, cell in edits:
        df.at[row, col] = cell
    df = df.drop(columns=drop)
    if rename:
        df = df.rename(columns={rename[0]: rename[1]})
    df.to_csv(manifest, index=False)
    sentinel = root / SENTINEL
    text = yaml.safe_dump(cfg, allow_unicode=True).replace("{s}", str(sentinel))
    config = root / "config.yaml"
    config.write_text(text, encoding="utf-8")
    modules, before = set(sys.modules), _snapshot(root)
    err, out = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = usrad_main(["validate", str(manifest), "--config", str(config)])  # any other exception fails
    finally:
        os.chdir(cwd)
    assert not sentinel.exists(), f"a config expression ran code: {cfg['tasks']}"
    assert _snapshot(root) == before, "usrad validate must not write anything"
    assert code in (0, 2), code
    if code == 2:
        assert err.getvalue().strip() and "Traceback" not in err.getvalue()
    else:
        assert out.getvalue().startswith("OK:")
    assert not {m for m in set(sys.modules) - modules if m.split(".")[0] in ("os", "subprocess", "shutil", "socket")}


def test_every_dangerous_expression_is_refused_by_usrad_validate_and_runs_nothing(tmp_path, capsys):
    manifest = make_manifest(tmp_path / "cohort")
    sentinel = tmp_path / SENTINEL
    for i, expr in enumerate(DANGEROUS):
        for key in ("label", "subset"):
            task = {"name": "t", "label": "n_positive_nodes >= 1", key: expr.replace("{s}", str(sentinel))}
            config = tmp_path / f"c{i}{key}.yaml"
            config.write_text(yaml.safe_dump({"tasks": [task], "radiomics_params": PARAMS}))
            code = usrad_main(["validate", str(manifest), "--config", str(config)])
            err = capsys.readouterr().err
            assert code == 2 and "tasks" in err and key in err and "Traceback" not in err, (expr, err)
            assert not sentinel.exists(), expr
