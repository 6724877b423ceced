"""A seeded synthetic stand-in for the course file `mars_for_students.npz`.

`generate_course_dataset` returns arrays laid out exactly like the course file (plus the hidden test
labels), so the workflow runs end to end when no course file is at hand. numpy, scipy and numba.

What it imitates (see docs/FACTS.md):
- grey 64x128 NAVCAM-like tiles of Martian terrain: fine-grained soil with pebbles, layered and
  cracked bedrock slabs, smooth sand with ripples, bright big rocks with a lit and a shadow side;
  perspective towards a horizon in "top" tiles, brightness and contrast that vary between images;
- masks 0-4 whose background (0) means "not labelled": under it lies the same terrain (a far-range
  band below the horizon, patches or whole classes the labellers skipped, gaps along borders), plus
  sky and rover hardware, which are never labelled;
- class pixel shares of the course (24.3 / 33.9 / 23.3 / 18.4 / 0.13 %), Big Rock in about 2.5 %
  of the images;
- the outliers: `n_aliens` training images with a cartoon alien pasted in at varying size and place,
  all sharing ONE mask (53.1 % bg, 19.3 % soil, 9.7 % bedrock, 18.0 % sand); a few small groups of
  duplicate masks (size 2-5, size 2 on small sets) and a few all-background images (7 at course size).

The result is a pure function of the arguments (numpy `default_rng`; the smooth fields are summed
exactly, in compiled loops rather than BLAS, so the bytes do not depend on threads or CPU kernels).
Course size takes about 17 s on one core (median of `make bench` on a 2-core AMD EPYC).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib

import numba
import numpy as np
from scipy import ndimage
from scipy.special import ndtri

H, W = 64, 128
COURSE_N_TRAIN = 2615
_CHUNK = 128
_SPAN = 6  # at most this many tile heights of ground are seen in one tile (perspective)

# Shares of the alien mask (bg, soil, bedrock, sand); Big Rock is absent.
ALIEN_MASK_SHARES = (0.531, 0.193, 0.097, 0.180)

# Calibrated so that the clean training masks land on the course shares (see tests).
_CLASS_BIAS = np.array([0.66, -0.06, -0.50], dtype=np.float32)  # soil, bedrock, sand
_P_BIG_ROCK = 0.025  # images with at least one big rock (before background masking)


# ----------------------------------------------------------------------------------------------
# Smooth random fields: cubic B-splines on coarse Gaussian grids, several octaves summed on the
# finest grid, then evaluated per pixel with a per-image row map (perspective)
# ----------------------------------------------------------------------------------------------
def _bspline_taps(u: np.ndarray, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (4, *u.shape) and weights of the cubic B-spline at coordinates u, normalised so
    that unit-variance coefficients give a unit-variance value everywhere."""
    f = np.floor(u)
    t = (u - f).astype(np.float32)
    i0 = f.astype(np.int64) - 1
    t2 = t * t
    t3 = t2 * t
    w = np.stack(
        [
            (1 - t) ** 3 / 6,
            (3 * t3 - 6 * t2 + 4) / 6,
            (-3 * t3 + 3 * t2 + 3 * t + 1) / 6,
            t3 / 6,
        ]
    )
    w /= np.sqrt((w * w).sum(axis=0, keepdims=True))
    offs = np.arange(4).reshape((4,) + (1,) * u.ndim)
    idx = np.clip(i0[None] + offs, 0, n_in - 1)
    return idx, w.astype(np.float32)


