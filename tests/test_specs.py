"""Pipeline spec loading (featclf.specs): building, grids, and clear errors."""

import textwrap
import tomllib
from pathlib import Path

import pytest
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from featclf.preprocessing import ColorSpace, Grayscale, Resize
from featclf.pipelines import make_named_pipeline, pipeline_names
from featclf.specs import SpecError, describe_pipeline, load_spec, parse_spec, spec_paths

EXPLICIT = """\
description = "test spec"

[[steps]]
class = "Resize"
size = [16, 16]

[[steps]]
name = "features"
union = ["gray", "hsv"]

[[branches.gray]]
class = "Grayscale"

[[branches.hsv]]
class = "ColorSpace"
space = "hsv"

[[steps]]
name = "svm"
class = "LinearSVC"
C = 0.5

[grid]
C = [0.1, 1.0]
"resize__size" = [[8, 8], [16, 16]]
"""


def write(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_explicit_spec_builds_pipeline_and_grid(tmp_path):
    spec = load_spec(write(tmp_path, EXPLICIT))
    assert spec.name == "spec" and spec.description == "test spec"
    steps = spec.pipeline.steps
    assert [name for name, _ in steps] == ["resize", "features", "svm"]
    assert isinstance(steps[0][1], Resize) and steps[0][1].size == (16, 16)
    union = steps[1][1]
    assert isinstance(union, FeatureUnion)
    assert isinstance(union.transformer_list[0][1], Grayscale)
    assert isinstance(union.transformer_list[1][1], ColorSpace)
    assert isinstance(steps[2][1], LinearSVC) and steps[2][1].C == 0.5
    assert steps[2][1].random_state == 0
    assert spec.param_grid == {"svm__C": [0.1, 1.0], "resize__size": [(8, 8), (16, 16)]}
    assert spec.n_candidates() == 4


def test_fingerprint_depends_on_content_not_formatting(tmp_path):
    first = load_spec(write(tmp_path, EXPLICIT, "a.toml"))
    spaced = load_spec(write(tmp_path, "# comment\n" + EXPLICIT.replace(" = ", "=  "), "b.toml"))
    changed = load_spec(write(tmp_path, EXPLICIT.replace("C = 0.5", "C = 2.0"), "c.toml"))
    assert first.fingerprint == spaced.fingerprint
    assert first.fingerprint != changed.fingerprint


def test_params_table_sets_step_parameters(tmp_path):
    spec = load_spec(write(tmp_path, EXPLICIT.replace(
        "[grid]", "[params]\n\"features__hsv__space\" = \"lab\"\n\n[grid]")))
    assert spec.pipeline.get_params()["features__hsv__space"] == "lab"


def test_random_search_distributions(tmp_path):
    spec = load_spec(write(tmp_path, EXPLICIT.replace(
        "C = [0.1, 1.0]", "C = { loguniform = [0.001, 10.0] }")))
    assert spec.is_random_only
    assert 0.001 <= spec.param_grid["svm__C"].rvs(random_state=0) <= 10.0


@pytest.mark.parametrize("old, new, message", [
    ('class = "LinearSVC"', 'class = "LinearSVM"',
     "unknown step class 'LinearSVM' (did you mean 'LinearSVC'?)"),
    ("size = [16, 16]", "sise = [16, 16]",
     "unknown parameter 'sise' (did you mean 'size'?)"),
    ("C = [0.1, 1.0]", "Cc = [0.1, 1.0]",
     "[grid] unknown parameter 'Cc' (did you mean 'C'?)"),
    ("C = [0.1, 1.0]", 'C = [0.1, "big"]',
     "[grid] C = \"big\": invalid value: The 'C' parameter of LinearSVC"),
    ("C = 0.5", "C = -1.0", "C = -1.0: invalid value"),
    ("C = [0.1, 1.0]", "C = []", "[grid] C is an empty list"),
    ("C = [0.1, 1.0]", "C = 1.0", "[grid] C must be a list of values"),
    ('union = ["gray", "hsv"]', 'union = ["grey", "hsv"]',
     "unknown branch 'grey' (did you mean 'gray'?)"),
    ('description = "test spec"', 'descripton = "x"',
     "unknown key 'descripton' (did you mean 'description'?)"),
    ('space = "hsv"', 'space = "hsx"', "invalid value"),
])
def test_invalid_spec_errors_name_the_problem(tmp_path, old, new, message):
    assert old in EXPLICIT
    path = write(tmp_path, EXPLICIT.replace(old, new))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_empty_grid_is_an_error(tmp_path):
    text = EXPLICIT.split("[grid]")[0] + "[grid]\n"
    with pytest.raises(SpecError, match=r"\[grid\] table is missing or empty"):
        load_spec(write(tmp_path, text))


def test_ambiguous_short_name_lists_the_candidates():
    data = {
        "steps": [{"class": "Resize"}, {"name": "svm", "class": "SVC"}],
        "grid": {"n_jobs": [1]},
    }
    data["steps"].insert(1, {"class": "Grayscale"})
    with pytest.raises(SpecError, match="ambiguous.*grayscale__n_jobs.*resize__n_jobs"):
        parse_spec(data)


def test_toml_syntax_error_gives_file_and_line(tmp_path):
    path = write(tmp_path, EXPLICIT.replace("[grid]", "[grid"))
    with pytest.raises(SpecError, match=r"spec.toml: TOML syntax error: .*line 23, column 6"):
        load_spec(path)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.toml")


def test_steps_or_pipeline_exactly_one():
    with pytest.raises(SpecError, match="exactly one of"):
        parse_spec({"grid": {"C": [1.0]}})


def test_pipeline_is_a_real_sklearn_pipeline(tmp_path):
    spec = load_spec(write(tmp_path, EXPLICIT))
    assert isinstance(spec.pipeline, Pipeline)
    spec.pipeline.set_params(**{k: v[0] for k, v in spec.param_grid.items()})


# ------------------------------------------------------------ shipped specs

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "pipelines"


def test_every_named_pipeline_has_a_spec():
    shipped = {path.stem for path in spec_paths(SHIPPED_DIR)}
    missing = sorted(set(pipeline_names()) - shipped)
    assert not missing, (
        f"named pipelines without a spec in pipelines/: {missing}; add "
        "pipelines/<name>.toml with 'pipeline = \"<name>\"' and a [grid]")


@pytest.mark.parametrize("path", spec_paths(SHIPPED_DIR), ids=lambda p: p.stem)
def test_shipped_spec_is_its_named_pipeline(path):
    data = tomllib.loads(path.read_text())
    assert data.get("pipeline") == path.stem, "a shipped spec names its own pipeline"
    assert "params" not in data, "shipped specs keep the named pipeline's defaults"
    try:
        spec = load_spec(path)
    except SpecError as exc:
        if "cannot be imported" in str(exc):
            pytest.skip(str(exc))
        raise
    assert spec.description
    named = make_named_pipeline(path.stem, random_state=0)
    assert describe_pipeline(spec.pipeline) == describe_pipeline(named)
    assert spec.n_candidates() >= 2
