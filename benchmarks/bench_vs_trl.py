"""refimpl against Hugging Face TRL 1.16 on the same CPU, in one run, alternating.

    python benchmarks/bench_vs_trl.py --repeats 3            # 2 threads, wall clock
    python benchmarks/bench_vs_trl.py --repeats 10 --threads 1 --clock cpu   # on a shared machine
    python benchmarks/bench_vs_trl.py --tiny --repeats 1     # smoke test (tests/)

GRPO: 2-digit addition prompts, 8 prompts x 8 completions per step, at most 4 new tokens,
beta 0.04, loss_type "grpo", one optimiser update per rollout. refimpl: a tight loop over
``sample_groups``, ``token_logprobs(group_size=G)``, ``group_advantages``, ``grpo_loss``,
fused AdamW (``training.adamw``), as ``grpo_trainer.grpo_update`` runs them. TRL:
``GRPOTrainer`` (transformers ``generate``, reference model forward, fused log-prob head).
DPO: 64 pairs per step, beta 0.1, reference log-probs precomputed in both (``--dpo-ref live``:
recomputed every step in both); refimpl runs ``dpo_trainer.pair_logps`` (each pair's prompt
encoded once). Model: refimpl's GPT 4 layers x 128 wide x 4 heads (about
0.8M parameters); TRL trains ``trl_bridge.tiny_llama`` of the same size and FLOPs per token.

The two alternate step by step (TRL, refimpl, TRL, refimpl, ...; ``--repeats`` steps each,
after one warm-up step each that is dropped, and before one more each, not timed, during
which a thread samples the process's resident memory: the peak above the step's start): a refimpl step runs from a callback at the end
of each TRL step, outside TRL's timed window, so a change in the machine's load hits both
alike. A step is timed from TRL's ``on_step_begin`` to ``on_step_end`` (sampling, scoring,
reference, loss, backward, clipping, optimiser); the DPO collator runs before it, as does
refimpl's indexing of pre-tokenised tensors. Printed: per-phase
medians in ms, throughput, refimpl / TRL ratio, and the compute floor: matmul FLOPs per step
divided by this machine's measured matmul rate at the same shapes, once with every sequence
running its own prompt (what TRL computes) and once with each prompt run once per group (what
refimpl computes), and the fraction of its own floor each implementation reaches. ``--clock cpu`` (one thread)
counts this process's CPU time instead of wall time, so that time spent waiting for a core
on a busy machine is not counted. Figures, not assertions.
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import json
import os
import statistics
import sys
import threading
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from refimpl.experiments.to_trl import trl_bridge, trl_compare
from refimpl.core.logprobs import token_logprobs
from refimpl.core.model import GPT, GPTConfig
from refimpl.core.preferences import PreferencePairs
from refimpl.core.rollouts import sample_groups
from refimpl.core.tasks import get_task
from refimpl.core.tokenizer import CharTokenizer
from refimpl.core.training import adamw
from refimpl.methods.dpo import dpo_loss
from refimpl.methods.dpo_trainer import pair_logps
from refimpl.methods.grpo import group_advantages, grpo_loss

now = time.perf_counter          # --clock cpu: time.process_time (this process's CPU seconds)

PHASES = {"grpo": ("sampling", "reference", "policy_fwd", "backward", "optim_rest"),
          "dpo": ("reference", "policy_fwd", "backward", "optim_rest")}


class Timer:
    """Accumulates seconds per phase name within the current step."""

    def __init__(self):
        self.cur: dict[str, float] = {}

    @contextmanager
    def __call__(self, name):
        t = now()
        try:
            yield
        finally:
            self.cur[name] = self.cur.get(name, 0.0) + now() - t

    def wrap(self, name, fn, when=None):
        def wrapped(*a, **k):
            if when is not None and not when(*a, **k):
                return fn(*a, **k)
            with self(name):
                return fn(*a, **k)
        return wrapped


class PeakRSS:
    """Peak resident memory of this process above its level at ``start`` (MiB), read from
    /proc/self/statm every millisecond on a thread (Linux; None elsewhere). glibc's free heap is
    handed back first (``malloc_trim``), so the figure is the memory a step allocates."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.ok = os.path.exists("/proc/self/statm")
        self.thread = None

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def start(self):
        if not self.ok:
            return
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        self.base = self.peak = self.rss()
        self.running = True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self):
        while self.running:
            self.peak = max(self.peak, self.rss())
            time.sleep(1e-3)

    def stop(self):
        if self.thread is None:
            return None
        self.running = False
        self.thread.join()
        self.thread = None
        return (max(self.peak, self.rss()) - self.base) / 2**20


