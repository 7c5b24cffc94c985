"""Local Binary Patterns (LBP) histograms, computed over a whole batch at once.

The codes are identical to ``skimage.feature.local_binary_pattern(gray, P,
R, method)`` on the gray uint8 image, for the methods ``"default"``,
``"ror"``, ``"uniform"`` and ``"nri_uniform"``, but they are computed with
numpy on a stack of same-size images, one neighbour at a time, instead of
one pixel at a time in Cython.

What LBP sees: every image is first made gray uint8, ``to_uint8(to_gray(image))``
(RGB to gray with scikit-image's BT.709 weights, rounded; float images in
[0, 1] scaled by 255 and rounded). Texture codes compare neighbour and centre
intensities, so working on the integer image keeps scikit-image's exact ties
(and avoids its warning about float images).

Algorithm (Ojala et al. [1]_, with scikit-image's conventions):

1. ``P`` neighbours on a circle of radius ``R``: neighbour ``i`` sits at
   ``(r - R sin(2 pi i / P), c + R cos(2 pi i / P))``, offsets rounded to 5
   decimals; its value is bilinearly interpolated with zeros outside the
   image, evaluated in float64 in scikit-image's order
   ``(1 - dr) * ((1 - dc) * tl + dc * tr) + dr * ((1 - dc) * bl + dc * br)``.
   The horizontal part is shared by all neighbours with the same column
   offset, which is what makes the batched version cheap while staying
   bit-identical.
2. bit ``i`` is ``value_i >= centre``; the default code is
   ``sum(bit_i * 2**i)``;
3. the code is mapped by ``method``: ``"ror"`` is the smallest of the ``P``
   circular bit rotations; ``"uniform"`` is the number of ones when the bit
   string has at most two 0/1 changes (counted along ``i = 0 .. P-1``, not
   around the circle, as scikit-image does) and ``P + 1`` otherwise;
   ``"nri_uniform"`` gives every uniform pattern its own code (scikit-image's
   numbering) and all others ``P * (P - 1) + 2``;
4. a histogram of the codes per grid cell, normalised to sum 1.

References
----------
.. [1] Ojala, T., Pietikainen, M. and Maenpaa, T., "Multiresolution
   gray-scale and rotation invariant texture classification with local
   binary patterns", IEEE PAMI 24(7), 2002, :DOI:`10.1109/TPAMI.2002.1017623`.
"""

import functools
import math
import numbers

import numpy as np
from sklearn.utils._param_validation import StrOptions

from ..base import FeatureExtractor, ImageError
from ..preprocessing import to_gray, to_uint8

__all__ = ["LBP", "lbp_codes", "n_lbp_bins"]

#: Code mappings, as named by scikit-image.
METHODS = ("default", "ror", "uniform", "nri_uniform")

#: P above this would need more than 2**16 histogram bins for
#: "default"/"ror", and a lookup table larger than 64k entries.
_MAX_TABLE_POINTS = 16

#: up to this P, histograms count the 2**P raw codes and merge bins after.
_MERGE_BINS_POINTS = 10

#: pixels per group of images whose histograms are computed at once.
_GROUP_PIXELS = 1 << 16

#: pixels per band of rows whose codes are computed at once (the float64
#: temporaries, 8 bytes a pixel, stay in a 256 KiB cache).
_BAND_PIXELS = 1 << 13


def n_lbp_bins(points, method):
    """Number of distinct codes (histogram bins) of one (P, method).

    Parameters
    ----------
    points : int
        Number of neighbours ``P``.
    method : {"default", "ror", "uniform", "nri_uniform"}

    Returns
    -------
    n_bins : int
        ``P + 2`` for uniform, ``P * (P - 1) + 3`` for nri_uniform and
        ``2 ** P`` for default and ror.
    """
    if method == "uniform":
        return points + 2
    if method == "nri_uniform":
        return points * (points - 1) + 3
    return 2**points


def _bit(codes, i):
    return (codes >> i) & 1


