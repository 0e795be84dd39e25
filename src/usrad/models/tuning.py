"""Tuning in the nested CV: every grid point of every tuned classifier fitted on every outer and inner fold, the
grid point chosen by the log loss (on all training rows and inside every outer fold), the combined model's
classifier type, the nested out-of-fold predictions, and those of the untuned models (rad-score, clinical,
nomogram)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from joblib import delayed
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .choice import best_point, choose_model, fold_aucs, fold_loglik
from .signatures import FoldSignatures, second_stage_input
from .zoo import make_classifier, unpenalised_logistic


def fold_prediction(model_name, feature_set, params, Ztr, ytr, gtr, Zva, seed, class_weight):
    """Classifier ``model_name`` with ``params`` fitted on one fold's training part (``Ztr``, ``ytr``, groups
    ``gtr``), its probabilities on the validation part ``Zva`` (single-threaded)."""
    with threadpool_limits(limits=1):
        return _classifier_prediction(model_name, feature_set, params, Ztr, ytr, gtr, Zva, seed, class_weight)


def _classifier_prediction(model_name, feature_set, params, Ztr, ytr, gtr, Zva, seed, class_weight):
    if Ztr.shape[1] == 0:  # the signature kept no feature: nothing to learn from, the training prevalence
        return np.full(len(Zva), float(np.mean(ytr)))
    clf = make_classifier(model_name, params, ytr, class_weight, seed, gtr)
    if feature_set == "combined":
        clf = Pipeline([("scale", StandardScaler()), ("clf", clf)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        clf.fit(Ztr, ytr)
        return clf.predict_proba(Zva)[:, 1]


def run_grid(spaces: dict, cv: FoldSignatures, folds: dict, ytr, inner_needed: dict, seed, cw, parallel):
    """Every grid point of every tuned model fitted in every outer fold and (when its choice is tuned) every
    inner fold (``folds``: :func:`usrad.models.classifier_folds`). Returns ``(tune, inner)``: out-of-fold
    predictions ``tune[(fs, m, i)]`` over the training rows (outer folds) and ``inner[(f, fs, m, i)]`` over outer
    fold f's training part (its inner folds)."""
    jobs = []
    for (fs, m), grid in spaces.items():
        for i, params in enumerate(grid):
            for f in range(len(cv.outer)):
                jobs.append((("tune", f, fs), fs, m, i, params))
                if inner_needed[(fs, m)]:
                    jobs += [(("inner", f, j, fs), fs, m, i, params) for j in range(len(cv.inner[f]))]
    preds = parallel(delayed(fold_prediction)(m, fs, params, *folds[key][:3], folds[key][3], seed, cw)
                     for key, fs, m, i, params in jobs)
    tune, inner = {}, {}
    for (key, fs, m, i, _), p in zip(jobs, preds):
        f = key[1]
        if key[0] == "tune":
            tune.setdefault((fs, m, i), np.full(len(ytr), np.nan))[cv.outer[f][1]] = p
        else:
            inner.setdefault((f, fs, m, i), np.full(len(cv.outer[f][0]), np.nan))[cv.inner[f][key[2]][1]] = p
    return tune, inner


@dataclass
class TunedModel:
    """One tuned model ``(feature set, classifier)`` (:func:`tuned_models`)."""

    grid: list[dict]  #: its grid points
    tune_aucs: list[list[float]]  #: outer-fold AUCs of every grid point
    tune_ll: list[list[float]]  #: outer-fold mean log-likelihoods of every grid point
    i_final: int  #: grid point of the final model (best mean out-of-fold log-likelihood over the outer folds)
    fold_i: list[int]  #: per outer fold, the grid point its inner CV chose the same way
    fold_inner: list  #: per outer fold, that point's inner-fold AUCs (None when nothing is tuned)


def tuned_models(spaces: dict, tune: dict, inner: dict, cv: FoldSignatures, ytr, inner_needed: dict) -> dict:
    """``{(fs, m): TunedModel}``: per tuned model its grid, the outer-fold AUCs and log-likelihoods of every
    grid point, the grid point of the final model and, per outer fold, the grid point its inner CV chose with
    that point's inner-fold AUCs (for the choice among types).

    Hyperparameters are chosen by the log loss (binomial deviance), a proper scoring rule: AUC is blind to the
    scale of the risks, and on the demo-sized proxy it picked C = 0.01 for the combined logistic model by a
    margin of 0.003 (test calibration slope 2.2)."""
    out = {}
    for (fs, m), grid in spaces.items():
        tune_aucs = [fold_aucs(ytr, tune[(fs, m, i)], cv.outer) for i in range(len(grid))]
        tune_ll = [fold_loglik(ytr, tune[(fs, m, i)], cv.outer) for i in range(len(grid))]
        fold_i, fold_inner = [], []
        for f, (a, _) in enumerate(cv.outer):
            if not inner_needed[(fs, m)]:
                fold_i.append(0)
                fold_inner.append(None)
                continue
            ll = [fold_loglik(ytr[a], inner[(f, fs, m, i)], cv.inner[f]) for i in range(len(grid))]
            fold_i.append(best_point(ll))
            fold_inner.append(fold_aucs(ytr[a], inner[(f, fs, m, fold_i[-1])], cv.inner[f]))
        out[(fs, m)] = TunedModel(grid=grid, tune_aucs=tune_aucs, tune_ll=tune_ll, i_final=best_point(tune_ll),
                                  fold_i=fold_i, fold_inner=fold_inner)
    return out