def finish(step_s: float, parts: dict, method: str) -> dict:
    row = {p: parts.get(p, 0.0) for p in PHASES[method] if p != "optim_rest"}
    row["optim_rest"] = step_s - sum(row.values())
    row["step"] = step_s
    return row


# ---------------------------------------------------------------- the setting -----------

def setting(args):
    """(task, tokenizer, problems, model size) of the benchmark: ``args.digits``-digit addition;
    the model is 4 layers x ``args.width`` with one head per 32 channels (--tiny: 1 x 32 x 2),
    its context long enough for the prompts and ``max_new`` tokens (or the DPO answers)."""
    task = get_task("add", digits=args.digits)
    tok = CharTokenizer(task.alphabet)
    problems = task.problems("train", 1024, seed=0)
    w = args.width
    size = dict(n_layer=1, n_embd=32, n_head=2) if args.tiny else \
        dict(n_layer=args.layers, n_embd=w, n_head=max(1, w // 32))
    longest = max(len(p.prompt) for p in problems) + 1 + max(args.max_new, len(task.target(problems[0])) + 2)
    size["block_size"] = max(32, longest)
    return task, tok, problems, size


def refimpl_model(tok, size, seed=0):
    """refimpl's GPT of ``size`` (n_layer, n_embd, n_head and optionally block_size, else 32)."""
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=tok.vocab_size, **{"block_size": 32, **size}))


def preference_rows(task, problems, n):
    """n pairs: chosen = the correct working, rejected = the same with a wrong final answer."""
    rows = []
    for p in problems[:n]:
        good = task.target(p)
        head, ans = good.split("|")
        rows.append({"prompt": p.prompt, "chosen": good, "rejected": f"{head}|{int(ans) + 1}"})
    return rows


# ---------------------------------------------------------------- refimpl loops ---------

class RefimplGRPO:
    def __init__(self, task, tok, problems, size, args):
        self.task, self.tok, self.problems, self.a = task, tok, problems, args
        self.policy = refimpl_model(tok, size).train()
        self.ref = copy.deepcopy(self.policy).eval().requires_grad_(False)
        self.opt = adamw(self.policy.parameters(), 1e-4)
        self.gen, self.i = torch.Generator().manual_seed(0), 0

    def step(self) -> dict:
        a, tm = self.a, Timer()
        t0 = now()
        batch = [self.problems[(self.i + j) % len(self.problems)] for j in range(a.prompts)]
        self.i += a.prompts
        with tm("sampling"):
            ro = sample_groups(self.policy, self.tok, self.task, batch, a.group,
                               max_new_tokens=a.max_new, generator=self.gen)
        args = (ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask)
        with tm("reference"), torch.no_grad():
            ref_logps = token_logprobs(self.ref, *args, group_size=a.group)      # (B*G, T)
        with tm("policy_fwd"):
            logps = token_logprobs(self.policy, *args, group_size=a.group)       # (B*G, T)
            adv = group_advantages(ro.rewards, a.group)                         # (B*G,)
            loss, _ = grpo_loss(logps, ro.old_logps, adv, ro.completion_mask,
                                ref_logps=ref_logps, beta=0.04, loss_agg="grpo")
        with tm("backward"):
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), 1.0)
        self.opt.step()
        self.shape = (ro.prompt_ids.shape[1], ro.completion_ids.shape[1])
        return finish(now() - t0, tm.cur, "grpo")


class RefimplDPO:
    def __init__(self, task, tok, problems, size, args):
        self.a = args
        rows = preference_rows(task, problems, args.pairs * 4)
        p_ids, p_mask = tok.encode_prompts([r["prompt"] for r in rows])                    # (N, P)
        ids, mask = tok.encode_completions([r["chosen"] for r in rows] + [r["rejected"] for r in rows])
        N = len(rows)
        self.pairs = PreferencePairs(
            problems=problems[:N], prompt_ids=p_ids, prompt_mask=p_mask, chosen_ids=ids[:N],
            chosen_mask=mask[:N], rejected_ids=ids[N:], rejected_mask=mask[N:],
            chosen_texts=[r["chosen"] for r in rows], rejected_texts=[r["rejected"] for r in rows],
            flipped=torch.zeros(N, dtype=torch.bool))
        self.policy = refimpl_model(tok, size).train()
        self.ref = copy.deepcopy(self.policy).eval().requires_grad_(False)
        self.opt = adamw(self.policy.parameters(), 1e-4)
        self.live = args.dpo_ref == "live"
        if not self.live:                                  # precomputed once, as TRL's option
            with torch.no_grad():
                self.ref_c, self.ref_r = (t.sum(-1) for t in pair_logps(self.ref, self.pairs))
        self.i = 0
        self.shape = (p_ids.shape[1], ids.shape[1])

    def step(self) -> dict:
        tm, B = Timer(), self.a.pairs
        t0 = now()
        idx = (torch.arange(B) + self.i) % len(self.pairs)                       # (B,)
        self.i += B
        batch = self.pairs[idx]
        if self.live:
            with tm("reference"), torch.no_grad():
                ref_c, ref_r = (t.sum(-1) for t in pair_logps(self.ref, batch))  # (B,) each
        else:
            ref_c, ref_r = self.ref_c[idx], self.ref_r[idx]
        with tm("policy_fwd"):
            pc, pr = (t.sum(-1) for t in pair_logps(self.policy, batch))        # (B,) each
            losses, _ = dpo_loss(pc, pr, ref_c, ref_r, beta=0.1)
        with tm("backward"):
            self.opt.zero_grad(set_to_none=True)
            losses.mean().backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), 1.0)
        self.opt.step()
        return finish(now() - t0, tm.cur, "dpo")


