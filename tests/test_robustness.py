"""Robustness report: perturbations are identities at strength 0; table shape."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from featclf.robustness import (
    DEFAULT_STRENGTHS,
    PERTURBATIONS,
    format_table,
    perturb,
    plot_robustness,
    robustness_table,
)


class _MeanBrightnessClassifier(ClassifierMixin, BaseEstimator):
    """Class 1 when the mean pixel is above 0.5 (a model that brightness breaks)."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict(self, X):
        X = np.asarray(X, dtype=np.float64)
        scale = 255.0 if np.asarray(X).max() > 1 else 1.0
        return (X.reshape(len(X), -1).mean(axis=1) / scale > 0.5).astype(int)


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_strength_zero_is_identity_and_positive_changes(rgb_images, name, dtype):
    images = rgb_images if dtype == np.uint8 else rgb_images.astype(np.float32) / 255
    np.testing.assert_array_equal(perturb(images, name, 0.0), images)
    strength = DEFAULT_STRENGTHS[name][2]
    changed = perturb(images, name, strength)
    assert changed.shape == images.shape and changed.dtype == images.dtype
    assert not np.array_equal(changed, images)


def test_perturbations_keep_gray_and_list_input(gray_images):
    images = [gray_images[0], gray_images[1][:20, :30]]
    for name in PERTURBATIONS:
        out = perturb(images, name, DEFAULT_STRENGTHS[name][1])
        assert [o.shape for o in out] == [(48, 40), (20, 30)]


def test_noise_is_seeded_and_scaled(gray_images):
    flat = np.full((200, 32, 32), 128, np.uint8)
    a = perturb(flat, "noise", 0.05, random_state=1)
    np.testing.assert_array_equal(a, perturb(flat, "noise", 0.05, random_state=1))
    assert abs(a.astype(float).std() - 0.05 * 255) < 0.5


def test_jpeg_and_contrast_strengths_mean_what_the_docs_say(rgb_images):
    flat = perturb(rgb_images, "contrast", 1.0)
    assert all(np.ptp(image.astype(int)) <= 1 for image in flat)
    mild = np.abs(perturb(rgb_images, "jpeg", 10).astype(int) - rgb_images).mean()
    harsh = np.abs(perturb(rgb_images, "jpeg", 90).astype(int) - rgb_images).mean()
    assert 0 < mild < harsh


def test_table_has_one_row_per_perturbation_and_strength(rgb_images):
    y = np.array([0, 1] * 4)
    perturbations = {"brightness": [0.0, 0.2, 0.4], "blur": [0.0, 1.0]}
    model = _MeanBrightnessClassifier().fit(rgb_images, y)
    table = robustness_table(model, rgb_images, y, perturbations)
    assert [(r["perturbation"], r["strength"]) for r in table] == [
        ("brightness", 0.0), ("brightness", 0.2), ("brightness", 0.4),
        ("blur", 0.0), ("blur", 1.0),
    ]
    assert all(set(r) == {"perturbation", "strength", "accuracy", "n_images"} for r in table)
    assert all(r["n_images"] == 8 and 0 <= r["accuracy"] <= 1 for r in table)
    clean = np.mean(model.predict(rgb_images) == y)
    assert table[0]["accuracy"] == table[3]["accuracy"] == clean
    # brightening by 0.4 makes every crop "bright": accuracy drops to the class-1 share
    assert table[2]["accuracy"] == 0.5


def test_default_table_covers_every_perturbation(rgb_images):
    y = np.array([0, 1] * 4)
    model = _MeanBrightnessClassifier().fit(rgb_images, y)
    table = robustness_table(model, rgb_images, y)
    assert len(table) == sum(len(s) for s in DEFAULT_STRENGTHS.values())
    markdown = format_table({"mean": table})
    assert markdown.count("\n") == 2 + len(DEFAULT_STRENGTHS)
    assert "| mean | noise | 0: " in markdown


def test_bad_arguments_raise(rgb_images):
    y = np.zeros(8, int)
    model = _MeanBrightnessClassifier().fit(rgb_images, y)
    with pytest.raises(ValueError, match="unknown perturbation 'fog'"):
        robustness_table(model, rgb_images, y, {"fog": [0.1]})
    with pytest.raises(ValueError, match="outside"):
        perturb(rgb_images, "jpeg", 100)
    with pytest.raises(ValueError, match="8 images but y has 3"):
        robustness_table(model, rgb_images, y[:3])


def test_plot_is_saved(rgb_images, tmp_path):
    pytest.importorskip("matplotlib")
    y = np.array([0, 1] * 4)
    model = _MeanBrightnessClassifier().fit(rgb_images, y)
    table = robustness_table(model, rgb_images, y, {"blur": [0, 1], "rotation": [0, 10]})
    figure = plot_robustness({"a": table, "b": table}, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 1000
    assert len([ax for ax in figure.axes if ax.get_visible()]) == 2


def test_command_line_writes_the_table(tmp_path, capsys):
    from featclf.cli import main

    out = tmp_path / "robustness.md"
    status = main(["robustness", "-p", "color-linsvm", "--perturbations", "blur,jpeg",
                   "--max-train", "300", "--max-test", "60", "--markdown", str(out)])
    assert status == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| color-linsvm | blur | 0: ")
    assert "| color-linsvm | jpeg | 0: " in capsys.readouterr().out
    assert main(["robustness", "--perturbations", "fog"]) == 1
