"""Manifest intake: every bad input is a Problem naming row, patient, column and file; all reported at once."""
import os
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from usrad.cohort import (load_cohort, read_cohort_table, task_labels, validate_manifest,
                          value_rules, write_cohort_table, MANIFEST_SCHEMA_PATH, REQUIRED_COLUMNS, OPTIONAL_COLUMNS)
from usrad.config import validate_config
from usrad.errors import UsradError
from usrad.plan import validate_command

REPO = Path(__file__).resolve().parents[1]
BUSBRA = REPO.parent / "shared" / "data" / "busbra"
N_POSITIVE = [0] * 14 + [1] * 6 + [2] * 4 + [3] * 6 + [5] * 4 + [9] * 2  # 36 patients: 14 N0, 22 N+, 12 with >= 3


def config(**clinical):
    clin = {"predictors": ["age", "er", "histology"], "categorical": ["histology"]}
    clin.update(clinical)
    return validate_config({"clinical": clin})  # default tasks: metastasis (>= 1), burden (>= 3 among >= 1)


def write_png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_manifest(folder: Path, n_positive=N_POSITIVE, sep=",", images="imgs", name="manifest.csv"):
    """PNG images/masks (20x24) and a manifest; one row per patient, patients P000..."""
    rng = np.random.default_rng(1)
    rows = []
    for i, npos in enumerate(n_positive):
        pid = f"P{i:03d}"
        write_png(folder / images / f"{pid}.png", rng.integers(0, 256, (20, 24), dtype=np.uint8))
        m = np.zeros((20, 24), np.uint8)
        m[5:12, 6:15] = 255
        write_png(folder / images / f"{pid}_mask.png", m)
        rows.append({"patient_id": pid, "image": f"{images}/{pid}.png", "mask": f"{images}/{pid}_mask.png",
                     "pixel_spacing_mm": "0.1", "age": str(40 + i), "er": str(i % 2),
                     "histology": ["IDC", "ILC", "other"][i % 3], "n_positive_nodes": str(npos)})
    path = folder / name
    pd.DataFrame(rows).to_csv(path, sep=sep, index=False)
    return path


def rewrite(path, fn, sep=","):
    df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    df = fn(df)
    df.to_csv(path, sep=sep, index=False)
    return path


@pytest.fixture
def manifest(tmp_path):
    return make_manifest(tmp_path)


def test_valid_manifest_gives_normalised_table(manifest):
    df = load_cohort(manifest, config())
    assert list(df.columns[:6]) == ["patient_id", "image_id", "image", "mask", "mask_reader2", "pixel_spacing_mm"]
    assert len(df) == 36 and df["patient_id"].iloc[0] == "P000" and df["image_id"].iloc[0] == "P000"
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in df["image"]) and (df["mask_reader2"] == "").all()
    assert df["pixel_spacing_mm"].dtype == float and (df["pixel_spacing_mm"] == 0.1).all()
    assert df["age"].dtype == float and df["age"].iloc[3] == 43.0 and df["histology"].iloc[1] == "ILC"


def test_three_different_errors_reported_together_each_naming_patient_column_file(manifest):
    folder = manifest.parent
    write_png(folder / "imgs" / "P002_mask.png", np.zeros((20, 24), np.uint8))  # empty mask
    os.remove(folder / "imgs" / "P005.png")  # missing image

    def edit(df):
        df.loc[7, "age"] = "forty"  # non-numeric clinical value
        return df
    rewrite(manifest, edit)
    with pytest.raises(UsradError) as exc:
        load_cohort(manifest, config())
    problems = exc.value.problems
    assert len(problems) == 3
    got = {(p.patient, p.column, p.row) for p in problems}
    assert got == {("P002", "mask", 3), ("P005", "image", 6), ("P007", "age", 8)}
    by_col = {p.column: p for p in problems}
    assert by_col["mask"].file.endswith("P002_mask.png") and "empty" in by_col["mask"].message
    assert by_col["image"].file.endswith("P005.png") and "not found" in by_col["image"].message
    assert by_col["age"].file == str(manifest) and "'forty' is not a number" in by_col["age"].message
    assert "3 problems" in str(exc.value)


def test_missing_required_and_clinical_columns_named(manifest):
    rewrite(manifest, lambda df: df.drop(columns=["mask", "er"]))
    _, problems = validate_manifest(manifest, config(), check_images=False)
    assert {(p.column, p.file) for p in problems} >= {("mask", str(manifest)), ("er", str(manifest))}