# ---------------------------------------------------------------- TRL trainers ----------

def _instrument(trainer, method):
    """Wrap TRL's own methods with phase timers; a callback records each optimiser step."""
    from transformers import TrainerCallback

    tm, rows = Timer(), []
    if method == "grpo":
        trainer._generate = tm.wrap("sampling", trainer._generate)
        trainer._calculate_rewards = tm.wrap("sampling", trainer._calculate_rewards)
        trainer._get_per_token_logps_and_entropies = tm.wrap(
            "reference", trainer._get_per_token_logps_and_entropies,
            when=lambda model, *a, **k: model is trainer.ref_model)
    elif trainer.ref_model is not None:
        trainer.ref_model.forward = tm.wrap("reference", trainer.ref_model.forward)
    trainer.compute_loss = tm.wrap("policy_fwd", trainer.compute_loss)
    trainer.accelerator.backward = tm.wrap("backward", trainer.accelerator.backward)

    class StepClock(TrainerCallback):
        mem, peak_mb = PeakRSS(), None

        def on_step_begin(self, args, state, *a, **k):
            if state.global_step == state.max_steps - 1:   # the last step: memory, not time
                self.mem.start()
            tm.cur, self.t = {}, now()

        def on_step_end(self, *a, **k):
            parts = dict(tm.cur)
            if method == "dpo" and "reference" in parts:   # the reference runs inside compute_loss
                parts["policy_fwd"] -= parts["reference"]
            rows.append(finish(now() - self.t, parts, method))
            self.peak_mb = self.mem.stop() or self.peak_mb

    clock = StepClock()
    trainer.add_callback(clock)
    return clock, rows


def trl_grpo(task, tok, problems, size, args):
    by_prompt = {p.prompt: p for p in problems}

    def add_reward(prompts, completions, **kw):
        return [task.verify(by_prompt[p], c) for p, c in zip(prompts, completions)]

    model = trl_bridge.tiny_llama(tok, **size, seed=0)
    trainer = trl_compare.make_grpo_trainer(
        model, tok, [p.prompt for p in problems], add_reward,
        per_device_train_batch_size=args.prompts * args.group, num_generations=args.group,
        max_completion_length=args.max_new, beta=0.04, loss_type="grpo", num_iterations=1,
        learning_rate=1e-4, use_bias_correction_kl=False, max_steps=args.repeats + 2)
    return (trainer, *_instrument(trainer, "grpo"))


def trl_dpo(task, tok, problems, size, args):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = preference_rows(task, problems, args.pairs * 4)
    model = trl_bridge.tiny_llama(tok, **size, seed=0)
    live = args.dpo_ref == "live"
    cfg = trl_bridge.trl_args(DPOConfig, per_device_train_batch_size=args.pairs, beta=0.1,
                              learning_rate=1e-4, max_steps=args.repeats + 2,
                              precompute_ref_log_probs=not live)
    with trl_bridge.quiet():
        trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model) if live else None,
                             args=cfg, train_dataset=Dataset.from_list(rows),
                             processing_class=trl_bridge.hf_tokenizer(tok))
    trl_bridge.silence(trainer)
    return (trainer, *_instrument(trainer, "dpo"))


def with_peak_memory(step):
    """(row, peak MiB) of one ``step()`` run while ``PeakRSS`` watches."""
    mem = PeakRSS()
    mem.start()
    row = step()
    return row, mem.stop()


