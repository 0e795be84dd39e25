"""Image file formats: which reader a file needs, and the raster (Pillow), ITK and DICOM readers.

:func:`read_pixels` checks the file, picks the reader by extension (a file without one is tried as DICOM),
refuses a file of more than MAX_PIXELS pixels before its pixels are decoded and returns the raw pixels with the
spacing and placement the file stores (if any). :func:`read_error` is the error every reading failure raises.
"""
from __future__ import annotations

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

from ..errors import Problem, UsradError

if TYPE_CHECKING:
    import SimpleITK as sitk
# SimpleITK is imported inside the functions that read images: it maps ~90 MiB, and the modelling and
# evaluation jobs import this module (through usrad.manifest, via usrad.cohort) only to read tables.

RASTER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
ITK_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
DICOM_EXTENSIONS = (".dcm", ".dicom")
SUPPORTED_EXTENSIONS = RASTER_EXTENSIONS + ITK_EXTENSIONS + DICOM_EXTENSIONS
MAX_PIXELS = 4096 * 4096  # larger files are refused before decoding (module docstring)
_PIL_OPEN_LOCK = threading.Lock()  # warnings filters are process-wide: Image.open under one lock


def _too_large(path, pixels: int, size: str = "") -> UsradError:
    shown = f"{size} = " if size else ""
    return read_error(path, f"image has {shown}{pixels:,} pixels, more than the {MAX_PIXELS:,} (4096 x 4096) usrad reads: it is "
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


def read_error(path, message: str, column: str | None = None) -> UsradError:
    """The error for a file that cannot be read as an image or mask: one Problem naming the file."""
    return UsradError(f"Cannot read {path}", [Problem(message, file=str(path), column=column)])


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(RASTER_EXTENSIONS):
        return "raster"
    if name.endswith(ITK_EXTENSIONS):
        return "itk"
    if name.endswith(DICOM_EXTENSIONS) or "." not in name:
        return "dicom"
    raise read_error(path, f"unsupported image format {Path(name).suffix!r}; supported: "
                      + ", ".join(SUPPORTED_EXTENSIONS) + " (or DICOM without extension)")


def _check_file(path) -> Path:
    path = Path(os.fsdecode(path))
    if not path.exists():
        raise read_error(path, "file not found")
    if not path.is_file():
        raise read_error(path, "is not a file")
    if not os.access(path, os.R_OK):
        raise read_error(path, "file is not readable (permission denied)")
    return path



# --------------------------------------------------------------------------------------------------
# Low-level readers: each returns (array float64 of shape (rows, cols), spacing (sx, sy) or None, itk image or None)

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
        raise read_error(path, f"not a readable image ({type(exc).__name__}: {exc})") from None
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
            raise read_error(path, f"not a readable image ({type(exc).__name__}: {exc})") from None
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
    raise read_error(path, f"is a {dim}D image of size {tuple(size)}; a single 2D image (or a 3D image with one slice) is expected")


def _itk_array(img: sitk.Image, path: Path) -> np.ndarray:
    import SimpleITK as sitk

    img = _squeeze(img, path)
    arr = sitk.GetArrayFromImage(img)  # (rows, cols) or (rows, cols, components)
    if img.GetNumberOfComponentsPerPixel() > 1 and arr.ndim == 3 and arr.shape[2] not in (2, 3, 4):
        raise read_error(path, f"has {arr.shape[2]} components per pixel; a grey or RGB image is expected")
    if np.iscomplexobj(arr):
        raise read_error(path, "has complex pixel values")
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
        raise read_error(path, f"not a readable image ({_itk_detail(exc)})") from None
    arr, img = _itk_array(img, path)
    return arr, tuple(float(s) for s in img.GetSpacing()), (tuple(img.GetOrigin()), tuple(img.GetDirection()))


def _dicom_spacing(path: Path):
    """(sx, sy) in mm from the DICOM header, or None. Raises for a file that is not DICOM."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as exc:
        detail = str(exc).split(" Use force=True")[0]
        raise read_error(path, f"not a readable DICOM file ({type(exc).__name__}: {detail})") from None
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise read_error(path, f"is a multi-frame DICOM ({frames} frames, e.g. a cine loop); export the single frame to analyse")
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
        raise read_error(path, f"DICOM pixel data cannot be read ({_itk_detail(exc)})") from None
    arr, _ = _itk_array(img, path)
    return arr, spacing, None


def read_pixels(path) -> tuple[np.ndarray, tuple[float, float] | None, tuple | None, Path]:
    """(pixels, spacing or None, (origin, direction) or None, path) of an image or mask file of any format."""
    path = _check_file(path)
    kind = _kind(path)
    if kind == "raster":
        arr, spacing, geometry = _read_raster(path)
    elif kind == "itk":
        arr, spacing, geometry = _read_itk(path)
    else:
        arr, spacing, geometry = _read_dicom(path)
    if arr.ndim not in (2, 3) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise read_error(path, f"has no usable 2D pixel data (shape {arr.shape})")
    return arr, spacing, geometry, path


__all__ = ["RASTER_EXTENSIONS", "ITK_EXTENSIONS", "DICOM_EXTENSIONS", "SUPPORTED_EXTENSIONS", "MAX_PIXELS",
           "read_error", "read_pixels"]
