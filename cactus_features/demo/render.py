"""Vectorised renderer of synthetic aerial desert tiles, with or without columnar cacti.

A batch of tiles is painted at twice the output size, layer by layer. Each layer
is vectorised over the batch: one loop step per object *slot*, never per image,
and each step touches only the tiles whose slot is in use.

1. ground: a palette colour (sand, brown, grey, purple-grey, red soil) modulated
   by value noise at several scales, light and dark pebbles and green or
   dry ground-cover patches;
2. an occasional road (smooth light band) or pair of vehicle tracks;
3. distractors in either class: thin dry sticks, dark bushes and round green
   shrubs, each with a shadow;
4. on positive tiles, one to four columnar cacti: ridged, cylinder-shaded capsules
   from pale sage to dark olive, leaning the same way (the oblique view), each
   with a cast shadow, sometimes cropped by the edge or partly hidden by a bush;
5. a 2x2 box downsample (antialiasing), then exposure, white balance, a
   brightness gradient, haze, slight blur, sensor noise and a random flip and
   rotation by a multiple of 90°.

Lengths are given in pixels of a 32-pixel tile (``unit``) and scaled to the
render grid, so other sizes show the same scenes at another resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

RENDER_SCALE = 2
"""Tiles are painted at this multiple of the output size, then box-downsampled."""

GROUND_PALETTE = np.array(
    [
        [0.70, 0.63, 0.55],  # sand
        [0.58, 0.50, 0.43],  # brown
        [0.53, 0.51, 0.50],  # grey
        [0.55, 0.49, 0.53],  # purple-grey
        [0.62, 0.53, 0.47],  # red soil
        [0.46, 0.43, 0.41],  # dark soil
    ],
    dtype=np.float32,
)
"""Base ground colours (RGB in 0..1)."""

CACTUS_PALETTE = np.array(
    [
        [0.72, 0.76, 0.66],  # pale sage
        [0.56, 0.62, 0.50],  # sage
        [0.45, 0.50, 0.33],  # olive
        [0.30, 0.38, 0.26],  # dark green
    ],
    dtype=np.float32,
)
"""Cactus colours; each cactus takes a random blend of two neighbours."""

MAX_CACTI = 4
MAX_SHRUBS = 4
MAX_STICKS = 3


@dataclass(frozen=True)
class _Canvas:
    """The render grid and the per-batch noise fields every layer shares.

    Attributes:
        n: Batch size.
        res: Render resolution (pixels per side).
        unit: Render pixels per pixel of a 32-pixel tile.
        x: Column coordinates of pixel centres, shape ``(1, res, res)``.
        y: Row coordinates of pixel centres, shape ``(1, res, res)``.
        ragged: Medium-scale noise ``(n, res, res)`` that roughens outlines.
        fine: Fine-scale noise ``(n, res, res)`` for foliage texture.
    """

    n: int
    res: int
    unit: float
    x: np.ndarray
    y: np.ndarray
    ragged: np.ndarray
    fine: np.ndarray


def render_aerial(labels: np.ndarray, *, size: int = 32, rng: np.random.Generator) -> np.ndarray:
    """Render one synthetic aerial tile per label.

    Args:
        labels: 0/1 array; 1 draws at least one cactus.
        size: Output side in pixels.
        rng: The random generator; the same generator state gives the same pixels.

    Returns:
        ``uint8`` array of shape ``(len(labels), size, size, 3)``.
    """
    labels = np.asarray(labels).astype(bool)
    canvas = _make_canvas(rng, len(labels), size)
    img, mean = _ground(rng, canvas)
    img = _road(rng, canvas, img, mean)
    img = _sticks(rng, canvas, img, mean)
    light = _unit_vectors(rng.uniform(0, 2 * np.pi, canvas.n))
    img = _shrubs(rng, canvas, img, light, green_share=np.where(labels, 0.25, 0.45))
    img = _cacti(rng, canvas, img, light, labels)
    img = _occluders(rng, canvas, img, light)
    return _finish(rng, img, size)


def _make_canvas(rng: np.random.Generator, n: int, size: int) -> _Canvas:
    """The render grid and shared noise fields for ``n`` tiles of ``size`` pixels."""
    res = size * RENDER_SCALE
    coords = np.arange(res, dtype=np.float32) + 0.5
    y, x = np.meshgrid(coords, coords, indexing="ij")
    return _Canvas(
        n=n,
        res=res,
        unit=res / 32.0,
        x=x[None],
        y=y[None],
        ragged=_noise(rng, n, res, res // 6),
        fine=_speckle(rng, n, res, sigma=0.75 * res / 32.0),
    )


def _col(values: np.ndarray | float) -> np.ndarray:
    """Reshape per-image scalars to broadcast against ``(n, res, res)`` maps."""
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)


def _rgb(values: np.ndarray) -> np.ndarray:
    """Reshape per-image colours ``(n, 3)`` to broadcast against ``(n, res, res, 3)``."""
    return np.asarray(values, dtype=np.float32)[:, None, None, :]


def _unit_vectors(angles: np.ndarray) -> np.ndarray:
    """Unit vectors ``(n, 2)`` as (x, y) for the given angles."""
    return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def _jitter(rng: np.random.Generator, colour: list[float], n: int) -> np.ndarray:
    """``n`` variations ``(n, 3)`` of one colour: brightness ±12 %, hue barely."""
    brightness = rng.normal(1.0, 0.12, (n, 1))
    return np.asarray(colour) * brightness * rng.normal(1.0, 0.02, (n, 3))


def _paint(img: np.ndarray, idx: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Paint ``colour`` over tiles ``img[idx]`` in place with coverage ``alpha``.

    Args:
        img: The batch ``(n, res, res, 3)``.
        idx: Indices of the tiles to paint.
        alpha: Coverage ``(len(idx), res, res)``.
        colour: Per-tile ``(len(idx), 1, 1, 3)`` or per-pixel colour.
    """
    sub = img[idx]
    sub += (colour - sub) * alpha[..., None]
    img[idx] = sub


