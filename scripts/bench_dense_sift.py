"""Dense SIFT: featclf's DenseSIFT against cv2.SIFT.compute on the same grid.

Speed (default): real gray photos resized to each size, one thread for both
(OpenCV and BLAS limited to 1 thread), interleaved repeats, median time per
image; OpenCV is timed on ``compute`` alone with the grid keypoints built
beforehand (featclf is timed through ``transform``, validation included).

Accuracy (``--accuracy``): bag of visual words on the 15-Scene split (1500
train / 2985 test) with each descriptor on the same grid: k-means codebook
on descriptors of the training images only, hard-assignment word histograms
(L1, then square root), linear SVM. Both descriptor sets go through exactly
the same encoding and classifier.

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


def time_per_image(function, images):
    start = time.perf_counter()
    function(images)
    return (time.perf_counter() - start) / len(images)


def bench_speed(sizes, step, patch_sizes, repeats):
    cv2.setNumThreads(1)
    rows = []
    for size in sizes:
        images = photos(size)
        dense = DenseSIFT(step=step, patch_sizes=patch_sizes).fit(images[:1])
        parallel = DenseSIFT(step=step, patch_sizes=patch_sizes, n_jobs=2).fit(images[:1])
        keypoints, _ = opencv_grid_keypoints(images[0].shape, step, patch_sizes)
        sift = cv2.SIFT_create()
        assert len(dense.transform(images[:1])[0]) == len(keypoints)
        batch = images * 4  # 16 images for the n_jobs=2 row

        def run_featclf(imgs):
            dense.transform(imgs)

        def run_opencv(imgs):
            for image in imgs:
                sift.compute(image, keypoints)

        def run_parallel(imgs):
            parallel.transform(imgs)

        timings = {"featclf": [], "opencv": [], "featclf n_jobs=2": []}
        for repeat in range(repeats):
            order = [("featclf", run_featclf, images), ("opencv", run_opencv, images)]
            if repeat % 2:
                order.reverse()
            for name, function, imgs in order:
                timings[name].append(time_per_image(function, imgs))
            timings["featclf n_jobs=2"].append(time_per_image(run_parallel, batch))
        medians = {name: float(np.median(values)) for name, values in timings.items()}
        rows.append((size, len(keypoints), medians))
    return rows


def print_speed(rows, step, patch_sizes, repeats):
    print(f"dense SIFT, step={step}, patch_sizes={patch_sizes}, single thread, "
          f"median of {repeats} interleaved repeats over 4 photos")
    print("| size | descriptors | featclf ms/img | cv2.SIFT.compute ms/img | speed-up "
          "| featclf n_jobs=2 img/s |")
    print("|---|---|---|---|---|---|")
    for size, n_points, medians in rows:
        ours, ref = medians["featclf"], medians["opencv"]
        print(f"| {size}x{size} | {n_points} | {ours * 1e3:.2f} | {ref * 1e3:.2f} "
              f"| {ref / ours:.1f}x | {1 / medians['featclf n_jobs=2']:.0f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--step", type=int, default=8)
    parser.add_argument("--patch-sizes", type=int, nargs="+", default=[16])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    patch_sizes = tuple(args.patch_sizes)
    with threadpool_limits(1):
        rows = bench_speed(args.sizes, args.step, patch_sizes, args.repeats)
    print_speed(rows, args.step, patch_sizes, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
