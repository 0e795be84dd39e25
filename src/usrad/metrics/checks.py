"""Input checks shared by every metric: outcome/predictions, patient IDs, options, probabilities.

Each raises :class:`usrad.errors.UsradError` listing every problem and naming the offending argument.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import Problem, UsradError

#: Default confidence level of every interval.
LEVEL = 0.95

#: Knot positions (quantiles of logit p) of a restricted cubic spline with 3, 4 or 5 knots (Harrell,
#: Regression Modeling Strategies, 2nd ed., Table 2.3).
RCS_KNOT_QUANTILES = {3: (0.10, 0.50, 0.90), 4: (0.05, 0.35, 0.65, 0.95), 5: (0.05, 0.275, 0.5, 0.725, 0.95)}


def check_yp(y, p, *, name_p: str = "p", need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Outcome as int 0/1 and scores as float64, or UsradError listing every problem."""
    problems: list[Problem] = []
    y_arr = np.asarray(y)
    try:
        p_arr = pd.to_numeric(pd.Series(np.asarray(p, dtype=object).ravel()), errors="raise").to_numpy(
            dtype=float, na_value=np.nan).reshape(np.shape(p))
    except (TypeError, ValueError):
        p_arr = None
    if y_arr.ndim != 1:
        problems.append(Problem(f"outcome must be one-dimensional, got shape {y_arr.shape}", column="y"))
    if p_arr is None:
        problems.append(Problem(f"predictions must be numeric, got dtype {np.asarray(p).dtype}", column=name_p))
    elif p_arr.ndim != 1:
        problems.append(Problem(f"predictions must be one-dimensional, got shape {p_arr.shape}", column=name_p))
    if problems:
        raise UsradError("Cannot compute metrics", problems)
    if len(y_arr) != len(p_arr):
        problems.append(Problem(f"outcome has {len(y_arr)} values but predictions have {len(p_arr)}",
                                column=name_p))
    y_num = pd.to_numeric(pd.Series(y_arr), errors="coerce").to_numpy(dtype=float)
    bad_y = ~np.isin(y_num, (0.0, 1.0))
    if bad_y.any():
        shown = ", ".join(repr(v) for v in pd.unique(y_arr[bad_y])[:5])
        problems.append(Problem(f"outcome must be 0/1; {int(bad_y.sum())} value(s) are not (e.g. {shown})",
                                column="y"))
    bad_p = ~np.isfinite(p_arr)
    if bad_p.any():
        problems.append(Problem(f"{int(bad_p.sum())} prediction(s) are NaN or infinite "
                                f"(first at position {int(np.flatnonzero(bad_p)[0])})", column=name_p))
    if not problems and need_both and (y_num.min() == y_num.max()):
        problems.append(Problem(f"outcome has a single class ({int(y_num[0])}) — both classes are needed",
                                column="y"))
    if problems:
        raise UsradError("Cannot compute metrics", problems)
    return y_num.astype(np.int64), p_arr


def check_groups(groups, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise UsradError("Cannot compute metrics", [Problem(
            f"groups must have one patient ID per prediction ({n}), got shape {g.shape}", column="groups")])
    if pd.isna(g).any():
        raise UsradError("Cannot compute metrics", [Problem(
            f"{int(pd.isna(g).sum())} missing patient ID(s)", column="groups")])
    # patient IDs are strings everywhere; a mix of numbers and strings would not sort (np.unique)
    return g.astype(str) if g.dtype == object else g



def cluster_codes(groups: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer patient index per image (0..I-1) and the number of patients I."""
    _, codes = np.unique(groups, return_inverse=True)
    return codes.ravel(), int(codes.max()) + 1


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


#: Option checks: name -> (is it valid?, what is expected). Used by :func:`check_options`.
_OPTIONS = {
    "level": (lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
              and 0 < v < 1, "a number between 0 and 1 (e.g. 0.95 for 95 %)"),
    "n_boot": (lambda v: _is_int(v) and v >= 0, "a whole number ≥ 0"),
    "seed": (lambda v: _is_int(v) and v >= 0, "a whole number ≥ 0"),
    "n_grid": (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1"),
    "n_bins": (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1"),
    "knots": (lambda v: _is_int(v) and v in RCS_KNOT_QUANTILES, "3, 4 or 5"),
    "g": (lambda v: _is_int(v) and v >= 2, "a whole number ≥ 2"),
    "validation": (lambda v: isinstance(v, (bool, np.bool_)), "True (not fitted on these rows) or False (apparent)"),
}


def check_options(**options) -> None:
    """UsradError listing every option that is not what :data:`_OPTIONS` expects (each names the option)."""
    problems = [Problem(f"{name} must be {_OPTIONS[name][1]}, got {value!r}", column=name)
                for name, value in options.items() if not _OPTIONS[name][0](value)]
    if problems:
        raise UsradError("Cannot compute metrics", problems)


def check_probabilities(p: np.ndarray, name: str = "p") -> None:
    """Calibration needs probabilities: every value in [0, 1] (a score such as the rad-score is refused)."""
    bad = (p < 0) | (p > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UsradError("Cannot compute calibration metrics", [Problem(
            f"{int(bad.sum())} value(s) are not probabilities in [0, 1] (first at position {i}: {p[i]!r}); "
            "calibration needs predicted probabilities, not scores", column=name)])
