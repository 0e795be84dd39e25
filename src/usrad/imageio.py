"""Reading ultrasound images and lesion masks of every supported format into SimpleITK images.

``read_image(path, spacing_mm=None)`` returns a 2D float32 grey image whose spacing is in mm;
``read_mask(path, reference)`` returns a uint8 0/1 mask with the reference image's geometry.

Formats (chosen by file extension; a file without a known extension is tried as DICOM):

* PNG, JPEG, BMP, TIFF (``.png .jpg .jpeg .bmp .tif .tiff``) — read with Pillow. They carry no
  physical pixel size, so ``spacing_mm`` must be given (manifest column ``pixel_spacing_mm``).
  RGB/RGBA/palette images are reduced to grey with ITU-R BT.601 luminance weights
  (0.299 R + 0.587 G + 0.114 B, alpha ignored); a greyscale image saved as RGB (R = G = B) gives
  exactly the same grey values as the greyscale file.
* NRRD (``.nrrd .nhdr``), NIfTI (``.nii .nii.gz``), MetaImage (``.mha .mhd``) — read with SimpleITK;
  their spacing is used.
* DICOM (``.dcm``, ``.dicom`` or no extension; one file, one frame) — pixels read with SimpleITK,
  spacing from ``PixelSpacing``, else ``ImagerPixelSpacing``, else ``NominalScannedPixelSpacing`` (secondary
  capture), else the first ultrasound region
  (``SequenceOfUltrasoundRegions``, physical units cm) read with pydicom. Without any of them it is
  treated like a PNG (``spacing_mm`` needed).

A 3D image with exactly one slice is squeezed to 2D; a true volume or a multi-frame cine loop is refused.

Spacing: when the file carries a spacing and ``spacing_mm`` is also given, they must agree within
1 % (on every axis); a larger disagreement is refused, naming both values, because one of them is wrong.

Grey levels: the radiomics parameters (``binWidth: 5``) assume 8-bit B-mode grey levels 0–255, which is
what scanners export. Any pixel type is accepted as long as all values are whole numbers in 0–255
(e.g. an NRRD stored as float or int16 holding 8-bit data). An image with values outside that range
(16-bit or float data) is refused, and the message says how to convert it to 8 bits: rescaling it
silently would change every intensity feature, so that choice is left to the user.

Masks: background 0, lesion one single non-zero label (1, or 255 as written by most drawing tools, or
any other single value); two or more different non-zero labels, an empty mask, or a size different
from the image's are refused. Pixel (i, j) of the mask labels pixel (i, j) of the image: the mask gets
the image's spacing, origin and direction (a mask that carries a spacing must agree within 1 %; a mask
file that stores an origin and direction, e.g. NRRD/NIfTI, must have the direction of an image file that
stores them, and its origin within half a pixel — otherwise it is flipped or shifted).

Every failure raises :class:`~usrad.errors.UsradError` with one :class:`~usrad.errors.Problem` that names
the file; the cohort layer adds patient, column and row.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import Problem, UsradError

if TYPE_CHECKING:
    import SimpleITK as sitk
# SimpleITK is imported inside the functions that read images: it maps ~90 MiB, and the modelling and
# evaluation jobs import this module (through usrad.cohort) only to read tables.

RASTER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
ITK_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
DICOM_EXTENSIONS = (".dcm", ".dicom")
SUPPORTED_EXTENSIONS = RASTER_EXTENSIONS + ITK_EXTENSIONS + DICOM_EXTENSIONS

LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's "L" conversion
SPACING_TOLERANCE = 0.01  # relative


SPACING_COLUMN = "pixel_spacing_mm"  # the manifest column a spacing problem is about


def _fail(path, message: str, column: str | None = None) -> UsradError:
    return UsradError(f"Cannot read {path}", [Problem(message, file=str(path), column=column)])


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(RASTER_EXTENSIONS):
        return "raster"
    if name.endswith(ITK_EXTENSIONS):
        return "itk"
    if name.endswith(DICOM_EXTENSIONS) or "." not in name:
        return "dicom"
    raise _fail(path, f"unsupported image format {Path(name).suffix!r}; supported: "
                      + ", ".join(SUPPORTED_EXTENSIONS) + " (or DICOM without extension)")


def _check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise _fail(path, "file not found")
    if not path.is_file():
        raise _fail(path, "is not a file")
    if not os.access(path, os.R_OK):
        raise _fail(path, "file is not readable (permission denied)")
    return path


# --------------------------------------------------------------------------------------------------
# Low-level readers: each returns (array float64 of shape (rows, cols), spacing (sx, sy) or None, itk image or None)

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
    raise _fail(path, f"unexpected pixel layout {arr.shape} (expected a 2D grey or RGB image)")


def _read_raster(path: Path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode == "1":
                im = im.convert("L")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            arr = np.asarray(im)
    except Exception as exc:  # Pillow raises many types for corrupt/truncated files
        raise _fail(path, f"not a readable image ({type(exc).__name__}: {exc})") from None
    return arr, None, None


def _squeeze(img: sitk.Image, path: Path) -> sitk.Image:
    import SimpleITK as sitk

    dim = img.GetDimension()
    if dim == 2:
        return img
    size = list(img.GetSize())
    if dim == 3 and 1 in size:
        axis = size.index(1)
        extract = list(size)
        extract[axis] = 0
        return sitk.Extract(img, extract, [0, 0, 0], sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX)
    raise _fail(path, f"is a {dim}D image of size {tuple(size)}; a single 2D image (or a 3D image with one slice) is expected")


def _itk_array(img: sitk.Image, path: Path) -> np.ndarray:
    import SimpleITK as sitk

    img = _squeeze(img, path)
    arr = sitk.GetArrayFromImage(img)  # (rows, cols) or (rows, cols, components)
    if img.GetNumberOfComponentsPerPixel() > 1 and arr.ndim == 3 and arr.shape[2] not in (2, 3, 4):
        raise _fail(path, f"has {arr.shape[2]} components per pixel; a grey or RGB image is expected")
    if np.iscomplexobj(arr):
        raise _fail(path, "has complex pixel values")
    return arr, img


def _read_itk(path: Path):
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in reversed(msg) if ln.strip()), type(exc).__name__)
        raise _fail(path, f"not a readable image ({detail})") from None
    arr, img = _itk_array(img, path)
    return arr, tuple(float(s) for s in img.GetSpacing()), (tuple(img.GetOrigin()), tuple(img.GetDirection()))


def _dicom_spacing(path: Path):
    """(sx, sy) in mm from the DICOM header, or None. Raises for a file that is not DICOM."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as exc:
        detail = str(exc).split(" Use force=True")[0]
        raise _fail(path, f"not a readable DICOM file ({type(exc).__name__}: {detail})") from None
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise _fail(path, f"is a multi-frame DICOM ({frames} frames, e.g. a cine loop); export the single frame to analyse")
    for key in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        value = getattr(ds, key, None)
        if value is not None and len(value) == 2:
            row_mm, col_mm = float(value[0]), float(value[1])
            if row_mm > 0 and col_mm > 0:
                return (col_mm, row_mm)  # DICOM: (between rows, between columns); ITK: (x, y)
    regions = getattr(ds, "SequenceOfUltrasoundRegions", None)
    if regions:
        reg = regions[0]
        ux, uy = getattr(reg, "PhysicalUnitsXDirection", None), getattr(reg, "PhysicalUnitsYDirection", None)
        dx, dy = getattr(reg, "PhysicalDeltaX", None), getattr(reg, "PhysicalDeltaY", None)
        if ux == 3 and uy == 3 and dx and dy and float(dx) > 0 and float(dy) > 0:  # 3 = cm
            return (abs(float(dx)) * 10.0, abs(float(dy)) * 10.0)
    return None


