"""Sharding of a cohort's patients for the parallel extraction jobs, and how many jobs a cohort's size deserves.

:func:`shard_count` sizes the stage by work: one job per ``extraction.min_images_per_shard`` images (each job pays
a process start, the imports and reading the cohort table, ~2–3 s), at most ``extraction.shards``.
:func:`assign_shards` orders the patients by a stable hash of their IDs (:func:`shard_key`) and cuts that order
into shards of equal size (±1 patient), so that no shard job is left running alone at the end of the stage; all
images of a patient are in one shard, and the order does not depend on the rows' order or on other columns.
"""
from __future__ import annotations

import hashlib
import math

import pandas as pd

from ..manifest.reading import data_rows


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


def shard_count(n_images: int | None, max_shards: int, min_images: int) -> int:
    """Extraction jobs for ``n_images`` images: ``ceil(n_images / min_images)``, at least 1, at most ``max_shards``
    (``n_images`` unknown: ``max_shards``)."""
    if n_images is None:
        return int(max_shards)
    return max(1, min(int(max_shards), math.ceil(int(n_images) / max(1, int(min_images)))))


def planned_images(cohort_cfg: dict, manifest: str | None, busbra_csv: str | None) -> int | None:
    """The number of images a config's cohort will have, known before the workflow runs: the simulated patients
    (one image each), BUS-BRA's ``n_images`` or the rows of its ``bus_data.csv``, or the data rows of the user's
    manifest, read as the manifest's validation reads it (:func:`usrad.manifest.reading.data_rows`); None when it
    cannot be told (a missing or unreadable file: its validation will say why)."""
    if not cohort_cfg.get("manifest") and not cohort_cfg.get("busbra", {}).get("use"):
        return int(cohort_cfg.get("simulate", {}).get("n_patients", 671))
    if not cohort_cfg.get("manifest") and cohort_cfg["busbra"].get("n_images"):
        return int(cohort_cfg["busbra"]["n_images"])
    path = manifest if cohort_cfg.get("manifest") else busbra_csv
    return data_rows(path) if path else None


__all__ = ["shard_key", "assign_shards", "shard_rows", "shard_count", "planned_images"]
