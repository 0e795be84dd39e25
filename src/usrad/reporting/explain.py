"""Model explanation: SHAP values of the best classifier (:func:`shap_values`) and the beeswarm summary
figure (:func:`shap_figure`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import shap
from matplotlib.text import Text

from ..errors import Problem, UsradError
from .signature import short_feature
from .style import DOUBLE, MIN_FONT_PT, MM, new_figure, save_figure, styled


@styled
def shap_figure(shap_values, feature_values, feature_names: Sequence[str], stem, max_display: int = 15,
                title: str | None = None) -> pd.DataFrame:
    """SHAP summary (beeswarm): one row per feature, ordered by mean |SHAP|, each point one case coloured
    by its feature value: shap's own ``shap.plots.beeswarm`` (features beyond ``max_display`` summed in its
    last row), in the house font size, with readable feature names (:func:`short_feature`, not truncated). Arrays
    are ``(n_cases, n_features)`` as computed by the ``shap`` package. Returns ``feature, mean_abs_shap, rank``
    for all features (rank 1 = top; shap orders its rows the same way)."""
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
    k = min(max_display, len(names))
    fig = new_figure(DOUBLE, (20 + 6.5 * (k + (len(names) > k))) * MM)
    ax = fig.subplots()
    explanation = shap.Explanation(values=sv, data=fv, feature_names=[short_feature(n) for n in names])
    state = np.random.get_state()  # shap's beeswarm shuffles the draw order with numpy's global generator:
    np.random.seed(0)  # seeded here (and restored after) so that the same values give the same bytes
    try:
        shap.plots.beeswarm(explanation, max_display=max_display, ax=ax, show=False, plot_size=None, s=4)
    finally:
        np.random.set_state(state)
    for text in fig.findobj(Text):  # shap writes at 13 pt; the house style is 7 pt in a 183 mm figure
        text.set_fontsize(MIN_FONT_PT)
    for a in fig.axes:
        a.tick_params(labelsize=MIN_FONT_PT)
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
