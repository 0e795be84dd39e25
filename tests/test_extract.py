"""PyRadiomics extraction through usrad.extract: equal to PyRadiomics itself, geometry, cache, shards, errors."""
from __future__ import annotations

import hashlib
import io
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

from usrad.errors import UsradError
from usrad.extract import READERS, SUMMARY_TAG, assign_shards, extract_cohort, extract_shard, shard_key
from usrad.features import ID_COLUMNS, feature_columns, read_feature_table

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "config" / "radiomics.yaml"
SPACING = 0.1  # mm
SIZE = 120  # px: a 12 mm x 12 mm field
DISK_R_MM = 3.0
ELLIPSE_AB_MM = (4.0, 2.0)


def _grid():
    yy, xx = np.mgrid[:SIZE, :SIZE]
    c = (SIZE - 1) / 2
    return (yy - c) * SPACING, (xx - c) * SPACING  # mm from the centre


def disk(r_mm=DISK_R_MM):
    y, x = _grid()
    return (x ** 2 + y ** 2 <= r_mm ** 2).astype(np.uint8)


def ellipse(a_mm=ELLIPSE_AB_MM[0], b_mm=ELLIPSE_AB_MM[1]):
    y, x = _grid()
    return ((x / a_mm) ** 2 + (y / b_mm) ** 2 <= 1).astype(np.uint8)


def write_nrrd(arr, path, dtype):
    img = sitk.GetImageFromArray(arr.astype(dtype))
    img.SetSpacing((SPACING, SPACING))
    sitk.WriteImage(img, str(path))
    return str(path)


def make_cohort(folder: Path, patients, seed=0) -> pd.DataFrame:
    """Noise images (8-bit grey levels stored as float32 NRRD), disk mask (r1), ellipse mask (r2) except for P3."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, pid in enumerate(patients):
        rng = np.random.default_rng([seed, i])
        arr = np.clip(np.round(rng.normal(90 + 10 * i, 25, size=(SIZE, SIZE))), 0, 255)
        image = write_nrrd(arr, folder / f"{pid}_img.nrrd", np.float32)
        mask = write_nrrd(disk(), folder / f"{pid}_disk.nrrd", np.uint8)
        mask2 = "" if pid == "P3" else write_nrrd(ellipse(), folder / f"{pid}_ellipse.nrrd", np.uint8)
        rows.append({"patient_id": pid, "image_id": f"{pid}-a", "image": image, "mask": mask,
                     "mask_reader2": mask2, "pixel_spacing_mm": float("nan")})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("cohort"), ["P1", "P2", "P3"])


@pytest.fixture(scope="module")
def table(cohort):
    return extract_cohort(cohort, PARAMS, progress=False, log=io.StringIO())


def _direct(image_path, mask_path, params=PARAMS):
    from radiomics import featureextractor

    ex = featureextractor.RadiomicsFeatureExtractor(str(params) if isinstance(params, Path) else params)
    out = ex.execute(sitk.ReadImage(image_path), sitk.ReadImage(mask_path))
    return {k: float(v) for k, v in out.items() if not k.startswith("diagnostics_")}


def test_extracted_features_equal_pyradiomics_run_directly_for_both_readers(cohort, table):
    rec = cohort.iloc[0]
    for reader, col in READERS:
        direct = _direct(rec["image"], rec[col])
        row = table[(table["image_id"] == rec["image_id"]) & (table["reader"] == reader)]
        assert len(row) == 1
        ours = row.iloc[0][feature_columns(table)].astype(float)
        assert list(ours.index) == list(direct), "same features, same order as PyRadiomics"
        np.testing.assert_allclose(ours.to_numpy(), np.array(list(direct.values())), rtol=1e-12, atol=0)


def test_disk_and_ellipse_shape_features_match_their_geometry_in_mm(table):
    r1 = table[table["reader"] == "r1"].iloc[0]
    assert r1["original_shape2D_PixelSurface"] == pytest.approx(math.pi * DISK_R_MM ** 2, rel=0.03)
    assert r1["original_shape2D_MaximumDiameter"] == pytest.approx(2 * DISK_R_MM, rel=0.03)
    r2 = table[table["reader"] == "r2"].iloc[0]
    a, b = ELLIPSE_AB_MM
    assert r2["original_shape2D_PixelSurface"] == pytest.approx(math.pi * a * b, rel=0.03)
    assert r2["original_shape2D_MajorAxisLength"] == pytest.approx(2 * a, rel=0.03)
    assert r2["original_shape2D_MinorAxisLength"] == pytest.approx(2 * b, rel=0.03)


def _expected_feature_count(params_path) -> tuple[int, int]:
    """(number of features, number of image types) the params define, from PyRadiomics' class feature lists."""
    from radiomics import getFeatureClasses

    params = yaml.safe_load(Path(params_path).read_text())
    classes = getFeatureClasses()
    per_class = {}
    for name, listed in params["featureClass"].items():
        names = classes[name].getFeatureNames()  # name -> deprecated?
        per_class[name] = len(listed) if listed else sum(not dep for dep in names.values())
    n_types = 0
    for image_type in params["imageType"]:
        n_types += {"Original": 1, "LoG": len(params["setting"]["sigma"]), "Wavelet": 4}[image_type]  # 2D SWT: 4 bands
    shape = per_class.pop("shape2D", 0)
    return shape + n_types * sum(per_class.values()), n_types


