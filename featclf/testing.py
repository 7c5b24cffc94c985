"""Estimator checks for image input, and the scikit-learn checks that cannot apply.

scikit-learn's ``parametrize_with_checks`` feeds estimators 2-D tabular data
``(n_samples, n_features)``. featclf's image steps take image batches
``(n, H, W[, C])`` (see :mod:`featclf.io`), and ``BagOfVisualWords`` takes
descriptor sets, so the checks that fit on 2-D numeric ``X`` cannot apply.
:data:`EXPECTED_FAILED_CHECKS` lists each one with its reason, in this one
place; :func:`check_image_estimator` runs featclf's image-input version of
what they test (input forms, clone, pickle, subset invariance, ``n_jobs``
determinism).

An estimator class that cannot work without an external file (a model) sets
the class attribute ``_requires_model_file = True``: its default instance
still goes through the scikit-learn checks, but ``tests/test_estimator_checks.py``
skips :func:`check_image_estimator` for it, and the estimator's own tests run
that check with a real file (``CNNEmbedding``: ``tests/test_cnn.py``).
"""

import os
import pickle
import tempfile

import cv2
import numpy as np
from sklearn.base import clone

__all__ = [
    "EXPECTED_FAILED_CHECKS",
    "CLASSIFIER_EXPECTED_FAILED_CHECKS",
    "expected_failed_checks",
    "check_image_estimator",
    "write_images",
]

_TABULAR = (
    "fits on a 2-D tabular X (n_samples, n_features); featclf image steps take "
    "image batches (n, H, W[, C]) and reject 2-D input with a clear error. "
)

#: check name -> why it cannot apply to featclf's image steps.
EXPECTED_FAILED_CHECKS = {
    "check_fit_score_takes_y": _TABULAR + "Image version: check_image_estimator.",
    "check_estimators_overwrite_params": _TABULAR + "clone/params: check_image_estimator.",
    "check_dont_overwrite_parameters": _TABULAR + "Image version: check_image_estimator.",
    "check_estimators_fit_returns_self": _TABULAR + "Image version: check_image_estimator.",
    "check_readonly_memmap_input": _TABULAR + "Image stacks may be read-only memmaps.",
    "check_n_features_in_after_fitting": _TABULAR
    + "Images have no n_features_in_; the output width is n_features_out_.",
    "check_n_features_in": _TABULAR + "Images have no n_features_in_.",
    "check_positive_only_tag_during_fit": _TABULAR,
    "check_estimators_dtypes": _TABULAR
    + "Image dtypes are uint8 (0-255) or float (0-1) only: tests/test_io.py.",
    "check_complex_data": _TABULAR + "Complex pixels are rejected by the image validator.",
    "check_dtype_object": _TABULAR + "Object pixels are rejected by the image validator.",
    "check_estimators_empty_data_messages": _TABULAR
    + "An empty image batch is tested in tests/test_io.py.",
    "check_pipeline_consistency": _TABULAR,
    "check_estimators_nan_inf": _TABULAR + "NaN images are tested in tests/test_io.py.",
    "check_estimators_pickle": _TABULAR + "Pickle round trip: check_image_estimator.",
    "check_estimators_pickle(readonly_memmap=True)": _TABULAR
    + "Pickle round trip: check_image_estimator.",
    "check_f_contiguous_array_estimator": _TABULAR,
    "check_transformer_data_not_an_array": _TABULAR
    + "Lists of images are an accepted form: check_image_estimator.",
    "check_transformer_general": _TABULAR,
    "check_transformer_general(readonly_memmap=True)": _TABULAR,
    "check_transformer_preserve_dtypes": _TABULAR
    + "Extractors always return float32, by design.",
    "check_methods_sample_order_invariance": _TABULAR
    + "Image version (order and subsets): check_image_estimator.",
    "check_methods_subset_invariance": _TABULAR
    + "Image version: check_image_estimator.",
    "check_fit2d_1sample": _TABULAR + "A 1-image batch is an accepted input.",
    "check_fit2d_1feature": _TABULAR,
    "check_dict_unchanged": _TABULAR,
    "check_fit_idempotent": _TABULAR,
    "check_fit_check_is_fitted": _TABULAR,
    "check_fit2d_predict1d": _TABULAR,
    "check_get_feature_names_out_error": _TABULAR,
    "check_set_output_transform": _TABULAR
    + "set_output applies to tabular features, not to image batches.",
    "check_global_output_transform_pandas": _TABULAR,
    "check_global_set_output_transform_polars": _TABULAR,
    "check_set_output_transform_pandas": _TABULAR,
    "check_set_output_transform_polars": _TABULAR,
    "check_requires_y_none": _TABULAR,
    "check_fit2d_1sample_fit_transform": _TABULAR,
    "check_sample_weight_equivalence_on_dense_data": _TABULAR,
}


