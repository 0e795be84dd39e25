"""The configured PyRadiomics extractor of a params file: one image and its masks at a time.

:meth:`Extractor.extract_many` extracts every reader's mask of one image; the filtered images (LoG sigmas,
wavelet bands) of the image are computed once and shared by all its masks (PyRadiomics' own functions, values
equal to ``execute()`` per mask), unless the params make them depend on the mask (``preCrop``, resampling,
resegmentation): then ``execute()`` per mask. :func:`get_extractor` keeps one extractor per params file and
process.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import Problem, UsradError
from ..features import image_type_key, is_shape
from .digests import file_sha256
from .fastpaths import fast_paths


def import_radiomics():
    """Import PyRadiomics (once per process) with its logging quiet."""
    import radiomics

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return radiomics


# PyRadiomics image types whose generator ignores the mask (checked in radiomics/imageoperations.py 3.1.x):
# their filtered images can be shared by all masks of one image.
MASK_FREE_IMAGE_TYPES = frozenset({"Original", "LoG", "Wavelet", "Square", "SquareRoot", "Logarithm",
                                   "Exponential", "Gradient", "LBP2D"})
# What PyRadiomics raises for an image/mask it cannot extract: reported as a Problem for that mask.
EXTRACTION_ERRORS = (ValueError, RuntimeError, AssertionError, IndexError, ZeroDivisionError)


class Extractor:
    """One configured PyRadiomics extractor (per params file and process)."""

    def __init__(self, params_path):
        self.params_path = Path(params_path)
        radiomics = import_radiomics()
        from radiomics import featureextractor

        self.version = str(radiomics.__version__).lstrip("v")
        self.params_sha256 = file_sha256(self.params_path)
        try:
            self._extractor = featureextractor.RadiomicsFeatureExtractor(str(self.params_path))
        except Exception as exc:  # pykwalify/yaml errors: the params file is the user's input
            raise UsradError("PyRadiomics rejects the parameter file",
                             [Problem(f"{type(exc).__name__}: {exc}", file=str(self.params_path))]) from None
        self._expected: list[str] | None = None

    def extract(self, image, mask) -> dict[str, float]:
        """Features (diagnostics dropped) of one image and mask, in PyRadiomics' order. Raises PyRadiomics' errors."""
        with fast_paths():
            result = self._extractor.execute(image, mask)
        return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}

    def setting(self, name: str, default=None):
        """One PyRadiomics setting of the params (``minimumROISize``, ...), ``default`` when unset."""
        value = self._extractor.settings.get(name)
        return default if value is None else value

    def sharing_blockers(self) -> list[str]:
        """Why the filtered images of an image cannot be shared by its masks (empty list: they can).

        ``execute()`` filters the image after loading it with the mask; the filtered images depend on the mask
        only when the image is cropped (``preCrop``), resampled (``resampledPixelSpacing``) or resegmented
        (``resegmentRange``) with it, or for a filter that reads the mask (LBP3D, or one unknown to this code).
        ``normalize`` uses whole-image statistics (``imageoperations.normalizeImage``), so it does not block.
        """
        settings = self._extractor.settings
        blockers = []
        if settings.get("preCrop"):
            blockers.append("preCrop")
        if settings.get("interpolator") is not None and settings.get("resampledPixelSpacing") is not None:
            blockers.append("resampledPixelSpacing")
        if settings.get("resegmentRange") is not None:
            blockers.append("resegmentRange")
        blockers += [f"imageType {t}" for t in self._extractor.enabledImagetypes if t not in MASK_FREE_IMAGE_TYPES]
        return blockers

    def image_types(self) -> list[str]:
        """The image types (``Original``, ``LoG``, ``Wavelet``, …) the params enable, in their order."""
        return list(self._extractor.enabledImagetypes)

    def extract_many(self, image, masks, image_types=None, shape=None) -> list:
        """Features of one image for each of ``masks``: per mask a dict as :meth:`extract` gives, or the exception
        PyRadiomics raised for that mask (one of :data:`EXTRACTION_ERRORS`; other errors propagate).
        ``image_types``: per mask, None (every enabled image type) or the image types whose features it gets;
        ``shape``: per mask, whether it gets the shape features (default all True). A peritumoral ring gets
        ``Original`` only and no shape (:mod:`usrad.extract.regions`).

        When :meth:`sharing_blockers` is empty, every filtered image (LoG sigma, wavelet band, ...) is computed
        once and every mask's features come from it, through PyRadiomics' own steps of ``execute()`` in its
        order: ``getMask``, ``normalizeImage``, ``checkMask``, ``computeShape`` on the original image, the
        ``imageoperations.get<Type>Image`` generators, ``cropToTumorMask`` and ``computeFeatures``; a filter no
        mask needs is not computed. The values equal ``execute()`` per mask. Otherwise each mask goes through
        ``execute()`` (and a mask's dict keeps its image types).
        """
        wanted = list(image_types) if image_types is not None else [None] * len(masks)
        shaped = list(shape) if shape is not None else [True] * len(masks)
        if self.sharing_blockers():
            results = [self._try_extract(image, m) for m in masks]
            return [r if isinstance(r, BaseException) else
                    {k: v for k, v in r.items() if (w is None or image_type_key(k) in w) and (sh or not is_shape(k))}
                    for r, w, sh in zip(results, wanted, shaped)]
        with fast_paths():
            results = self._extract_shared(image, masks, wanted, shaped)
        return [r if isinstance(r, BaseException) else
                {k: float(v) for k, v in r.items() if not k.startswith("diagnostics_")} for r in results]

    def _try_extract(self, image, mask):
        try:
            return self.extract(image, mask)
        except EXTRACTION_ERRORS as exc:
            return exc

    def _extract_shared(self, image, masks, wanted, shaped) -> list:
        from radiomics import featureextractor, imageoperations

        ex = self._extractor
        settings = ex.settings.copy()
        settings["additionalInfo"] = False  # diagnostics are dropped anyway
        if featureextractor.geometryTolerance != settings.get("geometryTolerance"):
            ex._setTolerance()
        results: list = [None] * len(masks)
        prepared: dict[int, tuple] = {}  # mask index -> (mask, bounding box)
        for i, raw in enumerate(masks):  # loadImage (getMask) and checkMask, as execute() does per mask
            try:
                mask = imageoperations.getMask(raw, **settings)
                prepared[i] = (mask, None)
            except EXTRACTION_ERRORS as exc:
                results[i] = exc
        if settings.get("normalize", False):
            image = imageoperations.normalizeImage(image, **settings)
        for i in list(prepared):
            mask = prepared[i][0]
            try:
                box, corrected = imageoperations.checkMask(image, mask, **settings)
                if corrected is not None:
                    mask = corrected
                results[i] = ex.computeShape(image, mask, box, **settings) if shaped[i] else {}
                prepared[i] = (mask, box)
            except EXTRACTION_ERRORS as exc:
                results[i] = exc
                del prepared[i]
        for image_type, custom in ex.enabledImagetypes.items():
            users = [i for i in prepared if wanted[i] is None or image_type in wanted[i]]
            if not users:
                continue  # no mask gets this image type's features: its filtered images are not computed
            args = settings.copy()
            args.update(custom)
            try:
                for filtered, type_name, kwargs in getattr(imageoperations, f"get{image_type}Image")(
                        image, masks[0], **args):
                    for i in [i for i in users if i in prepared]:
                        mask, box = prepared[i]
                        try:
                            cropped, cropped_mask = imageoperations.cropToTumorMask(filtered, mask, box, padDistance=0)
                            results[i].update(ex.computeFeatures(cropped, cropped_mask, type_name, **kwargs))
                        except EXTRACTION_ERRORS as exc:
                            results[i] = exc
                            del prepared[i]
            except EXTRACTION_ERRORS as exc:  # a filter failed: execute() would fail for every mask needing it
                for i in [i for i in users if i in prepared]:
                    results[i] = exc
                    del prepared[i]
        return results

    def expected_features(self) -> list[str]:
        """The feature names these params give for a 2D image, from a run on a fixed synthetic image."""
        if self._expected is None:
            import SimpleITK as sitk

            rng = np.random.default_rng(0)
            arr = rng.integers(0, 256, size=(128, 128)).astype(np.float32)
            yy, xx = np.mgrid[:128, :128]
            disk = ((yy - 64) ** 2 + (xx - 64) ** 2 <= 50 ** 2).astype(np.uint8)
            image = sitk.GetImageFromArray(arr)
            image.SetSpacing((1.0, 1.0))
            mask = sitk.GetImageFromArray(disk)
            mask.CopyInformation(image)
            self._expected = list(self.extract(image, mask))
        return self._expected


_EXTRACTORS: dict[tuple[str, str], Extractor] = {}


def get_extractor(params_path) -> Extractor:
    """The process-wide extractor for ``params_path`` (rebuilt if the file's content changed)."""
    key = (str(Path(params_path).resolve()), file_sha256(params_path))
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = Extractor(params_path)
    return _EXTRACTORS[key]


__all__ = ["MASK_FREE_IMAGE_TYPES", "EXTRACTION_ERRORS", "Extractor", "get_extractor", "import_radiomics"]
