"""SIFT descriptors: OpenCV SIFT on detected keypoints, and a fast dense SIFT.

Both steps are variable-length extractors: ``transform`` returns one
:class:`~featclf.features.DescriptorSet` per image (descriptors with their
positions and scales), which :class:`~featclf.encoding.BagOfVisualWords`
turns into a fixed-length matrix. Colour images are converted to gray with
:func:`featclf.preprocessing.to_gray` first.

* :class:`SIFT` detects keypoints with OpenCV's difference-of-Gaussians
  detector and describes them with OpenCV's SIFT descriptor.
* :class:`DenseSIFT` computes SIFT descriptors on a regular grid at one or
  several patch sizes, the way VLFeat's ``vl_dsift`` / ``vl_phow`` do: the
  image's orientation channels are pooled once per scale, at the cell
  centres the grid needs, and every descriptor is read off them (see its
  docstring).
* :func:`opencv_sift_on_grid` computes OpenCV's SIFT descriptor on the same
  grid as :class:`DenseSIFT`, as the reference for comparisons.
"""

import functools
import numbers
import typing

import cv2
import numpy as np
from sklearn.utils._param_validation import Interval

from ..base import ImageTransformer
from ..preprocessing import to_float, to_gray, to_uint8
from .descriptors import DescriptorSet
from .work_memory import WorkMemory, work_array

__all__ = [
    "SIFT",
    "DenseSIFT",
    "dense_grid",
    "normalize_sift",
    "opencv_grid_keypoints",
    "opencv_sift_on_grid",
    "root_sift",
]

#: Lowe's clipping value for normalised SIFT descriptors.
SIFT_CLIP = 0.2

# OpenCV's SIFT cell width is 1.5 keypoint sizes (SIFT_DESCR_SCL_FCTR = 3
# times the keypoint scale, size / 2), so 4 cells = 6 keypoint sizes.
_OPENCV_PATCH_PER_KEYPOINT_SIZE = 6.0


def root_sift(descriptors):
    """Map SIFT descriptors to RootSIFT (Arandjelovic & Zisserman, 2012).

    Each row is L1-normalised and square-rooted, so the Euclidean distance
    between RootSIFT vectors is the Hellinger distance between the SIFT
    histograms. The result has unit L2 norm; all-zero rows stay zero.

    Parameters
    ----------
    descriptors : ndarray of shape (k, d)
        Non-negative descriptors (one per row).

    Returns
    -------
    rooted : ndarray of shape (k, d), dtype float32
    """
    descriptors = np.asarray(descriptors, dtype=np.float32)
    l1 = descriptors.sum(axis=1, keepdims=True)
    return np.sqrt(descriptors / np.maximum(l1, np.finfo(np.float32).tiny))


def _gray_uint8(image):
    return to_uint8(to_gray(image))


