"""The calibration figure (:func:`calibration_figure`), drawn from the calibration tables of
:func:`usrad.reporting.curves.calibration_tables`: smoothed curve with its band, mirrored histograms and the
calibration intercept/slope/Hosmer–Lemeshow text per panel. Nothing here computes a statistic.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import Problem, UsradError
from .curves import CALIBRATION_COLUMNS, CURVE_COLUMNS
from .predictions import check_predictions, models_present, select_rows, splits_present, task_of
from .style import (
    BASE_MODELS, DOUBLE, LABEL, MIN_FONT_PT, MM, SINGLE, SPLITS, SPLIT_TITLES, fmt_num, model_colour, model_label,
    new_figure, save_figure, styled
)


#: Split names in the calibration figure: the training panel shows apparent (in-sample) predictions.
SPLIT_TITLES_CALIBRATION = {**SPLIT_TITLES, "train": "Training set (apparent)"}


def _p_text(p) -> str:
    x = float(p) if p is not None and p != "" else float("nan")
    return "P NA" if not np.isfinite(x) else ("P < 0.001" if x < 0.001 else f"P = {x:.3f}")


#: The lines of numbers above each calibration panel, filled from one calibration-table row.
CALIBRATION_TEXT_LINES = (
    lambda r: f"{int(r['n_patients'])} patients, {int(r['n'])} images",
    lambda r: f"Intercept {fmt_num(r['intercept'])} ({fmt_num(r['intercept_low'])}, {fmt_num(r['intercept_high'])})",
    lambda r: f"Slope {fmt_num(r['slope'])} ({fmt_num(r['slope_low'])}, {fmt_num(r['slope_high'])})",
    lambda r: f"Mean risk {fmt_num(r['mean_predicted'])}, observed {fmt_num(r['observed'])}",
    lambda r: f"Brier {fmt_num(r['brier'], 3)}, HL {_p_text(r['hl_p'])}",
)
_TEXT_LINE_PT = MIN_FONT_PT * 1.15 * 1.2  # height of one 7-pt line at line spacing 1.15 (DejaVu Sans)


def calibration_text(row: Mapping) -> str:
    """The numbers a calibration panel prints, from one calibration-table row (:data:`CALIBRATION_COLUMNS`)."""
    return "\n".join(line(row) for line in CALIBRATION_TEXT_LINES)


def _calibration_inputs(calibration: pd.DataFrame, curve: pd.DataFrame, task, models, splits):
    """Checked tables and the (model, split) panels to draw: UsradError naming what is missing."""
    problems = [Problem("required column is missing", column=c, file=name)
                for name, df, cols in (("calibration table", calibration, CALIBRATION_COLUMNS),
                                       ("calibration curve table", curve, CURVE_COLUMNS))
                for c in cols if c not in df.columns]
    if problems:
        raise UsradError("Calibration tables are not usable", problems)
    cal = calibration.assign(split=calibration["split"].astype(str), model=calibration["model"].astype(str))
    cur = curve.assign(split=curve["split"].astype(str), model=curve["model"].astype(str))
    try:  # the same checks as for a predictions table, reported as the calibration table's
        task = task_of(cal, task)
        models = models_present(cal, task, models)
        splits = splits_present(cal, task, splits)
    except UsradError as exc:
        raise UsradError(exc.summary.replace("Predictions table", "Calibration table"), exc.problems) from None
    cal, cur = cal[cal["task"] == task], cur[cur["task"] == task]
    for m in models:
        for s in splits:
            n_rows = int(((cal["model"] == m) & (cal["split"] == s)).sum())
            n_pts = int(((cur["model"] == m) & (cur["split"] == s)).sum())
            if n_rows > 1 or (n_rows == 1 and n_pts < 2):
                problems.append(Problem(f"model {m!r}, split {s!r}: {n_rows} calibration row(s) and {n_pts} "
                                        "curve point(s); expected one row and at least two points", column="model"))
    if problems:
        raise UsradError("Calibration tables do not match", problems)
    return cal, cur, task, models, splits


#: Bins of the histogram of predicted probabilities under each calibration panel.
CALIBRATION_HIST_BINS = np.linspace(0, 1, 41)


def _histogram_counts(pred: pd.DataFrame, task, model: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images per probability bin: positive cases and negative cases (the raw predictions, no statistic)."""
    d = select_rows(pred, task, split, model)
    p, y = d["probability"].to_numpy(float), d[LABEL].to_numpy()
    return (np.histogram(p[y == 1], bins=CALIBRATION_HIST_BINS)[0],
            np.histogram(p[y == 0], bins=CALIBRATION_HIST_BINS)[0])


def _mirrored_histogram(hx, up: np.ndarray, down: np.ndarray) -> None:
    """Positive cases above the line, negative cases below it, scaled to the panel's largest bin (no y axis:
    the strip shows where the predictions lie; tick labels on every strip would narrow the panels)."""
    bins = CALIBRATION_HIST_BINS
    top = max(1, int(up.max(initial=0)), int(down.max(initial=0)))
    hx.bar(bins[:-1], up, width=np.diff(bins), align="edge", color="#4D4D4D", lw=0)
    hx.bar(bins[:-1], -down, width=np.diff(bins), align="edge", color="#B3B3B3", lw=0)
    hx.axhline(0, color="black", lw=0.4)
    hx.set_ylim(-top * 1.05, top * 1.05)
    hx.set_yticks([])
    for side in ("left", "bottom"):
        hx.spines[side].set_visible(False)


