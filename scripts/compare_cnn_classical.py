"""Classical featclf pipelines against CNN embeddings + a linear classifier.

On CIFAR-10 (full 50k/10k, JPEG q75 copy) and 15-Scene (1500/2985), this
script trains the best classical named pipelines (from
:mod:`featclf.pipelines`) and a frozen EfficientNet-Lite0 embedding
(:class:`featclf.features.CNNEmbedding`) with a linear classifier whose
``C`` is chosen on a validation split of the training set, and writes one
markdown table (accuracy, macro-F1, fit time, per-image latency, model
size) to ``docs/cnn_vs_classical.md``.

Embeddings are expensive (60k CIFAR images, twice with mirrors, at about
5-10 ms each on a CPU), so they are computed in blocks and cached as
``.npy`` files under ``--cache`` (with the seconds each block took, so the
fit time reported stays the measured one); run ``--stage embed`` once in
the background, then the full comparison reuses the cache.

Usage (from the repository root)::

    python scripts/compare_cnn_classical.py --cache /work/cache-cnn --stage embed
    python scripts/compare_cnn_classical.py --cache /work/cache-cnn
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featclf.datasets import load_cifar10  # noqa: E402
from featclf.features.cnn import CNNEmbedding, file_sha256  # noqa: E402
from featclf.io import load_image_folder, read_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BLOCK = 2000


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------
# Data


def load_scene15(root):
    """15-Scene from its train/test folders: paths, labels, class names."""
    train_paths, y_train, classes = load_image_folder(Path(root) / "train")
    test_paths, y_test, test_classes = load_image_folder(Path(root) / "test")
    assert list(classes) == list(test_classes)
    return train_paths, np.asarray(y_train), test_paths, np.asarray(y_test), list(classes)


def _as_image(item):
    return read_image(item) if isinstance(item, (str, os.PathLike)) else item


# ---------------------------------------------------------------------------
# Cached CNN embeddings


def cnn_embeddings(extractor, images, name, cache, mirrored=False):
    """Embed ``images`` (arrays or paths) in cached blocks.

    Returns
    -------
    features : ndarray of shape (n, n_features), float32
    seconds : float
        Measured extraction time (summed over blocks, from the cache when
        a block was computed earlier).
    """
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    size = "" if extractor.input_size is None else f"_size{extractor.input_size}"
    tag = f"{name}{size}_{'mirror' if mirrored else 'plain'}_{extractor.output}"
    blocks, seconds = [], 0.0
    for index, start in enumerate(range(0, len(images), BLOCK)):
        stem = cache / f"{tag}_{index:03d}"
        if stem.with_suffix(".npy").exists():
            blocks.append(np.load(stem.with_suffix(".npy")))
            seconds += json.loads(stem.with_suffix(".json").read_text())["seconds"]
            continue
        part = [_as_image(item) for item in images[start:start + BLOCK]]
        if mirrored:
            part = [np.ascontiguousarray(image[:, ::-1]) for image in part]
        tic = time.perf_counter()
        features = extractor.transform(part)
        took = time.perf_counter() - tic
        np.save(stem.with_suffix(".npy"), features)
        stem.with_suffix(".json").write_text(json.dumps({"seconds": took, "n": len(part)}))
        log(f"{tag} block {index}: {len(part)} images in {took:.1f} s "
            f"({1000 * took / len(part):.1f} ms/image)")
        blocks.append(features)
        seconds += took
    return np.concatenate(blocks), seconds


def load_dataset(name, args):
    """(x_train, y_train, x_test, y_test, class_names) of one data set."""
    if name == "scene15":
        return load_scene15(args.scene15)
    data = load_cifar10(args.cifar)
    n_train = args.cifar_train or len(data.y_train)
    return data.x_train[:n_train], data.y_train[:n_train], data.x_test, data.y_test, data.class_names


def embed(name, data, extractor, cache, mirrors):
    """Plain (and mirrored) embeddings of the train and test images."""
    x_tr, _, x_te, _, _ = data
    out = {}
    for mirrored in (False, True) if mirrors else (False,):
        for split, items in (("test", x_te), ("train", x_tr)):
            out[split, mirrored] = cnn_embeddings(
                extractor, items, f"{name}_{split}", cache, mirrored)
    return out


# ---------------------------------------------------------------------------
# Models


def square_root(features):
    """Square root of the (non-negative) embedding: a power normalisation."""
    return np.sqrt(np.maximum(features, 0))


def root_l2(features):
    """Square root then L2 normalisation, per image (Hellinger-style)."""
    from sklearn.preprocessing import normalize

    return normalize(square_root(features))


def scale_gamma(features):
    """scikit-learn's ``gamma="scale"`` for these (already transformed) features."""
    return 1.0 / (features.shape[1] * features.var())


