"""usrad.errors.rule_errors, the context of every rule script: warnings into the rule's log, errors without a
traceback, and no half-written output."""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from usrad.errors import Problem, UsradError, rule_errors


def test_python_warnings_go_to_the_rule_log_not_the_terminal(tmp_path, capsys):
    log = tmp_path / "logs" / "rule.log"
    smk = SimpleNamespace(log=[str(log)], output=[])
    before = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with rule_errors(smk):
            np.exp(np.array([1000.0]))  # numpy's RuntimeWarning: overflow encountered in exp
            warnings.warn("a library's own warning", UserWarning)
    assert warnings.showwarning is before  # restored after the rule's work
    text = log.read_text()
    assert "RuntimeWarning: overflow encountered in exp" in text and "UserWarning: a library's own warning" in text
    captured = capsys.readouterr()
    assert "overflow" not in captured.err and "own warning" not in captured.err


def test_a_usrad_error_is_logged_removes_the_outputs_and_exits_1_without_traceback(tmp_path, capsys):
    log, out = tmp_path / "rule.log", tmp_path / "half.tsv"
    out.write_text("half")
    smk = SimpleNamespace(log=[str(log)], output=[str(out)])
    with pytest.raises(SystemExit) as ended:
        with rule_errors(smk):
            raise UsradError("Bad input", [Problem("row 3: age is 'abc'", file="manifest.csv")])
    assert ended.value.code == 1 and not out.exists()
    assert "row 3: age is 'abc'" in log.read_text()
    err = capsys.readouterr().err
    assert "manifest.csv" in err and "Traceback" not in err
