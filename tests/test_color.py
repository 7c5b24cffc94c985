import cv2
import numpy as np
import pytest

from featclf.features.color import ColorHistogram


def test_joint_hsv_histogram_equals_calchist(rgb_images):
    features = ColorHistogram("hsv", bins=8).fit_transform(rgb_images)
    assert features.shape == (8, 512) and features.dtype == np.float32
    hsv = cv2.cvtColor(rgb_images[3], cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 8, 8], [0, 180, 0, 256, 0, 256])
    np.testing.assert_allclose(features[3], hist.ravel() / hist.sum(), atol=1e-7)


def test_per_channel_grid_normalised_per_cell(rgb_images):
    est = ColorHistogram("rgb", bins=(4, 5, 6), mode="per_channel", grid=(2, 3))
    features = est.fit_transform(rgb_images)
    assert features.shape == (8, 2 * 3 * 15)
    cells = features.reshape(8, 6, 15)
    for start, stop in ((0, 4), (4, 9), (9, 15)):
        np.testing.assert_allclose(cells[..., start:stop].sum(-1), 1.0, atol=1e-6)
    names = est.get_feature_names_out()
    assert len(names) == features.shape[1] and names[0] == "colorhist_r0c0_R0"


def test_bins_fixed_not_from_batch(rgb_images):
    est = ColorHistogram("lab", bins=4).fit(rgb_images)
    dark = est.transform(rgb_images // 4)
    alone = est.transform(rgb_images[:1] // 4)
    np.testing.assert_array_equal(dark[:1], alone)


def test_gray_input_uses_three_equal_channels(gray_images):
    features = ColorHistogram("rgb", bins=4).fit_transform(gray_images)
    joint = features.reshape(-1, 4, 4, 4)
    off_diagonal = joint.sum() - sum(joint[:, i, i, i].sum() for i in range(4))
    assert off_diagonal == pytest.approx(0.0)


@pytest.mark.parametrize("params, match", [({"bins": 0}, "bins"), ({"bins": (4, 4)}, "bins"),
                                           ({"grid": (0, 1)}, "grid"),
                                           ({"color_space": "xyz"}, "color_space")])
def test_bad_parameters(params, match, rgb_images):
    with pytest.raises(ValueError, match=match):
        ColorHistogram(**params).fit(rgb_images)
