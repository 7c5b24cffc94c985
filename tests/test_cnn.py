"""CNNEmbedding with the real EfficientNet-Lite0 ONNX file from ../shared/models."""

import importlib.util
import os
import pickle
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from featclf.features import CNNEmbedding
from featclf.features.cnn import PRESETS, _make_blob, file_sha256
from featclf.testing import check_image_estimator

from conftest import REPO_ROOT, shared_path

MODEL_SHA256 = "3326a87d53264153bb6ac16d65319f9bc331930ede0e4fee79f63a2475050f4e"
HAS_ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None
BACKENDS = [
    "opencv",
    pytest.param(
        "onnxruntime",
        marks=pytest.mark.skipif(not HAS_ONNXRUNTIME, reason="onnxruntime not installed"),
    ),
]
CAT_CLASSES = {"Egyptian cat", "tiger cat", "tabby, tabby cat"}


@pytest.fixture(scope="module")
def model_path():
    return str(shared_path("models", "efficientnet_lite0_onnx", "efficientnet_lite0.onnx"))


@pytest.fixture(scope="module")
def labels():
    path = shared_path("models", "efficientnet_lite0_onnx", "imagenet_labels_1000.txt")
    return path.read_text().splitlines()


@pytest.fixture(scope="module")
def photos():
    """Three real photos of different sizes."""
    return [data.chelsea(), data.coffee(), data.astronaut()[::2, ::2]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_chelsea_top5_logits_hold_a_cat(model_path, labels, backend):
    logits = CNNEmbedding(model_path, output="logits", backend=backend).fit(
        [data.chelsea()]).transform([data.chelsea()])
    assert logits.shape == (1, 1000)
    top5 = [labels[i] for i in np.argsort(-logits[0])[:5]]
    assert CAT_CLASSES & set(top5), top5
    assert labels[int(np.argmax(logits[0]))] == "Egyptian cat"


def test_embedding_is_1280_float32_nonnegative_and_deterministic(model_path, photos):
    extractor = CNNEmbedding(model_path).fit(photos)
    first = extractor.transform(photos)
    assert extractor.n_features_out_ == 1280
    assert first.shape == (3, 1280) and first.dtype == np.float32
    assert (first >= 0).all() and np.isfinite(first).all()
    assert first.std(axis=1).min() > 0  # not a constant vector
    np.testing.assert_array_equal(extractor.transform(photos), first)
    names = extractor.get_feature_names_out()
    assert names[0] == "cnn_embedding0" and len(names) == 1280


@pytest.mark.skipif(not HAS_ONNXRUNTIME, reason="onnxruntime not installed")
@pytest.mark.parametrize("output", ["embedding", "logits"])
def test_opencv_and_onnxruntime_agree(model_path, photos, output):
    by_opencv = CNNEmbedding(model_path, output=output, backend="opencv").fit(
        photos).transform(photos)
    by_ort = CNNEmbedding(model_path, output=output, backend="onnxruntime").fit(
        photos).transform(photos)
    np.testing.assert_allclose(by_opencv, by_ort, atol=1e-4, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_input_checks_with_the_real_model(model_path, rgb_images, backend):
    # input forms, clone, pickle, subset/order invariance, n_jobs=1 vs 2
    check_image_estimator(
        CNNEmbedding(model_path, backend=backend, batch_size=3), rgb_images, atol=1e-4
    )


def test_batch_size_does_not_change_features(model_path, rgb_images):
    one = CNNEmbedding(model_path, batch_size=1).fit(rgb_images).transform(rgb_images)
    many = CNNEmbedding(model_path, batch_size=8).fit(rgb_images).transform(rgb_images)
    np.testing.assert_allclose(one, many, atol=1e-4, rtol=0)


def test_hflip_average_is_the_mean_over_the_mirror(model_path):
    images = np.stack([cv2.resize(data.chelsea(), (224, 224)), cv2.resize(data.coffee(), (224, 224))])
    plain = CNNEmbedding(model_path).fit(images)
    mirrored = plain.transform(np.ascontiguousarray(images[:, :, ::-1]))
    averaged = CNNEmbedding(model_path, hflip_average=True).fit(images).transform(images)
    np.testing.assert_allclose(averaged, (plain.transform(images) + mirrored) / 2, atol=1e-4)
    assert np.abs(averaged - plain.transform(images)).max() > 1e-3


def test_float_gray_and_uint8_rgb_inputs_agree(model_path):
    rgb = cv2.resize(data.chelsea(), (224, 224))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    extractor = CNNEmbedding(model_path).fit([rgb])
    as_uint8 = extractor.transform([rgb])
    as_float = extractor.transform([rgb.astype(np.float32) / 255])
    np.testing.assert_allclose(as_float, as_uint8, atol=1e-4)
    np.testing.assert_allclose(
        extractor.transform([gray]), extractor.transform([np.dstack([gray] * 3)]), atol=1e-4
    )


def test_blob_follows_the_preprocessing_parameters():
    image = data.chelsea()
    settings = dict(PRESETS["efficientnet_lite0"])
    blob = _make_blob([image], settings)
    manual = (cv2.resize(image, (224, 224)).astype(np.float32) - 127) / 128
    assert blob.shape == (1, 3, 224, 224) and blob.dtype == np.float32
    np.testing.assert_allclose(blob[0], manual.transpose(2, 0, 1), atol=1e-6)

    nhwc = _make_blob([image], dict(settings, layout="NHWC"))
    np.testing.assert_allclose(nhwc[0], manual, atol=1e-6)

    # mean and scale are given in the model's channel order
    bgr = _make_blob([image], dict(settings, channel_order="BGR", input_size=(20, 30),
                                   mean=(10.0, 20.0, 30.0), scale=(1.0, 0.5, 0.25)))
    small = cv2.resize(image, (30, 20)).astype(np.float32)[:, :, ::-1]
    expected = (small - [10, 20, 30]) * [1.0, 0.5, 0.25]
    assert bgr.shape == (1, 3, 20, 30)
    np.testing.assert_allclose(bgr[0], expected.transpose(2, 0, 1), atol=1e-4)


def test_pickled_pipeline_works_in_a_fresh_process(model_path, rgb_images, tmp_path):
    y = np.arange(len(rgb_images)) % 2
    pipeline = make_pipeline(CNNEmbedding(model_path, sha256=MODEL_SHA256),
                             LogisticRegression()).fit(rgb_images, y)
    extractor = pipeline[0]
    # only plain parameters and fitted numbers: no network object is stored
    for name, value in vars(extractor).items():
        assert isinstance(value, (str, int, float, bool, type(None))), (name, type(value))
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(pipeline))
    np.save(tmp_path / "images.npy", rgb_images)
    code = (
        "import pickle, sys, numpy as np\n"
        "d = sys.argv[1]\n"
        "model = pickle.load(open(d + '/model.pkl', 'rb'))\n"
        "x = np.load(d + '/images.npy')\n"
        "np.save(d + '/features.npy', model[0].transform(x))\n"
        "np.save(d + '/proba.npy', model.predict_proba(x))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=REPO_ROOT,
                   timeout=120)
    np.testing.assert_allclose(np.load(tmp_path / "features.npy"),
                               extractor.transform(rgb_images), atol=1e-4)
    np.testing.assert_allclose(np.load(tmp_path / "proba.npy"),
                               pipeline.predict_proba(rgb_images), atol=1e-4)


def test_model_file_is_required(rgb_images):
    with pytest.raises(ValueError, match="needs a model file"):
        CNNEmbedding().fit(rgb_images)


def test_missing_model_file_is_named(rgb_images, tmp_path):
    missing = tmp_path / "no_such_model.onnx"
    with pytest.raises(FileNotFoundError, match="no_such_model.onnx"):
        CNNEmbedding(missing).fit(rgb_images)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_onnx_file_is_a_clear_error(rgb_images, tmp_path, backend):
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"this is a text file, not an ONNX protobuf\n" * 50)
    with pytest.raises(ValueError, match="fake.onnx.*not a readable ONNX model"):
        CNNEmbedding(fake, backend=backend).fit(rgb_images)


