"""Bag of visual words: descriptor sets to one fixed-length vector per image.

:class:`BagOfVisualWords` is the stateful step after a descriptor step
(:class:`~featclf.features.SIFT`, :class:`~featclf.features.DenseSIFT`):

1. ``fit`` draws a seeded sample of at most ``max_descriptors`` training
   descriptors, spread evenly over the images, optionally reduces them with
   PCA, and fits a vocabulary on the sample: k-means centres
   (:class:`~sklearn.cluster.MiniBatchKMeans`, k-means++ seeding, mini-batches
   of 4096, or full-batch Lloyd iterations with ``lloyd_iterations``) for
   the ``hard``, ``soft`` and ``vlad`` encodings, a diagonal
   Gaussian mixture (:class:`~sklearn.mixture.GaussianMixture`, k-means++
   seeding, EM, variances floored at ``GMM_VARIANCE_FLOOR`` times the mean
   sample variance) for ``fisher``. Nothing is
   fitted anywhere else, so inside ``cross_val_score`` or ``GridSearchCV``
   the vocabulary is refitted on each training fold (no leakage).
2. ``transform`` encodes each image's descriptors against the vocabulary and
   pools them over a spatial pyramid of keypoint positions.

Encodings (``K`` = ``n_words``, ``d`` = descriptor length after PCA):

``hard`` (Csurka et al. 2004)
    Each descriptor votes for its nearest word. ``K`` values per cell.
``soft`` (kernel codebook, van Gemert et al. 2010)
    Each descriptor spreads one vote over the words with Gaussian weights
    ``exp(-||x - c_k||^2 / (2 sigma^2))`` normalised to sum to one (the
    "codeword uncertainty" variant), optionally over its ``soft_neighbors``
    nearest words only. ``K`` values per cell.
``vlad`` (Jegou et al. 2010; Arandjelovic and Zisserman 2013)
    Sum of residuals ``x - c_k`` over the descriptors assigned to word
    ``k``; each word's residual sum is L2-normalised (intra-normalisation),
    then signed square root (``power_normalize``) and L2 normalisation.
    ``K * d`` values per cell.
``fisher`` (improved Fisher vector, Perronnin, Sanchez and Mensink 2010)
    Gradients of the log-likelihood with respect to the means and the
    variances of the diagonal mixture, with posteriors ``gamma_t(k)``::

        G_mu_k    = sum_t gamma_t(k) (x_t - mu_k) / sigma_k        / (T sqrt(w_k))
        G_sigma_k = sum_t gamma_t(k) ((x_t - mu_k)^2 / sigma_k^2 - 1) / (T sqrt(2 w_k))

    then signed square root (``power_normalize``) and L2 normalisation.
    ``2 * K * d`` values per cell (all mean gradients, then all variance
    gradients). As in VLFeat, posteriors below ``1e-4`` are skipped.

Spatial pyramid (Lazebnik, Schmid and Ponce 2006), for every encoding: level
``l`` in ``0..L`` splits the image into ``2^l x 2^l`` cells (cell index
``row * 2^l + column``), a descriptor belongs to the cell holding its
keypoint position, and level ``l`` is weighted ``1 / 2^L`` for ``l = 0`` and
``1 / 2^(L - l + 1)`` otherwise (:func:`pyramid_weights`). Histogram
encodings (``hard``, ``soft``) are divided by the image's descriptor count,
as in Lazebnik et al., so each level sums to one before weighting and the
whole vector sums to one. Vector encodings (``vlad``, ``fisher``) are
normalised per cell as above, each level's concatenation is scaled to unit
L2 norm and weighted, and the whole vector is L2-normalised, so level ``l``
keeps an L2 norm proportional to its weight. An image (or cell) with no
descriptors gives zeros.

Other grids (``spatial_grids``): any list of ``rows x columns`` grids, such
as Chatfield et al.'s (2011) ``1x1 + 2x2 + 3x1`` for Fisher vectors (the
``3x1`` grid is three horizontal bands), pooled and normalised as the
pyramid's levels, every grid with the same weight ``1 / n_grids``.
Statistics are accumulated once on the common refinement (least common
multiple of the row and of the column counts) and summed into each grid.

References
----------
G. Csurka, C. Dance, L. Fan, J. Willamowski, C. Bray. Visual categorization
with bags of keypoints. ECCV Workshop on Statistical Learning, 2004.

S. Lazebnik, C. Schmid, J. Ponce. Beyond bags of features: spatial pyramid
matching for recognizing natural scene categories. CVPR 2006.

J. C. van Gemert, C. J. Veenman, A. W. M. Smeulders, J.-M. Geusebroek.
Visual word ambiguity. IEEE TPAMI 32(7), 2010.

H. Jegou, M. Douze, C. Schmid, P. Perez. Aggregating local descriptors into
a compact image representation. CVPR 2010.

R. Arandjelovic, A. Zisserman. Three things everyone should know to
improve object retrieval. CVPR 2012 (RootSIFT).

R. Arandjelovic, A. Zisserman. All about VLAD. CVPR 2013.

K. Chatfield, V. Lempitsky, A. Vedaldi, A. Zisserman. The devil is in the
details: an evaluation of recent feature encoding methods. BMVC 2011.

F. Perronnin, J. Sanchez, T. Mensink. Improving the Fisher kernel for
large-scale image classification. ECCV 2010.
"""

