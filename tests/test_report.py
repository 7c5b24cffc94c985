"""Evaluation reports (featclf.report) and the grid / evaluate commands."""

import json
import re

import numpy as np
import pytest

from featclf.cli import main
from featclf.evaluation import classification_summary, format_summary
from featclf.report import write_report
from featclf.testing import write_images

NAMES = ["cat", "dog", "owl"]


@pytest.fixture
def predictions(rgb_images):
    y_true = np.array(["cat", "cat", "dog", "dog", "owl", "owl", "cat", "dog"])
    y_pred = np.array(["cat", "dog", "dog", "dog", "owl", "cat", "cat", "dog"])
    return rgb_images, y_true, y_pred


def test_report_numbers_come_from_evaluation(tmp_path, predictions):
    images, y_true, y_pred = predictions
    paths = write_report(tmp_path, y_true, y_pred, NAMES, images=images,
                         sections=[("Search", "best: C=1")])
    expected = classification_summary([0, 0, 1, 1, 2, 2, 0, 1], [0, 1, 1, 1, 2, 0, 0, 1], NAMES)
    assert paths["summary"] == expected
    markdown = paths["markdown"].read_text()
    assert f"accuracy: **{expected['accuracy']:.4f}**" in markdown
    assert "| cat | 0.667 | 0.667 | 0.667 | 3 |" in markdown
    assert "| macro avg |" in markdown and "| weighted avg |" in markdown
    confusion_text = format_summary(expected).split("confusion matrix")[1]
    assert confusion_text in markdown
    assert "## Search" in markdown and "best: C=1" in markdown
    assert "## Misclassified images (2)" in markdown
    assert "| test image 1 | cat | dog |" in markdown


def test_html_is_self_contained(tmp_path, predictions):
    images, y_true, y_pred = predictions
    paths = write_report(tmp_path, y_true, y_pred, NAMES, images=images,
                         skipped=[("bad.jpg", "cannot be decoded")])
    page = paths["html"].read_text()
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http" not in page and "<link" not in page
    assert "<code>bad.jpg</code>: cannot be decoded" in page
    for key in ("confusion_png", "misclassified_png"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_misclassified_montage_shows_true_and_predicted(tmp_path, predictions):
    images, y_true, y_pred = predictions
    paths = write_report(tmp_path, y_true, y_pred, NAMES, images=images)
    from matplotlib.image import imread

    montage = imread(paths["misclassified_png"])
    assert montage.shape[0] > 100 and montage.shape[1] > 200
    assert "The montage shows the first 2." in paths["markdown"].read_text()


def test_no_montage_when_all_correct(tmp_path, predictions):
    images, y_true, _ = predictions
    paths = write_report(tmp_path, y_true, y_true, NAMES, images=images)
    assert "misclassified_png" not in paths
    assert "## Misclassified images (0)" in paths["markdown"].read_text()


def test_unknown_label_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="'emu' is not one of the class names"):
        write_report(tmp_path, ["cat"], ["emu"], NAMES)


# ------------------------------------------------------------------ commands

SPEC = """\
description = "colour histograms + linear SVM, small grid for tests"
pipeline = "color-linsvm"

[grid]
C = [0.1, 1.0]
bins = [4]
"""


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SPEC)
    return path


def grid_args(spec_file, out, *extra):
    return ["grid", str(spec_file), "--data", "digits", "--max-train", "240",
            "--max-test", "80", "--cv", "3", "--out", str(out), "--quiet", *extra]


def test_grid_command_writes_everything_and_resumes(spec_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(grid_args(spec_file, out)) == 0
    printed = capsys.readouterr().out
    for name in ("model.featclf", "report.html", "report.md", "results.jsonl",
                 "ranking.txt", "best_params.json", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    best = json.loads((out / "best_params.json").read_text())
    assert set(best) == {"clf__C", "color__bins"}
    test_accuracy = re.search(r"test accuracy: ([\d.]+)", printed).group(1)

    assert main(grid_args(spec_file, out)) == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    assert "(0 computed, 2 resumed" in (out / "report.md").read_text()

    assert main(["evaluate", str(out / "model.featclf"), "--data", "digits",
                 "--out", str(tmp_path / "ev"), "--quiet"]) == 0
    evaluated = capsys.readouterr().out
    assert f"accuracy: {test_accuracy}" in evaluated
    assert (tmp_path / "ev" / "report.html").is_file()


def test_grid_command_skips_unreadable_image(spec_file, tmp_path, rgb_images, capsys):
    data = tmp_path / "photos"
    for k, name in enumerate(["a", "b"]):
        (data / name).mkdir(parents=True)
        write_images(list(np.roll(rgb_images, k, axis=3)) * 2, data / name)
    (data / "b" / "image_00003.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "run"
    assert main(["grid", str(spec_file), "--data", str(data), "--test-size", "0.5",
                 "--cv", "2", "--out", str(out), "--quiet"]) == 0
    assert "skipped 1 unreadable image" in capsys.readouterr().out
    assert "image_00003.png" in (out / "report.md").read_text()

    assert main(["evaluate", str(out / "model.featclf"), "--data", str(data),
                 "--out", str(tmp_path / "ev"), "--quiet"]) == 0
    assert "skipped 1 image" in capsys.readouterr().out


@pytest.mark.parametrize("case, message", [
    ("spec-syntax", "TOML syntax error"),
    ("spec-missing", "does not exist"),
    ("data-missing", "does not exist"),
    ("data-empty", "class folder"),
    ("cache-unwritable", "cannot be written"),
])
def test_grid_command_bad_input(case, message, spec_file, tmp_path, capsys):
    args = grid_args(spec_file, tmp_path / "run")
    if case == "spec-syntax":
        spec_file.write_text(SPEC.replace("[grid]", "[grid"))
    elif case == "spec-missing":
        args[1] = str(tmp_path / "nope.toml")
    elif case == "data-missing":
        args[3] = str(tmp_path / "nowhere")
    elif case == "data-empty":
        (tmp_path / "empty").mkdir()
        args[3] = str(tmp_path / "empty")
    else:
        (tmp_path / "file").write_text("x")
        args += ["--cache", str(tmp_path / "file" / "cache")]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_evaluate_missing_model(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.featclf"), "--data", "digits"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_grid_search_script_runs_the_command(spec_file, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "grid_search.py"
    done = subprocess.run(
        [sys.executable, str(script), str(spec_file), "--data", "/nonexistent"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "does not exist" in done.stderr
