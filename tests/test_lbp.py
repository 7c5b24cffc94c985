"""LBP: codes identical to skimage, histograms, batching, errors, Brodatz accuracy."""

import numpy as np
import pytest
from skimage import data
from skimage.feature import local_binary_pattern

from featclf.features import LBP
from featclf.features.lbp import METHODS, lbp_codes, n_lbp_bins
from featclf.preprocessing import to_gray, to_uint8

from conftest import shared_path

RADII_POINTS = [(8, 1), (16, 2), (24, 3), (4, 1), (8, 1.5), (12, 2.5), (6, 0.7)]


def _test_images():
    rng = np.random.default_rng(0)
    return [
        data.camera()[100:163, 200:251],  # odd size, real photo
        data.brick()[:41, :64],  # real texture
        rng.integers(0, 256, (40, 37), dtype=np.uint8),
        (rng.integers(0, 3, (33, 35)) * 100).astype(np.uint8),  # many exact ties
        np.full((20, 21), 77, np.uint8),  # flat: interpolation rounding decides
    ]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("points, radius", RADII_POINTS)
def test_codes_equal_skimage(points, radius, method):
    if method in ("default", "ror") and points > 16:
        pytest.skip("default/ror allow P <= 16")
    for image in _test_images():
        stack = np.stack([image, image[::-1, ::-1]])
        codes = lbp_codes(stack, points, radius, method)
        for got, img in zip(codes, stack):
            expected = local_binary_pattern(img, points, radius, method)
            np.testing.assert_array_equal(got, expected)
            assert got.max() < n_lbp_bins(points, method)


@pytest.mark.parametrize("shape", [(600, 30), (30, 600)])
def test_codes_equal_skimage_on_long_images(shape):
    """Past 512 rows/columns the interpolation weights change in their last
    bits (scikit-image computes them per pixel); ties make that visible."""
    image = (np.random.default_rng(3).integers(0, 3, shape) * 80).astype(np.uint8)
    for points, radius in [(8, 1), (16, 2), (24, 3)]:
        codes = lbp_codes(np.stack([image, image]), points, radius, "uniform")
        expected = local_binary_pattern(image, points, radius, "uniform")
        np.testing.assert_array_equal(codes[1], expected)


@pytest.mark.parametrize("method", METHODS)
def test_histograms_equal_skimage_histograms(method, rgb_images):
    pairs = [(8, 1), (12, 2.5)]
    est = LBP(radii_points=pairs, method=method, grid=(2, 3)).fit(rgb_images)
    features = est.transform(rgb_images)
    assert features.shape == (8, 6 * sum(n_lbp_bins(p, method) for p, _ in pairs))
    for image, row in zip(rgb_images, features):
        gray = to_uint8(to_gray(image))
        expected = []
        for points, radius in pairs:
            codes = local_binary_pattern(gray, points, radius, method).astype(int)
            n_bins = n_lbp_bins(points, method)
            for rows in np.array_split(np.arange(48), 2):
                for cols in np.array_split(np.arange(40), 3):
                    cell = codes[np.ix_(rows, cols)].ravel()
                    expected.append(np.bincount(cell, minlength=n_bins) / cell.size)
        np.testing.assert_allclose(row, np.concatenate(expected), atol=1e-7)


def test_histograms_sum_to_one_per_cell(gray_images):
    est = LBP(radii_points=[(8, 1), (16, 2)], method="nri_uniform", grid=(3, 2)).fit(gray_images)
    features = est.transform(gray_images)
    sums = [features[:, :6 * 59].reshape(-1, 6, 59).sum(axis=2),
            features[:, 6 * 59:].reshape(-1, 6, 243).sum(axis=2)]
    np.testing.assert_allclose(np.concatenate(sums, axis=1), 1.0, atol=1e-5)


def test_float_and_colour_input_is_made_gray_uint8(rgb_images):
    est = LBP(radii_points=[(8, 1)]).fit(rgb_images)
    from_uint8 = est.transform(rgb_images)
    floats = rgb_images.astype(np.float32) / 255
    gray_u8 = np.stack([to_uint8(to_gray(image)) for image in floats])
    np.testing.assert_array_equal(est.transform(floats), est.transform(gray_u8))
    # RGB uint8 goes through the uint8 gray conversion directly
    gray_direct = np.stack([to_gray(image) for image in rgb_images])
    np.testing.assert_array_equal(from_uint8, est.transform(gray_direct))


def test_images_of_different_sizes(gray_images):
    est = LBP(radii_points=[(8, 1), (16, 2)], grid=2).fit(gray_images)
    batch = [gray_images[0], gray_images[1][:30, :25], gray_images[2], gray_images[3][5:, 7:]]
    together = est.transform(batch)
    one_by_one = np.concatenate([est.transform([image]) for image in batch])
    np.testing.assert_array_equal(together, one_by_one)


