"""Shared fixtures: where the reference material lives, and how its absence is reported.

The golden fixtures (outputs of the real Caffe) live in ``../shared/caffe-golden``
beside the project. In CI (``REPRODUCE_REQUIRE_GOLDEN=1`` or ``CI=true``) their
absence is a failure; on a user's machine the tests that need them skip and say why.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
GOLDEN = SHARED / "caffe-golden"
UPSTREAM = SHARED / "fcn-upstream"
VOC_NETS = ("voc-fcn32s", "voc-fcn16s", "voc-fcn8s", "voc-fcn8s-atonce", "voc-fcn-alexnet")


def _golden_required() -> bool:
    return os.environ.get("REPRODUCE_REQUIRE_GOLDEN") == "1" or os.environ.get("CI") == "true"


def require_shared(path: Path) -> Path:
    """Return ``path`` if it exists; otherwise fail (CI) or skip (user machine) with the reason."""
    if path.exists():
        return path
    msg = (f"reference material missing: {path} (the golden fixtures and upstream files "
           f"are expected in ../shared beside the project)")
    if _golden_required():
        pytest.fail(msg + " — required in CI", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def golden() -> Path:
    return require_shared(GOLDEN)


@pytest.fixture(scope="session")
def upstream() -> Path:
    return require_shared(UPSTREAM)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true",
                     help="also run the tests marked slow (minutes each on a CPU)")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run with ``--run-slow`` (or REPRODUCE_RUN_SLOW=1) only."""
    if config.getoption("--run-slow") or os.environ.get("REPRODUCE_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (or REPRODUCE_RUN_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
