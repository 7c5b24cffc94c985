"""Pipeline specs: a pipeline and its parameter grid, read from a TOML file.

A spec file (``pipelines/*.toml``) names the steps of a pipeline, their
parameters and the grid a search explores. The steps come either from a
named pipeline of :mod:`featclf.pipelines` (so the shipped specs and
:func:`featclf.pipelines.make_named_pipeline` are one definition) or from an
explicit list of steps::

    # pipelines/hog-linsvm.toml: a named pipeline
    description = "HOG on 64x64 gray images, standardised, linear SVM"
    pipeline = "hog-linsvm"            # steps from featclf.pipelines

    [params]                           # optional: change step parameters
    C = 1.0

    [grid]                             # values to search
    C = [0.01, 0.1, 1.0, 10.0]
    pixels_per_cell = [[8, 8], [16, 16]]

    # my-spec.toml: explicit steps
    [[steps]]
    name = "resize"                    # step name (default: class, lower case)
    class = "Resize"                   # a featclf step or scikit-learn class
    size = [64, 64]                    # every other key is a parameter

    [[steps]]
    name = "features"
    union = ["hog", "color"]           # a FeatureUnion of the branches below

    [[branches.hog]]
    class = "Grayscale"
    [[branches.hog]]
    class = "HOG"

    [[branches.color]]
    class = "ColorHistogram"

    [[steps]]
    class = "LinearSVC"

Parameter names in ``[params]`` and ``[grid]`` are scikit-learn's
``step__param`` names (``"features__hog__hog__orientations"``) or any
unambiguous ending of one (``orientations``, ``hog__orientations``). TOML
arrays become tuples (``size = [64, 64]`` is ``(64, 64)``). In ``[grid]``, a
value may also be a distribution for random search:
``C = { loguniform = [0.001, 100.0] }`` (``uniform``, ``loguniform``,
``randint``, from :mod:`scipy.stats`).

Loading validates everything and raises :class:`SpecError` naming the file:
TOML syntax errors (with line and column), unknown steps and parameters
(with the nearest valid name), values of the wrong type or range (checked
with each estimator's ``_parameter_constraints``) and empty grids.
"""

import difflib
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sklearn.base import clone
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils._param_validation import InvalidParameterError

__all__ = [
    "PipelineSpec",
    "SpecError",
    "load_spec",
    "parse_spec",
    "spec_paths",
    "step_registry",
    "describe_pipeline",
]

#: scikit-learn classes a spec may name besides featclf's own steps.
_SKLEARN_STEPS = {
    "StandardScaler": "sklearn.preprocessing",
    "MinMaxScaler": "sklearn.preprocessing",
    "MaxAbsScaler": "sklearn.preprocessing",
    "Normalizer": "sklearn.preprocessing",
    "PCA": "sklearn.decomposition",
    "AdditiveChi2Sampler": "sklearn.kernel_approximation",
    "SkewedChi2Sampler": "sklearn.kernel_approximation",
    "Nystroem": "sklearn.kernel_approximation",
    "RBFSampler": "sklearn.kernel_approximation",
    "LinearSVC": "sklearn.svm",
    "SVC": "sklearn.svm",
    "LogisticRegression": "sklearn.linear_model",
    "SGDClassifier": "sklearn.linear_model",
    "RidgeClassifier": "sklearn.linear_model",
    "RandomForestClassifier": "sklearn.ensemble",
    "ExtraTreesClassifier": "sklearn.ensemble",
    "HistGradientBoostingClassifier": "sklearn.ensemble",
    "KNeighborsClassifier": "sklearn.neighbors",
}

_DISTRIBUTIONS = ("uniform", "loguniform", "randint")

_TOP_LEVEL_KEYS = {"description", "pipeline", "steps", "branches", "params", "grid"}


class SpecError(ValueError):
    """A pipeline spec that cannot be loaded; the message names the file."""


