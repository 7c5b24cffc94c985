"""The base class every featclf image step builds on.

A step subclasses :class:`ImageTransformer` and implements
``_transform_chunk(images)``, which receives a list of validated images (see
:mod:`featclf.io`; steps that set ``_chunk_as_stack`` get an ndarray view of
the batch instead when the batch is a stack) and returns either a float32
feature matrix (fixed-length extractors), a list of images (preprocessing) or
a list of descriptor sets.
The base class does the rest the same way for every step: input validation,
splitting the batch into chunks (so paths are decoded and features computed
a chunk at a time), running chunks in parallel with joblib's ``n_jobs``
meaning, limiting OpenCV and BLAS threads inside workers, and naming the
failing image when a chunk raises.

Parallel runs start only where they pay: an in-memory batch gets at most one
job per ``_min_pixels_per_job`` pixels (a small batch runs in the calling
thread), and with joblib's threading backend (the default for steps that
prefer threads, whose numpy/OpenCV work releases the GIL) the chunks go to a
plain ``concurrent.futures`` thread pool, which starts in about 0.1 ms where
``joblib.Parallel`` takes milliseconds. Any other active joblib backend
(``joblib.parallel_config(backend=...)``) gets the chunks through
``joblib.Parallel`` as before.
"""

import functools
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from joblib.parallel import ThreadingBackend, get_active_backend
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from .io import as_image_batch, stack_if_uniform

__all__ = ["ImageTransformer", "FeatureExtractor", "ImageError"]


class ImageTransformer(TransformerMixin, BaseEstimator):
    """Base class for featclf steps whose input is an image batch.

    Subclasses set ``_output`` to ``"images"``, ``"features"`` or
    ``"descriptors"`` and implement ``_transform_chunk``. Stateless steps
    need no ``fit`` of their own: the base ``fit`` validates the batch type
    and calls ``_fit_first_image`` with the first image, where a step can
    record what it must know (for example the image shape).
    """

    _output = "images"
    #: joblib ``prefer``: "threads" where the work releases the GIL.
    _parallel_prefer = "threads"
    #: images per chunk when n_jobs == 1 (bounds memory for path batches).
    _chunk_size = 256
    #: in-memory pixels (all channels) each parallel job needs at least
    #: (2**20: about 5 ms of HOG, 10 ms of LBP); smaller batches use fewer
    #: jobs, down to one: no start-up cost and no GIL hand-offs, which cost
    #: more than they gain on a few milliseconds of work.
    _min_pixels_per_job = 1 << 20
    #: pass ``_transform_chunk`` a stack (a view of the batch) instead of a
    #: list when the batch is a stack; such a step bounds its own working
    #: memory, so a stack is not split into chunks beyond one per job.
    _chunk_as_stack = False

    def fit(self, X, y=None):
        """Check the input and record what ``transform`` needs.

        Parameters
        ----------
        X : image batch
            See :mod:`featclf.io` for accepted forms.
        y : ignored
            Present for pipeline compatibility.

        Returns
        -------
        self : object
            The fitted step.
        """
        self._validate_params()
        batch = as_image_batch(X)
        self._fit_first_image(_load_one(batch, 0))
        self.is_fitted_ = True
        return self

    def _fit_first_image(self, image):
        """Record what ``transform`` needs from the first image (hook)."""

    def transform(self, X):
        """Apply the step to every image of ``X``.

        Parameters
        ----------
        X : image batch
            See :mod:`featclf.io` for accepted forms.

        Returns
        -------
        Xt : ndarray or list
            For extractors, a float32 ndarray of shape
            ``(n_images, n_features)``; for preprocessing, images (a stack
            when they share a shape); for descriptor steps, a list of
            :class:`~featclf.features.DescriptorSet`.
        """
        check_is_fitted(self)
        batch = as_image_batch(X)
        results = _map_chunks(self, batch)
        if self._output == "features":
            only = results[0]
            if len(results) == 1 and only.flags.owndata and only.flags.writeable:
                # no copy: writing a fresh output costs as much as fast extractors' work
                return only.astype(np.float32, copy=False)
            return np.concatenate(results, axis=0).astype(np.float32, copy=False)
        flat = [item for chunk in results for item in chunk]
        if self._output == "images":
            return stack_if_uniform(flat)
        return flat

    def _transform_chunk(self, images):  # pragma: no cover - abstract
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.input_tags.three_d_array = True
        return tags


