"""The command line never gives a traceback or a silently wrong result: every subcommand fed bad paths or values
exits 2 with one message naming the path or key and writes nothing; `usrad extract` works end to end and records
the content of every row; `usrad predict --features` matches rows by content (image and mask SHA-256), never by
an id that may belong to another patient; a corrupt feature-cache entry is a miss, never wrong features.

Cohorts are a few hand-made PNGs (40x40) extracted with a tiny parameter set (first order + 2D shape), so the
whole module runs in seconds; the bundles are test_bundle_safety's.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_bundle_safety import copy_bundle, fitted_bundles, reseal, tiny_params_file

from usrad.bundle import MANIFEST_FILE, META_FILE, MODEL_FILE
from usrad.cli import main

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "config" / "config.yaml")


@pytest.fixture(scope="session")
def tiny_params(tmp_path_factory) -> Path:
    return tiny_params_file(tmp_path_factory)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> Path:
    return fitted_bundles(tmp_path_factory)


def png_manifest(folder: Path, patients, seed: int, image_ids=None, reader2=False, name="manifest.csv") -> Path:
    """A manifest of one PNG image + mask per patient (random texture, a square lesion), 0.1 mm pixels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, pid in enumerate(patients):
        stem = f"{pid}_{seed}_{i}"
        img = rng.integers(0, 200, (40, 40)).astype(np.uint8)
        y, x = rng.integers(4, 20, size=2)
        img[y:y + 14, x:x + 14] += rng.integers(20, 55, dtype=np.uint8)
        Image.fromarray(img).save(folder / f"{stem}.png")
        mask = np.zeros((40, 40), np.uint8)
        mask[y:y + 14, x:x + 14] = 255
        Image.fromarray(mask).save(folder / f"{stem}_m.png")
        row = {"patient_id": pid, "image": f"{stem}.png", "mask": f"{stem}_m.png", "pixel_spacing_mm": "0.1"}
        if reader2:
            mask2 = np.zeros((40, 40), np.uint8)
            mask2[y:y + 13, x:x + 14] = 255
            Image.fromarray(mask2).save(folder / f"{stem}_m2.png")
            row["mask_reader2"] = f"{stem}_m2.png"
        if image_ids is not None:
            row["image_id"] = image_ids[i]
        rows.append(row)
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def extract(manifest: Path, out: Path, params: Path, capsys, *extra) -> Path:
    code, _, err = run(["extract", manifest, "--out", out, "--params", params, "--config", CONFIG, *extra], capsys)
    assert code == 0, err
    return out


# ----------------------------------------------------------------------------------------- usrad extract
def test_usrad_extract_writes_the_features_of_every_reader_and_the_content_of_every_row(tmp_path, tiny_params,
                                                                                      capsys):
    from usrad.cohort import load_cohort
    from usrad.config import load_config
    from usrad.extract import extract_cohort, row_content
    from usrad.features import read_feature_table

    manifest = png_manifest(tmp_path / "m", ["A1", "A2", "A3"], seed=1, reader2=True)
    out = extract(manifest, tmp_path / "t" / "features.parquet", tiny_params, capsys)
    table, meta = read_feature_table(out)
    assert sorted(zip(table["patient_id"], table["reader"])) == [(p, r) for p in ("A1", "A2", "A3") for r in ("r1", "r2")]
    cfg = load_config(CONFIG)
    cohort = load_cohort(manifest, dict(cfg, tasks=[], radiomics_params=str(tiny_params),
                                        clinical=dict(cfg["clinical"], predictors=[], categorical=[])))
    direct = extract_cohort(cohort, tiny_params, progress=False)
    pd.testing.assert_frame_equal(table, direct, check_dtype=False)
    assert meta["params_sha256"] == hashlib.sha256(tiny_params.read_bytes()).hexdigest()
    assert meta["content_sha256"] == sorted([*k, v] for k, v in row_content(cohort).items())
    assert len({r[3] for r in meta["content_sha256"]}) == 6  # every image x mask has its own content


