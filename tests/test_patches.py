"""KMeansPatches: Coates-style learned features (estimator checks run in
tests/test_estimator_checks.py)."""

import numpy as np
import pytest

from featclf.features import KMeansPatches


def small(**params):
    return KMeansPatches(n_clusters=8, n_patches=600, kmeans_max_iter=5, **params)


def test_shape_dtype_and_non_negative_codes(rgb_images):
    features = small().fit_transform(rgb_images)
    assert features.shape == (8, 4 * 8) and features.dtype == np.float32
    assert np.all(features >= 0) and np.all(features.sum(axis=1) > 0)
    extractor = small(pooling=(3, 1)).fit(rgb_images)
    assert extractor.n_features_out_ == 24
    assert len(extractor.get_feature_names_out()) == 24
    assert extractor.cluster_centers_.shape == (8, 6 * 6 * 3)


def test_quadrants_partition_the_patch_positions(rgb_images):
    quadrants = small().fit(rgb_images).transform(rgb_images)
    whole = small(pooling=(1, 1)).fit(rgb_images).transform(rgb_images)
    np.testing.assert_allclose(quadrants.reshape(8, 4, 8).sum(axis=1), whole, rtol=1e-4)


def test_dictionary_comes_from_fit_only_and_is_seeded(rgb_images):
    extractor = small(random_state=3).fit(rgb_images[:4])
    centres = extractor.cluster_centers_.copy()
    extractor.transform(rgb_images[4:])
    np.testing.assert_array_equal(extractor.cluster_centers_, centres)
    again = small(random_state=3).fit(rgb_images[:4])
    np.testing.assert_array_equal(again.cluster_centers_, centres)
    other = small(random_state=4).fit(rgb_images[:4])
    assert not np.allclose(other.cluster_centers_, centres)


def test_whitening_is_zca_with_regularised_eigenvalues(rgb_images):
    from featclf.io import as_image_batch

    extractor = KMeansPatches(n_clusters=4, n_patches=3000, kmeans_max_iter=2, random_state=0)
    extractor.fit(rgb_images)
    # the same seed draws the same patches fit used
    patches = extractor._sample_patches(as_image_batch(rgb_images), np.random.RandomState(0))
    normalised = extractor._normalise(patches)
    np.testing.assert_allclose(extractor.whiten_mean_, normalised.mean(axis=0), atol=1e-5)
    covariance_eigenvalues = np.linalg.eigvalsh(np.cov(normalised, rowvar=False))
    whitened = (normalised - extractor.whiten_mean_) @ extractor.whiten_matrix_
    whitened_eigenvalues = np.linalg.eigvalsh(np.cov(whitened, rowvar=False))
    expected = covariance_eigenvalues / (covariance_eigenvalues + 0.1)
    np.testing.assert_allclose(whitened_eigenvalues, expected, atol=1e-4)
    assert np.allclose(extractor.whiten_matrix_, extractor.whiten_matrix_.T, atol=1e-5)


def test_stride_and_gray_images(gray_images):
    dense = small().fit(gray_images)
    sparse = small(stride=3).fit(gray_images)
    assert dense.cluster_centers_.shape == (8, 36)
    ratio = dense.transform(gray_images).sum() / sparse.transform(gray_images).sum()
    assert 6 < ratio < 12  # about 3 x 3 times more patches encoded


def test_bad_input_is_named(rgb_images, gray_images):
    extractor = small().fit(rgb_images)
    with pytest.raises(ValueError, match="image 0.*fitted on 3-channel"):
        extractor.transform(gray_images)
    with pytest.raises(ValueError, match="smaller than patch_size=6"):
        extractor.transform(rgb_images[:, :5])
    with pytest.raises(ValueError, match="pooling"):
        small(pooling=(0, 2)).fit(rgb_images)
