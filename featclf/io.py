"""Reading and validating images: featclf's one image input contract.

Every featclf step that takes images calls :func:`as_image_batch`, which accepts

* an ndarray of shape ``(n, H, W)`` (grayscale) or ``(n, H, W, C)`` with
  ``C`` in ``{1, 3, 4}``;
* a sequence of ndarrays, each ``(H, W)`` or ``(H, W, C)``, of possibly
  different sizes;
* a sequence of file paths (``str`` or ``os.PathLike``), decoded lazily,
  one chunk at a time, inside ``transform``.

Pixel rules (the same everywhere):

* ``uint8`` images hold values 0-255 and are kept as ``uint8``.
* floating-point images (``float16``/``float32``/``float64``) hold values in
  ``[0, 1]`` and are converted to ``float32``. Values outside ``[0, 1]``, NaN
  or infinity are an error (a float image in 0-255 is the usual mistake).
* every other dtype (``bool``, ``uint16``, ``int64``, ...) is an error with a
  hint on how to convert.
* ``(H, W, 1)`` becomes ``(H, W)``; RGBA drops its alpha channel (images are
  treated as opaque); channel order is RGB everywhere.
* files are always decoded to RGB ``uint8`` ``(H, W, 3)`` (grayscale files
  get three equal channels), so a folder mixing grayscale and colour JPEGs
  gives one consistent batch.
* in one batch every image must have the same number of channels.
"""

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "ImageBatch",
    "as_image_batch",
    "check_image",
    "read_image",
    "decode_image",
    "load_image_folder",
    "IMAGE_EXTENSIONS",
]

#: File name endings treated as images when a folder is scanned.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)

_FLOAT_TOLERANCE = 1e-6


def _is_path(item):
    return isinstance(item, (str, os.PathLike))


def read_image(path):
    """Decode one image file to an RGB ``uint8`` array.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.

    Returns
    -------
    image : ndarray of shape (H, W, 3), dtype uint8
        The decoded image, RGB channel order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is empty, truncated or not a decodable image.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file {path!r} does not exist")
    return decode_image(np.fromfile(path, dtype=np.uint8), f"image file {path!r}")


def decode_image(data, name="image data"):
    """Decode an encoded image (file contents) to an RGB ``uint8`` array.

    :func:`read_image` reads a file with it; servers decode uploads with it,
    so a model sees the same pixels from a file and from an upload.

    Parameters
    ----------
    data : bytes or ndarray of uint8
        The encoded image (JPEG, PNG, ...).
    name : str, default="image data"
        How error messages name the image.

    Returns
    -------
    image : ndarray of shape (H, W, 3), dtype uint8
        The decoded image, RGB channel order.

    Raises
    ------
    ValueError
        If the data is empty, truncated or not a decodable image.
    """
    data = np.frombuffer(data, dtype=np.uint8) if isinstance(
        data, (bytes, bytearray, memoryview)) else np.asarray(data, dtype=np.uint8)
    if data.size == 0:
        raise ValueError(f"{name} is empty (0 bytes)")
    if data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:].tobytes():
        # libjpeg decodes a cut-off JPEG with a grey bottom and only a warning.
        raise ValueError(f"{name} is a truncated JPEG (no end-of-image marker)")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{name} cannot be decoded: it is truncated or not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_image(image, name="image"):
    """Validate one in-memory image and bring it to featclf's pixel rules.

    Parameters
    ----------
    image : array-like of shape (H, W) or (H, W, C)
        One image; ``C`` is 1, 3 or 4.
    name : str, default="image"
        How error messages name this image (for example ``"image 3"``).

    Returns
    -------
    image : ndarray of shape (H, W) or (H, W, 3)
        ``uint8`` (0-255) or ``float32`` (0-1); alpha dropped, a single
        channel squeezed.

    Raises
    ------
    TypeError
        If the dtype is not uint8 or floating point.
    ValueError
        If the shape, channel count or values are invalid.
    """
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} is not an array-like image: {exc}") from None
    if image.dtype == object:
        raise TypeError(f"{name} has dtype object; expected uint8 or float pixels")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3):
        raise ValueError(
            f"{name} has shape {image.shape}: expected (H, W) or (H, W, C)"
        )
    if image.ndim == 3 and image.shape[2] not in (3, 4):
        raise ValueError(
            f"{name} has {image.shape[2]} channels (shape {image.shape}): "
            "expected 1 (gray), 3 (RGB) or 4 (RGBA)"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    return _check_pixels(image, name)


def _check_pixels(pixels, name):
    """Apply the dtype and value rules to one image or a stack of images."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype.kind == "f":
        pixels = pixels.astype(np.float32, copy=False)
        finite = np.isfinite(pixels)
        if not finite.all():
            where = _first_bad(~finite, name)
            raise ValueError(f"{where} contains NaN or infinite values")
        low, high = float(pixels.min()), float(pixels.max())
        if low < -_FLOAT_TOLERANCE or high > 1 + _FLOAT_TOLERANCE:
            where = _first_bad((pixels < -_FLOAT_TOLERANCE)
                               | (pixels > 1 + _FLOAT_TOLERANCE), name)
            raise ValueError(
                f"{where} is a float image with values outside [0, 1] "
                f"(min {low:g}, max {high:g}); float images must be scaled to "
                "[0, 1]: divide 0-255 data by 255 or pass it as uint8"
            )
        return pixels
    if pixels.dtype == bool:
        hint = "convert a mask with mask.astype(np.uint8) * 255"
    elif pixels.dtype.kind in "ui":
        hint = ("convert to uint8 (0-255) or to float in [0, 1], for example "
                "skimage.util.img_as_ubyte(image) or image / image.max()")
    else:
        hint = "pass uint8 (0-255) or float (0-1) pixels"
    raise TypeError(f"{name} has unsupported dtype {pixels.dtype}: {hint}")


