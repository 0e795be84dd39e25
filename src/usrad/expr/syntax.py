"""The syntax of task expressions: limits, operators, :class:`ExpressionError`, :class:`Expr`, the quoting of
`backticked` column names, snippets of the source for messages, literal values."""
from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field

from ..errors import UsradError

MAX_LENGTH = 1000  # characters of an expression
MAX_DEPTH = 50  # levels of its syntax tree (a 1,000-character expression of nested brackets would be ~500)
LOWER_BOOLEANS = {"true": True, "false": False}
ARITHMETIC = {ast.Add: ("+", operator.add), ast.Sub: ("-", operator.sub), ast.Mult: ("*", operator.mul),
              ast.Div: ("/", operator.truediv)}
LOGICAL = {ast.BitAnd: "&", ast.BitOr: "|"}


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


def quote_columns(text: str) -> tuple[str, dict[str, str], list[str]]:
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


class Source:
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


def literal_value(node: ast.AST):
    """The value of a literal node (number, text, true/false, -number); raises ValueError otherwise."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) in (int, float):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, str, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in LOWER_BOOLEANS:
        return LOWER_BOOLEANS[node.id]
    raise ValueError(node)


ExpressionError.__module__ = Expr.__module__ = "usrad.expr"  # their public home
