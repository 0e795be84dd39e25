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
from the image's are refused. A mask with transparency (RGBA, grey + alpha, palette with a transparent
entry) whose colour is the same everywhere holds its lesion in the alpha channel: lesion = alpha non-zero
(drawing tools that paint the lesion in transparency); otherwise the colour holds it and fully transparent
pixels are background. A mask that marks most of the image is refused as inverted or not a lesion: every
pixel non-zero, a lesion covering more than MAX_BORDER_FRACTION (half) of the image border pixels (an
inverted mask: BUS-BRA lesions cover at most 3 %), or more than MAX_LESION_FRACTION (75 %) of the image's
non-black area (pixels of the image that are not 0, plus the lesion; BUS-BRA's largest lesion is 58 %).
Pixel (i, j) of the mask labels pixel (i, j) of the image: the mask gets
the image's spacing, origin and direction (a mask that carries a spacing must agree within 1 %; a mask
file that stores an origin and direction, e.g. NRRD/NIfTI, must have the direction of an image file that
stores them, and its origin within half a pixel — otherwise it is flipped or shifted).

Size: an image (or mask) of more than MAX_PIXELS (4096 x 4096 = 16.8 million) pixels is refused before its
pixels are decoded (an ultrasound frame has about 0.3-2 million; a 4K screen capture 8.3 million): it is
not a B-mode frame, and PyRadiomics' filtered images of it would need several GB. Pillow's own
"decompression bomb" warning is never shown; the limit is this one.

Paths: str, bytes or os.PathLike; a folder or file name that is not valid UTF-8 is read as well (SimpleITK
is given a UTF-8 alias of it, a symbolic link in a temporary folder).

Every failure raises :class:`~usrad.errors.UsradError` with one :class:`~usrad.errors.Problem` that names
the file; the cohort layer adds patient, column and row.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import Problem, UsradError
from .tables import parse_number

if TYPE_CHECKING:
    import SimpleITK as sitk
# SimpleITK is imported inside the functions that read images: it maps ~90 MiB, and the modelling and
# evaluation jobs import this module (through usrad.manifest, via usrad.cohort) only to read tables.

RASTER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
ITK_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
DICOM_EXTENSIONS = (".dcm", ".dicom")
SUPPORTED_EXTENSIONS = RASTER_EXTENSIONS + ITK_EXTENSIONS + DICOM_EXTENSIONS

LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's "L" conversion
SPACING_TOLERANCE = 0.01  # relative
MAX_PIXELS = 4096 * 4096  # larger files are refused before decoding (module docstring)
MAX_LESION_FRACTION = 0.75  # of the image's non-black area: more is an inverted mask or not a lesion
MAX_BORDER_FRACTION = 0.5  # of the image's border pixels covered by the lesion: more is an inverted mask
_PIL_OPEN_LOCK = threading.Lock()  # warnings filters are process-wide: Image.open under one lock


SPACING_COLUMN = "pixel_spacing_mm"  # the manifest column a spacing problem is about


def _too_large(path, pixels: int, size: str = "") -> UsradError:
    shown = f"{size} = " if size else ""
    return _fail(path, f"image has {shown}{pixels:,} pixels, more than the {MAX_PIXELS:,} (4096 x 4096) usrad reads: it is "
                       "not a single ultrasound frame (about 0.3-2 million pixels); export the B-mode frame itself")


def _check_size(path, size) -> None:
    dims = sorted(int(d) for d in size)[-2:]
    pixels = int(np.prod(dims)) if dims else 0
    if pixels > MAX_PIXELS:
        raise _too_large(path, pixels, " x ".join(str(int(d)) for d in size))


@contextmanager
def _itk_name(path: Path):
    """A file name SimpleITK can take: the path itself, or, for a path that is not valid UTF-8 (SimpleITK aborts
    the process on one), a symbolic link with a UTF-8 name to it (to its folder, so that a detached header's
    data file is found beside it)."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield text
        return
    tmp = tempfile.mkdtemp(prefix="usrad-itk-")
    try:
        folder = os.path.join(tmp, "d")
        os.symlink(os.path.abspath(path.parent), folder)
        try:
            path.name.encode("utf-8")
            alias = os.path.join(folder, path.name)
        except UnicodeEncodeError:
            low = path.name.lower()
            ext = next((e for e in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True) if low.endswith(e)), "")
            alias = os.path.join(tmp, "file" + ext)
            os.symlink(os.path.abspath(path), alias)
        yield alias
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
    path = Path(os.fsdecode(path))
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
        with _PIL_OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is MAX_PIXELS
            im = Image.open(path)  # reads the header only
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(path, int(found.group(1)) if found else MAX_PIXELS + 1) from None
    except Exception as exc:  # Pillow raises many types for corrupt/truncated files
        raise _fail(path, f"not a readable image ({type(exc).__name__}: {exc})") from None
    with im:
        _check_size(path, im.size)  # before the pixels are decoded
        try:
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


def _itk_detail(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()
    return next((ln.strip() for ln in reversed(msg) if ln.strip()), type(exc).__name__)


def _itk_read(path: Path, image_io: str | None = None) -> sitk.Image:
    """Read with SimpleITK after checking the size in the header (MAX_PIXELS)."""
    import SimpleITK as sitk

    with _itk_name(path) as name:
        reader = sitk.ImageFileReader()
        if image_io:
            reader.SetImageIO(image_io)
        reader.SetFileName(name)
        reader.ReadImageInformation()
        _check_size(path, reader.GetSize())
        return reader.Execute()


def _read_itk(path: Path):
    try:
        img = _itk_read(path)
    except UsradError:
        raise
    except Exception as exc:
        raise _fail(path, f"not a readable image ({_itk_detail(exc)})") from None
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
    spacing = _dicom_spacing(path)
    try:
        img = _itk_read(path, "GDCMImageIO")
    except UsradError:
        raise
    except Exception as exc:
        raise _fail(path, f"DICOM pixel data cannot be read ({_itk_detail(exc)})") from None
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
        special = isinstance(spacing_mm, float) and not np.isfinite(spacing_mm)  # NaN: not given; inf: refused below
        if not special and parse_number(spacing_mm) is None:  # the manifest's definition of a number
            raise _fail(path, f"pixel spacing {spacing_mm!r} is not a number", SPACING_COLUMN)
        spacing_mm = float(spacing_mm)
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

    arr, file_spacing, geometry, path = _read_any(path)
    arr, where = _mask_values(arr, path)
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
        raise _fail(path, f"mask is empty (no lesion pixel{where})")
    if nonzero.size > 1:
        shown = ", ".join(f"{v:g}" for v in nonzero[:6]) + (", ..." if nonzero.size > 6 else "")
        hint = " (a JPEG mask has compression artefacts: save masks as PNG)" if path.name.lower().endswith((".jpg", ".jpeg")) else ""
        if where:
            hint += " (soft, semi-transparent edges: save the mask without anti-aliasing)"
        raise _fail(path, f"mask has {nonzero.size} different non-zero labels{where} ({shown}); one lesion label (1 or 255) "
                          f"is expected{hint}")
    lesion = arr != 0
    why = _coverage_problem(lesion, pixels(reference))
    if why:
        raise _fail(path, why + where)
    mask = sitk.GetImageFromArray(lesion.astype(np.uint8))
    mask.CopyInformation(reference)
    return mask


def pixels(img: sitk.Image) -> np.ndarray:
    """Read-only numpy view of an image's pixels, (rows, cols)."""
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(img)
