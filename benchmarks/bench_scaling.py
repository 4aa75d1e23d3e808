"""How refimpl's lead over TRL 1.16 and each one's share of its compute floor move with size.

    python benchmarks/bench_scaling.py --threads 1 --clock cpu --repeats 3   # the grid below
    python benchmarks/bench_scaling.py --tiny                                # smoke test (tests/)
    python benchmarks/bench_scaling.py --replot grpo.json dpo.json           # figure of saved runs
    python benchmarks/bench_scaling.py --only grpo --widths 512 --lengths 32 # one point of the grid

Grid: GRPO at model widths 128, 256, 512 (4 layers, one head per 32 channels: 0.8M, 3.2M and
12.6M parameters) x completion lengths 4, 16, 32 new tokens (8 prompts x 8 completions,
2-digit addition, a random model, so most completions run to the length limit); DPO at the
same widths x pair lengths of 2-, 4- and 6-digit addition answers (64 pairs, reference
precomputed). Each point is one call of ``bench_vs_trl.main``: TRL and refimpl alternate step
by step in one process (``--repeats`` timed steps each after a dropped warm-up), so a change in
the machine's load hits both alike; the floor is that script's (matmul FLOPs at this machine's
measured matmul rate for the same shapes, each implementation against the work it does).

Printed per point: throughput of both, the ratio refimpl / TRL, each one's share of its own
floor and the peak resident memory of a step above its start (``bench_vs_trl.PeakRSS``); the
figure (``--plot``, default ``docs/scaling.png``, where docs/PERFORMANCE.md shows it) draws the ratio and the floor shares
against size. Figures, not assertions.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_vs_trl  # noqa: E402

GRID = {"grpo": {"widths": (128, 256, 512), "lengths": (4, 16, 32)},   # new tokens
        "dpo": {"widths": (128, 256, 512), "lengths": (2, 4, 6)}}       # answer digits (1-6)
TINY = {"grpo": {"widths": (32,), "lengths": (2, 4)}, "dpo": {"widths": (32,), "lengths": (2, 3)}}


def point(method: str, width: int, length: int, args) -> dict:
    """One grid point through ``bench_vs_trl.main``; its printout is kept out of the table."""
    argv = ["--only", method, "--repeats", str(args.repeats), "--threads", str(args.threads),
            "--clock", args.clock, "--width", str(width), "--layers", str(args.layers)]
    argv += ["--max-new", str(length)] if method == "grpo" else ["--digits", str(length)]
    if args.tiny:
        argv += ["--layers", "1", "--prompts", "2", "--group", "2", "--pairs", "4"]
    if args.no_trl:
        argv.append("--no-trl")
    with contextlib.redirect_stdout(io.StringIO()):
        res = bench_vs_trl.main(argv)[method]
    out = {"method": method, "width": width, "length": length, "per_s": res["per_s"],
           "floor": res["floor_reached"], "peak_mb": res["peak_mb"], "unit": res["unit"]}
    if "trl" in res["per_s"]:
        out["ratio"] = res["per_s"]["refimpl"] / res["per_s"]["trl"]
    return out


def row_text(r: dict) -> str:
    both = "trl" in r["per_s"]
    mb = lambda n: "n/a" if r["peak_mb"].get(n) is None else f"{r['peak_mb'][n]:.0f}"  # noqa: E731
    cells = [f"{r['method']:<5}", f"{r['width']:>5}", f"{r['length']:>4}",
             f"{r['per_s']['refimpl']:>9.0f}", f"{r['per_s']['trl']:>9.0f}" if both else f"{'-':>9}",
             f"{r['ratio']:>6.2f}x" if both else f"{'-':>7}",
             f"{r['floor']['refimpl']:>7.0%}", f"{r['floor']['trl']:>7.0%}" if both else f"{'-':>7}",
             f"{mb('refimpl'):>7}", f"{mb('trl'):>7}"]
    return " ".join(cells)


HEADER = ("meth. width  len refimpl/s     TRL/s   ratio  ref.fl  TRL fl  ref.MiB TRL MiB\n"
          "(len: GRPO new tokens, DPO answer digits; /s: completions or pairs; fl: share of floor)")


def plot(rows, path):
    """Ratio (left) and share of own floor (right) against width, one line per length."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method, mark in (("grpo", "o"), ("dpo", "s")):
        for length in sorted({r["length"] for r in rows if r["method"] == method}):
            pts = [r for r in rows if r["method"] == method and r["length"] == length]
            ws = [r["width"] for r in pts]
            lab = f"{method.upper()} {length} {'tokens' if method == 'grpo' else 'digits'}"
            if all("ratio" in r for r in pts):
                axes[0].plot(ws, [r["ratio"] for r in pts], marker=mark, label=lab)
            line, = axes[1].plot(ws, [r["floor"]["refimpl"] for r in pts], marker=mark, label=lab)
            if all("trl" in r["floor"] for r in pts):
                axes[1].plot(ws, [r["floor"]["trl"] for r in pts], marker=mark, ls=":",
                             color=line.get_color())
    axes[0].axhline(2.0, color="grey", lw=0.8, ls="--")
    axes[0].set(xscale="log", xlabel="model width (4 layers)", ylabel="refimpl / TRL throughput",
                title="refimpl's lead (dashed: 2x)")
    axes[1].set(xscale="log", xlabel="model width (4 layers)", ylabel="share of own compute floor",
                title="floor share (solid refimpl, dotted TRL)")
    widths = sorted({r["width"] for r in rows})
    for ax in axes:
        ax.set_xticks(widths, [str(w) for w in widths], minor=False)
        ax.minorticks_off()
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--only", choices=("grpo", "dpo"), default=None)
    ap.add_argument("--no-trl", action="store_true")
    ap.add_argument("--widths", type=int, nargs="+", default=None, help="only these widths of the grid")
    ap.add_argument("--lengths", type=int, nargs="+", default=None, help="only these lengths of the grid")
    ap.add_argument("--tiny", action="store_true", help="1 layer x 32 wide, two short points each")
    ap.add_argument("--plot", default=str(Path(__file__).resolve().parent.parent / "docs" / "scaling.png"))
    ap.add_argument("--json", default=None, help="write the rows to this file")
    ap.add_argument("--replot", nargs="+", default=None, metavar="JSON",
                    help="draw the figure from rows saved with --json (several runs: joined)")
    args = ap.parse_args(argv)
    if args.replot:
        rows = [r for f in args.replot for r in json.loads(Path(f).read_text())]
        plot(rows, args.plot)
        print(f"figure: {args.plot}")
        return rows
    grid = TINY if args.tiny else GRID
    print(HEADER, flush=True)
    rows = []
    for method in ("grpo", "dpo"):
        if args.only in (None, method):
            for w in args.widths or grid[method]["widths"]:
                for n in args.lengths or grid[method]["lengths"]:
                    rows.append(point(method, w, n, args))
                    print(row_text(rows[-1]), flush=True)
    if args.plot:
        plot(rows, args.plot)
        print(f"figure: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
