"""Dense SIFT: featclf's DenseSIFT against cv2.SIFT.compute on the same grid.

Speed (default): real gray photos resized to each size; one thread for both
(OpenCV and BLAS limited to 1 thread); interleaved repeats; median CPU time
per image (``time.process_time``, steadier than wall time on a shared
machine; the process is single-threaded so both are CPU-bound). OpenCV is
timed on ``compute`` alone with the grid keypoints built beforehand; featclf
through ``transform``, validation included. One row per image size and grid
(``step:patch_sizes``); the ``n_jobs=2`` column is wall-clock throughput of
featclf on 16 images.

Accuracy (``--accuracy``): bag of visual words on the 15-Scene split (1500
train / 2985 test), with every descriptor on the same grid: k-means codebook
(MiniBatchKMeans) on descriptors sampled from the training images only,
hard-assignment word histograms over a 1x1 + 2x2 spatial pyramid (L1, then
square root: Hellinger), linear SVM. Each descriptor type goes through
exactly the same encoding and classifier.

Run from the repository root::

    python scripts/bench_dense_sift.py
    python scripts/bench_dense_sift.py --accuracy --data ../shared/data/scene15
"""

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featclf.features import DenseSIFT  # noqa: E402
from featclf.features.sift import opencv_grid_keypoints, opencv_sift_on_grid  # noqa: E402
from featclf.preprocessing import to_gray  # noqa: E402


def photos(size):
    """Four real gray photos (skimage) resized to size x size, uint8."""
    sources = [data.camera(), data.astronaut(), data.coffee(), data.chelsea()]
    return [
        cv2.resize(to_gray(image), (size, size), interpolation=cv2.INTER_AREA)
        for image in sources
    ]


def parse_grid(text):
    """``"8:16,24"`` -> (8, (16, 24))."""
    step, sizes = text.split(":")
    return int(step), tuple(int(size) for size in sizes.split(","))


def cpu_time_per_image(function, images):
    start = time.process_time()
    function(images)
    return (time.process_time() - start) / len(images)


def bench_speed(sizes, grids, repeats):
    cv2.setNumThreads(1)
    rows = []
    for size in sizes:
        images = photos(size)
        for step, patch_sizes in grids:
            dense = DenseSIFT(step=step, patch_sizes=patch_sizes).fit(images[:1])
            keypoints, _ = opencv_grid_keypoints(images[0].shape, step, patch_sizes)
            assert len(dense.transform(images[:1])[0]) == len(keypoints)
            sift = cv2.SIFT_create()

            def run_featclf(imgs, dense=dense):
                dense.transform(imgs)

            def run_opencv(imgs, sift=sift, keypoints=keypoints):
                for image in imgs:
                    sift.compute(image, keypoints)

            timings = {"featclf": [], "opencv": []}
            for repeat in range(repeats):
                order = [("featclf", run_featclf), ("opencv", run_opencv)]
                for name, function in order[::-1] if repeat % 2 else order:
                    timings[name].append(cpu_time_per_image(function, images))
            medians = {name: float(np.median(values)) for name, values in timings.items()}
            medians["parallel"] = _parallel_throughput(dense, images * 4, repeats)
            rows.append((size, step, patch_sizes, len(keypoints), medians))
    return rows


