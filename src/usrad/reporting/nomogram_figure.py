"""The nomogram figure: the scales of :class:`usrad.nomogram.Nomogram` drawn (:func:`nomogram_figure`),
round ticks spaced for reading (:func:`nice_ticks`, :func:`thin_ticks`, :func:`spaced_probabilities`) and the
evaluation's nomogram model over the training rows (:func:`nomogram_model`). The arithmetic is
:mod:`usrad.nomogram`'s.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..models import nomogram_inputs
from ..nomogram import Nomogram, NomogramModel, raw_model
from .style import DOUBLE, MM, new_figure, save_figure, styled


def nice_ticks(lo: float, hi: float, n: int = 6) -> np.ndarray:
    """Round tick values inside [lo, hi], about ``n`` intervals, at least two ticks."""
    from matplotlib.ticker import MaxNLocator
    for k in range(max(1, n), max(1, n) + 10):
        t = MaxNLocator(nbins=k, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        t = t[(t >= lo - 1e-9) & (t <= hi + 1e-9)]
        if len(t) >= 2:
            return t
    return np.array([lo, hi])


def _num_label(v: float) -> str:
    return f"{v:g}".replace("-", "\u2212")


def _variable_scale(nomo: Nomogram, v) -> tuple[tuple, list[dict]]:
    """One variable's row of the nomogram: ``(label, [(x, text, above)], (x_start, x_end), minor ticks)``
    and its ticks as rows of the scales table (crowded labels alternate above and below the line)."""
    if v.categorical:
        levs = list(v.levels)
        p_l = [nomo.points(v, lv) for lv in levs]
        order = np.argsort(p_l, kind="mergesort")
        above = [True] * len(levs)
        for a, b in zip(order[:-1], order[1:]):  # crowded neighbours: alternate above / below
            if abs(p_l[b] - p_l[a]) < 7 and above[a]:
                above[b] = False
        xs = [p / nomo.max_points for p in p_l]
        return ((v.label or v.name, [(x, str(lv), up) for x, lv, up in zip(xs, levs, above)], (min(xs), max(xs)), ()),
                [{"axis": v.name, "value": lv, "points": p, "x": x} for lv, p, x in zip(levs, p_l, xs)])
    span_points = nomo.points(v, v.range[1]) - nomo.points(v, v.range[0])
    n_int = int(np.clip(abs(span_points) / 12, 1, 8))
    ticks = np.asarray(v.ticks if v.ticks is not None else nice_ticks(*v.range, n=n_int), dtype=float)
    ticks = ticks[(ticks >= v.range[0]) & (ticks <= v.range[1])]
    ends = sorted(nomo.points(v, e) / nomo.max_points for e in v.range)
    short = ends[1] - ends[0] < 0.08  # a variable with a small effect: its scale is a few points long
    if len(ticks) < 2 or short:  # label the two ends of the range instead
        ticks = np.asarray(v.range, dtype=float)
    p_t = [nomo.points(v, t) for t in ticks]
    xs = [p / nomo.max_points for p in p_t]
    above = [True, False] if short else [True] * len(ticks)  # short: one label above, one below
    return ((v.label or v.name, [(x, _num_label(t), up) for x, t, up in zip(xs, ticks, above)], tuple(ends), ()),
            [{"axis": v.name, "value": float(t), "points": p, "x": x} for t, p, x in zip(ticks, p_t, xs)])


@styled
def nomogram_figure(intercept: float, variables: Sequence, stem, outcome_label: str = "Risk of metastasis",
                    probabilities: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
                    title: str | None = None) -> tuple[pd.DataFrame, Nomogram]:
    """Draw the nomogram of a logistic model (:class:`Nomogram`; ``variables`` are
    :class:`NomogramVariable` or dicts with the same keys).

    Rows: Points (0–100), one scale per variable, Total points, and the probability axis. Returns
    ``(scales, nomogram)``; ``scales`` has one row per drawn tick: ``axis, value, points, x`` where ``x`` is
    the horizontal position (0–1) on the page (for the probability axis ``points`` is total points) —
    the test reads a patient's points off these scales and checks the probability.
    """
    nomo = Nomogram(intercept, list(variables))
    total_max = nomo.total_range()
    rows = []
    # what to draw, row by row: (label, [(x, text, above)], (x_start, x_end), minor ticks)
    spec = []
    pts = np.arange(0, nomo.max_points + 1e-9, 10)
    spec.append(("Points", [(p / nomo.max_points, _num_label(p), True) for p in pts], (0.0, 1.0),
                 np.arange(0, 100.01, 2) / 100))
    rows += [{"axis": "Points", "value": p, "points": p, "x": p / nomo.max_points} for p in pts]
    for v in nomo.variables:
        entry, scale_rows = _variable_scale(nomo, v)
        spec.append(entry)
        rows += scale_rows
    tt = nice_ticks(0, total_max, 10)
    spec.append(("Total points", [(t / total_max, _num_label(t), True) for t in tt], (0.0, 1.0), ()))
    rows += [{"axis": "Total points", "value": float(t), "points": float(t), "x": float(t / total_max)} for t in tt]
    lo_p, hi_p = nomo.probability(0.0), nomo.probability(total_max)
    shown = [p for p in probabilities if lo_p <= p <= hi_p]
    tp = [nomo.total_for_probability(p) for p in shown]
    xs = [t / total_max for t in tp]
    spec.append((outcome_label, [(x, f"{p:g}", True) for x, p in zip(xs, shown)],
                 (min(xs), max(xs)) if xs else (0.0, 0.0), ()))
    rows += [{"axis": "Probability", "value": p, "points": t, "x": t / total_max} for p, t in zip(shown, tp)]

    # vertical layout: 1 unit per row, more below a row whose labels hang under the line
    ys, y = [], 0.0
    for _, ticks, _, _ in spec:
        ys.append(y)
        y += 1.0 + (0.45 if any(not up for _, _, up in ticks) else 0.0)
    height_units = ys[-1] + 1.0
    fig = new_figure(DOUBLE, (12 + 9.5 * height_units) * MM)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set(xlim=(-0.3, 1.03), ylim=(ys[-1] + 0.45, -0.75))
    for (label, ticks, (x0, x1), minor), r in zip(spec, ys):
        ax.text(-0.3, r, label, ha="left", va="center", fontweight="bold")
        if x1 > x0:
            ax.plot([x0, x1], [r, r], color="black", lw=0.7, solid_capstyle="butt")
        for x, text, up in ticks:
            ax.plot([x, x], [r, r - 0.18 if up else r + 0.18], color="black", lw=0.7)
            ax.text(x, r - 0.24 if up else r + 0.24, text, ha="center", va="bottom" if up else "top")
        for x in minor:
            ax.plot([x, x], [r, r - 0.09], color="black", lw=0.5)
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return pd.DataFrame(rows), nomo


def nomogram_model(pipeline, X_train: pd.DataFrame) -> NomogramModel:
    """The fitted nomogram pipeline in raw units (:func:`usrad.nomogram.raw_model`) with scales over the
    training ranges of ``X_train`` (:func:`usrad.models.nomogram_inputs`) and thinned ticks."""
    nm = raw_model(pipeline, nomogram_inputs(pipeline, X_train))
    thin_ticks(nm.intercept, nm.variables)
    return nm


def thin_ticks(intercept: float, variables: list, min_points: float = 6.0) -> None:
    """Give each continuous scale round ticks at least ``min_points`` nomogram points apart (labels of a
    short scale would overlap otherwise); a scale shorter than that keeps one tick."""
    nomo = Nomogram(intercept, variables)
    for v in variables:
        if v.categorical:
            continue
        span = abs(nomo.points(v, v.range[1]) - nomo.points(v, v.range[0]))
        cand = nice_ticks(*v.range, n=int(np.clip(span / 12, 1, 8)))
        kept: list[float] = []
        for t in cand:
            if all(abs(nomo.points(v, t) - nomo.points(v, k)) >= min_points for k in kept):
                kept.append(float(t))
        v.ticks = kept


PROBABILITY_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


def spaced_probabilities(nm: NomogramModel, candidates: Sequence[float] = PROBABILITY_TICKS,
                         min_gap: float = 0.05) -> list[float]:
    """Probability ticks of the nomogram's risk axis at least ``min_gap`` (fraction of the width) apart, so
    their labels do not overlap; 0.5 is kept first, then outwards."""
    nomo = Nomogram(nm.intercept, nm.variables)
    total = nomo.total_range()
    lo, hi = nomo.probability(0.0), nomo.probability(total)
    xs = {p: nomo.total_for_probability(p) / total for p in candidates if lo <= p <= hi}
    order = sorted(xs, key=lambda p: (abs(p - 0.5), p))
    kept: list[float] = []
    for p in order:
        if all(abs(xs[p] - xs[q]) >= min_gap for q in kept):
            kept.append(p)
    return sorted(kept)
