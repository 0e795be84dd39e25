"""Mask perturbations: plausible second segmentations for the ICC filter's copy reader.

A cohort without a second reader gets, for every reader-1 mask, perturbed copies (erosion, dilation or a
shift of a few pixels, :func:`perturb_mask`); :mod:`usrad.extract` extracts their features as readers
``p1`` … ``pk`` and the ICC filter (:class:`usrad.selection.ICCFilter`) measures each feature's
reproducibility against them.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def disk(radius: int) -> np.ndarray:
    """Boolean disk structuring element of ``radius`` pixels (shape ``(2r+1, 2r+1)``)."""
    r = int(radius)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx ** 2 + yy ** 2) <= r ** 2


def perturb_mask(mask_array, rng: np.random.Generator, mode: str = "random", radius: int = 1,
                 max_shift: int = 2) -> np.ndarray:
    """A plausible second segmentation of a 2D binary mask, for the ICC filter without a second reader.

    ``mode``: ``erode`` / ``dilate`` by a disk of ``radius`` pixels, ``jitter`` = translate by up to
    ``max_shift`` pixels in each axis, ``random`` = one of the three drawn from ``rng``. The result is
    uint8 0/1 of the same shape and never empty (an erosion that would empty the mask returns the input).
    """
    m = np.asarray(mask_array) > 0
    if m.ndim != 2:
        raise ValueError(f"perturb_mask expects a 2D mask, got shape {m.shape}")
    if not m.any():
        raise ValueError("perturb_mask: the mask is empty")
    if mode == "random":
        mode = str(rng.choice(["erode", "dilate", "jitter"]))
    if mode == "erode":
        out = ndimage.binary_erosion(m, structure=disk(radius))
    elif mode == "dilate":
        out = ndimage.binary_dilation(m, structure=disk(radius))
    elif mode == "jitter":
        dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
        out = ndimage.shift(m.astype(np.uint8), (dy, dx), order=0, mode="constant", cval=0) > 0
    else:
        raise ValueError(f"unknown perturbation mode {mode!r}")
    if not out.any():
        out = m
    return out.astype(np.uint8)


__all__ = ["disk", "perturb_mask"]
