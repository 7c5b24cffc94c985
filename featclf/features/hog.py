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

How it stays exact while being vectorised: orientations are computed in
float32 (``cv2.cartToPolar``, fast) and every pixel whose angle lies within 0.05 degree
of a bin edge is recomputed in float64 exactly as scikit-image does (its
bin edges are float32 values, and an angle equal to 180 after the modulo
falls in no bin). Only the pixels of whole cells are binned (the images are
cropped after the gradient step), cell sums use one ``np.bincount`` over a
group of images, and the blocks are written straight into the output, one
strided copy per cell position in the block, then normalised in place.

References
----------
.. [1] Dalal, N. and Triggs, B., "Histograms of Oriented Gradients for
   Human Detection", CVPR 2005, :DOI:`10.1109/CVPR.2005.177`.
"""

import functools
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
# over 10^6 uint8 gradients; OpenCV documents about 0.01); pixels closer than
# this to a bin edge are binned again exactly.
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


def _gradients(planes, crop):
    """Central-difference gradients, zero on the border, of each image plane.

    The differences run on the flattened stack as contiguous 1-D
    subtractions; the values that straddle two rows or two images are then
    overwritten by the zero border, as in
    ``skimage.feature._hog_channel_gradient``. Only the top-left ``crop`` of
    each plane is returned (copied, contiguous): the pixels right of or
    below the last whole cell vote in no histogram.

    Parameters
    ----------
    planes : ndarray of shape (..., H, W), float32, C-contiguous
    crop : tuple of (int, int)
        ``(Hc, Wc)`` with ``Hc <= H`` and ``Wc <= W``.

    Returns
    -------
    g_row, g_col : ndarray of shape (..., Hc, Wc), float32, C-contiguous
    """
    height, width = planes.shape[-2:]
    flat = planes.reshape(-1)
    g_row = np.empty_like(flat)
    g_col = np.empty_like(flat)
    np.subtract(flat[2 * width:], flat[:-2 * width], out=g_row[width:-width])
    np.subtract(flat[2:], flat[:-2], out=g_col[1:-1])
    g_row = g_row.reshape(planes.shape)
    g_col = g_col.reshape(planes.shape)
    g_row[..., 0, :] = 0
    g_row[..., -1, :] = 0
    g_col[..., :, 0] = 0
    g_col[..., :, -1] = 0
    if tuple(crop) != (height, width):  # a copy is cheaper than strided work later
        g_row = np.ascontiguousarray(g_row[..., :crop[0], :crop[1]])
        g_col = np.ascontiguousarray(g_col[..., :crop[0], :crop[1]])
    return g_row, g_col


# float32 squared magnitudes of two channels closer than this (relative) may
# be ordered differently than by np.hypot: decided exactly.
_TIE_TOLERANCE = 4e-6


def _dominant_channel(g_row, g_col):
    """Per pixel, the gradient of the channel with the largest magnitude.

    scikit-image compares ``np.hypot`` of float32 gradients (hypot is
    evaluated in float64 and rounded to float32) and takes the first
    channel on ties. Here the channels are compared by float32 squared
    magnitudes; the pixels where another channel with a different gradient
    comes within :data:`_TIE_TOLERANCE` of the chosen one are decided again
    with the exact float64 hypot, so the choice is scikit-image's.

    Parameters
    ----------
    g_row, g_col : ndarray of shape (n, C, H, W), float32

    Returns
    -------
    g_row, g_col : ndarray of shape (n, H, W), float32
    """
    n_channels = g_row.shape[1]
    squared = g_row * g_row
    squared += g_col * g_col
    best_row, best_col = g_row[:, 0].copy(), g_col[:, 0].copy()
    largest = squared[:, 0].copy()
    for channel in range(1, n_channels):
        larger = squared[:, channel] > largest
        np.copyto(best_row, g_row[:, channel], where=larger)
        np.copyto(best_col, g_col[:, channel], where=larger)
        np.maximum(largest, squared[:, channel], out=largest)
    threshold = largest * np.float32(1 - _TIE_TOLERANCE)
    ambiguous = np.zeros(largest.shape, dtype=bool)
    for channel in range(n_channels):
        differs = g_row[:, channel] != best_row
        differs |= g_col[:, channel] != best_col
        differs &= squared[:, channel] >= threshold
        ambiguous |= differs
    where = np.nonzero(ambiguous)
    if where[0].size:
        image, row, col = where
        rows = g_row[image, :, row, col].astype(np.float64)
        cols = g_col[image, :, row, col].astype(np.float64)
        best = np.sqrt(rows * rows + cols * cols).astype(np.float32).argmax(axis=1)
        picked = np.arange(best.size)
        best_row[where] = rows[picked, best]
        best_col[where] = cols[picked, best]
    return best_row, best_col


def _bin_edges(orientations):
    """scikit-image's bin edges: float32 ``float32(180 / n) * i``."""
    step = np.float32(180.0 / orientations)
    return np.arange(orientations + 1, dtype=np.float32) * step