def test_wrong_sha256_names_both_hashes(model_path, rgb_images):
    wrong = "0" * 64
    with pytest.raises(ValueError, match=f"{MODEL_SHA256}.*{wrong}"):
        CNNEmbedding(model_path, sha256=wrong).fit(rgb_images)
    assert file_sha256(model_path) == MODEL_SHA256


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_output_lists_the_outputs(model_path, rgb_images, backend):
    with pytest.raises(ValueError, match="no output named 'pool5'.*embedding.*logits"):
        CNNEmbedding(model_path, output="pool5", backend=backend).fit(rgb_images)


def test_bad_preprocessing_parameters(model_path, rgb_images):
    with pytest.raises(ValueError, match="input_size is required"):
        CNNEmbedding(model_path, preset=None).fit(rgb_images)
    with pytest.raises(ValueError, match="mean must be one finite number or three"):
        CNNEmbedding(model_path, mean=(1.0, 2.0)).fit(rgb_images)


def test_a_replaced_model_file_is_reloaded(model_path, rgb_images, tmp_path):
    copy = tmp_path / "model.onnx"
    shutil.copyfile(model_path, copy)
    extractor = CNNEmbedding(copy, backend="opencv").fit(rgb_images)
    copy.write_bytes(b"not a model any more")
    os.utime(copy, ns=(0, 0))  # a different mtime whatever the clock resolution
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        extractor.transform(rgb_images)


def test_named_cnn_pipeline_takes_the_model_path(model_path, rgb_images):
    from featclf.pipelines import make_named_pipeline

    y = np.arange(len(rgb_images)) % 2
    pipeline = make_named_pipeline("cnn-logreg", feature_params={"cnn": {"model_path": model_path}})
    assert [name for name, _ in pipeline.steps] == ["cnn", "scale", "clf"]
    assert (pipeline.fit(rgb_images, y).predict(rgb_images) == y).all()


def test_train_command_with_a_cnn_pipeline(model_path, capsys):
    from featclf.cli import main

    assert main(["train", "-p", "cnn-logreg", "--max-train", "30", "--max-test", "10"]) == 1
    assert "needs --cnn-model" in capsys.readouterr().err
    assert main(["train", "-p", "cnn-logreg", "--cnn-model", model_path,
                 "--max-train", "30", "--max-test", "10"]) == 0
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.skipif(not HAS_ONNXRUNTIME, reason="onnxruntime not installed")
def test_onnxruntime_names_a_fixed_input_size_mismatch(model_path, photos):
    """The ONNX file fixes 224x224: onnxruntime must say so and name the fix,
    while cv2.dnn reshapes the network and accepts another size."""
    by_ort = CNNEmbedding(model_path, input_size=256, backend="onnxruntime")
    with pytest.raises(ValueError, match=r"fixes its input shape.*backend='opencv'"):
        by_ort.fit(photos)  # fit runs the first image: the error comes early
    features = CNNEmbedding(model_path, input_size=256, backend="opencv").fit(
        photos).transform(photos[:1])
    assert features.shape == (1, 1280) and np.isfinite(features).all()
