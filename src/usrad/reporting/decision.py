"""Threshold-based figures: decision curves (net benefit, :func:`decision_curve_figure`) and confusion
matrices at the training thresholds (:func:`confusion_figure`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import metrics
from .predictions import check_predictions, models_present, select_rows, splits_present, task_of, threshold_of
from .style import (
    BASE_MODELS, DOUBLE, LABEL, MM, SINGLE, SPLITS, SPLIT_TITLES, model_colour, model_label, new_figure,
    save_figure, styled
)


@styled
def decision_curve_figure(predictions: pd.DataFrame, stem, task: str | None = None,
                          models: Sequence[str] = BASE_MODELS, splits: Sequence[str] = SPLITS,
                          thresholds: Sequence[float] = tuple(i / 100 for i in range(1, 81)),
                          title: str | None = None) -> pd.DataFrame:
    """Net benefit against threshold probability (:func:`usrad.metrics.decision_curve`), with
    treat-all and treat-none; one panel per split (default training and test). Returns the tidy dcurves rows plotted
    (``split, model, threshold, net_benefit``…)."""
    pred = check_predictions(predictions)
    task = task_of(pred, task)
    models = models_present(pred, task, models)
    splits = splits_present(pred, task, splits)
    fig = new_figure(DOUBLE, 80 * MM)
    axes = np.atleast_1d(fig.subplots(1, len(splits)))
    out = []
    for ax, split in zip(axes, splits):
        wide = None
        for m in models:
            d = select_rows(pred, task, split, m)[["patient_id", "image_id", LABEL, "probability"]]
            d = d.rename(columns={"probability": m})
            wide = d if wide is None else wide.merge(d, on=["patient_id", "image_id", LABEL], how="inner")
        if wide is None or wide.empty:
            continue
        dc = metrics.decision_curve(wide[LABEL].to_numpy(), {m: wide[m].to_numpy() for m in models},
                                    thresholds=thresholds)
        prev = float(wide[LABEL].mean())
        for name, g in dc.groupby("model", sort=False):
            if name == "all":
                ax.plot(g["threshold"], g["net_benefit"], color="#7F7F7F", lw=0.9, ls="--", label="Treat all")
            elif name == "none":
                ax.plot(g["threshold"], g["net_benefit"], color="#000000", lw=0.9, label="Treat none")
            else:
                ax.plot(g["threshold"], g["net_benefit"], color=model_colour(name), lw=1.2,
                        label=model_label(name))
        ax.set(xlim=(0, max(thresholds)), ylim=(-0.05, max(0.05, prev) * 1.1),
               xlabel="Threshold probability", ylabel="Net benefit", title=SPLIT_TITLES[split])
        ax.legend(loc="upper right", handlelength=1.8)
        out.append(dc.assign(split=split))
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    data = pd.concat(out, ignore_index=True)
    return data[["split", "model", "threshold", "net_benefit", "net_intervention_avoided", "prevalence", "n"]]


@styled
def confusion_figure(predictions: pd.DataFrame, thresholds: Mapping, stem, task: str | None = None,
                     models: Sequence[str] = BASE_MODELS, splits: Sequence[str] = SPLITS,
                     class_labels: Mapping[int, str] = {0: "Negative", 1: "Positive"},
                     title: str | None = None) -> pd.DataFrame:
    """Confusion matrices at each model's fixed (training) threshold: rows = split, columns = model.

    Cells show the count and the row percentage (of the true class). Returns one row per (split, model):
    ``threshold, tn, fp, fn, tp`` from :func:`usrad.metrics.confusion`.
    """
    pred = check_predictions(predictions)
    task = task_of(pred, task)
    models = models_present(pred, task, models)
    splits = splits_present(pred, task, splits)
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
            d = select_rows(pred, task, split, m)
            t = threshold_of(thresholds, task, m)
            c = metrics.confusion(d[LABEL].to_numpy(), d["probability"].to_numpy(), t)
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
