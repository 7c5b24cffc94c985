"""Accuracy of a fitted model under image perturbations of growing strength.

:func:`robustness_table` perturbs a labelled test set with each
perturbation at each strength, scores the fitted model on it and returns
one row per (perturbation, strength). :func:`format_table` renders it as
Markdown (perturbations as rows, strengths as columns) and
:func:`plot_robustness` draws accuracy against strength (needs the
optional ``matplotlib``). The command ``featclf robustness`` runs the same
from the shell.

Perturbations (name: what the strength means; every one is the identity
at strength 0):

* ``"noise"``: standard deviation of added Gaussian noise, as a fraction of
  the full range (0.1 = 25.5 grey levels).
* ``"blur"``: sigma of a Gaussian blur, in pixels.
* ``"brightness"``: value added to every pixel, as a fraction of the full
  range (negative darkens).
* ``"contrast"``: contrast reduction; the deviation from the mean grey
  level is multiplied by ``1 - strength`` (1 gives a flat image).
* ``"jpeg"``: JPEG compression at quality ``100 - strength`` (strength
  0 skips compression; 90 is quality 10).
* ``"rotation"``: rotation about the centre, in degrees.
"""

import cv2
import numpy as np
from sklearn.metrics import accuracy_score

from .augmentation import adjust_brightness, adjust_contrast, affine_matrix, warp_image
from .io import as_image_batch
from .preprocessing import to_float, to_uint8

__all__ = [
    "PERTURBATIONS",
    "DEFAULT_STRENGTHS",
    "perturb",
    "robustness_table",
    "format_table",
    "plot_robustness",
]


def _noise(image, strength, rng, border):
    noisy = to_float(image) + rng.normal(0.0, strength, image.shape).astype(np.float32)
    noisy = np.clip(noisy, 0.0, 1.0)
    return to_uint8(noisy) if image.dtype == np.uint8 else noisy


def _blur(image, strength, rng, border):
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(strength),
                            borderType=cv2.BORDER_REFLECT_101)


def _brightness(image, strength, rng, border):
    return adjust_brightness(image, strength)


def _contrast(image, strength, rng, border):
    return adjust_contrast(image, 1.0 - strength)


def _jpeg(image, strength, rng, border):
    quality = int(round(100 - strength))
    pixels = to_uint8(image)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes valid uint8 images
        raise ValueError(f"JPEG encoding at quality {quality} failed")
    flag = cv2.IMREAD_COLOR if pixels.ndim == 3 else cv2.IMREAD_GRAYSCALE
    decoded = cv2.imdecode(encoded, flag)
    if decoded.ndim == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return decoded if image.dtype == np.uint8 else to_float(decoded)


def _rotation(image, strength, rng, border):
    return warp_image(image, affine_matrix(image.shape, angle=strength), border)


#: perturbation name -> function(image, strength, rng, border) -> image.
PERTURBATIONS = {
    "noise": _noise,
    "blur": _blur,
    "brightness": _brightness,
    "contrast": _contrast,
    "jpeg": _jpeg,
    "rotation": _rotation,
}

#: perturbation name -> strengths :func:`robustness_table` uses by default.
DEFAULT_STRENGTHS = {
    "noise": (0.0, 0.02, 0.05, 0.1, 0.2),
    "blur": (0.0, 0.5, 1.0, 1.5, 2.0),
    "brightness": (0.0, 0.1, 0.2, 0.3, 0.4),
    "contrast": (0.0, 0.25, 0.5, 0.75, 0.9),
    "jpeg": (0.0, 25.0, 50.0, 75.0, 90.0),
    "rotation": (0.0, 5.0, 10.0, 15.0, 20.0),
}

_RANGES = {"jpeg": (0, 99), "contrast": (0, 1), "noise": (0, None), "blur": (0, None)}


def _check_strength(perturbation, strength):
    if perturbation not in PERTURBATIONS:
        raise ValueError(
            f"unknown perturbation {perturbation!r}; choose from {sorted(PERTURBATIONS)}"
        )
    low, high = _RANGES.get(perturbation, (None, None))
    if (low is not None and strength < low) or (high is not None and strength > high):
        raise ValueError(
            f"strength {strength!r} for {perturbation!r} is outside "
            f"[{low}, {'inf' if high is None else high}]"
        )


