"""Negative-control images of a cohort: the ROI's pixels shuffled, its intensities randomised, or the ROI moved to non-lesion tissue.

A signature that still predicts the outcome from scrambled images measures something else than the lesion's
texture (its size, its position, annotation marks). ``evaluation.negative_controls`` names the controls; each
gives a copy of the cohort (:func:`control_cohort`: new images, and new masks for ``moved_roi``) that goes
through the identical extraction and signature (README, "Negative controls"). Per image, with the image's own
generator (:func:`control_rng`: seed, control and image ID, so a control is the same whatever the order or the
number of jobs):

* ``shuffled_roi`` — the grey levels inside the ROI are permuted at random: the histogram is unchanged (first-order
  features equal the real ones), the spatial arrangement (texture) is destroyed, and the shape is the mask's.
* ``randomized_roi`` — every ROI pixel gets a grey level drawn uniformly between the ROI's minimum and maximum
  (integers when the image's grey levels are integers): first order and texture destroyed, shape kept.
* ``moved_roi`` — the image is unchanged; every reader's mask is translated by one offset so that the ROI lies in
  imaged tissue (:func:`usrad.extract.regions.tissue_mask`) at least :data:`MOVE_MARGIN_MM` from the lesion (the
  offset drawn among all that fit): the shape is the lesion's, the grey levels those of normal tissue. A large
  lesion in a narrow image leaves no such room: then the ROI goes where it does not touch the lesion, and failing
  that where it overlaps the lesion least; the overlap fraction of every image is recorded (``placements.tsv``).

The ROI is the union of the readers' masks (``mask``, ``mask_reader2``), dilated by the perturbation radius when
perturbed masks are on (so that every perturbed copy of reader 1's mask lies inside it). Shuffling keeps the shape
by construction: a shape-only signature does not fall to 0.5 under any of these controls, and should not.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ..errors import Problem, UsradError
from ..imageio import read_image, read_mask
from .digests import READERS, given, pixel_spacing
from .regions import tissue_mask

CONTROLS = ("shuffled_roi", "randomized_roi", "moved_roi")
CONTROL_TITLES = {"shuffled_roi": "Shuffled ROI pixels", "randomized_roi": "Randomised ROI intensities",
                  "moved_roi": "ROI moved to non-lesion tissue"}
MOVE_MARGIN_MM = 2.0  # the moved ROI keeps this distance to the lesion (its halo and shadow are not normal tissue)
CONTROLS_FORMAT = 1  # bump when a rule above changes: it is part of every control image's seed


def control_rng(seed: int, control: str, image_id: str) -> np.random.Generator:
    """The generator of one image's control: a function of the seed, the control and the image ID only."""
    digest = hashlib.sha256(f"{CONTROLS_FORMAT}:{int(seed)}:{control}:{image_id}".encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def roi_union(masks: list[np.ndarray], dilate_px: int = 0) -> np.ndarray:
    """The union of bool masks, dilated by a disc of ``dilate_px`` pixels (0: not dilated)."""
    roi = np.logical_or.reduce([np.asarray(m, bool) for m in masks])
    if dilate_px > 0:
        yy, xx = np.mgrid[-dilate_px:dilate_px + 1, -dilate_px:dilate_px + 1]
        roi = ndimage.binary_dilation(roi, structure=xx ** 2 + yy ** 2 <= dilate_px ** 2)
    return roi


def shuffled_roi(grey: np.ndarray, roi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``grey`` whose pixels inside ``roi`` are permuted at random (the ROI's histogram is kept)."""
    out = np.array(grey, copy=True)
    out[roi] = rng.permutation(out[roi])
    return out


def randomized_roi(grey: np.ndarray, roi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``grey`` whose pixels inside ``roi`` are uniform between the ROI's minimum and maximum."""
    out = np.array(grey, copy=True)
    values = out[roi]
    lo, hi = float(values.min()), float(values.max())
    if np.all(values == np.round(values)):
        out[roi] = rng.integers(int(lo), int(hi) + 1, values.size)
    else:
        out[roi] = rng.uniform(lo, hi, values.size)
    return out


def moved_offset(grey: np.ndarray, roi: np.ndarray, spacing_yx, rng: np.random.Generator,
                 tissue_threshold: int = 5, margin_mm: float = MOVE_MARGIN_MM) -> tuple[int, int, float]:
    """``(dy, dx, overlap)`` moving ``roi`` inside the imaged tissue, drawn among the offsets of the first rule that
    any offset meets: (1) at least ``margin_mm`` from the ROI, (2) not overlapping it, (3) overlapping it least
    (the ROI itself is tissue, so offset 0 always fits); ``overlap`` is the fraction of the moved ROI still on the
    original one (0 under rules 1 and 2)."""
    tissue = tissue_mask(grey, roi, tissue_threshold)
    near = ndimage.distance_transform_edt(~roi, sampling=spacing_yx) <= margin_mm
    ys, xs = np.nonzero(roi)
    y0, x0 = ys.min(), xs.min()
    kernel = roi[y0:ys.max() + 1, x0:xs.max() + 1][::-1, ::-1].astype(np.float32)

    from scipy.signal import fftconvolve  # here, not at the top: scipy.signal imports scipy.stats & co. (1.2 s in
    # every extraction process, which only a moved-ROI control needs)

    def under(area: np.ndarray) -> np.ndarray:
        """Pixels of ``area`` under the ROI placed with its box's top-left corner at (Y, X), for every placement."""
        return np.rint(fftconvolve(area.astype(np.float32), kernel, mode="valid"))

    inside = under(~tissue) == 0
    on_lesion = under(roi)
    for free in (inside & (under(near) == 0), inside & (on_lesion == 0), inside & (on_lesion == on_lesion[inside].min())):
        candidates = np.argwhere(free)
        if len(candidates):
            break
    y, x = candidates[rng.integers(len(candidates))]
    return int(y - y0), int(x - x0), max(0.0, float(on_lesion[y, x] / roi.sum()))


def shift_mask(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` translated by ``(dy, dx)`` pixels (what leaves the image is dropped, what enters is 0)."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    src = mask[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


def _file_stem(patient: str, image_id: str) -> str:
    """A file name for an image of any ID (IDs may hold characters no file system takes)."""
    return hashlib.sha256(f"{patient}\0{image_id}".encode("utf-8")).hexdigest()[:24]


def _write(arr: np.ndarray, like, path: Path) -> str:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(like)
    sitk.WriteImage(img, str(path), True)
    return str(path)


def _control_row(rec: dict, control: str, out_dir: Path, seed: int, dilate_px: int, tissue_threshold: int,
                 placement: dict) -> dict:
    """The cohort row of one image's control, its files written under ``out_dir`` (``placement`` gets the ROI's
    pixel count and, for ``moved_roi``, its offset and overlap with the lesion); UsradError naming the file."""
    import SimpleITK as sitk

    patient, image_id = str(rec["patient_id"]), str(rec["image_id"])
    image = read_image(rec["image"], pixel_spacing(rec.get("pixel_spacing_mm")))
    masks = {col: read_mask(str(rec[col]), image) for _, col in READERS if given(rec.get(col))}
    grey = sitk.GetArrayFromImage(image)
    arrays = {col: sitk.GetArrayFromImage(m) for col, m in masks.items()}
    roi = roi_union(list(arrays.values()), dilate_px)
    rng = control_rng(seed, control, image_id)
    stem, row = _file_stem(patient, image_id), dict(rec)
    placement.update(patient_id=patient, image_id=image_id, roi_pixels=int(roi.sum()))
    if control == "moved_roi":
        moved = moved_offset(grey, roi, tuple(image.GetSpacing())[::-1], rng, tissue_threshold)
        for col, arr in arrays.items():
            row[col] = _write(shift_mask(arr, *moved[:2]), image, out_dir / "masks" / f"{stem}_{col}.nrrd")
        placement.update(dy=moved[0], dx=moved[1], lesion_overlap=round(moved[2], 6))
    else:
        grey = (shuffled_roi if control == "shuffled_roi" else randomized_roi)(grey, roi, rng)
    # the grey levels as extraction reads them (float32), in one geometry with the masks written here
    row["image"] = _write(grey.astype(np.float32), image, out_dir / "images" / f"{stem}.nrrd")
    return row


def control_cohort(cohort_df: pd.DataFrame, control: str, out_dir, seed: int, perturbation: dict | None = None,
                   tissue_threshold: int = 5) -> pd.DataFrame:
    """The cohort table of one negative control, its images (and masks) written under ``out_dir``.

    Rows and every other column are the cohort's; ``image`` (and for ``moved_roi`` the mask columns) point to the
    control's files; ``attrs["placements"]`` has one row per image (``patient_id, image_id, roi_pixels`` and for
    ``moved_roi`` ``dy, dx, lesion_overlap``). All images that cannot be made are reported together (patient,
    column, file).
    """
    if control not in CONTROLS:
        raise UsradError("Unknown negative control", [Problem(
            f"{control!r} is not a negative control (known: {', '.join(CONTROLS)})", column="negative_controls")])
    out_dir = Path(out_dir)
    for sub in ("images", "masks"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    n_perturbed = int((perturbation or {}).get("n", 0))
    dilate_px = int((perturbation or {}).get("radius_px", 0)) if n_perturbed else 0
    rows, problems, placements = [], [], []
    for rec in cohort_df.to_dict("records"):
        placements.append({})
        try:
            rows.append(_control_row(rec, control, out_dir, seed, dilate_px, tissue_threshold, placements[-1]))
        except UsradError as err:  # the file's column: the image's or the mask's it names
            columns = {str(rec.get(c)): c for _, c in READERS if given(rec.get(c))}
            problems.extend(Problem(p.message, patient=p.patient or str(rec["patient_id"]),
                                    column=p.column or columns.get(str(p.file), "image"),
                                    file=p.file or str(rec["image"])) for p in err.problems)
    if problems:
        raise UsradError(f"Cannot make the negative control {control}", problems)
    table = pd.DataFrame(rows, columns=cohort_df.columns)
    table.attrs["placements"] = pd.DataFrame(placements)
    return table


__all__ = ["CONTROLS", "CONTROL_TITLES", "MOVE_MARGIN_MM", "CONTROLS_FORMAT", "control_rng", "roi_union",
           "shuffled_roi", "randomized_roi", "moved_offset", "shift_mask", "control_cohort"]