def test_table_has_one_row_per_image_and_reader_and_every_feature_the_params_define(cohort, table):
    n_r2 = int((cohort["mask_reader2"] != "").sum())
    assert len(table) == len(cohort) + n_r2 == 5
    assert Counter(table["reader"]) == {"r1": 3, "r2": 2}
    assert list(table.columns[:3]) == ID_COLUMNS
    feats = feature_columns(table)
    n_expected, n_types = _expected_feature_count(PARAMS)
    assert len(feats) == n_expected
    assert not any(c.startswith("diagnostics_") for c in feats)
    assert all(table[c].dtype == np.float64 for c in feats)
    types = {c.split("_")[0] for c in feats}
    # A 2D image must give the 2D wavelet bands and one LoG image per sigma (regression guard for force2D).
    assert types == {"original", "log-sigma-1-0-mm-3D", "log-sigma-2-0-mm-3D", "log-sigma-3-0-mm-3D",
                     "wavelet-LH", "wavelet-HL", "wavelet-HH", "wavelet-LL"}
    assert len(types) == n_types


def _params_with(**setting) -> dict:
    params = yaml.safe_load(PARAMS.read_text())
    params["setting"].update(setting)
    return params


def test_params_compute_texture_over_both_image_axes(cohort):
    """The params on a 2D image equal PyRadiomics' in-plane (force2D) texture of the same image stored as one 3D slice."""
    from radiomics import featureextractor

    rec = cohort.iloc[1]
    img, mask = sitk.ReadImage(rec["image"]), sitk.ReadImage(rec["mask"])
    ours = _params_with()
    ours["imageType"] = {"Original": {}}
    ref = _params_with(force2D=True, force2Ddimension=0)
    ref["imageType"] = {"Original": {}}
    a = featureextractor.RadiomicsFeatureExtractor(ours).execute(img, mask)
    b = featureextractor.RadiomicsFeatureExtractor(ref).execute(sitk.JoinSeries(img), sitk.JoinSeries(mask))
    texture = [k for k in a if k.split("_")[1] in ("glcm", "glrlm", "glszm", "gldm", "ngtdm")]
    assert len(texture) == 75
    np.testing.assert_allclose([float(a[k]) for k in texture], [float(b[k]) for k in texture], rtol=1e-10)


