"""Task expressions (tasks[].label / subset) are data: parsed and evaluated by usrad.expr, never run as code."""
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from test_cohort import config, make_manifest, rewrite

from usrad import expr
from usrad.cli import main as cli_main
from usrad.cohort import task_labels, validate_manifest
from usrad.config import load_config, validate_config
from usrad.errors import UsradError
from usrad.expr import ExpressionError, columns, evaluate, parse
from usrad.plan import validate_command

FUZZ_EXAMPLES = int(os.environ.get("USRAD_FUZZ_EXAMPLES", "300"))


def frame() -> pd.DataFrame:
    return pd.DataFrame({"n": [0.0, 1.0, 3.0, 7.0], "age": [40, 55, 61, 38], "histology": ["IDC", "ILC", "IDC", "other"],
                         "n nodes": [0, 2, 5, 1], "er": [0, 1, 1, 0]})


# ------------------------------------------------------------------------------------ what the language refuses
REFUSED = {
    "@os.system('touch x') == 0": ["'@' is not allowed", "'@os.system'", "function calls are not allowed: 'os.system(...)'"],
    "n.to_csv('x') == 0": ["function calls are not allowed: 'n.to_csv(...)'"],
    "__import__('os').system('x') == 0": ["function calls are not allowed", "__import__"],
    "n.__class__ == 1": ["attributes ('.' after a value) are not allowed: 'n.__class__'"],
    "__builtins__ == 1": ["names starting with '__' are not allowed"],
    "n[0] > 1": ["subscripts ('[...]' after a value) are not allowed: 'n[0]'"],
    "(lambda: 1)() == 1": ["function calls are not allowed"],
    "[x for x in n] == 1": ["comprehensions are not allowed"],
    "(x := 1) == 1": ["assignments (':=') are not allowed"],
    "f'{n}' == 'a'": ["f-strings are not allowed"],
    "{1: 2} == n": ["dicts are not allowed"],
    "n in {1, 2}": ["'in' / 'not in' need a list of literals"],
    "n in [age, 1]": ["the list after 'in' may hold only numbers, texts and true/false: 'age'"],
    "(n, 1) == 1": ["tuples are not allowed"],
    "n > 1 if er else n < 1": ["if-expressions are not allowed"],
    "n ** 2 > 1": ["the operator '**' is not allowed: 'n ** 2'"],
    "n % 2 == 1": ["the operator '%' is not allowed"],
    "n is None": ["'is' / 'is not' are not allowed"],
    "n == None": ["None (missing values are reported, not compared) not allowed"],
    "n == b'x'": ["byte strings not allowed"],
    "n >= 1 # a comment": ["comments ('#') are not allowed"],
    "n >= 1 & age < 50": ["'&' binds tighter than comparisons: put each comparison in parentheses"],
    "not (n >= 1) | (er == 1)": ["'not x | y' means not (x | y) in Python but (not x) | y in pandas"],
    "(n >= 1) and (er == 1) | (age > 3)": ["'|' beside 'and'/'or' is read differently by Python and pandas"],
    "n >=": ["not a valid expression"],
    "`n nodes >= 1": ["a backtick is not closed"],
    "`` >= 1": ["an empty column name"],
    "n + 1": ["the expression gives a number, not true/false"],
    "'IDC' < 3": ["text and numbers cannot be compared"],
    "(n > 1) + 1 > 0": ["arithmetic needs numbers, but 'n > 1' is true/false"],
    "(n > 1) & 2": ["and/or/not/&/|/~ need true/false values, but '2' is a number"],
    "": ["the expression is empty"],
    "x" * 1001: ["1001 characters; at most 1000"],
    "-" * 900 + "n > 1": [f"nested more than {expr.MAX_DEPTH} levels deep"],
    "not " * 240 + "n > 1": [f"nested more than {expr.MAX_DEPTH} levels deep"],
    "(" * 51 + "n" + ")" * 51 + " > 1": [f"nested more than {expr.MAX_DEPTH} levels deep (brackets)"],
    "(" * 240 + "n" + ")" * 240 + " > 1": [f"nested more than {expr.MAX_DEPTH} levels deep (brackets)"],
    " & ".join(["(n > 1)"] * 80): [f"nested more than {expr.MAX_DEPTH} levels deep"],
}


