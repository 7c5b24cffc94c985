"""Train-time augmentation: identity at strength 0, seeded, fit-only, labels aligned."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC

from featclf.augmentation import (
    AugmentedClassifier,
    ImageAugmenter,
    adjust_brightness,
    adjust_contrast,
    affine_matrix,
    warp_image,
)

STRENGTHS = {
    "hflip": 1.0,
    "rotation": 20.0,
    "shift": 0.2,
    "crop": 0.3,
    "brightness": 0.3,
    "contrast": 0.5,
}


@pytest.fixture(scope="module")
def digits():
    """Real 8x8 digit images (uint8) and labels, 300 of them."""
    data = load_digits()
    images = (data.images[:300] * (255 / 16)).round().astype(np.uint8)
    return images, data.target[:300]


class _RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Remembers what fit saw; predicts the label of the nearest mean image."""

    def fit(self, X, y):
        self.X_seen_ = np.asarray(X)
        self.y_seen_ = np.asarray(y)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        means = np.asarray(X).reshape(len(X), -1).mean(axis=1)
        return self.classes_[np.abs(means[:, None] / 20 - self.classes_).argmin(axis=1)]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_default_augmenter_is_identity(rgb_images, dtype):
    images = rgb_images if dtype == np.uint8 else rgb_images.astype(np.float32) / 255
    out = ImageAugmenter(random_state=0).augment(images)
    assert out.dtype == images.dtype
    np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize("name", sorted(STRENGTHS))
def test_each_perturbation_is_identity_at_zero_and_acts_above(rgb_images, name):
    zero = ImageAugmenter(**{name: 0.0}, random_state=1).augment(rgb_images)
    np.testing.assert_array_equal(zero, rgb_images)
    strong = ImageAugmenter(**{name: STRENGTHS[name]}, random_state=1).augment(rgb_images)
    assert strong.shape == rgb_images.shape and strong.dtype == np.uint8
    assert not np.array_equal(strong, rgb_images)


