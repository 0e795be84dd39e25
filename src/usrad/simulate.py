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

Every patient draws from its own ``SeedSequence(seed).spawn`` child: patient ``i`` is the same
whatever ``n_patients`` is, and the same seed gives byte-identical files.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import fft as sfft
from scipy import ndimage
from scipy.special import expit
from scipy.stats import norm

from .errors import Problem, UsradError
from .tables import read_table

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "patient_id", "image", "mask", "mask_reader2", "device", "age", "us_size_mm", "us_node_suspicious",
    "birads", "er", "pr", "her2", "ki67", "grade", "histology", "subtype", "n_positive_nodes",
]
GROUND_TRUTH_COLUMNS = [
    "patient_id", "z_aggressiveness", "margin_irregularity", "heterogeneity", "echogenicity_loss",
    "size_latent", "size_mm", "eta_metastasis", "eta_burden", "oracle_p_metastasis", "oracle_p_burden",
    "pixel_spacing_mm", "lesion_depth_mm",
]
BIRADS = np.array(["3", "4a", "4b", "4c", "5"])
DEVICES = ("SimUS L12-5", "SimUS L9-3")
DEFAULT_SEED = 20240611


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


MODEL = GenerativeModel()


# --------------------------------------------------------------------------------------------------
# Latent and clinical model
# --------------------------------------------------------------------------------------------------

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
    eta_met = model.a0 + model.A * X @ np.asarray(model.w_met)
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
        "size_latent": s, "size_mm": size_mm, "eta_metastasis": eta_met, "eta_burden": eta_bur,
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


# --------------------------------------------------------------------------------------------------
# Lesion geometry and reader masks
# --------------------------------------------------------------------------------------------------

def _q(x):
    """Map an N(0,1) phenotype to (0, 1), nearly linearly over +-2 SD (strength of its image effect)."""
    return norm.cdf(np.asarray(x) / 1.6)


_N_THETA = 1440
_THETA = np.linspace(0.0, 2 * np.pi, _N_THETA, endpoint=False)


def _smooth_periodic(rng, kmin, kmax, decay):
    """Random smooth periodic function of theta: harmonics kmin..kmax with amplitude k**-decay, unit RMS."""
    k = np.arange(kmin, kmax + 1)
    amp = k.astype(float) ** -decay
    ph = rng.uniform(0, 2 * np.pi, k.size)
    coef = rng.standard_normal(k.size) * amp
    f = (coef[:, None] * np.cos(k[:, None] * _THETA[None, :] + ph[:, None])).sum(0)
    return f / np.sqrt(np.mean(f ** 2))


def lesion_radius(rng, margin: float, aspect: float, size_mm: float) -> np.ndarray:
    """Boundary radius r(theta) in mm of a star-shaped lesion whose max diameter is ``size_mm``.

    ``margin`` (the N(0,1) latent) sets how angular the outline is (blend towards a random polygon),
    the number and height of microlobules, fine roughness, and the number/length of thin spicules.
    """
    q = _q(margin)
    a, b = 1.0, aspect                           # ellipse semi-axes (relative)
    r_ell = a * b / np.sqrt((b * np.cos(_THETA)) ** 2 + (a * np.sin(_THETA)) ** 2)
    lob = (0.02 + 0.08 * q) * _smooth_periodic(rng, 2, 5, 0.5)
    # angular margin: blend with a random polygon (5-8 vertices, jittered angles and radii)
    n_v = int(rng.integers(5, 9))
    phi = np.sort(np.mod(np.arange(n_v) * 2 * np.pi / n_v + rng.uniform(-0.25, 0.25, n_v) * 2 * np.pi / n_v
                         + rng.uniform(0, 2 * np.pi), 2 * np.pi))
    rho = 1.0 + 0.12 * rng.standard_normal(n_v)
    poly = _polygon_radius(phi, rho)
    angular = 0.9 * q ** 1.5
    # microlobulation: rounded bumps with cusps between them
    n_mic = int(round(6 + 30 * q))
    centres = rng.uniform(0, 2 * np.pi, n_mic)
    widths = rng.uniform(0.6, 1.3, n_mic) * np.pi / n_mic
    heights = (0.01 + 0.07 * q) * rng.uniform(0.4, 1.0, n_mic)
    mic = np.zeros_like(_THETA)
    for c, wd, ht in zip(centres, widths, heights):
        d = np.angle(np.exp(1j * (_THETA - c)))
        mic = np.maximum(mic, ht * np.sqrt(np.clip(1.0 - (d / wd) ** 2, 0.0, None)))
    rough = (0.004 + 0.02 * q) * _smooth_periodic(rng, 20, 70, 0.3)
    # thin spicules: straight, blunt-tipped rays of irregular length, 0.3-0.5 mm wide at any lesion size
    n_spic = int(round(16 * q ** 2))
    spic = np.zeros_like(_THETA)
    for c, ln, wd in zip(rng.uniform(0, 2 * np.pi, n_spic), (0.05 + 0.30 * q) * rng.uniform(0.3, 1.0, n_spic),
                         rng.uniform(0.15, 0.25, n_spic) / (0.5 * size_mm)):
        d = np.angle(np.exp(1j * (_THETA - c)))
        spic = np.maximum(spic, ln * np.clip(4.0 * (1.0 - (d / wd) ** 2), 0.0, 1.0))
    base = r_ell * ((1 - angular) + angular * poly / poly.mean()) * (1 + lob)
    r = base * (1 + mic + rough + spic)
    return r * size_mm / _max_diameter(r)


