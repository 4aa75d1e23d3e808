"""Exercise: read the dashboard of a run that went wrong, name the failure and the remedy.

Notebook 07 (when a run goes wrong) walks through the run clinic: failures that practitioners
report from GRPO and DPO runs, each reproduced on the arena, broken and fixed. Here you get
the dashboard of a run that nobody labelled, the metrics a TRL trainer logs, and write the
reader: which failure is it, and what would you change?

A dashboard is a dict from TRL metric name ("loss", "reward", "reward_std",
"frac_reward_zero_std", "entropy", "completions/mean_length", "grad_norm", "rewards/chosen",
"rewards/margins", "logps/chosen", "heldout_acc", ...) to one float per logged step; "step" is
one of them and every list has the same length. A GRPO run, a DPO run and an evaluation log
different metrics.

``exercises/diagnosis_runs/`` holds practice runs (run_01.json with its figure run_01.png),
unlabelled; the grader checks your reader on the clinic's teaching cases, and the autograder
on runs you have not seen. Check your work with ``python -m grader --only diagnosis``.
"""
import math

# The closed lists: diagnose answers with one label of each. They are the clinic's
# (refimpl.experiments.debugging.clinic), copied here; the order says nothing about any run.
# BEGIN LABELS (written by `python -m grader.make_diagnosis`; edit the clinic instead)
FAILURES = {
    'loss_zero_on_policy': (
        'GRPO loss is 0 at every step (or only creeps up) although the model trains'),
    'loss_sign_flips': 'GRPO loss is negative, and flips sign from step to step',
    'prompts_too_hard': 'reward and reward_std are 0, frac_reward_zero_std is 1: nothing trains',
    'identical_group_samples': 'reward_std is exactly 0 on prompts the policy half-solves',
    'completions_truncated': 'completions/clipped_ratio is 1 and every reward is 0',
    'ratio_detached': "clip_ratio is always 0, and detaching the ratio to 'fix' it stops learning",
    'dropout_mismatch': 'KL is large from the very first step, before the policy has moved',
    'k3_tail': 'KL spikes to hundreds of nats per token with the k3 estimator',
    'entropy_collapse': 'Entropy collapses and the samples of a group turn into copies',
    'lenient_reward_gamed': 'GRPO reward climbs to 1, but the answers are empty',
    'no_random_reward_control': 'RL gain reported without a random-reward control',
    'likelihood_displacement': 'DPO: logps/chosen keeps falling while rewards/margins grows',
    'completion_masked_out': 'DPO loss stuck at 0.6931, logps/chosen and logps/rejected exactly 0',
    'learning_rate_too_low': 'DPO loss does not move from 0.693',
}
REMEDIES = {
    'read_reward_not_loss': (
        'Nothing to repair: judge the run by reward, grad_norm and held-out '
        'accuracy, because the value of the GRPO loss is not a progress signal.'),
    'match_prompt_difficulty': (
        'Train on prompts the policy solves some of the time, and drop the groups '
        'whose rewards all agree (dynamic sampling).'),
    'distinct_sampling_seeds': 'Give every sample of a group its own random stream.',
    'raise_token_budget': 'Raise the generation budget above the length of a complete answer.',
    'keep_ratio_in_graph': (
        'Keep the importance ratio differentiable: it carries the policy gradient, '
        'and a clip_ratio of 0 is expected on-policy.'),
    'disable_dropout': (
        'Switch dropout off in the policy for RL training, so that its training '
        'pass, the sampler and the reference compute the same distribution.'),
    'lower_lr': (
        'Take smaller optimizer steps, so that the policy moves away from pi_old and '
        'pi_ref by little per update.'),
    'entropy_bonus': (
        'Add the exact mean token entropy, weighted, to the objective (an entropy '
        'bonus, best held as a floor), or let unlikely tokens grow further before '
        "the clip stops them (DAPO's clip-higher)."),
    'exact_verifier': (
        'Train on the exact verifier, and log it beside any other reward so that a '
        'gap between the two shows at once.'),
    'random_reward_control': (
        'Run the same pipeline with a coin-flip reward and report the gain over that '
        'control, not over the base.'),
    'add_nll_on_chosen': (
        "Add the NLL of the chosen completions to the DPO loss (RPO; TRL's "
        'rpo_alpha), which keeps their likelihood up while the margin grows.'),
    'fix_completion_mask': (
        'Put the completion tokens back in the loss mask: check one masked example, '
        'and keep max_length above prompt plus completion.'),
    'raise_learning_rate': (
        'Raise the learning rate until rewards/margins leaves 0 within the first few '
        'dozen steps.'),
}
# END LABELS