def _first_bad(mask, name):
    """Name the first image of a stack where ``mask`` is true."""
    if name != "X" or mask.ndim < 3:
        return name
    index = int(np.argmax(mask.reshape(mask.shape[0], -1).any(axis=1)))
    return f"image {index}"


class ImageBatch(Sequence):
    """A validated, possibly lazy, batch of images.

    Indexing returns a validated image (decoding a file when the batch holds
    paths); :meth:`name` gives the label error messages use. Built by
    :func:`as_image_batch`; featclf steps use it, users need not.

    Parameters
    ----------
    items : ndarray of shape (n, H, W[, C]) or list
        A validated stack, a list of validated arrays, or a list of paths.
    is_paths : bool
        Whether ``items`` are file paths read on access.
    """

    def __init__(self, items, is_paths=False):
        self.items = items
        self.is_paths = is_paths

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ImageBatch(self.items[index], self.is_paths)
        if self.is_paths:
            return read_image(self.items[index])
        return self.items[index]

    def name(self, index):
        """Return how errors name image ``index`` (with its path, if any)."""
        if self.is_paths:
            return f"image {index} ({os.fspath(self.items[index])!r})"
        return f"image {index}"

    def load(self):
        """Return every image in memory.

        Returns
        -------
        images : ndarray of shape (n, H, W[, 3]) or list of ndarray
            A stack when all images share one shape and dtype, else a list.
        """
        if isinstance(self.items, np.ndarray):
            return self.items
        images = []
        for index in range(len(self)):
            try:
                images.append(self[index])
            except (OSError, ValueError) as exc:
                raise type(exc)(f"{self.name(index)}: {exc}") from exc
        return stack_if_uniform(images)


def stack_if_uniform(images):
    """Stack images into one ndarray when they share shape and dtype.

    Parameters
    ----------
    images : list of ndarray
        Validated images.

    Returns
    -------
    images : ndarray of shape (n, H, W[, 3]) or list of ndarray
        The stack, or the list unchanged when shapes or dtypes differ.
    """
    if images and all(
        img.shape == images[0].shape and img.dtype == images[0].dtype
        for img in images
    ):
        return np.stack(images)
    return images


