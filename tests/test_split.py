"""The train/test split: patient-grouped, stratified, seeded, reused by subset tasks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from usrad.errors import UsradError
from usrad.models import synthetic_modelling_data
from usrad.split import make_split, read_split, task_split, write_split

TASKS = [
    {"name": "metastasis", "label": "n_positive_nodes >= 1"},
    {"name": "burden", "label": "n_positive_nodes >= 3", "subset": "n_positive_nodes >= 1"},
]


@pytest.fixture(scope="module")
def cohort():
    _, coh = synthetic_modelling_data(n_patients=300, n_features=4, n_informative=1, seed=5,
                                      second_image_fraction=0.4)
    return coh


def test_grouped_split_never_puts_a_patients_images_on_both_sides(cohort):
    sp = make_split(cohort, TASKS, seed=1)
    assert cohort.groupby("patient_id").size().max() == 2  # the cohort does have multi-image patients
    assert sp.groupby("patient_id")["split"].nunique().max() == 1
    test_frac = sp.drop_duplicates("patient_id")["split"].eq("test").mean()
    assert abs(test_frac - 0.25) < 0.01


def test_split_is_stratified_by_the_combined_outcome_of_all_tasks(cohort):
    sp = make_split(cohort, TASKS, seed=1).drop_duplicates("patient_id")
    assert set(sp["stratum"]) == {"0-", "10", "11"}  # N0, N+ 1-2, N+ >=3
    share = pd.crosstab(sp["stratum"], sp["split"], normalize="index")["test"]
    assert (share.sub(0.25).abs() < 0.03).all(), share


def test_burden_subset_inherits_the_metastasis_split(cohort, tmp_path):
    sp = make_split(cohort, TASKS, seed=2)
    write_split(sp, tmp_path / "split.tsv")
    sp = read_split(tmp_path / "split.tsv")
    met = task_split(sp, cohort, TASKS[0]).set_index("image_id")
    bur = task_split(sp, cohort, TASKS[1]).set_index("image_id")
    assert 0 < len(bur) < len(met)
    assert (met.loc[bur.index, "split"] == bur["split"]).all()
    assert set(bur.index) == set(cohort.loc[cohort.n_positive_nodes >= 1, "image_id"])


def test_same_seed_gives_the_same_split_and_another_seed_a_different_one(cohort, tmp_path):
    a, b, c = (make_split(cohort, TASKS, seed=s) for s in (7, 7, 8))
    pd.testing.assert_frame_equal(a, b)
    assert not a["split"].equals(c["split"])
    write_split(a, tmp_path / "a.tsv")
    write_split(b, tmp_path / "b.tsv")
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()


def test_split_by_column_puts_the_external_centre_in_external_only(cohort):
    coh = cohort.copy()
    pids = sorted(coh.patient_id.unique())
    centre = {p: ("B" if i % 4 == 0 else "A") for i, p in enumerate(pids)}
    coh["centre"] = coh.patient_id.map(centre)
    sp = make_split(coh, TASKS, seed=1, by_column="centre", external_values=["B"])
    merged = sp.merge(coh[["image_id", "centre"]], on="image_id")
    assert (merged.loc[merged.centre == "B", "split"] == "external").all()
    assert set(merged.loc[merged.centre == "A", "split"]) == {"train", "test"}
    sp0 = make_split(coh, TASKS, seed=1, test_size=0, by_column="centre", external_values=["B"])
    assert set(sp0.split) == {"train", "external"}


def test_split_by_unknown_column_names_the_column(cohort):
    with pytest.raises(UsradError, match="centre"):
        make_split(cohort, TASKS, seed=1, by_column="centre", external_values=["B"])


def test_split_file_with_a_patient_on_both_sides_is_refused_naming_the_patient(cohort, tmp_path):
    sp = make_split(cohort, TASKS, seed=1)
    two = sp.groupby("patient_id").size()
    pid = two[two == 2].index[0]
    idx = np.flatnonzero(sp.patient_id == pid)
    sp.loc[idx[0], "split"] = "train"
    sp.loc[idx[1], "split"] = "test"
    write_split(sp, tmp_path / "bad.tsv")
    with pytest.raises(UsradError, match=pid):
        read_split(tmp_path / "bad.tsv")