def test_duplicate_image_path_refused_but_several_images_per_patient_allowed(manifest):
    def edit(df):
        extra = df.iloc[[0, 1]].copy()
        extra["image"] = ["imgs/P000.png", "./imgs/../imgs/P001.png"]  # same files written differently
        extra2 = df.iloc[[2]].copy()
        extra2["image"] = "imgs/P003.png"  # another image of patient P002: fine (but it is P003's image: duplicate)
        return pd.concat([df, extra, extra2], ignore_index=True)
    rewrite(manifest, edit)
    _, problems = validate_manifest(manifest, config(), check_images=False)
    dup = [p for p in problems if "already listed" in p.message]
    assert [(p.row, p.patient, p.column) for p in dup] == [(37, "P000", "image"), (38, "P001", "image"), (39, "P002", "image")]
    assert "row 1" in dup[0].message and dup[1].file.endswith("P001.png")


def test_second_image_of_same_patient_is_accepted(manifest):
    folder = manifest.parent
    write_png(folder / "imgs" / "P000_b.png", np.full((20, 24), 90, np.uint8))

    def edit(df):
        extra = df.iloc[[0]].copy()
        extra["image"] = "imgs/P000_b.png"
        return pd.concat([df, extra], ignore_index=True)
    rewrite(manifest, edit)
    df = load_cohort(manifest, config())
    assert len(df) == 37 and df["patient_id"].nunique() == 36 and df["image_id"].is_unique


def test_mask_problems_name_patient_column_and_file(manifest):
    folder = manifest.parent
    write_png(folder / "imgs" / "P001_mask.png", np.full((21, 24), 255, np.uint8))  # size mismatch
    m = np.zeros((20, 24), np.uint8)
    m[1:4, 1:4], m[8:12, 8:12] = 1, 2
    write_png(folder / "imgs" / "P004_mask.png", m)  # two labels
    _, problems = validate_manifest(manifest, config())
    assert [(p.patient, p.column, Path(p.file).name, p.row) for p in problems] == [
        ("P001", "mask", "P001_mask.png", 2), ("P004", "mask", "P004_mask.png", 5)]
    assert "differs from the image size" in problems[0].message and "non-zero labels" in problems[1].message


def test_png_without_pixel_spacing_named_in_pixel_spacing_column(manifest):
    def edit(df):
        df.loc[3, "pixel_spacing_mm"] = ""
        df.loc[4, "pixel_spacing_mm"] = "-1"
        return df
    rewrite(manifest, edit)
    _, problems = validate_manifest(manifest, config())
    assert [(p.patient, p.column) for p in problems] == [("P003", "pixel_spacing_mm"), ("P004", "pixel_spacing_mm"),
                                                          ("P004", "pixel_spacing_mm")]  # in row order
    assert problems[0].file.endswith("P003.png") and "carries no pixel size" in problems[0].message


def test_nrrd_needs_no_pixel_spacing_column(tmp_path):
    import SimpleITK as sitk
    manifest = make_manifest(tmp_path)
    img = sitk.GetImageFromArray(np.full((20, 24), 100, np.uint8))
    img.SetSpacing((0.07, 0.07))
    sitk.WriteImage(img, str(tmp_path / "imgs" / "P000.nrrd"))

    def edit(df):
        df.loc[0, "image"] = "imgs/P000.nrrd"
        return df.drop(columns=["pixel_spacing_mm"])
    rewrite(manifest, edit)
    _, problems = validate_manifest(manifest, config())
    assert {p.patient for p in problems} == {f"P{i:03d}" for i in range(1, 36)}  # all PNGs, not the NRRD
    assert all(p.column == "pixel_spacing_mm" for p in problems)


def test_missing_clinical_value_refused_unless_impute(manifest):
    def edit(df):
        df.loc[2, "age"] = ""
        df.loc[3, "histology"] = "NA"
        return df
    rewrite(manifest, edit)
    _, problems = validate_manifest(manifest, config(), check_images=False)
    assert [(p.patient, p.column) for p in problems] == [("P002", "age"), ("P003", "histology")]
    df, problems = validate_manifest(manifest, config(missing="impute"), check_images=False)
    assert problems == [] and np.isnan(df.loc[2, "age"]) and pd.isna(df.loc[3, "histology"])


