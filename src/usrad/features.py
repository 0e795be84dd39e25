"""THE feature-table format: one Parquet file, one row per image × reader.

Columns: ``patient_id``, ``image_id``, ``reader`` (strings; ``r1``, ``r2``, or ``p1``, ``p2``… for
perturbed masks), then one float64 column per PyRadiomics feature, named as PyRadiomics names it
(``original_shape2D_MajorAxisLength``, ``wavelet-LH_glcm_Contrast``…); diagnostics are dropped. A feature of
a region other than the lesion (``extraction.regions``: a peritumoral ring, the lesion plus a ring) carries the
region as a prefix before :data:`REGION_SEP` (``ring3mm__original_firstorder_Mean``); the lesion's features
have no prefix, so a table without regions is unchanged.

The Parquet file key-value metadata ``usrad`` holds JSON: the params file text and its SHA-256, the
library versions, and the feature count per image type and per class (recomputed from the columns on
every write, so it cannot disagree with them). Rows are sorted by (patient_id, image_id, reader) and
the file is written with fixed options and no timestamps, so the same data always gives the same bytes
whatever the number of shards or cores; writes are atomic (temporary file + ``os.replace``).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path
from .errors import Problem, UsradError

ID_COLUMNS = ["patient_id", "image_id", "reader"]
META_KEY = b"usrad"
CONTENT_KEY = "content_sha256"  # per-row content records (usrad.extract.feature_table_metadata)
FORMAT_VERSION = 1
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
REGION_SEP = "__"  # between a region name and the PyRadiomics feature name
LESION = "lesion"  # the region of an unprefixed feature: the mask itself


def feature_columns(df: pd.DataFrame) -> list[str]:
    """The feature columns of a feature table, in table order (everything but the id columns)."""
    return [c for c in df.columns if c not in ID_COLUMNS]


def split_region(name: str) -> tuple[str, str]:
    """``'ring3mm__original_firstorder_Mean'`` → ``('ring3mm', 'original_firstorder_Mean')``; an unprefixed
    name is the lesion's: ``('lesion', name)``."""
    region, sep, rest = name.partition(REGION_SEP)
    return (region, rest) if sep else (LESION, name)


def feature_region(name: str) -> str:
    """The region of a feature column (``'lesion'`` for an unprefixed name)."""
    return split_region(name)[0]


def region_feature_name(region: str, name: str) -> str:
    """The column name of PyRadiomics feature ``name`` of ``region`` (unprefixed for the lesion)."""
    return name if region == LESION else f"{region}{REGION_SEP}{name}"


def split_feature_name(name: str) -> tuple[str, str, str]:
    """``'wavelet-LH_glcm_Contrast'`` → ``('wavelet-LH', 'glcm', 'Contrast')`` (a region prefix is dropped)."""
    parts = split_region(name)[1].split("_", 2)
    if len(parts) != 3:
        raise ValueError(f"not a PyRadiomics feature name: {name!r}")
    return parts[0], parts[1], parts[2]


# The first token (before '-' or '_') of a feature's image type name → its PyRadiomics imageType key
# (``log-sigma-1-0-mm-3D`` → ``LoG``, ``wavelet-LH`` → ``Wavelet``, ``lbp-2D`` → ``LBP2D``; ``lbp-3D-…`` → ``LBP3D``).
IMAGE_TYPE_KEYS = {"original": "Original", "log": "LoG", "wavelet": "Wavelet", "square": "Square",
                   "squareroot": "SquareRoot", "logarithm": "Logarithm", "exponential": "Exponential",
                   "gradient": "Gradient", "lbp": "LBP2D"}


def image_type_key(name: str) -> str:
    """The PyRadiomics ``imageType`` key (``Original``, ``LoG``, ``Wavelet``, …) a feature comes from:
    ``'ring3mm__log-sigma-1-0-mm-3D_glcm_Contrast'`` → ``'LoG'``. Raises ValueError for an unknown one."""
    image_type = split_feature_name(name)[0]
    if image_type.startswith("lbp-3D"):
        return "LBP3D"
    token = image_type.split("-", 1)[0]
    if token.lower() not in IMAGE_TYPE_KEYS:
        raise ValueError(f"unknown PyRadiomics image type in feature name {name!r}")
    return IMAGE_TYPE_KEYS[token.lower()]


def is_shape(name: str) -> bool:
    """Whether a feature is a shape feature (class ``shape2D`` or ``shape``): of the mask, not of the grey levels."""
    return split_feature_name(name)[1] in ("shape2D", "shape")


def feature_counts(columns) -> dict:
    """Number of features in total, per image type (``original``, ``log-sigma-1-0-mm-3D``…) and per class, and
    per region when a column has a region other than the lesion's."""
    columns = list(columns)
    parsed = [split_feature_name(c) for c in columns]
    counts = {
        "total": len(parsed),
        "by_image_type": dict(sorted(Counter(p[0] for p in parsed).items())),
        "by_class": dict(sorted(Counter(p[1] for p in parsed).items())),
    }
    regions = Counter(feature_region(c) for c in columns)
    if set(regions) - {LESION}:
        counts["by_region"] = dict(sorted(regions.items()))
    return counts