import math
import numbers
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from .base import _one_thread_per_worker
from .features.descriptors import DescriptorSet
from .features.sift import root_sift as _root_sift

__all__ = ["BagOfVisualWords", "pyramid_weights"]

#: Posteriors below this are skipped when encoding Fisher vectors (VLFeat's
#: ``VL_GMM_MIN_POSTERIOR``): they change the vector by far less than float32
#: precision and would make the accumulation dense.
FISHER_MIN_POSTERIOR = 1e-4

#: Lower bound on the mixture's variances, relative to the mean variance of
#: the training sample (added to every variance, as GaussianMixture's
#: ``reg_covar``).
GMM_VARIANCE_FLOOR = 1e-3

_ENCODINGS = ("hard", "soft", "vlad", "fisher")


def pyramid_weights(levels):
    """Return the spatial pyramid level weights of Lazebnik et al. (2006).

    Parameters
    ----------
    levels : int
        The finest level ``L`` (0 = no pyramid, the whole image only).

    Returns
    -------
    weights : ndarray of shape (levels + 1,), dtype float64
        ``1 / 2^L`` for level 0 and ``1 / 2^(L - l + 1)`` for level ``l >= 1``;
        they sum to one.
    """
    levels = int(levels)
    if levels < 0:
        raise ValueError(f"pyramid levels must be >= 0, got {levels}")
    weights = [1.0 / 2**levels] + [1.0 / 2 ** (levels - l + 1) for l in range(1, levels + 1)]
    return np.asarray(weights, dtype=np.float64)


