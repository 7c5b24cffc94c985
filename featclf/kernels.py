"""Kernels for histogram features (bags of visual words, colour and LBP histograms).

Histograms compare better with additive kernels than with the Euclidean
dot product (Lazebnik et al. 2006; Vedaldi and Zisserman 2012). featclf
offers two ways to use them with scikit-learn's SVMs:

* **Exact kernel** - :func:`intersection_kernel`, the histogram
  intersection ``k(x, y) = sum_i min(x_i, y_i)`` (Swain and Ballard 1991),
  which on spatial-pyramid histograms is the pyramid match kernel of
  Lazebnik et al. It is a module-level function, so
  ``SVC(kernel=intersection_kernel)`` pickles (a lambda would not); or
  compute the Gram matrix once and use ``SVC(kernel="precomputed")`` to try
  several ``C`` cheaply. Cost: ``O(n_X * n_Y * n_features)``.
* **Explicit feature map** - scikit-learn's
  :class:`~sklearn.kernel_approximation.AdditiveChi2Sampler` maps each
  histogram so that a dot product approximates the additive chi-squared
  kernel ``k(x, y) = sum_i 2 x_i y_i / (x_i + y_i)``; a
  :class:`~sklearn.svm.LinearSVC` on the map then trains in time linear in
  the number of images (Vedaldi and Zisserman's homogeneous kernel map).

Both are classifier choices of the named pipelines
(:data:`featclf.pipelines.CLASSIFIERS`: ``hiksvm`` and ``chi2svm``).

References
----------
M. J. Swain, D. H. Ballard. Color indexing. IJCV 7(1), 1991.

S. Lazebnik, C. Schmid, J. Ponce. Beyond bags of features: spatial pyramid
matching for recognizing natural scene categories. CVPR 2006.

A. Vedaldi, A. Zisserman. Efficient additive kernels via explicit feature
maps. IEEE TPAMI 34(3), 2012.
"""

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.metrics.pairwise import check_pairwise_arrays

__all__ = ["intersection_kernel"]

#: Bytes of the temporary ``min`` array per block (fits in a 4 MiB cache).
_BLOCK_BYTES = 4 * 2**20


def intersection_kernel(X, Y=None, *, n_jobs=None):
    """Histogram intersection kernel ``K[i, j] = sum_k min(X[i, k], Y[j, k])``.

    Computed exactly, in blocks of rows of ``X`` and ``Y`` whose temporary
    ``(rows_X, rows_Y, n_features)`` array stays near 4 MiB, in float32
    when both inputs are float32 (the output is float64 either way).

    Parameters
    ----------
    X : array-like of shape (n_samples_X, n_features)
        Non-negative features (histograms).
    Y : array-like of shape (n_samples_Y, n_features), default=None
        Non-negative features; ``None`` uses ``X`` (the Gram matrix).
    n_jobs : int, default=None
        Threads over blocks of rows of ``X`` (joblib's meaning). To give an
        SVM several threads, pass ``functools.partial(intersection_kernel,
        n_jobs=2)`` as its kernel (still picklable).

    Returns
    -------
    kernel : ndarray of shape (n_samples_X, n_samples_Y), dtype float64
        The kernel matrix.

    Raises
    ------
    ValueError
        If an input has negative entries (the kernel is positive definite
        only on non-negative data) or is sparse, or the widths differ.

    Examples
    --------
    >>> import numpy as np
    >>> from featclf.kernels import intersection_kernel
    >>> intersection_kernel(np.array([[0.5, 0.5]]), np.array([[1.0, 0.0], [0.2, 0.8]]))
    array([[0.5, 0.7]])
    >>> from sklearn.svm import SVC
    >>> svm = SVC(kernel=intersection_kernel)  # picklable
    """
    X, Y = check_pairwise_arrays(X, Y, accept_sparse=False)
    if (X < 0).any() or (Y is not X and (Y < 0).any()):
        raise ValueError(
            "intersection_kernel: negative values in the input; the histogram "
            "intersection kernel needs non-negative features (histograms)"
        )
    n_x, n_y = X.shape[0], Y.shape[0]
    kernel = np.empty((n_x, n_y), dtype=np.float64)
    bytes_per_pair = max(1, X.shape[1] * X.dtype.itemsize)
    rows_y = int(np.clip(_BLOCK_BYTES // bytes_per_pair, 1, max(n_y, 1)))
    rows_x = max(1, _BLOCK_BYTES // (bytes_per_pair * rows_y))
    starts = range(0, n_x, rows_x)
    n_jobs = min(effective_n_jobs(n_jobs), len(starts))
    if n_jobs == 1:
        for start in starts:
            _intersect_rows(X, Y, start, rows_x, rows_y, kernel)
    else:
        Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(_intersect_rows)(X, Y, start, rows_x, rows_y, kernel) for start in starts
        )
    return kernel


def _intersect_rows(X, Y, start, rows_x, rows_y, kernel):
    """Fill ``kernel[start:start + rows_x]``, ``rows_y`` columns at a time."""
    block = X[start : start + rows_x, None, :]
    buffer = np.empty((block.shape[0], rows_y, X.shape[1]), dtype=np.result_type(X, Y))
    for col in range(0, Y.shape[0], rows_y):
        other = Y[None, col : col + rows_y, :]
        mins = buffer[:, : other.shape[1]]
        np.minimum(block, other, out=mins)
        kernel[start : start + rows_x, col : col + rows_y] = mins.sum(axis=2)
