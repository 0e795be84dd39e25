"""The cohort: Table 1 (baseline characteristics, train vs test, with p-values, :func:`table1`), the
patient flow figure (:func:`flow_figure`) and the cohort report of the workflow (:func:`cohort_report`:
Table 1, flow figure, counts).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from scipy import stats

from ..errors import Problem, UsradError
from ..nomogram import VARIABLE_LABELS
from ..split import task_labels
from .export import export_table1
from .style import DPI, LABEL, MM, SPLITS, SPLIT_TITLES, fmt_p, save_figure, styled, write_table
from .wording import task_wording


def _draw_flow_items(ax, items, h, pad: float, arrow_kw: dict) -> None:
    """Draw the flow diagram's boxes and arrows (``items``: ``(kind, x, y_top, width, n_lines, text)``)."""
    for kind, x, yt, w, n, text in items:
        if kind in ("box", "box_left"):
            x0 = x - w / 2 if kind == "box" else x
            ax.add_patch(FancyBboxPatch((x0, yt), w, h(n), boxstyle="round,pad=0,rounding_size=1.2",
                                        fc="white", ec="black", lw=0.7))
            ax.text(x if kind == "box" else x0 + pad, yt + h(n) / 2, text, ha="center" if kind == "box" else "left",
                    va="center", linespacing=1.3, ma="center" if kind == "box" else "left")
        elif kind == "varrow":
            ax.annotate("", xy=(x, text), xytext=(x, yt), arrowprops=arrow_kw)
        elif kind == "harrow":
            ax.annotate("", xy=(w, yt), xytext=(x, yt), arrowprops=arrow_kw)


def _flow_counts(split_table: pd.DataFrame) -> pd.DataFrame:
    """Patients, images, positive and negative patients per split and ``all`` (a patient is positive if any
    of their images is); refuses a table without its columns, with a patient in both splits, or other splits."""
    missing = [c for c in ("patient_id", "split", LABEL) if c not in split_table.columns]
    if missing:
        raise UsradError("Split table is not usable", [Problem("required column is missing", column=c)
                                                        for c in missing])
    df = split_table.assign(patient_id=split_table["patient_id"].astype(str))
    leaks = df.groupby("patient_id")["split"].nunique()
    if (leaks > 1).any():
        raise UsradError("A patient is in both training and test sets",
                         [Problem("images in both splits", patient=p, column="split")
                          for p in leaks[leaks > 1].index[:10]])
    other = sorted(set(df["split"]) - set(SPLITS))
    if other:
        raise UsradError("The flow diagram draws a training and a test set only",
                         [Problem(f"unexpected split value {o!r}", column="split") for o in other])
    pat = df.groupby("patient_id").agg(split=("split", "first"), y=(LABEL, "max"))
    rows = []
    for split in ("all",) + SPLITS:
        pp = pat if split == "all" else pat[pat["split"] == split]
        ii = df if split == "all" else df[df["split"] == split]
        rows.append({"split": split, "patients": len(pp), "images": len(ii), "positive": int(pp["y"].sum()),
                     "negative": int((pp["y"] == 0).sum())})
    counts = pd.DataFrame(rows)
    return counts


