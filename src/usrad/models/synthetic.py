"""Synthetic modelling data with a known signal (tests, docs, benchmarks): a long feature table and a cohort table."""
from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic_modelling_data(n_patients: int = 200, n_features: int = 40, n_informative: int = 5,
                             signal: float = 2.0, seed: int = 0, second_image_fraction: float = 0.2,
                             reader2_noise: float = 0.15, copy_reader: str = "r2", feature_noise: float = 1.0):
    """Feature table (long: patient_id, image_id, reader, features) and cohort table with a known signal.

    A latent ``z`` per patient drives metastasis (``P = sigmoid(signal·z − 0.6)``) and the burden among N+.
    Features ``inf_0..`` = z + ``feature_noise``·N(0,1); ``noise_*`` = pure noise; ``inf_irreproducible`` is informative in
    reader 1 but independent noise in the copy reader (ICC ≈ 0); ``noise_reproducible`` is noise with a
    faithful copy. Every other copy = reader 1 + ``reader2_noise``·SD noise. Clinical: ``age``,
    ``us_size_mm`` (weakly related), ``us_node_suspicious`` (related), ``birads``, ``grade``.
    """
    rng = np.random.default_rng(seed)
    pids = [f"P{i:04d}" for i in range(n_patients)]
    z = rng.normal(size=n_patients)
    p_met = 1 / (1 + np.exp(-(signal * z - 0.6)))
    met = rng.random(n_patients) < p_met
    nodes = np.where(met, 1 + rng.poisson(np.exp(0.8 * z + 0.3)), 0)
    cohort_rows, feat_rows = [], []
    names = ([f"inf_{k}" for k in range(n_informative)] + ["inf_irreproducible", "noise_reproducible"]
             + [f"noise_{k}" for k in range(n_features - n_informative - 2)])
    for i, pid in enumerate(pids):
        n_img = 2 if rng.random() < second_image_fraction else 1
        clin = dict(age=float(np.round(rng.normal(52, 10), 1)),
                    us_size_mm=float(np.round(np.exp(rng.normal(3.0 + 0.15 * z[i], 0.4)), 1)),
                    us_node_suspicious=int(rng.random() < (0.6 if met[i] else 0.2)),
                    birads=str(rng.choice(["4a", "4b", "4c", "5"])), grade=int(rng.integers(1, 4)))
        for j in range(n_img):
            iid = f"{pid}_{j}"
            cohort_rows.append(dict(patient_id=pid, image_id=iid, **clin, n_positive_nodes=int(nodes[i])))
            base = np.concatenate([z[i] + rng.normal(scale=feature_noise, size=n_informative + 1),
                                   rng.normal(size=len(names) - n_informative - 1)])
            base = base * 10 + 50  # radiomics-like scale
            copy_ = base + rng.normal(scale=reader2_noise * 10, size=len(names))
            copy_[n_informative] = rng.normal(loc=50, scale=14)  # irreproducible
            feat_rows.append(dict(patient_id=pid, image_id=iid, reader="r1", **dict(zip(names, base))))
            feat_rows.append(dict(patient_id=pid, image_id=iid, reader=copy_reader, **dict(zip(names, copy_))))
    features = pd.DataFrame(feat_rows).sort_values(["patient_id", "image_id", "reader"]).reset_index(drop=True)
    cohort = pd.DataFrame(cohort_rows)
    return features, cohort
