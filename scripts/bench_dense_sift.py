"""Dense SIFT: featclf's DenseSIFT against cv2.SIFT.compute on the same grid.

Speed (default): real gray photos resized to each size (``W`` or ``WxH``;
four photos, repeated to at least 2^18 pixels per timed call so that small
sizes are not timer noise), several grids (``step:patch_sizes``). The contenders and the timing are those of
``scripts/bench_extractors.py`` (:func:`dense_sift_groups`, interleaved
repeats, median wall time; OpenCV and BLAS limited to one thread; the
OpenCV keypoints are built once, outside the timing; featclf is timed
through ``transform``, validation included).

Accuracy (``--accuracy``): bag of visual words on the 15-Scene split (1500
train / 2985 test) with each descriptor on the same grid, through exactly
the same :class:`featclf.encoding.BagOfVisualWords` (hard assignment,
1x1 + 2x2 spatial pyramid, codebook fitted on training descriptors only),
square root (Hellinger) and a linear SVM.

The reference is the fastest ``cv2.SIFT.compute`` configuration for these
keypoints: with upright keypoints of octave 0 OpenCV builds one octave of
its Gaussian pyramid and describes every keypoint on its first layer
(``nOctaveLayers=1`` gives identical descriptors but is slower: larger
blurs between its layers).

``--output`` writes the Markdown tables into one page (default
``docs/dense_sift.md``), replacing only this mode's section (speed or
accuracy), with the command, the machine and the load average.

Run from the repository root::

    python scripts/bench_dense_sift.py
    python scripts/bench_dense_sift.py --accuracy --data ../shared/data/scene15
"""

import argparse
import contextlib
import datetime
import io
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from featclf.features import DenseSIFT  # noqa: E402
from featclf.features.sift import opencv_sift_on_grid  # noqa: E402
from featclf.preprocessing import to_gray, to_rgb  # noqa: E402


def photos(width, height, count=4):
    """``count`` real gray photos (four skimage photos, repeated) resized to
    ``width x height``, uint8."""
    sources = [data.camera(), data.astronaut(), data.coffee(), data.chelsea()]
    resized = [
        cv2.resize(to_gray(image), (width, height), interpolation=cv2.INTER_AREA)
        for image in sources
    ]
    return [resized[k % len(resized)].copy() for k in range(count)]


def parse_size(text):
    """``"256"`` -> (256, 256); ``"64x128"`` -> (64, 128) as (width, height)."""
    width, _, height = text.partition("x")
    return int(width), int(height or width)


def parse_grid(text):
    """``"8:16,24"`` -> (8, (16, 24))."""
    step, sizes = text.split(":")
    return int(step), tuple(int(size) for size in sizes.split(","))