def perturb(X, perturbation, strength, *, random_state=0, border="reflect"):
    """Apply one perturbation at one strength to every image.

    Parameters
    ----------
    X : image batch
        See :mod:`featclf.io` for accepted forms.
    perturbation : str
        A key of :data:`PERTURBATIONS`.
    strength : float
        Its strength (see the module docstring); 0 returns the images
        unchanged.
    random_state : int, default=0
        Seed of the noise (only ``"noise"`` is random).
    border : {"reflect", "constant", "replicate"}, default="reflect"
        Border filling for ``"rotation"``.

    Returns
    -------
    perturbed : ndarray of shape (n, H, W[, 3]) or list of ndarray
        Same shapes and dtypes as the validated input; a stack when the
        input was one.
    """
    _check_strength(perturbation, strength)
    batch = as_image_batch(X)
    if strength == 0:
        return batch.load()
    rng = np.random.default_rng(random_state)
    function = PERTURBATIONS[perturbation]
    images = [function(batch[i], strength, rng, border) for i in range(len(batch))]
    return np.stack(images) if isinstance(batch.items, np.ndarray) else images


def robustness_table(model, X, y, perturbations=None, *, random_state=0,
                     border="reflect"):
    """Score a fitted model on perturbed copies of a test set.

    Parameters
    ----------
    model : fitted estimator
        Anything with ``predict`` taking images (a featclf pipeline).
    X : image batch
        Test images (see :mod:`featclf.io`); loaded into memory once.
    y : array-like of shape (n,)
        Their labels.
    perturbations : dict of str to sequence of float, default=None
        Perturbation name -> strengths; ``None`` uses
        :data:`DEFAULT_STRENGTHS`. The clean images are scored once and
        that score is reused for every strength 0.
    random_state : int, default=0
        Seed of the noise perturbation.
    border : {"reflect", "constant", "replicate"}, default="reflect"
        Border filling for rotations ("constant" for dark-background
        images such as MNIST).

    Returns
    -------
    table : list of dict
        One row per (perturbation, strength), in the given order, each
        ``{"perturbation": str, "strength": float, "accuracy": float,
        "n_images": int}``.
    """
    if perturbations is None:
        perturbations = DEFAULT_STRENGTHS
    for name, strengths in perturbations.items():
        for strength in strengths:
            _check_strength(name, strength)
    images = as_image_batch(X).load()
    y = np.asarray(y)
    if len(y) != len(images):
        raise ValueError(f"X has {len(images)} images but y has {len(y)} labels")
    clean = None
    table = []
    for name, strengths in perturbations.items():
        for strength in strengths:
            if strength == 0:
                if clean is None:
                    clean = accuracy_score(y, model.predict(images))
                accuracy = clean
            else:
                perturbed = perturb(images, name, strength,
                                    random_state=random_state, border=border)
                accuracy = accuracy_score(y, model.predict(perturbed))
            table.append({"perturbation": name, "strength": float(strength),
                          "accuracy": float(accuracy), "n_images": len(y)})
    return table


def _by_perturbation(table):
    grouped = {}
    for row in table:
        grouped.setdefault(row["perturbation"], []).append(row)
    return grouped


def format_table(tables):
    """Render robustness tables as Markdown, one line per (model, perturbation).

    Parameters
    ----------
    tables : list of dict or dict of str to list of dict
        One table from :func:`robustness_table`, or model name -> table.

    Returns
    -------
    markdown : str
        Columns: model (when several), perturbation, then
        ``strength: accuracy`` for each strength.
    """
    if isinstance(tables, list):
        tables = {"": tables}
    named = any(tables)
    header = (["model"] if named else []) + ["perturbation", "accuracy at strength ..."]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model_name, table in tables.items():
        for name, rows in _by_perturbation(table).items():
            cells = ", ".join(f"{row['strength']:g}: {100 * row['accuracy']:.1f}"
                              for row in rows)
            lines.append("| " + " | ".join(([model_name] if named else []) + [name, cells]) + " |")
    return "\n".join(lines) + "\n"


def plot_robustness(tables, path=None):
    """Plot accuracy against strength, one panel per perturbation.

    Parameters
    ----------
    tables : list of dict or dict of str to list of dict
        One table from :func:`robustness_table`, or model name -> table
        (one line per model in each panel).
    path : str or os.PathLike, default=None
        Where to save the figure (PNG by its extension); ``None`` only
        returns it.

    Returns
    -------
    figure : matplotlib.figure.Figure

    Raises
    ------
    ImportError
        If matplotlib (optional extra ``plot``) is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plot_robustness needs matplotlib: pip install 'featclf[plot]'"
        ) from exc
    if isinstance(tables, list):
        tables = {"model": tables}
    names = list(dict.fromkeys(row["perturbation"] for t in tables.values() for row in t))
    n_cols = min(3, len(names))
    n_rows = -(-len(names) // n_cols)
    figure = Figure(figsize=(4 * n_cols, 3.2 * n_rows), layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        for model_name, table in tables.items():
            rows = _by_perturbation(table).get(name, [])
            ax.plot([r["strength"] for r in rows], [100 * r["accuracy"] for r in rows],
                    marker="o", label=model_name)
        ax.set_title(name)
        ax.set_xlabel("strength")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    if path is not None:
        figure.savefig(path, dpi=100)
    return figure
