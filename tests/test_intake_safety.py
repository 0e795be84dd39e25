"""Issue 14, intake: no manifest gives a silently wrong result. One test (parametrised) per class found by the
red-team: ids that look missing, what a number is, masks that mark most of the image, images with identical
pixels, every problem at once, huge images and paths that are not UTF-8.

The manifest helpers (36 PNG patients P000-P035, 14 N0 / 22 N+) are test_cohort's.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from test_cohort import N_POSITIVE, config, make_manifest, rewrite, write_png
from usrad.atomic import write_tsv
from usrad.cohort import load_cohort, read_cohort_table, validate_manifest, write_cohort_table
from usrad.errors import UsradError
from usrad.imageio import MAX_PIXELS, read_image, read_mask
from usrad.models import read_predictions
from usrad.plan import validate_command
from usrad.predict import read_predictions_table
from usrad.split import make_split, read_split, write_split
from usrad.tables import parse_number, read_table

TASKS = config()["tasks"]


def where(p):
    return (p.row, p.patient, p.column)


def only(problems, column=None):
    hits = [p for p in problems if column is None or p.column == column]
    assert len(hits) == 1, [str(p) for p in problems]
    return hits[0]


# ------------------------------------------------------------------------------------------ 1. ids
MISSING_LOOKING = ["NA", "N/A", "null", "nan", "None", "NaN", "n/a", "NULL", "none", "-", "?", "missing", "#N/A", "<NA>",
                   "-nan", "1.#IND", "nil", "#NA"]
NUMBER_LOOKING = ["001", "1", "01", "1.0", "1e3", "0x1", "+1", "-0", "0", "inf", "True", "FALSE"]


def test_ids_that_look_missing_or_numeric_stay_distinct_patients_in_every_table(tmp_path):
    ids = MISSING_LOOKING + NUMBER_LOOKING  # 30 patients, then the 6 others of the helper
    manifest = make_manifest(tmp_path)
    rewrite(manifest, lambda df: df.assign(patient_id=ids + list(df["patient_id"][len(ids):])))
    df = load_cohort(manifest, config())
    expected = set(ids) | {f"P{i:03d}" for i in range(len(ids), 36)}
    write_cohort_table(df, tmp_path / "cohort.tsv")
    cohort = read_cohort_table(tmp_path / "cohort.tsv", categorical=["histology"])
    split = make_split(cohort, TASKS, seed=3)
    write_split(split, tmp_path / "split.tsv")
    predictions = cohort[["patient_id", "image_id"]].assign(task="metastasis", split="test", model="combined", p=0.5)
    write_tsv(predictions, tmp_path / "predictions.tsv")
    tables = {"cohort": cohort, "split": read_split(tmp_path / "split.tsv"),
              "predictions": read_predictions(tmp_path / "predictions.tsv"),
              "predict table": read_predictions_table(tmp_path / "predictions.tsv"),
              "any table": read_table(tmp_path / "predictions.tsv")}
    for name, table in tables.items():
        assert table["patient_id"].nunique() == 36 and set(table["patient_id"]) == expected, name
        assert list(table["patient_id"][:3]) == ["NA", "N/A", "null"] or name == "split", name
    assert "001" in set(cohort["patient_id"]) and "1" in set(cohort["patient_id"])
    # the ids that read like a missing value are kept, each with a warning naming its row
    warned = {w.patient: w for w in df.attrs["warnings"] if "reads like a missing value" in w.message}
    assert {"NA", "N/A", "null", "nan", "None", "-", "?", "missing"} <= set(warned)
    assert where(warned["NA"]) == (1, "NA", "patient_id") and warned["NA"].file == str(manifest)


@pytest.mark.parametrize("blank", ["", " ", "\t", "\u00a0 "])
def test_an_empty_or_blank_patient_id_is_an_error_naming_the_row(tmp_path, blank):
    manifest = make_manifest(tmp_path, sep="\t", name="m.tsv")
    rewrite(manifest, lambda df: df.assign(patient_id=df["patient_id"].where(df.index != 4, blank)), sep="\t")
    p = only(validate_manifest(manifest, config(), check_images=False)[1])
    assert where(p) == (5, None, "patient_id") and p.file == str(manifest) and "empty" in p.message


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8),
                    min_size=1, max_size=12, unique=True))
def test_any_text_id_round_trips_through_our_tables_exactly(tmp_path_factory, ids):
    path = tmp_path_factory.mktemp("ids") / "t.tsv"
    write_tsv(pd.DataFrame({"patient_id": ids, "image_id": ids[::-1], "p": 0.5}), path)
    back = read_table(path)
    assert list(back["patient_id"]) == ids and list(back["image_id"]) == ids[::-1]


@pytest.mark.parametrize("cell", ["P0\r01", "P0\n01", "P0\t01", "P0\x0b01"])
def test_an_id_with_a_line_break_or_control_character_is_refused(tmp_path, cell):
    manifest = make_manifest(tmp_path)  # CSV: a quoted cell may hold a line break, which no TSV table could keep
    manifest.write_text(manifest.read_text().replace("\nP004,", f'\n"{cell}",'), newline="")
    p = only(validate_manifest(manifest, config(), check_images=False)[1])
    assert where(p) == (5, cell, "patient_id") and "control character" in p.message


# ------------------------------------------------------------------------------------------ 2. numbers
NOT_NUMBERS = {  # cell: words of the hint
    "2_5": "underscores", "1_000": "underscores", "inf": "infinite", "-inf": "infinite", "Infinity": "infinite",
    "0x10": "decimal", "\u0661\u0662": "digits 0-9", "\uff11\uff12": "digits 0-9", "0,5": "decimal separator",
    "1,000": "thousands", "1 000": "thousands", "50%": "'%'", "1e999": "too large", "5e": "", "e5": "", "--5": "",
    ".": "", "5..0": "", "\u00bd": "", "fifty": "",
}


@pytest.mark.parametrize("cell", list(NOT_NUMBERS))
def test_a_cell_that_is_not_a_plain_decimal_number_is_refused_with_the_reason(manifest_path, cell):
    rewrite(manifest_path, lambda df: df.assign(age=df["age"].where(df.index != 3, cell)))
    p = only(validate_manifest(manifest_path, config(), check_images=False)[1])
    assert where(p) == (4, "P003", "age") and p.file == str(manifest_path)
    assert f"value {cell!r} is not a number" in p.message and NOT_NUMBERS[cell] in p.message


@pytest.mark.parametrize("cell,value", [("50", 50), ("+50", 50), ("50.", 50), (".5e2", 50), ("050", 50), ("5E+1", 50),
                                        ("49.50", 49.5)])
def test_plain_decimal_numbers_with_sign_or_exponent_are_read(manifest_path, cell, value):
    rewrite(manifest_path, lambda df: df.assign(age=df["age"].where(df.index != 3, cell)))
    df, problems = validate_manifest(manifest_path, config(), check_images=False)
    assert problems == [] and df.loc[3, "age"] == value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789+-.eE_ ,xXinfaINFA\u0661", max_size=8))
def test_parse_number_accepts_exactly_the_documented_grammar(text):
    plain = re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", text, flags=re.ASCII)
    x = parse_number(text)
    if plain is None:
        assert x is None
    else:
        assert x == float(text) or not np.isfinite(float(text)) and x is None


@pytest.mark.parametrize("spellings", [("2", "2.0"), ("2", "02"), ("2", "+2"), ("3", "3.000"), ("1", "1e0")])
def test_a_categorical_level_written_as_different_numbers_is_one_level(manifest_path, tmp_path, spellings):
    cfg = config(predictors=["age", "er", "histology", "grade"], categorical=["histology", "grade"])
    rewrite(manifest_path, lambda df: df.assign(grade=[spellings[i % 2] for i in range(len(df))]))
    df, problems = validate_manifest(manifest_path, cfg)
    assert problems == [] and set(df["grade"]) == {spellings[0]}
    write_cohort_table(df, tmp_path / "c.tsv")
    assert set(read_cohort_table(tmp_path / "c.tsv", categorical=["grade", "histology"])["grade"]) == {spellings[0]}


@pytest.mark.parametrize("column,other", [("histology", "idc"), ("histology", "Idc"), ("histology", "\uff29\uff24\uff23"),
                                          ("device", "logiq e9"), ("device", "Logiq  E9"), ("device", "2.0")])
def test_a_level_spelt_two_ways_is_refused_naming_row_and_patient(manifest_path, column, other):
    main = "IDC" if column == "histology" else ("Logiq E9" if other != "2.0" else "2")
    rewrite(manifest_path, lambda df: df.assign(**{column: [other if i == 6 else main for i in range(len(df))]}))
    p = only(validate_manifest(manifest_path, config(), check_images=False)[1])
    assert where(p) == (7, "P006", column) and f"level {other!r} is written {main!r}" in p.message


@pytest.mark.parametrize("column,values,error", [
    ("age", ("50", "51"), True), ("er", ("1", "0"), True), ("histology", ("IDC", "ILC"), True),
    ("age", ("50", ""), True),  # with clinical.missing: impute, a blank second row would be imputed differently
    ("age", ("50", "50.0"), None), ("grade", ("2", "2.0"), None),  # the same value written two ways: fine
    ("us_size_mm", ("21", "22.5"), False), ("birads", ("4", "5"), False)])
def test_a_patient_whose_rows_disagree_on_a_clinical_value_is_refused(manifest_path, column, values, error):
    cfg = config(predictors=["age", "er", "histology", "us_size_mm", "birads", "grade"],
                 categorical=["histology", "birads", "grade"], missing="impute")

    write_png(manifest_path.parent / "imgs" / "P002_b.png", np.full((20, 24), 77, np.uint8))

    def edit(df):
        df = df.assign(us_size_mm="20", birads="4", grade="2")
        second = df.iloc[[2]].assign(image="imgs/P002_b.png")
        df = pd.concat([df, second], ignore_index=True)
        df.loc[2, column], df.loc[36, column] = values
        return df
    rewrite(manifest_path, edit)
    df, problems = validate_manifest(manifest_path, cfg, check_images=False)
    warned = [w for w in df.attrs["warnings"] if w.column == column]
    if error is None:
        assert problems == [] and warned == [] and df.loc[2, column] == df.loc[36, column]
        return
    p = only(problems if error else warned)
    assert where(p) == (37, "P002", column) and p.file == str(manifest_path)
    assert "row 3" in p.message and "row 37" in p.message
    assert ("rows disagree" if error else "differs between this patient's images") in p.message
    if not error:
        assert problems == []


# ------------------------------------------------------------------------------------------ 3. masks
BOX = np.zeros((20, 24), bool)
BOX[5:12, 6:15] = True


def _rgba(colour_in, colour_out, alpha_in, alpha_out):
    arr = np.zeros((20, 24, 4), np.uint8)
    arr[...] = (*colour_out, alpha_out)
    arr[BOX] = (*colour_in, alpha_in)
    return arr


def _large():
    m = np.zeros((20, 24), np.uint8)
    m[1:19, 1:23] = 255  # 83 % of the image, off the border
    return m


MASKS = {  # name: (mask array, None = accepted as BOX, else words of the error)
    "inverted 0/255": ((~BOX * 255).astype(np.uint8), "looks inverted"),
    "inverted 0/1": ((~BOX).astype(np.uint8), "looks inverted"),
    "all 255": (np.full((20, 24), 255, np.uint8), "marks the whole image"),
    "83 % of the image": (_large(), "more than 75%"),
    "RGBA, lesion in RGB, alpha 255": (_rgba((255, 255, 255), (0, 0, 0), 255, 255), None),
    "RGBA, lesion only in alpha, RGB black": (_rgba((0, 0, 0), (0, 0, 0), 255, 0), None),
    "RGBA, lesion only in alpha, RGB white": (_rgba((255, 255, 255), (255, 255, 255), 255, 0), None),
    "RGBA, red lesion, transparent white background": (_rgba((255, 0, 0), (255, 255, 255), 255, 0), None),
    "RGBA, inverted in alpha": (_rgba((0, 0, 0), (0, 0, 0), 0, 255), "looks inverted"),
    "RGBA, all opaque white": (_rgba((255, 255, 255), (255, 255, 255), 255, 255), "marks the whole image"),
}


@pytest.mark.parametrize("case", list(MASKS))
def test_a_mask_marking_most_of_the_image_is_refused_and_alpha_masks_are_read(manifest_path, case):
    arr, words = MASKS[case]
    Image.fromarray(arr).save(manifest_path.parent / "imgs" / "P003_mask.png")
    df, problems = validate_manifest(manifest_path, config())
    if words is None:
        assert problems == []
        mask = read_mask(df.loc[3, "mask"], read_image(df.loc[3, "image"], 0.1))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), BOX.astype(np.uint8))
    else:
        p = only(problems)
        assert where(p) == (4, "P003", "mask") and Path(p.file).name == "P003_mask.png" and words in p.message
        assert not [w for w in df.attrs["warnings"] if w.row == 4]  # an error, not a border warning


# ------------------------------------------------------------------------------------------ 4. duplicates
def _copy_pixels(folder, src, dst, how):
    arr = np.asarray(Image.open(folder / "imgs" / f"{src}.png"))
    if how == "recompressed":
        Image.fromarray(arr).save(folder / "imgs" / f"{dst}.png", compress_level=0)
    elif how == "as RGB":
        Image.fromarray(np.repeat(arr[..., None], 3, axis=2)).save(folder / "imgs" / f"{dst}.png")
    else:  # as NRRD
        os.remove(folder / "imgs" / f"{dst}.png")
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((0.1, 0.1))
        sitk.WriteImage(img, str(folder / "imgs" / f"{dst}.nrrd"))
        return {"image": f"imgs/{dst}.nrrd", "pixel_spacing_mm": ""}
    return {}


def _apply(manifest, pid, cells):
    if cells:
        rewrite(manifest, lambda df: df.assign(**{c: df[c].where(df.patient_id != pid, v) for c, v in cells.items()}))


@pytest.mark.parametrize("how", ["recompressed", "as RGB", "as NRRD"])
def test_an_image_with_the_same_pixels_and_another_label_is_refused_naming_both(manifest_path, how):
    folder = manifest_path.parent
    assert N_POSITIVE[0] == 0 and N_POSITIVE[20] >= 1  # P000 negative, P020 positive
    _apply(manifest_path, "P020", _copy_pixels(folder, "P000", "P020", how))
    _, problems = validate_manifest(manifest_path, config())
    p = only(problems)
    assert where(p) == (21, "P020", "image") and Path(p.file).name.startswith("P020")
    assert "same pixels as row 1 (patient 'P000'" in p.message and "P000.png" in p.message
    assert "task 'metastasis' labels this one 1 and that one 0" in p.message


@pytest.mark.parametrize("how", ["recompressed", "as RGB", "as NRRD"])
def test_same_label_duplicates_of_two_patients_warn_and_never_straddle_the_split(manifest_path, tmp_path, how):
    folder = manifest_path.parent
    assert N_POSITIVE[1] == N_POSITIVE[0] == 0
    _apply(manifest_path, "P001", _copy_pixels(folder, "P000", "P001", how))
    df = load_cohort(manifest_path, config())
    [w] = [w for w in df.attrs["warnings"] if "same pixels" in w.message]
    assert where(w) == (2, "P001", "image") and "row 1 (patient 'P000'" in w.message
    assert df.loc[0, "pixel_hash"] == df.loc[1, "pixel_hash"] != df.loc[2, "pixel_hash"]
    write_cohort_table(df, tmp_path / "c.tsv")
    cohort = read_cohort_table(tmp_path / "c.tsv", categorical=["histology"])
    sides = []
    for seed in range(25):  # ungrouped, the two patients would be apart in ~40 % of the seeds
        split = make_split(cohort, TASKS, seed=seed).set_index("patient_id")
        assert split.loc["P000", "split"] == split.loc["P001", "split"]
        assert split.loc["P000", "split_group"] == split.loc["P001", "split_group"] == "P000"
        sides.append(split.loc["P000", "split"])
    assert set(sides) == {"train", "test"}  # the pair itself is still split at random


# ------------------------------------------------------------------------------------------ 5. all at once
def _outcome_bad_and_missing(manifest, folder):
    rewrite(manifest, lambda df: df.assign(n_positive_nodes=df["n_positive_nodes"].mask(df.index == 2, "2.5")
                                           .mask(df.index == 7, "")))
    return {(3, "P002", "n_positive_nodes"), (8, "P007", "n_positive_nodes")}


def _outcome_word_and_missing(manifest, folder):
    rewrite(manifest, lambda df: df.assign(n_positive_nodes=df["n_positive_nodes"].mask(df.index == 2, "three")
                                           .mask(df.index == 7, "NA")))
    return {(3, "P002", "n_positive_nodes"), (8, "P007", "n_positive_nodes")}


def _no_mask_column(manifest, folder):
    os.remove(folder / "imgs" / "P005.png")
    rewrite(manifest, lambda df: df.drop(columns=["mask"]).assign(age=df["age"].mask(df.index == 1, "old")))
    return {(0, None, "mask"), (2, "P001", "age"), (6, "P005", "image")}


def _no_image_column(manifest, folder):
    write_png(folder / "imgs" / "P004_mask.png", np.zeros((20, 24), np.uint8))
    rewrite(manifest, lambda df: df.drop(columns=["image"]).assign(er=df["er"].mask(df.index == 1, "2")))
    return {(0, None, "image"), (2, "P001", "er")}  # masks cannot be checked without their image


def _no_patient_column(manifest, folder):
    write_png(folder / "imgs" / "P004_mask.png", np.zeros((20, 24), np.uint8))
    rewrite(manifest, lambda df: df.drop(columns=["patient_id"]).assign(age=df["age"].mask(df.index == 1, "old")))
    return {(0, None, "patient_id"), (2, None, "age"), (5, None, "mask")}


@pytest.mark.parametrize("make", [_outcome_bad_and_missing, _outcome_word_and_missing, _no_mask_column, _no_image_column,
                                  _no_patient_column], ids=lambda f: f.__name__.strip("_"))
def test_one_problem_never_hides_another(manifest_path, make):
    expected = make(manifest_path, manifest_path.parent)
    _, problems = validate_manifest(manifest_path, config())
    assert {where(p) for p in problems} == expected, [str(p) for p in problems]


# ------------------------------------------------------------------------------------------ 6. size, paths
def _png_header_only(path, width, height):
    """A PNG whose header declares width x height (its pixel data is missing): enough to test the size check."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def _nrrd_header_only(path, width, height):
    path.write_text(f"NRRD0004\ntype: uint8\ndimension: 2\nsizes: {width} {height}\nspacings: 0.1 0.1\n"
                    f"encoding: raw\ndata file: {path.stem}.raw\n")
    path.with_suffix(".raw").write_bytes(b"\x00")  # far too short: the size check must come before reading it


