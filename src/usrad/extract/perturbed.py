"""Perturbed copies of a reader-1 mask (readers ``p1`` … ``pk``) for the ICC filter of a cohort without a second reader.

With ``perturbation={"n": k, "radius_px": r, "seed": s}``, every reader-1 mask gives k perturbed copies
(:func:`usrad.perturbation.perturb_mask`: erosion, dilation or a shift of up to ``r`` pixels, drawn from a
generator seeded by ``s``, the image ID and k). They are reproducible and cached like the readers' masks.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from ..perturbation import perturb_mask


def perturbation_settings(perturbation) -> tuple[int, int, int]:
    """``(n, radius_px, seed)`` of a perturbation spec (None or n = 0: no perturbed masks)."""
    if not perturbation:
        return 0, 1, 0
    return int(perturbation.get("n", 0)), int(perturbation.get("radius_px", 2)), int(perturbation.get("seed", 0))


def perturbed_mask(mask, image_id: str, k: int, radius_px: int, seed: int):
    """The k-th perturbed copy (SimpleITK, reference geometry) of a reader-1 mask; reproducible."""
    import SimpleITK as sitk

    digest = hashlib.sha256(f"{int(seed)}:{image_id}:{int(k)}".encode("utf-8")).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    arr = perturb_mask(sitk.GetArrayFromImage(mask), rng, mode="random", radius=radius_px, max_shift=radius_px)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(mask)
    return out


def perturbed_sha(mask_sha: str, image_id: str, k: int, radius_px: int, seed: int) -> str:
    """The digest standing for the k-th perturbed copy's mask file in its cache key and content SHA-256."""
    blob = json.dumps(["perturb", mask_sha, str(image_id), int(k), int(radius_px), int(seed)])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


__all__ = ["perturbation_settings", "perturbed_mask", "perturbed_sha"]
