"""The per-image feature cache: one small JSON file per image x mask result.

Each result is keyed (:func:`cache_key`) by the SHA-256 of the image file, of the mask file, of the params file,
the pixel spacing given in the cohort and the PyRadiomics version; a cached result is reused without reading
the image or calling PyRadiomics. That is how adding one patient re-extracts only that patient although the
shard jobs rerun (and some patients move to a neighbouring shard). A corrupt entry is a miss, with a
:class:`CacheWarning`.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from ..atomic import write_text
from .extractor import Extractor

CACHE_FORMAT = 1


def cache_key(image_sha: str, mask_sha: str, params_sha: str, spacing_mm: float | None, version: str) -> str:
    """Cache key of one image x mask result: SHA-256 of the cache format, the image, mask and params SHA-256,
    the pixel spacing given in the cohort and the PyRadiomics version."""
    spacing = None if spacing_mm is None else repr(float(spacing_mm))
    blob = json.dumps([CACHE_FORMAT, image_sha, mask_sha, params_sha, spacing, version])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


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


def cache_load(cache_dir: Path | None, key: str, extractor: Extractor,
               names: list[str] | None = None) -> dict[str, float] | None:
    """The cached features of ``key``, or None (absent). A corrupt, truncated or malformed entry is a miss too,
    with a :class:`CacheWarning`: the cache never gives features that were not extracted for this key. ``names``:
    the features the entry must hold (default: every feature of the extractor's parameters)."""
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
            why = _entry_problem(entry, key, names if names is not None else extractor.expected_features())
        if why is None:
            return dict(zip(entry["names"], (float(v) for v in entry["values"])))
    warnings.warn(f"feature cache entry {path} {why}; extracting this image again (the entry is rewritten)",
                  CacheWarning, stacklevel=4)  # 4: the caller of extract_cohort (usrad.extract.batch)
    return None


def cache_store(cache_dir: Path | None, key: str, feats: dict[str, float]) -> None:
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
                      "but will be extracted again next time", CacheWarning, stacklevel=4)


__all__ = ["CACHE_FORMAT", "CacheWarning", "cache_key", "cache_load", "cache_store"]
