"""PyRadiomics extraction of a cohort: sharding, a per-image cache, progress, user-facing errors.

* :func:`assign_shards` orders the patients by a stable hash of their IDs and cuts that order into shards of
  equal size (±1 patient), so that no shard job is left running alone at the end of the stage; all images
  of a patient are in one shard, and the order does not depend on the rows' order or on other columns.
* :func:`extract_cohort` imports ``radiomics`` once per process, reads each image once and extracts
  every reader's mask from it (``r1`` from column ``mask``, ``r2`` from ``mask_reader2`` when given).
  The filtered images (LoG sigmas, wavelet bands) of an image are computed once and shared by all its masks
  (:meth:`Extractor.extract_many`, PyRadiomics' own functions, values equal to ``execute()`` per mask), unless
  the params make them depend on the mask (``preCrop``, resampling, resegmentation): then ``execute()`` per mask.
* With ``perturbation={"n": k, "radius_px": r, "seed": s}``, every reader-1 mask also gives k perturbed
  copies (readers ``p1`` … ``pk``; :func:`usrad.selection.perturb_mask`: erosion, dilation or a shift of up
  to ``r`` pixels, drawn from a generator seeded by ``s``, the image ID and k), for the ICC filter of a
  cohort without a second reader. They are reproducible and cached like the readers' masks.
* With ``cache_dir``, each image × mask result is stored in one small JSON file keyed by the SHA-256 of
  the image file, of the mask file, of the params file, the pixel spacing given in the cohort and the
  PyRadiomics version; a cached result is reused without reading the image or calling PyRadiomics.
  That is how adding one patient re-extracts only that patient although the shard jobs rerun (and some
  patients move to a neighbouring shard).

``config/radiomics.yaml`` alone decides what is extracted; nothing here overrides its settings.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_text
from .errors import Problem, UsradError
from .features import ID_COLUMNS

READERS = (("r1", "mask"), ("r2", "mask_reader2"))
SUMMARY_TAG = "usrad-extract-summary"
CACHE_FORMAT = 1
_HASH_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------- sharding
def shard_key(patient_id: str) -> int:
    """Stable 64-bit key of a patient ID (first 8 bytes of the SHA-256 of the ID string)."""
    return int.from_bytes(hashlib.sha256(str(patient_id).encode("utf-8")).digest()[:8], "big")


def assign_shards(patient_ids, n_shards: int) -> dict[str, int]:
    """Shard (0 … n_shards-1) of every distinct patient: patients ordered by :func:`shard_key` (then ID), cut into
    ``n_shards`` consecutive runs whose sizes differ by at most one.

    Equal sizes, not ``key % n_shards``: with a modulo, shard sizes scatter binomially (36 to 48 patients for
    671 patients in 16 shards) and the largest shards, scheduled last, left a core idle for ~10 % of the stage.
    """
    if int(n_shards) < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    ids = sorted({str(p) for p in patient_ids}, key=lambda p: (shard_key(p), p))
    return {p: rank * int(n_shards) // len(ids) for rank, p in enumerate(ids)}


def shard_rows(cohort_df: pd.DataFrame, shard: int, n_shards: int) -> pd.DataFrame:
    """The rows of the cohort whose patient falls in ``shard`` (:func:`assign_shards` over the whole cohort)."""
    pids = cohort_df["patient_id"].astype(str)
    of = assign_shards(pids, n_shards)
    return cohort_df[(pids.map(of) == int(shard)).to_numpy(dtype=bool)]


# ------------------------------------------------------------------------------------------- provenance
def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _radiomics():
    """Import PyRadiomics (once per process) with its logging quiet."""
    import radiomics

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return radiomics


def provenance(params_path) -> dict:
    """The ``usrad`` metadata of a feature table extracted with ``params_path`` (feature counts added on write)."""
    import pyarrow
    import pywt
    import SimpleITK as sitk

    from . import __version__

    params_path = Path(params_path)
    try:
        text = params_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsradError("Cannot read the PyRadiomics parameter file",
                         [Problem(f"cannot read it ({exc.strerror or exc})", file=str(params_path))]) from None
    radiomics = _radiomics()
    return {
        "params_text": text,
        "params_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "versions": {
            "pyradiomics": str(radiomics.__version__).lstrip("v"),
            "SimpleITK": sitk.__version__,
            "numpy": np.__version__,
            "PyWavelets": pywt.__version__,
            "pyarrow": pyarrow.__version__,
            "usrad": __version__,
            "python": ".".join(map(str, sys.version_info[:3])),
        },
    }


# ------------------------------------------------------------------------------------------- extractor
# PyRadiomics image types whose generator ignores the mask (checked in radiomics/imageoperations.py 3.1.x):
# their filtered images can be shared by all masks of one image.
MASK_FREE_IMAGE_TYPES = frozenset({"Original", "LoG", "Wavelet", "Square", "SquareRoot", "Logarithm",
                                   "Exponential", "Gradient", "LBP2D"})
# What PyRadiomics raises for an image/mask it cannot extract: reported as a Problem for that mask.
EXTRACTION_ERRORS = (ValueError, RuntimeError, AssertionError, IndexError, ZeroDivisionError)
# getBinEdges versions whose fixed-bin-width branch _bin_edges reproduces (same source, checked by hash).
_BIN_EDGES_SOURCE_SHA256 = {"54f0c0b681c0b3a6753cacf4e6ada8b956cc6886143fc91da9c0fb107c7e5c94"}  # pyradiomics 3.1.4


def _bin_edges_patchable(original) -> bool:
    import inspect

    try:
        src = inspect.getsource(original)
    except (OSError, TypeError):
        return False
    return hashlib.sha256(src.encode("utf-8")).hexdigest() in _BIN_EDGES_SOURCE_SHA256


class _fast_bin_edges:
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
            cls._patchable = _bin_edges_patchable(cls._original)
        if cls._patchable:
            imageoperations.getBinEdges = _bin_edges
        return self

    def __exit__(self, *exc):
        from radiomics import imageoperations

        if type(self)._original is not None:
            imageoperations.getBinEdges = type(self)._original
        return False


def _bin_edges(parameterValues, **kwargs):  # noqa: N803 (PyRadiomics' signature)
    original = _fast_bin_edges._original
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


class Extractor:
    """One configured PyRadiomics extractor (per params file and process)."""

    def __init__(self, params_path):
        self.params_path = Path(params_path)
        radiomics = _radiomics()
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
        with _fast_bin_edges():
            result = self._extractor.execute(image, mask)
        return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}

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

    def extract_many(self, image, masks) -> list:
        """Features of one image for each of ``masks``: per mask a dict as :meth:`extract` gives, or the exception
        PyRadiomics raised for that mask (one of :data:`EXTRACTION_ERRORS`; other errors propagate).

        When :meth:`sharing_blockers` is empty, every filtered image (LoG sigma, wavelet band, ...) is computed
        once and every mask's features come from it, through PyRadiomics' own steps of ``execute()`` in its
        order: ``getMask``, ``normalizeImage``, ``checkMask``, ``computeShape`` on the original image, the
        ``imageoperations.get<Type>Image`` generators, ``cropToTumorMask`` and ``computeFeatures``. The values
        equal ``execute()`` per mask. Otherwise each mask goes through ``execute()``.
        """
        if self.sharing_blockers():
            return [self._try_extract(image, m) for m in masks]
        with _fast_bin_edges():
            results = self._extract_shared(image, masks)
        return [r if isinstance(r, BaseException) else
                {k: float(v) for k, v in r.items() if not k.startswith("diagnostics_")} for r in results]

    def _try_extract(self, image, mask):
        try:
            return self.extract(image, mask)
        except EXTRACTION_ERRORS as exc:
            return exc

    def _extract_shared(self, image, masks) -> list:
        from itertools import chain

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
                results[i] = ex.computeShape(image, mask, box, **settings)
                prepared[i] = (mask, box)
            except EXTRACTION_ERRORS as exc:
                results[i] = exc
                del prepared[i]
        if not prepared:
            return results
        generators = []
        for image_type, custom in ex.enabledImagetypes.items():
            args = settings.copy()
            args.update(custom)
            generators = chain(generators, getattr(imageoperations, f"get{image_type}Image")(image, masks[0], **args))
        try:
            for filtered, type_name, kwargs in generators:
                for i in list(prepared):
                    mask, box = prepared[i]
                    try:
                        cropped, cropped_mask = imageoperations.cropToTumorMask(filtered, mask, box, padDistance=0)
                        results[i].update(ex.computeFeatures(cropped, cropped_mask, type_name, **kwargs))
                    except EXTRACTION_ERRORS as exc:
                        results[i] = exc
                        del prepared[i]
        except EXTRACTION_ERRORS as exc:  # a filter failed: execute() would fail for every mask
            for i in prepared:
                results[i] = exc
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


# ----------------------------------------------------------------------------------------------- cache
def cache_key(image_sha: str, mask_sha: str, params_sha: str, spacing_mm: float | None, version: str) -> str:
    spacing = None if spacing_mm is None else repr(float(spacing_mm))
    blob = json.dumps([CACHE_FORMAT, image_sha, mask_sha, params_sha, spacing, version])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def content_sha256(image_sha: str, mask_sha: str, spacing_mm: float | None) -> str:
    """What decides a feature row besides the parameters and the PyRadiomics version: the bytes of the image and
    of the mask (SHA-256 of each; a perturbed mask's own digest) and the pixel spacing given in the cohort.
    A feature table records it for every row (:func:`feature_table_metadata`) so that rows are matched to new
    patients by content, never by an id."""
    spacing = None if spacing_mm is None else repr(float(spacing_mm))
    return hashlib.sha256(json.dumps(["content", image_sha, mask_sha, spacing]).encode("utf-8")).hexdigest()


def row_content(cohort_df: pd.DataFrame, readers=("r1", "r2")) -> dict[tuple[str, str, str], str]:
    """``{(patient_id, image_id, reader): content SHA-256}`` of the given readers' rows of a cohort table (files
    hashed; OSError for a missing file). The reference reader's is what :mod:`usrad.predict` looks up."""
    out = {}
    for rec in cohort_df.to_dict("records"):
        image_sha, spacing = None, _spacing(rec.get("pixel_spacing_mm"))
        for reader, col in READERS:
            if reader in readers and _given(rec.get(col)):
                image_sha = image_sha or file_sha256(rec["image"])
                out[(str(rec["patient_id"]), str(rec["image_id"]), reader)] = content_sha256(
                    image_sha, file_sha256(rec[col]), spacing)
    return out