def as_image_batch(X):
    """Validate an image batch ``X`` and wrap it as an :class:`ImageBatch`.

    In-memory images are validated at once (shape, channels, dtype, values);
    file paths are only checked for type here and decoded lazily on access.

    Parameters
    ----------
    X : ndarray of shape (n, H, W) or (n, H, W, C), or sequence
        An image stack, a sequence of arrays (sizes may differ), a sequence
        of paths, or an :class:`ImageBatch` (returned unchanged).

    Returns
    -------
    batch : ImageBatch
        ``n`` images following the pixel rules of :mod:`featclf.io`.

    Raises
    ------
    TypeError, ValueError
        With a message that names the offending image (index and path).
    """
    if isinstance(X, ImageBatch):
        return X
    if isinstance(X, (str, bytes, os.PathLike)):
        raise TypeError(
            f"X must be a batch of images or paths, got a single {type(X).__name__}"
            f" {X!r}; wrap it in a list: [{X!r}]"
        )
    if isinstance(X, np.ndarray) and X.dtype != object:
        return ImageBatch(_check_stack(X))
    if hasattr(X, "toarray") or hasattr(X, "iloc"):
        raise TypeError(
            f"X is a {type(X).__name__}: sparse and tabular input is not "
            "supported; featclf steps take images: an ndarray (n, H, W[, C]), "
            "a list of arrays or a list of file paths"
        )
    try:
        items = list(X)
    except TypeError:
        raise TypeError(
            f"X must be an ndarray or a sequence of images or paths, "
            f"got {type(X).__name__}"
        ) from None
    if not items:
        raise ValueError("X is empty: got 0 images, need at least 1")
    n_paths = sum(_is_path(item) for item in items)
    if n_paths == len(items):
        return ImageBatch(items, is_paths=True)
    if n_paths:
        first = next(i for i, item in enumerate(items) if _is_path(item))
        raise TypeError(
            f"X mixes file paths and arrays (image {first} is a path): "
            "pass only paths or only arrays"
        )
    images = [check_image(item, f"image {i}") for i, item in enumerate(items)]
    _check_same_channels(images)
    return ImageBatch(images)


def _channels(image):
    return 1 if image.ndim == 2 else image.shape[2]


def _check_same_channels(images):
    first = _channels(images[0])
    for index, image in enumerate(images):
        if _channels(image) != first:
            raise ValueError(
                f"image {index} has {_channels(image)} channel(s) but image 0 has "
                f"{first}; one batch must be all grayscale or all colour "
                "(add a Grayscale() step, or convert the images)"
            )


def _check_stack(X):
    if X.ndim == 4 and X.shape[3] == 1:
        X = X[..., 0]
    if X.ndim not in (3, 4):
        raise ValueError(
            f"X has shape {X.shape}: an image stack must be (n, H, W) or "
            "(n, H, W, C); for a single image use X[np.newaxis]"
        )
    if X.shape[0] == 0:
        raise ValueError("X is empty: got 0 images, need at least 1")
    if X.ndim == 4 and X.shape[3] not in (3, 4):
        raise ValueError(
            f"X has shape {X.shape}: images have {X.shape[3]} channels, "
            "expected 1, 3 or 4 (last axis)"
        )
    if X.shape[1] == 0 or X.shape[2] == 0:
        raise ValueError(f"X has shape {X.shape}: images are empty")
    if X.ndim == 4 and X.shape[3] == 4:
        X = X[..., :3]
    return _check_pixels(X, "X")


def load_image_folder(root, *, extensions=IMAGE_EXTENSIONS, min_classes=2):
    """List a labelled image folder laid out as ``root/<class>/<image>``.

    Parameters
    ----------
    root : str or os.PathLike
        The folder; each sub-folder is one class, named by the folder.
    extensions : set of str, default=IMAGE_EXTENSIONS
        File endings (lower case, with the dot) counted as images.
    min_classes : int, default=2
        Fewest classes accepted (a classifier needs two).

    Returns
    -------
    paths : list of str, length n
        Image paths, sorted by class then file name.
    labels : ndarray of shape (n,), dtype int64
        Index into ``class_names`` for each path.
    class_names : list of str
        Sorted class folder names.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist or is not a folder.
    ValueError
        If it holds fewer than ``min_classes`` class folders with images.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {os.fspath(root)!r} does not exist")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    paths, labels, class_names = [], [], []
    for class_dir in class_dirs:
        files = sorted(
            p for p in class_dir.iterdir()
            if p.is_file() and p.suffix.lower() in extensions
        )
        if not files:
            continue
        labels.extend([len(class_names)] * len(files))
        class_names.append(class_dir.name)
        paths.extend(os.fspath(p) for p in files)
    if len(class_names) < min_classes:
        found = ", ".join(class_names) or "none"
        raise ValueError(
            f"image folder {os.fspath(root)!r} has {len(class_names)} class "
            f"folder(s) with images (found: {found}); expected at least "
            f"{min_classes}, laid out as root/<class>/<image>"
        )
    return paths, np.asarray(labels, dtype=np.int64), class_names