def _exact_bins(g_row, g_col, orientations):
    """scikit-image's orientation bins, computed in float64 like its Cython.

    Returns
    -------
    bins : ndarray of int64
        In ``[0, orientations]``; ``orientations`` means "in no bin" (an
        angle of exactly 180 degrees after the modulo, or one above the
        last float32 edge).
    """
    angle = np.rad2deg(np.arctan2(g_row.astype(np.float64), g_col.astype(np.float64))) % 180
    edges = _bin_edges(orientations).astype(np.float64)
    return np.minimum(np.searchsorted(edges, angle, side="right") - 1, orientations)


@functools.lru_cache(maxsize=16)
def _histogram_offsets(n, cells, cell_shape, orientations):
    """Index of the first (cell, bin) histogram slot of every pixel.

    Parameters
    ----------
    n : int
        Number of images.
    cells : tuple of (int, int)
        ``(n_cells_row, n_cells_col)``.
    cell_shape : tuple of (int, int)
    orientations : int

    Returns
    -------
    offsets : ndarray of shape (n * Hc * Wc,), int32, read-only
        ``(image * n_cells + cell) * 2 * orientations`` for every pixel of
        the cropped images (``Hc = n_cells_row * cell_rows``, alike for
        columns).
    """
    (n_cells_row, n_cells_col), (cell_rows, cell_cols) = cells, cell_shape
    cell_row = np.arange(n_cells_row * cell_rows) // cell_rows
    cell_col = np.arange(n_cells_col * cell_cols) // cell_cols
    cell_of_pixel = cell_row[:, None] * n_cells_col + cell_col[None, :]
    n_cells = n_cells_row * n_cells_col
    offsets = (np.arange(n)[:, None, None] * n_cells + cell_of_pixel) * (2 * orientations)
    if offsets.size and offsets.max() > np.iinfo(np.int32).max:  # pragma: no cover
        raise ValueError("HOG: too many cells in one group")
    offsets = offsets.astype(np.int32).reshape(-1)
    offsets.flags.writeable = False
    return offsets