def feature_table_metadata(params_path, content: dict | None = None) -> dict:
    """The ``usrad`` metadata of a feature table: :func:`provenance` plus, when given, the content SHA-256 of
    every row (``content_sha256``: sorted ``[patient_id, image_id, reader, sha]``; see :func:`content_sha256`)."""
    meta = provenance(params_path)
    if content is not None:
        meta["content_sha256"] = sorted([*k, v] for k, v in content.items())
    return meta


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


class CacheWarning(UserWarning):
    """A feature-cache entry was unreadable or malformed (treated as a miss: extracted again and rewritten)."""


def _entry_problem(entry, key: str, expected: list[str]) -> str | None:
    """Why a parsed cache entry cannot be used (None: it can): it must be ``{key, names, values}`` with this key,
    exactly the features the parameters give, in their order, and one number per name."""
    if not isinstance(entry, dict):
        return f"holds a JSON {type(entry).__name__}, not an object"
    if entry.get("key") != key:
        return "its key is not the key of its file name"
    names, values = entry.get("names"), entry.get("values")
    if names != expected:
        return "its feature names are not the ones these PyRadiomics parameters give"
    if not isinstance(values, list) or len(values) != len(names):
        return "it does not hold one value per feature name"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "a value is not a number"
    return None


def _cache_load(cache_dir: Path | None, key: str, extractor: Extractor) -> dict[str, float] | None:
    """The cached features of ``key``, or None (absent). A corrupt, truncated or malformed entry is a miss too,
    with a :class:`CacheWarning`: the cache never gives features that were not extracted for this key."""
    if cache_dir is None:
        return None
    path = _cache_path(cache_dir, key)
    try:
        if not os.path.lexists(path):
            return None
        if path.is_symlink() or not path.is_file():  # a pipe would block, a link may point anywhere
            raise OSError(f"not a regular file ({'a symbolic link' if path.is_symlink() else 'folder, device or pipe'})")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        why = f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    else:
        try:
            entry = json.loads(text)
        except (ValueError, RecursionError):
            entry, why = None, "is not valid JSON (truncated?)"
        else:
            why = _entry_problem(entry, key, extractor.expected_features())
        if why is None:
            return dict(zip(entry["names"], (float(v) for v in entry["values"])))
    warnings.warn(f"feature cache entry {path} {why}; extracting this image again (the entry is rewritten)",
                  CacheWarning, stacklevel=3)
    return None