@styled
def calibration_figure(calibration: pd.DataFrame, curve: pd.DataFrame, predictions: pd.DataFrame, stem,
                       task: str | None = None, models: Sequence[str] = BASE_MODELS,
                       splits: Sequence[str] = SPLITS, title: str | None = None) -> pd.DataFrame:
    """Smoothed calibration curves with their 95% bands, one panel per model and split, drawn from the tables.

    ``calibration`` and ``curve`` are the tables of :func:`usrad.reporting.curves.calibration_tables` (as
    written to ``tables/calibration.tsv`` and ``tables/calibration_curve.tsv``): each panel draws that (model, split)'s
    curve and band and prints its row's numbers (:func:`calibration_text`: patients and images, calibration
    intercept and slope with 95% CIs, mean predicted risk and observed prevalence, Brier score, Hosmer–Lemeshow
    P). Nothing is computed here; ``predictions`` only give the mirrored histogram under each panel (positive
    cases up, negative cases down). Models across and splits down (transposed when there is one model).
    Returns one row per curve point drawn: ``split, model, p_grid, observed, lower, upper, text``.
    """
    cal, cur, task, models, splits = _calibration_inputs(calibration, curve, task, models, splits)
    pred = check_predictions(predictions)
    transpose = len(models) < len(splits)
    grid_rows, grid_cols = (models, splits) if transpose else (splits, models)
    width = DOUBLE if len(grid_cols) > 1 else SINGLE
    panel = min((width / MM - 14) / len(grid_cols), 60.0)  # curve panel height (mm), about square
    fig = new_figure(width, (len(grid_rows) * (panel + 34) + 10) * MM)
    gs = fig.add_gridspec(2 * len(grid_rows), len(grid_cols), height_ratios=[panel, 9] * len(grid_rows))
    drawn = []
    for i, r in enumerate(grid_rows):
        cells = [(r, c) if transpose else (c, r) for c in grid_cols]  # (model, split) of each column
        for j, (m, s) in enumerate(cells):
            ax = fig.add_subplot(gs[2 * i, j])
            hx = fig.add_subplot(gs[2 * i + 1, j], sharex=ax)
            _calibration_panel(ax, cal, cur, m, s, drawn)
            _mirrored_histogram(hx, *_histogram_counts(pred, task, m, s))
            if i == 0:  # column heading above the numbers block (about _TEXT_LINE_PT per line)
                ax.set_title(SPLIT_TITLES_CALIBRATION[s] if transpose else model_label(m), loc="center",
                             fontweight="bold", pad=4 + _TEXT_LINE_PT * len(CALIBRATION_TEXT_LINES))
            if j == 0:
                side = model_label(m) if transpose else SPLIT_TITLES_CALIBRATION[s]
                ax.set_ylabel(f"{side}\nObserved proportion")
            else:
                ax.tick_params(labelleft=False)
            if i == len(grid_rows) - 1:
                hx.set_xlabel("Predicted probability")
    fig.legend(handles=_calibration_legend(), loc="outside lower center", ncols=3, handlelength=1.8)
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return pd.DataFrame(drawn, columns=["split", "model", "p_grid", "observed", "lower", "upper", "text"])


def _calibration_panel(ax, cal, cur, model, split, drawn: list) -> None:
    """One panel: ideal line, the table's curve and band, and the table's numbers above it."""
    ax.plot([0, 1], [0, 1], ls=":", lw=0.8, color="#7F7F7F", zorder=1)
    ticks = [0, 0.25, 0.5, 0.75, 1]
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.set_xticks(ticks, ["0", "0.25", "0.5", "0.75", "1"])
    ax.set_yticks(ticks, ["0", "0.25", "0.5", "0.75", "1"])
    ax.tick_params(labelbottom=False)
    row = cal[(cal["model"] == model) & (cal["split"] == split)]
    if row.empty:
        ax.text(0.5, 0.5, "no predictions", ha="center", va="center", transform=ax.transAxes)
        return
    pts = cur[(cur["model"] == model) & (cur["split"] == split)].sort_values("p_grid", kind="mergesort")
    x, obs = pts["p_grid"].to_numpy(float), pts["observed"].to_numpy(float)
    lo, hi = pts["lower"].to_numpy(float), pts["upper"].to_numpy(float)
    colour = model_colour(model)
    ax.fill_between(x, lo, hi, color=colour, alpha=0.22, lw=0, zorder=2)
    ax.plot(x, obs, color=colour, lw=1.3, zorder=3)
    if not np.isfinite(obs).any():  # e.g. perfectly separated apparent predictions: say so, not an empty panel
        ax.text(0.03, 0.97, "No smoothed curve:\nthe fit did not converge", ha="left", va="top",
                transform=ax.transAxes)
    text = calibration_text(row.iloc[0])
    ax.annotate(text, xy=(0, 1), xycoords="axes fraction", xytext=(0, 3), textcoords="offset points", ha="left",
                va="bottom", fontsize=MIN_FONT_PT, linespacing=1.15)
    drawn.extend({"split": split, "model": model, "p_grid": a, "observed": b, "lower": c, "upper": e, "text": text}
                 for a, b, c, e in zip(x, obs, lo, hi))


def _calibration_legend() -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # ncols=3 fills column by column: curves in the first row, the histogram's two classes in the second
    return [Line2D([], [], color="#4D4D4D", lw=1.3, label="Smoothed calibration curve (model colour)"),
            Patch(color="#4D4D4D", lw=0, label="Images of positive cases (histogram, up)"),
            Patch(color="#4D4D4D", alpha=0.22, lw=0, label="95% CI band (patient bootstrap)"),
            Patch(color="#B3B3B3", lw=0, label="Images of negative cases (down)"),
            Line2D([], [], color="#7F7F7F", ls=":", lw=0.8, label="Ideal (observed = predicted)")]
