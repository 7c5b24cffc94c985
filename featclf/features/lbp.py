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
   ``(1 - dr) * ((1 - dc) * tl + dc * tr) + dr * ((1 - dc) * bl + dc * br)``
   (``dr``, ``dc`` vary in their last bits with the row and column);
2. bit ``i`` is ``value_i >= centre``; the default code is
   ``sum(bit_i * 2**i)``;
3. the code is mapped by ``method``: ``"ror"`` is the smallest of the ``P``
   circular bit rotations; ``"uniform"`` is the number of ones when the bit
   string has at most two 0/1 changes (counted along ``i = 0 .. P-1``, not
   around the circle, as scikit-image does) and ``P + 1`` otherwise;
   ``"nri_uniform"`` gives every uniform pattern its own code (scikit-image's
   numbering) and all others ``P * (P - 1) + 2``;
4. a histogram of the codes per grid cell, normalised to sum 1.

How it stays bit-identical while fast: the images are stacked into one
zero-padded flat array, where a neighbour is a constant offset. Whole-pixel
neighbours are compared on the uint8 pixels. Interpolated ones are computed
in float32 (``cv2.addWeighted``, the horizontal part shared by neighbours
with the same column offset), within 1e-4 of scikit-image's float64 value,
and compared with ``centre - 1e-3`` and ``centre + 1e-3``: where both
comparisons agree, that is the bit. Where an interpolated neighbour is
flat (all its pixels equal the centre, which is one of them, as at
``R = 1``), scikit-image's float64 value is the centre up to rounding; for
most neighbours that rounding never goes below the centre (checked once per
image size and (P, R) for every gray value), so the bit is 1 without a
second look. The remaining near ties (corners whose weighted differences
cancel, other flat neighbours: about 0.5 % of the (pixel, neighbour) pairs
of a photo at (8, 1)) get the exact float64 computation above, pair by pair.

References
----------
.. [1] Ojala, T., Pietikainen, M. and Maenpaa, T., "Multiresolution
   gray-scale and rotation invariant texture classification with local
   binary patterns", IEEE PAMI 24(7), 2002, :DOI:`10.1109/TPAMI.2002.1017623`.