class BagOfVisualWords(TransformerMixin, BaseEstimator):
    """Encode each image's local descriptors as one fixed-length vector.

    Takes the output of a descriptor step (a list with one
    :class:`~featclf.features.DescriptorSet` per image) and returns a float32
    matrix. See the module documentation for the encodings, the spatial
    pyramid and the normalisation.

    Parameters
    ----------
    n_words : int, default=200
        Vocabulary size ``K``: k-means centres, or Gaussians for ``fisher``.
    encoding : {"hard", "soft", "vlad", "fisher"}, default="hard"
        How descriptors are encoded against the vocabulary.
    pyramid_levels : int, default=0
        Finest spatial pyramid level ``L``; 0 pools over the whole image.
        The output has ``sum_l 4^l`` cells (1, 5, 21 for L = 0, 1, 2).
    spatial_grids : sequence of (int, int) or None, default=None
        Pool over these grids of ``(rows, columns)`` cells instead of the
        Lazebnik pyramid, e.g. ``((1, 1), (2, 2), (3, 1))``, the layout
        Chatfield et al. (2011) use for Fisher vectors and VLAD (three
        horizontal bands). Every grid gets the same weight. Needs
        ``pyramid_levels=0``.
    lloyd_iterations : int or None, default=None
        ``None`` fits the k-means vocabulary with
        :class:`~sklearn.cluster.MiniBatchKMeans` (fast; its early stopping
        often ends after a few passes over the sample). An int runs
        full-batch Lloyd k-means (:class:`~sklearn.cluster.KMeans`,
        k-means++ seeding, one initialisation) for at most that many
        iterations: lower distortion for a few times the fit cost (on
        15-Scene, 20 iterations lift the 400-word spatial pyramid by about
        one point). Not used by ``fisher``.
    max_descriptors : int, default=100_000
        At most this many training descriptors (a seeded sample, spread
        evenly over the images) are used to fit the vocabulary.
    soft_sigma : float or None, default=None
        Kernel width of the ``soft`` encoding, in descriptor units. ``None``
        sets it at fit time (``sigma_``) so that, for the median sampled
        descriptor, the second-nearest word gets half the weight of the
        nearest.
    soft_neighbors : int or None, default=None
        For ``soft``: spread each vote over this many nearest words only
        (localised soft assignment); ``None`` uses every word.
    root_sift : bool, default=False
        Map every descriptor to RootSIFT (:func:`featclf.features.root_sift`:
        L1 normalisation and element-wise square root, Arandjelovic and
        Zisserman 2012) before PCA and the vocabulary, at fit and transform
        alike. Doing it here rather than in the descriptor step lets the
        descriptors be stored quantised (uint8 SIFT) and mapped a block at a
        time. Descriptors must be non-negative (SIFT-like).
    pca_components : int or None, default=None
        Reduce descriptors to this many dimensions with PCA (fitted on the
        training sample) before the vocabulary; Perronnin et al. (2010) use
        64 for Fisher vectors of SIFT.
    power_normalize : bool, default=True
        Signed square root of ``vlad`` and ``fisher`` vectors before their
        L2 normalisation. Histogram encodings stay L1-normalised (use an
        additive kernel, see :mod:`featclf.kernels`).
    batch_size : int, default=50_000
        Descriptors per block while encoding; a block holds about
        ``batch_size * n_words`` floats of distances or posteriors (images
        are never split, so one large image may exceed it).
    random_state : int, RandomState instance or None, default=None
        Seeds the descriptor sample, PCA, k-means and the mixture.
    n_jobs : int or None, default=None
        Cores to use (joblib's meaning): ``transform`` encodes blocks in
        that many threads with one BLAS thread each; ``fit`` limits the
        BLAS/OpenMP threads of PCA, k-means and the mixture to that many, so
        the step never oversubscribes a shared machine.

    Attributes
    ----------
    codebook_ : ndarray of shape (n_words, d), dtype float32
        The visual words (k-means centres, or the mixture means for
        ``fisher``), in the PCA space when ``pca_components`` is set.
    gmm_weights_ : ndarray of shape (n_words,)
        Mixture weights (``fisher`` only).
    gmm_variances_ : ndarray of shape (n_words, d)
        Diagonal variances of the mixture (``fisher`` only).
    pca_ : PCA or None
        The fitted PCA, or None without ``pca_components``.
    sigma_ : float or None
        Kernel width used by ``soft``; None for the other encodings.
    n_descriptor_dims_ : int
        Descriptor length seen at fit (before PCA).
    n_training_descriptors_ : int
        Number of sampled descriptors the vocabulary was fitted on.
    n_features_out_ : int
        Output width: cells x ``K`` (hard, soft), cells x ``K * d`` (vlad),
        cells x ``2 * K * d`` (fisher).

    See Also
    --------
    featclf.kernels : histogram intersection and chi-squared kernels.

    Notes
    -----
    Encoding is vectorised over all descriptors of a block of images:
    nearest words come from matrix products
    (``||x||^2 - 2 x . c + ||c||^2``), histograms from one ``bincount`` with
    per-(image, cell) offsets, and residual / gradient sums from one sparse
    matrix product. Statistics are accumulated on the finest pyramid level
    and summed into the coarser cells.

    Examples
    --------
    >>> import numpy as np
    >>> from featclf.encoding import BagOfVisualWords
    >>> from featclf.features import DescriptorSet
    >>> rng = np.random.default_rng(0)
    >>> sets = [
    ...     DescriptorSet(
    ...         rng.random((50, 8), dtype=np.float32),
    ...         rng.uniform(0, 32, (50, 2)).astype(np.float32),
    ...         np.full(50, 8, np.float32),
    ...         (32, 32),
    ...     )
    ...     for _ in range(4)
    ... ]
    >>> bovw = BagOfVisualWords(n_words=5, pyramid_levels=1, random_state=0)
    >>> bovw.fit_transform(sets).shape
    (4, 25)
    """

    _parameter_constraints = {
        "n_words": [Interval(numbers.Integral, 1, None, closed="left")],
        "encoding": [StrOptions(set(_ENCODINGS))],
        "pyramid_levels": [Interval(numbers.Integral, 0, None, closed="left")],
        "spatial_grids": ["array-like", None],
        "lloyd_iterations": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "max_descriptors": [Interval(numbers.Integral, 1, None, closed="left")],
        "soft_sigma": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "soft_neighbors": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "root_sift": ["boolean"],
        "pca_components": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "power_normalize": ["boolean"],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(
        self,
        n_words=200,
        *,
        encoding="hard",
        pyramid_levels=0,
        spatial_grids=None,
        lloyd_iterations=None,
        max_descriptors=100_000,
        soft_sigma=None,
        soft_neighbors=None,
        root_sift=False,
        pca_components=None,
        power_normalize=True,
        batch_size=50_000,
        random_state=None,
        n_jobs=None,
    ):
        self.n_words = n_words
        self.encoding = encoding
        self.pyramid_levels = pyramid_levels
        self.spatial_grids = spatial_grids
        self.lloyd_iterations = lloyd_iterations
        self.max_descriptors = max_descriptors
        self.soft_sigma = soft_sigma
        self.soft_neighbors = soft_neighbors
        self.root_sift = root_sift
        self.pca_components = pca_components
        self.power_normalize = power_normalize
        self.batch_size = batch_size
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Fit the vocabulary on a seeded sample of the training descriptors.

        Parameters
        ----------
        X : sequence of DescriptorSet, length n_images
            One descriptor set per image (the output of ``SIFT`` or
            ``DenseSIFT``); all sets must share the descriptor length ``d``.
            Descriptors of any real dtype are accepted and converted to
            float32 a block at a time, so sets may hold uint8-quantised
            SIFT (``round(512 x)``, as OpenCV stores it) to save memory.
        y : ignored
            Present for pipeline compatibility.

        Returns
        -------
        self : BagOfVisualWords
            The fitted encoder.
        """
        self._validate_params()
        self._grids()  # validates spatial_grids
        n_dims = _check_descriptor_sets(X)
        with threadpool_limits(effective_n_jobs(self.n_jobs)):
            self._fit_vocabulary(X, n_dims)
        return self

    def _fit_vocabulary(self, X, n_dims):
        rng = check_random_state(self.random_state)
        sample = _sample_descriptors(X, self.max_descriptors, rng)
        if len(sample) < self.n_words:
            raise ValueError(
                f"BagOfVisualWords: only {len(sample)} training descriptors "
                f"(from {len(X)} images) to fit n_words={self.n_words} words; "
                "lower n_words or give more (or denser) descriptors; a dense "
                "descriptor step gives none for images smaller than its patch"
            )
        if not np.isfinite(sample).all():
            raise ValueError("BagOfVisualWords: training descriptors contain NaN or infinity")
        if self.root_sift:
            if (sample < 0).any():
                raise ValueError(
                    "BagOfVisualWords: root_sift=True needs non-negative descriptors "
                    "(SIFT histograms); the training descriptors have negative values"
                )
            sample = _root_sift(sample)

        self.pca_ = None
        if self.pca_components is not None:
            if self.pca_components > min(n_dims, len(sample)):
                raise ValueError(
                    f"pca_components={self.pca_components} exceeds the descriptor "
                    f"length {n_dims} (or the {len(sample)} sampled descriptors)"
                )
            self.pca_ = PCA(self.pca_components, random_state=_seed(rng)).fit(sample)
            sample = self.pca_.transform(sample).astype(np.float32)

        self.sigma_ = None
        self.gmm_weights_ = self.gmm_variances_ = None
        if self.encoding == "fisher":
            sample64 = sample.astype(np.float64)
            # variance floor relative to the data (as VLFeat's vl_gmm): dense
            # SIFT repeats the all-zero descriptor of flat patches, and a
            # Gaussian collapsing on those copies would have zero variance
            floor = GMM_VARIANCE_FLOOR * float(sample64.var(axis=0).mean())
            gmm = GaussianMixture(
                self.n_words,
                covariance_type="diag",
                init_params="k-means++",
                reg_covar=max(floor, 1e-6),
                random_state=_seed(rng),
                max_iter=100,
            ).fit(sample64)
            self.codebook_ = gmm.means_.astype(np.float32)
            self.gmm_weights_ = gmm.weights_.astype(np.float64)
            self.gmm_variances_ = gmm.covariances_.astype(np.float64)
        else:
            if self.lloyd_iterations is None:
                kmeans = MiniBatchKMeans(
                    self.n_words, batch_size=4096, n_init=1, random_state=_seed(rng)
                )
            else:
                kmeans = KMeans(
                    self.n_words,
                    n_init=1,
                    max_iter=self.lloyd_iterations,
                    random_state=_seed(rng),
                )
            kmeans.fit(sample)
            self.codebook_ = kmeans.cluster_centers_.astype(np.float32)
            if self.encoding == "soft":
                self.sigma_ = (
                    float(self.soft_sigma)
                    if self.soft_sigma is not None
                    else _median_gap_sigma(sample, self.codebook_)
                )

        self.n_descriptor_dims_ = n_dims
        self.n_training_descriptors_ = len(sample)
        self.n_features_out_ = len(self._cell_names()) * self._values_per_cell()

    # ------------------------------------------------------------ transform
    def transform(self, X):
        """Encode each image's descriptors.

        Parameters
        ----------
        X : sequence of DescriptorSet, length n_images
            One descriptor set per image, with the descriptor length seen at
            fit. Sets with no descriptors are allowed (zero vector).

        Returns
        -------
        Xt : ndarray of shape (n_images, n_features_out_), dtype float32
            The encoded images (see the class documentation for the layout).
        """
        check_is_fitted(self)
        _check_descriptor_sets(X, n_dims=self.n_descriptor_dims_)
        blocks = _blocks(X, self.batch_size)
        n_jobs = effective_n_jobs(self.n_jobs)
        if n_jobs == 1 or len(blocks) == 1:
            with threadpool_limits(n_jobs):
                parts = [self._encode_block(X, start, stop) for start, stop in blocks]
        else:
            with _one_thread_per_worker():
                parts = Parallel(n_jobs=n_jobs, prefer="threads")(
                    delayed(self._encode_block)(X, start, stop) for start, stop in blocks
                )
        return np.concatenate(parts, axis=0)

    def get_feature_names_out(self, input_features=None):
        """Return the names of the output features.

        Parameters
        ----------
        input_features : ignored
            Descriptor sets have no feature names.

        Returns
        -------
        feature_names_out : ndarray of str, shape (n_features_out_,)
            ``bovw_l{level}_c{cell}_w{word}`` (hard, soft),
            ``vlad_l{level}_c{cell}_w{word}_d{dim}`` (vlad),
            ``fisher_l{level}_c{cell}_g{gaussian}_{mean|var}_d{dim}`` (fisher);
            with ``spatial_grids`` the ``l{level}`` part reads
            ``g{rows}x{columns}``.
        """
        check_is_fitted(self)
        K, d = self.codebook_.shape
        names = []
        for cell in self._cell_names():
            if self.encoding in ("hard", "soft"):
                names.extend(f"bovw_{cell}_w{k}" for k in range(K))
            elif self.encoding == "vlad":
                names.extend(f"vlad_{cell}_w{k}_d{j}" for k in range(K) for j in range(d))
            else:
                for part in ("mean", "var"):
                    names.extend(
                        f"fisher_{cell}_g{k}_{part}_d{j}" for k in range(K) for j in range(d)
                    )
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        return tags

    # ------------------------------------------------------------ internals
    def _grids(self):
        """The pooling grids as a list of (rows, columns), coarse first."""
        if self.spatial_grids is None:
            return [(2**level, 2**level) for level in range(self.pyramid_levels + 1)]
        if self.pyramid_levels != 0:
            raise ValueError(
                f"BagOfVisualWords: give either pyramid_levels "
                f"(got {self.pyramid_levels}) or spatial_grids, not both "
                "(set pyramid_levels=0 with spatial_grids)"
            )
        grids = []
        for grid in self.spatial_grids:
            grid = tuple(grid) if isinstance(grid, (Sequence, np.ndarray)) else (grid,)
            if len(grid) != 2 or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
                for v in grid
            ):
                raise ValueError(
                    "BagOfVisualWords: spatial_grids must be (rows, columns) pairs of "
                    f"positive integers, e.g. ((1, 1), (2, 2), (3, 1)); got {grid!r}"
                )
            grids.append((int(grid[0]), int(grid[1])))
        if not grids:
            raise ValueError("BagOfVisualWords: spatial_grids must hold at least one grid")
        return grids

    def _grid_weights(self):
        """Weight of each grid: Lazebnik's for the pyramid, equal otherwise."""
        if self.spatial_grids is None:
            return pyramid_weights(self.pyramid_levels)
        n_grids = len(self._grids())
        return np.full(n_grids, 1.0 / n_grids)

    def _cell_names(self):
        if self.spatial_grids is None:
            return [
                f"l{level}_c{cell}"
                for level in range(self.pyramid_levels + 1)
                for cell in range(4**level)
            ]
        return [
            f"g{rows}x{cols}_c{cell}"
            for rows, cols in self._grids()
            for cell in range(rows * cols)
        ]

    def _values_per_cell(self):
        K, d = self.codebook_.shape
        return {"hard": K, "soft": K, "vlad": K * d, "fisher": 2 * K * d}[self.encoding]

    def _encode_block(self, X, start, stop):
        """Encode images ``start:stop`` of ``X``: (stop - start, n_features_out_)."""
        sets = X[start:stop]
        n_images = len(sets)
        counts = np.asarray([len(s) for s in sets], dtype=np.int64)
        out = np.zeros((n_images, self.n_features_out_), dtype=np.float32)
        if counts.sum() == 0:
            return out
        desc = np.concatenate([s.descriptors for s in sets]).astype(np.float32, copy=False)
        if not np.isfinite(desc).all():
            bad = int(np.repeat(np.arange(n_images), counts)[~np.isfinite(desc).all(axis=1)][0])
            raise ValueError(
                f"BagOfVisualWords: image {start + bad} has NaN or infinite descriptors"
            )
        if self.root_sift:
            negative = (desc < 0).any(axis=1)
            if negative.any():
                bad = int(np.repeat(np.arange(n_images), counts)[negative][0])
                raise ValueError(
                    f"BagOfVisualWords: image {start + bad} has negative descriptors; "
                    "root_sift=True needs non-negative (SIFT-like) descriptors"
                )
            desc = _root_sift(desc)
        if self.pca_ is not None:
            desc = self.pca_.transform(desc).astype(np.float32, copy=False)
        grids = self._grids()
        # finest grid: every pooling grid is a union of its cells
        rows = math.lcm(*(r for r, _ in grids))
        cols = math.lcm(*(c for _, c in grids))
        # one group per (image, finest cell), row-major cells
        group = np.repeat(np.arange(n_images) * rows * cols, counts)
        group += _finest_cells(sets, rows, cols)
        n_groups = n_images * rows * cols

        encode = getattr(self, f"_finest_{self.encoding}")
        finest = encode(desc, group, n_groups)  # arrays of shape (n_groups, ...)
        finest = {
            key: value.reshape((n_images, rows, cols) + value.shape[1:])
            for key, value in finest.items()
        }
        levels = []
        for (grid_rows, grid_cols), weight in zip(grids, self._grid_weights()):
            pooled = {key: _pool(value, grid_rows, grid_cols) for key, value in finest.items()}
            if self.encoding in ("hard", "soft"):
                per_count = np.maximum(counts, 1).reshape(-1, 1, 1)
                levels.append(pooled["votes"] * (weight / per_count))
            else:
                cells = getattr(self, f"_normalise_{self.encoding}")(pooled)
                cells = cells.reshape(n_images, -1)
                levels.append(_l2_normalise(cells) * weight)
        vectors = np.concatenate([lv.reshape(n_images, -1) for lv in levels], axis=1)
        if self.encoding in ("vlad", "fisher"):
            vectors = _l2_normalise(vectors)
        out[:] = vectors
        return out

    # Per-encoding statistics summed over each finest cell.
    def _finest_hard(self, desc, group, n_groups):
        K = len(self.codebook_)
        words = _nearest_words(desc, self.codebook_)
        votes = np.bincount(group * K + words, minlength=n_groups * K)
        return {"votes": votes.reshape(n_groups, K).astype(np.float64)}

    def _finest_soft(self, desc, group, n_groups):
        K = len(self.codebook_)
        sq_dist = _squared_distances(desc, self.codebook_)
        if self.soft_neighbors is not None and self.soft_neighbors < K:
            words = np.argpartition(sq_dist, self.soft_neighbors - 1, axis=1)
            words = words[:, : self.soft_neighbors]
            sq_dist = np.take_along_axis(sq_dist, words, axis=1)
        else:
            words = np.broadcast_to(np.arange(K), sq_dist.shape)
        # subtract each row's minimum first: exp cannot underflow to all zeros
        sq_dist = sq_dist - sq_dist.min(axis=1, keepdims=True)
        kernel = np.exp(-sq_dist / (2.0 * self.sigma_**2))
        kernel /= kernel.sum(axis=1, keepdims=True)
        index = group[:, None] * K + words
        votes = np.bincount(index.ravel(), weights=kernel.ravel(), minlength=n_groups * K)
        return {"votes": votes.reshape(n_groups, K)}

    def _finest_vlad(self, desc, group, n_groups):
        K, d = self.codebook_.shape
        words = _nearest_words(desc, self.codebook_)
        rows = group * K + words
        count = np.bincount(rows, minlength=n_groups * K).astype(np.float64)
        total = _sum_rows_by_index(rows, np.ones(len(rows)), desc, n_groups * K)
        return {"count": count.reshape(n_groups, K), "sum": total.reshape(n_groups, K, d)}

    def _finest_fisher(self, desc, group, n_groups):
        K, d = self.codebook_.shape
        posteriors = _gmm_posteriors(
            desc, self.codebook_, self.gmm_variances_, self.gmm_weights_
        )
        point, word = np.nonzero(posteriors >= FISHER_MIN_POSTERIOR)
        gamma = posteriors[point, word]
        rows = group[point] * K + word
        desc64 = desc.astype(np.float64)
        # zeroth, first and second order statistics per (image, cell, gaussian)
        s0 = np.bincount(rows, weights=gamma, minlength=n_groups * K)
        s1 = _sum_rows_by_index(rows, gamma, desc64, n_groups * K, columns=point)
        s2 = _sum_rows_by_index(rows, gamma, desc64**2, n_groups * K, columns=point)
        n_points = np.bincount(group, minlength=n_groups).astype(np.float64)
        return {
            "n": n_points,
            "s0": s0.reshape(n_groups, K),
            "s1": s1.reshape(n_groups, K, d),
            "s2": s2.reshape(n_groups, K, d),
        }

    # Per-cell vectors from pooled statistics: shape (n_images, cells, ...).
    def _normalise_vlad(self, pooled):
        centres = self.codebook_.astype(np.float64)
        residuals = pooled["sum"] - pooled["count"][..., None] * centres
        residuals = _l2_normalise(residuals)  # intra-normalisation, per word
        return self._power_l2(residuals)

    def _normalise_fisher(self, pooled):
        mean = self.codebook_.astype(np.float64)
        var = self.gmm_variances_
        w = self.gmm_weights_[:, None]
        s0, s1, s2 = pooled["s0"][..., None], pooled["s1"], pooled["s2"]
        n = np.maximum(pooled["n"], 1.0)[..., None, None]
        std = np.sqrt(var)
        grad_mean = (s1 - mean * s0) / std / (n * np.sqrt(w))
        centred_sq = s2 - 2.0 * mean * s1 + mean**2 * s0
        grad_var = (centred_sq / var - s0) / (n * np.sqrt(2.0 * w))
        shape = grad_mean.shape[:-2] + (-1,)
        vectors = np.concatenate([grad_mean.reshape(shape), grad_var.reshape(shape)], axis=-1)
        return self._power_l2(vectors)

    def _power_l2(self, cells):
        """Signed square root (if enabled) and L2 per cell: (n, cells, ...)."""
        n_images, n_cells = cells.shape[:2]
        cells = cells.reshape(n_images, n_cells, -1)
        if self.power_normalize:
            cells = np.sign(cells) * np.sqrt(np.abs(cells))
        return _l2_normalise(cells)


# ------------------------------------------------------------------ helpers
def _check_descriptor_sets(X, n_dims=None):
    """Validate a batch of descriptor sets and return their descriptor length."""
    hint = (
        "BagOfVisualWords takes a list with one DescriptorSet per image, the "
        "output of a descriptor step such as featclf.features.DenseSIFT or SIFT "
        "(put one before it in the pipeline)"
    )
    if isinstance(X, DescriptorSet):
        raise TypeError(f"{hint}; got a single DescriptorSet, wrap it in a list")
    if sp.issparse(X):
        raise TypeError(f"{hint}; got a sparse {type(X).__name__}: sparse input is not supported")
    if isinstance(X, np.ndarray) or not isinstance(X, Sequence) or isinstance(X, str):
        shape = f" of shape {X.shape}" if hasattr(X, "shape") else ""
        raise TypeError(f"{hint}; got {type(X).__name__}{shape}")
    if len(X) == 0:
        raise ValueError("BagOfVisualWords: got an empty batch (0 descriptor sets)")
    for index, item in enumerate(X):
        if not isinstance(item, DescriptorSet):
            raise TypeError(f"{hint}; item {index} is a {type(item).__name__}")
        dims = item.descriptors.shape[1]
        if n_dims is None:
            n_dims = dims
        elif dims != n_dims:
            raise ValueError(
                f"BagOfVisualWords: image {index} has {dims}-dimensional "
                f"descriptors, expected {n_dims} (the length of the first set at fit)"
            )
    return n_dims


def _seed(rng):
    return int(rng.randint(np.iinfo(np.int32).max))


def _sample_descriptors(X, max_descriptors, rng):
    """Seeded sample of at most ``max_descriptors`` rows, even over images.

    Each image gives ``min(n_i, q)`` descriptors with the largest ``q`` that
    fits the budget; the few left-over places go to randomly chosen images
    that still have descriptors. Returns float32 (m, d).
    """
    counts = np.asarray([len(s) for s in X], dtype=np.int64)
    if counts.sum() <= max_descriptors:
        quota = counts
    else:
        low, high = 0, int(counts.max())
        while low < high:  # largest q with sum(min(n_i, q)) <= budget
            mid = (low + high + 1) // 2
            if np.minimum(counts, mid).sum() <= max_descriptors:
                low = mid
            else:
                high = mid - 1
        quota = np.minimum(counts, low)
        spare = max_descriptors - int(quota.sum())
        room = np.flatnonzero(counts > quota)
        quota[rng.choice(room, size=min(spare, len(room)), replace=False)] += 1
    rows = []
    for item, n, q in zip(X, counts, quota):
        if q == n:
            rows.append(item.descriptors)
        elif q > 0:
            rows.append(item.descriptors[np.sort(rng.choice(n, size=q, replace=False))])
    if not rows:
        return np.zeros((0, X[0].descriptors.shape[1]), np.float32)
    return np.concatenate(rows).astype(np.float32, copy=False)


def _blocks(X, batch_size):
    """Split image indices into consecutive blocks of about batch_size descriptors."""
    counts = np.asarray([len(s) for s in X], dtype=np.int64)
    blocks, start, total = [], 0, 0
    for index, n in enumerate(counts):
        if index > start and total + n > batch_size:
            blocks.append((start, index))
            start, total = index, 0
        total += n
    blocks.append((start, len(X)))
    return blocks


def _finest_cells(sets, rows, cols):
    """Row-major cell index on a rows x cols grid for every descriptor."""
    cells = []
    for item in sets:
        if len(item) == 0:
            continue
        height, width = item.image_shape
        column = np.floor(item.positions[:, 0] * (cols / width)).astype(np.int64)
        row = np.floor(item.positions[:, 1] * (rows / height)).astype(np.int64)
        np.clip(column, 0, cols - 1, out=column)
        np.clip(row, 0, rows - 1, out=row)
        cells.append(row * cols + column)
    return np.concatenate(cells)


def _pool(finest, rows, cols):
    """Sum (n, R, C, ...) finest-cell statistics into (n, rows*cols, ...) cells.

    ``rows`` must divide ``R`` and ``cols`` divide ``C``; cells are row-major.
    """
    n, full_rows, full_cols = finest.shape[:3]
    rest = finest.shape[3:]
    shape = (n, rows, full_rows // rows, cols, full_cols // cols) + rest
    pooled = finest.reshape(shape).sum(axis=(2, 4))
    return pooled.reshape((n, rows * cols) + rest)


def _squared_distances(desc, centres):
    """(n, K) squared distances via ||x||^2 - 2 x.c + ||c||^2, clipped at 0."""
    sq = np.einsum("ij,ij->i", desc, desc)[:, None] - 2.0 * (desc @ centres.T)
    sq += np.einsum("ij,ij->i", centres, centres)[None, :]
    return np.maximum(sq, 0.0)


def _nearest_words(desc, centres):
    """Index of the nearest centre for each row (ties go to the first)."""
    half_sq_norms = 0.5 * np.einsum("ij,ij->i", centres, centres)
    return np.argmin(half_sq_norms[None, :] - desc @ centres.T, axis=1)


def _median_gap_sigma(sample, centres):
    """Kernel width giving the second-nearest word half the nearest's weight."""
    sq = _squared_distances(sample.astype(np.float64), centres.astype(np.float64))
    if sq.shape[1] < 2:
        return float(np.sqrt(np.median(sq[:, 0])) or 1.0)
    two = np.partition(sq, 1, axis=1)[:, :2]
    gap = float(np.median(two[:, 1] - two[:, 0]))
    return float(np.sqrt(gap / (2.0 * np.log(2.0)))) if gap > 0 else 1.0


def _gmm_posteriors(desc, means, variances, weights):
    """(n, K) posteriors of a diagonal Gaussian mixture, via matrix products."""
    x = desc.astype(np.float64)
    precision = 1.0 / variances
    log_prob = -0.5 * (
        (x**2) @ precision.T
        - 2.0 * x @ (means * precision).T
        + np.sum(means**2 * precision, axis=1)
    )
    log_prob += np.log(weights) - 0.5 * np.sum(np.log(2.0 * np.pi * variances), axis=1)
    log_prob -= log_prob.max(axis=1, keepdims=True)
    post = np.exp(log_prob)
    post /= post.sum(axis=1, keepdims=True)
    return post


def _sum_rows_by_index(rows, weights, values, n_rows, columns=None):
    """out[r] = sum of weights[i] * values[columns[i]] over i with rows[i] == r.

    One sparse (n_rows, len(values)) matrix product; ``columns`` defaults to
    ``arange(len(rows))``. Returns float64 (n_rows, values.shape[1]).
    """
    if columns is None:
        columns = np.arange(len(rows))
    matrix = sp.csr_array(
        (np.asarray(weights, np.float64), (rows, columns)), shape=(n_rows, len(values))
    )
    return np.asarray(matrix @ values.astype(np.float64, copy=False))


def _l2_normalise(vectors):
    """L2-normalise along the last axis; zero vectors stay zero."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)
