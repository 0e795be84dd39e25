"""Task expressions: the small language of ``tasks[].label`` and ``tasks[].subset``, which never runs code.

A config is data shared between groups, so its expressions are parsed here with :mod:`ast` and an explicit
whitelist, and evaluated by our own tree walker on the columns of a DataFrame (no ``eval``, ``exec``,
``DataFrame.eval`` or ``query``). The language (``docs/manifest.md``, section "Task expressions")::

    expression := comparison | expression ("and" | "or" | "&" | "|") expression
                | ("not" | "~") expression | "(" expression ")" | column | true | false
    comparison := value (("==" | "!=" | "<" | "<=" | ">" | ">=") value)+      # chained as in Python
                | value ("in" | "not in") "[" literal ("," literal)* "]"
    value      := column | literal | value ("+" | "-" | "*" | "/") value | ("-" | "+") value | "(" value ")"
    column     := identifier | "`" any characters but a backtick "`"           # as pandas allows
    literal    := number | 'text' | "text" | True | False | true | false | -number

Precedence is Python's (``ast``). Anything else is refused with a message naming it: function calls,
attributes (``x.to_csv``), subscripts, ``@`` variables, names starting with ``__``, lambdas, comprehensions,
f-strings, ``:=``, ``*``, dicts, sets, tuples, ``if``-expressions, ``None``, comments, ``** % // ^ << >> is``.
Three forms that pandas reads differently from Python (it turns ``&`` / ``|`` into ``and`` / ``or``) are
refused too, so that every accepted expression means the same under both: an unparenthesised ``&`` / ``|``
inside a comparison (``a > 1 & b < 2``), after ``not``, or beside ``and`` / ``or``. Texts are at most
:data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` levels deep (never a RecursionError).

Types: numbers compare with numbers (and with true/false, as 1/0), text with text; ``and or not & | ~``
need true/false values (a column holding only 0 and 1 counts as true/false, 1 = true); ``+ - * /`` need
numbers. A mismatch (``birads == 3`` on a text column, ``histology < 2``) is an error, never a silent
False. Missing values are not compared: :func:`evaluate` gives ``<NA>`` for a row whose result depends
on a missing value (Kleene logic: ``False & <NA>`` is False), and the caller reports it.
"""
from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import UsradError

MAX_LENGTH = 1000  # characters of an expression
MAX_DEPTH = 50  # levels of its syntax tree (a 1,000-character expression of nested brackets would be ~500)
_LOWER_BOOLEANS = {"true": True, "false": False}
_COMPARE = {ast.Eq: ("==", operator.eq), ast.NotEq: ("!=", operator.ne), ast.Lt: ("<", operator.lt),
            ast.LtE: ("<=", operator.le), ast.Gt: (">", operator.gt), ast.GtE: (">=", operator.ge)}
_ARITHMETIC = {ast.Add: ("+", operator.add), ast.Sub: ("-", operator.sub), ast.Mult: ("*", operator.mul),
               ast.Div: ("/", operator.truediv)}
_LOGICAL = {ast.BitAnd: "&", ast.BitOr: "|"}
_REFUSED_OPERATORS = {ast.Pow: "**", ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.LShift: "<<",
                      ast.RShift: ">>", ast.BitXor: "^"}
_REFUSED_NODES = {
    ast.Call: "function calls", ast.Attribute: "attributes ('.' after a value)", ast.Subscript: "subscripts ('[...]' after a value)",
    ast.Lambda: "lambda functions", ast.ListComp: "comprehensions", ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions", ast.NamedExpr: "assignments (':=')",
    ast.Starred: "starred values ('*')", ast.Dict: "dicts", ast.Set: "sets", ast.Tuple: "tuples",
    ast.JoinedStr: "f-strings", ast.FormattedValue: "f-strings", ast.IfExp: "if-expressions",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield", ast.Slice: "slices",
}
_KIND_NAMES = {"number": "a number", "text": "text", "bool": "true/false", "any": "missing everywhere"}


