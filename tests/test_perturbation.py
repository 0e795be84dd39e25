"""Mask perturbation: a plausible second segmentation for the ICC filter without a second reader."""
from __future__ import annotations

import numpy as np

from usrad.perturbation import perturb_mask


def test_perturb_mask_erodes_dilates_and_jitters_without_emptying():
    m = np.zeros((40, 40), dtype=np.uint8)
    m[10:30, 12:28] = 1
    rng = np.random.default_rng(0)
    er, di = perturb_mask(m, rng, "erode", radius=2), perturb_mask(m, rng, "dilate", radius=2)
    assert er.sum() < m.sum() < di.sum() and er.dtype == np.uint8
    assert np.all(er <= m) and np.all(m <= di)
    ji = perturb_mask(m, np.random.default_rng(5), "jitter", max_shift=3)
    assert ji.sum() <= m.sum() and not np.array_equal(ji, m)
    tiny = np.zeros((10, 10), dtype=np.uint8)
    tiny[5, 5] = 1
    assert perturb_mask(tiny, rng, "erode").sum() == 1  # would be empty: the input is returned
    a = perturb_mask(m, np.random.default_rng(9))
    b = perturb_mask(m, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
