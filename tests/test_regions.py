"""Peritumoral regions (extraction.regions): ring geometry in mm, clipping to the image and the imaged tissue,
values equal to PyRadiomics on the ring mask, too-small rings as problems, the table's prefixed columns."""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from usrad.config import validate_config
from usrad.errors import UsradError
from usrad.extract import RegionSpec, extract_cohort, feature_table_metadata, region_masks, region_name
from usrad.extract.regions import region_arrays, tissue_mask
from usrad.features import feature_columns, feature_counts, region_feature_name

TINY = """setting:
  binWidth: 5
  label: 1
  minimumROIDimensions: 2
  minimumROISize: 50
  preCrop: false
  correctMask: false
  interpolator: sitkBSpline
  resampledPixelSpacing: null
  sigma: [1.0]
  voxelArrayShift: 0
imageType:
  Original: {}
  LoG: {}
featureClass:
  shape2D: []
  firstorder: []
  glcm: []
"""
SIZE, SPACING = 120, 0.1  # a 12 mm field


def _disk(shape, centre_yx, r_mm, spacing_yx):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    y, x = (yy - centre_yx[0]) * spacing_yx[0], (xx - centre_yx[1]) * spacing_yx[1]
    return x ** 2 + y ** 2 <= r_mm ** 2


def _rings(lesion, spacing_yx, widths, grey=None, **kw):
    grey = np.full(lesion.shape, 100.0) if grey is None else grey
    spec = RegionSpec.from_config({"rings_mm": list(widths), **kw})
    return {r.name: r for r in region_arrays(grey, lesion, spacing_yx, spec)}


def test_region_names_write_the_width_without_a_dot():
    assert [region_name("ring", w) for w in (1, 3.0, 2.5, 0.25)] == ["ring1mm", "ring3mm", "ring2p5mm", "ring0p25mm"]
    assert RegionSpec((3.0, 1.0), lesion_plus_ring=True, tissue_threshold=5).names() == ["ring3mm", "lesionring3mm", "ring1mm",
                                                                    "lesionring1mm"]
    assert RegionSpec.from_config({"rings_mm": [5, 1, 3]}).names() == ["ring1mm", "ring3mm", "ring5mm"]


@pytest.mark.parametrize("r_mm, w_mm, s_mm", [(2.0, 1.0, 0.1), (2.0, 3.0, 0.1), (3.0, 2.0, 0.05)])
def test_ring_of_a_disk_has_the_analytic_annulus_area(r_mm, w_mm, s_mm):
    n = int(2 * (r_mm + w_mm) / s_mm) + 20
    lesion = _disk((n, n), ((n - 1) / 2, (n - 1) / 2), r_mm, (s_mm, s_mm))
    ring = _rings(lesion, (s_mm, s_mm), [w_mm])[region_name("ring", w_mm)]
    annulus = math.pi * ((r_mm + w_mm) ** 2 - r_mm ** 2) / s_mm ** 2
    assert ring.n_pixels == pytest.approx(annulus, rel=0.03)
    assert ring.clipped_fraction == 0.0 and not (ring.pixels & lesion).any()


def test_anisotropic_spacing_gives_a_physical_ring_not_a_pixel_ring():
    spacing = (0.2, 0.1)  # rows 0.2 mm, columns 0.1 mm
    lesion = _disk((80, 160), (39.5, 79.5), 2.0, spacing)  # a 2 mm disk in mm: an ellipse in pixels
    ring = _rings(lesion, spacing, [2.0])["ring2mm"]
    assert ring.n_pixels == pytest.approx(math.pi * (4.0 ** 2 - 2.0 ** 2) / (0.2 * 0.1), rel=0.03)
    rows, cols = np.nonzero(ring.pixels)
    assert (cols.max() - cols.min() + 1) * 0.1 == pytest.approx(8.0, abs=0.25)  # 2 x (2 + 2) mm across
    assert (rows.max() - rows.min() + 1) * 0.2 == pytest.approx(8.0, abs=0.45)