@pytest.mark.parametrize("fmt,size", [("png", (10_000, 10_000)), ("png", (20_000, 20_000)), ("png", (4097, 4096)),
                                      ("nrrd", (10_000, 10_000))])
def test_a_huge_image_is_one_clear_problem_and_no_raw_warning(manifest_path, fmt, size):
    folder = manifest_path.parent
    if fmt == "png":
        _png_header_only(folder / "imgs" / "P003.png", *size)
    else:
        _nrrd_header_only(folder / "imgs" / "P003.nhdr", *size)
        _apply(manifest_path, "P003", {"image": "imgs/P003.nhdr", "pixel_spacing_mm": ""})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, problems = validate_manifest(manifest_path, config())
    assert [str(w.message) for w in caught] == []
    p = only(problems)
    assert where(p) == (4, "P003", "image") and Path(p.file).name.startswith("P003")
    assert f"{size[0] * size[1]:,} pixels, more than the {MAX_PIXELS:,}" in p.message


@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_folder_name_that_is_not_utf8_works_everywhere(tmp_path, as_bytes, capsys):
    folder = tmp_path / os.fsdecode(b"cohort\xff") / os.fsdecode(b"img\xfe")  # the manifest's cells are UTF-8
    manifest = make_manifest(folder)
    img = sitk.GetImageFromArray(np.asarray(Image.open(folder / "imgs" / "P001.png")))
    img.SetSpacing((0.1, 0.1))
    nrrd = folder / "plain.nrrd"
    sitk.WriteImage(img, str(tmp_path / "plain.nrrd"))  # SimpleITK cannot take the name: write, then move
    shutil.move(str(tmp_path / "plain.nrrd"), str(nrrd))
    _apply(manifest, "P001", {"image": "plain.nrrd", "pixel_spacing_mm": ""})
    arg = os.fsencode(manifest) if as_bytes else str(manifest)
    df = load_cohort(arg, config())
    assert df.loc[1, "image"] == str(nrrd) and os.path.isfile(df.loc[0, "image"])
    write_cohort_table(df, os.fsencode(folder / "c.tsv") if as_bytes else folder / "c.tsv")
    back = read_cohort_table(folder / "c.tsv", categorical=["histology"])
    pd.testing.assert_frame_equal(back, df)
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text("clinical: {predictors: [age, er, histology], categorical: [histology]}\n")
    assert validate_command(str(manifest), str(cfg_file)) == 0 and "OK: 36 patients" in capsys.readouterr().out
    os.remove(folder / "imgs" / "P002_mask.png")
    assert validate_command(str(manifest), str(cfg_file)) == 2
    err = capsys.readouterr().err
    assert "row 3, patient 'P002', column 'mask'" in err and "img\\xfe" in err and "Traceback" not in err
    with pytest.raises(UsradError) as exc:
        load_cohort(arg, config())
    exc.value.render().encode("utf-8")  # printable and writable to a UTF-8 log


