"""A character-level tokenizer over a task's alphabet, with PAD, BOS and EOS.

Prompts are LEFT-padded so that every completion in a batch starts at the same column;
completions are RIGHT-padded and end with EOS, which belongs to the completion (the policy
must learn to stop).
"""
from __future__ import annotations

import torch

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


class CharTokenizer:
    """Maps each character of ``alphabet`` to one id; ids 0, 1, 2 are PAD, BOS, EOS."""

    def __init__(self, alphabet: str):
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet has repeated characters: {alphabet!r}")
        self.alphabet = alphabet
        self.itos = [PAD, BOS, EOS] + list(alphabet)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Characters to ids; a character outside the alphabet is an error."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} in {text!r} is not in the tokenizer's "
                             f"alphabet {self.alphabet!r}") from None

    def decode(self, ids) -> str:
        """Ids to text, stopping at the first EOS and skipping PAD and BOS."""
        out = []
        for i in (ids.tolist() if torch.is_tensor(ids) else ids):
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return "".join(out)

    def encode_prompts(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """BOS + prompt, left-padded. Returns ids (B, P) long and mask (B, P) bool."""
        seqs = [[self.bos_id] + self.encode(p) for p in prompts]
        P = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), P), self.pad_id, dtype=torch.long)   # (B, P)
        for b, s in enumerate(seqs):
            ids[b, P - len(s):] = torch.tensor(s)
        return ids, ids != self.pad_id

    def encode_completions(self, completions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """completion + EOS, right-padded. Returns ids (B, T) long and mask (B, T) bool."""
        seqs = [self.encode(c) + [self.eos_id] for c in completions]
        T = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), T), self.pad_id, dtype=torch.long)   # (B, T)
        for b, s in enumerate(seqs):
            ids[b, :len(s)] = torch.tensor(s)
        return ids, ids != self.pad_id

    def decode_completions(self, ids: torch.Tensor) -> list[str]:
        """Decode each row of a (B, T) completion tensor."""
        return [self.decode(row) for row in ids]