def _read_dicom(path: Path):
    import SimpleITK as sitk

    spacing = _dicom_spacing(path)
    try:
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(str(path))
        img = reader.Execute()
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in reversed(msg) if ln.strip()), type(exc).__name__)
        raise _fail(path, f"DICOM pixel data cannot be read ({detail})") from None
    arr, _ = _itk_array(img, path)
    return arr, spacing, None


def _read_any(path) -> tuple[np.ndarray, tuple[float, float] | None, tuple | None, Path]:
    """(pixels, spacing or None, (origin, direction) or None, path)."""
    path = _check_file(path)
    kind = _kind(path)
    if kind == "raster":
        arr, spacing, geometry = _read_raster(path)
    elif kind == "itk":
        arr, spacing, geometry = _read_itk(path)
    else:
        arr, spacing, geometry = _read_dicom(path)
    if arr.ndim not in (2, 3) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise _fail(path, f"has no usable 2D pixel data (shape {arr.shape})")
    return arr, spacing, geometry, path


def _resolve_spacing(path: Path, file_spacing, spacing_mm) -> tuple[float, float]:
    if spacing_mm is not None:
        try:
            spacing_mm = float(spacing_mm)
        except (TypeError, ValueError):
            raise _fail(path, f"pixel spacing {spacing_mm!r} is not a number", SPACING_COLUMN) from None
        if np.isnan(spacing_mm):
            spacing_mm = None  # an empty manifest cell: not given
        elif not np.isfinite(spacing_mm) or spacing_mm <= 0:
            raise _fail(path, f"pixel spacing {spacing_mm:g} mm must be a positive number", SPACING_COLUMN)
    if file_spacing is None:
        if spacing_mm is None:
            raise _fail(path, "this format carries no pixel size; give pixel_spacing_mm (mm per pixel) for it", SPACING_COLUMN)
        return (spacing_mm, spacing_mm)
    file_spacing = tuple(float(s) for s in file_spacing)
    if any(not np.isfinite(s) or s <= 0 for s in file_spacing):
        raise _fail(path, f"the file's spacing {file_spacing} is not valid")
    if spacing_mm is not None:
        worst = max(abs(s - spacing_mm) / s for s in file_spacing)
        if worst > SPACING_TOLERANCE:
            shown = " x ".join(f"{s:g}" for s in file_spacing)
            raise _fail(path, f"pixel_spacing_mm {spacing_mm:g} disagrees with the spacing stored in the file "
                              f"({shown} mm) by more than 1%; leave pixel_spacing_mm empty to use the file's", SPACING_COLUMN)
    return file_spacing


