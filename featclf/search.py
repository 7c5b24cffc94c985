"""Hyper-parameter search over a pipeline spec, with cached features and
results that survive a crash.

How a search runs (:func:`run_search`):

1. **Split the pipeline.** Its leading *stateless* steps (featclf image
   steps: reading, resizing, descriptor extraction; each image's output
   depends on that image only) form the *prefix*; the rest (codebook,
   scaler, classifier) is the *suffix*. Candidates are grouped by their
   prefix parameters.
2. **Extract once per prefix setting.** For each group the prefix runs once
   over every image of every split, in chunks (a progress bar; an image
   that cannot be read or processed is skipped and listed, the run goes
   on). With a cache folder the result is stored by
   :class:`joblib.Memory` under a key made of the prefix's parameters and a
   fingerprint of the images (paths, sizes and modification times, or the
   pixels), so a rerun, or another grid over the same images, loads it
   instead of recomputing; the suffix also gets ``Pipeline(memory=...)``
   so that a codebook is fitted once per fold.
3. **Cross-validate each candidate** (the suffix with its parameters) with
   stratified k-fold on the training split, all candidate-folds in one
   joblib ``Parallel`` (so ``--backend dask`` spreads them over a cluster).
   As soon as a candidate's folds are done, one JSON line is appended to the
   results file; a rerun with the same spec, data and CV settings skips the
   candidates found there.
4. **Refit and test.** The best candidate is refitted on the training
   split, evaluated once on the test split, and saved as a full pipeline
   (prefix + suffix) that takes images.

Successive halving (``search="halving"``) uses scikit-learn's
``HalvingGridSearchCV`` on precomputed features and writes its results at
the end (it cannot resume half-way).
"""

import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
from joblib import Memory, Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import get_scorer
from sklearn.model_selection import (
    ParameterGrid,
    ParameterSampler,
    PredefinedSplit,
    StratifiedKFold,
)
from sklearn.pipeline import FeatureUnion, Pipeline

from .base import ImageTransformer
from .specs import describe_pipeline

__all__ = [
    "SearchResult",
    "CandidateResult",
    "SearchInterrupted",
    "run_search",
    "split_stateless",
    "read_results",
    "check_cache_folder",
    "check_cluster",
    "format_results_table",
    "map_skipping_failures",
]

SEARCH_METHODS = ("grid", "random", "halving")


class SearchInterrupted(RuntimeError):
    """Raised (by a ``stop_after`` limit) to stop a search early, as a kill would."""


@dataclass
class CandidateResult:
    """Cross-validation result of one candidate.

    Attributes
    ----------
    key : str
        Identifies the candidate, the spec, the data and the CV settings.
    params : dict
        The candidate's parameters (scikit-learn names).
    mean_score, std_score : float
        Mean and standard deviation of the validation scores.
    fold_scores : list of float
    mean_fit_time, mean_score_time : float
        Seconds per fold.
    resumed : bool
        Whether it was read from the results file instead of computed.
    """

    key: str
    params: dict
    mean_score: float
    std_score: float
    fold_scores: list
    mean_fit_time: float
    mean_score_time: float
    resumed: bool = False


@dataclass
class SearchResult:
    """What a search produced.

    Attributes
    ----------
    candidates : list of CandidateResult
        Ranked, best first.
    best_params : dict
    best_estimator : sklearn.pipeline.Pipeline
        Refitted on the training split; takes images.
    y_test, y_pred : ndarray of shape (n_test,)
        Test labels and predictions (class names), skipped images excluded.
    test_images : list or ndarray
        The test images that were evaluated (paths or arrays).
    class_names : list of str
    skipped : list of (str, str)
        ``(image, reason)`` for each image that could not be processed.
    timings : dict of str to float
        Seconds spent extracting, cross-validating and refitting.
    n_computed, n_resumed : int
        Candidates evaluated now and read from the results file.
    """

    candidates: list
    best_params: dict
    best_estimator: object
    y_test: np.ndarray
    y_pred: np.ndarray
    test_images: object
    class_names: list
    skipped: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    n_computed: int = 0
    n_resumed: int = 0


