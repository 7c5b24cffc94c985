"""Histogram of Oriented Gradients (HOG), computed over a whole batch at once.

This is featclf's one HOG definition. Its values equal
``skimage.feature.hog(to_float(image), ..., feature_vector=True)`` (gray
images) or the same with ``channel_axis=-1`` (RGB images) to within 1e-5,
for every ``block_norm``, but the work is done with numpy on a stack of
same-size images instead of one image at a time in Cython.

Algorithm (as in scikit-image, after Dalal & Triggs [1]_):

1. optional square root of every pixel (``transform_sqrt``);
2. gradients by central differences ``I[r+1] - I[r-1]`` along rows and
   columns, zero on the image border; for RGB, each pixel keeps the
   gradient of the channel with the largest gradient magnitude;
3. unsigned orientation ``atan2(g_row, g_col)`` in degrees modulo 180, hard
   assigned to ``orientations`` equal bins (no interpolation between bins or
   cells); each pixel votes its gradient magnitude into the histogram of its
   cell; a cell histogram is the mean over the cell's pixels. Pixels right
   or below the last whole cell are ignored;
4. blocks of ``cells_per_block`` cells, sliding by one cell, each
   normalised by ``block_norm`` (``eps = 1e-5``);
5. the blocks are flattened in the order
   ``(n_blocks_row, n_blocks_col, cells_row, cells_col, orientations)``.

How it stays fast: a group of images is laid out with the image axis last
(``(H, W, n)``), so every step runs over long contiguous rows even for
28x28 images and cropping to whole cells is a slice; gray uint8 images are
differentiated as integers (no conversion to [0, 1] per pixel: the
histograms are divided by 255 instead). Orientations come from
``cv2.cartToPolar`` in float32 and are binned in fixed point; cell sums
are one ``np.bincount`` per group; blocks are one strided copy, normalised
in place.

How it stays exact: ``cv2.cartToPolar``'s angle is within 0.0096 degree of
float64 ``atan2`` (over all integer gradients), and integer gradients are
within 0.001 degree of the float32 gradients of ``to_float`` images. Every
pixel whose angle lies within 0.05 degree of a bin edge is binned again
exactly as scikit-image does, from scikit-image's own float32 gradients, in
float64 (its bin edges are float32 values, and an angle equal to 180 after
the modulo falls in no bin). Magnitudes differ from scikit-image's float64
``hypot`` by float32 rounding only.

References
----------
.. [1] Dalal, N. and Triggs, B., "Histograms of Oriented Gradients for
   Human Detection", CVPR 2005, :DOI:`10.1109/CVPR.2005.177`.
"""

import functools
import math
import numbers

import cv2
import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ..base import FeatureExtractor, ImageError
from ..preprocessing import to_float

__all__ = ["HOG", "hog_batch"]

#: Block normalisations, as named by scikit-image.
BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")

_EPS = 1e-5
#: pixels per group of images processed at once (temporaries fit in cache).
_GROUP_PIXELS = 1 << 17
# cv2.cartToPolar's angle is within 0.0096 degree of float64 atan2 (measured
# over all integer gradients -255..255; OpenCV documents about 0.01), and the
# integer gradients of uint8 images within 0.001 degree of scikit-image's
# float32 ones; pixels closer than this to a bin edge are binned again exactly.
_EDGE_TOLERANCE_DEG = 0.05


def _pair(value, name):
    if isinstance(value, numbers.Integral):
        value = (value, value)
    try:
        rows, cols = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"HOG: {name} must be an int or a (rows, cols) pair, got {value!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"HOG: {name} must be positive, got {value!r}")
    return rows, cols


def _images_last(stack):
    """The images of a gray stack as planes with the image axis last.

    With the image axis innermost, every later step works on long
    contiguous runs even for tiny images, and cropping to whole cells is a
    slice of the two outer axes instead of a strided copy.

    Parameters
    ----------
    stack : ndarray of shape (n, H, W), uint8 or float32

    Returns
    -------
    planes : ndarray of shape (H, W, n), same dtype, C-contiguous
        A view of ``stack`` when ``n == 1``.
    """
    n, height, width = stack.shape
    rows = np.ascontiguousarray(stack).reshape(n, -1)
    if n == 1:
        planes = rows
    elif n <= 4:  # cv2.transpose is slow for a few long rows; merge interleaves them
        planes = cv2.merge(list(rows.reshape(n, height, width)))
    else:
        planes = cv2.transpose(rows)
    return planes.reshape(height, width, n)