def test_params_log_features_do_not_depend_on_cropping_before_filtering(tmp_path):
    """LoG sigma 3 mm is 30 px: filtering a crop of ROI + 5 px (preCrop) would change the features."""

    rng = np.random.default_rng(5)
    arr = np.clip(np.round(rng.normal(100, 20, (SIZE, SIZE)) + np.linspace(0, 80, SIZE)[None, :]), 0, 255)
    image = write_nrrd(arr, tmp_path / "img.nrrd", np.float32)
    mask = write_nrrd(disk(2.0), tmp_path / "disk.nrrd", np.uint8)
    params = _params_with()
    params["imageType"] = {"LoG": {}}
    uncropped = _params_with(preCrop=False)
    uncropped["imageType"] = {"LoG": {}}
    a = {k: v for k, v in _direct(image, mask, params).items() if k.startswith("log-")}
    b = {k: v for k, v in _direct(image, mask, uncropped).items() if k.startswith("log-")}
    assert len(a) == 3 * 93 and list(a) == list(b)
    np.testing.assert_allclose(list(a.values()), list(b.values()), rtol=1e-12)


def _summary(log: io.StringIO) -> dict:
    lines = [ln for ln in log.getvalue().splitlines() if ln.startswith(SUMMARY_TAG)]
    assert len(lines) == 1
    return json.loads(lines[0][len(SUMMARY_TAG):])


def test_cached_second_run_does_not_call_pyradiomics_and_gives_identical_values(cohort, table, tmp_path, monkeypatch):
    from radiomics import featureextractor

    cache = tmp_path / "cache"
    log1 = io.StringIO()
    first = extract_cohort(cohort, PARAMS, cache_dir=cache, progress=False, log=log1)
    assert _summary(log1)["extracted"] == 5 and _summary(log1)["cached"] == 0
    assert len(list(cache.rglob("*.json"))) == 5

    def refuse(*args, **kwargs):
        raise AssertionError("PyRadiomics was called although every result is cached")

    for method in ("execute", "computeShape", "computeFeatures"):  # the per-mask and the shared-filter paths
        monkeypatch.setattr(featureextractor.RadiomicsFeatureExtractor, method, refuse)
    log2 = io.StringIO()
    second = extract_cohort(cohort, PARAMS, cache_dir=cache, progress=False, log=log2)
    assert _summary(log2) | {"wall_seconds": 0} == {"images": 3, "pairs": 5, "cached": 5, "extracted": 0,
                                                     "extraction_seconds": 0.0, "wall_seconds": 0}
    pd.testing.assert_frame_equal(second, first, check_exact=True)
    pd.testing.assert_frame_equal(first, table, check_exact=True)


def test_adding_a_patient_extracts_only_that_patients_masks(cohort, tmp_path):
    cache = tmp_path / "cache"
    extract_cohort(cohort, PARAMS, cache_dir=cache, progress=False, log=io.StringIO())
    bigger = pd.concat([cohort, make_cohort(tmp_path / "new", ["P1", "P2", "P3", "P4"]).iloc[[3]]], ignore_index=True)
    log = io.StringIO()
    out = extract_cohort(bigger, PARAMS, cache_dir=cache, progress=False, log=log)
    assert _summary(log)["extracted"] == 2 and _summary(log)["cached"] == 5
    assert sorted(out["patient_id"].unique()) == ["P1", "P2", "P3", "P4"]


def test_changing_the_pixel_spacing_of_a_png_re_extracts_it(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (SIZE, SIZE)).astype(np.uint8)).save(tmp_path / "img.png")
    Image.fromarray(disk() * 255).save(tmp_path / "mask.png")
    cohort = pd.DataFrame([{"patient_id": "P1", "image_id": "P1-a", "image": str(tmp_path / "img.png"),
                            "mask": str(tmp_path / "mask.png"), "mask_reader2": "", "pixel_spacing_mm": SPACING}])
    cache = tmp_path / "cache"
    first = extract_cohort(cohort, PARAMS, cache_dir=cache, progress=False, log=io.StringIO())
    log = io.StringIO()
    second = extract_cohort(cohort.assign(pixel_spacing_mm=2 * SPACING), PARAMS, cache_dir=cache, progress=False, log=log)
    assert _summary(log)["extracted"] == 1, "a cached result for another spacing must not be reused"
    area = "original_shape2D_PixelSurface"
    assert second.loc[0, area] == pytest.approx(4 * first.loc[0, area], rel=1e-9)