def test_a_ring_leaving_the_image_is_clipped_and_its_clipped_fraction_measured():
    big = _disk((200, 200), (100, 100), 2.0, (SPACING, SPACING))
    full = _rings(big, (SPACING, SPACING), [3.0])["ring3mm"]
    crop = (slice(70, 200), slice(100 - 30, 200))  # cut 3 mm above and left of the lesion
    lesion = big[crop]
    clipped = _rings(lesion, (SPACING, SPACING), [3.0])["ring3mm"]
    np.testing.assert_array_equal(clipped.pixels, full.pixels[crop])
    assert clipped.n_pixels < full.n_pixels
    assert clipped.clipped_fraction == pytest.approx(1 - clipped.n_pixels / full.n_pixels, abs=1e-6)
    assert 0.2 < clipped.clipped_fraction < 0.45  # the top and the left of the ring are cut


def test_a_ring_does_not_enter_the_black_background_but_dark_speckle_in_tissue_is_kept():
    rng = np.random.default_rng(0)
    grey = np.clip(rng.normal(80, 30, size=(SIZE, SIZE)), 1, 255)
    grey[rng.random(grey.shape) < 0.02] = 0  # isolated black speckle inside the tissue
    grey[:, :40] = 0  # the black outside the sector: columns 0-39
    lesion = _disk(grey.shape, (60, 60), 1.5, (SPACING, SPACING))  # 15 px from column 45 to 75
    tissue = tissue_mask(grey, lesion, 5)
    assert not tissue[:, :40].any() and tissue[:, 40 + 3:].all()  # speckle at the sector edge may join the black
    assert tissue[:, 40:].mean() > 0.99
    ring = _rings(lesion, (SPACING, SPACING), [3.0], grey=grey)["ring3mm"]
    unclipped = _rings(lesion, (SPACING, SPACING), [3.0])["ring3mm"]
    np.testing.assert_array_equal(ring.pixels, unclipped.pixels & tissue)
    assert not ring.pixels[:, :40].any() and ring.pixels[:, 43:].sum() == unclipped.pixels[:, 43:].sum()
    assert ring.clipped_fraction == pytest.approx(1 - (unclipped.pixels & tissue).sum() / unclipped.n_pixels, abs=1e-6)
    assert ring.clipped_fraction == pytest.approx(unclipped.pixels[:, :40].sum() / unclipped.n_pixels, abs=0.01)


def test_lesion_plus_ring_is_the_union_of_the_lesion_and_its_ring():
    lesion = _disk((SIZE, SIZE), (60, 60), 2.0, (SPACING, SPACING))
    regions = _rings(lesion, (SPACING, SPACING), [1.0], lesion_plus_ring=True)
    np.testing.assert_array_equal(regions["lesionring1mm"].pixels, regions["ring1mm"].pixels | lesion)


