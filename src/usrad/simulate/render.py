"""B-mode image formation of one simulated patient: field of view, masks, tissue, lesion, attenuation, speckle.

Images are 2D B-mode made the physical way: random scatterers whose backscatter follows a tissue map
(skin, fat, fibroglandular tissue, muscle, lesion), depth attenuation with time-gain compensation
(so a strongly attenuating lesion casts a soft posterior shadow), convolution with a Gaussian
point-spread function in complex baseband (IQ), two-look spatial compounding, envelope detection and
log compression to 8 bits. :func:`render_patient` runs the steps in a fixed order, each drawing from the
patient's image generator in turn, so that the same generator gives the same image.

Each patient is scanned on one of two devices (:data:`DEVICES`; device 1 with P = 0.4, drawn independently of
the latents), which differ in PSF width (speckle size, resolution), dynamic range and grey-level gain
(:data:`DEVICE_SETTINGS`). ``device_effect`` scales that difference: device 1's settings are device 0's plus
``device_effect`` times today's difference, so 1.0 (the default) gives the demo cohort's images exactly, 0 makes
the two devices identical and larger values make a stronger, known batch effect (for testing harmonisation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from .fields import fast_shape, ramp, random_field, random_profile, side_generator
from .lesion import THETA, effect_strength, inside_contour, lesion_frame, lesion_radius, reader_radius

DEVICES = ("SimUS L12-5", "SimUS L9-3")
#: Per device (as in :data:`DEVICES`): axial and lateral PSF sigma (mm), dynamic range (dB) and the grey level of
#: fibroglandular tissue (gain), at ``device_effect`` 1. Device 0 is the reference that ``device_effect`` scales from.
DEVICE_SETTINGS = ((0.10, 0.30, 62.0, 104.0), (0.13, 0.38, 66.0, 98.0))


def device_settings(dev: int, device_effect: float = 1.0) -> tuple:
    """``(sig_ax, sig_lat, dyn, gain)`` of device ``dev``: the reference (device 0) plus ``device_effect`` times the
    device's difference from it (exactly :data:`DEVICE_SETTINGS` at 1.0; device 0's settings at 0)."""
    ref, own = DEVICE_SETTINGS[0], DEVICE_SETTINGS[dev]
    if device_effect == 1.0:
        return own
    return tuple(r + device_effect * (o - r) for r, o in zip(ref, own))


@dataclass(frozen=True)
class _Frame:
    """The field of view of one image: pixel grid (mm), layer thickness and the lesion's centre and tilt."""

    spacing: float
    H: int  # noqa: N815 (rows, as in the formulas)
    W: int  # noqa: N815 (columns)
    depth: float
    fat: float
    cy: float
    cx: float
    tilt: float
    ycoord: np.ndarray
    xcoord: np.ndarray

    @property
    def y(self) -> np.ndarray:
        """Depth of the pixel rows (mm), a column for broadcasting (all full-frame maps are float32)."""
        return self.ycoord[:, None]

    @property
    def x(self) -> np.ndarray:
        """Lateral position of the pixel columns (mm), a row for broadcasting."""
        return self.xcoord[None, :]

    @property
    def px(self) -> float:
        """Pixels per mm."""
        return 1.0 / self.spacing