def test_progress_lines_report_count_rate_and_eta(cohort):
    log = io.StringIO()
    extract_cohort(cohort, PARAMS, progress=True, log=log)
    lines = [ln for ln in log.getvalue().splitlines() if ln.startswith("extract:")]
    assert lines and "3/3 images" in lines[-1] and "images/s" in lines[-1] and "ETA" in lines[-1]


def test_roi_too_small_for_pyradiomics_names_patient_column_and_file(cohort, tmp_path):
    tiny = np.zeros((SIZE, SIZE), np.uint8)
    tiny[50:55, 50:55] = 1  # 25 px < minimumROISize 50
    bad = cohort.copy()
    bad.loc[1, "mask_reader2"] = write_nrrd(tiny, tmp_path / "tiny.nrrd", np.uint8)
    with pytest.raises(UsradError) as info:
        extract_cohort(bad, PARAMS, progress=False, log=io.StringIO())
    (problem,) = info.value.problems
    assert (problem.patient, problem.column, problem.file) == ("P2", "mask_reader2", str(tmp_path / "tiny.nrrd"))
    assert "ROI is too small" in problem.message


def test_every_bad_file_of_a_cohort_is_reported_at_once(cohort, tmp_path):
    bad = cohort.copy()
    bad.loc[0, "image"] = str(tmp_path / "missing.nrrd")
    bad.loc[2, "mask"] = write_nrrd(np.zeros((SIZE, SIZE)), tmp_path / "empty.nrrd", np.uint8)
    with pytest.raises(UsradError) as info:
        extract_cohort(bad, PARAMS, progress=False, log=io.StringIO())
    where = sorted((p.patient, p.column, Path(p.file).name) for p in info.value.problems)
    assert where == [("P1", "image", "missing.nrrd"), ("P3", "mask", "empty.nrrd")]


def test_shard_key_is_a_stable_hash_of_the_patient_id():
    for pid in ["P001", "0042", "patient ü"]:
        assert shard_key(pid) == int.from_bytes(hashlib.sha256(pid.encode()).digest()[:8], "big")


def test_shards_have_equal_sizes_and_do_not_depend_on_row_order():
    ids = [f"P{i:04d}" for i in range(671)]
    of = assign_shards(ids, 16)
    sizes = Counter(of.values())
    assert sorted(sizes) == list(range(16)) and set(sizes.values()) == {41, 42}  # 671 = 16 x 41 + 15
    assert assign_shards(list(reversed(ids)) + ids[:10], 16) == of  # order and repeated images do not matter
    # consecutive shards hold consecutive runs of the hash order, not of the IDs
    order = sorted(ids, key=shard_key)
    assert [of[p] for p in order] == sorted(of.values())
    assert [of[p] for p in ids[:16]] != sorted(of[p] for p in ids[:16])
    assert assign_shards(ids, 1) == dict.fromkeys(ids, 0)
    assert set(assign_shards(ids[:5], 8).values()) == {0, 1, 3, 4, 6}  # fewer patients than shards: some empty
    with pytest.raises(ValueError):
        assign_shards(ids, 0)


def test_shard_count_is_sized_by_work_and_the_planned_images_come_from_the_config(tmp_path):
    from usrad.extract.shards import planned_images, shard_count

    assert [shard_count(n, 16, 40) for n in (1, 40, 41, 80, 671, 5000)] == [1, 1, 2, 2, 16, 16]
    assert shard_count(None, 16, 40) == 16 and shard_count(80, 16, 1) == 16
    demo = {"manifest": None, "busbra": {"use": False}, "simulate": {"n_patients": 80}}
    assert planned_images(demo, None, None) == 80
    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id,image,mask\nA,a.png,a_m.png\n\nB,b.png,b_m.png\nB,c.png,c_m.png\n")
    assert planned_images({**demo, "manifest": str(manifest)}, str(manifest), None) == 3  # blank line skipped
    tsv = tmp_path / "m.tsv"
    tsv.write_text("patient_id\timage\tmask\nA\ta, b.png\tm.png\n")  # a comma in a path: still TSV
    assert planned_images({**demo, "manifest": str(tsv)}, str(tsv), None) == 1
    assert planned_images({**demo, "manifest": "missing.csv"}, str(tmp_path / "missing.csv"), None) is None
    busbra = {"manifest": None, "busbra": {"use": True, "n_images": None}}
    (tmp_path / "bus_data.csv").write_text("ID,Pathology\nbus_0001-l,benign\nbus_0002-r,malignant\n")
    assert planned_images(busbra, None, str(tmp_path / "bus_data.csv")) == 2
    assert planned_images({**busbra, "busbra": {"use": True, "n_images": 200}}, None, None) == 200