@styled
def flow_figure(split_table: pd.DataFrame, stem, exclusions: Sequence[tuple[str, int]] = (),
                class_labels: Mapping[int, str] = {0: "Negative", 1: "Positive"},
                title: str | None = None) -> pd.DataFrame:
    """Cohort flow: included patients/images, optional exclusions, and training/test counts by class.

    ``split_table``: one row per image (or patient) with ``patient_id, split, y``. A patient is positive
    if any of their images is. Returns counts per split (``patients, images, positive, negative``) with an
    ``all`` row.
    """
    counts = _flow_counts(split_table)
    c = counts.set_index("split")
    n_excl = int(sum(n for _, n in exclusions))

    # layout in millimetres, top to bottom; the figure is as tall as its content
    line, pad, gap = 3.3, 2.2, 6.0
    W = 89.0

    def h(n_lines):
        return n_lines * line + 2 * pad

    items = []  # (kind, x_centre, y_top, width, n_lines, text)
    y = 7.0 if title else 2.0
    main_x = W / 2
    if exclusions:
        import textwrap
        excl_lines = [f"Excluded (n = {n_excl})"]
        for reason, n in exclusions:
            excl_lines += textwrap.wrap(f"• {reason}: {n}", 30, subsequent_indent="   ")
        enrolled = int(c.loc["all", "patients"]) + n_excl
        top_x = 22.0
        items.append(("box", top_x, y, 40.0, 2, f"Assessed for eligibility\nn = {enrolled} patients"))
        y_line_top = y + h(2)
        y += h(2) + gap / 2
        items.append(("box_left", 47.0, y, 40.0, len(excl_lines), "\n".join(excl_lines)))
        y_arrow = y + h(len(excl_lines)) / 2
        y += h(len(excl_lines)) + gap / 2
        items.append(("varrow", top_x, y_line_top, 0, 0, y))
        items.append(("harrow", top_x, y_arrow, 47.0, 0, ""))
    items.append(("box", main_x, y, 74.0, 2,
                  f"Included: {c.loc['all', 'patients']} patients, {c.loc['all', 'images']} images\n"
                  f"{class_labels[1]} {c.loc['all', 'positive']} / {class_labels[0]} {c.loc['all', 'negative']}"))
    y_inc_bottom = y + h(2)
    y = y_inc_bottom + gap * 1.3
    fork = y_inc_bottom + gap * 0.6
    for x, split in ((22.5, "train"), (66.5, "test")):
        r = c.loc[split]
        pct = 100 * r["positive"] / max(r["patients"], 1)
        items.append(("box", x, y, 41.0, 5, f"{SPLIT_TITLES[split]}\n{r['patients']} patients\n{r['images']} images\n"
                                              f"{class_labels[1]} {r['positive']} ({pct:.0f}%)\n"
                                              f"{class_labels[0]} {r['negative']}"))
    H = y + h(5) + 2.0

    fig = Figure(figsize=(W * MM, H * MM), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set(xlim=(0, W), ylim=(H, 0))
    kw = dict(color="black", lw=0.7)
    arrow_kw = dict(arrowstyle="-|>", lw=0.7, color="black", shrinkA=0, shrinkB=0, mutation_scale=6)
    _draw_flow_items(ax, items, h, pad, arrow_kw)
    # fork from the included box to the two split boxes
    ax.plot([main_x, main_x], [y_inc_bottom, fork], **kw)
    ax.plot([22.5, 66.5], [fork, fork], **kw)
    for x in (22.5, 66.5):
        ax.annotate("", xy=(x, y), xytext=(x, fork), arrowprops=arrow_kw)
    if title:
        ax.text(W / 2, 1.0, title, ha="center", va="top", fontsize=8)
    save_figure(fig, stem)
    return counts


NON_CLINICAL = ("patient_id", "image_id", "image", "mask", "mask_reader2", "pixel_spacing_mm", "split",
                "reader")


#: How Table 1 prints the levels of a 0/1 variable.
YES_NO = {"0": "No", "1": "Yes"}

#: Table 1's level text for the patients outside a task's subset (the task's label is undefined there).
NOT_IN_SUBSET = "Not applicable (outside the subset)"


def class_names(task: Mapping) -> dict[str, str]:
    """Names of a task's classes 0 and 1 from its ``description`` ``"…: <class 0> vs <class 1>"`` (the demo's
    ``"ALN metastasis: N0 vs N+"``), else ``Negative``/``Positive``."""
    m = re.fullmatch(r".*:\s*(.+?)\s+vs\.?\s+(.+?)\s*", str(task.get("description") or ""))
    return {"0": m.group(1), "1": m.group(2)} if m else {"0": "Negative", "1": "Positive"}


def task_column(task: Mapping) -> str:
    """Table 1's name of a task's label: the task's name, with its subset when it has one."""
    return task["name"] if not task.get("subset") else f"{task['name']} (subset: {task['subset']})"


def _is_categorical(s: pd.Series, max_levels: int = 5) -> bool:
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return True
    v = s.dropna()
    return v.nunique() <= max_levels and np.all(np.equal(np.mod(v, 1), 0))


def table1(cohort: pd.DataFrame, split, stem=None, variables: Sequence[str] | None = None,
           categorical: Sequence[str] | None = None, labels: Mapping[str, str] | None = None,
           normality_alpha: float = 0.05, level_names: Mapping[str, Mapping[str, str]] | None = None,
           not_applicable: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Baseline characteristics of the training and the test patients, with p-values.

    ``cohort``: the cohort table (one row per image; reduced to the first row per patient).
    ``split``: a Series/dict ``patient_id → 'train'/'test'`` or a DataFrame with ``patient_id, split``.
    Continuous variables: mean ± SD and Welch's t-test when both groups pass Shapiro–Wilk at
    ``normality_alpha``, otherwise median [IQR] and the Mann–Whitney U test. Categorical (non-numeric, or
    ≤ 5 integer values, or listed in ``categorical``): n (%) per level (natural order: 3, 4a, 4b, 5) and
    the χ² test, or Fisher's exact test when an expected count is < 5 (2×2 exact, larger tables Monte
    Carlo with a fixed seed). Levels print as ``level_names[var]`` says (default: ``No``/``Yes`` for a 0/1
    variable). Missing values are counted in a ``Missing`` row and excluded from tests; for a variable in
    ``not_applicable`` (e.g. a task defined on a subset of patients) they are not missing but undefined, counted
    in a row with the level text ``not_applicable[var]``.
    Columns: ``variable, level, overall (n=…), train (n=…), test (n=…), p`` (text), ``test_used``,
    ``p_value`` (number). Writes ``<stem>.tsv`` when ``stem`` is given.
    """
    if isinstance(split, pd.DataFrame):
        split = split.assign(patient_id=split["patient_id"].astype(str)).drop_duplicates("patient_id") \
            .set_index("patient_id")["split"]
    split = pd.Series(split)
    split.index = split.index.astype(str)
    pat = cohort.assign(patient_id=cohort["patient_id"].astype(str)).drop_duplicates("patient_id", keep="first")
    problems = [Problem("patient has no split", patient=p, column="split")
                for p in pat.loc[~pat["patient_id"].isin(split.index), "patient_id"].head(10)]
    bad = split[~split.isin(SPLITS)]
    problems += [Problem(f"split must be 'train' or 'test', got {s!r}", patient=p, column="split")
                 for p, s in bad.head(10).items()]
    if problems:
        raise UsradError("Cannot build Table 1", problems)
    pat = pat.assign(split=pat["patient_id"].map(split))
    if variables is None:
        variables = [c for c in cohort.columns if c not in NON_CLINICAL]
    missing = [v for v in variables if v not in pat.columns]
    if missing:
        raise UsradError("Cannot build Table 1", [Problem("column not in the cohort table", column=m)
                                                  for m in missing])
    categorical = set(categorical or ())
    labels, level_names, not_applicable = dict(labels or {}), dict(level_names or {}), dict(not_applicable or {})
    groups = {"train": pat[pat["split"] == "train"], "test": pat[pat["split"] == "test"]}
    n_all, n_tr, n_te = len(pat), len(groups["train"]), len(groups["test"])
    rows = [{"variable": "Patients, n", "level": "", "overall": str(n_all), "train": str(n_tr),
             "test": str(n_te), "p_value": np.nan, "test_used": ""}]
    for var in variables:
        s = pat[var]
        name = labels.get(var, var)
        if var in categorical or _is_categorical(s):
            rows += _categorical_rows(s, pat, groups, name, level_names.get(var))
        else:
            rows.append(_continuous_row(s, var, groups, name, normality_alpha))
        n_miss = {k: int(g[var].isna().sum()) for k, g in (("overall", pat), *groups.items())}
        if n_miss["overall"]:
            rows.append({"variable": name, "level": not_applicable.get(var, "Missing"),
                         **{k: str(v) for k, v in n_miss.items()},
                         "p_value": np.nan, "test_used": ""})
    out = pd.DataFrame(rows)
    out["p"] = [fmt_p(v) if np.isfinite(v) else "" for v in out["p_value"]]
    out = out[["variable", "level", "overall", "train", "test", "p", "test_used", "p_value"]]
    out = out.rename(columns={"overall": f"overall (n={n_all})", "train": f"train (n={n_tr})",
                              "test": f"test (n={n_te})"})
    if stem is not None:
        write_table(out, stem)
    return out


def _categorical_rows(s: pd.Series, pat: pd.DataFrame, groups: dict, name: str,
                      names: Mapping[str, str] | None = None) -> list[dict]:
    """Table 1 rows of a categorical variable: the test row, then n (%) per level (printed as ``names`` says;
    by default ``No``/``Yes`` for a 0/1 variable)."""
    s_str = s.map(lambda v: np.nan if pd.isna(v) else (str(int(v)) if isinstance(v, (float, np.floating))
                                                       and float(v).is_integer() else str(v)))
    levels = sorted(s_str.dropna().unique(), key=_natural_key)
    tab = pd.crosstab(s_str, pat["split"]).reindex(index=levels, columns=list(SPLITS), fill_value=0)
    pval, used = _categorical_test(tab.to_numpy())
    rows = [{"variable": name, "level": "", "overall": "", "train": "", "test": "",
             "p_value": pval, "test_used": used}]
    if names is None:
        names = YES_NO if set(levels) == set(YES_NO) else {}
    for lev in levels:
        r = {"variable": name, "level": names.get(lev, lev), "p_value": np.nan, "test_used": ""}
        for key, g in (("overall", pat), ("train", groups["train"]), ("test", groups["test"])):
            ss = s_str[g.index]
            k, n = int((ss == lev).sum()), int(ss.notna().sum())
            r[key] = f"{k} ({100 * k / n:.1f}%)" if n else "0"
        rows.append(r)
    return rows


def _continuous_row(s: pd.Series, var: str, groups: dict, name: str, normality_alpha: float) -> dict:
    """Table 1 row of a continuous variable: mean ± SD and Welch's t-test when both groups pass
    Shapiro–Wilk, otherwise median [IQR] and the Mann–Whitney U test."""
    x = {k: pd.to_numeric(g[var], errors="coerce").dropna().to_numpy(float) for k, g in groups.items()}
    xa = pd.to_numeric(s, errors="coerce").dropna().to_numpy(float)
    normal = all(len(v) >= 3 and stats.shapiro(v).pvalue >= normality_alpha for v in x.values())
    if len(x["train"]) < 2 or len(x["test"]) < 2:
        pval, used = np.nan, ""
    elif normal:
        pval, used = float(stats.ttest_ind(x["train"], x["test"], equal_var=False).pvalue), "Welch t"
    else:
        pval, used = float(stats.mannwhitneyu(x["train"], x["test"]).pvalue), "Mann-Whitney U"

    def desc(v):
        if not len(v):
            return ""
        if normal:
            return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"
        q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
        return f"{med:.2f} [{q1:.2f}, {q3:.2f}]"
    stat_name = "mean ± SD" if normal else "median [IQR]"
    return {"variable": name, "level": stat_name, "overall": desc(xa), "train": desc(x["train"]),
            "test": desc(x["test"]), "p_value": pval, "test_used": used}


def _natural_key(x: str) -> tuple:
    """``'3' < '4a' < '4b' < '5' < '10'``: digit runs compare as numbers."""
    return tuple(int(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+)", str(x))))


def _categorical_test(tab: np.ndarray) -> tuple[float, str]:
    tab = tab[tab.sum(axis=1) > 0][:, tab.sum(axis=0) > 0]
    if tab.shape[0] < 2 or tab.shape[1] < 2:
        return float("nan"), ""
    expected = stats.contingency.expected_freq(tab)
    if (expected < 5).any():
        if tab.shape == (2, 2):
            return float(stats.fisher_exact(tab).pvalue), "Fisher exact"
        res = stats.fisher_exact(tab, method=stats.MonteCarloMethod(n_resamples=20000,
                                                                     rng=np.random.default_rng(0)))
        return float(res.pvalue), "Fisher exact (Monte Carlo)"
    return float(stats.chi2_contingency(tab, correction=False).pvalue), "Chi-squared"


#: Cohort-level outputs of :func:`cohort_report` under ``results/report/``.
COHORT_TABLES = ("table1", "cohort_counts")


def cohort_report(cohort: pd.DataFrame, split: pd.DataFrame, cfg: Mapping, out_dir) -> dict:
    """Table 1 (training vs test, with p-values), the flow figure and the counts behind it, in ``out_dir``."""
    out_dir = Path(out_dir)
    tasks = list(cfg.get("tasks") or [])
    coh = cohort.copy()
    labels = {}
    for t in tasks:
        lab = task_labels(coh, t)
        coh[task_column(t)] = lab.to_numpy()
        labels[t["name"]] = lab
    sp = split.assign(patient_id=split["patient_id"].astype(str))
    sp = sp[sp["split"].isin(SPLITS)]
    coh = coh[coh["patient_id"].astype(str).isin(set(sp["patient_id"]))]
    predictors = list((cfg.get("clinical") or {}).get("predictors") or [])
    variables = [v for v in predictors if v in coh.columns] + [c for c in coh.columns if c not in cohort.columns]
    names = {task_column(t): t for t in tasks}
    t1 = table1(coh, sp[["patient_id", "split"]], variables=variables,
                categorical=(cfg.get("clinical") or {}).get("categorical") or (),
                labels={k: v for k, v in VARIABLE_LABELS.items() if k in variables},
                level_names={n: class_names(t) for n, t in names.items()},
                not_applicable={n: NOT_IN_SUBSET for n, t in names.items() if t.get("subset")})
    write_table(t1, out_dir / "table1")
    export_table1(t1, out_dir / "table1")
    first = tasks[0]["name"] if tasks else None
    first_words = task_wording(tasks[0] if tasks else None)
    flow_in = sp.merge(coh.assign(y=labels[first].reindex(coh.index).to_numpy())[["image_id", "y"]]
                       .assign(image_id=lambda d: d["image_id"].astype(str)),
                       on="image_id", how="inner") if first else sp.assign(y=0)
    flow_in = flow_in.dropna(subset=["y"]).assign(y=lambda d: d["y"].astype(int))
    counts = flow_figure(flow_in[["patient_id", "split", "y"]], out_dir / "figures" / "flow",
                         class_labels={0: first_words["negative_label"], 1: first_words["positive_label"]})
    counts = counts.assign(task=first)
    ext = split.assign(patient_id=split["patient_id"].astype(str), image_id=split["image_id"].astype(str))
    ext = ext[ext["split"] == "external"]
    if len(ext) and first:  # the external set (never trained on) is counted too; Table 1 and the flow show train/test
        y_ext = labels[first].set_axis(cohort["image_id"].astype(str).to_numpy()).reindex(ext["image_id"]).dropna()
        counts = pd.concat([counts, pd.DataFrame([{
            "split": "external", "patients": ext.loc[ext["image_id"].isin(y_ext.index), "patient_id"].nunique(),
            "images": len(y_ext), "positive": int((y_ext == 1).sum()), "negative": int((y_ext == 0).sum()),
            "task": first}])], ignore_index=True)[counts.columns]
    write_table(counts, out_dir / "cohort_counts")
    return {"table1": t1, "counts": counts}
