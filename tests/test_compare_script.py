"""The classifier blend of scripts/compare_cnn_classical.py (no CNN, no data)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_cnn_classical.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("compare_cnn_classical", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(300, 8, n_informative=5, n_classes=3, random_state=0)
    return X[:200], y[:200], X[200:], y[200:]


def test_blend_is_the_weighted_mean_of_probabilities_and_decision_softmax(script, data):
    X, y, X_new, _ = data
    members = [SVC(C=1.0), LogisticRegression(C=0.5)]
    blend = script.SoftBlend(members, weights=[3, 1]).fit(X, y)
    svm, logreg = (clone(m).fit(X, y) for m in members)
    expected = 0.75 * softmax(svm.decision_function(X_new), axis=1) + 0.25 * logreg.predict_proba(X_new)
    proba = blend.predict_proba(X_new)
    np.testing.assert_allclose(proba, expected, rtol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(blend.predict(X_new), blend.classes_[expected.argmax(axis=1)])
    # the given members stay unfitted (fit works on clones)
    assert not hasattr(members[0], "support_vectors_")


def test_blend_weight_zero_leaves_one_member(script, data):
    X, y, X_new, y_new = data
    blend = script.SoftBlend([SVC(C=1.0), LogisticRegression()], weights=[0, 1]).fit(X, y)
    logreg = LogisticRegression().fit(X, y)
    np.testing.assert_array_equal(blend.predict(X_new), logreg.predict(X_new))
    assert blend.score(X_new, y_new) == logreg.score(X_new, y_new)


def test_cifar_candidates_include_the_blend(script, data):
    X, *_ = data
    candidates = script.cnn_classifiers("cifar10", np.abs(X))
    label = "blend: rbfsvm C=10.0 gamma=2.0x scale + 4 MLPs"
    (step_name, blend), = candidates[label]()
    assert isinstance(blend, script.SoftBlend)
    assert len(blend.estimators) == 5 and blend.weights == [4, 1, 1, 1, 1]
    seeds = [member.named_steps["clf"].random_state for member in blend.estimators[1:]]
    assert seeds == [0, 1, 2, 3]
