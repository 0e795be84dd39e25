"""Random fields for the B-mode image formation: FFT Gaussian smoothing, smooth random fields and profiles, and side generators for optional effects.
"""
from __future__ import annotations

import numpy as np
from scipy import fft as sfft


def side_generator(rng: np.random.Generator, key: int) -> np.random.Generator:
    """An independent generator derived from ``rng``'s seed sequence and ``key`` without drawing from ``rng``: an
    optional effect draws from it, so switching the effect on leaves every other draw (and image) as it was."""
    seq = rng.bit_generator.seed_seq
    return np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, 1_000_000 + key)))


def fast_shape(shape):
    """The shape padded to fast real-FFT sizes."""
    return tuple(sfft.next_fast_len(int(n), real=True) for n in shape)


def _smooth(a: np.ndarray, sigma_px) -> np.ndarray:
    """Gaussian smoothing by FFT (cost independent of kernel width); zero-padded to a fast size."""
    sy, sx = (sigma_px, sigma_px) if np.isscalar(sigma_px) else sigma_px
    shp = fast_shape(a.shape)
    ky = sfft.fftfreq(shp[0])[:, None]
    kx = sfft.rfftfreq(shp[1])[None, :]
    tf = np.exp(-2 * np.pi ** 2 * ((sy * ky) ** 2 + (sx * kx) ** 2)).astype(a.dtype)
    out = sfft.irfft2(sfft.rfft2(a, s=shp) * tf, s=shp)
    return out[: a.shape[0], : a.shape[1]]


def random_field(rng, shape, sigma_px):
    """Smooth Gaussian random field (float32) with unit SD (periodic on a fast FFT size, cropped)."""
    shp = fast_shape(shape)
    f = _smooth(rng.standard_normal(shp, dtype=np.float32), sigma_px)[: shape[0], : shape[1]]
    f = f - f.mean()
    return f / f.std()


def random_profile(rng, n, sigma_px):
    """Smooth random 1D profile with unit standard deviation (layer boundaries)."""
    k = np.fft.rfftfreq(n)
    f = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * np.exp(-2 * np.pi ** 2 * (sigma_px * k) ** 2), n=n)
    f = f - f.mean()
    return f / f.std()


def ramp(x):
    """Soft step: 0 for x <= 0, 1 for x >= 1, smooth in between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


__all__ = ["fast_shape", "random_field", "random_profile", "ramp"]
