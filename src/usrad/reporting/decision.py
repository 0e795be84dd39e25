"""Threshold-based figures, drawn from the metric tables (nothing here computes a statistic): decision curves
(net benefit, :func:`decision_curve_figure`, from :func:`usrad.reporting.curves.decision_curve_table`) and
confusion matrices at the training thresholds (:func:`confusion_figure`, from Table 3's counts).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import Problem, UsradError
from .predictions import models_present, splits_present, table_rows, task_of
from .style import (
    BASE_MODELS, DOUBLE, MM, SINGLE, SPLITS, SPLIT_TITLES, model_colour, model_label, new_figure, save_figure,
    styled
)

#: Columns of the decision-curve rows :func:`decision_curve_figure` returns.
DRAWN_DECISION_COLUMNS = ["split", "model", "threshold", "net_benefit", "net_intervention_avoided", "prevalence", "n"]


@styled
def decision_curve_figure(curves: pd.DataFrame, stem, task: str | None = None,
                          models: Sequence[str] = BASE_MODELS, splits: Sequence[str] = SPLITS,
                          title: str | None = None) -> pd.DataFrame:
    """Net benefit against threshold probability with treat-all and treat-none, one panel per split (default
    training and test), from the decision-curve table (``curves``,
    :func:`usrad.reporting.curves.decision_curve_table`, as written to ``tables/decision_curve.tsv``). Returns
    the rows plotted (``split, model, threshold, net_benefit``…)."""
    task = task_of(curves, task)
    models = models_present(curves, task, models)
    splits = splits_present(curves, task, splits)
    mine = curves if task is None else curves[curves["task"] == task]
    x_max = float(mine["threshold"].max())
    fig = new_figure(DOUBLE, 80 * MM)
    axes = np.atleast_1d(fig.subplots(1, len(splits)))
    out = []
    for ax, split in zip(axes, splits):
        dc = mine[(mine["split"] == split) & mine["model"].isin([*models, "all", "none"])]
        if dc.empty:
            continue
        prev = float(dc["prevalence"].iloc[0])
        for name, g in dc.groupby("model", sort=False):
            if name == "all":
                ax.plot(g["threshold"], g["net_benefit"], color="#7F7F7F", lw=0.9, ls="--", label="Treat all")
            elif name == "none":
                ax.plot(g["threshold"], g["net_benefit"], color="#000000", lw=0.9, label="Treat none")
            else:
                ax.plot(g["threshold"], g["net_benefit"], color=model_colour(name), lw=1.2,
                        label=model_label(name))
        ax.set(xlim=(0, x_max), ylim=(-0.05, max(0.05, prev) * 1.1),
               xlabel="Threshold probability", ylabel="Net benefit", title=SPLIT_TITLES[split])
        out.append(dc)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), handlelength=1.8,
               frameon=False)  # one legend for the panels, below them: never on a curve
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return pd.concat(out, ignore_index=True)[DRAWN_DECISION_COLUMNS]


@styled
def confusion_figure(performance: pd.DataFrame, stem, task: str | None = None,
                     models: Sequence[str] = BASE_MODELS, splits: Sequence[str] = SPLITS,
                     class_labels: Mapping[int, str] = {0: "Negative", 1: "Positive"},
                     title: str | None = None) -> pd.DataFrame:
    """Confusion matrices at each model's fixed (training) threshold: rows = split, columns = model, from
    Table 3 (``performance``, :func:`usrad.reporting.tables.performance_tables`: ``threshold, tn, fp, fn, tp``).

    Cells show the count and the row percentage (of the true class). Returns one row per (split, model):
    ``threshold, tn, fp, fn, tp``.
    """
    task = task_of(performance, task)
    models = models_present(performance, task, models)
    splits = splits_present(performance, task, splits)
    ncol = len(models)
    per_row = min(56.0, 150 / ncol + 4) if ncol > 2 else 44.0
    fig = new_figure(DOUBLE if ncol > 2 else SINGLE, (per_row * len(splits)) * MM)
    axes = fig.subplots(len(splits), ncol, squeeze=False)
    from matplotlib.colors import LinearSegmentedColormap
    cmap = LinearSegmentedColormap.from_list("usrad_blues", ["#FFFFFF", "#0072B2"])
    rows = []
    for i, split in enumerate(splits):
        for j, m in enumerate(models):
            ax = axes[i, j]
            perf = table_rows(performance, task, split, m)
            if perf.empty:
                raise UsradError("Cannot draw the confusion matrices", [Problem(
                    f"Table 3 has no row for model {m!r}, split {split!r}", column="model")])
            r = perf.iloc[0]
            t = float(r["threshold"])
            c = {k: int(r[k]) for k in ("tp", "fp", "tn", "fn")}
            mat = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]], dtype=float)
            frac = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
            ax.imshow(frac, cmap=cmap, vmin=0, vmax=1)
            for a in range(2):
                for b in range(2):
                    ax.text(b, a, f"{int(mat[a, b])}\n({100 * frac[a, b]:.0f}%)", ha="center", va="center",
                            color="white" if frac[a, b] > 0.6 else "black")
            ax.set_xticks([0, 1], [class_labels[0], class_labels[1]])
            ax.set_yticks([0, 1], [class_labels[0], class_labels[1]])
            ax.tick_params(length=0)
            for s in ax.spines.values():
                s.set_visible(False)
            if i == len(splits) - 1:
                ax.set_xlabel("Predicted")
            if j == 0:
                ax.set_ylabel(f"{SPLIT_TITLES[split]}\nTrue")
            if i == 0:
                ax.set_title(f"{model_label(m)}\n(threshold {t:.3f})")
            rows.append({"split": split, "model": m, "threshold": t, **c})
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return pd.DataFrame(rows)[["split", "model", "threshold", "tn", "fp", "fn", "tp"]]
