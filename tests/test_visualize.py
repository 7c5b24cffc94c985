"""Feature visualisation: the views' content and the saved picture."""

import numpy as np
import pytest

from featclf.visualize import extractor_views, plot_extractor_views


@pytest.fixture(scope="module")
def image():
    from skimage import data

    return data.chelsea()[::4, ::4]  # 75 x 113 RGB


def test_views_have_the_documented_content(image):
    views = extractor_views(image, pixels_per_cell=8, lbp_points=8)
    np.testing.assert_array_equal(views["image"], image)
    assert views["hog"].shape == image.shape[:2] and views["hog"].max() > 0
    assert views["hog_features"] == (75 // 8 - 1) * (113 // 8 - 1) * 4 * 9
    assert views["lbp"].shape == image.shape[:2]
    assert views["lbp"].min() >= 0 and views["lbp"].max() <= 9
    positions, sizes = views["sift_positions"], views["sift_sizes"]
    assert len(positions) == len(sizes) > 20 and views["sift_words"] is None
    assert np.all(positions - sizes[:, None] / 2 >= -0.5)
    assert np.all(positions[:, 0] + sizes / 2 <= 113.5)
    assert np.all(positions[:, 1] + sizes / 2 <= 75.5)
    np.testing.assert_allclose(views["color"].sum(axis=1), 1.0, atol=1e-5)


def test_gray_float_image_and_visual_words(image):
    from featclf.encoding import BagOfVisualWords
    from featclf.features import DenseSIFT

    gray = image.mean(axis=2).astype(np.float32) / 255
    bovw = BagOfVisualWords(n_words=5, random_state=0).fit(
        DenseSIFT().fit_transform(image[None]))
    views = extractor_views(gray, bovw=bovw)
    assert views["image"].shape == image.shape
    assert views["sift_words"].shape == (len(views["sift_positions"]),)
    assert set(np.unique(views["sift_words"])) <= set(range(5))


def test_picture_is_saved_from_python_and_cli(image, tmp_path):
    pytest.importorskip("matplotlib")
    from featclf.cli import main
    from featclf.testing import write_images

    figure = plot_extractor_views(image, tmp_path / "a.png")
    assert len(figure.axes) >= 5 and (tmp_path / "a.png").stat().st_size > 10_000
    (path,) = write_images([image], tmp_path)
    assert main(["visualize", path, "-o", str(tmp_path / "b.png"), "--resize", "60"]) == 0
    assert (tmp_path / "b.png").stat().st_size > 10_000
    assert main(["visualize", str(tmp_path / "missing.png")]) == 1
