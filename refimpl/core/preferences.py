"""Preference pairs from the base policy's own samples, judged by the verifier.

DPO needs a fixed data set of triples (x, y_w, y_l): a prompt, a preferred ("chosen") and a
dispreferred ("rejected") completion. On a task with a verifier they can be built without
people, as in iterative reasoning preference optimisation (Pang et al. 2024, "Iterative
Reasoning Preference Optimization", sec. 2.1): sample K completions per training prompt from
the base policy, score each with the verifier, and pair a correct completion (y_w) with a
wrong one (y_l). A group whose K samples are all correct or all wrong yields no pair.

A *noisy labeller* (``flip_labels``) swaps y_w and y_l of each pair independently with
probability eps, the noise model behind conservative DPO (Mitchell 2023) used for claim C5.

``comparison_counts`` counts, from the same (B, G) reward table, how many comparisons each
method extracts per generated sample (claim C6). GRPO's centred advantage is an average of
pairwise reward differences: for one group,

    sum_i (r_i - mean(r)) g_i = (1/G) sum_{i<j} (r_i - r_j) (g_i - g_j),

so a group of G samples holds G(G-1)/2 implicit comparisons, of which c(G-c) are informative
(non-zero) when c of the G samples are correct. DPO uses one comparison per pair of samples.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, fields

import torch

from refimpl.core.rollouts import sample_groups

_TENSORS = ("prompt_ids", "prompt_mask", "chosen_ids", "chosen_mask",
            "rejected_ids", "rejected_mask", "flipped")


@dataclass
class PreferencePairs:
    """N preference pairs (x, y_w, y_l) as padded token tensors plus their texts.

    Prompts are left-padded (N, P); chosen and rejected completions are right-padded to a
    common width T and end with EOS (N, T). ``flipped[i]`` is True when the noisy labeller
    swapped pair i, so that its "chosen" completion is in truth the wrong one.
    """

    problems: list                 # N problems, one per pair (a prompt may give several pairs)
    prompt_ids: torch.Tensor       # (N, P) long, left-padded
    prompt_mask: torch.Tensor      # (N, P) bool
    chosen_ids: torch.Tensor       # (N, T) long, right-padded, EOS included
    chosen_mask: torch.Tensor      # (N, T) bool
    rejected_ids: torch.Tensor     # (N, T) long
    rejected_mask: torch.Tensor    # (N, T) bool
    chosen_texts: list             # N decoded chosen completions
    rejected_texts: list           # N decoded rejected completions
    flipped: torch.Tensor          # (N,) bool, True where the label was swapped
    stats: dict = field(default_factory=dict)   # how the pairs were made (see build_pairs)

    def __len__(self) -> int:
        return self.prompt_ids.shape[0]

    def __getitem__(self, idx) -> "PreferencePairs":
        """A subset of the pairs: ``idx`` is a slice, a list of ints or a (n,) index tensor."""
        if isinstance(idx, int):
            idx = [idx]
        rows = torch.arange(len(self))[idx].tolist()
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _TENSORS:
            kw[name] = kw[name][rows]
        for name in ("problems", "chosen_texts", "rejected_texts"):
            kw[name] = [kw[name][i] for i in rows]
        kw["stats"] = dict(self.stats)
        return PreferencePairs(**kw)

    def to(self, device) -> "PreferencePairs":
        """The same pairs with every tensor on ``device``."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _TENSORS:
            kw[name] = kw[name].to(device)
        return PreferencePairs(**kw)

    def split(self, n_first: int) -> tuple["PreferencePairs", "PreferencePairs"]:
        """The first ``n_first`` pairs and the rest (pairs keep their prompt order)."""
        if not 0 < n_first < len(self):
            raise ValueError(f"n_first must lie in (0, {len(self)}), got {n_first}")
        return self[:n_first], self[n_first:]


def check_pairs(name: str, value) -> None:
    """``value`` is None or a non-empty PreferencePairs (trainers' input check)."""
    if value is None:
        return
    if not isinstance(value, PreferencePairs):
        raise TypeError(f"{name} must be PreferencePairs (refimpl.core.preferences.build_pairs makes "
                        f"them) or None to build them, got {type(value).__name__}")
    if len(value) == 0:
        raise ValueError(f"{name} is empty: give at least one preference pair, or None to "
                         "build them from base samples")


def _pad_stack(rows: list[torch.Tensor], pad) -> torch.Tensor:
    """Right-pad 1-D tensors to a common length and stack them: (N, T)."""
    T = max(r.shape[0] for r in rows)
    out = torch.full((len(rows), T), pad, dtype=rows[0].dtype, device=rows[0].device)  # (N, T)
    for i, r in enumerate(rows):
        out[i, :r.shape[0]] = r
    return out


