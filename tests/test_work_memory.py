"""WorkMemory: named work arrays kept per thread, grow-only, bounded, shared on request."""

import threading

import numpy as np

from featclf.features.work_memory import WorkMemory, work_array


def test_work_arrays_are_reused_per_name_and_bounded():
    work = WorkMemory(1 << 20)
    first = work.empty("a", (4, 5))
    assert first.shape == (4, 5) and first.dtype == np.float32 and first.flags.c_contiguous
    # a smaller array of the same name is the same memory; another name or dtype is not
    assert np.shares_memory(work.empty("a", (3, 2)), first)
    assert not np.shares_memory(work.empty("b", (4, 5)), first)
    assert not np.shares_memory(work.empty("a", (4, 5), np.uint8), first)
    # the dtype's type and the dtype itself name the same buffer
    assert np.shares_memory(work.empty("a", (2,), np.dtype(np.float32)), first)
    # a larger one replaces the buffer (grow only): smaller ones then use it
    larger = work.empty("a", (10, 10))
    assert larger.shape == (10, 10) and np.shares_memory(work.empty("a", (2, 2)), larger)
    assert not np.shares_memory(larger, first)
    assert work.n_bytes == 4 * (100 + 20) + 20
    assert work.n_bytes == sum(buffer.nbytes for buffer in work.buffers.values())
    # past the bound everything is dropped first
    work.max_bytes = 4 * 150
    work.empty("c", (10, 10))
    assert work.n_bytes == 4 * 100 and list(work.buffers) == [("c", np.float32)]
    # an array over the bound on its own is still given (and kept until the next growth)
    alone = work.empty("d", (200,))
    assert alone.shape == (200,) and list(work.buffers) == [("d", np.float32)]
    assert work.empty("e", (1,)).shape == (1,) and list(work.buffers) == [("e", np.float32)]


def test_shared_buffers_are_used_by_both_names():
    work = WorkMemory(1 << 20, shared_buffers={"plane": "smoothed"})
    smoothed = work.empty("smoothed", (8, 8))
    plane = work.empty("plane", (4, 4))
    assert np.shares_memory(plane, smoothed) and work.n_bytes == 4 * 64
    # the sharing name may grow the buffer; the owner's next array uses the grown one
    grown = work.empty("plane", (10, 10))
    assert work.n_bytes == 4 * 100 and list(work.buffers) == [("smoothed", np.float32)]
    assert np.shares_memory(work.empty("smoothed", (8, 8)), grown)


def test_each_thread_has_its_own_buffers():
    work = WorkMemory(1 << 20, shared_buffers={"b": "a"})
    here = work.empty("a", (16,))
    barrier = threading.Barrier(2)
    seen = {}

    def use(name):
        barrier.wait()  # both threads alive at once (distinct thread-local state)
        first = work.empty(name, (16,))
        first[:] = len(name)
        seen[name] = (first, work.empty(name, (8,)), work.n_bytes, work.max_bytes,
                      dict(work.buffers))

    threads = [threading.Thread(target=use, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (a, a_again, a_bytes, a_max, a_buffers), (b, b_again, b_bytes, b_max, b_buffers) = (
        seen["a"], seen["b"])
    # each thread starts empty (its own __init__, same arguments, sharing map included)
    assert a_bytes == b_bytes == 4 * 16 and a_max == b_max == 1 << 20
    assert list(b_buffers) == [("a", np.float32)]  # "b" uses buffer "a", as configured
    # within a thread, reuse; across threads and with this thread, no shared memory
    assert np.shares_memory(a, a_again) and np.shares_memory(b, b_again)
    assert not np.shares_memory(a, b)
    assert not np.shares_memory(here, a) and not np.shares_memory(here, b)
    assert (a == 1).all() and (b == 1).all()
    assert list(work.buffers) == [("a", np.float32)] and work.n_bytes == 4 * 16


def test_view_cache_stays_small_and_current():
    work = WorkMemory(1 << 30)
    for n in range(1, 600):
        assert work.empty("a", (n,)).shape == (n,)
    assert len(work.views) <= 256
    # after growth every view is of the current buffer
    buffer = work.buffers[("a", np.dtype(np.float32))]
    assert all(view.base is buffer for view in work.views.values())


def test_work_array_without_work_memory_is_fresh():
    first, second = work_array(None, "a", (3, 4)), work_array(None, "a", (3, 4))
    assert first.shape == (3, 4) and first.dtype == np.float32
    assert not np.shares_memory(first, second)
    work = WorkMemory(1 << 20)
    assert np.shares_memory(work_array(work, "a", (5,), np.uint16),
                            work.empty("a", (2,), np.uint16))
