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

Modules: :mod:`~usrad.imageio.formats` (the file formats and their readers) and :mod:`~usrad.imageio.images`
(images and masks with their checks); this package only re-exports their public API.
"""
from __future__ import annotations

from .formats import (DICOM_EXTENSIONS, ITK_EXTENSIONS, MAX_PIXELS, RASTER_EXTENSIONS, SUPPORTED_EXTENSIONS,
                      read_error, read_pixels)
from .images import (LUMINANCE_WEIGHTS, MAX_BORDER_FRACTION, MAX_LESION_FRACTION, SPACING_COLUMN, SPACING_TOLERANCE,
                     pixel_digest, pixels, read_image, read_mask)

__all__ = [
    "RASTER_EXTENSIONS", "ITK_EXTENSIONS", "DICOM_EXTENSIONS", "SUPPORTED_EXTENSIONS", "MAX_PIXELS", "LUMINANCE_WEIGHTS",
    "SPACING_TOLERANCE", "MAX_LESION_FRACTION", "MAX_BORDER_FRACTION", "SPACING_COLUMN", "read_image", "read_mask",
    "pixel_digest", "pixels", "read_error", "read_pixels",
]
