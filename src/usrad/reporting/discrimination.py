"""Discrimination figures, drawn from the metric tables (nothing here computes a statistic): ROC curves with
their patient-level bootstrap bands (:func:`roc_figure`, from :func:`usrad.reporting.curves.roc_tables` and
Table 3), the AUC forest plot (:func:`forest_figure`, from Table 3) and the feature-class ablation
(:func:`ablation_figure`, from its table) and the negative controls (:func:`negative_control_figure`, from theirs).
Each figure returns what it drew.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import Problem, UsradError
from .predictions import models_present, splits_present, table_rows, task_of
from .style import (
    BASE_MODELS, CONTROL_COLOURS, CONTROL_LABELS, DOUBLE, MM, SINGLE, SPLITS, SPLIT_COLOURS, SPLIT_MARKERS, SPLIT_TITLES, fmt_ci, model_colour,
    model_label, new_figure, save_figure, styled
)


def _curve_rows(table: pd.DataFrame, name: str, task, split: str, model: str) -> pd.DataFrame:
    """One (model, split)'s points of a curve table, or UsradError when Table 3 has the pair and the table not."""
    rows = table_rows(table, task, split, model)
    if rows.empty:
        raise UsradError("ROC tables do not match Table 3", [Problem(
            f"model {model!r}, split {split!r} is in Table 3 but has no rows in the {name} table", column="model")])
    return rows


@styled
def roc_figure(performance: pd.DataFrame, curve: pd.DataFrame, band: pd.DataFrame, stem, task: str | None = None,
               models: Sequence[str] = BASE_MODELS, splits: Sequence[str] = SPLITS,
               title: str | None = None, band_models: Sequence[str] | None = None) -> pd.DataFrame:
    """ROC curves of ``models``, one panel per split (default training and test), with the 95% bootstrap band of
    ``band_models`` only (default: the last of ``models`` present, the combined model; four translucent bands
    would merge into one). The legend's title gives the patients, images and positives of the panel.

    ``performance`` is Table 3 (:func:`usrad.reporting.tables.performance_tables`), ``curve`` and ``band`` the
    ROC tables (:func:`usrad.reporting.curves.roc_tables`), as written to ``tables/``. Legend entries read
    ``Model  AUC 0.812 (0.751–0.866)``: Table 3's AUC and its patient-level stratified bootstrap CI
    (``auc_boot_low``, ``auc_boot_high``; the band comes from the same resamples). Returns one row per
    (split, model): ``n, n_pos, n_patients, auc, low, high, label, band`` (``label`` is the exact legend text,
    ``band`` whether its band is drawn).
    """
    task = task_of(performance, task)
    models = models_present(performance, task, models)
    banded = set(models[-1:] if band_models is None else band_models)
    splits = splits_present(performance, task, splits)
    wide = len(splits) <= 2
    fig = new_figure(DOUBLE, 95 * MM if wide else (60 + 4 * len(models)) * MM)
    axes = np.atleast_1d(fig.subplots(1, len(splits)))
    rows = []
    for ax, split in zip(axes, splits):
        ax.plot([0, 1], [0, 1], ls=":", lw=0.7, color="#7F7F7F", zorder=1)
        for i, m in enumerate(models):
            perf = table_rows(performance, task, split, m)
            if perf.empty:
                continue
            r = perf.iloc[0]
            pts = _curve_rows(curve, "ROC curve", task, split, m)
            bnd = _curve_rows(band, "ROC band", task, split, m)
            label = f"{model_label(m)}  AUC {fmt_ci(r['auc'], r['auc_boot_low'], r['auc_boot_high'])}"
            c = model_colour(m)
            ax.plot(pts["fpr"].to_numpy(float), pts["tpr"].to_numpy(float), color=c, lw=1.2, label=label,
                    zorder=10 + i)
            if m in banded:
                ax.fill_between(bnd["fpr"].to_numpy(float), bnd["tpr_low"].to_numpy(float),
                                bnd["tpr_high"].to_numpy(float), color=c, alpha=0.18, lw=0, zorder=2 + i,
                                label=f"95% CI band ({model_label(m)})")
            rows.append({"split": split, "model": m, "n": int(r["n"]), "n_pos": int(r["n_pos"]),
                         "n_patients": int(r["n_patients"]), "auc": r["auc"], "low": r["auc_boot_low"],
                         "high": r["auc_boot_high"], "label": label, "band": m in banded})
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 − Specificity", ylabel="Sensitivity",
               title=SPLIT_TITLES[split], aspect="equal")
        legend = dict(title=_counts_title(rows[-1]) if rows and rows[-1]["split"] == split else None,
                      alignment="left")
        if wide:
            ax.legend(loc="lower right", handlelength=1.5, borderaxespad=0.3, **legend)
        else:  # narrow panels: legend underneath
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), handlelength=1.2, **legend)
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return pd.DataFrame(rows)


