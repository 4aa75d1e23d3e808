"""Write the runs of the diagnosis exercise from the run clinic.

    python -m grader.make_diagnosis                # fresh secret seeds, 2 hidden runs per case
    python -m grader.make_diagnosis --per-case 3 --seed 1234   # a reproducible build

The clinic (refimpl.experiments.debugging.clinic) reproduces failures of GRPO and DPO runs, each of which
trains broken from any seed. This command runs the broken configuration of every case and writes

- grader/checks/diagnosis_cases.json: the teaching dashboards (seed 0, the ones notebook 07 shows
  with their diagnosis), their labels and the closed lists FAILURES and REMEDIES; public;
- exercises/diagnosis_runs/run_NN.json and run_NN.png: the practice set, one run per case from
  a secret seed, shuffled and renamed run_01, run_02, ..., without labels; the PNG plots every
  metric against the step;
- grader/checks_hidden/diagnosis_runs.json: the hidden set, ``--per-case`` runs per case from
  other secret seeds in another shuffle, with their labels, and the practice set's labels; it
  ships in the autograder bundle only;
- the closed lists into solutions/diagnosis.py (between its LABELS markers), and exercises/
  regenerated from solutions/ (python -m grader.make_exercises).

Why secret seeds: refimpl, the clinic included, ships in the student release, and a run is
deterministic per seed, so a known seed would let a student rerun a hidden dashboard and look
its case up. The seeds come from the operating system's randomness (``--seed`` makes a build
reproducible, for tests) and are recorded in the hidden file only. Two cases with the same
dashboard stop the command; a case whose runs do not depend on the seed gets a warning.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LABELS_BLOCK = re.compile(r"(# BEGIN LABELS[^\n]*\n)(.*?)(^# END LABELS)", re.DOTALL | re.MULTILINE)
RUN_FILE = re.compile(r"^run_\d+\.(json|png)$")
DIGITS = 6  # significant digits kept of every logged value


@dataclass
class Paths:
    """Where a build writes; ``exercises`` None leaves exercises/ as it is."""

    teaching: Path = REPO_ROOT / "grader" / "checks" / "diagnosis_cases.json"
    practice: Path = REPO_ROOT / "exercises" / "diagnosis_runs"
    hidden: Path = REPO_ROOT / "grader" / "checks_hidden" / "diagnosis_runs.json"
    solution: Path = REPO_ROOT / "solutions" / "diagnosis.py"
    exercises: Path | None = REPO_ROOT / "exercises"


# ----------------------------------------------------------------------------- runs


def canonical(dashboard: dict, where: str) -> dict[str, list[float]]:
    """The dashboard with "step" first, the other metrics sorted by name (their order must not
    hint at the case) and every value a finite float rounded to DIGITS significant digits."""
    if "step" not in dashboard:
        raise ValueError(f"{where}: the dashboard has no 'step' metric")
    lengths = {len(v) for v in dashboard.values()}
    if len(lengths) != 1 or lengths == {0}:
        raise ValueError(f"{where}: every metric must log one value per step (lengths {sorted(lengths)})")
    out = {}
    for key in ["step", *sorted(k for k in dashboard if k != "step")]:
        values = [float(v) for v in dashboard[key]]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{where}: metric {key!r} has a NaN or infinite value")
        out[key] = [float(f"{v:.{DIGITS}g}") for v in values]
    return out


def one_run(clinic, name: str, seed: int) -> dict:
    """The labelled record of case ``name``'s broken run from ``seed``."""
    case = clinic.CASES[name]
    t0 = time.perf_counter()
    board = canonical(clinic.run_case(name, "broken", seed), f"case {name!r}, seed {seed}")
    print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)  # no seed: they are secret
    return {"id": name, "case": name, "seed": seed, "failure": case.failure, "remedy": case.remedy,
            "read": case.read, "dashboard": board}


def draw_seeds(rng: random.Random, count: int, taken: set[int]) -> list[int]:
    """``count`` new seeds in [1, 2**31), none of them in ``taken`` (which they join)."""
    seeds = []
    while len(seeds) < count:
        seed = rng.randrange(1, 2**31)
        if seed not in taken:
            taken.add(seed)
            seeds.append(seed)
    return seeds


def run_set(clinic, per_case: int, prefix: str, rng: random.Random, taken: set[int]) -> list[dict]:
    """``per_case`` runs of every case from fresh seeds, shuffled and renamed prefix_01, ..."""
    runs = [one_run(clinic, name, seed) for name in clinic.CASES for seed in draw_seeds(rng, per_case, taken)]
    rng.shuffle(runs)
    width = max(2, len(str(len(runs))))
    for k, run in enumerate(runs, start=1):
        run["id"] = f"{prefix}_{k:0{width}d}"
    return runs


def check_distinct(runs: list[dict]) -> list[str]:
    """Stop when two cases share a dashboard (no reader could name both); return a warning
    for each case whose runs repeat a dashboard (its run ignores the seed, as a run whose
    metrics are all exactly 0 does: its hidden runs then equal its public ones)."""
    seen: dict[str, dict] = {}
    repeats: dict[str, int] = {}
    for run in runs:
        other = seen.setdefault(json.dumps(run["dashboard"]), run)
        if other is run:
            continue
        if other["case"] != run["case"]:
            raise SystemExit(f"error: cases {other['case']!r} and {run['case']!r} give the same dashboard; "
                             "no reader can tell them apart")
        repeats[run["case"]] = repeats.get(run["case"], 0) + 1
    return [f"warning: {n} run(s) of case {case!r} repeat an earlier dashboard of it: its runs ignore the seed"
            for case, n in repeats.items()]


