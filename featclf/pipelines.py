"""Named pipelines: a feature choice plus a classifier choice, with defaults.

A name reads ``<features>-<classifier>``, where ``<features>`` is one key of
:data:`FEATURES` or several joined by ``+`` (combined with a
``FeatureUnion``), for example ``hog-linsvm``, ``lbp-rbfsvm``,
``color-rf`` or ``hog+color+lbp-linsvm``.

Each feature factory returns the steps from raw images to a fixed-length
matrix (with a ``Resize`` where the extractor needs one image size); each
classifier factory returns the steps from features to labels, standardising
first unless the features are already normalised
(:data:`SCALE_FREE_FEATURES`) or the classifier is scale-free (forests). With one feature, its steps sit directly in
the pipeline (grid parameters like ``hog__orientations`` and ``clf__C``);
with several, they sit under ``features`` (``features__hog__hog__...``).
"""

import difflib

from sklearn.ensemble import RandomForestClassifier
from sklearn.kernel_approximation import AdditiveChi2Sampler
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

__all__ = [
    "FEATURES", "CLASSIFIERS", "SCALE_FREE_FEATURES", "SHIPPED", "make_named_pipeline", "parse_pipeline_name",
    "pipeline_names",
]


def hog_features(image_size=(64, 64), orientations=9, pixels_per_cell=(8, 8),
                 cells_per_block=(2, 2), block_norm="L2-Hys", n_jobs=None):
    """Resize to one size, then HOG (colour handled as scikit-image does)."""
    from .features.hog import HOG
    from .preprocessing import Resize

    return [
        ("resize", Resize(image_size, n_jobs=n_jobs)),
        ("hog", HOG(orientations=orientations, pixels_per_cell=pixels_per_cell,
                    cells_per_block=cells_per_block, block_norm=block_norm,
                    n_jobs=n_jobs)),
    ]


def lbp_features(radii_points=((8, 1), (16, 2)), method="uniform", grid=(2, 2),
                 n_jobs=None):
    """Uniform LBP histograms at two scales over a 2x2 grid (any image size),
    standardised."""
    from .features.lbp import LBP

    return [("lbp", LBP(radii_points=radii_points, method=method, grid=grid,
                        n_jobs=n_jobs)),
            ("scale", StandardScaler())]


def color_features(color_space="hsv", bins=8, mode="joint", grid=(2, 2), n_jobs=None):
    """Joint HSV histograms, 8 bins per channel, over a 2x2 grid, Hellinger-mapped.

    Standardising these sparse histograms makes linear SVMs crawl (see
    :class:`~featclf.normalization.HellingerNormalizer`).
    """
    from .features.color import ColorHistogram
    from .normalization import HellingerNormalizer

    return [("color", ColorHistogram(color_space=color_space, bins=bins, mode=mode,
                                     grid=grid, n_jobs=n_jobs)),
            ("hellinger", HellingerNormalizer())]


def cnn_features(model_path=None, output="embedding", sha256=None, hflip_average=False,
                 batch_size=32, n_jobs=None):
    """A pretrained CNN's embedding from an ONNX file (EfficientNet-Lite0 preset).

    ``model_path`` is required to fit (featclf downloads nothing): pass it
    as ``feature_params={"cnn": {"model_path": ...}}`` or, from the command
    line, ``featclf train --pipeline cnn-logreg --cnn-model FILE``.
    """
    from .features.cnn import CNNEmbedding

    return [("cnn", CNNEmbedding(model_path, output=output, sha256=sha256,
                                 hflip_average=hflip_average, batch_size=batch_size,
                                 n_jobs=n_jobs))]


def bovw_features(n_words=200, encoding="hard", pyramid_levels=2, step=8,
                  patch_sizes=(16, 24, 32), random_state=0, n_jobs=None):
    """Dense SIFT at three patch sizes (PHOW), then a spatial-pyramid bag of words.

    The descriptor step is separate (and stateless), so ``Pipeline(memory=...)``
    caches it while a grid varies the vocabulary or the classifier. Suits the
    histogram classifiers ``chi2svm`` and ``hiksvm``; images must be larger
    than the largest patch (32 px).
    """
    from .encoding import BagOfVisualWords
    from .features.sift import DenseSIFT

    return [
        ("sift", DenseSIFT(step=step, patch_sizes=patch_sizes, n_jobs=n_jobs)),
        ("bovw", BagOfVisualWords(n_words, encoding=encoding, pyramid_levels=pyramid_levels,
                                  random_state=random_state, n_jobs=n_jobs)),
    ]