#: the classifier checks (run only on classifiers, such as
#: featclf.augmentation.AugmentedClassifier) that fit on 2-D tabular X.
CLASSIFIER_EXPECTED_FAILED_CHECKS = {
    name: _TABULAR + "Image version: the estimator's own tests."
    for name in (
        "check_classifier_data_not_an_array",
        "check_classifiers_one_label",
        "check_classifiers_one_label_sample_weights",
        "check_classifiers_classes",
        "check_classifiers_train",
        "check_classifiers_train(readonly_memmap=True)",
        "check_classifiers_train(readonly_memmap=True,X_dtype=float32)",
        "check_classifiers_regression_target",
        "check_supervised_y_2d",
        "check_decision_proba_consistency",
    )
}


#: checks that additionally cannot apply to steps whose input is a list of
#: DescriptorSet (``BagOfVisualWords``), with reasons.
EXPECTED_FAILED_CHECKS_DESCRIPTOR_SETS = {
    "check_fit1d": "BagOfVisualWords takes a list of DescriptorSet; any ndarray "
    "(1-D included) is a TypeError saying a descriptor step (DenseSIFT, SIFT) "
    "is missing, not the ValueError this check expects. tests/test_encoding.py.",
}


def expected_failed_checks(estimator):
    """Return the expected failures for ``parametrize_with_checks``.

    Parameters
    ----------
    estimator : estimator instance
        A featclf image step, image classifier, or ``BagOfVisualWords``.

    Returns
    -------
    failures : dict of str to str
        Check name to reason, from :data:`EXPECTED_FAILED_CHECKS` (and
        :data:`CLASSIFIER_EXPECTED_FAILED_CHECKS` for classifiers,
        :data:`EXPECTED_FAILED_CHECKS_DESCRIPTOR_SETS` for descriptor-set
        input).
    """
    from sklearn.base import is_classifier

    from .encoding import BagOfVisualWords

    from .normalization import HellingerNormalizer

    if isinstance(estimator, HellingerNormalizer):
        return {}  # ordinary 2-D features: every scikit-learn check applies
    failures = dict(EXPECTED_FAILED_CHECKS)
    if is_classifier(estimator):
        failures.update(CLASSIFIER_EXPECTED_FAILED_CHECKS)
    if isinstance(estimator, BagOfVisualWords):
        failures.update(EXPECTED_FAILED_CHECKS_DESCRIPTOR_SETS)
    return failures


def write_images(images, folder):
    """Write images losslessly as PNG files and return their paths.

    Parameters
    ----------
    images : sequence of ndarray of shape (H, W) or (H, W, 3), dtype uint8
        RGB or gray images.
    folder : str or os.PathLike
        Existing folder to write into.

    Returns
    -------
    paths : list of str
        One path per image, in order.
    """
    paths = []
    for index, image in enumerate(images):
        path = os.path.join(os.fspath(folder), f"image_{index:05d}.png")
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(path, bgr):
            raise OSError(f"could not write {path!r}")
        paths.append(path)
    return paths


def _as_comparable(output):
    if isinstance(output, np.ndarray):
        return [output]
    if isinstance(output, list) and output and hasattr(output[0], "descriptors"):
        return [np.asarray(d.descriptors) for d in output] + [
            np.asarray(d.positions) for d in output
        ]
    return [np.asarray(item) for item in output]