def render_patient(rng: np.random.Generator, latent: dict, device_effect: float = 1.0,
                   device: int | None = None) -> dict:
    """Render one B-mode image with its true lesion mask and two reader masks.

    Returns a dict with ``image`` (uint8, rows = depth), ``mask``, ``mask_r1``, ``mask_r2`` (uint8 0/1),
    ``spacing`` (mm, isotropic), ``device`` and ``lesion_depth_mm``. ``device_effect`` (>= 0) scales the
    difference between the devices (:func:`device_settings`). ``device`` (0 or 1) scans the patient on that
    device instead of the drawn one; the draw is still made, so everything else in the image stays the same.
    """
    m, h, e = latent["margin_irregularity"], latent["heterogeneity"], latent["echogenicity_loss"]
    size = latent["size_mm"]
    qm, qh, qe = effect_strength(m), effect_strength(h), effect_strength(e)
    if device not in (None, 0, 1):
        raise ValueError(f"device must be None, 0 or 1, got {device!r}")
    drawn = int(rng.random() < 0.4)  # independent of the latents; drawn even when ``device`` is given
    dev = drawn if device is None else int(device)
    aspect = float(np.clip(rng.normal(0.72 + 0.08 * qm, 0.08), 0.5, 1.0))
    tilt = rng.normal(0, 0.15)
    r_true = lesion_radius(rng, m, aspect, size)
    r_read = [reader_radius(rng, r_true), reader_radius(rng, r_true)]
    f = _field_of_view(rng, r_true, tilt)
    box, u, v, (inside, r1, r2) = _masks(f, r_true, r_read)
    db, skin, is_fat, is_mus = _tissue(rng, f)
    _lesion(rng, f, db, box, u, v, inside, r_true, (qm, qh, qe), size)
    reference = ~inside & ~is_fat & ~is_mus & (f.y > skin[None, :] + 0.5)  # sets the grey scale (_bmode)
    rim = None  # the peritumoral reaction: its own generator, added after the grey scale is set (the rest is kept)
    if latent.get("peritumoral_weight"):
        rim = _peritumoral(side_generator(rng, 0), f, box, inside, effect_strength(latent["peritumoral"]))
    amp = _attenuated_amplitude(rng, f, db, inside, qe)
    image = _bmode(rng, f, amp, device_settings(dev, device_effect), reference, rim)
    return {
        "image": image, "mask": inside.astype(np.uint8), "mask_r1": r1.astype(np.uint8),
        "mask_r2": r2.astype(np.uint8), "spacing": f.spacing, "device": DEVICES[dev],
        "lesion_depth_mm": float(f.cy),
    }


def _field_of_view(rng: np.random.Generator, r_true: np.ndarray, tilt: float) -> _Frame:
    """The sonographer sets depth (and the scanner the pixel size) so that the lesion fits."""
    fat = rng.uniform(3.0, 7.0)                        # skin + subcutaneous fat thickness, mm
    half_h = float(np.max(np.abs(r_true * np.sin(THETA + tilt))))
    half_w = float(np.max(np.abs(r_true * np.cos(THETA + tilt))))
    top = fat + rng.uniform(1.5, 6.0)
    cy = top + half_h
    depth = float(np.clip(cy + half_h + rng.uniform(10.0, 18.0), 30.0, 66.0))
    width_mm = max(38.0, 2 * half_w + 12.0)
    spacing = round(float(np.clip(max(depth / 420.0, width_mm / 440.0), 0.08, 0.15)), 4)
    H = int(min(450, round(depth / spacing)))  # noqa: N806
    depth = H * spacing
    W = int(np.clip(round(width_mm / spacing), 300, 450))  # noqa: N806
    cx = W * spacing / 2 + rng.uniform(-0.15, 0.15) * max(0.0, W * spacing - 2 * half_w - 4)
    ycoord = ((np.arange(H) + 0.5) * spacing).astype(np.float32)
    xcoord = ((np.arange(W) + 0.5) * spacing).astype(np.float32)
    return _Frame(spacing, H, W, depth, fat, cy, cx, tilt, ycoord, xcoord)


def _masks(f: _Frame, r_true: np.ndarray, r_read: list) -> tuple:
    """``(box, u, v, [true, reader 1, reader 2 masks])``: the masks are evaluated on a box around the lesion only
    (with room for the halo and image spicules); ``u, v`` are the box's lesion-frame coordinates (mm)."""
    H, W, spacing, cy, cx = f.H, f.W, f.spacing, f.cy, f.cx  # noqa: N806
    rmax = float(max(r.max() for r in [r_true, *r_read])) + 6.0
    y0, y1 = max(0, int((cy - rmax) / spacing)), min(H, int((cy + rmax) / spacing) + 2)
    x0, x1 = max(0, int((cx - rmax) / spacing)), min(W, int((cx + rmax) / spacing) + 2)
    box = (slice(y0, y1), slice(x0, x1))
    u, v = lesion_frame(f.ycoord[box[0], None].astype(float), f.xcoord[None, box[1]].astype(float), cy, cx, f.tilt)
    rad, th = np.hypot(u, v), np.arctan2(v, u)
    masks = []
    for r in [r_true, *r_read]:
        mk = np.zeros((H, W), bool)
        mk[box] = inside_contour(r, rad, th)
        masks.append(mk)
    return box, u, v, masks


