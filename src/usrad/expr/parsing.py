"""Parsing a task expression: text → checked :class:`~usrad.expr.Expr` (with :mod:`ast`, nothing is run), and
the columns it reads."""
from __future__ import annotations

import ast

from .kinds import static_problems
from .syntax import LOWER_BOOLEANS, MAX_DEPTH, MAX_LENGTH, Expr, ExpressionError, Source, quote_columns
from .whitelist import depth_exceeded, refusals


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
    code, names, reasons = quote_columns(text)
    code = code.lstrip(" \t\r\n\f")  # ast would read leading blanks as an indent
    try:
        tree = _syntax_tree(code, text)
    except ExpressionError as err:
        raise ExpressionError(text, reasons or err.reasons) from None  # '@x' alone would not parse: say why
    if depth_exceeded(tree):
        raise ExpressionError(text, [f"the expression is nested more than {MAX_DEPTH} levels deep"])
    src = Source(code, names)
    reasons += refusals(tree, src)
    if not reasons:
        reasons = static_problems(tree.body, src)
    if reasons:
        raise ExpressionError(text, reasons)
    found = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in LOWER_BOOLEANS),
                   key=lambda n: (n.lineno, n.col_offset))
    cols = tuple(dict.fromkeys(names.get(n.id, n.id) for n in found))
    return Expr(text=text, columns=cols, tree=tree.body, names=names)


def columns(text) -> list[str]:
    """Every column ``text`` reads (plain or backticked), in order of appearance; [] for None or blank text (no
    subset); ExpressionError if the expression is refused."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    return list((text if isinstance(text, Expr) else parse(text)).columns)