@pytest.mark.parametrize("text", list(REFUSED), ids=[t[:40] for t in REFUSED])
def test_refused_expression_names_the_construct_and_the_offending_part(text):
    with pytest.raises(ExpressionError) as exc:
        parse(text)
    assert isinstance(exc.value, UsradError)
    for words in REFUSED[text]:
        assert words in exc.value.reason, (text, exc.value.reason)
    with pytest.raises(ExpressionError):
        evaluate(text, frame())


def test_allowed_expressions_give_the_expected_rows():
    df = frame()
    cases = {
        "n >= 1": [False, True, True, True],
        "`n nodes` >= 2": [False, True, True, False],
        "(n >= 1) & (histology == 'IDC')": [False, False, True, False],
        "n >= 1 and histology == \"IDC\"": [False, False, True, False],
        "histology in ['IDC', 'other']": [True, False, True, True],
        "histology not in ['IDC']": [False, True, False, True],
        "n not in [0, -1, 7.0]": [False, True, True, False],
        "1 <= n < 5": [False, True, True, False],
        "(n + `n nodes`) / 2 >= 2": [False, False, True, True],
        "-n < -2 or not age > 50": [True, False, True, True],
        "er": [False, True, True, False],
        "~er | (n == 0)": [True, False, False, True],
        "(n > 1) == true": [False, False, True, True],
        "er == True": [False, True, True, False],
        "false": [False] * 4,
        "(n >= 1)\n & (age < 60)": [False, True, False, True],
    }
    for text, want in cases.items():
        got = evaluate(text, df)
        assert got.dtype == "boolean" and list(got.index) == list(df.index)
        assert got.tolist() == want, text


def test_columns_lists_every_column_read_whatever_the_quoting():
    assert columns("`n nodes` >= 1 and age > 3 and `n nodes` < 9") == ["n nodes", "age"]
    assert columns("(`a-b` == 'x') | true | (c in [1])") == ["a-b", "c"]
    assert columns("'`not a column`' == histology") == ["histology"]
    assert columns(None) == [] and columns("  ") == []
    with pytest.raises(ExpressionError):
        columns("n.to_csv('x') == 0")


def test_type_mismatch_is_an_error_not_a_silent_false():
    df = frame().assign(birads=["3", "4a", "5", "3"])
    cases = {"birads == 3": "column 'birads' is text and 3 is a number; text and numbers cannot be compared",
             "histology < 2": "column 'histology' is text and 2 is a number",
             "n + histology > 1": "arithmetic needs numbers, but column 'histology' is text",
             "histology": "the expression gives text, not true/false",
             "age": "the expression gives numbers other than 0 and 1, not true/false",
             "not histology": "column 'histology' is text, not true/false",
             "(n > 1) < (age > 50)": "true/false values cannot be ordered",
             "histology in [1, 2]": "column 'histology' is text and 1 is a number",
             "n * 4611686018427387904 * 4 > 1": "too large"}
    for text, words in cases.items():
        with pytest.raises(ExpressionError) as exc:
            evaluate(text, df.assign(n=df["n"].astype(int)))
        assert words in exc.value.reason, (text, exc.value.reason)
    assert evaluate("birads == '3'", df).tolist() == [True, False, False, True]