def _tissue(rng: np.random.Generator, f: _Frame) -> tuple:
    """``(db, skin, is_fat, is_mus)``: the tissue backscatter map (dB, relative to fibroglandular tissue), the skin
    line (mm) and the subcutaneous fat and muscle regions."""
    H, W, px, y, x = f.H, f.W, f.px, f.y, f.x  # noqa: N806
    skin = 1.5 + 0.15 * random_profile(rng, W, 15 * px)
    fat_bot = f.fat + 1.0 * random_profile(rng, W, 5 * px)
    musc = f.depth - rng.uniform(4.0, 9.0) + 0.8 * random_profile(rng, W, 12 * px)
    # tissue textures follow the undulating layers: every column is shifted by a smooth, depth-varying amount
    t = f.ycoord[:, None] / f.depth
    shift = (2.0 * random_profile(rng, W, 4 * px)[None, :] * (1 - t) + 2.0 * random_profile(rng, W, 6 * px)[None, :] * t) * px
    rows = np.clip(np.round(np.arange(H)[:, None] + shift), 0, H - 1).astype(np.intp)

    def layered(sigma):
        return np.take_along_axis(random_field(rng, (H, W), sigma), rows, axis=0)

    fine = layered((0.15 * px, 0.5 * px))              # small-scale tissue echo variation
    coarse = layered((0.7 * px, 2.0 * px))             # glandular islands and fat islands
    septa = layered((0.6 * px, 3.0 * px))              # zero crossings: Cooper's ligaments, fat lobule septa
    lig = ramp(1.0 - np.abs(septa) / 0.14)
    # fibroglandular tissue: bright, mottled, with hypoechoic fat islands and bright ligaments
    db = 1.8 * fine + 2.6 * coarse
    island = ramp((-0.5 - coarse) / 0.6)
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
    db = np.where(is_mus, -9.0 + 1.5 * fine + 10.0 * ramp((stri - 0.7) / 0.2) * ramp(1.0 + 0.7 * septa), db)
    db = np.where(np.abs(y - musc[None, :]) < 0.25, 4.0 + 3.0 * fine, db)
    return db, skin, is_fat, is_mus


def _lesion(rng, f: _Frame, db, box, u, v, inside, r_true, strengths, size) -> None:
    """Paint the lesion into ``db`` (on the box): echogenic halo, thin spicules, hypoechoic core with patchy
    heterogeneity and a few calcifications. ``strengths``: the image effects ``(qm, qh, qe)``."""
    qm, qh, qe = strengths
    spacing, px = f.spacing, f.px
    sub = db[box]
    inb = inside[box]
    bshape = inb.shape
    d_out = ndimage.distance_transform_edt(~inb) * spacing               # mm outside the margin
    halo_var = ramp(0.55 + 0.45 * random_field(rng, bshape, 0.7 * px))        # soft, irregular, incomplete
    halo = np.exp(-d_out / (0.4 + 1.4 * qm)) * halo_var * (~inb)
    sub = sub + (2.0 + 9.0 * qm) * halo
    lines = _spicule_lines(rng, f, box, u, v, r_true, qm)
    sub = sub * (1 - lines) + (-8.0 - 6.0 * qe) * lines
    soft = ndimage.gaussian_filter(inb.astype(np.float32), 0.12 * px)
    les_level = -6.5 - 13.0 * qe
    mottle = 0.6 * random_field(rng, bshape, 0.45 * px) + 0.8 * random_field(rng, bshape, 1.1 * px)
    het = (0.3 + 7.5 * qh) * mottle
    sub = sub * (1 - soft) + (les_level + het) * soft
    iy, ix = np.nonzero(inb)
    n_calc = int(rng.poisson(0.3 + 6.0 * qh ** 2 * (size / 20.0)))
    if n_calc and iy.size:
        pick = rng.integers(0, iy.size, n_calc)
        sub[iy[pick], ix[pick]] = rng.uniform(12.0, 20.0, n_calc)
    db[box] = sub


PERITUMORAL_DB = 16.0  # backscatter (dB) of the strongest peritumoral reaction at the margin
PERITUMORAL_MM = 2.0  # its decay length outside the margin (mm): most of it within a 5 mm ring