def _parallel_throughput(dense, batch, repeats):
    """featclf images/s with n_jobs=2 (wall clock, median)."""
    parallel = DenseSIFT(**{**dense.get_params(), "n_jobs": 2}).fit(batch[:1])
    times = []
    for _ in range(max(3, repeats // 2)):
        start = time.perf_counter()
        parallel.transform(batch)
        times.append(time.perf_counter() - start)
    return len(batch) / float(np.median(times))


def print_speed(rows, repeats):
    print(f"dense SIFT vs cv2.SIFT.compute on the same grid: single thread, median "
          f"CPU time of {repeats} interleaved repeats over 4 photos")
    print("| size | step | patch sizes | descriptors | featclf ms/img "
          "| cv2.SIFT.compute ms/img | speed-up | featclf n_jobs=2 img/s |")
    print("|---|---|---|---|---|---|---|---|")
    for size, step, patch_sizes, n_points, medians in rows:
        ours, ref = medians["featclf"], medians["opencv"]
        sizes = ",".join(str(p) for p in patch_sizes)
        print(f"| {size}x{size} | {step} | {sizes} | {n_points} | {ours * 1e3:.2f} "
              f"| {ref * 1e3:.2f} | {ref / ours:.1f}x | {medians['parallel']:.0f} |")


# -------------------------------------------------------------------- accuracy


def load_scene15(root):
    """Gray uint8 images and labels of the train and test folders."""
    from featclf.io import load_image_folder, read_image

    split = {}
    for part in ("train", "test"):
        paths, labels, names = load_image_folder(Path(root) / part)
        images = [to_gray(read_image(path)) for path in paths]
        split[part] = (images, labels, names)
    assert split["train"][2] == split["test"][2], "train/test class folders differ"
    return split


def describe_all(describe, images):
    """Descriptor sets, descriptors stored as uint8 (x 512, like OpenCV's)."""
    sets = []
    for image in images:
        found = describe(image)
        quantised = np.minimum(np.rint(found.descriptors * 512), 255).astype(np.uint8)
        sets.append((quantised, found.positions, found.image_shape))
    return sets


def fit_codebook(train_sets, n_words, per_image, seed):
    from sklearn.cluster import MiniBatchKMeans

    rng = np.random.default_rng(seed)
    sample = []
    for descriptors, _, _ in train_sets:
        take = rng.choice(len(descriptors), min(per_image, len(descriptors)), replace=False)
        sample.append(descriptors[take])
    sample = np.concatenate(sample).astype(np.float32)
    return MiniBatchKMeans(n_words, random_state=seed, batch_size=4096, n_init=3).fit(sample)


def encode(sets, codebook):
    """1x1 + 2x2 spatial pyramid of hard-assigned words, L1 then sqrt."""
    n_words = codebook.n_clusters
    features = np.zeros((len(sets), 5 * n_words), np.float32)
    for row, (descriptors, positions, (height, width)) in enumerate(sets):
        if len(descriptors) == 0:
            continue
        words = codebook.predict(descriptors.astype(np.float32))
        quadrant = (2 * (positions[:, 1] >= height / 2) + (positions[:, 0] >= width / 2))
        features[row, :n_words] = np.bincount(words, minlength=n_words)
        cells = np.bincount((1 + quadrant) * n_words + words, minlength=5 * n_words)
        features[row, n_words:] = cells[n_words:]
    features[:, :n_words] /= np.maximum(features[:, :n_words].sum(1, keepdims=True), 1)
    features[:, n_words:] /= np.maximum(features[:, n_words:].sum(1, keepdims=True), 1)
    return np.sqrt(features)


def bench_accuracy(root, step, patch_sizes, n_words, per_image, seed):
    from sklearn.svm import LinearSVC

    start = time.perf_counter()
    split = load_scene15(root)
    (train_images, y_train, _), (test_images, y_test, _) = split["train"], split["test"]
    print(f"15-Scene: {len(train_images)} train / {len(test_images)} test images, "
          f"read in {time.perf_counter() - start:.0f} s; grid step={step}, "
          f"patch_sizes={patch_sizes}; {n_words} words, 1x1+2x2 pyramid, LinearSVC")
    cv2.setNumThreads(1)
    # OpenCV blurs its first octave with sigma 1.52; magnif gives DenseSIFT the same
    matched_magnif = (patch_sizes[0] / 4) / np.sqrt(1.6**2 - 0.5**2)
    methods = {
        "featclf DenseSIFT (defaults)": DenseSIFT(step=step, patch_sizes=patch_sizes).fit(
            train_images[:1]
        ),
        "featclf DenseSIFT (OpenCV's blur)": DenseSIFT(
            step=step, patch_sizes=patch_sizes, magnif=matched_magnif
        ).fit(train_images[:1]),
        "cv2.SIFT.compute on the grid": None,
    }
    print("| descriptors | extraction s (4485 images) | test accuracy | mean per-class recall |")
    print("|---|---|---|---|")
    for name, dense in methods.items():
        if dense is None:
            def describe(image):
                return opencv_sift_on_grid(image, step, patch_sizes)
        else:
            def describe(image, dense=dense):
                return dense.transform([image])[0]
        begin = time.process_time()
        train_sets = describe_all(describe, train_images)
        test_sets = describe_all(describe, test_images)
        extraction = time.process_time() - begin
        codebook = fit_codebook(train_sets, n_words, per_image, seed)
        x_train, x_test = encode(train_sets, codebook), encode(test_sets, codebook)
        del train_sets, test_sets
        classifier = LinearSVC(C=1.0, random_state=seed).fit(x_train, y_train)
        predicted = classifier.predict(x_test)
        accuracy = float(np.mean(predicted == y_test))
        recall = np.mean([np.mean(predicted[y_test == c] == c) for c in np.unique(y_test)])
        print(f"| {name} | {extraction:.0f} | {accuracy:.3f} | {recall:.3f} |", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--grids", nargs="+", default=["8:16", "4:16", "8:16,24,32,40"],
                        help="step:patch_sizes, e.g. 8:16 or 8:16,24,32,40")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--accuracy", action="store_true",
                        help="run the 15-Scene bag-of-words comparison instead")
    parser.add_argument("--data", default="../shared/data/scene15",
                        help="15-Scene folder with train/ and test/ (for --accuracy)")
    parser.add_argument("--grid", default="8:16", help="grid for --accuracy")
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--per-image", type=int, default=60,
                        help="descriptors per training image for the codebook")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with threadpool_limits(1):
        if args.accuracy:
            step, patch_sizes = parse_grid(args.grid)
            bench_accuracy(args.data, step, patch_sizes, args.words, args.per_image,
                           args.seed)
        else:
            rows = bench_speed(args.sizes, [parse_grid(g) for g in args.grids],
                               args.repeats)
            print_speed(rows, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