def test_shard_tables_cover_the_cohort_and_an_empty_shard_has_full_columns(cohort, table, tmp_path):
    from usrad.features import merge_feature_tables

    cohort_path = tmp_path / "cohort.tsv"
    cohort.to_csv(cohort_path, sep="\t", index=False)
    n = 8
    shards = sorted(set(assign_shards(cohort["patient_id"], n).values()))
    empty = next(s for s in range(n) if s not in shards)
    paths = []
    for s in shards + [empty]:
        out = tmp_path / f"shard{s}.parquet"
        extract_shard(cohort_path, PARAMS, s, n, out, cache_dir=tmp_path / "cache", log=io.StringIO())
        paths.append(out)
    empty_df, empty_meta = read_feature_table(paths[-1])
    assert len(empty_df) == 0 and list(empty_df.columns) == list(table.columns)
    merged = merge_feature_tables(paths, tmp_path / "features.parquet")
    back, meta = read_feature_table(tmp_path / "features.parquet")
    content = meta.pop("content_sha256")
    assert empty_meta.pop("content_sha256") == [] and meta == empty_meta
    # every row's content SHA-256 (image, mask, spacing) is recorded: predict --features matches by content
    assert sorted((p, i, r) for p, i, r, _ in content) == sorted(back[["patient_id", "image_id", "reader"]]
                                                                  .itertuples(index=False, name=None))
    pd.testing.assert_frame_equal(back, table, check_exact=True)
    assert len(merged) == 5


# ------------------------------------------------------------------ filtered images shared by the masks of an image
def _three_masks(image, r1, r2, image_id="IMG"):
    """Reader 1, reader 2 (or a second perturbed copy) and perturbed copy p1 of one image, as extract_cohort builds them."""
    from usrad.extract import perturbed_mask

    return [r1, r2 if r2 is not None else perturbed_mask(r1, image_id, 2, 3, 0), perturbed_mask(r1, image_id, 1, 3, 0)]


def _assert_shared_equals_execute(extractor, image, masks):
    from usrad.extract import EXTRACTION_ERRORS

    assert extractor.sharing_blockers() == []
    shared = extractor.extract_many(image, masks)
    for mask, ours in zip(masks, shared):
        assert not isinstance(ours, EXTRACTION_ERRORS), ours
        ref = extractor._extractor.execute(image, mask)  # PyRadiomics' own per-mask pipeline
        ref = {k: float(v) for k, v in ref.items() if not k.startswith("diagnostics_")}
        assert list(ours) == list(ref) and len(ref) == len(extractor.expected_features())
        np.testing.assert_allclose(list(ours.values()), list(ref.values()), rtol=1e-12, atol=0)
    assert len({tuple(ours.values()) for ours in shared}) == 3, "three different masks, three feature vectors"


def test_shared_filter_features_equal_pyradiomics_execute_per_mask_on_a_simulated_image():
    from usrad.extract import get_extractor
    from usrad.simulate import simulate_patient

    _, rend = simulate_patient(1234, 3)
    arrays = [rend["image"].astype(np.float32), rend["mask_r1"], rend["mask_r2"]]
    image, r1, r2 = (sitk.GetImageFromArray(a) for a in arrays)
    for img in (image, r1, r2):
        img.SetSpacing((rend["spacing"], rend["spacing"]))
    _assert_shared_equals_execute(get_extractor(PARAMS), image, _three_masks(image, r1, r2))