def _peritumoral(rng, f: _Frame, box, inside, qp: float) -> np.ndarray:
    """The peritumoral reaction of strength ``qp`` (0-1), a full-frame map (dB) outside the lesion only: an echogenic
    rim (``PERITUMORAL_DB * qp`` at the margin, decaying over ``PERITUMORAL_MM``) broken up by coarse architectural
    distortion (a random field), so that both first-order and texture features of a ring see it."""
    inb = inside[box]
    d_out = ndimage.distance_transform_edt(~inb) * f.spacing
    distortion = random_field(rng, inb.shape, (0.4 * f.px, 0.9 * f.px))
    out = np.zeros(inside.shape, np.float32)
    out[box] = PERITUMORAL_DB * qp * np.exp(-d_out / PERITUMORAL_MM) * (~inb) * (0.55 + 0.45 * np.tanh(2.0 * distortion))
    return out


def _spicule_lines(rng, f: _Frame, box, u, v, r_true, qm) -> np.ndarray:
    """Thin hypoechoic spicules radiating from the margin, as a (box-shaped) map of their weight in 0-1."""
    spacing, cy, cx, tilt = f.spacing, f.cy, f.cx, f.tilt
    y0, x0 = box[0].start, box[1].start
    bshape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
    n_lines = int(rng.poisson(18 * qm ** 2))
    lines = np.zeros(bshape, np.float32)
    ct, st = np.cos(tilt), np.sin(tilt)
    for c, ln, wd in zip(rng.uniform(0, 2 * np.pi, n_lines), rng.uniform(1.0, 5.0, n_lines) * (0.3 + qm),
                         rng.uniform(0.06, 0.12, n_lines)):
        r_c = float(np.interp(c, THETA, r_true, period=2 * np.pi))
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
    return lines


def _attenuated_amplitude(rng, f: _Frame, db, inside, qe) -> np.ndarray:
    """Backscatter amplitude after attenuation: TGC cancels tissue attenuation imperfectly (residual slope: deeper
    is darker); the lesion's excess attenuation accumulates below it: a soft posterior shadow (or enhancement)."""
    excess = np.where(inside, np.float32(-0.3 + 1.3 * qe), np.float32(0.0))   # dB/mm round trip
    excess = ndimage.gaussian_filter1d(excess, 0.8 * f.px, axis=1)
    att = np.cumsum(excess, axis=0) * f.spacing
    att = np.where(inside, 0.3 * att, att)     # inside the lesion: TGC/sonographer partly compensate
    tgc = rng.normal(0.0, 0.8) - rng.uniform(0.1, 0.28) * f.y     # residual gain offset and slope, dB
    return np.sqrt(10.0 ** ((db - att + tgc) / 10.0) + 10.0 ** (-28.0 / 10.0))   # with electronic noise floor


def _bmode(rng, f: _Frame, amp, settings: tuple, reference, extra_db=None) -> np.ndarray:
    """Scatterers * PSF (complex baseband), envelope detection, log compression to 8 bits; the grey scale is set
    on the median of the ``reference`` region (fibroglandular tissue below the skin, outside the lesion).
    ``settings``: the device's ``(sig_ax, sig_lat, dyn, gain)`` (:func:`device_settings`); ``extra_db``: a map (dB)
    added to the envelope after the grey scale is set (the peritumoral reaction), None: none."""
    H, W, spacing = f.H, f.W, f.spacing  # noqa: N806
    sig_ax, sig_lat, dyn, gain = settings
    shp = fast_shape((H, W))
    ky = sfft.fftfreq(shp[0], d=spacing)
    kx = sfft.fftfreq(shp[1], d=spacing)
    otf = np.exp(-2 * np.pi ** 2 * ((sig_ax * ky[:, None]) ** 2 + (sig_lat * kx[None, :]) ** 2)).astype(np.float32)
    power = np.zeros((H, W), np.float32)
    for _ in range(2):        # spatial compounding: two steering angles = two independent speckle patterns
        re, im = rng.standard_normal((2, H, W), dtype=np.float32)
        iq = sfft.ifft2(sfft.fft2((re + 1j * im) * amp, s=shp) * otf)[:H, :W]
        power += iq.real ** 2 + iq.imag ** 2
    env_db = 10 * np.log10(power / 2 + 1e-12)
    ref = np.median(env_db[reference])
    if extra_db is not None:
        env_db = env_db + extra_db
    grey = ndimage.gaussian_filter(gain + (env_db - ref) * (255.0 / dyn), (0.5, 0.9))
    return np.clip(np.round(grey), 0, 255).astype(np.uint8)


__all__ = ["DEVICES", "DEVICE_SETTINGS", "device_settings", "render_patient"]
