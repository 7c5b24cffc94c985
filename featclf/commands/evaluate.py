"""``featclf evaluate MODEL --data DIR``: evaluate a saved model on labelled
images and write the HTML + markdown report."""

import sys
from pathlib import Path

import numpy as np

HELP = "evaluate a saved model on labelled images and write a report"

DESCRIPTION = """\
Predict every image of a labelled image folder DIR/<class>/<image> with a
model saved by 'featclf grid' (or 'featclf train --save'), print accuracy,
per-class precision / recall / F1 and the confusion matrix, and write
report.html (self-contained) and report.md with the confusion matrix and
the misclassified images. Unreadable images are skipped and listed.

DIR may also be a folder with train/ and test/ (its test/ is used), an .npz
data set or 'digits' (their test split is used, as 'featclf grid' splits it).
"""


def register(subparsers):
    """Add the ``evaluate`` subcommand to ``subparsers``."""
    import argparse

    parser = subparsers.add_parser("evaluate", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model file saved by 'featclf grid'")
    parser.add_argument("--data", required=True, help="labelled image folder, .npz or 'digits'")
    parser.add_argument("--out", help="report folder (default: evaluate-<model name>)")
    parser.add_argument("--seed", type=int, default=0,
                        help="split seed for 'digits' / one-folder data (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def load_model(path):
    """Load a model file; return ``(pipeline, metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    try:
        from ..persistence import load_model as persistence_load
    except ImportError:
        persistence_load = None
    if persistence_load is not None and path.suffix != ".joblib":
        return persistence_load(path)
    import joblib

    saved = joblib.load(path)
    if isinstance(saved, dict) and "pipeline" in saved:
        return saved["pipeline"], saved.get("metadata", {})
    return saved, {}


def _evaluation_images(data, seed):
    from ..splits import load_labelled_folder, load_splits

    root = Path(data)
    if root.is_dir() and not ((root / "train").is_dir() and (root / "test").is_dir()):
        return load_labelled_folder(root)
    return load_splits(data, seed=seed).test


def run(args):
    """Evaluate the model; return the exit status."""
    from ..report import write_report
    from ..search import map_skipping_failures

    try:
        pipeline, metadata = load_model(args.model)
        images = _evaluation_images(args.data, args.seed)
    except (OSError, ValueError) as exc:
        print(f"featclf evaluate: error: {exc}", file=sys.stderr)
        return 2
    predicted, valid, bad = map_skipping_failures(
        pipeline.predict, images.images, quiet=args.quiet, label="predict")
    y_true = images.labels[valid]
    y_pred = np.asarray(predicted).astype(str)
    model_classes = [str(c) for c in getattr(pipeline, "classes_", [])]
    class_names = sorted(set(images.class_names) | set(model_classes) | set(y_pred))
    evaluated = [images.images[i] for i in valid] if images.is_paths else images.images[valid]
    skipped = [(images.name(i), reason) for i, reason in sorted(bad.items())]
    out = Path(args.out or f"evaluate-{Path(args.model).stem}")
    model_text = [f"model: {args.model}", f"data: {args.data} ({len(images)} images)"]
    model_text += [f"{key}: {value}" for key, value in metadata.items()]
    paths = write_report(out, y_true, y_pred, class_names, images=evaluated,
                         skipped=skipped, title=f"featclf evaluate: {Path(args.model).name}",
                         sections=[("Model", "\n".join(model_text))])
    from ..evaluation import format_summary

    print(format_summary(paths["summary"]))
    if skipped:
        print(f"\nskipped {len(skipped)} image(s) that could not be processed:")
        for name, reason in skipped:
            print(f"  {name}: {reason}")
    print(f"\nreport: {paths['html']}")
    return 0
