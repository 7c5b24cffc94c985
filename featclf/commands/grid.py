"""``featclf grid SPEC --data DIR``: search a pipeline spec's grid, then
refit, test, save the model and write the report."""

import json
import os
import sys
from pathlib import Path

HELP = "search a pipeline spec's parameter grid over an image set"

DESCRIPTION = """\
Cross-validate every candidate of a pipeline spec (pipelines/*.toml) on the
training split (stratified k-fold), refit the best on the whole training
split, evaluate it once on the test split, save the model and write an
HTML + markdown report. Features of the stateless steps are cached in
--cache; each finished candidate is appended to --results, and a rerun with
the same arguments skips the finished ones.

DATA is an image folder root/<class>/<image> (split with --test-size), a
folder with train/ and test/ image folders, an .npz file with x_train,
y_train, x_test, y_test (MNIST's layout), or 'digits' (bundled 8x8 digits).
"""


def register(subparsers):
    """Add the ``grid`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser("grid", help=HELP, description=DESCRIPTION,
                                   formatter_class=_formatter())
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _formatter():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def add_arguments(parser):
    """Add the grid-search arguments to an argparse parser."""
    parser.add_argument("spec", help="pipeline spec file (pipelines/*.toml) or the "
                        "name of a shipped spec (e.g. hog-linsvm)")
    from .train import add_data_arguments

    data = add_data_arguments(parser)
    data.add_argument("--val-size", type=float, default=0.0,
                      help="hold out this fraction of the training split as ONE "
                      "validation fold instead of k-fold CV (default 0: k-fold)")
    search = parser.add_argument_group("search")
    search.add_argument("--search", choices=("grid", "random", "halving"), default="grid")
    search.add_argument("--cv", type=int, default=5, help="stratified folds (default 5)")
    search.add_argument("--n-iter", type=int, default=10,
                        help="candidates of a random search (default 10)")
    search.add_argument("--scoring", default="accuracy", help="scikit-learn scorer name")
    search.add_argument("--seed", type=int, default=0, help="seed for splits, folds, "
                        "random candidates and estimators (default 0)")
    search.add_argument("--n-jobs", type=int, default=None,
                        help="parallel candidate-folds (joblib meaning)")
    search.add_argument("--backend", choices=("local", "dask"), default="local",
                        help="'dask': run candidate-folds on a dask.distributed cluster")
    search.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786")
    output = parser.add_argument_group("output")
    output.add_argument("--out", help="output folder (default: grid-<spec name>)")
    output.add_argument("--cache", help="feature cache folder (default: OUT/cache)")
    output.add_argument("--no-cache", action="store_true", help="do not cache features")
    output.add_argument("--results", help="results file, one JSON line per candidate "
                        "(default: OUT/results.jsonl)")
    output.add_argument("--quiet", action="store_true", help="no progress bars")


def resolve_spec_path(spec):
    """Return the spec file for ``spec``: a path, or a shipped spec's name."""
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        return path
    shipped = Path(__file__).resolve().parents[2] / "pipelines" / f"{spec}.toml"
    return shipped if shipped.exists() else path


