"""Run a loaded model on images and describe each answer.

:class:`ImagePredictor` is what ``featclf predict`` and ``featclf serve``
share: it brings images to the colour the model expects, computes the
features once per batch, and turns the classifier's output into one plain
record per image::

    {"label": "cat", "probabilities": {"cat": 0.91, "dog": 0.09}}

``"probabilities"`` comes from ``predict_proba`` when the classifier has it;
otherwise the record holds ``"scores"`` from ``decision_function`` (for a
binary classifier, whose decision function is one number ``s`` for the
second class, the scores are ``-s`` and ``s``, so each class has one).
A batch that fails is retried image by image, so one bad image yields an
``{"error": ...}`` record and never hides the others' answers.
"""

import numpy as np

__all__ = ["ImagePredictor", "set_n_jobs"]


def set_n_jobs(estimator, n_jobs):
    """Set every ``n_jobs`` parameter of ``estimator`` (nested steps too).

    Parameters
    ----------
    estimator : estimator
        A pipeline or estimator; changed in place.
    n_jobs : int or None
        joblib's meaning; 1 for a server, where requests are the
        parallelism.

    Returns
    -------
    estimator : estimator
        The same object.
    """
    params = {name: n_jobs for name in estimator.get_params(deep=True)
              if name == "n_jobs" or name.endswith("__n_jobs")}
    if params:
        estimator.set_params(**params)
    return estimator


class ImagePredictor:
    """Predict labels and class scores for images with a loaded model.

    Parameters
    ----------
    pipeline : estimator
        A fitted classifier taking an image batch (usually a Pipeline that
        starts with :class:`~featclf.preprocessing.Resize`).
    metadata : dict
        The model file's metadata (``class_names``, ``input``).
    n_jobs : int or None, default=1
        Set on every step (joblib's meaning).

    Attributes
    ----------
    class_names : list of str
        One name per ``pipeline.classes_`` entry.
    score_key : {"probabilities", "scores"}
        Which kind of per-class numbers the records hold.
    """

    def __init__(self, pipeline, metadata, *, n_jobs=1):
        self.pipeline = set_n_jobs(pipeline, n_jobs)
        self.metadata = metadata
        self.class_names = list(metadata["class_names"])
        self.color = metadata.get("input", {}).get("color", "rgb")
        steps = getattr(pipeline, "steps", None)
        if steps:
            self._features = pipeline[:-1] if len(steps) > 1 else None
            self._classifier = steps[-1][1]
        else:
            self._features, self._classifier = None, pipeline
        self.score_key = ("probabilities" if hasattr(self._classifier, "predict_proba")
                          else "scores")
        self._classes = list(getattr(self._classifier, "classes_", []))

    @classmethod
    def from_file(cls, path, *, trusted=None, n_jobs=1):
        """Load a model file (see :func:`featclf.persistence.load_model`)."""
        from .persistence import load_model

        pipeline, metadata = load_model(path, trusted=trusted)
        return cls(pipeline, metadata, n_jobs=n_jobs)

    def prepare(self, image):
        """Bring one decoded RGB image to the colour the model expects.

        Parameters
        ----------
        image : ndarray of shape (H, W, 3) or (H, W)

        Returns
        -------
        image : ndarray of shape (H, W) or (H, W, 3)
        """
        if self.color == "gray":
            from .preprocessing import to_gray

            return to_gray(image)
        return image

    def _predict_batch(self, images):
        features = images if self._features is None else self._features.transform(images)
        labels = self._classifier.predict(features)
        if self.score_key == "probabilities":
            values = self._classifier.predict_proba(features)
        else:
            values = np.asarray(self._classifier.decision_function(features), dtype=float)
            if values.ndim == 1:
                values = np.column_stack([-values, values])
        return labels, values

    def _record(self, label, values, top_k):
        index = {c: i for i, c in enumerate(self._classes)}
        name = self.class_names[index[label]] if label in index else str(label)
        order = np.argsort(-values, kind="stable")
        if top_k is not None:
            order = order[:top_k]
        scores = {self.class_names[i]: round(float(values[i]), 6) for i in order}
        return {"label": name, self.score_key: scores}

    def predict(self, images, *, top_k=None):
        """Predict one record per image.

        Parameters
        ----------
        images : list of ndarray
            Decoded images (RGB ``uint8`` from :func:`featclf.io.read_image`
            or :func:`featclf.io.decode_image`); :meth:`prepare` is applied.
        top_k : int, optional
            Keep only the ``top_k`` best classes in each record (sorted,
            best first); default: every class, best first.

        Returns
        -------
        records : list of dict, length len(images)
            ``{"label": str, "probabilities" or "scores": {class: float}}``,
            or ``{"error": str}`` for an image the model could not process.
        """
        if not images:
            return []
        prepared = [self.prepare(image) for image in images]
        try:
            labels, values = self._predict_batch(prepared)
        except (ValueError, TypeError) as exc:
            if len(prepared) == 1:
                return [{"error": f"the model cannot process this image: {exc}"}]
            return [self.predict([image], top_k=top_k)[0] for image in images]
        return [self._record(label, row, top_k) for label, row in zip(labels, values)]