def _counts_title(row: dict) -> str:
    """``168 patients, 63 positive`` (``… (190 images), 70 positive images`` when a patient has several)."""
    if row["n"] == row["n_patients"]:
        return f"{row['n_patients']} patients, {row['n_pos']} positive"
    return f"{row['n_patients']} patients ({row['n']} images), {row['n_pos']} positive images"


@styled
def forest_figure(performance: pd.DataFrame, stem, task: str | None = None, models: Sequence[str] | None = None,
                  splits: Sequence[str] = SPLITS, title: str | None = None) -> pd.DataFrame:
    """AUC with 95% bootstrap CI of every model (default: all in the table), one marker per split
    (training grey open circles, test blue squares, cross-validated orange, external vermillion), from
    Table 3 (``performance``, :func:`usrad.reporting.tables.performance_tables`: ``auc, auc_boot_low,
    auc_boot_high``).

    With one or two splits, right-hand columns print the numbers (with more they would not fit at 7 pt
    in 183 mm; Table 3 has them). Returns one row per (model, split): ``auc, low, high, row``
    (``row`` = vertical position, 0 at the top).
    """
    task = task_of(performance, task)
    models = models_present(performance, task, models)
    splits = splits_present(performance, task, splits)
    n, k = len(models), len(splits)
    with_text = k <= 2
    fig = new_figure(DOUBLE, (22 + (3 + 2 * k) * n) * MM)
    if with_text:
        ax, tx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
    else:
        ax, tx = fig.subplots(), None
    rows = []
    offsets = dict(zip(splits, np.linspace(-0.17, 0.17, k) if k > 1 else [0.0]))
    markers = {s: dict(marker=SPLIT_MARKERS[s], mfc="white" if s == "train" else SPLIT_COLOURS[s]) for s in splits}
    for r, m in enumerate(models):
        for split in splits:
            perf = table_rows(performance, task, split, m)
            if perf.empty:
                continue
            ci = {"auc": perf["auc"].iloc[0], "low": perf["auc_boot_low"].iloc[0],
                  "high": perf["auc_boot_high"].iloc[0]}
            yy = r + offsets[split]
            bars = ax.errorbar(ci["auc"], yy, xerr=[[ci["auc"] - ci["low"]], [ci["high"] - ci["auc"]]],
                               color=SPLIT_COLOURS[split], mec=SPLIT_COLOURS[split], ms=4, lw=1, capsize=1.5,
                               label=SPLIT_TITLES[split] if r == 0 else None, **markers[split])
            for artist in bars.lines[0], *bars.lines[1], *bars.lines[2]:
                artist.set_clip_on(False)  # a marker at AUC 1.0 is drawn whole
            rows.append({"model": m, "split": split, "auc": ci["auc"], "low": ci["low"], "high": ci["high"],
                         "row": r})
    data = pd.DataFrame(rows)
    lo = min(0.5, math.floor(data["low"].min() * 10) / 10) if len(data) else 0.5
    ax.axvline(0.5, ls=":", lw=0.7, color="#7F7F7F")
    ax.set(xlim=(lo - 0.02, 1.0), ylim=(n - 0.5, -0.5), yticks=range(n), xticks=np.arange(lo, 1.0001, 0.1),
           yticklabels=[model_label(m) for m in models], xlabel="AUC (95% CI)")
    ax.legend(loc="lower left", ncols=k, bbox_to_anchor=(0, 1.0), borderaxespad=0.2, handletextpad=0.3)
    if with_text:
        tx.set_axis_off()
        tx.set(xlim=(0, 1), ylim=(n - 0.5, -0.5))
        for j, split in enumerate(splits):
            xpos = 0.02 + j / k
            tx.text(xpos, -0.5, f"{SPLIT_TITLES[split]}\nAUC (95% CI)", va="bottom", ha="left", fontweight="bold")
            for _, r in data[data["split"] == split].iterrows():
                tx.text(xpos, r["row"], fmt_ci(r["auc"], r["low"], r["high"]), va="center", ha="left")
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return data


ABLATION_TITLES = {"shape": "Shape", "firstorder": "First-order", "texture": "Texture",
                   "filtered": "Filtered (LoG, wavelet)", "all": "All features"}


