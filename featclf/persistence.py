"""Model files: save a fitted pipeline with its metadata, load it safely.

A featclf model file is one zip archive (``ZIP_STORED``) with two members:

``metadata.json``
    What a user of the model needs without loading it: the class names, the
    expected input (size and colour), the featclf / scikit-learn / numpy /
    OpenCV / scikit-image / skops versions it was made with, its creation
    time, training and test metrics, free-form ``extra`` data, and the
    SHA-256 and size of the model payload.
``model.skops``
    The fitted pipeline in the `skops.io <https://skops.readthedocs.io>`_
    format (itself a compressed zip): a JSON schema plus ``.npy`` arrays.

Why this design
---------------
* **No code runs on load.** A pickle or joblib file calls whatever its
  ``__reduce__`` names when loaded. skops stores an object tree that is
  *audited before anything is constructed*: every type in the file must be
  on an allow-list. featclf's allow-list is skops' defaults (scikit-learn
  estimators, numpy and builtin containers) plus featclf's own estimator
  classes (any ``featclf.*`` class deriving from
  :class:`sklearn.base.BaseEstimator`) plus the few internal scikit-learn
  types our pipelines hold (:data:`EXTRA_TRUSTED_TYPES`). Anything else is
  refused with an :class:`UntrustedTypesError` that lists the types; a
  caller may accept more with ``trusted=[...]`` after reviewing them.
* **Metadata outside the payload.** It can be read (``read_metadata``,
  ``unzip -p model.featclf metadata.json``, ``GET /metadata``) and the
  versions checked before the payload is parsed, and skops' own schema stays
  untouched (skops ignores foreign members, but nothing promises it will).
* **A hash of the payload** in the metadata catches a truncated, corrupted
  or hand-edited payload with a clear message. It is an integrity check, not
  a signature: whoever can write the file can recompute it. Safety against a
  hostile file comes from the allow-list, not from the hash.
* A pickle, a bare skops file or any other file is refused before parsing,
  with a message saying what it looks like.

skops is a core dependency, not an extra: ``featclf train --save``,
``featclf predict`` and ``featclf grid`` write and read model files, and a
safe format that needs an extra would push users back to pickle. It is pure
Python and small (its other dependencies, scipy and scikit-learn, are ours
already). Its cost is start-up time: importing ``skops.io`` imports every
scikit-learn module to build its default allow-list (about 0.6 s,
``docs/latency.md``). So loading first tries :mod:`featclf.skops_reader`,
which rebuilds payloads made only of plain nodes (containers, JSON values,
``.npy`` arrays, objects restored from their state; every featclf pipeline
but forests and the intersection-kernel SVM) with the same construction as
skops, after auditing every type: scikit-learn estimators that skops'
default list surely holds (:func:`_is_public_sklearn_estimator`), plus
featclf's additions above. Any other payload, or any type it does not
accept, goes to ``skops.io``, which decides; the reader never accepts what
the skops path would refuse, it only spares ``featclf predict`` and
``featclf serve`` that import.

Version differences warn (:class:`FeatclfVersionWarning`) rather than fail:
the minor version of featclf, scikit-learn or scikit-image, or the major
version of numpy or OpenCV, differing from the ones that saved the model can
change features or predictions, but often does not.
"""

import datetime
import hashlib
import importlib
import json
import os
import re
import tempfile
import warnings
import zipfile
import zlib
from typing import NamedTuple

__all__ = [
    "save_model",
    "load_model",
    "read_metadata",
    "check_versions",
    "image_color",
    "dump_estimator",
    "load_estimator",
    "LoadedModel",
    "ModelFileError",
    "UntrustedTypesError",
    "FeatclfVersionWarning",
    "EXTRA_TRUSTED_TYPES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
]

#: ``metadata["format"]`` of every featclf model file.
FORMAT_NAME = "featclf-model"
#: Layout version written by this featclf; newer files are refused.
FORMAT_VERSION = 1

METADATA_MEMBER = "metadata.json"
MODEL_MEMBER = "model.skops"
_MAX_METADATA_BYTES = 1 << 20

