"""Train-time data augmentation for image classifiers.

Two pieces:

* :class:`ImageAugmenter` holds the augmentation parameters (flip, rotation,
  shift, crop, brightness, contrast) and draws one random perturbation per
  image with :meth:`ImageAugmenter.augment`. It is a parameter object
  (``get_params``/``set_params``/``clone`` work, so a grid search can vary
  ``augmenter__rotation``), not a pipeline step: it has no ``transform``, so
  it can never run at predict time by mistake.
* :class:`AugmentedClassifier` is a meta-estimator around a feature
  pipeline + classifier. Its ``fit`` adds ``n_copies`` augmented copies of
  every training image to the training set and fits the inner estimator on
  the result; ``predict``, ``predict_proba``, ``decision_function`` and
  ``score`` delegate to the fitted inner estimator, with one optional
  test-time augmentation: ``test_time_hflip=True`` averages the scores of
  each image and its left-right mirror.

Randomness comes from a seeded :class:`numpy.random.Generator`: the same
``random_state`` gives the same augmented images, whatever the batch holds
next to an image. Each perturbation at strength 0 is the identity.

The geometric helpers (:func:`affine_matrix`, :func:`warp_image`) and the
photometric ones (:func:`adjust_brightness`, :func:`adjust_contrast`) are
shared with :mod:`featclf.robustness`, which applies fixed perturbations.
"""

import numbers

import cv2
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .io import as_image_batch
from .preprocessing import to_float, to_gray

__all__ = [
    "ImageAugmenter",
    "AugmentedClassifier",
    "affine_matrix",
    "warp_image",
    "adjust_brightness",
    "adjust_contrast",
]

_BORDERS = {
    "reflect": cv2.BORDER_REFLECT_101,
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
}


def affine_matrix(shape, *, angle=0.0, scale=1.0, shift=(0.0, 0.0)):
    """Return the 2x3 matrix that rotates and scales about the centre, then shifts.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W, ...)``, the image shape.
    angle : float, default=0.0
        Counter-clockwise rotation in degrees.
    scale : float, default=1.0
        Zoom factor (> 1 enlarges, i.e. crops into the image).
    shift : tuple of float, default=(0.0, 0.0)
        ``(dx, dy)`` translation in pixels after rotation and scaling.

    Returns
    -------
    matrix : ndarray of shape (2, 3), dtype float64
        For :func:`cv2.warpAffine`; the identity when all arguments are neutral.
    """
    height, width = shape[:2]
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, float(angle), float(scale))
    matrix[:, 2] += shift
    return matrix


def warp_image(image, matrix, border="reflect"):
    """Apply an affine warp (bilinear) and keep shape and dtype.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3)
        uint8 (0-255) or float32 (0-1) pixels.
    matrix : ndarray of shape (2, 3)
        As from :func:`affine_matrix`.
    border : {"reflect", "constant", "replicate"}, default="reflect"
        How pixels outside the image are filled ("constant" fills with 0,
        right for dark-background images such as MNIST).

    Returns
    -------
    warped : ndarray, same shape and dtype as ``image``
    """
    height, width = image.shape[:2]
    return cv2.warpAffine(
        image, np.asarray(matrix, dtype=np.float64), (width, height),
        flags=cv2.INTER_LINEAR, borderMode=_BORDERS[border], borderValue=0,
    )


def _as_input_dtype(pixels, like):
    """Clip float pixels to [0, 1] and return them in ``like``'s dtype."""
    pixels = np.clip(pixels, 0.0, 1.0)
    if like.dtype == np.uint8:
        return np.rint(pixels * 255.0).astype(np.uint8)
    return pixels.astype(np.float32, copy=False)


def adjust_brightness(image, delta):
    """Add ``delta`` (in units of the full range) to every pixel, clipped.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3)
        uint8 (0-255) or float32 (0-1).
    delta : float
        Brightness change; 0.1 adds 25.5 grey levels to a uint8 image.

    Returns
    -------
    image : ndarray, same shape and dtype; ``image`` itself when ``delta == 0``
    """
    if delta == 0:
        return image
    return _as_input_dtype(to_float(image) + np.float32(delta), image)


