"""Work arrays kept per thread from one call to the next (private helper).

Fresh memory costs a page fault per 4 KiB page on first touch (about 2.5 us
on the benchmark machine: as long as DenseSIFT's whole work on some 200
pixels), and the allocator returns large freed arrays to the system between
calls, so an extractor that allocates its temporaries anew for every batch
pays those faults again and again. :class:`WorkMemory` keeps them instead:
one buffer per name and dtype, as large as the largest array asked for under
that name, so that only a thread's first calls touch fresh memory, and the
buffers are still in cache at the next call. It is used by
:class:`~featclf.features.DenseSIFT` (10-30 % faster than with fresh
temporaries) and by :func:`~featclf.features.lbp.lbp_codes`.

What a thread keeps is bounded by ``max_bytes``; every thread (joblib's
threading workers included) has its own buffers, so the bound is per thread.
Only temporaries live here: an array handed back to the caller must never be
a work array, since the next request for its name overwrites it.
"""

import math
import threading

import numpy as np

__all__ = ["WorkMemory", "work_array"]

#: views kept by :meth:`WorkMemory.empty` per thread (many image sizes
#: would otherwise grow the cache without bound)
_MAX_VIEWS = 256


class WorkMemory(threading.local):
    """Named work arrays kept between calls, one set per thread.

    :meth:`empty` returns an uninitialised array that is a view of this
    thread's buffer for the name and dtype; the buffer is replaced by a
    larger one when a larger array is asked for (grow only), so a smaller
    array of the same name reuses the memory of a larger one. Names listed
    in ``shared_buffers`` share another name's buffer, for temporaries that
    are never alive together (a smaller working set, more of it in cache).

    Parameters
    ----------
    max_bytes : int
        Most bytes kept per thread. A request that would grow the buffers
        beyond it drops every buffer first (they are allocated again, at
        their new sizes, as they are asked for), so a thread keeps at most
        ``max_bytes``, or the size of one larger array.
    shared_buffers : dict of str to str, default=None
        Work array name -> name of the buffer it uses. Two names that share
        a buffer overwrite each other: only map names whose arrays are never
        alive at the same time. Read at each request (not copied).

    Attributes
    ----------
    buffers : dict of (str, numpy.dtype) to ndarray of shape (n,)
        This thread's buffers, by buffer name and dtype.
    n_bytes : int
        Bytes held by :attr:`buffers`.

    Notes
    -----
    A subclass of :class:`threading.local`: the instance is shared (a module
    global), its attributes are per thread, and each thread's first use runs
    ``__init__`` again with the same arguments.
    """

    def __init__(self, max_bytes, shared_buffers=None):
        self.max_bytes = max_bytes
        self.shared_buffers = {} if shared_buffers is None else shared_buffers
        self.buffers = {}
        self.views = {}  # (name, dtype, shape) -> view of the current buffer
        self.n_bytes = 0

    def empty(self, name, shape, dtype=np.float32):
        """An uninitialised C-contiguous array of this thread's buffer for ``name``.

        Parameters
        ----------
        name : str
            The work array's name; earlier arrays of that name (and of the
            names sharing its buffer) are overwritten by the caller's use of
            this one.
        shape : tuple of int
        dtype : numpy dtype or type, default=numpy.float32

        Returns
        -------
        array : ndarray of shape ``shape``, ``dtype``
            A view of the buffer (``array.base`` is the buffer).
        """
        view = self.views.get((name, dtype, shape))
        if view is not None:
            return view
        size = math.prod(shape)
        buffer_dtype = np.dtype(dtype)  # np.float32 and its dtype: one buffer
        key = (self.shared_buffers.get(name, name), buffer_dtype)
        buffer = self.buffers.get(key)
        if buffer is None or buffer.size < size:
            n_bytes = size * buffer_dtype.itemsize
            grown = n_bytes - (0 if buffer is None else buffer.nbytes)
            if self.n_bytes + grown > self.max_bytes:
                self.buffers.clear()
                self.n_bytes, grown = 0, n_bytes
            buffer = self.buffers[key] = np.empty(size, buffer_dtype)
            self.views.clear()  # some were views of the replaced buffer
            self.n_bytes += grown
        if len(self.views) >= _MAX_VIEWS:
            self.views.clear()
        view = self.views[(name, dtype, shape)] = buffer[:size].reshape(shape)
        return view


def work_array(work, name, shape, dtype=np.float32):
    """``work.empty(name, shape, dtype)``, or a fresh array when ``work`` is None.

    For functions that take an optional :class:`WorkMemory` (None: allocate,
    as when called on their own).

    Parameters
    ----------
    work : WorkMemory or None
    name : str
    shape : tuple of int
    dtype : numpy dtype or type, default=numpy.float32

    Returns
    -------
    array : ndarray of shape ``shape``, ``dtype``, uninitialised
    """
    if work is None:
        return np.empty(shape, dtype)
    return work.empty(name, shape, dtype)
