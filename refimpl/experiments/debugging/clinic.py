"""The run clinic: failures that practitioners report from GRPO and DPO runs, reproduced.

Each case (``refimpl.experiments.debugging.clinic_case.Case``) takes a symptom people post to public
issue trackers (TRL, verl, open-r1, TinyZero, OpenRLHF, ...), reproduces it with a small run
on the arena (the cpu base policy and its additions) and runs it twice: "broken", the
configuration that fails, and "fixed", the same run with the fix applied. Their dashboards
(TRL's metric names, one value per step) show the symptom and its disappearance, and the
case's ``shows`` predicate says which dashboard has it.

    CASES      name -> Case, in teaching order: GRPO's loss and its signal-free batches
               (clinic_grpo), the KL and the entropy of a run (clinic_dynamics), the reward
               (clinic_rewards), then DPO (clinic_dpo)
    FAILURES   failure label -> the title of the case that reproduces it
    REMEDIES   remedy label -> what to do, in plain words (several cases may share one): the
               union of the case modules' own REMEDIES

``run_case(name, variant, seed)`` gives one dashboard; ``run_clinic(out_dir)`` runs every case
broken and fixed and writes ``<case>.json`` (both dashboards, the case's texts and labels,
the seed and the command) and, given a figure writer such as
``refimpl.figures.plots_clinic.save_dashboard``, ``<case>.png``. The command line is
``python -m refimpl clinic``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from refimpl.core import checks
from refimpl.core.sft import base_seed
from refimpl.experiments.debugging import clinic_dpo, clinic_dynamics, clinic_grpo, clinic_rewards
from refimpl.experiments.debugging.clinic_case import Case, Dashboard, check_variant

# teaching order: GRPO's loss and signal, its dynamics, the reward, DPO
MODULES = (clinic_grpo, clinic_dynamics, clinic_rewards, clinic_dpo)


def merge_remedies(modules) -> dict[str, str]:
    """The closed list of remedies: the union of the case modules' REMEDIES (label -> what to
    do); a label that two modules describe differently is an error."""
    out: dict[str, str] = {}
    for m in modules:
        for label, text in m.REMEDIES.items():
            if out.setdefault(label, text) != text:
                raise ValueError(f"remedy {label!r} is described twice, differently "
                                 f"(again in {m.__name__})")
    return out


CASES: dict[str, Case] = {c.name: c for m in MODULES for c in m.CASES}
FAILURES: dict[str, str] = {c.failure: c.title for c in CASES.values()}
REMEDIES: dict[str, str] = merge_remedies(MODULES)


def get_case(name: str) -> Case:
    """The case called ``name``; ValueError naming the known cases otherwise."""
    if not isinstance(name, str) or name not in CASES:
        raise ValueError(f"unknown clinic case {name!r}: choose from {', '.join(CASES)}")
    return CASES[name]


def run_case(name: str, variant: str, seed: int = 0) -> Dashboard:
    """The dashboard of case ``name`` run ``variant`` ("broken" or "fixed") with run seed
    ``seed`` (an int >= 0) on the base of ``$REFIMPL_BASE_SEED``."""
    case = get_case(name)
    check_variant(variant)
    seed = checks.count("seed", seed, 0, "the run seed of a clinic case")
    return case.run(variant, seed)


def check_names(names) -> tuple[str, ...]:
    """The case names to run: every case when ``names`` is None, else ``names`` checked
    (known, at least one, none twice)."""
    if names is None:
        return tuple(CASES)
    names = tuple(get_case(n).name for n in names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"give one or more distinct case names, got {names!r}")
    return names


def case_record(case: Case, dashboards: dict, wall_s: dict, seed: int, command: str) -> dict:
    """What ``<case>.json`` holds: the case's texts and labels, the seeds, the command, each
    variant's dashboard and wall time, and whether each dashboard shows the symptom."""
    return {"name": case.name, "title": case.title, "source": case.source,
            "symptom": case.symptom, "diagnosis": case.diagnosis, "fix": case.fix,
            "failure": case.failure, "remedy": case.remedy,
            "remedy_text": REMEDIES.get(case.remedy, ""), "panels": list(case.panels),
            "seed": seed, "base_seed": base_seed(), "command": command,
            "shows": {v: bool(case.shows(d)) for v, d in dashboards.items()},
            "wall_s": wall_s, "dashboards": dashboards}


