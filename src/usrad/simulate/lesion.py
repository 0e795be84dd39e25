"""Lesion geometry: the star-shaped true boundary r(theta) of a lesion and the readers' tracings of it.

:func:`lesion_radius` draws the boundary from the margin phenotype (angular outline, microlobules, roughness,
thin spicules); :func:`reader_radius` is one reader's tracing of it; :func:`lesion_frame` and
:func:`inside_contour` turn a boundary into a pixel mask.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import norm


def effect_strength(x):
    """Map an N(0,1) phenotype to (0, 1), nearly linearly over +-2 SD (strength of its image effect)."""
    return norm.cdf(np.asarray(x) / 1.6)


N_THETA = 1440
THETA = np.linspace(0.0, 2 * np.pi, N_THETA, endpoint=False)


def _smooth_periodic(rng, kmin, kmax, decay):
    """Random smooth periodic function of theta: harmonics kmin..kmax with amplitude k**-decay, unit RMS."""
    k = np.arange(kmin, kmax + 1)
    amp = k.astype(float) ** -decay
    ph = rng.uniform(0, 2 * np.pi, k.size)
    coef = rng.standard_normal(k.size) * amp
    f = (coef[:, None] * np.cos(k[:, None] * THETA[None, :] + ph[:, None])).sum(0)
    return f / np.sqrt(np.mean(f ** 2))


def lesion_radius(rng, margin: float, aspect: float, size_mm: float) -> np.ndarray:
    """Boundary radius r(theta) in mm of a star-shaped lesion whose max diameter is ``size_mm``.

    ``margin`` (the N(0,1) latent) sets how angular the outline is (blend towards a random polygon),
    the number and height of microlobules, fine roughness, and the number/length of thin spicules.
    """
    q = effect_strength(margin)
    a, b = 1.0, aspect                           # ellipse semi-axes (relative)
    r_ell = a * b / np.sqrt((b * np.cos(THETA)) ** 2 + (a * np.sin(THETA)) ** 2)
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
    mic = np.zeros_like(THETA)
    for c, wd, ht in zip(centres, widths, heights):
        d = np.angle(np.exp(1j * (THETA - c)))
        mic = np.maximum(mic, ht * np.sqrt(np.clip(1.0 - (d / wd) ** 2, 0.0, None)))
    rough = (0.004 + 0.02 * q) * _smooth_periodic(rng, 20, 70, 0.3)
    # thin spicules: straight, blunt-tipped rays of irregular length, 0.3-0.5 mm wide at any lesion size
    n_spic = int(round(16 * q ** 2))
    spic = np.zeros_like(THETA)
    for c, ln, wd in zip(rng.uniform(0, 2 * np.pi, n_spic), (0.05 + 0.30 * q) * rng.uniform(0.3, 1.0, n_spic),
                         rng.uniform(0.15, 0.25, n_spic) / (0.5 * size_mm)):
        d = np.angle(np.exp(1j * (THETA - c)))
        spic = np.maximum(spic, ln * np.clip(4.0 * (1.0 - (d / wd) ** 2), 0.0, 1.0))
    base = r_ell * ((1 - angular) + angular * poly / poly.mean()) * (1 + lob)
    r = base * (1 + mic + rough + spic)
    return r * size_mm / _max_diameter(r)


def _polygon_radius(phi: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Polar radius r(theta) of the closed polygon with vertices (phi_k, rho_k), phi sorted in [0, 2pi)."""
    k = np.searchsorted(phi, THETA, side="right") - 1          # vertex before theta (-1: wraps)
    p0, r0 = phi[k], rho[k]
    p1, r1 = phi[(k + 1) % phi.size], rho[(k + 1) % phi.size]
    p1 = np.where(p1 <= p0, p1 + 2 * np.pi, p1)
    p0 = np.where(k < 0, p0 - 2 * np.pi, p0)
    p1 = np.where(k < 0, p1 - 2 * np.pi, p1)
    return r0 * r1 * np.sin(p1 - p0) / (r0 * np.sin(THETA - p0) + r1 * np.sin(p1 - THETA))


def _max_diameter(r: np.ndarray) -> float:
    """Max Feret diameter of the closed polygon r(theta)."""
    from scipy.spatial import ConvexHull

    pts = np.column_stack([r * np.cos(THETA), r * np.sin(THETA)])
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


def lesion_frame(y, x, cy, cx, tilt):
    """Lesion-frame coordinates (u, v) in mm of pixel centres (y, x), rotated by ``tilt`` about (cy, cx)."""
    dy, dx = y - cy, x - cx
    c, s_ = np.cos(tilt), np.sin(tilt)
    return c * dx + s_ * dy, -s_ * dx + c * dy


def inside_contour(r_mm, rad, th):
    """Pixels at polar (rad, th) in the lesion frame that lie inside the contour r_mm(theta)."""
    return rad <= np.interp(np.mod(th, 2 * np.pi), THETA, r_mm, period=2 * np.pi)


__all__ = ["N_THETA", "THETA", "effect_strength", "lesion_radius", "reader_radius", "lesion_frame", "inside_contour"]