def _spline_taps(u: np.ndarray, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """The 1-D spline with n_in coefficients evaluated at u, as at most 4 taps per point:
    indices (4, len(u)) and weights (4, len(u)) on a grid of 2**-20, divided by 1024 (see
    _exact_taps_last_axis). Taps that the clipping at the ends puts on one coefficient are
    merged before rounding; unused taps get weight 0."""
    idx, w = _bspline_taps(u, n_in)
    dense = np.zeros((n_in, len(u)), np.float64)
    cols = np.arange(len(u))
    for k in range(4):
        np.add.at(dense, (idx[k], cols), w[k].astype(np.float64))
    dense = np.rint(dense * 2.0**20) / 2.0**20
    taps_idx = np.zeros((4, len(u)), np.int64)
    taps_w = np.zeros((4, len(u)), np.float64)
    for col in range(len(u)):
        rows = np.flatnonzero(dense[:, col])
        taps_idx[: len(rows), col] = rows
        taps_w[: len(rows), col] = dense[rows, col] / 1024.0
    return taps_idx, taps_w


@numba.njit(cache=True, nogil=True)
def _quantized(a: np.ndarray) -> np.ndarray:
    """a clipped to +-4096 and rounded to a grid of 2**-10, times 1024: integers in float64."""
    q = np.empty(a.shape, np.float64)
    flat_a, flat_q = a.ravel(), q.ravel()
    for i in range(flat_a.size):
        flat_q[i] = np.rint(min(max(np.float64(flat_a[i]), -4096.0), 4096.0) * 1024.0)
    return q


@numba.njit(cache=True, nogil=True)
def _exact_taps_last_axis(a: np.ndarray, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """out[n, m] = sum over k of a[n, idx[k, m]] * 1024 w[k, m], with a rounded to a grid of
    2**-10 (|a| <= 4096): every product and partial sum is exact in float64, so the result does
    not depend on the order of the sums. a (N, K) float32 -> (N, M) float32."""
    q = _quantized(a)
    n, m = a.shape[0], idx.shape[1]
    out = np.empty((n, m), np.float32)
    for i in range(n):
        for j in range(m):
            total = 0.0
            for k in range(4):
                total += q[i, idx[k, j]] * w[k, j]
            out[i, j] = total
    return out


@numba.njit(cache=True, nogil=True)
def _exact_taps_middle_axis(a: np.ndarray, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """As _exact_taps_last_axis along the middle axis: a (B, R, C) -> (B, M, C) float32."""
    q = _quantized(a)
    b, c, m = a.shape[0], a.shape[2], idx.shape[1]
    out = np.empty((b, m, c), np.float32)
    total = np.empty(c, np.float64)
    for i in range(b):
        for j in range(m):
            total[:] = 0.0
            for k in range(4):
                row, weight = idx[k, j], w[k, j]
                for x in range(c):
                    total[x] += q[i, row, x] * weight
            for x in range(c):
                out[i, j, x] = total[x]
    return out


def _n_rows(cells_per_tile: int, span: float) -> int:
    """Coefficient rows of a grid with cells_per_tile cells per tile height covering span tiles."""
    return int(np.ceil(cells_per_tile * span)) + 4


def _resample(grid: np.ndarray, gh: int, gw: int, fh: int, fw: int, n_rows: int) -> np.ndarray:
    """Coefficients (B, n_rows, fw + 3) of a finer grid (fh x fw cells per tile) that reproduce
    the spline `grid` (gh x gw cells per tile)."""
    b, ch, cw = grid.shape
    rows = _grid_taps(gh, fh, n_rows, ch, 1.0)
    cols = _grid_taps(gw, fw, fw + 3, cw, 1 - 1e-4)
    coarse_rows = _exact_taps_last_axis(grid.reshape(b * ch, cw), *cols).reshape(b, ch, fw + 3)
    return _exact_taps_middle_axis(coarse_rows, *rows)


def _field(rng: np.random.Generator, rows_u: np.ndarray, octaves: list) -> np.ndarray:
    """Sum of octaves [(gh, gw, weight), ...] (finest last; weight scalar or (B, 1, 1)) of
    unit-variance smooth noise with gh x gw cells per tile, evaluated at the texture rows rows_u
    (B, R) (in tile heights, the bottom row at 0): (B, R, W) float32."""
    b, r = rows_u.shape
    span = float(rows_u.max()) + 1e-3
    fh, fw = octaves[-1][0], octaves[-1][1]
    n_fine = _n_rows(fh, span)
    total = None
    for gh, gw, weight in octaves:
        g = _unit_noise(rng, (b, _n_rows(gh, span), gw + 3))
        if (gh, gw) != (fh, fw):
            g = _resample(g, gh, gw, fh, fw, n_fine)
        g = g * np.asarray(weight, np.float32)
        total = g if total is None else total + g
    # rows: a per-image gather (perspective); columns: one fixed matrix
    iy, wy = _bspline_taps(1.0 + rows_u * fh, n_fine)
    bi = np.arange(b)[:, None]
    rows = wy[0][:, :, None] * total[bi, iy[0]]
    for k in range(1, 4):
        rows += wy[k][:, :, None] * total[bi, iy[k]]
    return _exact_taps_last_axis(rows.reshape(b * r, fw + 3), *_column_taps(fw)).reshape(b, r, W)


@functools.cache
def _grid_taps(
    coarse: int, fine: int, n_out: int, n_in: int, squeeze: float
) -> tuple[np.ndarray, np.ndarray]:
    """Taps of a spline with `coarse` cells per tile at the knots of one with `fine` cells."""
    return _spline_taps(1.0 + (np.arange(n_out) - 1.0) * (coarse / fine) * squeeze, n_in)


@functools.cache
def _column_taps(gw: int) -> tuple[np.ndarray, np.ndarray]:
    """Taps of a spline with gw cells per tile width at the W pixel columns."""
    return _spline_taps(1.0 + np.linspace(0.0, 1.0, W) * gw * (1 - 1e-4), gw + 3)


def _unit_noise(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Zero-mean, unit-variance uniform white noise (float32): a quarter of the cost of Gaussian
    noise to draw, and much the same once blurred or smoothed, or as sensor noise."""
    return (rng.random(shape, dtype=np.float32) - np.float32(0.5)) * np.float32(np.sqrt(12.0))


def _fine(rng: np.random.Generator, b: int, sigma: float) -> np.ndarray:
    """Blurred white noise (B, H, W), about unit variance."""
    z = _unit_noise(rng, (b, H, W))
    z = ndimage.gaussian_filter(z, sigma=(0, sigma, sigma), mode="reflect", truncate=3.0)
    # variance of Gaussian-blurred white noise is about 1 / (4 pi sigma^2)
    return z * np.float32(np.sqrt(4 * np.pi) * max(sigma, 0.5))


def _cast_shadow(height: np.ndarray, sdy: np.ndarray, sdx: np.ndarray) -> np.ndarray:
    """The relief that shades each pixel: the largest height at 1, 2, 3 and 5 steps (sdy[b],
    sdx[b]) towards the light, lowered by 0.35 per step (edges replicated)."""
    pad = 5 * int(max(np.abs(sdy).max(initial=0), np.abs(sdx).max(initial=0)))
    padded = np.pad(height, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    cast = np.zeros_like(height)
    for sy, sx in set(zip(sdy.tolist(), sdx.tolist(), strict=True)):
        images = np.flatnonzero((sdy == sy) & (sdx == sx))
        toward_light, shade = padded[images], cast[images]
        for k in (1, 2, 3, 5):
            y0, x0 = pad + sy * k, pad + sx * k
            shifted = toward_light[:, y0 : y0 + H, x0 : x0 + W]
            shade = np.maximum(shade, shifted - np.float32(0.35 * k))
        cast[images] = shade
    return cast


def _gradient(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = np.zeros_like(h)
    gy = np.zeros_like(h)
    gx[:, :, 1:-1] = 0.5 * (h[:, :, 2:] - h[:, :, :-2])
    gy[:, 1:-1, :] = 0.5 * (h[:, 2:, :] - h[:, :-2, :])
    return gx, gy


def _dilate_3x3(m: np.ndarray) -> np.ndarray:
    """Each image of the boolean stack m (B, H, W) dilated by a 3x3 square (outside is False)."""
    rows = m.copy()
    rows[:, 1:] |= m[:, :-1]
    rows[:, :-1] |= m[:, 1:]
    out = rows.copy()
    out[:, :, 1:] |= rows[:, :, :-1]
    out[:, :, :-1] |= rows[:, :, 1:]
    return out


# ----------------------------------------------------------------------------------------------
# Scenes: per-image geometry and the true terrain under every pixel
# ----------------------------------------------------------------------------------------------
def _geometry(rng: np.random.Generator, b: int, top: bool) -> dict:
    """Camera geometry: "top" tiles (upper half of a view) look towards the horizon."""
    top = np.full(b, top)
    yh = np.where(top, rng.uniform(-45.0, 22.0, b), rng.uniform(-220.0, -90.0, b))
    y = np.arange(H, dtype=np.float64)[None, :]
    d = y - yh[:, None]  # rows below the horizon
    d_b = d[:, -1:]
    # texture row (in tile heights at the scale of the bottom row): the ground is foreshortened
    # by (d_b / d)^2 towards the horizon (linear above d = 8 rows), at most _SPAN tiles
    d_min = 8.0
    t = d_b**2 * (1.0 / np.maximum(d, d_min) - 1.0 / d_b) / (H - 1)
    t += np.clip(d_min - d, 0.0, None) * (d_b / d_min) ** 2 / (H - 1)
    t = np.minimum(t, _SPAN - 0.01)  # rows just below a near horizon: a thin smeared band
    near = np.clip(d / d_b, 0.0, 1.0)  # linear scale of the ground relative to the bottom row
    hx = np.arange(W)[None, :]
    hills = (
        1.5 * np.sin(hx / rng.uniform(6, 20, (b, 1)) + rng.uniform(0, 6.3, (b, 1)))
        + 2.5 * np.sin(hx / rng.uniform(15, 40, (b, 1)) + rng.uniform(0, 6.3, (b, 1)))
    ) * rng.uniform(0.0, 1.0, (b, 1))
    horizon = yh[:, None] + 4.0 - np.abs(hills)  # (B, W): sky above
    light = rng.uniform(0, 2 * np.pi, b)
    return {
        "top": top,
        "yh": yh,
        "rows_u": t.astype(np.float32),
        "near": near.astype(np.float32),
        "horizon": horizon.astype(np.float32),
        "lx": np.cos(light).astype(np.float32),
        "ly": np.sin(light).astype(np.float32),
    }


def _class_scores(rng: np.random.Generator, geo: dict) -> list[np.ndarray]:
    """Scores [soil, bedrock, sand], each (B, H, W); the largest gives the terrain."""
    rows_u = geo["rows_u"]
    b = rows_u.shape[0]

    def u(lo, hi):
        return rng.uniform(lo, hi, (b, 1, 1)).astype(np.float32)

    # region scale per image: weights of coarse / medium / fine octaves
    w1, w2, w3, w4 = u(0.5, 1.2), u(0.2, 0.7), u(0.05, 0.3), u(0.02, 0.12)
    dominance = rng.uniform(0.0, 2.0, (b, 1)).astype(np.float32)
    bias = dominance * rng.standard_normal((b, 3), dtype=np.float32) + _CLASS_BIAS
    scores = []
    for c in range(3):
        s = _field(rng, rows_u, [(1, 2, w1), (3, 6, w2), (7, 14, w3), (16, 32, w4)])
        s += bias[:, c, None, None]
        scores.append(s)
    return scores


def _terrain_from_scores(scores: list[np.ndarray]) -> np.ndarray:
    s0, s1, s2 = scores
    return np.where((s0 >= s1) & (s0 >= s2), 1, np.where(s1 >= s2, 2, 3)).astype(np.uint8)


def _big_rocks(rng: np.random.Generator, geo: dict) -> tuple[np.ndarray, np.ndarray]:
    """Heights (B, H, W) of big rocks and where they are (labelled 4)."""
    b = geo["rows_u"].shape[0]
    height = np.zeros((b, H, W), np.float32)
    big = np.zeros((b, H, W), bool)
    yy = np.arange(H, dtype=np.float32)[:, None]
    xx = np.arange(W, dtype=np.float32)[None, :]
    for i in np.flatnonzero(rng.random(b) < _P_BIG_ROCK):
        ground_top = max(0.0, float(geo["yh"][i]) + 8.0)
        for _ in range(rng.integers(1, 4)):
            cy = rng.uniform(ground_top, H + 2)
            scale = 0.3 + 0.7 * geo["near"][i, int(min(max(cy, 0), H - 1))]  # nearer = bigger
            a = rng.uniform(6.0, 17.0) * scale + 2.5
            bb = a * rng.uniform(0.5, 0.85)
            cx = rng.uniform(-a / 2, W + a / 2)
            ang = np.arctan2(yy - cy, xx - cx) + rng.uniform(0, 6.3)
            # angular outline: a few facets
            wob = 1.0 + 0.14 * np.abs(np.sin(1.5 * ang)) - 0.1 * np.abs(np.sin(2.5 * ang + 1))
            r2 = (((xx - cx) / a) ** 2 + ((yy - cy) / bb) ** 2) / wob**2
            # flat-topped block with steep sides
            h = np.clip(1.0 - r2, 0.0, None) ** 0.35 * (0.5 * bb + 1.0)
            height[i] = np.maximum(height[i], h)
            big[i] |= r2 < 1.0
    return height, big


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------
def _render(
    rng: np.random.Generator, geo: dict, terrain: np.ndarray, rock_h: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Grey image (B, H, W) float32 in about 0-255 for terrain labels 1-4 under every pixel, and
    the sky mask."""
    rows_u = geo["rows_u"]
    b = rows_u.shape[0]
    f32 = np.float32

    def u(lo, hi):
        return rng.uniform(lo, hi, (b, 1, 1)).astype(f32)

    soil = terrain == 1
    bedrock = terrain == 2
    sand = terrain == 3
    rock = terrain == 4
    lx = geo["lx"][:, None, None]
    ly = geo["ly"][:, None, None]
    xx = np.arange(W, dtype=f32)[None, None, :]
    ty = (rows_u * (H - 1))[:, :, None]

    grain = _fine(rng, b, 0.55)
    mid = _field(rng, rows_u, [(4, 8, 1.0), (12, 24, 0.7)])
    warp = _field(rng, rows_u, [(2, 4, 1.0), (4, 8, 0.5)])

    # soil: fine grain, sparse pebbles (relief), gentle mottling
    pebbles = np.clip(_fine(rng, b, 0.8) - u(0.9, 2.4), 0.0, None) * 1.5
    soil_val = u(0.15, 0.35) * grain + u(0.03, 0.2) * mid

    # bedrock: bright flat slabs (thin layering, sub-plates) with lit and shadowed edges, dark
    # gaps between them that are labelled bedrock too
    c1 = _field(rng, rows_u, [(3, 6, 1.0), (8, 16, 0.45), (20, 40, 0.15)])
    c2 = _field(rng, rows_u, [(2, 4, 1.0), (6, 12, 0.4), (16, 32, 0.12)])
    slab = np.clip((c1 - u(-1.2, -0.1)) * u(4.0, 10.0), 0.0, 1.0)
    sub = np.tanh(6.0 * c2) * u(0.0, 0.35)
    theta = u(-0.3, 0.3)
    lam = u(4.0, 12.0)
    layers = np.sin(
        2 * np.pi * (xx * np.sin(theta) + ty * np.cos(theta)) / lam + u(0.5, 2.0) * warp
    )
    gx, gy = _gradient(slab + 0.3 * np.tanh(6.0 * c2))
    bed_val = (
        slab * (u(0.4, 1.1) + sub + u(0.0, 0.25) * layers + u(0.1, 0.25) * grain)
        + (1.0 - slab) * (u(-0.5, 0.0) + u(0.1, 0.3) * grain)
        + u(0.03, 0.2) * mid
        - u(0.8, 2.0) * (gx * lx + gy * ly)
    )

    # sand: smooth, ripples with a steep lee side
    theta_s = u(-0.8, 0.8)
    lam_s = u(4.0, 10.0)
    phase = (xx * np.sin(theta_s) + ty * np.cos(theta_s)) / lam_s + u(0.1, 0.6) * warp
    saw = phase - np.floor(phase)
    ripples = np.where(saw < 0.75, saw / 0.75, (1.0 - saw) / 0.25) - 0.5
    sand_val = u(0.1, 0.6) * ripples + u(0.03, 0.12) * grain + u(0.03, 0.2) * mid

    # tones: overlapping between classes and between images
    tone_soil = u(-0.2, 0.2)
    tone_bed = tone_soil + u(-0.3, 0.3)
    tone_sand = tone_soil + u(-0.7, 0.3)
    val = np.where(soil, tone_soil + soil_val, tone_sand + sand_val)
    val = np.where(bedrock, tone_bed + bed_val, val)
    val = np.where(rock, tone_bed + u(0.3, 1.0) + 0.35 * grain + 0.2 * mid, val)

    # scattered rocks, smaller than big rocks and labelled as the ground they lie on
    strewn = _field(rng, rows_u, [(5, 10, u(0.0, 0.7)), (12, 24, 1.0)])
    stones = np.clip((strewn - u(0.5, 2.6)) * 3.0, 0.0, 1.0) * u(1.0, 2.5)
    stones *= np.where(soil, 1.0, np.where(sand, u(0.0, 0.6), u(0.0, 1.0) * (1.0 - slab)))
    val += u(0.3, 0.9) * np.minimum(stones, 1.0)

    # relief shading: rocks, stones, pebbles on soil (a few on sand and bedrock); cast shadows
    height = rock_h + stones
    height += pebbles * np.where(soil, 1.0, np.where(sand, u(0.0, 0.4), u(0.0, 0.3)))
    gx, gy = _gradient(height)
    val += -u(0.5, 1.1) * (gx * lx + gy * ly) + 0.08 * height
    sdy = np.round(geo["ly"] * 1.4).astype(np.int64)
    sdx = np.round(geo["lx"] * 1.4).astype(np.int64)
    cast = _cast_shadow(height, sdy, sdx)
    val -= u(0.4, 1.0) * np.tanh(np.clip(cast - height, 0.0, None))

    # illumination and distance haze
    val += u(0.03, 0.15) * warp
    # (rows whose texture would need more than _SPAN tiles turn into a featureless far band)
    far = np.clip((rows_u - (_SPAN - 2.0)) / 1.9, 0.0, 1.0)
    haze = np.maximum((1.0 - geo["near"]) ** 4 * geo["top"][:, None], far)[:, :, None]
    streaks = ndimage.gaussian_filter1d(rng.standard_normal((b, H, 1), dtype=f32), 1.0, axis=1)
    val = val * (1.0 - haze) + (u(-0.2, 0.6) + u(0.1, 0.5) * streaks) * haze

    # sky above the horizon: smooth, brighter, a gradient
    yy = np.arange(H, dtype=f32)[None, :, None]
    sky = yy < geo["horizon"][:, None, :]
    above = yy - geo["yh"][:, None, None].astype(f32)
    val = np.where(sky, u(0.8, 2.2) + u(0.0, 0.02) * above + 0.03 * grain, val)

    # camera: per-image exposure and contrast, blur, sensor noise
    mean = np.clip(rng.lognormal(np.log(50.0), 0.3, (b, 1, 1)), 20, 100).astype(f32)
    contrast = np.clip(rng.lognormal(np.log(22.0), 0.3, (b, 1, 1)), 8, 45).astype(f32)
    img = mean + contrast * val
    img = ndimage.gaussian_filter(img, sigma=(0, 0.45, 0.45), mode="nearest", truncate=2.0)
    img += u(0.5, 2.5) * _unit_noise(rng, (b, H, W))
    return img, sky


def _rover(rng: np.random.Generator, img: np.ndarray, bg: np.ndarray, i: int) -> None:
    """Paint rover hardware (never labelled) into image i, in place."""
    yy = np.arange(H, dtype=np.float32)[:, None]
    xx = np.arange(W, dtype=np.float32)[None, :]
    lo, hi = float(np.percentile(img[i], 5)), float(np.percentile(img[i], 95))
    for _ in range(rng.integers(1, 4)):
        kind = rng.integers(0, 3)
        if kind == 0:  # a rod or arm from an edge
            x0 = rng.choice([rng.uniform(-10, 20), rng.uniform(108, 138)])
            y0 = rng.uniform(20, 80)
            ang = rng.uniform(0, 2 * np.pi)
            length = rng.uniform(20, 70)
            x1, y1 = x0 + length * np.cos(ang), y0 + length * np.sin(ang)
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0, 1)
            dist = np.hypot(xx - x0 - t * dx, yy - y0 - t * dy)
            width = rng.uniform(1.5, 5.0)
            part = dist < width
            shade = np.clip(1.0 - dist / width, 0, 1)
            val = lo + (hi - lo) * (0.6 + 0.8 * shade) + 10 * np.sin(t * 20)
        elif kind == 1:  # a wheel near the bottom corner
            cx = rng.choice([rng.uniform(-10, 25), rng.uniform(103, 138)])
            cy = rng.uniform(50, 80)
            r = rng.uniform(10, 22)
            dist = np.hypot((xx - cx) / 1.2, yy - cy)
            part = dist < r
            tread = (np.sin(np.arctan2(yy - cy, xx - cx) * 14) > 0.2) & (dist > 0.75 * r)
            val = np.where(dist < 0.35 * r, hi * 1.1, lo * 0.6 + 15 * tread)
        else:  # a deck plate with a sharp edge
            x0 = rng.uniform(0, W)
            slope = rng.uniform(-0.6, 0.6)
            yb = rng.uniform(50, 62) + slope * (xx - x0)
            part = yy > yb
            val = hi * rng.uniform(0.9, 1.3) - 8 * ((yy - yb) < 1.5) + 3 * np.sin(xx / 3) ** 8
        part = np.broadcast_to(part, (H, W))
        img[i] = np.where(part, val, img[i])
        bg[i] |= part


# ----------------------------------------------------------------------------------------------
# Labelling: which of the terrain the labellers marked
# ----------------------------------------------------------------------------------------------
def _labels(
    rng: np.random.Generator, geo: dict, terrain: np.ndarray, sky: np.ndarray, rover: np.ndarray
) -> np.ndarray:
    b = terrain.shape[0]
    rows_u = geo["rows_u"]
    yy = np.arange(H, dtype=np.float32)[None, :, None]
    unl = sky | rover

    # far range: a band below the horizon (top tiles) left unlabelled, irregular lower edge
    band = np.where(geo["top"], rng.uniform(0.0, 20.0, b), 0.0) * (rng.random(b) < 0.7)
    edge = (
        np.maximum(geo["yh"], -8.0)[:, None, None]
        + band[:, None, None]
        + 2.5 * _field(rng, rows_u[:, -1:], [(2, 8, 1.0)])
    )
    unl |= (yy < edge) & (band[:, None, None] > 0)
    # beyond labelling range (AI4Mars labels stop at about 30 m): rows near a close horizon
    unl |= (geo["near"] < 0.15)[:, :, None]

    # patches the labellers skipped
    area = rng.uniform(0.05, 0.45, b) * (rng.random(b) < 0.35)
    thr = ndtri(1.0 - np.clip(area, 1e-6, 1 - 1e-6)).astype(np.float32)
    blob = _field(rng, rows_u, [(3, 6, 1.0), (8, 16, 0.3)])
    unl |= blob / np.float32(1.044) > thr[:, None, None]

    # a whole class skipped (e.g. only the rocks and bedrock were outlined)
    skip = np.where(rng.random(b) < 0.08, rng.integers(1, 4, b), 0)
    unl |= terrain == skip[:, None, None]

    # gaps along class borders (labellers drew polygons that do not touch)
    gap = rng.random(b) < 0.2
    border = np.zeros_like(unl)
    border[:, :, 1:] |= terrain[:, :, 1:] != terrain[:, :, :-1]
    border[:, 1:, :] |= terrain[:, 1:, :] != terrain[:, :-1, :]
    border = _dilate_3x3(border)
    unl |= border & gap[:, None, None]

    # never leave an image (almost) unlabelled by accident: fall back to the far band only
    labelled = (~unl).mean(axis=(1, 2))
    weak = labelled < 0.08
    if weak.any():
        unl[weak] = sky[weak] | rover[weak] | (yy < edge[weak])
        still = (~unl[weak]).mean(axis=(1, 2)) < 0.08
        idx = np.flatnonzero(weak)[still]
        unl[idx] = sky[idx] | rover[idx]
    return np.where(unl, 0, terrain).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------
def _batch(rng: np.random.Generator, b: int, top: bool) -> tuple[np.ndarray, np.ndarray]:
    """b images (uint8) and their masks (uint8), all top tiles or all bottom tiles (the cost of
    the smooth fields grows with the perspective of the strongest in the batch)."""
    geo = _geometry(rng, b, top)
    terrain = _terrain_from_scores(_class_scores(rng, geo))
    rock_h, big = _big_rocks(rng, geo)
    terrain[big] = 4
    img, sky = _render(rng, geo, terrain, rock_h)
    rover = np.zeros((b, H, W), bool)
    for i in np.flatnonzero(rng.random(b) < 0.06):
        _rover(rng, img, rover, int(i))
    mask = _labels(rng, geo, terrain, sky, rover)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def _alien_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One base image (float32) and the shared alien mask with exactly the course shares."""
    geo = _geometry(rng, 1, True)
    scores = [s[0] for s in _class_scores(rng, geo)]
    n = H * W
    counts = np.round(np.array(ALIEN_MASK_SHARES) * n).astype(int)
    counts[0] = n - counts[1:].sum()
    # terrain: sand on the highest sand score, then bedrock, the rest soil
    terrain = np.ones((H, W), np.uint8)
    order = np.argsort(-(scores[2] - scores[0]), axis=None, kind="stable")
    labelled_frac = 1.0 - counts[0] / n
    n_sand = int(round(counts[3] / labelled_frac))
    n_bed = int(round(counts[2] / labelled_frac))
    terrain.flat[order[:n_sand]] = 3
    rest = order[n_sand:]
    rest = rest[np.argsort(-(scores[1].flat[rest] - scores[0].flat[rest]), kind="stable")]
    terrain.flat[rest[:n_bed]] = 2
    img, _ = _render(rng, geo, terrain[None], np.zeros((1, H, W), np.float32))
    # background: the upper part and a skipped patch, chosen by rank so the shares are exact
    blob = _field(rng, geo["rows_u"], [(3, 6, 1.0)])[0] + (H - np.arange(H))[:, None] / 20.0
    mask = np.zeros((H, W), np.uint8)
    for c in (1, 2, 3):
        cand = np.flatnonzero(terrain == c)
        keep = cand[np.argsort(blob.flat[cand], kind="stable")[: counts[c]]]
        mask.flat[keep] = c
    return img[0], mask


def _paint_alien(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """The base image with a cartoon alien of random size and place pasted in."""
    img = base.copy()
    yy = np.arange(H, dtype=np.float32)[:, None]
    xx = np.arange(W, dtype=np.float32)[None, :]
    r = rng.uniform(5.0, 16.0)  # head radius
    cx, cy = rng.uniform(0, W), rng.uniform(r, H + r)
    skin = rng.uniform(150, 230)
    layers = []  # (region, value), painted in order

    def ellipse(x0, y0, a, b):
        return ((xx - x0) / a) ** 2 + ((yy - y0) / b) ** 2

    body = ellipse(cx, cy + 1.9 * r, 0.8 * r, 1.1 * r)
    head = ellipse(cx, cy, r, 0.9 * r)
    for side in (-1, 1):  # antennae
        ax0, ay0 = cx + side * 0.4 * r, cy - 0.7 * r
        ax1, ay1 = cx + side * 0.9 * r, cy - 1.6 * r
        dx, dy = ax1 - ax0, ay1 - ay0
        t = np.clip(((xx - ax0) * dx + (yy - ay0) * dy) / (dx * dx + dy * dy), 0, 1)
        stalk = np.hypot(xx - ax0 - t * dx, yy - ay0 - t * dy) < max(0.6, 0.08 * r)
        layers += [(stalk, 20.0), (ellipse(ax1, ay1, 0.22 * r, 0.22 * r) < 1, skin)]
    layers += [(body < 1.15, 15.0), (body < 1, skin * 0.85), (head < 1.12, 15.0), (head < 1, skin)]
    for side in (-1, 1):  # eyes with a highlight
        ex, ey = cx + side * 0.38 * r, cy - 0.1 * r
        layers += [
            (ellipse(ex, ey, 0.27 * r, 0.36 * r) < 1, 10.0),
            (ellipse(ex + 0.08 * r, ey - 0.12 * r, 0.09 * r, 0.09 * r) < 1, 250.0),
        ]
    mouth = ellipse(cx, cy + 0.35 * r, 0.4 * r, 0.25 * r)
    layers += [((np.abs(mouth - 1) < 0.35) & (yy > cy + 0.35 * r), 20.0)]
    for region, value in layers:
        img = np.where(region, value, img)
    return img


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------
def _layout_counts(n_train: int) -> tuple[int, list[int]]:
    """Number of all-background images and the sizes of the planned duplicate groups."""
    small = n_train < 1000
    n_allbg = int(round(7 * n_train / COURSE_N_TRAIN))
    if n_train >= 20:
        n_allbg = max(1, n_allbg)
    if small:
        n_allbg = min(2, n_allbg)
    n_groups = int(round(12 * n_train / COURSE_N_TRAIN))
    if n_train >= 20:
        n_groups = max(1, n_groups)
    if small:
        sizes = [2] * n_groups
    else:
        # a handful of groups of 2-5, mostly pairs; fixed pattern so counts scale smoothly
        pattern = [2, 3, 2, 5, 2, 4, 2, 3, 2, 2, 4, 2]
        sizes = [pattern[i % len(pattern)] for i in range(n_groups)]
    return n_allbg, sizes


_M_TOP_PAD = -2  # glibc mallopt parameter


@contextlib.contextmanager
def _keep_heap():
    """Let glibc keep freed heap memory while generating (M_TOP_PAD 256 MiB): the batches make
    and drop many arrays of a few MiB, and handing the pages back to the kernel and faulting them
    in again costs about a quarter of the run time. Restores the default pad (128 KiB) after; a
    no-op where glibc's mallopt is not available. Does not change the result."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        set_pad = libc.mallopt(_M_TOP_PAD, 256 << 20) == 1
    except (OSError, AttributeError):
        set_pad = False
    try:
        yield
    finally:
        if set_pad:
            libc.mallopt(_M_TOP_PAD, 128 << 10)


def _mask_key(mask: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(mask, np.uint8).tobytes(), digest_size=16).digest()


def generate_course_dataset(
    seed: int = 0, n_train: int = 2615, n_test: int = 10022, n_aliens: int = 110
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (training_set, test_set, test_masks):
    training_set float64 (n_train, 2, 64, 128): [:,0] grey images 0-255 (integer-valued), [:,1]
    masks 0-4 (float64 like the course); test_set float64 (n_test, 64, 128) images; test_masks
    uint8 (n_test, 64, 128), the hidden test labels."""
    with _keep_heap():
        return _generate(seed, n_train, n_test, n_aliens)


def _generate(
    seed: int, n_train: int, n_test: int, n_aliens: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if n_train < 0 or n_test < 0 or n_aliens < 0:
        raise ValueError("n_train, n_test and n_aliens must be non-negative")
    if n_aliens > n_train:
        raise ValueError(f"n_aliens ({n_aliens}) exceeds n_train ({n_train})")
    root = np.random.SeedSequence(int(seed))
    layout_ss, train_ss, test_ss, alien_ss = root.spawn(4)
    layout_rng = np.random.default_rng(layout_ss)

    # which training images are aliens, all-background, duplicates
    n_allbg, dup_sizes = _layout_counts(n_train)
    spare = n_train - n_aliens
    n_allbg = min(n_allbg, max(spare - 2, 0))
    while dup_sizes and n_allbg + sum(dup_sizes) > max(spare - 2, 0):
        dup_sizes.pop()
    perm = layout_rng.permutation(n_train)
    train_order = layout_rng.permutation(n_train)
    alien_idx = np.sort(perm[:n_aliens])
    allbg_idx = np.sort(perm[n_aliens : n_aliens + n_allbg])
    groups = []
    pos = n_aliens + n_allbg
    for s in dup_sizes:
        groups.append(perm[pos : pos + s])
        pos += s

    training_set = np.empty((n_train, 2, H, W), np.float64)
    test_set = np.empty((n_test, H, W), np.float64)
    test_masks = np.empty((n_test, H, W), np.uint8)

    train_rng = np.random.default_rng(train_ss)
    train_masks = np.empty((n_train, H, W), np.uint8)
    for k, start in enumerate(range(0, n_train, _CHUNK)):
        # batches alternate top and bottom tiles; their images go to random places
        where = train_order[start : start + _CHUNK]
        img, mask = _batch(train_rng, len(where), top=k % 2 == 0)
        training_set[where, 0] = img
        train_masks[where] = mask

    # planted structure: aliens, all-background images
    alien_mask = None
    if n_aliens:
        alien_rng = np.random.default_rng(alien_ss)
        base, alien_mask = _alien_scene(alien_rng)
        for i in alien_idx:
            training_set[i, 0] = np.clip(np.rint(_paint_alien(alien_rng, base)), 0, 255)
            train_masks[i] = alien_mask
    train_masks[allbg_idx] = 0

    # no accidental groups of identical masks: break them by unlabelling a small patch
    copies = {int(j) for g in groups for j in g[1:]}
    special = {int(i) for i in alien_idx} | {int(i) for i in allbg_idx} | copies
    seen = {_mask_key(np.zeros((H, W), np.uint8))}
    if alien_mask is not None:
        seen.add(_mask_key(alien_mask))
    for i in range(n_train):
        if i in special:
            continue
        key = _mask_key(train_masks[i])
        while key in seen:
            y0 = int(layout_rng.integers(0, H - 4))
            x0 = int(layout_rng.integers(0, W - 4))
            h, w = layout_rng.integers(2, 6, 2)
            train_masks[i, y0 : y0 + h, x0 : x0 + w] = 0
            key = _mask_key(train_masks[i])
        seen.add(key)

    # duplicate groups: the same mask, the image re-exposed (gain, offset, fresh noise)
    for g in groups:
        src = g[0]
        for j in g[1:]:
            train_masks[j] = train_masks[src]
            gain = layout_rng.uniform(0.85, 1.15)
            shift = layout_rng.uniform(-12, 12)
            noisy = training_set[src, 0] * gain + shift + layout_rng.normal(0, 1.5, (H, W))
            training_set[j, 0] = np.clip(np.rint(noisy), 0, 255)
    training_set[:, 1] = train_masks

    test_rng = np.random.default_rng(test_ss)
    test_order = test_rng.permutation(n_test)
    for k, start in enumerate(range(0, n_test, _CHUNK)):
        where = test_order[start : start + _CHUNK]
        img, mask = _batch(test_rng, len(where), top=k % 2 == 0)
        test_set[where] = img
        test_masks[where] = mask
    return training_set, test_set, test_masks
