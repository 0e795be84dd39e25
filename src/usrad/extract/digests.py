"""Content digests of a cohort's rows: file SHA-256, the content SHA-256 of an image x mask, the readers' columns.

A feature row is decided by the bytes of its image and mask and the pixel spacing given in the cohort
(:func:`content_sha256`); :func:`row_content` computes it for the rows of a cohort table, which is how
:mod:`usrad.predict` matches the rows of a feature table to new patients by content, never by an id.
"""
from __future__ import annotations

import hashlib
import json
import math

import pandas as pd

READERS = (("r1", "mask"), ("r2", "mask_reader2"))
_HASH_CHUNK = 1 << 20


def file_sha256(path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


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
        image_sha, spacing = None, pixel_spacing(rec.get("pixel_spacing_mm"))
        for reader, col in READERS:
            if reader in readers and given(rec.get(col)):
                image_sha = image_sha or file_sha256(rec["image"])
                out[(str(rec["patient_id"]), str(rec["image_id"]), reader)] = content_sha256(
                    image_sha, file_sha256(rec[col]), spacing)
    return out


def given(value) -> bool:
    """Whether a cohort cell holds a value (not None, NaN or blank)."""
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return str(value).strip() != ""


def pixel_spacing(value) -> float | None:
    """The pixel spacing (mm) of a cohort cell ``pixel_spacing_mm`` as a float, None when not given."""
    if not given(value):
        return None
    return float(value)


__all__ = ["READERS", "file_sha256", "content_sha256", "row_content", "given", "pixel_spacing"]
