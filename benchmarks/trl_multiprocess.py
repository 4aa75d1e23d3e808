"""TRL's GRPO and DPO trainers on the curriculum's task, data-parallel over processes.

    # two processes on the CPU (gloo), every flag given so that no accelerate config is read:
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no --num_cpu_threads_per_process 1 --main_process_port 29517 \
        benchmarks/trl_multiprocess.py --method grpo dpo --steps 2 --out runs/two
    # the same global batch on one process:
    python benchmarks/trl_multiprocess.py --method grpo dpo --steps 2 --out runs/one

Each process trains ``trl_bridge.tiny_llama`` (1 layer x 32 wide unless told otherwise) on
2-digit addition with ``global_batch / num_processes`` rows per device, so that one and N
processes take steps on the same global batch: accelerate's DDP averages the gradients, TRL
gathers the logged loss. Each rank writes ``<out>/<method>/rank<r>.pt`` (its parameters after the last
step and TRL's log history), which ``tests/experiments/to_trl/test_multiprocess.py`` compares across ranks and
against the one-process run.

GRPO samples completions, and a sampled batch depends on how rows are split over processes
(each process draws from its own random stream). So that one and two processes see the same
completions, the policy's ``generate`` is replaced by Gumbel-max sampling from the policy's own
softmax(logits / temperature) with a noise stream keyed by (prompt, sample index in the
group, step): the same distribution as TRL's sampler, made independent of the process layout.
Everything after sampling (rewards, reference log-probs, group advantages, the ``dapo`` loss
normalised over the tokens of all processes, backward, all-reduce, AdamW) is TRL's own code.
The reward is the task's outcome verifier plus the share of characters that match the
demonstration, so that a random model's groups already differ in reward.

``--multi_gpu`` only selects accelerate's torchrun launcher (``--cpu`` would start a single
process; accelerate's own multi-CPU launch needs mpirun): TRL's config here says
``use_cpu=True``, so each process stays on the CPU and torch.distributed uses gloo. On several
GPUs (not run here) the same command with ``--num_processes <gpus>`` uses NCCL once
``trl_bridge.trl_args``' ``use_cpu=True`` is dropped.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import zlib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from anywhere

from refimpl.experiments.to_trl import trl_bridge, trl_compare  # noqa: E402
from refimpl.core.tasks import get_task  # noqa: E402
from refimpl.core.tokenizer import CharTokenizer  # noqa: E402


def keyed_generate(model, trainer, max_new: int, temperature: float, eos_id: int, pad_id: int):
    """A ``generate`` for ``model`` that samples each row with noise keyed by its content.

    Row r holds prompt x (left-padded ids with its attention mask) and is the j-th row of this
    batch with that prompt; its Gumbel noise comes from a generator seeded with
    crc32((x, j, global_step)). Gumbel-max, argmax(logits / temperature + g), draws from
    softmax(logits / temperature) (Gumbel 1954; Maddison et al. 2014).
    Returns (B, P + max_new) ids, PAD after EOS, as ``transformers`` ``generate``.
    """
    def generate(input_ids, attention_mask, **_):
        seen, gens = {}, []
        for row, keep in zip(input_ids.tolist(), attention_mask.tolist()):
            x = tuple(t for t, k in zip(row, keep) if k)
            j = seen[x] = seen.get(x, -1) + 1
            key = repr((x, j, trainer.state.global_step)).encode()
            gens.append(torch.Generator().manual_seed(zlib.crc32(key)))
        seq, mask = input_ids, attention_mask                                  # (B, P)
        done = torch.zeros(len(gens), dtype=torch.bool)                          # (B,)
        for _ in range(max_new):
            logits = model(input_ids=seq, attention_mask=mask).logits[:, -1]   # (B, V)
            u = torch.stack([torch.rand(logits.shape[-1], generator=g) for g in gens])  # (B, V)
            tok = (logits / temperature - torch.log(-torch.log(u))).argmax(-1)  # (B,)
            tok = torch.where(done, torch.full_like(tok, pad_id), tok)
            done |= tok == eos_id
            seq = torch.cat([seq, tok[:, None]], dim=1)                         # (B, L+1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)       # (B, L+1)
        return seq
    return generate


def grpo_trainer(tok, task, problems, size, args, world):
    by_prompt = {p.prompt: p for p in problems}

    def reward(prompts, completions, **kw):
        out = []
        for prompt, c in zip(prompts, completions):
            p = by_prompt[prompt]
            target = task.target(p)
            match = sum(a == b for a, b in zip(c, target)) / len(target)
            out.append(task.verify(p, c) + match)
        return out

    model = trl_bridge.tiny_llama(tok, **size, seed=0)
    trainer = trl_compare.make_grpo_trainer(
        model, tok, [p.prompt for p in problems], reward,
        per_device_train_batch_size=args.global_batch // world, num_generations=args.group,
        max_completion_length=args.max_new, beta=0.04, loss_type="dapo", num_iterations=1,
        learning_rate=args.lr, use_bias_correction_kl=False, max_steps=args.steps, seed=0,
        ddp_find_unused_parameters=False)
    trainer.model.generate = keyed_generate(trainer.model, trainer, args.max_new,
                                            trainer.args.temperature, tok.eos_id, tok.pad_id)
    return trainer


def dpo_trainer(tok, task, problems, size, args, world):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = []                                   # chosen: the working; rejected: a wrong answer
    for p in problems[:args.global_batch]:      # one full batch: every step sees all rows
        good = task.target(p)
        head, ans = good.split("|")
        rows.append({"prompt": p.prompt, "chosen": good, "rejected": f"{head}|{int(ans) + 1}"})
    model = trl_bridge.tiny_llama(tok, **size, seed=0)
    cfg = trl_bridge.trl_args(DPOConfig, per_device_train_batch_size=args.global_batch // world,
                              beta=0.1, learning_rate=args.lr, max_steps=args.steps,
                              precompute_ref_log_probs=False, seed=0,
                              ddp_find_unused_parameters=False)
    with trl_bridge.quiet():
        trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=cfg, train_dataset=Dataset.from_list(rows),
                             processing_class=trl_bridge.hf_tokenizer(tok))
    return trl_bridge.silence(trainer)


def build_parser() -> argparse.ArgumentParser:
    """The command line: methods, steps, global batch, group, model size and output folder."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", nargs="+", choices=("grpo", "dpo"), default=["grpo"],
                    help="one or both, trained one after the other in the same processes")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--global-batch", type=int, default=16,
                    help="completions (GRPO) or pairs (DPO) per optimiser step, over all processes")
    ap.add_argument("--group", type=int, default=4, help="GRPO completions per prompt")
    ap.add_argument("--max-new", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--size", default="1,32,2", help="n_layer,n_embd,n_head of the tiny Llama")
    ap.add_argument("--out", required=True, help="folder for <method>/rank<r>.pt")
    return ap


def train_and_save(trainer, method: str, args, world: int, rank: int) -> None:
    """Train, write this rank's ``<out>/<method>/rank<r>.pt`` (parameters after the last step,
    TRL's loss log, world size, backend, seconds) and, on rank 0, print the losses per step."""
    t = time.perf_counter()
    with trl_bridge.quiet():
        trainer.train()
    seconds = time.perf_counter() - t
    logs = [h for h in trainer.state.log_history if "loss" in h]
    model = trainer.accelerator.unwrap_model(trainer.model)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = Path(args.out) / method
    out.mkdir(parents=True, exist_ok=True)
    dist = torch.distributed.is_available() and torch.distributed.is_initialized()
    backend = torch.distributed.get_backend() if dist else None
    torch.save({"params": params, "logs": logs, "world": world, "backend": backend,
                "seconds": seconds},
               out / f"rank{rank}.pt")
    if rank == 0:
        print(f"{method}: {world} process(es), {args.steps} steps of {args.global_batch} in "
              f"{seconds:.2f} s; loss per step " + ", ".join(f"{h['loss']:.6f}" for h in logs))


def main(argv=None):
    """Train each --method with TRL in this process (one rank of the launch) and save its result."""
    ap = build_parser()
    args = ap.parse_args(argv)
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    if args.global_batch % (world * args.group):
        ap.error(f"--global-batch {args.global_batch} must split into {world} equal per-process "
                 f"batches, each a multiple of --group {args.group}")
    torch.set_num_threads(1)
    trl_bridge.require_trl()
    task = get_task("add", digits=2)
    tok = CharTokenizer(task.alphabet)
    problems = task.problems("train", 256, seed=0)
    size = dict(zip(("n_layer", "n_embd", "n_head"), map(int, args.size.split(","))))
    for method in args.method:
        make = grpo_trainer if method == "grpo" else dpo_trainer
        train_and_save(make(tok, task, problems, size, args, world), method, args, world, rank)


if __name__ == "__main__":
    main()
