"""Cold vs warm grid search: what the on-disk cache of `featclf grid` saves.

HOG + linear SVM over several C on an MNIST subset, three runs per round,
each with a fresh results file (so nothing is resumed from it):

* cold           - empty cache folder: HOG for every image, every fit;
* warm           - the same grid again over the same cache folder: features,
                   finished candidates and the final refit are loaded;
* warm features  - the cache holds only the features (candidates and the
                   refit are recomputed): what feature caching alone saves;
* GridSearchCV   - for reference, scikit-learn's GridSearchCV over the whole
                   pipeline with the same folds (HOG again for every candidate
                   and fold), then refit.

Rounds use fresh cache folders; the script prints every time, the medians
and the cold / warm ratios. Run from the repository root:

    python scripts/bench_grid_cache.py --mnist ../shared/data/mnist/mnist.npz
    python scripts/bench_grid_cache.py --data ../shared/data/scene15 --n-train 1500
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402

from featclf.search import run_search  # noqa: E402
from featclf.specs import parse_spec  # noqa: E402
from featclf.splits import load_splits  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="../shared/data/mnist/mnist.npz")
    parser.add_argument("--data", help="another data source instead of MNIST: an image "
                        "folder (with train/ and test/), an .npz file or 'digits'")
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--C", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0])
    parser.add_argument("--image-size", type=int, default=64,
                        help="Resize before HOG (default 64, the shipped hog-linsvm)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    splits = load_splits(args.data or args.mnist, max_train=args.n_train,
                         max_test=args.n_test)
    spec = parse_spec({
        "pipeline": "hog-linsvm",
        "params": {"size": [args.image_size, args.image_size]},
        "grid": {"C": args.C},
    }, name="bench-hog-linsvm")
    print(f"HOG + linear SVM, C in {args.C}, {args.cv}-fold CV; {splits.source}: "
          f"{len(splits.train)} train / {len(splits.test)} test images, "
          f"resized to {args.image_size}x{args.image_size}")

    times = {"cold": [], "warm": [], "warm features": [], "GridSearchCV": []}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="featclf-bench-") as folder:
            cache = Path(folder) / "cache"
            for kind in times:
                if kind == "GridSearchCV":
                    start = time.perf_counter()
                    folds = StratifiedKFold(args.cv, shuffle=True, random_state=0)
                    search = GridSearchCV(spec.pipeline, spec.param_grid, cv=folds)
                    search.fit(splits.train.images, splits.train.labels)
                    accuracy = search.score(splits.test.images, splits.test.labels)
                    seconds = time.perf_counter() - start
                    times[kind].append(seconds)
                    print(f"round {round_ + 1} {kind:>13}: {seconds:7.2f} s; best "
                          f"{search.best_params_}, test accuracy {accuracy:.4f}")
                    continue
                if kind == "warm features":  # keep only the feature cache
                    (cache / "featclf-candidates.jsonl").unlink()
                    shutil.rmtree(cache / "joblib" / "featclf" / "search" / "_fit_keyed")
                start = time.perf_counter()
                result = run_search(spec, splits, cv=args.cv, cache=cache,
                                    results=Path(folder) / f"{kind}.jsonl", quiet=True)
                seconds = time.perf_counter() - start
                times[kind].append(seconds)
                parts = ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items())
                print(f"round {round_ + 1} {kind:>13}: {seconds:7.2f} s ({parts}); "
                      f"{result.n_computed} candidates computed; best "
                      f"{result.best_params}, test accuracy "
                      f"{(result.y_pred == result.y_test).mean():.4f}")
    cold = statistics.median(times["cold"])
    for kind in ("warm", "warm features", "GridSearchCV"):
        warm = statistics.median(times[kind])
        print(f"median cold {cold:.2f} s, {kind} {warm:.2f} s: cold / {kind} = "
              f"{cold / warm:.2f}")


if __name__ == "__main__":
    main()