def pair_rows(rewards: torch.Tensor, pairs_per_prompt: int, rng: random.Random
              ) -> tuple[list[int], list[int]]:
    """Rows (of the flattened B*G rollout) of the chosen and of the rejected sample of each
    pair: inside each group of rewards (B, G), shuffled correct samples meet shuffled wrong
    ones, at most ``pairs_per_prompt`` pairs per group, each sample used once."""
    B, G = rewards.shape
    chosen, rejected = [], []
    for b in range(B):
        good = [b * G + g for g in range(G) if rewards[b, g] == 1]
        bad = [b * G + g for g in range(G) if rewards[b, g] == 0]
        rng.shuffle(good)
        rng.shuffle(bad)
        for w, l in list(zip(good, bad))[:pairs_per_prompt]:
            chosen.append(w)
            rejected.append(l)
    return chosen, rejected


def pairs_from_rollout(rollout, tok, pairs_per_prompt: int = 1, seed: int = 0) -> PreferencePairs:
    """Pair correct (reward 1) with wrong (reward 0) samples inside each group of a Rollout.

    rollout: a ``refimpl.core.rollouts.Rollout`` (B prompts x G samples, group-major) whose
        rewards are binary verifier scores in {0, 1}.
    pairs_per_prompt: at most this many pairs per prompt; each sample is used at most once,
        so a group with c correct samples gives min(pairs_per_prompt, c, G - c) pairs.
    seed: which correct and which wrong samples are paired (a python ``random.Random``).
    """
    if pairs_per_prompt < 1:
        raise ValueError(f"pairs_per_prompt must be >= 1, got {pairs_per_prompt}")
    G = rollout.group_size
    rewards = rollout.rewards.detach().cpu().view(-1, G)                 # (B, G)
    if not torch.all((rewards == 0) | (rewards == 1)):
        raise ValueError("pairs_from_rollout needs binary verifier rewards in {0, 1}; "
                         "got other values: score the rollout with task.verify")
    chosen, rejected = pair_rows(rewards, pairs_per_prompt, random.Random(seed))
    if not chosen:
        raise ValueError("no group had both a correct and a wrong sample, so no pair can be "
                         "formed: use more prompts, a larger group size or a higher temperature")
    c_mask = rollout.completion_mask[chosen]                             # (N, T)
    r_mask = rollout.completion_mask[rejected]                           # (N, T)
    T = int(torch.cat([c_mask, r_mask]).sum(1).max())                    # longest completion
    pairs = PreferencePairs(
        problems=[rollout.problems[i // G] for i in chosen],
        prompt_ids=rollout.prompt_ids[chosen],                           # (N, P)
        prompt_mask=rollout.prompt_mask[chosen].bool(),                  # (N, P)
        chosen_ids=rollout.completion_ids[chosen][:, :T],                # (N, T)
        chosen_mask=c_mask[:, :T].bool(),                                # (N, T)
        rejected_ids=rollout.completion_ids[rejected][:, :T],            # (N, T)
        rejected_mask=r_mask[:, :T].bool(),                              # (N, T)
        chosen_texts=[rollout.texts[i] for i in chosen],
        rejected_texts=[rollout.texts[i] for i in rejected],
        flipped=torch.zeros(len(chosen), dtype=torch.bool, device=rollout.prompt_ids.device),
    )
    pairs.stats = {"prompts": rewards.shape[0], "group_size": G,
                   "samples_generated": rewards.numel(), "pairs": len(pairs),
                   "pairs_per_prompt": pairs_per_prompt,
                   "sample_accuracy": rewards.mean().item(),
                   **comparison_counts(rewards, pairs_per_prompt)}
    return pairs


def build_pairs(model, tok, task, problems, group_size: int = 8, pairs_per_prompt: int = 1,
                temperature: float = 1.0, seed: int = 0, reward_fn=None) -> PreferencePairs:
    """Sample ``group_size`` completions per problem from ``model``, judge them, pair them.

    problems: B training problems; group_size: G >= 2 samples per problem.
    reward_fn(problem, text) -> {0., 1.}: the verifier, ``task.verify`` by default.
    Returns the pairs (N <= B * pairs_per_prompt) with ``stats`` recording the samples
    generated, the pairs made and the comparison counts of ``comparison_counts``.
    """
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 to find a correct and a wrong sample, "
                         f"got {group_size}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    device = next(model.parameters()).device
    gen = torch.Generator(device).manual_seed(seed)
    rollout = sample_groups(model, tok, task, problems, group_size, reward_fn=reward_fn,
                            temperature=temperature, generator=gen)
    return pairs_from_rollout(rollout, tok, pairs_per_prompt, seed)


def flip_labels(pairs: PreferencePairs, eps: float, seed: int = 0) -> PreferencePairs:
    """A noisy labeller: swap chosen and rejected of each pair independently with prob. eps.

    Returns new pairs whose ``flipped`` marks the swapped ones (relative to the verifier's
    labels: flipping a flipped pair restores it). eps must lie in [0, 1].
    """
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps is a flip probability and must lie in [0, 1], got {eps}")
    gen = torch.Generator().manual_seed(seed)
    flip = (torch.rand(len(pairs), generator=gen) < eps).to(pairs.flipped.device)  # (N,)
    out = pairs[:]
    f = flip[:, None]                                                    # (N, 1)
    out.chosen_ids = torch.where(f, pairs.rejected_ids, pairs.chosen_ids)        # (N, T)
    out.rejected_ids = torch.where(f, pairs.chosen_ids, pairs.rejected_ids)      # (N, T)
    out.chosen_mask = torch.where(f, pairs.rejected_mask, pairs.chosen_mask)     # (N, T)
    out.rejected_mask = torch.where(f, pairs.chosen_mask, pairs.rejected_mask)   # (N, T)
    fl = flip.tolist()
    out.chosen_texts = [r if s else c for c, r, s in
                        zip(pairs.chosen_texts, pairs.rejected_texts, fl)]
    out.rejected_texts = [c if s else r for c, r, s in
                          zip(pairs.chosen_texts, pairs.rejected_texts, fl)]
    out.flipped = pairs.flipped ^ flip                                   # (N,)
    out.stats = {**pairs.stats, "flip_eps": eps, "flipped": int(flip.sum())}
    return out


def comparison_counts(rewards: torch.Tensor, pairs_per_prompt: int = 1) -> dict:
    """How many comparisons DPO and GRPO extract from the same B x G samples (claim C6).

    rewards: (B, G) binary rewards of G samples for each of B prompts.
    Returns counts and per-generated-sample rates:
      ``dpo_comparisons``: pairs DPO trains on (min(pairs_per_prompt, c, G - c) per group),
      ``dpo_samples_used``: the distinct samples in those pairs (2 per pair: they are disjoint),
      ``grpo_nonzero_advantages``: samples with a non-zero group advantage (G per mixed group),
      ``grpo_informative_comparisons``: sample pairs in a group with different rewards, c(G-c),
      ``grpo_implicit_comparisons``: all pairs inside the groups, B G(G-1)/2,
      ``frac_reward_zero_std``: share of groups whose G rewards are all equal,
    and each count divided by the B*G generated samples as ``<name>_per_sample``.

    Independent information is counted in samples, not comparisons: each sample brings one
    reward, and the c(G-c) right/wrong comparisons of a group reuse the same G samples (each
    sample sits in c or G - c of them), so they are correlated. ``dpo_samples_used`` against
    ``grpo_nonzero_advantages`` is the fair ratio; the comparison counts overstate it.
    """
    rewards = torch.as_tensor(rewards).float()
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be (B, G) with G >= 2, got shape {tuple(rewards.shape)}")
    B, G = rewards.shape
    c = (rewards > 0.5).sum(1)                                           # (B,) correct per group
    mixed = (c > 0) & (c < G)                                            # (B,)
    dpo = int(torch.minimum(torch.minimum(c, G - c), torch.full_like(c, pairs_per_prompt)).sum())
    counts = {
        "dpo_comparisons": dpo,
        "dpo_samples_used": 2 * dpo,
        "grpo_nonzero_advantages": int(G * mixed.sum()),
        "grpo_informative_comparisons": int((c * (G - c)).sum()),
        "grpo_implicit_comparisons": B * G * (G - 1) // 2,
    }
    out = dict(counts, frac_reward_zero_std=1.0 - mixed.float().mean().item())
    for name, v in counts.items():
        out[name + "_per_sample"] = v / (B * G)
    return out


def pair_batches(N: int, batch_size: int, gen):
    """Endless batches of pair indices (batch_size,), a fresh permutation of the N
    pairs each epoch (an epoch's last, short batch is skipped)."""
    order, pos = torch.randperm(N, generator=gen), 0
    while True:
        if pos + batch_size > N:                                         # next epoch
            order, pos = torch.randperm(N, generator=gen), 0
        yield order[pos:pos + batch_size]                                # (B,)
        pos += batch_size
