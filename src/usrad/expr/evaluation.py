"""Evaluating a task expression on the columns of a DataFrame: our own tree walker (no ``eval``, ``exec``,
``DataFrame.eval`` or ``query``), three-valued logic for missing values."""
from __future__ import annotations

import ast
import operator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .kinds import KIND_NAMES, kind_problem
from .parsing import parse
from .syntax import ARITHMETIC, LOGICAL, Expr, ExpressionError, Source, literal_value

_COMPARE = {ast.Eq: ("==", operator.eq), ast.NotEq: ("!=", operator.ne), ast.Lt: ("<", operator.lt),
            ast.LtE: ("<=", operator.le), ast.Gt: (">", operator.gt), ast.GtE: (">=", operator.ge)}


class _Unusable(Exception):
    """A column that an expression cannot use (its message says why)."""


@dataclass
class _Value:
    data: np.ndarray
    missing: np.ndarray  # bool: no value in this row
    kind: str  # number, text, bool, any (a column missing in every row)
    what: str  # how a message names it
    column: str | None = None


def _column_value(df: pd.DataFrame, name: str) -> _Value:
    s = df[name]
    what = f"column {name!r}"
    if isinstance(s, pd.DataFrame):
        raise _Unusable(f"{what} appears more than once in the table")
    missing = s.isna().to_numpy(dtype=bool)
    if missing.all():
        return _Value(np.full(len(s), np.nan), missing, "any", what, name)
    if pd.api.types.is_bool_dtype(s.dtype):
        return _Value(s.fillna(False).to_numpy(dtype=bool), missing, "bool", what, name)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_complex_dtype(s.dtype):
        data = s.to_numpy() if isinstance(s.dtype, np.dtype) else s.to_numpy(dtype=float, na_value=np.nan)
        return _Value(data, missing, "number", what, name)
    if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)
            or isinstance(s.dtype, pd.CategoricalDtype)):
        raise _Unusable(f"{what} holds {s.dtype} values, which expressions cannot use")
    values = s.astype(object).to_numpy()
    present = values[~missing]
    if all(isinstance(v, str) for v in present):
        return _Value(values, missing, "text", what, name)
    if all(isinstance(v, (bool, np.bool_)) for v in present):
        return _Value(np.where(missing, False, values).astype(bool), missing, "bool", what, name)
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in present):
        return _Value(pd.to_numeric(s.where(~s.isna()), errors="coerce").to_numpy(dtype=float), missing, "number", what, name)
    kinds = sorted({type(v).__name__ for v in present})
    raise _Unusable(f"{what} mixes values of types {', '.join(kinds)}; it must hold only numbers or only text")


def _broadcast(value, n: int, what: str) -> _Value:
    if isinstance(value, bool):
        return _Value(np.full(n, value, dtype=bool), np.zeros(n, bool), "bool", what)
    if isinstance(value, str):
        return _Value(np.full(n, value, dtype=object), np.zeros(n, bool), "text", what)
    if isinstance(value, int) and -2**63 <= value < 2**63:
        return _Value(np.full(n, value, dtype=np.int64), np.zeros(n, bool), "number", what)
    return _Value(np.full(n, float(value)), np.zeros(n, bool), "number", what)