def test_shared_filter_features_equal_pyradiomics_execute_per_mask_on_a_busbra_image(busbra_dir):
    from usrad.extract import get_extractor
    from usrad.imageio import read_image, read_mask

    image = read_image(busbra_dir / "Images" / "bus_0002-l.png", 0.1)
    r1 = read_mask(busbra_dir / "Masks" / "mask_0002-l.png", image)
    _assert_shared_equals_execute(get_extractor(PARAMS), image, _three_masks(image, r1, None, "bus_0002-l"))


def test_precrop_params_fall_back_to_execute_for_every_mask(cohort, tmp_path, monkeypatch):
    """With preCrop the filtered images depend on the mask, so they must not be shared."""
    from usrad.extract import Extractor

    params = tmp_path / "precrop.yaml"
    params.write_text(yaml.safe_dump(_params_with(preCrop=True)))
    extractor = Extractor(params)
    assert extractor.sharing_blockers() == ["preCrop"]
    rec = cohort.iloc[0]
    image, r1, r2 = (sitk.ReadImage(rec[c]) for c in ("image", "mask", "mask_reader2"))
    calls = []
    execute = extractor._extractor.execute
    monkeypatch.setattr(extractor._extractor, "execute", lambda im, m: calls.append(m) or execute(im, m))
    out = extractor.extract_many(image, [r1, r2])
    assert len(calls) == 2
    for mask, ours in zip((r1, r2), out):
        assert ours == _direct(rec["image"], rec["mask"] if mask is r1 else rec["mask_reader2"], params)


def test_a_mask_pyradiomics_refuses_fails_alone_and_the_other_masks_of_the_image_are_extracted(cohort):
    from usrad.extract import get_extractor

    rec = cohort.iloc[0]
    image, r1 = sitk.ReadImage(rec["image"]), sitk.ReadImage(rec["mask"])
    tiny = np.zeros((SIZE, SIZE), np.uint8)
    tiny[50:55, 50:55] = 1
    small = sitk.GetImageFromArray(tiny)
    small.CopyInformation(r1)
    bad, good = get_extractor(PARAMS).extract_many(image, [small, r1])
    assert isinstance(bad, ValueError) and "ROI is too small" in str(bad)
    assert good == _direct(rec["image"], rec["mask"])


def test_fast_paths_are_used_for_the_pinned_pyradiomics_and_put_its_functions_back():
    from radiomics import base, imageoperations

    from usrad.extract import bin_edges, check_mask, fast_paths, get_mask, shared_binning

    originals = (imageoperations.getBinEdges, imageoperations.getMask, imageoperations.checkMask,
                 base.RadiomicsFeaturesBase._applyBinning)
    with fast_paths():  # pyradiomics 3.1.4 (requirements.txt): every source is the one checked
        assert (imageoperations.getBinEdges, imageoperations.getMask, imageoperations.checkMask,
                base.RadiomicsFeaturesBase._applyBinning) == (bin_edges, get_mask, check_mask, shared_binning)
    assert (imageoperations.getBinEdges, imageoperations.getMask, imageoperations.checkMask,
            base.RadiomicsFeaturesBase._applyBinning) == originals


def test_a_function_whose_source_changed_keeps_pyradiomics_own(monkeypatch):
    from radiomics import imageoperations

    from usrad.extract import fast_paths
    from usrad.extract.fastpaths import source_checked

    def getBinEdges(parameterValues, **kwargs):  # noqa: N802, N803 (same name, another source)
        return [0, 1]

    assert not source_checked(getBinEdges) and source_checked(imageoperations.getBinEdges)
    monkeypatch.setattr(fast_paths, "originals", {})
    monkeypatch.setattr(fast_paths, "checked", {})
    monkeypatch.setattr(imageoperations, "getBinEdges", getBinEdges)
    with fast_paths():
        assert imageoperations.getBinEdges is getBinEdges
        assert imageoperations.checkMask is not fast_paths.originals["checkMask"]  # the others still swapped


