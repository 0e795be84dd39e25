"""Simulated demo cohort with known ground truth (method: docs/simulation.md).

A latent generative model links tumour biology (aggressiveness ``z``), a three-component image
phenotype (margin irregularity ``m``, internal heterogeneity ``h``, hypo-echogenicity/attenuation ``e``)
and tumour size ``s`` to axillary node status. Preoperative clinical variables are noisy proxies of
these latents; node status is drawn from two logistic stages (N+; then >=3 nodes among N+), and the
ultrasound-reported suspicious node depends on the true node status. The Bayes-optimal ("oracle")
probabilities given all latents are written to ``ground_truth.tsv``.

Images are 2D B-mode made the physical way: random scatterers whose backscatter follows a tissue map
(skin, fat, fibroglandular tissue, muscle, lesion), depth attenuation with time-gain compensation
(so a strongly attenuating lesion casts a soft posterior shadow), convolution with a Gaussian
point-spread function in complex baseband (IQ), two-look spatial compounding, envelope detection and
log compression to 8 bits.
The physical pixel spacing is stored in each NRRD file, so shape features are in mm.
Two simulated devices differ in PSF width, dynamic range and gain; ``device_effect`` scales that difference
(1.0: the demo cohort, byte for byte; 0: identical devices), a known batch effect for testing harmonisation.

Every patient draws from its own ``SeedSequence(seed).spawn`` child: patient ``i`` is the same
whatever ``n_patients`` is, and the same seed gives byte-identical files.

Modules: :mod:`~usrad.simulate.latent` (the latent and clinical model), :mod:`~usrad.simulate.lesion` (lesion
and reader boundaries), :mod:`~usrad.simulate.fields` (random fields), :mod:`~usrad.simulate.render` (the
B-mode image and masks of one patient), :mod:`~usrad.simulate.writer` (the cohort on disk) and
:mod:`~usrad.simulate.figure` (the comparison with BUS-BRA). This package only re-exports their public API.
"""
from __future__ import annotations

from .figure import comparison_figure
from .latent import BIRADS, MODEL, GenerativeModel, draw_latents, oracle_probabilities
from .lesion import lesion_radius, reader_radius
from .render import DEVICE_SETTINGS, DEVICES, device_settings, render_patient
from .writer import (DEFAULT_SEED, GROUND_TRUTH_COLUMNS, MANIFEST_COLUMNS, patient_id, simulate_cohort,
                     simulate_patient)

__all__ = [
    "BIRADS", "DEVICES", "DEVICE_SETTINGS", "DEFAULT_SEED", "device_settings",
    "GenerativeModel", "MODEL", "MANIFEST_COLUMNS", "GROUND_TRUTH_COLUMNS", "draw_latents",
    "oracle_probabilities", "render_patient", "simulate_patient", "simulate_cohort", "comparison_figure",
    "lesion_radius", "reader_radius", "patient_id",
]