class ExpressionError(UsradError):
    """A task expression that is refused (``reasons``: what is wrong, each naming the offending part)."""

    def __init__(self, text, reasons: list[str]):
        self.text = text
        self.reasons = list(reasons)
        self.reason = "; ".join(self.reasons)
        super().__init__(f"Task expression {shown(text)} is refused: {self.reason}")


@dataclass(frozen=True)
class Expr:
    """A parsed, checked expression: ``text`` as written, ``columns`` it reads (in order of appearance)."""

    text: str
    columns: tuple[str, ...]
    tree: ast.expr = field(repr=False, compare=False)
    names: dict = field(repr=False, compare=False)  # identifier in the tree -> column (backticked names)


def shown(text, limit: int = 100) -> str:
    """``repr(text)``, shortened to about ``limit`` characters (a message quotes expressions)."""
    r = repr(text)
    return r if len(r) <= limit else r[: limit - 12] + "…' (shortened)"


# --------------------------------------------------------------------------------------------------
# Parsing

def _string_end(text: str, i: int) -> int:
    """Index just after the string literal starting at ``text[i]`` (a quote); len(text) if it is not closed."""
    quote = text[i: i + 3] if text[i: i + 3] in ("'''", '"""') else text[i]
    j = i + len(quote)
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif text.startswith(quote, j):
            return j + len(quote)
        elif len(quote) == 1 and text[j] == "\n":
            return j
        else:
            j += 1
    return len(text)


def _quote_columns(text: str) -> tuple[str, dict[str, str], list[str]]:
    """Replace each `backticked name` by a fresh identifier and line breaks (outside texts) by blanks;
    (code, {identifier: name}, reasons refused)."""
    prefix = "_usrad_column_"
    while prefix in text:
        prefix += "_"
    out, names, reasons, i, depth = [], {}, [], 0, 0
    while i < len(text):
        ch = text[i]
        depth += (ch in "([{") - (ch in ")]}")
        if depth > MAX_DEPTH:
            return text, names, [f"the expression is nested more than {MAX_DEPTH} levels deep (brackets)"]
        if ch in "'\"":
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
        elif ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                return text, names, [f"a backtick is not closed: {shown(text[i:i + 30])}"]
            name = text[i + 1:end]
            if not name:
                reasons.append("an empty column name ``")
            ident = f"{prefix}{len(names)}"
            names[ident] = name
            out.append(f" {ident} ")
            i = end + 1
        elif ch == "#":
            return text, names, [f"comments ('#') are not allowed: {shown(text[i:i + 30])}"]
        elif ch == "@":
            word = re.match(r"@[\w.]*", text[i:]).group(0)
            reasons.append(f"'@' is not allowed (pandas reads '@name' as a variable of the running program): {shown(word)}")
            out.append(" ")
            i += 1
        else:
            out.append(" " if ch in "\r\n" else ch)  # a YAML block may break an expression over lines
            i += 1
    return "".join(out), names, reasons


def _depth_exceeded(tree: ast.AST) -> bool:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return False


class _Source:
    """The code given to ``ast`` and its backticked names: snippets and parentheses of nodes."""

    def __init__(self, code: str, names: dict[str, str]):
        self.code = code.encode("utf-8")  # ast offsets count UTF-8 bytes
        self.names = names
        self.line_starts = [0] + [m.end() for m in re.finditer(rb"\n", self.code)]

    def snippet(self, node: ast.AST, limit: int = 60) -> str:
        text = ast.unparse(node)
        for ident, name in self.names.items():
            text = re.sub(rf"\b{ident}\b", lambda _m, n=name: f"`{n}`", text)
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def parenthesised(self, node: ast.AST) -> bool:
        start = self.line_starts[node.lineno - 1] + node.col_offset
        end = self.line_starts[node.end_lineno - 1] + node.end_col_offset
        before = self.code[:start].rstrip(b" \t\r\n\f\\")
        after = self.code[end:].lstrip(b" \t\r\n\f\\")
        return before.endswith(b"(") and after.startswith(b")")