# ----------------------------------------------------------------------------- files


def json_lines(data: dict) -> str:
    """JSON with one line per top-level entry and per item of a top-level list."""
    parts = []
    for key, value in data.items():
        if isinstance(value, list):
            items = ",\n".join("  " + json.dumps(v) for v in value)
            parts.append(f" {json.dumps(key)}: [\n{items}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def dashboard_json(dashboard: dict) -> str:
    """A dashboard as JSON, one line per metric."""
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in dashboard.items()) + "\n}\n"


def plot_run(run_id: str, dashboard: dict, path: Path) -> None:
    """Every metric of a dashboard against the step, one panel each, titled by metric name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [k for k in dashboard if k != "step"]
    cols = 3
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, metrics):
        ax.plot(dashboard["step"], dashboard[key], "o-", ms=3, lw=1.2)
        ax.set_title(key, fontsize=11)
        ax.set_xlabel("step", fontsize=10)
        ax.tick_params(labelsize=10)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(f"{run_id}: every logged metric against the training step", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)


def write_practice(runs: list[dict], folder: Path) -> None:
    """run_NN.json (the dashboard alone) and run_NN.png per run; older run files are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if RUN_FILE.match(old.name):
            old.unlink()
    for run in runs:
        (folder / f"{run['id']}.json").write_text(dashboard_json(run["dashboard"]), encoding="utf-8")
        plot_run(run["id"], run["dashboard"], folder / f"{run['id']}.png")


def labels_only(run: dict) -> dict:
    """A run's record without its dashboard (the practice set's dashboards are its files)."""
    return {k: run[k] for k in ("id", "case", "seed", "failure", "remedy", "read")}


def _entry(label: str, text: str, width: int = 76) -> str:
    """One ``label: text`` line of a dict literal; a long text as adjacent string literals."""
    line = f"    {label!r}: {text!r},\n"
    if len(line) <= width + 24:
        return line
    chunks = [""]
    for word in re.findall(r"\S+\s*", text):  # words with their trailing spaces: exact concatenation
        if chunks[-1] and len(chunks[-1]) + len(word) > width:
            chunks.append("")
        chunks[-1] += word
    return f"    {label!r}: (\n" + "\n".join(f"        {c!r}" for c in chunks) + "),\n"


def write_labels(solution: Path, failures: dict, remedies: dict) -> None:
    """Replace the closed lists between ``# BEGIN LABELS`` and ``# END LABELS`` in the solution."""
    text = solution.read_text(encoding="utf-8")
    if not LABELS_BLOCK.search(text):
        raise SystemExit(f"error: {solution} has no '# BEGIN LABELS' ... '# END LABELS' block for the closed lists")
    body = "".join([f"{name} = {{\n" + "".join(_entry(k, v) for k, v in labels.items()) + "}\n"
                    for name, labels in (("FAILURES", failures), ("REMEDIES", remedies))])
    solution.write_text(LABELS_BLOCK.sub(lambda m: m.group(1) + body + m.group(3), text, count=1), encoding="utf-8")


# ----------------------------------------------------------------------------- the build


def build(clinic, paths: Paths, rng: random.Random, per_case: int = 2) -> dict:
    """Run and write everything; returns the sizes and the time taken."""
    t0 = time.perf_counter()
    teaching = [one_run(clinic, name, 0) for name in clinic.CASES]
    taken = {0}
    practice = run_set(clinic, 1, "run", rng, taken)
    hidden = run_set(clinic, per_case, "hidden", rng, taken)
    for warning in check_distinct(teaching + practice + hidden):
        print(warning, file=sys.stderr)
    seconds = time.perf_counter() - t0
    paths.teaching.write_text(json_lines({"failures": dict(clinic.FAILURES), "remedies": dict(clinic.REMEDIES),
                                          "cases": [{k: v for k, v in r.items() if k != "seed"} for r in teaching]}),
                              encoding="utf-8")
    write_practice(practice, paths.practice)
    paths.hidden.write_text(json_lines({"hidden": hidden, "public": [labels_only(r) for r in practice]}),
                            encoding="utf-8")
    write_labels(paths.solution, clinic.FAILURES, clinic.REMEDIES)
    if paths.exercises is not None:
        from grader import make_exercises

        for path in make_exercises.write_exercises(paths.solution.parent, paths.exercises)[1]:
            print(f"warning: {path} was edited, so it keeps its old closed lists", file=sys.stderr)
    return {"cases": len(teaching), "practice": len(practice), "hidden": len(hidden),
            "run_seconds": round(seconds, 1), "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.make_diagnosis", description=__doc__.splitlines()[0])
    parser.add_argument("--per-case", type=int, default=2, metavar="N", help="hidden runs per case (default: 2)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the seed draw and the shuffles (default: the OS's randomness; "
                             "a known seed reveals the hidden runs' seeds)")
    args = parser.parse_args(argv)
    if args.per_case < 1:
        parser.error("--per-case must be at least 1")
    from refimpl.experiments.debugging import clinic

    rng = random.SystemRandom() if args.seed is None else random.Random(args.seed)
    sizes = build(clinic, Paths(), rng, args.per_case)
    chance = 0.5 / len(clinic.FAILURES) + 0.5 / len(clinic.REMEDIES)
    print(f"{sizes['cases']} teaching cases, {sizes['practice']} practice runs, {sizes['hidden']} hidden runs "
          f"in {sizes['seconds']} s (runs {sizes['run_seconds']} s); a uniform random guess scores {chance:.3f} "
          "per run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