def test_missing_values_give_na_not_false_with_kleene_logic():
    df = pd.DataFrame({"n": [np.nan, 0.0, 2.0, np.nan], "h": ["IDC", None, "IDC", "ILC"], "z": [0.0, 0.0, 1.0, 1.0]})

    def values(text):
        return [None if v is pd.NA else v for v in evaluate(text, df).tolist()]
    assert values("n >= 1") == [None, False, True, None]
    assert values("n != 1") == [None, True, True, None]  # pandas says True for NaN != 1
    assert values("(n >= 1) & (h == 'ILC')") == [False, False, False, None]  # False & NA is False
    assert values("(n >= 1) | (h == 'ILC')") == [None, None, True, True]  # True | NA is True
    assert values("n / z > 1") == [None, None, True, None]  # 0/0 has no value; 2/1 > 1
    assert values("not n in [0]") == [None, False, True, None]
    assert values("h < 'ILC'") == [True, None, True, False]


def test_unknown_or_duplicate_column_is_an_error():
    with pytest.raises(ExpressionError, match="uses 'nodes', which the table does not have"):
        evaluate("nodes >= 1", frame())
    with pytest.raises(ExpressionError, match="appears more than once"):
        evaluate("n >= 1", pd.concat([frame()[["n"]], frame()[["n"]]], axis=1))


# ------------------------------------------------------------------------------------ never runs code
class _Audit:
    events: list | None = None  # a list while recording
    installed = False


def _audit_hook(name, _args):
    if _Audit.events is not None:
        _Audit.events.append(name)


@contextmanager
def watched():
    """What happens meanwhile: audit events (an exec, import, open, os.system, subprocess... raises one), new
    modules, new files in a fresh working folder."""
    if not _Audit.installed:  # an audit hook cannot be removed: one for the session
        sys.addaudithook(_audit_hook)
        _Audit.installed = True
    seen = {}
    before_modules, cwd = set(sys.modules), os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        _Audit.events = []
        try:
            yield seen
        finally:
            seen["events"], _Audit.events = _Audit.events, None
            os.chdir(cwd)
            seen["files"] = sorted(os.listdir(tmp))
            seen["modules"] = sorted(set(sys.modules) - before_modules)


def _fuzz_frame() -> pd.DataFrame:
    return pd.DataFrame({"n": [0.0, 1.0, np.nan], "s": ["a", None, "b"], "x y": [1, 2, 3], "os": [1, 0, 1]})


NAMES = st.sampled_from(["n", "s", "`x y`", "os", "pd", "np", "sys", "__import__", "__builtins__", "__class__",
                         "open", "eval", "exec", "true", "None", "df", "self", "subprocess", "shutil", "pwned"])
LITERALS = st.one_of(st.integers(-3, 3).map(str), st.sampled_from(["1.5", "'a'", "\"b\"", "True", "false", "1e400",
                                                                  "'" + "w" * 400 + "'", "b'x'", "1j", "..."]))
BINARY = st.sampled_from([" + ", " - ", " * ", " / ", " ** ", " % ", " // ", " & ", " | ", " ^ ", " << ", " @ ", " and ",
                          " or ", " == ", " != ", " < ", " >= ", " in ", " not in ", " is ", " := "])


def _dangerous(inner):
    return st.one_of(
        st.tuples(inner, BINARY, inner).map("".join),
        inner.map(lambda a: f"({a})"), inner.map(lambda a: f"not {a}"), inner.map(lambda a: f"~{a}"),
        inner.map(lambda a: f"-{a}"), inner.map(lambda a: f"[{a}, 1]"), inner.map(lambda a: f"{{{a}}}"),
        st.tuples(inner, NAMES).map(lambda t: f"{t[0]}.{t[1].strip('`')}"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}({t[1]})"), st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
        inner.map(lambda a: f"@{a}"), inner.map(lambda a: f"lambda: {a}"), inner.map(lambda a: f"[q for q in {a}]"),
        inner.map(lambda a: f"f'{{{a}}}'"), inner.map(lambda a: f"*{a}"), inner.map(lambda a: f"(z := {a})"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} if {t[1]} else {t[2]}"),
        st.integers(50, 400).map(lambda k: "(" * k + "n" + ")" * k), st.integers(50, 900).map(lambda k: "-" * k + "n"),
    )


