"""Bag of visual words on 15-Scene: flat histogram, spatial pyramid, VLAD, Fisher vectors.

Reproduces the classic scene-recognition results with featclf's DenseSIFT and
BagOfVisualWords on ../shared/data/scene15 (100 training images per class,
the given test folder; Lazebnik et al. 2006 report 81.4 % for the spatial
pyramid, L=2, 400 words). Prints ONE table (accuracy, mean per-class
accuracy, fit and predict time per encoding) and writes it to Markdown.

Dense SIFT is extracted once for every image and cached with joblib.Memory
(``--cache``, keyed on the descriptor code's source too, so a changed
DenseSIFT is never read from a stale cache); the descriptors are stored quantised to uint8 as OpenCV does
(``min(round(512 x), 255)``, x of unit L2 norm), which divides memory by
four and changes no result measurably. Each row then fits its own
vocabulary on the training descriptors only, inside ``Pipeline.fit``.

Usage (from the repository root)::

    python scripts/scene15_bovw.py                       # full table
    python scripts/scene15_bovw.py --dedupe              # drop test images equal to a train image
    python scripts/scene15_bovw.py --max-train 450 --max-test 900 --rows spm   # quick look

Each row chooses its SVM's C by 3-fold cross-validation on the training
features (the vocabulary is fitted once on all training images; the test
images are never used for any choice), then refits on all training images.
The SVMs are trained on exact precomputed kernels (histogram intersection
for the histograms, the dot product for VLAD and Fisher vectors): with 1,500
training images the Gram matrix is small whatever the feature length, so the
whole C grid costs a few seconds (liblinear's dual solver needed minutes per
C on the 82k-dimensional Fisher vectors). Multi-class is one-versus-rest, as
in Lazebnik et al. (2006). The test images are encoded and classified in
chunks, so their features never all exist at once.

For a cold timing (descriptor extraction included), give ``--no-cache``.
"""

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np
from joblib import Memory
from sklearn.kernel_approximation import AdditiveChi2Sampler
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC, LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featclf.encoding import BagOfVisualWords  # noqa: E402
from featclf.features import DescriptorSet, DenseSIFT  # noqa: E402
from featclf.kernels import intersection_kernel  # noqa: E402
from featclf.splits import load_splits  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

#: Dense SIFT as vl_phow: several patch sizes on one grid.
SIFT_PARAMS = dict(step=8, patch_sizes=(16, 24, 32))


def descriptor_code_version():
    """Hash of the source that computes the descriptors (io, preprocessing, sift).

    Passed to :func:`quantised_dense_sift` so that the joblib cache, which
    only looks at that function's own code, is not reused after DenseSIFT
    (or the image decoding) changes.
    """
    import featclf.features.sift as sift_module
    import featclf.io as io_module
    import featclf.preprocessing as preprocessing_module

    digest = hashlib.sha256()
    for module in (io_module, preprocessing_module, sift_module):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def quantised_dense_sift(paths, params, n_jobs, code_version=None, chunk=200):
    """Dense SIFT for every path, descriptors quantised to uint8 (cached).

    Extracted ``chunk`` images at a time, so float32 descriptors never exist
    for more than one chunk. ``code_version`` is unused here; it is part of
    the cache key (:func:`descriptor_code_version`).
    """
    sift = DenseSIFT(**params, n_jobs=n_jobs).fit(paths[:1])
    sets = []
    for start in range(0, len(paths), chunk):
        sets.extend(
            DescriptorSet(
                np.minimum(np.rint(s.descriptors * 512), 255).astype(np.uint8),
                s.positions, s.scales, s.image_shape,
            )
            for s in sift.transform(paths[start : start + chunk])
        )
    return sets


#: C grid of the linear SVMs (a precomputed Gram matrix makes each C cheap).
LINEAR_C = [0.1, 0.3, 1, 3, 10, 30, 100]
#: Chatfield et al. (2011): whole image, 2x2 quadrants, three horizontal bands.
CHATFIELD_GRIDS = ((1, 1), (2, 2), (3, 1))
#: Test images encoded and classified per chunk (bounds the memory).
TEST_CHUNK = 500


