"""HOG: equality with skimage.feature.hog, batching, errors, and MNIST accuracy."""

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.feature import hog as skimage_hog

from featclf.features import HOG
from featclf.features.hog import BLOCK_NORMS, hog_batch
from featclf.preprocessing import to_float

from conftest import shared_path

PARAMS = [
    # orientations, pixels_per_cell, cells_per_block, transform_sqrt
    (9, (8, 8), (3, 3), False),
    (8, (4, 6), (2, 2), True),
    (4, (5, 5), (1, 2), False),
    (7, (3, 3), (2, 3), False),
    (12, (6, 4), (2, 2), False),
]


def _real_images(shape, color, n=3):
    """Real photo crops of one (odd, non-multiple-of-cell) size."""
    height, width = shape
    source = data.astronaut() if color else data.camera()
    corners = [(100, 100), (250, 180), (30, 300)][:n]
    return np.stack([source[r:r + height, c:c + width] for r, c in corners])


def _reference(image, orientations, cells, block, norm, sqrt):
    return skimage_hog(
        to_float(image), orientations, cells, block, norm, transform_sqrt=sqrt,
        feature_vector=True, channel_axis=-1 if image.ndim == 3 else None,
    )


@pytest.mark.parametrize("block_norm", BLOCK_NORMS)
@pytest.mark.parametrize("color", [False, True], ids=["gray", "rgb"])
@pytest.mark.parametrize("shape", [(37, 45), (33, 50), (48, 48)])
def test_equals_skimage(block_norm, color, shape):
    images = _real_images(shape, color)
    for orientations, cells, block, sqrt in PARAMS:
        est = HOG(orientations, cells, block, block_norm, sqrt).fit(images)
        got = est.transform(images)
        assert got.dtype == np.float32
        for image, row in zip(images, got):
            ref = _reference(image, orientations, cells, block, block_norm, sqrt)
            assert row.shape == ref.shape
            np.testing.assert_allclose(row, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("orientations", [4, 6, 8, 9, 10])
@pytest.mark.parametrize("color", [False, True], ids=["gray", "rgb"])
def test_equals_skimage_on_bin_edges(orientations, color):
    """Integer-valued gradients hit 0, 45, 90 and 135 degrees exactly, and
    colour channels often tie; flat areas have no gradient at all."""
    rng = np.random.default_rng(0)
    shape = (5, 31, 29, 3) if color else (5, 31, 29)
    images = (rng.integers(0, 4, shape) * 60).astype(np.uint8)
    images[0] = 0
    images[1, :, :] = images[1, :1, :]  # constant columns: horizontal gradients only
    got = HOG(orientations, (5, 4), (2, 2)).fit(images).transform(images)
    for image, row in zip(images, got):
        np.testing.assert_allclose(
            row, _reference(image, orientations, (5, 4), (2, 2), "L2-Hys", False),
            atol=1e-5, rtol=0)


def test_float_input_equals_skimage():
    rng = np.random.default_rng(1)
    images = rng.random((3, 35, 41)).astype(np.float32)
    got = HOG(pixels_per_cell=(6, 6), cells_per_block=(2, 2)).fit(images).transform(images)
    for image, row in zip(images, got):
        ref = _reference(image, 9, (6, 6), (2, 2), "L2-Hys", False)
        np.testing.assert_allclose(row, ref, atol=1e-5, rtol=0)


def test_chunked_and_parallel_equal_single(gray_images, monkeypatch):
    images = np.concatenate([gray_images] * 3)
    single = HOG(pixels_per_cell=6, cells_per_block=2).fit(images).transform(images)
    monkeypatch.setattr(HOG, "_min_pixels_per_job", 1)  # parallel even for this small batch
    parallel = HOG(pixels_per_cell=6, cells_per_block=2, n_jobs=2).fit(images).transform(images)
    np.testing.assert_array_equal(parallel, single)
    as_list = HOG(pixels_per_cell=6, cells_per_block=2).fit(images).transform(list(images))
    np.testing.assert_array_equal(as_list, single)
    monkeypatch.setattr(HOG, "_chunk_size", 5)
    chunked = HOG(pixels_per_cell=6, cells_per_block=2).fit(images).transform(images)
    np.testing.assert_array_equal(chunked, single)
    floats = to_float(images)
    float_single = hog_batch(floats, 9, (6, 6), (2, 2))
    # groups inside one chunk
    monkeypatch.setattr("featclf.features.hog._GROUP_PIXELS", 3 * 48 * 40)
    np.testing.assert_array_equal(hog_batch(images, 9, (6, 6), (2, 2)), single)  # uint8 input
    np.testing.assert_array_equal(hog_batch(floats, 9, (6, 6), (2, 2)), float_single)
    # gray uint8 images are differentiated as integers, float ones as floats:
    # both equal skimage to 1e-5 (tests above), each other to float32 rounding
    np.testing.assert_allclose(float_single, single, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(37, 45), (48, 48)], ids=["cropped", "whole-cells"])
