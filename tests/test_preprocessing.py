import numpy as np
import pytest
from skimage.color import rgb2gray, rgb2hsv, rgb2lab

from featclf.preprocessing import ColorSpace, Grayscale, Resize, convert_color, to_gray


def test_resize_stretch_keeps_dtype(rgb_images):
    out = Resize((20, 30)).fit_transform(rgb_images)
    assert out.shape == (8, 20, 30, 3) and out.dtype == np.uint8
    floats = Resize(16).fit_transform(rgb_images / 255.0)
    assert floats.shape == (8, 16, 16, 3) and floats.dtype == np.float32


def test_resize_pad_keeps_aspect_and_pads():
    image = np.full((10, 40), 200, np.uint8)
    out = Resize((20, 20), mode="pad").fit_transform([image])[0]
    assert out.shape == (20, 20)
    # 10x40 scaled by 0.5 -> 5x20, centred vertically: rows 7..11 hold the image
    assert (out[:7] == 0).all() and (out[12:] == 0).all() and (out[7:12] == 200).all()


def test_resize_crop_fills_and_crops_centre():
    image = np.zeros((10, 40), np.uint8)
    image[:, 15:25] = 255
    out = Resize((10, 10), mode="crop", interpolation="nearest").fit_transform([image])[0]
    assert out.shape == (10, 10)
    assert (out == 255).all()


def test_resize_mixed_sizes_to_one_stack():
    images = [np.zeros((30, 40, 3), np.uint8), np.zeros((50, 20, 3), np.uint8)]
    out = Resize((16, 16), mode="pad").fit_transform(images)
    assert isinstance(out, np.ndarray) and out.shape == (2, 16, 16, 3)


@pytest.mark.parametrize("size", [(0, 5), "big", (1, 2, 3)])
def test_resize_bad_size(size):
    with pytest.raises(ValueError, match="size"):
        Resize(size).fit(np.zeros((1, 4, 4), np.uint8))


def test_grayscale_matches_skimage(rgb_images):
    gray = Grayscale().fit_transform(rgb_images)
    expected = np.rint(rgb2gray(rgb_images) * 255)
    assert gray.dtype == np.uint8
    assert np.abs(gray.astype(int) - expected).max() <= 1
    floats = Grayscale().fit_transform(rgb_images / 255.0)
    np.testing.assert_allclose(floats, rgb2gray(rgb_images / 255.0), atol=1e-6)
    np.testing.assert_array_equal(to_gray(gray[0]), gray[0])


def test_colorspace_scales_match_skimage(rgb_images):
    rgb = rgb_images / 255.0
    hsv = ColorSpace("hsv").fit_transform(rgb_images)
    assert hsv.dtype == np.float32 and hsv.min() >= 0 and hsv.max() <= 1
    expected_hsv = rgb2hsv(rgb)
    np.testing.assert_allclose(hsv[..., 1:], expected_hsv[..., 1:], atol=1e-4)  # float32
    hue_diff = np.abs(hsv[..., 0] - expected_hsv[..., 0])
    assert np.minimum(hue_diff, 1 - hue_diff)[expected_hsv[..., 1] > 0.05].max() < 1e-4
    lab = convert_color(rgb_images[0], "lab")
    expected_lab = rgb2lab(rgb[0])
    # OpenCV and scikit-image Lab agree to about 0.1 L (different constants)
    np.testing.assert_allclose(lab[..., 0] * 100, expected_lab[..., 0], atol=0.15)
    np.testing.assert_allclose(lab[..., 1:] * 255 - 128, expected_lab[..., 1:], atol=0.3)