def test_usrad_extract_needs_no_clinical_or_outcome_column_but_refuses_an_empty_manifest(tmp_path, tiny_params,
                                                                                       capsys):
    manifest = png_manifest(tmp_path / "m", ["A1"], seed=2)
    assert set(pd.read_csv(manifest).columns) == {"patient_id", "image", "mask", "pixel_spacing_mm"}
    extract(manifest, tmp_path / "f.parquet", tiny_params, capsys)
    (tmp_path / "empty.csv").write_text("patient_id,image,mask\n")
    code, _, err = run(["extract", tmp_path / "empty.csv", "--out", tmp_path / "g.parquet", "--params", tiny_params,
                        "--config", CONFIG], capsys)
    assert code == 2 and ("no data rows" in err or "no image rows" in err) and "Traceback" not in err
    assert str(tmp_path / "empty.csv") in err
    assert not (tmp_path / "g.parquet").exists()


# ----------------------------------------------------------------------------------------- predict by content
@pytest.fixture()
def scored(tmp_path, tiny_params, bundles, capsys):
    """A training table (patients T1, T2, T3, image ids T1..T3) that also holds the new patients' images under
    other ids, and the new patients' manifest whose image ids collide with the training ids."""
    train = png_manifest(tmp_path / "train", ["T1", "T2", "T3"], seed=10, image_ids=["T1", "T2", "T3"])
    new = png_manifest(tmp_path / "new", ["N1", "T2"], seed=20, image_ids=["T1", "T2"])  # colliding ids
    both = pd.concat([pd.read_csv(train).assign(image=lambda d: [str(tmp_path / "train" / p) for p in d.image],
                                                mask=lambda d: [str(tmp_path / "train" / p) for p in d["mask"]]),
                      pd.read_csv(new).assign(image=lambda d: [str(tmp_path / "new" / p) for p in d.image],
                                              mask=lambda d: [str(tmp_path / "new" / p) for p in d["mask"]],
                                              patient_id=["X1", "X2"], image_id=["x1", "x2"])])
    both.to_csv(tmp_path / "both.csv", index=False)
    table = extract(tmp_path / "both.csv", tmp_path / "both.parquet", tiny_params, capsys)
    return {"train": train, "new": new, "table": table, "model": bundles / "radscore"}


def test_predict_with_a_feature_table_scores_new_patients_by_their_own_images_not_by_a_colliding_id(
        scored, tmp_path, capsys):
    from usrad.predict import read_predictions_table

    by_table, by_image, train = tmp_path / "a.tsv", tmp_path / "b.tsv", tmp_path / "c.tsv"
    for out, extra in ((by_table, ["--features", scored["table"]]), (by_image, [])):
        code, _, err = run(["predict", "--model", scored["model"], "--manifest", scored["new"], "--out", out,
                            "--quiet", *extra], capsys)
        assert code == 0, err
    assert run(["predict", "--model", scored["model"], "--manifest", scored["train"], "--out", train, "--quiet",
                "--features", scored["table"]], capsys)[0] == 0
    a, b, t = (read_predictions_table(p).set_index("image_id") for p in (by_table, by_image, train))
    assert list(a.index) == ["T1", "T2"] and list(a["patient_id"]) == ["N1", "T2"]
    np.testing.assert_allclose(a["rad_score"], b["rad_score"], rtol=0, atol=1e-12)  # the new images' own scores
    np.testing.assert_allclose(a["probability"], b["probability"], rtol=0, atol=1e-12)
    # an id join would have given the training patients' scores to the new patients
    assert (np.abs(a["rad_score"].to_numpy() - t.loc[["T1", "T2"], "rad_score"].to_numpy()) > 1e-6).all()


def test_predict_refuses_a_new_image_the_table_does_not_hold_naming_row_patient_and_file(scored, tmp_path,
                                                                                        capsys, tiny_params):
    other = png_manifest(tmp_path / "other", ["N7", "N8"], seed=30, image_ids=["T1", "T3"])
    code, _, err = run(["predict", "--model", scored["model"], "--manifest", other, "--out", tmp_path / "p.tsv",
                        "--features", scored["table"]], capsys)
    assert code == 2 and "Traceback" not in err and not (tmp_path / "p.tsv").exists()
    for row, pid in ((1, "N7"), (2, "N8")):
        assert f"row {row}, patient '{pid}', column 'image', file {tmp_path / 'other'}" in err
    assert "never by image_id" in err


