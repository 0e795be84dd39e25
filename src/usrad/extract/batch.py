"""Extraction of a cohort table (every image x reader mask) and of one shard of it, with progress and errors.

:func:`extract_cohort` imports ``radiomics`` once per process, reads each image once and extracts every reader's
mask from it (``r1`` from column ``mask``, ``r2`` from ``mask_reader2`` when given, and the perturbed copies
``p1`` … ``pk`` of ``r1``) and, with ``regions``, every such mask's peritumoral regions
(:mod:`usrad.extract.regions`, in the same call, as prefixed columns of the reader's row), through the cache
(:mod:`usrad.extract.cache`); all bad images, masks and regions are reported together as one
:class:`~usrad.errors.UsradError`. :func:`extract_shard` extracts the patients of one
shard (:mod:`usrad.extract.shards`) and writes their feature table.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..cohort import read_cohort_table
from ..errors import Problem, UsradError
from ..features import ID_COLUMNS, LESION, write_feature_table
from ..imageio import read_image, read_mask
from .cache import cache_key, cache_load, cache_store
from .digests import READERS, content_sha256, file_sha256, given, pixel_spacing
from .extractor import Extractor, get_extractor
from .perturbed import perturbation_settings, perturbed_mask, perturbed_sha
from .progress import ShardStatus, stage_identity
from .provenance import feature_table_metadata
from .regions import RegionSpec, region_masks, size_problem
from .shards import shard_rows

SUMMARY_TAG = "usrad-extract-summary"


def _locate(err: UsradError, patient: str, column: str, file: str) -> list[Problem]:
    """An imageio error's problems with the patient and column filled in."""
    return [Problem(p.message, patient=patient, column=column, file=p.file or file, row=p.row) for p in err.problems] \
        or [Problem(err.summary, patient=patient, column=column, file=file)]


class _Progress:
    def __init__(self, total: int, log, enabled: bool, every: int = 10, status: ShardStatus | None = None):
        self.total, self.log, self.enabled, self.every, self.status = total, log, enabled, every, status
        self.start = time.perf_counter()
        self.done = 0

    def step(self, cached: int) -> None:
        self.done += 1
        if self.status is not None:
            self.status.update(self.done, cached)
        if not self.enabled or (self.done % self.every and self.done != self.total):
            return
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        self.log.write(f"extract: {self.done}/{self.total} images ({cached} masks from cache), "
                       f"{rate:.2f} images/s, ETA {eta:.0f} s\n")
        self.log.flush()


