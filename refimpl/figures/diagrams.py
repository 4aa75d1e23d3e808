"""Teaching aids of the method notebooks: one data-flow diagram per method, drawn from a list
of stages (so there is no image file to keep in sync with the code), and short source
listings that show the lines implementing an equation rather than a whole function.

    plot_method_flow("grpo")          # prompt -> G samples -> rewards -> advantages -> loss
    listing(grpo.grpo_loss, "old_logps, advantages = ", "loss = _aggregate(")
"""
from __future__ import annotations

import inspect

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

# Each flow: (title, stages); a stage is (box text, text on the arrow into the next box).
# Symbols as in docs/ARCHITECTURE.md: B prompts, G samples per prompt, T completion tokens.
FLOWS = {
    "rlhf": ("RLHF with a reward model (notebook 01)", [
        ("pairs\n(x, y_w, y_l)", "Bradley-Terry fit"),
        ("reward model\nr_phi(x, y)", "r_phi, beta"),
        ("RL on r_phi - beta KL", "closed form"),
        ("pi* = pi_ref exp(r / beta) / Z", "")]),
    "dpo": ("DPO: pairs -> log-ratios -> loss (notebooks 01-02)", [
        ("pairs (x, y_w, y_l)\nB pairs", "pi_theta, pi_ref (once)"),
        ("log-ratios\nlog pi_theta/pi_ref of y_w, y_l", "(B,) each"),
        ("margin\nh = beta (lr_w - lr_l)", "(B,)"),
        ("loss\n-log sigma(h)", "backward"),
        ("update theta", "")]),
    "grpo": ("GRPO: prompt -> samples -> rewards -> advantages -> loss (notebooks 03a, 03b)", [
        ("B prompts x", "G samples each, pi_old"),
        ("B*G completions y_i", "verifier"),
        ("rewards r_i\n(B, G)", "group mean / std"),
        ("advantages A_i\n(B*G,)", "+ ratio rho, beta KL"),
        ("clipped loss\n(mu inner steps)", "")]),
    "ppo": ("PPO: rollouts -> values -> GAE -> loss (notebook 04)", [
        ("rollouts\n(B*G, T) tokens", "critic V_phi"),
        ("values V(s_t)\n(B*G, T)", "reward on last token"),
        ("GAE advantages A_t\n(gamma, lambda)", "(B*G, T)"),
        ("clipped policy loss\n+ value loss", "mu inner steps"),
        ("update theta, phi", "")]),
    "reinforce": ("REINFORCE with a baseline: samples -> rewards - b -> loss (notebook 05)", [
        ("B prompts x\nG samples", "verifier or PRM"),
        ("rewards R\n(B*G,)", "baseline b"),
        ("R - b\n(B*G,)", "x log pi(y | x)"),
        ("loss\n-(R - b) log pi", "one step"),
        ("update theta", "")]),
    "compare": ("Head to head: one base, one budget, every method (notebook 06)", [
        ("SFT base\n(notebook 00)", "same budget"),
        ("DPO / GRPO /\nREINFORCE / PPO", "held-out set"),
        ("greedy accuracy\nvs samples, seconds", "2 seeds"),
        ("verdicts on\nC3, C16, C17", "")]),
}


def plot_flow(stages, title: str) -> Figure:
    """Boxes joined by labelled arrows, left to right. stages: [(box text, arrow text)];
    the last arrow text is ignored. Returns the Figure (no axes: a diagram, not a plot)."""
    n = len(stages)
    fig = Figure(figsize=(2.3 * n, 1.9))
    ax = fig.add_axes((0, 0, 1, 0.84))
    ax.set_axis_off()
    ax.set(xlim=(0, n), ylim=(0, 1))
    for i, (box, arrow) in enumerate(stages):
        ax.add_patch(FancyBboxPatch((i + 0.08, 0.2), 0.7, 0.6, boxstyle="round,pad=0.02",
                                    facecolor=f"C{i % 10}", alpha=0.18, edgecolor=f"C{i % 10}"))
        ax.text(i + 0.43, 0.5, box, ha="center", va="center", fontsize=8, wrap=True)
        if i < n - 1:
            ax.annotate("", xy=(i + 1.08, 0.5), xytext=(i + 0.8, 0.5),
                        arrowprops={"arrowstyle": "->", "lw": 1.2})
            ax.text(i + 0.94, 0.86, arrow, ha="center", va="bottom", fontsize=7, color="dimgrey")
    fig.suptitle(title, fontsize=10)
    return fig


def plot_method_flow(method: str) -> Figure:
    """The data-flow diagram of one method of ``FLOWS`` ("dpo", "grpo", "ppo", ...)."""
    if method not in FLOWS:
        raise ValueError(f"unknown method {method!r}: use one of {sorted(FLOWS)}")
    title, stages = FLOWS[method]
    return plot_flow(stages, title)


def listing(obj, start: str | None = None, stop: str | None = None, max_lines: int = 25) -> str:
    """The lines of ``obj``'s source from the first containing ``start`` to the first after
    it containing ``stop`` (both included; None: the whole source), headed by the file and
    line numbers. Raises ValueError if a marker is missing or the excerpt is longer than
    ``max_lines`` (a listing is there to show an equation, not a whole function)."""
    lines, first = inspect.getsourcelines(obj)
    a = 0 if start is None else next((i for i, l in enumerate(lines) if start in l), None)
    if a is None:
        raise ValueError(f"{start!r} not found in the source of {obj.__qualname__}")
    b = len(lines) - 1 if stop is None else next(
        (i for i in range(a, len(lines)) if stop in lines[i]), None)
    if b is None:
        raise ValueError(f"{stop!r} not found after {start!r} in {obj.__qualname__}")
    if b - a + 1 > max_lines:
        raise ValueError(f"excerpt of {obj.__qualname__} has {b - a + 1} lines > {max_lines}")
    path = inspect.getsourcefile(obj).replace("\\", "/").split("/refimpl/")[-1]
    head = f"# refimpl/{path}, {obj.__qualname__}, lines {first + a}-{first + b}\n"
    return head + "".join(lines[a:b + 1])
