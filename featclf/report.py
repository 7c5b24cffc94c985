"""Evaluation reports: metrics, confusion matrix and misclassified images,
written as one self-contained HTML file and as markdown.

The numbers come from :func:`featclf.evaluation.classification_summary`
(the same ones ``featclf train`` prints); this module only lays them out and
draws the pictures (matplotlib, Agg backend, no display needed).
"""

import base64
import html
import os
from pathlib import Path

import numpy as np

from .evaluation import classification_summary, format_summary

__all__ = ["write_report", "plot_confusion_matrix", "plot_misclassified"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "the report's confusion-matrix plot needs matplotlib: "
            "pip install 'featclf[grid]'"
        ) from None

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _as_indices(labels, class_names):
    """Map labels (class names or indices) to indices into ``class_names``."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        return labels.astype(int)
    lookup = {str(name): index for index, name in enumerate(class_names)}
    try:
        return np.asarray([lookup[str(label)] for label in labels], dtype=int)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not one of the class names "
                         f"{list(class_names)}") from None


def plot_confusion_matrix(summary, path):
    """Draw the confusion matrix of a summary as a PNG.

    Parameters
    ----------
    summary : dict
        From :func:`featclf.evaluation.classification_summary`.
    path : str or os.PathLike
        The PNG file to write.
    """
    plt = _pyplot()
    matrix = np.asarray(summary["confusion"])
    names = summary["class_names"]
    n = len(names)
    size = min(4 + 0.45 * n, 16)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=100)
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for (row, col), count in np.ndenumerate(matrix):
            if count:
                ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                        color="white" if shown[row, col] > 0.5 else "black")
    ax.set_title(f"confusion matrix (accuracy {summary['accuracy']:.3f})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_misclassified(images, y_true, y_pred, class_names, path, *, max_images=36,
                       tile=112, columns=6):
    """Draw a montage of misclassified images with true and predicted labels.

    Built with OpenCV (fast even for many tiles): each image is scaled to
    fit a ``tile`` x ``tile`` square (nearest neighbour when enlarging, so
    small images stay crisp) above a caption "true X / pred Y".

    Parameters
    ----------
    images : sequence of ndarray or paths, length n
        The evaluated images (paths are read with :func:`featclf.io.read_image`).
    y_true, y_pred : array-like of shape (n,)
        Indices into ``class_names``.
    class_names : list of str
    path : str or os.PathLike
        The PNG file to write.
    max_images : int, default=36
        Show at most this many (the first ones in order).
    tile : int, default=112
        Side of each image's square, in pixels.
    columns : int, default=6
        Tiles per row.

    Returns
    -------
    n_shown : int
        How many images the montage shows (0: nothing written).
    """
    import cv2

    from .io import check_image, read_image
    from .preprocessing import to_rgb, to_uint8

    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))[:max_images]
    if len(wrong) == 0:
        return 0
    caption, pad = 30, 4
    columns = min(columns, len(wrong))
    rows = -(-len(wrong) // columns)
    cell_w, cell_h = tile + 2 * pad, tile + caption + 2 * pad
    canvas = np.full((rows * cell_h, columns * cell_w, 3), 255, np.uint8)
    for slot, index in enumerate(wrong):
        top, left = (slot // columns) * cell_h + pad, (slot % columns) * cell_w + pad
        item = images[index]
        try:
            image = (read_image(item) if isinstance(item, (str, os.PathLike))
                     else check_image(item))
        except (OSError, ValueError, TypeError):
            continue
        image = to_rgb(to_uint8(image))
        height, width = image.shape[:2]
        scale = tile / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        interpolation = cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA
        image = cv2.resize(image, size, interpolation=interpolation)
        y0, x0 = top + (tile - size[1]) // 2, left + (tile - size[0]) // 2
        canvas[y0:y0 + size[1], x0:x0 + size[0]] = image
        for line, text in enumerate((f"true {class_names[y_true[index]]}",
                                     f"pred {class_names[y_pred[index]]}")):
            color = (0, 0, 0) if line == 0 else (190, 0, 0)
            cv2.putText(canvas, text[:20], (left, top + tile + 12 + 13 * line),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.38, color, 1, cv2.LINE_AA)
    if not cv2.imwrite(os.fspath(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {os.fspath(path)!r}")
    return len(wrong)


def write_report(folder, y_true, y_pred, class_names, *, images=None, image_names=None,
                 skipped=(), title="featclf evaluation", sections=(), max_images=36):
    """Write the evaluation report: HTML (self-contained), markdown and PNGs.

    Parameters
    ----------
    folder : str or os.PathLike
        Output folder (created if needed).
    y_true, y_pred : array-like of shape (n,)
        Labels as class names or as indices into ``class_names``.
    class_names : list of str
    images : sequence of ndarray or paths, default=None
        The ``n`` evaluated images, for the misclassified montage.
    image_names : list of str, default=None
        How the tables name the images (default: the paths, when images are
        paths).
    skipped : sequence of (str, str), default=()
        ``(image, reason)`` for images that could not be processed.
    title : str, default="featclf evaluation"
    sections : sequence of (str, str), default=()
        Extra ``(heading, preformatted text)`` sections shown first (for
        example the search settings and the ranked candidates).
    max_images : int, default=36
        Most misclassified images in the montage.

    Returns
    -------
    paths : dict
        ``"html"``, ``"markdown"``, ``"confusion_png"`` (pathlib.Path) and,
        when images were given and some are misclassified,
        ``"misclassified_png"``; ``"summary"`` holds the dict from
        :func:`featclf.evaluation.classification_summary`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    true_idx = _as_indices(y_true, class_names)
    pred_idx = _as_indices(y_pred, class_names)
    summary = classification_summary(true_idx, pred_idx, list(class_names))
    paths = {"summary": summary}

    confusion_png = folder / "confusion_matrix.png"
    plot_confusion_matrix(summary, confusion_png)
    paths["confusion_png"] = confusion_png
    n_wrong = int((true_idx != pred_idx).sum())
    montage_png = folder / "misclassified.png"
    n_shown = 0
    if images is not None:
        n_shown = plot_misclassified(images, true_idx, pred_idx, class_names, montage_png,
                                     max_images=max_images)
    if n_shown:
        paths["misclassified_png"] = montage_png
    elif montage_png.exists():
        montage_png.unlink()
    if image_names is None and images is not None and len(images) \
            and isinstance(images[0], (str, os.PathLike)):
        image_names = [os.fspath(p) for p in images]
    wrong_rows = [
        (image_names[i] if image_names is not None else f"test image {i}",
         class_names[true_idx[i]], class_names[pred_idx[i]])
        for i in np.flatnonzero(true_idx != pred_idx)
    ]
    context = dict(summary=summary, title=title, sections=list(sections),
                   skipped=list(skipped), wrong_rows=wrong_rows, n_wrong=n_wrong,
                   n_shown=n_shown, n=len(true_idx))

    markdown = folder / "report.md"
    markdown.write_text(_markdown(context, confusion_png.name,
                                  montage_png.name if n_shown else None), encoding="utf-8")
    report_html = folder / "report.html"
    report_html.write_text(_html(context, confusion_png, montage_png if n_shown else None),
                           encoding="utf-8")
    paths.update(html=report_html, markdown=markdown)
    return paths