class SoftBlend(ClassifierMixin, BaseEstimator):
    """Weighted mean of several classifiers' class probabilities.

    A member without ``predict_proba`` (an SVM without Platt scaling)
    contributes the softmax of its ``decision_function`` (for SVC, the
    one-vs-rest votes plus confidences, so about 0-9 on 10 classes).
    Unlike ``VotingClassifier(voting="soft")`` this needs no probability
    calibration fit, which would cost five more SVM fits.

    Parameters
    ----------
    estimators : list of estimators
        Fitted on the same ``(X, y)``; each sees the raw features and does
        its own scaling (they are pipelines here).
    weights : list of float, default=None
        One per estimator (equal when None); normalised to sum to 1.
    """

    def __init__(self, estimators, weights=None):
        self.estimators = estimators
        self.weights = weights

    def fit(self, X, y):
        """Fit a clone of every member on ``X`` (n_samples, n_features), ``y``."""
        self.estimators_ = [clone(estimator).fit(X, y) for estimator in self.estimators]
        self.classes_ = self.estimators_[0].classes_
        return self

    def predict_proba(self, X):
        """Blended probabilities, shape (n_samples, n_classes)."""
        from scipy.special import softmax

        weights = np.ones(len(self.estimators_)) if self.weights is None else np.asarray(self.weights, float)
        weights = weights / weights.sum()
        total = 0.0
        for weight, estimator in zip(weights, self.estimators_):
            if hasattr(estimator, "predict_proba"):
                scores = estimator.predict_proba(X)
            else:
                scores = softmax(estimator.decision_function(X), axis=1)
            total = total + weight * scores
        return total

    def predict(self, X):
        """Class with the largest blended probability, shape (n_samples,)."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def cnn_classifiers(name, train=None):
    """Candidate classifiers on CNN embeddings: label -> steps factory.

    ``train`` (the training embeddings) sets the RBF width of the CIFAR-10
    candidates that scale scikit-learn's ``gamma="scale"``.

    15-Scene (1,500 images) takes seconds per RBF SVM. On CIFAR-10
    (45,000 training images after the validation split) one RBF SVM fit
    takes 12-18 minutes on one core, so only C=10 and C=30, and C=10 at
    half and twice the default width, are tried there, next to a
    one-hidden-layer perceptron, logistic regression (C=0.1 and 1 scored
    3-4 points below C=0.01 on its validation split) and a
    :class:`SoftBlend` of the SVM at twice the width with four perceptrons
    (seeds 0-3), half the weight each.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from sklearn.svm import SVC

    def logreg(C, root=False):
        power = [("root", FunctionTransformer(square_root))] if root else []
        return lambda: power + [("scale", StandardScaler()),
                                ("clf", LogisticRegression(C=C, max_iter=1000))]

    def rbf(C, gamma="scale"):
        return lambda: [("root_l2", FunctionTransformer(root_l2)),
                        ("clf", SVC(C=C, kernel="rbf", gamma=gamma, cache_size=2000))]

    def mlp_steps(seed=0):
        return [("root", FunctionTransformer(square_root)), ("scale", StandardScaler()),
                ("clf", MLPClassifier((1024,), alpha=1e-2, early_stopping=True,
                                      max_iter=60, random_state=seed))]

    def mlp():
        return lambda: mlp_steps()

    def svm_and_mlps(gamma, n_mlps=4):
        """Half the weight on the RBF SVM, half on n_mlps perceptrons (seeds 0..n_mlps-1)."""
        from sklearn.pipeline import Pipeline

        members = [Pipeline(rbf(10.0, gamma)())] + [Pipeline(mlp_steps(seed)) for seed in range(n_mlps)]
        weights = [n_mlps] + [1] * n_mlps
        return lambda: [("clf", SoftBlend(members, weights))]

    if name == "scene15":
        candidates = {f"logreg C={C}": logreg(C) for C in (0.01, 0.1, 1.0)}
        candidates.update({f"root+L2 rbfsvm C={C}": rbf(C) for C in (1.0, 3.0, 10.0)})
        return candidates
    candidates = {"root+std logreg C=0.01": logreg(0.01, root=True),
                  "root+std MLP 1024 hidden": mlp()}
    candidates.update({f"root+L2 rbfsvm C={C}": rbf(C) for C in (10.0, 30.0)})
    if train is not None:
        gamma = scale_gamma(root_l2(train))
        candidates.update({f"root+L2 rbfsvm C=10.0 gamma={factor}x scale": rbf(10.0, factor * gamma)
                           for factor in (0.5, 2.0)})
        candidates["blend: rbfsvm C=10.0 gamma=2.0x scale + 4 MLPs"] = svm_and_mlps(2.0 * gamma)
    return candidates