def test_chunked_and_parallel_equal_single(gray_images, monkeypatch):
    images = np.concatenate([gray_images] * 3)
    params = dict(radii_points=[(8, 1), (24, 3)], grid=(2, 2))
    single = LBP(**params).fit(images).transform(images)
    monkeypatch.setattr(LBP, "_min_pixels_per_job", 1)  # parallel even for this small batch
    parallel = LBP(**params, n_jobs=2).fit(images).transform(images)
    np.testing.assert_array_equal(parallel, single)
    monkeypatch.setattr(LBP, "_chunk_size", 5)
    monkeypatch.setattr("featclf.features.lbp._GROUP_PIXELS", 3 * 48 * 40)
    monkeypatch.setattr("featclf.features.lbp._CHUNK_PIXELS", 7 * 44)
    monkeypatch.setattr("featclf.features.lbp._EXACT_BATCH", 3)
    chunked = LBP(**params).fit(images).transform(images)
    np.testing.assert_array_equal(chunked, single)
    as_list = LBP(**params).fit(images).transform(list(images))
    np.testing.assert_array_equal(as_list, single)


@pytest.mark.parametrize("points, radius", [(8, 1), (16, 2), (6, 0.7), (24, 3)])
def test_exact_path_alone_equals_skimage(points, radius, monkeypatch):
    """Every bit of every pixel with a non-zero centre decided by the float64
    path (a tie margin wider than any pixel difference)."""
    monkeypatch.setattr("featclf.features.lbp._TIE_MARGIN", 300.0)
    method = "default" if points <= 16 else "uniform"
    for image in _test_images():
        stack = np.stack([image, image[::-1]])
        for got, img in zip(lbp_codes(stack, points, radius, method), stack):
            np.testing.assert_array_equal(got, local_binary_pattern(img, points, radius, method))


def _chunk_codes_of(image, points, radius):
    """The float32 pass alone on one image: (codes, where, unsure, layout)."""
    from featclf.features import lbp as lbp_module

    layout = lbp_module._Layout(1, *image.shape, points, radius)
    flat_u8 = layout.pad(image[None])
    codes = np.zeros(layout.size, np.uint32)
    rows = (layout.pad_rows, layout.n_rows - layout.pad_rows)
    where, unsure = lbp_module._chunk_codes(flat_u8, codes, rows, layout,
                                            lbp_module.WorkMemory(1 << 30))
    return flat_u8, codes, where, unsure, layout


def test_near_ties_are_found_and_decided_exactly():
    """Corners whose weighted differences cancel (a diagonal ramp): the float32
    pass cannot decide (its value equals the centre up to rounding); the
    float64 path gives scikit-image's bits."""
    from featclf.features import lbp as lbp_module

    rows, cols = np.mgrid[:40, :37]
    image = (50 + rows + cols).astype(np.uint8)
    flat_u8, codes, where, unsure, layout = _chunk_codes_of(image, 8, 1.0)
    assert where.size > 0.5 * image.size  # two diagonal neighbours cancel at every pixel
    assert np.all(np.bitwise_count(unsure) >= 1)
    exact = lbp_module._exact_bits(flat_u8, where, unsure, layout, 8, 1.0)
    codes[where] = (codes[where] & ~unsure) | exact
    np.testing.assert_array_equal(layout.images_of(codes)[0],
                                  local_binary_pattern(image, 8, 1, "default"))


@pytest.mark.parametrize("points, radius", [(8, 1), (16, 1), (5, 1), (4, 0.5)])
@pytest.mark.parametrize("shape", [(20, 21), (600, 9), (9, 700)])
def test_flat_neighbours_are_decided_without_exact_path(points, radius, shape):
    """Interpolated neighbours whose pixels (the centre among them) are all
    equal are set without the float64 path when scikit-image's value is never
    below the centre for this image size (_flat_is_set; (5, 1) has neighbours
    where it is, for some gray values). On flat images only the other
    neighbours have near ties, and the codes equal scikit-image's."""
    from featclf.features import lbp as lbp_module

    layout = lbp_module._Layout(1, *shape, points, radius)
    interpolated = [row_low != row_high or col_low != col_high
                    for row_low, row_high, _, col_low, col_high, _ in layout.neighbours]
    flat_is_set = np.array(layout.flat_is_set)
    assert not (flat_is_set & ~np.array(interpolated)).any()
    if (points, radius) == (8, 1):
        assert list(flat_is_set) == interpolated
    checked = int(sum(2**i for i in np.flatnonzero(flat_is_set)))
    for value in (1, 2, 59, 77, 128, 200, 255):
        image = np.full(shape, value, np.uint8)
        flat_u8, codes, where, unsure, layout = _chunk_codes_of(image, points, radius)
        assert not (unsure & checked).any()
        if where.size:
            exact = lbp_module._exact_bits(flat_u8, where, unsure, layout, points, radius)
            codes[where] = (codes[where] & ~unsure) | exact
        np.testing.assert_array_equal(layout.images_of(codes)[0],
                                      local_binary_pattern(image, points, radius, "default"))