@styled
def ablation_figure(ablation: pd.DataFrame, stem, title: str | None = None) -> None:
    """Feature-class ablation (:func:`usrad.models.feature_class_ablation`): AUC (95% CI) of the rad-score
    refitted on each feature class, and on each peritumoral region when there are some, one marker per split,
    with the number of selected/input features."""
    if "region" not in ablation.columns:
        ablation = ablation.assign(region="all")
    entries = [("all", c) for c in ABLATION_TITLES if c in set(ablation.loc[ablation["region"] == "all", "feature_class"])]
    entries += [(r, "all") for r in dict.fromkeys(ablation["region"]) if r != "all"]
    splits = [s for s in SPLITS if s in set(ablation["split"])]
    n, k = len(entries), len(splits)
    fig = new_figure(SINGLE, (30 + (3 + 2 * k) * n) * MM)
    ax = fig.subplots()
    offsets = dict(zip(splits, np.linspace(-0.17, 0.17, k) if k > 1 else [0.0]))
    labels = []
    for r, (region, cls) in enumerate(entries):
        rows = ablation[(ablation["region"] == region) & (ablation["feature_class"] == cls)]
        for split in splits:
            d = rows[rows["split"] == split]
            if d.empty:
                continue
            row = d.iloc[0]
            ax.errorbar(row["auc"], r + offsets[split], xerr=[[row["auc"] - row["auc_low"]],
                                                              [row["auc_high"] - row["auc"]]],
                        color=SPLIT_COLOURS[split], mec=SPLIT_COLOURS[split], ms=4, lw=1, capsize=1.5,
                        marker=SPLIT_MARKERS[split], mfc="white" if split == "train" else SPLIT_COLOURS[split],
                        label=SPLIT_TITLES[split] if r == 0 else None)
        name = ABLATION_TITLES[cls] if region == "all" else f"Region {region}"
        labels.append(f"{name}\n{int(rows['n_selected'].iloc[0])} of {int(rows['n_features'].iloc[0])} features")
    lo = min(0.5, math.floor(ablation["auc_low"].min() * 10) / 10)
    ax.axvline(0.5, ls=":", lw=0.7, color="#7F7F7F")
    ax.set(xlim=(lo - 0.02, 1.005), ylim=(n - 0.5, -0.5), yticks=range(n), yticklabels=labels,
           xlabel="AUC (95% CI) of the refitted rad-score")
    ax.legend(loc="lower left", ncols=k, bbox_to_anchor=(0, 1.0), borderaxespad=0.2, handletextpad=0.3)
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)


@styled
def negative_control_figure(table: pd.DataFrame, stem, split: str = "test", title: str | None = None) -> pd.DataFrame:
    """Negative controls (:func:`usrad.models.negative_control_table`): the test AUC (95% CI) of the rad-score of each
    feature class on the real images and on each control, one marker per control; returns the rows drawn."""
    data = table[table["split"] == split]
    classes = [c for c in ABLATION_TITLES if c in set(data["feature_class"])]
    controls = [c for c in CONTROL_LABELS if c in set(data["control"])]
    n, k = len(classes), len(controls)
    fig = new_figure(SINGLE, (34 + (3 + 2 * k) * n) * MM)
    ax = fig.subplots()
    offsets = dict(zip(controls, np.linspace(-0.3, 0.3, k) if k > 1 else [0.0]))
    for r, cls in enumerate(classes):
        for control in controls:
            d = data[(data["feature_class"] == cls) & (data["control"] == control)]
            if d.empty:
                continue
            row, colour = d.iloc[0], CONTROL_COLOURS[control]
            ax.errorbar(row["auc"], r + offsets[control], xerr=[[row["auc"] - row["auc_low"]],
                                                                [row["auc_high"] - row["auc"]]],
                        color=colour, mec=colour, mfc="white" if control != "none" else colour, ms=3.5, lw=1,
                        capsize=1.5, marker="o" if control == "none" else "s", label=CONTROL_LABELS[control]
                        if r == 0 else None)
    lo = min(0.3, math.floor(data["auc_low"].min() * 10) / 10)
    ax.axvline(0.5, ls=":", lw=0.7, color="#7F7F7F")
    ax.set(xlim=(lo - 0.02, 1.005), ylim=(n - 0.5, -0.5), yticks=range(n),
           yticklabels=[ABLATION_TITLES[c] for c in classes],
           xlabel=f"Rad-score AUC (95% CI), {SPLIT_TITLES[split].lower()}")
    fig.legend(loc="outside lower center", ncols=2, handletextpad=0.3)  # below the whole figure: never clipped
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return data