def choose_classifier(candidates, x, y, seed=0):
    """Pick the candidate with the best validation accuracy on the training set.

    Small training sets (under 5000) use 5-fold stratified cross-validation;
    larger ones one stratified 10 % hold-out (cheaper, and plenty of images).
    """
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit
    from sklearn.pipeline import Pipeline

    if len(y) < 5000:
        splits = list(StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y))
    else:
        splits = list(StratifiedShuffleSplit(1, test_size=0.1, random_state=seed).split(x, y))
    scores = {}
    for label, make_steps in candidates.items():
        accs = [Pipeline(make_steps()).fit(x[tr], y[tr]).score(x[va], y[va]) for tr, va in splits]
        scores[label] = float(np.mean(accs))
        log(f"  validation {label}: {100 * scores[label]:.2f} %")
    best = max(scores, key=scores.get)
    return best, scores


def macro_f1(y_true, y_pred):
    from sklearn.metrics import f1_score

    return f1_score(y_true, y_pred, average="macro")


def pickled_size(model):
    import pickle

    return len(pickle.dumps(model))


def classical_rows(name, data, pipelines):
    """Fit and score named classical pipelines on raw images."""
    from featclf.pipelines import make_named_pipeline

    x_tr, y_tr, x_te, y_te, _ = data
    rows, deployed = [], {}
    for pipeline_name in pipelines:
        model = make_named_pipeline(pipeline_name, n_jobs=1)
        log(f"{name}: fitting {pipeline_name}")
        tic = time.perf_counter()
        model.fit(x_tr, y_tr)
        fit_s = time.perf_counter() - tic
        pred = model.predict(x_te)
        rows.append({
            "model": f"`{pipeline_name}` (classical)", "accuracy": np.mean(pred == y_te),
            "macro_f1": macro_f1(y_te, pred), "fit_s": fit_s,
            "size_mb": pickled_size(model) / 1e6,
        })
        deployed[rows[-1]["model"]] = model
        log(f"{name}: {pipeline_name}: {100 * rows[-1]['accuracy']:.2f} % in {fit_s:.0f} s")
    return rows, deployed


