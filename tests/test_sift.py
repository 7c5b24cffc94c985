"""SIFT and DenseSIFT: descriptor geometry, normalisation, orientation binning,
agreement with OpenCV's SIFT on the same grid, and parallel determinism."""

import cv2
import numpy as np
import pytest
from skimage import data

from featclf.features import SIFT, DenseSIFT, DescriptorSet
from featclf.features.sift import (
    _filter_rows,
    _gradient_polar,
    _pooled_by_filtering,
    _pooled_on_lattice,
    _pooled_orientation_maps,
    dense_grid,
    normalize_sift,
    opencv_sift_on_grid,
    root_sift,
)


@pytest.fixture(scope="module")
def camera():
    """A real 128x160 gray uint8 photo crop."""
    return np.ascontiguousarray(data.camera()[100:228, 180:340])


def _unit_or_zero(descriptors):
    norms = np.linalg.norm(descriptors, axis=1)
    nonzero = norms > 0
    np.testing.assert_allclose(norms[nonzero], 1.0, atol=1e-5)
    return nonzero


@pytest.mark.parametrize(
    "shape, step, patch_sizes",
    [((64, 80), 8, (16,)), ((64, 80), 8, (16, 32)), ((61, 47), 5, (12, 20, 28)),
     ((40, 40), 3, (40,)), ((33, 100), 16, (16, 24))],
)
def test_dense_grid_count_positions_and_scales(shape, step, patch_sizes):
    image = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    (out,) = DenseSIFT(step=step, patch_sizes=patch_sizes).fit_transform([image])
    height, width = shape
    n_x = (width - max(patch_sizes)) // step + 1
    n_y = (height - max(patch_sizes)) // step + 1
    assert isinstance(out, DescriptorSet)
    assert out.descriptors.shape == (n_x * n_y * len(patch_sizes), 128)
    assert out.descriptors.dtype == np.float32
    assert out.image_shape == shape
    # scale-major order, patch size as scale
    np.testing.assert_array_equal(out.scales, np.repeat(patch_sizes, n_x * n_y))
    x, y = out.positions[:, 0], out.positions[:, 1]
    for patch_size in patch_sizes:
        half = patch_size / 2
        at = out.scales == patch_size
        # the whole patch lies inside the image (half a pixel of snapping)
        assert (x[at] - half >= -1).all() and (x[at] + half <= width).all()
        assert (y[at] - half >= -1).all() and (y[at] + half <= height).all()
        # the grid is centred and its stride is `step`
        assert abs((x[at].min() + x[at].max()) / 2 - (width - 1) / 2) <= 1
        assert abs((y[at].min() + y[at].max()) / 2 - (height - 1) / 2) <= 1
        assert set(np.diff(np.unique(x[at]))) <= {step}
    # row-major: the first n_x descriptors of a scale share one row
    assert len(set(y[:n_x])) == 1 and len(set(x[:n_x])) == n_x


def test_dense_descriptors_are_unit_normalised_after_clipping(camera):
    (out,) = DenseSIFT(step=4, patch_sizes=(16, 24)).fit_transform([camera])
    assert (out.descriptors >= 0).all()
    nonzero = _unit_or_zero(out.descriptors)
    assert nonzero.mean() > 0.9  # a textured photo: few low-contrast patches
    # clipping happened: in strongly oriented patches several entries tie at the max
    tops = np.sort(out.descriptors[nonzero], axis=1)[:, -2:]
    assert np.isclose(tops[:, 0], tops[:, 1], rtol=1e-5).mean() > 0.3


