"""Faster steps inside PyRadiomics with the same values: numpy bin edges, one binning per image and mask, numpy
mask checks.

:class:`fast_paths` swaps them in for the duration of a block (:class:`usrad.extract.Extractor` wraps every
PyRadiomics call in one), each only for the PyRadiomics source it was checked against (SHA-256 of the function's
source, pyradiomics 3.1.4) and only for the cases it reproduces; everything else goes to PyRadiomics' own code.

- :func:`bin_edges` for ``imageoperations.getBinEdges``: the ROI's extremes with ``ndarray.min/max`` instead of
  Python's ``min``/``max`` looping over the array (~25 % of PyRadiomics' time on our images).
- :func:`shared_binning` for ``RadiomicsFeaturesBase._applyBinning``: ``computeFeatures`` builds each of the six
  feature classes (first order, GLCM, GLRLM, GLSZM, GLDM, NGTDM) from the same cropped image and mask, and each
  bins the image again; the binned image of the last (image, mask, settings) is kept and each class gets a copy.
- :func:`get_mask` for ``imageoperations.getMask``: the label's presence with ``(mask == label).any()`` instead of
  ``numpy.unique`` over the whole image (the list of labels is only needed for the error message: a mask without
  the label goes to PyRadiomics' own function).
- :func:`check_mask` for ``imageoperations.checkMask``: when the mask has the image's size, spacing, origin and
  direction exactly (every mask usrad builds: :func:`usrad.imageio.read_mask`, the region masks), the bounding box
  and voxel count come from the mask's pixels with numpy instead of a ``LabelStatisticsImageFilter`` over the
  whole image (~10 ms per mask, 14 % of a peritumoral ring's cost); same box, same checks, same messages.
"""
from __future__ import annotations

import hashlib

import numpy as np

# the PyRadiomics sources each fast path was checked against (pyradiomics 3.1.4), by SHA-256 of inspect.getsource
_SOURCES = {
    "getBinEdges": "54f0c0b681c0b3a6753cacf4e6ada8b956cc6886143fc91da9c0fb107c7e5c94",
    "_applyBinning": "510397233f4cfa6ee02c71e57b0476a70d65e237a0e73603e3d1ff87d470999d",
    "getMask": "a7bf74e89e7b899f85ddc424df21ef9b6a0b296ed9150d7a44ade53db8cd3003",
    "checkMask": "06dbb9052281bb9ae019a2e164e8f0855fea5ddd1ebcb16ae6a7861557866eff",
}


def source_checked(original) -> bool:
    """Whether ``original`` (the PyRadiomics function of that name) has the source its fast path was checked against."""
    import inspect

    try:
        src = inspect.getsource(original)
    except (OSError, TypeError):
        return False
    return hashlib.sha256(src.encode("utf-8")).hexdigest() == _SOURCES.get(getattr(original, "__name__", ""))


def _targets() -> list[tuple[object, str, object]]:
    """(owner, attribute, fast replacement) of every fast path."""
    from radiomics import base, imageoperations

    return [(imageoperations, "getBinEdges", bin_edges), (base.RadiomicsFeaturesBase, "_applyBinning", shared_binning),
            (imageoperations, "getMask", get_mask), (imageoperations, "checkMask", check_mask)]


class fast_paths:
    """Within the block, the fast paths of the module docstring replace PyRadiomics' functions whose source they were
    checked against; on exit the originals are back and the kept binned image is dropped."""

    originals: dict[str, object] = {}  # name -> PyRadiomics' function (filled on first use)
    checked: dict[str, bool] = {}  # name -> whether its source is the one checked

    def __enter__(self):
        cls = type(self)
        for owner, name, fast in _targets():
            if name not in cls.originals:
                cls.originals[name] = getattr(owner, name)
                cls.checked[name] = source_checked(cls.originals[name])
            if cls.checked[name]:
                setattr(owner, name, fast)
        return self

    def __exit__(self, *exc):
        for owner, name, _ in _targets():
            if name in type(self).originals:
                setattr(owner, name, type(self).originals[name])
        _BINNED.clear()
        return False


def bin_edges(parameterValues, **kwargs):  # noqa: N803 (PyRadiomics' signature)
    """PyRadiomics' getBinEdges with the minimum and maximum taken by numpy (:class:`fast_paths`)."""
    original = fast_paths.originals["getBinEdges"]
    binWidth = kwargs.get("binWidth", 25)  # noqa: N806
    if kwargs.get("binCount") is not None or not isinstance(parameterValues, np.ndarray) or parameterValues.size == 0:
        return original(parameterValues, **kwargs)
    minimum, maximum = parameterValues.min(), parameterValues.max()
    if np.isnan(minimum) or np.isnan(maximum):
        return original(parameterValues, **kwargs)
    # From here on PyRadiomics 3.1 getBinEdges, verbatim.
    lowBound = minimum - (minimum % binWidth)  # noqa: N806
    highBound = maximum + 2 * binWidth  # noqa: N806
    binEdges = np.arange(lowBound, highBound, binWidth)  # noqa: N806
    if len(binEdges) == 1:
        binEdges = [binEdges[0] - .5, binEdges[0] + .5]  # noqa: N806
    return binEdges