def test_helpers_are_identity_at_neutral_strength(rgb_images):
    image = rgb_images[0]
    assert adjust_brightness(image, 0.0) is image
    assert adjust_contrast(image, 1.0) is image
    np.testing.assert_array_equal(affine_matrix(image.shape), [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(warp_image(image, affine_matrix(image.shape)), image)


def test_flip_brightness_and_contrast_do_what_they_say(rgb_images):
    flipped = ImageAugmenter(hflip=1.0).augment(rgb_images)
    np.testing.assert_array_equal(flipped, rgb_images[:, :, ::-1])
    image = np.full((10, 10), 100, np.uint8)
    np.testing.assert_array_equal(adjust_brightness(image, 0.2), np.full((10, 10), 151))
    gradient = np.tile(np.linspace(0, 1, 11, dtype=np.float32), (4, 1))
    lowered = adjust_contrast(gradient, 0.5)
    np.testing.assert_allclose(lowered, 0.5 + 0.5 * (gradient - 0.5), atol=1e-6)
    brightened = ImageAugmenter(brightness=0.1, random_state=0).augment(image[None].repeat(50, 0))
    change = brightened.reshape(50, -1).mean(axis=1) - 100
    assert np.all(np.abs(change) <= 0.1 * 255 + 0.5) and change.std() > 1


def test_shift_moves_content_with_constant_border():
    image = np.zeros((21, 21), np.uint8)
    image[10, 10] = 255
    out = ImageAugmenter(shift=0.2, border="constant", random_state=3).augment(
        image[None].repeat(20, 0))
    peaks = [np.unravel_index(np.argmax(o), o.shape) for o in out]
    offsets = np.abs(np.asarray(peaks) - 10)
    assert offsets.max() <= round(0.2 * 21) and len(set(peaks)) > 5


def test_augment_is_reproducible_and_per_image(rgb_images):
    augmenter = ImageAugmenter(**STRENGTHS)
    first = augmenter.augment(rgb_images, random_state=7)
    np.testing.assert_array_equal(first, augmenter.augment(rgb_images, random_state=7))
    np.testing.assert_array_equal(
        first, clone(augmenter).set_params(random_state=7).augment(rgb_images))
    assert not np.array_equal(first, augmenter.augment(rgb_images, random_state=8))
    # image i's draw depends on the seed and i only, not on later images
    np.testing.assert_array_equal(first[:3], augmenter.augment(rgb_images[:3], random_state=7))


def test_augment_keeps_list_form_and_sizes(rgb_images):
    images = [rgb_images[0], rgb_images[1][:30, :20]]
    out = ImageAugmenter(rotation=10, crop=0.2, random_state=0).augment(images)
    assert isinstance(out, list)
    assert [o.shape for o in out] == [(48, 40, 3), (30, 20, 3)]


def test_fit_adds_copies_with_aligned_labels():
    labels = np.arange(6).repeat(2)
    images = (labels[:, None, None] * 20 * np.ones((1, 12, 12))).astype(np.uint8)
    model = AugmentedClassifier(
        _RecordingClassifier(),
        ImageAugmenter(rotation=30, shift=0.2, crop=0.2, hflip=0.5),
        n_copies=3, random_state=0,
    ).fit(images, labels)
    inner = model.estimator_
    assert model.n_train_images_ == len(inner.y_seen_) == 12 * 4
    np.testing.assert_array_equal(inner.y_seen_, np.tile(labels, 4))
    # flat images stay flat under reflect-border warps: each copy keeps its label's grey
    np.testing.assert_array_equal(inner.X_seen_[:, 0, 0], inner.y_seen_ * 20)
    np.testing.assert_array_equal(model.classes_, np.arange(6))


def test_augmentation_never_runs_at_predict_time(digits, monkeypatch):
    images, labels = digits
    calls = []
    original = ImageAugmenter.augment

    def spy(self, X, random_state=None):
        calls.append(len(X))
        return original(self, X, random_state)

    monkeypatch.setattr(ImageAugmenter, "augment", spy)
    model = AugmentedClassifier(
        augmenter=ImageAugmenter(rotation=10, shift=0.1, border="constant"),
        n_copies=2, random_state=0,
    ).fit(images[:200], labels[:200])
    assert calls == [200, 200]
    predicted = model.predict(images[200:])
    model.predict_proba(images[200:])
    model.decision_function(images[200:])
    score = model.score(images[200:], labels[200:])
    assert calls == [200, 200]
    np.testing.assert_array_equal(predicted, model.estimator_.predict(images[200:]))
    assert score > 0.8


def test_classifier_is_reproducible_with_a_seed(digits):
    images, labels = digits
    augmenter = ImageAugmenter(rotation=15, shift=0.1, border="constant")

    def scores(seed):
        model = AugmentedClassifier(augmenter=augmenter, random_state=seed)
        return model.fit(images[:150], labels[:150]).decision_function(images[150:])

    np.testing.assert_array_equal(scores(0), scores(0))
    assert not np.array_equal(scores(0), scores(1))


def test_zero_copies_is_the_plain_estimator(digits):
    images, labels = digits
    plain = AugmentedClassifier(n_copies=0).fit(images[:150], labels[:150])
    assert plain.n_train_images_ == 150


def test_grid_search_varies_augmenter_params(digits):
    images, labels = digits
    model = AugmentedClassifier(augmenter=ImageAugmenter(border="constant"), random_state=0)
    assert "augmenter__rotation" in model.get_params()
    search = GridSearchCV(model, {"augmenter__rotation": [0, 10], "n_copies": [1]}, cv=2)
    search.fit(images[:120], labels[:120])
    assert set(search.cv_results_["param_augmenter__rotation"]) == {0, 10}
    assert search.best_estimator_.augmenter.rotation in (0, 10)


def test_bad_parameters_and_labels_raise(digits):
    images, labels = digits
    with pytest.raises(ValueError, match="rotation"):
        ImageAugmenter(rotation=-1).augment(images)
    with pytest.raises(ValueError, match="n_copies"):
        AugmentedClassifier(n_copies=-1).fit(images, labels)
    with pytest.raises(ValueError, match="300 images but y has 5"):
        AugmentedClassifier().fit(images, labels[:5])


def test_test_time_hflip_averages_the_image_and_its_mirror(digits):
    images, labels = digits
    model = AugmentedClassifier(n_copies=0, test_time_hflip=True).fit(images[:150], labels[:150])
    test = images[150:]
    mirrored = test[:, :, ::-1]
    inner = model.estimator_
    expected = (inner.predict_proba(test) + inner.predict_proba(mirrored)) / 2
    np.testing.assert_allclose(model.predict_proba(test), expected)
    np.testing.assert_allclose(
        model.decision_function(test),
        (inner.decision_function(test) + inner.decision_function(mirrored)) / 2)
    np.testing.assert_array_equal(model.predict(test), model.classes_[expected.argmax(1)])
    # digits are not mirror-symmetric: the averaged answer must differ somewhere
    assert not np.allclose(model.predict_proba(test), inner.predict_proba(test))
    # a list of images is mirrored image by image, like a stack
    np.testing.assert_allclose(model.predict_proba(list(test[:5])), expected[:5])


def test_test_time_hflip_with_decision_scores_only(digits):
    images, labels = digits
    binary = labels < 5
    pipeline = make_pipeline(FunctionTransformer(lambda x: np.asarray(x).reshape(len(x), -1)
                                                 / 255.0), LinearSVC())
    model = AugmentedClassifier(pipeline, n_copies=0, test_time_hflip=True)
    model.fit(images[:150], binary[:150])
    test = images[150:]
    scores = (model.estimator_.decision_function(test)
              + model.estimator_.decision_function(test[:, :, ::-1])) / 2
    assert not hasattr(model, "predict_proba")
    np.testing.assert_array_equal(model.predict(test), model.classes_[(scores > 0).astype(int)])
