"""The QC gallery: each flag fires exactly on the images broken for it, flagged images come first, the pages exist
with the right count and size and the same input gives the same bytes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from usrad.reporting import qc_gallery
from usrad.reporting.qc_flags import DICE_MIN, qc_flags
from usrad.reporting.sources import Sources
from usrad.reporting.summary_methods import SummaryContext, qc_lines
from usrad.tables import read_table

N = 10
SIZE = 120
BORDER, DISCORDANT, DUPLICATE_OF, DUPLICATE, OUTLIER = "P03", "P05", "P02", "P07", "P09"


def _disc(cy, cx, r):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def _write(arr, path):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.1, 0.1))
    sitk.WriteImage(img, str(path))
    return str(path)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Ten noise images with centred disc masks (reader 2 slightly smaller), then broken: P03's masks touch the top
    border, P05's reader-2 mask shrunk to a third, P07 a copy of P02's pixels."""
    root = tmp_path_factory.mktemp("qc_cohort")
    rng = np.random.default_rng(7)
    rows = []
    images = {}
    for k in range(1, N + 1):
        pid = f"P{k:02d}"
        images[pid] = rng.integers(20, 230, size=(SIZE, SIZE)).astype(np.uint8)
        if pid == DUPLICATE:
            images[pid] = images[DUPLICATE_OF].copy()
        centre = (18, 60) if pid == BORDER else (60, 60)
        r2 = 7 if pid == DISCORDANT else 19
        rows.append({"patient_id": pid, "image_id": pid, "image": _write(images[pid], root / f"{pid}.nrrd"),
                     "mask": _write(_disc(*centre, 20), root / f"{pid}_r1.nrrd"),
                     "mask_reader2": _write(_disc(*centre, r2), root / f"{pid}_r2.nrrd"), "pixel_spacing_mm": np.nan})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def features(cohort):
    """40 normal reader-1 features per image (reader 2 = reader 1 + small noise); P09's first 30 far out."""
    rng = np.random.default_rng(11)
    cols = [f"original_firstorder_F{j:02d}" for j in range(40)]
    r1 = rng.normal(size=(N, len(cols)))
    r1[cohort["image_id"].tolist().index(OUTLIER), :30] += 50
    r2 = r1 + rng.normal(scale=0.01, size=r1.shape)
    frames = [pd.DataFrame(v, columns=cols).assign(patient_id=cohort["patient_id"], image_id=cohort["image_id"],
                                                   reader=reader) for reader, v in (("r1", r1), ("r2", r2))]
    return pd.concat(frames, ignore_index=True)[["patient_id", "image_id", "reader", *cols]]


def test_each_flag_fires_exactly_on_the_images_broken_for_it(cohort, features):
    flags = qc_flags(cohort, features).set_index("image_id")
    fired = {name: set(flags.index[flags[f"flag_{name}"] == 1]) for name in ("border", "discordant", "outlier",
                                                                              "duplicate")}
    assert fired == {"border": {BORDER}, "discordant": {DISCORDANT}, "outlier": {OUTLIER},
                     "duplicate": {DUPLICATE, DUPLICATE_OF}}
    assert flags.loc[BORDER, ["border_r1", "border_r2"]].tolist() == [1, 1]
    assert flags.loc[DISCORDANT, "dice"] == pytest.approx(2 * 7**2 / (20**2 + 7**2), abs=0.03)
    assert flags.drop(DISCORDANT)["dice"].min() > DICE_MIN
    # ten normal draws: a stray |z| > 5 happens (one of 40 here); the flag needs 5 % of the features, two
    assert flags.loc[OUTLIER, "n_outlier_features"] == 30 and flags["n_outlier_features"].drop(OUTLIER).max() <= 1
    assert flags.loc[DUPLICATE, "duplicate_of"] == DUPLICATE_OF and flags.loc[DUPLICATE_OF, "duplicate_of"] == DUPLICATE
    assert flags["flagged"].sum() == 5 and (flags.drop([BORDER, DISCORDANT, OUTLIER, DUPLICATE, DUPLICATE_OF])
                                            ["n_flags"] == 0).all()


