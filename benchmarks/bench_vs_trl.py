"""refimpl against Hugging Face TRL 1.16 on the same CPU, in one run, alternating.

    python benchmarks/bench_vs_trl.py --repeats 3            # 2 threads, wall clock
    python benchmarks/bench_vs_trl.py --repeats 10 --threads 1 --clock cpu   # on a shared machine
    python benchmarks/bench_vs_trl.py --tiny --repeats 1     # smoke test (tests/)

GRPO: 2-digit addition prompts, 8 prompts x 8 completions per step, at most 4 new tokens,
beta 0.04, loss_type "grpo", one optimiser update per rollout. refimpl: a tight loop over
``sample_groups``, ``token_logprobs``, ``group_advantages``, ``grpo_loss``, AdamW. TRL:
``GRPOTrainer`` (transformers ``generate``, reference model forward, fused log-prob head).
DPO: 64 pairs per step, beta 0.1, reference log-probs precomputed in both (``--dpo-ref live``:
recomputed every step in both). Model: refimpl's GPT 4 layers x 128 wide x 4 heads (about
0.8M parameters); TRL trains ``trl_bridge.tiny_llama`` of the same size and FLOPs per token.

The two alternate step by step (TRL, refimpl, TRL, refimpl, ...; ``--repeats`` steps each,
after one warm-up step each that is dropped): a refimpl step runs from a callback at the end
of each TRL step, outside TRL's timed window, so a change in the machine's load hits both
alike. A step is timed from TRL's ``on_step_begin`` to ``on_step_end`` (sampling, scoring,
reference, loss, backward, clipping, optimiser); the DPO collator runs before it, as does
refimpl's indexing of pre-tokenised tensors. Printed: per-phase
medians in ms, throughput, refimpl / TRL ratio, and the compute floor: matmul FLOPs per step
divided by this machine's measured matmul rate at the same shapes, and the fraction of that
floor each implementation reaches (floor time / step time). ``--clock cpu`` (one thread)
counts this process's CPU time instead of wall time, so that time spent waiting for a core
on a busy machine is not counted. Figures, not assertions.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from refimpl import trl_bridge
from refimpl.dpo import dpo_loss
from refimpl.grpo import group_advantages, grpo_loss
from refimpl.logprobs import token_logprobs
from refimpl.model import GPT, GPTConfig
from refimpl.rollouts import sample_groups
from refimpl.tasks import get_task
from refimpl.tokenizer import CharTokenizer

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


def finish(step_s: float, parts: dict, method: str) -> dict:
    row = {p: parts.get(p, 0.0) for p in PHASES[method] if p != "optim_rest"}
    row["optim_rest"] = step_s - sum(row.values())
    row["step"] = step_s
    return row


# ---------------------------------------------------------------- the setting -----------

def setting(args):
    task = get_task("add", digits=2)
    tok = CharTokenizer(task.alphabet)
    problems = task.problems("train", 1024, seed=0)
    size = dict(n_layer=1, n_embd=32, n_head=2) if args.tiny else dict(n_layer=4, n_embd=128, n_head=4)
    return task, tok, problems, size


def refimpl_model(tok, size, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, **size))


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
        self.opt = torch.optim.AdamW(self.policy.parameters(), lr=1e-4, weight_decay=0.0)
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
            ref_logps = token_logprobs(self.ref, *args)                         # (B*G, T)
        with tm("policy_fwd"):
            logps = token_logprobs(self.policy, *args)                          # (B*G, T)
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
        self.p_ids, self.p_mask = tok.encode_prompts([r["prompt"] for r in rows])          # (N, P)
        ids, mask = tok.encode_completions([r["chosen"] for r in rows] + [r["rejected"] for r in rows])
        N = len(rows)
        self.c_ids, self.c_mask, self.r_ids, self.r_mask = ids[:N], mask[:N], ids[N:], mask[N:]
        self.policy = refimpl_model(tok, size).train()
        self.ref = copy.deepcopy(self.policy).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(self.policy.parameters(), lr=1e-4, weight_decay=0.0)
        self.live = args.dpo_ref == "live"
        if not self.live:                                  # precomputed once, as TRL's option
            with torch.no_grad():
                self.ref_c, self.ref_r = self.seq_logps(self.ref, torch.arange(N))
        self.i = 0
        self.shape = (self.p_ids.shape[1], self.c_ids.shape[1])

    def seq_logps(self, model, idx):
        n = len(idx)
        lp = token_logprobs(model, self.p_ids[idx].repeat(2, 1), self.p_mask[idx].repeat(2, 1),
                            torch.cat([self.c_ids[idx], self.r_ids[idx]]),
                            torch.cat([self.c_mask[idx], self.r_mask[idx]])).sum(-1)  # (2n,)
        return lp[:n], lp[n:]

    def step(self) -> dict:
        tm, B = Timer(), self.a.pairs
        t0 = now()
        idx = (torch.arange(B) + self.i) % self.p_ids.shape[0]                   # (B,)
        self.i += B
        if self.live:
            with tm("reference"), torch.no_grad():
                ref_c, ref_r = self.seq_logps(self.ref, idx)
        else:
            ref_c, ref_r = self.ref_c[idx], self.ref_r[idx]
        with tm("policy_fwd"):
            pc, pr = self.seq_logps(self.policy, idx)
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
        def on_step_begin(self, *a, **k):
            tm.cur, self.t = {}, now()

        def on_step_end(self, *a, **k):
            parts = dict(tm.cur)
            if method == "dpo" and "reference" in parts:   # the reference runs inside compute_loss
                parts["policy_fwd"] -= parts["reference"]
            rows.append(finish(now() - self.t, parts, method))

    trainer.add_callback(StepClock())
    return rows


def trl_grpo(task, tok, problems, size, args):
    by_prompt = {p.prompt: p for p in problems}

    def add_reward(prompts, completions, **kw):
        return [task.verify(by_prompt[p], c) for p, c in zip(prompts, completions)]

    model = trl_bridge.tiny_llama(tok, **size, seed=0)
    trainer = trl_bridge.make_grpo_trainer(
        model, tok, [p.prompt for p in problems], add_reward,
        per_device_train_batch_size=args.prompts * args.group, num_generations=args.group,
        max_completion_length=args.max_new, beta=0.04, loss_type="grpo", num_iterations=1,
        learning_rate=1e-4, use_bias_correction_kl=False, max_steps=args.repeats + 1)
    return trainer, _instrument(trainer, "grpo")


def trl_dpo(task, tok, problems, size, args):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = preference_rows(task, problems, args.pairs * 4)
    model = trl_bridge.tiny_llama(tok, **size, seed=0)
    live = args.dpo_ref == "live"
    cfg = trl_bridge.trl_args(DPOConfig, per_device_train_batch_size=args.pairs, beta=0.1,
                              learning_rate=1e-4, max_steps=args.repeats + 1,
                              precompute_ref_log_probs=not live)
    with trl_bridge.quiet():
        trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model) if live else None,
                             args=cfg, train_dataset=Dataset.from_list(rows),
                             processing_class=trl_bridge.hf_tokenizer(tok))
    trl_bridge.silence(trainer)
    return trainer, _instrument(trainer, "dpo")


def alternate(trainer, trl_rows, runner, n):
    """n + 1 TRL steps, each followed by one refimpl step; the first of each is dropped."""
    from transformers import TrainerCallback

    ours = []

    class RefimplAfterEachStep(TrainerCallback):   # added after StepClock, so it runs after it
        def on_step_end(self, *a, **k):
            ours.append(runner.step())

    trainer.add_callback(RefimplAfterEachStep())
    with trl_bridge.quiet():
        trainer.train()
    return trl_rows[1:], ours[1:]


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


def floor_seconds(model, method, rows, P, T, live_ref=False):
    """Matmul FLOPs of one step / the measured rate at the same shapes (attention included
    as 4 * C * context FLOPs per token per layer, run at the body's rate)."""
    body, head = linear_shapes(model)
    C = head[0]
    per_tok = 2 * sum(i * o for i, o in body)                    # body FLOPs per token
    n_layer = model.config.n_layer if hasattr(model.config, "n_layer") else model.config.num_hidden_layers
    S = P + T - 1                                                # positions in one forward
    attn = 4 * C * n_layer * S * (S + 1) / 2                     # QK^T and AV over a sequence
    seq_fwd = rows * (S * per_tok + attn + T * 2 * C * head[1])  # one full forward pass
    r_full = matmul_rate(body + [head], rows * S)
    floor = (1 + 2 + (1 if (method == "grpo" or live_ref) else 0)) * seq_fwd / r_full
    flops = (3 + (1 if (method == "grpo" or live_ref) else 0)) * seq_fwd
    if method == "grpo":                                         # prompt pass + T-1 decode steps
        prompt = rows * (P * per_tok + 4 * C * n_layer * P * (P + 1) / 2 + 2 * C * head[1])
        decode = rows * (T - 1) * (per_tok + 2 * C * head[1]) + rows * 4 * C * n_layer * sum(
            P + t for t in range(1, T))
        floor += prompt / matmul_rate(body + [head], rows * P) + decode / matmul_rate(body + [head], rows)
        flops += prompt + decode
    return flops, floor


# ---------------------------------------------------------------- report ----------------

def median_row(rows):
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def report(method, unit, per_step, res, floor):
    print(f"\n== {method.upper()}: {per_step} {unit} per step ==")
    names = list(res)
    print(f"{'phase (ms, median)':<20}" + "".join(f"{n:>12}" for n in names))
    med = {n: median_row(res[n]) for n in names}
    for p in PHASES[method] + ("step",):
        print(f"{p:<20}" + "".join(f"{med[n][p] * 1e3:>12.1f}" for n in names))
    rate = {n: per_step / med[n]["step"] for n in names}
    print(f"{unit + '/s':<20}" + "".join(f"{rate[n]:>12.0f}" for n in names))
    flops, floor_s = floor
    reach = {n: floor_s / med[n]["step"] for n in names}
    print(f"floor: {flops / 1e6:.0f} MFLOP/step at the measured matmul rate = {floor_s * 1e3:.1f} ms; "
          + ", ".join(f"{n} reaches {reach[n]:.0%} of it" for n in names))
    if "trl" in rate:
        print(f"ratio refimpl / TRL: {rate['refimpl'] / rate['trl']:.2f}x")
    return {"per_step": per_step, "unit": unit, "median_ms": {n: {k: v * 1e3 for k, v in med[n].items()}
            for n in names}, "per_s": rate, "floor_ms": floor_s * 1e3, "mflop_per_step": flops / 1e6,
            "floor_reached": reach}


def main(argv=None):
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
    ap.add_argument("--json", default=None, help="write the medians to this file")
    args = ap.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu needs --threads 1 (CPU time adds up over threads)")
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
    out = {}
    for method in ("grpo", "dpo"):
        if args.only not in (None, method):
            continue
        ours = (RefimplGRPO if method == "grpo" else RefimplDPO)(task, tok, problems, size, args)
        theirs, trows = (trl_grpo if method == "grpo" else trl_dpo)(task, tok, problems, size, args) \
            if use_trl else (None, None)
        if use_trl:                                                # TRL, refimpl, TRL, ...
            res = dict(zip(("trl", "refimpl"), alternate(theirs, trows, ours, args.repeats)))
        else:
            res = {"refimpl": [ours.step() for _ in range(args.repeats + 1)][1:]}
        rows = args.prompts * args.group if method == "grpo" else 2 * args.pairs
        P, T = ours.shape
        live = args.dpo_ref == "live"
        # One floor for both: refimpl's GPT shapes (TRL's Llama has the same FLOPs within 1 %).
        floor = floor_seconds(ours.policy, method, rows, P, T, live)
        per_step, unit = (rows, "completions") if method == "grpo" else (args.pairs, "pairs")
        out[method] = report(method, unit, per_step, res, floor)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