#: feature name -> factory returning ``[(step_name, estimator), ...]``.
#: ``cnn`` needs a model file, so it is not in :data:`SHIPPED`.
FEATURES = {
    "hog": hog_features,
    "lbp": lbp_features,
    "color": color_features,
    "cnn": cnn_features,
    "bovw": bovw_features,
}

#: Features whose steps already leave them normalised for a classifier: HOG
#: (L2-Hys blocks; standardising them makes a linear SVM converge 10x slower on
#: digits and scores no better), LBP (standardised in its own steps) and colour
#: histograms (Hellinger-mapped in their own steps). A classifier standardises
#: the other features, and any union that holds one of them.
SCALE_FREE_FEATURES = {"hog", "lbp", "color"}


def _scaler(scale):
    return [("scale", StandardScaler())] if scale else []


def linear_svm(random_state=None, scale=True):
    """A linear SVM, after standardisation when ``scale``."""
    return _scaler(scale) + [("clf", LinearSVC(C=0.1, random_state=random_state))]


def logistic_regression(random_state=None, scale=True):
    """Multinomial logistic regression, after standardisation when ``scale``."""
    return _scaler(scale) + [
        ("clf", LogisticRegression(C=0.1, max_iter=2000, random_state=random_state))
    ]


def rbf_svm(random_state=None, scale=True):
    """An RBF SVM (``gamma="scale"``), after standardisation when ``scale``."""
    return _scaler(scale) + [
        ("clf", SVC(kernel="rbf", C=10.0, gamma="scale", random_state=random_state))
    ]


def random_forest(random_state=None, scale=True):
    """A random forest; trees need no scaling, so ``scale`` is ignored."""
    return [("clf", RandomForestClassifier(n_estimators=300, random_state=random_state,
                                           n_jobs=None))]


def chi2_svm(random_state=None, scale=True):
    """Additive chi-squared feature map, then a linear SVM (for histograms).

    ``AdditiveChi2Sampler`` (Vedaldi and Zisserman's explicit map) makes a
    linear SVM approximate the additive chi2 kernel; no scaling, since the
    map expects non-negative, L1-normalised histograms (``scale`` is
    ignored).
    """
    return [("map", AdditiveChi2Sampler(sample_steps=2)),
            ("clf", LinearSVC(C=1.0, random_state=random_state))]


def intersection_svm(random_state=None, scale=True):
    """An SVM with the exact histogram intersection kernel (for histograms).

    The kernel is :func:`featclf.kernels.intersection_kernel` (picklable);
    training costs ``O(n_images^2 * n_features)``. No scaling: the kernel
    compares raw histograms (``scale`` is ignored). C=3 is what 3-fold CV
    on 15-Scene's training images picks for a 400-word pyramid
    (scripts/scene15_bovw.py).
    """
    from .kernels import intersection_kernel

    return [("clf", SVC(kernel=intersection_kernel, C=3.0, random_state=random_state))]


#: classifier name -> factory ``f(random_state, scale)`` returning
#: ``[(step_name, estimator), ...]``; ``scale`` says whether the features
#: need standardising first (see :data:`SCALE_FREE_FEATURES`).
CLASSIFIERS = {
    "linsvm": linear_svm,
    "logreg": logistic_regression,
    "rbfsvm": rbf_svm,
    "rf": random_forest,
    "chi2svm": chi2_svm,
    "hiksvm": intersection_svm,
}


