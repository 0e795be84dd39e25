"""What task expressions may contain: the explicit whitelist of syntax (function calls, attributes, ``@``
variables … are refused, each with a message naming the offending part), the depth limit."""
from __future__ import annotations

import ast

from .syntax import LOGICAL, MAX_DEPTH, Source, literal_value

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


def depth_exceeded(tree: ast.AST) -> bool:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return False


def _constant_problem(node: ast.Constant, src: Source) -> str | None:
    if type(node.value) in (int, float, str, bool):
        return None
    what = {type(None): "None (missing values are reported, not compared)", bytes: "byte strings",
            complex: "complex numbers", type(Ellipsis): "'...'"}.get(type(node.value), "this literal")
    return f"{what} not allowed: {src.snippet(node)!r}"


def _in_problem(node: ast.Compare, src: Source) -> str | None:
    if len(node.ops) > 1:
        return f"'in' / 'not in' cannot be chained with other comparisons; use parentheses: {src.snippet(node)!r}"
    right = node.comparators[0]
    if not isinstance(right, ast.List):
        return f"'in' / 'not in' need a list of literals on the right, e.g. x in [1, 2]: {src.snippet(node)!r}"
    for elt in right.elts:
        try:
            literal_value(elt)
        except ValueError:
            return f"the list after 'in' may hold only numbers, texts and true/false: {src.snippet(elt)!r}"
    return None


def _node_problem(node: ast.AST, parent: ast.AST | None, src: Source) -> str | None:
    """Why ``node`` is refused (None if it is allowed); its children are checked separately."""
    kind = type(node)
    if kind in _REFUSED_NODES:
        shown_part = f"{src.snippet(node.func)}(...)" if isinstance(node, ast.Call) else src.snippet(node)
        return f"{_REFUSED_NODES[kind]} are not allowed: {shown_part!r}"
    if isinstance(node, ast.BinOp) and type(node.op) in _REFUSED_OPERATORS:
        return f"the operator '{_REFUSED_OPERATORS[type(node.op)]}' is not allowed: {src.snippet(node)!r}"
    if isinstance(node, ast.BinOp) and type(node.op) in LOGICAL and isinstance(parent, (ast.Compare, ast.BoolOp, ast.UnaryOp)) \
            and not src.parenthesised(node):
        return _ambiguous(LOGICAL[type(node.op)], parent, src)
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


def _ambiguous(symbol: str, parent: ast.AST, src: Source) -> str:
    """An unparenthesised & / | that pandas (which reads them as and / or) and Python read differently."""
    if isinstance(parent, ast.Compare):
        why = f"'{symbol}' binds tighter than comparisons: put each comparison in parentheses, e.g. (a > 1) {symbol} (b < 2)"
    elif isinstance(parent, ast.UnaryOp):
        why = f"'not x {symbol} y' means not (x {symbol} y) in Python but (not x) {symbol} y in pandas: write one of these"
    else:
        why = f"'{symbol}' beside 'and'/'or' is read differently by Python and pandas: add parentheses"
    return f"{why}: {src.snippet(parent)!r}"


def refusals(tree: ast.Expression, src: Source) -> list[str]:
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