class _Extraction:
    """One :func:`extract_cohort` run: its extractor, cache, perturbation and region settings, problems and
    counters."""

    def __init__(self, extractor: Extractor, cache: Path | None, perturbation, regions: RegionSpec):
        self.extractor, self.cache, self.regions = extractor, cache, regions
        self.n_perturbed, self.radius_px, self.perturb_seed = perturbation_settings(perturbation)
        self.problems: list[Problem] = []
        self.n_cached = self.n_extracted = 0
        self.extraction_seconds = 0.0
        self._region_names: list[str] | None = None

    @property
    def region_names(self) -> list[str]:
        """The PyRadiomics features a region gets (its image types' share of the lesion's)."""
        if self._region_names is None:
            self._region_names = self.regions.region_features(self.extractor.expected_features())
        return self._region_names

    def keyed_masks(self, rec: dict, image_id: str, spacing, jobs) -> tuple[list, dict]:
        """``[(reader, region, col, path, k, cache key)]`` of an image's masks (k > 0: a perturbed copy of reader
        1's; region: ``lesion`` or one of :attr:`regions`) and ``{reader: content SHA-256}``. Hashes the files:
        raises OSError for one that cannot be read."""
        ex = self.extractor
        image_sha = file_sha256(rec["image"])
        keyed, contents = [], {}

        def add(reader, col, path, k, sha):
            keyed.append((reader, LESION, col, path, k, cache_key(image_sha, sha, ex.params_sha256, spacing,
                                                                  ex.version)))
            keyed.extend((reader, region, col, path, k, cache_key(image_sha, self.regions.region_sha(sha, region),
                                                                  ex.params_sha256, spacing, ex.version))
                         for region in self.regions.names())
            contents[reader] = content_sha256(image_sha, sha, spacing)

        for reader, col, path in jobs:
            mask_sha = file_sha256(path)
            add(reader, col, path, 0, mask_sha)
            if reader == "r1":  # perturbed copies of reader 1's mask: readers p1 … pn
                for k in range(1, self.n_perturbed + 1):
                    add(f"p{k}", col, path, k, perturbed_sha(mask_sha, image_id, k, self.radius_px, self.perturb_seed))
        return keyed, contents

    def lookup(self, rec: dict, patient: str, image_id: str, spacing, keyed) -> tuple:
        """``(image, found, todo)``: the features found in the cache (``{reader: features}``) and the masks still to
        extract (``[((reader, region), col, path, key, mask)]``) with the image they need (read only when one is)."""
        image = None
        masks = {}  # path -> mask read for this image (a perturbed copy reuses reader 1's)
        regions: dict[str, dict | None] = {}  # reader -> its region masks (None: a region too small, reported)
        found: dict[tuple[str, str], dict[str, float]] = {}  # (reader, region) -> features (cache or fresh)
        todo = []  # ((reader, region), col, path, key, mask) still to extract
        for reader, region, col, path, k, key in keyed:
            feats = cache_load(self.cache, key, self.extractor, None if region == LESION else self.region_names)
            if feats is not None:
                self.n_cached += 1
                found[(reader, region)] = feats
                continue
            try:
                if image is None:
                    image = read_image(rec["image"], spacing)
            except UsradError as err:
                self.problems.extend(_locate(err, patient, "image", str(rec["image"])))
                break
            try:
                if path not in masks:
                    masks[path] = read_mask(path, image)
                mask = masks[path]
            except UsradError as err:
                self.problems.extend(_locate(err, patient, col, path))
                masks[path] = None
                continue
            if mask is None:
                continue  # reader 1's mask is bad: already reported
            if k:
                mask = perturbed_mask(mask, image_id, k, self.radius_px, self.perturb_seed)
            if region != LESION:
                if reader not in regions:
                    regions[reader] = self.region_masks(image, mask, reader, patient, col, path)
                if regions[reader] is None:
                    continue
                mask = regions[reader][region][0]
            todo.append(((reader, region), col, path, key, mask))
        return image, found, todo

    def region_masks(self, image, mask, reader: str, patient: str, col: str, path: str) -> dict | None:
        """The region masks of one reader's mask (:func:`usrad.extract.regions.region_masks`), or None when one is
        too small to extract (every such region reported)."""
        out = region_masks(image, mask, self.regions)
        minimum = self.extractor.setting("minimumROISize")
        why = [w for w in (size_problem(r, reader, minimum) for _, r in out.values()) if w]
        self.problems.extend(Problem(w, patient=patient, column=col, file=path) for w in why)
        return None if why else out

    def extract(self, image, todo, patient: str, found: dict) -> None:
        """Extract the ``todo`` masks of one image (one call: the filtered images are computed once); the complete
        results go to the cache and to ``found``, the failures to the problems."""
        extractor = self.extractor
        t0 = time.perf_counter()
        lesion = [t[0][1] == LESION for t in todo]  # a region: its image types, no shape (usrad.extract.regions)
        results = extractor.extract_many(image, [t[-1] for t in todo],
                                         [None if le else self.regions.image_types for le in lesion], lesion)
        self.extraction_seconds += time.perf_counter() - t0
        lesion_expected = extractor.expected_features()
        region_expected = self.region_names
        for (job, col, path, key, _), feats in zip(todo, results):
            where = "" if job[1] == LESION else f" (region {job[1]} of reader {job[0]})"
            expected = lesion_expected if job[1] == LESION else region_expected
            if isinstance(feats, BaseException):
                msg = str(feats).strip().splitlines()[0] if str(feats).strip() else type(feats).__name__
                msg = f"PyRadiomics cannot extract features from this image and mask{where}: {msg}"
                self.problems.append(Problem(msg, patient=patient, column=col, file=path))
                continue
            self.n_extracted += 1
            if list(feats) != expected:
                missing = [n for n in expected if n not in feats]
                self.problems.append(Problem(
                    f"PyRadiomics returned {len(feats)} of the {len(expected)} features the parameters define{where} "
                    f"(missing e.g. {missing[:3]}); is the image large enough for the LoG sigmas?",
                    patient=patient, column=col, file=path))
                continue
            cache_store(self.cache, key, feats)
            found[job] = feats