def _channels(stack):
    """The channels of a stack as gray stacks (a colour stack is split, in one pass).

    Parameters
    ----------
    stack : ndarray of shape (n, H, W) or (n, H, W, C)

    Returns
    -------
    channels : list of ndarray of shape (n, H, W), C-contiguous
    """
    if stack.ndim == 3:
        return [stack]
    n, height, width, n_channels = stack.shape
    pixels = np.ascontiguousarray(stack).reshape(n * height, width, n_channels)
    return [channel.reshape(n, height, width) for channel in cv2.split(pixels)]


def _gradients(planes, crop):
    """Central-difference gradients, zero on the image border, of whole cells.

    As ``skimage.feature._hog_channel_gradient``: ``g_row[r] = I[r + 1] -
    I[r - 1]`` and ``g_col[c] = I[c + 1] - I[c - 1]``, zero on the first
    and last row (column) of the image. Only the top-left ``crop`` is
    computed: the pixels right of or below the last whole cell vote in no
    histogram.

    Parameters
    ----------
    planes : ndarray of shape (H, W, n), float32
        Images with the image axis last.
    crop : tuple of (int, int)
        ``(Hc, Wc)`` with ``Hc <= H`` and ``Wc <= W``.

    Returns
    -------
    g_row, g_col : ndarray of shape (Hc, Wc, n), float32, C-contiguous
    """
    height, width = planes.shape[:2]
    crop_rows, crop_cols = crop
    g_row = np.empty((crop_rows, crop_cols) + planes.shape[2:], planes.dtype)
    g_col = np.empty_like(g_row)
    # rows 1 .. inner_rows - 1 of the crop have both neighbours in the image
    inner_rows = min(crop_rows, height - 1)
    g_row[:1] = 0
    g_row[max(inner_rows, 1):] = 0
    if inner_rows > 1:
        np.subtract(planes[2:inner_rows + 1, :crop_cols], planes[:inner_rows - 1, :crop_cols],
                    out=g_row[1:inner_rows])
    inner_cols = min(crop_cols, width - 1)
    if crop_cols == width and width > 2:
        # whole rows: one flat subtraction (a 2-D one runs ~3x slower when the
        # row length is a multiple of 4 KiB); the values that straddle two
        # rows are the border columns, zeroed below
        step = planes[0, 0].size
        flat = planes.reshape(-1)[:crop_rows * width * step]
        np.subtract(flat[2 * step:], flat[:-2 * step], out=g_col.reshape(-1)[step:-step])
    elif inner_cols > 1:
        np.subtract(planes[:crop_rows, 2:inner_cols + 1], planes[:crop_rows, :inner_cols - 1],
                    out=g_col[:, 1:inner_cols])
    g_col[:, :1] = 0
    g_col[:, max(inner_cols, 1):] = 0
    return g_row, g_col


def _integer_gradients_as_skimage(planes, g_row, g_col, where):
    """scikit-image's float32 gradients at a few pixels of uint8-valued images.

    The fast path differentiates the uint8 values themselves (exact
    integers); scikit-image differentiates ``to_float`` of them
    (``value / 255`` in float32), which rounds differently. The pixels whose
    bin must be decided exactly get scikit-image's gradients here:
    ``f(above + d_row) - f(above)`` with ``f(v) = float32(v) / 255``, where
    ``above`` is the pixel above (left of) the centre and ``d_row`` the
    integer gradient. On the image border the integer gradient is 0, so any
    ``above`` gives scikit-image's zero.

    Parameters
    ----------
    planes : ndarray of shape (H, W, n), float32
        Gray images holding uint8 values (0-255), image axis last.
    g_row, g_col : ndarray of shape (Hc, Wc, n), float32
        Their integer gradients over the whole cells (:func:`_gradients`).
    where : ndarray of int
        Flat indices into ``g_row``.

    Returns
    -------
    g_row, g_col : ndarray of shape (len(where),), float32
    """
    height, width, n = planes.shape
    crop_cols = g_row.shape[1]
    d_row, d_col = g_row.reshape(-1).take(where), g_col.reshape(-1).take(where)
    centre = where  # index into planes
    if crop_cols != width:
        centre = where + where // (crop_cols * n) * ((width - crop_cols) * n)
    flat = planes.reshape(-1)
    above = flat.take(centre - width * n, mode="clip")
    left = flat.take(centre - n, mode="clip")
    scale = np.float32(255)
    return ((above + d_row) / scale - above / scale,
            (left + d_col) / scale - left / scale)


