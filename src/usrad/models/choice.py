"""Fold scores and model choice: AUC and log-likelihood per fold, their mean and standard error, the best grid
point and :func:`choose_model` (Breiman's 1-SE parsimony rule over a pre-specified order of simplicity)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


def fold_aucs(y, p, folds) -> list[float]:
    """AUC of ``p`` in the validation part of every fold (NaN for a part with one class)."""
    return [float(roc_auc_score(y[b], p[b])) if len(set(y[b])) == 2 else float("nan") for _, b in folds]


def fold_loglik(y, p, folds) -> list[float]:
    """Mean log-likelihood (minus the log loss) of ``p`` in the validation part of every fold."""
    q = np.clip(np.asarray(p, dtype=float), 1e-15, 1 - 1e-15)
    ll = y * np.log(q) + (1 - y) * np.log1p(-q)
    return [float(np.mean(ll[b])) for _, b in folds]


def mean_score(values) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def standard_error(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def best_point(scores_per_point: list[list[float]]) -> int:
    """Index of the grid point with the best (highest) mean fold score (ties: the first in grid order)."""
    means = [mean_score(a) for a in scores_per_point]
    return max(range(len(means)), key=lambda i: (np.nan_to_num(means[i], nan=-np.inf), -i))


#: Pre-specified order of simplicity (simplest first) for the parsimony rule of :func:`choose_model`: the
#: rad-score alone, then additive/linear models, local averages, kernels, tree ensembles, neural nets.
SIMPLICITY = ("radscore", "lr", "nb", "knn", "svm", "rf", "xgb", "mlp")
MODEL_CHOICE_RULES = ("one_se", "best")


def _simplicity(name: str, candidates) -> tuple[int, int]:
    return (SIMPLICITY.index(name) if name in SIMPLICITY else len(SIMPLICITY), list(candidates).index(name))


def choose_model(candidates, fold_aucs: dict, rule: str = "one_se") -> dict:
    """Choose among pre-specified models from their fold AUCs (same folds for all).

    ``rule="one_se"``: the simplest candidate (:data:`SIMPLICITY`, then the order of ``candidates``) whose mean
    AUC is within one standard error (SD of the best model's fold AUCs / √folds) of the best mean — Breiman's
    1-SE rule (CART, 1984), the parsimony rule of glmnet's ``lambda.1se``; ``"best"``: the best mean.
    Returns ``{chosen, best, rule, reason, table}``; ``table``: one row per candidate (mean_auc, se_auc,
    within_one_se, chosen)."""
    if rule not in MODEL_CHOICE_RULES:
        raise ValueError(f"unknown model choice rule {rule!r}; choose from {MODEL_CHOICE_RULES}")
    means = {c: mean_score(fold_aucs[c]) for c in candidates}
    ses = {c: standard_error(fold_aucs[c]) for c in candidates}
    order = sorted(candidates, key=lambda c: _simplicity(c, candidates))
    best = max(order, key=lambda c: (np.nan_to_num(means[c], nan=-np.inf), -order.index(c)))
    bar = means[best] - ses[best]
    within = [c for c in order if np.isfinite(means[c]) and means[c] >= bar - 1e-12]
    chosen = best if rule == "best" or not within else within[0]
    if chosen == best:
        reason = f"best mean CV AUC {means[best]:.3f}" + (" (the simplest within 1 SE)" if rule == "one_se" else "")
    else:
        reason = (f"simplest model within 1 SE of the best ({best}: AUC {means[best]:.3f}, SE {ses[best]:.3f}; "
                  f"{chosen}: {means[chosen]:.3f})")
    table = pd.DataFrame({"candidate": list(candidates), "mean_auc": [means[c] for c in candidates],
                          "se_auc": [ses[c] for c in candidates],
                          "within_one_se": [c in within for c in candidates],
                          "chosen": [c == chosen for c in candidates]})
    return dict(chosen=chosen, best=best, rule=rule, reason=reason, table=table)