@pytest.fixture
def manifest_path(tmp_path):
    return make_manifest(tmp_path)


# ------------------------------------------------------------------------------------------ all classes, fuzzed
TRICKY = ["", "NA", "nan", "2_5", "1e999", "0,5", "-1", "2.5", "٣", "IDC", "idc", "P000", "P001", "imgs/P000.png",
          "imgs/P001_mask.png", "imgs/missing.png", "../x.png", "0", "1", "3", "1e3", " inf", "x" * 40]
FUZZ_COLUMNS = ["patient_id", "image", "mask", "pixel_spacing_mm", "age", "er", "histology", "n_positive_nodes"]


@settings(max_examples=int(os.environ.get("USRAD_FUZZ_EXAMPLES", 40)), deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 35), st.sampled_from(FUZZ_COLUMNS), st.sampled_from(TRICKY)), max_size=8),
       dropped=st.sets(st.sampled_from(FUZZ_COLUMNS), max_size=2))
def test_fuzzed_cells_of_a_valid_manifest_give_problems_never_an_exception(tmp_path_factory, edits, dropped):
    folder = tmp_path_factory.mktemp("fuzz")
    manifest = make_manifest(folder)

    def edit(df):
        for row, col, value in edits:
            df.loc[row, col] = value
        return df.drop(columns=sorted(dropped))
    rewrite(manifest, edit)
    df, problems = validate_manifest(manifest, config())
    assert all(p.file for p in problems) and all(str(p).encode("utf-8") for p in problems)
    assert len(df) == 36 and (problems or not dropped)  # each fuzzed column is required by the config
    for p in problems:  # every row-level problem names its row; a patient is named where the column exists
        assert p.row is None or 0 <= p.row <= 36
        assert p.patient is None or "patient_id" not in dropped