def _literal(node: ast.AST):
    """The value of a literal node (number, text, true/false, -number); raises ValueError otherwise."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) in (int, float):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, str, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in _LOWER_BOOLEANS:
        return _LOWER_BOOLEANS[node.id]
    raise ValueError(node)


def _constant_problem(node: ast.Constant, src: _Source) -> str | None:
    if type(node.value) in (int, float, str, bool):
        return None
    what = {type(None): "None (missing values are reported, not compared)", bytes: "byte strings",
            complex: "complex numbers", type(Ellipsis): "'...'"}.get(type(node.value), "this literal")
    return f"{what} not allowed: {src.snippet(node)!r}"


def _in_problem(node: ast.Compare, src: _Source) -> str | None:
    if len(node.ops) > 1:
        return f"'in' / 'not in' cannot be chained with other comparisons; use parentheses: {src.snippet(node)!r}"
    right = node.comparators[0]
    if not isinstance(right, ast.List):
        return f"'in' / 'not in' need a list of literals on the right, e.g. x in [1, 2]: {src.snippet(node)!r}"
    for elt in right.elts:
        try:
            _literal(elt)
        except ValueError:
            return f"the list after 'in' may hold only numbers, texts and true/false: {src.snippet(elt)!r}"
    return None


def _node_problem(node: ast.AST, parent: ast.AST | None, src: _Source) -> str | None:
    """Why ``node`` is refused (None if it is allowed); its children are checked separately."""
    kind = type(node)
    if kind in _REFUSED_NODES:
        shown_part = f"{src.snippet(node.func)}(...)" if isinstance(node, ast.Call) else src.snippet(node)
        return f"{_REFUSED_NODES[kind]} are not allowed: {shown_part!r}"
    if isinstance(node, ast.BinOp) and type(node.op) in _REFUSED_OPERATORS:
        return f"the operator '{_REFUSED_OPERATORS[type(node.op)]}' is not allowed: {src.snippet(node)!r}"
    if isinstance(node, ast.BinOp) and type(node.op) in _LOGICAL and isinstance(parent, (ast.Compare, ast.BoolOp, ast.UnaryOp)) \
            and not src.parenthesised(node):
        return _ambiguous(_LOGICAL[type(node.op)], parent, src)
    if isinstance(node, ast.Compare):
        if any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
            return f"'is' / 'is not' are not allowed (use == or !=): {src.snippet(node)!r}"
        if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            return _in_problem(node, src)
    if isinstance(node, ast.List):  # the list of an 'in' is checked with its comparison, never visited
        return f"a list is allowed only after 'in' / 'not in': {src.snippet(node)!r}"
    if isinstance(node, ast.Name) and node.id.startswith("__"):
        return f"names starting with '__' are not allowed (put a column of that name in backticks): {node.id!r}"
    if isinstance(node, ast.Constant):
        return _constant_problem(node, src)
    if not isinstance(node, (ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name, ast.List,
                             ast.operator, ast.boolop, ast.unaryop, ast.cmpop, ast.expr_context)):
        return f"{kind.__name__} is not allowed: {src.snippet(node)!r}"
    return None


def _ambiguous(symbol: str, parent: ast.AST, src: _Source) -> str:
    """An unparenthesised & / | that pandas (which reads them as and / or) and Python read differently."""
    if isinstance(parent, ast.Compare):
        why = f"'{symbol}' binds tighter than comparisons: put each comparison in parentheses, e.g. (a > 1) {symbol} (b < 2)"
    elif isinstance(parent, ast.UnaryOp):
        why = f"'not x {symbol} y' means not (x {symbol} y) in Python but (not x) {symbol} y in pandas: write one of these"
    else:
        why = f"'{symbol}' beside 'and'/'or' is read differently by Python and pandas: add parentheses"
    return f"{why}: {src.snippet(parent)!r}"


def _refusals(tree: ast.Expression, src: _Source) -> list[str]:
    """Every refused part of the tree (a refused node's own children are not inspected)."""
    reasons, stack = [], [(tree, None)]
    while stack:
        node, parent = stack.pop()
        why = _node_problem(node, parent, src)
        if why:
            reasons.append(why)
            continue
        if isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            stack.append((node.left, node))  # the list of literals was checked whole
            continue
        stack.extend((child, node) for child in reversed(list(ast.iter_child_nodes(node))))
    return list(dict.fromkeys(reasons))


def _syntax_tree(code: str, text: str) -> ast.Expression:
    try:
        return ast.parse(code, mode="eval")
    except SyntaxError as exc:
        blanks = len(text) - len(text.lstrip(" \t\r\n\f"))
        at = f" at character {exc.offset + blanks}" if exc.offset and exc.lineno == 1 and code == text[blanks:] else ""
        raise ExpressionError(text, [f"not a valid expression ({exc.msg}{at})"]) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes; too deep for the parser
        raise ExpressionError(text, [f"not a valid expression ({type(exc).__name__}: {exc})"]) from None


def parse(text) -> Expr:
    """Parse and check ``text``; raises :class:`ExpressionError` naming every refused part. Runs nothing."""
    if not isinstance(text, str):
        raise ExpressionError(text, [f"an expression must be text, not {type(text).__name__}"])
    if not text.strip():
        raise ExpressionError(text, ["the expression is empty"])
    if len(text) > MAX_LENGTH:
        raise ExpressionError(text, [f"the expression has {len(text)} characters; at most {MAX_LENGTH} are allowed"])
    code, names, reasons = _quote_columns(text)
    code = code.lstrip(" \t\r\n\f")  # ast would read leading blanks as an indent
    try:
        tree = _syntax_tree(code, text)
    except ExpressionError as err:
        raise ExpressionError(text, reasons or err.reasons) from None  # '@x' alone would not parse: say why
    if _depth_exceeded(tree):
        raise ExpressionError(text, [f"the expression is nested more than {MAX_DEPTH} levels deep"])
    src = _Source(code, names)
    reasons += _refusals(tree, src)
    if not reasons:
        reasons = _static_problems(tree.body, src)
    if reasons:
        raise ExpressionError(text, reasons)
    found = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in _LOWER_BOOLEANS),
                   key=lambda n: (n.lineno, n.col_offset))
    cols = tuple(dict.fromkeys(names.get(n.id, n.id) for n in found))
    return Expr(text=text, columns=cols, tree=tree.body, names=names)