def _darken(img: np.ndarray, idx: np.ndarray, amount: np.ndarray) -> None:
    """Multiply tiles ``img[idx]`` in place by ``1 - amount`` (a shadow)."""
    img[idx] *= (1.0 - amount)[..., None]


def _noise(rng: np.random.Generator, n: int, res: int, cells: int) -> np.ndarray:
    """Smooth value noise with ``cells`` lattice cells per side, shape ``(n, res, res)``.

    The lattice is interpolated with smoothstep weights as two matrix products.
    """
    lattice = rng.standard_normal((n, cells + 1, cells + 1), dtype=np.float32)
    pos = (np.arange(res, dtype=np.float32) + 0.5) * (cells / res)
    i0 = np.minimum(pos.astype(np.int64), cells - 1)
    f = pos - i0
    f = f * f * (3.0 - 2.0 * f)
    weights = np.zeros((res, cells + 1), dtype=np.float32)
    weights[np.arange(res), i0] = 1.0 - f
    weights[np.arange(res), i0 + 1] = f
    return weights @ lattice @ weights.T


def _speckle(rng: np.random.Generator, n: int, res: int, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise of unit variance, shape ``(n, res, res)``.

    Unlike lattice noise its blobs fall anywhere, so small features do not line up.
    """
    white = rng.standard_normal((n, res, res), dtype=np.float32)
    white *= np.float32(2.0 * np.sqrt(np.pi) * sigma)
    return gaussian_filter(white, sigma=(0, sigma, sigma), mode="wrap", truncate=3.0)


def _soft(signed_distance: np.ndarray) -> np.ndarray:
    """Coverage from a signed distance (negative inside), one render pixel of antialiasing."""
    return np.clip(0.5 - signed_distance, 0.0, 1.0)


def _capsule(
    canvas: _Canvas,
    centre: np.ndarray,
    direction: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed distance to a capsule (segment with round caps) and its local coordinates.

    Args:
        canvas: The render grid.
        centre: ``(m, 2)`` centres in render pixels.
        direction: ``(m, 2)`` unit axis vectors.
        length: ``(m,)`` segment lengths (render pixels, caps excluded).
        width: ``(m,)`` widths (render pixels).

    Returns:
        ``(distance, along, across)``: signed distance (negative inside) and the
        coordinates along and across the axis, each ``(m, res, res)``.
    """
    dx = canvas.x - _col(centre[:, 0])
    dy = canvas.y - _col(centre[:, 1])
    along = dx * _col(direction[:, 0]) + dy * _col(direction[:, 1])
    across = dy * _col(direction[:, 0]) - dx * _col(direction[:, 1])
    beyond = np.maximum(np.abs(along) - _col(length) / 2, 0.0)
    return np.sqrt(beyond * beyond + across * across) - _col(width) / 2, along, across


def _ground(rng: np.random.Generator, canvas: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Textured bare ground with pebbles and ground cover.

    Returns:
        The batch ``(n, res, res, 3)`` and each tile's base colour ``(n, 3)``.
    """
    n, res = canvas.n, canvas.res
    base = GROUND_PALETTE[rng.integers(0, len(GROUND_PALETTE), n)]
    base = base * rng.normal(1.0, 0.03, (n, 3)) * rng.uniform(0.85, 1.15, (n, 1))
    texture = (
        0.6 * _noise(rng, n, res, 2)
        + 0.5 * _noise(rng, n, res, 4)
        + 0.35 * _noise(rng, n, res, res // 8)
        + 0.25 * canvas.ragged
    )
    lum = 1.0 + _col(rng.uniform(0.04, 0.12, n)) * texture
    lum += _col(rng.uniform(0.02, 0.07, n)) * rng.standard_normal((n, res, res), dtype=np.float32)
    _pebbles(rng, canvas, lum)
    img = lum[..., None] * _rgb(base)
    _ground_cover(rng, canvas, img)
    return img, base.astype(np.float32)


def _pebbles(rng: np.random.Generator, canvas: _Canvas, lum: np.ndarray) -> None:
    """Small light and dark stones on the luminance map, in place.

    Light stones sit on the peaks of the fine noise, dark ones in its troughs.
    """
    n = canvas.n
    for sign, shade in ((1.0, 1.4), (-1.0, 0.65)):
        density = _col(rng.uniform(1.8, 3.0, n) + 5.0 * (rng.random(n) < 0.3))
        alpha = np.clip((sign * canvas.fine - density) * 2.0, 0.0, 1.0)
        lum += (_col(shade * rng.normal(1.0, 0.05, n)) - lum) * alpha


def _ground_cover(rng: np.random.Generator, canvas: _Canvas, img: np.ndarray) -> None:
    """Tint low-frequency patches of some tiles towards green cover or dry grass, in place."""
    n, res = canvas.n, canvas.res
    cover = rng.uniform(-0.5, 1.6, n)
    green = rng.random(n) < 0.6
    tint = np.where(
        green[:, None],
        _jitter(rng, [0.42, 0.48, 0.30], n),
        _jitter(rng, [0.58, 0.55, 0.44], n),
    )
    idx = np.flatnonzero((rng.random(n) < 0.55) & (cover > -0.2))
    patches = _noise(rng, len(idx), res, 3) + 0.5 * _noise(rng, len(idx), res, 6)
    sparse = np.clip(0.6 + 0.8 * canvas.fine[idx], 0.0, 1.0)
    alpha = np.clip(patches - _col(1.2 - cover[idx]), 0.0, 1.0) * sparse * 0.7
    leafy = (1.0 + 0.2 * canvas.fine[idx])[..., None] * _rgb(tint[idx])
    _paint(img, idx, alpha, leafy)


def _road(
    rng: np.random.Generator, canvas: _Canvas, img: np.ndarray, mean: np.ndarray
) -> np.ndarray:
    """A smooth light road in about a sixth of tiles, a pair of tracks in another sixth."""
    n, u = canvas.n, canvas.unit
    kind = rng.choice(3, size=n, p=[0.68, 0.16, 0.16])
    centre = rng.uniform(0, canvas.res, (n, 2))
    direction = _unit_vectors(rng.uniform(0, np.pi, n))
    far = np.full(n, 4.0 * canvas.res)
    road = np.flatnonzero(kind == 1)
    dist, _, _ = _capsule(
        canvas, centre[road], direction[road], far[road], rng.uniform(5, 14, n)[road] * u
    )
    alpha = _soft(dist / (1.5 * u)) * _col(rng.uniform(0.6, 0.95, n)[road])
    _paint(
        img, road, alpha, _rgb(np.clip(mean[road] * rng.uniform(1.05, 1.25, (len(road), 1)), 0, 1))
    )
    tracks = np.flatnonzero(kind == 2)
    normal = np.stack([-direction[:, 1], direction[:, 0]], axis=1)
    gap = rng.uniform(2.5, 5.0, n) * u
    for side in (-0.5, 0.5):
        at = (centre + side * gap[:, None] * normal)[tracks]
        width = rng.uniform(0.7, 1.4, n)[tracks] * u
        dist, _, _ = _capsule(canvas, at, direction[tracks], far[tracks], width)
        _darken(img, tracks, _soft(dist) * _col(rng.uniform(0.15, 0.35, n)[tracks]))
    return img


def _sticks(
    rng: np.random.Generator, canvas: _Canvas, img: np.ndarray, mean: np.ndarray
) -> np.ndarray:
    """Thin dry sticks (pale or dark grey-brown), in either class."""
    n, u = canvas.n, canvas.unit
    for _ in range(MAX_STICKS):
        idx = np.flatnonzero(rng.random(n) < 0.22)
        m = len(idx)
        dist, _, _ = _capsule(
            canvas,
            rng.uniform(0, canvas.res, (m, 2)),
            _unit_vectors(rng.uniform(0, np.pi, m)),
            rng.uniform(3, 11, m) * u,
            rng.uniform(0.5, 1.4, m) * u,
        )
        shade = np.where(rng.random(m) < 0.5, 0.55, 1.35) * rng.uniform(0.9, 1.1, m)
        colour = np.clip(mean[idx] * shade[:, None] * [1.0, 0.97, 0.9], 0, 1)
        _paint(img, idx, _soft(dist) * 0.85, _rgb(colour))
    return img


def _blob(
    canvas: _Canvas,
    img: np.ndarray,
    idx: np.ndarray,
    *,
    centre: np.ndarray,
    radius: np.ndarray,
    colour: np.ndarray,
    shadow: np.ndarray,
) -> None:
    """Paint one irregular leafy bush on each tile ``img[idx]``, with its shadow, in place.

    Args:
        canvas: The render grid.
        img: The batch.
        idx: Tiles to paint.
        centre: ``(m, 2)`` bush centres (render pixels).
        radius: ``(m,)`` radii (render pixels).
        colour: ``(m, 3)`` foliage colours.
        shadow: ``(m, 2)`` shadow offsets (render pixels).
    """
    still = np.zeros(len(idx))
    axis = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(idx), 1))
    edge = canvas.ragged[idx] * _col(radius * 0.3)
    dist, _, _ = _capsule(canvas, centre + shadow, axis, still, 2 * radius)
    _darken(img, idx, 0.45 * _soft(dist + edge))
    dist, _, _ = _capsule(canvas, centre, axis, still, 2 * radius)
    rim = 0.85 + 0.25 * np.clip(-dist / _col(radius), 0.0, 1.0)
    foliage = ((1.0 + 0.3 * canvas.fine[idx]) * rim)[..., None] * _rgb(colour)
    _paint(img, idx, _soft(dist + edge), foliage)


def _shrub_colours(rng: np.random.Generator, green_share: np.ndarray) -> np.ndarray:
    """Shrub colours ``(m, 3)``: green (like cactus) with ``green_share``, else dark brown."""
    m = len(green_share)
    green = CACTUS_PALETTE[rng.integers(1, len(CACTUS_PALETTE), m)] * rng.uniform(0.8, 1.05, (m, 1))
    dark = _jitter(rng, [0.30, 0.27, 0.24], m)
    return np.where((rng.random(m) < green_share)[:, None], green, dark)


def _shadow_offsets(rng: np.random.Generator, light: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Shadow offsets ``(m, 2)`` away from the light, proportional to object size."""
    return -light * (radius[:, None] * rng.uniform(0.4, 0.8, (len(radius), 1)))


def _shrubs(
    rng: np.random.Generator,
    canvas: _Canvas,
    img: np.ndarray,
    light: np.ndarray,
    *,
    green_share: np.ndarray,
) -> np.ndarray:
    """Round green shrubs and dark bushes, the main distractors, in either class."""
    n, u = canvas.n, canvas.unit
    count = rng.choice(MAX_SHRUBS + 1, size=n, p=[0.45, 0.3, 0.15, 0.07, 0.03])
    for k in range(MAX_SHRUBS):
        idx = np.flatnonzero(count > k)
        radius = rng.uniform(1.2, 3.8, len(idx)) * u
        _blob(
            canvas,
            img,
            idx,
            centre=rng.uniform(-2, 34, (len(idx), 2)) * u,
            radius=radius,
            colour=_shrub_colours(rng, green_share[idx]),
            shadow=_shadow_offsets(rng, light[idx], radius),
        )
    return img


def _occluders(
    rng: np.random.Generator, canvas: _Canvas, img: np.ndarray, light: np.ndarray
) -> np.ndarray:
    """A bush painted last on some tiles, hiding whatever is under it (cacti included)."""
    idx = np.flatnonzero(rng.random(canvas.n) < 0.15)
    radius = rng.uniform(1.5, 3.5, len(idx)) * canvas.unit
    _blob(
        canvas,
        img,
        idx,
        centre=rng.uniform(4, 28, (len(idx), 2)) * canvas.unit,
        radius=radius,
        colour=_shrub_colours(rng, np.full(len(idx), 0.4)),
        shadow=_shadow_offsets(rng, light[idx], radius),
    )
    return img


def _cacti(
    rng: np.random.Generator,
    canvas: _Canvas,
    img: np.ndarray,
    light: np.ndarray,
    labels: np.ndarray,
) -> np.ndarray:
    """Columnar cacti on the positive tiles.

    The columns of a tile lean roughly the same way (the camera looks obliquely);
    in a third of tiles they grow as a clump from one base.
    """
    n, u = canvas.n, canvas.unit
    count = np.where(labels, rng.choice([1, 2, 3, 4], size=n, p=[0.5, 0.25, 0.15, 0.1]), 0)
    lean = rng.uniform(0, 2 * np.pi, n)
    clump = rng.random(n) < 0.3
    base = rng.uniform(4, 28, (n, 2)) * u
    tone = rng.uniform(0, len(CACTUS_PALETTE) - 1, n)
    for k in range(MAX_CACTI):
        idx = np.flatnonzero(count > k)
        m = len(idx)
        spread = np.where(clump[idx], 0.35, 0.15)
        direction = _unit_vectors(lean[idx] + rng.normal(0, 1, m) * spread)
        length = rng.uniform(4, 18, m) * u
        near = base[idx] + rng.normal(0, 2.5, (m, 2)) * u
        foot = np.where(clump[idx, None], near, rng.uniform(3, 29, (m, 2)) * u)
        _cactus(
            rng,
            canvas,
            img,
            idx,
            light=light[idx],
            centre=foot + direction * (length[:, None] / 2),
            direction=direction,
            length=length,
            width=rng.uniform(1.5, 3.4, m) * u,
            colour=_cactus_colour(rng, tone[idx] + rng.normal(0, 0.3, m)),
        )
    return img


def _cactus_colour(rng: np.random.Generator, tone: np.ndarray) -> np.ndarray:
    """Colours ``(m, 3)`` interpolated along :data:`CACTUS_PALETTE` at ``tone``."""
    tone = np.clip(tone, 0, len(CACTUS_PALETTE) - 1 - 1e-6)
    i = tone.astype(np.int64)
    f = (tone - i)[:, None]
    colour = CACTUS_PALETTE[i] * (1 - f) + CACTUS_PALETTE[i + 1] * f
    return colour * rng.uniform(0.9, 1.1, (len(tone), 1))


def _cactus(
    rng: np.random.Generator,
    canvas: _Canvas,
    img: np.ndarray,
    idx: np.ndarray,
    *,
    light: np.ndarray,
    centre: np.ndarray,
    direction: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    colour: np.ndarray,
) -> None:
    """Paint one cactus column on each tile ``img[idx]`` in place: cast shadow, then body.

    The body tapers a little towards the top, is cylinder-shaded towards the
    light, ridged along its length and a little brighter at the top.
    """
    m = len(idx)
    throw = -light * (width[:, None] * rng.uniform(0.6, 1.3, (m, 1)))
    dist, _, _ = _capsule(canvas, centre + throw, direction, length, width * 0.9)
    _darken(img, idx, _col(rng.uniform(0.25, 0.55, m)) * _soft(dist))
    _, along, across = _capsule(canvas, centre, direction, length, width)
    top = np.clip(along / _col(length / 2 + 1e-3), -1.0, 1.0)
    half = _col(width / 2) * (1.0 - _col(rng.uniform(0.0, 0.3, m)) * (top + 1.0) / 2)
    beyond = np.maximum(np.abs(along) - _col(length / 2), 0.0)
    dist = np.sqrt(beyond * beyond + across * across) - half
    t = np.clip(across / half, -1.0, 1.0)
    side = _col(light[:, 1] * direction[:, 0] - light[:, 0] * direction[:, 1])
    bulge = np.sqrt(1.0 - t * t)
    ridges = 1.0 + _col(rng.uniform(0.05, 0.15, m)) * np.cos(
        np.pi * _col(rng.integers(3, 6, m)) * t
    )
    tip = 1.0 + 0.12 * top
    shade = (0.62 + 0.38 * bulge + 0.18 * t * side) * ridges * tip
    _paint(img, idx, _soft(dist), shade[..., None] * _rgb(colour))


def _finish(rng: np.random.Generator, img: np.ndarray, size: int) -> np.ndarray:
    """Downsample 2x2, light, blur, add sensor noise, quantise, rotate and flip."""
    n = img.shape[0]
    img = img.reshape(n, size, RENDER_SCALE, size, RENDER_SCALE, 3).mean(axis=(2, 4))
    img = _lighting(rng, img)
    img = gaussian_filter(img, sigma=(0, 0.35, 0.35, 0), mode="nearest")
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    img += noise * _rgb(rng.uniform(0.005, 0.02, (n, 1)))
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    turns = rng.integers(0, 4, n)
    for k in range(1, 4):
        out[turns == k] = np.rot90(out[turns == k], k=k, axes=(1, 2))
    flips = rng.random(n) < 0.5
    out[flips] = out[flips, :, ::-1]
    return out


def _lighting(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Exposure, white balance, a linear brightness gradient and haze."""
    n, size = img.shape[:2]
    gain = rng.normal(1.0, 0.08, (n, 1)) * rng.normal(1.0, 0.025, (n, 3))
    slope = _unit_vectors(rng.uniform(0, 2 * np.pi, n)) * rng.uniform(0, 0.15, (n, 1))
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    ramp = (
        1.0 + coords[None, None, :] * _col(slope[:, 0]) + coords[None, :, None] * _col(slope[:, 1])
    )
    img = img * _rgb(gain) * ramp[..., None]
    haze = _col(rng.uniform(0.0, 0.2, n))[..., None]
    return img * (1.0 - haze) + haze * img.mean(axis=(1, 2), keepdims=True)
