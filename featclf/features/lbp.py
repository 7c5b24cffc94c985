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

#: pixels whose codes are computed at once (the float64 temporaries, 8 bytes
#: a pixel, stay in a 256 KiB cache).
_CHUNK_PIXELS = 1 << 14


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


def _lowest_bit_index(values):
    """Index of the lowest set bit of each int64 value (64 for 0)."""
    return np.bitwise_count((values & -values) - 1)


def _map_codes(codes, points, method):
    """Map default codes to ``method`` codes, as scikit-image does.

    Bit counts use ``np.bitwise_count`` (popcount), so the cost does not
    grow with ``P`` except for "ror".

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
    all_bits = (1 << points) - 1
    n_ones = np.bitwise_count(codes).astype(np.int64)
    # 0/1 changes between bits i and i + 1 for i < P - 1 (not around the circle)
    changes = np.bitwise_count((codes ^ (codes >> 1)) & (all_bits >> 1))
    if method == "uniform":
        return np.where(changes <= 2, n_ones, points + 1)
    first_one = _lowest_bit_index(codes)
    first_zero = _lowest_bit_index(~codes & all_bits)
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
    pad = _padding(radius)
    codes = _padded_codes(gray, points, radius)[:, pad:pad + height, pad:pad + width]
    return _mapped(codes, points, method)


def _mapped(codes, points, method):
    """Default codes mapped to ``method`` codes (a table lookup for P <= 16)."""
    if method == "default":
        return codes
    if points <= _MAX_TABLE_POINTS:
        return _code_table(points, method)[codes]
    return _map_codes(codes.astype(np.int64), points, method)


def _padding(radius):
    return int(math.ceil(radius)) + 1


@functools.lru_cache(maxsize=256)
def _weight_runs(size, offset):
    """Interpolation fractions along one axis as a main value plus exceptions.

    The fraction ``(i + offset) - floor(i + offset)`` changes in its last
    bits only where ``i + offset`` crosses a power of two, so it is constant
    over long runs of ``i``.

    Returns
    -------
    low, high : int
        As :func:`_axis_sampling`.
    main : float
        The most frequent fraction.
    runs : tuple of (int, int, float)
        ``(start, stop, fraction)`` for the runs of ``i`` whose fraction
        differs from ``main``.
    """
    low, high, fraction = _axis_sampling(size, offset)
    values, counts = np.unique(fraction, return_counts=True)
    main = float(values[counts.argmax()])
    edges = np.flatnonzero(np.diff(fraction)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [size]])
    runs = tuple((int(a), int(b), float(fraction[a]))
                 for a, b in zip(starts, stops) if fraction[a] != main)
    return low, high, main, runs


#: with more exceptional runs than this along an axis, interpolation
#: weights are expanded per pixel instead of patched run by run.
_MAX_RUNS = 2


@functools.lru_cache(maxsize=64)
def _column_weights(width, offset, pad, n_rows):
    """Per-pixel ``(1 - dc, dc)`` for ``n_rows`` rows of padded width."""
    dc = np.zeros(width + 2 * pad)
    dc[pad:pad + width] = _axis_sampling(width, offset)[2]
    dc = np.tile(dc, n_rows)
    weights = (1 - dc, dc)
    for array in weights:
        array.flags.writeable = False
    return weights


@functools.lru_cache(maxsize=64)
def _row_weights(height, offset, pad, tall_width, first_row, n_rows, count):
    """Per-pixel ``(1 - dr, dr)`` for a chunk (see :func:`_chunk_codes`)."""
    per_image = np.zeros(height + 2 * pad)
    per_image[pad:pad + height] = _axis_sampling(height, offset)[2]
    rows = np.tile(per_image, count)[pad + first_row:]
    rows = rows[:(count - 1) * (height + 2 * pad) + n_rows]
    dr = np.repeat(rows, tall_width)
    weights = (1 - dr, dr)
    for array in weights:
        array.flags.writeable = False
    return weights


def _padded_codes(gray, points, radius):
    """Default LBP codes of every image, computed on the zero-padded stack.

    The padded images are stacked into one tall image ``(n * Hp, Wp)`` and
    handled as a flat array, so a neighbour is a constant flat offset and
    every step is a long contiguous operation on a chunk (several whole
    images, or a band of rows of a large one) sized to stay in cache.
    Interpolation weights vary (in their last bits) with the row and
    column, exactly as in scikit-image: each pass uses the main weight, then
    recomputes the few rows or columns whose weight differs
    (:func:`_weight_runs`).

    Parameters
    ----------
    gray : ndarray of shape (n, H, W), uint8

    Returns
    -------
    codes : ndarray of shape (n, H + 2 pad, W + 2 pad)
        ``pad = ceil(R) + 1``; the codes of the images are at
        ``[:, pad:pad + H, pad:pad + W]``, the padding holds garbage.
    """
    n, height, width = gray.shape
    pad = _padding(radius)
    tall_height, tall_width = height + 2 * pad, width + 2 * pad
    # one spare zero row above and below the tall image, so the column
    # neighbours of its first and last pixels stay inside the array
    tall = np.zeros((n * tall_height + 2, tall_width), dtype=np.uint8)
    tall[1:-1].reshape(n, tall_height, tall_width)[:, pad:pad + height, pad:pad + width] = gray
    flat_u8 = tall.reshape(-1)
    flat = flat_u8.astype(np.float64)
    code_dtype = np.uint8 if points <= 8 else np.uint16 if points <= 16 else np.uint32
    codes = np.zeros(flat.size, dtype=code_dtype)
    neighbours = []
    for row, col in zip(*_neighbour_offsets(points, radius)):
        top, bottom, dr, row_runs = _weight_runs(height, row)
        left, right, dc, col_runs = _weight_runs(width, col)
        neighbours.append(dict(
            top=top * tall_width, bottom=bottom * tall_width, left=left, right=right,
            dr=dr, row_runs=row_runs, dc=dc, col_runs=col_runs, col_key=col, row_key=row,
            height=height, width=width,
            integer=dr == 0 and dc == 0 and not row_runs and not col_runs,
        ))
    geometry = (pad, tall_height, tall_width)
    # chunks: several whole images when they fit, else bands of rows of one
    # image, as (first image, image count, first row, row count)
    per_chunk = _CHUNK_PIXELS // (tall_height * tall_width)
    if per_chunk >= 1:
        chunks = [(first, min(per_chunk, n - first), 0, height)
                  for first in range(0, n, per_chunk)]
    else:
        band = max(1, _CHUNK_PIXELS // tall_width)
        chunks = [(image, 1, row, min(band, height - row))
                  for image in range(n) for row in range(0, height, band)]
    for chunk in chunks:
        _chunk_codes(flat, flat_u8, codes, chunk, neighbours, geometry)
    return codes[tall_width:-tall_width].reshape(n, tall_height, tall_width)


def _chunk_codes(flat, flat_u8, codes, chunk, neighbours, geometry):
    """Add the default codes of one chunk of the tall image into ``codes``.

    ``chunk`` is ``(first image, image count, first row, row count)``: rows
    ``first row ..`` of each of the images (the padding rows between images
    are computed too, and ignored).
    """
    pad, tall_height, tall_width = geometry
    first, count, first_row, n_rows = chunk
    start = 1 + first * tall_height + pad + first_row  # tall-image row
    stop = start + (count - 1) * tall_height + n_rows
    begin, end = start * tall_width, stop * tall_width
    size, margin = end - begin, pad * tall_width
    centre, centre_u8 = flat[begin:end], flat_u8[begin:end]
    value, scratch = np.empty(size), np.empty(size)
    bit = np.empty(size, dtype=bool)
    shifted = np.empty(size, dtype=codes.dtype)
    out = codes[begin:end]
    itemsize = value.itemsize
    image_strides = (tall_height * tall_width * itemsize, tall_width * itemsize, itemsize)

    def per_image(array):
        # (count, n_rows, Wp) view of a chunk-sized array: image rows only
        return np.lib.stride_tricks.as_strided(
            array, shape=(count, n_rows, tall_width), strides=image_strides, writeable=True)

    horizontal = {}
    for i, nb in enumerate(neighbours):
        if nb["integer"]:
            offset = nb["top"] + nb["left"]
            np.greater_equal(flat_u8[begin + offset:end + offset], centre_u8, out=bit)
        else:
            if nb["col_key"] not in horizontal:
                # (1 - dc) * left + dc * right, on the chunk and `margin` around it
                lo, hi = begin - margin, end + margin
                left = flat[lo + nb["left"]:hi + nb["left"]]
                right = flat[lo + nb["right"]:hi + nb["right"]]
                dc = nb["dc"]
                if dc == 0 and not nb["col_runs"]:
                    interpolated = left
                elif len(nb["col_runs"]) > _MAX_RUNS:
                    one_minus_dc, dc = _column_weights(
                        nb["width"], nb["col_key"], pad, (hi - lo) // tall_width)
                    interpolated = np.multiply(left, one_minus_dc)
                    interpolated += np.multiply(right, dc, out=np.empty_like(interpolated))
                else:
                    interpolated = np.multiply(left, 1 - dc)
                    interpolated += np.multiply(right, dc, out=np.empty_like(interpolated))
                    grid = interpolated.reshape(-1, tall_width)
                    left, right = left.reshape(grid.shape), right.reshape(grid.shape)
                    for run_start, run_stop, fraction in nb["col_runs"]:
                        cols = slice(pad + run_start, pad + run_stop)
                        grid[:, cols] = (left[:, cols] * (1 - fraction)
                                         + right[:, cols] * fraction)
                horizontal[nb["col_key"]] = interpolated
            interpolated = horizontal[nb["col_key"]]
            top = interpolated[margin + nb["top"]:margin + nb["top"] + size]
            dr = nb["dr"]
            if dr == 0 and not nb["row_runs"]:
                np.greater_equal(top, centre, out=bit)
            else:
                # (1 - dr) * top + dr * bottom
                bottom = interpolated[margin + nb["bottom"]:margin + nb["bottom"] + size]
                if len(nb["row_runs"]) > _MAX_RUNS:
                    one_minus_dr, dr = _row_weights(
                        nb["height"], nb["row_key"], pad, tall_width, first_row, n_rows, count)
                    np.multiply(top, one_minus_dr, out=value)
                    np.multiply(bottom, dr, out=scratch)
                    value += scratch
                else:
                    np.multiply(top, 1 - dr, out=value)
                    np.multiply(bottom, dr, out=scratch)
                    value += scratch
                    value_rows, top_rows, bottom_rows = (
                        per_image(value), per_image(top), per_image(bottom))
                    for run_start, run_stop, fraction in nb["row_runs"]:
                        rows = slice(max(run_start - first_row, 0),
                                     max(min(run_stop - first_row, n_rows), 0))
                        if rows.start < rows.stop:
                            value_rows[:, rows] = (top_rows[:, rows] * (1 - fraction)
                                                   + bottom_rows[:, rows] * fraction)
                np.greater_equal(value, centre, out=bit)
        np.left_shift(bit.view(np.uint8), codes.dtype.type(i), out=shifted)
        out |= shifted


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
