"""Model files: identical predictions after a round trip, and refusal of
tampered, foreign and code-running files."""

import datetime
import hashlib
import json
import os
import pickle
import zipfile

import cv2
import numpy as np
import pytest

from featclf.datasets import load_digits_images
from featclf.persistence import (
    FeatclfVersionWarning,
    ModelFileError,
    UntrustedTypesError,
    load_model,
    read_metadata,
    save_model,
)
from featclf.pipelines import make_named_pipeline, parse_pipeline_name, pipeline_names

#: fewer features than the defaults: quick fits; the round trip is the same
SMALL_FEATURES = {"hog": {"image_size": (32, 32)}, "color": {"bins": 4, "grid": (1, 1)}}


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Tiny fits: BLAS/OpenMP threads only add spin-waiting (seconds on a
    loaded 2-core machine, for a 4-word codebook)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits_rgb():
    """120 real digits, upscaled to 32x32 RGB uint8: 90 train, 30 test."""
    images, labels, names = load_digits_images()
    big = np.stack([cv2.resize(img, (32, 32), interpolation=cv2.INTER_LINEAR)
                    for img in images[:120]])
    rgb = np.repeat(big[..., None], 3, axis=-1)
    return rgb[:90], labels[:90], rgb[90:], labels[90:], names


def fitted_pipeline(name, digits_rgb):
    x_train, y_train, *_ = digits_rgb
    try:
        features, _ = parse_pipeline_name(name)
        small = {f: SMALL_FEATURES[f] for f in features if f in SMALL_FEATURES}
        pipeline = make_named_pipeline(name, random_state=0, feature_params=small)
    except (ImportError, FileNotFoundError) as exc:  # an extra or a model is absent
        pytest.skip(f"pipeline {name} is not available here: {exc}")
    forests = {k: 10 for k in pipeline.get_params() if k.endswith("n_estimators")}
    pipeline.set_params(**forests)  # 10 trees round-trip like 300, faster
    return pipeline.fit(x_train, y_train)


def _scores(pipeline, images):
    if hasattr(pipeline, "predict_proba"):
        return pipeline.predict_proba(images)
    return pipeline.decision_function(images)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, digits_rgb):
    pipeline = fitted_pipeline("color-linsvm", digits_rgb)
    path = tmp_path_factory.mktemp("model") / "digits.featclf"
    save_model(path, pipeline, class_names=digits_rgb[4],
               metrics={"test": {"accuracy": np.float64(0.5)}}, extra={"data": "digits"})
    return path


@pytest.mark.parametrize("name", pipeline_names())
def test_round_trip_gives_identical_predictions(name, digits_rgb, tmp_path):
    pipeline = fitted_pipeline(name, digits_rgb)
    x_test = digits_rgb[2]
    path = tmp_path / f"{name}.featclf"
    save_model(path, pipeline, class_names=digits_rgb[4])
    loaded, metadata = load_model(path)
    assert type(loaded) is type(pipeline)
    np.testing.assert_array_equal(loaded.predict(x_test), pipeline.predict(x_test))
    np.testing.assert_array_equal(_scores(loaded, x_test), _scores(pipeline, x_test))
    assert metadata["class_names"] == [str(d) for d in range(10)]


def test_metadata_records_what_a_user_needs(model_path):
    metadata = read_metadata(model_path)
    assert metadata["format"] == "featclf-model"
    assert metadata["class_names"] == [str(d) for d in range(10)]
    assert metadata["classes"] == list(range(10))
    assert metadata["input"] == {"size": None, "color": "rgb"}
    assert metadata["metrics"] == {"test": {"accuracy": 0.5}}
    assert metadata["extra"] == {"data": "digits"}
    assert set(metadata["versions"]) >= {"featclf", "scikit-learn", "numpy", "opencv",
                                         "scikit-image", "skops"}
    created = datetime.datetime.fromisoformat(metadata["created"])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - created).days) < 1
    with zipfile.ZipFile(model_path) as archive:
        payload = archive.read("model.skops")
    assert metadata["model"]["sha256"] == hashlib.sha256(payload).hexdigest()


def test_input_size_comes_from_the_resize_step(digits_rgb, tmp_path):
    x_train, y_train, *_ = digits_rgb
    from featclf.preprocessing import Resize
    from sklearn.pipeline import make_pipeline
    from featclf.features import ColorHistogram
    from sklearn.linear_model import LogisticRegression

    pipeline = make_pipeline(Resize((24, 20)), ColorHistogram(),
                             LogisticRegression(max_iter=300)).fit(x_train, y_train)
    metadata = save_model(tmp_path / "m.featclf", pipeline, color="rgb")
    assert metadata["input"] == {"size": [24, 20], "color": "rgb"}
    assert load_model(tmp_path / "m.featclf").metadata["input"]["size"] == [24, 20]


