"""The one model-bundle format: a folder with ``model.skops``, ``bundle.json`` and ``MANIFEST.sha256``.

* ``model.skops``: :func:`skops.io.dumps` of the whole fitted Pipeline, re-packed with fixed names and
  timestamps so that the same model gives byte-identical files. Loading never executes arbitrary code:
  every type named in the file's schema must be in :data:`TRUSTED_TYPES` (an explicit allowlist, stricter
  than skops' own default, which trusts any scikit-learn class); anything else → :class:`~usrad.errors.UsradError`.
  XGBoost models persist inside skops (the booster as its own raw bytes; checked in tests).
* ``bundle.json``: everything a reader needs without loading the model — task, model name, selected
  features, rad-score formula, Youden threshold chosen on training data, tuned hyperparameters, CV AUC,
  library versions, PyRadiomics parameters, reproducibility source — plus ``model_sha256``, the SHA-256
  of ``model.skops``.
* ``MANIFEST.sha256`` (written last, atomically, in ``sha256sum`` format): the SHA-256 of every other file
  of the folder. :func:`read_bundle_meta` and :func:`load_bundle` refuse a bundle with any file changed,
  missing or extra (or a symbolic link, or a sub-folder), then check every value of ``bundle.json``
  (:func:`check_metadata`: types, finite numbers, ``threshold`` in [0, 1], ``model_file`` a plain name inside
  the folder, the PyRadiomics text matching its SHA-256). Files are read once: the bytes that were hashed are
  the bytes that are parsed and loaded. Bundles of the previous format (``usrad-bundle/1``, no manifest) are
  refused with a message to rebuild them.
"""
from __future__ import annotations

from .layout import (BUNDLE_FILES, FORMAT, MANIFEST_FILE, META_FILE, MODEL_FILE, OLD_FORMATS, REBUILD, bundle_folder,
                     manifest_text)
from .metadata import META_SCHEMA, check_metadata, parse_meta
from .store import load_bundle, read_bundle_meta, save_bundle
from .trust import TRUSTED_TYPES, types_in

__all__ = ["BUNDLE_FILES", "FORMAT", "MANIFEST_FILE", "META_FILE", "META_SCHEMA", "MODEL_FILE", "OLD_FORMATS", "REBUILD",
           "TRUSTED_TYPES", "bundle_folder", "check_metadata", "load_bundle", "manifest_text", "parse_meta",
           "read_bundle_meta", "save_bundle", "types_in"]
