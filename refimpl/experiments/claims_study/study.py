"""The claims study: each training claim's declared experiment, over bases x seeds, paired.

A verdict a learner reads must come out the same on another machine, seed and base. So every
trained claim is declared here *before* it is run (hypothesis, metric, budget, decision rule,
what would contradict it, what would leave it not shown), and run the same way:

    for each method m of the claim:                        # fair tuning, on validation only
        for each lr in m's declared grid:
            score(m, lr) = mean over tune seeds of validation accuracy after the budget
        pick(m) = argmax_lr score(m, lr)                    (ties: the smaller lr)
        (a claim about one component of a method, ``shared_lr``: one lr for every method,
         argmax_lr of the mean of score(m, lr) over the methods)
    for each base b (an SFT seed) and run seed s:           # the verdict, on the test half
        for each method m:  acc[m, b, s] = test accuracy of m at pick(m) after the budget
    for each comparison (treatment t, control c, predicted sign):
        d_{b,s} = acc[t, b, s] - acc[c, b, s]               # paired: same base, same seed
        CI = t interval of mean(d)  (refimpl.core.stats)  ->  holds / contradicted / not shown

A claim declared under the two-verdict rule (``Claim.version = 2``, shared/EVIDENCE.md sec. 3-5)
changes the box in four places:

    tuning:   score(m, lr) = mean over 4 runs: seeds 100, 101 on base 0, 102, 103 on base 1
              while pick(m) is at an edge of its grid (and it was widened < MAX_WIDEN times):
                  add the next lr of the 1-2-5 series beyond that edge; pick again
              runner_up(m) = the second-best lr
    verdict:  also run the first comparison's methods at their runner-up lrs and report that
              comparison's verdict there ("runner_up")
    CI:       the t interval over the per-base means (``stats.cluster_t_interval``; runs on one
              base are not independent), with the pooled interval, the per-base means and a
              two-level bootstrap stored beside it; test verdicts in ``stats.TEST_VERDICTS``
    article:  the claim's ``article_rule``, declared with it, judges the quoted sentence
              (supported / refuted / nuanced) from the comparisons' verdicts

Such a claim may also run at a declared lr (``tuned=False``), or at every lr of its grid
(``sweep``: a dose-response), with no tuning.

The first comparison of a claim decides its verdict; a declared caveat turns "holds" into
"holds with a caveat" when another comparison comes out as the caveat says. Budgets count
generated completions (never wall time), so the numbers do not depend on the machine's speed.
The validation and test sets are the two halves of the task's held-out split (split by a hash
of the prompt), so tuning never sees the problems the verdict is measured on.

Every run is stored as one JSON file under ``runs_dir`` as soon as it finishes: a killed study
continues where it stopped. Each claim ends as one record (``results/study/<id>.json``) with
the declaration, the grid and the picks, every per-seed value, each comparison's paired
differences, t and bootstrap intervals and verdict, and the machine and versions.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import sys
import time
import zlib
from dataclasses import asdict
from pathlib import Path

import torch

from refimpl.core import stats
from refimpl.core.sft import load_base
from refimpl.core.training import StepBar
from refimpl.core.utils import get_preset
from refimpl.experiments.claims_study.claims import (CLAIMS, LR_GRIDS, Claim, Comparison)  # noqa: F401 (the study's API)
from refimpl.experiments.head_to_head.compare import config_for_preset, method_config
from refimpl.experiments.claims_study.study_runs import RUNNERS
from refimpl.methods.registry import LABELS

STUDY_VERSION = 1
TUNE_SEEDS = (100, 101)       # run seeds of the tuning runs (disjoint from the verdict's), version 1
TUNE_BASES = (0, 1)           # version 2: 4 tuning seeds over 2 bases (2 each) ...
TUNE_SEEDS_V2 = (100, 101, 102, 103)
MAX_WIDEN = 2                 # ... and a pick at a grid's edge widens it, at most this many times


def eval_splits(base, n: int) -> tuple[list, list]:
    """(validation, test): two disjoint sets of ``n`` held-out problems, split by a hash of
    the prompt (stable across runs and machines)."""
    pool = base.heldout(4 * n, seed=7)
    halves = ([], [])
    for p in pool:
        halves[zlib.crc32(p.prompt.encode()) % 2].append(p)
    if min(len(h) for h in halves) < n:
        raise ValueError(f"the held-out split gave too few problems for two halves of {n}")
    return halves[0][:n], halves[1][:n]


def _run_key(claim: Claim, preset: str, method: str, lr: float, base_seed: int, seed: int,
             split: str) -> str:
    spec = {"v": STUDY_VERSION, "claim": claim.id, "preset": preset, "budget": claim.budget_samples,
            "fixed": claim.fixed.get(method, {}), "n": claim.eval_problems, "method": method,
            "lr": lr, "base": base_seed, "seed": seed, "split": split}
    if claim.runner != "compare":           # added only off the default: C17's keys stay valid
        spec["runner"] = claim.runner
    if claim.task:
        spec["task"] = claim.task
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return f"{split}-{method}-lr{lr:g}-b{base_seed}-s{seed}-{digest}"


def run_cached(claim, preset, method, lr, base, base_seed, seed, split, problems, runs_dir):
    """One run's values ({final_acc, base_acc, curve, ...} for the default runner): from
    ``runs_dir`` if stored, else run by ``RUNNERS[claim.runner]`` and stored atomically (so an
    interrupted study resumes without redoing it)."""
    path = Path(runs_dir) / claim.id / f"{_run_key(claim, preset, method, lr, base_seed, seed, split)}.json"
    if path.exists():
        return json.loads(path.read_text())
    rec = RUNNERS[claim.runner](claim, preset, method, lr, base, seed, problems)
    out = {"method": method, "lr": lr, "base": base_seed, "seed": seed, "split": split, **rec}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, path)
    return out


def default_lr(claim: Claim, method: str) -> float:
    """The lr used without tuning: the middle of the method's grid (its trainer's own default
    when the claim declares no grid for it)."""
    grid = claim.grids.get(method)
    if grid:
        return grid[len(grid) // 2]
    if claim.runner != "compare":
        raise ValueError(f"claim {claim.id}: method {method!r} of runner {claim.runner!r} needs an lr grid")
    cc = config_for_preset("cpu", budget_samples=claim.budget_samples)
    return method_config(method, cc, 0, 1, 1).lr


def tune_key(claim: Claim, method: str) -> str:
    """The run value ``method``'s lr is picked by (``claim.tune_by``, else ``metric_key``)."""
    return claim.tune_by.get(method, claim.metric_key)


