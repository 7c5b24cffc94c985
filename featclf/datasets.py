"""Loaders for the data sets featclf is tested on.

Only scikit-learn's ``load_digits`` is bundled (it ships inside
scikit-learn); every other loader takes the file path as an argument, so
nothing here downloads data or assumes where it lives.
"""

from typing import NamedTuple

import cv2
import numpy as np

__all__ = [
    "SplitDataset",
    "load_digits_images",
    "load_mnist",
    "load_cifar10",
    "load_brodatz_patches",
]


class SplitDataset(NamedTuple):
    """A data set with its standard train / test split.

    Attributes
    ----------
    x_train : ndarray of shape (n_train, H, W[, 3]), dtype uint8
    y_train : ndarray of shape (n_train,), dtype int64
    x_test : ndarray of shape (n_test, H, W[, 3]), dtype uint8
    y_test : ndarray of shape (n_test,), dtype int64
    class_names : list of str
        ``class_names[k]`` names label ``k``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list


def load_digits_images():
    """Return scikit-learn's 8x8 digits as uint8 images.

    The 0-16 grey levels are scaled to 0-255.

    Returns
    -------
    images : ndarray of shape (1797, 8, 8), dtype uint8
    labels : ndarray of shape (1797,), dtype int64
    class_names : list of str
        ``"0"`` to ``"9"``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target.astype(np.int64), [str(d) for d in range(10)]


def _subset(n_items, n_keep, random_state):
    if n_keep is None or n_keep >= n_items:
        return np.arange(n_items)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n_items, size=n_keep, replace=False))


def load_mnist(path, *, n_train=None, n_test=None, random_state=0):
    """Load MNIST from an ``.npz`` with ``x_train, y_train, x_test, y_test``.

    Parameters
    ----------
    path : str or os.PathLike
        The ``mnist.npz`` file.
    n_train, n_test : int, default=None
        Keep a seeded random subset of this many images (all when None).
    random_state : int, default=0
        Seed of the subsets.

    Returns
    -------
    dataset : SplitDataset
        Images ``(n, 28, 28)`` uint8, 0 = background.
    """
    with np.load(path) as data:
        train = _subset(len(data["y_train"]), n_train, random_state)
        test = _subset(len(data["y_test"]), n_test, random_state)
        return SplitDataset(
            data["x_train"][train], data["y_train"][train].astype(np.int64),
            data["x_test"][test], data["y_test"][test].astype(np.int64),
            [str(name) for name in data["class_names"]],
        )


def _decode_jpegs(buffer, offsets, indices):
    images = np.empty((len(indices), 32, 32, 3), np.uint8)
    for row, i in enumerate(indices):
        bgr = cv2.imdecode(buffer[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
        if bgr is None or bgr.shape != (32, 32, 3):
            raise ValueError(f"CIFAR-10 image {i} does not decode to 32x32 RGB")
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=images[row])
    return images


def load_cifar10(path, *, n_train=None, n_test=None, random_state=0):
    """Load CIFAR-10 from featclf's JPEG ``.npz`` or a lossless ``.npz``.

    The JPEG file holds ``train_jpeg``/``train_offsets`` (and the same for
    test): image ``i`` is the JPEG ``buf[off[i]:off[i+1]]``, decoded here
    with OpenCV. A file with ``x_train``/``x_test`` arrays is read as is.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.
    n_train, n_test : int, default=None
        Keep a seeded random subset of this many images (all when None).
        The JPEG test set is sorted by class, so a subset is drawn at
        random rather than taken from the front.
    random_state : int, default=0
        Seed of the subsets.

    Returns
    -------
    dataset : SplitDataset
        Images ``(n, 32, 32, 3)`` uint8 RGB.
    """
    with np.load(path) as data:
        names = [str(name) for name in data["class_names"]]
        if "train_jpeg" in data:
            parts = []
            for split, n_keep in (("train", n_train), ("test", n_test)):
                labels = data[f"y_{split}"]
                keep = _subset(len(labels), n_keep, random_state)
                images = _decode_jpegs(data[f"{split}_jpeg"], data[f"{split}_offsets"], keep)
                parts += [images, labels[keep].astype(np.int64)]
            return SplitDataset(*parts, names)
        train = _subset(len(data["y_train"]), n_train, random_state)
        test = _subset(len(data["y_test"]), n_test, random_state)
        return SplitDataset(
            data["x_train"][train], data["y_train"][train].astype(np.int64),
            data["x_test"][test], data["y_test"][test].astype(np.int64), names,
        )


def load_brodatz_patches(path):
    """Load the Brodatz 64x64 texture patch set (13 classes, 364 / 364).

    Parameters
    ----------
    path : str or os.PathLike
        The ``brodatz13_patches64.npz`` file.

    Returns
    -------
    dataset : SplitDataset
        Gray images ``(n, 64, 64)`` uint8.
    """
    with np.load(path) as data:
        return SplitDataset(
            data["x_train"], data["y_train"].astype(np.int64),
            data["x_test"], data["y_test"].astype(np.int64),
            [str(name) for name in data["class_names"]],
        )