def test_predict_refuses_a_feature_table_that_does_not_record_the_content_of_its_rows(scored, tmp_path, capsys):
    from usrad.extract import provenance
    from usrad.features import read_feature_table, write_feature_table

    table, meta = read_feature_table(scored["table"])
    old = write_feature_table(table, tmp_path / "old.parquet", {k: v for k, v in meta.items() if k != "content_sha256"})
    code, _, err = run(["predict", "--model", scored["model"], "--manifest", scored["new"], "--out", tmp_path / "p.tsv",
                        "--features", old], capsys)
    assert code == 2 and "does not record the content" in err and str(old) in err and "Traceback" not in err
    assert provenance  # (the metadata of a table written without usrad extract lacks the records)


# ----------------------------------------------------------------------------------------- bad arguments
@pytest.fixture()
def world(tmp_path, bundles, tiny_params):
    """A folder with a manifest, a file, a folder, a bundle copy and a not-YAML file, to feed the commands."""
    w = tmp_path / "w"
    manifest = png_manifest(w / "cohort", ["A1", "A2"], seed=3)
    (w / "afile.txt").write_text("just text\n")
    (w / "folder").mkdir()
    (w / "notyaml.yaml").write_text("a: [1,\n")
    (w / "binary.csv").write_bytes(b"\xff\xfe\x00garbage")
    os.mkfifo(w / "fifo")  # reading it would block for ever
    copy_bundle(bundles, "radscore", w / "bundle")
    return {"w": w, "manifest": manifest, "params": tiny_params}


