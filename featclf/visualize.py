"""Pictures of what each feature extractor sees in one image.

:func:`extractor_views` computes, for one image, the raw material of each
extractor: the HOG glyph image (scikit-image's ``visualize=True``
rendering of the same HOG parameters featclf's :class:`~featclf.features.HOG`
uses), the LBP code map (:func:`featclf.features.lbp.lbp_codes`), the
dense-SIFT sampling grid (:class:`~featclf.features.DenseSIFT` positions and
patch sizes, with the visual word of each descriptor when a fitted
:class:`~featclf.encoding.BagOfVisualWords` is given) and the colour
histogram (:class:`~featclf.features.ColorHistogram`, per channel).
:func:`plot_extractor_views` draws them side by side and saves a PNG (needs
the optional ``matplotlib``); ``featclf visualize IMAGE`` does the same from
the shell.
"""

import numpy as np

from .io import check_image, read_image
from .preprocessing import to_float, to_gray, to_rgb, to_uint8

__all__ = ["extractor_views", "plot_extractor_views"]


def extractor_views(image, *, pixels_per_cell=8, lbp_points=8, lbp_radius=1.0,
                    sift_step=8, sift_patch_size=16, bovw=None, color_bins=32):
    """Compute what HOG, LBP, dense SIFT and the colour histogram see.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), or str or os.PathLike
        One image (uint8 0-255 or float 0-1) or the path of an image file.
    pixels_per_cell : int, default=8
        HOG cell side in pixels (9 unsigned orientations, 2x2-cell blocks).
    lbp_points, lbp_radius : int and float, default=8 and 1.0
        LBP neighbours ``P`` and radius ``R`` (uniform codes).
    sift_step, sift_patch_size : int, default=8 and 16
        Dense-SIFT grid step and patch side, in pixels.
    bovw : fitted BagOfVisualWords, default=None
        If given, each dense-SIFT descriptor is assigned to its nearest
        visual word (its descriptors must come from a DenseSIFT with the
        same ``n_bins_orientation`` and ``n_cells``, 128-D by default).
    color_bins : int, default=32
        Histogram bins per RGB channel.

    Returns
    -------
    views : dict
        ``"image"``: RGB uint8 ``(H, W, 3)``; ``"hog"``: float ``(H, W)``
        glyph image; ``"hog_features"``: int, length of the HOG vector;
        ``"lbp"``: int ``(H, W)`` code map (0 to ``P + 1``); ``"sift_positions"``:
        ``(k, 2)`` (x, y) centres; ``"sift_sizes"``: ``(k,)`` patch sides;
        ``"sift_words"``: ``(k,)`` word indices or None; ``"color"``: ``(3,
        color_bins)`` per-channel histograms (each sums to 1).
    """
    from skimage.feature import hog as skimage_hog

    from .features import ColorHistogram, DenseSIFT, HOG
    from .features.lbp import lbp_codes

    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        image = read_image(image)
    image = check_image(image)
    rgb = to_uint8(to_rgb(image))
    gray = to_gray(to_float(image))
    cell = (pixels_per_cell, pixels_per_cell)
    hog = HOG(orientations=9, pixels_per_cell=cell, cells_per_block=(2, 2)).fit(gray[None])
    _, glyphs = skimage_hog(gray, orientations=9, pixels_per_cell=cell,
                            cells_per_block=(2, 2), visualize=True)
    codes = lbp_codes(to_uint8(gray)[None], lbp_points, lbp_radius, "uniform")[0]
    sift = DenseSIFT(step=sift_step, patch_sizes=(sift_patch_size,))
    descriptors = sift.fit_transform(rgb[None])[0]
    words = None
    if bovw is not None and len(descriptors.descriptors):
        from .encoding import _nearest_words

        words = _nearest_words(descriptors.descriptors, bovw.codebook_)
    color = ColorHistogram(color_space="rgb", bins=color_bins, mode="per_channel")
    histogram = color.fit_transform(rgb[None])[0].reshape(3, color_bins)
    return {
        "image": rgb,
        "hog": glyphs,
        "hog_features": hog.n_features_out_,
        "lbp": codes,
        "sift_positions": descriptors.positions,
        "sift_sizes": descriptors.scales,
        "sift_words": words,
        "color": histogram,
    }


def plot_extractor_views(image, path=None, **params):
    """Draw the image and what each extractor sees; optionally save it.

    Parameters
    ----------
    image : ndarray or str or os.PathLike
        One image or an image path (see :func:`extractor_views`).
    path : str or os.PathLike, default=None
        Where to save the figure (PNG by its extension).
    **params
        Passed to :func:`extractor_views`.

    Returns
    -------
    figure : matplotlib.figure.Figure
        Five panels: image, HOG glyphs, LBP codes, dense-SIFT grid (words),
        colour histogram.

    Raises
    ------
    ImportError
        If matplotlib (optional extra ``plot``) is not installed.
    """
    try:
        from matplotlib import colormaps
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plot_extractor_views needs matplotlib: pip install 'featclf[plot]'"
        ) from exc
    views = extractor_views(image, **params)
    figure = Figure(figsize=(17, 3.6), layout="constrained")
    axes = figure.subplots(1, 5)
    axes[0].imshow(views["image"])
    axes[0].set_title(f"image {views['image'].shape[1]}x{views['image'].shape[0]}")
    axes[1].imshow(views["hog"], cmap="gray")
    axes[1].set_title(f"HOG glyphs ({views['hog_features']} features)")
    lbp = axes[2].imshow(views["lbp"], cmap="nipy_spectral", interpolation="nearest")
    figure.colorbar(lbp, ax=axes[2], shrink=0.8, label="uniform LBP code")
    axes[2].set_title("LBP code map")
    axes[3].imshow(views["image"])
    positions, sizes, words = views["sift_positions"], views["sift_sizes"], views["sift_words"]
    colours = (np.full(len(positions), 0.0) if words is None
               else words / max(1, words.max()))
    cmap = colormaps["tab20"]
    for (x, y), size, colour in zip(positions, sizes, colours):
        edge = "yellow" if words is None else cmap(colour)
        axes[3].add_patch(Rectangle((x - size / 2, y - size / 2), size, size, fill=False,
                                    edgecolor=edge, linewidth=0.5, alpha=0.35))
    axes[3].scatter(positions[:, 0], positions[:, 1], s=6,
                    c="yellow" if words is None else cmap(colours))
    axes[3].set_title("dense SIFT grid" + ("" if words is None else " (visual words)"))
    bins = views["color"].shape[1]
    centres = (np.arange(bins) + 0.5) * 256 / bins
    for channel, name in zip(views["color"], ("red", "green", "blue")):
        axes[4].plot(centres, channel, color=name, label=name)
    axes[4].set_xlim(0, 256)
    axes[4].set_title("colour histogram (per channel)")
    axes[4].set_xlabel("value")
    axes[4].legend(fontsize="small")
    for ax in axes[:4]:
        ax.set_xticks([])
        ax.set_yticks([])
    if path is not None:
        figure.savefig(path, dpi=100)
    return figure
