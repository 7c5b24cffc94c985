"""``featclf predict MODEL PATH...``: label image files with a saved model.

Exit status: 0 when every image got a prediction; 3 when some files were
missing, unreadable, corrupt or refused by the model (each is reported on
stderr and as a record with an ``error`` field, and the rest are still
predicted); 1 when the model file cannot be loaded or no image was found.

Heavy imports happen inside :func:`run`, so registering the subcommand costs
nothing at ``featclf`` start-up.
"""

import argparse
import sys

#: exit status when some inputs were skipped
EXIT_SOME_FAILED = 3


def register(subparsers):
    """Add the ``predict`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "predict",
        help="label images with a saved model (CSV or JSON)",
        description=(
            "Predict the label and per-class probabilities (or decision "
            "scores) of image files with a model saved by featclf. Folders "
            "are searched recursively for image files. Unreadable files are "
            "reported on stderr and in the output (error field) and skipped; "
            f"the exit status is then {EXIT_SOME_FAILED}."
        ),
    )
    parser.add_argument("model", help="model file written by featclf (save_model)")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="image files or folders (searched recursively)")
    parser.add_argument("--format", choices=("csv", "json"), default="csv",
                        help="output format (default: csv)")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write the predictions here instead of stdout")
    parser.add_argument("--batch-size", type=_positive_int, default=64, metavar="N",
                        help="images decoded and predicted at a time (default: 64)")
    parser.add_argument("--top-k", type=_positive_int, default=None, metavar="K",
                        help="report only the K best classes per image")
    parser.add_argument("--n-jobs", type=int, default=1, metavar="N",
                        help="parallel jobs for feature extraction (default: 1)")
    parser.add_argument("--trust", action="append", default=[], metavar="TYPE",
                        help="accept this extra type in the model file "
                             "(after reviewing it; repeatable)")
    parser.set_defaults(func=run)
    return parser


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def find_images(paths):
    """List the image files named by ``paths`` (folders searched recursively).

    Parameters
    ----------
    paths : list of str
        Files (kept whatever their extension) and folders (files whose
        extension is in :data:`featclf.io.IMAGE_EXTENSIONS`, sorted).

    Returns
    -------
    found : list of (str, str or None)
        ``(path, error)`` pairs; ``error`` says why a path is unusable.
    """
    import os
    from pathlib import Path

    from ..io import IMAGE_EXTENSIONS

    found = []
    for path in paths:
        if os.path.isdir(path):
            found.extend(
                (os.fspath(p), None) for p in sorted(Path(path).rglob("*"))
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
        elif os.path.isfile(path):
            found.append((path, None))
        else:
            found.append((path, "no such file or folder"))
    return found


def run(args):
    """Run ``featclf predict``; return the exit status."""
    from ..io import read_image
    from ..persistence import ModelFileError
    from ..prediction import ImagePredictor

    try:
        predictor = ImagePredictor.from_file(args.model, trusted=args.trust,
                                             n_jobs=args.n_jobs)
    except (OSError, ModelFileError) as exc:
        print(f"featclf predict: cannot load the model: {exc}", file=sys.stderr)
        return 1
    inputs = find_images(args.paths)
    if not inputs:
        print(f"featclf predict: no image files found in {' '.join(args.paths)}",
              file=sys.stderr)
        return 1

    out = open(args.output, "w", newline="") if args.output else sys.stdout
    writer = _writer(args.format, out, predictor, args.top_k)
    n_failed = 0
    try:
        for start in range(0, len(inputs), args.batch_size):
            batch = inputs[start:start + args.batch_size]
            records = [{"path": path, "error": error} for path, error in batch]
            images, slots = [], []
            for slot, record in enumerate(records):
                if record["error"] is not None:
                    continue
                try:
                    images.append(read_image(record["path"]))
                    slots.append(slot)
                except (OSError, ValueError) as exc:
                    record["error"] = str(exc)
            for slot, answer in zip(slots, predictor.predict(images, top_k=args.top_k)):
                records[slot].update(answer)
            for record in records:
                if record.get("error"):
                    n_failed += 1
                    print(f"featclf predict: skipped {record['path']}: "
                          f"{record['error']}", file=sys.stderr)
                writer.write(record)
        writer.close()
    finally:
        if out is not sys.stdout:
            out.close()
    if n_failed:
        print(f"featclf predict: {n_failed} of {len(inputs)} file(s) skipped",
              file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def _writer(fmt, out, predictor, top_k):
    if fmt == "json":
        return _JsonWriter(out)
    return _CsvWriter(out, predictor, top_k)


class _JsonWriter:
    """Write records as one JSON list, streamed one record at a time."""

    def __init__(self, out):
        self.out = out
        self.count = 0

    def write(self, record):
        import json

        record = {"path": record["path"], "error": record.get("error"),
                  **{k: v for k, v in record.items() if k not in ("path", "error")}}
        self.out.write("[\n" if self.count == 0 else ",\n")
        self.out.write(json.dumps(record))
        self.count += 1

    def close(self):
        self.out.write("[]\n" if self.count == 0 else "\n]\n")
        self.out.flush()


class _CsvWriter:
    """Write one CSV row per record.

    Columns: ``path, label``, then either one ``<key>:<class>`` column per
    class (``key`` is ``p`` for probabilities, ``score`` for decision
    scores) or, with ``top_k``, ``top1, top1_<key>, ...``, and last
    ``error``.
    """

    def __init__(self, out, predictor, top_k):
        import csv

        self.key = predictor.score_key
        short = "p" if self.key == "probabilities" else "score"
        self.classes = predictor.class_names
        self.top_k = top_k
        if top_k is None:
            extra = [f"{short}:{name}" for name in self.classes]
        else:
            k = min(top_k, len(self.classes))
            extra = [col for i in range(1, k + 1) for col in (f"top{i}", f"top{i}_{short}")]
            self.top_k = k
        self.writer = csv.writer(out)
        self.writer.writerow(["path", "label", *extra, "error"])
        self.out = out

    def write(self, record):
        scores = record.get(self.key) or {}
        if record.get("error"):
            width = len(self.classes) if self.top_k is None else 2 * self.top_k
            row = [""] * width
        elif self.top_k is None:
            row = [scores.get(name, "") for name in self.classes]
        else:
            row = [v for item in scores.items() for v in item]
        self.writer.writerow([record["path"], record.get("label", ""), *row,
                              record.get("error") or ""])

    def close(self):
        self.out.flush()