def _kleene(op: str, values: list[np.ndarray], missing: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Three-valued and/or: a known False (and) / True (or) decides a row whatever the missing values."""
    known = [~m for m in missing]
    if op == "and":
        decided = np.logical_or.reduce([k & ~v for v, k in zip(values, known)])
        unknown = np.logical_or.reduce(missing) & ~decided
        return np.logical_and.reduce([v | m for v, m in zip(values, missing)]) & ~decided & ~unknown, unknown
    decided = np.logical_or.reduce([k & v for v, k in zip(values, known)])
    unknown = np.logical_or.reduce(missing) & ~decided
    return decided, unknown


class _Evaluator:
    def __init__(self, expr: Expr, df: pd.DataFrame):
        self.expr, self.df, self.n = expr, df, len(df)
        self.src = Source("", expr.names)

    def fail(self, node: ast.AST, why: str):
        raise ExpressionError(self.expr.text, [f"{why}: {self.src.snippet(node)!r}"])

    def value(self, node: ast.AST) -> _Value:
        try:
            literal = literal_value(node)
        except ValueError:
            pass
        else:
            return _broadcast(literal, self.n, repr(literal))
        if isinstance(node, ast.Name):
            name = self.expr.names.get(node.id, node.id)
            try:
                return _column_value(self.df, name)
            except _Unusable as exc:
                raise ExpressionError(self.expr.text, [str(exc)]) from None
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp) or (isinstance(node, ast.BinOp) and type(node.op) in LOGICAL):
            parts = node.values if isinstance(node, ast.BoolOp) else [node.left, node.right]
            op = "and" if isinstance(getattr(node, "op", None), (ast.And, ast.BitAnd)) else "or"
            logical = [self.logical(p) for p in parts]
            data, missing = _kleene(op, [v for v, _ in logical], [m for _, m in logical])
            return _Value(data, missing, "bool", self.src.snippet(node))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
            data, missing = self.logical(node.operand)
            return _Value(~data & ~missing, missing, "bool", self.src.snippet(node))
        if isinstance(node, ast.UnaryOp):  # - or + (whitelisted)
            v = self.number(node.operand, node)
            return _Value(-v.data if isinstance(node.op, ast.USub) else v.data, v.missing, v.kind, self.src.snippet(node))
        return self.arithmetic(node)

    def logical(self, node: ast.AST, root: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(true/false, missing) of an operand of and/or/not/&/|/~ or of the whole expression (``root``);
        a column holding only 0 and 1 counts as true/false."""
        v = self.value(node)
        if v.kind == "bool":
            return v.data.astype(bool) & ~v.missing, v.missing
        if v.kind == "any":
            return np.zeros(self.n, bool), v.missing
        if v.kind == "number" and v.column is not None and set(np.unique(v.data[~v.missing])) <= {0, 1}:
            return (v.data == 1) & ~v.missing, v.missing
        values = "numbers other than 0 and 1" if v.kind == "number" and v.column is not None else KIND_NAMES[v.kind]
        if root:
            self.fail(node, f"the expression gives {values}, not true/false; write a comparison, e.g. x >= 1")
        self.fail(node, f"{v.what} is {values}, not true/false (and/or/not/&/|/~ need true/false values, "
                        "e.g. comparisons in parentheses)")

    def number(self, node: ast.AST, parent: ast.AST) -> _Value:
        v = self.value(node)
        if v.kind not in ("number", "any"):
            self.fail(parent, f"arithmetic needs numbers, but {v.what} is {KIND_NAMES[v.kind]}")
        return v

    def arithmetic(self, node: ast.BinOp) -> _Value:
        a, b = self.number(node.left, node), self.number(node.right, node)
        symbol, fn = ARITHMETIC[type(node.op)]
        with np.errstate(all="ignore"):
            data = fn(a.data, b.data)
            if data.dtype.kind in "iu" and symbol != "/":
                approx = fn(a.data.astype(float), b.data.astype(float))
                if (np.abs(approx[~(a.missing | b.missing)]) >= 2.0**63).any():
                    self.fail(node, "the numbers are too large")
        missing = a.missing | b.missing | (np.isnan(data) if data.dtype.kind == "f" else False)
        return _Value(data, missing, "number", self.src.snippet(node))

    def compare(self, node: ast.Compare) -> _Value:
        left = self.value(node.left)
        if isinstance(node.ops[0], (ast.In, ast.NotIn)):
            return self.isin(node, left)
        results, missing = [], []
        for op, right_node in zip(node.ops, node.comparators):
            right = self.value(right_node)
            why = kind_problem(op, left.kind, right.kind)
            if why:
                self.fail(node, f"{left.what} is {KIND_NAMES[left.kind]} and {right.what} is {KIND_NAMES[right.kind]}; {why}")
            ok = ~(left.missing | right.missing)
            fn = _COMPARE[type(op)][1]
            data = np.zeros(self.n, bool)
            with np.errstate(all="ignore"):
                if "text" in (left.kind, right.kind):
                    data[ok] = np.asarray(fn(left.data[ok], right.data[ok]), dtype=bool)
                else:
                    data = np.asarray(fn(left.data, right.data), dtype=bool) & ok
            results.append(data)
            missing.append(~ok)
            left = right
        data, unknown = _kleene("and", results, missing)
        return _Value(data, unknown, "bool", self.src.snippet(node))

    def isin(self, node: ast.Compare, left: _Value) -> _Value:
        items = [literal_value(e) for e in node.comparators[0].elts]
        for item in items:
            kind = "bool" if isinstance(item, bool) else "text" if isinstance(item, str) else "number"
            why = kind_problem(node.ops[0], left.kind, kind)
            if why:
                self.fail(node, f"{left.what} is {KIND_NAMES[left.kind]} and {item!r} is {KIND_NAMES[kind]}; {why}")
        data = pd.Series(left.data, dtype=object if left.kind == "text" else None).isin(items).to_numpy(dtype=bool)
        if isinstance(node.ops[0], ast.NotIn):
            data = ~data
        return _Value(data & ~left.missing, left.missing, "bool", self.src.snippet(node))


def evaluate(expr, df: pd.DataFrame) -> pd.Series:
    """True/false of ``expr`` (text or :class:`Expr`) for each row of ``df``: a pandas ``boolean`` Series on
    ``df.index``, ``<NA>`` where the result depends on a missing value (or on 0/0). Raises ExpressionError
    (refused expression, unknown column, values of the wrong type)."""
    parsed = expr if isinstance(expr, Expr) else parse(expr)
    unknown = [c for c in parsed.columns if c not in df.columns]
    if unknown:
        raise ExpressionError(parsed.text, [f"uses {', '.join(map(repr, unknown))}, which the table does not have"])
    ev = _Evaluator(parsed, df)
    data, missing = ev.logical(parsed.tree, root=True)
    return pd.Series(pd.arrays.BooleanArray(data & ~missing, missing.copy()), index=df.index)