@dataclass
class PipelineSpec:
    """A loaded, validated pipeline spec.

    Attributes
    ----------
    name : str
        The spec's name (its file name without ``.toml``).
    path : str or None
        The file it was read from.
    description : str
        One line saying what the pipeline is.
    pipeline : sklearn.pipeline.Pipeline
        The unfitted pipeline, with ``[params]`` applied.
    param_grid : dict of str to list or distribution
        The grid in scikit-learn ``step__param`` names.
    fingerprint : str
        Hex digest of the pipeline's parameters and the grid: two specs
        with the same fingerprint run the same search.
    """

    name: str
    path: str | None
    description: str
    pipeline: Pipeline
    param_grid: dict = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def is_random_only(self):
        """Whether the grid holds distributions (random search only)."""
        return any(not isinstance(v, list) for v in self.param_grid.values())

    def n_candidates(self):
        """Return the number of grid points (distributions count as 0)."""
        if self.is_random_only:
            return 0
        return len(ParameterGrid(self.param_grid))


def spec_paths(folder):
    """List the spec files of a folder.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder such as the repository's ``pipelines/``.

    Returns
    -------
    paths : list of pathlib.Path
        The ``*.toml`` files, sorted by name.
    """
    return sorted(Path(folder).glob("*.toml"))


def step_registry():
    """Return every class a spec may name as a step.

    Returns
    -------
    registry : dict of str to type
        featclf's public estimators (from
        :func:`featclf.testing.all_estimators`) and a table of scikit-learn
        scalers, kernel maps and classifiers.
    """
    import importlib

    from .testing import all_estimators

    registry = {
        name: getattr(importlib.import_module(module), name)
        for name, module in _SKLEARN_STEPS.items()
    }
    registry.update(dict(all_estimators()))
    return registry


