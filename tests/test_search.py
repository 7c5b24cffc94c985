"""The grid-search runner (featclf.search) and data splits (featclf.splits):
agreement with scikit-learn, feature caching, resuming, bad input, Dask."""

import json
import os

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from featclf.base import FeatureExtractor
from featclf.preprocessing import Resize
from featclf.search import (
    SearchInterrupted,
    check_cache_folder,
    read_results,
    run_search,
    split_stateless,
)
from featclf.specs import PipelineSpec, _fingerprint
from featclf.splits import load_splits
from featclf.testing import write_images

CALLS = {"images": 0}


class CountingPixels(FeatureExtractor):
    """Raw pixels times ``scale``; counts the images it processes."""

    _parameter_constraints = {"scale": [float]}

    def __init__(self, scale=1.0):
        self.scale = scale

    def _transform_chunk(self, images):
        CALLS["images"] += len(images)
        return np.stack([np.asarray(i, np.float32).ravel() * self.scale for i in images])


def make_spec(grid=None):
    pipeline = Pipeline([
        ("resize", Resize((8, 8))),
        ("pixels", CountingPixels()),
        ("scaler", StandardScaler()),
        ("svm", LinearSVC(random_state=0)),
    ])
    grid = grid or {"svm__C": [0.01, 0.1, 1.0], "pixels__scale": [1.0, 2.0]}
    return PipelineSpec("test", None, "", pipeline, grid, _fingerprint(pipeline, grid))


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits", max_train=300, max_test=100)


def test_prefix_is_the_stateless_image_steps():
    assert split_stateless(make_spec().pipeline) == 2


def test_cv_scores_match_gridsearchcv(digits):
    spec = make_spec({"svm__C": [0.01, 0.1, 1.0]})
    result = run_search(spec, digits, cv=3, seed=0)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    reference = GridSearchCV(spec.pipeline, spec.param_grid, cv=folds)
    reference.fit(digits.train.images, digits.train.labels)
    ours = {r.params["svm__C"]: r.mean_score for r in result.candidates}
    theirs = dict(zip([p["svm__C"] for p in reference.cv_results_["params"]],
                      reference.cv_results_["mean_test_score"]))
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert result.best_params == reference.best_params_
    expected = reference.best_estimator_.predict(digits.test.images)
    np.testing.assert_array_equal(result.y_pred, expected)
    np.testing.assert_array_equal(result.y_test, digits.test.labels)
    assert result.best_estimator.predict(digits.test.images[:5]).tolist() == expected[:5].tolist()


def test_features_are_extracted_once_per_prefix_setting_and_cached(digits, tmp_path):
    spec = make_spec()
    n_images = len(digits.train) + len(digits.test)
    CALLS["images"] = 0
    cold = run_search(spec, digits, cv=3, cache=tmp_path / "cache")
    # two prefix settings (scale 1 and 2), each image once, plus fitting
    # on the first image and refitting the best prefix
    assert CALLS["images"] <= 2 * n_images + 4
    CALLS["images"] = 0
    warm = run_search(spec, digits, cv=3, cache=tmp_path / "cache",
                      results=tmp_path / "new.jsonl")
    assert CALLS["images"] <= 4  # only the fit on one image per setting
    assert [c.mean_score for c in warm.candidates] == [c.mean_score for c in cold.candidates]
    # finished candidates and the refit are cached too; a new results file
    # still receives every candidate
    assert warm.n_computed == 0 and warm.n_resumed == 6
    assert len(read_results(tmp_path / "new.jsonl")) == 6
    np.testing.assert_array_equal(warm.y_pred, cold.y_pred)
    np.testing.assert_array_equal(warm.best_estimator.predict(digits.test.images), cold.y_pred)


def test_killed_run_resumes_and_skips_finished_candidates(digits, tmp_path):
    spec = make_spec()
    results = tmp_path / "results.jsonl"
    with pytest.raises(SearchInterrupted):
        run_search(spec, digits, cv=3, results=results, stop_after=2)
    finished = read_results(results)
    assert len(finished) == 2
    # a kill in the middle of writing leaves a partial last line
    with open(results, "a") as handle:
        handle.write('{"key": "cut sh')
    resumed = run_search(spec, digits, cv=3, results=results)
    assert resumed.n_resumed == 2 and resumed.n_computed == 4
    assert {c.key for c in resumed.candidates if c.resumed} == set(finished)
    fresh = run_search(spec, digits, cv=3, results=tmp_path / "fresh.jsonl")
    assert [(c.params, c.mean_score) for c in resumed.candidates] == \
        [(c.params, c.mean_score) for c in fresh.candidates]
    again = run_search(spec, digits, cv=3, results=results)
    assert again.n_computed == 0 and again.n_resumed == 6
    # other CV settings are other candidates
    other = run_search(spec, digits, cv=4, results=results)
    assert other.n_computed == 6


def test_random_and_halving_search(digits):
    spec = make_spec()
    random = run_search(spec, digits, search="random", n_iter=3, cv=3)
    assert len(random.candidates) == 3
    halving = run_search(spec, digits, search="halving", cv=3)
    grid = run_search(spec, digits, cv=3)
    assert halving.best_params["pixels__scale"] in (1.0, 2.0)
    assert halving.candidates[0].mean_score <= grid.candidates[0].mean_score + 0.05