def _assert_same(a, b, what, atol):
    a, b = _as_comparable(a), _as_comparable(b)
    assert len(a) == len(b), f"{what}: different lengths {len(a)} != {len(b)}"
    for left, right in zip(a, b):
        assert left.shape == right.shape, f"{what}: shapes {left.shape} != {right.shape}"
        np.testing.assert_allclose(left, right, atol=atol, rtol=0, err_msg=what)


def check_image_estimator(estimator, images, y=None, *, atol=1e-6):
    """Run featclf's image-input checks on one estimator.

    Checks that: each input form (stack, list of arrays, list of RGB PNG
    paths) gives the same output; ``clone``, a pickle round trip and a
    model-file (skops, allow-listed) round trip give the same output;
    transforming a subset equals the subset of the output; and
    ``n_jobs=1`` and ``n_jobs=2`` agree.

    Parameters
    ----------
    estimator : estimator instance
        An unfitted featclf image step (with a ``transform``).
    images : ndarray of shape (n, H, W, 3), dtype uint8
        At least 4 RGB images of one size (so that PNG paths, which decode
        to RGB, represent the same pixels).
    y : array-like of shape (n,), default=None
        Labels, for steps whose fit needs them.
    atol : float, default=1e-6
        Tolerance for comparing outputs.

    Raises
    ------
    AssertionError
        If any check fails, naming it.
    """
    images = np.asarray(images)
    assert images.dtype == np.uint8 and images.ndim == 4 and len(images) >= 4

    fitted = clone(estimator).fit(images, y)
    reference = fitted.transform(images)

    _assert_same(fitted.transform(list(images)), reference, "list of arrays", atol)
    with tempfile.TemporaryDirectory() as folder:
        paths = write_images(images, folder)
        _assert_same(fitted.transform(paths), reference, "list of paths", atol)

    refit = clone(estimator).fit(images, y).transform(images)
    _assert_same(refit, reference, "clone + refit", atol)

    restored = pickle.loads(pickle.dumps(fitted))
    _assert_same(restored.transform(images), reference, "pickle round trip", atol)

    from .persistence import dump_estimator, load_estimator  # model files (skops)

    restored = load_estimator(dump_estimator(fitted))
    _assert_same(restored.transform(images), reference, "model-file (skops) round trip",
                 atol)

    subset = [2, 0, 3]
    subset_out = fitted.transform(images[subset])
    if isinstance(reference, np.ndarray):
        expected = reference[subset]
    else:
        expected = [reference[i] for i in subset]
    _assert_same(subset_out, expected, "subset and order invariance", atol)

    if "n_jobs" in estimator.get_params():
        parallel = clone(estimator).set_params(n_jobs=2).fit(images, y)
        _assert_same(parallel.transform(images), reference, "n_jobs=2 vs n_jobs=1", atol)


def all_estimators():
    """Return every public featclf estimator class, found by importing featclf.

    Returns
    -------
    estimators : list of (str, type)
        ``(name, class)`` pairs sorted by name, for the public classes
        defined in featclf that derive from ``sklearn.base.BaseEstimator`` and
        have a ``fit`` (parameter objects such as ``ImageAugmenter`` do not).
    """
    import importlib
    import inspect
    import pkgutil

    from sklearn.base import BaseEstimator

    import featclf

    found = {}
    for module_info in pkgutil.walk_packages(featclf.__path__, "featclf."):
        if module_info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        try:
            module = importlib.import_module(module_info.name)
        except ImportError:  # an optional extra is not installed
            continue
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, BaseEstimator)
                and obj.__module__.startswith("featclf")
                and not name.startswith("_")
                and not inspect.isabstract(obj)
                and obj.__module__ == module.__name__
                and hasattr(obj, "fit")  # not parameter objects (ImageAugmenter)
                and name not in {"ImageTransformer", "FeatureExtractor"}
            ):
                found[name] = obj
    return sorted(found.items())
