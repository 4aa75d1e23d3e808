"""Exercise: the sequence log-probability of a completion, with a completion mask.

Every method in this course scores a completion y = (y_1, ..., y_T) of a prompt x by

    log pi_theta(y | x) = sum_t  m_t * log softmax(z_t)[y_t],

where z_t (V numbers) are the model's logits that predict completion token t and m_t is
True for real completion tokens (EOS included) and False for padding. The DPO loss
(Rafailov et al. 2023, eq. 7) compares these sums under the policy and the reference, and
GRPO (Shao et al. 2024, eq. 3) and REINFORCE use them (or their per-token terms) in their
importance ratios and policy gradients. Getting the mask or the alignment wrong by one
column silently trains on padding or on the wrong tokens, so it is worth writing once by hand.

Alignment: the caller has already cut the logits so that column t of ``logits`` is the
prediction for ``completion_ids[:, t]`` (for a decoder that means the logits at the position
just before that token; refimpl.core.logprobs.completion_logits does the cut). No shifting here.

The reference implementation lives in refimpl/core/logprobs.py; do not import it here.
"""
import torch


def sequence_logprobs_from_logits(logits: torch.Tensor, completion_ids: torch.Tensor,
                                  completion_mask: torch.Tensor) -> torch.Tensor:
    """Sum of the log-probabilities of the completion tokens, ignoring masked positions.

    Args:
        logits: (B, T, V) float logits; ``logits[b, t]`` are the unnormalised scores of the
            model's prediction for completion token t of row b.
        completion_ids: (B, T) int64 token ids in [0, V). Ids at masked positions (padding)
            can be any valid id and must not matter.
        completion_mask: (B, T) bool, True for the completion tokens that count (the
            answer and its EOS), False for padding.

    Returns:
        (B,) floating tensor (float32 for float32 logits): for each row b,
        sum over t with completion_mask[b, t] of log_softmax(logits[b, t])[completion_ids[b, t]].
        A row whose mask is all False gives 0. The result is differentiable with respect
        to ``logits`` (it is used inside losses).

    Example:
        With all-zero logits every token has probability 1/V, so a row with n unmasked
        tokens gives -n * log(V).

    Hints: torch.log_softmax(..., dim=-1), Tensor.gather(-1, index) with index of shape
    (B, T, 1), and torch.where (or masked_fill) to zero the masked positions. Multiplying by
    the mask also works for finite logits, but a NaN or inf there would leak through.
    """
    if logits.dim() != 3 or logits.shape[:2] != completion_ids.shape or completion_ids.shape != completion_mask.shape:
        raise ValueError(f"shape mismatch: logits {tuple(logits.shape)} must be (B, T, V) and completion_ids "
                         f"{tuple(completion_ids.shape)} and completion_mask {tuple(completion_mask.shape)} (B, T)")
    if completion_mask.dtype != torch.bool:
        raise ValueError(f"completion_mask must be torch.bool, got {completion_mask.dtype}; use mask.bool()")
    # BEGIN SOLUTION
    logps = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    safe_ids = completion_ids.masked_fill(~completion_mask, 0)  # (B, T) any valid id where masked
    token_logps = logps.gather(-1, safe_ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    token_logps = torch.where(completion_mask, token_logps, torch.zeros_like(token_logps))  # (B, T)
    return token_logps.sum(dim=-1)  # (B,)
    # END SOLUTION
