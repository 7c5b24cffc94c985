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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featclf.features.cnn import CNNEmbedding, file_sha256  # noqa: E402
from featclf.io import load_image_folder, read_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BLOCK = 2000


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------
# Data


def load_cifar10(path):
    """CIFAR-10 from the JPEG npz: (x_train, y_train, x_test, y_test, class_names)."""
    import cv2

    data = np.load(path)

    def decode(buffer, offsets):
        images = np.empty((len(offsets) - 1, 32, 32, 3), np.uint8)
        for i in range(len(offsets) - 1):
            bgr = cv2.imdecode(buffer[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
            images[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return images

    return (
        decode(data["train_jpeg"], data["train_offsets"]),
        data["y_train"],
        decode(data["test_jpeg"], data["test_offsets"]),
        data["y_test"],
        list(data["class_names"]),
    )


def load_scene15(root):
    """15-Scene from its train/test folders: paths and labels."""
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
    tag = f"{name}_{'mirror' if mirrored else 'plain'}_{extractor.output}"
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


def embed_all(args):
    """Compute (or load) every embedding the comparison needs."""
    model = str(args.model)
    sha = file_sha256(model)
    cache = Path(args.cache) / sha[:12]
    extractor = CNNEmbedding(model, sha256=sha, batch_size=32)
    out = {}
    x_tr, y_tr, x_te, y_te, classes = load_scene15(args.scene15)
    extractor.fit([read_image(x_tr[0])])
    for split, items in (("train", x_tr), ("test", x_te)):
        for mirrored in (False, True):
            out["scene15", split, mirrored] = cnn_embeddings(
                extractor, items, f"scene15_{split}", cache, mirrored)
    x_tr, y_tr, x_te, y_te, classes = load_cifar10(args.cifar)
    # plain images first: the mirrors only serve the flip-averaged variant
    for mirrored in (False, True):
        for split, items in (("test", x_te), ("train", x_tr)):
            out["cifar10", split, mirrored] = cnn_embeddings(
                extractor, items, f"cifar10_{split}", cache, mirrored)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "efficientnet_lite0_onnx"
                        / "efficientnet_lite0.onnx")
    parser.add_argument("--cifar", type=Path, default=SHARED / "data" / "cifar10" / "cifar10_jpeg.npz")
    parser.add_argument("--scene15", type=Path, default=SHARED / "data" / "scene15")
    parser.add_argument("--cache", type=Path, required=True,
                        help="folder for cached embeddings (outside the repository)")
    parser.add_argument("--stage", choices=["embed", "all"], default="all")
    args = parser.parse_args(argv)
    embed_all(args)
    log("embeddings ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