# float32 squared magnitudes of two channels closer than this (relative) may
# be ordered differently than by np.hypot: decided exactly.
_TIE_TOLERANCE = 4e-6


def _dominant_channel(g_rows, g_cols):
    """Per pixel, the gradient of the channel with the largest magnitude.

    scikit-image compares ``np.hypot`` of float32 gradients (hypot is
    evaluated in float64 and rounded to float32) and takes the first
    channel on ties. Here the channels are compared by float32 squared
    magnitudes; the pixels where another channel with a different gradient
    comes within :data:`_TIE_TOLERANCE` of the chosen one are decided again
    with the exact float64 hypot, so the choice is scikit-image's.

    Parameters
    ----------
    g_rows, g_cols : list of ndarray of shape (H, W, n), float32
        The gradients of each channel.

    Returns
    -------
    g_row, g_col : ndarray of shape (H, W, n), float32
    """
    squared = []
    for g_row, g_col in zip(g_rows, g_cols):
        channel_squared = g_row * g_row
        channel_squared += g_col * g_col
        squared.append(channel_squared)
    best_row, best_col = g_rows[0].copy(), g_cols[0].copy()
    largest = squared[0].copy()
    height = largest.shape[0]
    for g_row, g_col, channel_squared in zip(g_rows[1:], g_cols[1:], squared[1:]):
        larger = (channel_squared > largest).view(np.uint8).reshape(height, -1)
        # masked copies in place; cv2.copyTo is ~15x faster than np.copyto(where=)
        cv2.copyTo(g_row.reshape(height, -1), larger, best_row.reshape(height, -1))
        cv2.copyTo(g_col.reshape(height, -1), larger, best_col.reshape(height, -1))
        np.maximum(largest, channel_squared, out=largest)
    threshold = largest * np.float32(1 - _TIE_TOLERANCE)
    ambiguous = np.zeros(largest.shape, dtype=bool)
    for g_row, g_col, channel_squared in zip(g_rows, g_cols, squared):
        differs = g_row != best_row
        differs |= g_col != best_col
        differs &= channel_squared >= threshold
        ambiguous |= differs
    where = np.flatnonzero(ambiguous)
    if where.size:
        rows = np.stack([g_row.reshape(-1)[where] for g_row in g_rows], axis=1).astype(np.float64)
        cols = np.stack([g_col.reshape(-1)[where] for g_col in g_cols], axis=1).astype(np.float64)
        best = np.sqrt(rows * rows + cols * cols).astype(np.float32).argmax(axis=1)
        picked = np.arange(best.size)
        best_row.reshape(-1)[where] = rows[picked, best]
        best_col.reshape(-1)[where] = cols[picked, best]
    return best_row, best_col


@functools.lru_cache(maxsize=16)
def _bin_edges(orientations):
    """scikit-image's bin edges, ``float32(180 / n) * i`` (float32), as float64."""
    step = np.float32(180.0 / orientations)
    edges = (np.arange(orientations + 1, dtype=np.float32) * step).astype(np.float64)
    edges.flags.writeable = False
    return edges


def _exact_bins(g_row, g_col, orientations):
    """scikit-image's orientation bins, computed in float64 like its Cython.

    Returns
    -------
    bins : ndarray of int64
        In ``[0, orientations]``; ``orientations`` means "in no bin" (an
        angle of exactly 180 degrees after the modulo, or one above the
        last float32 edge).
    """
    angle = np.arctan2(g_row, g_col, dtype=np.float64)
    np.rad2deg(angle, out=angle)
    np.remainder(angle, 180, out=angle)
    return np.searchsorted(_bin_edges(orientations), angle, side="right") - 1


