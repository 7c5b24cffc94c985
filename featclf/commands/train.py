"""``featclf train``: train and evaluate a named pipeline (the main job)."""

import time

import numpy as np

HELP = "train and evaluate a named pipeline on an image folder or a data set"

DESCRIPTION = """\
Train a named pipeline and evaluate it on held-out images: prints accuracy,
per-class precision / recall / F1 and the confusion matrix.

Data (one of):
  --data DIR              an image folder laid out as DIR/<class>/<image>,
                          split into train / test (stratified, seeded)
  --train-dir / --test-dir  given train and test folders
  --dataset NAME [--data-path FILE]
                          digits (bundled with scikit-learn, the default),
                          or mnist / cifar10 / brodatz with --data-path to
                          the .npz file (standard split)

Examples:
  featclf train                                  # HOG + linear SVM on digits
  featclf train --pipeline lbp-rbfsvm --data photos/
  featclf train --pipeline hog-linsvm --dataset mnist --data-path mnist.npz \\
      --n-train 10000 --n-test 2000 --image-size 28
"""


def register(subparsers):
    """Add the ``train`` subcommand to ``subparsers``."""
    import argparse

    parser = subparsers.add_parser(
        "train", help=HELP, description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pipeline", "-p", default="hog-linsvm",
                        help="named pipeline: hog-linsvm, lbp-rbfsvm, color-rf, "
                        "hog+color+lbp-linsvm, ... (see --list); default: %(default)s")
    parser.add_argument("--list", action="store_true", help="list pipeline names and exit")
    add_data_arguments(parser)
    parser.add_argument("--image-size", type=int, metavar="N",
                        help="resize to N x N before HOG, with N/8-pixel cells "
                             "(default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="parallel jobs for feature extraction (joblib's meaning)")
    parser.add_argument("--save", metavar="FILE", help="save the fitted model to FILE")
    parser.add_argument("--cnn-model", metavar="FILE",
                        help="ONNX model file for pipelines with the cnn feature "
                             "(e.g. cnn-logreg; see docs/cnn.md)")
    parser.set_defaults(func=run)


def add_data_arguments(parser):
    """Add the data options :func:`load_training_data` reads (shared by subcommands)."""
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="DIR", help="image folder DIR/<class>/<image>")
    data.add_argument("--train-dir", metavar="DIR", help="training image folder")
    data.add_argument("--test-dir", metavar="DIR", help="test image folder")
    data.add_argument("--dataset", choices=["digits", "mnist", "cifar10", "brodatz"],
                      help="a known data set (default: digits when no folder is given)")
    data.add_argument("--data-path", metavar="FILE", help=".npz file for --dataset")
    data.add_argument("--test-size", type=float, default=0.25,
                      help="test fraction when splitting one folder or digits "
                           "(default: %(default)s)")
    data.add_argument("--n-train", type=int, help="use a seeded subset of the training set")
    data.add_argument("--n-test", type=int, help="use a seeded subset of the test set")


def _split(images, labels, test_size, seed):
    from sklearn.model_selection import train_test_split

    return train_test_split(images, labels, test_size=test_size, stratify=labels,
                            random_state=seed)


def load_training_data(args):
    """Return ``(x_train, y_train, x_test, y_test, class_names, description)``."""
    from .. import datasets
    from ..io import load_image_folder

    if args.data and (args.train_dir or args.test_dir or args.dataset):
        raise ValueError("give either --data, or --train-dir/--test-dir, or --dataset")
    if args.data:
        paths, labels, names = load_image_folder(args.data)
        x_train, x_test, y_train, y_test = _split(paths, labels, args.test_size, args.seed)
        description = f"folder {args.data} ({len(paths)} images, split {1 - args.test_size:.0%}/{args.test_size:.0%})"
    elif args.train_dir or args.test_dir:
        if not (args.train_dir and args.test_dir):
            raise ValueError("--train-dir and --test-dir go together")
        x_train, y_train, names = load_image_folder(args.train_dir)
        x_test, y_test, test_names = load_image_folder(args.test_dir, min_classes=1)
        unknown = set(test_names) - set(names)
        if unknown:
            raise ValueError(f"--test-dir has classes not in --train-dir: {sorted(unknown)}")
        remap = np.asarray([names.index(n) for n in test_names])
        y_test = remap[y_test]
        description = f"folders {args.train_dir} / {args.test_dir}"
    elif args.dataset in (None, "digits"):
        images, labels, names = datasets.load_digits_images()
        x_train, x_test, y_train, y_test = _split(images, labels, args.test_size, args.seed)
        description = "scikit-learn digits (8x8, bundled)"
    else:
        if not args.data_path:
            raise ValueError(f"--dataset {args.dataset} needs --data-path FILE (.npz)")
        loader = {"mnist": datasets.load_mnist, "cifar10": datasets.load_cifar10}.get(args.dataset)
        if loader is None:
            split = datasets.load_brodatz_patches(args.data_path)
        else:
            split = loader(args.data_path, n_train=args.n_train, n_test=args.n_test,
                           random_state=args.seed)
        x_train, y_train, x_test, y_test, names = split
        description = f"{args.dataset} ({args.data_path})"
    x_train, y_train = _subset(x_train, y_train, args.n_train, args.seed)
    x_test, y_test = _subset(x_test, y_test, args.n_test, args.seed)
    return x_train, np.asarray(y_train), x_test, np.asarray(y_test), names, description


def _subset(images, labels, n_keep, seed):
    if n_keep is None or n_keep >= len(labels):
        return images, labels
    keep = np.sort(np.random.default_rng(seed).choice(len(labels), n_keep, replace=False))
    if isinstance(images, np.ndarray):
        return images[keep], np.asarray(labels)[keep]
    return [images[i] for i in keep], np.asarray(labels)[keep]


def _feature_params(args, pipeline_name):
    from ..pipelines import parse_pipeline_name

    features, _ = parse_pipeline_name(pipeline_name)
    params = {}
    if "cnn" in features:
        if not getattr(args, "cnn_model", None):
            raise ValueError(f"pipeline {pipeline_name!r} needs --cnn-model FILE (an ONNX "
                             "model file, see docs/cnn.md)")
        params["cnn"] = {"model_path": args.cnn_model}
    if args.image_size is not None and "hog" in features:
        size, cell = args.image_size, max(2, args.image_size // 8)
        params["hog"] = {"image_size": (size, size), "pixels_per_cell": (cell, cell)}
    return params or None


def run(args):
    """Train, evaluate and print the report; return the exit status."""
    from ..evaluation import classification_summary, format_summary
    from ..pipelines import make_named_pipeline, pipeline_names

    if args.list:
        print("\n".join(pipeline_names()))
        return 0
    x_train, y_train, x_test, y_test, names, description = load_training_data(args)
    pipeline = make_named_pipeline(
        args.pipeline, random_state=args.seed, n_jobs=args.n_jobs,
        feature_params=_feature_params(args, args.pipeline),
    )
    print(f"pipeline {args.pipeline}: {' -> '.join(n for n, _ in pipeline.steps)}")
    print(f"data: {description}; {len(y_train)} train / {len(y_test)} test images, "
          f"{len(names)} classes")
    start = time.perf_counter()
    pipeline.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predicted = pipeline.predict(x_test)
    predict_seconds = time.perf_counter() - start
    summary = classification_summary(y_test, predicted, names)
    print(f"fit {fit_seconds:.2f} s, predict {predict_seconds:.2f} s "
          f"({len(y_test) / max(predict_seconds, 1e-9):.0f} images/s)\n")
    print(format_summary(summary))
    if args.save:
        from ..persistence import image_color, save_model

        train_accuracy = float(pipeline.score(x_train, y_train))
        save_model(args.save, pipeline, class_names=names, color=image_color(x_train),
                   metrics={"train": {"accuracy": train_accuracy, "n_images": len(y_train)},
                            "test": {**summary, "n_images": len(y_test)}},
                   extra={"pipeline": args.pipeline, "data": description,
                          "seed": args.seed})
        print(f"\nmodel saved to {args.save} (featclf model file; "
              f"'featclf predict {args.save} IMAGES' uses it)")
    return 0