def test_normalize_sift_clips_at_0_2_then_renormalises():
    raw = np.zeros((3, 128), np.float32)
    raw[0, :2] = [3.0, 4.0]  # unit vector (0.6, 0.8) -> both clipped to 0.2
    raw[1] = 1.0  # 1/sqrt(128) < 0.2 everywhere: only normalised
    out = normalize_sift(raw)
    np.testing.assert_allclose(out[0, :2], [2**-0.5, 2**-0.5], rtol=1e-6)
    np.testing.assert_allclose(out[1], 128**-0.5, rtol=1e-6)
    np.testing.assert_array_equal(out[2], 0.0)  # zero stays zero, no NaN
    rng = np.random.default_rng(1)
    raw = rng.exponential(size=(50, 128)).astype(np.float32) ** 4
    out = normalize_sift(raw)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    clipped = np.minimum(unit, 0.2)
    assert (clipped.max(axis=1) <= 0.2).all()
    np.testing.assert_allclose(
        out, clipped / np.linalg.norm(clipped, axis=1, keepdims=True), rtol=1e-5
    )


def _orientation_mass(descriptors):
    """Fraction of each descriptor's mass per orientation bin, (k, 8)."""
    per_bin = descriptors.reshape(len(descriptors), 16, 8).sum(axis=1)
    return per_bin / per_bin.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    "angle_degrees, expected_bin",
    [(0, 0), (45, 1), (90, 2), (180, 4), (270, 6), (315, 7)],
)
def test_oriented_ramp_puts_its_mass_in_the_expected_bin(angle_degrees, expected_bin):
    # brightness increases along the direction `angle` (counter-clockwise
    # from +x, y pointing up, as OpenCV's SIFT)
    rows, cols = np.mgrid[0:64, 0:64].astype(np.float64)
    theta = np.deg2rad(angle_degrees)
    ramp = cols * np.cos(theta) - rows * np.sin(theta)
    image = ((ramp - ramp.min()) / 100.0).astype(np.float32)  # gradient 0.01
    (out,) = DenseSIFT(step=8, patch_sizes=(16,)).fit_transform([image])
    assert len(out) == 49 and (np.linalg.norm(out.descriptors, axis=1) > 0).all()
    mass = _orientation_mass(out.descriptors)
    assert (mass.argmax(axis=1) == expected_bin).all()
    # away from the border (replicated pixels bend diagonal gradients there)
    # the whole mass is in one bin
    inside = (np.abs(out.positions - 31.5) < 20).all(axis=1)
    assert inside.sum() == 25 and (mass[inside, expected_bin] > 0.999).all()


def test_ramp_between_two_bins_is_split_linearly():
    # a quarter of the way from bin 0 (0 degrees) to bin 1 (45 degrees):
    # channel 0 gets 3/4 of the gradient magnitude, channel 1 gets 1/4
    rows, cols = np.mgrid[0:32, 0:32].astype(np.float64)
    theta = np.deg2rad(45 / 4)
    image = ((cols * np.cos(theta) - rows * np.sin(theta) + 20) / 100.0).astype(np.float32)
    inside = np.arange(8, 25, 4)  # cells whose support (+-3 pixels) avoids the border
    polar = _gradient_polar(image[:, None, :], 8)  # one image, side-by-side layout
    cell_mass = 16 * 0.01  # a 4x4 triangular kernel has unit height, sum 16
    # the lattice path (rows and columns every cell) and the filtering path
    for rows in (inside, inside[[0, 1, 3, 4]]):
        (pooled,) = _pooled_orientation_maps(*polar, 8, 4, rows, inside)
        np.testing.assert_allclose(pooled[..., 0], 0.75 * cell_mass, rtol=1e-3)
        np.testing.assert_allclose(pooled[..., 1], 0.25 * cell_mass, rtol=1e-3)
        np.testing.assert_array_equal(pooled[..., 2:], 0.0)


def test_flat_and_tiny_images_give_zero_or_empty_sets():
    flat = np.full((40, 48), 128, np.uint8)
    (dense,) = DenseSIFT(step=8, patch_sizes=(16,)).fit_transform([flat])
    assert dense.descriptors.shape == (4 * 5, 128)
    np.testing.assert_array_equal(dense.descriptors, 0.0)
    tiny = np.zeros((10, 12), np.uint8)
    (empty,) = DenseSIFT(patch_sizes=(16,)).fit_transform([tiny])
    assert empty.descriptors.shape == (0, 128) and empty.image_shape == (10, 12)
    for image in (flat, tiny):
        (none,) = SIFT().fit_transform([image])
        assert none.descriptors.shape == (0, 128) and none.positions.shape == (0, 2)