def _check_grey_levels(arr: np.ndarray, path: Path) -> None:
    if not np.all(np.isfinite(arr)):
        raise _fail(path, "contains NaN or infinite pixel values")
    lo, hi = float(arr.min()), float(arr.max())
    whole = np.all(arr == np.round(arr))
    if lo < 0 or hi > 255 or not whole:
        kind = "whole numbers" if whole else "non-integer values"
        raise _fail(path, f"grey levels are {kind} in [{lo:g}, {hi:g}], not 8-bit 0-255 as the radiomics settings "
                          "(binWidth 5) assume; export the image as 8-bit from the scanner/PACS, or convert it, e.g. "
                          "with SimpleITK: sitk.Cast(sitk.RescaleIntensity(img, 0, 255), sitk.sitkUInt8)")


def read_image(path, spacing_mm: float | None = None) -> sitk.Image:
    """Read one 2D grey ultrasound image as float32 with spacing in mm (see module docstring)."""
    import SimpleITK as sitk

    arr, file_spacing, geometry, path = _read_any(path)
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
        raise _fail(path, f"mask orientation (direction {tuple(round(d, 3) for d in m_dir)}) differs from the image's "
                          f"({tuple(round(d, 3) for d in r_dir)}): it is flipped or rotated relative to the image; "
                          "save the mask on the image's grid")
    tolerance = 0.5 * min(reference.GetSpacing())
    shift = float(np.max(np.abs(np.subtract(r_origin, m_origin)))) if len(r_origin) == len(m_origin) else np.inf
    if shift > tolerance:
        raise _fail(path, f"mask origin {tuple(round(o, 4) for o in m_origin)} differs from the image origin "
                          f"{tuple(round(o, 4) for o in r_origin)} by {shift:g} mm (more than half a pixel): the mask "
                          "is shifted relative to the image; save the mask on the image's grid")


def read_mask(path, reference: sitk.Image) -> sitk.Image:
    """Read a lesion mask as uint8 0/1 with ``reference``'s geometry (see module docstring)."""
    import SimpleITK as sitk

    arr, file_spacing, geometry, path = _read_any(path)
    arr = _to_grey(arr, path)
    ref_size = tuple(reference.GetSize())
    size = (arr.shape[1], arr.shape[0])
    if size != ref_size:
        raise _fail(path, f"mask size {size[0]}x{size[1]} differs from the image size {ref_size[0]}x{ref_size[1]} (width x height)")
    if file_spacing is not None:
        ref_spacing = reference.GetSpacing()
        if any(abs(a - b) / b > SPACING_TOLERANCE for a, b in zip(file_spacing, ref_spacing)):
            raise _fail(path, f"mask spacing {tuple(round(s, 6) for s in file_spacing)} mm differs from the image "
                              f"spacing {tuple(round(s, 6) for s in ref_spacing)} mm by more than 1%")
    _check_mask_geometry(path, geometry, reference)
    if not np.all(np.isfinite(arr)):
        raise _fail(path, "mask contains NaN or infinite values")
    labels = np.unique(arr)
    nonzero = labels[labels != 0]
    if nonzero.size == 0:
        raise _fail(path, "mask is empty (no lesion pixel)")
    if nonzero.size > 1:
        shown = ", ".join(f"{v:g}" for v in nonzero[:6]) + (", ..." if nonzero.size > 6 else "")
        hint = " (a JPEG mask has compression artefacts: save masks as PNG)" if path.name.lower().endswith((".jpg", ".jpeg")) else ""
        raise _fail(path, f"mask has {nonzero.size} different non-zero labels ({shown}); one lesion label (1 or 255) is expected{hint}")
    mask = sitk.GetImageFromArray((arr != 0).astype(np.uint8))
    mask.CopyInformation(reference)
    return mask


def pixels(img: sitk.Image) -> np.ndarray:
    """Read-only numpy view of an image's pixels, (rows, cols)."""
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(img)
