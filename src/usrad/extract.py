"""PyRadiomics extraction of a cohort: sharding, a per-image cache, progress, user-facing errors.

* :func:`shard_of` puts a patient in a shard by a stable hash of its ID, so adding a patient changes one
  shard only.
* :func:`extract_cohort` imports ``radiomics`` once per process, reads each image once and extracts
  every reader's mask from it (``r1`` from column ``mask``, ``r2`` from ``mask_reader2`` when given).
* With ``cache_dir``, each image × mask result is stored in one small JSON file keyed by the SHA-256 of
  the image file, of the mask file, of the params file, the pixel spacing given in the cohort and the
  PyRadiomics version; a cached result is reused without reading the image or calling PyRadiomics.
  That is how adding one patient re-extracts only that patient although its whole shard job reruns.

``config/radiomics.yaml`` alone decides what is extracted; nothing here overrides its settings.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
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
def shard_of(patient_id: str, n_shards: int) -> int:
    """Shard (0 … n_shards-1) of a patient: SHA-256 of the ID string, independent of the rest of the cohort."""
    if int(n_shards) < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    digest = hashlib.sha256(str(patient_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % int(n_shards)


def shard_rows(cohort_df: pd.DataFrame, shard: int, n_shards: int) -> pd.DataFrame:
    """The rows of the cohort whose patient falls in ``shard``."""
    keep = cohort_df["patient_id"].astype(str).map(lambda p: shard_of(p, n_shards) == int(shard))
    return cohort_df[keep.to_numpy(dtype=bool)]


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
        result = self._extractor.execute(image, mask)
        return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}

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


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


def _cache_load(cache_dir: Path | None, key: str) -> dict[str, float] | None:
    if cache_dir is None:
        return None
    path = _cache_path(cache_dir, key)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent or unreadable (e.g. truncated by a crash elsewhere): extract again
    if entry.get("key") != key:
        return None
    return dict(zip(entry["names"], (float(v) for v in entry["values"])))


def _cache_store(cache_dir: Path | None, key: str, feats: dict[str, float]) -> None:
    if cache_dir is None:
        return
    path = _cache_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"key": key, "names": list(feats), "values": list(feats.values())})
    write_text(path, text)


# -------------------------------------------------------------------------------------------- helpers
def _given(value) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return str(value).strip() != ""


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
                   log=None) -> pd.DataFrame:
    """Feature table rows (see :mod:`usrad.features`) for every image × reader of a normalised cohort table.

    Every image is read once; its reader masks are extracted from that one image. All bad images/masks
    are collected and reported together as one :class:`UsradError` (patient, column, file each); results
    extracted before the error stay in the cache. ``log`` is a text stream (default stderr): a progress
    line every 10 images and a final ``usrad-extract-summary {json}`` line with the summed in-process
    PyRadiomics time. The same summary is in ``df.attrs["extraction"]``.
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

    for rec in cohort_df.to_dict("records"):
        patient, image_id = str(rec["patient_id"]), str(rec["image_id"])
        spacing = _spacing(rec.get("pixel_spacing_mm"))
        jobs = [(reader, col, str(rec[col])) for reader, col in READERS if _given(rec.get(col))]
        try:
            image_sha = file_sha256(rec["image"])
            keyed = [(reader, col, path, cache_key(image_sha, file_sha256(path), extractor.params_sha256,
                                                   spacing, extractor.version)) for reader, col, path in jobs]
        except OSError as exc:
            bad = exc.filename or rec["image"]
            col = next((c for _, c, p in jobs if p == bad), "image")
            problems.append(Problem(f"cannot read file ({exc.strerror or exc})", patient=patient, column=col, file=str(bad)))
            bar.step(n_cached)
            continue

        image = None
        for reader, col, path, key in keyed:
            feats = _cache_load(cache, key)
            if feats is not None:
                n_cached += 1
            else:
                try:
                    if image is None:
                        image = read_image(rec["image"], spacing)
                except UsradError as err:
                    problems.extend(_locate(err, patient, "image", str(rec["image"])))
                    break
                try:
                    mask = read_mask(path, image)
                except UsradError as err:
                    problems.extend(_locate(err, patient, col, path))
                    continue
                t0 = time.perf_counter()
                try:
                    feats = extractor.extract(image, mask)
                except (ValueError, RuntimeError, AssertionError, IndexError, ZeroDivisionError) as exc:
                    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    problems.append(Problem(f"PyRadiomics cannot extract features from this image and mask: {msg}",
                                            patient=patient, column=col, file=path))
                    continue
                extraction_seconds += time.perf_counter() - t0
                n_extracted += 1
                expected = extractor.expected_features()
                if list(feats) != expected:
                    missing = [n for n in expected if n not in feats]
                    problems.append(Problem(
                        f"PyRadiomics returned {len(feats)} of the {len(expected)} features the parameters define "
                        f"(missing e.g. {missing[:3]}); is the image large enough for the LoG sigmas?",
                        patient=patient, column=col, file=path))
                    continue
                _cache_store(cache, key, feats)
            names = names or list(feats)
            rows.append({"patient_id": patient, "image_id": image_id, "reader": reader, **feats})
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


def extract_shard(cohort_path, params_path, shard: int, n_shards: int, out_path, cache_dir=None, log=None) -> pd.DataFrame:
    """Extract the patients of one shard of the cohort table and write their feature table to ``out_path``.

    A shard without patients gets an empty table with the full columns and metadata, so the merge is uniform.
    """
    from .cohort import read_cohort_table
    from .features import write_feature_table

    log = log if log is not None else sys.stderr
    cohort = read_cohort_table(cohort_path)
    rows = shard_rows(cohort, shard, n_shards)
    log.write(f"extract: shard {shard}/{n_shards}: {rows['patient_id'].nunique()} patients, {len(rows)} images\n")
    df = extract_cohort(rows, params_path, cache_dir=cache_dir, progress=True, log=log)
    write_feature_table(df, out_path, provenance(params_path))
    return df
