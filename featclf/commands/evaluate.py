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
    parser.add_argument("model", help="model file (.featclf) saved by 'featclf grid' or 'featclf train --save'")
    parser.add_argument("--data", required=True, help="labelled image folder, .npz or 'digits'")
    parser.add_argument("--out", help="report folder (default: evaluate-<model name>)")
    parser.add_argument("--seed", type=int, default=0,
                        help="split seed for 'digits' / one-folder data (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def _evaluation_images(data, seed):
    from ..splits import load_labelled_folder, load_splits

    root = Path(data)
    if root.is_dir() and not ((root / "train").is_dir() and (root / "test").is_dir()):
        return load_labelled_folder(root)
    return load_splits(data, seed=seed).test


def run(args):
    """Evaluate the model; return the exit status."""
    from ..io import as_image_batch
    from ..persistence import load_model
    from ..prediction import ImagePredictor
    from ..report import write_report
    from ..search import map_skipping_failures

    try:
        pipeline, metadata = load_model(args.model)
        images = _evaluation_images(args.data, args.seed)
    except (OSError, ValueError) as exc:
        print(f"featclf evaluate: error: {exc}", file=sys.stderr)
        return 2
    predictor = ImagePredictor(pipeline, metadata, n_jobs=None)

    def predict(batch):
        prepared = [predictor.prepare(image) for image in as_image_batch(batch)]
        return pipeline.predict(prepared)

    predicted, valid, bad = map_skipping_failures(
        predict, images.images, quiet=args.quiet, label="predict")
    # the model file names each of pipeline.classes_
    name_of = dict(zip(pipeline.classes_, predictor.class_names))
    y_pred = np.asarray([str(name_of[label]) for label in predicted])
    y_true = images.labels[valid]
    class_names = sorted(set(images.class_names) | set(predictor.class_names))
    evaluated = [images.images[i] for i in valid] if images.is_paths else images.images[valid]
    skipped = [(images.name(i), reason) for i, reason in sorted(bad.items())]
    out = Path(args.out or f"evaluate-{Path(args.model).stem}")
    model_text = [f"model: {args.model}", f"data: {args.data} ({len(images)} images)"]
    model_text += [f"{key}: {metadata[key]}" for key in
                   ("created", "estimator", "class_names", "metrics", "extra") if key in metadata]
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