def _cell_histograms(g_row, g_col, cell_shape, orientations):
    """Mean gradient magnitude per (cell, orientation bin).

    The angle comes from ``cv2.cartToPolar`` in float32 over the full
    circle (0-360 degrees, so each cell gets ``2 * orientations`` bins that
    are folded in two at the end). Its error is below 0.01 degree; every
    pixel within :data:`_EDGE_TOLERANCE_DEG` of a bin edge is binned again
    exactly by :func:`_exact_bins`, except pixels with ``g_row == 0``,
    whose angle (0 or 180) is exact in both and lands in bin 0.

    Parameters
    ----------
    g_row, g_col : ndarray of shape (n, Hc, Wc), float32
        Gradients of the images cropped to whole cells (``Hc`` a multiple
        of ``cell_shape[0]``, ``Wc`` of ``cell_shape[1]``).

    Returns
    -------
    histograms : ndarray of shape (n, n_cells_row, n_cells_col, orientations), float64
    """
    n, height, width = g_row.shape
    cell_rows, cell_cols = cell_shape
    cells = (height // cell_rows, width // cell_cols)
    magnitude, position = cv2.cartToPolar(g_col.reshape(n * height, width),
                                          g_row.reshape(n * height, width), angleInDegrees=True)
    magnitude = magnitude.reshape(-1)
    # bin coordinate over 0..2n: edges at integers; exact for 0, 90, 180, 270
    position = position.reshape(-1)
    position *= np.float32(orientations)
    position /= np.float32(180.0)
    # int32 bins + int32 offsets: the cheapest input np.bincount accepts
    bins = position.astype(np.int32)
    distance = np.rint(position)
    np.subtract(position, distance, out=distance)
    np.abs(distance, out=distance)
    near_edge = np.less(distance, np.float32(_EDGE_TOLERANCE_DEG * orientations / 180.0))
    near_edge &= g_row.reshape(-1) != 0
    where = np.flatnonzero(near_edge)
    if where.size:
        exact = _exact_bins(g_row.reshape(-1)[where], g_col.reshape(-1)[where], orientations)
        magnitude[where[exact == orientations]] = 0
        bins[where] = np.minimum(exact, orientations - 1)
    bins += _histogram_offsets(n, cells, cell_shape, orientations)
    n_bins = n * cells[0] * cells[1] * 2 * orientations
    sums = np.bincount(bins, weights=magnitude, minlength=n_bins)
    halves = sums.reshape(n, cells[0], cells[1], 2, orientations)
    histograms = np.add(halves[:, :, :, 0], halves[:, :, :, 1])  # fold 180-360 onto 0-180
    histograms /= cell_rows * cell_cols
    return histograms


def _normalize_blocks(histograms, block_shape, method, out):
    """Normalise every block of cells, as scikit-image's ``_hog_normalize_block``.

    Parameters
    ----------
    histograms : ndarray of shape (n, n_cells_row, n_cells_col, orientations)
    block_shape : tuple of (int, int)
    method : {"L1", "L1-sqrt", "L2", "L2-Hys"}
    out : ndarray of shape (n, n_features), float32, C-contiguous
        Receives the blocks in the order ``(n_blocks_row, n_blocks_col,
        block_rows, block_cols, orientations)``.
    """
    n, n_cells_row, n_cells_col, orientations = histograms.shape
    block_rows, block_cols = block_shape
    n_blocks_row, n_blocks_col = n_cells_row - block_rows + 1, n_cells_col - block_cols + 1
    blocks = out.reshape(n, n_blocks_row, n_blocks_col, block_rows, block_cols, orientations)
    # one strided copy per cell position inside the block, cheaper than
    # copying a sliding-window view with its orientation axis moved last
    for row in range(block_rows):
        for col in range(block_cols):
            blocks[:, :, :, row, col] = histograms[:, row:row + n_blocks_row,
                                                   col:col + n_blocks_col]
    flat = out.reshape(-1, block_rows * block_cols * orientations)
    if method in ("L1", "L1-sqrt"):
        # cell histograms are sums of magnitudes: |v| = v
        flat /= flat.sum(axis=1, keepdims=True) + np.float32(_EPS)
        if method == "L1-sqrt":
            np.sqrt(flat, out=flat)
        return
    flat /= _l2_norms(flat)
    if method == "L2-Hys":
        np.minimum(flat, np.float32(0.2), out=flat)
        flat /= _l2_norms(flat)


def _l2_norms(rows):
    """``sqrt(sum(v**2) + eps**2)`` of every row, as a column."""
    squares = np.einsum("ij,ij->i", rows, rows)
    return np.sqrt(squares + np.float32(_EPS**2))[:, None]


def hog_batch(stack, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3),
              block_norm="L2-Hys", transform_sqrt=False):
    """HOG features of a stack of same-size images.

    Parameters
    ----------
    stack : ndarray of shape (n, H, W) or (n, H, W, C), uint8 or float
        Gray images, or colour images with channels last: uint8 (0-255) or
        float in [0, 1]; converted with :func:`featclf.preprocessing.to_float`
        a group of images at a time.
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
    n_features = ((n_cells_row - block_rows + 1) * (n_cells_col - block_cols + 1)
                  * block_rows * block_cols * orientations)
    features = np.empty((len(stack), n_features), dtype=np.float32)
    # work on groups of about _GROUP_PIXELS pixels, so temporaries stay in cache
    group = max(1, _GROUP_PIXELS // (height * width))
    for start in range(0, len(stack), group):
        images = to_float(stack[start:start + group])
        if transform_sqrt:
            images = np.sqrt(images)
        if images.ndim == 4:  # channels first, so each channel plane is contiguous
            g_row, g_col = _gradients(np.ascontiguousarray(images.transpose(0, 3, 1, 2)), crop)
            g_row, g_col = _dominant_channel(g_row, g_col)
        else:
            g_row, g_col = _gradients(np.ascontiguousarray(images), crop)
        histograms = _cell_histograms(g_row, g_col, (cell_rows, cell_cols), orientations)
        _normalize_blocks(histograms, (block_rows, block_cols), block_norm,
                          out=features[start:start + group])
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