def check_cache_folder(folder):
    """Create ``folder`` if needed and check that files can be written in it.

    Parameters
    ----------
    folder : str or os.PathLike

    Raises
    ------
    OSError
        With a message naming the folder, if it cannot be created or written.
    """
    folder = os.fspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OSError(
            f"cache folder {folder!r} cannot be written ({exc.strerror or exc}); "
            "choose another folder with --cache"
        ) from None


def split_stateless(pipeline):
    """Return how many leading steps of ``pipeline`` are stateless image steps.

    A step is stateless when it is a featclf
    :class:`~featclf.base.ImageTransformer` (its output for an image
    depends on that image only), or a Pipeline / FeatureUnion made only of
    such steps.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline

    Returns
    -------
    n_prefix : int
        ``pipeline[:n_prefix]`` is the stateless prefix (it may be empty).
    """
    n_prefix = 0
    for _, step in pipeline.steps[:-1]:
        if not _is_stateless(step):
            break
        n_prefix += 1
    return n_prefix


def _is_stateless(step):
    if isinstance(step, Pipeline):
        return all(_is_stateless(s) for _, s in step.steps)
    if isinstance(step, FeatureUnion):
        return all(_is_stateless(s) for _, s in step.transformer_list
                   if s not in ("drop", "passthrough"))
    return isinstance(step, ImageTransformer)


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _candidate_key(params, context):
    text = json.dumps({"params": _jsonable(params), **context}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def read_results(path):
    """Read a results file written by :func:`run_search`.

    A last line cut short by a kill is ignored.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    records : dict of str to dict
        Record by candidate key (empty when the file does not exist).
    """
    records = {}
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "key" in record:
            records[record["key"]] = record
    return records


def _end_with_newline(path):
    """Terminate a last line cut short by a kill, so appends start afresh."""
    path = Path(path)
    if path.is_file() and path.stat().st_size:
        with open(path, "rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")


def _append_result(path, record):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class _NoProgress:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(total, description, quiet):
    """A tqdm bar on stderr; none when quiet, not a terminal or tqdm is absent."""
    if quiet or not sys.stderr.isatty():
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the optional 'grid' extra is not installed
        return _NoProgress()
    return tqdm(total=total, desc=description, leave=False, file=sys.stderr)


# ----------------------------------------------------------------- extraction

def _take(features, indices):
    if isinstance(features, np.ndarray):
        return features[indices]
    return [features[i] for i in indices]


def _concatenate(parts):
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts, axis=0)
    return [item for part in parts for item in part]


def _fit_prefix(prefix, images, skip):
    """Fit the stateless prefix on the first image that works."""
    for index in range(len(images)):
        if index in skip:
            continue
        try:
            return prefix.fit(_take(images, [index]))
        except (OSError, ValueError):
            continue
    raise ValueError("no image could be processed by the pipeline's first steps")


def map_skipping_failures(function, images, *, chunk_size=512, quiet=True, label=""):
    """Apply ``function`` to ``images`` chunk by chunk, skipping images it fails on.

    A chunk that raises ``OSError`` or ``ValueError`` (an unreadable file, an
    image a step rejects) is retried one image at a time, so only the bad
    images are dropped, and the reason for each is kept.

    Parameters
    ----------
    function : callable
        Takes a batch (a slice of ``images``) and returns an ndarray with one
        row per image, or a list with one item per image.
    images : list of paths or ndarray of shape (n, H, W[, C])
    chunk_size : int, default=512
        Images per call (and per progress-bar step).
    quiet : bool, default=True
        No progress bar.
    label : str, default=""
        Progress-bar label.

    Returns
    -------
    outputs : ndarray or list
        ``function``'s output for the images that worked, in order.
    valid : ndarray of int
        Their indices in ``images``.
    bad : dict of int to str
        Index -> reason, for the images that failed.
    """
    n = len(images)
    bad = {}
    parts, valid = [], []
    bar = _progress(n, label, quiet)
    for start in range(0, n, chunk_size):
        indices = list(range(start, min(start + chunk_size, n)))
        try:
            parts.append(function(_take(images, indices)))
            valid.extend(indices)
        except (OSError, ValueError):
            for index in indices:  # find the bad images of this chunk
                try:
                    parts.append(function(_take(images, [index])))
                    valid.append(index)
                except (OSError, ValueError) as exc:
                    bad[index] = str(exc)
        bar.update(len(indices))
    bar.close()
    if not parts:
        first = next(iter(bad.values()), "no images")
        raise ValueError(f"no image could be processed (first error: {first})")
    return _concatenate(parts), np.asarray(valid, dtype=int), bad