def adjust_contrast(image, factor):
    """Scale the deviation of every pixel from the image's mean grey level.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3)
        uint8 (0-255) or float32 (0-1).
    factor : float
        1 keeps the image; 0.5 halves the contrast; 0 gives a flat image.

    Returns
    -------
    image : ndarray, same shape and dtype; ``image`` itself when ``factor == 1``
    """
    if factor == 1:
        return image
    pixels = to_float(image)
    mean = np.float32(to_gray(pixels).mean())
    return _as_input_dtype(mean + np.float32(factor) * (pixels - mean), image)


class ImageAugmenter(BaseEstimator):
    """Random flips, rotations, shifts, crops and brightness/contrast jitter.

    A parameter object, not a pipeline step: :meth:`augment` returns one
    randomly perturbed copy of every image. Wrap a classifier in
    :class:`AugmentedClassifier` to train on augmented copies. Every
    strength at 0 (the default) leaves images unchanged.

    Per image, a random draw picks: a horizontal flip with probability
    ``hflip``; an angle uniform in ``[-rotation, rotation]`` degrees; a
    shift uniform in ``[-shift, shift]`` times the width (x) and height
    (y); a centred zoom that crops a window whose side is
    ``1 - u * crop`` of the image (``u`` uniform in [0, 1]) and resizes it
    back; a brightness change uniform in ``[-brightness, brightness]``
    (fraction of the full range); a contrast factor uniform in
    ``[1 - contrast, 1 + contrast]``. The geometric part is one bilinear
    :func:`cv2.warpAffine`; the output keeps each image's shape and dtype.

    Parameters
    ----------
    hflip : float in [0, 1], default=0.0
        Probability of a left-right flip (0.5 for natural images; 0 for
        digits and text, where a flip changes the class).
    rotation : float >= 0, default=0.0
        Largest rotation, in degrees.
    shift : float in [0, 1), default=0.0
        Largest translation, as a fraction of the image size.
    crop : float in [0, 1), default=0.0
        Largest fraction of the side cut away by a random crop (then
        resized back to the original size).
    brightness : float >= 0, default=0.0
        Largest brightness change, as a fraction of the full range.
    contrast : float in [0, 1], default=0.0
        Largest relative contrast change.
    border : {"reflect", "constant", "replicate"}, default="reflect"
        How geometric transforms fill pixels from outside the image.
    random_state : int, RandomState instance or None, default=None
        Seed used by :meth:`augment` when it gets no ``random_state``.

    See Also
    --------
    AugmentedClassifier : fits a classifier on original + augmented images.

    Examples
    --------
    >>> import numpy as np
    >>> from featclf.augmentation import ImageAugmenter
    >>> images = np.zeros((4, 28, 28), dtype=np.uint8)
    >>> ImageAugmenter(rotation=10, shift=0.1, random_state=0).augment(images).shape
    (4, 28, 28)
    """

    _parameter_constraints = {
        "hflip": [Interval(numbers.Real, 0, 1, closed="both")],
        "rotation": [Interval(numbers.Real, 0, 180, closed="both")],
        "shift": [Interval(numbers.Real, 0, 1, closed="left")],
        "crop": [Interval(numbers.Real, 0, 1, closed="left")],
        "brightness": [Interval(numbers.Real, 0, 1, closed="both")],
        "contrast": [Interval(numbers.Real, 0, 1, closed="both")],
        "border": [StrOptions(set(_BORDERS))],
        "random_state": ["random_state"],
    }

    def __init__(self, hflip=0.0, rotation=0.0, shift=0.0, crop=0.0,
                 brightness=0.0, contrast=0.0, *, border="reflect",
                 random_state=None):
        self.hflip = hflip
        self.rotation = rotation
        self.shift = shift
        self.crop = crop
        self.brightness = brightness
        self.contrast = contrast
        self.border = border
        self.random_state = random_state

    def augment(self, X, random_state=None):
        """Return one randomly augmented copy of every image.

        Parameters
        ----------
        X : image batch
            See :mod:`featclf.io` for accepted forms.
        random_state : int, RandomState, Generator or None, default=None
            Seed for this call; ``None`` uses the ``random_state`` parameter.
            The draws for image ``i`` depend only on the seed and ``i``.

        Returns
        -------
        augmented : ndarray of shape (n, H, W[, 3]) or list of ndarray
            Same form, shapes and dtypes as the validated input (a stack
            when the images share a shape).
        """
        self._validate_params()
        batch = as_image_batch(X)
        draws = self._draw(len(batch), random_state)
        augmented = [self._augment_one(batch[i], draws[i]) for i in range(len(batch))]
        if isinstance(batch.items, np.ndarray):
            return np.stack(augmented)
        return augmented

    def _draw(self, n_images, random_state):
        """Draw the 7 uniform numbers of every image in one fixed order."""
        seed = self.random_state if random_state is None else random_state
        if isinstance(seed, np.random.Generator):
            rng = seed
        else:
            rng = np.random.default_rng(check_random_state(seed).randint(2**31 - 1))
        return rng.random((n_images, 7))

    def _augment_one(self, image, u):
        flip, angle, dx, dy, zoom, bright, contr = u
        if flip < self.hflip:
            image = image[:, ::-1].copy()
        height, width = image.shape[:2]
        if self.rotation or self.shift or self.crop:
            matrix = affine_matrix(
                image.shape,
                angle=(2 * angle - 1) * self.rotation,
                scale=1.0 / (1.0 - zoom * self.crop),
                shift=((2 * dx - 1) * self.shift * width,
                       (2 * dy - 1) * self.shift * height),
            )
            image = warp_image(image, matrix, self.border)
        image = adjust_brightness(image, (2 * bright - 1) * self.brightness)
        return adjust_contrast(image, 1 + (2 * contr - 1) * self.contrast)