ATTACKS = [
    "@os.system('touch pwned') == 0", "os.system('touch pwned') == 0", "n.to_csv('pwned') == 0",
    "__import__('os').system('touch pwned') == 0", "__import__('subprocess').run(['touch', 'pwned'])",
    "open('pwned', 'w').write('x') > 0", "pd.DataFrame().to_csv('pwned') == 0", "(lambda: exec('import os'))()",
    "[c for c in ().__class__.__base__.__subclasses__()]", "s.str.cat(sep='x').__len__() > 0",
    "`x y`.to_pickle('pwned') == 0", "@pd.read_csv('pwned')", "@__builtins__['exec']('import json')",
    "n.__class__.__init__.__globals__['sys'].modules", "eval('1') == 1", "df.eval('1') == 1",
]
EXPRESSIONS = st.one_of(st.sampled_from(ATTACKS), st.recursive(st.one_of(NAMES, LITERALS), _dangerous, max_leaves=8),
                        st.text(alphabet=st.sampled_from(list("ns`x y()[]{}.@_'\"#&|~!=<>+-*/%:,0123456789 \n\\")),
                                max_size=60))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[p for p in Phase if p is not Phase.explain])  # its tracer's own frame reads would be audit events
@given(text=EXPRESSIONS)
def test_no_generated_expression_creates_a_file_imports_or_calls_anything(text):
    df = _fuzz_frame()
    evaluate("n >= 1", df)  # warm up: pandas' lazy imports happen before watching
    with watched() as seen:
        try:
            result = evaluate(text, df)
        except UsradError as err:
            result = err
    assert set(seen["events"]) <= {"compile"}, (text, seen)  # ast.parse only parses; exec/open/import/system would show
    assert seen["files"] == [] and seen["modules"] == [], (text, seen)
    if isinstance(result, UsradError):
        assert result.reason and result.render().startswith("Task expression")
    else:
        assert isinstance(result, pd.Series) and result.dtype == "boolean" and len(result) == len(df)


def test_sentinel_pandas_would_run_the_expression_that_usrad_refuses(tmp_path):
    df = pd.DataFrame({"n_positive_nodes": [0, 2]})
    target = tmp_path / "written_by_expression.csv"
    text = f"n_positive_nodes.to_csv({str(target)!r}) == 0"
    df.eval(text, engine="python")  # what usrad did before: the config wrote a file
    assert target.exists()
    target.unlink()
    with pytest.raises(ExpressionError, match="function calls are not allowed"):
        evaluate(text, df)
    with pytest.raises(UsradError, match=r"tasks\[0\]\.label"):
        validate_config({"tasks": [{"name": "t", "label": text}]})
    assert not target.exists()


# ------------------------------------------------------------------------------------ agrees with pandas
NUM_COLUMNS = ["a", "b", "k", "`x y`"]


def _number(depth: int):
    leaf = st.one_of(st.sampled_from(NUM_COLUMNS), st.integers(-4, 4).map(str), st.sampled_from(["0.5", "2.25", "-1.5"]))
    if depth == 0:
        return leaf
    inner = _number(depth - 1)
    return st.one_of(leaf, st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
                     inner.map(lambda a: f"-{a}"), st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), leaf).map(" ".join))


CMP = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
WORDS = st.sampled_from(["'IDC'", "'ILC'", "\"other\"", "'é'", "''"])