def _extract(prefix, images, *, quiet=True, label=""):
    """Fit the stateless ``prefix`` on one image and run it over ``images``."""
    _fit_prefix(prefix, images, {})
    return map_skipping_failures(prefix.transform, images, quiet=quiet,
                                 label=f"extract {label}".strip())


def _extract_keyed(prefix_description, data_fingerprint, prefix, images, quiet, label):
    """Cacheable wrapper: the key is the first two arguments only."""
    return _extract(prefix, images, quiet=quiet, label=label)


def _cache_key_description(estimator):
    """Describe the prefix without parameters that do not change its output."""
    description = describe_pipeline(estimator)

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "n_jobs"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return json.dumps(strip(description), sort_keys=True)


class _Features:
    """Features of every image for each prefix setting, cached on disk."""

    def __init__(self, images, fingerprint, memory, quiet):
        self.images = images
        self.fingerprint = fingerprint
        self.memory = memory
        self.quiet = quiet
        self._in_memory = {}
        if memory is not None:
            self._cached = memory.cache(
                _extract_keyed, ignore=["prefix", "images", "quiet", "label"])

    def get(self, prefix, label=""):
        key = _cache_key_description(prefix)
        if self.memory is not None:
            return self._cached(key, self.fingerprint, prefix, self.images,
                                self.quiet, label)
        if key not in self._in_memory:
            self._in_memory[key] = _extract(prefix, self.images, quiet=self.quiet,
                                            label=label)
        return self._in_memory[key]


# ----------------------------------------------------------------- candidates

