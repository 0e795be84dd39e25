"""The feature-table format: deterministic bytes, metadata round trip, reader matrices, merging."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from usrad.errors import UsradError
from usrad.extract import provenance
from usrad.features import (feature_columns, feature_counts, merge_feature_tables, paired_readers, read_feature_table,
                            reader_matrix, write_feature_table)

PARAMS = Path(__file__).resolve().parents[1] / "config" / "radiomics.yaml"
FEATURES = ["original_shape2D_PixelSurface", "original_glcm_Contrast", "wavelet-LH_glcm_Contrast",
            "log-sigma-1-0-mm-3D_firstorder_Mean"]


def make_table(seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in ["10", "2", "A7"]:
        for img in ["a", "b"]:
            for reader in ["r1", "r2"]:
                rows.append({"patient_id": p, "image_id": f"{p}-{img}", "reader": reader,
                             **dict(zip(FEATURES, rng.normal(size=len(FEATURES))))})
    df = pd.DataFrame(rows)
    df.loc[3, FEATURES[1]] = np.nan  # PyRadiomics can give NaN (e.g. GLCM of a flat ROI); kept as NaN
    return df


@pytest.fixture(scope="module")
def meta():
    return provenance(PARAMS)


def test_writing_the_same_table_twice_gives_identical_bytes_whatever_the_row_order(tmp_path, meta):
    df = make_table()
    write_feature_table(df, tmp_path / "a.parquet", meta)
    write_feature_table(df, tmp_path / "b.parquet", meta)
    shuffled = df.sample(frac=1.0, random_state=3)
    write_feature_table(shuffled, tmp_path / "c.parquet", meta)
    a, b, c = ((tmp_path / f"{x}.parquet").read_bytes() for x in "abc")
    assert a == b == c
    assert list(tmp_path.iterdir()) and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rows_are_sorted_by_patient_image_reader_and_values_round_trip(tmp_path, meta):
    df = make_table()
    write_feature_table(df.iloc[::-1], tmp_path / "t.parquet", meta)
    back, _ = read_feature_table(tmp_path / "t.parquet")
    expected = df.sort_values(["patient_id", "image_id", "reader"]).reset_index(drop=True)
    assert back["patient_id"].tolist()[:4] == ["10"] * 4  # string order: "10" < "2" < "A7"; IDs stay strings
    pd.testing.assert_frame_equal(back, expected, check_exact=True)
    assert np.isnan(back.loc[(back["patient_id"] == "10") & (back["image_id"] == "10-b") & (back["reader"] == "r2"),
                             FEATURES[1]]).all()


def test_metadata_round_trips_with_params_hash_versions_and_feature_counts(tmp_path, meta):
    write_feature_table(make_table(), tmp_path / "t.parquet", meta)
    _, back = read_feature_table(tmp_path / "t.parquet")
    text = PARAMS.read_text()
    assert back["params_text"] == text
    assert back["params_sha256"] == hashlib.sha256(PARAMS.read_bytes()).hexdigest()
    assert set(back["versions"]) >= {"pyradiomics", "SimpleITK", "numpy", "pyarrow", "usrad"}
    assert back["versions"]["pyarrow"] == pa.__version__
    assert back["feature_counts"] == {
        "total": 4,
        "by_image_type": {"log-sigma-1-0-mm-3D": 1, "original": 2, "wavelet-LH": 1},
        "by_class": {"firstorder": 1, "glcm": 2, "shape2D": 1},
    }
    assert {k: v for k, v in back.items() if k not in ("feature_counts", "format_version")} == meta
    # The metadata is a plain Parquet key-value pair, readable without usrad.
    assert b"usrad" in pq.read_schema(tmp_path / "t.parquet").metadata


def test_feature_counts_split_pyradiomics_names():
    counts = feature_counts(["wavelet-HL_glszm_ZoneEntropy", "wavelet-HL_glcm_Idm", "original_glcm_Idm"])
    assert counts["by_image_type"] == {"original": 1, "wavelet-HL": 2}
    assert counts["by_class"] == {"glcm": 2, "glszm": 1}


def test_a_table_with_two_rows_for_one_image_and_reader_is_refused(tmp_path, meta):
    df = make_table()
    df = pd.concat([df, df.iloc[[0]]])
    with pytest.raises(ValueError, match="more than one row"):
        write_feature_table(df, tmp_path / "t.parquet", meta)
    assert not (tmp_path / "t.parquet").exists()


def test_reading_a_parquet_file_not_written_by_usrad_names_the_file(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1.0]}), path)
    with pytest.raises(UsradError) as info:
        read_feature_table(path)
    assert info.value.problems[0].file == str(path)
    assert "usrad" in info.value.problems[0].message


def test_reader_matrix_is_image_indexed_and_paired_readers_align(meta):
    df = make_table()
    df = df[~((df["image_id"] == "A7-b") & (df["reader"] == "r2"))]  # one image without a second reader
    m1 = reader_matrix(df, "r1")
    assert m1.index.name == "image_id" and m1.shape == (6, 4) and list(m1.columns) == FEATURES
    row = df[(df["image_id"] == "2-a") & (df["reader"] == "r1")].iloc[0]
    assert m1.loc["2-a", FEATURES[2]] == row[FEATURES[2]]
    a, b = paired_readers(df)
    assert a.shape == b.shape == (5, 4) and list(a.index) == list(b.index) and "A7-b" not in a.index
    with pytest.raises(KeyError):
        reader_matrix(df, "p1")
    assert feature_columns(df) == FEATURES


def test_merging_shards_with_different_params_is_refused_naming_the_shard(tmp_path, meta):
    df = make_table()
    write_feature_table(df[df["patient_id"] == "10"], tmp_path / "s0.parquet", meta)
    other = dict(meta, params_sha256="0" * 64)
    write_feature_table(df[df["patient_id"] != "10"], tmp_path / "s1.parquet", other)
    with pytest.raises(UsradError) as info:
        merge_feature_tables([tmp_path / "s0.parquet", tmp_path / "s1.parquet"], tmp_path / "m.parquet")
    assert info.value.problems[0].file == str(tmp_path / "s1.parquet")
    assert "params_sha256" in info.value.problems[0].message
    assert not (tmp_path / "m.parquet").exists()


def test_merged_shards_are_byte_identical_to_the_table_written_at_once(tmp_path, meta):
    df = make_table()
    write_feature_table(df, tmp_path / "whole.parquet", meta)
    parts = []
    for i, p in enumerate(["A7", "10", "2"]):
        parts.append(write_feature_table(df[df["patient_id"] == p], tmp_path / f"s{i}.parquet", meta))
    merge_feature_tables(parts, tmp_path / "merged.parquet")
    assert (tmp_path / "merged.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


def test_image_type_key_names_the_pyradiomics_image_type_of_a_feature():
    from usrad.features import image_type_key, is_shape

    names = {"original_glcm_Contrast": "Original", "log-sigma-1-0-mm-3D_firstorder_Mean": "LoG",
             "ring3mm__wavelet-LH_glszm_ZoneEntropy": "Wavelet", "squareroot_gldm_DependenceEntropy": "SquareRoot",
             "square_ngtdm_Busyness": "Square", "lbp-2D_firstorder_Mean": "LBP2D",
             "lbp-3D-m1_firstorder_Mean": "LBP3D", "gradient_glrlm_RunEntropy": "Gradient"}
    assert {n: image_type_key(n) for n in names} == names
    with pytest.raises(ValueError):
        image_type_key("sobel_glcm_Contrast")
    assert is_shape("ring1mm__original_shape2D_Elongation") and not is_shape("original_firstorder_Mean")