def test_flagged_images_come_first_then_the_rest_by_patient(cohort, features):
    order = qc_flags(cohort, features)["image_id"].tolist()
    assert set(order[:5]) == {BORDER, DISCORDANT, OUTLIER, DUPLICATE, DUPLICATE_OF}
    assert order[:2] == [DUPLICATE_OF, BORDER]  # ties (one flag each) by patient id
    assert order[5:] == ["P01", "P04", "P06", "P08", "P10"]


def test_without_a_second_reader_nothing_is_discordant(cohort, features):
    flags = qc_flags(cohort.assign(mask_reader2=""), features[features["reader"] == "r1"])
    assert flags["dice"].isna().all() and flags["flag_discordant"].sum() == 0
    assert flags["reader_feature_outliers"].isna().all()


def _gallery(cohort, features, out):
    qc_gallery.write_qc_gallery(cohort, features, out / "qc_flags.tsv", out / "gallery")
    return sorted(p.name for p in (out / "gallery").iterdir())


def test_pages_have_the_right_count_size_and_the_same_bytes_twice(cohort, features, tmp_path, monkeypatch):
    monkeypatch.setattr(qc_gallery, "PER_PAGE", 4)
    a, b = tmp_path / "a" / "results" / "report" / "qc", tmp_path / "b"
    (a / "gallery").mkdir(parents=True)
    (a / "gallery" / "gallery_09.png").write_bytes(b"stale")
    names = _gallery(cohort, features, a)
    assert names == [f"gallery_{k:02d}.{ext}" for k in (1, 2, 3) for ext in ("pdf", "png")]
    for k in (1, 2, 3):
        with Image.open(a / "gallery" / f"gallery_{k:02d}.png") as im:
            assert im.size == (1080, 1529)  # 183 x 259 mm at 150 dpi
    table = read_table(a / "qc_flags.tsv", text=("patient_id", "image_id", "duplicate_of"))
    assert table["page"].tolist() == [1] * 4 + [2] * 4 + [3] * 2
    assert table["flagged"].tolist()[:5] == [1] * 5
    assert _gallery(cohort, features, b) == names
    for name in names + ["../qc_flags.tsv"]:
        assert (a / "gallery" / name).read_bytes() == (b / "gallery" / name).read_bytes()
    # the summary's sentence, its numbers read from the flags table
    c = SummaryContext(root=tmp_path / "a", results="results", sources=Sources(tmp_path / "a"), demo=True,
                       radiomics_only=False, feat="", counts="", settings="")
    text = " ".join(qc_lines(c))
    assert "5 of 10 images were flagged" in text and "results/report/qc/gallery/" in text
    assert c.sources.table()["text"].tolist() == ["5", "10"]
    assert qc_lines(SummaryContext(root=tmp_path / "b", results="results", sources=Sources(tmp_path / "b"),
                                   demo=True, radiomics_only=False, feat="", counts="", settings="")) == []


def test_a_written_page_is_freed_before_the_next_is_drawn(cohort, features, tmp_path, monkeypatch):
    """A page's artists hold reference cycles; were a page left to the cyclic collector, 90 pages (2,684 patients)
    piled up to 1.1 GiB. With the collector off, every page but the one being saved must already be gone."""
    import gc
    import weakref

    monkeypatch.setattr(qc_gallery, "PER_PAGE", 3)
    pages, alive_at_save = [], []
    save = qc_gallery.save_figure

    def watched(fig, stem, dpi):
        alive_at_save.append(sum(ref() is not None for ref in pages))
        pages.append(weakref.ref(fig))
        return save(fig, stem, dpi=dpi)

    monkeypatch.setattr(qc_gallery, "save_figure", watched)
    gc.disable()
    try:
        qc_gallery.write_qc_gallery(cohort, features, tmp_path / "qc_flags.tsv", tmp_path / "gallery")
        assert len(pages) == 4 and alive_at_save == [0, 0, 0, 0]
        assert all(ref() is None for ref in pages)
    finally:
        gc.enable()
