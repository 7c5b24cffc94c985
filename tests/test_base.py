"""base: chunking and parallel runs (when they start, and that they change nothing)."""

import joblib
import numpy as np
import pytest

from featclf import base
from featclf.features import HOG, LBP
from featclf.io import as_image_batch


@pytest.mark.parametrize("n_images, expected", [(1, 1), (3, 1), (4, 2), (7, 2), (100, 2)])
def test_jobs_follow_the_amount_of_work(n_images, expected):
    """One job per _min_pixels_per_job in-memory pixels, at most n_jobs."""
    step = HOG(n_jobs=2)
    step._min_pixels_per_job = 2 * 10 * 10
    batch = as_image_batch(np.zeros((n_images, 10, 10), np.uint8))
    assert base._useful_jobs(step, batch, 2) == expected
    ragged = as_image_batch([np.zeros((10, 10), np.uint8)] * n_images)
    assert base._useful_jobs(step, ragged, 2) == expected


def test_file_paths_always_get_every_job(tmp_path):
    paths = [str(tmp_path / f"{i}.png") for i in range(2)]
    batch = as_image_batch(paths)
    assert base._useful_jobs(HOG(), batch, 4) == 4


def test_small_batch_runs_in_the_calling_thread(monkeypatch, gray_images):
    """Below the threshold n_jobs=2 starts no pool at all."""
    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started for a small batch")

    monkeypatch.setattr(base, "ThreadPoolExecutor", no_pool)
    monkeypatch.setattr(base, "Parallel", no_pool)
    est = LBP(n_jobs=2).fit(gray_images)
    np.testing.assert_array_equal(est.transform(gray_images),
                                  LBP().fit(gray_images).transform(gray_images))


@pytest.mark.parametrize("backend", [None, "sequential"])
def test_parallel_chunks_equal_one_thread(backend, monkeypatch, rgb_images):
    """Past the threshold the chunks go to a thread pool (default backend)
    or through joblib (any other active backend); the output is the same."""
    images = np.concatenate([rgb_images] * 4)
    monkeypatch.setattr(HOG, "_min_pixels_per_job", 1)
    monkeypatch.setattr(HOG, "_chunk_size", 5)
    single = HOG(pixels_per_cell=6, cells_per_block=2).fit(images).transform(images)
    est = HOG(pixels_per_cell=6, cells_per_block=2, n_jobs=2).fit(images)
    if backend is None:
        got = est.transform(images)
    else:
        with joblib.parallel_config(backend=backend):
            got = est.transform(images)
    np.testing.assert_array_equal(got, single)
    assert got.flags.owndata and got.dtype == np.float32


def test_error_in_a_parallel_chunk_names_the_image(monkeypatch, gray_images):
    monkeypatch.setattr(HOG, "_min_pixels_per_job", 1)
    monkeypatch.setattr(HOG, "_chunk_size", 2)
    est = HOG(n_jobs=2).fit(gray_images)
    batch = list(gray_images[:5]) + [gray_images[0][:40, :40]]
    with pytest.raises(ValueError, match=r"image 5"):
        est.transform(batch)
