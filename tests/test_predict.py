"""``featclf predict``: files and folders, CSV and JSON, bad files skipped."""

import csv
import io
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from featclf.cli import main
from featclf.datasets import load_digits_images
from featclf.io import read_image
from featclf.persistence import load_model, save_model
from featclf.pipelines import make_named_pipeline
from featclf.prediction import ImagePredictor
from featclf.testing import write_images

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: 64 colour features: a quick fit, still a real featclf pipeline
SMALL = {"color": {"bins": 4, "grid": (1, 1)}}


def _digits(n):
    images, labels, names = load_digits_images()
    big = np.stack([cv2.resize(img, (32, 32)) for img in images[:n]])
    return np.repeat(big[..., None], 3, axis=-1), labels[:n], names


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two model files on real digits: probabilities (logreg), scores (linsvm)."""
    images, labels, names = _digits(100)
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name in ("color-logreg", "color-linsvm"):
        pipeline = make_named_pipeline(name, feature_params=SMALL).fit(images, labels)
        paths[name] = folder / f"{name}.featclf"
        save_model(paths[name], pipeline, class_names=[f"digit{n}" for n in names])
    return paths


@pytest.fixture()
def image_folder(tmp_path):
    """Six good PNGs (two in a sub-folder), one corrupt PNG, one cut JPEG, a txt."""
    images, _, _ = _digits(106)
    root = tmp_path / "images"
    (root / "nested").mkdir(parents=True)
    write_images(images[100:104], root)
    write_images(images[104:106], root / "nested")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    ok, jpeg = cv2.imencode(".jpg", images[100])
    (root / "cut.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    (root / "notes.txt").write_text("not an image, not listed")
    return root


def _expected(model_path, paths):
    pipeline, metadata = load_model(model_path)
    predicted = pipeline.predict([read_image(p) for p in paths])
    names = dict(zip(metadata["classes"], metadata["class_names"]))
    return [names[int(label)] for label in predicted]


def test_folder_with_corrupt_images_reports_them_and_predicts_the_rest(
        models, image_folder, tmp_path, capsys):
    out = tmp_path / "out.json"
    status = main(["predict", str(models["color-logreg"]), str(image_folder),
                   "--format", "json", "--output", str(out), "--batch-size", "3"])
    assert status == 3
    records = json.loads(out.read_text())
    by_name = {os.path.basename(r["path"]): r for r in records}
    assert len(records) == 8 and "notes.txt" not in by_name
    for bad in ("corrupt.png", "cut.jpg"):
        assert by_name[bad]["error"] and "label" not in by_name[bad]
    good = [r for r in records if r["error"] is None]
    assert len(good) == 6
    assert [r["label"] for r in good] == _expected(models["color-logreg"],
                                                   [r["path"] for r in good])
    for record in good:
        probabilities = record["probabilities"]
        assert len(probabilities) == 10
        assert sum(probabilities.values()) == pytest.approx(1, abs=1e-5)
        assert next(iter(probabilities)) == record["label"]  # best first
    err = capsys.readouterr().err
    assert "corrupt.png" in err and "cut.jpg" in err and "2 of 8" in err


def test_csv_of_good_files_exits_zero(models, image_folder, capsys):
    good = sorted(str(p) for p in image_folder.glob("image_*.png"))
    assert main(["predict", str(models["color-linsvm"]), *good]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["path"] for row in rows] == good
    assert list(rows[0]) == (["path", "label"] + [f"score:digit{d}" for d in range(10)]
                             + ["error"])
    assert [row["label"] for row in rows] == _expected(models["color-linsvm"], good)
    assert all(row["error"] == "" for row in rows)


def test_top_k_and_missing_paths(models, image_folder, capsys):
    good = str(image_folder / "image_00000.png")
    status = main(["predict", str(models["color-logreg"]), good,
                   str(image_folder / "absent.png"), "--top-k", "2"])
    assert status == 3
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["path", "label", "top1", "top1_p", "top2", "top2_p", "error"]
    assert rows[0]["top1"] == rows[0]["label"]
    assert float(rows[0]["top1_p"]) >= float(rows[0]["top2_p"])
    assert rows[1]["error"] == "no such file or folder"


def test_unloadable_model_fails_with_a_message(image_folder, tmp_path, capsys):
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04K\x01.")
    assert main(["predict", str(pickled), str(image_folder)]) == 1
    assert "pickle" in capsys.readouterr().err


def test_gray_models_get_gray_images(models):
    pipeline, metadata = load_model(models["color-linsvm"])
    predictor = ImagePredictor(pipeline, {**metadata, "input": {"color": "gray"}})
    image = np.zeros((8, 8, 3), np.uint8)
    assert predictor.prepare(image).shape == (8, 8)
    assert ImagePredictor(pipeline, metadata).prepare(image).shape == (8, 8, 3)


def test_console_command_end_to_end(models, image_folder):
    good = str(image_folder / "nested")
    result = subprocess.run(
        [sys.executable, "-m", "featclf", "predict", str(models["color-logreg"]), good,
         "--format", "json"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 2


def test_train_save_then_predict_on_gray_digits(tmp_path, capsys):
    model = tmp_path / "digits.featclf"
    assert main(["train", "-p", "color-linsvm", "--save", str(model)]) == 0
    pipeline, metadata = load_model(model)
    assert metadata["input"]["color"] == "gray"  # digits are (n, 8, 8)
    assert metadata["metrics"]["test"]["accuracy"] > 0.1
    assert metadata["extra"]["pipeline"] == "color-linsvm"
    images, labels, _ = load_digits_images()
    paths = write_images(images[:5], tmp_path)  # gray PNGs, read back as RGB
    capsys.readouterr()
    assert main(["predict", str(model), *paths]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["label"] for row in rows] == [str(v) for v in pipeline.predict(images[:5])]


def test_predict_imports_only_what_the_model_needs(models, image_folder):
    """`featclf predict` with a plain model imports neither skops.io (whose
    allow-list imports every scikit-learn module) nor the extras other
    subcommands use: its cold start is imports (docs/latency.md)."""
    heavy = ("skops.io", "fastapi", "uvicorn", "matplotlib", "dask", "pytest",
             "onnxruntime", "sklearn.ensemble", "sklearn.cluster", "skimage.feature")
    code = (
        "import sys\n"
        "from featclf.cli import main\n"
        "status = main(sys.argv[1:])\n"
        f"print([name for name in {heavy!r} if name in sys.modules])\n"
        "sys.exit(status)\n"
    )
    for model in models.values():
        result = subprocess.run(
            [sys.executable, "-c", code, "predict", str(model), str(image_folder / "nested")],
            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1 + 2 + 1  # CSV header, 2 images, the modules
        assert lines[-1] == "[]"