def rows(seed, n_jobs):
    """Table rows: key -> (name, setting, encoder, classifier kind, C grid)."""

    def bovw(**params):
        return BagOfVisualWords(random_state=seed, n_jobs=n_jobs, **params)

    return {
        "flat": ("flat bag of words", "hard, 400 words (Lloyd, 20 it.), L=0, HIK SVM",
                 bovw(n_words=400, lloyd_iterations=20), "hik", [0.3, 1, 3, 10, 30]),
        "spm": ("spatial pyramid", "hard, 400 words (Lloyd, 20 it.), L=2, HIK SVM",
                bovw(n_words=400, lloyd_iterations=20, pyramid_levels=2), "hik",
                [0.3, 1, 3, 10, 30]),
        "spmsoft": ("spatial pyramid", "soft (5 nearest words), 400 words, L=2, HIK SVM",
                    bovw(n_words=400, encoding="soft", soft_neighbors=5, pyramid_levels=2),
                    "hik", [0.3, 1, 3, 10, 30]),
        "spmchi2": ("spatial pyramid", "hard, 400 words, L=2, chi2 map + linear SVM",
                    bovw(n_words=400, pyramid_levels=2), "chi2", [0.1, 0.3, 1, 3]),
        "vlad": ("VLAD", "RootSIFT, 64 words, PCA-64, 1x1+2x2+3x1 grids, linear SVM",
                 bovw(n_words=64, encoding="vlad", root_sift=True, pca_components=64,
                      spatial_grids=CHATFIELD_GRIDS),
                 "linear", LINEAR_C),
        "fisher": ("Fisher vectors",
                   "RootSIFT, 128 Gaussians, PCA-64, 1x1+2x2+3x1 grids, linear SVM",
                   bovw(n_words=128, encoding="fisher", root_sift=True, pca_components=64,
                        spatial_grids=CHATFIELD_GRIDS),
                   "linear", LINEAR_C),
        "fisherl1": ("Fisher vectors", "RootSIFT, 128 Gaussians, PCA-64, L=1, linear SVM",
                     bovw(n_words=128, encoding="fisher", root_sift=True, pca_components=64,
                          pyramid_levels=1),
                     "linear", LINEAR_C),
    }


