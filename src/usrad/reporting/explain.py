"""Model explanation: SHAP values of the best classifier (:func:`shap_values`) and the beeswarm summary
figure (:func:`shap_figure`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd

from ..errors import Problem, UsradError
from .signature import short_feature
from .style import DOUBLE, MM, new_figure, save_figure, styled


def _beeswarm_offsets(values: np.ndarray, n_bins: int = 100, width: float = 0.38) -> np.ndarray:
    """Vertical offsets that spread points with similar SHAP values (shap's own binning scheme)."""
    n = len(values)
    if n == 0:
        return np.zeros(0)
    span = values.max() - values.min()
    q = np.round(n_bins * (values - values.min()) / (span + 1e-12))
    order = np.lexsort((np.arange(n), q))
    offsets = np.zeros(n)
    layer, last = 0, None
    for i in order:
        if q[i] != last:
            layer, last = 0, q[i]
        offsets[i] = math.ceil(layer / 2) * (1 if layer % 2 == 0 else -1)
        layer += 1
    m = np.abs(offsets).max()
    return offsets * (width / m) if m > 0 else offsets


@styled
def shap_figure(shap_values, feature_values, feature_names: Sequence[str], stem, max_display: int = 15,
                title: str | None = None) -> pd.DataFrame:
    """SHAP summary (beeswarm): one row per feature, ordered by mean |SHAP|, each point one case coloured
    by its feature value (5th–95th percentile, viridis). Arrays are ``(n_cases, n_features)`` as computed
    by the ``shap`` package. Returns ``feature, mean_abs_shap, rank`` for all features (rank 1 = top)."""
    sv = np.asarray(shap_values, dtype=float)
    fv = np.asarray(feature_values, dtype=float)
    names = [str(f) for f in feature_names]
    problems = []
    if sv.ndim != 2 or sv.shape != fv.shape:
        problems.append(Problem(f"SHAP values {sv.shape} and feature values {fv.shape} must be the same 2-D shape"))
    elif sv.shape[1] != len(names):
        problems.append(Problem(f"{sv.shape[1]} SHAP columns but {len(names)} feature names"))
    if problems:
        raise UsradError("Cannot draw the SHAP summary", problems)
    imp = np.abs(sv).mean(axis=0)
    order = np.lexsort((np.arange(len(imp)), -imp))
    ranking = pd.DataFrame({"feature": [names[i] for i in order], "mean_abs_shap": imp[order],
                            "rank": np.arange(1, len(order) + 1)})
    shown = order[:max_display]
    k = len(shown)
    fig = new_figure(DOUBLE, (20 + 6.5 * k) * MM)
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis"]
    ax.axvline(0, color="#7F7F7F", lw=0.6, zorder=0)
    sc = None
    for r, j in enumerate(shown):
        x, v = sv[:, j], fv[:, j]
        lo, hi = np.nanpercentile(v, [5, 95]) if np.isfinite(v).any() else (0.0, 1.0)
        if hi <= lo:
            lo, hi = np.nanmin(v), np.nanmax(v)
        cv = np.clip((v - lo) / (hi - lo), 0, 1) if hi > lo else np.full_like(v, 0.5)
        yy = r + _beeswarm_offsets(x)
        nan = ~np.isfinite(cv)
        ax.scatter(x[nan], yy[nan], s=3, color="#999999", lw=0, zorder=2)
        sc = ax.scatter(x[~nan], yy[~nan], s=3, c=cv[~nan], cmap=cmap, vmin=0, vmax=1, lw=0, zorder=3,
                        rasterized=True)
    ax.set_yticks(range(k), [short_feature(names[j], 45) for j in shown])
    ax.set(ylim=(k - 0.5, -0.5), xlabel="SHAP value (impact on model output)")
    ax.spines["left"].set_visible(False)
    ax.tick_params(axis="y", length=0)
    if sc is not None:
        cb = fig.colorbar(sc, ax=ax, ticks=[0, 1], aspect=30, fraction=0.04, pad=0.02)
        cb.ax.set_yticklabels(["Low", "High"])
        cb.set_label("Feature value", labelpad=-6)
        cb.outline.set_visible(False)
    if title:
        fig.suptitle(title)
    save_figure(fig, stem)
    return ranking


def shap_values(pipeline, X_explain: pd.DataFrame, X_background: pd.DataFrame, seed: int = 0,
                n_background: int = 100, n_kmeans: int = 10,
                max_explain: int = 150) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """SHAP values of the pipeline's final estimator on its selected features.

    Tree models: ``shap.TreeExplainer``; logistic regression: ``shap.LinearExplainer``; others: the
    model-agnostic ``shap.KernelExplainer`` on the positive-class probability with a ``n_kmeans``-centre
    k-means summary of ``n_background`` random training rows. At most ``max_explain`` rows are explained
    (a seeded random subset). Returns ``(values, feature_values, names, explainer)``.
    """
    import shap
    from sklearn.pipeline import Pipeline

    pre = Pipeline(pipeline.steps[:-1])
    clf = pipeline.steps[-1][1]
    Zb = pre.transform(X_background)
    Ze = pre.transform(X_explain)
    Zb = Zb if isinstance(Zb, pd.DataFrame) else pd.DataFrame(Zb)
    Ze = Ze if isinstance(Ze, pd.DataFrame) else pd.DataFrame(Ze, columns=Zb.columns)
    names = [str(c) for c in Zb.columns]
    rng = np.random.default_rng(seed)
    if len(Ze) > max_explain:
        Ze = Ze.iloc[np.sort(rng.choice(len(Ze), max_explain, replace=False))]
    bg = Zb.iloc[np.sort(rng.choice(len(Zb), min(n_background, len(Zb)), replace=False))]
    kind = type(clf).__name__
    if kind in ("RandomForestClassifier", "XGBClassifier"):
        expl = shap.TreeExplainer(clf)
        sv = expl.shap_values(Ze)
        name = "TreeExplainer"
    elif kind == "LogisticRegression":
        expl = shap.LinearExplainer(clf, bg)
        sv = expl.shap_values(Ze)
        name = "LinearExplainer"
    else:  # model-agnostic: Kernel SHAP on a k-means summary of the background (shap's Exact/Permutation
        # explainers JIT-compile numba code for ~14 s per process; Kernel SHAP needs no compilation)
        def f(a):
            return clf.predict_proba(pd.DataFrame(np.asarray(a), columns=Zb.columns))[:, 1]
        summary = shap.kmeans(bg.to_numpy(float), min(n_kmeans, len(bg)))
        expl = shap.KernelExplainer(f, summary, seed=seed)
        sv = expl.shap_values(Ze.to_numpy(float), silent=True)
        name = "KernelExplainer"
    sv = np.asarray(sv, dtype=float)
    if isinstance(sv, list) or sv.ndim == 3:  # per-class output: keep the positive class
        sv = np.asarray(sv)[..., 1] if np.asarray(sv).shape[-1] == 2 else np.asarray(sv)[1]
    return sv, Ze.to_numpy(float), names, name
