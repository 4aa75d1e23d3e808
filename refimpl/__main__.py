"""Command line: ``python -m refimpl compare ...`` runs the head-to-head study (refimpl.experiments.head_to_head.compare);
``python -m refimpl study ...`` runs the declared claim experiments (refimpl.experiments.claims_study.study);
``python -m refimpl clinic ...`` runs the run clinic's cases broken and fixed (refimpl.experiments.debugging.clinic).

    python -m refimpl compare                          # cpu preset, 1,280 completions per run, seeds 0-4
    python -m refimpl compare --methods dpo,rpo,grpo --seeds 0,1,2 --budget-samples 2560
    python -m refimpl compare --budget-s 30            # equal training wall time instead
    python -m refimpl compare --preset gpu --out runs/compare-gpu   # CUDA, larger model
    python -m refimpl compare --preset tiny --out /tmp/cmp          # seconds, for tests

    python -m refimpl study                            # every declared claim: 3 or 5 bases x 5 seeds
    python -m refimpl study --claims C17 --quick       # 2 bases x 2 seeds, no tuning (minutes)
    python -m refimpl study --jobs 2                   # two claims at a time (one per core)

    python -m refimpl clinic                           # every clinic case, broken and fixed, seed 0
    python -m refimpl clinic --cases grpo_loss_zero,detached_ratio --seed 1 --out /tmp/clinic

``compare`` writes results.csv, results.json and acc_vs_{progress,time,flops}.png to --out and
prints the table and its wall time; ``study`` writes one JSON record per claim to --out (default
results/study, or runs/study-quick with --quick) and prints each verdict with its interval; ``clinic`` writes
<case>.json and <case>.png per case to --out (default results/clinic), prints a line per case
and exits with status 1 if a case did not reproduce. Bad arguments exit with status 2 and a
message naming the problem.
"""
from __future__ import annotations