def fit_classifier(kind, features, labels, c_grid, seed, n_jobs):
    """Choose C by 3-fold CV on the training features, refit.

    ``hik`` and ``linear``: one exact Gram matrix (histogram intersection or
    dot product) reused for every C and fold, one-versus-rest SVMs on it.
    ``chi2``: explicit additive chi2 map and LinearSVC.

    Returns (predict, best C, mean CV accuracy per C); ``predict`` maps test
    features to labels.
    """
    cv = StratifiedKFold(3, shuffle=True, random_state=seed)
    if kind in ("hik", "linear"):
        if kind == "hik":
            def kernel(a, b=None):
                return intersection_kernel(a, b, n_jobs=n_jobs)
        else:
            def kernel(a, b=None):
                return (a @ (a if b is None else b).T).astype(np.float64)
        svm = OneVsRestClassifier(SVC(kernel="precomputed"))
        search = GridSearchCV(svm, {"estimator__C": c_grid}, cv=cv)
        search.fit(kernel(features), labels)

        def predict(test):
            return search.predict(kernel(test, features))
    else:
        steps = [("clf", LinearSVC(random_state=seed))]
        if kind == "chi2":
            steps.insert(0, ("map", AdditiveChi2Sampler(sample_steps=2)))
        search = GridSearchCV(Pipeline(steps), {"clf__C": c_grid}, cv=cv)
        search.fit(features, labels)
        predict = search.predict
    best = search.best_params_
    return predict, next(iter(best.values())), search.cv_results_["mean_test_score"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=REPO.parent / "shared" / "data" / "scene15",
                        type=Path, help="15-Scene folder with train/ and test/")
    parser.add_argument("--dedupe", action="store_true",
                        help="drop test images whose bytes equal a training image (README)")
    parser.add_argument("--cache", default=REPO / "featclf-cache" / "scene15_bovw", type=Path,
                        help="joblib.Memory folder for the dense SIFT descriptors")
    parser.add_argument("--no-cache", action="store_true",
                        help="extract the descriptors afresh, neither reading nor writing "
                             "the cache (a cold timing)")
    parser.add_argument("--out", default=str(REPO / "docs" / "scene15_bovw.md"),
                        help="Markdown file for the table ('' to skip)")
    parser.add_argument("--rows", default="flat,spm,vlad,fisher",
                        help="comma-separated rows: flat, spm, spmsoft, spmchi2, vlad, "
                             "fisher, fisherl1")
    parser.add_argument("--max-train", type=int, default=None,
                        help="stratified subset of the training images (quick runs)")
    parser.add_argument("--max-test", type=int, default=None,
                        help="stratified subset of the test images (quick runs)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()

    everything = load_splits(args.data)
    splits = load_splits(args.data, dedupe=args.dedupe, seed=args.seed,
                         max_train=args.max_train, max_test=args.max_test)
    all_paths = [os.fspath(p) for p in everything.train.images + everything.test.images]
    extract = quantised_dense_sift
    if not args.no_cache:
        extract = Memory(args.cache, verbose=0).cache(quantised_dense_sift, ignore=["n_jobs"])
    t0, c0 = time.perf_counter(), time.process_time()
    all_sets = extract(all_paths, SIFT_PARAMS, args.n_jobs, descriptor_code_version())
    extraction_s, extraction_cpu = time.perf_counter() - t0, time.process_time() - c0
    by_path = dict(zip(all_paths, all_sets))
    x_train = [by_path[os.fspath(p)] for p in splits.train.images]
    x_test = [by_path[os.fspath(p)] for p in splits.test.images]
    y_train, y_test = splits.train.labels, splits.test.labels
    n_desc = np.mean([len(s) for s in x_train])
    print(f"{len(x_train)} train / {len(x_test)} test images"
          f"{' (deduplicated: %d test images dropped)' % len(splits.removed_duplicates) if args.dedupe else ''}; "
          f"dense SIFT {SIFT_PARAMS}: {n_desc:.0f} descriptors per image, "
          f"{extraction_s:.1f} s wall, {extraction_cpu:.1f} s CPU "
          f"({'no cache' if args.no_cache else 'cache: %s' % args.cache})", flush=True)

    table = []
    available = rows(args.seed, args.n_jobs)
    for key in args.rows.split(","):
        name, setting, encoder, kind, c_grid = available[key]
        t0, c0 = time.perf_counter(), time.process_time()
        train_features = encoder.fit_transform(x_train)
        predict, best_c, cv_scores = fit_classifier(
            kind, train_features, y_train, c_grid, args.seed, args.n_jobs
        )
        fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        predicted = np.concatenate([
            predict(encoder.transform(x_test[start : start + TEST_CHUNK]))
            for start in range(0, len(x_test), TEST_CHUNK)
        ])
        predict_s, predict_cpu = time.perf_counter() - t0, time.process_time() - c0
        row = dict(
            name=name, setting=f"{setting}, C={best_c}", dims=encoder.n_features_out_,
            accuracy=accuracy_score(y_test, predicted),
            per_class=balanced_accuracy_score(y_test, predicted),
            fit_s=fit_s, predict_s=predict_s, fit_cpu=fit_cpu, predict_cpu=predict_cpu,
        )
        table.append(row)
        cv_text = ", ".join(f"{c}: {score:.3f}" for c, score in zip(c_grid, cv_scores))
        print(f"  {name} ({row['setting']}): {row['accuracy']:.4f} acc, "
              f"{row['per_class']:.4f} mean per-class, fit {fit_s:.1f} s, "
              f"predict {predict_s:.1f} s  [train 3-fold CV accuracy by C: {cv_text}]",
              flush=True)
        del train_features

    total_s, total_cpu = time.perf_counter() - started, time.process_time()
    load_after = os.getloadavg()
    lines = [
        "| encoding | setting | dims | accuracy | mean per-class acc. "
        "| fit wall (CPU) s | predict wall (CPU) s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ] + [
        f"| {r['name']} | {r['setting']} | {r['dims']} | {100 * r['accuracy']:.1f} % | "
        f"{100 * r['per_class']:.1f} % | {r['fit_s']:.0f} ({r['fit_cpu']:.0f}) "
        f"| {r['predict_s']:.0f} ({r['predict_cpu']:.0f}) |"
        for r in table
    ]
    notes = [
        f"15-Scene, {len(x_train)} train / {len(x_test)} test images"
        + (f", test deduplicated ({len(splits.removed_duplicates)} dropped)"
           if args.dedupe else " (the given folders, duplicates kept)")
        + f"; dense SIFT step {SIFT_PARAMS['step']}, patches {SIFT_PARAMS['patch_sizes']}, "
        f"{n_desc:.0f} descriptors per image; extraction {extraction_s:.0f} s wall, "
        f"{extraction_cpu:.0f} s CPU ("
        + ("not cached: a cold run" if args.no_cache else "read from the cache if ~0")
        + "); fit = vocabulary + encoding of the train descriptors + "
        "3-fold CV over C + final SVM; predict = encoding + classifier on the test descriptors; "
        f"n_jobs={args.n_jobs}. **Whole run {total_s:.0f} s wall, {total_cpu:.0f} s CPU** "
        f"(this process, all threads) on {os.cpu_count()} cores; load average (1 min) "
        f"{load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end "
        f"(15 min: {load_after[2]:.1f}).",
    ]
    print()
    print("\n".join(lines))
    print()
    print(notes[0])
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        command = "python scripts/scene15_bovw.py " + " ".join(argv or sys.argv[1:])
        out.write_text(
            "# Bag of visual words on 15-Scene\n\n"
            "Lazebnik et al. (2006) report 81.4 % for the spatial pyramid (L=2, 400 words, "
            "HIK SVM, mean per-class accuracy over 10 random splits).\n\n"
            + "\n".join(lines) + "\n\n" + notes[0] + "\n\nReproduce: `" + command.strip()
            + "` (from the repository root).\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