def test_validation_split_is_one_fold(tmp_path):
    splits = load_splits("digits", max_train=300, max_test=50, validation_size=0.3)
    result = run_search(make_spec({"svm__C": [0.1, 1.0]}), splits)
    assert all(len(c.fold_scores) == 1 for c in result.candidates)


@pytest.fixture
def image_folder(tmp_path):
    """3 classes x 10 PNG digits (16x16 RGB) in root/<class>/."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path / "images"
    for label in range(3):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        images = digits.images[digits.target == label][:10]
        images = np.repeat((images * 255 / 16).astype(np.uint8)[..., None], 3, axis=3)
        write_images([np.kron(i, np.ones((2, 2, 1), np.uint8)) for i in images], folder)
    return root


def test_unreadable_image_is_skipped_and_listed(image_folder, tmp_path):
    broken = image_folder / "class1" / "image_00004.png"
    broken.write_bytes(b"not a png at all")
    splits = load_splits(image_folder, test_size=0.3, seed=0)
    results = tmp_path / "results.jsonl"
    result = run_search(make_spec({"svm__C": [0.1, 1.0]}), splits, cv=2, results=results)
    assert [os.path.basename(name) for name, _ in result.skipped] == ["image_00004.png"]
    assert "cannot be decoded" in result.skipped[0][1]
    n_usable = len(splits.train) + len(splits.test) - 1
    assert len(result.y_test) + (len(splits.train) - (str(broken) in splits.train.images)) \
        == n_usable
    assert len(read_results(results)) == 2


def test_dedupe_removes_byte_identical_test_images(image_folder):
    source = image_folder / "class0" / "image_00000.png"
    splits = load_splits(image_folder, test_size=0.5, seed=0)
    train_file = next(p for p in splits.train.images if "class2" in p)
    test_file = next(p for p in splits.test.images if "class2" in p)
    with open(test_file, "wb") as handle:
        handle.write(open(train_file, "rb").read())
    assert source.exists()
    kept = load_splits(image_folder, test_size=0.5, seed=0)
    deduped = load_splits(image_folder, test_size=0.5, seed=0, dedupe=True)
    assert len(deduped.test) == len(kept.test) - 1
    assert deduped.removed_duplicates == [(train_file, test_file)]
    assert test_file not in deduped.test.images


def test_split_is_seeded_and_stratified(image_folder):
    a = load_splits(image_folder, test_size=0.3, seed=1)
    b = load_splits(image_folder, test_size=0.3, seed=1)
    c = load_splits(image_folder, test_size=0.3, seed=2)
    assert a.test.images == b.test.images and a.test.images != c.test.images
    assert sorted(np.unique(a.test.labels, return_counts=True)[1]) == [3, 3, 3]


def test_missing_and_empty_data_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_splits(tmp_path / "nowhere")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="class folder"):
        load_splits(tmp_path / "empty")


def test_unwritable_cache_folder_is_a_clear_error(tmp_path, digits):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cache folder .* cannot be written"):
        check_cache_folder(blocker / "cache")
    with pytest.raises(OSError, match="cannot be written"):
        run_search(make_spec(), digits, cache=blocker / "cache")


def test_too_few_images_for_the_folds(digits):
    with pytest.raises(ValueError, match="fewer than cv=100 folds"):
        run_search(make_spec(), digits, cv=100)


def test_results_lines_are_json_with_scores(digits, tmp_path):
    results = tmp_path / "r.jsonl"
    run_search(make_spec({"svm__C": [0.1]}), digits, cv=3, results=results)
    (line,) = results.read_text().splitlines()
    record = json.loads(line)
    assert record["params"] == {"svm__C": 0.1}
    assert len(record["split_test_scores"]) == 3
    assert record["mean_test_score"] == pytest.approx(np.mean(record["split_test_scores"]))


def test_dask_backend_gives_the_local_result(digits):
    distributed = pytest.importorskip("distributed")
    spec = make_spec()
    local = run_search(spec, digits, cv=3)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        remote = run_search(spec, digits, cv=3, backend="dask", scheduler=cluster.scheduler_address)
        ran_on_cluster = [name for name in cluster.scheduler.task_prefixes if "_tagged" in name]
    assert ran_on_cluster, "the candidate-folds did not run on the Dask workers"
    assert remote.best_params == local.best_params
    assert [c.mean_score for c in remote.candidates] == [c.mean_score for c in local.candidates]


def test_dask_without_scheduler_is_an_error(digits):
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match="needs a scheduler address"):
        run_search(make_spec(), digits, backend="dask")


class _ClusterWithoutFeatclf:
    def run_on_scheduler(self, function, *args):
        raise ModuleNotFoundError("No module named 'featclf'")


class _ClusterWithoutWorkers:
    def run_on_scheduler(self, function, *args):
        return function(*args)

    def run(self, function, *args):
        return {}


def test_cluster_that_cannot_import_featclf_is_a_clear_error():
    from featclf.search import check_cluster

    with pytest.raises(OSError, match="cannot import featclf .*No module named"):
        check_cluster(_ClusterWithoutFeatclf(), "tcp://127.0.0.1:1")
    with pytest.raises(OSError, match="has no workers"):
        check_cluster(_ClusterWithoutWorkers(), "tcp://127.0.0.1:1")