#: Types, beyond skops' defaults and featclf's estimators, that featclf's
#: pipelines hold in their fitted state and that construct no code.
EXTRA_TRUSTED_TYPES = frozenset({
    # the fitted tree array of RandomForestClassifier / ExtraTrees
    "sklearn.tree._tree.Tree",
    # CalibratedClassifierCV (SVC probabilities) internals
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.isotonic.IsotonicRegression",
    # SVC(kernel=intersection_kernel) of the hiksvm classifier: a reference
    # to featclf's own module-level function, looked up by name
    "featclf.kernels.intersection_kernel",
    # file paths given as parameters (CNNEmbedding.model_path): inert data
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "pathlib._local.PosixPath",  # Python 3.13+
    "pathlib._local.WindowsPath",
})

_FEATCLF_NAME = re.compile(r"^featclf(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_SKLEARN_NAME = re.compile(r"^sklearn(\.[A-Za-z_][A-Za-z0-9_]*)+$")
#: module name parts that sklearn.utils.all_estimators() does not search
_SKIPPED_BY_ALL_ESTIMATORS = frozenset({
    "tests", "externals", "setup", "conftest", "experimental", "estimator_checks"})
_PICKLE_PREFIXES = (b"\x80",)  # protocol 2+ opcode PROTO
_COLORS = ("rgb", "gray")


class ModelFileError(ValueError):
    """A file is not a valid featclf model file (foreign, corrupt, edited)."""


class UntrustedTypesError(ModelFileError):
    """A model payload holds types outside the allow-list.

    Attributes
    ----------
    types : list of str
        Fully qualified names of the refused types.
    """

    def __init__(self, message, types):
        super().__init__(message)
        self.types = list(types)


class FeatclfVersionWarning(UserWarning):
    """The model was saved with library versions that differ from these."""


class LoadedModel(NamedTuple):
    """What :func:`load_model` returns; unpacks as ``pipeline, metadata``.

    Attributes
    ----------
    pipeline : estimator
        The fitted pipeline (``predict`` takes an image batch).
    metadata : dict
        The file's metadata (see :func:`save_model`).
    """

    pipeline: object
    metadata: dict


def _library_versions():
    """Versions of the libraries that decide a model's features."""
    from importlib.metadata import PackageNotFoundError, version

    import cv2
    import numpy
    import sklearn

    import featclf

    def dist_version(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "featclf": featclf.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
        "scikit-image": dist_version("scikit-image"),
        "skops": dist_version("skops"),
    }


def _classes_of(pipeline):
    classes = getattr(pipeline, "classes_", None)
    if classes is None:
        raise ValueError(
            f"{type(pipeline).__name__} has no classes_: save_model stores a "
            "fitted classifier (or a pipeline ending in one)"
        )
    return list(classes)


def _aligned_class_names(classes, class_names):
    """Return one name per entry of ``classes_`` (as JSON-friendly strings).

    ``class_names`` may be aligned with ``classes_`` already, or, when the
    labels are integers, indexed by label (the convention of
    :func:`featclf.io.load_image_folder` and :mod:`featclf.datasets`).
    """
    if class_names is None:
        return [str(_plain(c)) for c in classes]
    class_names = [str(name) for name in class_names]
    integer_labels = all(
        isinstance(_plain(c), int) and not isinstance(_plain(c), bool)
        for c in classes
    )
    if integer_labels and all(0 <= int(c) < len(class_names) for c in classes):
        return [class_names[int(c)] for c in classes]
    if len(class_names) == len(classes) and not integer_labels:
        if [str(_plain(c)) for c in classes] != class_names:
            raise ValueError(
                f"class_names {class_names} do not match the classifier's "
                f"classes_ {[_plain(c) for c in classes]}"
            )
        return class_names
    raise ValueError(
        f"class_names has {len(class_names)} names but the classifier's "
        f"classes_ are {[_plain(c) for c in classes]}: pass one name per "
        "class, or names indexed by integer label"
    )


def _plain(value):
    """Turn numpy scalars and arrays into plain Python for JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _to_json(obj, what):
    try:
        return json.loads(json.dumps(obj, default=_plain, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable: {exc}") from None


def _first_resize_size(pipeline):
    """Return the output size of the pipeline's first Resize step, if any."""
    from .preprocessing import Resize

    steps = getattr(pipeline, "steps", None)
    while steps:
        first = steps[0][1]
        if isinstance(first, Resize):
            size = getattr(first, "output_size_", None) or first.size
            if isinstance(size, int):
                size = (size, size)
            return [int(v) for v in size]
        steps = getattr(first, "steps", None)
    return None


def image_color(X):
    """Return the colour of an image batch: ``"gray"`` or ``"rgb"``.

    Use it to record, at save time, what the model was fitted on (files are
    always read as RGB; a stack ``(n, H, W)`` is gray).

    Parameters
    ----------
    X : image batch
        See :mod:`featclf.io`; only the first image is looked at.

    Returns
    -------
    color : {"gray", "rgb"}
    """
    from .io import as_image_batch

    return "gray" if as_image_batch(X)[0].ndim == 2 else "rgb"


def save_model(path, pipeline, *, class_names=None, metrics=None,
               input_size=None, color=None, extra=None, trusted=None):
    """Save a fitted pipeline and its metadata to one model file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; by convention it ends in ``.featclf``. Written
        atomically (a temporary file renamed into place).
    pipeline : estimator
        A fitted classifier, usually a :class:`sklearn.pipeline.Pipeline`
        whose first step is :class:`~featclf.preprocessing.Resize`, so any
        image is brought to the expected input by the model itself.
    class_names : sequence of str, optional
        Human-readable class names: either one per ``pipeline.classes_``
        entry, or (integer labels) indexed by label, as returned by
        :func:`featclf.io.load_image_folder`. Default: ``str(label)``.
    metrics : dict, optional
        JSON-serialisable metrics, for example
        ``{"train": {"accuracy": 0.99}, "test": {"accuracy": 0.93}}``.
    input_size : tuple of (int, int), optional
        Expected ``(height, width)``; default: the first ``Resize`` step's
        size, or none.
    color : {"rgb", "gray"}, optional
        What the pipeline's first step takes: ``"rgb"`` (default; what
        :func:`featclf.io.read_image` returns) or ``"gray"`` (the model was
        fitted on 2-D images without a ``Grayscale`` step; prediction tools
        convert images to gray before calling it); :func:`image_color`
        of the training images tells which.
    extra : dict, optional
        Any other JSON-serialisable information (data set, parameters...).
    trusted : sequence of str, optional
        More type names to accept (see :func:`load_model`); by default the
        save fails if the pipeline holds a type :func:`load_model` would
        refuse, so an unloadable file is never written.

    Returns
    -------
    metadata : dict
        What was written to ``metadata.json``.

    Raises
    ------
    UntrustedTypesError
        If the pipeline holds types that loading would refuse.
    ValueError
        If the pipeline is not a fitted classifier or an argument is invalid.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(pipeline)
    classes = _classes_of(pipeline)
    if color is None:
        color = "rgb"
    if color not in _COLORS:
        raise ValueError(f"color must be 'rgb' or 'gray', got {color!r}")
    if input_size is None:
        input_size = _first_resize_size(pipeline)
    elif isinstance(input_size, int):
        input_size = [input_size, input_size]
    else:
        input_size = [int(v) for v in input_size]
        if len(input_size) != 2 or min(input_size) < 1:
            raise ValueError(
                f"input_size must be a positive (height, width), got {input_size}"
            )

    payload = dump_estimator(pipeline, trusted=trusted)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "versions": _library_versions(),
        "estimator": _describe(pipeline),
        "class_names": _aligned_class_names(classes, class_names),
        "classes": _to_json([_plain(c) for c in classes], "classes_"),
        "input": {"size": input_size, "color": color},
        "metrics": _to_json(metrics or {}, "metrics"),
        "extra": _to_json(extra or {}, "extra"),
        "model": {
            "member": MODEL_MEMBER,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size_bytes": len(payload),
        },
    }
    _write_atomically(os.fspath(path), metadata, payload)
    return metadata


def _describe(pipeline):
    steps = getattr(pipeline, "steps", None)
    if steps is None:
        return type(pipeline).__name__
    return " -> ".join(f"{name}: {type(step).__name__}" for name, step in steps)


def _write_atomically(path, metadata, payload):
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".featclf-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(
                raw, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(METADATA_MEMBER,
                             json.dumps(metadata, indent=2, sort_keys=True))
            archive.writestr(MODEL_MEMBER, payload)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _is_featclf_estimator(type_name):
    """Whether ``type_name`` names a featclf class deriving from BaseEstimator.

    Only modules inside the featclf package are imported to check it.
    """
    if not _FEATCLF_NAME.match(type_name):
        return False
    module_name, _, class_name = type_name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or cls.__module__ != module_name:
        return False
    from sklearn.base import BaseEstimator

    return issubclass(cls, BaseEstimator)


def _is_public_sklearn_estimator(type_name):
    """Whether ``type_name`` is surely in skops' default scikit-learn allow-list.

    skops trusts every class ``sklearn.utils.all_estimators()`` finds: a
    non-abstract :class:`~sklearn.base.BaseEstimator` subclass with a public
    name, exposed by a public scikit-learn module (no ``_``-prefixed part,
    none of the folders all_estimators skips). This checks that the class is
    exposed under its own name by the public part of its defining module
    (``sklearn.svm`` for ``sklearn.svm._classes.LinearSVC``): a sufficient
    condition, decided without building skops' list (which imports every
    scikit-learn module). Only scikit-learn modules are imported to check.
    """
    if not _SKLEARN_NAME.match(type_name):
        return False
    module_name, _, class_name = type_name.rpartition(".")
    if class_name.startswith("_") or class_name == "BaseEstimator":
        return False
    public = []
    for part in module_name.split("."):
        if part.startswith("_"):
            break
        public.append(part)
    if len(public) < 2 or _SKIPPED_BY_ALL_ESTIMATORS.intersection(public):
        return False
    try:
        module = importlib.import_module(module_name)
        exposing = importlib.import_module(".".join(public))
    except ImportError:
        return False
    cls = getattr(module, class_name, None)
    if (not isinstance(cls, type) or cls.__module__ != module_name
            or getattr(exposing, class_name, None) is not cls):
        return False
    from sklearn.base import BaseEstimator

    return issubclass(cls, BaseEstimator) and not getattr(cls, "__abstractmethods__", None)


def _is_trusted_beyond_skops(type_name, trusted):
    """Whether featclf accepts ``type_name`` on top of skops' defaults."""
    return (type_name in EXTRA_TRUSTED_TYPES or type_name in set(trusted or ())
            or _is_featclf_estimator(type_name))