def _polygon_radius(phi: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Polar radius r(theta) of the closed polygon with vertices (phi_k, rho_k), phi sorted in [0, 2pi)."""
    k = np.searchsorted(phi, _THETA, side="right") - 1          # vertex before theta (-1: wraps)
    p0, r0 = phi[k], rho[k]
    p1, r1 = phi[(k + 1) % phi.size], rho[(k + 1) % phi.size]
    p1 = np.where(p1 <= p0, p1 + 2 * np.pi, p1)
    p0 = np.where(k < 0, p0 - 2 * np.pi, p0)
    p1 = np.where(k < 0, p1 - 2 * np.pi, p1)
    return r0 * r1 * np.sin(p1 - p0) / (r0 * np.sin(_THETA - p0) + r1 * np.sin(p1 - _THETA))


def _max_diameter(r: np.ndarray) -> float:
    """Max Feret diameter of the closed polygon r(theta)."""
    from scipy.spatial import ConvexHull

    pts = np.column_stack([r * np.cos(_THETA), r * np.sin(_THETA)])
    hull = pts[ConvexHull(pts).vertices]
    d = hull[:, None, :] - hull[None, :, :]
    return float(np.sqrt((d ** 2).sum(-1)).max())


def reader_radius(rng, r_true: np.ndarray) -> np.ndarray:
    """A reader's tracing in mm: the true boundary plus a smooth independent perturbation.

    The perturbation has an RMS of 0.45 mm (about 4 pixels) around the contour and a reader-specific
    offset (SD 0.25 mm: one reader traces a little outside, another a little inside the edge).
    """
    wobble = 0.45 * _smooth_periodic(rng, 1, 10, 1.0)
    offset = rng.normal(0.0, 0.25)
    return np.maximum(r_true + wobble + offset, 0.3 * r_true)


def _lesion_frame(y, x, cy, cx, tilt):
    """Lesion-frame coordinates (u, v) in mm of pixel centres (y, x), rotated by ``tilt`` about (cy, cx)."""
    dy, dx = y - cy, x - cx
    c, s_ = np.cos(tilt), np.sin(tilt)
    return c * dx + s_ * dy, -s_ * dx + c * dy


def _inside(r_mm, rad, th):
    """Pixels at polar (rad, th) in the lesion frame that lie inside the contour r_mm(theta)."""
    return rad <= np.interp(np.mod(th, 2 * np.pi), _THETA, r_mm, period=2 * np.pi)


# --------------------------------------------------------------------------------------------------
# B-mode image formation
# --------------------------------------------------------------------------------------------------

def _fast_shape(shape):
    return tuple(sfft.next_fast_len(int(n), real=True) for n in shape)


def _smooth(a: np.ndarray, sigma_px) -> np.ndarray:
    """Gaussian smoothing by FFT (cost independent of kernel width); zero-padded to a fast size."""
    sy, sx = (sigma_px, sigma_px) if np.isscalar(sigma_px) else sigma_px
    shp = _fast_shape(a.shape)
    ky = sfft.fftfreq(shp[0])[:, None]
    kx = sfft.rfftfreq(shp[1])[None, :]
    tf = np.exp(-2 * np.pi ** 2 * ((sy * ky) ** 2 + (sx * kx) ** 2)).astype(a.dtype)
    out = sfft.irfft2(sfft.rfft2(a, s=shp) * tf, s=shp)
    return out[: a.shape[0], : a.shape[1]]


def _field(rng, shape, sigma_px):
    """Smooth Gaussian random field (float32) with unit SD (periodic on a fast FFT size, cropped)."""
    shp = _fast_shape(shape)
    f = _smooth(rng.standard_normal(shp, dtype=np.float32), sigma_px)[: shape[0], : shape[1]]
    f = f - f.mean()
    return f / f.std()


def _profile(rng, n, sigma_px):
    """Smooth random 1D profile with unit standard deviation (layer boundaries)."""
    k = np.fft.rfftfreq(n)
    f = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * np.exp(-2 * np.pi ** 2 * (sigma_px * k) ** 2), n=n)
    f = f - f.mean()
    return f / f.std()


def _ramp(x):
    """Soft step: 0 for x <= 0, 1 for x >= 1, smooth in between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def render_patient(rng: np.random.Generator, latent: dict) -> dict:
    """Render one B-mode image with its true lesion mask and two reader masks.

    Returns a dict with ``image`` (uint8, rows = depth), ``mask``, ``mask_r1``, ``mask_r2`` (uint8 0/1),
    ``spacing`` (mm, isotropic), ``device`` and ``lesion_depth_mm``.
    """
    m, h, e = latent["margin_irregularity"], latent["heterogeneity"], latent["echogenicity_loss"]
    size = latent["size_mm"]
    qm, qh, qe = _q(m), _q(h), _q(e)
    dev = int(rng.random() < 0.4)
    aspect = float(np.clip(rng.normal(0.72 + 0.08 * qm, 0.08), 0.5, 1.0))
    tilt = rng.normal(0, 0.15)
    r_true = lesion_radius(rng, m, aspect, size)
    r_read = [reader_radius(rng, r_true), reader_radius(rng, r_true)]

    # field of view: the sonographer sets depth (and the scanner the pixel size) so the lesion fits
    fat = rng.uniform(3.0, 7.0)                        # skin + subcutaneous fat thickness, mm
    half_h = float(np.max(np.abs(r_true * np.sin(_THETA + tilt))))
    half_w = float(np.max(np.abs(r_true * np.cos(_THETA + tilt))))
    top = fat + rng.uniform(1.5, 6.0)
    cy = top + half_h
    depth = float(np.clip(cy + half_h + rng.uniform(10.0, 18.0), 30.0, 66.0))
    width_mm = max(38.0, 2 * half_w + 12.0)
    spacing = round(float(np.clip(max(depth / 420.0, width_mm / 440.0), 0.08, 0.15)), 4)
    H = int(min(450, round(depth / spacing)))
    depth = H * spacing
    W = int(np.clip(round(width_mm / spacing), 300, 450))
    cx = W * spacing / 2 + rng.uniform(-0.15, 0.15) * max(0.0, W * spacing - 2 * half_w - 4)
    ycoord = ((np.arange(H) + 0.5) * spacing).astype(np.float32)
    xcoord = ((np.arange(W) + 0.5) * spacing).astype(np.float32)
    y, x = ycoord[:, None], xcoord[None, :]          # all full-frame maps are float32, built by broadcasting

    # masks: evaluated on a box around the lesion only (with room for the halo and image spicules)
    rmax = float(max(r.max() for r in [r_true, *r_read])) + 6.0
    y0, y1 = max(0, int((cy - rmax) / spacing)), min(H, int((cy + rmax) / spacing) + 2)
    x0, x1 = max(0, int((cx - rmax) / spacing)), min(W, int((cx + rmax) / spacing) + 2)
    box = (slice(y0, y1), slice(x0, x1))
    bshape = (y1 - y0, x1 - x0)
    u, v = _lesion_frame(ycoord[box[0], None].astype(float), xcoord[None, box[1]].astype(float), cy, cx, tilt)
    rad, th = np.hypot(u, v), np.arctan2(v, u)
    masks = []
    for r in [r_true, *r_read]:
        mk = np.zeros((H, W), bool)
        mk[box] = _inside(r, rad, th)
        masks.append(mk)
    inside, r1, r2 = masks

    # --- tissue backscatter map (dB, relative to fibroglandular tissue)
    px = 1.0 / spacing
    skin = 1.5 + 0.15 * _profile(rng, W, 15 * px)
    fat_bot = fat + 1.0 * _profile(rng, W, 5 * px)
    musc = depth - rng.uniform(4.0, 9.0) + 0.8 * _profile(rng, W, 12 * px)
    # tissue textures follow the undulating layers: every column is shifted by a smooth, depth-varying amount
    t = ycoord[:, None] / depth
    shift = (2.0 * _profile(rng, W, 4 * px)[None, :] * (1 - t) + 2.0 * _profile(rng, W, 6 * px)[None, :] * t) * px
    rows = np.clip(np.round(np.arange(H)[:, None] + shift), 0, H - 1).astype(np.intp)

    def layered(sigma):
        return np.take_along_axis(_field(rng, (H, W), sigma), rows, axis=0)

    fine = layered((0.15 * px, 0.5 * px))              # small-scale tissue echo variation
    coarse = layered((0.7 * px, 2.0 * px))             # glandular islands and fat islands
    septa = layered((0.6 * px, 3.0 * px))              # zero crossings: Cooper's ligaments, fat lobule septa
    lig = _ramp(1.0 - np.abs(septa) / 0.14)
    # fibroglandular tissue: bright, mottled, with hypoechoic fat islands and bright ligaments
    db = 1.8 * fine + 2.6 * coarse
    island = _ramp((-0.5 - coarse) / 0.6)
    db = db * (1 - island) + (-9.0 + 1.5 * fine) * island + 7.0 * lig
    # subcutaneous fat: dark lobules separated by thin echogenic septa
    is_fat = (y > skin[None, :]) & (y < fat_bot[None, :])
    db = np.where(is_fat, -11.0 + 1.5 * fine + 9.0 * lig, db)
    # skin: bright entry echo, echogenic dermis, bright dermis/fat interface
    db = np.where(y <= skin[None, :], 3.0 + 2.0 * fine, db)
    db = np.where(y < 0.35, 9.0, db)
    db = np.where(np.abs(y - skin[None, :]) < 0.18, 7.0, db)
    # retromammary fat, pectoral fascia and muscle with oblique echogenic striations
    is_mus = y > musc[None, :]
    db = np.where((y > musc[None, :] - 1.5) & ~is_mus, -9.0 + 1.5 * fine, db)
    slope = rng.uniform(-0.25, 0.25)
    stri = np.sin(2 * np.pi * (y - slope * x) / rng.uniform(1.0, 1.6) + 1.5 * coarse)
    db = np.where(is_mus, -9.0 + 1.5 * fine + 10.0 * _ramp((stri - 0.7) / 0.2) * _ramp(1.0 + 0.7 * septa), db)
    db = np.where(np.abs(y - musc[None, :]) < 0.25, 4.0 + 3.0 * fine, db)

    # --- lesion (on the box): echogenic halo, thin spicules, hypoechoic core with patchy heterogeneity
    sub = db[box]
    inb = inside[box]
    d_out = ndimage.distance_transform_edt(~inb) * spacing               # mm outside the margin
    halo_var = _ramp(0.55 + 0.45 * _field(rng, bshape, 0.7 * px))        # soft, irregular, incomplete
    halo = np.exp(-d_out / (0.4 + 1.4 * qm)) * halo_var * (~inb)
    sub = sub + (2.0 + 9.0 * qm) * halo
    n_lines = int(rng.poisson(18 * qm ** 2))
    lines = np.zeros(bshape, np.float32)
    ct, st = np.cos(tilt), np.sin(tilt)
    for c, ln, wd in zip(rng.uniform(0, 2 * np.pi, n_lines), rng.uniform(1.0, 5.0, n_lines) * (0.3 + qm),
                         rng.uniform(0.06, 0.12, n_lines)):
        r_c = float(np.interp(c, _THETA, r_true, period=2 * np.pi))
        # the spicule's own window: from 0.5 mm inside the margin to its tip, +- 4 widths
        ends = np.array([r_c - 0.5, r_c + ln])
        ey = (cy + st * ends * np.cos(c) + ct * ends * np.sin(c)) / spacing - y0
        ex = (cx + ct * ends * np.cos(c) - st * ends * np.sin(c)) / spacing - x0
        pad = 4 * wd / spacing + 2
        wy = slice(max(0, int(ey.min() - pad)), max(0, min(bshape[0], int(ey.max() + pad) + 1)))
        wx = slice(max(0, int(ex.min() - pad)), max(0, min(bshape[1], int(ex.max() + pad) + 1)))
        uu, vv = u[wy, wx], v[wy, wx]
        along = np.cos(c) * uu + np.sin(c) * vv - r_c
        perp = -np.sin(c) * uu + np.cos(c) * vv
        taper = np.clip(1.0 - along / ln, 0.0, 1.0) * (along > -0.5)
        lines[wy, wx] = np.maximum(lines[wy, wx], taper * np.exp(-0.5 * (perp / wd) ** 2))
    sub = sub * (1 - lines) + (-8.0 - 6.0 * qe) * lines
    soft = ndimage.gaussian_filter(inb.astype(np.float32), 0.12 * px)
    les_level = -6.5 - 13.0 * qe
    mottle = 0.6 * _field(rng, bshape, 0.45 * px) + 0.8 * _field(rng, bshape, 1.1 * px)
    het = (0.3 + 7.5 * qh) * mottle
    sub = sub * (1 - soft) + (les_level + het) * soft
    iy, ix = np.nonzero(inb)
    n_calc = int(rng.poisson(0.3 + 6.0 * qh ** 2 * (size / 20.0)))
    if n_calc and iy.size:
        pick = rng.integers(0, iy.size, n_calc)
        sub[iy[pick], ix[pick]] = rng.uniform(12.0, 20.0, n_calc)
    db[box] = sub

    # --- attenuation: TGC cancels tissue attenuation imperfectly (residual slope: deeper is darker);
    # the lesion's excess attenuation accumulates below it: a soft posterior shadow (or enhancement)
    excess = np.where(inside, np.float32(-0.3 + 1.3 * qe), np.float32(0.0))   # dB/mm round trip
    excess = ndimage.gaussian_filter1d(excess, 0.8 * px, axis=1)
    att = np.cumsum(excess, axis=0) * spacing
    att = np.where(inside, 0.3 * att, att)     # inside the lesion: TGC/sonographer partly compensate
    tgc = rng.normal(0.0, 0.8) - rng.uniform(0.1, 0.28) * y     # residual gain offset and slope, dB
    amp = np.sqrt(10.0 ** ((db - att + tgc) / 10.0) + 10.0 ** (-28.0 / 10.0))   # with electronic noise floor

    # --- scatterers * PSF (complex baseband), envelope detection, log compression
    sig_ax, sig_lat = (0.10, 0.30) if dev == 0 else (0.13, 0.38)
    shp = _fast_shape((H, W))
    ky = sfft.fftfreq(shp[0], d=spacing)
    kx = sfft.fftfreq(shp[1], d=spacing)
    otf = np.exp(-2 * np.pi ** 2 * ((sig_ax * ky[:, None]) ** 2 + (sig_lat * kx[None, :]) ** 2)).astype(np.float32)
    power = np.zeros((H, W), np.float32)
    for _ in range(2):        # spatial compounding: two steering angles = two independent speckle patterns
        re, im = rng.standard_normal((2, H, W), dtype=np.float32)
        iq = sfft.ifft2(sfft.fft2((re + 1j * im) * amp, s=shp) * otf)[:H, :W]
        power += iq.real ** 2 + iq.imag ** 2
    env_db = 10 * np.log10(power / 2 + 1e-12)
    ref = np.median(env_db[~inside & ~is_fat & ~is_mus & (y > skin[None, :] + 0.5)])
    dyn = 62.0 if dev == 0 else 66.0
    gain = 104.0 if dev == 0 else 98.0
    grey = ndimage.gaussian_filter(gain + (env_db - ref) * (255.0 / dyn), (0.5, 0.9))
    image = np.clip(np.round(grey), 0, 255).astype(np.uint8)
    return {
        "image": image, "mask": inside.astype(np.uint8), "mask_r1": r1.astype(np.uint8),
        "mask_r2": r2.astype(np.uint8), "spacing": spacing, "device": DEVICES[dev],
        "lesion_depth_mm": float(cy),
    }


# --------------------------------------------------------------------------------------------------
# Cohort
# --------------------------------------------------------------------------------------------------

def _patient_rngs(seed: int, index: int):
    """(latent rng, image rng) of patient ``index``: independent of cohort size and of chunking."""
    child = np.random.SeedSequence(seed, spawn_key=(index,))
    lat, img = child.spawn(2)
    return np.random.default_rng(lat), np.random.default_rng(img)


def simulate_patient(seed: int, index: int, model: GenerativeModel = MODEL):
    """Latents/clinical row and rendered images of patient ``index`` (0-based)."""
    rng_lat, rng_img = _patient_rngs(seed, index)
    row = draw_latents(rng_lat, 1, model).iloc[0].to_dict()
    row["patient_id"] = patient_id(index)
    return row, render_patient(rng_img, row)


def patient_id(index: int) -> str:
    return f"SIM{index + 1:04d}"


def _write_nrrd(arr: np.ndarray, spacing: float, path: Path) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((spacing, spacing))
    img.SetOrigin((0.0, 0.0))
    sitk.WriteImage(img, str(path), True)


def _max_feret_mm(mask: np.ndarray, spacing: float) -> float:
    from scipy.spatial import ConvexHull

    pts = np.argwhere(mask).astype(float)
    hull = pts[ConvexHull(pts).vertices]
    d = hull[:, None, :] - hull[None, :, :]
    return float(np.sqrt((d ** 2).sum(-1)).max() * spacing)


def _out_dir_problems(out_dir: Path) -> list[Problem]:
    """Why the cohort cannot be written to ``out_dir``: a file there or on the way, or no write permission."""
    if out_dir.exists() and not out_dir.is_dir():
        return [Problem("the output folder is an existing file; give a folder", file=str(out_dir))]
    anc = out_dir.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        return [Problem(f"the output folder cannot be created: {anc} is a file", file=str(out_dir))]
    if not os.access(anc, os.W_OK | os.X_OK) or (out_dir.is_dir() and not os.access(out_dir, os.W_OK | os.X_OK)):
        return [Problem("the output folder is not writable", file=str(out_dir))]
    if out_dir.is_dir() and any(out_dir.iterdir()) and not _is_simulated_cohort(out_dir):
        # its images/ and masks/ would be replaced: never do that to a folder that is not a simulated cohort
        names = sorted(os.listdir(out_dir))
        return [Problem(f"the output folder is not empty and holds no simulated cohort ({', '.join(names[:5])}"
                        f"{', …' if len(names) > 5 else ''}); give a new or empty folder", file=str(out_dir))]
    return []


def _is_simulated_cohort(folder: Path) -> bool:
    """An earlier output of :func:`simulate_cohort`: its ground truth, or images/masks of simulated patients only."""
    if (folder / "ground_truth.tsv").is_file():
        return True
    subs = [folder / n for n in ("images", "masks") if (folder / n).exists()]
    pattern = re.compile(r"SIM\d+(_r\d+)?\.nrrd")
    return bool(subs) and all(s.is_dir() and all(pattern.fullmatch(n) for n in os.listdir(s)) for s in subs)


def simulate_cohort(out_dir, n_patients: int = 671, seed: int = DEFAULT_SEED, progress: bool = True,
                    n_jobs: int = 1) -> Path:
    """Write the simulated cohort to ``out_dir`` and return the manifest path.

    Files: ``manifest.tsv`` (paths relative to ``out_dir``), ``images/{pid}.nrrd``,
    ``masks/{pid}_r1.nrrd``, ``masks/{pid}_r2.nrrd``, ``ground_truth.tsv``. The cohort is built in a
    temporary folder next to ``out_dir`` and moved into place at the end (manifest last), so an
    interrupted run never leaves a half-written cohort behind a manifest.

    ``n_jobs`` > 1 renders patients in that many processes (joblib). Each patient draws from its own seeded
    generators and is written by the process that renders it, so the files are byte-identical for any
    ``n_jobs``.
    """
    problems = []
    if not isinstance(n_patients, (int, np.integer)) or isinstance(n_patients, bool) or n_patients < 1:
        problems.append(Problem(f"n_patients must be a positive integer, got {n_patients!r}", column="n_patients"))
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        problems.append(Problem(f"seed must be a non-negative integer, got {seed!r}", column="seed"))
    out_dir = Path(out_dir)
    problems += _out_dir_problems(out_dir)
    if problems:
        raise UsradError("Cannot simulate the demo cohort", problems)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        rows = []
        step = max(1, n_patients // 10)
        for row in _render_all(seed, n_patients, tmp, n_jobs):
            rows.append(row)
            if progress and (len(rows) % step == 0 or len(rows) == n_patients):
                log.info("simulated %d/%d patients", len(rows), n_patients)
        df = pd.DataFrame(rows)
        df[GROUND_TRUTH_COLUMNS].to_csv(tmp / "ground_truth.tsv", sep="\t", index=False, float_format="%.6f")
        df[MANIFEST_COLUMNS].to_csv(tmp / "manifest.tsv", sep="\t", index=False)
        _move_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / "manifest.tsv"


def _render_and_write(seed: int, index: int, folder: Path) -> dict:
    """Render patient ``index``, write its image and reader masks under ``folder``, return its manifest row."""
    row, rend = simulate_patient(seed, index, MODEL)
    pid = row["patient_id"]
    _write_nrrd(rend["image"], rend["spacing"], folder / "images" / f"{pid}.nrrd")
    _write_nrrd(rend["mask_r1"], rend["spacing"], folder / "masks" / f"{pid}_r1.nrrd")
    _write_nrrd(rend["mask_r2"], rend["spacing"], folder / "masks" / f"{pid}_r2.nrrd")
    row.update(image=f"images/{pid}.nrrd", mask=f"masks/{pid}_r1.nrrd",
               mask_reader2=f"masks/{pid}_r2.nrrd", device=rend["device"],
               us_size_mm=round(float(row["size_mm"]), 1),
               pixel_spacing_mm=rend["spacing"], lesion_depth_mm=rend["lesion_depth_mm"])
    return row


def _render_chunk(seed: int, indices: range, folder: Path) -> list[dict]:
    return [_render_and_write(seed, i, folder) for i in indices]


def _render_all(seed: int, n_patients: int, folder: Path, n_jobs: int = 1):
    """Manifest rows of patients 0 … n_patients-1 in order, rendered in ``n_jobs`` processes (chunks of patients)."""
    n_jobs = max(1, min(int(n_jobs), n_patients))
    if n_jobs == 1:
        for i in range(n_patients):
            yield _render_and_write(seed, i, folder)
        return
    from joblib import Parallel, delayed

    size = max(1, min(16, n_patients // (4 * n_jobs)))  # ~0.2 s per patient: chunks amortise the dispatch
    chunks = [range(i, min(i + size, n_patients)) for i in range(0, n_patients, size)]
    parallel = Parallel(n_jobs=n_jobs, return_as="generator")  # ordered: chunk k is yielded k-th
    for rows in parallel(delayed(_render_chunk)(seed, c, folder) for c in chunks):
        yield from rows


_ENTRIES = ("images", "masks", "ground_truth.tsv", "manifest.tsv")  # manifest last: it marks completion


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
        return
    old = out_dir / "manifest.tsv"
    if old.exists():
        old.unlink()
    for name in _ENTRIES:
        dst = out_dir / name
        if dst.is_dir():
            shutil.rmtree(dst)
        os.replace(tmp / name, dst)


# --------------------------------------------------------------------------------------------------
# Comparison with real BUS-BRA images
# --------------------------------------------------------------------------------------------------

def comparison_figure(manifest_path, busbra_dir, out_png, n: int = 8, seed: int = 0):
    """Grid of ``n`` simulated images (top rows) next to ``n`` real malignant BUS-BRA images (bottom).

    Each panel is shown at its physical aspect with the reader-1 mask (simulated) or the BUS-BRA mask
    outlined. Saves ``out_png`` and the same figure as PDF; returns both paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    manifest_path, busbra_dir, out_png = Path(manifest_path), Path(busbra_dir), Path(out_png)
    csv = busbra_dir / "bus_data.csv"
    if not csv.is_file():
        raise UsradError("Cannot draw the BUS-BRA comparison",
                         [Problem("BUS-BRA table bus_data.csv not found (is busbra_dir right?)", file=str(csv))])
    if not manifest_path.is_file():
        raise UsradError("Cannot draw the BUS-BRA comparison",
                         [Problem("manifest not found", file=str(manifest_path))])
    sim = read_table(manifest_path)
    real = pd.read_csv(csv)
    real = real[real["Pathology"] == "malignant"]
    rng = np.random.default_rng(seed)
    sim_rows = sim.iloc[np.sort(rng.choice(len(sim), min(n, len(sim)), replace=False))]
    real_rows = real.iloc[np.sort(rng.choice(len(real), min(n, len(real)), replace=False))]
    ncol = 4
    nrow = int(np.ceil(len(sim_rows) / ncol)) + int(np.ceil(len(real_rows) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 3.3 * nrow))
    axes = np.atleast_2d(axes)
    for ax in axes.ravel():
        ax.axis("off")
    base = manifest_path.parent
    panels = []
    for _, r in sim_rows.iterrows():
        img = sitk.ReadImage(str(base / r["image"]))
        msk = sitk.GetArrayFromImage(sitk.ReadImage(str(base / r["mask"])))
        sp = img.GetSpacing()[0]
        n_pos = int(r["n_positive_nodes"])
        title = f"{r['patient_id']} sim, {r['us_size_mm']:.0f} mm, N={n_pos}"
        panels.append((sitk.GetArrayFromImage(img), msk, sp, title))
    for _, r in real_rows.iterrows():
        im = np.asarray(Image.open(busbra_dir / "Images" / f"bus_{r['ID'][4:]}.png").convert("L"))
        mk = np.asarray(Image.open(busbra_dir / "Masks" / f"mask_{r['ID'][4:]}.png").convert("L")) > 127
        panels.append((im, mk, 1.0, f"{r['ID']} real ({r['Device'].split(' @')[0]})"))
    for ax, (im, mk, sp, title) in zip(axes.ravel(), panels):
        ext = (0, im.shape[1] * sp, im.shape[0] * sp, 0)
        ax.imshow(im, cmap="gray", vmin=0, vmax=255, extent=ext, interpolation="nearest")
        xs, ys = (np.arange(im.shape[1]) + 0.5) * sp, (np.arange(im.shape[0]) + 0.5) * sp
        ax.contour(xs, ys, mk.astype(float), levels=[0.5], colors="yellow", linewidths=0.6, alpha=0.6)
        ax.set_title(title, fontsize=8)
    fig.suptitle("Simulated B-mode (top rows, mm axes) vs real malignant BUS-BRA images (bottom rows)",
                 fontsize=10)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    out_pdf = out_png.with_suffix(".pdf")
    fig.savefig(out_png, dpi=110, metadata={"Software": None})
    fig.savefig(out_pdf, metadata={"Creator": None, "Producer": None, "CreationDate": None})
    plt.close(fig)
    return out_png, out_pdf


__all__ = [
    "GenerativeModel", "MODEL", "MANIFEST_COLUMNS", "GROUND_TRUTH_COLUMNS", "draw_latents",
    "oracle_probabilities", "render_patient", "simulate_patient", "simulate_cohort", "comparison_figure",
    "lesion_radius", "reader_radius", "patient_id",
]