def make_extractor(args, name, sha, **params):
    """The CNN embedding for data set ``name``, at its input size.

    The ONNX file fixes 224 x 224 for onnxruntime; another size runs on
    cv2.dnn, which reshapes the network.
    """
    size = args.scene_input_size if name == "scene15" else None
    if size is not None and size != 224:
        params.update(input_size=size, backend="opencv")
    return CNNEmbedding(str(args.model), sha256=sha, **params)


def cnn_rows(name, data, args):
    """CNN embedding + classifier rows, using cached embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    _, y_tr, x_te, y_te, _ = data
    model_file = str(args.model)
    sha = file_sha256(model_file)
    cache = Path(args.cache) / sha[:12]
    extractor = make_extractor(args, name, sha)
    extractor.fit([_as_image(x_te[0])])
    mirrors = name == "scene15" or args.cifar_mirrors
    emb = embed(name, data, extractor, cache, mirrors)
    model_mb = os.path.getsize(model_file) / 1e6
    size = extractor.input_size or 224
    net = f"EfficientNet-Lite0 embedding ({size} px input)"
    rows, deployed = [], {}

    def add_row(label, steps, train, test, embed_s, flip):
        tic = time.perf_counter()
        clf = Pipeline(steps).fit(train, y_tr)
        clf_s = time.perf_counter() - tic
        pred = clf.predict(test)
        extractor_used = make_extractor(args, name, sha, hflip_average=flip)
        extractor_used.fit([_as_image(x_te[0])])
        model = Pipeline([("cnn", extractor_used)] + clf.steps)
        rows.append({
            "model": label, "accuracy": np.mean(pred == y_te), "macro_f1": macro_f1(y_te, pred),
            "fit_s": embed_s + clf_s, "size_mb": pickled_size(model) / 1e6 + model_mb,
        })
        deployed[label] = model
        log(f"{name}: {label}: {100 * rows[-1]['accuracy']:.2f} % "
            f"(embedding {embed_s:.0f} s + classifier {clf_s:.0f} s)")

    (train, train_s), (test, _) = emb["train", False], emb["test", False]
    add_row(f"{net} + logreg (C=0.1)",
            [("scale", StandardScaler()), ("clf", LogisticRegression(C=0.1, max_iter=1000))],
            train, test, train_s, flip=False)

    if mirrors:
        (train_m, train_m_s), (test_m, _) = emb["train", True], emb["test", True]
        train, test, train_s = (train + train_m) / 2, (test + test_m) / 2, train_s + train_m_s
    candidates = cnn_classifiers(name, train)
    if name == "cifar10" and args.cifar_classifier:
        best = args.cifar_classifier
        if best not in candidates:
            raise SystemExit(f"--cifar-classifier {best!r}: not one of {sorted(candidates)}")
        log(f"{name}: {best} given by --cifar-classifier (validation skipped)")
        how = "given by --cifar-classifier"
    else:
        best, _ = choose_classifier(candidates, train, y_tr)
        how = "chosen on train validation"
    if not mirrors and best == "logreg C=0.1":
        log(f"{name}: validation chose C=0.1, the row above")
        return rows, deployed
    flip = " + flip average" if mirrors else ""
    add_row(f"{net}{flip} + {best} ({how})",
            candidates[best](), train, test, train_s, flip=bool(mirrors))
    return rows, deployed


def latencies(models, images, repeats=15):
    """Median seconds per single-image predict, interleaved over models."""
    times = {label: [] for label in models}
    for i in range(repeats):
        image = [_as_image(images[i % len(images)])]
        for label, model in models.items():
            tic = time.perf_counter()
            model.predict(image)
            times[label].append(time.perf_counter() - tic)
    return {label: float(np.median(t[2:])) for label, t in times.items()}


def markdown(results, args):
    lines = [
        "# CNN embeddings against classical features",
        "",
        "Measured by `python scripts/compare_cnn_classical.py "
        + " ".join(args.argv) + "` on "
        + time.strftime("%Y-%m-%d") + ", on a shared 2-core CPU (load average "
        + "/".join(f"{load:.1f}" for load in os.getloadavg())
        + " over 1/5/15 min when the table was written; other jobs were running, "
        "so absolute times are slow and noisy; compare within a column). "
        "Fit time includes feature extraction of the training set (for the CNN rows, the "
        "embedding time measured when the cached embeddings were computed, plus the classifier "
        "fit; the choice of the classifier by validation is not counted). Latency: median wall "
        "time of `predict` on one image (decoded in memory), models interleaved. Size: the "
        "pickled fitted pipeline, plus the ONNX file (18.6 MB) for the CNN rows.",
        "",
    ]
    for name, (rows, n_train, n_test) in results.items():
        lines += [f"## {name} ({n_train} train / {n_test} test images)", "",
                  "| model | accuracy | macro-F1 | fit time | latency / image | model size |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for row in sorted(rows, key=lambda r: -r["accuracy"]):
            lines.append(
                f"| {row['model']} | {100 * row['accuracy']:.2f} % | {row['macro_f1']:.3f} | "
                f"{row['fit_s']:.0f} s | {1000 * row['latency_s']:.1f} ms | "
                f"{row['size_mb']:.1f} MB |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "efficientnet_lite0_onnx"
                        / "efficientnet_lite0.onnx")
    parser.add_argument("--cifar", type=Path, default=SHARED / "data" / "cifar10" / "cifar10_jpeg.npz")
    parser.add_argument("--scene15", type=Path, default=SHARED / "data" / "scene15")
    parser.add_argument("--cache", type=Path, required=True,
                        help="folder for cached embeddings (outside the repository)")
    parser.add_argument("--datasets", nargs="+", default=["scene15", "cifar10"],
                        choices=["scene15", "cifar10"])
    parser.add_argument("--cifar-train", type=int, default=None,
                        help="use the first N CIFAR-10 training images (all by default)")
    parser.add_argument("--cifar-mirrors", action="store_true",
                        help="also embed mirrored CIFAR-10 images (flip averaging; 2x the time)")
    parser.add_argument("--cifar-classifier", default=None,
                        help="CIFAR-10: fit this candidate (a label of cnn_classifiers) without "
                             "the validation run, e.g. the winner of an earlier full run")
    parser.add_argument("--scene-pipelines", nargs="*",
                        default=["bovw-hiksvm", "hog+color+lbp-linsvm", "lbp-rbfsvm", "hog-linsvm"])
    parser.add_argument("--cifar-pipelines", nargs="*",
                        default=["hog+color+lbp-linsvm", "hog-linsvm"])
    parser.add_argument("--scene-input-size", type=int, default=None,
                        help="15-Scene network input side (default: the preset's 224; "
                             "15-Scene photos are about 250 x 300)")
    parser.add_argument("--skip-cnn", action="store_true",
                        help="only the classical pipelines (to run them in another process)")
    parser.add_argument("--stage", choices=["embed", "all"], default="all",
                        help="embed: only compute the cached embeddings")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "cnn_vs_classical.md")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    results = {}
    for name in args.datasets:
        data = load_dataset(name, args)
        log(f"{name}: {len(data[1])} train / {len(data[3])} test images")
        if args.stage == "embed":
            model_file = str(args.model)
            sha = file_sha256(model_file)
            extractor = make_extractor(args, name, sha).fit([_as_image(data[2][0])])
            embed(name, data, extractor, Path(args.cache) / sha[:12],
                  name == "scene15" or args.cifar_mirrors)
            continue
        pipelines = args.scene_pipelines if name == "scene15" else args.cifar_pipelines
        rows, models = classical_rows(name, data, pipelines)
        if not args.skip_cnn:
            more_rows, more_models = cnn_rows(name, data, args)
            rows += more_rows
            models.update(more_models)
        per_image = latencies(models, data[2])
        for row in rows:
            row["latency_s"] = per_image[row["model"]]
        results[name] = (rows, len(data[1]), len(data[3]))
        print(markdown(results, args), flush=True)
    if results:
        args.out.write_text(markdown(results, args))
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
