"""Test set-up: 8 simulated CPU devices, no GPUs, quiet TensorFlow, a compilation cache.

The device count must be fixed before jax starts its backend, so it is set here,
at import time, before any test module imports jax.
"""

import os
import shutil
import tempfile

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# One persistent XLA compilation cache per test run, shared by the pytest workers and the
# processes the tests launch (a resumed run compiles the steps its killed twin compiled):
# fresh for every run, so a run's time never depends on an earlier one.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
_CACHE = os.path.join(tempfile.gettempdir(), f"pretrain_lm_tests_xla_{_RUN}")
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def repo_root() -> str:
    return REPO_ROOT


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The run's compilation cache goes when the run ends (by the controller, not a worker)."""
    if _OWN_CACHE and not hasattr(session.config, "workerinput"):
        shutil.rmtree(_CACHE, ignore_errors=True)