def _cases():
    """(id, argv template, words that must be in stderr). {w} is the world folder, {m} the manifest."""
    out = "{w}/new/out.tsv"
    pred = ["predict", "--model", "{w}/bundle", "--manifest", "{m}", "--out"]
    ext = ["extract", "{m}", "--params", "{p}", "--config", CONFIG, "--out"]
    return [
        ("simulate-out-is-a-file", ["simulate", "--out", "{w}/afile.txt", "--n-patients", "2"], ["{w}/afile.txt", "is a file"]),
        ("simulate-out-under-a-file", ["simulate", "--out", "{w}/afile.txt/x", "--n-patients", "2"], ["{w}/afile.txt"]),
        ("simulate-out-a-folder-of-other-files", ["simulate", "--out", "{w}/bundle", "--n-patients", "2"],
         ["{w}/bundle", "holds no simulated cohort"]),
        ("simulate-zero", ["simulate", "--out", "{w}/s", "--n-patients", "0"], ["--n-patients", "less than 1"]),
        ("simulate-negative", ["simulate", "--out", "{w}/s", "--n-patients", "-5"], ["--n-patients"]),
        ("simulate-not-a-number", ["simulate", "--out", "{w}/s", "--n-patients", "five"], ["--n-patients", "'five'"]),
        ("simulate-fraction", ["simulate", "--out", "{w}/s", "--n-patients", "2.5"], ["--n-patients"]),
        ("simulate-seed", ["simulate", "--out", "{w}/s", "--seed", "-1"], ["--seed"]),
        ("validate-missing", ["validate", "{w}/nope.csv"], ["{w}/nope.csv", "not found"]),
        ("validate-folder", ["validate", "{w}/folder"], ["{w}/folder", "cannot be read"]),
        ("validate-a-pipe", ["validate", "{w}/fifo"], ["{w}/fifo", "not a regular file"]),
        ("extract-manifest-a-pipe", ["extract", "{w}/fifo", "--out", out], ["{w}/fifo", "not a regular file"]),
        ("predict-out-a-device", [*pred, "/dev/null"], ["/dev/null", "not a regular file"]),
        ("validate-config-missing", ["validate", "{m}", "--config", "{w}/nope.yaml"], ["{w}/nope.yaml"]),
        ("validate-config-folder", ["validate", "{m}", "--config", "{w}/folder"], ["{w}/folder"]),
        ("validate-config-not-yaml", ["validate", "{m}", "--config", "{w}/notyaml.yaml"], ["{w}/notyaml.yaml"]),
        ("extract-manifest-missing", ["extract", "{w}/nope.csv", "--out", out], ["{w}/nope.csv"]),
        ("extract-manifest-folder", ["extract", "{w}/folder", "--out", out], ["{w}/folder", "is a folder"]),
        ("extract-manifest-binary", [*ext[:1], "{w}/binary.csv", *ext[2:], out], ["{w}/binary.csv"]),
        ("extract-out-folder", [*ext, "{w}/folder"], ["{w}/folder", "--out", "is a folder"]),
        ("extract-out-under-a-file", [*ext, "{w}/afile.txt/f.parquet"], ["{w}/afile.txt"]),
        ("extract-out-is-the-manifest", [*ext, "{m}"], ["{m}", "overwritten"]),
        ("extract-params-missing", ["extract", "{m}", "--params", "{w}/nope.yaml", "--out", out], ["{w}/nope.yaml"]),
        ("extract-params-folder", ["extract", "{m}", "--params", "{w}/folder", "--out", out], ["{w}/folder"]),
        ("extract-params-not-yaml", ["extract", "{m}", "--params", "{w}/notyaml.yaml", "--config", CONFIG, "--out",
                                     out], ["{w}/notyaml.yaml"]),
        ("extract-params-not-pyradiomics", ["extract", "{m}", "--params", "{w}/afile.txt", "--config", CONFIG,
                                            "--out", out], ["{w}/afile.txt"]),
        ("extract-cache-is-a-file", [*ext[:-1], "--cache-dir", "{w}/afile.txt", "--out", out], ["{w}/afile.txt"]),
        ("extract-config-missing", ["extract", "{m}", "--config", "{w}/nope.yaml", "--out", out], ["{w}/nope.yaml"]),
        ("predict-model-missing", ["predict", "--model", "{w}/nope", "--manifest", "{m}", "--out", out], ["{w}/nope"]),
        ("predict-model-a-file", ["predict", "--model", "{w}/afile.txt", "--manifest", "{m}", "--out", out],
         ["{w}/afile.txt", "is a file"]),
        ("predict-model-not-a-bundle", ["predict", "--model", "{w}/folder", "--manifest", "{m}", "--out", out],
         ["{w}/folder", "no bundle.json"]),
        ("predict-manifest-missing", ["predict", "--model", "{w}/bundle", "--manifest", "{w}/nope.csv", "--out", out],
         ["{w}/nope.csv"]),
        ("predict-manifest-folder", ["predict", "--model", "{w}/bundle", "--manifest", "{w}/folder", "--out", out],
         ["{w}/folder"]),
        ("predict-manifest-binary", ["predict", "--model", "{w}/bundle", "--manifest", "{w}/binary.csv", "--out", out],
         ["{w}/binary.csv"]),
        ("predict-out-folder", [*pred, "{w}/folder"], ["{w}/folder", "is a folder"]),
        ("predict-out-under-a-file", [*pred, "{w}/afile.txt/p.csv"], ["{w}/afile.txt"]),
        ("predict-out-in-the-bundle", [*pred, "{w}/bundle/p.csv"], ["{w}/bundle/p.csv", "inside the model bundle"]),
        ("predict-out-is-the-manifest", [*pred, "{m}"], ["{m}", "overwritten"]),
        ("predict-features-missing", [*pred, out, "--features", "{w}/nope.parquet"], ["{w}/nope.parquet"]),
        ("predict-features-folder", [*pred, out, "--features", "{w}/folder"], ["{w}/folder"]),
        ("predict-features-not-parquet", [*pred, out, "--features", "{w}/afile.txt"], ["{w}/afile.txt", "Parquet"]),
        ("predict-cache-is-a-file", [*pred, out, "--cache-dir", "{w}/afile.txt"], ["{w}/afile.txt"]),
        ("busbra-missing", ["busbra-manifest", "{w}/nope", "--out", out], ["{w}/nope"]),
        ("busbra-a-file", ["busbra-manifest", "{w}/afile.txt", "--out", out], ["{w}/afile.txt"]),
        ("busbra-out-folder", ["busbra-manifest", "{w}/folder", "--out", "{w}/folder"], ["{w}/folder"]),
        ("busbra-spacing-nan", ["busbra-manifest", "{w}", "--out", out, "--pixel-spacing-mm", "nan"], ["--pixel-spacing-mm"]),
        ("busbra-spacing-negative", ["busbra-manifest", "{w}", "--out", out, "--pixel-spacing-mm", "-1"],
         ["--pixel-spacing-mm"]),
        ("busbra-n-images-zero", ["busbra-manifest", "{w}", "--out", out, "--n-images", "0"], ["--n-images"]),
        ("no-command", [], ["command"]),
        ("unknown-command", ["train"], ["train"]),
        ("unknown-option", [*pred, out, "--modle", "x"], ["unrecognized arguments: --modle"]),
    ]


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_subcommand_given_a_bad_path_or_value_exits_2_naming_it_and_writes_nothing(world, case, capsys):
    _, template, words = case
    fill = {"w": str(world["w"]), "m": str(world["manifest"]), "p": str(world["params"])}
    argv = [a.format(**fill) for a in template]
    before = snapshot(world["w"])
    code, out, err = run(argv, capsys)
    assert code == 2, (argv, out, err)
    assert "Traceback" not in err and err.strip(), err
    for word in words:
        assert word.format(**fill) in err, (word, err)
    assert snapshot(world["w"]) == before, "a refused command must not write anything"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_unwritable_output_folder_is_named_before_any_work(world, capsys):
    locked = world["w"] / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = run(["predict", "--model", world["w"] / "bundle", "--manifest", world["manifest"], "--out",
                            locked / "p.tsv"], capsys)
    finally:
        locked.chmod(0o755)
    assert code == 2 and "not writable" in err and str(locked) in err