def test_numpy_bin_edges_equal_pyradiomics_get_bin_edges():
    from radiomics import imageoperations

    from usrad.extract import bin_edges, fast_paths

    original = imageoperations.getBinEdges
    rng = np.random.default_rng(3)
    cases = [rng.normal(0, 40, 5000), rng.uniform(0, 255, 3000).astype(np.float32), np.full(50, 10.0),
             np.full(50, 7.3), np.array([-12.5, 3.0, 250.0]), rng.integers(0, 256, 400)]
    with fast_paths():
        for values in cases:
            for kwargs in ({"binWidth": 5}, {"binWidth": 25}, {}, {"binCount": 16}):
                np.testing.assert_array_equal(bin_edges(values, **kwargs), original(values, **kwargs))


def _outcome(fn, *args, **kwargs):
    """What ``fn`` gives: ("ok", value) or ("error", type, message)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 (the exception is the outcome compared)
        return ("error", type(exc).__name__, str(exc))


def test_numpy_mask_checks_give_pyradiomics_boxes_masks_and_errors():
    from radiomics import imageoperations

    from usrad.extract import check_mask, fast_paths, get_mask

    get_original, check_original = imageoperations.getMask, imageoperations.checkMask
    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 255, (40, 50)).astype(np.float32))
    image.SetSpacing((0.1, 0.2))
    image.SetOrigin((3.0, -1.0))
    arrays = {"blob": np.pad(np.ones((6, 9), np.uint8), ((3, 31), (40, 1))), "two labels": None,
              "one pixel": np.zeros((40, 50), np.uint8), "a line": np.zeros((40, 50), np.uint8),
              "51 px": np.zeros((40, 50), np.uint8), "50 px": np.zeros((40, 50), np.uint8),
              "empty": np.zeros((40, 50), np.uint8), "label 2 only": np.zeros((40, 50), np.uint8)}
    arrays["two labels"] = arrays["blob"] * 2
    arrays["two labels"][30:35, 5:12] = 1
    arrays["one pixel"][7, 7] = 1
    arrays["a line"][10, 3:40] = 1
    arrays["51 px"].flat[np.arange(51) * 37] = 1
    arrays["50 px"].flat[np.arange(50) * 37] = 1
    arrays["label 2 only"][5:9, 5:9] = 2
    settings = {"label": 1, "minimumROIDimensions": 2, "minimumROISize": 50}
    for name, arr in arrays.items():
        for dtype in (np.uint8, np.uint16, np.int32):
            mask = sitk.GetImageFromArray(arr.astype(dtype))
            mask.CopyInformation(image)
            with fast_paths():
                ours = _outcome(get_mask, mask, **settings)
            theirs = _outcome(get_original, mask, **settings)
            assert ours[:1] + ours[2:] == theirs[:1] + theirs[2:], name
            if ours[0] == "error":
                continue
            assert ours[1].GetPixelIDTypeAsString() == theirs[1].GetPixelIDTypeAsString()
            np.testing.assert_array_equal(sitk.GetArrayFromImage(ours[1]), sitk.GetArrayFromImage(theirs[1]))
            with fast_paths():
                fast = _outcome(check_mask, image, ours[1], **settings)
            slow = _outcome(check_original, image, theirs[1], **settings)
            assert fast[0] == slow[0], (name, fast, slow)
            if fast[0] == "ok":
                np.testing.assert_array_equal(fast[1][0], slow[1][0])
                assert fast[1][1] is None and slow[1][1] is None
            else:
                assert fast[1:] == slow[1:], name
    shifted = sitk.GetImageFromArray(arrays["blob"].astype(np.uint32))
    shifted.CopyInformation(image)
    shifted.SetOrigin((3.5, -1.0))  # another grid: PyRadiomics' own check (its geometry error)
    with fast_paths():
        fast = _outcome(check_mask, image, shifted, **settings)
    assert fast == _outcome(check_original, image, shifted, **settings) and "geometry mismatch" in fast[2]