class FeatureExtractor(ImageTransformer):
    """Base class for fixed-length extractors: images to a float32 matrix.

    Subclasses implement ``_transform_chunk`` returning an array of shape
    ``(len(images), n_features)`` and ``_feature_names()`` returning the
    ``n_features`` names; ``n_features_out_`` is set at fit time by calling
    ``_transform_chunk`` on the first image.
    """

    _output = "features"
    _feature_prefix = "feature"

    def _fit_first_image(self, image):
        self.n_features_out_ = int(self._transform_chunk([image]).shape[1])

    def get_feature_names_out(self, input_features=None):
        """Return the names of the output features.

        Parameters
        ----------
        input_features : ignored
            Image input has no feature names.

        Returns
        -------
        feature_names_out : ndarray of str, shape (n_features_out_,)
            Descriptive names, prefixed by the extractor's name.
        """
        check_is_fitted(self)
        names = self._feature_names()
        return np.asarray(names, dtype=object)

    def _feature_names(self):
        prefix = self._feature_prefix
        return [f"{prefix}{i}" for i in range(self.n_features_out_)]


def _load_one(batch, index):
    try:
        return batch[index]
    except (OSError, ValueError) as exc:
        raise type(exc)(f"{batch.name(index)}: {exc}") from exc


def _chunk_bounds(n_images, n_jobs, chunk_size):
    n_chunks = max(n_jobs, -(-n_images // chunk_size))
    n_chunks = min(n_chunks, n_images)
    if n_chunks == 0:
        return []
    # plain ints: np.linspace costs ~6 us, a share of a small batch's work
    edges = [n_images * k // n_chunks for k in range(n_chunks + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _useful_jobs(step, batch, n_jobs):
    """How many of ``n_jobs`` jobs have enough work (see ``_min_pixels_per_job``).

    File paths are decoded in the jobs, which is work enough: all jobs.
    """
    if n_jobs == 1 or batch.is_paths:
        return n_jobs
    if isinstance(batch.items, np.ndarray):
        pixels = batch.items.size
    else:
        pixels = sum(image.size for image in batch.items)
    return int(max(1, min(n_jobs, pixels // step._min_pixels_per_job)))


def _map_chunks(step, batch):
    n_jobs = effective_n_jobs(getattr(step, "n_jobs", None))
    n_jobs = _useful_jobs(step, batch, n_jobs)
    chunk_size = step._chunk_size
    if step._chunk_as_stack and isinstance(batch.items, np.ndarray):
        chunk_size = len(batch)  # in memory already: chunks only for the jobs
    bounds = _chunk_bounds(len(batch), n_jobs, chunk_size)
    if n_jobs == 1 or len(bounds) == 1:
        return [_run_chunk(step, batch, start, stop) for start, stop in bounds]
    backend, _ = get_active_backend(prefer=step._parallel_prefer)
    if isinstance(backend, ThreadingBackend):
        # joblib's threading backend costs milliseconds to start (more than
        # a small batch's work); a plain thread pool costs ~0.1 ms
        with _one_thread_per_worker(), ThreadPoolExecutor(n_jobs) as pool:
            futures = [pool.submit(_run_chunk, step, batch, start, stop)
                       for start, stop in bounds]
            return [future.result() for future in futures]
    parallel = Parallel(n_jobs=n_jobs, prefer=step._parallel_prefer)
    with _one_thread_per_worker():
        return parallel(
            delayed(_run_chunk)(step, batch, start, stop, limit_threads=True)
            for start, stop in bounds
        )


@functools.cache
def _threadpool_controller():
    """One ``ThreadpoolController`` per process (building one costs ~0.5 ms).

    It limits the BLAS/OpenMP libraries loaded when it is first built
    (numpy's and OpenCV's, imported with this module).
    """
    return ThreadpoolController()


class _one_thread_per_worker:
    """Limit OpenCV and BLAS to one thread each while the block runs.

    Both limits are process-wide, so one context in the parent covers
    thread workers; process workers enter it again themselves.
    """

    def __enter__(self):
        self._previous = cv2.getNumThreads()
        cv2.setNumThreads(1)
        self._limits = _threadpool_controller().limit(limits=1)
        return self

    def __exit__(self, *exc_info):
        self._limits.restore_original_limits()
        cv2.setNumThreads(self._previous)


def _run_chunk(step, batch, start, stop, limit_threads=False):
    """Load images ``start:stop`` and apply ``step`` to them."""
    if isinstance(batch.items, np.ndarray):  # a validated stack: views, no copy
        images = batch.items[start:stop]
        if not step._chunk_as_stack:
            images = list(images)
    else:
        images = [_load_one(batch, i) for i in range(start, stop)]
    if not limit_threads:
        return _checked_chunk(step, images, batch, start)
    with _one_thread_per_worker():
        return _checked_chunk(step, images, batch, start)


def _checked_chunk(step, images, batch, start):
    try:
        return step._transform_chunk(images)
    except ImageError as exc:
        index = start + exc.index
        raise ValueError(f"{type(step).__name__}: {batch.name(index)}: {exc}") from exc


class ImageError(ValueError):
    """Raised by ``_transform_chunk`` for one image of a chunk.

    Parameters
    ----------
    index : int
        Position of the image inside the chunk; the base class turns it
        into the position (and path) inside the whole batch.
    message : str
        What is wrong with that image.
    """

    def __init__(self, index, message):
        super().__init__(message)
        self.index = index

