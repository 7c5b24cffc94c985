"""scikit-learn's estimator checks and featclf's image-input checks, for every
public estimator (found by featclf.testing.all_estimators)."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from featclf.base import ImageTransformer
from featclf.testing import all_estimators, check_image_estimator, expected_failed_checks

ESTIMATORS = [cls() for _, cls in all_estimators()]


def test_estimators_are_found():
    names = {type(est).__name__ for est in ESTIMATORS}
    assert {"Resize", "Grayscale", "ColorSpace"} <= names


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=expected_failed_checks, xfail_strict=True
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "estimator",
    [est for est in ESTIMATORS if isinstance(est, ImageTransformer)],
    ids=lambda est: type(est).__name__,
)
def test_image_input_checks(estimator, rgb_images):
    if getattr(estimator, "_requires_model_file", False):
        # Documented class attribute: the default instance has no model file
        # to load, so its image checks run with the real model in its own tests.
        pytest.skip(f"{type(estimator).__name__} needs a model file (tests/test_cnn.py)")
    check_image_estimator(estimator, rgb_images)
