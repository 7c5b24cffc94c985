"""``featclf visualize``: a picture of what each extractor sees in one image."""

HELP = "draw what HOG, LBP, dense SIFT and the colour histogram see in an image"

DESCRIPTION = """\
Save a PNG with five panels for one image: the image, HOG glyphs (one
star of gradient orientations per cell), the uniform-LBP code map, the
dense-SIFT sampling grid (coloured by visual word when --model is a saved
pipeline with a BagOfVisualWords step), and the per-channel colour
histogram. Needs matplotlib.

Example:
  featclf visualize photo.jpg --output views.png --resize 128
"""


def register(subparsers):
    """Add the ``visualize`` subcommand to ``subparsers``."""
    import argparse

    parser = subparsers.add_parser(
        "visualize", help=HELP, description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", help="image file")
    parser.add_argument("--output", "-o", default="views.png",
                        help="PNG to write (default: %(default)s)")
    parser.add_argument("--resize", type=int, metavar="N",
                        help="resize so the longer side is N pixels first")
    parser.add_argument("--hog-cell", type=int, default=8, help="HOG cell side (default: 8)")
    parser.add_argument("--sift-step", type=int, default=8,
                        help="dense-SIFT grid step (default: 8)")
    parser.add_argument("--sift-patch", type=int, default=16,
                        help="dense-SIFT patch side, a multiple of 4 (default: 16)")
    parser.add_argument("--model", metavar="FILE",
                        help="a featclf model file whose pipeline has a BagOfVisualWords "
                             "step: colour the grid by visual word")
    parser.set_defaults(func=run)


def _find_bovw(model):
    from ..encoding import BagOfVisualWords

    steps = getattr(model, "named_steps", {})
    for step in steps.values():
        if isinstance(step, BagOfVisualWords):
            return step
    raise ValueError("--model has no BagOfVisualWords step")


def run(args):
    """Compute the views and save the figure."""
    from ..io import read_image
    from ..visualize import plot_extractor_views

    image = read_image(args.image)
    if args.resize:
        from ..preprocessing import Resize

        height, width = image.shape[:2]
        scale = args.resize / max(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        image = Resize(size).fit_transform(image[None])[0]
    bovw = None
    if args.model:
        from ..persistence import load_model

        bovw = _find_bovw(load_model(args.model).pipeline)
    plot_extractor_views(image, args.output, pixels_per_cell=args.hog_cell,
                         sift_step=args.sift_step, sift_patch_size=args.sift_patch,
                         bovw=bovw)
    print(f"saved {args.output}")
    return 0
