"""The image input contract: accepted forms and clear errors for bad input."""

import os

import numpy as np
import pytest

from featclf.io import as_image_batch, check_image, load_image_folder, read_image
from featclf.testing import write_images


def test_stack_list_and_paths_give_the_same_pixels(rgb_images, tmp_path):
    from_stack = as_image_batch(rgb_images).load()
    from_list = as_image_batch(list(rgb_images)).load()
    from_paths = as_image_batch(write_images(rgb_images, tmp_path)).load()
    np.testing.assert_array_equal(from_stack, rgb_images)
    np.testing.assert_array_equal(from_list, rgb_images)
    np.testing.assert_array_equal(from_paths, rgb_images)


def test_paths_are_read_lazily(tmp_path, rgb_images):
    paths = write_images(rgb_images[:2], tmp_path)
    batch = as_image_batch(paths + [str(tmp_path / "missing.png")])
    assert len(batch) == 3  # nothing decoded yet, so no error yet
    np.testing.assert_array_equal(batch[1], rgb_images[1])


def test_pathlike_and_gray_file_decode_to_rgb(tmp_path, gray_images):
    paths = write_images(gray_images[:1], tmp_path)
    image = as_image_batch([tmp_path / os.path.basename(paths[0])])[0]
    assert image.shape == gray_images[0].shape + (3,)
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], gray_images[0])


def test_float_images_become_float32_and_rgba_drops_alpha():
    rgba = np.random.default_rng(0).random((2, 5, 6, 4))
    batch = as_image_batch(rgba).load()
    assert batch.dtype == np.float32 and batch.shape == (2, 5, 6, 3)
    single = check_image(np.zeros((4, 4, 1), np.uint8))
    assert single.shape == (4, 4)


def test_different_sizes_stay_a_list():
    images = [np.zeros((4, 5), np.uint8), np.zeros((6, 3), np.uint8)]
    loaded = as_image_batch(images).load()
    assert isinstance(loaded, list) and [i.shape for i in loaded] == [(4, 5), (6, 3)]


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((0, 8, 8), np.uint8), ValueError, "empty"),
        ([], ValueError, "empty"),
        (np.zeros((8, 8), np.uint8), ValueError, r"shape \(8, 8\)"),
        (np.zeros((2, 8, 8, 3, 1), np.uint8), ValueError, "shape"),
        (np.zeros((2, 8, 8, 2), np.uint8), ValueError, "2 channels"),
        ("image.png", TypeError, "wrap it in a list"),
        (np.zeros((2, 4, 4), np.uint16), TypeError, "unsupported dtype uint16"),
        (np.zeros((2, 4, 4), bool), TypeError, "unsupported dtype bool"),
        (np.zeros((2, 4, 4), np.int64), TypeError, "unsupported dtype int64"),
        (np.full((2, 4, 4), 255.0), ValueError, r"outside \[0, 1\]"),
        ([np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint8)], ValueError,
         "image 1 has 3 channel"),
        ([np.zeros((4, 4)), "a.png"], TypeError, "mixes file paths and arrays"),
        ([np.zeros((4, 4), np.uint8), np.zeros((0, 4), np.uint8)], ValueError,
         "image 1 is empty"),
        ([np.zeros((4, 4), np.uint8), np.array([["a"]], dtype=object)], TypeError,
         "image 1 has dtype object"),
        (42, TypeError, "got int"),
    ],
)
def test_bad_input_gets_a_clear_error(X, error, match):
    with pytest.raises(error, match=match):
        as_image_batch(X)


def test_nan_names_the_image():
    images = np.zeros((3, 4, 4), np.float32)
    images[2, 1, 1] = np.nan
    with pytest.raises(ValueError, match="image 2 contains NaN"):
        as_image_batch(images)
    with pytest.raises(ValueError, match="image 1 contains NaN"):
        as_image_batch([images[0], images[2]])


def test_sparse_input_is_refused():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse"):
        as_image_batch(scipy_sparse.csr_matrix(np.eye(3)))


def test_bad_files_are_named(tmp_path, rgb_images):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    good = write_images(rgb_images[:1], tmp_path)[0]
    jpeg = tmp_path / "photo.jpg"
    import cv2

    cv2.imwrite(str(jpeg), rgb_images[0])
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    png_cut = tmp_path / "cut.png"
    png_cut.write_bytes(open(good, "rb").read()[:100])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"empty \(0 bytes\)"):
        read_image(empty)
    with pytest.raises(ValueError, match="cannot be decoded"):
        read_image(text)
    with pytest.raises(ValueError, match="truncated JPEG"):
        read_image(truncated)
    with pytest.raises(ValueError, match="cannot be decoded"):
        read_image(png_cut)


def test_transform_names_the_bad_file(tmp_path, rgb_images):
    from featclf.preprocessing import Resize

    paths = write_images(rgb_images[:3], tmp_path)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    paths.insert(1, str(tmp_path / "bad.png"))
    with pytest.raises(ValueError, match=r"image 1 \('.*bad.png'\).*cannot be decoded"):
        Resize((8, 8)).fit(paths[:1]).transform(paths)


def test_load_image_folder(tmp_path, rgb_images):
    for name, images in (("cats", rgb_images[:3]), ("dogs", rgb_images[3:5])):
        (tmp_path / name).mkdir()
        write_images(images, tmp_path / name)
    (tmp_path / "dogs" / "readme.txt").write_text("not an image")
    paths, labels, names = load_image_folder(tmp_path)
    assert names == ["cats", "dogs"]
    assert labels.tolist() == [0, 0, 0, 1, 1]
    assert all(p.endswith(".png") for p in paths)


def test_load_image_folder_errors(tmp_path, rgb_images):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="0 class folder"):
        load_image_folder(tmp_path)
    (tmp_path / "only").mkdir()
    write_images(rgb_images[:2], tmp_path / "only")
    with pytest.raises(ValueError, match=r"1 class folder.*only"):
        load_image_folder(tmp_path)