def _closest(name, choices):
    match = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def parse_pipeline_name(name):
    """Split a pipeline name into its feature names and classifier name.

    Parameters
    ----------
    name : str
        For example ``"hog+color-linsvm"``.

    Returns
    -------
    features : list of str
        Keys of :data:`FEATURES`.
    classifier : str
        A key of :data:`CLASSIFIERS`.

    Raises
    ------
    ValueError
        If the name is malformed or names an unknown feature or classifier.
    """
    features_part, sep, classifier = str(name).rpartition("-")
    if not sep or not features_part:
        raise ValueError(
            f"pipeline name {name!r} must read '<features>-<classifier>', "
            f"for example 'hog-linsvm'; known: {', '.join(pipeline_names())}"
        )
    if classifier not in CLASSIFIERS:
        raise ValueError(
            f"unknown classifier {classifier!r} in pipeline {name!r}"
            f"{_closest(classifier, CLASSIFIERS)}; choose from {', '.join(CLASSIFIERS)}"
        )
    features = features_part.split("+")
    for feature in features:
        if feature not in FEATURES:
            raise ValueError(
                f"unknown feature {feature!r} in pipeline {name!r}"
                f"{_closest(feature, FEATURES)}; choose from {', '.join(FEATURES)}"
            )
    if len(set(features)) != len(features):
        raise ValueError(f"pipeline {name!r} names a feature twice")
    return features, classifier


def make_named_pipeline(name, *, random_state=0, n_jobs=None, memory=None,
                        feature_params=None):
    """Build the pipeline a name describes.

    Parameters
    ----------
    name : str
        ``<features>-<classifier>``, see :func:`pipeline_names`.
    random_state : int, default=0
        Seed for the classifier (and any seeded step).
    n_jobs : int, default=None
        Passed to the feature extractors (joblib's meaning).
    memory : str or joblib.Memory, default=None
        Passed to :class:`~sklearn.pipeline.Pipeline` to cache fitted
        transformers (feature extraction) across a grid search.
    feature_params : dict of str to dict, default=None
        Keyword arguments per feature factory, e.g.
        ``{"hog": {"image_size": (28, 28), "pixels_per_cell": (4, 4)}}``.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Unfitted; takes an image batch (see :mod:`featclf.io`).

    Examples
    --------
    >>> from featclf.pipelines import make_named_pipeline
    >>> [step for step, _ in make_named_pipeline("hog-linsvm").steps]
    ['resize', 'hog', 'clf']
    """
    features, classifier = parse_pipeline_name(name)
    feature_params = dict(feature_params or {})
    unknown = set(feature_params) - set(features)
    if unknown:
        raise ValueError(
            f"feature_params names {sorted(unknown)}, which pipeline {name!r} "
            f"does not use (its features: {features})"
        )
    feature_steps = {
        feature: FEATURES[feature](n_jobs=n_jobs, **feature_params.get(feature, {}))
        for feature in features
    }
    scale = any(feature not in SCALE_FREE_FEATURES for feature in features)
    classifier_steps = CLASSIFIERS[classifier](random_state=random_state, scale=scale)
    if len(features) == 1:
        steps = feature_steps[features[0]] + classifier_steps
    else:
        union = FeatureUnion([
            (feature, Pipeline(steps)) for feature, steps in feature_steps.items()
        ])
        steps = [("features", union)] + classifier_steps
    return Pipeline(steps, memory=memory)


#: The named pipelines featclf ships and tests: features -> classifiers that suit
#: them. Register a new feature here too (e.g. "bovw": ("linsvm", "chi2svm")).
SHIPPED = {
    "hog": ("linsvm", "logreg", "rbfsvm", "rf"),
    "lbp": ("linsvm", "rbfsvm", "rf"),
    "color": ("linsvm", "rbfsvm", "rf"),
    "hog+color+lbp": ("linsvm", "logreg"),
    "bovw": ("chi2svm", "hiksvm", "linsvm"),
}


def pipeline_names():
    """Return the shipped pipeline names.

    Every feature of :data:`FEATURES` with every classifier of
    :data:`CLASSIFIERS` that suits it, plus the combined features.

    Returns
    -------
    names : list of str
        Sorted names such as ``"hog-linsvm"``.
    """
    names = set()
    for features, classifiers in SHIPPED.items():
        if all(f in FEATURES for f in features.split("+")):
            names.update(f"{features}-{c}" for c in classifiers if c in CLASSIFIERS)
    return sorted(names)