def columns(text) -> list[str]:
    """Every column ``text`` reads (plain or backticked), in order of appearance; [] for None or blank text (no
    subset); ExpressionError if the expression is refused."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    return list((text if isinstance(text, Expr) else parse(text)).columns)


# --------------------------------------------------------------------------------------------------
# Types (checked on the literals at parse time, on the columns' values at evaluation)

def _kind_problem(op: ast.AST, left: str, right: str) -> str | None:
    """Why values of kinds ``left`` and ``right`` cannot be compared with ``op`` (None if they can)."""
    if "any" in (left, right) or "column" in (left, right):
        return None
    if isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)):
        ok = (left == right == "text") or {left, right} <= {"number", "bool"}
    else:
        ok = left == right and left in ("number", "text")
    if ok:
        return None
    if "text" in (left, right) and "number" in (left, right):
        return ("text and numbers cannot be compared (a text column needs text in quotes, e.g. grade == '3'; a number "
                "column a number without quotes, e.g. age > 40)")
    if "bool" in (left, right):
        return "true/false values cannot be ordered" if left == right else "true/false and text cannot be compared"
    return "these values cannot be compared"


def _literal_kind(value) -> str:
    return "bool" if isinstance(value, bool) else "text" if isinstance(value, str) else "number"


def _static_kind(node: ast.AST, src: _Source) -> tuple[str, list[str]]:
    """(kind of ``node``: number, text, bool or column, problems) from its literals alone."""
    try:
        return _literal_kind(_literal(node)), []
    except ValueError:
        pass
    if isinstance(node, ast.Name):
        return "column", []
    if isinstance(node, ast.Compare):
        return "bool", _static_compare(node, src)
    number = isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC or \
        isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
    parts = [node.operand] if isinstance(node, ast.UnaryOp) else [node.left, node.right] if isinstance(node, ast.BinOp) \
        else list(node.values)
    problems = []
    for part in parts:
        kind, probs = _static_kind(part, src)
        problems += probs
        if number and kind not in ("number", "column"):
            problems.append(f"arithmetic needs numbers, but {src.snippet(part)!r} is {_KIND_NAMES[kind]}: {src.snippet(node)!r}")
        elif not number and kind not in ("bool", "column"):
            problems.append(f"and/or/not/&/|/~ need true/false values, but {src.snippet(part)!r} is {_KIND_NAMES[kind]}: "
                            f"{src.snippet(node)!r}")
    return ("number" if number else "bool"), problems


def _static_compare(node: ast.Compare, src: _Source) -> list[str]:
    left, problems = _static_kind(node.left, src)
    if isinstance(node.ops[0], (ast.In, ast.NotIn)):
        kinds = list(dict.fromkeys(_literal_kind(_literal(e)) for e in node.comparators[0].elts))
        if len(kinds) > 1:
            problems.append(f"the list after 'in' mixes {' and '.join(_KIND_NAMES[k] for k in kinds)}: {src.snippet(node)!r}")
        rights = [(node.ops[0], k) for k in kinds]
    else:
        rights = []
        for op, part in zip(node.ops, node.comparators):
            kind, probs = _static_kind(part, src)
            problems += probs
            rights.append((op, kind))
    for op, right in rights:
        why = _kind_problem(op, left, right)
        if why:
            problems.append(f"{why}: {src.snippet(node)!r}")
        if not isinstance(op, (ast.In, ast.NotIn)):
            left = right
    return problems


def _static_problems(body: ast.AST, src: _Source) -> list[str]:
    kind, problems = _static_kind(body, src)
    if kind in ("number", "text"):
        problems.append(f"the expression gives {_KIND_NAMES[kind]}, not true/false; write a comparison, e.g. x >= 1")
    return list(dict.fromkeys(problems))


# --------------------------------------------------------------------------------------------------
# Evaluation

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
        self.src = _Source("", expr.names)

    def fail(self, node: ast.AST, why: str):
        raise ExpressionError(self.expr.text, [f"{why}: {self.src.snippet(node)!r}"])

    def value(self, node: ast.AST) -> _Value:
        try:
            literal = _literal(node)
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
        if isinstance(node, ast.BoolOp) or (isinstance(node, ast.BinOp) and type(node.op) in _LOGICAL):
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
        values = "numbers other than 0 and 1" if v.kind == "number" and v.column is not None else _KIND_NAMES[v.kind]
        if root:
            self.fail(node, f"the expression gives {values}, not true/false; write a comparison, e.g. x >= 1")
        self.fail(node, f"{v.what} is {values}, not true/false (and/or/not/&/|/~ need true/false values, "
                        "e.g. comparisons in parentheses)")

    def number(self, node: ast.AST, parent: ast.AST) -> _Value:
        v = self.value(node)
        if v.kind not in ("number", "any"):
            self.fail(parent, f"arithmetic needs numbers, but {v.what} is {_KIND_NAMES[v.kind]}")
        return v

    def arithmetic(self, node: ast.BinOp) -> _Value:
        a, b = self.number(node.left, node), self.number(node.right, node)
        symbol, fn = _ARITHMETIC[type(node.op)]
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
            why = _kind_problem(op, left.kind, right.kind)
            if why:
                self.fail(node, f"{left.what} is {_KIND_NAMES[left.kind]} and {right.what} is {_KIND_NAMES[right.kind]}; {why}")
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
        items = [_literal(e) for e in node.comparators[0].elts]
        for item in items:
            kind = "bool" if isinstance(item, bool) else "text" if isinstance(item, str) else "number"
            why = _kind_problem(node.ops[0], left.kind, kind)
            if why:
                self.fail(node, f"{left.what} is {_KIND_NAMES[left.kind]} and {item!r} is {_KIND_NAMES[kind]}; {why}")
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
