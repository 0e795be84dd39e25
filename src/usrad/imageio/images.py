"""Images and masks as SimpleITK images: the spacing, the grey levels, a mask's labels, geometry and coverage.

:func:`read_image` gives a 2D float32 grey image with its spacing in mm; :func:`read_mask` a uint8 0/1 mask on the
reference image's grid, after the checks of the :mod:`usrad.imageio` docstring.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..tables import parse_number
from .formats import read_error, read_pixels

if TYPE_CHECKING:
    import SimpleITK as sitk
# SimpleITK is imported inside the functions that read images: it maps ~90 MiB, and the modelling and
# evaluation jobs import this module (through usrad.manifest, via usrad.cohort) only to read tables.

LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's "L" conversion
SPACING_TOLERANCE = 0.01  # relative
MAX_LESION_FRACTION = 0.75  # of the image's non-black area: more is an inverted mask or not a lesion
MAX_BORDER_FRACTION = 0.5  # of the image's border pixels covered by the lesion: more is an inverted mask
SPACING_COLUMN = "pixel_spacing_mm"  # the manifest column a spacing problem is about


def _to_grey(arr: np.ndarray, path: Path) -> np.ndarray:
    """(rows, cols) or (rows, cols, channels) -> (rows, cols) float64 (R = G = B kept exact)."""
    if arr.ndim == 2:
        return arr.astype(np.float64)
    if arr.ndim == 3:
        channels = arr.shape[2]
        if channels == 1:
            return arr[..., 0].astype(np.float64)
        if channels == 2:  # grey + alpha
            return arr[..., 0].astype(np.float64)
        if channels in (3, 4):  # RGB(A): alpha ignored
            rgb = arr[..., :3].astype(np.float64)
            if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
                return rgb[..., 0]  # a greyscale saved as RGB: exactly the grey values
            return rgb @ np.asarray(LUMINANCE_WEIGHTS)
    raise read_error(path, f"unexpected pixel layout {arr.shape} (expected a 2D grey or RGB image)")



def _resolve_spacing(path: Path, file_spacing, spacing_mm) -> tuple[float, float]:
    if spacing_mm is not None:
        special = isinstance(spacing_mm, float) and not np.isfinite(spacing_mm)  # NaN: not given; inf: refused below
        if not special and parse_number(spacing_mm) is None:  # the manifest's definition of a number
            raise read_error(path, f"pixel spacing {spacing_mm!r} is not a number", SPACING_COLUMN)
        spacing_mm = float(spacing_mm)
        if np.isnan(spacing_mm):
            spacing_mm = None  # an empty manifest cell: not given
        elif not np.isfinite(spacing_mm) or spacing_mm <= 0:
            raise read_error(path, f"pixel spacing {spacing_mm:g} mm must be a positive number", SPACING_COLUMN)
    if file_spacing is None:
        if spacing_mm is None:
            raise read_error(path, "this format carries no pixel size; give pixel_spacing_mm (mm per pixel) for it", SPACING_COLUMN)
        return (spacing_mm, spacing_mm)
    file_spacing = tuple(float(s) for s in file_spacing)
    if any(not np.isfinite(s) or s <= 0 for s in file_spacing):
        raise read_error(path, f"the file's spacing {file_spacing} is not valid")
    if spacing_mm is not None:
        worst = max(abs(s - spacing_mm) / s for s in file_spacing)
        if worst > SPACING_TOLERANCE:
            shown = " x ".join(f"{s:g}" for s in file_spacing)
            raise read_error(path, f"pixel_spacing_mm {spacing_mm:g} disagrees with the spacing stored in the file "
                              f"({shown} mm) by more than 1%; leave pixel_spacing_mm empty to use the file's", SPACING_COLUMN)
    return file_spacing


def _check_grey_levels(arr: np.ndarray, path: Path) -> None:
    if not np.all(np.isfinite(arr)):
        raise read_error(path, "contains NaN or infinite pixel values")
    lo, hi = float(arr.min()), float(arr.max())
    whole = np.all(arr == np.round(arr))
    if lo < 0 or hi > 255 or not whole:
        kind = "whole numbers" if whole else "non-integer values"
        raise read_error(path, f"grey levels are {kind} in [{lo:g}, {hi:g}], not 8-bit 0-255 as the radiomics settings "
                          "(binWidth 5) assume; export the image as 8-bit from the scanner/PACS, or convert it, e.g. "
                          "with SimpleITK: sitk.Cast(sitk.RescaleIntensity(img, 0, 255), sitk.sitkUInt8)")


def read_image(path, spacing_mm: float | None = None) -> sitk.Image:
    """Read one 2D grey ultrasound image as float32 with spacing in mm (see module docstring)."""
    import SimpleITK as sitk

    arr, file_spacing, geometry, path = read_pixels(path)
    spacing = _resolve_spacing(path, file_spacing, spacing_mm)
    _check_grey_levels(arr, path)  # on the stored values (all channels), before reduction to grey
    img = sitk.GetImageFromArray(_to_grey(arr, path).astype(np.float32))
    img.SetSpacing(spacing)
    if geometry is not None:  # the file's own placement, so that read_mask can compare a mask's with it
        img.SetMetaData(_GEOMETRY_KEY, repr((tuple(map(float, geometry[0])), tuple(map(float, geometry[1])))))
    return img


_GEOMETRY_KEY = "usrad_file_geometry"  # (origin, direction) stored in the image file, as text


def _file_geometry(img: sitk.Image):
    if not img.HasMetaDataKey(_GEOMETRY_KEY):
        return None
    import ast

    return ast.literal_eval(img.GetMetaData(_GEOMETRY_KEY))


def _check_mask_geometry(path: Path, mask_geometry, reference: sitk.Image) -> None:
    """A mask file that stores origin and direction must be placed like its image file (when that stores them)."""
    ref = _file_geometry(reference)
    if ref is None or mask_geometry is None:
        return
    (r_origin, r_dir), (m_origin, m_dir) = ref, mask_geometry
    if len(r_dir) != len(m_dir) or not np.allclose(r_dir, m_dir, atol=1e-3):
        raise read_error(path, f"mask orientation (direction {tuple(round(d, 3) for d in m_dir)}) differs from the image's "
                          f"({tuple(round(d, 3) for d in r_dir)}): it is flipped or rotated relative to the image; "
                          "save the mask on the image's grid")
    tolerance = 0.5 * min(reference.GetSpacing())
    shift = float(np.max(np.abs(np.subtract(r_origin, m_origin)))) if len(r_origin) == len(m_origin) else np.inf
    if shift > tolerance:
        raise read_error(path, f"mask origin {tuple(round(o, 4) for o in m_origin)} differs from the image origin "
                          f"{tuple(round(o, 4) for o in r_origin)} by {shift:g} mm (more than half a pixel): the mask "
                          "is shifted relative to the image; save the mask on the image's grid")


def _mask_values(arr: np.ndarray, path: Path) -> tuple[np.ndarray, str]:
    """(rows, cols) label values of a mask file and where they come from ('' colour, else ' in the alpha channel').

    With transparency in use (alpha not constant): a mask of one colour everywhere is drawn in the alpha
    channel (lesion = alpha); otherwise the colour is the label and fully transparent pixels are background.
    """
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        colour, alpha = arr[..., :-1], arr[..., -1]
        if alpha.min() != alpha.max():
            if np.all(colour == colour[:1, :1]):
                return alpha.astype(np.float64), " in the alpha channel"
            arr = np.where((alpha == 0)[..., None], 0, colour)
        else:
            arr = colour
    return _to_grey(arr, path), ""


def _coverage_problem(lesion: np.ndarray, grey: np.ndarray) -> str | None:
    """Why a 0/1 lesion marks most of the image rather than a lesion (module docstring), or None."""
    n = int(lesion.sum())
    if n == lesion.size:
        return "every pixel of the mask is non-zero: it marks the whole image, not a lesion (an inverted or blank mask?)"
    border = np.concatenate([lesion[0], lesion[-1], lesion[1:-1, 0], lesion[1:-1, -1]])
    area = np.count_nonzero(lesion | (np.asarray(grey) != 0))
    fraction, on_border = n / max(area, 1), float(border.mean()) if border.size else 0.0
    if on_border > MAX_BORDER_FRACTION:
        return (f"the lesion covers {on_border:.0%} of the image border ({fraction:.0%} of the image): the mask looks "
                f"inverted (lesion 0, background non-zero); the lesion must be the non-zero value")
    if fraction > MAX_LESION_FRACTION:
        return (f"the lesion covers {fraction:.0%} of the image (more than {MAX_LESION_FRACTION:.0%} of its non-black area): "
                "the mask looks inverted or marks the whole scan, not a lesion")
    return None


def pixel_digest(img: sitk.Image) -> str:
    """SHA-256 of an image's decoded pixels and shape: equal for the same picture saved in two files or formats."""
    arr = np.ascontiguousarray(pixels(img))
    digest = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode("ascii"))
    digest.update(arr.tobytes())
    return digest.hexdigest()