"""

import functools
import math
import numbers

import cv2
import numpy as np
from sklearn.utils._param_validation import StrOptions

from ..base import FeatureExtractor, ImageError
from ..preprocessing import to_gray, to_uint8
from .work_memory import WorkMemory, work_array

__all__ = ["LBP", "lbp_codes", "n_lbp_bins"]

#: Code mappings, as named by scikit-image.
METHODS = ("default", "ror", "uniform", "nri_uniform")

#: P above this would need more than 2**16 histogram bins for
#: "default"/"ror", and a lookup table larger than 64k entries.
_MAX_TABLE_POINTS = 16

#: up to this P, histograms count the 2**P raw codes and merge bins after.
_MERGE_BINS_POINTS = 10

#: pixels per group of images padded, coded and counted at once.
_GROUP_PIXELS = 1 << 18

#: pixels whose codes are computed at once (float32 work arrays of 512 KiB,
#: kept per thread between calls in :data:`_WORK`).
_CHUNK_PIXELS = 1 << 17

#: most bytes of work arrays kept per thread (a chunk of
#: :data:`_CHUNK_PIXELS` needs about 4 MB at P = 8, R = 1 and 8 MB at
#: P = 24, R = 3: one float32 array per distinct horizontal interpolation)
_WORK_BYTES = 32 << 20

#: the chunks' work arrays, kept per thread from one chunk, group and call
#: to the next: fresh memory for every group costs a page fault per 4 KiB
#: page, and kept arrays are still in cache (see
#: :mod:`~featclf.features.work_memory`). Nothing returned lives here.
_WORK = WorkMemory(_WORK_BYTES)

#: an interpolated neighbour whose float32 value is within this of the
#: centre is compared again in float64 (the float32 value is within 1e-4 of
#: scikit-image's float64 one).
_TIE_MARGIN = 1e-3

#: near-tie pixels decided exactly at once (small work arrays, few calls).
_EXACT_BATCH = 1 << 13


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
    layout = _Layout(n, height, width, points, radius)
    codes = _padded_codes(gray, layout, points, radius)
    return _mapped(layout.images_of(codes), points, method)


def _mapped(codes, points, method):
    """Default codes mapped to ``method`` codes (a table lookup for P <= 16)."""
    if method == "default":
        return codes
    if points <= _MAX_TABLE_POINTS:
        return _code_table(points, method)[codes]
    return _map_codes(codes.astype(np.int64), points, method)


@functools.lru_cache(maxsize=64)
def _sampling(height, width, points, radius):
    """How each neighbour is sampled, for images of ``height`` x ``width``.

    Returns
    -------
    neighbours : tuple of (int, int, float, int, int, float)
        Per neighbour ``(row_low, row_high, row_fraction, col_low, col_high,
        col_fraction)``: floor and ceil shifts (:func:`_axis_sampling`) and
        the interpolation fraction of the first row/column (the others
        differ in their last bits only).
    pad_rows, pad_cols : int
        Largest row and column shift.
    """
    neighbours = []
    for row, col in zip(*_neighbour_offsets(points, radius)):
        row_low, row_high, row_fraction = _axis_sampling(height, row)
        col_low, col_high, col_fraction = _axis_sampling(width, col)
        neighbours.append((row_low, row_high, float(row_fraction[0]),
                           col_low, col_high, float(col_fraction[0])))
    pad_rows = max(max(abs(n[0]), abs(n[1])) for n in neighbours)
    pad_cols = max(max(abs(n[3]), abs(n[4])) for n in neighbours)
    return tuple(neighbours), pad_rows, pad_cols


@functools.lru_cache(maxsize=64)
def _flat_is_set(height, width, points, radius):
    """Per neighbour: is scikit-image's bit 1 wherever it is flat?

    A neighbour is flat at a pixel when every pixel it interpolates equals
    the centre ``v``. Its float64 value is then ``v`` up to rounding, which
    the float32 pass cannot decide; this checks, for every ``v`` in 1..255
    and every interpolation fraction of this image size, that
    scikit-image's value is ``>= v``. Only interpolated neighbours whose
    pixels include the centre (as at ``R = 1``) qualify: flatness is then
    equality of the interpolated pixels, shared by all neighbours.

    Returns
    -------
    flat_is_set : tuple of bool, one per neighbour
    """
    values = np.arange(1, 256, dtype=np.float64)
    flat_is_set = []
    for row, col in zip(*_neighbour_offsets(points, radius)):
        row_low, row_high, row_fraction = _axis_sampling(height, row)
        col_low, col_high, col_fraction = _axis_sampling(width, col)
        interpolated = row_low != row_high or col_low != col_high
        centre_is_used = row_low <= 0 <= row_high and col_low <= 0 <= col_high
        if not (interpolated and centre_is_used):
            flat_is_set.append(False)
            continue
        dr = np.unique(row_fraction)[:, None, None]
        dc = np.unique(col_fraction)[None, :, None]
        # scikit-image's expression with all four pixels equal to v
        top = (1 - dc) * values + dc * values
        texture = (1 - dr) * top + dr * top
        flat_is_set.append(bool((texture >= values).all()))
    return tuple(flat_is_set)


class _Layout:
    """The padded layout in which a stack of images is processed.

    The images are stacked into one tall image, ``pad_rows`` zero rows
    above each image and below the last, ``pad_cols`` zero columns left of
    each row (they also serve as the right padding of the row before), and
    ``pad_cols`` zeros before and after the whole array. A neighbour is
    then a constant flat offset ``row_shift * stride + col_shift`` and every
    step is a long contiguous operation.
    """

    def __init__(self, n, height, width, points, radius):
        self.key = (n, height, width, points, radius)
        self.neighbours, self.pad_rows, self.pad_cols = _sampling(height, width, points, radius)
        self.flat_is_set = _flat_is_set(height, width, points, radius)
        self.n, self.height, self.width = n, height, width
        self.stride = width + self.pad_cols
        self.block = height + self.pad_rows  # rows per image
        self.n_rows = self.pad_rows + n * self.block
        self.margin = self.pad_cols
        self.size = self.n_rows * self.stride  # without the margins

    def pad(self, gray):
        """Flat uint8 array of ``size + 2 * margin`` holding ``gray`` padded."""
        flat = np.zeros(self.size + 2 * self.margin, dtype=np.uint8)
        body = flat[self.margin:self.margin + self.size].reshape(self.n_rows, self.stride)
        body[self.pad_rows:].reshape(self.n, self.block, self.stride)[
            :, :self.height, self.pad_cols:] = gray
        return flat

    def images_of(self, body):
        """View ``(n, H, W)`` of the image pixels of a ``size``-long array."""
        rows = body.reshape(self.n_rows, self.stride)[self.pad_rows:]
        return rows.reshape(self.n, self.block, self.stride)[:, :self.height, self.pad_cols:]


def _padded_codes(gray, layout, points, radius):
    """Default LBP codes of every image, in the padded layout.

    Neighbours whose offsets are whole pixels are compared on the uint8
    pixels. The others are interpolated in float32 with the first
    row's/column's fractions, which is within 1e-4 of scikit-image's
    float64 value, and compared with ``centre - margin`` and ``centre +
    margin`` (``margin`` = :data:`_TIE_MARGIN`): where both agree, that is
    the bit. Where they differ (a near tie: flat areas, or corners whose
    weighted differences cancel) and the centre is not 0, the bit is
    computed again by :func:`_exact_bits`, in float64 exactly as
    scikit-image does. A centre of 0 needs no second look: every
    interpolated value is a sum of products of non-negative numbers, so
    >= 0 in both.

    Parameters
    ----------
    gray : ndarray of shape (n, H, W), uint8
    layout : _Layout

    Returns
    -------
    codes : ndarray of shape (layout.size,), uint8, uint16 or uint32
        The codes of the image pixels (see :meth:`_Layout.images_of`); the
        padding holds garbage.
    """
    flat_u8 = layout.pad(gray)
    code_dtype = np.uint8 if points <= 8 else np.uint16 if points <= 16 else np.uint32
    codes = np.zeros(layout.size, dtype=code_dtype)
    stride, pad_rows = layout.stride, layout.pad_rows
    # rows of the tall image whose codes are needed (first image row to last)
    first_row, stop_row = pad_rows, layout.n_rows - pad_rows
    rows_per_chunk = max(1, _CHUNK_PIXELS // stride)
    pending, n_pending = [], 0  # near ties, decided _EXACT_BATCH pixels at a time
    for row in range(first_row, stop_row, rows_per_chunk):
        rows = (row, min(row + rows_per_chunk, stop_row))
        pending.append(_chunk_codes(flat_u8, codes, rows, layout, _WORK))
        n_pending += len(pending[-1][0])
        if n_pending >= _EXACT_BATCH or rows[1] == stop_row:
            where = np.concatenate([where for where, _ in pending])
            unsure = np.concatenate([unsure for _, unsure in pending])
            if where.size:
                exact = _exact_bits(flat_u8, where, unsure, layout, points, radius)
                codes[where] = (codes[where] & ~unsure) | exact
            pending, n_pending = [], 0
    return codes


def _chunk_codes(flat_u8, codes, rows, layout, work=None):
    """Write the default codes of tall-image rows ``rows[0]:rows[1]`` into ``codes``.

    Parameters
    ----------
    flat_u8 : ndarray, uint8
        The padded images (:meth:`_Layout.pad`).
    codes : ndarray of shape (layout.size,), uint8, uint16 or uint32
    rows : (int, int)
    layout : _Layout
    work : WorkMemory, default=None
        Where the chunk's work arrays are taken (None: fresh arrays). The
        float32 ones are ``size + 2 * halo`` long or less (``size`` the
        chunk's pixels, ``halo`` the padding rows' pixels).

    Returns
    -------
    where : ndarray of int64
        Positions (in ``codes``) of the near ties.
    unsure : ndarray
        Their bits (a mask) that :func:`_exact_bits` must decide.
    """
    stride, margin = layout.stride, layout.margin
    begin = margin + rows[0] * stride  # in the flat (margin-padded) arrays
    size = (rows[1] - rows[0]) * stride
    halo = layout.pad_rows * stride
    centre_u8 = flat_u8[begin:begin + size]
    # flat_u8[begin - around:begin + size + around] as float32
    around = halo + layout.pad_cols
    flat = work_array(work, "pixels", (size + 2 * around,))
    np.copyto(flat, flat_u8[begin - around:begin + size + around])
    centre = flat[around:around + size]
    low = work_array(work, "low", (size,))  # centre - margin
    high = work_array(work, "high", (size,))  # centre + margin
    np.subtract(centre, np.float32(_TIE_MARGIN), out=low)
    np.add(centre, np.float32(_TIE_MARGIN), out=high)
    value = work_array(work, "value", (size,))
    bit = work_array(work, "bit", (size,), bool)
    lower = codes[begin - margin:begin - margin + size]  # codes against centre - margin
    upper = work_array(work, "upper", (size,), codes.dtype)
    upper[...] = 0
    bit_u8 = bit.view(np.uint8)
    flat_where = _flat_masks(flat_u8, begin, size, layout, work)
    mixed_by_key = {}
    # bit i is worth 2**i: Horner's scheme from the last neighbour down
    for i in range(len(layout.neighbours) - 1, -1, -1):
        row_low, row_high, dr, col_low, col_high, dc = layout.neighbours[i]
        lower += lower
        upper += upper
        if row_low == row_high and col_low == col_high:  # a whole-pixel neighbour
            at = begin + row_low * stride + col_low
            np.greater_equal(flat_u8[at:at + size], centre_u8, out=bit)
            lower += bit_u8
            upper += bit_u8
            continue
        key = (col_low, col_high, dc)
        if key not in mixed_by_key:
            # (1 - dc) * left + dc * right on the chunk and `halo` around it
            lo = layout.pad_cols  # begin - halo in `flat`
            left = flat[lo + col_low:lo + col_low + size + 2 * halo]
            if col_low == col_high:
                mixed_by_key[key] = left
            else:
                right = flat[lo + col_high:lo + col_high + size + 2 * halo]
                # one work array per distinct horizontal interpolation
                mixed_by_key[key] = cv2.addWeighted(
                    left, 1 - dc, right, dc, 0,
                    dst=work_array(work, f"horizontal_{len(mixed_by_key)}", (size + 2 * halo,)))
        mixed = mixed_by_key[key]
        top = mixed[halo + row_low * stride:halo + row_low * stride + size]
        if row_low == row_high:
            interpolated = top
        else:
            bottom = mixed[halo + row_high * stride:halo + row_high * stride + size]
            interpolated = cv2.addWeighted(top, 1 - dr, bottom, dr, 0, dst=value)
        np.greater_equal(interpolated, low, out=bit)
        lower += bit_u8
        np.greater_equal(interpolated, high, out=bit)
        if i in flat_where:  # where flat, scikit-image's bit is 1: sure
            np.bitwise_or(bit, flat_where[i], out=bit)
        upper += bit_u8
    unsure = np.bitwise_xor(lower, upper, out=upper)
    near_tie = unsure.astype(bool)
    near_tie &= centre_u8 != 0
    where = np.flatnonzero(near_tie)
    return where + (begin - margin), unsure[where]


def _flat_masks(flat_u8, begin, size, layout, work=None):
    """Where each neighbour of :attr:`_Layout.flat_is_set` is flat, in a chunk.

    Its pixels form a 2x2 block (or a 1x2 / 2x1 pair) that includes the
    centre, so it is flat where they are all equal: a shifted view of the
    same equality masks for every neighbour.

    Parameters
    ----------
    flat_u8 : ndarray, uint8
        The padded images.
    begin, size : int
        The chunk's first position in ``flat_u8`` and its length.
    layout : _Layout
    work : WorkMemory, default=None
        Where the equality masks are taken (None: fresh arrays).

    Returns
    -------
    masks : dict of int to ndarray of shape (size,), bool
        Neighbour index -> flat at each pixel of the chunk.
    """
    stride = layout.stride
    corners = {i: layout.neighbours[i] for i, is_set in enumerate(layout.flat_is_set) if is_set}
    if not corners:
        return {}
    # top-left pixel of every flat-checked neighbour, relative to the centre
    shifts = [row_low * stride + col_low for row_low, _, _, col_low, _, _ in corners.values()]
    rows_differ = any(row_low != row_high for row_low, row_high, *_ in corners.values())
    below = stride if rows_differ else 0  # the masks look one row down
    start = begin + min(shifts)  # equality masks cover flat_u8[start:start + span]
    span = size + max(shifts) - min(shifts) + below
    # pixel equals its right / lower neighbour; all four of a 2x2 block equal
    right = work_array(work, "equal_right", (span,), bool)
    np.equal(flat_u8[start:start + span], flat_u8[start + 1:start + 1 + span], out=right)
    if rows_differ:
        down = work_array(work, "equal_down", (span - below,), bool)
        np.equal(flat_u8[start:start + span - below], flat_u8[start + below:start + span],
                 out=down)
        block = work_array(work, "equal_block", (span - below,), bool)
        np.logical_and(right[:span - below], right[below:], out=block)
        block &= down
    masks = {}
    for (i, (row_low, row_high, _, col_low, col_high, _)), shift in zip(corners.items(), shifts):
        equal = (block if row_low != row_high and col_low != col_high
                 else right if col_low != col_high else down)
        at = begin + shift - start
        masks[i] = equal[at:at + size]
    return masks


def _exact_bits(flat_u8, where, unsure, layout, points, radius):
    """scikit-image's bits ``unsure`` of the codes of some pixels, as it computes them.

    Only the (pixel, neighbour) pairs flagged in ``unsure`` are computed:
    ``(1 - dr) * ((1 - dc) * tl + dc * tr) + dr * ((1 - dc) * bl + dc * br)
    >= centre`` in float64, with ``dr, dc`` the fractions of
    ``r + row_offset`` and ``c + col_offset``.

    Parameters
    ----------
    flat_u8 : ndarray, uint8
        The padded images (:meth:`_Layout.pad`).
    where : ndarray of int64
        Positions of the pixels in the layout (without margin).
    unsure : ndarray of unsigned int, same length
        Bit ``i`` set: neighbour ``i`` must be computed.

    Returns
    -------
    bits : ndarray like ``unsure``
        The exact bits at the ``unsure`` positions, 0 elsewhere.
    """
    pixel, neighbour = _set_bits(unsure)
    row_fractions, col_fractions, top_left, col_step, row_step = _exact_sampling(
        layout.height, layout.width, points, radius)
    # row and column per pixel, then per pair (floor division and products:
    # numpy's divmod and % are slower)
    tall_row = where // layout.stride
    col = where - tall_row * layout.stride
    col -= layout.pad_cols
    tall_row -= layout.pad_rows
    row = tall_row - (tall_row // layout.block) * layout.block  # row inside its image
    dr = row_fractions[neighbour * layout.height + row[pixel]]
    dc = col_fractions[neighbour * layout.width + col[pixel]]
    position = where[pixel]
    position += layout.margin
    centre = flat_u8[position]
    position += top_left[neighbour]
    col_step, row_step = col_step[neighbour], row_step[neighbour]
    one_minus_dc = 1 - dc
    top = one_minus_dc * flat_u8[position]
    top += dc * flat_u8[position + col_step]
    position += row_step
    bottom = one_minus_dc * flat_u8[position]
    bottom += dc * flat_u8[position + col_step]
    texture = (1 - dr) * top
    texture += dr * bottom
    bits = texture >= centre
    return np.bincount(pixel[bits], weights=_POWERS_OF_TWO[neighbour[bits]],
                       minlength=len(where)).astype(unsure.dtype)


_POWERS_OF_TWO = 2.0 ** np.arange(32)


def _set_bits(masks):
    """The set bits of unsigned ``masks``, as (index, bit position) pairs.

    Peels the lowest set bit of every mask at a time (near-tie masks have
    one or two bits set).

    Returns
    -------
    index, bit : ndarray of int64
    """
    indices, bits = [], []
    index = np.arange(len(masks))
    masks = masks.astype(np.int64)
    while True:
        lowest = masks & -masks
        indices.append(index)
        bits.append(np.bitwise_count(lowest - 1))
        masks ^= lowest
        left = np.flatnonzero(masks != 0)  # (on bool: much faster)
        if not left.size:
            break
        index, masks = index[left], masks[left]
    if len(indices) == 1:
        return indices[0], bits[0].astype(np.int64)
    return np.concatenate(indices), np.concatenate(bits).astype(np.int64)


@functools.lru_cache(maxsize=64)
def _exact_sampling(height, width, points, radius):
    """Tables for :func:`_exact_bits`, per neighbour, as scikit-image samples.

    Returns
    -------
    row_fractions : ndarray of shape (P * H,), float64
        ``(r + row_offset) - floor(r + row_offset)`` of neighbour ``i`` at
        row ``r`` at ``i * H + r``.
    col_fractions : ndarray of shape (P * W,), float64
        The same along columns.
    top_left, col_step, row_step : ndarray of shape (P,), int64
        Flat offset of the top-left pixel in the layout, and from the left
        to the right pixel and from the top to the bottom one.
    """
    stride = width + _sampling(height, width, points, radius)[2]
    row_fractions, col_fractions, steps = [], [], []
    for row, col in zip(*_neighbour_offsets(points, radius)):
        row_low, row_high, row_fraction = _axis_sampling(height, row)
        col_low, col_high, col_fraction = _axis_sampling(width, col)
        row_fractions.append(row_fraction)
        col_fractions.append(col_fraction)
        steps.append((row_low * stride + col_low, col_high - col_low,
                      (row_high - row_low) * stride))
    steps = np.array(steps, np.int64)
    tables = (np.concatenate(row_fractions), np.concatenate(col_fractions),
              steps[:, 0].copy(), steps[:, 1].copy(), steps[:, 2].copy())
    for table in tables:
        table.flags.writeable = False
    return tables


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
    blocks = []
    for points, radius in radii_points:
        n_bins = n_lbp_bins(points, method)
        # small P: count the raw codes, then merge their bins (cheaper than
        # mapping every pixel through the lookup table)
        merge_bins = method != "default" and points <= _MERGE_BINS_POINTS
        counted_bins = 2**points if merge_bins else n_bins
        parts = []
        for start, stop in _groups(n, height * width, _slot_limit(points, n_cells)):
            images = gray[start:stop]
            layout = _Layout(len(images), height, width, points, radius)
            codes = _padded_codes(images, layout, points, radius)
            if not merge_bins:
                codes = _mapped(codes, points, method)  # the padding's garbage too
            counts = _count_codes(codes, layout, grid, counted_bins)
            if merge_bins:  # one 2-D product (a stack of small ones is far slower)
                # (float32 for calcHist counts: exact below 2**24 per bin)
                counts = counts @ _bin_merging(points, method, counts.dtype == np.float32)
            counts = counts.reshape(len(images), n_cells, n_bins)
            parts.append((counts / pixels_per_cell[:, None]).reshape(len(images), -1))
        blocks.append(np.concatenate(parts))
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _slot_limit(points, n_cells):
    """Most images per group whose codes :func:`_count_codes` counts with
    ``cv2.calcHist`` (uint8 codes, at most 255 (image, cell) slots); None
    when it counts them with ``np.bincount`` (no limit)."""
    if points <= 8 and n_cells <= _HIST_SLOTS:
        return _HIST_SLOTS // n_cells
    return None


def _groups(n, image_pixels, limit=None):
    """``(start, stop)`` of groups of about :data:`_GROUP_PIXELS` pixels, at
    most ``limit`` images each, of even sizes."""
    group = max(1, _GROUP_PIXELS // image_pixels)
    if limit is not None:
        group = min(group, limit)
    n_groups = -(-n // group)
    edges = np.linspace(0, n, n_groups + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _count_codes(codes, layout, grid, n_bins):
    """Histogram of the codes of every (image, grid cell) of a layout.

    Parameters
    ----------
    codes : ndarray of shape (layout.size,), unsigned int
        Codes below ``n_bins`` at the image pixels, anything in the padding.
    layout : _Layout
    grid : tuple of (int, int)
    n_bins : int

    Returns
    -------
    counts : ndarray of shape (layout.n * n_cells, n_bins)
        Row ``image * n_cells + cell``.
    """
    n_slots = layout.n * grid[0] * grid[1]
    if codes.dtype == np.uint8 and n_slots <= _HIST_SLOTS:
        # 2-D histogram (code, slot) in one SIMD pass; the padding's slot
        # _HIST_SLOTS lies outside the range, so it is not counted
        slots = _hist_slots(layout.key, grid)
        shape = (layout.n_rows, layout.stride)
        counts = cv2.calcHist([codes.reshape(shape), slots.reshape(shape)], [0, 1], None,
                              [n_bins, n_slots], [0, n_bins, 0, n_slots])
        return counts.T
    offsets = _bin_offsets(layout.key, grid, n_bins)
    n_counted = n_slots * n_bins
    counts = np.bincount(np.add(codes, offsets, dtype=offsets.dtype),
                         minlength=n_counted + 1)[:n_counted]
    return counts.reshape(n_slots, n_bins)


#: (image, grid cell) slots one ``cv2.calcHist`` call counts (uint8 slot
#: numbers, 255 marks the padding).
_HIST_SLOTS = 255


@functools.lru_cache(maxsize=32)
def _hist_slots(layout_key, grid):
    """(image, cell) slot ``image * n_cells + cell`` of every position of a
    :class:`_Layout` as uint8, :data:`_HIST_SLOTS` in the padding (read-only)."""
    layout = _Layout(*layout_key)
    n_cells = grid[0] * grid[1]
    slots = np.full(layout.size, _HIST_SLOTS, dtype=np.uint8)
    cells = _grid_cells(layout.height, layout.width, grid)
    layout.images_of(slots)[...] = np.arange(layout.n)[:, None, None] * n_cells + cells
    slots.flags.writeable = False
    return slots


@functools.lru_cache(maxsize=32)
def _bin_offsets(layout_key, grid, n_bins):
    """First histogram slot of every position of a :class:`_Layout`.

    ``(image * n_cells + cell) * n_bins`` for image pixels; the padding
    points to a spare slot ``n * n_cells * n_bins``, dropped afterwards.

    Returns
    -------
    offsets : ndarray of shape (layout.size,), int32 (int64 if needed), read-only
    """
    layout = _Layout(*layout_key)
    n_cells = grid[0] * grid[1]
    spare = layout.n * n_cells * n_bins
    dtype = np.int32 if spare + n_bins < np.iinfo(np.int32).max else np.int64
    offsets = np.full(layout.size, spare, dtype=dtype)
    cells = _grid_cells(layout.height, layout.width, grid)
    layout.images_of(offsets)[...] = (np.arange(layout.n)[:, None, None] * n_cells + cells) * n_bins
    offsets.flags.writeable = False
    return offsets


@functools.lru_cache(maxsize=32)
def _bin_merging(points, method, single=False):
    """Matrix (2**P, n_bins) of 0/1 that sums raw-code counts into method bins
    (float32 if ``single``, else float64)."""
    table = _code_table(points, method)
    merging = np.zeros((2**points, n_lbp_bins(points, method)),
                       dtype=np.float32 if single else np.float64)
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
    _chunk_as_stack = True

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
        if isinstance(images, np.ndarray):  # a stack: one size, made gray at once
            n, height, width = images.shape[:3]
            if images.ndim == 4:  # RGB rows side by side: one cv2 call
                images = to_gray(images.reshape(n * height, width, -1)).reshape(n, height, width)
            gray = to_uint8(images)
            if height < grid[0] or width < grid[1]:
                raise ImageError(0, f"image of {height}x{width} pixels is smaller "
                                 f"than the LBP grid {grid}")
            return lbp_histograms(gray, pairs, self.method, grid)
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