def tune_runs(claim: Claim, bases) -> tuple:
    """(base, run seed) of every tuning run of each lr: a claim with two verdicts tunes on 4
    seeds over 2 bases (TUNE_BASES, shared/EVIDENCE.md sec. 3); a record made before that rule
    on the first base and TUNE_SEEDS."""
    if claim.version >= 2:
        return tuple((b, s) for i, b in enumerate(TUNE_BASES) for s in TUNE_SEEDS_V2[2 * i:2 * i + 2])
    return tuple((bases[0], s) for s in TUNE_SEEDS)


def tune_units(claim: Claim) -> list:
    """The groups of methods that share one lr pick: each method alone, or (``shared_lr``) all
    of them, which must then declare one grid."""
    if not claim.shared_lr:
        return [(m,) for m in claim.methods]
    grids = {tuple(claim.grids.get(m) or ()) for m in claim.methods}
    if len(grids) != 1 or not next(iter(grids)):
        raise ValueError(f"claim {claim.id}: shared_lr needs one declared grid for every method")
    return [tuple(claim.methods)]


def next_lr(lr: float, up: bool) -> float:
    """The next lr beyond ``lr`` on the 1-2-5 series (a grid widened by one step)."""
    series = sorted(float(f"{k}e{e}") for e in range(-9, 1) for k in (1, 2, 5))
    return (min(x for x in series if x > lr * 1.01) if up else
            max(x for x in series if x < lr * 0.99))


