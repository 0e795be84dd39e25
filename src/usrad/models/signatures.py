"""The signatures of the nested CV: the radiomics signature fitted on every outer and inner fold's training part
(in one parallel batch) and on all training rows, the cross-fitted rad-scores they give, and the folds every
classifier is then fitted on (:func:`classifier_folds`)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from .folds import grouped_folds
from .stacking import fitted_radscore_branch, radscore_intercept

Folds = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class FoldFit:
    """The signature (and the clinical encoder) fitted on a fold's training part (:func:`fit_fold`)."""

    selected_train: pd.DataFrame  #: the signature's selected features of the training part
    selected_valid: pd.DataFrame  #: ... and of the validation part
    p_valid: np.ndarray  #: the rad-score model's probabilities on the validation part
    radscore_valid: np.ndarray  #: the rad-score of the validation part
    intercept: float  #: the intercept of the fold's rad-score
    clinical_train: pd.DataFrame | None = None  #: encoded clinical columns of the training part (None: radiomics only)
    clinical_valid: pd.DataFrame | None = None  #: ... and of the validation part


@dataclass
class FoldSignatures:
    """Every signature the nested CV needs (:func:`cv_signatures`).

    ``outer``: grouped folds of the training rows; ``inner[f]``: grouped folds of outer fold f's training part
    (positions within it). ``outer_fits[f]`` / ``inner_fits[f][j]``: the signature fitted on the training part
    of outer fold f / of inner fold j of it. ``fold_radscore``: the cross-fitted rad-score of every training
    row (outer folds) and ``stage2_radscore`` the same with the final intercept
    (:func:`usrad.models.cross_fitted_radscore`: what the final second stage trains on);
    ``train_part_radscore[f]``: the cross-fitted rad-score of outer fold f's training part (its inner folds,
    intercept of outer fold f's signature), computed without its validation rows. ``final``: the signature
    fitted on all training rows."""

    outer: Folds
    inner: list[Folds]
    outer_fits: list[FoldFit]
    inner_fits: list[list[FoldFit]]
    fold_radscore: np.ndarray
    stage2_radscore: np.ndarray
    train_part_radscore: list[np.ndarray]
    final: Pipeline


def fit_fold(signature, clin_template, X, y, a, b) -> FoldFit:
    """The signature (and the clinical encoder) fitted on the rows at positions ``a`` of (X, y), applied to them and
    to the rows at positions ``b``."""
    Xa, ya, Xb = X.iloc[a], y[a], X.iloc[b]
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sig = clone(signature).fit(Xa, ya)
        rad = fitted_radscore_branch(sig)
        out = FoldFit(selected_train=sig.transform(Xa), selected_valid=sig.transform(Xb),
                      p_valid=sig.predict_proba(Xb)[:, 1],
                      radscore_valid=rad.transform(Xb)["rad_score"].to_numpy(float), intercept=radscore_intercept(sig))
        if clin_template is not None:  # radiomics only: no combined feature set
            enc = clone(clin_template).fit(Xa, ya)
            out.clinical_train, out.clinical_valid = enc.transform(Xa), enc.transform(Xb)
    return out


def fit_signature(signature, X, y):
    """``signature`` fitted on (X, y), single-threaded, convergence warnings silenced."""
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clone(signature).fit(X, y)


def cv_signatures(signature, clin_template, Xtr, ytr, groups, k, seed, parallel) -> FoldSignatures:
    """Every signature the nested CV needs (:class:`FoldSignatures`), fitted in one parallel batch."""
    outer = grouped_folds(ytr, groups, k, seed)
    inner = [grouped_folds(ytr[a], groups[a], k, seed) for a, _ in outer]
    specs = list(outer) + [(a[ia], a[ib]) for (a, _), folds in zip(outer, inner) for ia, ib in folds]
    # each job gets all training rows and its fold's positions: the rows go to the workers once (joblib memory-maps
    # the same array for every job) and are sliced there; slicing here held a copy per job dispatched
    # (30 copies up front were 600 MiB in the main process at 2,684 patients, 4 in flight 135 MiB)
    jobs = (delayed(fit_fold)(signature, clin_template, Xtr, ytr, a, b) for a, b in specs)
    pending = Parallel(n_jobs=parallel.n_jobs, prefer="processes", return_as="generator")(jobs)
    # the final signature is fitted here while the workers fit the fold signatures: a fitted object sent back
    # from a worker process serialises to different bytes (bundles must not depend on n_jobs)
    final = fit_signature(signature, Xtr, ytr)
    res = [final] + list(pending)
    outer_fits, rest = res[1:1 + k], iter(res[1 + k:])
    inner_fits = [[next(rest) for _ in folds] for folds in inner]
    fold_rs, stage2_rs, b0 = np.full(len(ytr), np.nan), np.full(len(ytr), np.nan), radscore_intercept(final)
    train_part_rs = []
    for f, (a, b) in enumerate(outer):  # intercepts replaced as in cross_fitted_radscore
        fold_rs[b] = outer_fits[f].radscore_valid
        stage2_rs[b] = outer_fits[f].radscore_valid - outer_fits[f].intercept + b0
        part_rs = np.full(len(a), np.nan)
        for j, (_, ib) in enumerate(inner[f]):
            part_rs[ib] = inner_fits[f][j].radscore_valid - inner_fits[f][j].intercept + outer_fits[f].intercept
        train_part_rs.append(part_rs)
    return FoldSignatures(outer=outer, inner=inner, outer_fits=outer_fits, inner_fits=inner_fits,
                          fold_radscore=fold_rs, stage2_radscore=stage2_rs, train_part_radscore=train_part_rs,
                          final=final)


def second_stage_input(rad_score, clinical: pd.DataFrame) -> pd.DataFrame:
    """Second-stage input ``[rad_score | encoded clinical columns]``."""
    return pd.concat([pd.DataFrame({"rad_score": np.asarray(rad_score, float)}, index=clinical.index), clinical],
                     axis=1)


def classifier_folds(cv: FoldSignatures, ytr, groups, clinical_on: bool) -> dict:
    """``{fold key: (train Z, train y, train groups, validation Z)}`` of every fold a classifier is fitted on:
    ``("tune", f, feature_set)`` (outer fold f) and ``("inner", f, j, feature_set)`` (inner fold j of it).

    The combined feature set's rad-score is always cross-fitted on the rows it trains on:
    ``train_part_radscore[f]`` on outer fold f's training part and the fold signature on its validation part;
    in inner folds that column is used as it is (both parts out-of-fold; the outer validation rows never enter
    it)."""
    folds = {}
    for f, (a, b) in enumerate(cv.outer):
        fit, ya, ga, part_rs = cv.outer_fits[f], ytr[a], groups[a], cv.train_part_radscore[f]
        folds[("tune", f, "radiomics")] = (fit.selected_train, ya, ga, fit.selected_valid)
        if clinical_on:
            folds[("tune", f, "combined")] = (second_stage_input(part_rs, fit.clinical_train), ya, ga,
                                              second_stage_input(fit.radscore_valid, fit.clinical_valid))
        for j, (ia, ib) in enumerate(cv.inner[f]):
            inner_fit = cv.inner_fits[f][j]
            folds[("inner", f, j, "radiomics")] = (inner_fit.selected_train, ya[ia], ga[ia], inner_fit.selected_valid)
            if clinical_on:
                folds[("inner", f, j, "combined")] = (second_stage_input(part_rs[ia], inner_fit.clinical_train),
                                                      ya[ia], ga[ia],
                                                      second_stage_input(part_rs[ib], inner_fit.clinical_valid))
    return folds