def bench_speed(sizes, grids, repeats, clock=time.perf_counter):
    """Rows of :func:`bench_extractors.run_benchmark`'s form for dense SIFT."""
    from bench_extractors import dense_sift_groups, time_group

    cv2.setNumThreads(1)
    rows = []
    for width, height in sizes:
        count = max(4, -(-2**18 // (width * height)))
        images = np.stack([to_rgb(image) for image in photos(width, height, count)])
        for name, _, contenders, reference in dense_sift_groups(
            (height, width), images, grids
        ):
            timings = time_group(contenders, len(images), repeats, clock)  # (median, best)
            ref_median, ref_best = timings[[c[0] for c in contenders].index(reference)]
            for (contender, threads, _), (seconds, best) in zip(contenders, timings):
                rows.append((name, f"{width}x{height}", contender, threads, seconds,
                             ref_median / seconds,
                             ref_best / best))
    return rows


def print_speed(rows, repeats, clock_name="wall"):
    what = "wall time" if clock_name == "wall" else "CPU time (this process, all threads)"
    print(f"dense SIFT vs cv2.SIFT.compute on the same keypoints: median {what} of "
          f"{repeats} interleaved repeats (each over the same real photos, at least 2^18 "
          "pixels); OpenCV/BLAS single thread")
    print()
    print("| grid | size | contender | n_jobs | ms/image (median) "
          "| speed-up vs cv2.SIFT.compute (medians) | speed-up (best runs) |")
    print("|---|---|---|---|---:|---:|---:|")
    for name, size, contender, threads, seconds, speedup, best_speedup in rows:
        print(f"| {name} | {size} | {contender} | {threads} | {seconds * 1e3:.3f} "
              f"| {speedup:.1f}x | {best_speedup:.1f}x |")


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


def bench_accuracy(root, step, patch_sizes, n_words, seed):
    from sklearn.svm import LinearSVC

    from featclf.encoding import BagOfVisualWords

    start = time.perf_counter()
    split = load_scene15(root)
    (train_images, y_train, _), (test_images, y_test, _) = split["train"], split["test"]
    print(f"15-Scene: {len(train_images)} train / {len(test_images)} test images, "
          f"read in {time.perf_counter() - start:.0f} s; grid step={step}, "
          f"patch_sizes={patch_sizes}; BagOfVisualWords(hard, {n_words} words, "
          "pyramid_levels=1), square root, LinearSVC")
    print()
    cv2.setNumThreads(1)
    # OpenCV blurs its first octave with sigma 1.52; magnif gives DenseSIFT the same
    matched_magnif = (patch_sizes[0] / 4) / np.sqrt(1.6**2 - 0.5**2)
    first = train_images[:1]
    defaults = DenseSIFT(step=step, patch_sizes=patch_sizes).fit(first)
    matched = DenseSIFT(step=step, patch_sizes=patch_sizes, magnif=matched_magnif).fit(first)
    methods = {
        "featclf DenseSIFT (defaults)": defaults.transform,
        "featclf DenseSIFT (OpenCV's blur)": matched.transform,
        "cv2.SIFT.compute on the grid": lambda images: [
            opencv_sift_on_grid(image, step, patch_sizes) for image in images
        ],
    }
    print("| descriptors | extraction CPU s (4485 images) | test accuracy "
          "| mean per-class recall |")
    print("|---|---|---|---|")
    for name, describe in methods.items():
        bovw = BagOfVisualWords(n_words, pyramid_levels=1, max_descriptors=90_000,
                                random_state=seed)
        extraction = time.process_time()
        train_sets = describe(train_images)
        extraction = time.process_time() - extraction
        x_train = np.sqrt(bovw.fit_transform(train_sets))
        del train_sets
        x_test = []
        for begin in range(0, len(test_images), 500):  # bounded memory
            block = time.process_time()
            test_sets = describe(test_images[begin:begin + 500])
            extraction += time.process_time() - block
            x_test.append(np.sqrt(bovw.transform(test_sets)))
        x_test = np.concatenate(x_test)
        classifier = LinearSVC(C=1.0, random_state=seed).fit(x_train, y_train)
        predicted = classifier.predict(x_test)
        accuracy = float(np.mean(predicted == y_test))
        recall = np.mean([np.mean(predicted[y_test == c] == c) for c in np.unique(y_test)])
        print(f"| {name} | {extraction:.0f} | {accuracy:.3f} | {recall:.3f} |", flush=True)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_size, nargs="+",
                        default=[parse_size(s) for s in ("28", "64x128", "256", "512")],
                        help="W or WxH (default: 28 64x128 256 512)")
    parser.add_argument("--grids", nargs="+", default=["8:16", "4:16", "8:16,24,32,40"],
                        help="step:patch_sizes, e.g. 8:16 or 8:16,24,32,40")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="time the speed runs by wall clock (default) or by this "
                        "process's CPU time (steadier on a shared machine)")
    parser.add_argument("--accuracy", action="store_true",
                        help="run the 15-Scene bag-of-words comparison instead")
    parser.add_argument("--data", default="../shared/data/scene15",
                        help="15-Scene folder with train/ and test/ (for --accuracy)")
    parser.add_argument("--grid", default="8:16", help="grid for --accuracy")
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="docs/dense_sift.md",
                        help="Markdown page to update ('' for none; default %(default)s)")
    args = parser.parse_args(argv)
    load_before = _load_average()
    printed = io.StringIO()
    with threadpool_limits(1), contextlib.redirect_stdout(_Tee(sys.stdout, printed)):
        if args.accuracy:
            step, patch_sizes = parse_grid(args.grid)
            bench_accuracy(args.data, step, patch_sizes, args.words, args.seed)
        else:
            clock = time.perf_counter if args.clock == "wall" else time.process_time
            rows = bench_speed(args.sizes, [parse_grid(g) for g in args.grids],
                               args.repeats, clock)
            print_speed(rows, args.repeats, args.clock)
    if args.output:
        command = " ".join(["python scripts/bench_dense_sift.py"] + list(
            sys.argv[1:] if argv is None else argv))
        section = "Accuracy" if args.accuracy else (
            "Speed" if args.clock == "wall" else "Speed (CPU time)")
        body = (f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC} with "
                f"`{command}` on {platform.machine()}, {os.cpu_count()} CPUs, OpenCV "
                f"{cv2.__version__}; load average before / after: {load_before} / "
                f"{_load_average()} (the machine is shared: absolute times are noisy"
                + ("" if args.accuracy else ", the ratios come from the same interleaved run")
                + ").\n\n" + printed.getvalue())
        write_section(Path(args.output), section, body)
        print(f"wrote the {section.lower()} section of {args.output}")
    return 0


class _Tee(io.TextIOBase):
    """Write to several text streams."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def _load_average():
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def write_section(path, section, body):
    """Replace (or add) the ``## section`` of the Markdown page ``path``."""
    title = "# Dense SIFT: featclf DenseSIFT vs OpenCV's SIFT on the same grid"
    sections = {}
    if path.exists():
        for chunk in path.read_text().split("\n## ")[1:]:
            name, _, text = chunk.partition("\n")
            sections[name.strip()] = text.strip("\n")
    sections[section] = body.strip("\n")
    known = ["Speed", "Speed (CPU time)", "Accuracy"]
    order = known + sorted(set(sections) - set(known))
    parts = [title, "", "Written by `scripts/bench_dense_sift.py` (see its docstring)."]
    for name in order:
        if name in sections:
            parts += ["", f"## {name}", "", sections[name]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    sys.exit(main())