def _ranked(grid, score: dict, sign: int) -> list:
    """The lrs of ``grid`` from best to worst by ``sign`` * score (ties: the smaller lr first)."""
    return sorted(grid, key=lambda lr: (-sign * score[lr], lr))


def tune(claim: Claim, load, bases, preset: str, runs_dir, bar=None) -> dict:
    """Pick each method's lr on the validation half, from the runs ``tune_runs`` names:
    {"scores": {m: {lr: mean tune value}}, "pick": {m: lr}, "grid", "runs": [(base, seed)]}.
    The pick maximises ``claim.tune_sign`` * score (ties: the smaller lr); a ``shared_lr``
    claim picks one lr for all methods by their mean score. For a claim with two verdicts a
    pick at an edge of a grid of >= 2 lrs widens the grid by one 1-2-5 step on that side
    (at most MAX_WIDEN times; "widened" lists the lrs added, "edge" the picks still at an
    edge), and "runner_up" gives the second-best lr. ``load(b)`` is the base of SFT seed b."""
    runs = tune_runs(claim, bases)
    scores, pick, runner_up, grid_out, widened, edge = {}, {}, {}, {}, {}, []
    value: dict = {}                 # (method, lr) -> its tune value, each computed once

    def tune_value(m, lr):
        if (m, lr) not in value:
            value[m, lr] = _tune_value(claim, m, lr, load, runs, preset, runs_dir, bar)
        return value[m, lr]

    for unit in tune_units(claim):
        grid = list(claim.grids.get(unit[0]) or (default_lr(claim, unit[0]),))
        while True:
            mean = {lr: sum(tune_value(m, lr) for m in unit) / len(unit) for lr in grid}
            order = _ranked(grid, mean, claim.tune_sign)
            at_edge = len(grid) > 1 and order[0] in (grid[0], grid[-1])
            if not (claim.version >= 2 and at_edge and len(widened.get(unit[0], ())) < MAX_WIDEN):
                break
            new = next_lr(order[0], up=order[0] == grid[-1])
            grid = sorted(grid + [new])
            for m in unit:
                widened.setdefault(m, []).append(new)
        for m in unit:
            scores[m] = {f"{lr:g}": tune_value(m, lr) for lr in grid}
            pick[m], grid_out[m] = order[0], grid
            if len(grid) > 1:
                runner_up[m] = order[1]
            if at_edge:
                edge.append(m)
    return _tuning_record(claim, runs, grid_out, scores, pick, runner_up, widened, edge)


def _tune_value(claim, m, lr, load, runs, preset, runs_dir, bar=None) -> float:
    """Mean over the tuning runs of method ``m``'s tune value at ``lr`` (stored runs reused)."""
    vals = []
    for b, s in runs:
        val, _ = eval_splits(load(b), claim.eval_problems)
        vals.append(run_cached(claim, preset, m, lr, load(b), b, s, "validation", val,
                               runs_dir)[tune_key(claim, m)])
        if bar is not None:
            bar.update(1)
    return sum(vals) / len(vals)


def _tuning_record(claim, runs, grid, scores, pick, runner_up, widened, edge) -> dict:
    """The record's "tuning" block (the keys of a version-1 record stay as they were)."""
    bases = sorted({b for b, _ in runs})
    out = {"base": bases[0], "seeds": [s for _, s in runs], "split": "validation",
           "grid": {m: list(g) for m, g in grid.items()}, "scores": scores, "pick": pick}
    if claim.tune_by or claim.tune_sign != 1:   # only off the default, as C17's record has none
        out.update(by={m: tune_key(claim, m) for m in claim.methods}, sign=claim.tune_sign)
    if claim.shared_lr:
        out["shared"] = True
    if claim.version >= 2:
        out.update(runs=[list(r) for r in runs], bases=bases, runner_up=runner_up,
                   widened=widened, edge=edge)
    return out