def test_contrast_threshold_zeroes_faint_patches():
    rng = np.random.default_rng(0)
    image = np.full((48, 96), 0.5, np.float32)
    image[:, 48:] += rng.normal(0, 0.05, (48, 48)).astype(np.float32)  # texture right
    image[:, :48] += rng.normal(0, 0.0005, (48, 48)).astype(np.float32)  # faint left
    image = np.clip(image, 0, 1)
    (out,) = DenseSIFT(step=8, patch_sizes=(16,)).fit_transform([image])
    norms = np.linalg.norm(out.descriptors, axis=1)
    x = out.positions[:, 0]
    assert (norms[x < 30] == 0).all() and (norms[x > 66] > 0).all()
    (kept,) = DenseSIFT(step=8, patch_sizes=(16,), contrast_threshold=0).fit_transform(
        [image]
    )
    assert (np.linalg.norm(kept.descriptors, axis=1) > 0).all()


def test_dense_sift_matches_opencv_sift_on_the_same_grid(camera):
    patch = 16
    # OpenCV blurs its first octave with sigma sqrt(1.6^2 - 0.5^2) = 1.52;
    # give DenseSIFT the same smoothing: sigma = cell / magnif
    magnif = (patch / 4) / np.sqrt(1.6**2 - 0.5**2)
    (ours,) = DenseSIFT(step=8, patch_sizes=(patch,), magnif=magnif,
                        contrast_threshold=0).fit_transform([camera])
    reference = opencv_sift_on_grid(camera, step=8, patch_sizes=(patch,))
    np.testing.assert_array_equal(ours.positions, reference.positions)
    np.testing.assert_array_equal(ours.scales, reference.scales)
    _unit_or_zero(reference.descriptors)
    cosine = (ours.descriptors * reference.descriptors).sum(axis=1)
    assert np.median(cosine) > 0.99
    assert np.percentile(cosine, 5) > 0.95


def test_root_sift():
    (plain,) = DenseSIFT(step=8).fit_transform([data.camera()[:64, :64]])
    (rooted,) = DenseSIFT(step=8, root_sift=True).fit_transform([data.camera()[:64, :64]])
    expected = root_sift(plain.descriptors)
    np.testing.assert_allclose(rooted.descriptors, expected, atol=1e-6)
    nonzero = _unit_or_zero(rooted.descriptors)
    np.testing.assert_allclose(
        rooted.descriptors[nonzero] ** 2,
        plain.descriptors[nonzero] / plain.descriptors[nonzero].sum(axis=1, keepdims=True),
        atol=1e-6,
    )


def test_colour_input_is_converted_to_gray(rgb_images):
    from featclf.preprocessing import to_float, to_gray

    step = DenseSIFT(step=8).fit(rgb_images)
    colour = step.transform(rgb_images)
    gray = step.transform([to_gray(to_float(image)) for image in rgb_images])
    for a, b in zip(colour, gray):
        np.testing.assert_allclose(a.descriptors, b.descriptors, atol=1e-5)


def test_sift_keypoints(camera):
    (out,) = SIFT().fit_transform([camera])
    assert len(out) > 20 and out.descriptors.shape[1] == 128
    _unit_or_zero(out.descriptors)
    height, width = camera.shape
    assert (out.positions >= 0).all()
    assert (out.positions[:, 0] < width).all() and (out.positions[:, 1] < height).all()
    assert (out.scales > 0).all()
    (best,) = SIFT(n_features=10).fit_transform([camera])
    assert 10 <= len(best) <= 12  # OpenCV keeps ties of the 10th response
    (rooted,) = SIFT(root_sift=True).fit_transform([camera])
    np.testing.assert_allclose(rooted.descriptors, root_sift(out.descriptors), atol=1e-6)


