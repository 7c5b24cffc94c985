"""Labelled image sets for experiments: loading, seeded stratified splits,
duplicate removal across splits, and a fingerprint of the data.

A :class:`LabelledImages` holds either file paths (read lazily by the
pipeline) or an in-memory image stack, with one class-name label per image.
Labels are class *names* (strings), so a model fitted on them predicts names
and carries its classes with it.
"""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from .io import load_image_folder

__all__ = [
    "LabelledImages",
    "Splits",
    "load_labelled_folder",
    "load_splits",
    "split_stratified",
    "remove_duplicates",
    "content_hashes",
]


@dataclass
class LabelledImages:
    """Images with one class-name label each.

    Attributes
    ----------
    images : list of str or ndarray of shape (n, H, W[, C])
        File paths, or an image stack.
    labels : ndarray of shape (n,), dtype str
        Class name of each image.
    class_names : list of str
        Every class, sorted (also those absent from this subset).
    """

    images: object
    labels: np.ndarray
    class_names: list

    def __len__(self):
        return len(self.labels)

    @property
    def is_paths(self):
        """Whether :attr:`images` holds file paths."""
        return not isinstance(self.images, np.ndarray)

    def subset(self, indices):
        """Return the images at ``indices`` (an index array or a mask)."""
        indices = np.asarray(indices)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        if self.is_paths:
            images = [self.images[i] for i in indices]
        else:
            images = self.images[indices]
        return LabelledImages(images, self.labels[indices], self.class_names)

    def name(self, index):
        """Return how messages name image ``index``."""
        if self.is_paths:
            return os.fspath(self.images[index])
        return f"image {index}"

    def fingerprint(self):
        """Hex digest identifying these images and labels.

        Paths are identified by path, size and modification time (cheap:
        no file is read); arrays by their bytes.
        """
        digest = hashlib.sha256()
        digest.update("\n".join(self.labels.astype(str)).encode())
        if self.is_paths:
            for path in self.images:
                stat = os.stat(path)
                digest.update(f"{os.fspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        else:
            digest.update(f"{self.images.shape}{self.images.dtype}".encode())
            digest.update(np.ascontiguousarray(self.images).data)
        return digest.hexdigest()[:16]


@dataclass
class Splits:
    """Train, optional validation, and test images, and how they were made.

    Attributes
    ----------
    train, test : LabelledImages
    validation : LabelledImages or None
    source : str
        Where the data came from, for reports.
    removed_duplicates : list of (str, str)
        ``(kept, removed)`` names of byte-identical images dropped from a
        later split because an earlier split held the same bytes.
    """

    train: LabelledImages
    test: LabelledImages
    validation: LabelledImages | None = None
    source: str = ""
    removed_duplicates: list = None

    def fingerprint(self):
        """Hex digest of every split (what a cached result depends on)."""
        parts = [self.train.fingerprint(), self.test.fingerprint()]
        if self.validation is not None:
            parts.append(self.validation.fingerprint())
        return hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]


def load_labelled_folder(root):
    """List an image folder ``root/<class>/<image>`` as :class:`LabelledImages`."""
    paths, labels, class_names = load_image_folder(root)
    names = np.asarray(class_names)
    return LabelledImages(paths, names[labels], list(class_names))


def _from_arrays(x, y, class_names):
    names = np.asarray(class_names)
    return LabelledImages(np.asarray(x), names[np.asarray(y)], list(class_names))