def _metric_rows(summary):
    rows = [(r["name"], r["precision"], r["recall"], r["f1"], r["support"])
            for r in summary["per_class"]]
    total = sum(r["support"] for r in summary["per_class"])
    for average in ("macro", "weighted"):
        m = summary[average]
        rows.append((f"{average} avg", m["precision"], m["recall"], m["f1"], total))
    return rows


def _confusion_text(summary):
    text = format_summary(summary)
    return text[text.index("confusion matrix"):]


def _markdown(context, confusion_name, montage_name):
    s = context["summary"]
    out = [f"# {context['title']}", ""]
    for heading, text in context["sections"]:
        out += [f"## {heading}", "", "```", text, "```", ""]
    out += [
        "## Test results", "",
        f"- images: {context['n']}",
        f"- accuracy: **{s['accuracy']:.4f}**",
        f"- mean per-class accuracy: {s['mean_class_accuracy']:.4f}",
        f"- macro F1: {s['macro']['f1']:.4f}, weighted F1: {s['weighted']['f1']:.4f}",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, p, r, f, n in _metric_rows(s):
        out.append(f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {n} |")
    out += ["", "## Confusion matrix", "", f"![confusion matrix]({confusion_name})", "",
            "```", _confusion_text(s), "```", ""]
    out += [f"## Misclassified images ({context['n_wrong']})", ""]
    if montage_name:
        out += [f"![misclassified images]({montage_name})", "",
                f"The montage shows the first {context['n_shown']}.", ""]
    if context["wrong_rows"]:
        out += ["| image | true | predicted |", "|---|---|---|"]
        out += [f"| {n} | {t} | {p} |" for n, t, p in context["wrong_rows"][:200]]
        if len(context["wrong_rows"]) > 200:
            out.append(f"| ... {len(context['wrong_rows']) - 200} more | | |")
        out.append("")
    out += [f"## Skipped images ({len(context['skipped'])})", ""]
    if context["skipped"]:
        out += [f"- `{name}`: {reason}" for name, reason in context["skipped"]]
    else:
        out.append("None: every image could be read and processed.")
    return "\n".join(out) + "\n"


def _png_data_uri(path):
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; }
"""


def _html(context, confusion_png, montage_png):
    s = context["summary"]
    e = html.escape
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
           f"<title>{e(context['title'])}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{e(context['title'])}</h1>"]
    for heading, text in context["sections"]:
        out += [f"<h2>{e(heading)}</h2>", f"<pre>{e(text)}</pre>"]
    out += [
        "<h2>Test results</h2><ul>",
        f"<li>images: {context['n']}</li>",
        f"<li>accuracy: <b>{s['accuracy']:.4f}</b></li>",
        f"<li>mean per-class accuracy: {s['mean_class_accuracy']:.4f}</li>",
        f"<li>macro F1: {s['macro']['f1']:.4f}, weighted F1: {s['weighted']['f1']:.4f}</li>",
        "</ul><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
        "<th>support</th></tr>",
    ]
    for name, p, r, f, n in _metric_rows(s):
        out.append(f"<tr><td>{e(name)}</td><td class=num>{p:.3f}</td><td class=num>{r:.3f}"
                   f"</td><td class=num>{f:.3f}</td><td class=num>{n}</td></tr>")
    out += ["</table>", "<h2>Confusion matrix</h2>",
            f"<img alt='confusion matrix' src='{_png_data_uri(confusion_png)}'>",
            f"<pre>{e(_confusion_text(s))}</pre>",
            f"<h2>Misclassified images ({context['n_wrong']})</h2>"]
    if montage_png is not None:
        out += [f"<img alt='misclassified images' src='{_png_data_uri(montage_png)}'>",
                f"<p>The montage shows the first {context['n_shown']}.</p>"]
    if context["wrong_rows"]:
        out.append("<table><tr><th>image</th><th>true</th><th>predicted</th></tr>")
        out += [f"<tr><td>{e(n)}</td><td>{e(t)}</td><td>{e(p)}</td></tr>"
                for n, t, p in context["wrong_rows"][:200]]
        out.append("</table>")
    out.append(f"<h2>Skipped images ({len(context['skipped'])})</h2>")
    if context["skipped"]:
        out.append("<ul>" + "".join(f"<li><code>{e(n)}</code>: {e(r)}</li>"
                                    for n, r in context["skipped"]) + "</ul>")
    else:
        out.append("<p>None: every image could be read and processed.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
