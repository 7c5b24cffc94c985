"""CNN embeddings: a pretrained ONNX network used as a frozen feature extractor.

:class:`CNNEmbedding` runs an ImageNet-pretrained network stored as an ONNX
file on the CPU, offline (nothing is downloaded), and returns one layer's
activations as a fixed-length feature vector per image, typically the
global-average-pooled penultimate layer (the "embedding") that feeds the
network's own classifier. A linear model on top of it is transfer learning
without fine-tuning. See ``docs/cnn.md`` for the model files accepted and
how to produce one.

Two inference engines are supported and give the same features to within
about 1e-5 (the tests require 1e-4):

* OpenCV's ``cv2.dnn`` (``backend="opencv"``), a core dependency;
* onnxruntime (``backend="onnxruntime"``), the optional extra
  ``featclf[onnx]``, usually about twice as fast on a CPU.

The network is never stored on the estimator (it cannot be pickled, and a
model file is large): it is loaded inside ``transform`` from ``model_path``
and kept in a private module-level cache keyed by the file's real path,
modification time and size, the engine and its thread count. A pickled
fitted pipeline therefore holds only the path (and optionally the file's
sha256), and reloads the network where it is unpickled.
"""

import hashlib
import importlib.util
import numbers
import os
import threading

import cv2
import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ..base import FeatureExtractor
from ..preprocessing import to_rgb

__all__ = ["CNNEmbedding", "PRESETS", "file_sha256"]

#: Named preprocessing settings. ``mean`` and ``scale`` are per channel, in
#: the model's channel order, on the 0-255 pixel scale: the network input
#: is ``(pixel - mean) * scale``.
PRESETS = {
    # The TF EfficientNet-Lite convention (../shared/models/efficientnet_lite0_onnx).
    "efficientnet_lite0": {
        "input_size": (224, 224),
        "mean": (127.0, 127.0, 127.0),
        "scale": (1 / 128, 1 / 128, 1 / 128),
        "channel_order": "RGB",
        "layout": "NCHW",
    },
    # torchvision's ImageNet models: ImageNet mean and std on 0-255 pixels.
    "torchvision_imagenet": {
        "input_size": (224, 224),
        "mean": (123.675, 116.28, 103.53),
        "scale": (1 / 58.395, 1 / 57.12, 1 / 57.375),
        "channel_order": "RGB",
        "layout": "NCHW",
    },
}

_LAYOUTS = {"NCHW": cv2.DNN_LAYOUT_NCHW, "NHWC": cv2.DNN_LAYOUT_NHWC}
_HASH_BLOCK = 1 << 20