# ------------------------------------------------------------------------------------------ through extract_cohort
def _write(arr, path, dtype):
    img = sitk.GetImageFromArray(arr.astype(dtype))
    img.SetSpacing((SPACING, SPACING))
    sitk.WriteImage(img, str(path))
    return str(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny params file and three noise images with a disk (r1) and a shifted disk (r2; none for P3)."""
    folder = tmp_path_factory.mktemp("regions")
    params = folder / "tiny.yaml"
    params.write_text(TINY)
    rows = []
    for i, pid in enumerate(["P1", "P2", "P3"]):
        arr = np.clip(np.round(np.random.default_rng(i).normal(90, 25, size=(SIZE, SIZE))), 1, 255)
        r1 = _disk(arr.shape, (60, 60), 2.0, (SPACING, SPACING))
        r2 = _disk(arr.shape, (62, 58), 2.1, (SPACING, SPACING))
        image = _write(arr, folder / f"{pid}.nrrd", np.float32)
        rows.append({"patient_id": pid, "image_id": f"{pid}-a", "image": image,
                     "mask": _write(r1, folder / f"{pid}_r1.nrrd", np.uint8),
                     "mask_reader2": "" if pid == "P3" else _write(r2, folder / f"{pid}_r2.nrrd", np.uint8),
                     "pixel_spacing_mm": float("nan")})
    return params, pd.DataFrame(rows)


REGIONS = {"rings_mm": [1, 3], "lesion_plus_ring": True, "tissue_threshold": 5}
PERTURB = {"n": 1, "radius_px": 2, "seed": 0}


@pytest.fixture(scope="module")
def ring_table(setup):
    params, cohort = setup
    return extract_cohort(cohort, params, progress=False, log=io.StringIO(), perturbation=PERTURB, regions=REGIONS)


def test_a_table_with_regions_has_prefixed_columns_for_every_reader(setup, ring_table):
    params, cohort = setup
    plain = extract_cohort(cohort, params, progress=False, log=io.StringIO(), perturbation=PERTURB)
    lesion = feature_columns(plain)
    regions = ["ring1mm", "lesionring1mm", "ring3mm", "lesionring3mm"]
    # a region's default image types: Original; no shape (a ring's outline is the lesion's, grown)
    original = [n for n in lesion if n.startswith("original_") and "_shape2D_" not in n]
    assert 0 < len(original) < len(lesion)
    assert feature_columns(ring_table) == lesion + [region_feature_name(r, n) for r in regions for n in original]
    assert sorted(ring_table["reader"]) == sorted(plain["reader"]) == ["p1"] * 3 + ["r1"] * 3 + ["r2"] * 2
    assert ring_table[feature_columns(ring_table)].notna().all().all()
    pd.testing.assert_frame_equal(ring_table[plain.columns], plain, check_exact=True)  # the lesion unchanged
    assert feature_counts(feature_columns(ring_table))["by_region"] == {"lesion": len(lesion),
                                                                        **{r: len(original) for r in regions}}
    # the rings differ per reader: the ICC filter sees each region's agreement across readers
    r1, r2 = (ring_table[ring_table["reader"] == r].set_index("image_id") for r in ("r1", "r2"))
    col = "ring3mm__original_firstorder_Mean"
    assert (r1.loc[["P1-a", "P2-a"], col] != r2.loc[["P1-a", "P2-a"], col]).all()
    assert not any("shape2D" in c for c in feature_columns(ring_table) if "__" in c)
    meta = feature_table_metadata(params, regions=REGIONS)
    assert meta["regions"]["regions"] == regions and meta["regions"]["rings_mm"] == [1.0, 3.0]


def test_ring_features_equal_pyradiomics_execute_on_the_ring_mask(setup, ring_table):
    from radiomics import featureextractor

    params, cohort = setup
    rec = cohort.iloc[1]
    image = sitk.ReadImage(rec["image"])
    mask = sitk.ReadImage(rec["mask_reader2"])
    masks = region_masks(image, mask, RegionSpec.from_config(REGIONS))
    ref = featureextractor.RadiomicsFeatureExtractor(str(params)).execute(image, masks["ring3mm"][0])
    ref = {k: float(v) for k, v in ref.items() if not k.startswith("diagnostics_")}
    row = ring_table[(ring_table["image_id"] == rec["image_id"]) & (ring_table["reader"] == "r2")].iloc[0]
    ref = {k: v for k, v in ref.items() if k.startswith("original_") and "_shape2D_" not in k}  # the defaults
    ours = [row[region_feature_name("ring3mm", k)] for k in ref]
    np.testing.assert_allclose(ours, list(ref.values()), rtol=1e-12, atol=0)


def test_a_region_gets_every_listed_image_type_with_values_of_execute(setup):
    from radiomics import featureextractor

    params, cohort = setup
    one = cohort.iloc[1:2]
    spec = {"rings_mm": [3], "image_types": ["LoG", "Original"]}
    table = extract_cohort(one, params, progress=False, log=io.StringIO(), regions=spec)
    rec = one.iloc[0]
    image, mask = sitk.ReadImage(rec["image"]), sitk.ReadImage(rec["mask"])
    ring = region_masks(image, mask, RegionSpec.from_config(spec))["ring3mm"][0]
    ref = featureextractor.RadiomicsFeatureExtractor(str(params)).execute(image, ring)
    ref = {k: float(v) for k, v in ref.items() if not k.startswith("diagnostics_") and "_shape2D_" not in k}
    assert any(k.startswith("log-sigma") for k in ref)
    row = table[table["reader"] == "r1"].iloc[0]
    assert [c for c in feature_columns(table) if c.startswith("ring3mm__")] == [f"ring3mm__{k}" for k in ref]
    np.testing.assert_allclose([row[f"ring3mm__{k}"] for k in ref], list(ref.values()), rtol=1e-12, atol=0)
    assert feature_table_metadata(params, regions=spec)["regions"]["image_types"] == ["LoG", "Original"]


def test_region_image_types_not_in_the_params_are_refused_before_extraction(setup):
    params, cohort = setup  # the tiny params enable Original and LoG
    with pytest.raises(UsradError) as err:
        extract_cohort(cohort, params, progress=False, log=io.StringIO(),
                       regions={"rings_mm": [3], "image_types": ["Original", "Wavelet", "Square"]})
    problems = err.value.problems
    assert [p.file for p in problems] == [str(params)] * 2
    assert all("extraction.regions.image_types" in p.message and "Original, LoG" in p.message for p in problems)
    assert ["'Square'" in problems[0].message, "'Wavelet'" in problems[1].message] == [True, True]


def test_regions_off_gives_the_columns_and_metadata_of_today(setup):
    params, cohort = setup
    base = extract_cohort(cohort.iloc[:1], params, progress=False, log=io.StringIO())
    for off in (None, {}, {"rings_mm": [], "lesion_plus_ring": True}):
        again = extract_cohort(cohort.iloc[:1], params, progress=False, log=io.StringIO(), regions=off)
        pd.testing.assert_frame_equal(again, base, check_exact=True)
        assert "regions" not in feature_table_metadata(params, regions=off)
    assert not any("__" in c for c in base.columns)


def test_a_too_small_ring_is_a_problem_naming_patient_column_and_file(setup, tmp_path):
    params, cohort = setup
    bad = cohort.iloc[:2].copy()
    grey = np.zeros((SIZE, SIZE))
    grey[50:71, 50:71] = 100  # a 2.1 mm square of tissue in black background
    lesion = _disk(grey.shape, (60, 60), 0.5, (SPACING, SPACING))
    bad["image"] = [_write(grey, tmp_path / f"black{i}.nrrd", np.float32) for i in range(2)]
    bad["mask"] = [_write(lesion, tmp_path / f"small{i}.nrrd", np.uint8) for i in range(2)]
    bad["mask_reader2"] = ""
    with pytest.raises(UsradError) as err:
        extract_cohort(bad, params, progress=False, log=io.StringIO(), regions={"rings_mm": [0.1, 3]})
    problems = err.value.problems  # all at once: one per patient (ring3mm, clipped to the tissue, is allowed)
    assert [(p.patient, p.column, p.file) for p in problems] == [("P1", "mask", bad["mask"].iloc[0]),
                                                                 ("P2", "mask", bad["mask"].iloc[1])]
    assert all("ring0p1mm" in p.message and "minimumROISize 50" in p.message for p in problems)
    assert "ring3mm" not in " ".join(p.message for p in problems)


def test_the_region_settings_are_checked_by_the_schema():
    cfg = validate_config({}, source="t")
    assert cfg["extraction"]["regions"] == {"rings_mm": [], "lesion_plus_ring": False, "tissue_threshold": 5,
                                            "image_types": ["Original"]}
    for bad in ({"rings_mm": [0]}, {"rings_mm": [-1]}, {"rings_mm": [1, 1]}, {"rings_mm": ["3"]},
                {"ring_mm": [1]}, {"image_types": []}, {"image_types": ["original"]},
                {"image_types": ["Original", "Original"]}, {"image_types": "Original"}):
        with pytest.raises(UsradError) as err:
            validate_config({"extraction": {"regions": bad}}, source="t")
        assert "extraction.regions" in str(err.value)


def test_ring_features_are_cached_per_region_and_tissue_rule(setup, tmp_path):
    params, cohort = setup
    one = cohort.iloc[:1]  # r1 and r2: 2 masks x (lesion + 2 rings)
    regions = {"rings_mm": [1, 3]}

    def run(spec):
        log = io.StringIO()
        df = extract_cohort(one, params, cache_dir=tmp_path, progress=False, log=log, regions=spec)
        return df, df.attrs["extraction"]

    first, s1 = run(regions)
    again, s2 = run(regions)
    assert (s1["extracted"], s1["cached"], s2["extracted"], s2["cached"]) == (6, 0, 0, 6)
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    _, s3 = run({**regions, "tissue_threshold": 9})  # another tissue rule: the rings again, not the lesion
    _, s4 = run({"rings_mm": [1, 3, 5]})  # a new width: only its ring
    assert (s3["extracted"], s3["cached"], s4["extracted"], s4["cached"]) == (4, 2, 2, 6)
    _, s5 = run({**regions, "image_types": ["Original", "LoG"]})  # other image types: the rings again
    assert (s5["extracted"], s5["cached"]) == (4, 2)


def test_the_qc_flags_give_the_largest_clipped_fraction_of_reader_1s_rings(setup, ring_table, tmp_path):
    from usrad.reporting.qc_flags import COLUMNS, qc_flags

    _, cohort = setup
    cohort = cohort.copy()
    arr = sitk.GetArrayFromImage(sitk.ReadImage(cohort.loc[0, "image"]))
    arr[:, :25] = 0  # the black outside the sector: the 3 mm ring around the 2 mm disk reaches column 10
    cohort.loc[0, "image"] = _write(arr, tmp_path / "sector.nrrd", np.float32)
    flags = qc_flags(cohort, ring_table, regions=feature_table_metadata(setup[0], regions=REGIONS)["regions"])
    assert list(flags.columns) == COLUMNS + ["ring_clipped"]
    clipped = flags.set_index("patient_id")["ring_clipped"]
    lesion = _disk((SIZE, SIZE), (60, 60), 2.0, (SPACING, SPACING))
    ring = _rings(lesion, (SPACING, SPACING), [3.0])["ring3mm"]
    assert clipped["P1"] == pytest.approx(ring.pixels[:, :25].sum() / ring.n_pixels, abs=0.01)
    assert clipped["P1"] > 0.05 and clipped["P2"] == clipped["P3"] == 0.0
    assert list(qc_flags(cohort, ring_table).columns) == COLUMNS  # no regions: no column, the bytes of today


def test_shards_with_regions_record_the_settings_and_merge_to_the_cohort_table(setup, ring_table, tmp_path):
    from usrad.extract import assign_shards, extract_shard
    from usrad.features import merge_feature_tables, read_feature_table

    params, cohort = setup
    cohort_path = tmp_path / "cohort.tsv"
    cohort.to_csv(cohort_path, sep="\t", index=False)
    n = 4
    used = sorted(set(assign_shards(cohort["patient_id"], n).values()))
    empty = next(s for s in range(n) if s not in used)
    paths = [tmp_path / f"shard{s}.parquet" for s in used + [empty]]
    for s, out in zip(used + [empty], paths):
        extract_shard(cohort_path, params, s, n, out, log=io.StringIO(), perturbation=PERTURB, regions=REGIONS)
    empty_df, empty_meta = read_feature_table(paths[-1])
    assert list(empty_df.columns) == list(ring_table.columns)  # an empty shard has the ring columns too
    merged = merge_feature_tables(paths, tmp_path / "features.parquet")
    back, meta = read_feature_table(tmp_path / "features.parquet")
    assert meta["regions"] == empty_meta["regions"] == {
        "rings_mm": [1.0, 3.0], "lesion_plus_ring": True, "tissue_threshold": 5, "image_types": ["Original"],
        "opening_px": 2, "format": 2,
        "regions": ["ring1mm", "lesionring1mm", "ring3mm", "lesionring3mm"]}
    lesion = meta["feature_counts"]["by_region"]["lesion"]
    assert meta["feature_counts"]["by_region"]["ring3mm"] == (len(feature_columns(ring_table)) - lesion) // 4
    assert len(merged) == 8
    pd.testing.assert_frame_equal(back, ring_table, check_exact=True)


def test_the_cohort_validation_refuses_region_image_types_the_params_do_not_enable(tmp_path):
    from usrad.manifest.images import roi_limits

    params = tmp_path / "p.yaml"
    params.write_text(TINY)  # Original and LoG
    bare = tmp_path / "bare.yaml"
    bare.write_text(TINY.split("imageType:")[0] + "featureClass:\n  firstorder: []\n")  # no imageType: Original only

    def problems(path, regions):
        return roi_limits({"radiomics_params": str(path), "extraction": {"regions": regions}})[1]

    found = problems(params, {"rings_mm": [3], "image_types": ["Wavelet", "LoG"]})
    assert [(p.file, "'Wavelet'" in p.message, "extraction.regions.image_types" in p.message) for p in found] == [
        (str(params), True, True)]
    assert problems(params, {"rings_mm": [], "image_types": ["Wavelet"]}) == []  # no rings: nothing to extract
    assert [("'LoG'" in p.message, "imageType: Original)" in p.message)
            for p in problems(bare, {"rings_mm": [1], "image_types": ["LoG"]})] == [(True, True)]
    assert problems(bare, {"rings_mm": [1]}) == []


def test_without_shared_filters_a_region_gets_the_same_columns_through_execute(setup, tmp_path):
    params, cohort = setup
    crop = tmp_path / "crop.yaml"
    crop.write_text(TINY.replace("preCrop: false", "preCrop: true"))  # filtered images depend on the mask: execute()
    from usrad.extract import get_extractor

    assert get_extractor(crop).sharing_blockers() == ["preCrop"]
    spec = {"rings_mm": [3], "image_types": ["LoG"]}
    shared = extract_cohort(cohort.iloc[:1], params, progress=False, log=io.StringIO(), regions=spec)
    per_mask = extract_cohort(cohort.iloc[:1], crop, progress=False, log=io.StringIO(), regions=spec)
    ring = [c for c in feature_columns(shared) if c.startswith("ring3mm__")]
    assert ring and all(c.startswith("ring3mm__log-sigma") and "shape2D" not in c for c in ring)
    assert list(per_mask.columns) == list(shared.columns)
    assert per_mask[ring].notna().all().all()


def test_a_region_needs_more_pixels_than_minimum_roi_size_as_pyradiomics_does():
    from usrad.extract.regions import RegionMask, size_problem

    def region(n):
        return RegionMask("ring3mm", np.zeros((2, 2), bool), n, 0.25)

    assert size_problem(region(51), "r1", 50) is None
    assert "50 pixels" in size_problem(region(50), "r1", 50)  # PyRadiomics refuses size <= minimumROISize
    assert "more than the minimumROISize 50" in size_problem(region(50), "r1", 50)
    assert size_problem(region(1), "r2", None) is None
    assert "at least one pixel" in size_problem(region(0), "r2", None)
