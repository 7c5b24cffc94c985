import subprocess
import sys

import pytest

from featclf.cli import main
from featclf.testing import write_images


def test_default_runs_on_digits(capsys):
    assert main(["-p", "color-linsvm"]) == 0
    out = capsys.readouterr().out
    assert "scikit-learn digits" in out and "accuracy:" in out and "confusion matrix" in out


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "train" in capsys.readouterr().out


def test_list_pipelines(capsys):
    assert main(["train", "--list"]) == 0
    assert "hog-linsvm" in capsys.readouterr().out.split()


def test_folder_split(tmp_path, rgb_images, capsys):
    for k, name in enumerate(["a", "b"]):
        (tmp_path / name).mkdir()
        write_images(list(rgb_images) * 2, tmp_path / name)
    assert main(["train", "-p", "color-linsvm", "--data", str(tmp_path),
                 "--test-size", "0.5"]) == 0
    assert "16 train / 16 test" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [(["--data", "/nonexistent/folder"], "does not exist"),
     (["--data", "missing.npz"], "does not exist"),
     (["-p", "hogg-linsvm"], "did you mean 'hog'")],
)
def test_errors_exit_nonzero_with_a_message(args, message, capsys):
    assert main(["train"] + args) == 1
    assert message in capsys.readouterr().err


def test_python_m_featclf_version():
    result = subprocess.run([sys.executable, "-m", "featclf", "--version"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("featclf ")
