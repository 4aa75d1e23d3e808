"""TRL's GRPO and DPO trainers data-parallel over two CPU processes (accelerate, gloo).

``benchmarks/trl_multiprocess.py`` trains two steps under ``accelerate launch
--num_processes 2`` and once in this process with the same global batch (16 completions or
pairs; 8 per process). Checked: the run really had two gloo ranks, both ranks end with
bit-identical parameters (DDP's all-reduce keeps the replicas equal), and the logged loss
and gradient norm of every step and the final parameters equal the one-process run. The
tolerance is float32 rounding of a different reduction order (sums over 8 + 8 rows instead
of 16): 1e-5 relative on the loss and gradient norm; 1e-4 absolute on the parameters, since
AdamW's first steps are about lr * sign(g) = 1e-2 and a gradient entry near 0 may round to a
slightly different update.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from refimpl.experiments.to_trl import trl_bridge

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "benchmarks" / "trl_multiprocess.py"
pytestmark = pytest.mark.skipif(not trl_bridge.trl_available(),
                                reason=f"TRL {trl_bridge.TRL_SERIES}.x and accelerate not installed: "
                                       f"{trl_bridge.INSTALL_HINT}")
METHODS = ("grpo", "dpo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"two": {method: [rank0, rank1]}, "one": {method: rank0}} of the saved results."""
    out = tmp_path_factory.mktemp("multiprocess")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--num_cpu_threads_per_process", "1", "--main_process_port", str(free_port()),
           str(SCRIPT), "--method", *METHODS, "--steps", "2", "--out", str(out / "two")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sys.path.insert(0, str(SCRIPT.parent))
    import trl_multiprocess
    trl_multiprocess.main(["--method", *METHODS, "--steps", "2", "--out", str(out / "one")])
    load = lambda *p: torch.load(out.joinpath(*p), weights_only=False)  # noqa: E731
    return {"two": {m: [load("two", m, f"rank{r}.pt") for r in (0, 1)] for m in METHODS},
            "one": {m: load("one", m, "rank0.pt") for m in METHODS}}


@pytest.mark.parametrize("method", METHODS)
def test_two_gloo_ranks_hold_identical_parameters(runs, method):
    r0, r1 = runs["two"][method]
    assert (r0["world"], r1["world"]) == (2, 2) and r0["backend"] == r1["backend"] == "gloo"
    assert r0["params"].keys() == r1["params"].keys()
    for name, p in r0["params"].items():
        assert torch.equal(p, r1["params"][name]), name


@pytest.mark.parametrize("method", METHODS)
def test_two_processes_take_the_one_process_steps(runs, method):
    two, one = runs["two"][method][0], runs["one"][method]
    assert one["world"] == 1 and len(two["logs"]) == len(one["logs"]) == 2
    for a, b in zip(two["logs"], one["logs"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-7)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    for name, p in two["params"].items():
        torch.testing.assert_close(p, one["params"][name], rtol=0, atol=1e-4)
    assert two["logs"][0]["grad_norm"] > 0      # the steps did change the parameters