def _map_codes(codes, points, method):
    """Map default codes to ``method`` codes, as scikit-image does.

    Parameters
    ----------
    codes : ndarray of int64
        Default LBP codes ``sum(bit_i * 2**i)``.
    points : int
    method : {"default", "ror", "uniform", "nri_uniform"}

    Returns
    -------
    mapped : ndarray of int64, same shape
    """
    if method == "default":
        return codes
    if method == "ror":
        best = codes.copy()
        rotated = codes.copy()
        for _ in range(1, points):
            rotated = (rotated >> 1) | ((rotated & 1) << (points - 1))
            np.minimum(best, rotated, out=best)
        return best
    n_ones = np.zeros_like(codes)
    changes = np.zeros_like(codes)
    previous = _bit(codes, 0)
    n_ones += previous
    for i in range(1, points):
        current = _bit(codes, i)
        n_ones += current
        changes += previous != current
        previous = current
    if method == "uniform":
        return np.where(changes <= 2, n_ones, points + 1)
    # nri_uniform: first one / first zero, scanning i = P-1 .. 0
    first_one = np.full_like(codes, -1)
    first_zero = np.full_like(codes, -1)
    for i in range(points - 1, -1, -1):
        bit = _bit(codes, i).astype(bool)
        first_one[bit] = i
        first_zero[~bit] = i
    rot_index = np.where(first_one == 0, n_ones - first_zero, points - first_one)
    mapped = 1 + (n_ones - 1) * points + rot_index
    mapped = np.where(n_ones == 0, 0, mapped)
    mapped = np.where(n_ones == points, points * (points - 1) + 1, mapped)
    return np.where(changes <= 2, mapped, points * (points - 1) + 2)


@functools.lru_cache(maxsize=32)
def _code_table(points, method):
    """Lookup table default code -> ``method`` code, for ``P <= 16``."""
    dtype = np.uint8 if n_lbp_bins(points, method) <= 256 else np.int32
    table = _map_codes(np.arange(2**points, dtype=np.int64), points, method).astype(dtype)
    table.flags.writeable = False
    return table


def _neighbour_offsets(points, radius):
    """scikit-image's neighbour offsets, rounded to 5 decimals."""
    angles = 2 * np.pi * np.arange(points, dtype=np.float64) / points
    rows = np.round(-radius * np.sin(angles), 5)
    cols = np.round(radius * np.cos(angles), 5)
    return rows, cols


@functools.lru_cache(maxsize=256)
def _axis_sampling(size, offset):
    """Floor/ceil positions and fraction along one axis, per pixel index.

    Returns
    -------
    low, high : int
        ``floor(i + offset) - i`` and ``ceil(i + offset) - i`` (the same for
        every ``i``).
    fraction : ndarray of shape (size,), float64, read-only
        ``(i + offset) - floor(i + offset)``, exactly as scikit-image
        computes it (it varies in the last bits with ``i``).
    """
    position = np.arange(size, dtype=np.float64) + offset
    low = np.floor(position)
    index = np.arange(size)
    low_shift = low.astype(np.int64) - index
    high_shift = np.ceil(position).astype(np.int64) - index
    if (low_shift != low_shift[0]).any() or (high_shift != high_shift[0]).any():
        raise ValueError("LBP: image too large for exact neighbour offsets")  # pragma: no cover
    fraction = position - low
    fraction.flags.writeable = False
    return int(low_shift[0]), int(high_shift[0]), fraction