def nested_oof(cv: FoldSignatures, tune: dict, fs: str, picks) -> np.ndarray:
    """Nested out-of-fold predictions: outer fold f predicted by grid point ``picks[f] = (model, i)``, chosen
    inside that fold (its validation rows never took part in the choice)."""
    out = np.full(len(cv.fold_radscore), np.nan)
    for f, (_, b) in enumerate(cv.outer):
        m, i = picks[f]
        out[b] = tune[(fs, m, i)][b]
    return out


@dataclass
class CombinedChoice:
    """The combined model's classifier type (:func:`combined_choice`)."""

    final: dict  #: the choice on all training rows (:func:`usrad.models.choose_model`)
    picks: list  #: per outer fold, ``(classifier, grid point)`` chosen inside it
    per_fold: list  #: the choices made inside the outer folds (empty when there was nothing to choose)


def combined_choice(tuned: dict, types: list, cv: FoldSignatures, rule: str) -> CombinedChoice:
    """The combined model's classifier type: on all training rows (outer-fold AUCs of each type's best grid
    point, :func:`usrad.models.choose_model`) and inside every outer fold (inner-fold AUCs), for the nested CV."""
    final = choose_model(types, {m: tuned[("combined", m)].tune_aucs[tuned[("combined", m)].i_final]
                                 for m in types}, rule)
    picks, per_fold = [], []
    for f in range(len(cv.outer)):
        if tuned[("combined", types[0])].fold_inner[f] is None:  # one type with one grid point: nothing to choose
            m = types[0]
        else:
            choice = choose_model(types, {t: tuned[("combined", t)].fold_inner[f] for t in types}, rule)
            per_fold.append(choice)
            m = choice["chosen"]
        picks.append((m, tuned[("combined", m)].fold_i[f]))
    return CombinedChoice(final=final, picks=picks, per_fold=per_fold)


def _clinical_fold(clinical_template, clin_multi, Xa, ya, Xb, r_a, rs_b, seed) -> tuple[np.ndarray, np.ndarray]:
    """Clinical and nomogram models fitted on an outer fold's training part (nomogram on its cross-fitted
    rad-score ``r_a``), predicted on its validation part (rad-score ``rs_b`` of the fold signature)."""
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        p_clin = clone(clinical_template).fit(Xa, ya).predict_proba(Xb)[:, 1]
        clin = clone(clin_multi).fit(Xa, ya)
        nom = Pipeline([("scale", StandardScaler()), ("clf", unpenalised_logistic(seed))]).fit(
            second_stage_input(r_a, clin.transform(Xa)), ya)
        p_nom = nom.predict_proba(second_stage_input(rs_b, clin.transform(Xb)))[:, 1]
    return p_clin, p_nom


def fixed_cv(cv: FoldSignatures, Xtr, ytr, clinical_template, clin_multi, seed, parallel) -> dict:
    """Out-of-fold predictions of the untuned models: ``radscore`` (fold signatures) and, with clinical
    predictors (``clinical_template`` not None), ``clinical`` and ``nomogram`` refitted in every outer fold."""
    fixed = {"radscore": np.full(len(ytr), np.nan)}
    for f, (_, b) in enumerate(cv.outer):
        fixed["radscore"][b] = cv.outer_fits[f].p_valid
    if clinical_template is None:
        return fixed
    res = parallel(delayed(_clinical_fold)(clinical_template, clin_multi, Xtr.iloc[a], ytr[a], Xtr.iloc[b],
                                           cv.train_part_radscore[f], cv.outer_fits[f].radscore_valid, seed)
                   for f, (a, b) in enumerate(cv.outer))
    fixed["clinical"], fixed["nomogram"] = np.full(len(ytr), np.nan), np.full(len(ytr), np.nan)
    for (_, b), (p_clin, p_nom) in zip(cv.outer, res):
        fixed["clinical"][b], fixed["nomogram"][b] = p_clin, p_nom
    return fixed