def test_class_names_indexed_by_integer_label(digits_rgb, tmp_path):
    x_train, y_train, *_ = digits_rgb
    keep = np.isin(y_train, [3, 7])
    pipeline = make_named_pipeline("color-linsvm").fit(x_train[keep], y_train[keep])
    metadata = save_model(tmp_path / "m.featclf", pipeline, class_names=digits_rgb[4])
    assert metadata["class_names"] == ["3", "7"]
    with pytest.raises(ValueError, match="class_names"):
        save_model(tmp_path / "n.featclf", pipeline, class_names=["a"])


def test_save_refuses_unfitted_and_untrusted(tmp_path, digits_rgb):
    from sklearn.dummy import DummyClassifier
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(NotFittedError):
        save_model(tmp_path / "m.featclf", make_named_pipeline("color-linsvm"))
    x_train, y_train, *_ = digits_rgb
    flatten = FunctionTransformer(np.reshape, kw_args={"shape": (len(x_train), -1)})
    pipeline = make_pipeline(flatten, DummyClassifier()).fit(x_train, y_train)
    with pytest.raises(UntrustedTypesError, match="numpy.reshape") as info:
        save_model(tmp_path / "m.featclf", pipeline)
    assert info.value.types == ["numpy.reshape"]
    assert not os.listdir(tmp_path)  # nothing written, no temporary file left


def _rewrite(src, dst, *, metadata=None, payload=None, fix_hash=True):
    """Copy a model file, replacing its metadata and/or payload."""
    with zipfile.ZipFile(src) as archive:
        old_metadata = json.loads(archive.read("metadata.json"))
        old_payload = archive.read("model.skops")
    metadata = old_metadata if metadata is None else metadata
    payload = old_payload if payload is None else payload
    if fix_hash:  # what an attacker who edits the file would do
        metadata["model"]["sha256"] = hashlib.sha256(payload).hexdigest()
        metadata["model"]["size_bytes"] = len(payload)
    with zipfile.ZipFile(dst, "w") as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("model.skops", payload)
    return dst


