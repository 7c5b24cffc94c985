"""Colour histograms with fixed bin ranges, optionally over a spatial grid."""

import numbers

import cv2
import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ..base import FeatureExtractor, ImageError
from ..preprocessing import to_rgb, to_uint8

__all__ = ["ColorHistogram"]

# OpenCV 8-bit conversion code and per-channel value ranges [low, high).
# Ranges are fixed by the colour space, never taken from the data.
_SPACES = {
    "rgb": (None, ((0, 256), (0, 256), (0, 256))),
    "hsv": (cv2.COLOR_RGB2HSV, ((0, 180), (0, 256), (0, 256))),
    "lab": (cv2.COLOR_RGB2Lab, ((0, 256), (0, 256), (0, 256))),
}
_CHANNEL_NAMES = {"rgb": "RGB", "hsv": "HSV", "lab": "Lab"}


def _grid_edges(length, parts):
    return [round(k * length / parts) for k in range(parts + 1)]


class ColorHistogram(FeatureExtractor):
    """Normalised colour histograms, joint or per channel, over a spatial grid.

    Each image is converted to 8-bit RGB, HSV or Lab with OpenCV (gray
    images get three equal channels), split into ``grid`` cells, and each
    cell's histogram is counted with ``cv2.calcHist`` over fixed ranges
    (HSV hue 0-180 in OpenCV's 8-bit scale, all other channels 0-256), then
    L1-normalised so that it sums to 1 per cell (per channel in
    ``"per_channel"`` mode). Nothing depends on the batch.

    Parameters
    ----------
    color_space : {"rgb", "hsv", "lab"}, default="hsv"
        Colour space the histogram is counted in.
    bins : int or tuple of 3 int, default=8
        Bins per channel.
    mode : {"joint", "per_channel"}, default="joint"
        ``"joint"``: one 3-D histogram with ``prod(bins)`` bins per cell;
        ``"per_channel"``: three 1-D histograms, ``sum(bins)`` per cell.
    grid : tuple of (int, int), default=(1, 1)
        Spatial cells ``(rows, cols)``; histograms are concatenated
        row-major.
    n_jobs : int, default=None
        Parallel jobs (joblib's meaning).

    Attributes
    ----------
    n_features_out_ : int
        ``rows * cols * prod(bins)`` (joint) or ``rows * cols * sum(bins)``.

    Examples
    --------
    >>> import numpy as np
    >>> from featclf.features.color import ColorHistogram
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), np.uint8)
    >>> ColorHistogram(bins=4).fit_transform(images).shape
    (2, 64)
    """

    _parameter_constraints = {
        "color_space": [StrOptions(set(_SPACES))],
        "bins": [Interval(numbers.Integral, 1, 256, closed="both"), tuple, list],
        "mode": [StrOptions({"joint", "per_channel"})],
        "grid": [tuple, list],
        "n_jobs": [numbers.Integral, None],
    }
    _parallel_prefer = "threads"

    def __init__(self, color_space="hsv", bins=8, mode="joint", grid=(1, 1),
                 n_jobs=None):
        self.color_space = color_space
        self.bins = bins
        self.mode = mode
        self.grid = grid
        self.n_jobs = n_jobs

    def _checked_bins(self):
        bins = (self.bins,) * 3 if isinstance(self.bins, numbers.Integral) else self.bins
        if len(bins) != 3 or any(
            not isinstance(b, numbers.Integral) or not 1 <= b <= 256 for b in bins
        ):
            raise ValueError(
                f"ColorHistogram: bins must be an int or 3 ints in [1, 256], "
                f"got {self.bins!r}"
            )
        return tuple(int(b) for b in bins)

    def _checked_grid(self):
        if len(self.grid) != 2 or any(
            not isinstance(g, numbers.Integral) or g < 1 for g in self.grid
        ):
            raise ValueError(
                f"ColorHistogram: grid must be (rows, cols) of positive ints, "
                f"got {self.grid!r}"
            )
        return int(self.grid[0]), int(self.grid[1])

    def _fit_first_image(self, image):
        self._checked_bins()
        self._checked_grid()
        super()._fit_first_image(image)

    def _convert(self, image):
        code, _ = _SPACES[self.color_space]
        rgb = to_uint8(to_rgb(image))
        return rgb if code is None else cv2.cvtColor(rgb, code)

    def _transform_chunk(self, images):
        bins, (rows, cols) = self._checked_bins(), self._checked_grid()
        _, ranges = _SPACES[self.color_space]
        if self.mode == "joint":
            calls = [([0, 1, 2], list(bins), [v for r in ranges for v in r], 0)]
        else:
            starts = np.concatenate([[0], np.cumsum(bins)])
            calls = [([ch], [bins[ch]], list(ranges[ch]), int(starts[ch])) for ch in range(3)]
        n_bins = int(np.prod(bins)) if self.mode == "joint" else int(sum(bins))
        counts = np.empty((len(images), rows * cols, n_bins), np.float32)
        for index, image in enumerate(images):
            converted = self._convert(image)
            height, width = converted.shape[:2]
            if height < rows or width < cols:
                raise ImageError(
                    index, f"image of {height}x{width} pixels is smaller than the "
                    f"grid {rows}x{cols}"
                )
            if rows == cols == 1:
                cells = [converted]
            else:
                row_edges, col_edges = _grid_edges(height, rows), _grid_edges(width, cols)
                cells = [converted[row_edges[r]:row_edges[r + 1], col_edges[c]:col_edges[c + 1]]
                         for r in range(rows) for c in range(cols)]
            for cell_index, cell in enumerate(cells):
                for channels, sizes, value_ranges, start in calls:
                    hist = cv2.calcHist([cell], channels, None, sizes, value_ranges)
                    counts[index, cell_index, start:start + hist.size] = hist.reshape(-1)
        # normalise each histogram (each cell; each channel too in per_channel mode)
        for _, sizes, _, start in calls:
            part = counts[:, :, start:start + int(np.prod(sizes))]
            part /= np.maximum(part.sum(axis=2, keepdims=True), 1.0)
        return counts.reshape(len(images), -1)

    def _feature_names(self):
        bins, (rows, cols) = self._checked_bins(), self._checked_grid()
        channels = _CHANNEL_NAMES[self.color_space]
        if self.mode == "joint":
            bin_names = [
                f"{channels[0]}{a}_{channels[1]}{b}_{channels[2]}{c}"
                for a in range(bins[0]) for b in range(bins[1]) for c in range(bins[2])
            ]
        else:
            bin_names = [f"{channels[ch]}{i}" for ch in range(3) for i in range(bins[ch])]
        return [
            f"colorhist_r{r}c{c}_{name}"
            for r in range(rows) for c in range(cols) for name in bin_names
        ]
