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
    for factory in FEATURES.values():
        steps = factory(n_jobs=2)
        assert steps[-1][1].get_params()["n_jobs"] == 2


def test_scaling_only_where_the_features_need_it():
    assert "scale" not in make_named_pipeline("hog-linsvm").named_steps
    assert "scale" in make_named_pipeline("lbp-linsvm").named_steps
    assert "scale" in make_named_pipeline("hog+color+lbp-linsvm").named_steps
    assert "scale" not in make_named_pipeline("color-rf").named_steps


def test_default_pipeline_on_digits():
    from featclf.datasets import load_digits_images

    images, labels, _ = load_digits_images()
    pipeline = make_named_pipeline("hog-linsvm").fit(images[::2], labels[::2])
    assert np.mean(pipeline.predict(images[1::2]) == labels[1::2]) > 0.97
