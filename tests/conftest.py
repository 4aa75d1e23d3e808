import pytest


@pytest.fixture(scope="session")
def cpu_base():
    """The cached SFT base of the cpu preset (trained on first use, ~30 s)."""
    from refimpl.core.sft import load_base
    return load_base("cpu", progress=False)
