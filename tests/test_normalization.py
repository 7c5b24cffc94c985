import numpy as np
import pytest

from featclf.normalization import HellingerNormalizer


def test_hellinger_map_gives_bhattacharyya_dot_products():
    rng = np.random.default_rng(0)
    hist = rng.random((5, 12))
    hist /= hist.sum(axis=1, keepdims=True)
    mapped = HellingerNormalizer().fit_transform(hist)
    np.testing.assert_allclose(np.linalg.norm(mapped, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(mapped @ mapped.T, np.sqrt(hist) @ np.sqrt(hist).T, atol=1e-12)


def test_zero_rows_stay_zero_and_float32_is_kept():
    out = HellingerNormalizer().fit_transform(np.zeros((2, 3), np.float32))
    assert out.dtype == np.float32 and not out.any()


def test_negative_values_are_refused():
    with pytest.raises(ValueError, match="Negative values"):
        HellingerNormalizer().fit(np.array([[0.5, -0.1]]))
