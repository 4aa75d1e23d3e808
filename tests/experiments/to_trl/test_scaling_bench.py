"""The scaling benchmark's --tiny grid runs end to end and reports consistent figures
(figures only: nothing here asserts a speed)."""
import importlib.util
from pathlib import Path

import pytest

from refimpl.experiments.to_trl import trl_bridge

ROOT = Path(__file__).resolve().parents[3]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scaling_benchmark_tiny_grid(tmp_path, capsys):
    bench = load("bench_scaling")
    png = tmp_path / "scaling.png"
    rows = bench.main(["--tiny", "--repeats", "1", "--plot", str(png)])
    out = capsys.readouterr().out
    with_trl = trl_bridge.trl_available()
    grid = [(m, w, n) for m, g in bench.TINY.items() for w in g["widths"] for n in g["lengths"]]
    assert [(r["method"], r["width"], r["length"]) for r in rows] == grid
    for r in rows:
        impls = {"refimpl", "trl"} if with_trl else {"refimpl"}
        assert set(r["per_s"]) == set(r["floor"]) == impls and all(v > 0 for v in r["per_s"].values())
        assert all(0 < v for v in r["floor"].values())
        if with_trl:
            assert r["ratio"] == pytest.approx(r["per_s"]["refimpl"] / r["per_s"]["trl"])
        assert bench.row_text(r) in out                     # every point is printed
    assert png.stat().st_size > 0


def test_peak_rss_sees_an_allocation():
    """PeakRSS reports at least the bytes a watched block touches (here 64 MiB)."""
    import torch
    mem = load("bench_vs_trl").PeakRSS()
    if not mem.ok:
        pytest.skip("no /proc/self/statm on this system")
    mem.start()
    x = torch.ones(16 * 2**20)                              # 64 MiB, every page written
    assert mem.stop() >= 60 and x.sum() == 16 * 2**20