def test_yes_no_column_with_other_value_refused(manifest):
    def edit(df):
        df.loc[5, "er"] = "2"
        df.loc[6, "er"] = "yes"
        return df
    rewrite(manifest, edit)
    _, problems = validate_manifest(manifest, config(), check_images=False)
    assert [(p.patient, p.column) for p in problems] == [("P005", "er"), ("P006", "er")]  # row order
    assert "0/1 (yes/no) column" in problems[0].message and "code yes/no as 1/0" in problems[1].message


def test_failing_task_expression_names_task_and_expression(manifest):
    cfg = config()
    cfg["tasks"] = [{"name": "meta", "label": "n_positive_node >= 1", "subset": None},
                    {"name": "broken", "label": "n_positive_nodes >=", "subset": None}]
    _, problems = validate_manifest(manifest, cfg, check_images=False)
    assert len(problems) == 2
    assert "task 'meta'" in problems[0].message and "'n_positive_node >= 1'" in problems[0].message
    assert problems[0].column == "n_positive_node"
    assert "task 'broken'" in problems[1].message and "cannot be evaluated" in problems[1].message


def test_task_with_single_class_or_too_few_patients_refused(manifest):
    cfg = config()
    cfg["tasks"] = [{"name": "all_pos", "label": "n_positive_nodes >= 0", "subset": None},
                    {"name": "rare", "label": "n_positive_nodes >= 9", "subset": None}]
    _, problems = validate_manifest(manifest, cfg, check_images=False)
    assert len(problems) == 2
    assert "all 36 patients are positive" in problems[0].message
    assert "only 2 positive patient(s)" in problems[1].message and "at least 10" in problems[1].message


def test_missing_outcome_is_refused_not_counted_negative(manifest):
    rewrite(manifest, lambda df: df.assign(n_positive_nodes=df["n_positive_nodes"].where(df.index != 4, "")))
    _, problems = validate_manifest(manifest, config(), check_images=False)
    assert {(p.patient, p.column, p.row) for p in problems} == {("P004", "n_positive_nodes", 5)}


def test_label_expressions_give_expected_counts(manifest):
    df = load_cohort(manifest, config())
    meta = task_labels(df, {"name": "metastasis", "label": "n_positive_nodes >= 1"})
    burden = task_labels(df, {"name": "burden", "label": "n_positive_nodes >= 3", "subset": "n_positive_nodes >= 1"})
    assert len(meta) == 36 and int(meta.sum()) == 22 and meta.dtype == int and meta.name == "metastasis"
    assert len(burden) == 22 and int(burden.sum()) == 12
    assert list(burden.index) == list(df.index[df["n_positive_nodes"] >= 1])
    combo = task_labels(df, {"name": "c", "label": "(n_positive_nodes >= 1) & (histology == 'IDC')"})
    assert int(combo.sum()) == sum(1 for i, n in enumerate(N_POSITIVE) if n >= 1 and i % 3 == 0)


def test_patient_whose_images_disagree_on_label_refused(manifest):
    df = load_cohort(manifest, config())
    df = pd.concat([df, df.iloc[[0]].assign(image_id="x", n_positive_nodes=4)], ignore_index=True)
    with pytest.raises(UsradError) as exc:
        task_labels(df, {"name": "metastasis", "label": "n_positive_nodes >= 1"})
    assert [p.patient for p in exc.value.problems] == ["P000"] and "differs between images" in str(exc.value)


def test_paths_with_spaces_non_ascii_and_dotdot_work(tmp_path):
    folder = tmp_path / "cohört data"
    manifest = make_manifest(folder / "sub", images="imágenes con espacio", name="m anifest.tsv", sep="\t")
    rewrite(manifest, lambda df: df.assign(image="../sub/" + df["image"]), sep="\t")
    df = load_cohort(manifest, config())
    assert df["image"].iloc[0] == str(folder / "sub" / "imágenes con espacio" / "P000.png")