def run(args):
    """Run the search described by parsed ``args``; return the exit status."""
    from ..persistence import image_color, save_model
    from ..report import write_report
    from ..search import SearchInterrupted, format_results_table, run_search
    from ..specs import SpecError, load_spec
    from ..splits import load_splits

    def say(message):
        if not args.quiet:
            print(message, file=sys.stderr)

    try:
        spec = load_spec(resolve_spec_path(args.spec), random_state=args.seed)
    except SpecError as exc:
        print(f"featclf grid: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or f"grid-{spec.name}")
    cache = None if args.no_cache else (args.cache or out / "cache")
    results = Path(args.results) if args.results else out / "results.jsonl"
    try:
        out.mkdir(parents=True, exist_ok=True)
        splits = load_splits(args.data, test_dir=args.test_dir, test_size=args.test_size,
                             validation_size=args.val_size, seed=args.seed,
                             dedupe=args.dedupe, max_train=args.max_train,
                             max_test=args.max_test)
    except (OSError, ValueError) as exc:
        print(f"featclf grid: error: {exc}", file=sys.stderr)
        return 2
    say(f"{spec.name}: {spec.description}")
    say(f"data: {splits.source}: {len(splits.train)} train, {len(splits.test)} test images"
        + (f", {len(splits.removed_duplicates)} duplicates removed" if args.dedupe else ""))
    try:
        result = run_search(
            spec, splits, search=args.search, cv=args.cv, n_iter=args.n_iter,
            scoring=args.scoring, cache=cache, results=results, seed=args.seed,
            n_jobs=args.n_jobs, quiet=args.quiet,
            backend=None if args.backend == "local" else args.backend,
            scheduler=args.scheduler)
    except (SearchInterrupted, KeyboardInterrupt):
        print(f"featclf grid: interrupted; finished candidates are in {results}: "
              "rerun the same command to resume", file=sys.stderr)
        return 130
    except (OSError, ValueError, ImportError) as exc:
        print(f"featclf grid: error: {exc}", file=sys.stderr)
        return 2

    best_params = {k: _plain(v) for k, v in result.best_params.items()}
    test_accuracy = float((result.y_test == result.y_pred).mean())
    model_path = out / "model.featclf"
    save_model(
        model_path, result.best_estimator,
        metrics={"cv": {args.scoring: result.candidates[0].mean_score},
                 "test": {"accuracy": test_accuracy, "n_images": len(result.y_test)}},
        color=image_color(splits.train.images),
        extra={"spec": spec.name, "spec_fingerprint": spec.fingerprint,
               "data": splits.source, "best_params": best_params,
               "search": args.search, "cv": args.cv, "seed": args.seed})
    table = format_results_table(result.candidates)
    (out / "ranking.txt").write_text(table + "\n", encoding="utf-8")
    (out / "best_params.json").write_text(
        json.dumps(best_params, indent=2) + "\n", encoding="utf-8")
    sections = [
        ("Search", _search_text(spec, splits, args, result)),
        ("Ranked candidates", table),
    ]
    paths = write_report(
        out, result.y_test, result.y_pred, result.class_names,
        images=result.test_images, skipped=result.skipped,
        title=f"featclf grid: {spec.name}", sections=sections)
    print(format_results_table(result.candidates, top=10))
    print(f"best: {best_params}  cv {args.scoring} {result.candidates[0].mean_score:.4f}")
    print(f"test accuracy: {test_accuracy:.4f} on {len(result.y_test)} images")
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable image(s): listed in the report")
    print(f"model: {model_path}\nreport: {paths['html']}")
    return 0


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return value if isinstance(value, (str, int, float, bool, type(None), list)) else repr(value)


def _shown_path(path):
    """A path relative to the working folder when it lies below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _search_text(spec, splits, args, result):
    lines = [
        f"spec: {spec.name} ({_shown_path(spec.path)}), fingerprint {spec.fingerprint}",
        f"description: {spec.description}",
        f"data: {splits.source}; {len(splits.train)} train"
        + (f", {len(splits.validation)} validation" if splits.validation is not None else "")
        + f", {len(splits.test)} test images",
        f"search: {args.search}, cv={args.cv}, scoring={args.scoring}, seed={args.seed}",
        f"candidates: {len(result.candidates)} ({result.n_computed} computed, "
        f"{result.n_resumed} resumed from the results file)",
        "timings: " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()),
        "best params: " + json.dumps({k: _plain(v) for k, v in result.best_params.items()}),
    ]
    if splits.removed_duplicates:
        lines.append(f"duplicates removed ({len(splits.removed_duplicates)}): "
                     + "; ".join(f"{b} = {a}" for a, b in splits.removed_duplicates))
    return "\n".join(lines)