def compare_runs(runs: dict, c: Comparison, metric_key: str = "final_acc", version: int = 1) -> dict:
    """Paired differences treatment - control of the run value ``c.metric`` (default
    ``metric_key``) over (base, seed), their intervals and verdict. Version 1 decides by the
    pooled paired t interval; version 2 by the t interval over the per-base means
    (``stats.cluster_t_interval``), with the pooled one and a two-level bootstrap beside it, and
    leaves out (and counts) pairs whose value is undefined (NaN, e.g. an empty difficulty bin)."""
    key = c.metric or metric_key
    ctrl = {(r["base"], r["seed"]): 0.0 if c.control_metric == "0" else r[c.control_metric or key]
            for r in runs[c.control]}
    pairs = [(r["base"], r["seed"], r[key] - ctrl[(r["base"], r["seed"])])
             for r in runs[c.treatment]]
    if version == 1:
        diffs = [d for _, _, d in pairs]
        ci = stats.t_interval(diffs)
        v = stats.verdict(ci, c.predicted)
        return {**asdict(c), "metric": key, "diffs": [{"base": b, "seed": s, "diff": d} for b, s, d in pairs],
                "ci": ci, "bootstrap": stats.bootstrap_interval(diffs), "verdict": v,
                "seeds_needed": stats.seeds_needed(ci) if v == "not shown" else None}
    return _cluster_comparison(c, key, pairs)


def _cluster_comparison(c: Comparison, key: str, pairs: list) -> dict:
    """Version 2 of ``compare_runs``: the verdict from the t interval over per-base means."""
    kept = [(b, s, d) for b, s, d in pairs if math.isfinite(d)]
    diffs, bases = [d for _, _, d in kept], [b for b, _, _ in kept]
    ci = stats.cluster_t_interval(diffs, bases)
    v = stats.test_verdict(ci, c.predicted)
    return {**asdict(c), "metric": key, "interval": "t over base means",
            "diffs": [{"base": b, "seed": s, "diff": d} for b, s, d in kept],
            "undefined_pairs": len(pairs) - len(kept), "ci": ci,
            "pooled": stats.t_interval(diffs), "bootstrap": stats.two_level_bootstrap(diffs, bases),
            "verdict": v, "bases_needed": stats.seeds_needed(ci) if v == "not shown" else None}


def decide(claim: Claim, comparisons: list) -> tuple[str, list]:
    """The claim's verdict from its first comparison, plus the caveats that apply. A
    ``precondition`` record only decides whether the claim can be tested here: its claim
    stays "not shown", and the caveats say why."""
    v = "not shown" if claim.precondition else comparisons[0]["verdict"]
    caveats = [text for i, when, text in claim.caveats if comparisons[i]["verdict"] in when]
    if v == "holds" and caveats:
        v = "holds with a caveat"
    return v, caveats


def judge_article(claim: Claim, comparisons: list) -> tuple[str, str]:
    """(article verdict, reason): the first entry of ``claim.article_rule`` whose comparisons
    all came out as it lists (an entry listing none always matches)."""
    for when, article_verdict, reason in claim.article_rule:
        if all(comparisons[i]["verdict"] in verdicts for i, verdicts in when.items()):
            return article_verdict, reason
    raise ValueError(f"claim {claim.id}: no entry of article_rule matches "
                     f"{[c['verdict'] for c in comparisons]}; end the rule with a catch-all")


def machine() -> dict:
    """Where the record was made: CPU, threads, versions."""
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import numpy
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "python": sys.version.split()[0],
            "torch": torch.__version__, "numpy": numpy.__version__}


def arms(claim: Claim, pick: dict) -> list:
    """(arm name, method, lr) of every test run of a base and seed: each method at its picked
    lr, or, for a ``sweep`` claim, at every lr of its grid as "<method>@<lr>"."""
    if claim.sweep:
        return [(f"{m}@{lr:g}", m, lr) for m in claim.methods for lr in claim.grids[m]]
    return [(m, m, pick[m]) for m in claim.methods]


def lr_text(record: dict) -> str:
    """How a record's lrs were chosen, and which, in a few words."""
    tuning = record["tuning"]
    how = tuning["note"] if "note" in tuning else "picked on validation"
    if "runs" in tuning:
        how += f" ({len(tuning['runs'])} seeds over {len(tuning['bases'])} bases)"
    if record.get("sweep"):
        return f"{how}: every lr of the grid"
    return f"{how}: " + ", ".join(f"{LABELS[m]} {lr:g}" for m, lr in tuning["pick"].items())


