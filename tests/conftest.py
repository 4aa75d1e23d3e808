"""Shared fixtures. tests/ mirrors the package: tests/core, tests/methods, tests/experiments/<folder>,
tests/figures and tests/grader hold the tests of those modules; the files at this level test
the repository as a whole (architecture, notebooks, site, docs)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))      # browser_support, for any folder


@pytest.fixture(scope="session")
def cpu_base():
    """The cached SFT base of the cpu preset (trained on first use, ~30 s)."""
    from refimpl.core.sft import load_base
    return load_base("cpu", progress=False)
