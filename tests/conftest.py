"""Shared fixtures: an isolated cache and Keras home, and the backends available here."""

import os
import tempfile

import pytest

# Keras writes ~/.keras/keras.json at import; keep tests off the user's files.
_KERAS_HOME = tempfile.mkdtemp(prefix="approxsim-keras-")
os.environ.setdefault("KERAS_HOME", _KERAS_HOME)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One table cache for the whole session, away from ~/.cache (tests that check
# persistence across processes pass it on to their subprocesses).
os.environ["APPROXSIM_CACHE"] = tempfile.mkdtemp(prefix="approxsim-cache-")

from approxsim.backends import BACKEND_NAMES, backend_status  # noqa: E402

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


def _backend_params():
    params = []
    for name in BACKEND_NAMES:
        ok, reason = backend_status(name)
        marks = [] if ok else [pytest.mark.skip(reason=f"backend {name!r} not usable here: {reason}")]
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_backend_params())
def backend(request):
    """Each backend usable here; the others are reported as skipped, with the reason."""
    return request.param


@pytest.fixture(params=[p for p in _backend_params() if p.values[0] != "reference"])
def fast_backend(request):
    """Each backend other than the reference (to be compared against it)."""
    return request.param


@pytest.fixture
def shared_dir():
    """../shared beside the checkout (DESIGN.md, MNIST, ApproxTrain tables); skips if absent."""
    path = os.path.abspath(SHARED)
    if not os.path.isdir(path):
        pytest.skip("../shared is not beside this checkout")
    return path
