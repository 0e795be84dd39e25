"""The radiomics signature's figures: rad-score by class (:func:`radscore_figure`, its P from
:func:`usrad.reporting.tables.radscore_table`), feature reliability (ICC, :func:`icc_figure`), the LASSO
cross-validation curve and coefficient path (:func:`lasso_cv_figure`, :func:`lasso_path_figure`, from
:func:`lasso_tables` of ``selection/lasso_path.tsv``).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import Problem, UsradError
from .predictions import radscore_values, table_rows
from .style import (
    CLASS_COLOURS, DOUBLE, MM, SINGLE, SPLITS, SPLIT_TITLES, fmt_p, new_figure, save_figure, styled
)
from .tables import RADSCORE_COLUMNS


@styled
def radscore_figure(predictions: pd.DataFrame, by_class: pd.DataFrame, stem, task: str | None = None,
                    model: str | None = None, splits: Sequence[str] = SPLITS,
                    class_labels: Mapping[int, str] = {0: "Negative", 1: "Positive"}, seed: int = 0,
                    title: str | None = None) -> pd.DataFrame:
    """Rad-score of negative and positive cases, box plots with the points on top, training and test.

    Draws the ``rad_score`` column of ``model``'s rows (default ``radscore``, else ``radiomics``) and prints each
    split's two-sided Mann–Whitney P from ``by_class`` (:func:`usrad.reporting.tables.radscore_table`, as
    written to ``tables/radscore_by_class.tsv``). Returns that table's rows of the splits drawn: ``split, class,
    n, median, q1, q3, p_value``.
    """
    task, model, splits, values = radscore_values(predictions, task, model, splits)
    rng = np.random.default_rng(seed)
    fig = new_figure(SINGLE if len(splits) <= 2 else DOUBLE, 70 * MM)
    ax = fig.subplots()
    rows, ticks, ticklabels = [], [], []
    for j, split in enumerate(splits):
        if split not in values:
            continue
        vals = values[split]
        drawn = table_rows(by_class, task, split, model)
        if len(drawn) != 2:
            raise UsradError("Rad-score table does not match the predictions", [Problem(
                f"model {model!r}, split {split!r}: {len(drawn)} row(s), expected one per class", column="class")])
        pval = float(drawn["p_value"].iloc[0])
        rows.append(drawn)
        for c in (0, 1):
            x = 3 * j + c
            v = vals[c]
            ax.boxplot([v], positions=[x], widths=0.6, showfliers=False, patch_artist=True,
                       boxprops=dict(facecolor="none", edgecolor=CLASS_COLOURS[c], lw=0.9),
                       medianprops=dict(color=CLASS_COLOURS[c], lw=1.2),
                       whiskerprops=dict(color=CLASS_COLOURS[c], lw=0.8),
                       capprops=dict(color=CLASS_COLOURS[c], lw=0.8))
            ax.scatter(x + rng.uniform(-0.22, 0.22, len(v)), v, s=2.5, color=CLASS_COLOURS[c], alpha=0.5,
                       lw=0, zorder=3)
            ticks.append(x)
            ticklabels.append(f"{class_labels[c]}\n(n={len(v)})")
        p_text = fmt_p(pval)  # "0.012" or "<0.001": printed as P = 0.012, P < 0.001
        p_text = f"< {p_text[1:]}" if p_text.startswith("<") else f"= {p_text}"
        ax.text(3 * j + 0.5, 1.0, f"{SPLIT_TITLES[split]}\nP {p_text}",
                transform=ax.get_xaxis_transform(), ha="center", va="bottom")
    ax.set_xticks(ticks, ticklabels)
    ax.set(ylabel="Rad-score", xlim=(-0.7, 3 * len(splits) - 1.3))
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    data = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=list(RADSCORE_COLUMNS))
    return data[["split", "class", "n", "median", "q1", "q3", "p_value"]]


def _feature_class(name: str) -> str:
    parts = str(name).split("_", 2)
    return parts[1] if len(parts) == 3 else "other"


@styled
def icc_figure(icc_table: pd.DataFrame, stem, threshold: float = 0.75, title: str | None = None) -> pd.DataFrame:
    """Histogram of per-feature ICC (table ``feature, icc``) with the threshold line, and per feature class
    (PyRadiomics class: ``firstorder``, ``glcm``…) the number of features kept (ICC ≥ threshold) and
    dropped (below, or NaN). Returns one row per class: ``n_features, n_kept, n_dropped, n_nan``
    plus a ``total`` row."""
    missing = [c for c in ("feature", "icc") if c not in icc_table.columns]
    if missing:
        raise UsradError("ICC table is not usable", [Problem("required column is missing", column=c)
                                                     for c in missing])
    df = pd.DataFrame({"feature": icc_table["feature"].astype(str),
                       "icc": pd.to_numeric(icc_table["icc"], errors="coerce")})
    df["cls"] = df["feature"].map(_feature_class)
    df["kept"] = df["icc"] >= threshold
    summary = (df.groupby("cls").agg(n_features=("feature", "size"), n_kept=("kept", "sum"),
                                     n_nan=("icc", lambda s: int(s.isna().sum())))
               .reset_index().rename(columns={"cls": "feature_class"}))
    summary["n_dropped"] = summary["n_features"] - summary["n_kept"]
    summary = summary.sort_values(["n_features", "feature_class"], ascending=[True, True], kind="mergesort")
    total = pd.DataFrame([{"feature_class": "total", "n_features": len(df), "n_kept": int(df["kept"].sum()),
                           "n_nan": int(df["icc"].isna().sum()),
                           "n_dropped": int(len(df) - df["kept"].sum())}])

    fig = new_figure(DOUBLE, 70 * MM)
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    finite = df["icc"].dropna().to_numpy()
    lo = min(0.0, math.floor(finite.min() * 10) / 10) if len(finite) else 0.0
    bins = np.arange(lo, 1.0 + 1e-9, 0.025)
    ax.hist(finite[finite < threshold], bins=bins, color="#D55E00", alpha=0.85, label=f"ICC < {threshold:g}")
    n_k, n_all = int(total["n_kept"].iloc[0]), len(df)
    ax.hist(finite[finite >= threshold], bins=bins, color="#0072B2", alpha=0.85,
            label=f"ICC ≥ {threshold:g}: kept {n_k}/{n_all} ({100 * n_k / max(n_all, 1):.0f}%)")
    ax.axvline(threshold, color="black", ls="--", lw=0.8)
    ax.set(xlabel="Intraclass correlation coefficient", ylabel="Number of features", xlim=(lo, 1.0))
    ax.legend(loc="upper left")
    if int(total["n_nan"].iloc[0]):
        ax.text(0.02, 0.75, f"{int(total['n_nan'].iloc[0])} with undefined ICC (dropped)",
                transform=ax.transAxes, ha="left")
    ypos = np.arange(len(summary))
    bx.barh(ypos, summary["n_kept"], color="#0072B2", label="Kept")
    bx.barh(ypos, summary["n_dropped"], left=summary["n_kept"], color="#D55E00", label="Dropped")
    for yv, (_, r) in zip(ypos, summary.iterrows()):
        bx.text(r["n_features"], yv, f" {int(r['n_kept'])}/{int(r['n_features'])}", va="center", ha="left")
    bx.set_yticks(ypos, summary["feature_class"])
    bx.set(xlabel="Number of features", xlim=(0, summary["n_features"].max() * 1.25 if len(summary) else 1))
    bx.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    out = pd.concat([summary, total], ignore_index=True)
    return out[["feature_class", "n_features", "n_kept", "n_dropped", "n_nan"]]


_X_COLUMNS = {"log_lambda": ("log(λ), λ = 1 / (n C)", False), "log_C": ("log C", False),
              "lambda": ("λ (log scale)", True), "C": ("C (log scale)", True)}
_Y_COLUMNS = {"mean_auc": "Cross-validated AUC", "auc": "Cross-validated AUC",
              "deviance": "Binomial deviance", "mean_deviance": "Binomial deviance"}


def _pick(df: pd.DataFrame, options, what: str) -> str:
    for c in options:
        if c in df.columns:
            return c
    raise UsradError(f"LASSO table has no {what} column",
                     [Problem(f"expected one of {list(options)}; got {list(df.columns)}", column=what)])


@styled
def lasso_cv_figure(cv_table: pd.DataFrame, stem, title: str | None = None) -> pd.DataFrame:
    """Cross-validation curve of the LASSO penalty: mean ± SD of the CV score per penalty value, the
    selected value marked (column ``selected``). Columns: one of ``log_lambda, log_C, lambda, C``; one of
    ``mean_auc, auc, deviance, mean_deviance``; ``sd``; ``selected``; optional ``n_features`` (printed
    along the top). Returns the plotted table sorted by the penalty column."""
    xcol = _pick(cv_table, _X_COLUMNS, "penalty")
    ycol = _pick(cv_table, _Y_COLUMNS, "score")
    _pick(cv_table, ["sd"], "sd")
    _pick(cv_table, ["selected"], "selected")
    df = cv_table.sort_values(xcol, kind="mergesort").reset_index(drop=True)
    sel = df[df["selected"].astype(bool)]
    if len(sel) != 1:
        raise UsradError("LASSO CV table must flag exactly one selected penalty",
                         [Problem(f"{len(sel)} rows have selected = true", column="selected")])
    xlabel, logx = _X_COLUMNS[xcol]
    fig = new_figure(SINGLE, 68 * MM)
    ax = fig.subplots()
    ax.errorbar(df[xcol], df[ycol], yerr=df["sd"], fmt="o", color="#D55E00", ms=2.5, elinewidth=0.6,
                ecolor="#7F7F7F", capsize=1)
    if logx:
        ax.set_xscale("log")
    ax.axvline(float(sel[xcol].iloc[0]), color="black", ls="--", lw=0.8,
               label="λ.1se (chosen)" if "best" in df.columns else "chosen")
    if "best" in df.columns and df["best"].astype(bool).sum() == 1:
        ax.axvline(float(df.loc[df["best"].astype(bool), xcol].iloc[0]), color="#0072B2", ls=":", lw=0.9,
                   label="λ.min (best CV score)")
        fig.legend(loc="outside lower center", ncols=2, frameon=False)  # below the axes: never on a point
    ax.set(xlabel=xlabel, ylabel=_Y_COLUMNS[ycol])
    if "n_features" in df.columns:
        top = ax.secondary_xaxis("top")
        idx = np.unique(np.linspace(0, len(df) - 1, min(len(df), 8)).round().astype(int))
        top.set_xticks(df[xcol].iloc[idx].to_numpy(float), [str(int(v)) for v in df["n_features"].iloc[idx]])
        top.set_xlabel("Number of non-zero coefficients")
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return df


@styled
def lasso_path_figure(path_table: pd.DataFrame, stem, selected: float | None = None, max_labels: int = 10,
                      title: str | None = None) -> pd.DataFrame:
    """Coefficient paths of the LASSO: coefficient of each feature against the penalty.

    ``path_table`` is long (``<penalty>, feature, coefficient``) or wide (``<penalty>`` plus one column per
    feature); the penalty column is one of ``log_lambda, log_C, lambda, C``. Features non-zero at
    ``selected`` are coloured and named (at most ``max_labels``, by |coefficient|), the others grey.
    Returns the long table with a ``highlighted`` flag.
    """
    xcol = _pick(path_table, _X_COLUMNS, "penalty")
    if {"feature", "coefficient"} <= set(path_table.columns):
        long = path_table[[xcol, "feature", "coefficient"]].copy()
    else:
        long = path_table.melt(id_vars=[xcol], var_name="feature", value_name="coefficient")
    long["feature"] = long["feature"].astype(str)
    long = long.sort_values(["feature", xcol], kind="mergesort").reset_index(drop=True)
    xlabel, logx = _X_COLUMNS[xcol]
    xs = np.sort(long[xcol].unique())
    if selected is None:
        selected = float(xs[len(xs) // 2])
    nearest = xs[np.argmin(np.abs(xs - selected))]
    at_sel = long[long[xcol] == nearest].set_index("feature")["coefficient"]
    nz = at_sel[at_sel != 0].abs().sort_values(ascending=False, kind="mergesort")
    highlight = list(nz.index[:max_labels])
    long["highlighted"] = long["feature"].isin(highlight)
    palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#332288", "#882255",
               "#117733", "#999933"]
    fig = new_figure(DOUBLE, 75 * MM)
    ax = fig.subplots()
    for f, g in long.groupby("feature", sort=True):
        if f not in highlight:
            ax.plot(g[xcol], g["coefficient"], color="#BBBBBB", lw=0.6, zorder=1)
    for k, f in enumerate(highlight):
        g = long[long["feature"] == f]
        ax.plot(g[xcol], g["coefficient"], color=palette[k % len(palette)], lw=1.1, zorder=2,
                label=short_feature(f))
    if logx:
        ax.set_xscale("log")
    ax.axvline(selected, color="black", ls="--", lw=0.8)
    ax.axhline(0, color="#7F7F7F", lw=0.5)
    ax.set(xlabel=xlabel, ylabel="Coefficient")
    if highlight:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), handlelength=1.2,
                  title=(f"Non-zero at selection ({len(nz)})" if len(nz) <= max_labels
                         else f"Largest {len(highlight)} of {len(nz)}\nnon-zero at selection"))
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return long


_LOG_SIGMA = re.compile(r"^log-sigma-(\d+)-(\d+)-mm-3D(?=_|$)")


def short_feature(name: str, width: int = 60) -> str:
    """PyRadiomics name made readable for a legend: ``wavelet-LH_glcm_Contrast`` → ``wavelet-LH glcm Contrast``,
    ``log-sigma-3-0-mm-3D_firstorder_Range`` → ``LoG σ=3.0 mm firstorder Range`` (PyRadiomics writes ``3D`` in the
    name of a LoG filter even on 2D images); shortened with … only beyond ``width`` characters."""
    s = _LOG_SIGMA.sub(lambda m: f"LoG σ={m.group(1)}.{m.group(2)} mm", str(name)).replace("_", " ")
    return s if len(s) <= width else s[: width - 1] + "…"


def lasso_tables(lasso_path: pd.DataFrame, scoring: str = "neg_log_loss") -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """``(cv_table, path_table, selected)`` for :func:`lasso_cv_figure` / :func:`lasso_path_figure`
    from ``selection/lasso_path.tsv`` (``C, feature, coef, cv_mean_score, cv_se, chosen``, and ``log_lambda``).

    The penalty axis is glmnet's ``log_lambda`` when the table has it (``selected`` is then the chosen
    log λ), else C (``selected`` the chosen C). The CV score is shown as binomial deviance (2 × log loss) for
    ``neg_log_loss`` scoring, else as AUC; error bars are the standard error across folds; ``best`` flags the
    penalty of the best mean CV score (λ.min), ``selected`` the chosen one (λ.1se under the 1-SE rule)."""
    need = ["C", "feature", "coef", "cv_mean_score", "cv_se", "chosen"]
    missing = [c for c in need if c not in lasso_path.columns]
    if missing:
        raise UsradError("LASSO path table is not usable", [Problem("required column is missing", column=c)
                                                            for c in missing])
    lp = lasso_path.copy()
    lp["chosen"] = lp["chosen"].astype(str).str.lower().isin(("true", "1"))
    x = "log_lambda" if "log_lambda" in lp.columns else "C"
    per_c = lp.groupby("C", sort=True).agg(score=("cv_mean_score", "first"), se=("cv_se", "first"),
                                           selected=("chosen", "any"), x=(x, "first"),
                                           n_features=("coef", lambda s: int((s != 0).sum()))).reset_index()
    if scoring == "neg_log_loss":
        cv = pd.DataFrame({x: per_c["x"], "mean_deviance": -2 * per_c["score"], "sd": 2 * per_c["se"]})
    else:
        cv = pd.DataFrame({x: per_c["x"], "mean_auc": per_c["score"], "sd": per_c["se"]})
    cv["selected"] = per_c["selected"]
    cv["best"] = np.arange(len(per_c)) == int(np.argmax(per_c["score"].to_numpy(float)))  # first of ties: smallest C
    cv["n_features"] = per_c["n_features"]
    path = lp[[x, "feature", "coef"]].rename(columns={"coef": "coefficient"})
    sel = per_c.loc[per_c["selected"], "x"]
    return cv, path, float(sel.iloc[0]) if len(sel) else float(per_c["x"].median())