def _comparison():
    """A comparison reading at least one column (pandas computes constants as Python scalars: ``not (0 == 1)`` is
    ``~False`` = -1 there, so constant-only parts are left out)."""
    num, col = _number(2), st.sampled_from(NUM_COLUMNS)
    return st.one_of(
        st.tuples(col, CMP, num).map(" ".join), st.tuples(num, CMP, col).map(" ".join),
        st.tuples(num, CMP, col, CMP, num).map(" ".join),
        st.tuples(st.sampled_from(["s", "t"]), CMP, st.one_of(WORDS, st.sampled_from(["s", "t"]))).map(" ".join),
        st.tuples(col, st.sampled_from(["in", "not in"]), st.lists(st.integers(-3, 3).map(str), max_size=3))
        .map(lambda t: f"{t[0]} {t[1]} [{', '.join(t[2])}]"),
        st.tuples(st.sampled_from(["s", "t"]), st.sampled_from(["in", "not in"]), st.lists(WORDS, max_size=3))
        .map(lambda t: f"{t[0]} {t[1]} [{', '.join(t[2])}]"),
    )


def _logical(inner):
    return st.one_of(
        st.tuples(inner, st.sampled_from(["&", "|", "and", "or"]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(inner, st.sampled_from(["&", "|", "and", "or"]), st.sampled_from(["True", "False"]))
        .map(lambda t: f"({t[0]}) {t[1]} {t[2]}"),
        inner.map(lambda a: f"not ({a})"), inner.map(lambda a: f"~({a})"),
        st.tuples(inner, st.sampled_from(["==", "!="]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
    )


ALLOWED = st.recursive(_comparison(), _logical, max_leaves=6)
SMALL = st.one_of(st.integers(-5, 5), st.sampled_from([0.5, -2.5, 1e-3, 3.0]))


@st.composite
def frames(draw):
    n = draw(st.integers(1, 8))
    col = lambda elems: draw(st.lists(elems, min_size=n, max_size=n))
    words = st.sampled_from(["IDC", "ILC", "other", "é", "", "idc"])
    return pd.DataFrame({"a": np.array(col(SMALL), dtype=float), "b": np.array(col(SMALL), dtype=float),
                         "k": np.array(col(st.integers(-5, 5)), dtype=np.int64), "x y": np.array(col(SMALL), dtype=float),
                         "s": pd.Series(col(words), dtype=object), "t": pd.Series(col(words), dtype=object)})


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=ALLOWED, df=frames())
def test_evaluator_agrees_with_pandas_eval_on_allowed_expressions(text, df):
    try:
        want = df.eval(text, engine="python")
    except ZeroDivisionError:  # pandas divides Python scalars: 1 / 0 fails; usrad gives inf as numpy does
        assume(False)
    want = pd.Series(np.broadcast_to(np.asarray(want), len(df)), index=df.index).astype(bool)
    got = evaluate(text, df)
    known = ~got.isna()
    if "/" not in text:  # without a division there is no 0/0: every row has a value
        assert known.all(), text
    assert got[known].astype(bool).tolist() == want[known].tolist(), text


# ------------------------------------------------------------------------------------ in the cohort and the config
def test_backticked_column_with_missing_cells_is_reported_not_labelled_negative(tmp_path):
    manifest = make_manifest(tmp_path)
    rewrite(manifest, lambda df: df.assign(**{"n nodes": df["n_positive_nodes"].where(~df.index.isin([3, 20]), "")}))
    cfg = config()
    cfg["tasks"] = [{"name": "spaced", "label": "`n nodes` >= 1", "subset": None}]
    _, problems = validate_manifest(manifest, cfg, check_images=False)
    assert [(p.row, p.patient, p.column) for p in problems] == [(4, "P003", "n nodes"), (21, "P020", "n nodes")]
    assert all("task 'spaced': label expression '`n nodes` >= 1' needs a value here, but it is missing" in p.message
               for p in problems)


def test_backticked_outcome_column_values_are_checked_like_plain_ones(tmp_path):
    manifest = make_manifest(tmp_path)
    rewrite(manifest, lambda df: df.assign(**{"n nodes": df["n_positive_nodes"].where(df.index != 5, "three")}))
    cfg = config()
    cfg["tasks"] = [{"name": "spaced", "label": "`n nodes` >= 1", "subset": "`n nodes` >= 0"}]
    _, problems = validate_manifest(manifest, cfg, check_images=False)
    assert [(p.row, p.patient, p.column) for p in problems] == [(6, "P005", "n nodes")]
    assert "'three' is not a number" in problems[0].message and "task 'spaced'" in problems[0].message


def test_text_compared_with_a_number_is_reported_by_validation(tmp_path):
    manifest = make_manifest(tmp_path)
    cfg = config()
    cfg["tasks"] = [{"name": "idc", "label": "histology == 1", "subset": None}]
    _, problems = validate_manifest(manifest, cfg, check_images=False)
    assert len(problems) == 1 and "task 'idc': label expression 'histology == 1' cannot be evaluated" in problems[0].message
    assert "column 'histology' is text and 1 is a number" in problems[0].message


def test_task_labels_with_backticks_and_in_lists(tmp_path):
    manifest = make_manifest(tmp_path)
    rewrite(manifest, lambda df: df.assign(**{"n nodes": df["n_positive_nodes"]}))
    df = validate_manifest(manifest, config(), check_images=False)[0]
    label = task_labels(df, {"name": "t", "label": "`n nodes` in [1, 2] or histology == 'ILC'", "subset": "`n nodes` >= 1"})
    want = (df["n_positive_nodes"].isin([1, 2]) | (df["histology"] == "ILC"))[df["n_positive_nodes"] >= 1]
    assert label.tolist() == want.astype(int).tolist() and label.name == "t"


def test_config_lists_every_refused_expression_naming_task_and_key():
    with pytest.raises(UsradError) as exc:
        validate_config({"seed": "x", "tasks": [
            {"name": "a", "label": "n_positive_nodes.to_csv('x') == 0"},
            {"name": "b", "label": "n_positive_nodes >= 1", "subset": "@os.getcwd() == ''"},
            {"name": "c", "label": "n_positive_nodes >= 1", "subset": ""}]})
    msgs = [p.message for p in exc.value.problems]
    assert len(msgs) == 3 and msgs[0].startswith("key 'seed'")  # the schema's problems and the expressions', at once
    assert msgs[1].startswith("key 'tasks[0].label' (task 'a'): expression \"n_positive_nodes.to_csv('x') == 0\" is refused: "
                              "function calls are not allowed: 'n_positive_nodes.to_csv(...)'")
    assert msgs[2].startswith("key 'tasks[1].subset' (task 'b')") and "'@' is not allowed" in msgs[2]


@pytest.mark.parametrize("label", ["@os.system('touch {target}') == 0", "n_positive_nodes.to_csv('{target}') == 0"])
def test_usrad_validate_refuses_a_config_that_would_run_code_and_writes_nothing(tmp_path, capsys, label):
    manifest = make_manifest(tmp_path)
    target = tmp_path / "created_by_config"
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump({"tasks": [{"name": "metastasis", "label": "n_positive_nodes >= 1"},
                                                  {"name": "evil", "label": label.format(target=target)}]}))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert validate_command(str(manifest), str(cfg_path)) == 2
    err = capsys.readouterr().err
    assert "Invalid configuration" in err and "key 'tasks[1].label' (task 'evil')" in err and "Traceback" not in err
    assert not target.exists() and sorted(p.name for p in tmp_path.iterdir()) == before
    assert cli_main(["validate", str(manifest), "--config", str(cfg_path)]) == 2
    assert "key 'tasks[1].label' (task 'evil')" in capsys.readouterr().err and not target.exists()
    assert validate_command(str(tmp_path / "no_such_manifest.csv"), str(cfg_path)) == 2  # refused before the
    err = capsys.readouterr().err  # manifest is read: no 'not found' for it
    assert "key 'tasks[1].label'" in err and "no_such_manifest" not in err and not target.exists()
    with pytest.raises(UsradError, match=r"tasks\[1\]\.label"):
        load_config(cfg_path)
    assert not Path(str(target)).exists()