_BINNED: dict[str, tuple] = {}  # "last" -> (key, (image, mask) kept alive so their ids stay theirs, binned, levels, Ng)


def shared_binning(self, matrix):
    """PyRadiomics' ``_applyBinning`` (a feature class's binned image, ``grayLevels`` and ``Ng``), computed once per
    (input image, input mask, settings) object triple and copied to the next class that asks (:class:`fast_paths`).
    Voxel-based extraction (a different mask array) always bins."""
    original = fast_paths.originals["_applyBinning"]
    if self.voxelBased:
        return original(self, matrix)
    key = (id(self.inputImage), id(self.inputMask), repr(sorted(self.settings.items())))
    last = _BINNED.get("last")
    if last is None or last[0] != key:
        binned = original(self, matrix)
        _BINNED["last"] = (key, (self.inputImage, self.inputMask), binned.copy(),
                           self.coefficients["grayLevels"].copy(), self.coefficients["Ng"])
        return binned
    _, _, binned, levels, n_levels = last
    self.coefficients["grayLevels"] = levels.copy()
    self.coefficients["Ng"] = n_levels
    return binned.copy()


def get_mask(mask, **kwargs):
    """PyRadiomics' getMask for a scalar mask holding the (non-zero) label: the mask cast to UInt32
    (:class:`fast_paths`); any other mask goes to PyRadiomics' getMask (vector masks, its errors)."""
    import SimpleITK as sitk

    label = kwargs.get("label", 1)
    if "vector" not in mask.GetPixelIDTypeAsString().lower() and label != 0:
        cast = sitk.Cast(mask, sitk.sitkUInt32)
        if (sitk.GetArrayViewFromImage(cast) == label).any():
            return cast
    return fast_paths.originals["getMask"](mask, **kwargs)


def _same_grid(image, mask) -> bool:
    return (image.GetDimension() == mask.GetDimension() and image.GetSize() == mask.GetSize()
            and image.GetSpacing() == mask.GetSpacing() and image.GetOrigin() == mask.GetOrigin()
            and image.GetDirection() == mask.GetDirection() and image.GetNumberOfComponentsPerPixel() == 1
            and mask.GetNumberOfComponentsPerPixel() == 1 and "int" in mask.GetPixelIDTypeAsString().lower())


def check_mask(imageNode, maskNode, **kwargs):  # noqa: N803 (PyRadiomics' signature)
    """PyRadiomics' checkMask for a mask on the image's own grid, from the mask's pixels (:class:`fast_paths`):
    ``(bounding box (L_x, U_x, L_y, U_y[, L_z, U_z]), None)``, or PyRadiomics' ValueError. Any other mask goes to
    PyRadiomics' checkMask (geometry tolerance, ``correctMask``)."""
    import SimpleITK as sitk

    if not _same_grid(imageNode, maskNode):
        return fast_paths.originals["checkMask"](imageNode, maskNode, **kwargs)
    label = int(kwargs.get("label", 1))
    min_dims = kwargs.get("minimumROIDimensions", 2)
    min_size = kwargs.get("minimumROISize", None)
    roi = sitk.GetArrayViewFromImage(maskNode) == label  # numpy axes: z, y, x
    if not roi.any():
        raise ValueError("Label (%g) not present in mask" % label)
    box = []
    for axis in reversed(range(roi.ndim)):  # PyRadiomics' order: x first
        hits = np.flatnonzero(roi.any(axis=tuple(a for a in range(roi.ndim) if a != axis)))
        box += [int(hits[0]), int(hits[-1])]
    bounding_box = np.array(box)
    # From here on PyRadiomics 3.1 checkMask's checks and messages.
    ndims = np.sum((bounding_box[1::2] - bounding_box[0::2] + 1) > 1)
    if ndims == 0:
        raise ValueError("mask only contains 1 segmented voxel! Cannot extract features for a single voxel.")
    elif ndims < min_dims:
        raise ValueError("mask has too few dimensions (number of dimensions %d, minimum required %d)" % (ndims, min_dims))
    if min_size is not None:
        roi_size = int(roi.sum())
        if roi_size <= min_size:
            raise ValueError("Size of the ROI is too small (minimum size: %g, ROI size: %g" % (min_size, roi_size))
    return bounding_box, None


__all__ = ["fast_paths", "bin_edges", "shared_binning", "get_mask", "check_mask", "source_checked"]