class SIFT(ImageTransformer):
    """OpenCV SIFT keypoints and descriptors (Lowe, 2004), one set per image.

    Keypoints are detected by OpenCV's difference-of-Gaussians detector on
    the gray ``uint8`` image and described by OpenCV's 128-d descriptor
    (4x4 cells x 8 orientations, rotated to the keypoint orientation,
    clipped at 0.2). featclf rescales each descriptor to unit L2 norm
    (OpenCV scales them to norm 512).

    Parameters
    ----------
    n_features : int, default=0
        Keep the best ``n_features`` keypoints (by response); 0 keeps all.
    contrast_threshold : float, default=0.04
        OpenCV's ``contrastThreshold``: larger values give fewer keypoints
        in low-contrast regions.
    edge_threshold : float, default=10
        OpenCV's ``edgeThreshold``: larger values keep more edge-like
        keypoints.
    sigma : float, default=1.6
        Gaussian sigma of the first octave.
    root_sift : bool, default=False
        Return RootSIFT descriptors (see :func:`root_sift`).
    n_jobs : int, default=None
        Parallel jobs (joblib's meaning).

    Notes
    -----
    The output of ``transform`` is a list of
    :class:`~featclf.features.DescriptorSet`: ``descriptors`` of shape
    ``(k, 128)`` float32, ``positions`` ``(k, 2)`` as ``(x, y)``,
    ``scales`` ``(k,)`` the keypoint diameters (OpenCV's ``size``) and
    ``image_shape``. An image without keypoints (for example a flat one)
    gives ``k = 0``.

    References
    ----------
    .. [1] D. G. Lowe, "Distinctive image features from scale-invariant
       keypoints", IJCV 60(2), 2004.
    .. [2] R. Arandjelovic and A. Zisserman, "Three things everyone should
       know to improve object retrieval", CVPR 2012 (RootSIFT).

    Examples
    --------
    >>> from skimage import data
    >>> from featclf.features import SIFT
    >>> sets = SIFT(n_features=50).fit_transform([data.camera()])
    >>> sets[0].descriptors.shape
    (50, 128)
    """

    _output = "descriptors"

    _parameter_constraints = {
        "n_features": [Interval(numbers.Integral, 0, None, closed="left")],
        "contrast_threshold": [Interval(numbers.Real, 0, None, closed="left")],
        "edge_threshold": [Interval(numbers.Real, 0, None, closed="left")],
        "sigma": [Interval(numbers.Real, 0, None, closed="neither")],
        "root_sift": ["boolean"],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(self, n_features=0, *, contrast_threshold=0.04, edge_threshold=10,
                 sigma=1.6, root_sift=False, n_jobs=None):
        self.n_features = n_features
        self.contrast_threshold = contrast_threshold
        self.edge_threshold = edge_threshold
        self.sigma = sigma
        self.root_sift = root_sift
        self.n_jobs = n_jobs

    def _transform_chunk(self, images):
        sift = cv2.SIFT_create(
            nfeatures=self.n_features,
            contrastThreshold=self.contrast_threshold,
            edgeThreshold=self.edge_threshold,
            sigma=self.sigma,
        )
        return [self._describe(sift, _gray_uint8(image)) for image in images]

    def _describe(self, sift, gray):
        keypoints, descriptors = sift.detectAndCompute(gray, None)
        if descriptors is None or len(keypoints) == 0:
            return DescriptorSet.empty(128, gray.shape)
        return _opencv_descriptor_set(keypoints, descriptors, gray.shape, self.root_sift)


def _opencv_descriptor_set(keypoints, descriptors, image_shape, rooted):
    """Wrap OpenCV's keypoints and descriptors, rescaled to unit L2 norm."""
    descriptors = descriptors.astype(np.float32, copy=False)
    norms = np.linalg.norm(descriptors, axis=1, keepdims=True)
    descriptors = descriptors / np.maximum(norms, np.finfo(np.float32).tiny)
    if rooted:
        descriptors = root_sift(descriptors)
    positions = np.asarray([kp.pt for kp in keypoints], dtype=np.float32)
    scales = np.asarray([kp.size for kp in keypoints], dtype=np.float32)
    return DescriptorSet(descriptors, positions, scales, tuple(image_shape))


def dense_grid(image_shape, step, patch_sizes, n_cells=4):
    """Return the dense-SIFT sampling grid: first-cell centres per scale.

    The grid of descriptor centres is laid out for the *largest* patch:
    ``n = (size - max_patch) // step + 1`` positions along each axis (0 if
    the image is smaller than the largest patch), spaced ``step`` apart and
    centred in the image so that every patch of the largest size lies
    inside it. Every scale uses the same centres (as ``vl_phow`` does),
    snapped so that its cell centres fall on pixels: with cell size
    ``c = patch_size / n_cells``, the first cell centre is
    ``u = round(centre - (n_cells - 1) / 2 * c)`` and the descriptor centre
    is then ``u + (n_cells - 1) / 2 * c`` (a shift of at most half a
    pixel).

    Parameters
    ----------
    image_shape : tuple of (int, int)
        ``(height, width)``.
    step : int
        Grid stride in pixels.
    patch_sizes : sequence of int
        Patch sides in pixels, each a multiple of ``n_cells``.
    n_cells : int, default=4
        Spatial cells per patch side.

    Returns
    -------
    grid : list of (int, ndarray, ndarray)
        One ``(cell_size, first_x, first_y)`` per patch size, in the order
        given: ``first_x`` of shape ``(n_x,)`` and ``first_y`` of shape
        ``(n_y,)`` hold the integer column / row of the first cell centre.
        The descriptor centres are ``first + (n_cells - 1) / 2 * cell_size``.
    """
    height, width = image_shape
    largest = max(patch_sizes)
    axes = []
    for length in (width, height):
        count = (length - largest) // step + 1 if length >= largest else 0
        offset = (length - largest - (count - 1) * step) // 2 if count else 0
        # continuous centre of the largest patch, pixel i at coordinate i
        axes.append(offset + (largest - 1) / 2 + step * np.arange(count))
    centres_x, centres_y = axes
    grid = []
    for patch_size in patch_sizes:
        cell = patch_size // n_cells
        half_span = (n_cells - 1) / 2 * cell
        first_x = np.floor(centres_x - half_span + 0.5).astype(np.intp)
        first_y = np.floor(centres_y - half_span + 0.5).astype(np.intp)
        grid.append((cell, first_x, first_y))
    return grid


def _grid_positions(first_x, first_y, cell, n_cells):
    """Descriptor centres ``(x, y)`` in row-major grid order, shape (n, 2)."""
    half_span = (n_cells - 1) / 2 * cell
    xs, ys = np.meshgrid(first_x + half_span, first_y + half_span)
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


class DenseSIFT(ImageTransformer):
    """SIFT descriptors on a dense grid, at one or several patch sizes (PHOW).

    A vectorised NumPy/OpenCV version of VLFeat's ``vl_dsift`` (fast mode)
    and ``vl_phow``: instead of describing each patch separately, each
    orientation channel of the image is pooled once per scale at the cell
    centres the grid needs, and the descriptors are read off the pooled
    maps, so the cost barely depends on the grid density.

    Algorithm, for each patch size ``P`` (cell size ``c = P / n_cells``):

    1. The gray image (float, 0-1), extended by replicating its border
       pixels, is smoothed with a Gaussian of sigma ``c / magnif``
       (``vl_phow``; skipped when ``magnif`` is None).
    2. Gradients by central differences ``[-1, 0, 1] / 2``;
       magnitude ``m`` and orientation ``theta``, measured
       counter-clockwise from the +x axis with y pointing *up* (OpenCV's
       SIFT convention).
    3. Soft orientation binning: with ``t = theta * B / (2 pi)`` for
       ``B = n_bins_orientation``, channel ``floor(t)`` receives
       ``(1 - frac(t)) m`` and channel ``floor(t) + 1`` (cyclic) receives
       ``frac(t) m`` (linear interpolation between the two nearest bin
       centres; bin ``b`` is centred on angle ``2 pi b / B``).
    4. Spatial pooling: every orientation channel is convolved with the
       separable triangular kernel ``max(0, 1 - |d| / c)`` (length
       ``2c - 1``, unit height), which is bilinear interpolation of each
       pixel into its neighbouring cells. Pixels outside the image
       contribute nothing.
    5. Sampling: at every grid point (see :func:`dense_grid`), the
       ``n_cells x n_cells`` cell centres, ``c`` pixels apart, are read
       from the pooled maps and weighted by the mean of a Gaussian window
       of sigma ``window_size * c`` centred on the patch over each cell's
       support (VLFeat's fast-mode window).
    6. Normalisation as in SIFT: L2-normalise, clip at 0.2, L2-normalise
       again (optionally followed by RootSIFT).
    7. Low contrast: as ``vl_phow``, a descriptor whose *mass* (sum of its
       raw entries divided by the area ``((n_cells - 1) c + 1)^2`` spanned
       by the cell centres, VLFeat's ``norm`` output; roughly the mean
       gradient magnitude on a 0-1 image) is below
       ``contrast_threshold`` is set to zero. It is kept, with its
       position, so every image of one size gives the same number of
       descriptors.

    Output: one :class:`~featclf.features.DescriptorSet` per image with
    ``descriptors`` of shape ``(k, n_cells^2 * n_bins_orientation)``
    (``(k, 128)`` by default) float32, each of unit L2 norm or all zero;
    ``positions`` ``(k, 2)`` the patch centres ``(x, y)``; ``scales``
    ``(k,)`` the patch size ``P``. With ``n_x = (W - max(P)) // step + 1``
    and ``n_y = (H - max(P)) // step + 1``, ``k = n_x * n_y *
    len(patch_sizes)``, ordered by patch size (as given), then row, then
    column. An image smaller than the largest patch gives ``k = 0``.
    Images of one size share one read-only ``positions`` and one read-only
    ``scales`` array (copy them to modify them).
    Descriptor entries are ordered (cell row, cell column, orientation),
    as OpenCV's.

    Parameters
    ----------
    step : int, default=8
        Grid stride in pixels.
    patch_sizes : int or tuple of int, default=(16,)
        Patch sides in pixels (each a multiple of ``n_cells``); several give
        a multi-scale (PHOW) descriptor set, e.g. ``(16, 24, 32, 40)`` for
        ``vl_phow``'s bin sizes 4, 6, 8, 10.
    n_bins_orientation : int, default=8
        Orientation bins per cell.
    n_cells : int, default=4
        Spatial cells per patch side.
    window_size : float or None, default=2.0
        Sigma of the Gaussian window, in cells (2 cells is Lowe's and
        OpenCV's weighting, and ``vl_dsift``'s default; ``vl_phow`` uses
        1.5). None gives a flat window.
    magnif : float or None, default=6.0
        Smoothing before the gradients: sigma ``cell_size / magnif`` per
        scale (``vl_phow``'s default 6). None skips smoothing.
    contrast_threshold : float, default=0.005
        Descriptors with a lower mass (step 7) are set to zero
        (``vl_phow``'s default); 0 keeps them all.
    root_sift : bool, default=False
        Return RootSIFT descriptors (see :func:`root_sift`).
    n_jobs : int, default=None
        Parallel jobs (joblib's meaning); work is split by image.

    Attributes
    ----------
    n_dims_ : int
        Descriptor length ``n_cells ** 2 * n_bins_orientation``.

    Notes
    -----
    Deviations from VLFeat: gradients at the image border use the
    replicated (then smoothed) border pixels instead of one-sided
    differences; pooling treats pixels outside the image as zero gradient (VLFeat
    replicates; OpenCV skips them, as here); the grid is centred in the
    image and fitted to the largest patch; orientations follow OpenCV's
    y-up convention. Unlike Lowe's SIFT, descriptors are upright (no
    dominant orientation) and the Gaussian window is applied per cell
    (fast mode) rather than per pixel.

    Implementation: images of one size are described together, side by
    side in one array (fewer calls per image), each filtered with its own
    borders; every image's descriptors are those it gets alone: bit for
    bit with cells of up to 4 pixels (the default), and within float32
    rounding (a few ulps, under 1e-7) with larger cells, whose lattice
    matrix products round differently with the batch's width. Smoothing
    and differentiation are one separable filter per direction. When the
    grid step is a multiple of the cell size (the default grid) the cell
    centres form a lattice with spacing ``c``, and
    step 4 is evaluated only there: each ``c x c`` block of pixels between
    lattice points is reduced to its four bilinear weighted sums by one
    matrix product per orientation (:func:`_pooled_on_lattice`); other
    grids filter the channels (:func:`_pooled_by_filtering`), by matrix
    products evaluated only at the sampled rows and columns when there
    are few of them (small images, large cells). All give the
    convolution's values up to float rounding. The large temporaries are
    kept from one call to the next, per thread (about 5-10 MB, at most 32 MB),
    since first touches of fresh memory cost more than the arithmetic.

    References
    ----------
    .. [1] D. G. Lowe, "Distinctive image features from scale-invariant
       keypoints", IJCV 60(2), 2004.
    .. [2] A. Vedaldi and B. Fulkerson, "VLFeat: an open and portable
       library of computer vision algorithms", 2008 (``vl_dsift``,
       ``vl_phow``).
    .. [3] A. Bosch, A. Zisserman and X. Munoz, "Image classification using
       random forests and ferns", ICCV 2007 (PHOW).

    Examples
    --------
    >>> import numpy as np
    >>> from featclf.features import DenseSIFT
    >>> image = np.random.default_rng(0).integers(0, 256, (64, 80), np.uint8)
    >>> sets = DenseSIFT(step=8, patch_sizes=(16, 32)).fit_transform([image])
    >>> sets[0].descriptors.shape  # ((64-32)//8+1) * ((80-32)//8+1) * 2 scales
    (70, 128)
    """

    _output = "descriptors"

    _parameter_constraints = {
        "step": [Interval(numbers.Integral, 1, None, closed="left")],
        "patch_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "n_bins_orientation": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_cells": [Interval(numbers.Integral, 1, None, closed="left")],
        "window_size": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "magnif": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "contrast_threshold": [Interval(numbers.Real, 0, None, closed="left")],
        "root_sift": ["boolean"],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(self, step=8, patch_sizes=(16,), *, n_bins_orientation=8, n_cells=4,
                 window_size=2.0, magnif=6.0, contrast_threshold=0.005,
                 root_sift=False, n_jobs=None):
        self.step = step
        self.patch_sizes = patch_sizes
        self.n_bins_orientation = n_bins_orientation
        self.n_cells = n_cells
        self.window_size = window_size
        self.magnif = magnif
        self.contrast_threshold = contrast_threshold
        self.root_sift = root_sift
        self.n_jobs = n_jobs

    def _patch_sizes(self):
        sizes = self.patch_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = (sizes,)
        sizes = tuple(int(size) for size in np.asarray(sizes).ravel())
        if not sizes:
            raise ValueError("DenseSIFT: patch_sizes must hold at least one size")
        bad = [size for size in sizes if size < self.n_cells or size % self.n_cells]
        if bad:
            raise ValueError(
                f"DenseSIFT: patch_sizes {bad} are not positive multiples of "
                f"n_cells={self.n_cells} (patch size = n_cells * cell size)"
            )
        return sizes

    def _fit_first_image(self, image):
        self._patch_sizes()
        self.n_dims_ = self.n_cells**2 * self.n_bins_orientation

    #: a stack batch arrives as one array (no per-image views)
    _chunk_as_stack = True

    def _transform_chunk(self, images):
        patch_sizes = self._patch_sizes()
        if isinstance(images, np.ndarray):  # a stack: one shape and dtype
            groups = [range(len(images))]
        else:
            by_kind = {}
            for index, image in enumerate(images):
                by_kind.setdefault((image.shape, image.dtype.str), []).append(index)
            groups = by_kind.values()
        sets = [None] * len(images)
        for indices in groups:
            shape = images[indices[0]].shape[:2]
            plan = _grid_plan(shape, self.step, patch_sizes, self.n_cells,
                              self.n_bins_orientation, self.window_size)
            if plan is None:
                for index in indices:
                    sets[index] = DescriptorSet.empty(self.n_dims_, shape)
                continue
            # one output array for the group, which each batch fills: fewer,
            # larger allocations (NumPy backs those of 4 MiB or more with
            # huge pages, so much less time goes to first-touch page faults)
            _, positions, scales = plan
            descriptors = np.empty((len(indices), len(scales), self.n_dims_), np.float32)
            # images of one size and dtype are described together, in equal
            # batches of at most about _BATCH_PIXELS pixels (fewer calls per
            # image, and a working set that stays in cache)
            n_batches = -(-len(indices) * shape[0] * shape[1] // _BATCH_PIXELS)
            per_batch = -(-len(indices) // n_batches)
            for start in range(0, len(indices), per_batch):
                batch = indices[start:start + per_batch]
                if isinstance(images, np.ndarray):
                    stack = _gray_side_by_side(images[batch[0]:batch[-1] + 1], _WORK)
                else:
                    stack = _gray_side_by_side([images[i] for i in batch], _WORK)
                self._describe_same_size(stack, shape[1], plan,
                                         descriptors[start:start + len(batch)])
            # every image of the group has the same grid: positions and
            # scales are one read-only array shared by all
            described = DescriptorSet.sharing_grid(descriptors, positions, scales, shape)
            for index, descriptor_set in zip(indices, described):
                sets[index] = descriptor_set
        return sets

    def _describe_same_size(self, stack, width, plan, out):
        """Describe the images (``width`` columns) of a side-by-side stack
        ``(H, n, W')`` (see :func:`_gray_side_by_side`) on the grid ``plan``
        (see :func:`_grid_plan`), into ``out`` of shape ``(n, k, n_dims_)``."""
        scale_plans, _, _ = plan
        start = 0
        for scale_plan in scale_plans:
            n_grid = len(scale_plan.row_index) * len(scale_plan.col_index)
            self._describe_scale(stack, width, scale_plan, out[:, start:start + n_grid])
            start += n_grid

    def _describe_scale(self, stack, width, plan, out):
        """Descriptors of one scale for a side-by-side stack ``(H, n, W')``.

        Writes them into ``out``, of shape ``(n, n_y * n_x, n_dims_)``.
        Every image is filtered with its own borders (see
        :func:`_gradient_polar`), so it is described exactly as if it were
        alone.
        """
        sigma = None if self.magnif is None else plan.cell / self.magnif
        n_bins, cell, rows, cols = self.n_bins_orientation, plan.cell, plan.rows, plan.cols
        # (n_images, len(rows), len(cols), B)
        if plan.on_lattice:
            # only the image columns that the lattice's blocks cover (one
            # cell either side of its first and last column): pixels
            # elsewhere, the padding included, add nothing
            left = max(int(cols[0]) - cell, 0)
            right = min(int(cols[-1]) + cell, width)
            magnitude, position = _gradient_polar(stack, n_bins, sigma, _WORK,
                                                  slice(left, right))
            pooled = _pooled_on_lattice(magnitude, position, n_bins, cell, int(rows[0]),
                                        len(rows), int(cols[0]) - left, len(cols), _WORK)
        else:
            magnitude, position = _gradient_polar(stack, n_bins, sigma, _WORK)
            magnitude[:, :, width:] = 0.0  # the padding columns are outside the image
            pooled = _pooled_by_filtering(magnitude, position, n_bins, cell, rows, cols, _WORK)
        # (n_images, n_y, n_x, cell row, cell column, B), gathered (a plain
        # copy: NumPy's broadcasting multiply is far slower on this view),
        # then weighted by the window
        cells = _cell_windows(pooled, plan.row_index, plan.col_index,
                              (plan.row_affine, plan.col_affine))
        # (in place when out is one block: a single scale)
        in_place = out.flags.c_contiguous
        raw = out if in_place else np.empty(out.shape, np.float32)
        np.copyto(raw.reshape(cells.shape), cells)
        raw = raw.reshape(-1, out.shape[2])
        raw *= plan.window
        # mass: the sum of the raw descriptor
        mass = cv2.reduce(raw, 1, cv2.REDUCE_SUM).ravel()
        span = (self.n_cells - 1) * plan.cell + 1
        _normalize_sift_in_place(raw, SIFT_CLIP,
                                 zero=mass < self.contrast_threshold * span * span)
        if self.root_sift:
            np.copyto(raw, root_sift(raw))
        if not in_place:
            out[...] = raw.reshape(out.shape)


class _ScalePlan(typing.NamedTuple):
    """What :meth:`DenseSIFT._describe_scale` needs for one patch size."""

    cell: int
    rows: np.ndarray  # sorted pixel rows of the cell centres, (n_rows,)
    cols: np.ndarray  # sorted pixel columns, (n_cols,)
    row_index: np.ndarray  # (n_y, n_cells): cell row a of grid row i is rows[row_index[i, a]]
    col_index: np.ndarray  # (n_x, n_cells)
    window: np.ndarray  # (n_cells * n_cells * B,) window weight of each entry
    row_affine: tuple | None  # _affine_strides(row_index)
    col_affine: tuple | None
    on_lattice: bool  # rows and columns evenly spaced by the cell size


@functools.lru_cache(maxsize=64)
def _grid_plan(shape, step, patch_sizes, n_cells, n_bins, window_size):
    """The dense grid of one image shape, computed once per parameter set.

    Returns None for an empty grid, else ``(scale_plans, positions,
    scales)``: one :class:`_ScalePlan` per patch size, and the read-only
    descriptor centres ``(k, 2)`` and patch sizes ``(k,)`` of
    :class:`DenseSIFT`'s output.
    """
    grid = dense_grid(shape, step, patch_sizes, n_cells)
    if grid[0][1].size == 0 or grid[0][2].size == 0:
        return None
    plans, positions, scales = [], [], []
    offsets = np.arange(n_cells)
    for patch_size, (cell, first_x, first_y) in zip(patch_sizes, grid):
        rows, row_index = np.unique(first_y[:, None] + cell * offsets, return_inverse=True)
        cols, col_index = np.unique(first_x[:, None] + cell * offsets, return_inverse=True)
        window = np.repeat(_cell_window(cell, n_cells, window_size).ravel(), n_bins)
        row_index = row_index.reshape(len(first_y), n_cells)
        col_index = col_index.reshape(len(first_x), n_cells)
        plans.append(_ScalePlan(cell, rows, cols, row_index, col_index, window,
                                _affine_strides(row_index), _affine_strides(col_index),
                                _is_lattice(rows, cell) and _is_lattice(cols, cell)))
        positions.append(_grid_positions(first_x, first_y, cell, n_cells))
        scales.append(np.full(len(positions[-1]), patch_size, np.float32))
    positions, scales = np.concatenate(positions), np.concatenate(scales)
    for array in [positions, scales] + [a for plan in plans for a in plan[1:6]]:
        array.flags.writeable = False
    return tuple(plans), positions, scales


def _cell_window(cell, n_cells, window_size):
    """Per-cell Gaussian window weights, shape (n_cells, n_cells), float32."""
    if window_size is None:
        return np.ones((n_cells, n_cells), np.float32)
    # mean of the Gaussian over each cell's support (VLFeat fast mode)
    support = np.arange(1 - cell, cell)
    centres = cell * (np.arange(n_cells) - (n_cells - 1) / 2)
    z = (centres[:, None] + support[None, :]) / (window_size * cell)
    weights = np.exp(-0.5 * z * z).mean(axis=1)
    return np.outer(weights, weights).astype(np.float32)


#: pixels per batch of same-size images in :meth:`DenseSIFT._transform_chunk`
#: (3 x 65536: fewer batches, so less fixed cost per batch, measured 3-7 %
#: faster at 28x28, 64x128 and 256x256 than 65536; 262144 is slower again)
_BATCH_PIXELS = 196608
#: pixels per band in :func:`_pooled_by_filtering` and block pixels per band
#: in :func:`_pooled_on_lattice` (a band's arrays then stay in cache; the
#: lattice's bands are equal, and larger bands measured faster there: one
#: band holds a whole batch of small images)
_BAND_PIXELS = 65536
_LATTICE_BAND_PIXELS = 262144

#: :func:`_pooled_by_filtering` does its passes as matrix products at the
#: sampled columns and rows (a row of ``W`` pixels times a ``W x n_cols``
#: matrix, all channels in one product) when ``n_cols`` is at most this many
#: times the kernel's taps ``2c - 1``, else by ``cv2.filter2D`` over every
#: column (measured, horizontal pass of a band of 8 channels: width 64, 16
#: columns, cells 6 and 10: 1.9x and 2.6x faster by product; width 256, 61
#: columns: 0.4-0.6x)
_PRODUCT_COLUMNS_PER_TAP = 2

#: :func:`_gray_side_by_side` pads every image's width to a multiple of this
#: (a multiple of OpenCV's SIMD widths), so that each pixel goes through the
#: same vectorised code however many images are side by side
_COLUMN_ALIGNMENT = 16


#: work array name -> the buffer it shares (see :class:`WorkMemory`). The
#: gradient's temporaries are all dead when the lattice pooling starts, and
#: within one band of the pooling each buffer's arrays are used one after
#: the other: the region copied for the magnitude's blocks, then for the
#: orientation's, then each orientation channel, then the lattice sums; the
#: transposed regions, then the block sums; the blocks' weighted
#: orientation; the magnitude's and the orientation's blocks. Keep it so
#: when editing (the arrays of one name are overwritten by the next use of
#: their buffer). Sharing keeps the working set small enough for the cache.
_SHARED_BUFFERS = {
    "region": "smoothed", "plane": "smoothed", "lattice": "smoothed",
    "offsets_x_first": "columns", "sums": "columns",
    "weighted_position": "filtered",
    "block_magnitude": "gx", "block_position": "gy",
    # the filtering pooling's band arrays, all live through one band
    "band_weighted_position": "gx", "band_weight": "gy", "band_filtered": "smoothed",
    "band_across": "columns", "band_down": "filtered",
}

#: most bytes of work arrays kept per thread (a batch of
#: :data:`_BATCH_PIXELS` pixels needs about 5-10 MB at one patch size)
_WORK_BYTES = 32 << 20

#: DenseSIFT's large temporaries, kept per thread between batches and calls
#: (fresh memory costs a page fault per 4 KiB page: see
#: :mod:`~featclf.features.work_memory`). Nothing returned to the caller
#: lives here.
_WORK = WorkMemory(_WORK_BYTES, _SHARED_BUFFERS)


#: row sizes (bytes) that ``cv2.transpose`` moves as one element
_TRANSPOSABLE_ROW_BYTES = (16, 32)


def _gray_side_by_side(images, work=None):
    """Images of one shape and dtype as float gray (0-1), side by side.

    Parameters
    ----------
    images : list of ndarray of shape (H, W) or (H, W, 3), or ndarray of shape (n, H, W[, 3])
    work : WorkMemory, default=None
        Where to take the result's memory (None: a fresh array).

    Returns
    -------
    stack : ndarray of shape (H, n, W'), float32
        ``stack[:, i, :W]`` is image ``i``, followed by copies of its last
        column up to a width ``W'``, the multiple of
        :data:`_COLUMN_ALIGNMENT` at or above ``W`` (so a horizontal filter
        with replicated borders sees the image's own border). Viewed as
        ``(H * n, W')`` every row is one image row, viewed as
        ``(H, n * W')`` every column is one image column, so horizontal and
        vertical filters treat each image as if it were alone.
    """
    images = np.asarray(images) if isinstance(images, np.ndarray) else np.stack(images)
    n_images, height, width = images.shape[:3]
    padded_width = width + -width % _COLUMN_ALIGNMENT
    padded = images
    if padded_width > width:
        # every image row extended by copies of its last pixel (one OpenCV pass)
        rows = images.reshape((n_images * height, width) + images.shape[3:])
        padded = cv2.copyMakeBorder(rows, 0, 0, 0, padded_width - width, cv2.BORDER_REPLICATE)
        padded = padded.reshape((n_images, height) + padded.shape[1:])
    # (n, H, W') to (H, n, W'): OpenCV transposes the (n, H) grid of rows
    # when a row is one of its element sizes (NumPy's copy costs about as
    # much per short row as the whole conversion to float)
    if padded.ndim == 3 and padded.dtype.itemsize * padded_width in _TRANSPOSABLE_ROW_BYTES:
        stack = cv2.transpose(padded)
    else:
        stack = np.ascontiguousarray(np.swapaxes(padded, 0, 1))
    if stack.dtype == np.uint8:  # to_float's values: x / 255 in float32
        converted = work_array(work, "stack", stack.shape)
        np.copyto(converted, stack)
        stack = np.divide(converted, np.float32(255), out=converted)
    else:
        stack = to_float(stack)
    if stack.ndim == 4:
        height, n_images, padded_width, channels = stack.shape
        stack = to_gray(stack.reshape(height, n_images * padded_width, channels))
        stack = stack.reshape(height, n_images, padded_width)
    return stack


@functools.lru_cache(maxsize=32)
def _smoothing_kernels(sigma):
    """Gaussian kernel of sigma ``sigma`` (radius ``ceil(4 sigma)``, as
    ``cv2.GaussianBlur`` builds it) and its central difference
    ``[-1, 0, 1] / 2`` convolved with it (two taps longer), float32."""
    radius = int(np.ceil(4 * sigma))
    smooth = cv2.getGaussianKernel(2 * radius + 1, sigma, cv2.CV_64F).ravel()
    padded = np.concatenate([[0.0, 0.0], smooth, [0.0, 0.0]])
    derivative = (padded[:-2] - padded[2:]) / 2  # correlation taps
    return smooth.astype(np.float32), derivative.astype(np.float32)


def _gradient_polar(stack, n_bins, sigma=None, work=None, columns=None):
    """Gradient magnitude and orientation (in bin units) of every image.

    Each image, extended by replicating its border pixels, is smoothed with
    a Gaussian of sigma ``sigma`` (None: no smoothing) and differentiated
    by central differences ``[-1, 0, 1] / 2``; at the border the
    differences use the smoothed replicated pixels. The two steps are done
    as one separable filter per direction (the smoothing along the other
    axis first). The orientation is measured counter-clockwise from +x with
    y pointing up (OpenCV's SIFT convention) and scaled to ``[0, n_bins)``.

    Parameters
    ----------
    stack : ndarray of shape (H, n, W), float32
        Images side by side (see :func:`_gray_side_by_side`).
    n_bins : int
        Orientation bins.
    sigma : float or None, default=None
        Smoothing.
    work : WorkMemory, default=None
        Where to take the temporaries' and results' memory (None: fresh
        arrays).
    columns : slice, default=None
        Return only these columns of every image (None: all ``W``).

    Returns
    -------
    magnitude, position : ndarray of shape (H, n, W) or (H, n, len(columns)), float32
    """
    height, n_images, width = stack.shape
    across = stack.reshape(height * n_images, width)  # one image row per row
    down = stack.reshape(height, n_images * width)  # one image column per column
    replicate = cv2.BORDER_REPLICATE
    if sigma is None:
        gx = cv2.Sobel(across, cv2.CV_32F, 1, 0, ksize=1, scale=0.5, borderType=replicate)
        gy_up = cv2.Sobel(down, cv2.CV_32F, 0, 1, ksize=1, scale=-0.5, borderType=replicate)
    else:
        smooth, derivative = _smoothing_kernels(float(sigma))
        smoothed = work_array(work, "smoothed", down.shape)
        smoothed = cv2.filter2D(down, -1, smooth[:, None], dst=smoothed, borderType=replicate)
        gx = _filter_rows(smoothed.reshape(height * n_images, width), derivative,
                          work_array(work, "gx", across.shape), work)
        smoothed_across = _filter_rows(across, smooth, smoothed.reshape(across.shape), work)
        gy_up = cv2.filter2D(smoothed_across.reshape(down.shape), -1, -derivative[:, None],
                             dst=work_array(work, "gy", down.shape), borderType=replicate)
    gx, gy_up = gx.reshape(height * n_images, width), gy_up.reshape(height * n_images, width)
    if columns is not None:
        gx, gy_up = gx[:, columns], gy_up[:, columns]
    magnitude, angle = cv2.cartToPolar(gx, gy_up,
                                       magnitude=work_array(work, "magnitude", gx.shape),
                                       angle=work_array(work, "angle", gx.shape))
    # (NumPy: OpenCV's multiplication by a scalar is several times slower)
    np.multiply(angle, np.float32(n_bins / (2 * np.pi)), out=angle)
    return (magnitude.reshape(height, n_images, -1),
            angle.reshape(height, n_images, -1))


#: :func:`_filter_rows` filters rows at most this long as the columns of the
#: transposed array: OpenCV's row filter costs about as much per row as a
#: 32-pixel row's arithmetic, its column filter does not (widths 16-48:
#: 1.2-2.2x faster with the two transposes; 64: 0.9x)
_TRANSPOSED_ROWS_MAX_WIDTH = 48


def _filter_rows(rows, kernel, out=None, work=None):
    """Correlate every row of ``rows`` with ``kernel``, borders replicated.

    Parameters
    ----------
    rows : ndarray of shape (n_rows, width), float32
    kernel : ndarray of shape (n_taps,), float32
        An odd number of taps, centred.
    out : ndarray of shape (n_rows, width), float32, default=None
        Where to write the result (None: a fresh array).
    work : WorkMemory, default=None
        Where to take the temporaries' memory (None: fresh arrays).

    Returns
    -------
    filtered : ndarray of shape (n_rows, width), float32
        ``cv2.filter2D(rows, -1, kernel[None, :])`` (bit for bit: OpenCV's
        column filter does the same arithmetic as its row filter); short
        rows are filtered as the columns of the transposed array.
    """
    replicate = cv2.BORDER_REPLICATE
    n_rows, width = rows.shape
    if width > _TRANSPOSED_ROWS_MAX_WIDTH:
        return cv2.filter2D(rows, -1, kernel[None, :], dst=out, borderType=replicate)
    # the transposed array is padded with zero columns to an aligned width,
    # so that every column goes through OpenCV's vectorised code (its scalar
    # tail may round differently), whatever the number of rows
    aligned = (width, n_rows + -n_rows % _COLUMN_ALIGNMENT)
    columns = work_array(work, "columns", aligned)
    columns[:, n_rows:] = 0.0
    cv2.transpose(rows, dst=columns[:, :n_rows])
    filtered = cv2.filter2D(columns, -1, kernel[:, None], dst=work_array(work, "filtered", aligned),
                            borderType=replicate)
    return cv2.transpose(filtered[:, :n_rows], dst=out)


def _orientation_plane(magnitude, weighted_position, k, n_bins, out):
    """Channel ``k`` of the soft orientation binning, written into ``out``.

    ``m * max(0, 1 - |t - k|)`` with ``|t - k|`` measured around the circle
    of ``n_bins`` bins (linear interpolation between the two nearest bin
    centres), computed as ``max(0, m - |m t - k m|)`` from the magnitude
    ``m`` and ``m t`` (``weighted_position``): four passes over the pixels.
    All arrays 2-D float32 of one shape.
    """
    if n_bins == 1:
        np.copyto(out, magnitude)
        return out
    # (NumPy where it is as fast per pixel and cheaper per call, OpenCV for
    # the fused |a - b| and the clamp)
    if k == 0:  # the circle wraps: bin 0 is also at t = B, and 0 <= t <= B
        np.multiply(magnitude, np.float32(n_bins), out=out)
        np.subtract(out, weighted_position, out=out)  # m (B - t)
        np.minimum(out, weighted_position, out=out)
    elif k == 1:
        cv2.absdiff(magnitude, weighted_position, dst=out)
    else:
        np.multiply(magnitude, np.float32(k), out=out)
        cv2.absdiff(out, weighted_position, dst=out)  # m |t - k|
    np.subtract(magnitude, out, out=out)
    cv2.threshold(out, 0.0, 0.0, cv2.THRESH_TOZERO, dst=out)
    return out


def _pooled_orientation_maps(magnitude, position, n_bins, cell, rows, cols, on_lattice=None,
                             work=None):
    """Soft-binned gradient magnitudes pooled into cells, at ``rows`` x ``cols``.

    For each orientation bin ``k``: the channel ``m * max(0, 1 - |t - k|)``
    (see :func:`_orientation_plane`) convolved with the separable
    triangular kernel ``1 - |d| / c`` (``|d| < c``), read at the given
    rows and columns. Pixels outside each image count as zero.

    When the rows and the columns are each evenly spaced by ``c`` (a grid
    step that is a multiple of the cell size, the usual case), only those
    values are computed (:func:`_pooled_on_lattice`); otherwise the
    channels are filtered (:func:`_pooled_by_filtering`). Both give the
    same values up to float rounding.

    Parameters
    ----------
    magnitude, position : ndarray of shape (H, n, W), float32
        Gradient magnitude and orientation in bin units, ``[0, n_bins)``
        (see :func:`_gradient_polar`), images side by side.
    n_bins : int
        Orientation bins ``B``.
    cell : int
        Cell size ``c`` in pixels.
    rows, cols : ndarray of int
        Sorted pixel rows and columns where the pooled maps are needed.
    on_lattice : bool, default=None
        Whether both are evenly spaced by ``c``, when already known.
    work : WorkMemory, default=None
        Where to take the temporaries' and result's memory (None: fresh
        arrays).

    Returns
    -------
    pooled : ndarray of shape (n, len(rows), len(cols), B), float32
    """
    if on_lattice is None:
        on_lattice = _is_lattice(rows, cell) and _is_lattice(cols, cell)
    if on_lattice:
        return _pooled_on_lattice(magnitude, position, n_bins, cell,
                                  int(rows[0]), len(rows), int(cols[0]), len(cols), work)
    return _pooled_by_filtering(magnitude, position, n_bins, cell, rows, cols, work)


def _is_lattice(indices, spacing):
    return len(indices) > 0 and bool((np.diff(indices) == spacing).all())


@functools.lru_cache(maxsize=32)
def _lattice_moments(cell):
    """Weights of the pixels of a ``c x c`` block for :func:`_pooled_on_lattice`.

    Returns an array of shape ``(4, c * c)``: with ``wa(r) = 1 - r / c``
    and ``wb(r) = r / c`` for the offset ``r`` in ``[0, c)``, row ``2 * i +
    j`` holds ``w_i(r_y) * w_j(r_x)`` for ``(w_0, w_1) = (wa, wb)`` at
    offset ``(r_y, r_x)`` (row-major).
    """
    offsets = np.arange(cell) / cell
    weights = np.stack([1.0 - offsets, offsets])  # (2, c): wa, wb
    moments = weights[:, None, :, None] * weights[None, :, None, :]  # (2, 2, c, c)
    return moments.reshape(4, cell * cell).astype(np.float32)


def _pooled_on_lattice(magnitude, position, n_bins, cell, row0, n_rows, col0, n_cols,
                       work=None):
    """Pooled maps at rows ``row0 + c * i`` and columns ``col0 + c * j`` only.

    The triangular kernel sampled every ``c`` pixels splits each pixel
    between the two lattice points around it: a pixel ``r`` pixels
    (``0 <= r < c``) past lattice row ``i`` gives ``1 - r / c`` of itself to
    row ``i`` and ``r / c`` to row ``i + 1``, and likewise along columns.
    So the region around the lattice is cut into ``c x c`` blocks (each
    starting at a lattice point), every block's four weighted sums
    (:func:`_lattice_moments`) are one matrix product over the block's
    pixels, and each lattice point adds the four sums of the blocks that
    touch it. The blocks are laid out offset-major (a "polyphase" copy of
    the magnitude and orientation) so that the product is a single
    ``(4, c^2) @ (c^2, n_blocks)`` per orientation bin. Work: about 4
    multiply-adds per pixel and bin, instead of a full convolution.

    Parameters
    ----------
    magnitude, position : ndarray of shape (H, n, W), float32
        As for :func:`_pooled_orientation_maps`.
    n_bins, cell : int
        ``B`` and ``c``.
    row0, n_rows, col0, n_cols : int
        The lattice.
    work : WorkMemory, default=None
        Where to take the temporaries' and result's memory (None: fresh
        arrays).

    Returns
    -------
    pooled : ndarray of shape (n, n_rows, n_cols, B), float32
    """
    n_images = magnitude.shape[1]
    moments = _lattice_moments(cell)
    n_blocks_x = n_cols + 1
    # (lattice row, image, lattice column, bin), bins last (what the
    # descriptors gather); each band writes one junk row below its lattice
    # rows (overwritten by the next band) and one junk column per image
    pooled = work_array(work, "pooled", (n_rows + 1, n_images, n_blocks_x, n_bins))
    # equal bands of at most about _LATTICE_BAND_PIXELS block pixels
    band_pixels = cell * cell * n_images * n_blocks_x * (n_rows + 1)
    n_bands = -(-band_pixels // _LATTICE_BAND_PIXELS)
    rows_per_band = -(-n_rows // n_bands)
    for start in range(0, n_rows, rows_per_band):
        stop = min(start + rows_per_band, n_rows)
        n_blocks_y = stop - start + 1
        # block (0, 0) starts one cell above and left of lattice point (start, 0)
        corner = (row0 + (start - 1) * cell, col0 - cell)
        block_shape = (n_blocks_y, n_blocks_x)
        blocks_shape = (cell * cell, n_blocks_y * n_images * n_blocks_x)
        block_magnitude = _polyphase(magnitude, corner, block_shape, cell,
                                     work_array(work, "block_magnitude", blocks_shape), work)
        block_position = _polyphase(position, corner, block_shape, cell,
                                    work_array(work, "block_position", blocks_shape), work)
        weighted_position = cv2.multiply(block_magnitude, block_position,
                                         dst=work_array(work, "weighted_position", blocks_shape))
        # one orientation channel at a time, summed while it is in cache
        plane = work_array(work, "plane", blocks_shape)
        sums = work_array(work, "sums", (n_bins, 4, blocks_shape[1]))
        for k in range(n_bins):
            _orientation_plane(block_magnitude, weighted_position, k, n_bins, out=plane)
            np.matmul(moments, plane, out=sums[k])
        # lattice point (i, j) takes wa*wa of block (i+1, j+1), wa*wb of
        # block (i+1, j), wb*wa of block (i, j+1) and wb*wb of block (i, j):
        # in the flat block order (block row, image, block column) these are
        # n * n_blocks_x + 1, n * n_blocks_x, 1 and 0 blocks after block
        # (i, j), so the sums are shifted 1-D runs (the last block column of
        # each image and the last block row, which wrap, are dropped)
        down = n_images * n_blocks_x
        length = sums.shape[2] - down - 1
        lattice = work_array(work, "lattice", (n_bins, sums.shape[2]))
        ahead = lattice[:, :length]
        np.add(sums[:, 0, down + 1:], sums[:, 1, down:-1], out=ahead)
        ahead += sums[:, 2, 1:length + 1]
        ahead += sums[:, 3, :length]
        # bins last, by OpenCV's fast transpose
        cv2.transpose(lattice, dst=pooled[start:stop + 1].reshape(-1, n_bins))
    return pooled[:-1, :, :-1].transpose(1, 0, 2, 3)


def _polyphase(plane, corner, block_shape, cell, out=None, work=None):
    """``c x c`` blocks of a side-by-side stack, offset-major, zero outside.

    Parameters
    ----------
    plane : ndarray of shape (H, n, W)
    corner : (int, int)
        Row and column (possibly outside the images) of the first block's
        top-left pixel.
    block_shape : (int, int)
        Blocks down and across.
    cell : int
        Block side ``c``.
    out : ndarray of shape (c * c, n_blocks_y * n * n_blocks_x), float32, default=None
        Where to write the blocks (None: a fresh array).
    work : WorkMemory, default=None
        Where to take the temporaries' memory (None: fresh arrays).

    Returns
    -------
    blocks : ndarray of shape (c * c, n_blocks_y * n * n_blocks_x), float32
        Row ``r_y * c + r_x`` holds the pixel at offset ``(r_y, r_x)`` of
        every block, ordered (block row, image, block column).
    """
    height, n_images, width = plane.shape
    (top, left), (n_down, n_across) = corner, block_shape
    bottom, right = top + n_down * cell, left + n_across * cell
    region_shape = (n_down * cell, n_images, n_across * cell)
    if top >= 0 and left >= 0 and bottom <= height and right <= width:
        region = plane[top:bottom, :, left:right]
        if not region.flags.c_contiguous:
            contiguous = work_array(work, "region", region_shape)
            np.copyto(contiguous, region)
            region = contiguous
    else:
        region = work_array(work, "region", region_shape)
        region.fill(0.0)
        inside_top, inside_left = max(top, 0), max(left, 0)
        inside_bottom, inside_right = min(bottom, height), min(right, width)
        region[inside_top - top:inside_bottom - top, :, inside_left - left:inside_right - left] = \
            plane[inside_top:inside_bottom, :, inside_left:inside_right]
    # (block row, r_y, image, block column, r_x): OpenCV's transpose brings
    # r_x first (NumPy's copy of the full permutation, with its c-element
    # strides, is several times slower), then NumPy moves r_y next to it
    # in runs of n * n_blocks_x contiguous pixels
    offsets_x_first = cv2.transpose(
        region.reshape(-1, cell),
        dst=work_array(work, "offsets_x_first", (cell, region.size // cell)))
    blocks = offsets_x_first.reshape(cell, n_down, cell, n_images * n_across)
    if out is None:
        out = np.empty((cell * cell, region.size // (cell * cell)), np.float32)
    np.copyto(out.reshape(cell, cell, n_down, -1), blocks.transpose(2, 0, 1, 3))
    return out


def _pooled_by_filtering(magnitude, position, n_bins, cell, rows, cols, work=None):
    """:func:`_pooled_orientation_maps` for any rows and columns, by filtering.

    Over horizontal bands of about :data:`_BAND_PIXELS` pixels (to keep the
    working set in cache), the triangular kernel's horizontal pass, then
    its vertical pass over the sampled columns only. When there are few
    sampled columns (see :data:`_PRODUCT_COLUMNS_PER_TAP`), both passes are
    matrix products evaluated only at the sampled columns and rows, each
    one product for all orientation channels; otherwise one channel at a
    time is filtered by ``cv2.filter2D`` over every column and band row.

    Parameters
    ----------
    magnitude, position, n_bins, cell, rows, cols
        As for :func:`_pooled_orientation_maps`.
    work : WorkMemory, default=None
        Where to take the temporaries' and result's memory (None: fresh
        arrays).

    Returns
    -------
    pooled : ndarray of shape (n, len(rows), len(cols), B), float32
    """
    height, n_images, width = magnitude.shape
    kernel = 1.0 - np.abs(np.arange(1 - cell, cell, dtype=np.float32)) / cell
    col_slice = _as_slice(cols)
    aligned = len(cols) + -len(cols) % _COLUMN_ALIGNMENT
    by_product = len(cols) <= _PRODUCT_COLUMNS_PER_TAP * kernel.size
    if by_product:
        columns_kernel = _sampling_kernel(width, tuple(cols.tolist()), cell, aligned)
    pooled = work_array(work, "pooled", (n_images, len(rows), len(cols), n_bins))
    rows_per_band = max(1, _BAND_PIXELS // (n_images * width))
    start = 0
    while start < len(rows):
        stop = max(int(np.searchsorted(rows, rows[start] + rows_per_band)), start + 1)
        # the band's rows plus the kernel's reach above and below
        top = max(rows[start] - (cell - 1), 0)
        bottom = min(rows[stop - 1] + cell, height)
        n_band = bottom - top
        band_position = position[top:bottom].reshape(n_band * n_images, width)
        band_magnitude = magnitude[top:bottom].reshape(n_band * n_images, width)
        band_shape = band_position.shape
        weighted_position = cv2.multiply(
            band_magnitude, band_position,
            dst=work_array(work, "band_weighted_position", band_shape))
        # the horizontal pass's sampled columns of each image, padded with
        # zeros to an aligned width (see _COLUMN_ALIGNMENT)
        if by_product:
            planes = work_array(work, "band_planes", (n_bins,) + band_shape)
            for k in range(n_bins):
                _orientation_plane(band_magnitude, weighted_position, k, n_bins, out=planes[k])
            across = work_array(work, "band_across", (n_bins, n_band, n_images * aligned))
            np.matmul(planes.reshape(-1, width), columns_kernel,
                      out=across.reshape(-1, aligned))
            n_sampled = stop - start
            band_rows = tuple((rows[start:stop] - top).tolist())
            rows_kernel = _sampling_kernel(n_band, band_rows, cell, n_sampled).T
            down = work_array(work, "band_down", (n_bins, n_sampled, n_images * aligned))
            np.matmul(rows_kernel, across, out=down)
            sampled = down.reshape(n_bins, n_sampled, n_images, aligned)[..., :len(cols)]
            pooled[:, start:stop] = sampled.transpose(2, 1, 3, 0)
            start = stop
            continue
        band_rows = _as_slice(rows[start:stop] - top)
        weight = work_array(work, "band_weight", band_shape)
        filtered = work_array(work, "band_filtered", band_shape)
        across = work_array(work, "band_across", (n_band, n_images, aligned))
        across[:, :, len(cols):] = 0.0
        down = work_array(work, "band_down", (n_band, n_images * aligned))
        for k in range(n_bins):
            _orientation_plane(band_magnitude, weighted_position, k, n_bins, out=weight)
            cv2.filter2D(weight, -1, kernel[None, :], dst=filtered,
                         borderType=cv2.BORDER_CONSTANT)
            across[:, :, :len(cols)] = filtered.reshape(n_band, n_images, width)[:, :, col_slice]
            cv2.filter2D(across.reshape(n_band, n_images * aligned), -1,
                         kernel[:, None], dst=down, borderType=cv2.BORDER_CONSTANT)
            sampled = down.reshape(n_band, n_images, aligned)[band_rows, :, :len(cols)]
            pooled[:, start:stop, :, k] = sampled.transpose(1, 0, 2)
        start = stop
    return pooled


@functools.lru_cache(maxsize=256)
def _sampling_kernel(length, samples, cell, n_out):
    """The triangular kernel's pass along one axis, at ``samples`` only, as a matrix.

    Parameters
    ----------
    length : int
        Pixels along the axis.
    samples : tuple of int
        Where the filtered values are wanted.
    cell : int
        Cell size ``c``.
    n_out : int
        Columns of the matrix, at least ``len(samples)``.

    Returns
    -------
    matrix : ndarray of shape (length, n_out), float32
        Column ``j < len(samples)`` holds ``max(0, 1 - |x - samples[j]| / c)``
        at row ``x`` (the kernel's float32 taps, zero outside the axis as
        ``cv2.filter2D`` with a constant border); the other columns are zero.
        Read-only (cached).
    """
    distance = np.abs(np.arange(length, dtype=np.float32)[:, None]
                      - np.asarray(samples, dtype=np.float32)[None, :])
    matrix = np.zeros((length, n_out), np.float32)
    matrix[:, :len(samples)] = np.maximum(1.0 - distance / np.float32(cell), np.float32(0.0))
    matrix.flags.writeable = False
    return matrix


def _as_slice(indices):
    """A slice equal to sorted ``indices`` when they are evenly spaced (a view
    instead of a gather), else ``indices``."""
    if len(indices) > 1:
        spacing = indices[1] - indices[0]
        if spacing > 0 and (np.diff(indices) == spacing).all():
            return slice(indices[0], indices[-1] + 1, spacing)
    return indices


def _cell_windows(pooled, row_index, col_index, affine=None):
    """The pooled cells of every descriptor of every image.

    Parameters
    ----------
    pooled : ndarray of shape (n_images, n_rows, n_cols, B)
        Pooled maps at the sampled rows and columns.
    row_index, col_index : ndarray of int, shape (n_y, n_cells) and (n_x, n_cells)
        ``row_index[i, a]`` (``col_index[j, b]``) is the row (column) of
        ``pooled`` holding cell row ``a`` (column ``b``) of grid row ``i``
        (column ``j``).
    affine : tuple, default=None
        ``(_affine_strides(row_index), _affine_strides(col_index))`` when
        already known.

    Returns
    -------
    cells : ndarray of shape (n_images, n_y, n_x, n_cells, n_cells, B)
        A strided view of ``pooled`` when both indices are affine in
        ``(i, a)`` (the grid step is a multiple of the cell spacing),
        otherwise a gathered copy.
    """
    if affine is None:
        affine = _affine_strides(row_index), _affine_strides(col_index)
    affine_rows, affine_cols = affine
    if affine_rows is not None and affine_cols is not None:
        (row0, row_step, row_cell), (col0, col_step, col_cell) = affine_rows, affine_cols
        stride_n, stride_r, stride_c, stride_b = pooled.strides
        return np.lib.stride_tricks.as_strided(
            pooled[:, row0:, col0:],
            shape=pooled.shape[:1] + row_index.shape[:1] + col_index.shape[:1]
            + row_index.shape[1:] + col_index.shape[1:] + pooled.shape[3:],
            strides=(stride_n, row_step * stride_r, col_step * stride_c,
                     row_cell * stride_r, col_cell * stride_c, stride_b),
            writeable=False,
        )
    return pooled[:, row_index[:, None, :, None], col_index[None, :, None, :]]


def _affine_strides(index):
    """``(start, step, cell_step)`` if ``index[i, a] == start + i*step + a*cell_step``."""
    start = index[0, 0]
    step = index[1, 0] - start if index.shape[0] > 1 else 0
    cell_step = index[0, 1] - start if index.shape[1] > 1 else 0
    expected = (start + step * np.arange(index.shape[0])[:, None]
                + cell_step * np.arange(index.shape[1]))
    if step < 0 or cell_step < 0 or not np.array_equal(index, expected):
        return None
    return start, step, cell_step


def normalize_sift(raw, clip=SIFT_CLIP, zero=None):
    """Lowe's SIFT normalisation: unit L2 norm, clip, unit L2 norm again.

    Parameters
    ----------
    raw : ndarray of shape (k, d)
        Non-negative raw descriptors (not modified).
    clip : float, default=0.2
        Upper bound on each entry of the first normalised vector.
    zero : ndarray of shape (k,), dtype bool, default=None
        Rows to set to zero instead (for example low-contrast ones).

    Returns
    -------
    descriptors : ndarray of shape (k, d), dtype float32
        Unit L2 norm rows (all-zero rows stay zero).
    """
    return _normalize_sift_in_place(np.array(raw, dtype=np.float32), clip, zero)


def _normalize_sift_in_place(descriptors, clip, zero=None):
    """:func:`normalize_sift` overwriting the float32 array ``descriptors``.

    Clipping the unit vector ``v / |v|`` at ``clip`` and normalising again
    is clipping ``v`` at ``clip * |v|`` and normalising once: three passes
    over the descriptors instead of five.
    """
    tiny = np.finfo(np.float32).tiny
    norms = np.sqrt(np.einsum("ij,ij->i", descriptors, descriptors))
    np.minimum(descriptors, (np.float32(clip) * norms)[:, None], out=descriptors)
    norms = np.sqrt(np.einsum("ij,ij->i", descriptors, descriptors))
    scale = 1.0 / np.maximum(norms, tiny)
    if zero is not None:
        scale[zero] = 0.0
    descriptors *= scale[:, None]
    return descriptors


def opencv_grid_keypoints(image_shape, step=8, patch_sizes=(16,), n_cells=4):
    """Upright ``cv2.KeyPoint`` objects on :class:`DenseSIFT`'s grid.

    Each keypoint sits at a descriptor centre of :func:`dense_grid` with
    ``size = patch_size / 6``, so that OpenCV's 4x4 cells (each 1.5 keypoint
    sizes wide) cover the same patch as :class:`DenseSIFT`'s.

    Parameters
    ----------
    image_shape : tuple of (int, int)
        ``(height, width)``.
    step : int, default=8
        Grid stride in pixels.
    patch_sizes : tuple of int, default=(16,)
        Patch sides in pixels.
    n_cells : int, default=4
        Cells per patch side of the grid geometry (OpenCV itself always
        uses 4).

    Returns
    -------
    keypoints : list of cv2.KeyPoint
        In :class:`DenseSIFT`'s order (patch size, then row, then column).
    scales : ndarray of shape (len(keypoints),), dtype float32
        The patch size of each keypoint.
    """
    patch_sizes = tuple(patch_sizes)
    grid = dense_grid(image_shape, step, patch_sizes, n_cells)
    keypoints, scales = [], []
    for patch_size, (cell, first_x, first_y) in zip(patch_sizes, grid):
        size = patch_size / _OPENCV_PATCH_PER_KEYPOINT_SIZE
        positions = _grid_positions(first_x, first_y, cell, n_cells)
        keypoints.extend(cv2.KeyPoint(float(x), float(y), size, 0) for x, y in positions)
        scales.append(np.full(len(positions), patch_size, np.float32))
    return keypoints, np.concatenate(scales)


def opencv_sift_on_grid(image, step=8, patch_sizes=(16,), n_cells=4):
    """OpenCV's SIFT descriptor on :class:`DenseSIFT`'s grid (the reference).

    Runs ``cv2.SIFT.compute`` on :func:`opencv_grid_keypoints`. OpenCV
    smooths the image with sigma 1.52 (its first-octave blur) whatever the
    patch size.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3)
        uint8 or float (0-1) image; colour is converted to gray.
    step, patch_sizes, n_cells
        As for :func:`opencv_grid_keypoints`.

    Returns
    -------
    descriptor_set : DescriptorSet
        Descriptors ``(k, 128)`` rescaled to unit L2 norm, in the same order,
        at the same positions and with the same scales (patch sizes) as
        :class:`DenseSIFT`'s.
    """
    gray = _gray_uint8(image)
    keypoints, scales = opencv_grid_keypoints(gray.shape, step, patch_sizes, n_cells)
    if not keypoints:
        return DescriptorSet.empty(128, gray.shape)
    computed, descriptors = cv2.SIFT_create().compute(gray, keypoints)
    if len(computed) != len(keypoints):  # pragma: no cover - OpenCV dropped some
        raise RuntimeError("cv2.SIFT.compute dropped grid keypoints")
    described = _opencv_descriptor_set(computed, descriptors, gray.shape, False)
    return DescriptorSet(described.descriptors, described.positions, scales,
                         described.image_shape)