def lbp_codes(gray, points, radius, method="uniform"):
    """LBP codes of a stack of same-size gray uint8 images.

    Parameters
    ----------
    gray : ndarray of shape (n, H, W), uint8
        Gray images.
    points : int
        Number of neighbours ``P`` (1 to 32; at most 16 for "default" and "ror").
    radius : float
        Circle radius ``R`` (> 0).
    method : {"default", "ror", "uniform", "nri_uniform"}, default="uniform"

    Returns
    -------
    codes : ndarray of shape (n, H, W), integer
        Equal to ``skimage.feature.local_binary_pattern(gray[k], P, R,
        method)`` for every image ``k``.
    """
    n, height, width = gray.shape
    pad = int(math.ceil(radius)) + 1
    padded_u8 = np.zeros((n, height + 2 * pad, width + 2 * pad), dtype=np.uint8)
    padded_u8[:, pad:pad + height, pad:pad + width] = gray
    padded = padded_u8.astype(np.float64)
    code_dtype = np.uint8 if points <= 8 else np.uint16 if points <= 16 else np.uint32
    codes = np.empty((n, height, width), dtype=code_dtype)
    neighbours = [
        _axis_sampling(height, row) + _axis_sampling(width, col) + (col,)
        for row, col in zip(*_neighbour_offsets(points, radius))
    ]
    # bands of rows small enough for the float64 temporaries to stay in cache
    band = max(1, _BAND_PIXELS // (n * width))
    for start in range(0, height, band):
        stop = min(height, start + band)
        codes[:, start:stop] = _band_codes(padded, padded_u8, pad, start, stop, neighbours,
                                           code_dtype)
    if method == "default":
        return codes
    if points <= _MAX_TABLE_POINTS:
        return _code_table(points, method)[codes]
    return _map_codes(codes.astype(np.int64), points, method)


def _band_codes(padded, padded_u8, pad, start, stop, neighbours, code_dtype):
    """Default LBP codes of output rows ``start:stop`` of every image.

    Parameters
    ----------
    padded, padded_u8 : ndarray of shape (n, H + 2 pad, W + 2 pad)
        The images with ``pad`` zero pixels around, as float64 and uint8.
    neighbours : list of tuple
        Per neighbour: the row and column sampling of :func:`_axis_sampling`
        (shift to floor, shift to ceil, fractions), then the column offset.

    Returns
    -------
    codes : ndarray of shape (n, stop - start, W), ``code_dtype``
    """
    n = padded.shape[0]
    height, width = stop - start, padded.shape[2] - 2 * pad
    centre = padded[:, pad + start:pad + stop, pad:pad + width]
    centre_u8 = padded_u8[:, pad + start:pad + stop, pad:pad + width]
    codes = np.zeros((n, height, width), dtype=code_dtype)
    shape = (n, height, width)
    value, scratch = np.empty(shape), np.empty(shape)
    bit = np.empty(shape, dtype=bool)
    shifted_bit = np.empty(shape, dtype=code_dtype)
    horizontal = {}  # column offset -> interpolated rows, shared by neighbours
    # padded rows used by this band: start .. stop + 2 pad
    band_rows = slice(start, stop + 2 * pad)
    for i, (top_shift, bottom_shift, dr, left_shift, right_shift, dc, key) in enumerate(
            neighbours):
        rows = slice(pad + top_shift, pad + top_shift + height)
        dr = dr[start:stop]
        if not dr.any() and not dc.any():
            # integer position: the interpolation returns the pixel itself
            np.greater_equal(
                padded_u8[:, band_rows][:, rows, pad + left_shift:pad + left_shift + width],
                centre_u8, out=bit)
        else:
            if key not in horizontal:
                # (1 - dc) * left + dc * right, for every padded row of the band
                left = padded[:, band_rows, pad + left_shift:pad + left_shift + width]
                if dc.any():
                    right = padded[:, band_rows, pad + right_shift:pad + right_shift + width]
                    interpolated = np.multiply(left, 1 - dc)
                    interpolated += np.multiply(right, dc, out=np.empty_like(interpolated))
                    horizontal[key] = interpolated
                else:
                    horizontal[key] = left
            interpolated = horizontal[key]
            top = interpolated[:, rows]
            if dr.any():
                # (1 - dr) * top + dr * bottom
                bottom = interpolated[:, pad + bottom_shift:pad + bottom_shift + height]
                dr = dr[:, None]
                np.multiply(top, 1 - dr, out=value)
                np.multiply(bottom, dr, out=scratch)
                value += scratch
                np.greater_equal(value, centre, out=bit)
            else:
                np.greater_equal(top, centre, out=bit)
        np.left_shift(bit.view(np.uint8), code_dtype(i), out=shifted_bit)
        codes |= shifted_bit
    return codes


def _grid_cells(height, width, grid):
    """Grid cell index of every pixel, cells numbered row-major."""
    grid_rows, grid_cols = grid
    cell_row = (np.arange(height) * grid_rows) // height
    cell_col = (np.arange(width) * grid_cols) // width
    return cell_row[:, None] * grid_cols + cell_col[None, :]


def lbp_histograms(gray, radii_points=((8, 1),), method="uniform", grid=(1, 1)):
    """Normalised LBP histograms of a stack of same-size gray uint8 images.

    Parameters
    ----------
    gray : ndarray of shape (n, H, W), uint8
    radii_points : sequence of (int, float)
        ``(P, R)`` pairs.
    method : {"default", "ror", "uniform", "nri_uniform"}, default="uniform"
    grid : tuple of (int, int), default=(1, 1)
        Grid ``(rows, cols)`` of image cells, each with its own histogram;
        cell ``k`` along an axis of ``S`` pixels holds pixels ``i`` with
        ``i * rows // S == k``.

    Returns
    -------
    histograms : ndarray of shape (n, n_features), float32
        For each ``(P, R)`` in order, for each grid cell (row-major), the
        ``n_lbp_bins(P, method)`` bins, each cell summing to 1.
    """
    n, height, width = gray.shape
    n_cells = grid[0] * grid[1]
    cells = _grid_cells(height, width, grid)
    pixels_per_cell = np.bincount(cells.ravel(), minlength=n_cells).astype(np.float64)
    group = max(1, _GROUP_PIXELS // (height * width))
    blocks = []
    for points, radius in radii_points:
        n_bins = n_lbp_bins(points, method)
        # small P: count the raw codes, then merge their bins (cheaper than
        # mapping every pixel through the lookup table)
        merge_bins = method != "default" and points <= _MERGE_BINS_POINTS
        counted_bins = 2**points if merge_bins else n_bins
        parts = []
        for start in range(0, n, group):
            images = gray[start:start + group]
            codes = lbp_codes(images, points, radius, "default" if merge_bins else method)
            index = codes + _bin_offsets(len(images), height, width, grid, counted_bins)
            counts = np.bincount(index.reshape(-1), minlength=len(images) * n_cells * counted_bins)
            counts = counts.reshape(len(images), n_cells, counted_bins)
            if merge_bins:
                counts = counts @ _bin_merging(points, method)
            parts.append((counts / pixels_per_cell[:, None]).reshape(len(images), -1))
        blocks.append(np.concatenate(parts))
    return np.concatenate(blocks, axis=1).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _bin_offsets(n, height, width, grid, n_bins):
    """First histogram slot of every pixel: ``(image * n_cells + cell) * n_bins``."""
    n_cells = grid[0] * grid[1]
    cells = _grid_cells(height, width, grid)
    offsets = (np.arange(n)[:, None, None] * n_cells + cells) * n_bins
    offsets.flags.writeable = False
    return offsets


@functools.lru_cache(maxsize=32)
def _bin_merging(points, method):
    """Matrix (2**P, n_bins) of 0/1 that sums raw-code counts into method bins."""
    table = _code_table(points, method)
    merging = np.zeros((2**points, n_lbp_bins(points, method)))
    merging[np.arange(2**points), table] = 1
    merging.flags.writeable = False
    return merging


def _check_radii_points(radii_points, method):
    try:
        pairs = [(int(p), float(r)) for p, r in radii_points]
        valid = all(float(p) == int(p) for p, _ in radii_points)
    except (TypeError, ValueError):
        pairs, valid = [], False
    if not valid or not pairs:
        raise ValueError(
            f"LBP: radii_points must be a non-empty sequence of (P, R) pairs, got {radii_points!r}"
        )
    max_points = _MAX_TABLE_POINTS if method in ("default", "ror") else 32
    for points, radius in pairs:
        if not 1 <= points <= max_points:
            raise ValueError(
                f"LBP: P={points} is out of range for method={method!r} (1 to {max_points}"
                + ("; 'default'/'ror' have 2**P bins, use 'uniform' or 'nri_uniform' for larger P"
                   if max_points == _MAX_TABLE_POINTS else "") + ")"
            )
        if not radius > 0 or not math.isfinite(radius):
            raise ValueError(f"LBP: R must be positive, got {radius!r} in radii_points")
    return pairs


def _check_grid(grid):
    if isinstance(grid, numbers.Integral):
        grid = (grid, grid)
    try:
        rows, cols = (int(v) for v in grid)
    except (TypeError, ValueError):
        raise ValueError(f"LBP: grid must be an int or a (rows, cols) pair, got {grid!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"LBP: grid must be positive, got {grid!r}")
    return rows, cols


class LBP(FeatureExtractor):
    """Local Binary Pattern histograms, codes identical to scikit-image.

    Each image is made gray uint8 (``to_uint8(to_gray(image))``: BT.709
    weights, floats in [0, 1] scaled by 255 and rounded), its codes equal
    ``skimage.feature.local_binary_pattern(gray, P, R, method)`` for each
    ``(P, R)``, and the features are the code histograms of each grid cell,
    normalised to sum 1. Images may have different sizes (the histograms
    have a fixed length); each image needs at least as many rows and columns
    as the grid. See :mod:`featclf.features.lbp` for the algorithm.

    Parameters
    ----------
    radii_points : sequence of (int, float), default=((8, 1),)
        ``(P, R)`` pairs: ``P`` neighbours on a circle of radius ``R``
        pixels; several pairs give a multi-resolution descriptor.
    method : {"default", "ror", "uniform", "nri_uniform"}, default="uniform"
        Code mapping (see :mod:`featclf.features.lbp`); ``P + 2`` bins for
        ``"uniform"``, ``P * (P - 1) + 3`` for ``"nri_uniform"``, ``2 ** P``
        for ``"default"`` and ``"ror"`` (which allow ``P <= 16``).
    grid : int or tuple of (int, int), default=(1, 1)
        Spatial grid ``(rows, cols)``; one histogram per cell.
    n_jobs : int, default=None
        Parallel jobs over chunks of images (joblib's meaning).

    Attributes
    ----------
    n_features_out_ : int
        ``n_cells * sum(n_bins(P))`` over the ``(P, R)`` pairs.

    Examples
    --------
    >>> import numpy as np
    >>> from featclf.features import LBP
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)
    >>> LBP(radii_points=[(8, 1), (16, 2)], grid=(2, 2)).fit_transform(images).shape
    (2, 112)
    """

    _parameter_constraints = {
        "radii_points": ["array-like"],
        "method": [StrOptions(set(METHODS))],
        "grid": ["array-like", numbers.Integral],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(self, radii_points=((8, 1),), method="uniform", grid=(1, 1), n_jobs=None):
        self.radii_points = radii_points
        self.method = method
        self.grid = grid
        self.n_jobs = n_jobs

    def _fit_first_image(self, image):
        _check_radii_points(self.radii_points, self.method)
        _check_grid(self.grid)
        super()._fit_first_image(image)

    def _transform_chunk(self, images):
        pairs = _check_radii_points(self.radii_points, self.method)
        grid = _check_grid(self.grid)
        gray = [to_uint8(to_gray(image)) for image in images]
        for index, image in enumerate(gray):
            if image.shape[0] < grid[0] or image.shape[1] < grid[1]:
                raise ImageError(
                    index, f"image of {image.shape[0]}x{image.shape[1]} pixels is smaller "
                    f"than the LBP grid {grid}")
        out = np.empty((len(gray), 0), dtype=np.float32)
        by_shape = {}
        for index, image in enumerate(gray):
            by_shape.setdefault(image.shape, []).append(index)
        for shape, indices in by_shape.items():
            features = lbp_histograms(np.stack([gray[i] for i in indices]), pairs,
                                      self.method, grid)
            if out.shape[1] == 0:
                out = np.empty((len(gray), features.shape[1]), dtype=np.float32)
            out[indices] = features
        return out

    def _feature_names(self):
        grid_rows, grid_cols = _check_grid(self.grid)
        names = []
        for points, radius in _check_radii_points(self.radii_points, self.method):
            scale = f"lbp_p{points}_r{radius:g}"
            for row in range(grid_rows):
                for col in range(grid_cols):
                    names.extend(
                        f"{scale}_cell{row}_{col}_{self.method}{code}"
                        for code in range(n_lbp_bins(points, self.method))
                    )
        return names