def _cache_store(cache_dir: Path | None, key: str, feats: dict[str, float]) -> None:
    """Store one result; a cache that cannot be written is warned about (the result itself is kept)."""
    if cache_dir is None:
        return
    path = _cache_path(cache_dir, key)
    text = json.dumps({"key": key, "names": list(feats), "values": list(feats.values())})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, text)
    except OSError as exc:
        warnings.warn(f"cannot write the feature cache entry {path} ({exc.strerror or exc}); the features are kept "
                      "but will be extracted again next time", CacheWarning, stacklevel=3)


# -------------------------------------------------------------------------------------------- helpers
def _given(value) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return str(value).strip() != ""


def perturbation_settings(perturbation) -> tuple[int, int, int]:
    """``(n, radius_px, seed)`` of a perturbation spec (None or n = 0: no perturbed masks)."""
    if not perturbation:
        return 0, 1, 0
    return int(perturbation.get("n", 0)), int(perturbation.get("radius_px", 2)), int(perturbation.get("seed", 0))


def perturbed_mask(mask, image_id: str, k: int, radius_px: int, seed: int):
    """The k-th perturbed copy (SimpleITK, reference geometry) of a reader-1 mask; reproducible."""
    import SimpleITK as sitk

    from .selection import perturb_mask

    digest = hashlib.sha256(f"{int(seed)}:{image_id}:{int(k)}".encode("utf-8")).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    arr = perturb_mask(sitk.GetArrayFromImage(mask), rng, mode="random", radius=radius_px, max_shift=radius_px)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(mask)
    return out