def _pixel_rows(X):
    """Flatten every image of a same-shape batch to one row of 0-1 floats."""
    images = as_image_batch(X)
    return np.stack([to_float(images[i]).ravel() for i in range(len(images))])


def _default_estimator():
    return make_pipeline(FunctionTransformer(_pixel_rows), LogisticRegression(max_iter=500))


def _estimator_has(attr):
    def check(self):
        if hasattr(self, "estimator_"):
            return hasattr(self.estimator_, attr)
        estimator = self.estimator if self.estimator is not None else _default_estimator()
        return hasattr(estimator, attr)

    return check


class AugmentedClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Fit a classifier on the training images plus augmented copies.

    ``fit`` builds a training set of the ``n`` original images followed by
    ``n_copies`` augmented copies of each (``n * (1 + n_copies)`` images,
    labels repeated to match) and fits a clone of ``estimator`` on it.
    Prediction does not augment randomly: ``predict``, ``predict_proba``,
    ``decision_function`` and ``score`` pass the images to the fitted inner
    estimator; with ``test_time_hflip=True`` they also pass the mirrored
    images and average the two scores (probabilities when the inner
    estimator has ``predict_proba``, else decision scores), a deterministic
    test-time augmentation that suits natural images (not digits or text,
    where a mirror changes the class). It is the whole model, not a pipeline step:
    ``estimator`` is the image pipeline (preprocessing, extractor,
    classifier), so the augmentation acts on images. In a grid search, vary
    ``augmenter__rotation``, ``n_copies`` or ``estimator__<step>__<param>``.

    Parameters
    ----------
    estimator : estimator, default=None
        A classifier taking images (usually a featclf pipeline). ``None``
        uses logistic regression on the flattened pixels.
    augmenter : ImageAugmenter, default=None
        The augmentation; ``None`` uses ``ImageAugmenter()`` (no change,
        so the copies only duplicate the data).
    n_copies : int >= 0, default=1
        Augmented copies added per training image; 0 disables augmentation.
    random_state : int, RandomState instance or None, default=None
        Seeds the augmentation; each copy gets its own stream, so results
        are reproducible for a fixed seed.
    test_time_hflip : bool, default=False
        Average the scores of each image and of its left-right mirror at
        prediction time (twice the prediction cost).

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone of ``estimator``.
    classes_ : ndarray of shape (n_classes,)
        The class labels, from ``estimator_``.
    n_train_images_ : int
        Images the inner estimator was fitted on (originals + copies).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.svm import LinearSVC
    >>> from featclf.augmentation import AugmentedClassifier, ImageAugmenter
    >>> model = AugmentedClassifier(
    ...     make_pipeline(HOG(), LinearSVC()),                # doctest: +SKIP
    ...     ImageAugmenter(rotation=10, shift=0.1, border="constant"),
    ...     n_copies=2, random_state=0)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict"]), None],
        "augmenter": [HasMethods(["augment"]), None],
        "n_copies": [Interval(numbers.Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
        "test_time_hflip": ["boolean"],
    }

    def __init__(self, estimator=None, augmenter=None, *, n_copies=1,
                 random_state=None, test_time_hflip=False):
        self.estimator = estimator
        self.augmenter = augmenter
        self.n_copies = n_copies
        self.random_state = random_state
        self.test_time_hflip = test_time_hflip

    def fit(self, X, y, **fit_params):
        """Fit the inner estimator on the images plus augmented copies.

        Parameters
        ----------
        X : image batch of n images
            See :mod:`featclf.io` for accepted forms; paths are decoded
            here (augmentation needs the pixels).
        y : array-like of shape (n,)
            Class labels.
        **fit_params : dict
            Passed to the inner estimator's ``fit``; per-sample arrays
            (length ``n``) are repeated like ``y``.

        Returns
        -------
        self : AugmentedClassifier
        """
        self._validate_params()
        images = as_image_batch(X).load()
        y = np.asarray(y)
        if len(y) != len(images):
            raise ValueError(
                f"X has {len(images)} images but y has {len(y)} labels"
            )
        augmenter = self.augmenter if self.augmenter is not None else ImageAugmenter()
        seeds = check_random_state(self.random_state).randint(2**31 - 1, size=self.n_copies)
        parts = [images] + [augmenter.augment(images, random_state=int(seed))
                            for seed in seeds]
        if all(isinstance(part, np.ndarray) for part in parts):
            X_train = np.concatenate(parts)
        else:
            X_train = [image for part in parts for image in part]
        repeats = 1 + self.n_copies
        y_train = np.tile(y, repeats)
        fit_params = {
            key: np.tile(value, repeats) if _is_per_sample(value, len(y)) else value
            for key, value in fit_params.items()
        }
        estimator = self.estimator if self.estimator is not None else _default_estimator()
        self.estimator_ = clone(estimator).fit(X_train, y_train, **fit_params)
        self.n_train_images_ = len(y_train)
        return self

    @property
    def classes_(self):
        """Class labels of the fitted inner estimator."""
        check_is_fitted(self)
        return self.estimator_.classes_

    def predict(self, X):
        """Predict with the inner estimator.

        Without ``test_time_hflip`` this is the inner estimator's
        ``predict``; with it, the class of the highest averaged score.

        Parameters
        ----------
        X : image batch

        Returns
        -------
        y_pred : ndarray of shape (n,)
        """
        check_is_fitted(self)
        if not self.test_time_hflip:
            return self.estimator_.predict(X)
        method = ("predict_proba" if hasattr(self.estimator_, "predict_proba")
                  else "decision_function")
        scores = self._scores(method, X)
        if scores.ndim == 1:  # binary decision_function: positive means classes_[1]
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the inner estimator.

        Averaged over each image and its mirror with ``test_time_hflip``.

        Parameters
        ----------
        X : image batch

        Returns
        -------
        proba : ndarray of shape (n, n_classes)
        """
        check_is_fitted(self)
        return self._scores("predict_proba", X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision scores from the inner estimator.

        Averaged over each image and its mirror with ``test_time_hflip``.

        Parameters
        ----------
        X : image batch

        Returns
        -------
        scores : ndarray of shape (n,) or (n, n_classes)
        """
        check_is_fitted(self)
        return self._scores("decision_function", X)

    def _scores(self, method, X):
        """``method`` of the inner estimator, mirror-averaged if asked."""
        score = getattr(self.estimator_, method)
        if not self.test_time_hflip:
            return score(X)
        images = as_image_batch(X).load()
        mirrored = [np.ascontiguousarray(image[:, ::-1]) for image in images]
        if isinstance(images, np.ndarray):
            mirrored = np.stack(mirrored)
        return (score(images) + score(mirrored)) / 2

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


def _is_per_sample(value, n_samples):
    return hasattr(value, "__len__") and not isinstance(value, str) and len(value) == n_samples