def alternate(trainer, clock, trl_rows, runner, n):
    """n + 2 TRL steps, each followed by one refimpl step: the first of each is a dropped
    warm-up, the last is watched for peak memory and not timed. Returns ({"trl": rows,
    "refimpl": rows}, {"trl": MiB, "refimpl": MiB})."""
    from transformers import TrainerCallback

    ours, peak = [], {}

    class RefimplAfterEachStep(TrainerCallback):   # added after StepClock, so it runs after it
        def on_step_end(self, args, state, *a, **k):
            if state.global_step == state.max_steps:
                peak["refimpl"] = with_peak_memory(runner.step)[1]
            else:
                ours.append(runner.step())

    trainer.add_callback(RefimplAfterEachStep())
    with trl_bridge.quiet():
        trainer.train()
    peak["trl"] = clock.peak_mb
    return {"trl": trl_rows[1:-1], "refimpl": ours[1:]}, peak


def refimpl_alone(runner, n):
    """n + 1 refimpl steps (the first dropped) and one more watched for memory."""
    rows = [runner.step() for _ in range(n + 1)][1:]
    return {"refimpl": rows}, {"refimpl": with_peak_memory(runner.step)[1]}


# ---------------------------------------------------------------- compute floor ---------

def linear_shapes(model):
    """(in, out) of every matmul weight in the transformer body, and (C, V) of the head."""
    body, head = [], None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            if name.endswith("lm_head"):
                head = (mod.in_features, mod.out_features)
            else:
                body.append((mod.in_features, mod.out_features))
    return body, head


def matmul_rate(shapes, rows, repeats=30):
    """Best FLOP/s of x (rows, in) @ W (in, out) over ``shapes`` in ``repeats`` sweeps (the
    fastest sweep: what the machine can do at these shapes when nothing else interferes)."""
    xs = [(torch.randn(rows, i), torch.randn(o, i)) for i, o in shapes]
    flops = sum(2 * rows * i * o for i, o in shapes)
    times = []
    for _ in range(repeats + 1):
        t = now()
        for x, w in xs:
            F.linear(x, w)
        times.append(now() - t)
    return flops / min(times[1:])


def floor_seconds(model, method, rows, groups, P, T, live_ref=False) -> dict:
    """The compute floor of one step: {"plain": (flops, s), "shared": (flops, s)}.

    Matmul FLOPs (body, LM head at the predicting positions, attention as 4 C x context per
    query and layer) at this machine's best measured rate for the same shapes. "plain": every
    one of the ``rows`` sequences runs its own prompt (TRL). "shared": each of the ``groups``
    distinct prompts runs once per forward and once in sampling (refimpl's ``group_size``).
    Backward counts as twice the forward; GRPO adds the reference forward and sampling (a
    prompt pass and T-1 one-token steps), DPO the reference only with ``live_ref``.
    """
    body, head = linear_shapes(model)
    C, V = head
    per_tok = 2 * sum(i * o for i, o in body)                    # body FLOPs per position
    n_layer = model.config.n_layer
    rates = {}

    def run(n_rows, n_new, past, n_head):
        """(flops, seconds) of n_rows sequences computing n_new positions after ``past``."""
        flops = n_rows * (n_new * per_tok + 2 * C * V * n_head
                          + 4 * C * n_layer * sum(past + i for i in range(1, n_new + 1)))
        m = max(1, n_rows * n_new)
        if m not in rates:
            rates[m] = matmul_rate(body + [head], m)
        return flops, flops / rates[m]

    def total(parts):
        return tuple(sum(x) for x in zip(*parts))

    n_fwd = 3 + (1 if (method == "grpo" or live_ref) else 0)     # fwd + 2x bwd (+ reference)
    out = {}
    for kind, n_prompts in (("plain", rows), ("shared", groups)):
        fwd = [run(rows, P + T - 1, 0, T)] if kind == "plain" else \
            [run(groups, P, 0, 1), run(rows, T - 1, P, T - 1)]
        parts = [tuple(n_fwd * x for x in total(fwd))]
        if method == "grpo":                                     # prompt pass + decode steps
            parts += [run(n_prompts, P, 0, 1)] + [run(rows, 1, P + t - 1, 1) for t in range(1, T)]
        out[kind] = total(parts)
    return out


# ---------------------------------------------------------------- report ----------------

