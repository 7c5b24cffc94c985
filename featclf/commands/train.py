"""``featclf train``: train and evaluate a named pipeline (the main job)."""

import time

import numpy as np

HELP = "train and evaluate a named pipeline on an image folder or a data set"

DESCRIPTION = """\
Train a named pipeline and evaluate it on held-out images: prints accuracy,
per-class precision / recall / F1 and the confusion matrix.

--data takes (default: digits, bundled with scikit-learn):
  digits                  scikit-learn's 8x8 digits, split 75/25
  DIR                     an image folder DIR/<class>/<image>, split into
                          train / test (stratified, seeded); or a folder
                          holding train/ and test/ image folders
  FILE.npz                MNIST / Brodatz-style arrays or the CIFAR-10 JPEG
                          file (standard split; see featclf.datasets)
  with --test-dir DIR     --data is the training folder, DIR the test folder

Examples:
  featclf train                                  # HOG + linear SVM on digits
  featclf train --pipeline lbp-rbfsvm --data photos/
  featclf train --pipeline hog-linsvm --data mnist.npz \\
      --max-train 10000 --max-test 2000 --image-size 28
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
    """Add the data options :func:`load_training_data` reads (shared by subcommands).

    Returns the argument group, so that a subcommand can add its own data options.
    """
    data = parser.add_argument_group("data")
    data.add_argument("--data", default="digits", metavar="DATA",
                      help="'digits', an image folder or an .npz file (default: digits)")
    data.add_argument("--test-dir", metavar="DIR",
                      help="separate test image folder (--data is then the training folder)")
    data.add_argument("--test-size", type=float, default=0.25,
                      help="test fraction when one folder or digits is split "
                           "(default: %(default)s)")
    data.add_argument("--dedupe", action="store_true",
                      help="drop test images byte-identical to a training image")
    data.add_argument("--max-train", type=int, metavar="N",
                      help="use a stratified, seeded subset of N training images")
    data.add_argument("--max-test", type=int, metavar="N",
                      help="use a stratified, seeded subset of N test images")
    return data


def load_training_data(args):
    """Load and split the data the options of :func:`add_data_arguments` name.

    Returns
    -------
    x_train, y_train, x_test, y_test, class_names, description : tuple
        Images (paths or a stack), integer labels indexing ``class_names``,
        and a one-line description of the data.
    """
    from ..splits import load_splits

    splits = load_splits(args.data, test_dir=args.test_dir, test_size=args.test_size,
                         seed=args.seed, dedupe=args.dedupe, max_train=args.max_train,
                         max_test=args.max_test)
    names = splits.train.class_names
    position = {name: index for index, name in enumerate(names)}

    def as_indices(labels):
        return np.asarray([position[label] for label in labels], dtype=np.int64)

    description = splits.source
    if splits.removed_duplicates:
        description += f" ({len(splits.removed_duplicates)} duplicate test images removed)"
    return (splits.train.images, as_indices(splits.train.labels),
            splits.test.images, as_indices(splits.test.labels), names, description)


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