class CNNEmbedding(FeatureExtractor):
    """Features from a pretrained CNN stored as an ONNX file (offline, CPU).

    Each image is resized to the network's input size (bilinear, aspect
    ratio not kept: crop or pad first with :class:`~featclf.preprocessing.Resize`
    if that matters), normalised as ``(pixel - mean) * scale`` on the 0-255
    scale, put in the network's channel order and layout, and run through
    the network in batches; the output named ``output`` is flattened to one
    row per image.

    Parameters
    ----------
    model_path : str or os.PathLike, default=None
        The ONNX model file. Required (``fit`` raises a ``ValueError``
        without it): featclf never downloads weights. Only the path is
        stored, so a pickled model reloads the file where it is unpickled.
    preset : {"efficientnet_lite0", "torchvision_imagenet"} or None, \
            default="efficientnet_lite0"
        Named preprocessing (see :data:`PRESETS`). ``input_size``, ``mean``,
        ``scale``, ``channel_order`` and ``layout`` override it when given.
        With ``preset=None``, ``input_size`` is required and the others
        default to mean 0, scale 1, ``"RGB"``, ``"NCHW"``.
    output : str, default="embedding"
        Name of the network output to return. The EfficientNet-Lite0 file
        has ``"embedding"`` (1280 values >= 0, the global-average-pooled
        penultimate layer) and ``"logits"`` (1000 ImageNet class scores).
    input_size : int or tuple of (int, int), default=None
        Network input ``(height, width)``; an int gives a square.
    mean : float or tuple of 3 floats, default=None
        Value subtracted per channel, 0-255 scale, model channel order.
    scale : float or tuple of 3 floats, default=None
        Factor applied after subtracting ``mean`` (for example ``1/128``,
        or ``1/std`` per channel).
    channel_order : {"RGB", "BGR"}, default=None
        Channel order the network expects (featclf images are RGB).
    layout : {"NCHW", "NHWC"}, default=None
        Memory layout of the network input.
    backend : {"auto", "opencv", "onnxruntime"}, default="auto"
        Inference engine. ``"auto"`` uses onnxruntime when it is installed
        (it is faster) and ``cv2.dnn`` otherwise. Both give the same
        features to within 1e-4.
    batch_size : int, default=32
        Images per forward pass.
    sha256 : str, default=None
        Expected SHA-256 (hex) of the model file, checked when the network
        is first used; a mismatch raises ``ValueError`` naming both hashes.
        Pin it for deployment so a replaced model file cannot change the
        features silently.
    hflip_average : bool, default=False
        Average the output over each image and its horizontal mirror
        (test-time augmentation; doubles the inference cost).
    n_jobs : int, default=None
        joblib's meaning. With ``None`` or 1 the batches run one after the
        other and the engine uses OpenCV's thread count
        (``cv2.getNumThreads()``, set it with ``cv2.setNumThreads``); with
        ``n_jobs=k > 1``, ``k`` worker threads each run their own part
        single-threaded, so the CPU is not oversubscribed.

    Attributes
    ----------
    n_features_out_ : int
        Length of the output per image (1280 for the EfficientNet-Lite0
        embedding).

    Notes
    -----
    The class attribute ``_requires_model_file = True`` tells featclf's
    test harness (``tests/test_estimator_checks.py``) that the default
    instance cannot be fitted without a model file, so the generic image
    checks run in ``tests/test_cnn.py`` with the real model instead.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from featclf.features import CNNEmbedding
    >>> model = make_pipeline(  # doctest: +SKIP
    ...     CNNEmbedding("efficientnet_lite0.onnx"), LogisticRegression(C=0.5))
    """

    _requires_model_file = True
    _feature_prefix = "cnn_"

    _parameter_constraints = {
        "model_path": [str, os.PathLike, None],
        "preset": [StrOptions(set(PRESETS)), None],
        "output": [str],
        "input_size": ["array-like", Interval(numbers.Integral, 1, None, closed="left"), None],
        "mean": ["array-like", Interval(numbers.Real, None, None, closed="neither"), None],
        "scale": ["array-like", Interval(numbers.Real, 0, None, closed="neither"), None],
        "channel_order": [StrOptions({"RGB", "BGR"}), None],
        "layout": [StrOptions({"NCHW", "NHWC"}), None],
        "backend": [StrOptions({"auto", "opencv", "onnxruntime"})],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "sha256": [str, None],
        "hflip_average": ["boolean"],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(
        self,
        model_path=None,
        preset="efficientnet_lite0",
        output="embedding",
        input_size=None,
        mean=None,
        scale=None,
        channel_order=None,
        layout=None,
        backend="auto",
        batch_size=32,
        sha256=None,
        hflip_average=False,
        n_jobs=None,
    ):
        self.model_path = model_path
        self.preset = preset
        self.output = output
        self.input_size = input_size
        self.mean = mean
        self.scale = scale
        self.channel_order = channel_order
        self.layout = layout
        self.backend = backend
        self.batch_size = batch_size
        self.sha256 = sha256
        self.hflip_average = hflip_average
        self.n_jobs = n_jobs

    def _fit_first_image(self, image):
        if self.model_path is None:
            raise ValueError(
                "CNNEmbedding needs a model file: pass model_path='.../model.onnx' "
                "(for example the EfficientNet-Lite0 ONNX file; see docs/cnn.md for "
                "the files accepted and how to export one). featclf never downloads "
                "weights."
            )
        self._preprocessing()  # reject bad preprocessing parameters at fit time
        super()._fit_first_image(image)

    def _transform_chunk(self, images):
        runner = _load_network(self.model_path, self.backend, self.sha256)
        settings = self._preprocessing()
        images = _as_network_pixels(images)
        flip_axis = 3 if settings["layout"] == "NCHW" else 2
        outputs = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size]
            blob = _make_blob(batch, settings)
            if self.hflip_average:
                mirrored = np.flip(blob, axis=flip_axis)
                blob = np.ascontiguousarray(np.concatenate([blob, mirrored]))
            result = runner.run(blob, self.output).reshape(len(blob), -1)
            if self.hflip_average:
                result = (result[: len(batch)] + result[len(batch):]) / 2
            outputs.append(result)
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def _feature_names(self):
        return [f"{self._feature_prefix}{self.output}{i}" for i in range(self.n_features_out_)]

    def _preprocessing(self):
        """Return the resolved preprocessing settings (preset + overrides)."""
        settings = dict(PRESETS[self.preset]) if self.preset is not None else {
            "input_size": None,
            "mean": 0.0,
            "scale": 1.0,
            "channel_order": "RGB",
            "layout": "NCHW",
        }
        for name in settings:
            value = getattr(self, name)
            if value is not None:
                settings[name] = value
        if settings["input_size"] is None:
            raise ValueError("CNNEmbedding: input_size is required when preset=None")
        settings["input_size"] = _pair(settings["input_size"], "input_size")
        settings["mean"] = _per_channel(settings["mean"], "mean")
        settings["scale"] = _per_channel(settings["scale"], "scale")
        return settings

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


