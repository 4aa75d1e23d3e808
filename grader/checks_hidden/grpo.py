"""Hidden checks for exercises/grpo.py: fresh seeds, group sizes, eps and clip ranges."""
import torch

from grader.checks.grpo import _adv, _batch, _loss
from grader.reference import expected as reference


def check_hidden_advantages(mod):
    g = torch.Generator().manual_seed(101)
    for G, eps in [(5, 1e-3), (2, 0.5), (6, 1e-6)]:
        rewards = torch.randint(0, 3, (4 * G,), generator=g).double()
        adv = _adv(mod, rewards, G, eps=eps)
        want = reference("grpo.group_advantages", rewards, G, eps=eps)
        assert torch.allclose(adv, want, atol=1e-9), f"advantages (G={G}, eps={eps}) differ from the reference"


def check_hidden_clipped_loss(mod):
    for seed, agg, eps in [(102, "grpo", 0.15), (103, "dapo", 0.4)]:
        logps, old, adv, mask = _batch(5, 9, seed, spread=0.6)
        got = _loss(mod, logps, old, adv, mask, clip_eps=eps, loss_agg=agg)
        want = reference("grpo.grpo_clipped_loss", logps, old, adv, mask, clip_eps=eps, loss_agg=agg)
        assert abs(got.item() - want.item()) < 1e-9, f'loss (loss_agg="{agg}", clip_eps={eps}) differs'


EXERCISES = {
    "group_advantages": [check_hidden_advantages],
    "grpo_clipped_loss": [check_hidden_clipped_loss],
}
