"""Accuracy of featclf pipelines on MNIST and CIFAR-10 (standard splits).

Trains each chosen experiment on the training set (or a seeded subset),
predicts the test set, and prints accuracy, macro-F1, fit and predict
time. Results accumulate in a JSON file (one entry per experiment and
subset, replaced when re-run) from which ``docs/accuracy.md`` is
regenerated, so long experiments can run one at a time.

Examples (from the repository root)::

    python scripts/accuracy.py --list
    python scripts/accuracy.py --only mnist-hog-linsvm --subset 10000
    python scripts/accuracy.py --only mnist-mshog-rbfsvm          # full 60k/10k
    python scripts/accuracy.py --only cifar10-kmeans800-linsvm

Data: ``--data DIR`` holds ``mnist/mnist.npz`` and
``cifar10/cifar10_jpeg.npz`` (default ``../shared/data``). The CIFAR-10
copy is JPEG q75 (its README): figures are not the original pixels.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featclf.augmentation import AugmentedClassifier, ImageAugmenter  # noqa: E402
from featclf.datasets import load_cifar10, load_mnist  # noqa: E402
from featclf.features import HOG, LBP, ColorHistogram, KMeansPatches  # noqa: E402
from featclf.pipelines import make_named_pipeline  # noqa: E402
from featclf.preprocessing import Deskew, Grayscale  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def multiscale_hog(block_norm="L2-Hys"):
    """HOG at three cell sizes on 28x28 digits, concatenated (1656 features)."""
    return FeatureUnion([
        ("hog4", HOG(pixels_per_cell=(4, 4), cells_per_block=(2, 2), block_norm=block_norm)),
        ("hog7", HOG(pixels_per_cell=(7, 7), cells_per_block=(2, 2), block_norm=block_norm)),
        ("hog14", HOG(pixels_per_cell=(14, 14), cells_per_block=(1, 1),
                      block_norm=block_norm)),
    ])


def mnist_mshog_rbfsvm():
    """Deskew, 3-scale HOG, PCA to 100 dims, RBF SVM (C=10)."""
    return make_pipeline(Deskew(), multiscale_hog(), PCA(100, random_state=0),
                         SVC(C=10, gamma="scale", cache_size=2000))


def mnist_mshog_sqrt_rbfsvm():
    """Deskew, 3-scale HOG with L1-sqrt blocks (Hellinger), PCA to 200 dims, RBF SVM."""
    return make_pipeline(Deskew(), multiscale_hog("L1-sqrt"), PCA(200, random_state=0),
                         SVC(C=10, gamma="scale", cache_size=2000))


MNIST_AUGMENTER = ImageAugmenter(rotation=8, shift=0.07, crop=0.1, border="constant")


def cifar_kmeans(n_clusters):
    """Coates et al.: K-means patch dictionary, 4K features, L2-SVM (C from their code)."""
    def build():
        return make_pipeline(
            KMeansPatches(n_clusters, n_patches=100_000, kmeans_max_iter=10, random_state=0),
            StandardScaler(), LinearSVC(C=0.002, random_state=0))
    return build


#: name -> (data set, factory of the unfitted model, description).
EXPERIMENTS = {
    "mnist-hog-linsvm": (
        "mnist",
        lambda: make_named_pipeline("hog-linsvm", feature_params={"hog": {
            "image_size": (28, 28), "pixels_per_cell": (4, 4)}}),
        "named pipeline hog-linsvm, 4x4-pixel cells (calibration: issue quotes 98.3 %)"),
    "mnist-mshog-rbfsvm": (
        "mnist", mnist_mshog_rbfsvm,
        "Deskew + HOG 4x4/7x7/14x14 cells + PCA(100) + RBF SVC(C=10)"),
    "mnist-mshog-sqrt-rbfsvm": (
        "mnist", mnist_mshog_sqrt_rbfsvm,
        "Deskew + HOG 4x4/7x7/14x14 cells, L1-sqrt blocks + PCA(200) + RBF SVC(C=10)"),
    "mnist-mshog-rbfsvm-aug": (
        "mnist",
        lambda: AugmentedClassifier(mnist_mshog_rbfsvm(), MNIST_AUGMENTER,
                                    n_copies=1, random_state=0),
        "as mnist-mshog-rbfsvm, trained on originals + 1 augmented copy "
        "(rotation 8 deg, shift 7 %, crop 10 %)"),
    "cifar10-hog+color+lbp-linsvm": (
        "cifar10",
        lambda: make_named_pipeline("hog+color+lbp-linsvm", feature_params={"hog": {
            "image_size": (32, 32), "pixels_per_cell": (4, 4)}}),
        "named pipeline hog+color+lbp-linsvm, HOG on 32x32 with 4x4 cells"),
    "cifar10-kmeans400-linsvm": (
        "cifar10", cifar_kmeans(400),
        "KMeansPatches K=400 (6x6 whitened patches, triangle, quadrants: 1600 features) "
        "+ StandardScaler + LinearSVC(C=0.002)"),
    "cifar10-kmeans800-linsvm": (
        "cifar10", cifar_kmeans(800),
        "KMeansPatches K=800 (3200 features) + StandardScaler + LinearSVC(C=0.002)"),
    "cifar10-kmeans1600-linsvm": (
        "cifar10", cifar_kmeans(1600),
        "KMeansPatches K=1600 (6400 features) + StandardScaler + LinearSVC(C=0.002)"),
}

LOADERS = {
    "mnist": lambda data, n_train, n_test: load_mnist(
        Path(data) / "mnist" / "mnist.npz", n_train=n_train, n_test=n_test),
    "cifar10": lambda data, n_train, n_test: load_cifar10(
        Path(data) / "cifar10" / "cifar10_jpeg.npz", n_train=n_train, n_test=n_test),
}


def run_experiment(name, data, n_train, n_test):
    dataset_name, factory, description = EXPERIMENTS[name]
    x_train, y_train, x_test, y_test, _ = LOADERS[dataset_name](data, n_train, n_test)
    model = factory()
    start = time.perf_counter()
    model.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predicted = model.predict(x_test)
    predict_seconds = time.perf_counter() - start
    return {
        "experiment": name, "dataset": dataset_name, "description": description,
        "n_train": len(y_train), "n_test": len(y_test),
        "accuracy": float(accuracy_score(y_test, predicted)),
        "macro_f1": float(f1_score(y_test, predicted, average="macro")),
        "fit_s": round(fit_seconds, 1), "predict_s": round(predict_seconds, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def write_markdown(results, path):
    lines = [
        "# Accuracy on MNIST and CIFAR-10",
        "",
        "Generated by `scripts/accuracy.py` (one row per experiment and training-set size;",
        "the command for a row is `python scripts/accuracy.py --only EXPERIMENT"
        " [--subset N_TRAIN]`).",
        "Times are wall-clock on a shared 2-core machine under heavy load from other jobs",
        "(compare them only roughly). CIFAR-10 is the JPEG q75 copy, not the original pixels.",
        "",
        "| experiment | train / test | accuracy | macro-F1 | fit (s) | predict (s) | pipeline |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results.values(), key=lambda r: (r["dataset"], r["experiment"], r["n_train"])):
        lines.append(
            f"| {r['experiment']} | {r['n_train']} / {r['n_test']} | "
            f"{100 * r['accuracy']:.2f} % | {100 * r['macro_f1']:.2f} % | {r['fit_s']:.0f} | "
            f"{r['predict_s']:.0f} | {r['description']} |")
    notes = path.with_suffix(".notes.md")
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--only", default="mnist-hog-linsvm",
                        help="comma-separated experiments (see --list)")
    parser.add_argument("--subset", type=int, help="seeded training subset size")
    parser.add_argument("--n-test", type=int, help="seeded test subset size")
    parser.add_argument("--results", default=str(ROOT / "docs" / "accuracy.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "accuracy.md"))
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for name, (dataset, _, description) in EXPERIMENTS.items():
            print(f"{name:32s} {dataset:8s} {description}")
        return 0
    results_path = Path(args.results)
    for name in args.only.split(","):
        if name not in EXPERIMENTS:
            parser.error(f"unknown experiment {name!r}; see --list")
        print(f"running {name} (train subset: {args.subset or 'all'})", flush=True)
        result = run_experiment(name, args.data, args.subset, args.n_test)
        print(json.dumps(result), flush=True)
        # re-read: another run of this script may have added results meanwhile
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
        results[f"{name}@{result['n_train']}/{result['n_test']}"] = result
        os.makedirs(results_path.parent, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=1) + "\n")
        write_markdown(results, Path(args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