def file_sha256(path):
    """Return the SHA-256 of a file as a hex string.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    digest : str
        64 lowercase hex digits (the same as ``sha256sum``).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _pair(value, name):
    if isinstance(value, numbers.Integral):
        value = (value, value)
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"CNNEmbedding: {name} must be an int or a (height, width) pair, got {value!r}"
        ) from None
    if height < 1 or width < 1:
        raise ValueError(f"CNNEmbedding: {name} must be positive, got {value!r}")
    return height, width


def _per_channel(value, name):
    values = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3 or not np.isfinite(values).all():
        raise ValueError(
            f"CNNEmbedding: {name} must be one finite number or three (one per "
            f"channel), got {value!r}"
        )
    return tuple(float(v) for v in values)


def _as_network_pixels(images):
    """RGB images on the 0-255 scale, all uint8 or all float32."""
    images = [to_rgb(image) for image in images]
    if all(image.dtype == np.uint8 for image in images):
        return images
    return [
        image.astype(np.float32) if image.dtype == np.uint8 else image * np.float32(255)
        for image in images
    ]


def _make_blob(images, settings):
    """Resize, normalise and pack RGB images into one float32 network input."""
    height, width = settings["input_size"]
    params = cv2.dnn.Image2BlobParams()
    # mean and scale apply in the output (model) channel order, after swapRB.
    params.scalefactor = settings["scale"] + (1.0,)
    params.size = (width, height)
    params.mean = settings["mean"] + (0.0,)
    params.swapRB = settings["channel_order"] == "BGR"
    params.ddepth = cv2.CV_32F
    params.datalayout = _LAYOUTS[settings["layout"]]
    return cv2.dnn.blobFromImagesWithParams(images, params)


# ---------------------------------------------------------------------------
# The network cache. Nothing here is reachable from an estimator's __dict__.

_LOCK = threading.Lock()
#: (real path, mtime_ns, size) -> sha256 hex, so a pinned file is hashed once.
_FILE_HASHES = {}
#: (real path, mtime_ns, size, n_threads) -> onnxruntime session (thread-safe).
_SESSIONS = {}
#: per thread: (real path, mtime_ns, size) -> cv2.dnn.Net (a Net is not
#: thread-safe, so each joblib worker thread loads its own).
_OPENCV_NETS = threading.local()


def _file_key(path):
    real = os.path.realpath(os.fspath(path))
    if not os.path.isfile(real):
        raise FileNotFoundError(f"CNNEmbedding: model file {os.fspath(path)!r} does not exist")
    stat = os.stat(real)
    return real, stat.st_mtime_ns, stat.st_size


def _check_sha256(key, expected):
    with _LOCK:
        actual = _FILE_HASHES.get(key)
    if actual is None:
        actual = file_sha256(key[0])
        with _LOCK:
            _FILE_HASHES[key] = actual
    if actual != expected.strip().lower():
        raise ValueError(
            f"CNNEmbedding: model file {key[0]!r} has sha256 {actual}, but "
            f"sha256={expected!r} was expected: the file was replaced or corrupted"
        )


def _resolve_backend(backend):
    has_onnxruntime = importlib.util.find_spec("onnxruntime") is not None
    if backend == "auto":
        return "onnxruntime" if has_onnxruntime else "opencv"
    if backend == "onnxruntime" and not has_onnxruntime:
        raise ImportError(
            "CNNEmbedding: backend='onnxruntime' needs the onnxruntime package "
            "(pip install 'featclf[onnx]'), or use backend='opencv'"
        )
    return backend


def _load_network(path, backend, sha256=None):
    """Return a cached runner for the model file, loading it on first use."""
    key = _file_key(path)
    if sha256 is not None:
        _check_sha256(key, sha256)
    backend = _resolve_backend(backend)
    if backend == "opencv":
        nets = getattr(_OPENCV_NETS, "nets", None)
        if nets is None:
            nets = _OPENCV_NETS.nets = {}
        if key not in nets:
            for old in [k for k in nets if k[0] == key[0]]:
                del nets[old]  # the file changed: drop the stale network
            nets[key] = _OpenCVRunner(key[0])
        return nets[key]
    n_threads = max(1, cv2.getNumThreads())
    session_key = key + (n_threads,)
    with _LOCK:
        runner = _SESSIONS.get(session_key)
        if runner is None:
            for old in [k for k in _SESSIONS if k[0] == key[0] and k[1:3] != key[1:3]]:
                del _SESSIONS[old]
            runner = _SESSIONS[session_key] = _OnnxRuntimeRunner(key[0], n_threads)
    return runner


def _not_onnx(path, engine, exc):
    return ValueError(
        f"CNNEmbedding: model file {path!r} is not a readable ONNX model "
        f"({engine} says: {str(exc).strip()[:300]})"
    )


def _unknown_output(path, output, available):
    return ValueError(
        f"CNNEmbedding: model {path!r} has no output named {output!r}; "
        f"its outputs are {list(available)}"
    )


class _OpenCVRunner:
    """A ``cv2.dnn`` network; ``run(blob, output)`` returns that output."""

    def __init__(self, path):
        self.path = path
        try:
            self.net = cv2.dnn.readNetFromONNX(path)
        except cv2.error as exc:
            raise _not_onnx(path, "cv2.dnn", exc) from None
        if self.net.empty():
            raise _not_onnx(path, "cv2.dnn", "empty network")

    def run(self, blob, output):
        self.net.setInput(blob)
        try:
            return self.net.forward(output)
        except cv2.error:
            available = self.net.getUnconnectedOutLayersNames()
            if output in available:
                raise
            raise _unknown_output(self.path, output, available) from None


class _OnnxRuntimeRunner:
    """An onnxruntime session; ``run(blob, output)`` returns that output."""

    def __init__(self, path, n_threads):
        import onnxruntime

        self.path = path
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = n_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(
                path, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise _not_onnx(path, "onnxruntime", exc) from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_shape = model_input.shape  # ints where fixed, names where dynamic
        self.outputs = [out.name for out in self.session.get_outputs()]

    def run(self, blob, output):
        if output not in self.outputs:
            raise _unknown_output(self.path, output, self.outputs)
        fixed = [(axis, size) for axis, size in enumerate(self.input_shape[1:], 1)
                 if isinstance(size, int) and size != blob.shape[axis]]
        if fixed:
            raise ValueError(
                f"CNNEmbedding: the model file {self.path!r} fixes its input shape at "
                f"{list(self.input_shape)} but the preprocessed batch has shape "
                f"{list(blob.shape)}; set input_size (and layout) to match the model, "
                "or use backend='opencv', whose cv2.dnn reshapes the network to other "
                "input sizes"
            )
        return self.session.run([output], {self.input_name: blob})[0]