def summary_line(record: dict) -> str:
    """One line per case: is the symptom in the broken run, and gone from the fixed one?"""
    shows = record["shows"]
    ok = shows["broken"] and not shows["fixed"]
    return (f"{record['name']:<28} broken shows it: {'yes' if shows['broken'] else 'NO '}  "
            f"fixed free of it: {'yes' if not shows['fixed'] else 'NO '}  "
            f"({sum(record['wall_s'].values()):5.1f} s){'' if ok else '  <- not reproduced'}")


RECORDS = Path(__file__).resolve().parents[3] / "results" / "clinic"   # committed run_clinic output


def load_record(name: str, folder=RECORDS) -> dict:
    """The committed record of case ``name`` (``folder/<name>.json``, written by run_clinic);
    a clear error when the file is missing or is not a clinic record."""
    case = get_case(name)
    path = Path(folder) / f"{case.name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no clinic record {path}: run `python -m refimpl clinic "
                                f"--cases {case.name}` to write it")
    record = json.loads(path.read_text())
    missing = {"name", "dashboards", "seed", "command"} - set(record)
    if missing or record["name"] != case.name or set(record["dashboards"]) != {"broken", "fixed"}:
        raise ValueError(f"{path} is not a record of clinic case {case.name!r} "
                         f"(missing {sorted(missing)} or other dashboards)")
    return record


def reproduced(record: dict) -> bool:
    """The case's predicate, as the code says it now, applied to the record's dashboards: the
    broken run shows the symptom and the fixed run does not."""
    case = get_case(record["name"])
    return case.shows(record["dashboards"]["broken"]) and not case.shows(record["dashboards"]["fixed"])


def case_card(case: Case) -> str:
    """The case as the notebook shows it: symptom, a public report, diagnosis and fix (markdown)."""
    repo, _, number = case.source.partition("#")
    link = (f"[{case.source}](https://github.com/{repo}/issues/{number})" if number
            else f"[{case.source}](https://arxiv.org/abs/{case.source.split(':', 1)[1]})"
            if case.source.startswith("arXiv:") else case.source)
    return (f"**Symptom.** {case.symptom} (reported, e.g., in {link})\n\n"
            f"**Read first:** `{case.read}`, then {', '.join(f'`{p}`' for p in case.panels[1:])}.\n\n"
            f"**Diagnosis.** {case.diagnosis}\n\n**Fix.** {case.fix}")


def run_clinic(out_dir, seed: int = 0, names=None, progress: bool = True, save_figure=None,
               command: str | None = None) -> list[dict]:
    """Run every case of ``names`` (default: all, in CASES' order) broken and fixed with run
    seed ``seed`` and write ``out_dir/<case>.json`` (``case_record``).

    save_figure: save_figure(case, broken, fixed, path) writes the dashboard figure to
        ``out_dir/<case>.png`` (``refimpl.figures.plots_clinic.save_dashboard``; the
        experiments layer does not import the figures layer); None writes no figures.
    command: the command recorded in each JSON (default: the equivalent command line).
    progress: print ``summary_line`` as each case finishes.
    Returns the records, in order.
    """
    names = check_names(names)
    seed = checks.count("seed", seed, 0, "the run seed of the clinic")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = command or (f"python -m refimpl clinic --out {out} --seed {seed} "
                          f"--cases {','.join(names)}")
    records = []
    for name in names:
        case, dashboards, wall_s = CASES[name], {}, {}
        for variant in ("broken", "fixed"):
            t0 = time.perf_counter()
            dashboards[variant] = run_case(name, variant, seed)
            wall_s[variant] = round(time.perf_counter() - t0, 2)
        rec = case_record(case, dashboards, wall_s, seed, command)
        (out / f"{name}.json").write_text(json.dumps(rec, indent=1, allow_nan=False) + "\n")
        if save_figure is not None:
            save_figure(case, dashboards["broken"], dashboards["fixed"], out / f"{name}.png")
        if progress:
            print(summary_line(rec), flush=True)
        records.append(rec)
    return records