def test_feature_names(gray_images):
    est = LBP(radii_points=[(8, 1), (16, 2.5)], grid=(1, 2)).fit(gray_images)
    names = est.get_feature_names_out()
    assert len(names) == est.n_features_out_ == 2 * (10 + 18)
    assert names[0] == "lbp_p8_r1_cell0_0_uniform0"
    assert names[-1] == "lbp_p16_r2.5_cell0_1_uniform17"


@pytest.mark.parametrize(
    "params, match",
    [
        ({"radii_points": [(8, 0)]}, "R must be positive"),
        ({"radii_points": [(0, 1)]}, "P=0"),
        ({"radii_points": [(24, 3)], "method": "default"}, "2\\*\\*P bins"),
        ({"radii_points": 8}, "radii_points"),
        ({"radii_points": [(8.5, 1)]}, "radii_points"),
        ({"radii_points": []}, "radii_points"),
        ({"grid": (0, 2)}, "grid"),
        ({"method": "var"}, "method"),
    ],
)
def test_bad_parameters(params, match, gray_images):
    with pytest.raises(ValueError, match=match):
        LBP(**params).fit(gray_images)


def test_image_smaller_than_grid_is_named(gray_images):
    est = LBP(grid=(4, 4)).fit(gray_images)
    with pytest.raises(ValueError, match="image 1.*smaller than the LBP grid"):
        est.transform([gray_images[0], gray_images[1][:3, :3]])


def test_lbp_svm_on_brodatz():
    """Real data: uniform LBP (8,1)+(16,2)+(24,3) + RBF SVM on the Brodatz 64x64
    patch set (13 textures, 364 train / 364 test patches), >= 95 %."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    patches = np.load(shared_path("data", "brodatz_usc_sipi", "brodatz13_patches64.npz"))
    model = make_pipeline(
        LBP(radii_points=[(8, 1), (16, 2), (24, 3)], method="uniform"),
        StandardScaler(),
        SVC(C=10, gamma="scale"),
    )
    model.fit(patches["x_train"], patches["y_train"])
    accuracy = model.score(patches["x_test"], patches["y_test"])
    assert accuracy >= 0.95, accuracy


@pytest.mark.parametrize("method", ["uniform", "default"])
def test_calchist_and_bincount_counts_agree(method, gray_images, monkeypatch):
    """P <= 8 codes are counted by cv2.calcHist (uint8 slots); np.bincount
    (the path for larger P or more than 255 slots) gives the same histograms."""
    params = dict(radii_points=[(8, 1), (4, 2)], method=method, grid=(3, 2))
    images = np.concatenate([gray_images] * 6)  # 48 images x 6 cells: more than 255 slots
    with_calchist = LBP(**params).fit(images).transform(images)
    monkeypatch.setattr("featclf.features.lbp._HIST_SLOTS", 0)
    np.testing.assert_array_equal(LBP(**params).fit(images).transform(images), with_calchist)


def test_work_arrays_are_kept_between_calls_and_reused():
    """The chunk work arrays stay allocated between calls (no page faults per
    call); a later, smaller image uses part of the larger ones."""
    from featclf.features import lbp as lbp_module

    big = data.camera()[:300, :280]
    lbp_codes(big[None], 8, 1, "uniform")
    kept = dict(lbp_module._WORK.buffers)
    assert ("pixels", np.dtype(np.float32)) in kept and ("upper", np.dtype(np.uint8)) in kept
    assert ("horizontal_0", np.dtype(np.float32)) in kept  # the diagonal neighbours
    for image in (_test_images()[2], big[:50, :45], big[:7, :280]):
        codes = lbp_codes(image[None], 8, 1, "uniform")[0]
        np.testing.assert_array_equal(codes, local_binary_pattern(image, 8, 1, "uniform"))
    assert all(lbp_module._WORK.buffers[key] is buffer for key, buffer in kept.items())


def test_lbp_results_never_share_work_memory():
    # the work arrays are reused by the next call: what a call returns must
    # not live there (nor be changed by the next call)
    image = data.camera()[:120, 20:140]
    codes = lbp_codes(np.stack([image, image.T]), 16, 2, "uniform")
    step = LBP(radii_points=[(8, 1), (24, 3)]).fit(image[None])
    features = step.transform(np.stack([image, image[::-1]]))
    kept_codes, kept_features = codes.copy(), features.copy()
    lbp_codes(np.stack([image[::-1], image.T[::-1]]), 16, 2, "uniform")
    step.transform(np.stack([image[:, ::-1], image[::-1, ::-1]]))
    np.testing.assert_array_equal(codes, kept_codes)
    np.testing.assert_array_equal(features, kept_features)