# ----------------------------------------------------------------------------------------- bundles via the CLI
def _tamper_threshold(d: Path) -> None:
    meta = json.loads((d / META_FILE).read_text())
    meta["threshold"] = 0.01
    (d / META_FILE).write_text(json.dumps(meta))


BUNDLE_DAMAGE = [
    ("threshold-edited", _tamper_threshold, "was modified after it was written"),
    ("threshold-string-resealed", lambda d: (_set(d, threshold="0.5"), reseal(d)), "threshold"),
    ("threshold-null-resealed", lambda d: (_set(d, threshold=None), reseal(d)), "threshold"),
    ("threshold-list-resealed", lambda d: (_set(d, threshold=[0.5]), reseal(d)), "threshold"),
    ("threshold-missing-resealed", lambda d: (_set(d, threshold=...), reseal(d)), "key is missing"),
    ("json-list", lambda d: ((d / META_FILE).write_text("[]"), reseal(d)), "not a JSON object"),
    ("json-null", lambda d: ((d / META_FILE).write_text("null"), reseal(d)), "not a JSON object"),
    ("json-empty-object", lambda d: ((d / META_FILE).write_text("{}"), reseal(d)), "key is missing"),
    ("json-not-utf8", lambda d: ((d / META_FILE).write_bytes(b"\xff{}"), reseal(d)), "not UTF-8"),
    ("json-truncated", lambda d: ((d / META_FILE).write_text((d / META_FILE).read_text()[:50]), reseal(d)),
     "not valid JSON"),
    ("model-swapped", lambda d: shutil.copy(d.parent / "other" / MODEL_FILE, d / MODEL_FILE), "changed"),
    ("model-file-outside", lambda d: (_set(d, model_file="../other/model.skops"), reseal(d)), "model_file"),
    ("manifest-deleted", lambda d: (d / MANIFEST_FILE).unlink(), "MANIFEST.sha256 is missing"),
    ("old-format", lambda d: ((d / MANIFEST_FILE).unlink(), _set(d, format="usrad-bundle/1")), "rebuild it"),
]


