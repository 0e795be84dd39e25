"""A faster ``radiomics.imageoperations.getBinEdges``: the same bin edges, the ROI's extremes taken with numpy.

:class:`fast_bin_edges` swaps it in for the duration of a block (:class:`usrad.extract.Extractor` wraps every
PyRadiomics call in one), only for the PyRadiomics source it was checked against.
"""
from __future__ import annotations

import hashlib

import numpy as np

# getBinEdges versions whose fixed-bin-width branch bin_edges reproduces (same source, checked by hash).
_BIN_EDGES_SOURCE_SHA256 = {"54f0c0b681c0b3a6753cacf4e6ada8b956cc6886143fc91da9c0fb107c7e5c94"}  # pyradiomics 3.1.4


def bin_edges_patchable(original) -> bool:
    """Whether ``original`` (PyRadiomics' getBinEdges) has the source :func:`bin_edges` was checked against."""
    import inspect

    try:
        src = inspect.getsource(original)
    except (OSError, TypeError):
        return False
    return hashlib.sha256(src.encode("utf-8")).hexdigest() in _BIN_EDGES_SOURCE_SHA256


class fast_bin_edges:
    """Within the block, ``radiomics.imageoperations.getBinEdges`` takes the ROI's minimum and maximum with
    numpy (``ndarray.min``) instead of Python's ``min``/``max`` looping over the array elements, which was ~25 %
    of PyRadiomics' time on our images. Same values, same arithmetic; applied only to the PyRadiomics source
    it was checked against (SHA-256 of getBinEdges' source), only for a fixed bin width and NaN-free values;
    everything else goes to PyRadiomics' own function.
    """

    _original = None
    _patchable: bool | None = None

    def __enter__(self):
        from radiomics import imageoperations

        cls = type(self)
        if cls._original is None:
            cls._original = imageoperations.getBinEdges
            cls._patchable = bin_edges_patchable(cls._original)
        if cls._patchable:
            imageoperations.getBinEdges = bin_edges
        return self

    def __exit__(self, *exc):
        from radiomics import imageoperations

        if type(self)._original is not None:
            imageoperations.getBinEdges = type(self)._original
        return False


def bin_edges(parameterValues, **kwargs):  # noqa: N803 (PyRadiomics' signature)
    """PyRadiomics' getBinEdges with the minimum and maximum taken by numpy (:class:`fast_bin_edges`)."""
    original = fast_bin_edges._original
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


__all__ = ["fast_bin_edges", "bin_edges", "bin_edges_patchable"]
