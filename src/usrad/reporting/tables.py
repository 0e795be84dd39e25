"""The result tables: Table 2 (odds ratios of the clinical predictors, :func:`table2`), Table 3
(performance with patient-level CIs, :func:`performance_tables`, and its paper text :func:`format_performance`,
with the negative controls' block :func:`control_rows`)
and the DeLong comparisons (:func:`delong_table`, :func:`format_delong`); for the demo, the AUC of the
Bayes-optimal probabilities (:func:`oracle_auc_rows`); the rad-score by class with its Mann–Whitney test
(:func:`radscore_table`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..errors import Problem, UsradError
from ..tables import read_table
from .predictions import check_predictions, models_present, radscore_values, select_rows, task_of, threshold_of
from .style import ALL_SPLITS, CONTROL_LABELS, LABEL, SPLITS, SPLIT_TITLES, fmt_ci, fmt_num, fmt_p, model_label, write_table


def performance_tables(predictions: pd.DataFrame, thresholds: Mapping, stem=None, n_boot: int = 2000,
                       seed: int = 0) -> pd.DataFrame:
    """One row per (task, model, split present: cv, train, test, external) from :func:`usrad.metrics.performance_table`
    at each model's fixed training threshold, with ``groups`` = ``patient_id`` (every interval patient-level: patient
    bootstrap for AUC and F1, clustered DeLong, design-effect Wilson, cluster-robust calibration CIs) and
    ``validation`` = split is not ``train`` (Hosmer–Lemeshow df = g on cv/test/external, g − 2 on the apparent
    training predictions). Writes
    ``<stem>.tsv`` (all numbers) when ``stem`` is given; :func:`format_performance` makes the
    paper-ready text version."""
    pred = check_predictions(predictions)
    rows = []
    for task in sorted(pred["task"].unique()):
        for model in models_present(pred, task, None):
            t = threshold_of(thresholds, task, model)
            for split in ALL_SPLITS:
                d = select_rows(pred, task, split, model)
                if d.empty:
                    continue
                row = metrics.performance_table(d[LABEL].to_numpy(), d["probability"].to_numpy(), t,
                                                groups=d["patient_id"].to_numpy(), n_boot=n_boot, seed=seed,
                                                validation=split != "train")
                rows.append({"task": task, "model": model, "split": split, **row})
    out = integer_counts(pd.DataFrame(rows), ("n", "n_pos", "n_patients", "tp", "fp", "tn", "fn"))
    if stem is not None:
        write_table(out, stem)
    return out


def integer_counts(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` of ``df`` holding whole numbers (counts; NaN allowed) as integers, so they print as ``503``,
    not ``503.0``."""
    out = df.copy()
    for c in columns:
        if c in out.columns and pd.api.types.is_float_dtype(out[c]):
            v = out[c].dropna()
            if np.all(np.equal(np.mod(v, 1), 0)):
                out[c] = out[c].astype("Int64")
    return out


def format_performance(perf: pd.DataFrame, stem=None, digits: int = 3) -> pd.DataFrame:
    """Paper Table 3 text: ``AUC (95% CI)``, sensitivity, specificity, accuracy, PPV, NPV, F1 with CIs."""
    cols = [("AUC (95% CI)", "auc", "auc_boot_low", "auc_boot_high")] + [
        (f"{m.upper() if m in ('ppv', 'npv') else m.capitalize()} (95% CI)", m, f"{m}_low", f"{m}_high")
        for m in ("sensitivity", "specificity", "accuracy", "ppv", "npv", "f1")]
    out = perf[["task", "model", "split"]].copy()
    out["model"] = out["model"].map(model_label)
    for title, e, lo, hi in cols:
        out[title] = [fmt_ci(a, b, c, digits) for a, b, c in zip(perf[e], perf[lo], perf[hi])]
    out["Brier"] = perf["brier"].map(lambda v: f"{v:.{digits}f}")
    out["Threshold"] = perf["threshold"].map(lambda v: f"{v:.{digits}f}")
    if stem is not None:
        write_table(out, stem)
    return out


