"""Types in task expressions (number, text, true/false), checked on the literals at parse time and on the
columns' values at evaluation."""
from __future__ import annotations

import ast

from .syntax import ARITHMETIC, Source, literal_value

KIND_NAMES = {"number": "a number", "text": "text", "bool": "true/false", "any": "missing everywhere"}


def kind_problem(op: ast.AST, left: str, right: str) -> str | None:
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


def _static_kind(node: ast.AST, src: Source) -> tuple[str, list[str]]:
    """(kind of ``node``: number, text, bool or column, problems) from its literals alone."""
    try:
        return _literal_kind(literal_value(node)), []
    except ValueError:
        pass
    if isinstance(node, ast.Name):
        return "column", []
    if isinstance(node, ast.Compare):
        return "bool", _static_compare(node, src)
    number = isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC or \
        isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
    parts = [node.operand] if isinstance(node, ast.UnaryOp) else [node.left, node.right] if isinstance(node, ast.BinOp) \
        else list(node.values)
    problems = []
    for part in parts:
        kind, probs = _static_kind(part, src)
        problems += probs
        if number and kind not in ("number", "column"):
            problems.append(f"arithmetic needs numbers, but {src.snippet(part)!r} is {KIND_NAMES[kind]}: {src.snippet(node)!r}")
        elif not number and kind not in ("bool", "column"):
            problems.append(f"and/or/not/&/|/~ need true/false values, but {src.snippet(part)!r} is {KIND_NAMES[kind]}: "
                            f"{src.snippet(node)!r}")
    return ("number" if number else "bool"), problems


def _static_compare(node: ast.Compare, src: Source) -> list[str]:
    left, problems = _static_kind(node.left, src)
    if isinstance(node.ops[0], (ast.In, ast.NotIn)):
        kinds = list(dict.fromkeys(_literal_kind(literal_value(e)) for e in node.comparators[0].elts))
        if len(kinds) > 1:
            problems.append(f"the list after 'in' mixes {' and '.join(KIND_NAMES[k] for k in kinds)}: {src.snippet(node)!r}")
        rights = [(node.ops[0], k) for k in kinds]
    else:
        rights = []
        for op, part in zip(node.ops, node.comparators):
            kind, probs = _static_kind(part, src)
            problems += probs
            rights.append((op, kind))
    for op, right in rights:
        why = kind_problem(op, left, right)
        if why:
            problems.append(f"{why}: {src.snippet(node)!r}")
        if not isinstance(op, (ast.In, ast.NotIn)):
            left = right
    return problems


def static_problems(body: ast.AST, src: Source) -> list[str]:
    kind, problems = _static_kind(body, src)
    if kind in ("number", "text"):
        problems.append(f"the expression gives {KIND_NAMES[kind]}, not true/false; write a comparison, e.g. x >= 1")
    return list(dict.fromkeys(problems))
