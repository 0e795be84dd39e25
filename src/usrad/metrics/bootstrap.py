"""Vectorised stratified (optionally patient-level) bootstrap: resampling counts, degeneracy, percentile CI.

The same resamples serve the AUC (:func:`usrad.metrics.bootstrap_auc`), the F1 interval
(:func:`usrad.metrics.threshold_metrics`) and the calibration band (:func:`usrad.metrics.smoothed_calibration`).
"""
from __future__ import annotations

import numpy as np

from .checks import check_options


def bootstrap_units(y: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Resampling units and their stratum: images by class, or patients by "has any positive image"."""
    if groups is None:
        return np.arange(len(y)), y.astype(bool)
    _, unit_of_image = np.unique(groups, return_inverse=True)
    n_units = unit_of_image.max() + 1
    stratum = np.zeros(n_units, dtype=bool)
    np.logical_or.at(stratum, unit_of_image, y.astype(bool))
    return unit_of_image, stratum


def draw_units(stratum: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_units)`` matrix of resampled unit indices, each stratum resampled to its own size.

    One vectorised draw per stratum (two strata), no loop over resamples. Columns are ordered
    [stratum False units..., stratum True units...].
    """
    rng = np.random.default_rng(seed)
    blocks = []
    for s in (False, True):
        members = np.flatnonzero(stratum == s)
        if len(members):
            blocks.append(members[rng.integers(0, len(members), size=(n_boot, len(members)))])
    return np.concatenate(blocks, axis=1)


def unit_counts(draws: np.ndarray, n_units: int) -> np.ndarray:
    """How many times each unit appears in each resample: ``(n_boot, n_units)`` float64 counts."""
    n_boot = draws.shape[0]
    flat = (draws + n_units * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n_units).reshape(n_boot, n_units).astype(float)


def image_weights(y: np.ndarray, groups: np.ndarray | None, n_boot: int, seed: int,
                   stratified: bool = True) -> np.ndarray:
    """``(n_boot, n_images)`` resampling counts for the stratified (patient-level if groups) bootstrap.

    ``stratified=False`` resamples all units (images or patients) together, so the prevalence varies
    between resamples — needed wherever the uncertainty of the event rate itself matters (calibration).
    """
    check_options(n_boot=n_boot, seed=seed)
    unit_of_image, stratum = bootstrap_units(y, groups)
    if not stratified:
        stratum = np.zeros_like(stratum)
    draws = draw_units(stratum, n_boot, seed)
    counts = unit_counts(draws, len(stratum))
    return counts[:, unit_of_image]


def resampling_degenerate(y: np.ndarray, groups: np.ndarray | None, stratified: bool = True) -> bool:
    """True when a bootstrap stratum has fewer than 2 units: its resamples would all be the data itself."""
    _, stratum = bootstrap_units(y, groups)
    if not stratified:
        return len(stratum) < 2
    sizes = np.bincount(stratum.astype(int), minlength=2)
    return bool(np.any((sizes > 0) & (sizes < 2)))


def percentile_ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(finite, [a, 1 - a])
    return float(lo), float(hi)