@functools.lru_cache(maxsize=16)
def _histogram_offsets(shape, cell_shape, orientations):
    """Index of the first (cell, bin) histogram slot of every pixel.

    Parameters
    ----------
    shape : tuple of (int, int, int)
        ``(Hc, Wc, n)``: images cropped to whole cells, image axis last.
    cell_shape : tuple of (int, int)
    orientations : int

    Returns
    -------
    offsets : ndarray of shape (Hc * Wc * n,), int32, read-only
        ``(image * n_cells + cell) * 2 * orientations`` for every pixel, in
        the pixel order of ``shape``.
    """
    crop_rows, crop_cols, n = shape
    cell_rows, cell_cols = cell_shape
    n_cells_col = crop_cols // cell_cols
    n_cells = (crop_rows // cell_rows) * n_cells_col
    cell_of_pixel = (np.arange(crop_rows)[:, None] // cell_rows * n_cells_col
                     + np.arange(crop_cols)[None, :] // cell_cols)
    offsets = (np.arange(n) * n_cells + cell_of_pixel[:, :, None]) * (2 * orientations)
    if offsets.size and offsets.max() > np.iinfo(np.int32).max:  # pragma: no cover
        raise ValueError("HOG: too many cells in one group")
    offsets = offsets.astype(np.int32).reshape(-1)
    offsets.flags.writeable = False
    return offsets


@functools.lru_cache(maxsize=16)
def _fold_matrix(orientations, scale):
    """(2 * orientations, orientations) matrix that folds 180-360 onto 0-180
    and multiplies by ``scale``."""
    fold = np.vstack([np.eye(orientations)] * 2) * scale
    fold.flags.writeable = False
    return fold


@functools.lru_cache(maxsize=16)
def _quantizer(orientations, tolerance_deg):
    """Fixed-point orientation coordinates for binning and the edge test.

    Returns
    -------
    shift : int
        Orientation positions (in bins) are scaled by ``2**shift`` and
        truncated to int32; the bin is the value ``>> shift``.
    tolerance : int
        A pixel whose scaled position lies within ``tolerance`` of a
        multiple of ``2**shift`` is near a bin edge; at least
        ``tolerance_deg`` (:data:`_EDGE_TOLERANCE_DEG`) as a fraction of a bin.
    """
    tolerance_bins = tolerance_deg * orientations / 180.0
    shift = max(0, math.ceil(math.log2(2 / tolerance_bins)))
    return shift, math.ceil(tolerance_bins * (1 << shift))


def _cell_histograms(g_row, g_col, cell_shape, orientations, exact_gradients, scale):
    """Mean gradient magnitude per (cell, orientation bin).

    The angle comes from ``cv2.cartToPolar`` in float32 over the full
    circle (0-360 degrees, so each cell gets ``2 * orientations`` bins that
    are folded in two at the end). Its error is below 0.01 degree; every
    pixel within :data:`_EDGE_TOLERANCE_DEG` of a bin edge is binned again
    exactly by :func:`_exact_bins`, except pixels with ``g_row == 0``,
    whose angle (0 or 180) is exact in both and lands in bin 0.

    Parameters
    ----------
    g_row, g_col : ndarray of shape (Hc, Wc, n), float32
        Gradients of the images cropped to whole cells (``Hc`` a multiple
        of ``cell_shape[0]``, ``Wc`` of ``cell_shape[1]``), image axis last.
        Their angles must be within 0.002 degree of scikit-image's.
    cell_shape : tuple of (int, int)
    orientations : int
    exact_gradients : callable
        ``exact_gradients(where)`` -> scikit-image's float32 ``(g_row,
        g_col)`` at the flat pixel indices ``where``.
    scale : float
        Magnitude of scikit-image's gradients over the magnitude of
        ``(g_row, g_col)`` (1, or 1 / 255 for gradients of uint8 values).

    Returns
    -------
    histograms : ndarray of shape (n, n_cells_row, n_cells_col, orientations), float64
    """
    height, width, n = g_row.shape
    cell_rows, cell_cols = cell_shape
    cells = (height // cell_rows, width // cell_cols)
    magnitude, position = cv2.cartToPolar(g_col.reshape(height, width * n),
                                          g_row.reshape(height, width * n), angleInDegrees=True)
    magnitude = magnitude.reshape(-1)
    # fixed-point bin coordinate over 0..2n bins: edges at multiples of 2**shift
    shift, tolerance = _quantizer(orientations, _EDGE_TOLERANCE_DEG)
    position = position.reshape(-1)
    position *= np.float32(orientations / 180.0 * (1 << shift))
    fixed = position.astype(np.int32)
    bins = fixed >> shift
    # near an edge: the fixed-point coordinate is within `tolerance` of a multiple
    fixed += tolerance
    fixed &= (1 << shift) - 1
    near_edge = np.less(fixed, 2 * tolerance)
    near_edge &= g_row.reshape(-1) != 0
    where = np.flatnonzero(near_edge)
    if where.size:
        exact = _exact_bins(*exact_gradients(where), orientations)
        magnitude[where[exact == orientations]] = 0
        bins[where] = np.minimum(exact, orientations - 1)
    bins += _histogram_offsets((height, width, n), cell_shape, orientations)
    sums = np.bincount(bins, weights=magnitude, minlength=n * cells[0] * cells[1] * 2 * orientations)
    # fold 180-360 onto 0-180, mean over the cell, back to scikit-image's gradient scale
    histograms = sums.reshape(-1, 2 * orientations) @ _fold_matrix(
        orientations, scale / (cell_rows * cell_cols))
    return histograms.reshape(n, cells[0], cells[1], orientations)


def _gather_blocks(histograms, block_shape, out):
    """Write every block of cells of ``histograms`` into ``out`` (not normalised).

    Parameters
    ----------
    histograms : ndarray of shape (n, n_cells_row, n_cells_col, orientations)
    block_shape : tuple of (int, int)
    out : ndarray of shape (n, n_features), float32, C-contiguous
        Receives the blocks in the order ``(n_blocks_row, n_blocks_col,
        block_rows, block_cols, orientations)``.
    """
    n, n_cells_row, n_cells_col, orientations = histograms.shape
    block_rows, block_cols = block_shape
    n_blocks_row, n_blocks_col = n_cells_row - block_rows + 1, n_cells_col - block_cols + 1
    # a view with one entry per (block, cell of the block): one strided copy
    # (np.ndarray over the contiguous buffer: a third of as_strided's cost)
    strides = histograms.strides
    windows = np.ndarray((n, n_blocks_row, n_blocks_col, block_rows, block_cols, orientations),
                         histograms.dtype, np.ascontiguousarray(histograms), 0,
                         strides[:3] + strides[1:])
    np.copyto(out.reshape(windows.shape), windows, casting="same_kind")


def _normalize_blocks(blocks, method):
    """Normalise every block in place, as scikit-image's ``_hog_normalize_block``.

    Parameters
    ----------
    blocks : ndarray of shape (n_blocks, block_size), float32
        Each row one block; ``block_size = block_rows * block_cols *
        orientations``.
    method : {"L1", "L1-sqrt", "L2", "L2-Hys"}
    """
    if method in ("L1", "L1-sqrt"):
        # cell histograms are sums of magnitudes: |v| = v
        blocks /= blocks.sum(axis=1, keepdims=True) + np.float32(_EPS)
        if method == "L1-sqrt":
            np.sqrt(blocks, out=blocks)
        return
    blocks /= _l2_norms(blocks)
    if method == "L2-Hys":
        # min(v, 0.2) in place; np.minimum with a scalar is several times slower
        cv2.threshold(blocks, 0.2, 0, cv2.THRESH_TRUNC, dst=blocks)
        blocks /= _l2_norms(blocks)


def _l2_norms(rows):
    """``sqrt(sum(v**2) + eps**2)`` of every row, as a column."""
    squares = np.einsum("ij,ij->i", rows, rows)
    return np.sqrt(squares + np.float32(_EPS**2))[:, None]


def _groups(n_images, image_pixels):
    """(start, stop) of groups of about :data:`_GROUP_PIXELS` pixels, evenly sized."""
    n_groups = max(1, min(n_images, -(-n_images * image_pixels // _GROUP_PIXELS)))
    edges = [n_images * k // n_groups for k in range(n_groups + 1)]
    return list(zip(edges[:-1], edges[1:]))


def hog_batch(stack, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3),
              block_norm="L2-Hys", transform_sqrt=False):
    """HOG features of a stack of same-size images.

    Parameters
    ----------
    stack : ndarray of shape (n, H, W) or (n, H, W, C), uint8 or float
        Gray images, or colour images with channels last: uint8 (0-255) or
        float in [0, 1], taken as :func:`featclf.preprocessing.to_float`
        of them (a group of images at a time).
    orientations : int, default=9
        Number of unsigned orientation bins over 0-180 degrees.
    pixels_per_cell : tuple of (int, int), default=(8, 8)
        Cell size ``(rows, cols)`` in pixels.
    cells_per_block : tuple of (int, int), default=(3, 3)
        Block size ``(rows, cols)`` in cells.
    block_norm : {"L1", "L1-sqrt", "L2", "L2-Hys"}, default="L2-Hys"
        Block normalisation (see :class:`HOG`).
    transform_sqrt : bool, default=False
        Take the square root of every pixel first.

    Returns
    -------
    features : ndarray of shape (n, n_features), float32
        ``n_features = n_blocks_row * n_blocks_col * cells_per_block[0] *
        cells_per_block[1] * orientations`` with
        ``n_blocks_row = H // pixels_per_cell[0] - cells_per_block[0] + 1``
        (columns alike).

    Raises
    ------
    ValueError
        If the images are smaller than one block.
    """
    stack = np.asarray(stack)
    if stack.dtype != np.uint8:
        stack = stack.astype(np.float32, copy=False)
    cell_rows, cell_cols = pixels_per_cell
    block_rows, block_cols = cells_per_block
    height, width = stack.shape[1:3]
    n_cells_row, n_cells_col = height // cell_rows, width // cell_cols
    if n_cells_row < block_rows or n_cells_col < block_cols:
        raise ValueError(
            f"HOG: images of {height}x{width} pixels are smaller than one block "
            f"(cells_per_block={cells_per_block} of pixels_per_cell={pixels_per_cell} "
            f"needs at least {block_rows * cell_rows}x{block_cols * cell_cols}); "
            "resize them (featclf.preprocessing.Resize) or use smaller cells/blocks"
        )
    crop = (n_cells_row * cell_rows, n_cells_col * cell_cols)
    block_size = block_rows * block_cols * orientations
    n_features = (n_cells_row - block_rows + 1) * (n_cells_col - block_cols + 1) * block_size
    features = np.empty((len(stack), n_features), dtype=np.float32)
    # gray uint8 images are differentiated as integers, 255 times
    # scikit-image's gradients: no conversion to [0, 1] per pixel
    integer = stack.dtype == np.uint8 and stack.ndim == 3 and not transform_sqrt
    # groups of about _GROUP_PIXELS pixels keep the temporaries in cache
    for start, stop in _groups(len(stack), stack[0].size):
        g_rows, g_cols = [], []
        for channel in _channels(stack[start:stop]):  # (n, H, W) each
            planes = _images_last(channel)  # (H, W, n)
            if planes.dtype == np.uint8:
                planes = planes.astype(np.float32)
                if not integer:
                    planes /= np.float32(255)  # to_float, a group at a time
            if transform_sqrt:
                planes = np.sqrt(planes)  # not in place: planes may be a view of the input
            g_row, g_col = _gradients(planes, crop)
            g_rows.append(g_row)
            g_cols.append(g_col)
        if len(g_rows) > 1:
            g_row, g_col = _dominant_channel(g_rows, g_cols)
        if integer:
            exact_gradients = functools.partial(_integer_gradients_as_skimage, planes, g_row, g_col)
        else:
            def exact_gradients(where, g_row=g_row, g_col=g_col):
                return g_row.reshape(-1)[where], g_col.reshape(-1)[where]
        histograms = _cell_histograms(g_row, g_col, pixels_per_cell, orientations,
                                      exact_gradients, scale=1 / 255 if integer else 1.0)
        _gather_blocks(histograms, cells_per_block, out=features[start:stop])
    # normalise a few rows at a time (about _GROUP_PIXELS values), in cache
    blocks = features.reshape(-1, block_size)
    step = max(1, _GROUP_PIXELS // block_size)
    for start in range(0, len(blocks), step):
        _normalize_blocks(blocks[start:start + step], block_norm)
    return features


class HOG(FeatureExtractor):
    """Histogram of Oriented Gradients, identical to ``skimage.feature.hog``.

    Each image is taken as float in [0, 1] (uint8 is divided by 255). Gray
    images give gray HOG; RGB images use, per pixel, the gradient of the
    channel with the largest gradient magnitude (scikit-image's
    ``channel_axis=-1``). The output equals
    ``skimage.feature.hog(to_float(image), orientations, pixels_per_cell,
    cells_per_block, block_norm, transform_sqrt=transform_sqrt,
    feature_vector=True)`` to within 1e-5. See :mod:`featclf.features.hog`
    for the algorithm.

    All images must have the size (and gray/colour kind) of the first image
    seen by ``fit``; put a :class:`~featclf.preprocessing.Resize` step
    before HOG for images of varying size.

    Parameters
    ----------
    orientations : int, default=9
        Number of unsigned orientation bins over 0-180 degrees.
    pixels_per_cell : int or tuple of (int, int), default=(8, 8)
        Cell size ``(rows, cols)`` in pixels.
    cells_per_block : int or tuple of (int, int), default=(3, 3)
        Block size ``(rows, cols)`` in cells; blocks slide by one cell.
    block_norm : {"L1", "L1-sqrt", "L2", "L2-Hys"}, default="L2-Hys"
        ``"L1"``: ``v / (|v|_1 + eps)``; ``"L1-sqrt"``: square root of L1;
        ``"L2"``: ``v / sqrt(|v|_2^2 + eps^2)``; ``"L2-Hys"``: L2, clipped
        at 0.2, then L2 again. ``eps = 1e-5``.
    transform_sqrt : bool, default=False
        Power-law (square root) compression of the image first.
    n_jobs : int, default=None
        Parallel jobs over chunks of images (joblib's meaning).

    Attributes
    ----------
    image_shape_ : tuple of int
        ``(H, W)`` or ``(H, W, 3)`` of the images the step was fitted on.
    n_blocks_ : tuple of (int, int)
        Number of blocks along rows and columns.
    n_features_out_ : int
        Length of the feature vector.

    Examples
    --------
    >>> import numpy as np
    >>> from featclf.features import HOG
    >>> images = np.zeros((2, 32, 32), np.uint8)
    >>> HOG(pixels_per_cell=8, cells_per_block=2).fit_transform(images).shape
    (2, 324)
    """

    _parameter_constraints = {
        "orientations": [Interval(numbers.Integral, 1, None, closed="left")],
        "pixels_per_cell": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "cells_per_block": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "block_norm": [StrOptions(set(BLOCK_NORMS))],
        "transform_sqrt": ["boolean"],
        "n_jobs": [numbers.Integral, None],
    }
    _chunk_as_stack = True

    def __init__(self, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3),
                 block_norm="L2-Hys", transform_sqrt=False, n_jobs=None):
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.transform_sqrt = transform_sqrt
        self.n_jobs = n_jobs

    def _fit_first_image(self, image):
        self.image_shape_ = tuple(image.shape)
        super()._fit_first_image(image)
        cell_rows, cell_cols = _pair(self.pixels_per_cell, "pixels_per_cell")
        block_rows, block_cols = _pair(self.cells_per_block, "cells_per_block")
        height, width = self.image_shape_[:2]
        self.n_blocks_ = (height // cell_rows - block_rows + 1,
                          width // cell_cols - block_cols + 1)

    def _transform_chunk(self, images):
        if isinstance(images, np.ndarray):  # a stack: one shape, one dtype
            if images.shape[1:] != self.image_shape_:
                self._check_shapes(images[:1])
            return self._hog(images)
        self._check_shapes(images)
        if len({image.dtype for image in images}) == 1:
            stack = np.stack(images)  # hog_batch converts it a group at a time
        else:
            stack = np.stack([to_float(image) for image in images])
        return self._hog(stack)

    def _check_shapes(self, images):
        for index, image in enumerate(images):
            if image.shape != self.image_shape_:
                raise ImageError(
                    index,
                    f"shape {image.shape} differs from the shape {self.image_shape_} "
                    "HOG was fitted on; HOG needs one image size (and the same "
                    "gray/colour kind): put featclf.preprocessing.Resize (and "
                    "Grayscale) before it",
                )

    def _hog(self, stack):
        return hog_batch(
            stack,
            orientations=self.orientations,
            pixels_per_cell=_pair(self.pixels_per_cell, "pixels_per_cell"),
            cells_per_block=_pair(self.cells_per_block, "cells_per_block"),
            block_norm=self.block_norm,
            transform_sqrt=self.transform_sqrt,
        )

    def _feature_names(self):
        n_blocks_row, n_blocks_col = self.n_blocks_
        block_rows, block_cols = _pair(self.cells_per_block, "cells_per_block")
        return [
            f"hog_block{br}_{bc}_cell{cr}_{cc}_orient{o}"
            for br in range(n_blocks_row)
            for bc in range(n_blocks_col)
            for cr in range(block_rows)
            for cc in range(block_cols)
            for o in range(self.orientations)
        ]