def load_splits(data, *, test_dir=None, test_size=0.25, validation_size=0.0,
                        seed=0, dedupe=False, max_train=None, max_test=None):
    """Load a labelled image set and split it for an experiment.

    Parameters
    ----------
    data : str or os.PathLike
        ``"digits"`` (scikit-learn's bundled 8x8 digits, for quick demos);
        an ``.npz`` file read by
        :func:`featclf.datasets.load_mnist` (``x_train``, ``y_train``,
        ``x_test``, ``y_test``, ``class_names``) or, without ``x_train``,
        :func:`featclf.datasets.load_cifar10`; a folder holding ``train/`` and ``test/``
        image folders; or one image folder ``root/<class>/<image>``, which
        is split stratified into train and test with ``seed``.
    test_dir : str or os.PathLike, default=None
        A separate test image folder; ``data`` is then the training folder.
    test_size : float, default=0.25
        Fraction of the images held out for testing, when ``data`` is one
        folder.
    validation_size : float, default=0.0
        Fraction of the training images held out for validation (0: none).
    seed : int, default=0
        Seed of the stratified splits and subsets.
    dedupe : bool, default=False
        Remove test (and validation) images whose bytes equal those of an
        image of an earlier split.
    max_train, max_test : int, default=None
        Keep a stratified random subset of at most this many images.

    Returns
    -------
    splits : Splits

    Raises
    ------
    FileNotFoundError
        If a folder or file does not exist.
    ValueError
        If a folder holds no labelled images, or the classes of the train
        and test folders differ.
    """
    source = os.fspath(data)
    if test_dir is not None:
        train = load_labelled_folder(data)
        test = load_labelled_folder(test_dir)
        source = f"{os.fspath(data)} + {os.fspath(test_dir)}"
    elif source == "digits":
        train, test = _digits(seed)
        source = "scikit-learn digits (8x8, 1797 images)"
    elif str(source).endswith(".npz"):
        train, test = _npz(data, max_train, max_test, seed)
    else:
        root = Path(data)
        if not root.exists():
            raise FileNotFoundError(f"data folder {source!r} does not exist")
        if not root.is_dir():
            raise ValueError(f"data {source!r} is neither a folder, an .npz file nor 'digits'")
        if (root / "train").is_dir() and (root / "test").is_dir():
            train = load_labelled_folder(root / "train")
            test = load_labelled_folder(root / "test")
        else:
            everything = load_labelled_folder(root)
            train, test = split_stratified(everything, test_size, seed)
    if train.class_names != test.class_names:
        raise ValueError(
            f"train and test classes differ: {train.class_names} vs {test.class_names}"
        )
    if max_train is not None and max_train < len(train):
        train = _stratified_subset(train, max_train, seed)
    if max_test is not None and max_test < len(test):
        test = _stratified_subset(test, max_test, seed)
    validation = None
    if validation_size:
        train, validation = split_stratified(train, validation_size, seed)
    removed = []
    if dedupe:
        earlier = [train]
        if validation is not None:
            validation, dropped = remove_duplicates(earlier, validation)
            removed += dropped
            earlier.append(validation)
        test, dropped = remove_duplicates(earlier, test)
        removed += dropped
    return Splits(train=train, test=test, validation=validation, source=source,
                  removed_duplicates=removed)


def split_stratified(images, fraction, seed):
    """Split off a stratified random ``fraction`` of ``images``.

    Parameters
    ----------
    images : LabelledImages
    fraction : float
        In (0, 1): the share of the second part.
    seed : int

    Returns
    -------
    first, second : LabelledImages
    """
    if not 0 < fraction < 1:
        raise ValueError(f"split fraction must be in (0, 1), got {fraction!r}")
    indices = np.arange(len(images))
    first, second = train_test_split(indices, test_size=fraction,
                                     stratify=images.labels, random_state=seed)
    return images.subset(np.sort(first)), images.subset(np.sort(second))


def _stratified_subset(images, size, seed):
    kept, _ = split_stratified(images, 1 - size / len(images), seed)
    return kept


def content_hashes(images):
    """Return a digest of each image's bytes (file contents or pixels).

    Parameters
    ----------
    images : LabelledImages

    Returns
    -------
    hashes : list of str, length n
    """
    hashes = []
    for index in range(len(images)):
        if images.is_paths:
            data = Path(images.images[index]).read_bytes()
        else:
            data = np.ascontiguousarray(images.images[index]).data
        hashes.append(hashlib.sha1(data).hexdigest())
    return hashes


def remove_duplicates(earlier, later):
    """Drop from ``later`` the images byte-identical to one in ``earlier``.

    Parameters
    ----------
    earlier : list of LabelledImages
        Splits whose images are kept.
    later : LabelledImages
        The split to clean.

    Returns
    -------
    cleaned : LabelledImages
    removed : list of (str, str)
        ``(kept image, removed image)`` names.
    """
    seen = {}
    for split in earlier:
        for index, digest in enumerate(content_hashes(split)):
            seen.setdefault(digest, split.name(index))
    keep, removed = [], []
    for index, digest in enumerate(content_hashes(later)):
        if digest in seen:
            removed.append((seen[digest], later.name(index)))
        else:
            keep.append(index)
    return later.subset(np.asarray(keep, dtype=int)), removed


def _digits(seed):
    from .datasets import load_digits_images

    images, labels, class_names = load_digits_images()
    return split_stratified(_from_arrays(images, labels, class_names), 0.25, seed)


def _npz(path, n_train, n_test, seed):
    """An .npz data set with a standard split (MNIST layout, or CIFAR-10 JPEG)."""
    from . import datasets

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {os.fspath(path)!r} does not exist")
    with np.load(path) as arrays:
        keys = set(arrays.files)
    loader = datasets.load_mnist if "x_train" in keys else datasets.load_cifar10
    x_train, y_train, x_test, y_test, class_names = loader(
        path, n_train=n_train, n_test=n_test, random_state=seed)
    return (_from_arrays(x_train, y_train, class_names),
            _from_arrays(x_test, y_test, class_names))
