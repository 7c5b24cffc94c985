"""Shared fixtures: small real images, and the path to ../shared data."""

from pathlib import Path

import numpy as np
import pytest
from skimage import data

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


def shared_path(*parts):
    """Return a path under ../shared, skipping the test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it lives in ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def rgb_images():
    """Eight 48x40 RGB uint8 crops of real photos (astronaut, chelsea, coffee)."""
    crops = []
    for image in (data.astronaut(), data.chelsea(), data.coffee()):
        for top, left in ((60, 80), (150, 200), (30, 250)):
            crops.append(image[top:top + 48, left:left + 40])
    return np.stack(crops[:8])


@pytest.fixture(scope="session")
def gray_images(rgb_images):
    """The RGB crops converted to gray uint8."""
    from featclf.preprocessing import to_gray

    return np.stack([to_gray(image) for image in rgb_images])


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    """Run the suite with one BLAS / OpenMP thread.

    The tests fit tiny models, where thread start-up costs more than the
    work; on a busy 2-core machine oversubscribed BLAS threads made small
    k-means fits about 200x slower. featclf's own n_jobs tests use joblib
    workers, which this does not limit.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
