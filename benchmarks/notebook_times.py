"""Wall time of every course notebook, executed from a fresh kernel.

    python benchmarks/notebook_times.py [--notebooks 00 08] [--timeout 600] [--json times.json]

Each notebook (notebooks/0*.ipynb, or those whose names start with the given prefixes) runs
top to bottom with nbclient in a new kernel, one at a time, in memory: the committed file is
not rewritten. The wall time counts the kernel's start and every cell. Prints one row per
notebook (seconds, code cells, whether it ran without error), the total, the machine (CPU
model, logical cores, load average at the start) and the torch thread count the kernels use
(``REFIMPL_NUM_THREADS``, default 1). Figures, not assertions: the course's budget is 60 s per
notebook on a quiet 2-core CPU, and a busy machine shows more; the load average says how busy.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 60


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: CPU model, logical cores, load average, the kernels' torch threads, Python."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    threads = os.environ.get("REFIMPL_NUM_THREADS", "1")
    return (f"{cpu_model()}, {os.cpu_count()} logical cores, load average {load} at start, "
            f"torch threads per kernel {threads} (REFIMPL_NUM_THREADS), Python {platform.python_version()}")


def run_notebook(path: Path, timeout: int) -> dict:
    """Execute ``path`` in a fresh kernel (cwd: its folder); returns name, seconds, cells, ok."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start, error = time.perf_counter(), ""
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1][:120]
    except TimeoutError as err:
        error = f"timeout: {err}"[:120]
    seconds = time.perf_counter() - start
    code = sum(c.cell_type == "code" for c in nb.cells)
    return {"notebook": path.stem, "seconds": seconds, "code_cells": code, "ok": not error,
            "error": error}


def table(rows: list[dict]) -> str:
    """The rows as an aligned table with the total."""
    width = max(len(r["notebook"]) for r in rows)
    lines = [f"{'notebook':<{width}}  {'wall s':>7}  {'cells':>5}  {'ran':>3}  over {BUDGET_S} s"]
    for r in rows:
        over = "yes" if r["seconds"] > BUDGET_S else ""
        lines.append(f"{r['notebook']:<{width}}  {r['seconds']:>7.1f}  {r['code_cells']:>5}  "
                     f"{'ok' if r['ok'] else 'ERR':>3}  {over}")
    lines.append(f"{'total':<{width}}  {sum(r['seconds'] for r in rows):>7.1f}")
    return "\n".join(lines + [f"{r['notebook']}: {r['error']}" for r in rows if not r["ok"]])


def select(prefixes: list[str] | None) -> list[Path]:
    """The course notebooks, or those whose file names start with one of ``prefixes``."""
    paths = sorted((ROOT / "notebooks").glob("0*.ipynb"))
    if prefixes:
        paths = [p for p in paths if any(p.name.startswith(x) for x in prefixes)]
    if not paths:
        raise SystemExit(f"no notebook matches {prefixes}")
    return paths


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notebooks", nargs="*", help="file-name prefixes, e.g. 00 03a 08")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    paths = select(args.notebooks)
    where = machine()
    print(where, flush=True)
    rows = []
    for path in paths:
        rows.append(run_notebook(path, args.timeout))
        print(f"  {path.stem}: {rows[-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": where, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