def median_row(rows):
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def report(method, unit, per_step, res, floor):
    """Print the phase medians, the throughputs, the ratio and the floors; return them."""
    print(f"\n== {method.upper()}: {per_step} {unit} per step ==")
    names = list(res)
    print(f"{'phase (ms, median)':<20}" + "".join(f"{n:>12}" for n in names))
    med = {n: median_row(res[n]) for n in names}
    for p in PHASES[method] + ("step",):
        print(f"{p:<20}" + "".join(f"{med[n][p] * 1e3:>12.1f}" for n in names))
    rate = {n: per_step / med[n]["step"] for n in names}
    print(f"{unit + '/s':<20}" + "".join(f"{rate[n]:>12.0f}" for n in names))
    (flops, floor_s), (flops_sh, floor_sh) = floor["plain"], floor["shared"]
    own = {"trl": floor_s, "refimpl": floor_sh}                  # the work each one does
    reach = {n: own[n] / med[n]["step"] for n in names}
    print(f"floor, every row runs its prompt: {flops / 1e6:.0f} MFLOP/step = {floor_s * 1e3:.1f} ms "
          f"at the measured matmul rate; prompt shared per group: {flops_sh / 1e6:.0f} MFLOP = "
          f"{floor_sh * 1e3:.1f} ms")
    print("share of its own floor reached: " + ", ".join(
        f"{n} {reach[n]:.0%} (of the {'plain' if n == 'trl' else 'shared'} floor)" for n in names))
    if "trl" in rate:
        print(f"ratio refimpl / TRL: {rate['refimpl'] / rate['trl']:.2f}x")
    return {"per_step": per_step, "unit": unit, "median_ms": {n: {k: v * 1e3 for k, v in med[n].items()}
            for n in names}, "per_s": rate, "floor_ms": floor_s * 1e3, "mflop_per_step": flops / 1e6,
            "floor_shared_ms": floor_sh * 1e3, "mflop_shared": flops_sh / 1e6,
            "floor_reached": reach}


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; --clock cpu needs --threads 1."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per implementation, alternated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: count this process's CPU time (with --threads 1: robust to a shared "
                         "machine, since time spent waiting for a core is not counted)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--dpo-ref", choices=("precomputed", "live"), default="precomputed")
    ap.add_argument("--only", choices=("grpo", "dpo"), default=None)
    ap.add_argument("--no-trl", action="store_true", help="time refimpl only")
    ap.add_argument("--tiny", action="store_true", help="1 layer x 32 wide (smoke test)")
    ap.add_argument("--width", type=int, default=128, help="n_embd (heads: one per 32 channels)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--digits", type=int, default=2, help="addition operands (DPO answer length)")
    ap.add_argument("--json", default=None, help="write the medians to this file")
    args = ap.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu needs --threads 1 (CPU time adds up over threads)")
    return args


def bench_method(method: str, task, tok, problems, size, args, use_trl: bool) -> dict:
    """Time one method's steps (alternating with TRL's when use_trl), print the peak memory of
    a step and return the method's report (with "peak_mb")."""
    ours = (RefimplGRPO if method == "grpo" else RefimplDPO)(task, tok, problems, size, args)
    if use_trl:                                                # TRL, refimpl, TRL, ...
        theirs = (trl_grpo if method == "grpo" else trl_dpo)(task, tok, problems, size, args)
        res, peak = alternate(*theirs, ours, args.repeats)
    else:
        res, peak = refimpl_alone(ours, args.repeats)
    rows = args.prompts * args.group if method == "grpo" else 2 * args.pairs
    P, T = ours.shape
    live = args.dpo_ref == "live"
    # refimpl's GPT shapes for both (TRL's Llama has the same FLOPs within 1 %).
    groups = args.prompts if method == "grpo" else args.pairs
    floor = floor_seconds(ours.policy, method, rows, groups, P, T, live)
    per_step, unit = (rows, "completions") if method == "grpo" else (args.pairs, "pairs")
    result = report(method, unit, per_step, res, floor)
    result["peak_mb"] = peak
    print("peak memory of a step above its start (MiB): " + ", ".join(
        f"{n} {'n/a' if v is None else f'{v:.1f}'}" for n, v in peak.items()))
    return result


def main(argv=None):
    """Time refimpl's (and TRL's) GRPO and DPO steps; returns {method: report}."""
    args = parse_args(argv)
    global now
    now = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    use_trl = not args.no_trl and trl_bridge.trl_available()
    if not args.no_trl and not use_trl:
        print(f"TRL {trl_bridge.TRL_SERIES} not installed ({trl_bridge.INSTALL_HINT}): timing refimpl only")
    task, tok, problems, size = setting(args)
    version = f", trl {trl_bridge.require_trl().__version__}" if use_trl else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads{version}, model {size}, "
          f"{args.clock} clock")
    out = {method: bench_method(method, task, tok, problems, size, args, use_trl)
           for method in ("grpo", "dpo") if args.only in (None, method)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out

if __name__ == "__main__":
    sys.exit(0 if main() else 1)
