"""The latent generative model of the simulated cohort: tumour biology, image phenotype, clinical variables, nodes.

Aggressiveness ``z`` loads on a three-component image phenotype (margin irregularity ``m``, internal
heterogeneity ``h``, hypo-echogenicity/attenuation ``e``) and on tumour size ``s``; the preoperative clinical
variables are noisy proxies of these latents, node status is drawn from two logistic stages (N+; then >=3 nodes
among N+) and the ultrasound-reported suspicious node depends on the true node status. Optionally
(``peritumoral`` > 0) a peritumoral-reaction latent ``p`` (loading ``rho_peritumoral`` on ``z``) adds
``peritumoral * p`` to the N+ logit and shows in the tissue around the lesion only.
:func:`oracle_probabilities` gives the Bayes-optimal probabilities given all latents.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from .fields import side_generator

BIRADS = np.array(["3", "4a", "4b", "4c", "5"])


@dataclass(frozen=True)
class GenerativeModel:
    """Parameters of the latent model (calibrated numerically, see docs/simulation.md)."""

    # loadings of the phenotypes and of log-size on aggressiveness z (all latents are N(0,1))
    rho_margin: float = 0.25
    rho_heterogeneity: float = 0.25
    rho_echo: float = 0.25
    rho_size: float = 0.35
    rho_clinical: float = 0.5      # loading of Ki-67, grade latents on z
    rho_subtype: float = 0.5
    # size: size_mm = size_median * exp(size_sigma * s), s clipped to [s_min, s_max]
    size_median_mm: float = 21.0
    size_sigma: float = 0.37
    s_min: float = -3.3
    s_max: float = 2.6
    # BI-RADS: the radiologist's read of the image phenotype, reliability birads_rel
    birads_w: tuple = (0.6, 0.4, 0.3)   # weights on (m, e, s)
    birads_rel: float = 0.06
    birads_cum: tuple = (0.03, 0.13, 0.30, 0.60)
    # N+ stage: eta_met = a0 + A * (w . (m, h, e, s))
    a0: float = -1.02
    A: float = 3.2
    w_met: tuple = (0.6, 0.3, 0.45, 0.15)
    # burden stage among N+: eta_bur = g0 + B * (v . (m, h, e, s))
    g0: float = -2.12
    B: float = 3.4
    w_bur: tuple = (0.25, 0.7, 0.2, 0.3)
    # P(US-suspicious node | N0, N+ 1-2, N+ >=3)
    p_susp: tuple = (0.10, 0.25, 0.40)
    # peritumoral reaction (echogenic rim and architectural distortion around the lesion, render.py): its weight on
    # the N+ logit; 0 = off (the latent is not even drawn, so the default cohort is unchanged)
    peritumoral: float = 0.0
    rho_peritumoral: float = 0.3


MODEL = GenerativeModel()


def draw_latents(rng: np.random.Generator, n: int, model: GenerativeModel = MODEL) -> pd.DataFrame:
    """Draw ``n`` patients' latents, clinical variables and node counts from the generative model.

    Vectorised so that calibration can use large ``n``; the cohort calls it with ``n=1`` per patient.
    """
    z = rng.standard_normal(n)

    def comp(r):
        return r * z + np.sqrt(1.0 - r * r) * rng.standard_normal(n)

    m, h, e = comp(model.rho_margin), comp(model.rho_heterogeneity), comp(model.rho_echo)
    s = np.clip(comp(model.rho_size), model.s_min, model.s_max)
    size_mm = model.size_median_mm * np.exp(model.size_sigma * s)
    # from a side generator (no draw from rng): on or off, every other latent of a patient is the same
    side = side_generator(rng, 0)
    p = (model.rho_peritumoral * z + np.sqrt(1 - model.rho_peritumoral ** 2) * side.standard_normal(n)
         if model.peritumoral else np.zeros(n))

    ki67 = np.clip(np.round(expit(-0.95 + 0.9 * comp(model.rho_clinical)), 2), 0.01, 0.95)
    g = comp(model.rho_clinical)
    grade = 1 + (g > norm.ppf(0.04)).astype(int) + (g > norm.ppf(0.60)).astype(int)
    t = comp(model.rho_subtype)
    u_sub = rng.random(n)
    subtype = np.where(t < norm.ppf(0.27), "LumA", np.where(t < norm.ppf(0.62), "LumB",
                       np.where(u_sub < 26 / 38, "HER2", "TN")))
    # receptor status given subtype (matches ER 78.5%, PR 74.7%, HER2 26.2% overall)
    u_er, u_pr = rng.random(n), rng.random(n)
    er = np.select([subtype == "LumA", subtype == "LumB", subtype == "HER2"], [1, 1, (u_er < 0.635).astype(int)], 0)
    pr = np.select([subtype == "LumA", subtype == "LumB", subtype == "HER2"],
                   [1, (u_pr < 0.92).astype(int), (u_pr < 0.60).astype(int)], 0)
    her2 = (subtype == "HER2").astype(int)
    u_hist = rng.random(n)
    histology = np.where(u_hist < 0.905, "IDC", np.where(u_hist < 0.977, "other", "ILC"))
    age = np.clip(np.round(57.6 - 2.0 * z + 12.3 * rng.standard_normal(n)), 22, 90).astype(int)

    wm, we, ws = model.birads_w
    read = wm * m + we * e + ws * s
    read = read / _birads_read_sd(model)
    b = np.sqrt(model.birads_rel) * read + np.sqrt(1 - model.birads_rel) * rng.standard_normal(n)
    birads = BIRADS[np.searchsorted(norm.ppf(model.birads_cum), b)]

    X = np.column_stack([m, h, e, s])
    eta_met = model.a0 + model.A * X @ np.asarray(model.w_met) + model.peritumoral * p
    eta_bur = model.g0 + model.B * X @ np.asarray(model.w_bur)
    pos = rng.random(n) < expit(eta_met)
    high = pos & (rng.random(n) < expit(eta_bur))
    p0, p1, p2 = model.p_susp
    susp = (rng.random(n) < np.where(~pos, p0, np.where(high, p2, p1))).astype(int)
    n_low = 1 + (rng.random(n) < 0.4)
    n_high = np.minimum(3 + rng.geometric(0.22, n) - 1, 25)
    nodes = np.where(~pos, 0, np.where(high, n_high, n_low))
    p_met, p_bur = oracle_probabilities(eta_met, eta_bur, susp, model)
    return pd.DataFrame({
        "z_aggressiveness": z, "margin_irregularity": m, "heterogeneity": h, "echogenicity_loss": e,
        "size_latent": s, "size_mm": size_mm, "peritumoral": p, "peritumoral_weight": float(model.peritumoral),
        "eta_metastasis": eta_met, "eta_burden": eta_bur,
        "oracle_p_metastasis": p_met, "oracle_p_burden": p_bur,
        "age": age, "us_node_suspicious": susp, "birads": birads, "er": er, "pr": pr, "her2": her2,
        "ki67": ki67, "grade": grade, "histology": histology, "subtype": subtype, "n_positive_nodes": nodes,
    })


def _birads_read_sd(model: GenerativeModel) -> float:
    """SD of the BI-RADS read w.(m, e, s) implied by the loadings on z (so n=1 draws are standardised)."""
    wm, we, ws = model.birads_w
    r = np.array([model.rho_margin, model.rho_echo, model.rho_size])
    w = np.array([wm, we, ws])
    cov = np.outer(r, r)
    np.fill_diagonal(cov, 1.0)
    return float(np.sqrt(w @ cov @ w))


def oracle_probabilities(eta_met, eta_bur, susp, model: GenerativeModel = MODEL):
    """Bayes-optimal P(N+ | latents, US node) and P(>=3 nodes | N+, latents, US node)."""
    p0, p1, p2 = model.p_susp
    susp = np.asarray(susp).astype(bool)
    lik_neg = np.where(susp, p0, 1 - p0)
    lik_low = np.where(susp, p1, 1 - p1)
    lik_high = np.where(susp, p2, 1 - p2)
    pb = expit(eta_bur)
    lik_pos = pb * lik_high + (1 - pb) * lik_low
    pm = expit(eta_met)
    p_met = pm * lik_pos / (pm * lik_pos + (1 - pm) * lik_neg)
    p_bur = pb * lik_high / lik_pos
    return p_met, p_bur


__all__ = ["BIRADS", "GenerativeModel", "MODEL", "draw_latents", "oracle_probabilities"]