Dashboard = dict[str, list[float]]
LN2 = math.log(2)  # DPO's loss when the policy still equals the reference: -log sigmoid(0)


def mean(values: list[float]) -> float:
    """The mean of a non-empty list."""
    return sum(values) / len(values)


def logged(dashboard: Dashboard, *metrics: str) -> bool:
    """Whether the run logged every one of ``metrics``."""
    return all(m in dashboard for m in metrics)


def late(dashboard: Dashboard, metric: str) -> float:
    """The mean of ``metric`` over the last quarter of the logged steps (at least one)."""
    values = dashboard[metric]
    return mean(values[-max(1, len(values) // 4):])


def diagnose(dashboard: Dashboard) -> tuple[str, str]:
    """The failure this run shows and the remedy for it, read from its dashboard.

    Read it the way a practitioner reads a dashboard. First, what logged it: an evaluation
    against a comparison arm ("control/heldout_acc"), a DPO run ("rewards/margins") or a GRPO
    run ("reward"). For DPO, whether the loss sees any completion token and whether it moves
    at all, before asking where the probability goes. For GRPO, whether the reward is the one
    you meant (another grader logged beside it disagrees), what the KL to the reference does,
    whether the completions are whole, whether the groups carry any signal (a group whose
    samples share one reward has zero advantages), whether the gradient flows, whether the
    policy keeps exploring (entropy), and only then what the loss says, which in GRPO is not
    a progress meter. Guard each reading with ``logged``: runs log different metrics.

    Args:
        dashboard: {metric name: [one float per logged step]}, "step" included; do not modify it.

    Returns:
        (failure, remedy): a key of FAILURES and a key of REMEDIES.
    """
    # BEGIN SOLUTION
    d = dashboard
    if logged(d, "control/heldout_acc"):  # a before/after report whose comparison arm never moves
        return "no_random_reward_control", "random_reward_control"
    if logged(d, "rewards/margins", "logps/chosen", "loss"):  # DPO
        if max(abs(v) for v in d["logps/chosen"]) == 0:  # a sum over no token: the mask is empty
            return "completion_masked_out", "fix_completion_mask"
        if all(abs(v - LN2) < 0.005 for v in d["loss"][len(d["loss"]) // 2:]):  # still at ln 2: no step
            return "learning_rate_too_low", "raise_learning_rate"
        return "likelihood_displacement", "add_nll_on_chosen"  # margins grow while y_w loses mass
    graders = [k for k in d if k.startswith("rewards/") and k.endswith("/mean")]  # watched, not trained on
    if logged(d, "reward") and any(late(d, "reward") - late(d, k) > 0.3 for k in graders):
        return "lenient_reward_gamed", "exact_verifier"
    if logged(d, "kl"):  # the KL penalty's estimate, per token
        if max(d["kl"]) > 10:  # tens of nats: k3's exponential tail after a too-large step
            return "k3_tail", "lower_lr"
        if d["kl"][0] > 0.05:  # far from 0 at the first step, while policy and reference are one model
            return "dropout_mismatch", "disable_dropout"
    if logged(d, "completions/clipped_ratio") and mean(d["completions/clipped_ratio"]) > 0.5:
        return "completions_truncated", "raise_token_budget"  # most completions hit the token budget
    if logged(d, "frac_reward_zero_std", "reward") and mean(d["frac_reward_zero_std"]) > 0.8:
        if mean(d["reward"]) < 0.03:  # every group has one reward, and it is 0: out of reach
            return "prompts_too_hard", "match_prompt_difficulty"
        return "identical_group_samples", "distinct_sampling_seeds"  # solved, but never within a group
    if logged(d, "grad_norm") and max(d["grad_norm"]) < 1e-8:  # mixed groups, yet no gradient at all
        return "ratio_detached", "keep_ratio_in_graph"
    if logged(d, "entropy") and late(d, "entropy") < 0.6 * mean(d["entropy"][:3]):
        return "entropy_collapse", "entropy_bonus"  # the policy stops exploring
    if logged(d, "loss") and max(abs(v) for v in d["loss"]) < 1e-6:  # 0 by construction on-policy
        return "loss_zero_on_policy", "read_reward_not_loss"
    return "loss_sign_flips", "read_reward_not_loss"  # token-level mean: a loss of either sign
    # END SOLUTION