def _check_run(claim: Claim, bases, seeds) -> None:
    """run_claim's inputs: >= 2 distinct run seeds, distinct bases (>= 2 for a version-2 claim,
    whose interval is over the bases), a known runner and known methods."""
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or len(set(bases)) != len(bases) or not bases:
        raise ValueError(f"need >= 2 distinct run seeds and distinct bases, got {seeds}, {bases}")
    if claim.version >= 2 and len(bases) < 2:
        raise ValueError(f"claim {claim.id} is decided over base means: it needs >= 2 bases, got {bases}")
    if claim.runner not in RUNNERS:
        raise ValueError(f"claim {claim.id} names unknown runner {claim.runner!r}: use one of {sorted(RUNNERS)}")
    unknown = [m for m in claim.methods if m not in LABELS]
    if unknown:
        raise ValueError(f"claim {claim.id} names unknown methods {unknown}")
    empty = [m for m in claim.methods if claim.grids.get(m, None) == ()]
    if empty or (claim.sweep and any(not claim.grids.get(m) for m in claim.methods)):
        raise ValueError(f"claim {claim.id} declares an empty lr grid for {empty or list(claim.methods)}: "
                         f"give at least one lr")
    names = {name for name, _, _ in arms(claim, {m: 0.0 for m in claim.methods})}
    bad = [x for c in claim.comparisons for x in (c.treatment, c.control) if x not in names]
    if bad:
        raise ValueError(f"claim {claim.id}: comparisons name {bad}, not among its arms {sorted(names)}")


def default_bases(claim: Claim) -> tuple:
    """The bases a claim's record is made on: 5 for a claim with two verdicts (decided over
    base means), 3 for the records made before that rule."""
    return (0, 1, 2, 3, 4) if claim.version >= 2 else (0, 1, 2)