def control_rows(controls: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Table 3's negative-control block (paper text, ``columns`` of :func:`format_performance`): the test and
    external AUC (95% CI) of the rad-score of all features on each control's images
    (:func:`usrad.models.negative_control_table`); the other metrics have no threshold there: ``—``."""
    rows = controls[(controls["feature_class"] == "all") & (controls["control"] != "none")]
    out = pd.DataFrame("—", index=range(len(rows)), columns=list(columns))
    out["task"] = rows["task"].to_numpy()
    out["model"] = [f"Rad-score, negative control: {CONTROL_LABELS.get(c, c)}" for c in rows["control"]]
    out["split"] = rows["split"].to_numpy()
    out["AUC (95% CI)"] = [fmt_ci(a, b, c) for a, b, c in zip(rows["auc"], rows["auc_low"], rows["auc_high"])]
    return out


#: Columns of the DeLong table (:func:`delong_table`): the AUC difference with its CI next to the p-value.
DELONG_COLUMNS = ("task", "split", "model_1", "model_2", "n", "n_patients", "auc_1", "auc_2", "diff", "diff_low",
                  "diff_high", "p_value", "z", "method")


def delong_table(predictions: pd.DataFrame, pairs: Sequence[tuple[str, str]], splits: Sequence[str] = ("test",),
                 task: str | None = None) -> pd.DataFrame:
    """Paired comparison of AUCs (:func:`usrad.metrics.delong_test`) for each pair of models on the same images.

    One row per (split, pair), :data:`DELONG_COLUMNS`: ``diff`` = AUC of ``model_1`` − AUC of ``model_2`` with
    its 95% CI (``diff_low``, ``diff_high``) and the two-sided p-value. Patient-level: ``groups`` = ``patient_id``,
    so with several images per patient the variance is the clustered one of Obuchowski (1997) (``method``); with
    one image per patient it is DeLong's. Images are matched on ``image_id``; a pair whose models do not cover the
    same images is an error.
    """
    pred = check_predictions(predictions)
    task = task_of(pred, task)
    rows = []
    for split in splits:
        sub = pred[(pred["task"] == task) & (pred["split"] == split)]
        if sub.empty:
            continue
        wide = sub.pivot_table(index=["patient_id", "image_id", LABEL], columns="model", values="probability",
                               aggfunc="first").sort_index()
        y = wide.index.get_level_values(LABEL).to_numpy()
        patients = wide.index.get_level_values("patient_id").to_numpy()
        for a, b in pairs:
            missing = [m for m in (a, b) if m not in wide.columns]
            if missing:
                raise UsradError("Cannot compare models", [Problem(f"model {m!r} has no {split} predictions",
                                                                   column="model") for m in missing])
            pa, pb = wide[a], wide[b]
            if pa.isna().any() or pb.isna().any():
                raise UsradError("Cannot compare models", [Problem(
                    f"models {a!r} and {b!r} do not cover the same {split} images", column="model")])
            r = metrics.delong_test(y, pa.to_numpy(), pb.to_numpy(), groups=patients)
            rows.append({"task": task, "split": split, "model_1": a, "model_2": b, "n": len(wide),
                         "n_patients": len(np.unique(patients)), "auc_1": r["auc1"], "auc_2": r["auc2"],
                         "diff": r["diff"], "diff_low": r["diff_low"], "diff_high": r["diff_high"],
                         "p_value": r["p_value"], "z": r["z"], "method": r["method"]})
    return pd.DataFrame(rows, columns=list(DELONG_COLUMNS))


def format_delong(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The DeLong table as text for the report: ``Split, Comparison, Patients (images), AUC 1, AUC 2, AUC
    difference (95% CI), P, Method`` (typographic minus; P < 0.001 below that)."""
    def num(v):
        return fmt_num(v, digits)
    return pd.DataFrame({
        "Split": table["split"].map(lambda s: SPLIT_TITLES.get(s, s)),
        "Comparison": [f"{model_label(a)} vs {model_label(b)}"
                       for a, b in zip(table["model_1"], table["model_2"])],
        "Patients (images)": [f"{int(p)} ({int(n)})" for p, n in zip(table["n_patients"], table["n"])],
        "AUC 1": table["auc_1"].map(num), "AUC 2": table["auc_2"].map(num),
        "AUC difference (95% CI)": [f"{num(d)} ({num(lo)} to {num(hi)})"
                                    for d, lo, hi in zip(table["diff"], table["diff_low"], table["diff_high"])],
        "P": table["p_value"].map(fmt_p), "Method": table["method"].astype(str)})


#: Odds ratios and bounds above this print as ``>1000`` in Table 2 (:func:`fmt_or`).
OR_MAX = 1000.0
#: Table 2's text for an odds ratio the fit could not estimate (NaN, or infinite).
NOT_ESTIMABLE = "not estimable"


def fmt_or(v: float, digits: int = 2) -> str:
    """An odds ratio or CI bound as text: ``digits`` decimals, ``>1000`` above :data:`OR_MAX` (an unbounded or
    separated fit's bound), ``<0.01`` below what ``digits`` can show, ``NA`` when missing."""
    v = np.nan if v is None else float(v)
    if np.isnan(v):
        return "NA"
    if v > OR_MAX:
        return f">{OR_MAX:.0f}"
    if v < 10 ** -digits:
        return f"<{10 ** -digits:.{digits}f}"
    return f"{v:.{digits}f}"


def fmt_or_ci(o: float, lo: float, hi: float, digits: int = 2) -> str:
    """``OR (low–high)`` with readable values (:func:`fmt_or`); :data:`NOT_ESTIMABLE` when the OR itself is
    missing or infinite."""
    o = np.nan if o is None else float(o)
    if not np.isfinite(o):
        return NOT_ESTIMABLE
    return f"{fmt_or(o, digits)} ({fmt_or(lo, digits)}–{fmt_or(hi, digits)})"


def table2(univariable: pd.DataFrame, multivariable: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Univariable and multivariable odds ratios side by side: ``variable, term, univariable OR (95% CI),
    univariable p, multivariable OR (95% CI), multivariable p`` (text), one row per term. ORs and bounds above
    :data:`OR_MAX` print as ``>1000``, below 0.01 as ``<0.01``, an OR that cannot be estimated as
    :data:`NOT_ESTIMABLE` (the reason is in the table's ``note``)."""
    def fmt(df):
        or_ci = [fmt_or_ci(o, lo, hi, digits) for o, lo, hi in zip(df["OR"], df["ci_low"], df["ci_high"])]
        return pd.DataFrame({"term": df["term"].astype(str), "or": or_ci,
                             "p": [fmt_p(v) for v in df["p_variable"]]})
    uni = fmt(univariable).rename(columns={"or": "univariable OR (95% CI)", "p": "univariable p"})
    uni.insert(0, "variable", univariable["variable"].astype(str).to_numpy())
    multi = fmt(multivariable).rename(columns={"or": "multivariable OR (95% CI)", "p": "multivariable p"})
    out = uni.merge(multi, on="term", how="left")
    return out.fillna({"multivariable OR (95% CI)": "", "multivariable p": ""})


def oracle_auc_rows(results_dir: Path, tasks: Sequence[str], ground_truth, rep_dir: Path) -> list[dict]:
    """AUC of the Bayes-optimal probabilities on the test images (demo with ground truth); writes ``oracle_auc.tsv``
    under ``rep_dir`` (no rows without ``ground_truth``). ``results_dir`` holds ``{task}/predictions.tsv``."""
    oracle_rows = []
    if ground_truth is not None:
        gt = read_table(ground_truth)
        for task in tasks:
            col = f"oracle_p_{task}"
            pr = read_table(results_dir / task / "predictions.tsv")
            te = pr[(pr["split"] == "test")].drop_duplicates("image_id")
            if col not in gt.columns or te.empty:
                continue
            d = te.merge(gt[["patient_id", col]], on="patient_id", how="inner")
            if d["y"].nunique() == 2:
                oracle_rows.append({"task": task, "split": "test", "n": len(d), "auc": metrics.auc(d["y"], d[col])})
    write_table(pd.DataFrame(oracle_rows, columns=["task", "split", "n", "auc"]), rep_dir / "oracle_auc")
    return oracle_rows


#: Columns of the rad-score table (:func:`radscore_table`), one row per (split, class).
RADSCORE_COLUMNS = ("task", "model", "split", "class", "n", "median", "q1", "q3", "p_value")


def radscore_table(predictions: pd.DataFrame, task: str | None = None, model: str | None = None,
                   splits: Sequence[str] = SPLITS) -> pd.DataFrame:
    """The rad-score (``rad_score`` of ``model``'s rows: default ``radscore``, else ``radiomics``) of negative and
    positive cases on each split: ``n``, median and quartiles, and the split's two-sided Mann–Whitney P
    (:func:`usrad.metrics.mann_whitney_p`, positive against negative). :data:`RADSCORE_COLUMNS`."""
    task, model, splits, values = radscore_values(predictions, task, model, splits)
    rows = []
    for split in splits:
        if split not in values:
            continue
        vals = values[split]
        pval = metrics.mann_whitney_p(vals[1], vals[0])
        for c in (0, 1):
            v = vals[c]
            q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75]) if len(v) else (np.nan,) * 3
            rows.append({"task": task, "model": model, "split": split, "class": c, "n": len(v), "median": med,
                         "q1": q1, "q3": q3, "p_value": pval})
    return pd.DataFrame(rows, columns=list(RADSCORE_COLUMNS))