# The refimpl modules are imported inside the functions that need them, so that the parser
# (and its errors for bad arguments) answers without first loading torch and the trainers.
import argparse
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def _methods(text: str) -> tuple:
    from refimpl.methods.registry import METHODS
    names = tuple(t.strip().lower() for t in text.split(",") if t.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one method, e.g. dpo,grpo")
    bad = [n for n in names if n not in METHODS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown method {', '.join(repr(b) for b in bad)}: choose from {', '.join(METHODS)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a method is listed twice in {text!r}")
    return names


def _seeds(text: str) -> tuple:
    try:
        seeds = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas, got {text!r}")
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed, e.g. 0,1")
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be distinct and >= 0, got {text!r}")
    return seeds


def _positive(kind):
    what = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if not (math.isfinite(v) and v > 0):
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v
    return parse


def build_parser() -> argparse.ArgumentParser:
    from refimpl.core.utils import PRESETS
    from refimpl.experiments.head_to_head.compare import DEFAULT_METHODS, PRESET_DEFAULTS
    from refimpl.methods.registry import METHODS

    parser = argparse.ArgumentParser(prog="python -m refimpl",
                                     description="Experiments of the DPO vs GRPO vs verifier-RL curriculum.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    p = sub.add_parser("compare", help="head-to-head: one base, one budget, every method",
                       description="Train DPO, GRPO, REINFORCE and PPO from the same SFT base with "
                                   "the same budget; write a results table and figures.")
    p.add_argument("--methods", type=_methods, default=DEFAULT_METHODS,
                   help=f"comma-separated, from {','.join(METHODS)} (default {','.join(DEFAULT_METHODS)})")
    p.add_argument("--seeds", type=_seeds, default=None,
                   help="comma-separated seeds (default: the preset's, "
                        f"{','.join(map(str, PRESET_DEFAULTS['cpu']['seeds']))} on cpu: "
                        "enough for a 95%% t interval over seeds)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-s", type=_positive(float), default=None,
                        help="equal training wall time per run, in seconds, instead of samples")
    budget.add_argument("--budget-samples", type=_positive(int), default=None,
                        help="equal number of generated completions per run (default: the preset's, "
                             f"{PRESET_DEFAULTS['cpu']['budget_samples']:,} on cpu)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu",
                   help="model and study size: cpu (default), gpu (CUDA, larger), tiny (tests)")
    p.add_argument("--eval-problems", type=_positive(int), default=None,
                   help="held-out problems for accuracy (default: the preset's)")
    p.add_argument("--threads", type=_positive(int), default=None,
                   help="torch CPU threads (default 1 on the cpu and tiny presets: the models are "
                        "tiny and extra threads cost more than they save on a shared machine)")
    p.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _study_parser(sub)
    _clinic_parser(sub)
    return parser


def _claims(text: str) -> tuple:
    from refimpl.experiments.claims_study.study import CLAIMS
    by_upper = {c.upper(): c for c in CLAIMS}            # c11b, C11B and C11b name one claim
    ids = tuple(by_upper.get(t.strip().upper(), t.strip()) for t in text.split(",") if t.strip())
    bad = [c for c in ids if c not in CLAIMS]
    if bad or not ids:
        raise argparse.ArgumentTypeError(f"unknown claim(s) {bad or '(none given)'}: "
                                         f"declared are {', '.join(CLAIMS)}")
    return ids


def _whole(option: str, minimum: int):
    """An argparse type: a whole number >= ``minimum``, or an error naming ``option``."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = minimum - 1
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{option} must be a whole number >= {minimum}, "
                                             f"got {text!r}")
        return n
    return parse


_jobs = _whole("--jobs", 1)


def _study_parser(sub) -> None:
    from refimpl.experiments.claims_study.study import CLAIMS
    p = sub.add_parser("study", help="the declared claim experiments: bases x seeds, tuned, paired",
                       description="Run each claim's declared experiment over several base "
                                   "policies and run seeds, with learning rates tuned on a "
                                   "validation split, and write one record per claim. Finished "
                                   "runs are stored under --runs, so a killed study resumes.")
    p.add_argument("--claims", type=_claims, default=tuple(CLAIMS),
                   help=f"comma-separated claim ids (default: all declared, {','.join(CLAIMS)})")
    p.add_argument("--bases", type=_seeds, default=None,
                   help="SFT seeds of the bases (default: each claim's declared ones, 0-4 for a "
                        "claim with two verdicts, 0,1,2 for the others)")
    p.add_argument("--seeds", type=_seeds, default=(0, 1, 2, 3, 4), help="run seeds (default 0-4)")
    p.add_argument("--quick", action="store_true",
                   help="the first two bases, seeds 0,1, no tuning: a smoke run of a few minutes")
    p.add_argument("--out", default=None, help="record folder (default results/study; "
                                               "runs/study-quick with --quick)")
    p.add_argument("--runs", default="runs/study", help="per-run cache (default runs/study)")
    p.add_argument("--report", action="store_true",
                   help="run nothing: regenerate docs/CLAIMS.md's study section from the records in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--jobs", type=_jobs, default=1,
                   help="claims run at the same time, each in its own process with one torch "
                        "thread (default 1; 2 on a 2-core machine halves the wall time). "
                        "Progress bars are shown with --jobs 1 only")


def _cases(text: str) -> tuple:
    from refimpl.experiments.debugging.clinic import CASES
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in CASES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown clinic case(s) {bad or '(none given)'}: "
                                         f"choose from {', '.join(CASES)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a case is listed twice in {text!r}")
    return names


_seed = _whole("--seed", 0)


def _clinic_parser(sub) -> None:
    p = sub.add_parser("clinic", help="the run clinic: reported failures, broken and fixed",
                       description="Reproduce failures that practitioners report from GRPO and "
                                   "DPO runs: each case is trained broken and fixed on the cpu "
                                   "base, and its dashboards (TRL metric names) are written as "
                                   "<case>.json and <case>.png.")
    p.add_argument("--out", default="results/clinic", help="output folder (default results/clinic)")
    p.add_argument("--seed", type=_seed, default=0, help="run seed of every case (default 0)")
    p.add_argument("--cases", type=_cases, default=None,
                   help="comma-separated case names (default: every case)")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "compare":
        return _compare(parser, args)
    if args.command == "study":
        return _study(args, sys.argv[1:] if argv is None else list(argv))
    if args.command == "clinic":
        return _clinic(args, sys.argv[1:] if argv is None else list(argv))
    parser.error(f"unknown command {args.command!r}")     # pragma: no cover


def _compare(parser, args) -> int:
    import torch

    from refimpl.experiments.head_to_head.compare import config_for_preset, run_compare
    from refimpl.experiments.head_to_head.compare_report import format_table, save_results
    from refimpl.figures.plots_compare import save_figures

    if args.preset == "gpu" and not torch.cuda.is_available():
        parser.error("--preset gpu needs a CUDA GPU, but torch.cuda.is_available() is False; "
                     "use --preset cpu")
    if args.threads or args.preset != "gpu":
        torch.set_num_threads(args.threads or 1)
    t0 = time.perf_counter()
    kw = {"methods": args.methods}
    if args.seeds is not None:
        kw["seeds"] = args.seeds
    if args.budget_s is not None:
        kw["budget_s"] = args.budget_s
    if args.budget_samples is not None:
        kw["budget_samples"] = args.budget_samples
    if args.eval_problems is not None:
        kw["eval_problems"] = args.eval_problems
    try:
        cc = config_for_preset(args.preset, **kw)
        cc.validate()
    except ValueError as e:
        parser.error(str(e))
    result = run_compare(cc, progress=not args.quiet)
    paths = {**save_results(result, args.out), **save_figures(result, args.out)}
    print(format_table(result))
    print(f"wall time {time.perf_counter() - t0:.0f} s in all, {result.meta['total_s']:.0f} s "
          f"of runs ({result.meta['threads']} torch thread{'s' * (result.meta['threads'] != 1)}, "
          f"{result.meta['device']})")
    print("wrote " + ", ".join(paths.values()))
    return 0


def _study(args, argv: list) -> int:
    from refimpl.experiments.claims_study.study import RESULTS, load_records
    from refimpl.experiments.claims_study.study_report import REPORTS, update_claims_doc

    out = args.out or ("runs/study-quick" if args.quick else RESULTS)
    if args.report:
        records = load_records(out)
        for rel, ids in REPORTS.items():
            doc = RESULTS.parent.parent / rel
            changed = update_claims_doc(doc, [r for r in records if ids is None or r["id"] in ids])
            print(f"{doc}: {'updated' if changed else 'already up to date'}")
        return 0
    command = "python -m refimpl " + " ".join(argv)
    t0 = time.perf_counter()
    jobs = [(cid, *_replicates(cid, args), args, command, out) for cid in args.claims]
    if args.jobs == 1:
        for job in jobs:
            print(_run_one(*job))
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            for text in pool.map(_run_one, *zip(*jobs)):
                print(text)
    print(f"study: {len(jobs)} claim{'s' * (len(jobs) > 1)} in {(time.perf_counter() - t0) / 60:.1f} min "
          f"({args.jobs} at a time)")
    return 0


def _clinic(args, argv: list) -> int:
    from refimpl.experiments.debugging.clinic import run_clinic
    from refimpl.figures.plots_clinic import save_dashboard

    t0 = time.perf_counter()
    records = run_clinic(args.out, seed=args.seed, names=args.cases, save_figure=save_dashboard,
                         command="python -m refimpl " + " ".join(argv))
    failed = [r["name"] for r in records if not r["shows"]["broken"] or r["shows"]["fixed"]]
    print(f"clinic: {len(records)} cases in {(time.perf_counter() - t0) / 60:.1f} min -> "
          f"{args.out}" + (f"; not reproduced: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _replicates(cid: str, args) -> tuple:
    """(bases, seeds) of one claim's run: --bases or the claim's declared ones; --quick keeps
    the first two bases and seeds 0,1."""
    from refimpl.experiments.claims_study.study import CLAIMS, default_bases
    bases = args.bases or default_bases(CLAIMS[cid])
    return (bases[:2], (0, 1)) if args.quick else (bases, args.seeds)


def _run_one(cid, bases, seeds, args, command, out) -> str:
    """Run one claim's study (in this process, one torch thread), write its record and return
    what to print."""
    import torch

    from refimpl.experiments.claims_study.study import (CLAIMS, format_record, run_claim,
                                                        write_record)
    torch.set_num_threads(1)
    rec = run_claim(CLAIMS[cid], bases, seeds, runs_dir=args.runs, tuned=not args.quick,
                    progress=not args.quiet and args.jobs == 1)
    rec["command"] = command
    rec["machine"]["parallel_jobs"] = args.jobs
    path = write_record(rec, out)
    return (f"{cid}: {rec['verdict']}  ({len(bases)} bases x {len(seeds)} seeds, "
            f"{rec['wall_s'] / 60:.1f} min) -> {path}\n{format_record(rec)}")


if __name__ == "__main__":
    sys.exit(main())