def _set(d: Path, **values) -> None:
    meta = json.loads((d / META_FILE).read_text())
    for k, v in values.items():
        if v is ...:
            meta.pop(k)
        else:
            meta[k] = v
    (d / META_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize("case", BUNDLE_DAMAGE, ids=[c[0] for c in BUNDLE_DAMAGE])
def test_predict_with_a_damaged_bundle_exits_2_naming_the_file_or_key(world, bundles, case, capsys):
    _, damage, words = case
    d = world["w"] / "bundle"
    copy_bundle(bundles, "clinical", world["w"] / "other")
    damage(d)
    out = world["w"] / "p.tsv"
    code, _, err = run(["predict", "--model", d, "--manifest", world["manifest"], "--out", out], capsys)
    assert code == 2 and words in err and str(d) in err and "Traceback" not in err, err
    assert not out.exists()


def test_predict_accepts_the_bundle_json_path_and_creates_a_missing_output_folder(world, capsys):
    from usrad.predict import read_predictions_table

    out = world["w"] / "new" / "deeper" / "p.csv"
    code, stdout, err = run(["predict", "--model", world["w"] / "bundle" / META_FILE, "--manifest", world["manifest"],
                             "--out", out, "--quiet"], capsys)
    assert code == 0, err
    got = read_predictions_table(out)
    assert list(got["patient_id"]) == ["A1", "A2"] and got["probability"].between(0, 1).all()
    assert "2 image(s) of 2 patient(s) scored with radscore" in stdout
    assert sorted(p.name for p in (world["w"] / "bundle").iterdir()) == [MANIFEST_FILE, META_FILE, MODEL_FILE]


# ----------------------------------------------------------------------------------------- feature cache
CORRUPTIONS = {
    "not-json": lambda e: "{not json",
    "truncated": lambda e: json.dumps(e)[: len(json.dumps(e)) // 2],
    "empty": lambda e: "",
    "a-list": lambda e: json.dumps([e]),
    "null": lambda e: "null",
    "other-key": lambda e: json.dumps(dict(e, key="0" * 64)),
    "fewer-names": lambda e: json.dumps(dict(e, names=e["names"][:-1], values=e["values"][:-1])),
    "names-and-values-differ": lambda e: json.dumps(dict(e, values=e["values"][:-1])),
    "renamed": lambda e: json.dumps(dict(e, names=list(reversed(e["names"])))),
    "text-values": lambda e: json.dumps(dict(e, values=[str(v) for v in e["values"]])),
    "bool-value": lambda e: json.dumps(dict(e, values=[True] + e["values"][1:])),
    "names-missing": lambda e: json.dumps({"key": e["key"], "values": e["values"]}),
    "not-utf8": lambda e: b"\xff\xfe".decode("latin-1"),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_a_corrupt_cache_entry_is_a_miss_with_a_warning_never_wrong_features(tmp_path, tiny_params, kind):
    from usrad.cohort import load_cohort
    from usrad.extract import CacheWarning, extract_cohort

    manifest = png_manifest(tmp_path / "m", ["A1", "A2"], seed=4)
    cohort = load_cohort(manifest, {"tasks": [], "clinical": {"predictors": []}})
    cache = tmp_path / "cache"
    fresh = extract_cohort(cohort, tiny_params, cache_dir=cache, progress=False)
    entries = sorted(cache.rglob("*.json"))
    assert len(entries) == 2
    entry = json.loads(entries[0].read_text())
    text = CORRUPTIONS[kind](entry)
    entries[0].write_bytes(text.encode("latin-1") if kind == "not-utf8" else text.encode())
    with pytest.warns(CacheWarning, match=str(entries[0])):
        again = extract_cohort(cohort, tiny_params, cache_dir=cache, progress=False)
    pd.testing.assert_frame_equal(again, fresh)
    assert again.attrs["extraction"]["extracted"] == 1 and again.attrs["extraction"]["cached"] == 1
    assert json.loads(entries[0].read_text()) == entry  # rewritten


@pytest.mark.parametrize("kind", ["folder", "symlink", "pipe"])
def test_a_cache_entry_that_is_no_regular_file_is_a_miss_with_a_warning(tmp_path, tiny_params, kind):
    from usrad.cohort import load_cohort
    from usrad.extract import CacheWarning, extract_cohort

    cohort = load_cohort(png_manifest(tmp_path / "m", ["A1"], seed=5), {"tasks": [], "clinical": {"predictors": []}})
    cache = tmp_path / "cache"
    fresh = extract_cohort(cohort, tiny_params, cache_dir=cache, progress=False)
    (entry,) = cache.rglob("*.json")
    good = entry.read_text()
    entry.unlink()
    if kind == "folder":
        entry.mkdir()
    elif kind == "symlink":  # even to a file with the right content: the cache holds its own files only
        (tmp_path / "elsewhere.json").write_text(good)
        entry.symlink_to(tmp_path / "elsewhere.json")
    else:
        os.mkfifo(entry)  # reading it would block for ever
    with pytest.warns(CacheWarning, match="not a regular file"):
        again = extract_cohort(cohort, tiny_params, cache_dir=cache, progress=False)
    pd.testing.assert_frame_equal(again, fresh)
    assert again.attrs["extraction"]["extracted"] == 1