def _arrow_table(df: pd.DataFrame, meta: dict) -> pa.Table:
    missing = [c for c in ID_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"feature table lacks id columns {missing}")
    feats = feature_columns(df)
    dup = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup:
        raise ValueError(f"feature table has duplicate columns {dup}")
    df = df.sort_values(ID_COLUMNS, kind="mergesort").reset_index(drop=True)
    if df.duplicated(ID_COLUMNS).any():
        first = df.loc[df.duplicated(ID_COLUMNS), ID_COLUMNS].iloc[0].tolist()
        raise ValueError(f"feature table has more than one row for (patient_id, image_id, reader) = {first}")
    arrays = [pa.array(df[c].astype(str).tolist(), type=pa.string()) for c in ID_COLUMNS]
    arrays += [pa.array(df[c].to_numpy(dtype=np.float64), type=pa.float64()) for c in feats]
    full_meta = dict(meta)
    full_meta["format_version"] = FORMAT_VERSION
    full_meta["feature_counts"] = feature_counts(feats)
    text = json.dumps(full_meta, sort_keys=True, separators=(",", ":"))
    schema = pa.schema([pa.field(c, pa.string(), nullable=False) for c in ID_COLUMNS]
                       + [pa.field(c, pa.float64()) for c in feats], metadata={META_KEY: text.encode("utf-8")})
    return pa.Table.from_arrays(arrays, schema=schema)


def write_feature_table(df: pd.DataFrame, path, meta: dict) -> Path:
    """Write ``df`` (id columns + float feature columns) with provenance ``meta`` to ``path``, atomically.

    ``meta`` is the provenance dict (see :func:`usrad.extract.provenance`); ``format_version`` and
    ``feature_counts`` are added here from the columns. Same data and meta → byte-identical file.
    """
    path = Path(path)
    table = _arrow_table(df, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL,
                       use_dictionary=False, write_statistics=True, row_group_size=max(len(table), 1),
                       version="2.6")
    return path


def read_meta(path) -> dict:
    """The ``usrad`` provenance metadata of a feature table, without reading the data."""
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        raise UsradError(f"Cannot read feature table {path}", [Problem("file not found", file=str(path))]) from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise UsradError(f"Cannot read feature table {path}", [Problem(f"not a Parquet file ({exc})", file=str(path))]) from None
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise UsradError(f"Cannot read feature table {path}",
                         [Problem("no 'usrad' metadata: not a feature table written by usrad", file=str(path))])
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        meta = None
    if not isinstance(meta, dict):
        raise UsradError(f"Cannot read feature table {path}",
                         [Problem("its 'usrad' metadata is damaged (not a JSON object); re-run the extraction",
                                  file=str(path))])
    return meta


def read_feature_table(path) -> tuple[pd.DataFrame, dict]:
    """Read a feature table: ``(df, meta)``; id columns are str, features float64."""
    meta = read_meta(path)
    df = pq.read_table(Path(path)).to_pandas()
    for c in ID_COLUMNS:
        df[c] = df[c].astype(object)
    return df, meta


def reader_matrix(df: pd.DataFrame, reader: str) -> pd.DataFrame:
    """Feature values of one reader (or perturbation) as an ``image_id``-indexed wide frame, sorted by image_id."""
    rows = df[df["reader"] == reader]
    if rows.empty:
        raise KeyError(f"no rows for reader {reader!r}; readers present: {sorted(df['reader'].unique())}")
    return rows.set_index("image_id")[feature_columns(df)].sort_index()


def paired_readers(df: pd.DataFrame, a: str = "r1", b: str = "r2") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two readers' matrices restricted to the images both segmented, rows aligned (for ICC)."""
    ma, mb = reader_matrix(df, a), reader_matrix(df, b)
    common = ma.index.intersection(mb.index).sort_values()
    return ma.loc[common], mb.loc[common]


def merge_feature_tables(paths, out_path) -> pd.DataFrame:
    """Concatenate shard tables into one table at ``out_path``; all shards must share metadata and columns."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no feature tables to merge")
    frames, problems = [], []
    ref_df, ref_meta = read_feature_table(paths[0])
    content, has_content = [], False  # the rows' content SHA-256 records: a union over the shards, not a setting
    ref_meta = dict(ref_meta)
    for path in paths:
        df, meta = (ref_df, ref_meta) if path == paths[0] else read_feature_table(path)
        meta = dict(meta)
        has_content |= CONTENT_KEY in meta
        content += meta.pop(CONTENT_KEY, [])
        if path == paths[0]:
            ref_meta.pop(CONTENT_KEY, None)
        if meta != ref_meta:
            diff = sorted(k for k in set(meta) | set(ref_meta) if meta.get(k) != ref_meta.get(k))
            problems.append(Problem(f"metadata differs from {paths[0]} in {diff}: extracted with other parameters "
                                    "or library versions; re-run its extraction", file=str(path)))
        elif list(df.columns) != list(ref_df.columns):
            problems.append(Problem(f"columns differ from {paths[0]}", file=str(path)))
        frames.append(df)
    if problems:
        raise UsradError("Cannot merge feature tables", problems)
    merged = pd.concat(frames, ignore_index=True)
    dup = merged[merged.duplicated(ID_COLUMNS, keep=False)]
    if not dup.empty:
        first = dup[ID_COLUMNS].iloc[0].tolist()
        raise UsradError("Cannot merge feature tables",
                         [Problem(f"(patient_id, image_id, reader) = {first} is in more than one shard",
                                  patient=str(first[0]))])
    meta = {k: v for k, v in ref_meta.items() if k not in ("format_version", "feature_counts")}
    if has_content:
        meta[CONTENT_KEY] = sorted(content)
    write_feature_table(merged, out_path, meta)
    return merged