def read_mask(path, reference: sitk.Image) -> sitk.Image:
    """Read a lesion mask as uint8 0/1 with ``reference``'s geometry (see module docstring)."""
    import SimpleITK as sitk

    arr, file_spacing, geometry, path = read_pixels(path)
    arr, where = _mask_values(arr, path)
    ref_size = tuple(reference.GetSize())
    size = (arr.shape[1], arr.shape[0])
    if size != ref_size:
        raise read_error(path, f"mask size {size[0]}x{size[1]} differs from the image size {ref_size[0]}x{ref_size[1]} (width x height)")
    if file_spacing is not None:
        ref_spacing = reference.GetSpacing()
        if any(abs(a - b) / b > SPACING_TOLERANCE for a, b in zip(file_spacing, ref_spacing)):
            raise read_error(path, f"mask spacing {tuple(round(s, 6) for s in file_spacing)} mm differs from the image "
                              f"spacing {tuple(round(s, 6) for s in ref_spacing)} mm by more than 1%")
    _check_mask_geometry(path, geometry, reference)
    if not np.all(np.isfinite(arr)):
        raise read_error(path, "mask contains NaN or infinite values")
    labels = np.unique(arr)
    nonzero = labels[labels != 0]
    if nonzero.size == 0:
        raise read_error(path, f"mask is empty (no lesion pixel{where})")
    if nonzero.size > 1:
        shown = ", ".join(f"{v:g}" for v in nonzero[:6]) + (", ..." if nonzero.size > 6 else "")
        hint = " (a JPEG mask has compression artefacts: save masks as PNG)" if path.name.lower().endswith((".jpg", ".jpeg")) else ""
        if where:
            hint += " (soft, semi-transparent edges: save the mask without anti-aliasing)"
        raise read_error(path, f"mask has {nonzero.size} different non-zero labels{where} ({shown}); one lesion label (1 or 255) "
                          f"is expected{hint}")
    lesion = arr != 0
    why = _coverage_problem(lesion, pixels(reference))
    if why:
        raise read_error(path, why + where)
    mask = sitk.GetImageFromArray(lesion.astype(np.uint8))
    mask.CopyInformation(reference)
    return mask


def pixels(img: sitk.Image) -> np.ndarray:
    """Read-only numpy view of an image's pixels, (rows, cols)."""
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(img)


__all__ = ["LUMINANCE_WEIGHTS", "SPACING_TOLERANCE", "MAX_LESION_FRACTION", "MAX_BORDER_FRACTION", "SPACING_COLUMN",
           "read_image", "read_mask", "pixel_digest", "pixels"]
