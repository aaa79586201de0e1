"""A synthetic image data set whose classes can only be told apart at a large scale.

Why
---
The seed model of the project (four 3x3 convolutions with 2x2 max pooling, then
global average pooling) sees at most a 38x38 pixel window of its 128x128 input:
every unit before the global pool has a 38 px receptive field, and the pool then
averages those local answers over positions. A data set whose classes differ only in
*global* arrangement is exactly the case where such a model must fail while a model
with a larger receptive field (more pooling/strides, dilation, or a dense head on a
spatial map) can succeed. This module draws such a data set deterministically, so the
probes and the demo can show the difference on a laptop without downloading anything.

Design
------
* **One vocabulary of local primitives for every class.** Every mark in every image
  is a stamp from one bank: a short anti-aliased stroke (5-9 px long, about 2 px
  wide, at any of 24 orientations) or a small soft dot, at a random intensity. Which
  stamp, its orientation and its intensity never depend on the class.
* **Classes are large outlines made of those primitives.** Class ``k`` is the outline
  of ``SHAPES[k]``: circle, square, triangle, cross, ellipse, two parallel bars, U, H,
  Z, arc (3/4 circle), spiral, X (arms at 50 degrees) and a five-pointed star, drawn as
  a chain of primitives every 6 px along the outline with 1 px perpendicular jitter.
  Corners and crossings get no mark of their own, and every outline is broken by a
  few random 10-20 px gaps, so chain *ends* occur in every class.
* **The same ink in every class.** The outline length is drawn from one distribution
  (150-320 px) for every class and the radius follows from it (clamped to 28-58 px,
  so shapes span 56-116 px): a long outline (star) is drawn smaller, a short one
  (cross, bars) larger, and the number of outline marks does not tell the class. The
  shapes were chosen with unit outline lengths of 3.5-7 for this (hence ellipse, U, H,
  Z, spiral and a two-bar pair rather than a ring, L, T, one diagonal or concentric
  circles, whose lengths differ several-fold).
* **Clutter of the same primitives.** One more primitive lies somewhere in each
  20 px cell of a grid over the image (about 42 per image), whatever the class.
* **Jitter removes the cheap global cues.** Position, rotation (uniform over the full
  circle, so the chain direction carries no class information), mirror flip,
  background and stroke colours, a smooth background gradient and blotchy noise
  (4 px cells) are drawn independently of the class.

Consequently a window of about 32-38 px shows a few primitives, sometimes a short
piece of chain, and looks much alike across classes; the class is in the arrangement
over 60-110 px. Measured (``tests/test_probe_data.py``, 780 images at 128 px, logistic
regression, chance 0.077, seeds 0-3): a bag of visual words over 32x32 windows (the
kind of evidence a 38 px receptive field followed by global average pooling can use)
scores 0.13-0.18, while a rotation-invariant whole-image descriptor scores 0.33-0.36.
In PyTorch (Adam 1e-3, batch 64, 2,080 training images, two runs), the seed
architecture (38 px receptive field + global average pooling) stayed at chance
(validation accuracy 0.07-0.11, training loss 2.54 against ln 13 = 2.56) for three
epochs, while the same kind of network with two more conv/pool stages (receptive
field over 128 px) reached 0.31-0.39 and was still climbing.
Residual local cues are real but small: curvature (circle, arc, spiral, ellipse) and
the star's sharp points.

Everything is drawn with numpy (stamps from a precomputed bank, max-composited);
Pillow only encodes PNG. Each image has its own generator seeded from
``(seed, class, index)``, so the same seed gives byte-identical files, in any order.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "ellipse", "bars", "U", "H",
          "Z", "arc", "spiral", "X", "star")

_PAD = 8            # canvas padding so stamps never need clipping
_SPACING = 6.0           # px between primitives along an outline (at 128 px)
_OUTLINE_PX = (150, 320)  # outline length in px (at 128 px), the same for every class ...
_RADIUS_PX = (28, 58)     # ... within these radii (so the outline stays on the canvas)
_GAPS = 2.0               # mean number of gaps in an outline
_CELL = 20.0              # px, background grid cell holding one clutter primitive


# -- shapes: polylines inside the unit disc ----------------------------------------------

def _circle(r, a0=0.0, a1=2 * math.pi, n=96):
    t = np.linspace(a0, a1, n)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _poly(*pts, closed=False):
    p = np.array(pts, dtype=np.float64)
    return np.vstack([p, p[:1]]) if closed else p


def _star(points=5, outer=1.0, inner=0.42):
    ang = np.arange(2 * points) * math.pi / points - math.pi / 2
    rad = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return _poly(*np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1), closed=True)


def _spiral(turns=1.25, r0=0.3, n=160):
    t = np.linspace(0.0, 1.0, n)
    a = 2 * math.pi * turns * t
    r = r0 + (1 - r0) * t
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _ellipse(a=0.98, b=0.5, n=128):
    t = np.linspace(0, 2 * math.pi, n)
    return np.stack([a * np.cos(t), b * np.sin(t)], axis=1)


def _shape_polylines(name: str) -> list:
    """Polylines (arrays of (x, y)) of one class's outline, all within radius 1.

    Unit outline lengths lie between 4.0 and 7.1 so that, drawn at a common outline
    length, every class fits the canvas at a radius of 28-58 px."""
    s = math.sqrt(0.5) * 0.98
    tri = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    xh = math.radians(25)  # the X's arms cross at 50 degrees, the cross's at 90
    return {
        "circle": [_circle(0.95)],
        "square": [_poly((-s, -s), (s, -s), (s, s), (-s, s), closed=True)],
        "triangle": [_poly(*tri, closed=True)],
        "cross": [_poly((-1, 0), (1, 0)), _poly((0, -1), (0, 1))],
        "ellipse": [_ellipse()],
        "bars": [_poly((x, -math.sqrt(0.97 - x * x)), (x, math.sqrt(0.97 - x * x))) for x in (-0.45, 0.45)],
        "U": [_poly((-0.65, -0.75), (-0.65, 0.65), (0.65, 0.65), (0.65, -0.75))],
        "H": [_poly((-0.5, -0.85), (-0.5, 0.85)), _poly((0.5, -0.85), (0.5, 0.85)), _poly((-0.5, 0), (0.5, 0))],
        "Z": [_poly((-0.7, -0.7), (0.7, -0.7), (-0.7, 0.7), (0.7, 0.7))],
        "arc": [_circle(0.95, 0.0, math.pi * 1.5)],
        "spiral": [_spiral()],
        "X": [_poly((-math.cos(xh), -math.sin(xh)), (math.cos(xh), math.sin(xh))),
              _poly((-math.cos(xh), math.sin(xh)), (math.cos(xh), -math.sin(xh)))],
        "star": [_star()],
    }[name]


def _length(polys) -> float:
    return float(sum(np.hypot(*np.diff(p, axis=0).T).sum() for p in polys))


_UNIT = {name: _shape_polylines(name) for name in SHAPES}
_UNIT_LENGTH = {name: _length(polys) for name, polys in _UNIT.items()}


def _sample_polyline(poly: np.ndarray, spacing: float, rng):
    """Points along a polyline every ``spacing`` (in its own units), random phase."""
    seg = np.diff(poly, axis=0)
    seglen = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seglen)])
    total = cum[-1]
    n = max(1, int(total / spacing))
    d = (rng.random() + np.arange(n)) * (total / n)
    idx = np.clip(np.searchsorted(cum, d, side="right") - 1, 0, len(seglen) - 1)
    frac = (d - cum[idx]) / np.maximum(seglen[idx], 1e-9)
    pts = poly[idx] + seg[idx] * frac[:, None]
    normal = np.stack([-seg[idx, 1], seg[idx, 0]], axis=1) / np.maximum(seglen[idx], 1e-9)[:, None]
    return pts, normal, d


# -- the primitive bank ------------------------------------------------------------------

_BANKS: dict = {}


def _stamp_bank(scale: float):
    """Stamps (k, k) float32 in [0, 1]: strokes at 24 orientations x 3 lengths, 2 dots."""
    key = round(scale, 4)
    if key in _BANKS:
        return _BANKS[key]
    half = max(2, int(math.ceil(6 * scale)))
    k = 2 * half + 1
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    stamps = []
    width = max(0.6, 0.9 * scale)
    for length in (5.0, 7.0, 9.0):
        hl = max(1.0, length * scale / 2)
        for i in range(24):
            th = math.pi * i / 24
            ux, uy = math.cos(th), math.sin(th)
            t = np.clip(xx * ux + yy * uy, -hl, hl)
            dist = np.hypot(xx - t * ux, yy - t * uy)
            stamps.append(np.clip(width + 0.5 - dist, 0.0, 1.0))
    for sigma in (1.3, 1.8):
        sg = max(0.6, sigma * scale)
        stamps.append(np.clip(1.4 * np.exp(-(xx ** 2 + yy ** 2) / (2 * sg * sg)), 0.0, 1.0))
    bank = np.stack(stamps).astype(np.float32)
    _BANKS[key] = (bank, half)
    return _BANKS[key]


# -- one image -------------------------------------------------------------------------

def render(label: int, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """One (size, size, 3) uint8 image of class ``label`` (0..12) drawn from ``rng``."""
    name = SHAPES[label % len(SHAPES)]
    scale = size / 128.0
    bank, half = _stamp_bank(scale)
    n_stamps = len(bank)

    # global placement: independent of the class, except that the radius is set so that
    # every class's outline has the same length distribution (so the same ink)
    radius = float(np.clip(rng.uniform(*_OUTLINE_PX) / _UNIT_LENGTH[name], *_RADIUS_PX)) * scale
    length = radius * _UNIT_LENGTH[name]
    margin = max(0.0, size / 2 - radius - 3 * scale)
    cx, cy = size / 2 + rng.uniform(-margin, margin, size=2)
    rot = rng.uniform(0, 2 * math.pi)
    flip = 1.0 if rng.random() < 0.5 else -1.0
    c, s = math.cos(rot), math.sin(rot)
    rmat = np.array([[c, -s], [s, c]]) * radius
    rmat[:, 1] *= flip

    # the outline: a chain of primitives, broken by a few random gaps (every class gets
    # gaps, so chain ends are no cue to the class)
    spacing = _SPACING * scale / radius
    gaps = rng.uniform(0, length, size=int(rng.poisson(_GAPS)))
    gap_len = rng.uniform(10, 20, size=len(gaps)) * scale
    outline, offset = [], 0.0
    for poly in _UNIT[name]:
        pts, normal, d = _sample_polyline(poly, spacing, rng)
        d = d * radius + offset
        offset += _length([poly]) * radius
        keep = np.ones(len(d), bool)
        for g, gl in zip(gaps, gap_len):
            keep &= np.abs(d - g) > gl / 2
        pts = pts @ rmat.T + (cx, cy)
        normal = normal @ rmat.T / radius
        pts = pts + normal * rng.normal(0, 1.0 * scale, size=(len(pts), 1))
        outline.append(pts[keep])
    outline = np.vstack(outline)

    # background clutter of the same primitives: one per grid cell, anywhere in it
    cell = _CELL * scale
    n = int(math.ceil(size / cell))
    grid = np.stack(np.mgrid[0:n, 0:n][::-1].reshape(2, -1), axis=1) * cell
    clutter = grid + rng.uniform(0, cell, size=grid.shape)
    clutter = clutter[(clutter < size).all(axis=1)]
    pts = np.vstack([outline, clutter])

    # primitives: stroke/dot choice, orientation and intensity independent of class
    kinds = rng.integers(0, n_stamps - 2, size=len(pts))
    dots = rng.random(len(pts)) < 0.15
    kinds[dots] = n_stamps - 2 + rng.integers(0, 2, size=int(dots.sum()))
    inten = rng.uniform(0.55, 1.0, size=len(pts)).astype(np.float32)

    alpha = np.zeros((size + 2 * _PAD + 2 * half, size + 2 * _PAD + 2 * half), np.float32)
    k = 2 * half + 1
    ij = np.rint(pts).astype(np.int64) + _PAD
    ok = (ij[:, 0] >= 0) & (ij[:, 1] >= 0) & (ij[:, 0] < size + 2 * _PAD) & (ij[:, 1] < size + 2 * _PAD)
    for (x, y), kind, a in zip(ij[ok], kinds[ok], inten[ok]):
        view = alpha[y:y + k, x:x + k]
        np.maximum(view, bank[kind] * a, out=view)
    alpha = alpha[_PAD + half:_PAD + half + size, _PAD + half:_PAD + half + size]

    # colours, smooth background, noise: independent of the class
    bg = rng.uniform(0.05, 0.45, size=3)
    fg = rng.uniform(0.6, 1.0, size=3)
    g = rng.normal(0, 0.06, size=2)
    ramp = (np.arange(size) / size - 0.5).astype(np.float32)
    shade = g[0] * ramp[None, :] + g[1] * ramp[:, None]
    img = bg[None, None, :] + shade[:, :, None] + alpha[:, :, None] * (fg - bg)[None, None, :]
    blotch = rng.normal(0, 0.015, size=(-(-size // 4), -(-size // 4), 3))  # sensor-like noise, 4 px cells
    img = img + np.repeat(np.repeat(blotch, 4, axis=0), 4, axis=1)[:size, :size]
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def _counts(classes: int, count: int) -> list:
    base, extra = divmod(int(count), int(classes))
    return [base + (1 if c < extra else 0) for c in range(classes)]


def _rng(seed: int, label: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(label), int(index)])


def class_names(classes: int = 13) -> list:
    return [f"class_{c:02d}" for c in range(classes)]


def synth_dataset_arrays(*, classes: int = 13, size: int = 128, count: int = 650, seed: int = 0):
    """The same images as :func:`write_synthetic`, in memory.

    Returns ``(x, y, class_names)``: x uint8 (N, size, size, 3), y int64 (N,), class by
    class in order (shuffle or split downstream)."""
    if not 1 <= classes <= len(SHAPES):
        raise ValueError(f"classes must be 1..{len(SHAPES)}, got {classes}")
    counts = _counts(classes, count)
    x = np.empty((sum(counts), size, size, 3), np.uint8)
    y = np.empty(sum(counts), np.int64)
    i = 0
    for label, n in enumerate(counts):
        for j in range(n):
            x[i] = render(label, _rng(seed, label, j), size)
            y[i] = label
            i += 1
    return x, y, class_names(classes)


def _write_chunk(out: str, name: str, label: int, start: int, stop: int, size: int, seed: int) -> int:
    from PIL import Image

    folder = Path(out) / name
    for j in range(start, stop):
        img = render(label, _rng(seed, label, j), size)
        Image.fromarray(img, "RGB").save(folder / f"img_{j:05d}.png", format="PNG", compress_level=1)
    return stop - start


def write_synthetic(out_dir, *, classes: int = 13, size: int = 128, count: int = 8000, seed: int = 0,
                    progress: Optional[Callable[[int, int], None]] = None, workers: Optional[int] = None) -> dict:
    """Write ``count`` PNG images in class folders ``class_00 .. class_{classes-1}``.

    Same seed -> byte-identical files (each file depends only on seed, class and index,
    so the number of ``workers`` processes does not matter; default: up to 4 CPUs).
    ``progress(done, total)`` is called after every chunk of images. Returns a small
    description (path, class names, shape per class, counts, size, seed)."""
    from ..errors import need

    need("PIL", "writing synthetic images")  # fail early, before any worker starts

    if not 1 <= classes <= len(SHAPES):
        raise ValueError(f"classes must be 1..{len(SHAPES)}, got {classes}")
    out = Path(out_dir)
    counts = _counts(classes, count)
    names = class_names(classes)
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
    chunk = 100
    jobs = [(os.fspath(out), names[label], label, a, min(a + chunk, n), size, seed)
            for label, n in enumerate(counts) for a in range(0, n, chunk)]
    total, done = sum(counts), 0
    workers = min(4, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    pool = None
    if workers > 1 and len(jobs) > 1:
        try:
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(max_workers=workers)
        except (ImportError, OSError, NotImplementedError):
            pool = None  # no processes here: draw in this one
    if pool is None:
        for job in jobs:
            done += _write_chunk(*job)
            if progress is not None:
                progress(done, total)
    else:
        from concurrent.futures import as_completed

        with pool:
            for fut in as_completed([pool.submit(_write_chunk, *job) for job in jobs]):
                done += fut.result()
                if progress is not None:
                    progress(done, total)
    return {"path": os.fspath(out), "classes": names, "shapes": dict(zip(names, SHAPES)),
            "counts": dict(zip(names, counts)), "size": [size, size], "seed": seed}