def _fit_and_score(suffix, params, X, y, train, test, scorer):
    """Fit on one fold; return score, fit and score seconds, warning count."""
    estimator = clone(suffix).set_params(**params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        estimator.fit(_take(X, train), y[train])
        fit_time = time.perf_counter() - start
        start = time.perf_counter()
        score = float(scorer(estimator, _take(X, test), y[test]))
    n_convergence = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return score, fit_time, time.perf_counter() - start, n_convergence


def _candidates(spec, search, n_iter, seed):
    if search == "random":
        return list(ParameterSampler(spec.param_grid, n_iter=n_iter, random_state=seed))
    if spec.is_random_only:
        raise ValueError(
            f"spec {spec.name!r} has distributions in its grid: use --search random"
        )
    return list(ParameterGrid(spec.param_grid))


def _split_params(params, prefix_names):
    prefix, suffix = {}, {}
    for name, value in params.items():
        step = name.split("__", 1)[0]
        (prefix if step in prefix_names else suffix)[name] = value
    return prefix, suffix


class _PrecomputedFeatures(TransformerMixin, BaseEstimator):
    """Look up precomputed feature rows; X holds row indices (for halving)."""

    def __init__(self, source=None):
        self.source = source

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        features = joblib.load(self.source, mmap_mode="r")
        return _take(features, np.asarray(X).ravel().astype(int))


# ----------------------------------------------------------------- the search

def run_search(spec, splits, *, search="grid", cv=5, n_iter=10, scoring="accuracy",
               cache=None, results=None, seed=0, n_jobs=None, quiet=True,
               backend=None, scheduler=None, stop_after=None):
    """Search the spec's grid on the training split, then refit and test.

    Parameters
    ----------
    spec : featclf.specs.PipelineSpec
        The pipeline and its grid.
    splits : featclf.splits.Splits
        Train, optional validation, and test images.
    search : {"grid", "random", "halving"}, default="grid"
        Exhaustive grid, ``n_iter`` random candidates, or successive
        halving (``HalvingGridSearchCV``).
    cv : int, default=5
        Stratified folds on the training split (ignored when ``splits``
        has a validation split: it is then the one validation fold).
    n_iter : int, default=10
        Candidates of a random search.
    scoring : str, default="accuracy"
        A scikit-learn scorer name.
    cache : str or os.PathLike, default=None
        Folder for cached features (``None``: no disk cache).
    results : str or os.PathLike, default=None
        JSONL file receiving one line per finished candidate; candidates
        already in it are skipped. ``None``: no file, no resume.
    seed : int, default=0
        Seed for the folds, random candidates and the estimators.
    n_jobs : int, default=None
        Parallel candidate-folds (joblib meaning).
    quiet : bool, default=True
        No progress bars.
    backend : {None, "dask"}, default=None
        ``"dask"`` runs candidate-folds on a dask.distributed cluster.
    scheduler : str, default=None
        The Dask scheduler address (``"tcp://host:8786"``); required with
        ``backend="dask"``.
    stop_after : int, default=None
        Stop with :class:`SearchInterrupted` after this many newly
        computed candidates (to test resuming).

    Returns
    -------
    result : SearchResult

    Raises
    ------
    ValueError
        For an unknown search method, an impossible CV split, or data the
        pipeline cannot process at all.
    OSError
        If the cache folder cannot be written.
    """
    if search not in SEARCH_METHODS:
        raise ValueError(f"search must be one of {SEARCH_METHODS}, got {search!r}")
    if backend not in (None, "local", "dask"):
        raise ValueError(f"backend must be 'local' or 'dask', got {backend!r}")
    if backend == "dask":
        return _run_on_dask(spec, splits, scheduler, search=search, cv=cv,
                            n_iter=n_iter, scoring=scoring, cache=cache,
                            results=results, seed=seed, quiet=quiet,
                            stop_after=stop_after)
    memory = None
    if cache is not None:
        check_cache_folder(cache)
        memory = Memory(os.fspath(cache), verbose=0)
    timings = {}

    # 1. the images of every split, one list, and the prefix / suffix split
    parts = [splits.train] + ([splits.validation] if splits.validation is not None else []) + [splits.test]
    bounds = np.cumsum([0] + [len(p) for p in parts])
    images = _concatenate([p.images if not p.is_paths else list(p.images) for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    names = [p.name(i) for p in parts for i in range(len(p))]
    data_fingerprint = splits.fingerprint()

    pipeline = spec.pipeline
    n_prefix = split_stateless(pipeline)
    prefix_names = {name for name, _ in pipeline.steps[:n_prefix]}
    candidates = _candidates(spec, search, n_iter, seed)
    groups = {}
    for index, params in enumerate(candidates):
        prefix_params, _ = _split_params(params, prefix_names)
        group = json.dumps(_jsonable(prefix_params), sort_keys=True)
        groups.setdefault(group, (prefix_params, []))[1].append(index)

    # 2. extract once per prefix setting (cached), collect bad images
    start = time.perf_counter()
    store = _Features(images, data_fingerprint, memory, quiet)

    def prefix_for(prefix_params):
        prefix = clone(pipeline[:n_prefix]) if n_prefix else None
        if prefix is not None:
            prefix.set_params(**prefix_params)
        return prefix

    skipped = {}
    for label, (prefix_params, _) in enumerate(groups.values(), start=1):
        prefix = prefix_for(prefix_params)
        if prefix is None:
            break
        _, _, bad = store.get(prefix, label=f"{label}/{len(groups)}")
        skipped.update(bad)
    timings["extract_s"] = time.perf_counter() - start
    usable = np.ones(len(images), dtype=bool)
    usable[list(skipped)] = False
    train_rows = np.flatnonzero(usable[:bounds[-2]])  # train (+ validation)
    test_rows = np.flatnonzero(usable[bounds[-2]:]) + bounds[-2]
    if len(test_rows) == 0:
        raise ValueError("no test image could be processed")

    def features_for(prefix_params):
        """Features indexed like ``images`` (rows of skipped images unused)."""
        prefix = prefix_for(prefix_params)
        if prefix is None:
            return images, None
        feats, valid, _ = store.get(prefix)
        position = np.full(len(images), -1)
        position[valid] = np.arange(len(valid))
        return feats, position

    y_train = labels[train_rows]
    if splits.validation is not None:
        n_train = bounds[1]
        fold_ids = np.where(train_rows < n_train, -1, 0)
        folds = list(PredefinedSplit(fold_ids).split())
    else:
        _check_folds(y_train, cv)
        folds = list(StratifiedKFold(cv, shuffle=True, random_state=seed)
                     .split(np.zeros(len(y_train)), y_train))

    suffix = clone(pipeline[n_prefix:])
    if memory is not None and len(suffix.steps) > 1:
        suffix.set_params(memory=memory)
    scorer = get_scorer(scoring)
    context = {
        "spec": spec.fingerprint,
        "data": data_fingerprint,
        "skipped": sorted(skipped),
        "cv": [len(folds), seed, scoring, search],
    }

    # 3. cross-validate every candidate
    start = time.perf_counter()
    if search == "halving":
        ranked, n_computed, n_resumed = _halving(
            candidates, groups, features_for, train_rows, y_train, folds, suffix,
            scoring, seed, context, results, memory, prefix_names)
    else:
        # the cache folder keeps every finished candidate too, so a rerun
        # over the same cache is fast even with a new results file
        cache_store = (Path(memory.location) / "featclf-candidates.jsonl"
                       if memory is not None else None)
        ranked, n_computed, n_resumed = _cross_validate_all(
            candidates, groups, features_for, train_rows, y_train, folds, suffix,
            scorer, context, results, cache_store, n_jobs, quiet, stop_after,
            prefix_names)
    timings["search_s"] = time.perf_counter() - start

    # 4. refit the best candidate on the training split and test it
    start = time.perf_counter()
    best_params = ranked[0].params
    prefix_params, suffix_params = _split_params(best_params, prefix_names)
    features, position = features_for(prefix_params)
    final = clone(pipeline).set_params(**best_params)
    if n_prefix:
        _fit_prefix(final[:n_prefix], images, skipped)
        X_train, X_test = _take(features, position[train_rows]), _take(features, position[test_rows])
    else:
        X_train, X_test = _take(images, train_rows), _take(images, test_rows)
    final_suffix = final[n_prefix:]
    if memory is not None:
        refit_key = _candidate_key(best_params, {**context, "refit": True})
        refit = memory.cache(_fit_keyed, ignore=["estimator", "X", "y"])
        final_suffix = refit(refit_key, final_suffix, X_train, y_train)
        final = Pipeline(final.steps[:n_prefix] + final_suffix.steps)
    else:
        final_suffix.fit(X_train, y_train)
    y_pred = final_suffix.predict(X_test)
    timings["refit_s"] = time.perf_counter() - start

    return SearchResult(
        candidates=ranked,
        best_params=best_params,
        best_estimator=final,
        y_test=labels[test_rows],
        y_pred=np.asarray(y_pred),
        test_images=_take(images, test_rows),
        class_names=list(splits.train.class_names),
        skipped=[(names[i], skipped[i]) for i in sorted(skipped)],
        timings=timings,
        n_computed=n_computed,
        n_resumed=n_resumed,
    )


def _check_folds(y, cv):
    if cv < 2:
        raise ValueError(f"cv must be at least 2 folds, got {cv}")
    _, counts = np.unique(y, return_counts=True)
    if counts.min() < cv:
        raise ValueError(
            f"the smallest class of the training split has {counts.min()} images, "
            f"fewer than cv={cv} folds: lower --cv or add images"
        )


def _record(key, params, scores, fit_times, score_times, context):
    return {
        "key": key,
        "params": _jsonable(params),
        "mean_test_score": float(np.mean(scores)),
        "std_test_score": float(np.std(scores)),
        "split_test_scores": [float(s) for s in scores],
        "mean_fit_time": float(np.mean(fit_times)),
        "mean_score_time": float(np.mean(score_times)),
        "spec": context["spec"],
        "data": context["data"],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _from_record(record, params, resumed):
    return CandidateResult(
        key=record["key"], params=params,
        mean_score=record["mean_test_score"], std_score=record["std_test_score"],
        fold_scores=record["split_test_scores"],
        mean_fit_time=record["mean_fit_time"],
        mean_score_time=record["mean_score_time"], resumed=resumed,
    )


def _rank(results_by_index):
    order = sorted(results_by_index, key=lambda i: (-results_by_index[i].mean_score, i))
    return [results_by_index[i] for i in order]


def _fit_keyed(key, estimator, X, y):
    """Fit ``estimator``; cacheable by ``key`` alone (the rest is ignored)."""
    return estimator.fit(X, y)


def _cross_validate_all(candidates, groups, features_for, train_rows, y_train, folds,
                        suffix, scorer, context, results, cache_store, n_jobs, quiet,
                        stop_after, prefix_names):
    keys = [_candidate_key(params, context) for params in candidates]
    stores = [Path(p) for p in (results, cache_store) if p is not None]
    for store in stores:
        store.parent.mkdir(parents=True, exist_ok=True)
        _end_with_newline(store)
    in_results = read_results(results) if results is not None else {}
    done = {}
    for store in stores:
        done.update(read_results(store))
    finished = {}
    for i, key in enumerate(keys):
        if key in done:
            finished[i] = _from_record(done[key], candidates[i], True)
            if results is not None and key not in in_results:
                _append_result(results, done[key])
    n_resumed = len(finished)
    todo = [i for i in range(len(candidates)) if i not in finished]

    def tasks():
        for prefix_params, members in groups.values():
            members = [i for i in members if i in set(todo)]
            if not members:
                continue
            features, position = features_for(prefix_params)
            X = _take(features, position[train_rows]) if position is not None \
                else _take(features, train_rows)
            for i in members:
                _, suffix_params = _split_params(candidates[i], prefix_names)
                for fold, (train, test) in enumerate(folds):
                    yield i, fold, delayed(_fit_and_score)(
                        suffix, suffix_params, X, y_train, train, test, scorer)

    bar = _progress(len(todo), "candidates", quiet)
    partial = {}
    n_computed = 0

    # each output is tagged with its (candidate, fold) by a wrapper call
    def tagged():
        for i, fold, (function, args, kwargs) in tasks():
            yield delayed(_tagged)(i, fold, function, args, kwargs)

    outputs = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tagged())
    try:
        for i, fold, *fold_result in outputs:
            partial.setdefault(i, {})[fold] = fold_result
            if len(partial[i]) < len(folds):
                continue
            by_fold = partial.pop(i)
            scores, fit_times, score_times, n_warnings = zip(
                *(by_fold[f] for f in range(len(folds))))
            record = _record(keys[i], candidates[i], scores, fit_times, score_times, context)
            record["convergence_warnings"] = int(sum(n_warnings))
            for store in stores:
                _append_result(store, record)
            finished[i] = _from_record(record, candidates[i], False)
            n_computed += 1
            bar.update(1)
            if stop_after is not None and n_computed >= stop_after and len(finished) < len(candidates):
                raise SearchInterrupted(
                    f"stopped after {n_computed} candidates (stop_after={stop_after})")
    finally:
        bar.close()
    return _rank(finished), n_computed, n_resumed


def _tagged(i, fold, function, args, kwargs):
    return (i, fold) + function(*args, **kwargs)


def _halving(candidates, groups, features_for, train_rows, y_train, folds, suffix,
             scoring, seed, context, results, memory, prefix_names):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    # one lookup table per prefix setting, saved where the workers can read it
    folder = Path(memory.location) / "featclf-halving" if memory is not None \
        else Path(tempfile.mkdtemp(prefix="featclf-halving-"))
    folder.mkdir(parents=True, exist_ok=True)
    grid = []
    sources = {}
    for group, (prefix_params, members) in groups.items():
        features, position = features_for(prefix_params)
        rows = _take(features, position[train_rows]) if position is not None \
            else _take(features, train_rows)
        source = folder / (hashlib.sha256((group + context["data"]).encode()).hexdigest()[:16] + ".joblib")
        joblib.dump(rows, source)
        sources[os.fspath(source)] = prefix_params
        suffix_grid = {}
        for i in members:
            for name, value in _split_params(candidates[i], prefix_names)[1].items():
                suffix_grid.setdefault(name, [])
                if value not in suffix_grid[name]:
                    suffix_grid[name].append(value)
        grid.append({"lookup__source": [os.fspath(source)],
                     **{f"model__{k}": v for k, v in suffix_grid.items()}})
    model = Pipeline([("lookup", _PrecomputedFeatures()), ("model", suffix)])
    halving = HalvingGridSearchCV(model, grid, cv=folds, scoring=scoring,
                                  random_state=seed, refit=False)
    halving.fit(np.arange(len(y_train)).reshape(-1, 1), y_train)
    cv_results = halving.cv_results_
    last = cv_results["iter"] == cv_results["iter"].max()
    ranked = {}
    for index in np.flatnonzero(last):
        found = cv_results["params"][index]
        params = dict(sources[found["lookup__source"]])
        params.update({k[len("model__"):]: v for k, v in found.items()
                       if k.startswith("model__")})
        scores = [cv_results[f"split{f}_test_score"][index] for f in range(len(folds))]
        key = _candidate_key(params, context)
        record = _record(key, params, scores, [cv_results["mean_fit_time"][index]],
                         [cv_results["mean_score_time"][index]], context)
        record["n_resources"] = int(cv_results["n_resources"][index])
        if results is not None:
            Path(results).parent.mkdir(parents=True, exist_ok=True)
            _append_result(results, record)
        ranked[int(index)] = _from_record(record, params, False)
    return _rank(ranked), len(cv_results["params"]), 0


def _run_on_dask(spec, splits, scheduler, **options):
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(
            "backend 'dask' needs dask.distributed: pip install 'featclf[dask]'"
        ) from None
    if not scheduler:
        raise ValueError("backend 'dask' needs a scheduler address "
                         "(--scheduler tcp://HOST:PORT)")
    try:
        client = Client(scheduler, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise OSError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
    try:
        check_cluster(client, scheduler)
        with joblib.parallel_config(backend="dask"):
            return run_search(spec, splits, n_jobs=-1, **options)
    finally:
        client.close()


def check_cluster(client, address=""):
    """Check that a Dask cluster's scheduler and workers can import featclf.

    Tasks refer to featclf's functions by name, so the scheduler (which
    reads the task graph) and every worker need the same featclf; without
    this check a misconfigured cluster fails the tasks where the client
    never hears of it, and the search waits forever.

    Parameters
    ----------
    client : distributed.Client
    address : str, default=""
        The scheduler address, for the message.

    Raises
    ------
    OSError
        If there are no workers, or the scheduler or a worker cannot import
        featclf or has another version of it.
    """
    from . import __version__

    probe = "__import__('featclf').__version__"
    try:
        versions = {"scheduler": client.run_on_scheduler(eval, probe)}
        versions.update(client.run(eval, probe))
    except Exception as exc:  # whatever the remote side raised
        raise OSError(
            f"the Dask cluster at {address!r} cannot import featclf "
            f"({type(exc).__name__}: {exc}); install featclf {__version__} on the "
            "scheduler and on every worker (or start them with PYTHONPATH set to "
            "the repository)"
        ) from None
    if len(versions) < 2:
        raise OSError(f"the Dask cluster at {address!r} has no workers")
    other = {where: v for where, v in versions.items() if v != __version__}
    if other:
        raise OSError(f"the Dask cluster at {address!r} runs other featclf versions "
                      f"{other}; this client has {__version__}")


def format_results_table(candidates, top=None):
    """Format ranked candidates as a text table.

    Parameters
    ----------
    candidates : list of CandidateResult
        Ranked, best first.
    top : int, default=None
        Show only the first ``top`` rows.

    Returns
    -------
    table : str
        Rank, mean and std score, fit time and parameters, one row each.
    """
    rows = candidates[:top] if top else candidates
    lines = [f"{'rank':>4}  {'mean':>7}  {'std':>6}  {'fit s':>7}  params"]
    for rank, result in enumerate(rows, start=1):
        params = ", ".join(f"{k}={_jsonable(v)}" for k, v in sorted(result.params.items()))
        lines.append(f"{rank:>4}  {result.mean_score:7.4f}  {result.std_score:6.4f}  "
                     f"{result.mean_fit_time:7.3f}  {params}")
    return "\n".join(lines)