def extract_cohort(cohort_df: pd.DataFrame, params_path, cache_dir=None, progress: bool = True,
                   log=None, perturbation=None, content: dict | None = None,
                   status: ShardStatus | None = None, regions: dict | None = None) -> pd.DataFrame:
    """Feature table rows (see :mod:`usrad.features`) for every image × reader of a normalised cohort table.

    Every image is read once; its reader masks are extracted from that one image. All bad images/masks
    are collected and reported together as one :class:`UsradError` (patient, column, file each); results
    extracted before the error stay in the cache. ``log`` is a text stream (default stderr): a progress
    line every 10 images and a final ``usrad-extract-summary {json}`` line with the summed in-process
    PyRadiomics time. The same summary is in ``df.attrs["extraction"]``. ``content``: a dict filled with the
    content SHA-256 of every row (``{(patient_id, image_id, reader): sha}``, :func:`content_sha256`). ``status``:
    the shard's status file (:mod:`usrad.extract.progress`), updated after every image. ``regions``: the
    ``extraction.regions`` settings (:class:`~usrad.extract.regions.RegionSpec`; None or no rings: the lesion only).
    """
    log = log if log is not None else sys.stderr
    wall_start = time.perf_counter()
    spec = RegionSpec.from_config(regions)
    cache = Path(cache_dir) if cache_dir is not None else None
    run = _Extraction(get_extractor(params_path), cache, perturbation, spec)
    wrong = spec.type_problems(run.extractor.image_types())
    if wrong:
        raise UsradError("Feature extraction cannot start", [Problem(w, file=str(params_path)) for w in wrong])
    rows: list[dict] = []
    names: list[str] | None = None
    bar = _Progress(len(cohort_df), log, progress, status=status)

    for rec in cohort_df.to_dict("records"):
        patient, image_id = str(rec["patient_id"]), str(rec["image_id"])
        spacing = pixel_spacing(rec.get("pixel_spacing_mm"))
        jobs = [(reader, col, str(rec[col])) for reader, col in READERS if given(rec.get(col))]
        try:
            keyed, contents = run.keyed_masks(rec, image_id, spacing, jobs)
        except OSError as exc:
            bad = exc.filename or rec["image"]
            col = next((c for _, c, p in jobs if p == bad), "image")
            run.problems.append(Problem(f"cannot read file ({exc.strerror or exc})", patient=patient, column=col,
                                        file=str(bad)))
            bar.step(run.n_cached)
            continue
        image, found, todo = run.lookup(rec, patient, image_id, spacing, keyed)
        if todo:  # all masks of this image in one call: the filtered images are computed once
            run.extract(image, todo, patient, found)
        for reader, region, *_ in keyed:  # rows in the readers' order, as before
            by_region = {r: found[(reader, r)] for r in [LESION, *spec.names()] if (reader, r) in found}
            if region == LESION and len(by_region) == 1 + len(spec.names()):
                names = names or list(found[(reader, LESION)])
                rows.append({"patient_id": patient, "image_id": image_id, "reader": reader, **spec.row(by_region)})
                if content is not None:
                    content[(patient, image_id, reader)] = contents[reader]
        bar.step(run.n_cached)

    if run.problems:
        raise UsradError("Feature extraction failed", run.problems)
    df = _feature_frame(rows, spec.columns(names if names is not None else run.extractor.expected_features()))
    summary = {"images": int(len(cohort_df)), "pairs": len(rows), "cached": run.n_cached,
               "extracted": run.n_extracted, "extraction_seconds": round(run.extraction_seconds, 6),
               "wall_seconds": round(time.perf_counter() - wall_start, 6)}
    df.attrs["extraction"] = summary
    log.write(f"{SUMMARY_TAG} {json.dumps(summary, sort_keys=True)}\n")
    log.flush()
    return df


def _feature_frame(rows: list[dict], names: list[str]) -> pd.DataFrame:
    """The feature table of ``rows``: id columns as objects, features as float64, sorted by the id columns."""
    ids = pd.DataFrame([[r[c] for c in ID_COLUMNS] for r in rows], columns=ID_COLUMNS, dtype=object)
    values = np.array([[r.get(n, np.nan) for n in names] for r in rows], dtype=np.float64)
    values = values.reshape(len(rows), len(names))
    # one float block, not one column at a time (3,000 ring columns took seconds)
    df = pd.concat([ids, pd.DataFrame(values, columns=names)], axis=1)
    return df.sort_values(ID_COLUMNS, kind="mergesort").reset_index(drop=True)


def extract_shard(cohort_path, params_path, shard: int, n_shards: int, out_path, cache_dir=None, log=None,
                  perturbation=None, status_dir=None, regions: dict | None = None) -> pd.DataFrame:
    """Extract the patients of one shard of the cohort table and write their feature table to ``out_path``.

    A shard without patients gets an empty table with the full columns and metadata, so the merge is uniform.
    With ``status_dir``, the shard's counters go to its status file there and the stage's overall progress line
    to stderr (:mod:`usrad.extract.progress`). ``regions``: as for :func:`extract_cohort`, recorded in the metadata.
    """
    log = log if log is not None else sys.stderr
    cohort = read_cohort_table(cohort_path)
    rows = shard_rows(cohort, shard, n_shards)
    log.write(f"extract: shard {shard}/{n_shards}: {rows['patient_id'].nunique()} patients, {len(rows)} images\n")
    status = None if status_dir is None else ShardStatus(
        status_dir, shard, n_shards, len(cohort), len(rows), stage_identity(cohort_path, params_path, n_shards))
    content: dict = {}
    try:
        df = extract_cohort(rows, params_path, cache_dir=cache_dir, progress=True, log=log, perturbation=perturbation,
                            content=content, status=status, regions=regions)
        # the content SHA-256 of every row: `usrad predict --features` matches rows by content, never by an id
        write_feature_table(df, out_path, feature_table_metadata(params_path, content, regions))
    except BaseException as exc:
        if status is not None:  # a failed (or interrupted: no line then) shard
            status.end(failed=True, announce=isinstance(exc, Exception))
        raise
    if status is not None:
        status.end()
    return df


__all__ = ["SUMMARY_TAG", "extract_cohort", "extract_shard"]