def run_claim(claim: Claim, bases=(0, 1, 2), seeds=(0, 1, 2, 3, 4), preset: str = "cpu",
              runs_dir="runs/study", tuned: bool = True, progress: bool = True) -> dict:
    """Run ``claim``'s declared experiment and return its record (see the module docstring).

    bases: SFT seeds of the base policies; seeds: run seeds (the same for every method and
    base: the comparison is paired); tuned: pick each lr on validation (else the grid's middle;
    a claim declared ``tuned=False`` always runs at its grids' declared lr). A tuned claim with
    two verdicts also runs the deciding comparison's methods at their runner-up lrs.
    """
    _check_run(claim, bases, seeds)
    tuned = tuned and claim.tuned
    t0, c0 = time.perf_counter(), time.process_time()
    n_tune = sum(len(claim.grids.get(m) or (0,)) for m in claim.methods) * len(tune_runs(claim, bases))
    n_arms = len(arms(claim, {m: 0.0 for m in claim.methods}))
    bar = StepBar((n_tune if tuned else 0) + n_arms * len(bases) * len(seeds),
                  f"study {claim.id}", progress)
    base_preset = get_preset(preset, task=claim.task) if claim.task else preset
    loaded: dict = {}

    def load(b):                       # each base loaded once
        if b not in loaded:
            loaded[b] = load_base(base_preset, seed=b, progress=False)
        return loaded[b]
    tuning = (tune(claim, load, bases, preset, runs_dir, bar) if tuned else
              {"pick": {} if claim.sweep else {m: default_lr(claim, m) for m in claim.methods},
               "note": claim.lr_note or "not tuned"})
    test_arms = arms(claim, tuning["pick"])
    ru = runner_up_arms(claim, tuning)
    runs = {name: [] for name, _, _ in test_arms + ru}
    for b in bases:
        _, test = eval_splits(load(b), claim.eval_problems)
        for s in seeds:
            for name, m, lr in test_arms + ru:
                runs[name].append(run_cached(claim, preset, m, lr, load(b), b, s, "test", test, runs_dir))
                bar.update(1)
    bar.close()
    record = _record(claim, runs, tuning, bases, seeds, preset)
    return {**record, "machine": machine(), "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0, "version": claim.version}


def runner_up_arms(claim: Claim, tuning: dict) -> list:
    """(arm, method, lr) of the runs at the runner-up lr: each method of the deciding (first)
    comparison whose grid had a runner-up, named "<method>@runner-up" (version 2, tuned)."""
    second = tuning.get("runner_up") or {}
    first = claim.comparisons[0]
    return [(f"{m}@runner-up", m, second[m]) for m in dict.fromkeys((first.treatment, first.control))
            if m in second]


def runner_up_comparison(claim: Claim, runs: dict) -> dict | None:
    """The deciding comparison again with its methods at their runner-up lrs (the others at
    their picks), or None when no method of it had a runner-up."""
    swapped = {m: runs[f"{m}@runner-up"] for m in claim.methods if f"{m}@runner-up" in runs}
    if not swapped:
        return None
    return compare_runs({**runs, **swapped}, claim.comparisons[0], claim.metric_key, claim.version)


DECISION_RULES = {
    1: "95% paired t interval of treatment - control over (base, seed): holds if it excludes 0 "
       "on the predicted side, contradicted if on the other side, not shown otherwise",
    2: "95% t interval over the per-base means of treatment - control (pooled paired interval "
       "and per-base means beside it): holds if it excludes 0 on the predicted side, "
       "contradicted if on the other side, not shown if it contains 0 or has zero width"}


def _record(claim: Claim, runs: dict, tuning: dict, bases, seeds, preset: str) -> dict:
    """The record's declaration, runs, comparisons and verdict(s) (module docstring)."""
    comps = [compare_runs(runs, c, claim.metric_key, claim.version) for c in claim.comparisons]
    verdict, caveats = decide(claim, comps)
    skip = ("comparisons", "caveats", "grids", "article_rule", "version", "tuned", "lr_note")
    decl = {k: v for k, v in asdict(claim).items() if k not in skip and
            (claim.version >= 2 or k not in ("article_quote", "sweep"))}
    if claim.sweep:
        decl["grids"] = {m: list(g) for m, g in claim.grids.items()}
    out = {**decl, "decision_rule": DECISION_RULES[claim.version], "bases": list(bases),
           "seeds": list(seeds), "preset": preset, "tuning": tuning, "runs": runs,
           "comparisons": comps, "verdict": verdict, "caveats": caveats}
    if claim.version >= 2:
        article_verdict, reason = judge_article(claim, comps)
        out.update(article_verdict=article_verdict, article_reason=reason, test_verdict=verdict)
        at_second = runner_up_comparison(claim, runs)
        if at_second is not None:
            out["runner_up"] = {"lr": {m: tuning["runner_up"][m] for m in claim.methods
                                       if f"{m}@runner-up" in runs},
                                "comparison": at_second, "verdict": at_second["verdict"]}
    return out


def write_record(record: dict, out_dir) -> Path:
    """Write ``record`` to ``out_dir/<claim id>.json`` (atomically) and return the path."""
    path = Path(out_dir) / f"{record['id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)
    return path


RESULTS = Path(__file__).resolve().parents[3] / "results" / "study"   # the committed records


def load_record(claim_id: str, out_dir=None) -> dict:
    """The committed record of ``claim_id`` (default folder: <repo>/results/study)."""
    path = Path(out_dir or RESULTS) / f"{claim_id}.json"
    if not path.exists():
        raise FileNotFoundError(f"no study record {path}: run `python -m refimpl study --claims {claim_id}`")
    return read_record(path)


RECORD_KEYS = ("id", "hypothesis", "bases", "seeds", "runs", "comparisons", "verdict")


def read_record(path) -> dict:
    """The study record in the JSON file ``path``; a ValueError naming the file when it is not
    JSON or not a record (a record has every key of RECORD_KEYS)."""
    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a study record: not JSON ({err.msg}, line {err.lineno})") from None
    missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
    if missing:
        raise ValueError(f"{path} is not a study record: it lacks {', '.join(missing)}")
    return record


def load_records(out_dir=None) -> list:
    """Every record in ``out_dir`` (default: the committed ones), in claim order."""
    order = lambda p: (int(re.match(r"C(\d+)", p.stem).group(1)), p.stem)   # noqa: E731; C11 < C11b < C12
    paths = sorted(Path(out_dir or RESULTS).glob("C*.json"), key=order)
    return [read_record(p) for p in paths]


def recompute_verdicts(record: dict) -> list:
    """Each comparison's verdict recomputed from the record's paired differences by the
    record's declared rule (version 1: ``stats.verdict`` of the pooled t interval; version 2:
    ``stats.test_verdict`` of the t interval over base means), then the claim's verdict from
    them (``decide``) and, for version 2, the article's verdict (``judge_article``): a notebook
    asserts these equal what the record says."""
    claim = CLAIMS[record["id"]]
    verdicts = []
    for c in record["comparisons"]:
        d = [x["diff"] for x in c["diffs"]]
        if record.get("version", 1) >= 2:
            ci = stats.cluster_t_interval(d, [x["base"] for x in c["diffs"]])
            verdicts.append(stats.test_verdict(ci, c["predicted"]))
        else:
            verdicts.append(stats.verdict(stats.t_interval(d), c["predicted"]))
    comps = [{"verdict": v} for v in verdicts]
    overall, _ = decide(claim, comps)
    if record.get("version", 1) >= 2:
        return verdicts + [overall, judge_article(claim, comps)[0]]
    return verdicts + [overall]


def format_record(record: dict) -> str:
    """A record in a few lines, as notebooks print it: the runs, each method's tuned lr, each
    comparison's paired mean difference [95% t interval] and verdict, the verdict, the caveats."""
    lines = [f"{record['id']} record: {len(record['bases'])} bases x {len(record['seeds'])} seeds, "
             f"{record['budget_samples']:,} completions per run; lr {lr_text(record)}"]
    for c in record["comparisons"]:
        ci = c["ci"]
        need = c.get("bases_needed") or c.get("seeds_needed")
        lines.append(f"  {comparison_label(record, c)}: {ci['mean']:+.3f} [{ci['lo']:+.3f}, {ci['hi']:+.3f}]"
                     + ("" if c["predicted"] == 1 else " (predicted < 0)") + f"  {c['verdict']}"
                     + (f" (about {need} {'bases' if 'bases_needed' in c else 'seeds'} would decide it)"
                        if c["verdict"] == "not shown" and need else ""))
    if "runner_up" in record:
        ru, ci = record["runner_up"], record["runner_up"]["comparison"]["ci"]
        lines.append(f"  the same at the runner-up lr ("
                     + ", ".join(f"{LABELS[m]} {lr:g}" for m, lr in ru["lr"].items())
                     + f"): {ci['mean']:+.3f} [{ci['lo']:+.3f}, {ci['hi']:+.3f}]  {ru['verdict']}")
    if record.get("version", 1) >= 2:
        lines += [f"intervals: 95% t over the {len(record['bases'])} base means",
                  f"article: {record['article_verdict']} ({record['article_reason']})",
                  f"project's test: {record['test_verdict']}"]
    else:
        lines.append(f"verdict: {record['verdict']}")
    lines += [f"  caveat: {t}" for t in record["caveats"]]
    return "\n".join(lines)


def comparison_label(record: dict, c: dict) -> str:
    """"treatment - control", plus the compared value when it is not accuracy (records made
    before comparisons named their value compare final_acc)."""
    key = c.get("metric") or record.get("metric_key", "final_acc")
    if record.get("version", 1) >= 2:      # declared in plain words
        return c["question"]
    if c.get("control_metric"):            # one method's value against another, or against 0
        return (f"{LABELS[c['treatment']]}: {key.replace('_', ' ')}"
                + ("" if c["control_metric"] == "0" else
                   f" - {c['control_metric'].replace('_', ' ')}"))
    text = f"{LABELS[c['treatment']]} - {LABELS[c['control']]}"
    if key == "final_acc":                 # named only where the record's own value is another
        return text if record.get("metric_key", "final_acc") == "final_acc" else f"{text} (accuracy)"
    return f"{text} ({key.replace('_', ' ')})"
