"""Histogram intersection kernel: exact values, blocking, use inside SVC, pickling."""

import functools
import pickle

import numpy as np
import pytest
from sklearn.svm import SVC

import featclf.kernels
from featclf.kernels import intersection_kernel


def histograms(n, d, seed):
    rng = np.random.default_rng(seed)
    h = rng.random((n, d)) * (rng.random((n, d)) < 0.5)
    return h / h.sum(axis=1, keepdims=True)


def test_values_by_hand():
    x = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]])
    y = np.array([[1.0, 0.0, 0.0], [0.2, 0.1, 0.7], [0.0, 0.0, 0.0]])
    expected = [[0.5, 0.2 + 0.1, 0.0], [0.1, 0.1 + 0.1 + 0.7, 0.0]]
    np.testing.assert_allclose(intersection_kernel(x, y), expected, atol=1e-12)
    gram = intersection_kernel(x)
    np.testing.assert_allclose(gram, [[1.0, 0.1 + 0.2], [0.3, 1.0]], atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blocks_and_threads_match_brute_force(monkeypatch, dtype):
    x, y = histograms(23, 40, 0).astype(dtype), histograms(17, 40, 1).astype(dtype)
    brute = np.minimum(x[:, None, :].astype(np.float64), y[None].astype(np.float64)).sum(-1)
    monkeypatch.setattr(featclf.kernels, "_BLOCK_BYTES", 3 * 40 * 8)  # 3x1 row blocks
    for n_jobs in (1, 2):
        out = intersection_kernel(x, y, n_jobs=n_jobs)
        assert out.shape == (23, 17) and out.dtype == np.float64
        np.testing.assert_allclose(out, brute, rtol=1e-6)


def test_svc_with_the_kernel_equals_precomputed_and_pickles():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], 20)
    centres = histograms(3, 30, 3)
    x = np.abs(centres[labels] + 0.02 * rng.standard_normal((60, 30)))
    x_test = np.abs(centres[[0, 1, 2, 1]] + 0.02 * rng.standard_normal((4, 30)))
    kernel = functools.partial(intersection_kernel, n_jobs=2)
    svm = SVC(kernel=kernel, C=1.0).fit(x, labels)
    pre = SVC(kernel="precomputed", C=1.0).fit(intersection_kernel(x), labels)
    np.testing.assert_allclose(
        svm.decision_function(x_test),
        pre.decision_function(intersection_kernel(x_test, x)),
        atol=1e-8,
    )
    np.testing.assert_array_equal(svm.predict(x_test), [0, 1, 2, 1])
    restored = pickle.loads(pickle.dumps(svm))
    np.testing.assert_array_equal(restored.decision_function(x_test), svm.decision_function(x_test))


def test_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        intersection_kernel(np.array([[0.5, -0.1]]))
    with pytest.raises(ValueError, match="non-negative"):
        intersection_kernel(np.array([[0.5, 0.1]]), np.array([[-1.0, 0.0]]))
    with pytest.raises(ValueError, match="[Ii]ncompatible dimension"):
        intersection_kernel(np.ones((2, 3)), np.ones((2, 4)))


def test_svc_with_the_kernel_saves_as_a_featclf_model_file(tmp_path):
    from featclf.persistence import load_model, save_model

    x = histograms(12, 6, 4)
    labels = np.arange(12) % 2
    svm = SVC(kernel=intersection_kernel).fit(x, labels)
    save_model(tmp_path / "hik.featclf", svm)
    loaded, _ = load_model(tmp_path / "hik.featclf")
    np.testing.assert_array_equal(loaded.decision_function(x), svm.decision_function(x))
