"""Classification metrics and their text form, shared by the CLI and reports."""

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

__all__ = ["classification_summary", "format_summary"]


def classification_summary(y_true, y_pred, class_names=None):
    """Compute the metrics featclf reports for a classifier.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Integer labels (indices into ``class_names``) or any labels.
    class_names : list of str, default=None
        Names of labels ``0..n_classes-1``; when None the sorted distinct
        labels of ``y_true`` and ``y_pred`` are used as names.

    Returns
    -------
    summary : dict
        ``accuracy`` (float), ``mean_class_accuracy`` (mean per-class
        recall), ``macro`` and ``weighted`` dicts of precision / recall /
        f1, ``per_class`` (list of dicts with ``name``, ``precision``,
        ``recall``, ``f1``, ``support``), ``confusion`` (list of lists,
        rows = true class, columns = predicted) and ``class_names``.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if class_names is None:
        labels = np.unique(np.concatenate([y_true, y_pred]))
        class_names = [str(label) for label in labels]
    else:
        labels = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    summary = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "mean_class_accuracy": float(np.mean(recall[support > 0])),
        "class_names": list(class_names),
        "per_class": [
            {"name": name, "precision": float(p), "recall": float(r),
             "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        ],
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        summary[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    return summary


def format_summary(summary):
    """Render a summary from :func:`classification_summary` as plain text.

    Parameters
    ----------
    summary : dict
        As returned by :func:`classification_summary`.

    Returns
    -------
    text : str
        Accuracy, a per-class precision / recall / F1 table with macro and
        weighted averages, and the confusion matrix.
    """
    names = summary["class_names"]
    width = max(12, max(len(n) for n in names) + 2)
    lines = [
        f"accuracy: {summary['accuracy']:.4f}   "
        f"mean per-class accuracy: {summary['mean_class_accuracy']:.4f}",
        "",
        f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
    ]
    for row in summary["per_class"]:
        lines.append(
            f"{row['name']:<{width}}{row['precision']:>10.3f}{row['recall']:>10.3f}"
            f"{row['f1']:>10.3f}{row['support']:>10d}"
        )
    total = sum(row["support"] for row in summary["per_class"])
    for average in ("macro", "weighted"):
        m = summary[average]
        lines.append(
            f"{average + ' avg':<{width}}{m['precision']:>10.3f}{m['recall']:>10.3f}"
            f"{m['f1']:>10.3f}{total:>10d}"
        )
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    cell = max(5, max(len(str(v)) for r in summary["confusion"] for v in r) + 1)
    short = [n[:cell - 1] for n in names]
    lines.append(" " * width + "".join(f"{n:>{cell}}" for n in short))
    for name, row in zip(names, summary["confusion"]):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)