@pytest.mark.parametrize("color", [False, True], ids=["gray", "rgb"])
def test_exact_fallback_bins_every_pixel_like_skimage(color, shape, monkeypatch):
    """With a tolerance of a whole bin, every pixel with a non-zero row
    gradient is binned by the float64 path (from skimage's float32
    gradients, rebuilt from the uint8 values for gray images): it alone
    matches skimage, also on the image border."""
    monkeypatch.setattr("featclf.features.hog._EDGE_TOLERANCE_DEG", 180.0)
    images = _real_images(shape, color)
    got = HOG(9, (8, 8), (2, 2)).fit(images).transform(images)
    for image, row in zip(images, got):
        np.testing.assert_allclose(row, _reference(image, 9, (8, 8), (2, 2), "L2-Hys", False),
                                   atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_images", [1, 2, 7])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("color", [False, True], ids=["gray", "rgb"])
def test_hog_batch_equals_skimage_for_any_batch_size(n_images, dtype, color):
    """One image, a few and many are laid out differently (view, cv2.merge,
    cv2.transpose); whole-cell and cropped sizes."""
    for shape in [(32, 40), (29, 43)]:
        images = np.concatenate([_real_images(shape, color)] * 3)[:n_images]
        if dtype == "float32":
            images = to_float(images)
        got = hog_batch(images, 9, (8, 8), (2, 2), "L2", False)
        for image, row in zip(images, got):
            np.testing.assert_allclose(row, _reference(image, 9, (8, 8), (2, 2), "L2", False),
                                       atol=1e-5, rtol=0)


def test_cart_to_polar_error_is_within_the_edge_tolerance():
    """The fast path bins cv2.cartToPolar angles of integer gradients and
    re-bins only pixels within _EDGE_TOLERANCE_DEG of an edge: over every
    integer gradient the angle error must stay well inside it (OpenCV
    documents about 0.01 degree), and below 360 (the last bin edge)."""
    from featclf.features import hog

    values = np.arange(-255, 256, dtype=np.float32)
    g_row, g_col = (a.reshape(1, -1) for a in np.meshgrid(values, values, indexing="ij"))
    _, angle = cv2.cartToPolar(g_col, g_row, angleInDegrees=True)
    exact = np.rad2deg(np.arctan2(g_row.astype(np.float64), g_col.astype(np.float64))) % 360
    error = np.abs(angle - exact)
    error = np.minimum(error, 360 - error)
    assert error.max() < hog._EDGE_TOLERANCE_DEG / 4
    assert angle.max() < 360
    assert set(np.unique(angle[g_row == 0])) == {0, 180}  # exact: bin 0 without re-binning


def test_feature_names(rgb_images):
    est = HOG(orientations=4, pixels_per_cell=(8, 10), cells_per_block=(2, 2)).fit(rgb_images)
    names = est.get_feature_names_out()
    # 48x40 -> 6x4 cells -> 5x3 blocks of 2x2 cells x 4 orientations
    assert est.n_blocks_ == (5, 3)
    assert len(names) == est.n_features_out_ == 5 * 3 * 2 * 2 * 4
    assert names[0] == "hog_block0_0_cell0_0_orient0"
    assert names[-1] == "hog_block4_2_cell1_1_orient3"
    assert len(set(names)) == len(names)


def test_image_of_other_size_is_named(gray_images):
    est = HOG().fit(gray_images)
    batch = list(gray_images[:3]) + [gray_images[0][:40, :40]]
    with pytest.raises(ValueError, match=r"image 3.*Resize"):
        est.transform(batch)


def test_gray_vs_colour_mismatch_is_an_error(gray_images, rgb_images):
    est = HOG().fit(gray_images)
    with pytest.raises(ValueError, match="Grayscale"):
        est.transform(rgb_images)


def test_too_small_image():
    with pytest.raises(ValueError, match="smaller than one block.*at least 24x24"):
        HOG().fit(np.zeros((2, 20, 30), np.uint8))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"pixels_per_cell": 0}, "pixels_per_cell"),
        ({"pixels_per_cell": (8, 8, 8)}, "pixels_per_cell"),
        ({"cells_per_block": (2, -1)}, "cells_per_block"),
        ({"block_norm": "L3"}, "block_norm"),
        ({"orientations": 0}, "orientations"),
    ],
)
def test_bad_parameters(params, match, gray_images):
    with pytest.raises(ValueError, match=match):
        HOG(**params).fit(gray_images)


def test_flat_image_gives_zeros():
    features = HOG().fit_transform(np.full((2, 30, 30), 77, np.uint8))
    assert not features.any()


def test_hog_linear_svm_on_mnist():
    """Real data: HOG at two cell sizes (4x4 and 7x7, L1-sqrt) + LinearSVC on
    the first 10k train / 2k test MNIST images, >= 97 % (measured 0.971).

    One cell size alone gives 0.965-0.970 with a linear SVM.
    """
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    mnist = np.load(shared_path("data", "mnist", "mnist.npz"))
    x_train, y_train = mnist["x_train"][:10000], mnist["y_train"][:10000]
    x_test, y_test = mnist["x_test"][:2000], mnist["y_test"][:2000]
    model = make_pipeline(
        make_union(
            HOG(pixels_per_cell=(4, 4), cells_per_block=(2, 2), block_norm="L1-sqrt"),
            HOG(pixels_per_cell=(7, 7), cells_per_block=(2, 2), block_norm="L1-sqrt"),
        ),
        LinearSVC(C=0.1, dual=False),
    )
    accuracy = model.fit(x_train, y_train).score(x_test, y_test)
    assert accuracy >= 0.97, accuracy


def test_uint8_and_float_images_in_one_list(gray_images):
    est = HOG(pixels_per_cell=6, cells_per_block=2).fit(gray_images)
    mixed = [gray_images[0].astype(np.float32) / 255, gray_images[1]]
    np.testing.assert_allclose(est.transform(mixed), est.transform(gray_images[:2]),
                               atol=1e-6, rtol=0)
