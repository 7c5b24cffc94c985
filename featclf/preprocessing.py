"""Image preprocessing steps and the colour conversions featclf uses.

The steps take and return image batches (see :mod:`featclf.io`): a stack
``(n, H, W[, 3])`` when the output images share one shape, else a list.
``uint8`` input stays ``uint8``; ``float32`` input stays ``float32`` in
``[0, 1]``.
"""

import numbers

import cv2
import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .base import ImageTransformer

__all__ = [
    "Resize",
    "Grayscale",
    "ColorSpace",
    "Deskew",
    "to_gray",
    "to_float",
    "to_rgb",
    "convert_color",
    "GRAY_WEIGHTS",
]

#: ITU-R BT.709 luma weights, the ones ``skimage.color.rgb2gray`` uses.
GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)

_GRAY_MATRIX = np.asarray([GRAY_WEIGHTS], dtype=np.float32)


def to_float(image):
    """Return ``image`` as float32 in ``[0, 1]``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3)
        uint8 (0-255) or float (0-1) pixels.

    Returns
    -------
    image : ndarray of the same shape, dtype float32
    """
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255)
    return image.astype(np.float32, copy=False)


def to_uint8(image):
    """Return ``image`` as uint8 (floats in [0, 1] are scaled and rounded).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3)

    Returns
    -------
    image : ndarray of the same shape, dtype uint8
    """
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def to_gray(image):
    """Convert an RGB image to gray with :data:`GRAY_WEIGHTS`.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3)
        Gray images are returned unchanged.

    Returns
    -------
    gray : ndarray of shape (H, W)
        Same dtype as the input (uint8 is rounded).
    """
    if image.ndim == 2:
        return image
    gray = cv2.transform(image, _GRAY_MATRIX)
    return gray.reshape(image.shape[:2])


def to_rgb(image):
    """Give a gray image three equal channels; RGB is returned unchanged.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3)

    Returns
    -------
    rgb : ndarray of shape (H, W, 3)
    """
    if image.ndim == 3:
        return image
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)


def convert_color(image, space):
    """Convert an RGB image to ``space`` with every channel scaled to [0, 1].

    The scales are fixed, never taken from the data: HSV hue is divided by
    360; CIE Lab (D65) is mapped as ``L / 100``, ``(a + 128) / 255`` and
    ``(b + 128) / 255``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3)
        uint8 or float32 RGB (gray images get three equal channels).
    space : {"rgb", "hsv", "lab"}
        Target colour space.

    Returns
    -------
    converted : ndarray of shape (H, W, 3), dtype float32
        Channels in ``[0, 1]``.
    """
    rgb = to_float(to_rgb(image))
    if space == "rgb":
        return rgb
    if space == "hsv":
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        hsv[:, :, 0] /= 360.0
        return hsv
    if space == "lab":
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
        lab[:, :, 0] /= 100.0
        lab[:, :, 1:] = (lab[:, :, 1:] + 128.0) / 255.0
        return np.clip(lab, 0.0, 1.0)
    raise ValueError(f"unknown colour space {space!r}; use 'rgb', 'hsv' or 'lab'")


def _check_size(size):
    if isinstance(size, numbers.Integral):
        size = (size, size)
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(
            f"Resize: size must be an int or a (height, width) pair, got {size!r}"
        ) from None
    if height < 1 or width < 1:
        raise ValueError(f"Resize: size must be positive, got {size!r}")
    return height, width


