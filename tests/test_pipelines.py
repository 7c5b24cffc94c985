import numpy as np
import pytest
from sklearn.pipeline import FeatureUnion

from featclf.pipelines import FEATURES, make_named_pipeline, parse_pipeline_name, pipeline_names


def test_every_shipped_name_parses_and_builds():
    names = pipeline_names()
    assert {"hog-linsvm", "lbp-rbfsvm", "color-rf", "hog+color+lbp-linsvm"} <= set(names)
    for name in names:
        features, classifier = parse_pipeline_name(name)
        pipeline = make_named_pipeline(name)
        assert pipeline.steps[-1][0] == "clf"
        if len(features) > 1:
            assert isinstance(pipeline.named_steps["features"], FeatureUnion)


@pytest.mark.parametrize(
    "name, match",
    [("hog", "must read"), ("hogg-linsvm", "did you mean 'hog'"),
     ("hog-svm", "unknown classifier"), ("hog+hog-linsvm", "twice")],
)
def test_bad_names(name, match):
    with pytest.raises(ValueError, match=match):
        make_named_pipeline(name)


def test_feature_params_must_match_the_features():
    with pytest.raises(ValueError, match="does not use"):
        make_named_pipeline("color-linsvm", feature_params={"hog": {}})


def test_color_pipeline_fits_and_predicts_digits():
    from featclf.datasets import load_digits_images

    images, labels, _ = load_digits_images()
    pipeline = make_named_pipeline("color-linsvm", feature_params={"color": {"grid": (4, 4)}})
    pipeline.fit(images[:1000], labels[:1000])
    accuracy = np.mean(pipeline.predict(images[1000:]) == labels[1000:])
    assert accuracy > 0.5  # gray-level histograms over a 4x4 grid still see the strokes


def test_feature_factories_take_n_jobs():
    for name, factory in FEATURES.items():
        extractors = [est for _, est in factory(n_jobs=2) if "n_jobs" in est.get_params()]
        assert extractors and all(est.n_jobs == 2 for est in extractors), name


def test_scaling_only_where_the_features_need_it():
    steps = lambda name: [step for step, _ in make_named_pipeline(name).steps]  # noqa: E731
    assert steps("hog-linsvm") == ["resize", "hog", "clf"]
    assert steps("lbp-linsvm") == ["lbp", "scale", "clf"]
    assert steps("color-linsvm") == ["color", "hellinger", "clf"]
    assert steps("hog+color+lbp-linsvm") == ["features", "clf"]
    union = make_named_pipeline("hog+color+lbp-linsvm").named_steps["features"]
    assert [n for n, _ in union.transformer_list[1][1].steps] == ["color", "hellinger"]


def test_color_linear_svm_fits_fast_and_beats_chance_on_cifar10():
    from conftest import shared_path

    from featclf.datasets import load_cifar10

    data = load_cifar10(shared_path("data", "cifar10", "cifar10_jpeg.npz"),
                        n_train=1000, n_test=500)
    pipeline = make_named_pipeline("color-linsvm").fit(data.x_train, data.y_train)
    assert pipeline.named_steps["clf"].n_iter_ < 200  # standardised histograms: >1000
    assert pipeline.score(data.x_test, data.y_test) > 0.25  # chance is 0.10


def test_default_pipeline_on_digits():
    from featclf.datasets import load_digits_images

    images, labels, _ = load_digits_images()
    pipeline = make_named_pipeline("hog-linsvm").fit(images[::2], labels[::2])
    assert np.mean(pipeline.predict(images[1::2]) == labels[1::2]) > 0.97