def test_symlinked_image_folder_and_absolute_paths_work(tmp_path):
    manifest = make_manifest(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real" / "imgs")
    rewrite(manifest, lambda df: df.assign(image=str(tmp_path / "link") + "/" + df["patient_id"] + ".png"))
    df = load_cohort(manifest, config())
    assert df["image"].iloc[0] == str(tmp_path / "link" / "P000.png")


def test_semicolon_csv_and_tsv_and_bom_are_read(tmp_path):
    m = make_manifest(tmp_path, sep=";")
    m.write_bytes(b"\xef\xbb\xbf" + m.read_bytes())
    assert len(load_cohort(m, config())) == 36
    t = make_manifest(tmp_path / "t", sep="\t", name="m.tsv")
    assert len(load_cohort(t, config())) == 36


def test_ragged_row_and_duplicate_header_reported(manifest):
    text = manifest.read_text().splitlines()
    text[0] = text[0] + ",age"
    text[3] = text[3] + ",extra,cells"
    manifest.write_text("\n".join(text) + "\n")
    _, problems = validate_manifest(manifest, config(), check_images=False)
    msgs = [str(p) for p in problems]
    assert any("column 'age'" in m and "more than once" in m for m in msgs)
    assert any(m.startswith("row 3, patient 'P002'") and "cells" in m for m in msgs)


def test_image_ids_derived_unique_and_given_ids_kept(tmp_path):
    manifest = make_manifest(tmp_path)
    (tmp_path / "other").mkdir()
    os.link(tmp_path / "imgs" / "P000_mask.png", tmp_path / "other" / "P000_mask.png")
    write_png(tmp_path / "other" / "P000.png", np.full((20, 24), 7, np.uint8))

    def edit(df):
        extra = df.iloc[[0]].copy()
        extra["image"], extra["mask"] = "other/P000.png", "other/P000_mask.png"
        return pd.concat([df, extra], ignore_index=True)
    rewrite(manifest, edit)
    df = load_cohort(manifest, config())
    assert df["image_id"].iloc[0] == "imgs__P000" and df["image_id"].iloc[-1] == "other__P000"
    assert df["image_id"].iloc[1] == "P001"
    rewrite(manifest, lambda d: d.assign(image_id=[f"id{i}" for i in range(len(d))]))
    assert list(load_cohort(manifest, config())["image_id"][:2]) == ["id0", "id1"]


def test_cohort_table_round_trip_is_exact_and_deterministic(manifest, tmp_path):
    df = load_cohort(manifest, config())
    write_cohort_table(df, tmp_path / "out" / "cohort.tsv")
    write_cohort_table(load_cohort(manifest, config()), tmp_path / "out" / "again.tsv")
    assert (tmp_path / "out" / "cohort.tsv").read_bytes() == (tmp_path / "out" / "again.tsv").read_bytes()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["again.tsv", "cohort.tsv"]  # no temp files left
    back = read_cohort_table(tmp_path / "out" / "cohort.tsv", categorical=["histology"])
    pd.testing.assert_frame_equal(back, df)


def test_patient_ids_stay_strings_with_leading_zeros(manifest, tmp_path):
    rewrite(manifest, lambda df: df.assign(patient_id=[f"{i:04d}" for i in range(len(df))]))
    df = load_cohort(manifest, config())
    write_cohort_table(df, tmp_path / "c.tsv")
    assert read_cohort_table(tmp_path / "c.tsv")["patient_id"].iloc[0] == "0000"


def test_validate_command_prints_summary_or_problems(manifest, tmp_path, capsys):
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump({"clinical": {"predictors": ["age", "er"], "categorical": []}}))
    assert validate_command(str(manifest), str(cfg_path)) == 0
    out = capsys.readouterr().out
    assert out.strip() == ("OK: 36 patients, 36 images, tasks: metastasis (14 negative / 22 positive patients), "
                           "burden (10 negative / 12 positive patients)")
    os.remove(manifest.parent / "imgs" / "P001_mask.png")
    assert validate_command(str(manifest), str(cfg_path)) == 2
    err = capsys.readouterr().err
    assert "row 2, patient 'P001', column 'mask'" in err and "Traceback" not in err


class NamedList(list):
    """Like snakemake's Namedlist: iterable, with the named entries as attributes."""

    def __init__(self, **named):
        super().__init__(named.values())
        self.__dict__.update(named)


def run_rule_script(manifest, cfg, out):
    smk = SimpleNamespace(input=NamedList(manifest=str(manifest)), params=SimpleNamespace(config=cfg),
                          output=NamedList(cohort=str(out)), log=[str(out.parent / "validate.log")])
    runpy.run_path(str(REPO / "workflow" / "scripts" / "validate_cohort.py"), init_globals={"snakemake": smk})


