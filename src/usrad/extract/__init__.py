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
  copies (readers ``p1`` … ``pk``; :func:`usrad.perturbation.perturb_mask`: erosion, dilation or a shift of up
  to ``r`` pixels, drawn from a generator seeded by ``s``, the image ID and k), for the ICC filter of a
  cohort without a second reader. They are reproducible and cached like the readers' masks.
* With ``cache_dir``, each image × mask result is stored in one small JSON file keyed by the SHA-256 of
  the image file, of the mask file, of the params file, the pixel spacing given in the cohort and the
  PyRadiomics version; a cached result is reused without reading the image or calling PyRadiomics.
  That is how adding one patient re-extracts only that patient although the shard jobs rerun (and some
  patients move to a neighbouring shard).

* With ``regions`` (``extraction.regions``), every mask (readers and perturbed copies) also gives peritumoral
  rings of physical widths and optionally the lesion plus each ring, clipped to the image and the imaged tissue
  (:mod:`~usrad.extract.regions`), extracted in the same call as the lesion (shared filtered images) and written
  as prefixed columns (``ring3mm__original_firstorder_Mean``) of the reader's row.

* With ``status_dir``, each shard of :func:`extract_shard` writes its counters to a small status file, and the
  stage's overall progress (images done over all shards, rate, ETA) is printed to stderr and by ``usrad progress``
  (:mod:`~usrad.extract.progress`).

``config/radiomics.yaml`` alone decides what is extracted; nothing here overrides its settings.

Modules: :mod:`~usrad.extract.shards` (patients to shards), :mod:`~usrad.extract.digests` (file and row
content SHA-256), :mod:`~usrad.extract.fastpaths` (faster PyRadiomics steps, same values), :mod:`~usrad.extract.extractor`
(the PyRadiomics extractor), :mod:`~usrad.extract.provenance` (a feature table's metadata),
:mod:`~usrad.extract.regions` (peritumoral regions), :mod:`~usrad.extract.controls` (negative-control images),
:mod:`~usrad.extract.cache` (the per-image cache), :mod:`~usrad.extract.perturbed` (perturbed masks),
:mod:`~usrad.extract.progress` (the stage's overall progress) and :mod:`~usrad.extract.batch` (the cohort and shard
extraction). This package only re-exports their public API.
"""
from __future__ import annotations

from .batch import SUMMARY_TAG, extract_cohort, extract_shard
from .cache import CACHE_FORMAT, CacheWarning, cache_key
from .controls import CONTROL_TITLES, CONTROLS, control_cohort
from .digests import READERS, content_sha256, file_sha256, pixel_spacing, row_content
from .extractor import EXTRACTION_ERRORS, MASK_FREE_IMAGE_TYPES, Extractor, get_extractor
from .fastpaths import bin_edges, check_mask, fast_paths, get_mask, shared_binning
from .perturbed import perturbation_settings, perturbed_mask
from .progress import ShardStatus, stage_line, status_dir, watch
from .provenance import feature_table_metadata, provenance
from .regions import RegionSpec, region_masks, region_name, tissue_mask
from .shards import assign_shards, shard_key, shard_rows


__all__ = [
    "SUMMARY_TAG", "extract_cohort", "extract_shard", "CACHE_FORMAT", "CacheWarning", "cache_key", "READERS",
    "content_sha256", "file_sha256", "pixel_spacing", "row_content", "EXTRACTION_ERRORS", "MASK_FREE_IMAGE_TYPES",
    "Extractor", "get_extractor", "bin_edges", "check_mask", "fast_paths", "get_mask", "shared_binning",
    "perturbation_settings", "perturbed_mask",
    "feature_table_metadata", "provenance", "assign_shards", "shard_key", "shard_rows", "ShardStatus", "stage_line",
    "status_dir", "watch", "RegionSpec", "region_masks", "region_name", "tissue_mask", "CONTROLS", "CONTROL_TITLES",
    "control_cohort",
]