@pytest.mark.parametrize("make", [lambda: DenseSIFT(step=6, patch_sizes=(12, 16)), SIFT])
def test_chunked_and_parallel_equal_single_thread(make, camera):
    images = [camera, camera[:70, :90], camera[20:, 10:] // 2, camera.T.copy(), camera[:50]]
    reference = make().fit(images).transform(images)
    chunked = make().fit(images)
    chunked._chunk_size = 2
    parallel = make().set_params(n_jobs=2).fit(images)
    for other in (chunked.transform(images), parallel.transform(images)):
        for a, b in zip(reference, other):
            np.testing.assert_array_equal(a.descriptors, b.descriptors)
            np.testing.assert_array_equal(a.positions, b.positions)
            np.testing.assert_array_equal(a.scales, b.scales)


def test_same_size_images_described_together_equal_one_at_a_time(camera):
    # DenseSIFT stacks same-size images into one mosaic; each must come out
    # exactly as when it is alone
    images = np.stack([camera[:64, :80], camera[64:, 80:], camera[:64, 80:],
                       np.full((64, 80), 7, np.uint8)])
    for params in ({}, {"step": 5, "patch_sizes": (12, 20)}, {"magnif": None}):
        step = DenseSIFT(**params).fit(images)
        together = step.transform(images)
        for image, described in zip(images, together):
            (alone,) = step.transform(image[None])
            np.testing.assert_array_equal(described.descriptors, alone.descriptors)
            np.testing.assert_array_equal(described.positions, alone.positions)
        # one shared grid, read-only so that no image's edit reaches the others
        assert together[0].positions is together[1].positions
        with pytest.raises(ValueError, match="read-only"):
            together[0].positions[0, 0] = 1.0


@pytest.mark.parametrize("shape", [(28, 28), (61, 47), (40, 33)])
def test_batched_equals_one_at_a_time_at_unaligned_widths(shape, camera):
    # widths that are not a multiple of the SIMD alignment, several batch
    # sizes, both pooling paths (step 8 / cell 4: lattice; step 5: filtering)
    height, width = shape
    rng = np.random.default_rng(3)
    corners = rng.integers(0, 60, (7, 2))
    images = np.stack([camera[y:y + height, x:x + width] for y, x in corners])
    for params in ({}, {"step": 5, "patch_sizes": (12, 20)}):
        step = DenseSIFT(**params).fit(images)
        together = step.transform(images)
        for index in (0, 6):
            for batch in (images[index:index + 1], images[index:index + 2]):
                described = step.transform(batch)[0]
                np.testing.assert_array_equal(described.descriptors,
                                              together[index].descriptors)


def test_large_cells_batched_equal_one_at_a_time_within_rounding(camera):
    # cells of 6+ pixels (patch 24, step 6): the lattice's matrix product may
    # round differently with the batch's width, but only in the last bits
    # (six 64x128 crops: measured up to 6e-8 apart, a few float32 ulps)
    corners = np.random.default_rng(0).integers(0, [65, 33], (6, 2))
    images = np.stack([camera[y:y + 64, x:x + 128] for y, x in corners])
    step = DenseSIFT(step=6, patch_sizes=(24,)).fit(images)
    together = step.transform(images)
    for image, described in zip(images, together):
        (alone,) = step.transform(image[None])
        np.testing.assert_allclose(described.descriptors, alone.descriptors, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(described.positions, alone.positions)


@pytest.mark.parametrize("cell, n_images", [(4, 1), (4, 3), (6, 2), (3, 1)])
def test_lattice_pooling_equals_full_convolution(cell, n_images, camera):
    # pooled maps computed only at lattice points (rows and columns every
    # `cell` pixels) equal the full filtering path at the same points,
    # including lattice points whose kernel reaches past the image border
    stack = np.stack([camera[:45, :38], camera[60:105, 90:128], camera[20:65, 5:43]][:n_images],
                     axis=1).astype(np.float32) / 255
    magnitude, position = _gradient_polar(stack, 8, sigma=cell / 6)
    rows = np.arange(1, 45, cell)
    cols = np.arange(0, 38, cell)
    lattice = _pooled_on_lattice(magnitude, position, 8, cell, 1, len(rows), 0, len(cols))
    filtered = _pooled_by_filtering(magnitude, position, 8, cell, rows, cols)
    assert lattice.shape == filtered.shape == (n_images, len(rows), len(cols), 8)
    np.testing.assert_allclose(lattice, filtered, rtol=1e-5, atol=1e-6)
    assert filtered.max() > 0.1
    # and both equal the definition: each orientation channel convolved in
    # full with the 2-D triangular kernel (zero outside the image), sampled
    triangle = (1.0 - np.abs(np.arange(1 - cell, cell)) / cell).astype(np.float32)
    bins = np.arange(8)
    distance = np.abs(position[..., None] - bins)
    distance = np.minimum(distance, 8 - distance)  # around the circle
    channels = magnitude[..., None] * np.maximum(0.0, 1.0 - distance)  # (H, n, W, 8)
    for image in range(n_images):
        for k in bins:
            full = cv2.sepFilter2D(np.ascontiguousarray(channels[:, image, :, k]), -1, triangle,
                                   triangle, borderType=cv2.BORDER_CONSTANT)
            np.testing.assert_allclose(lattice[image, :, :, k], full[np.ix_(rows, cols)],
                                       rtol=1e-4, atol=1e-5)
    # the dispatcher picks the lattice path for evenly spaced rows and columns
    np.testing.assert_array_equal(
        _pooled_orientation_maps(magnitude, position, 8, cell, rows, cols), lattice)


@pytest.mark.parametrize("width", [16, 32, 48, 64])
@pytest.mark.parametrize("n_rows", [1, 28, 75, 183])
def test_row_filter_equals_opencv_bit_for_bit(width, n_rows, camera):
    # short rows are filtered as transposed columns: the same values, to the
    # bit, as OpenCV's row filter, for any number of rows (no scalar tail)
    rows = camera[:n_rows, :width].astype(np.float32) / 255
    rows = np.ascontiguousarray(np.resize(rows, (n_rows, width)))
    for kernel in (np.float32([0.25, 0.5, 0.25]),
                   np.float32([-0.1, -0.2, 0.0, 0.2, 0.1]) * np.float32(0.7)):
        expected = cv2.filter2D(rows, -1, kernel[None, :], borderType=cv2.BORDER_REPLICATE)
        np.testing.assert_array_equal(_filter_rows(rows, kernel), expected)


def test_descriptor_sets_sharing_one_grid():
    rng = np.random.default_rng(0)
    descriptors = rng.random((5, 3, 8), dtype=np.float32)
    positions, scales = rng.random((3, 2), dtype=np.float32), np.full(3, 16, np.float32)
    sets = DescriptorSet.sharing_grid(descriptors, positions, scales, (20, 30))
    assert len(sets) == 5
    for image, descriptor_set in enumerate(sets):
        np.testing.assert_array_equal(descriptor_set.descriptors, descriptors[image])
        assert descriptor_set.positions is positions and descriptor_set.scales is scales
        assert descriptor_set.image_shape == (20, 30) and len(descriptor_set) == 3
        with pytest.raises(AttributeError):
            descriptor_set.scales = scales  # frozen like any other set
    assert DescriptorSet.sharing_grid(descriptors[:0], positions, scales, (20, 30)) == []
    with pytest.raises(ValueError, match="positions"):
        DescriptorSet.sharing_grid(descriptors, positions[:2], scales, (20, 30))
    with pytest.raises(ValueError, match="3-D"):
        DescriptorSet.sharing_grid(descriptors[0], positions, scales, (20, 30))


def test_dense_sift_results_never_share_work_memory(camera):
    # the work arrays are reused by the next call: what a call returns must
    # not live there (nor be changed by the next call)
    step = DenseSIFT(patch_sizes=(8, 16)).fit([camera])
    first = step.transform(np.stack([camera, camera[::-1]]))
    kept = [s.descriptors.copy() for s in first]
    step.transform(np.stack([camera[:, ::-1], camera[::-1, ::-1]]))
    for descriptor_set, expected in zip(first, kept):
        np.testing.assert_array_equal(descriptor_set.descriptors, expected)


@pytest.mark.parametrize("shape", [(61, 47), (28, 28), (45, 70)])
def test_lattice_path_describes_as_full_filtering(shape, camera, monkeypatch):
    # the lattice path differentiates only the columns its blocks cover and
    # treats everything else as zero; the filtering path differentiates all
    # of every image: the descriptors agree (up to float rounding)
    from featclf.features import sift

    height, width = shape
    images = np.stack([camera[:height, :width], camera[-height:, -width:]])
    lattice = DenseSIFT(contrast_threshold=0).fit(images).transform(images)
    monkeypatch.setattr(sift, "_is_lattice", lambda indices, spacing: False)
    sift._grid_plan.cache_clear()
    try:
        filtered = DenseSIFT(contrast_threshold=0).fit(images).transform(images)
    finally:
        sift._grid_plan.cache_clear()
    for a, b in zip(lattice, filtered):
        assert len(a) > 0
        np.testing.assert_allclose(a.descriptors, b.descriptors, rtol=1e-4, atol=2e-6)


def test_dense_grid_scales_share_centres():
    grid = dense_grid((100, 120), 8, (16, 24, 32, 40))
    centres = {(cell, tuple(first_x + 1.5 * cell)) for cell, first_x, _ in grid}
    xs = np.array([c[1] for c in sorted(centres)])
    assert np.ptp(xs, axis=0).max() <= 1.0  # aligned up to half-pixel snapping


@pytest.mark.parametrize(
    "params, match",
    [({"patch_sizes": (16, 18)}, "patch_sizes"), ({"patch_sizes": ()}, "patch_sizes"),
     ({"step": 0}, "step"), ({"n_cells": 3, "patch_sizes": (16,)}, "n_cells=3")],
)
def test_bad_parameters_are_named(params, match, camera):
    with pytest.raises(ValueError, match=match):
        DenseSIFT(**params).fit([camera])


@pytest.mark.parametrize("shape, patch_sizes", [((128, 64), (16, 24, 32, 40)), ((45, 50), (12, 24))])
def test_filtering_by_product_describes_as_cv2_filter(shape, patch_sizes, camera, monkeypatch):
    # the filtering path's passes as matrix products at the sampled columns
    # and rows (few columns) give cv2.filter2D's values: the same taps, and
    # the zero taps add exact zeros (measured bit for bit; allow float rounding)
    from featclf.features import sift

    height, width = shape
    images = np.stack([camera[:height, :width], camera[-height:, -width:],
                       camera[::-1, ::-1][:height, :width]])
    step = DenseSIFT(step=8, patch_sizes=patch_sizes, contrast_threshold=0).fit(images)
    plan = sift._grid_plan(shape, 8, patch_sizes, 4, 8, 2.0)
    assert any(not scale.on_lattice and len(scale.cols) <= 2 * (2 * scale.cell - 1)
               for scale in plan[0])  # the product is used
    by_product = step.transform(images)
    monkeypatch.setattr(sift, "_PRODUCT_COLUMNS_PER_TAP", 0)
    by_filter = step.transform(images)
    for a, b in zip(by_product, by_filter):
        assert len(a) > 0
        np.testing.assert_allclose(a.descriptors, b.descriptors, rtol=0, atol=1e-7)


def test_sampling_kernel_is_the_triangular_kernel():
    from featclf.features.sift import _sampling_kernel

    matrix = _sampling_kernel(9, (0, 4, 8), 3, 4)
    assert not matrix.flags.writeable  # cached
    assert matrix.shape == (9, 4) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[:, 3], 0.0)
    np.testing.assert_allclose(matrix[:, 1], [0, 0, 1 / 3, 2 / 3, 1, 2 / 3, 1 / 3, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(matrix[:3, 0], [1, 2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_array_equal(matrix[3:, 0], 0.0)  # zero outside the axis, no wrap
