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

from .evaluation import evaluate
from .parsing import columns, parse
from .syntax import MAX_DEPTH, MAX_LENGTH, Expr, ExpressionError, shown

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "Expr", "ExpressionError", "columns", "evaluate", "parse", "shown"]
