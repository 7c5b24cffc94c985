"""``featclf robustness``: accuracy under noise, blur, lighting, JPEG and rotation."""

HELP = "accuracy of trained pipelines as perturbation strength grows"

DESCRIPTION = """\
Train one or more named pipelines (or load a saved model) and score them on
perturbed copies of the test images: Gaussian noise, blur, brightness,
contrast, JPEG quality and rotation, each at growing strength (strength 0 is
the clean test set). Prints a Markdown table (one line per model and
perturbation); --markdown and --plot save it.

Strengths: noise = standard deviation (fraction of the range); blur = sigma
in pixels; brightness = added fraction of the range; contrast = reduction
(1 - factor); jpeg = 100 - quality; rotation = degrees.

Examples:
  featclf robustness -p hog-linsvm -p color-linsvm --data cifar10_jpeg.npz \\
      --max-train 5000 --max-test 1000 --plot r.png
  featclf robustness --model model.featclf --data mnist.npz \\
      --max-test 2000 --border constant --perturbations noise,rotation
"""


def register(subparsers):
    """Add the ``robustness`` subcommand to ``subparsers``."""
    import argparse

    from .train import add_data_arguments

    parser = subparsers.add_parser(
        "robustness", help=HELP, description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pipeline", "-p", action="append", metavar="NAME",
                        help="named pipeline to train (repeat for several); "
                             "default: hog-linsvm")
    parser.add_argument("--model", metavar="FILE", action="append",
                        help="a model file saved by 'featclf train --save' "
                             "(loaded safely, see featclf.persistence); repeatable")
    add_data_arguments(parser)
    parser.add_argument("--image-size", type=int, metavar="N",
                        help="resize to N x N before HOG, with N/8-pixel cells")
    # names listed in featclf.robustness.PERTURBATIONS; not imported here, so
    # that registering this command keeps every featclf command's start-up lean
    parser.add_argument("--perturbations", default=None, metavar="NAMES",
                        help="comma-separated subset of featclf.robustness.PERTURBATIONS "
                             "(default: all)")
    parser.add_argument("--border", choices=["reflect", "constant", "replicate"],
                        default="reflect",
                        help="border filling for rotations ('constant' for MNIST)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="parallel jobs for feature extraction (joblib's meaning)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")
    parser.add_argument("--plot", metavar="PNG", help="save a plot (needs matplotlib)")
    parser.set_defaults(func=run)


def run(args):
    """Train or load the models, perturb the test set and print the table."""
    import time

    from ..pipelines import make_named_pipeline
    from ..robustness import (
        DEFAULT_STRENGTHS,
        format_table,
        plot_robustness,
        robustness_table,
    )
    from .train import _feature_params, load_training_data

    requested = args.perturbations or ",".join(DEFAULT_STRENGTHS)
    names = [name.strip() for name in requested.split(",") if name.strip()]
    unknown = sorted(set(names) - set(DEFAULT_STRENGTHS))
    if unknown:
        raise ValueError(f"--perturbations: unknown {unknown}; "
                         f"choose from {', '.join(DEFAULT_STRENGTHS)}")
    perturbations = {name: DEFAULT_STRENGTHS[name] for name in names}
    x_train, y_train, x_test, y_test, _, description = load_training_data(args)
    models = {}
    for path in args.model or []:
        from ..persistence import load_model  # safe: never unpickles

        models[path] = load_model(path).pipeline
    pipelines = args.pipeline or ([] if models else ["hog-linsvm"])
    print(f"data: {description}; {len(y_train)} train / {len(y_test)} test images")
    for name in pipelines:
        pipeline = make_named_pipeline(name, random_state=args.seed, n_jobs=args.n_jobs,
                                       feature_params=_feature_params(args, name))
        start = time.perf_counter()
        models[name] = pipeline.fit(x_train, y_train)
        print(f"trained {name} in {time.perf_counter() - start:.1f} s", flush=True)
    tables = {}
    for name, model in models.items():
        start = time.perf_counter()
        tables[name] = robustness_table(model, x_test, y_test, perturbations,
                                        random_state=args.seed, border=args.border)
        print(f"scored {name} under perturbations in {time.perf_counter() - start:.1f} s",
              flush=True)
    markdown = format_table(tables)
    print()
    print(markdown)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write(markdown)
    if args.plot:
        plot_robustness(tables, args.plot)
        print(f"plot saved to {args.plot}")
    return 0