def _perturbed_sha(mask_sha: str, image_id: str, k: int, radius_px: int, seed: int) -> str:
    blob = json.dumps(["perturb", mask_sha, str(image_id), int(k), int(radius_px), int(seed)])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _spacing(value) -> float | None:
    if not _given(value):
        return None
    return float(value)


def _locate(err: UsradError, patient: str, column: str, file: str) -> list[Problem]:
    """An imageio error's problems with the patient and column filled in."""
    return [Problem(p.message, patient=patient, column=column, file=p.file or file, row=p.row) for p in err.problems] \
        or [Problem(err.summary, patient=patient, column=column, file=file)]


class _Progress:
    def __init__(self, total: int, log, enabled: bool, every: int = 10):
        self.total, self.log, self.enabled, self.every = total, log, enabled, every
        self.start = time.perf_counter()
        self.done = 0

    def step(self, cached: int) -> None:
        self.done += 1
        if not self.enabled or (self.done % self.every and self.done != self.total):
            return
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        self.log.write(f"extract: {self.done}/{self.total} images ({cached} masks from cache), "
                       f"{rate:.2f} images/s, ETA {eta:.0f} s\n")
        self.log.flush()


# -------------------------------------------------------------------------------------------- cohort
def extract_cohort(cohort_df: pd.DataFrame, params_path, cache_dir=None, progress: bool = True,
                   log=None, perturbation=None, content: dict | None = None) -> pd.DataFrame:
    """Feature table rows (see :mod:`usrad.features`) for every image × reader of a normalised cohort table.

    Every image is read once; its reader masks are extracted from that one image. All bad images/masks
    are collected and reported together as one :class:`UsradError` (patient, column, file each); results
    extracted before the error stay in the cache. ``log`` is a text stream (default stderr): a progress
    line every 10 images and a final ``usrad-extract-summary {json}`` line with the summed in-process
    PyRadiomics time. The same summary is in ``df.attrs["extraction"]``. ``content``: a dict filled with the
    content SHA-256 of every row (``{(patient_id, image_id, reader): sha}``, :func:`content_sha256`).
    """
    from .imageio import read_image, read_mask

    log = log if log is not None else sys.stderr
    wall_start = time.perf_counter()
    extractor = get_extractor(params_path)
    cache = Path(cache_dir) if cache_dir is not None else None
    rows: list[dict] = []
    problems: list[Problem] = []
    names: list[str] | None = None
    n_cached = n_extracted = 0
    extraction_seconds = 0.0
    bar = _Progress(len(cohort_df), log, progress)
    n_perturbed, radius_px, perturb_seed = perturbation_settings(perturbation)

    for rec in cohort_df.to_dict("records"):
        patient, image_id = str(rec["patient_id"]), str(rec["image_id"])
        spacing = _spacing(rec.get("pixel_spacing_mm"))
        jobs = [(reader, col, str(rec[col])) for reader, col in READERS if _given(rec.get(col))]
        try:
            image_sha = file_sha256(rec["image"])
            keyed, contents = [], {}
            for reader, col, path in jobs:
                mask_sha = file_sha256(path)
                keyed.append((reader, col, path, 0, cache_key(image_sha, mask_sha, extractor.params_sha256,
                                                              spacing, extractor.version)))
                contents[reader] = content_sha256(image_sha, mask_sha, spacing)
                if reader == "r1":  # perturbed copies of reader 1's mask: readers p1 … pn
                    for k in range(1, n_perturbed + 1):
                        p_sha = _perturbed_sha(mask_sha, image_id, k, radius_px, perturb_seed)
                        keyed.append((f"p{k}", col, path, k, cache_key(image_sha, p_sha, extractor.params_sha256,
                                                                       spacing, extractor.version)))
                        contents[f"p{k}"] = content_sha256(image_sha, p_sha, spacing)
        except OSError as exc:
            bad = exc.filename or rec["image"]
            col = next((c for _, c, p in jobs if p == bad), "image")
            problems.append(Problem(f"cannot read file ({exc.strerror or exc})", patient=patient, column=col, file=str(bad)))
            bar.step(n_cached)
            continue

        image = None
        masks = {}  # path -> mask read for this image (a perturbed copy reuses reader 1's)
        found: dict[str, dict[str, float]] = {}  # reader -> features (cache or fresh)
        todo = []  # (reader, col, path, key, mask) still to extract
        for reader, col, path, k, key in keyed:
            feats = _cache_load(cache, key, extractor)
            if feats is not None:
                n_cached += 1
                found[reader] = feats
                continue
            try:
                if image is None:
                    image = read_image(rec["image"], spacing)
            except UsradError as err:
                problems.extend(_locate(err, patient, "image", str(rec["image"])))
                break
            try:
                if path not in masks:
                    masks[path] = read_mask(path, image)
                mask = masks[path]
            except UsradError as err:
                problems.extend(_locate(err, patient, col, path))
                masks[path] = None
                continue
            if mask is None:
                continue  # reader 1's mask is bad: already reported
            if k:
                mask = perturbed_mask(mask, image_id, k, radius_px, perturb_seed)
            todo.append((reader, col, path, key, mask))
        if todo:  # all masks of this image in one call: the filtered images are computed once
            t0 = time.perf_counter()
            results = extractor.extract_many(image, [t[-1] for t in todo])
            extraction_seconds += time.perf_counter() - t0
            expected = extractor.expected_features()
            for (reader, col, path, key, _), feats in zip(todo, results):
                if isinstance(feats, BaseException):
                    msg = str(feats).strip().splitlines()[0] if str(feats).strip() else type(feats).__name__
                    problems.append(Problem(f"PyRadiomics cannot extract features from this image and mask: {msg}",
                                            patient=patient, column=col, file=path))
                    continue
                n_extracted += 1
                if list(feats) != expected:
                    missing = [n for n in expected if n not in feats]
                    problems.append(Problem(
                        f"PyRadiomics returned {len(feats)} of the {len(expected)} features the parameters define "
                        f"(missing e.g. {missing[:3]}); is the image large enough for the LoG sigmas?",
                        patient=patient, column=col, file=path))
                    continue
                _cache_store(cache, key, feats)
                found[reader] = feats
        for reader, *_ in keyed:  # rows in the readers' order, as before
            if reader in found:
                names = names or list(found[reader])
                rows.append({"patient_id": patient, "image_id": image_id, "reader": reader, **found[reader]})
                if content is not None:
                    content[(patient, image_id, reader)] = contents[reader]
        bar.step(n_cached)

    if problems:
        raise UsradError("Feature extraction failed", problems)
    if names is None:
        names = extractor.expected_features()
    df = pd.DataFrame(rows, columns=ID_COLUMNS + names)
    for c in ID_COLUMNS:
        df[c] = df[c].astype(object)
    df[names] = df[names].astype(np.float64)
    df = df.sort_values(ID_COLUMNS, kind="mergesort").reset_index(drop=True)
    summary = {"images": int(len(cohort_df)), "pairs": len(rows), "cached": n_cached, "extracted": n_extracted,
               "extraction_seconds": round(extraction_seconds, 6),
               "wall_seconds": round(time.perf_counter() - wall_start, 6)}
    df.attrs["extraction"] = summary
    log.write(f"{SUMMARY_TAG} {json.dumps(summary, sort_keys=True)}\n")
    log.flush()
    return df


def extract_shard(cohort_path, params_path, shard: int, n_shards: int, out_path, cache_dir=None, log=None,
                  perturbation=None) -> pd.DataFrame:
    """Extract the patients of one shard of the cohort table and write their feature table to ``out_path``.

    A shard without patients gets an empty table with the full columns and metadata, so the merge is uniform.
    """
    from .cohort import read_cohort_table
    from .features import write_feature_table

    log = log if log is not None else sys.stderr
    cohort = read_cohort_table(cohort_path)
    rows = shard_rows(cohort, shard, n_shards)
    log.write(f"extract: shard {shard}/{n_shards}: {rows['patient_id'].nunique()} patients, {len(rows)} images\n")
    content: dict = {}
    df = extract_cohort(rows, params_path, cache_dir=cache_dir, progress=True, log=log, perturbation=perturbation,
                        content=content)
    # the content SHA-256 of every row: `usrad predict --features` matches rows by content, never by an id
    write_feature_table(df, out_path, feature_table_metadata(params_path, content))
    return df