def load_spec(path, *, random_state=0):
    """Read and validate a spec file.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.toml`` file.
    random_state : int, default=0
        Seed given to the named pipeline's factories.

    Returns
    -------
    spec : PipelineSpec

    Raises
    ------
    SpecError
        If the file is missing, is not valid TOML, or describes an invalid
        pipeline or grid; the message names the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {os.fspath(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{os.fspath(path)}: TOML syntax error: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{os.fspath(path)}: not a UTF-8 text file ({exc})") from None
    return parse_spec(data, name=path.stem, path=os.fspath(path),
                      random_state=random_state)


def parse_spec(data, *, name="spec", path=None, random_state=0):
    """Build a :class:`PipelineSpec` from parsed TOML data.

    Parameters
    ----------
    data : dict
        The TOML document (see the module docstring for its keys).
    name : str, default="spec"
        The spec's name.
    path : str, default=None
        Where it came from, for error messages.
    random_state : int, default=0
        Seed for the named pipeline's factories.

    Returns
    -------
    spec : PipelineSpec

    Raises
    ------
    SpecError
        If anything in ``data`` is invalid.
    """
    where = path or name

    def fail(message):
        raise SpecError(f"{where}: {message}")

    unknown = set(data) - _TOP_LEVEL_KEYS
    if unknown:
        key = sorted(unknown)[0]
        fail(f"unknown key {key!r}{_suggest(key, _TOP_LEVEL_KEYS)}; "
             f"valid keys: {', '.join(sorted(_TOP_LEVEL_KEYS))}")
    if ("pipeline" in data) == ("steps" in data):
        fail("give exactly one of 'pipeline = \"<named pipeline>\"' or "
             "'[[steps]]' tables")
    if "pipeline" in data:
        pipeline = _named_pipeline(data["pipeline"], random_state, fail)
    else:
        pipeline = _explicit_pipeline(data["steps"], data.get("branches", {}),
                                      random_state, fail)
    valid = pipeline.get_params(deep=True)

    params = data.get("params", {})
    if not isinstance(params, dict):
        fail("[params] must be a table of parameter = value")
    for key, value in params.items():
        full = _resolve_param(key, valid, fail, "[params]")
        _check_value(pipeline, full, _to_python(value), fail, f"[params] {key}")
        pipeline.set_params(**{full: _to_python(value)})

    grid_data = data.get("grid")
    if not grid_data:
        fail("the [grid] table is missing or empty: give at least one "
             "parameter with a list of values, e.g. C = [0.1, 1.0, 10.0]")
    if not isinstance(grid_data, dict):
        fail("[grid] must be a table of parameter = [values]")
    param_grid = {}
    for key, values in grid_data.items():
        full = _resolve_param(key, valid, fail, "[grid]")
        if full in param_grid:
            fail(f"[grid] sets {full!r} twice (as {key!r})")
        if isinstance(values, dict):
            param_grid[full] = _distribution(values, fail, key)
            continue
        if not isinstance(values, list):
            fail(f"[grid] {key} must be a list of values, got {values!r}; "
                 f"write {key} = [{_toml_repr(values)}]")
        if not values:
            fail(f"[grid] {key} is an empty list: give at least one value")
        values = [_to_python(v) for v in values]
        for value in values:
            _check_value(pipeline, full, value, fail, f"[grid] {key}")
        param_grid[full] = values

    description = data.get("description", "")
    if not isinstance(description, str):
        fail("description must be a string")
    fingerprint = _fingerprint(pipeline, param_grid)
    return PipelineSpec(name=name, path=path, description=description,
                        pipeline=pipeline, param_grid=param_grid,
                        fingerprint=fingerprint)


def describe_pipeline(pipeline):
    """Describe an estimator's structure and parameters as plain data.

    Parameters
    ----------
    pipeline : estimator
        Usually a :class:`~sklearn.pipeline.Pipeline`.

    Returns
    -------
    description : dict
        JSON-serialisable: class name and parameters, nested estimators
        described the same way. Stable across runs (used for cache and
        result keys).
    """
    if isinstance(pipeline, (Pipeline, FeatureUnion)):
        items = pipeline.steps if isinstance(pipeline, Pipeline) else pipeline.transformer_list
        return {
            "class": type(pipeline).__name__,
            "steps": [[name, describe_pipeline(step)] for name, step in items],
        }
    if hasattr(pipeline, "get_params"):
        params = pipeline.get_params(deep=False)
        return {
            "class": f"{type(pipeline).__module__}.{type(pipeline).__qualname__}",
            "params": {k: _describe_value(v) for k, v in sorted(params.items())},
        }
    return _describe_value(pipeline)


def _describe_value(value):
    if hasattr(value, "get_params"):
        return describe_pipeline(value)
    if isinstance(value, (list, tuple)):
        return [_describe_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe_value(v) for k, v in sorted(value.items())}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return repr(value)


def _fingerprint(pipeline, param_grid):
    text = json.dumps(
        {"pipeline": describe_pipeline(pipeline),
         "grid": {k: _describe_value(v) for k, v in sorted(param_grid.items())}},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _named_pipeline(name, random_state, fail):
    from . import pipelines

    if not isinstance(name, str):
        fail(f"pipeline must be a string naming a pipeline, got {name!r}")
    try:
        return pipelines.make_named_pipeline(name, random_state=random_state)
    except ImportError as exc:
        fail(f"pipeline {name!r} needs a step that cannot be imported: {exc}")
    except (KeyError, ValueError) as exc:
        known = list(pipelines.pipeline_names())
        fail(f"unknown pipeline {name!r}{_suggest(name, known)} ({exc}); "
             f"shipped pipelines: {', '.join(known)}")


def _explicit_pipeline(steps, branches, random_state, fail):
    registry = step_registry()
    if not isinstance(steps, list) or not steps:
        fail("[[steps]] must be a non-empty array of tables")
    if not isinstance(branches, dict):
        fail("[branches] must be a table of branch name = [[steps]]")
    built = _build_steps(steps, branches, registry, random_state, fail, "steps")
    unused = set(branches) - {b for s in steps for b in (s.get("union") or [])
                              if isinstance(s, dict)}
    if unused:
        fail(f"[branches.{sorted(unused)[0]}] is not used by any union step")
    return Pipeline(built)


def _build_steps(steps, branches, registry, random_state, fail, where):
    built, names = [], set()
    for position, step in enumerate(steps, start=1):
        label = f"{where} #{position}"
        if not isinstance(step, dict):
            fail(f"{label} must be a table, got {step!r}")
        step = dict(step)
        if "union" in step:
            name = step.pop("name", "features")
            union = step.pop("union")
            if step:
                fail(f"{label} ({name}): a union step takes only 'name' and "
                     f"'union', not {sorted(step)}")
            if not isinstance(union, list) or not union:
                fail(f"{label} ({name}): union must be a non-empty list of branch names")
            parts = []
            for branch in union:
                if branch not in branches:
                    fail(f"{label} ({name}): unknown branch {branch!r}"
                         f"{_suggest(branch, branches)}; define it with "
                         f"[[branches.{branch}]] tables")
                branch_steps = _build_steps(branches[branch], branches, registry,
                                            random_state, fail, f"branches.{branch}")
                part = (branch_steps[0][1] if len(branch_steps) == 1
                        else Pipeline(branch_steps))
                parts.append((branch, part))
            estimator = FeatureUnion(parts)
        else:
            class_name = step.pop("class", None)
            if not isinstance(class_name, str):
                fail(f"{label}: missing 'class = \"<step class>\"' "
                     "(or 'union = [...]' for a feature union)")
            if class_name not in registry:
                fail(f"{label}: unknown step class {class_name!r}"
                     f"{_suggest(class_name, registry)}")
            name = step.pop("name", class_name.lower())
            estimator = registry[class_name]()
            valid = estimator.get_params(deep=False)
            if "random_state" in valid and "random_state" not in step:
                step["random_state"] = random_state
            for key, value in step.items():
                if key not in valid:
                    fail(f"{label} ({class_name}): unknown parameter {key!r}"
                         f"{_suggest(key, valid)}; valid: {', '.join(sorted(valid))}")
                value = _to_python(value)
                _check_value(estimator, key, value, fail, f"{label} ({class_name}) {key}")
                estimator.set_params(**{key: value})
        if not isinstance(name, str) or not name or "__" in name:
            fail(f"{label}: step name {name!r} must be a non-empty string "
                 "without '__'")
        if name in names:
            fail(f"{label}: step name {name!r} is used twice in {where}")
        names.add(name)
        built.append((name, estimator))
    return built


def _resolve_param(key, valid, fail, section):
    """Map ``key`` (a full ``step__param`` name or an ending) to a full name."""
    if key in valid:
        return key
    matches = [name for name in valid if name.endswith("__" + key)]
    # nested estimators are parameters too; only leaf values may be searched
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        fail(f"{section} {key!r} is ambiguous: it matches {', '.join(sorted(matches))}; "
             "write the full name")
    endings = {name.rsplit("__", 1)[-1] for name in valid}
    fail(f"{section} unknown parameter {key!r}"
         f"{_suggest(key, list(valid) + sorted(endings))}")


def _check_value(estimator, full_name, value, fail, label):
    """Set ``value`` on a clone and let the owning step validate it."""
    if isinstance(value, dict):
        fail(f"{label}: a table is not a parameter value")
    owner_path, _, param = full_name.rpartition("__")
    trial = clone(estimator)
    owner = trial.get_params(deep=True)[owner_path] if owner_path else trial
    try:
        owner.set_params(**{param: value})
        if hasattr(owner, "_validate_params"):
            owner._validate_params()
    except (InvalidParameterError, ValueError, TypeError) as exc:
        fail(f"{label} = {_toml_repr(value)}: invalid value: {exc}")


def _distribution(values, fail, key):
    from scipy import stats

    if len(values) != 1 or next(iter(values)) not in _DISTRIBUTIONS:
        fail(f"[grid] {key} = {values!r}: a distribution is written "
             f"{{ loguniform = [low, high] }} with one of {', '.join(_DISTRIBUTIONS)}")
    kind, bounds = next(iter(values.items()))
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(isinstance(b, (int, float)) for b in bounds)
            or not bounds[0] < bounds[1]):
        fail(f"[grid] {key}: {kind} needs [low, high] numbers with low < high, "
             f"got {bounds!r}")
    low, high = bounds
    if kind == "uniform":
        return stats.uniform(low, high - low)
    if kind == "loguniform":
        if low <= 0:
            fail(f"[grid] {key}: loguniform needs low > 0, got {low!r}")
        return stats.loguniform(low, high)
    return stats.randint(int(low), int(high) + 1)


def _to_python(value):
    """TOML arrays become tuples (hashable, what image-size parameters expect)."""
    if isinstance(value, list):
        return tuple(_to_python(v) for v in value)
    return value


def _toml_repr(value):
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_repr(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _suggest(word, choices):
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