def test_edited_payload_is_refused_by_its_hash(model_path, tmp_path):
    with zipfile.ZipFile(model_path) as archive:
        payload = bytearray(archive.read("model.skops"))
    payload[len(payload) // 2] ^= 0xFF
    path = _rewrite(model_path, tmp_path / "edited.featclf", payload=bytes(payload),
                    fix_hash=False)
    with pytest.raises(ModelFileError, match="SHA-256.*modified or corrupted"):
        load_model(path)


def test_flipped_byte_anywhere_is_refused_or_harmless(model_path, digits_rgb, tmp_path):
    """A flipped byte is refused with a ModelFileError (never another error),
    unless it hit zip bookkeeping no content depends on (timestamps,
    attributes): then the model must predict exactly as before. Flips in
    zip headers once escaped as EOFError / NotImplementedError."""
    x_test = digits_rgb[2]
    reference = load_model(model_path).pipeline.decision_function(x_test)
    original = model_path.read_bytes()
    refused = 0
    for position in range(len(original)):  # every byte: a few seconds
        data = bytearray(original)
        data[position] ^= 0x55
        path = tmp_path / f"flipped{position}.featclf"
        path.write_bytes(bytes(data))
        try:
            pipeline, _ = load_model(path)
        except ModelFileError:
            refused += 1
            continue
        np.testing.assert_array_equal(pipeline.decision_function(x_test), reference)
    assert refused >= 0.9 * len(original)


class _WritesMarker:
    """Unpickling this runs open(marker, 'w'): a stand-in for any payload."""

    def __init__(self, marker):
        self.marker = os.fspath(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_with_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "payload-ran"
    data = pickle.dumps(_WritesMarker(marker))
    pickle.loads(data).close()  # the payload is live: unpickling runs it
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "model.featclf"
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(path)
    import joblib

    joblib.dump(_WritesMarker(marker), tmp_path / "model.joblib")
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(tmp_path / "model.joblib")
    assert not marker.exists()


def test_pickle_inside_a_model_file_is_refused_without_running(model_path, tmp_path):
    marker = tmp_path / "payload-ran"
    path = _rewrite(model_path, tmp_path / "evil.featclf",
                    payload=pickle.dumps(_WritesMarker(marker)))
    with pytest.raises(ModelFileError, match="not a valid skops file"):
        load_model(path)
    assert not marker.exists()


def test_untrusted_type_in_payload_is_refused_and_listed(model_path, tmp_path):
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    evil = FunctionTransformer(func=os.system, kw_args={"command": "touch x"})
    path = _rewrite(model_path, tmp_path / "evil.featclf", payload=skops.io.dumps(evil))
    with pytest.raises(UntrustedTypesError, match=r"allow-list: .*system") as info:
        load_model(path)
    assert any(name.endswith(".system") for name in info.value.types)


@pytest.mark.parametrize("kind, message", [
    ("text", "not a zip archive"),
    ("empty", "not a zip archive"),
    ("zip without metadata", "no metadata.json"),
    ("bare skops", "bare skops file"),
    ("foreign metadata", "does not describe a featclf model"),
    ("newer format", "upgrade featclf"),
    ("no payload", "no model.skops"),
])
def test_foreign_files_are_refused(model_path, tmp_path, kind, message):
    path = tmp_path / "foreign.featclf"
    metadata = read_metadata(model_path)
    if kind == "text":
        path.write_text("hello, not a model\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "zip without metadata":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hi")
    elif kind == "bare skops":
        import skops.io

        skops.io.dump(load_model(model_path).pipeline, path)
    elif kind == "foreign metadata":
        _rewrite(model_path, path, metadata={**metadata, "format": "something-else"})
    elif kind == "newer format":
        _rewrite(model_path, path, metadata={**metadata, "format_version": 99})
    elif kind == "no payload":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("metadata.json", json.dumps(metadata))
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "absent.featclf")


def test_version_mismatch_warns_and_still_loads(model_path, tmp_path):
    metadata = read_metadata(model_path)
    metadata["versions"].update({"scikit-learn": "1.0.2", "featclf": "0.0.1"})
    path = _rewrite(model_path, tmp_path / "old.featclf", metadata=metadata)
    with pytest.warns(FeatclfVersionWarning,
                      match=r"featclf 0\.0\.1 \(saved\).*scikit-learn 1\.0\.2 \(saved\)"):
        pipeline, _ = load_model(path)
    assert hasattr(pipeline, "predict")


def test_same_versions_do_not_warn(model_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FeatclfVersionWarning)
        load_model(model_path)


@pytest.mark.parametrize("encoding", ["hard", "soft", "vlad", "fisher"])
def test_bag_of_visual_words_survives_a_model_file_round_trip(rgb_images, encoding):
    from featclf.encoding import BagOfVisualWords
    from featclf.features import DenseSIFT
    from featclf.persistence import dump_estimator, load_estimator

    descriptors = DenseSIFT().fit_transform(rgb_images)
    bovw = BagOfVisualWords(n_words=4, encoding=encoding, pyramid_levels=1,
                            pca_components=8, random_state=0).fit(descriptors)
    restored = load_estimator(dump_estimator(bovw))
    np.testing.assert_array_equal(restored.transform(descriptors),
                                  bovw.transform(descriptors))


def test_augmented_classifier_survives_a_model_file_round_trip(digits_rgb):
    from featclf.augmentation import AugmentedClassifier, ImageAugmenter
    from featclf.persistence import dump_estimator, load_estimator

    x_train, y_train, x_test, *_ = digits_rgb
    model = AugmentedClassifier(make_named_pipeline("color-linsvm"),
                                ImageAugmenter(hflip=0.5, random_state=0)).fit(x_train, y_train)
    restored = load_estimator(dump_estimator(model))
    np.testing.assert_array_equal(restored.decision_function(x_test),
                                  model.decision_function(x_test))


@pytest.mark.slow  # a real CNN on 28 images: seconds
def test_cnn_pipeline_round_trip_keeps_the_model_path(digits_rgb, tmp_path):
    from conftest import shared_path

    onnx = shared_path("models", "efficientnet_lite0_onnx", "efficientnet_lite0.onnx")
    x_train, y_train, x_test, *_ = digits_rgb
    pipeline = make_named_pipeline("cnn-logreg", feature_params={"cnn": {"model_path": onnx}})
    keep = np.isin(y_train, [0, 1])
    pipeline.fit(x_train[keep][:20], y_train[keep][:20])
    save_model(tmp_path / "cnn.featclf", pipeline)
    loaded, metadata = load_model(tmp_path / "cnn.featclf")
    np.testing.assert_array_equal(loaded.predict_proba(x_test[:8]),
                                  pipeline.predict_proba(x_test[:8]))
    assert "CNNEmbedding" in metadata["estimator"]


# --- the fast reader of plain skops payloads (featclf.skops_reader) ---------

def _assert_same_object(a, b, where="obj"):
    """Deep equality of two rebuilt objects: types, arrays, attributes."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _assert_same_object(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_object(x, y, f"{where}[{i}]")
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        _assert_same_object(vars(a), vars(b), f"{where}.__dict__")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


def _accept_like_load_estimator(type_name):
    from featclf.persistence import _is_public_sklearn_estimator, _is_trusted_beyond_skops

    return _is_public_sklearn_estimator(type_name) or _is_trusted_beyond_skops(type_name, None)


@pytest.mark.parametrize("name", pipeline_names())
def test_plain_payloads_are_rebuilt_without_skops_io_as_skops_would(name, digits_rgb):
    """Every shipped pipeline but forests (TreeNode) and the intersection
    kernel SVM (FunctionNode) is read by featclf's reader, into the object
    skops builds; the others are left to skops."""
    import skops.io

    from featclf.persistence import dump_estimator
    from featclf.skops_reader import NOT_HANDLED, read_skops_subset

    pipeline = fitted_pipeline(name, digits_rgb)
    payload = dump_estimator(pipeline)
    fast = read_skops_subset(payload, _accept_like_load_estimator)
    if name.endswith("-rf") or "hiksvm" in name:
        assert fast is NOT_HANDLED
        return
    assert fast is not NOT_HANDLED
    by_skops = skops.io.loads(payload, trusted=skops.io.get_untrusted_types(data=payload))
    _assert_same_object(fast, by_skops)
    x_test = digits_rgb[2]
    np.testing.assert_array_equal(_scores(fast, x_test), _scores(pipeline, x_test))


def test_sklearn_types_accepted_without_skops_are_exactly_skops_defaults():
    """The reader accepts a scikit-learn type only if skops' default
    allow-list holds it (checked over every class of every scikit-learn
    module, all imported by that list), and it misses none of that list."""
    import inspect
    import sys

    from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES

    from featclf.persistence import _is_public_sklearn_estimator

    skops_names = set(SKLEARN_ESTIMATOR_TYPE_NAMES)
    assert {n for n in skops_names if not _is_public_sklearn_estimator(n)} == set()
    seen = set()
    for module_name, module in list(sys.modules.items()):
        if module is None or not module_name.startswith("sklearn."):
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__.startswith("sklearn."):
                seen.add(f"{cls.__module__}.{cls.__name__}")
    assert len(seen) > 2 * len(skops_names)
    assert {n for n in seen if _is_public_sklearn_estimator(n)} <= skops_names
    for name in ("os.system", "builtins.eval", "sklearn", "sklearn.svm._classes._fit_liblinear",
                 "sklearn.utils._mocking.CheckingClassifier", "sklearn.base.BaseEstimator",
                 "sklearn.externals.array_api_compat.numpy", "sklearn.no_such.Module"):
        assert not _is_public_sklearn_estimator(name), name


def test_other_types_read_without_skops_are_in_skops_defaults():
    from skops.io._trusted_types import NUMPY_DTYPE_TYPE_NAMES, PRIMITIVE_TYPE_NAMES

    from featclf.skops_reader import _KEY_TYPES, _NUMPY_SCALARS

    assert _NUMPY_SCALARS <= set(NUMPY_DTYPE_TYPE_NAMES)
    assert set(_KEY_TYPES) <= set(PRIMITIVE_TYPE_NAMES)


_MARKER_MODULE = """
import pathlib
pathlib.Path(__file__).with_suffix(".imported").touch()

class Evil:
    def __setstate__(self, state):
        pathlib.Path(__file__).with_suffix(".constructed").touch()
"""


def _edited_schema(model_path, edit, tmp_path, *, members=None):
    """Return a payload of ``model_path`` whose schema.json went through
    ``edit(schema)`` (and with ``members`` replaced)."""
    import io

    with zipfile.ZipFile(model_path) as archive:
        payload = archive.read("model.skops")
    with zipfile.ZipFile(io.BytesIO(payload)) as skops_file:
        contents = {n: skops_file.read(n) for n in skops_file.namelist()}
    schema = json.loads(contents["schema.json"])
    edit(schema)
    contents["schema.json"] = json.dumps(schema).encode()
    contents.update(members or {})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as skops_file:
        for member, data in contents.items():
            skops_file.writestr(member, data)
    return out.getvalue()


def _nodes(schema, loader):
    found = []
    def walk(value):
        if isinstance(value, dict):
            if value.get("__loader__") == loader:
                found.append(value)
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)
    walk(schema)
    return found


@pytest.fixture()
def marker_module(tmp_path, monkeypatch):
    """An importable module that leaves a file when imported or built."""
    name = f"featclf_marker_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(_MARKER_MODULE)
    monkeypatch.syspath_prepend(os.fspath(tmp_path))
    return name, tmp_path / f"{name}.imported", tmp_path / f"{name}.constructed"


@pytest.mark.parametrize("loader", ["ObjectNode", "ListNode", "DictNode", "TupleNode",
                                    "TypeNode", "NdArrayNode"])
def test_foreign_type_in_any_node_is_refused_without_importing_it(
        model_path, tmp_path, marker_module, loader):
    from featclf.skops_reader import NOT_HANDLED, read_skops_subset

    module, imported, constructed = marker_module

    def edit(schema):
        node = _nodes(schema, loader)[-1]
        node["__module__"], node["__class__"] = module, "Evil"
        node["__id__"] = 1  # a node of its own, not one shared with others

    payload = _edited_schema(model_path, edit, tmp_path)
    asked = []

    def accept(name):
        asked.append(name)
        return _accept_like_load_estimator(name)

    assert read_skops_subset(payload, accept) is NOT_HANDLED
    assert (f"{module}.Evil" in asked) == (loader == "ObjectNode")
    path = _rewrite(model_path, tmp_path / "evil.featclf", payload=payload)
    with pytest.raises(UntrustedTypesError, match=f"{module}.Evil"):
        load_model(path)
    assert not imported.exists() and not constructed.exists()


def test_pickled_array_in_payload_is_refused_without_running(model_path, tmp_path):
    import io

    from featclf.skops_reader import NOT_HANDLED, read_skops_subset

    marker = tmp_path / "payload-ran"
    evil = np.empty(1, dtype=object)
    evil[0] = _WritesMarker(marker)
    buffer = io.BytesIO()
    np.save(buffer, evil, allow_pickle=True)
    with zipfile.ZipFile(model_path) as archive:
        payload = archive.read("model.skops")
    with zipfile.ZipFile(io.BytesIO(payload)) as skops_file:
        npy = [n for n in skops_file.namelist() if n.endswith(".npy")]
    payload = _edited_schema(model_path, lambda schema: None, tmp_path,
                             members={name: buffer.getvalue() for name in npy})
    assert read_skops_subset(payload, _accept_like_load_estimator) is NOT_HANDLED
    path = _rewrite(model_path, tmp_path / "evil.featclf", payload=payload)
    with pytest.raises(ModelFileError, match="cannot be constructed"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("edit", ["cycle", "protocol", "bad key type", "missing npy"])
def test_malformed_plain_payloads_are_left_to_skops(model_path, tmp_path, edit):
    from featclf.skops_reader import NOT_HANDLED, read_skops_subset

    def change(schema):
        if edit == "cycle":  # an attribute that is its own owner
            content = schema["content"]["content"]
            first = next(iter(content))
            content[first] = {"__loader__": "JsonNode", "__class__": "str",
                              "__module__": "builtins", "content": "1",
                              "__id__": schema["__id__"]}
        elif edit == "protocol":
            schema["protocol"] = 1
        elif edit == "bad key type":
            key_type = _nodes(schema, "TypeNode")[0]
            key_type["__class__"], key_type["__id__"] = "eval", 1
        else:
            _nodes(schema, "NdArrayNode")[0]["file"] = "absent.npy"

    payload = _edited_schema(model_path, change, tmp_path)
    assert read_skops_subset(payload, _accept_like_load_estimator) is NOT_HANDLED
    path = _rewrite(model_path, tmp_path / "edited.featclf", payload=payload)
    if edit == "bad key type":
        with pytest.raises(UntrustedTypesError, match="builtins.eval"):
            load_model(path)
    elif edit in ("missing npy",):
        with pytest.raises(ModelFileError):
            load_model(path)
    else:  # skops itself may rebuild these (older protocol, shared id)
        try:
            load_model(path)
        except ModelFileError:
            pass