def _check_trusted(untrusted, trusted, when):
    refused = [name for name in untrusted if not _is_trusted_beyond_skops(name, trusted)]
    if refused:
        raise UntrustedTypesError(
            f"model {when}: it holds types outside featclf's allow-list: "
            f"{', '.join(refused)}. Loading them could run code. If you "
            "trust the file's origin and have reviewed these types, pass "
            "them with trusted=[...].",
            refused,
        )


#: what zipfile raises on a damaged archive: a truncated member (EOFError),
#: a damaged deflate stream (zlib.error), header flags claiming encryption or
#: an unknown zip version (RuntimeError, NotImplementedError)
_ZIP_READ_ERRORS = (zipfile.BadZipFile, OSError, EOFError, zlib.error,
                    RuntimeError, NotImplementedError)


def _open_archive(path):
    """Open ``path`` as a featclf archive, saying what it is if it is not."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    with open(path, "rb") as raw:
        head = raw.read(4)
    if not zipfile.is_zipfile(path):
        if head.startswith(_PICKLE_PREFIXES):
            raise ModelFileError(
                f"{path!r} looks like a pickle/joblib file, not a featclf model "
                "file; featclf never unpickles (loading a pickle can run "
                "arbitrary code). Re-save the model with featclf.persistence."
                "save_model from a trusted environment."
            )
        raise ModelFileError(
            f"{path!r} is not a featclf model file (not a zip archive; "
            f"starts with {head!r})"
        )
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_READ_ERRORS as exc:
        raise ModelFileError(f"{path!r} is a corrupt zip archive: {exc}") from None
    return archive


def _read_verified(path):
    """Return ``(metadata, payload)`` after checking layout and hash."""
    path = os.fspath(path)
    with _open_archive(path) as archive:
        names = set(archive.namelist())
        if METADATA_MEMBER not in names:
            hint = (" (it looks like a bare skops file; featclf model files "
                    "wrap one with metadata)" if "schema.json" in names else "")
            raise ModelFileError(
                f"{path!r} is not a featclf model file: no {METADATA_MEMBER}"
                f"{hint}"
            )
        info = archive.getinfo(METADATA_MEMBER)
        if info.file_size > _MAX_METADATA_BYTES:
            raise ModelFileError(
                f"{path!r}: {METADATA_MEMBER} is {info.file_size} bytes, more "
                f"than the {_MAX_METADATA_BYTES} allowed"
            )
        try:
            metadata = json.loads(archive.read(METADATA_MEMBER))
        except (ValueError, *_ZIP_READ_ERRORS) as exc:
            raise ModelFileError(
                f"{path!r}: cannot read {METADATA_MEMBER} as JSON: {exc!r}"
            ) from None
        _check_layout(path, metadata)
        expected = metadata["model"]
        if MODEL_MEMBER not in names:
            raise ModelFileError(f"{path!r} has no {MODEL_MEMBER} payload")
        if archive.getinfo(MODEL_MEMBER).file_size != expected["size_bytes"]:
            raise ModelFileError(
                f"{path!r}: the model payload is "
                f"{archive.getinfo(MODEL_MEMBER).file_size} bytes but the "
                f"metadata records {expected['size_bytes']}: the file was "
                "modified or corrupted"
            )
        try:
            payload = archive.read(MODEL_MEMBER)
        except _ZIP_READ_ERRORS as exc:
            raise ModelFileError(
                f"{path!r}: cannot read the payload (corrupted archive): {exc!r}"
            ) from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != expected["sha256"]:
        raise ModelFileError(
            f"{path!r}: the model payload's SHA-256 ({digest[:12]}...) does not "
            f"match the metadata ({str(expected['sha256'])[:12]}...): the file "
            "was modified or corrupted"
        )
    return metadata, payload


def _check_layout(path, metadata):
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{path!r}: {METADATA_MEMBER} does not describe a featclf model "
            f"(format {metadata.get('format') if isinstance(metadata, dict) else None!r})"
        )
    version = metadata.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path!r}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path!r} uses model file format {version}, newer than the "
            f"{FORMAT_VERSION} this featclf reads: upgrade featclf"
        )
    model = metadata.get("model")
    if (not isinstance(model, dict) or not isinstance(model.get("sha256"), str)
            or not isinstance(model.get("size_bytes"), int)):
        raise ModelFileError(f"{path!r}: metadata lacks the payload's sha256/size")
    for key in ("class_names", "input", "versions"):
        if key not in metadata:
            raise ModelFileError(f"{path!r}: metadata lacks {key!r}")


def read_metadata(path):
    """Return a model file's metadata without loading the model.

    The layout and payload hash are verified; the payload is not parsed.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model`.

    Returns
    -------
    metadata : dict
        See :func:`save_model` (keys ``format``, ``format_version``,
        ``created``, ``versions``, ``estimator``, ``class_names``,
        ``classes``, ``input``, ``metrics``, ``extra``, ``model``).

    Raises
    ------
    FileNotFoundError, ModelFileError
    """
    return _read_verified(path)[0]


def _version_parts(text, n):
    numbers = re.findall(r"\d+", str(text or ""))[:n]
    return tuple(int(v) for v in numbers) if len(numbers) == n else None


def check_versions(metadata):
    """Warn when the saving libraries differ from the installed ones.

    Parameters
    ----------
    metadata : dict
        A model file's metadata.

    Returns
    -------
    differences : list of str
        One line per library whose version differs enough to matter (also
        issued as one :class:`FeatclfVersionWarning`).
    """
    saved = metadata.get("versions", {})
    current = _library_versions()
    # library -> how many leading version numbers must match
    significant = {"featclf": 2, "scikit-learn": 2, "scikit-image": 2,
                   "numpy": 1, "opencv": 1}
    differences = []
    for name, n in significant.items():
        old, new = saved.get(name), current.get(name)
        if old is None or new is None:
            continue
        if _version_parts(old, n) != _version_parts(new, n):
            differences.append(f"{name} {old} (saved) vs {new} (installed)")
    if differences:
        warnings.warn(
            "the model was saved with different library versions; its "
            "features or predictions may differ: " + "; ".join(differences),
            FeatclfVersionWarning,
            stacklevel=3,
        )
    return differences


def dump_estimator(estimator, *, trusted=None):
    """Serialise an estimator to skops bytes, refusing what loading would refuse.

    This is the payload of a model file; :func:`featclf.testing.
    check_image_estimator` also round-trips every featclf step through it.

    Parameters
    ----------
    estimator : object
        Usually a fitted estimator or pipeline.
    trusted : sequence of str, optional
        More type names to accept (see :func:`load_model`).

    Returns
    -------
    payload : bytes
        A skops file (a deflate-compressed zip).

    Raises
    ------
    UntrustedTypesError
        If the object holds types :func:`load_estimator` would refuse.
    """
    import skops.io

    payload = skops.io.dumps(estimator, compression=zipfile.ZIP_DEFLATED)
    _check_trusted(skops.io.get_untrusted_types(data=payload), trusted,
                   when="cannot be saved")
    return payload


def load_estimator(payload, *, trusted=None, name="the payload"):
    """Rebuild an object from skops bytes after auditing every type in it.

    Plain payloads are read by :func:`featclf.skops_reader.read_skops_subset`
    without importing ``skops.io``; the rest by ``skops.io`` (same result,
    same refusals, see the module docstring).

    Parameters
    ----------
    payload : bytes
        What :func:`dump_estimator` returned.
    trusted : sequence of str, optional
        More type names to accept (see :func:`load_model`).
    name : str, default="the payload"
        How error messages name the source.

    Returns
    -------
    estimator : object

    Raises
    ------
    ModelFileError
        If the bytes are not a valid skops file.
    UntrustedTypesError
        If they hold types outside the allow-list (nothing is constructed).
    """
    from .skops_reader import NOT_HANDLED, read_skops_subset

    estimator = read_skops_subset(payload, lambda type_name: (
        _is_public_sklearn_estimator(type_name)
        or _is_trusted_beyond_skops(type_name, trusted)))
    if estimator is not NOT_HANDLED:
        return estimator
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=payload)
    except Exception as exc:  # skops raises many types on a broken schema
        raise ModelFileError(
            f"{name}: the model payload is not a valid skops file: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    _check_trusted(untrusted, trusted, when=f"{name} refused")
    try:
        return skops.io.loads(payload, trusted=untrusted)
    except Exception as exc:
        raise ModelFileError(
            f"{name}: the model payload cannot be constructed: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def load_model(path, *, trusted=None):
    """Load a model file without running code from it.

    Steps: refuse anything but a featclf archive (pickles are named as
    such); verify the metadata and the payload's SHA-256; warn on version
    differences (:class:`FeatclfVersionWarning`); audit every type in the
    payload against the allow-list *before* constructing anything; then
    build the pipeline with skops.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model`.
    trusted : sequence of str, optional
        Extra fully qualified type names to accept, beyond skops' defaults,
        featclf's estimators and :data:`EXTRA_TRUSTED_TYPES`. Review them
        first: an :class:`UntrustedTypesError` lists what a file needs.

    Returns
    -------
    model : LoadedModel
        ``(pipeline, metadata)``; unpacks like a tuple.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ModelFileError
        If the file is foreign (pickle, other zip...), corrupt or edited.
    UntrustedTypesError
        If the payload holds types outside the allow-list.
    """
    metadata, payload = _read_verified(path)
    check_versions(metadata)
    pipeline = load_estimator(payload, trusted=trusted, name=repr(os.fspath(path)))
    if not hasattr(pipeline, "predict"):
        raise ModelFileError(
            f"{os.fspath(path)!r} holds a {type(pipeline).__name__}, not a "
            "classifier with predict"
        )
    return LoadedModel(pipeline, metadata)