class Resize(ImageTransformer):
    """Resize every image to one size.

    Parameters
    ----------
    size : int or tuple of (int, int), default=(64, 64)
        Output ``(height, width)``; an int gives a square.
    mode : {"stretch", "pad", "crop"}, default="stretch"
        ``"stretch"`` resizes to exactly ``size`` (aspect ratio changes);
        ``"pad"`` keeps the aspect ratio, fits the whole image inside
        ``size`` and pads the borders with ``pad_value``; ``"crop"`` keeps
        the aspect ratio, fills ``size`` and crops the centre.
    interpolation : {"auto", "area", "linear", "cubic", "nearest"}, default="auto"
        ``"auto"`` uses area averaging when shrinking and bilinear when
        enlarging.
    pad_value : float, default=0
        Border value for ``mode="pad"``, in the image's own scale.
    n_jobs : int, default=None
        Parallel jobs (joblib's meaning).

    Examples
    --------
    >>> import numpy as np
    >>> from featclf.preprocessing import Resize
    >>> Resize((32, 48)).fit_transform(np.zeros((2, 20, 20), np.uint8)).shape
    (2, 32, 48)
    """

    _parameter_constraints = {
        "size": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "mode": [StrOptions({"stretch", "pad", "crop"})],
        "interpolation": [StrOptions({"auto", "area", "linear", "cubic", "nearest"})],
        "pad_value": [Interval(numbers.Real, None, None, closed="neither")],
        "n_jobs": [numbers.Integral, None],
    }

    _INTERPOLATIONS = {
        "area": cv2.INTER_AREA,
        "linear": cv2.INTER_LINEAR,
        "cubic": cv2.INTER_CUBIC,
        "nearest": cv2.INTER_NEAREST,
    }

    def __init__(self, size=(64, 64), *, mode="stretch", interpolation="auto",
                 pad_value=0, n_jobs=None):
        self.size = size
        self.mode = mode
        self.interpolation = interpolation
        self.pad_value = pad_value
        self.n_jobs = n_jobs

    def _fit_first_image(self, image):
        self.output_size_ = _check_size(self.size)

    def _resize_to(self, image, height, width):
        if self.interpolation == "auto":
            shrinking = height * width < image.shape[0] * image.shape[1]
            flag = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        else:
            flag = self._INTERPOLATIONS[self.interpolation]
        return cv2.resize(image, (width, height), interpolation=flag)

    def _resize(self, image):
        out_h, out_w = self.output_size_
        in_h, in_w = image.shape[:2]
        if self.mode == "stretch":
            return self._resize_to(image, out_h, out_w)
        scale_fn = min if self.mode == "pad" else max
        scale = scale_fn(out_h / in_h, out_w / in_w)
        new_h = max(1, round(in_h * scale))
        new_w = max(1, round(in_w * scale))
        resized = self._resize_to(image, new_h, new_w)
        if self.mode == "crop":
            top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
            return resized[top:top + out_h, left:left + out_w]
        out = np.full((out_h, out_w) + image.shape[2:], self.pad_value,
                      dtype=image.dtype)
        top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
        out[top:top + new_h, left:left + new_w] = resized
        return out

    def _transform_chunk(self, images):
        return [self._resize(image) for image in images]


class Grayscale(ImageTransformer):
    """Convert RGB images to gray with the BT.709 weights of scikit-image.

    Gray input passes through unchanged; uint8 stays uint8 (rounded) and
    float stays float32.

    Parameters
    ----------
    n_jobs : int, default=None
        Parallel jobs (joblib's meaning).
    """

    _parameter_constraints = {"n_jobs": [numbers.Integral, None]}

    def __init__(self, *, n_jobs=None):
        self.n_jobs = n_jobs

    def _transform_chunk(self, images):
        return [to_gray(image) for image in images]


class ColorSpace(ImageTransformer):
    """Convert RGB images to another colour space, channels scaled to [0, 1].

    See :func:`convert_color` for the fixed scales. The output is float32
    ``(H, W, 3)``, so later steps see an ordinary 3-channel float image.

    Parameters
    ----------
    space : {"rgb", "hsv", "lab"}, default="hsv"
        Target colour space.
    n_jobs : int, default=None
        Parallel jobs (joblib's meaning).
    """

    _parameter_constraints = {
        "space": [StrOptions({"rgb", "hsv", "lab"})],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(self, space="hsv", *, n_jobs=None):
        self.space = space
        self.n_jobs = n_jobs

    def _transform_chunk(self, images):
        return [convert_color(image, self.space) for image in images]


class Deskew(ImageTransformer):
    """Undo the slant of handwriting with a shear from the image moments.

    The shear ``x -> x + s * (y - H/2)`` with ``s = mu11 / mu02`` (central
    image moments of the gray image) makes the ink's principal axis
    vertical, the usual normalisation for digits (LeCun et al. 1998 report
    it helps every classifier on MNIST). Bilinear, zero border; an image
    with no vertical spread (``mu02`` about 0) is returned unchanged. Each
    image is deskewed on its own. Meant for dark-background ink images.

    Parameters
    ----------
    n_jobs : int, default=None
        Parallel jobs (joblib's meaning).

    Examples
    --------
    >>> import numpy as np
    >>> from featclf.preprocessing import Deskew
    >>> Deskew().fit_transform(np.zeros((2, 28, 28), np.uint8)).shape
    (2, 28, 28)
    """

    _parameter_constraints = {"n_jobs": [numbers.Integral, None]}

    def __init__(self, *, n_jobs=None):
        self.n_jobs = n_jobs

    def _transform_chunk(self, images):
        return [self._deskew(image) for image in images]

    @staticmethod
    def _deskew(image):
        moments = cv2.moments(to_float(to_gray(image)))
        if abs(moments["mu02"]) < 1e-2 * max(moments["m00"], 1e-12):
            return image
        skew = moments["mu11"] / moments["mu02"]
        height, width = image.shape[:2]
        matrix = np.float32([[1, skew, -0.5 * height * skew], [0, 1, 0]])
        return cv2.warpAffine(image, matrix, (width, height),
                              flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
