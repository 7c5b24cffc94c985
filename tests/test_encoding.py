"""BagOfVisualWords: encodings against hand-computed cases, pyramid pooling,
normalisation, leakage-free refitting in cross-validation, and bad input."""

import math
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from conftest import shared_path
from featclf.encoding import BagOfVisualWords, _gmm_posteriors, pyramid_weights
from featclf.features import DescriptorSet

ENCODINGS = ["hard", "soft", "vlad", "fisher"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny fits: OpenMP/BLAS threads only add start-up and contention cost."""
    with threadpool_limits(1):
        yield


def make_set(descriptors, positions=None, image_shape=(32, 32)):
    """A DescriptorSet from explicit rows (positions default to the centre)."""
    descriptors = np.asarray(descriptors, dtype=np.float32)
    k = len(descriptors)
    if positions is None:
        positions = np.tile([[image_shape[1] / 2, image_shape[0] / 2]], (k, 1))
    return DescriptorSet(
        descriptors, np.asarray(positions, np.float32), np.full(k, 8, np.float32), image_shape
    )


def random_sets(n_images=8, n_desc=60, n_dims=6, seed=0, image_shape=(40, 30)):
    """Images whose descriptors cluster around a per-label centre."""
    rng = np.random.default_rng(seed)
    sets = []
    for index in range(n_images):
        centre = np.full(n_dims, float(index % 2))
        desc = centre + 0.5 * rng.standard_normal((n_desc, n_dims))
        xy = rng.uniform(0, 1, (n_desc, 2)) * [image_shape[1], image_shape[0]]
        sets.append(make_set(desc, xy, image_shape))
    return sets


def fitted_with(encoding, codebook, **params):
    """An encoder fitted on dummy data, then given a hand-chosen vocabulary."""
    codebook = np.asarray(codebook, np.float32)
    dummy = [make_set(np.random.default_rng(0).standard_normal((20, codebook.shape[1])))]
    enc = BagOfVisualWords(len(codebook), encoding=encoding, random_state=0, **params)
    enc.fit(dummy)
    enc.codebook_ = codebook
    return enc


# ------------------------------------------------------------ hand-computed
def test_hard_histogram_hand_computed_with_pyramid():
    # 2 words at (0,0) and (4,0); 32x32 image, L=1: cells 0 1 / 2 3 (row-major)
    enc = fitted_with("hard", [[0, 0], [4, 0]], pyramid_levels=1)
    desc = [[1, 0], [5, 1], [3, -3], [0, 2]]  # words 0, 1, 1, 0
    xy = [[2, 2], [30, 2], [30, 30], [31.9, 31.9]]  # cells 0, 1, 3, 3
    out = enc.transform([make_set(desc, xy)])[0]
    level0 = np.array([2, 2]) / 4 * 0.5  # counts / n_descriptors * weight 1/2
    level1 = np.array([[1, 0], [0, 1], [0, 0], [1, 1]]) / 4 * 0.5
    np.testing.assert_allclose(out, np.concatenate([level0, level1.ravel()]), atol=1e-7)
    assert out.dtype == np.float32
    assert enc.get_feature_names_out()[5] == "bovw_l1_c1_w1"


def test_vlad_hand_computed():
    enc = fitted_with("vlad", [[0, 0], [4, 0]])
    # nearest words: (1,0)->0, (0,2)->0, (5,1)->1, (3,-3)->1 (9+9 > 1+9)
    out = enc.transform([make_set([[1, 0], [0, 2], [5, 1], [3, -3]])])[0]
    v0 = np.array([1 + 0, 0 + 2])  # residuals (1,0) + (0,2)
    v1 = np.array([(5 - 4) + (3 - 4), 1 + (-3)])  # residuals (1,1) + (-1,-3) = (0,-2)
    v0 = v0 / math.sqrt(1 + 4)  # intra-normalisation
    v1 = v1 / math.sqrt(0 + 4)
    v = np.concatenate([v0, v1])
    v = np.sign(v) * np.sqrt(np.abs(v))  # signed square root
    v = v / math.sqrt((v**2).sum())
    np.testing.assert_allclose(out, v, atol=1e-6)
    assert list(enc.get_feature_names_out()[:3]) == [
        "vlad_l0_c0_w0_d0", "vlad_l0_c0_w0_d1", "vlad_l0_c0_w1_d0"
    ]


def test_vlad_without_power_normalisation():
    enc = fitted_with("vlad", [[0, 0], [4, 0]], power_normalize=False)
    out = enc.transform([make_set([[1, 0], [0, 2], [5, 1], [3, -3]])])[0]
    v = np.array([1 / math.sqrt(5), 2 / math.sqrt(5), 0.0, -1.0])
    np.testing.assert_allclose(out, v / math.sqrt(2.0), atol=1e-6)


def test_fisher_vector_hand_computed():
    enc = fitted_with("fisher", [[0, 0], [2, 0]])
    w = [0.25, 0.75]
    var = [[1.0, 1.0], [1.0, 4.0]]
    enc.gmm_weights_ = np.array(w)
    enc.gmm_variances_ = np.array(var)
    mu = [[0.0, 0.0], [2.0, 0.0]]
    xs = [[1.0, 0.0], [0.0, 1.0]]

    def log_wn(x, k):  # log(w_k N(x | mu_k, diag var_k))
        return math.log(w[k]) + sum(
            -0.5 * (x[j] - mu[k][j]) ** 2 / var[k][j] - 0.5 * math.log(2 * math.pi * var[k][j])
            for j in range(2)
        )

    # x1 = (1,0): log-terms differ only by log w and log var: ratio 0.75/0.25 / sqrt(4)
    r1 = math.exp(log_wn(xs[0], 1) - log_wn(xs[0], 0))
    assert r1 == pytest.approx(3 / 2)
    # x2 = (0,1): Mahalanobis 1 vs 4 + 1/4
    r2 = math.exp(log_wn(xs[1], 1) - log_wn(xs[1], 0))
    assert r2 == pytest.approx(3 / 2 * math.exp(-0.5 * (4.25 - 1)))
    gamma = [[1 / (1 + r1), r1 / (1 + r1)], [1 / (1 + r2), r2 / (1 + r2)]]

    T = 2
    g_mean, g_var = [], []
    for k in range(2):
        for j in range(2):
            sd = math.sqrt(var[k][j])
            g_mean.append(
                sum(gamma[t][k] * (xs[t][j] - mu[k][j]) / sd for t in range(T))
                / (T * math.sqrt(w[k]))
            )
            g_var.append(
                sum(gamma[t][k] * ((xs[t][j] - mu[k][j]) ** 2 / var[k][j] - 1) for t in range(T))
                / (T * math.sqrt(2 * w[k]))
            )
    v = np.array(g_mean + g_var)
    v = np.sign(v) * np.sqrt(np.abs(v))
    v = v / np.linalg.norm(v)

    out = enc.transform([make_set(xs)])[0]
    np.testing.assert_allclose(out, v, atol=1e-6)
    names = enc.get_feature_names_out()
    assert names[0] == "fisher_l0_c0_g0_mean_d0" and names[4] == "fisher_l0_c0_g0_var_d0"


def test_gmm_posteriors_match_scikit_learn():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 5))
    gmm = GaussianMixture(4, covariance_type="diag", random_state=0).fit(x)
    post = _gmm_posteriors(x, gmm.means_, gmm.covariances_, gmm.weights_)
    np.testing.assert_allclose(post, gmm.predict_proba(x), atol=1e-8)


def test_soft_assignment_hand_computed():
    enc = fitted_with("soft", [[0, 0], [4, 0]], soft_sigma=2.0)
    out = enc.transform([make_set([[1, 0], [4, 1]])])[0]
    # squared distances: (1,0): 1 and 9; (4,1): 17 and 1; kernel exp(-d / 8)
    a = np.array([math.exp(-1 / 8), math.exp(-9 / 8)])
    b = np.array([math.exp(-17 / 8), math.exp(-1 / 8)])
    expected = (a / a.sum() + b / b.sum()) / 2
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_soft_with_one_neighbour_equals_hard():
    sets = random_sets()
    hard = BagOfVisualWords(5, random_state=0, pyramid_levels=1).fit(sets)
    soft = BagOfVisualWords(
        5, encoding="soft", soft_neighbors=1, random_state=0, pyramid_levels=1
    ).fit(sets)
    np.testing.assert_array_equal(hard.codebook_, soft.codebook_)
    np.testing.assert_allclose(soft.transform(sets), hard.transform(sets), atol=1e-7)
    assert soft.sigma_ > 0


# ------------------------------------------------------- shapes, normalisation
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("levels", [0, 1, 2])
def test_shapes_and_normalisation(encoding, levels):
    sets = random_sets()
    enc = BagOfVisualWords(4, encoding=encoding, pyramid_levels=levels, random_state=0)
    out = enc.fit_transform(sets)
    n_cells = sum(4**level for level in range(levels + 1))
    per_cell = {"hard": 4, "soft": 4, "vlad": 4 * 6, "fisher": 2 * 4 * 6}[encoding]
    assert out.shape == (len(sets), n_cells * per_cell)
    assert out.dtype == np.float32
    assert enc.n_features_out_ == out.shape[1] == len(enc.get_feature_names_out())
    weights = pyramid_weights(levels)
    level_slices = np.cumsum([0] + [4**level * per_cell for level in range(levels + 1)])
    for level, weight in enumerate(weights):
        part = out[:, level_slices[level] : level_slices[level + 1]]
        if encoding in ("hard", "soft"):
            assert (part >= 0).all()
            # each level's cells sum to the level weight (Lazebnik normalisation)
            np.testing.assert_allclose(part.sum(axis=1), weight, rtol=1e-5)
        else:
            # each level keeps an L2 norm proportional to its weight
            np.testing.assert_allclose(
                np.linalg.norm(part, axis=1), weight / np.linalg.norm(weights), rtol=1e-5
            )
    if encoding in ("hard", "soft"):
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    else:
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_pyramid_weights():
    np.testing.assert_allclose(pyramid_weights(0), [1.0])
    np.testing.assert_allclose(pyramid_weights(1), [1 / 2, 1 / 2])
    np.testing.assert_allclose(pyramid_weights(2), [1 / 4, 1 / 4, 1 / 2])
    np.testing.assert_allclose(pyramid_weights(3), [1 / 8, 1 / 8, 1 / 4, 1 / 2])
    for levels in range(6):
        assert pyramid_weights(levels).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="levels"):
        pyramid_weights(-1)


@pytest.mark.parametrize("encoding", ["vlad", "fisher"])
def test_vector_cells_normalised_independently(encoding):
    # L=1, all descriptors in the top-left cell: at level 1 that cell alone
    # carries the level's norm, and equals the level-0 cell
    sets = random_sets()
    enc = BagOfVisualWords(3, encoding=encoding, pyramid_levels=1, random_state=0).fit(sets)
    corner = make_set(sets[0].descriptors, np.full((60, 2), 1.0), (40, 30))
    out = enc.transform([corner])[0]
    per_cell = enc.n_features_out_ // 5
    cells = out.reshape(5, per_cell)
    norms = np.linalg.norm(cells, axis=1)
    np.testing.assert_allclose(norms[[0, 1]], 1 / math.sqrt(2), rtol=1e-5)
    np.testing.assert_array_equal(norms[2:], 0)
    np.testing.assert_allclose(cells[0], cells[1], atol=1e-6)


# --------------------------------------------------------- empty images
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_images_without_descriptors_give_zero_vectors(encoding):
    sets = random_sets()
    empty = DescriptorSet.empty(6, (40, 30))
    enc = BagOfVisualWords(4, encoding=encoding, pyramid_levels=1, random_state=0)
    out = enc.fit_transform(sets[:3] + [empty] + sets[3:])
    assert not out[3].any()
    assert out[[0, 1, 2, 4]].any(axis=1).all()
    # an all-empty batch encodes to zeros too
    assert not enc.transform([empty, empty]).any()


def test_fit_without_enough_descriptors_is_an_error():
    empty = DescriptorSet.empty(6, (40, 30))
    with pytest.raises(ValueError, match="0 training descriptors"):
        BagOfVisualWords(4).fit([empty, empty])
    with pytest.raises(ValueError, match="n_words=100"):
        BagOfVisualWords(100).fit(random_sets(n_images=2, n_desc=10))


# ------------------------------------------------ sampling, refit per fold
def test_training_sample_is_capped_and_spread_over_images():
    sets = random_sets(n_images=6, n_desc=60)
    enc = BagOfVisualWords(3, max_descriptors=100, random_state=0).fit(sets)
    assert enc.n_training_descriptors_ == 100
    small = [make_set(np.zeros((5, 6)))] + sets[:3]
    enc = BagOfVisualWords(3, max_descriptors=50, random_state=0).fit(small)
    assert enc.n_training_descriptors_ == 50  # 5 from the small image, 15 from each other


@pytest.mark.parametrize("encoding", ["hard", "fisher"])
def test_random_state_determinism(encoding):
    sets = random_sets()
    params = dict(n_words=4, encoding=encoding, max_descriptors=200)
    a = BagOfVisualWords(**params, random_state=3).fit(sets)
    b = BagOfVisualWords(**params, random_state=3).fit(sets)
    c = BagOfVisualWords(**params, random_state=4).fit(sets)
    np.testing.assert_array_equal(a.codebook_, b.codebook_)
    np.testing.assert_array_equal(a.transform(sets), b.transform(sets))
    assert not np.array_equal(a.codebook_, c.codebook_)


def test_codebook_is_refitted_on_each_training_fold_only():
    sets = random_sets(n_images=12, n_desc=40)
    labels = np.arange(12) % 2
    pipe = make_pipeline(
        BagOfVisualWords(4, max_descriptors=300, random_state=0), LogisticRegression()
    )
    result = cross_validate(
        pipe, sets, labels, cv=StratifiedKFold(3), return_estimator=True, return_indices=True
    )
    codebooks = [est[0].codebook_ for est in result["estimator"]]
    for fitted, codebook, train in zip(
        result["estimator"], codebooks, result["indices"]["train"]
    ):
        alone = BagOfVisualWords(4, max_descriptors=300, random_state=0)
        alone.fit([sets[i] for i in train])
        np.testing.assert_array_equal(codebook, alone.codebook_)
        assert fitted[0].n_training_descriptors_ == 300
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.allclose(codebooks[i], codebooks[j])
    whole = BagOfVisualWords(4, max_descriptors=300, random_state=0).fit(sets)
    assert not any(np.allclose(codebook, whole.codebook_) for codebook in codebooks)


# -------------------------------------------- invariances, pickle, clone
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_pickle_round_trip_and_clone(encoding):
    sets = random_sets()
    enc = BagOfVisualWords(
        4, encoding=encoding, pyramid_levels=1, pca_components=3, random_state=0
    ).fit(sets)
    restored = pickle.loads(pickle.dumps(enc))
    np.testing.assert_array_equal(restored.transform(sets), enc.transform(sets))
    refit = clone(enc).fit(sets)
    np.testing.assert_array_equal(refit.transform(sets), enc.transform(sets))
    assert enc.pca_.n_components_ == 3 and enc.codebook_.shape == (4, 3)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_blocks_jobs_and_subsets_give_the_same_rows(encoding):
    sets = random_sets(n_images=10)
    enc = BagOfVisualWords(4, encoding=encoding, pyramid_levels=2, random_state=0).fit(sets)
    reference = enc.transform(sets)
    small_blocks = clone(enc).set_params(batch_size=100, n_jobs=2)
    small_blocks.fit(sets)
    np.testing.assert_allclose(small_blocks.transform(sets), reference, atol=1e-6)
    subset = [7, 2, 5]
    np.testing.assert_allclose(
        enc.transform([sets[i] for i in subset]), reference[subset], atol=1e-6
    )


# ------------------------------------------------------------ bad input
def test_bad_input_errors():
    sets = random_sets(n_images=4)
    enc = BagOfVisualWords(3, random_state=0)
    with pytest.raises(TypeError, match="DenseSIFT"):
        enc.fit(np.zeros((4, 128)))  # forgot the descriptor step
    with pytest.raises(TypeError, match="single DescriptorSet"):
        enc.fit(sets[0])
    with pytest.raises(TypeError, match="item 1 is a ndarray"):
        enc.fit([sets[0], np.zeros((5, 6))])
    with pytest.raises(ValueError, match="empty batch"):
        enc.fit([])
    with pytest.raises(ValueError, match="image 2 has 5-dimensional"):
        enc.fit(sets[:2] + [make_set(np.zeros((10, 5)))])
    with pytest.raises(ValueError, match="n_words"):
        BagOfVisualWords(0).fit(sets)
    with pytest.raises(ValueError, match="encoding"):
        BagOfVisualWords(encoding="sparse").fit(sets)
    with pytest.raises(ValueError, match="pca_components=7"):
        BagOfVisualWords(3, pca_components=7).fit(sets)

    enc.fit(sets)
    with pytest.raises(ValueError, match="image 1 has 5-dimensional"):
        enc.transform([sets[0], make_set(np.zeros((10, 5)))])
    nan = sets[1].descriptors.copy()
    nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="image 1 has NaN"):
        enc.transform([sets[0], make_set(nan)])
    with pytest.raises(ValueError, match="NaN"):
        BagOfVisualWords(3).fit([make_set(nan)])


def test_uint8_descriptors_encode_like_their_float_values():
    sets = random_sets()
    quantised = [
        DescriptorSet(
            np.clip(np.rint(s.descriptors * 40 + 100), 0, 255).astype(np.uint8),
            s.positions, s.scales, s.image_shape,
        )
        for s in sets
    ]
    as_float = [
        DescriptorSet(s.descriptors.astype(np.float32), s.positions, s.scales, s.image_shape)
        for s in quantised
    ]
    for encoding in ("hard", "vlad"):
        enc = BagOfVisualWords(4, encoding=encoding, random_state=0)
        np.testing.assert_allclose(
            enc.fit_transform(quantised), clone(enc).fit_transform(as_float), atol=1e-6
        )


# ------------------------------------------------------------- real data
def test_scene15_subset_is_clearly_above_chance():
    """5 classes x 30 training images of 15-Scene, 20 test images each.

    Scores 0.85 (chance 0.2) in about 2 s on an idle machine.
    """
    from featclf.features import DenseSIFT
    from featclf.io import load_image_folder
    from featclf.pipelines import chi2_svm

    root = shared_path("data", "scene15")
    classes = ["Coast", "Forest", "Highway", "Kitchen", "Suburb"]

    def subset(split, per_class):
        paths, labels, names = load_image_folder(root / split)
        keep = [np.flatnonzero(labels == names.index(c))[:per_class] for c in classes]
        keep = np.concatenate(keep)
        return [paths[i] for i in keep], labels[keep]

    x_train, y_train = subset("train", 30)
    x_test, y_test = subset("test", 20)
    pipe = make_pipeline(
        DenseSIFT(step=8, patch_sizes=(16,)),
        BagOfVisualWords(100, pyramid_levels=1, random_state=0),
        *[step for _, step in chi2_svm(random_state=0)],
    )
    accuracy = np.mean(pipe.fit(x_train, y_train).predict(x_test) == y_test)
    assert accuracy >= 0.7, accuracy  # chance is 0.2


def test_fisher_fits_when_many_descriptors_are_identical():
    # dense SIFT gives the same all-zero descriptor for every flat patch
    sets = random_sets()
    with_zeros = [
        make_set(np.vstack([s.descriptors, np.zeros((40, 6))]), None, (40, 30)) for s in sets
    ]
    enc = BagOfVisualWords(6, encoding="fisher", random_state=0).fit(with_zeros)
    assert (enc.gmm_variances_ > 0).all()
    assert np.isfinite(enc.transform(with_zeros)).all()


# ------------------------------------------------------------ other grids
def test_spatial_grids_hand_computed_hard_histogram():
    # 2 words; 1x1 + 2x2 + 3x1 grids on a 30x30 image (finest grid 6 x 2)
    enc = fitted_with("hard", [[0, 0], [4, 0]], spatial_grids=((1, 1), (2, 2), (3, 1)))
    desc = [[1, 0], [5, 1], [3, -3], [0, 2]]  # words 0, 1, 1, 0
    xy = [[2, 2], [29, 12], [29, 16], [2, 29]]
    # 2x2 cells: 0, 1, 3, 2; 3x1 bands (10 px high): 0, 1, 1, 2
    out = enc.transform([make_set(desc, xy, (30, 30))])[0]
    whole = np.array([2, 2]) / 4
    quads = np.array([[1, 0], [0, 1], [1, 0], [0, 1]]) / 4
    bands = np.array([[1, 0], [0, 2], [1, 0]]) / 4
    expected = np.concatenate([whole, quads.ravel(), bands.ravel()]) / 3
    np.testing.assert_allclose(out, expected, atol=1e-7)
    names = enc.get_feature_names_out()
    assert len(names) == out.shape[0] == 2 * 8
    assert names[0] == "bovw_g1x1_c0_w0" and names[-1] == "bovw_g3x1_c2_w1"


def test_spatial_grids_as_lazebnik_pyramid_match_pyramid_levels_up_to_weights():
    sets = random_sets()
    for encoding in ENCODINGS:
        pyramid = BagOfVisualWords(3, encoding=encoding, pyramid_levels=1, random_state=0)
        grids = clone(pyramid).set_params(pyramid_levels=0, spatial_grids=[[1, 1], [2, 2]])
        a, b = pyramid.fit_transform(sets), grids.fit_transform(sets)
        # L=1 weights are (1/2, 1/2): equal, as spatial_grids' weights
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_spatial_grids_shapes_and_normalisation(encoding):
    sets = random_sets()
    grids = ((1, 1), (2, 2), (3, 1))
    enc = BagOfVisualWords(4, encoding=encoding, spatial_grids=grids, random_state=0)
    out = enc.fit_transform(sets)
    per_cell = {"hard": 4, "soft": 4, "vlad": 4 * 6, "fisher": 2 * 4 * 6}[encoding]
    assert out.shape == (len(sets), 8 * per_cell) and out.dtype == np.float32
    assert enc.n_features_out_ == len(enc.get_feature_names_out()) == out.shape[1]
    edges = np.cumsum([0] + [r * c * per_cell for r, c in grids])
    for start, stop in zip(edges[:-1], edges[1:]):
        part = out[:, start:stop]
        if encoding in ("hard", "soft"):
            np.testing.assert_allclose(part.sum(axis=1), 1 / 3, rtol=1e-5)
        else:
            np.testing.assert_allclose(np.linalg.norm(part, axis=1), 1 / math.sqrt(3), rtol=1e-5)


@pytest.mark.parametrize(
    "grids, match",
    [(((1, 1), (2, 0)), "positive integers"), (((1, 1, 1),), "pairs"), ((), "at least one")],
)
def test_bad_spatial_grids_are_errors(grids, match):
    with pytest.raises(ValueError, match=match):
        BagOfVisualWords(3, spatial_grids=grids).fit(random_sets())
    with pytest.raises(ValueError, match="not both"):
        BagOfVisualWords(3, pyramid_levels=1, spatial_grids=((1, 1),)).fit(random_sets())


# ----------------------------------------------------------------- RootSIFT
def test_root_sift_maps_descriptors_before_the_vocabulary():
    from featclf.features.sift import root_sift

    rng = np.random.default_rng(0)
    sets = [
        make_set(rng.integers(0, 256, (40, 8)).astype(np.uint8), None, (32, 32))
        for _ in range(6)
    ]
    rooted = [
        DescriptorSet(root_sift(s.descriptors), s.positions, s.scales, s.image_shape)
        for s in sets
    ]
    for encoding in ("hard", "fisher"):
        enc = BagOfVisualWords(3, encoding=encoding, root_sift=True, random_state=0)
        plain = BagOfVisualWords(3, encoding=encoding, random_state=0)
        np.testing.assert_allclose(
            enc.fit_transform(sets), plain.fit_transform(rooted), atol=1e-5
        )
        # RootSIFT vectors have unit L2 norm, so the vocabulary lies near the sphere
        assert np.linalg.norm(enc.codebook_, axis=1).max() <= 1 + 1e-5


def test_root_sift_refuses_negative_descriptors():
    sets = random_sets()  # centred Gaussian noise: negative entries
    with pytest.raises(ValueError, match="non-negative"):
        BagOfVisualWords(3, root_sift=True).fit(sets)
    positive = [make_set(np.abs(s.descriptors), s.positions, s.image_shape) for s in sets]
    enc = BagOfVisualWords(3, root_sift=True, random_state=0).fit(positive)
    with pytest.raises(ValueError, match="image 1 has negative"):
        enc.transform([positive[0], sets[0]])


# ------------------------------------------------------------ Lloyd k-means
def _distortion(enc, sets):
    desc = np.concatenate([s.descriptors for s in sets]).astype(np.float64)
    sq = ((desc[:, None, :] - enc.codebook_[None].astype(np.float64)) ** 2).sum(axis=2)
    return sq.min(axis=1).mean()


def test_lloyd_iterations_lower_the_distortion_monotonically():
    sets = random_sets(n_images=6, n_desc=80)
    fits = {
        iterations: BagOfVisualWords(
            8, lloyd_iterations=iterations, random_state=0
        ).fit(sets)
        for iterations in (1, 3, 50)
    }
    distortion = {key: _distortion(enc, sets) for key, enc in fits.items()}
    # same seed, same k-means++ start: Lloyd iterations never increase it
    assert distortion[50] <= distortion[3] + 1e-9 <= distortion[1] + 2e-9
    assert distortion[50] < distortion[1]
    minibatch = BagOfVisualWords(8, random_state=0).fit(sets)
    assert distortion[50] <= _distortion(minibatch, sets) + 1e-9
    assert fits[50].transform(sets).shape == minibatch.transform(sets).shape == (6, 8)
