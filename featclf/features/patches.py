"""Learned patch features: a k-means dictionary of whitened image patches.

The single-layer network of Coates, Lee & Ng (2011): small patches are
normalised for brightness and contrast, ZCA-whitened, and clustered with
k-means; every image is then encoded densely with the "triangle"
activation and sum-pooled over quadrants.
"""

import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.cluster import MiniBatchKMeans
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ..base import FeatureExtractor, ImageError
from ..io import as_image_batch
from ..preprocessing import to_float

__all__ = ["KMeansPatches"]


class KMeansPatches(FeatureExtractor):
    """Coates-style learned features: whitened patches, k-means, triangle code.

    ``fit`` learns the dictionary from the training images only:

    1. sample ``n_patches`` random ``patch_size`` x ``patch_size`` patches
       (all channels) from the images, uniformly over images and positions;
    2. normalise each patch: subtract its mean, divide by
       ``sqrt(variance + contrast_epsilon)`` (pixels on the 0-255 scale);
    3. ZCA-whiten: ``(x - mean) @ V diag(1 / sqrt(eigenvalue +
       whiten_epsilon)) V^T`` from the patch covariance;
    4. cluster the whitened patches with seeded ``MiniBatchKMeans`` into
       ``n_clusters`` centroids.

    ``transform`` encodes every patch of an image (stride ``stride``) with
    the triangle activation ``f_k = max(0, mean_j(z_j) - z_k)``, where
    ``z_k`` is the distance of the whitened patch to centroid ``k``, and
    sums the codes over a ``pooling`` grid of the patch positions (2 x 2
    quadrants by default). Each image is encoded on its own.

    Parameters
    ----------
    n_clusters : int, default=100
        Dictionary size K (the paper reaches about 77 % on CIFAR-10 with
        K = 1600 and a linear SVM; the small default keeps fitting quick).
    patch_size : int, default=6
        Side of the square patches, in pixels.
    n_patches : int, default=5000
        Patches sampled for whitening and k-means (the paper uses 400,000).
    stride : int, default=1
        Step between encoded patches in ``transform``.
    pooling : tuple of int, default=(2, 2)
        Rows and columns of the sum-pooling grid.
    contrast_epsilon : float, default=10.0
        Added to the patch variance before the contrast normalisation
        (0-255 pixel scale).
    whiten_epsilon : float, default=0.1
        Added to the covariance eigenvalues before whitening.
    kmeans_max_iter : int, default=10
        Passes over the sampled patches for MiniBatchKMeans.
    random_state : int, RandomState instance or None, default=0
        Seeds the patch sampling and k-means. Fixed by default so that
        refitting gives the same features (None draws a fresh dictionary).
    n_jobs : int, default=None
        Parallel jobs for ``transform`` (joblib's meaning).

    Attributes
    ----------
    whiten_mean_ : ndarray of shape (d,)
        Mean of the normalised patches, ``d = patch_size**2 * channels``.
    whiten_matrix_ : ndarray of shape (d, d)
        The ZCA whitening matrix.
    cluster_centers_ : ndarray of shape (n_clusters, d)
        The dictionary, in whitened space.
    n_channels_ : int
        Channels of the training images (1 or 3); ``transform`` needs the same.
    n_features_out_ : int
        ``n_clusters * pooling[0] * pooling[1]``.

    References
    ----------
    A. Coates, H. Lee, A. Y. Ng, "An Analysis of Single-Layer Networks in
    Unsupervised Feature Learning", AISTATS 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from featclf.features.patches import KMeansPatches
    >>> images = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    >>> KMeansPatches(n_clusters=16, n_patches=2000, random_state=0).fit_transform(images).shape
    (20, 64)
    """

    _feature_prefix = "kmeans_patch"
    _parallel_prefer = "threads"
    _chunk_size = 64

    _parameter_constraints = {
        "n_clusters": [Interval(numbers.Integral, 2, None, closed="left")],
        "patch_size": [Interval(numbers.Integral, 2, None, closed="left")],
        "n_patches": [Interval(numbers.Integral, 2, None, closed="left")],
        "stride": [Interval(numbers.Integral, 1, None, closed="left")],
        "pooling": [tuple, list],
        "contrast_epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "whiten_epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "kmeans_max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(self, n_clusters=100, *, patch_size=6, n_patches=5000, stride=1,
                 pooling=(2, 2), contrast_epsilon=10.0, whiten_epsilon=0.1,
                 kmeans_max_iter=10, random_state=0, n_jobs=None):
        self.n_clusters = n_clusters
        self.patch_size = patch_size
        self.n_patches = n_patches
        self.stride = stride
        self.pooling = pooling
        self.contrast_epsilon = contrast_epsilon
        self.whiten_epsilon = whiten_epsilon
        self.kmeans_max_iter = kmeans_max_iter
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        """Learn the whitening and the k-means dictionary from ``X``.

        Parameters
        ----------
        X : image batch
            Training images (see :mod:`featclf.io`), each at least
            ``patch_size`` pixels high and wide.
        y : ignored

        Returns
        -------
        self : KMeansPatches
        """
        self._validate_params()
        rows, cols = _pooling_grid(self.pooling)
        batch = as_image_batch(X)
        rng = check_random_state(self.random_state)
        patches = self._sample_patches(batch, rng)
        if len(patches) < self.n_clusters:  # pragma: no cover - n_patches >= 2 always
            raise ValueError("fewer patches than clusters")
        normalised = self._normalise(patches)
        mean = normalised.mean(axis=0)
        covariance = np.cov(normalised - mean, rowvar=False)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        scale = 1.0 / np.sqrt(np.clip(eigenvalues, 0, None) + self.whiten_epsilon)
        whitening = (eigenvectors * scale) @ eigenvectors.T
        whitened = (normalised - mean) @ whitening  # float64: fast k-means++ init
        kmeans = MiniBatchKMeans(
            n_clusters=self.n_clusters, batch_size=4096, max_iter=self.kmeans_max_iter,
            n_init=1, random_state=rng, compute_labels=False,
        ).fit(whitened)
        self.whiten_mean_ = mean.astype(np.float32)
        self.whiten_matrix_ = whitening.astype(np.float32)
        self.cluster_centers_ = kmeans.cluster_centers_.astype(np.float32)
        self.n_features_out_ = self.n_clusters * rows * cols
        return self

    def _sample_patches(self, batch, rng):
        """Draw ``n_patches`` random patches, uniform over images then positions."""
        size = self.patch_size
        image_index = np.sort(rng.randint(len(batch), size=self.n_patches))
        patches = []
        self.n_channels_ = None
        for index in np.unique(image_index):
            image = batch[int(index)]
            channels = 1 if image.ndim == 2 else image.shape[2]
            if self.n_channels_ is None:
                self.n_channels_ = channels
            elif channels != self.n_channels_:
                raise ValueError(f"{batch.name(int(index))} has {channels} channel(s), "
                                 f"image 0 has {self.n_channels_}")
            height, width = image.shape[:2]
            if height < size or width < size:
                raise ValueError(f"{batch.name(int(index))} is {height}x{width}, smaller "
                                 f"than patch_size={size}")
            count = int(np.sum(image_index == index))
            top = rng.randint(height - size + 1, size=count)
            left = rng.randint(width - size + 1, size=count)
            pixels = to_float(image) * 255.0
            patches.extend(pixels[t:t + size, l:l + size].ravel() for t, l in zip(top, left))
        return np.asarray(patches, dtype=np.float64)

    def _normalise(self, patches):
        """Per-patch brightness and contrast normalisation (rows are patches)."""
        centred = patches - patches.mean(axis=1, keepdims=True)
        variance = patches.var(axis=1, ddof=1, keepdims=True)
        return centred / np.sqrt(variance + self.contrast_epsilon)

    def _fit_first_image(self, image):  # pragma: no cover - fit is overridden
        raise NotImplementedError

    def _transform_chunk(self, images):
        check_is_fitted(self, "cluster_centers_")
        rows, cols = _pooling_grid(self.pooling)
        out = np.empty((len(images), self.n_features_out_), dtype=np.float32)
        centre_norms = np.einsum("kd,kd->k", self.cluster_centers_, self.cluster_centers_)
        for position, image in enumerate(images):
            channels = 1 if image.ndim == 2 else image.shape[2]
            if channels != self.n_channels_:
                raise ImageError(position, f"has {channels} channel(s); KMeansPatches was "
                                           f"fitted on {self.n_channels_}-channel images")
            if min(image.shape[:2]) < self.patch_size:
                raise ImageError(position, f"is {image.shape[0]}x{image.shape[1]}, smaller "
                                           f"than patch_size={self.patch_size}")
            out[position] = self._encode(image, rows, cols, centre_norms)
        return out

    def _encode(self, image, rows, cols, centre_norms):
        size, stride = self.patch_size, self.stride
        pixels = to_float(image) * np.float32(255.0)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        windows = sliding_window_view(pixels, (size, size), axis=(0, 1))[::stride, ::stride]
        grid_h, grid_w = windows.shape[:2]
        # (grid_h, grid_w, C, size, size) -> rows in (y, x, channel) order, as sampled
        patches = windows.transpose(0, 1, 3, 4, 2).reshape(grid_h * grid_w, -1)
        centred = patches - patches.mean(axis=1, keepdims=True)
        variance = patches.var(axis=1, ddof=1, keepdims=True)
        normalised = centred / np.sqrt(variance + np.float32(self.contrast_epsilon))
        whitened = (normalised - self.whiten_mean_) @ self.whiten_matrix_
        squared = (np.einsum("nd,nd->n", whitened, whitened)[:, None]
                   - 2.0 * (whitened @ self.cluster_centers_.T) + centre_norms)
        distances = np.sqrt(np.maximum(squared, 0.0))
        codes = np.maximum(distances.mean(axis=1, keepdims=True) - distances, 0.0)
        codes = codes.reshape(grid_h, grid_w, -1)
        row_edges = np.linspace(0, grid_h, rows + 1).round().astype(int)
        col_edges = np.linspace(0, grid_w, cols + 1).round().astype(int)
        pooled = [codes[r0:r1, c0:c1].sum(axis=(0, 1))
                  for r0, r1 in zip(row_edges[:-1], row_edges[1:])
                  for c0, c1 in zip(col_edges[:-1], col_edges[1:])]
        return np.concatenate(pooled)

    def _feature_names(self):
        rows, cols = _pooling_grid(self.pooling)
        return [f"{self._feature_prefix}_r{r}c{c}_k{k}"
                for r in range(rows) for c in range(cols) for k in range(self.n_clusters)]


def _pooling_grid(pooling):
    try:
        rows, cols = (int(v) for v in pooling)
    except (TypeError, ValueError):
        raise ValueError(f"pooling must be (rows, cols), got {pooling!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"pooling must be two positive ints, got {pooling!r}")
    return rows, cols