def test_rule_script_writes_table_or_exits_1_without_output(manifest, tmp_path, capsys):
    out = tmp_path / "res" / "cohort.tsv"
    run_rule_script(manifest, config(), out)
    assert len(read_cohort_table(out)) == 36 and "OK: 36 patients" in (tmp_path / "res" / "validate.log").read_text()
    out.unlink()
    rewrite(manifest, lambda df: df.assign(age=df["age"].where(df.index != 0, "old")))
    with pytest.raises(SystemExit) as exc:
        run_rule_script(manifest, config(), out)
    assert exc.value.code == 1 and not out.exists()
    assert "column 'age'" in capsys.readouterr().err and "'old'" in (tmp_path / "res" / "validate.log").read_text()


def test_manifest_schema_documents_exactly_the_known_columns():
    schema = yaml.safe_load(MANIFEST_SCHEMA_PATH.read_text())
    assert set(schema["properties"]) == set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS) | set(value_rules())
    assert {"age", "ki67", "n_positive_nodes"} <= set(value_rules())
    assert set(schema["required"]) == set(REQUIRED_COLUMNS)
    assert all(p.get("description") for p in schema["properties"].values())
    doc = (REPO / "docs" / "manifest.md").read_text()
    assert all(f"`{c}`" in doc for c in schema["properties"])


@pytest.mark.busbra
def test_real_busbra_manifest_with_two_views_per_patient(tmp_path):
    if not BUSBRA.is_dir():
        pytest.skip(f"BUS-BRA data not found at {BUSBRA} (shared/data/busbra beside the repository)")
    meta = pd.read_csv(BUSBRA / "bus_data.csv").head(40)
    rows = pd.DataFrame({"patient_id": meta["Case"].astype(str), "image": [str(BUSBRA / "Images" / f"{i}.png") for i in meta["ID"]],
                         "mask": [str(BUSBRA / "Masks" / f"{i.replace('bus_', 'mask_')}.png") for i in meta["ID"]],
                         "pixel_spacing_mm": 0.1, "device": meta["Device"],
                         "malignant": (meta["Pathology"] == "malignant").astype(int)})
    rows.to_csv(tmp_path / "busbra.csv", index=False)
    cfg = validate_config({"clinical": {"predictors": [], "categorical": []},
                           "tasks": [{"name": "malignancy", "label": "malignant == 1"}]})
    df = load_cohort(tmp_path / "busbra.csv", cfg)
    assert len(df) == 40 and df["patient_id"].nunique() == meta["Case"].nunique() < 40
    assert df["image_id"].iloc[0] == "bus_0001-l" and df["device"].iloc[0].startswith("GE Logiq 7")
    labels = task_labels(df, cfg["tasks"][0])
    assert int(labels.sum()) == int((meta["Pathology"] == "malignant").sum())


CELLS = ["patient_id", "image", "mask", "age", "er", "histology", "n_positive_nodes", "pixel_spacing_mm", "", "NA",
         "1", "0.1", "x.png", "../y.nrrd", "/dev/null", "\"q", "é", " "]
manifest_text = st.lists(st.lists(st.one_of(st.sampled_from(CELLS), st.text(max_size=6)), max_size=6).map(",".join),
                         max_size=8).map("\n".join)
FUZZ_CONFIG = config()


@settings(max_examples=int(os.environ.get("USRAD_FUZZ_EXAMPLES", 50)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=manifest_text, raw=st.binary(max_size=40), use_raw=st.booleans(), header=st.booleans(),
       sep=st.sampled_from([",", "\t"]))
def test_fuzzed_manifest_only_ever_raises_usrad_error(tmp_path, text, raw, use_raw, header, sep):
    path = tmp_path / "fuzz.csv"
    if header:  # a valid header, so the random rows reach the cell, path and task checks
        text = "patient_id,image,mask,age,er,histology,n_positive_nodes,pixel_spacing_mm\n" + text
    if use_raw:
        path.write_bytes(raw)
    else:
        path.write_text(text.replace(",", sep), encoding="utf-8")
    df, problems = validate_manifest(path, FUZZ_CONFIG, check_images=True)
    assert isinstance(df, pd.DataFrame) and problems  # never valid: no such image files
    with pytest.raises(UsradError):
        load_cohort(path, FUZZ_CONFIG)
