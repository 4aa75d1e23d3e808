"""The declared claims of the claims study (``refimpl.experiments.claims_study.study`` runs them): for each training
claim of the article, its hypothesis in measurable form, metric, budget, methods, paired
comparisons (the first decides the verdict), what would contradict it, what would leave it not
shown, the lr grids tuned on validation, and the caveats a comparison can trigger
(shared/EVIDENCE.md, sec. 1). Written before the runs; a change after seeing data is said in
the notebook that shows the record.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Comparison:
    """treatment - control, paired; ``predicted`` = +1 if the article expects treatment > control."""

    treatment: str
    control: str
    predicted: int = 1
    question: str = ""
    metric: str = ""              # the run value compared; "" = the claim's metric_key
    control_metric: str = ""      # the control's value, when it differs ("" = the same one;
                                  # "0": the constant 0, to test one value's sign)


@dataclass(frozen=True)
class Claim:
    """One declared experiment (shared/EVIDENCE.md, sec. 1)."""

    id: str
    article: str                  # the article's sentence, paraphrased
    hypothesis: str               # in measurable form
    metric: str
    budget_samples: int           # generated completions per run
    methods: tuple                # the arms: registry methods by their registry name, and
                                  # variants; each has one label in refimpl.methods.registry.LABELS
    comparisons: tuple            # of Comparison; the first decides the verdict
    contradicts: str              # what result would contradict the article
    not_shown: str                # what result would leave it not shown
    grids: dict = field(default_factory=dict)     # {method: (lr, ...)} tuned on validation
    fixed: dict = field(default_factory=dict)     # {method: {config field: value}}
    caveats: tuple = ()           # (comparison index, verdicts that trigger it, text)
    eval_problems: int = 256      # validation and test problems (each)
    metric_key: str = "final_acc"  # the value of each stored run that comparisons use by default
    runner: str = "compare"       # the experiment of one run: a key of RUNNERS
    tune_by: dict = field(default_factory=dict)   # {method: run value its lr is picked by}
    tune_sign: int = 1            # +1: pick the lr with the largest tune value, -1: the smallest
    precondition: bool = False    # the comparisons test whether the claim can be tested here;
                                  # the claim stays "not shown" and the caveats say why
    task: str = ""                # the bases' task, when it is not the preset's ("" = it is)
    shared_lr: bool = False       # one lr for every method (same grid), picked by the mean of
                                  # their tune values: for a comparison about one component
    version: int = 1              # 1: decided by the pooled paired t interval, one verdict (the
                                  # records made before the two-verdict rule); 2: decided by the
                                  # t interval over the per-base means, with two verdicts
    article_quote: str = ""       # (version 2) the article's sentence, verbatim, <= 2 sentences
    article_rule: tuple = ()      # (version 2) ((comparison index, test verdicts, article
                                  # verdict, reason), ...): the first entry whose comparison came
                                  # out as listed judges the article's sentence
    tuned: bool = True            # False: every method runs at its grid's one declared lr
    sweep: bool = False           # run every lr of each method's grid on the test half (a
                                  # dose-response); the arms are named "<method>@<lr>"
    lr_note: str = ""             # why the lr is declared rather than tuned (tuned=False)


# C17's grids. The first record put GRPO's and REINFORCE's picks at the lower edge (5e-5) and
# DPO + NLL's at the upper (1e-4); those grids were widened by one step and C17 rerun, which put
# pure DPO's and GRPO's picks at their lower edges; those two were widened by one more step.
LR_GRIDS = {"dpo": (5e-6, 1e-5, 2e-5, 5e-5), "rpo": (2e-5, 5e-5, 1e-4, 2e-4),
            "online_dpo": (1e-5, 2e-5, 5e-5), "grpo": (1e-5, 2e-5, 5e-5, 1e-4, 2e-4),
            "reinforce": (2e-5, 5e-5, 1e-4, 2e-4)}

REWARD_GRID = (2e-5, 5e-5, 1e-4, 2e-4)    # REINFORCE's lr grid in C13 and C19

CLAIMS = {
    "C17": Claim(
        id="C17",
        article="With a verifier, RL beats DPO on reasoning tasks.",
        hypothesis="Greedy test accuracy after 2,560 generated completions from the same SFT "
                   "base: GRPO (online, verifier reward) > pure DPO (offline pairs of base "
                   "samples labelled by the same verifier).",
        metric="greedy accuracy on 256 test problems (held-out half never used for tuning)",
        budget_samples=2560,
        methods=("dpo", "rpo", "online_dpo", "grpo", "reinforce"),
        comparisons=(
            Comparison("grpo", "dpo", 1, "RL (GRPO) vs pure offline DPO: the article's claim"),
            Comparison("reinforce", "dpo", 1, "RL (REINFORCE, RLOO) vs pure offline DPO"),
            Comparison("online_dpo", "dpo", 1, "the same DPO loss on fresh on-policy pairs: "
                                               "does the data explain the gap?"),
            Comparison("grpo", "online_dpo", 1, "policy gradient vs the DPO loss on the same "
                                                "kind of fresh data: does the loss matter?"),
            Comparison("grpo", "rpo", 1, "RL vs offline DPO with an NLL term on the chosen"),
        ),
        contradicts="the 95% CI of GRPO - DPO lies entirely below 0",
        not_shown="the 95% CI of GRPO - DPO contains 0",
        grids={m: LR_GRIDS[m] for m in ("dpo", "rpo", "online_dpo", "grpo", "reinforce")},
        caveats=((2, ("holds",), "online DPO beats offline DPO too: much of the gap comes from "
                                 "offline data, not from the DPO loss"),
                 (4, ("not shown", "contradicted"),
                  "offline DPO with an NLL term on the chosen completions is not beaten by GRPO "
                  "at this budget")),
        version=2,
        article_quote="For reasoning tasks with verifiers, RL consistently outperforms DPO",
        article_rule=(({0: ("holds",), 1: ("holds",), 4: ("holds",)}, "supported",
                       "GRPO and REINFORCE beat pure DPO, and GRPO beats DPO + NLL too"),
                      ({0: ("holds",)}, "nuanced",
                       "RL beats pure DPO on the same budget, but not every DPO variant or RL "
                       "method: see the other comparisons"),
                      ({0: ("contradicted",)}, "refuted",
                       "pure DPO beats GRPO on the same budget"),
                      ({}, "nuanced", "GRPO and pure DPO are not told apart at this replicate "
                                      "count")),
    ),
    # C3 has its own kind of run (RUNNERS["coverage"], refimpl.experiments.labs.offline_online.coverage_run):
    # the value compared is the change of a step's teacher-forced error rate from the base's,
    # exact given the policy (no sampling noise in the measurement; the spread is training's).
    "C3": Claim(
        id="C3",
        article="DPO is offline and cannot fix a failure mode its data does not cover; online "
                "methods can.",
        hypothesis="After 2,560 generated completions from the same SFT base, the change of the "
                   "teacher-forced units-column error rate (the mode the pairs do not cover) on "
                   "256 test problems: GRPO (online, verifier reward) < pure DPO on base-sample "
                   "pairs whose rejected completion is wrong only in a carry column.",
        metric="change from the base of a step's teacher-forced error rate, 1 - mean_x "
               "pi(step tokens | x, correct prefix), on 256 test problems (held-out half never "
               "used for tuning); each comparison names the step: units (uncovered by the "
               "carry pairs) or carry",
        budget_samples=2560,
        methods=("dpo_carry", "dpo_units", "grpo", "reinforce"),
        comparisons=(
            Comparison("grpo", "dpo_carry", -1, "online RL vs DPO whose pairs cover carry "
                       "mistakes only, on the uncovered units mode: the article's claim",
                       metric="units_change"),
            Comparison("dpo_units", "dpo_carry", -1, "control: pairs that cover the units mode "
                       "let DPO lower the units error", metric="units_change"),
            Comparison("dpo_carry", "dpo_units", -1, "control: pairs that cover the carry mode "
                       "let DPO lower the carry error", metric="carry_change"),
            Comparison("reinforce", "dpo_carry", -1, "online RL (REINFORCE, RLOO) vs DPO on "
                       "carry pairs, on the uncovered units mode", metric="units_change"),
            Comparison("reinforce", "reinforce", -1, "REINFORCE's change of the carry error (the "
                       "mode the carry pairs cover)", metric="carry_change", control_metric="0"),
            Comparison("grpo", "grpo", -1, "GRPO's change of the carry error",
                       metric="carry_change", control_metric="0"),
        ),
        contradicts="the 95% CI of GRPO's units change - carry-pair DPO's units change lies "
                    "entirely above 0",
        not_shown="that CI contains 0",
        # lr picked on validation by what each method is meant to improve (smallest is best):
        # DPO on carry pairs by the carry change, DPO on units pairs by the units change, the
        # online methods by the mean of the two modes' changes ("fixes both").
        # The first record's grids (DPO 5e-6..2e-5, online 5e-5..2e-4) put both DPO picks and
        # GRPO's at their lower edges; each grid was widened down by one step and C3 rerun, which
        # put REINFORCE's pick at its upper edge; its grid was widened up by one step.
        grids={"dpo_carry": (2e-6, 5e-6, 1e-5, 2e-5), "dpo_units": (2e-6, 5e-6, 1e-5, 2e-5),
               "grpo": (2e-5, 5e-5, 1e-4, 2e-4), "reinforce": (5e-5, 1e-4, 2e-4, 5e-4)},
        # DPO: the 2,560 completions are sampled from the base up front (320 prompts x 8),
        # the pairs that cover the method's mode kept; then 40 updates of 32 pairs, beta 0.1
        # (C17's DPO). Online: 20 steps of 16 prompts x 8 samples.
        fixed={"dpo_carry": {"dpo_steps": 40, "dpo_batch": 32, "dpo_beta": 0.1},
               "dpo_units": {"dpo_steps": 40, "dpo_batch": 32, "dpo_beta": 0.1}},
        caveats=((1, ("not shown", "contradicted"),
                  "the control failed: DPO on pairs that cover the units mode did not lower the "
                  "units error below DPO on carry pairs at this budget"),
                 (2, ("not shown", "contradicted"),
                  "the coverage is not one-sided: DPO on units-mode pairs lowers the carry error "
                  "about as much as DPO on carry pairs (a units-mode pair's chosen and rejected "
                  "completions also differ in every later column), so only the carry pairs "
                  "leave a mode uncovered"),
                 (4, ("contradicted",), "online RL is not always better on both modes: REINFORCE "
                                        "(RLOO) at its picked lr raised the carry error")),
        version=2,
        article_quote="If the training data does not cover a failure mode, DPO cannot fix it.",
        article_rule=(({0: ("holds",), 1: ("holds",)}, "supported",
                       "DPO on pairs that leave the units mode uncovered does not lower its error "
                       "as GRPO does, and pairs that cover it let DPO lower it"),
                      ({0: ("holds",)}, "nuanced",
                       "GRPO lowers the uncovered error more than DPO does, but pairs that cover "
                       "the mode did not let DPO lower it either"),
                      ({0: ("contradicted",)}, "refuted",
                       "DPO on carry pairs lowers the uncovered units error more than GRPO"),
                      ({}, "nuanced", "GRPO and carry-pair DPO are not told apart on the "
                                      "uncovered mode at this replicate count")),
        metric_key="units_change",
        runner="coverage",
        tune_by={"dpo_carry": "carry_change", "dpo_units": "units_change",
                 "grpo": "mean_change", "reinforce": "mean_change"},
        tune_sign=-1,
    ),
    # C13 and C19 have their own kind of run (RUNNERS["reward"], refimpl.experiments.claims_study.reward_runs): REINFORCE
    # with the RLOO baseline on one reward, its greedy test completions graded by every grader.
    "C13": Claim(
        id="C13",
        article="Process rewards are dense but biased; outcome rewards are unbiased but sparse.",
        article_quote="The choice between outcome and process rewards is a bias-variance "
                      "tradeoff: outcome rewards are unbiased but sparse; process rewards are "
                      "dense but potentially biased (the PRM is a learned proxy).",
        hypothesis="After 2,560 generated completions from the same SFT base, greedy test "
                   "accuracy: REINFORCE (RLOO) on a learned process reward model (fitted to the "
                   "step labels of 128 prompts x 16 base samples) < REINFORCE on the outcome "
                   "verifier; and the outcome reward's training groups are uniform (no signal) "
                   "more often than the exact process reward's.",
        metric="greedy accuracy on 256 test problems (held-out half never used for tuning); the "
               "share of training groups whose 8 rewards were all equal; the learned PRM's mean "
               "score and the exact step score of the same completions",
        budget_samples=2560,
        methods=("base", "reinforce", "process", "learned_prm"),
        comparisons=(
            Comparison("learned_prm", "reinforce", -1, "learned PRM vs outcome verifier: test "
                       "accuracy (is the learned proxy's bias costly?)"),
            Comparison("reinforce", "process", 1, "sparsity: share of training groups with no "
                       "signal, outcome minus exact process reward", metric="uniform_share"),
            Comparison("process", "reinforce", 1, "the exact (unbiased) process reward vs the "
                       "outcome reward: test accuracy"),
            Comparison("learned_prm", "learned_prm", 1, "the proxy rises: the learned PRM's score "
                       "of the trained policy's answers vs of the base's", metric="prm_score",
                       control_metric="base_prm_score"),
            Comparison("learned_prm", "learned_prm", -1, "and the real step score: after - "
                       "before", metric="process_score", control_metric="base_process_score"),
            Comparison("reinforce", "base", 1, "the outcome reward alone raises accuracy (the "
                       "sparse signal is enough here)"),
        ),
        contradicts="the interval of learned-PRM - outcome accuracy lies entirely above 0",
        not_shown="that interval contains 0",
        # every arm tuned on validation accuracy, the learned PRM arm too (tuning it by its own
        # score would pick the largest step of any grid); the grid is C13's first, widened at
        # its lower edge before the first record
        grids={"reinforce": REWARD_GRID, "process": REWARD_GRID, "learned_prm": REWARD_GRID,
               "base": (1e-4,)},
        caveats=((5, ("holds",), "the outcome reward is not too sparse to learn from here: it "
                                 "raises accuracy on its own, because the base already solves a "
                                 "large share of the problems, so most groups hold a right "
                                 "sample"),
                 (2, ("not shown", "contradicted"),
                  "density alone did not buy accuracy: the exact process reward did not beat "
                  "the outcome reward")),
        runner="reward",
        version=2,
        article_rule=(({0: ("holds",), 1: ("holds",)}, "supported",
                       "the learned PRM is a biased proxy (RL on it ends below the outcome "
                       "reward) and the outcome reward is sparser (more groups without signal)"),
                      ({0: ("holds",)}, "nuanced",
                       "the learned PRM's bias costs accuracy, but the outcome reward was not "
                       "measurably sparser"),
                      ({1: ("holds",)}, "nuanced",
                       "the outcome reward is sparser, but the learned PRM's bias did not cost "
                       "accuracy here"),
                      ({}, "nuanced", "neither the learned PRM's bias nor the outcome reward's "
                                      "sparsity was told apart at this replicate count")),
    ),
    "C19": Claim(
        id="C19",
        article="You cannot hack a unit test suite: a verifier reward cannot be gamed.",
        article_quote="This eliminates reward hacking. You cannot \"hack\" a unit test suite or "
                      "a mathematical proof checker.",
        hypothesis="A demonstration: after 2,560 generated completions from the same SFT base, "
                   "REINFORCE against a grader with a numeric tolerance (1% relative, "
                   "tolerant_verify: the kind of flaw math graders in use have, at a width the "
                   "project chose) ends with more accepted near misses on 256 test problems than "
                   "REINFORCE against the exact verifier.",
        metric="false-accept rate of the greedy test completions, tolerant_acc - accuracy; "
               "greedy accuracy; and verl's shipped grader (rewards.shipped_verify) on the same "
               "completions",
        budget_samples=2560,
        methods=("base", "reinforce", "tolerant"),
        comparisons=(
            Comparison("tolerant", "reinforce", 1, "gaming: accepted near misses after training "
                       "against the 1% grader vs against the exact verifier",
                       metric="false_accept"),
            Comparison("tolerant", "reinforce", -1, "the cost of the bug in real accuracy"),
            Comparison("tolerant", "tolerant", 1, "the proxy rises: the 1% grader's score of the "
                       "trained policy's answers vs of the base's", metric="tolerant_acc",
                       control_metric="base_tolerant_acc"),
            Comparison("reinforce", "base", 1, "the exact verifier's reward gains are accuracy "
                       "gains (a sanity check: true by construction of an exact verifier)"),
            Comparison("tolerant", "reinforce", 1, "verl's shipped grader (1e-4 tolerance, "
                       "x100 and /100 accepted): its false accepts, 1% run vs exact run",
                       metric="shipped_false_accept"),
        ),
        contradicts="the interval of the false-accept difference lies entirely below 0",
        not_shown="that interval contains 0",
        # each arm tuned by the reward it trains on, as its practitioner would see it (the 1%
        # grader's score has an interior optimum on the first record's grid)
        grids={"reinforce": REWARD_GRID, "tolerant": REWARD_GRID, "base": (1e-4,)},
        caveats=((1, ("holds",), "the bug costs real accuracy at this budget"),),
        runner="reward",
        tune_by={"reinforce": "final_acc", "tolerant": "tolerant_acc", "base": "final_acc"},
        version=2,
        article_rule=(({0: ("holds",)}, "nuanced",
                       "an exact checker's gains were real gains, but a grader with a tolerance "
                       "flaw was gamed (more near misses accepted): the sentence holds for an exact "
                       "checker only; the flaw's 1% width is the project's choice, so this is a "
                       "demonstration (verl's 1e-4 accepts only exact answers on this task)"),
                      ({}, "supported",
                       "even a grader with a 1% tolerance flaw was not gamed at this budget")),
    ),
    # C15 has its own kind of run (RUNNERS["ppo"], refimpl.experiments.claims_study.ppo_runs):
    # PPO with its learned critic, with V = 0 and with Monte-Carlo values, and GRPO, matched in
    # lr, completions, inner updates and KL. The first C15 record only asked whether the critic
    # learns, fitted alone to a fixed policy's returns (it does not), and stopped there
    # (results/study/superseded/C15.json): an inaccurate critic is the sentence's premise, so
    # the claim is now tested under it. A stability claim is not decided at one safe step: the
    # arms run at two declared lrs, 1e-4 and 2e-4, where runs start to become unstable (every
    # arm fell to about 0.25 accuracy at 3e-4 in trial runs on base 0). The critic arms
    # ("critic", "critic_head": refimpl.methods.ppo_analysis.critic_run) were added after the
    # first two-verdict record, which measured the critic only inside PPO runs, at one budget
    # and with the trunk trained: they fit it alone to the base's returns for 4x PPO's budget,
    # trunk and head or head only, at PPOConfig's critic lr, and score it at five budgets. They
    # add comparisons 7-9 and leave the runs and verdicts of 0-6 as they were.
    "C15": Claim(
        id="C15",
        article="GRPO is not PPO without a critic; when the value function is inaccurate, GRPO "
                "can be more stable.",
        article_quote="When the value function is inaccurate (common for long reasoning tasks), "
                      "GRPO's group-relative approach can be more stable.",
        hypothesis="After 2,560 generated completions from the same SFT base, at the same lr, "
                   "one inner update and no KL: GRPO ends with higher greedy test accuracy than "
                   "PPO with its learned critic (whose explained variance of the returns stays "
                   "near 0 on this task) at lr 2e-4; and PPO with Monte-Carlo values (an "
                   "accurate baseline) ends above PPO with the learned critic.",
        metric="greedy accuracy on 256 test problems; runs that end 0.1 below the base "
               "(collapses); the correlation of the first-token advantage with R - p(x) (p from "
               "32 fresh samples per prompt); the critic's explained variance of the returns, "
               "inside PPO runs and, fitted alone (lr 1e-3) to the base's returns, on held-out "
               "rollouts after 0, 2,560, 5,120, 7,680 and 10,240 completions",
        budget_samples=2560,
        methods=("ppo", "ppo_v0", "ppo_mc", "grpo", "critic", "critic_head"),
        comparisons=(
            Comparison("grpo@0.0002", "ppo@0.0002", 1, "GRPO vs PPO with its learned critic, "
                       "test accuracy at lr 2e-4"),
            Comparison("grpo@0.0001", "ppo@0.0001", 1, "the same at lr 1e-4"),
            Comparison("ppo@0.0002", "ppo_mc@0.0002", -1, "PPO: learned critic vs Monte-Carlo "
                       "values (an accurate baseline), accuracy at 2e-4"),
            Comparison("ppo@0.0002", "ppo_v0@0.0002", 1, "PPO: learned critic vs V = 0 (no "
                       "critic), accuracy at 2e-4"),
            Comparison("grpo@0.0002", "ppo@0.0002", -1, "collapses (runs ending 0.1 below the "
                       "base), GRPO minus PPO, at 2e-4", metric="collapsed"),
            Comparison("grpo@0.0002", "ppo@0.0002", 1, "advantage quality: correlation with "
                       "R - p(x), GRPO minus PPO, at 2e-4", metric="adv_mc_corr"),
            Comparison("ppo@0.0002", "ppo@0.0002", 1, "the premise: the learned critic's "
                       "explained variance of the returns at the last step, at 2e-4",
                       metric="critic_ev", control_metric="0"),
            Comparison("critic@0.001", "critic@0.001", 1, "the premise with 4x PPO's budget: "
                       "the critic fitted alone to 10,240 completions of the base, explained "
                       "variance of held-out returns", metric="explained_variance",
                       control_metric="0"),
            Comparison("critic@0.001", "critic@0.001", -1, "that critic vs the prompt-level "
                       "oracle V = p(x), explained variance of the same returns",
                       metric="explained_variance", control_metric="oracle_ev"),
            Comparison("critic_head@0.001", "critic@0.001", -1, "head only (frozen SFT "
                       "features) vs trunk and head, explained variance after 10,240 "
                       "completions", metric="explained_variance"),
        ),
        contradicts="the interval of GRPO - PPO accuracy at 2e-4 lies entirely below 0",
        not_shown="that interval contains 0",
        grids={**{m: (1e-4, 2e-4) for m in ("ppo", "ppo_v0", "ppo_mc", "grpo")},
               "critic": (1e-3,), "critic_head": (1e-3,)},
        fixed={m: {"budget_samples": 10240, "eval_every": 10} for m in ("critic", "critic_head")},
        tuned=False,
        sweep=True,
        lr_note="declared, shared by every arm: 1e-4 and 2e-4 (in trial runs on base 0 every arm "
                "trained at 1e-4 and fell to about 0.25 accuracy at 3e-4)",
        caveats=((6, ("holds",), "the critic does learn some of the returns here, so PPO is not "
                                 "run under the sentence's premise alone"),
                 (2, ("holds",), "an accurate baseline (Monte-Carlo values) lifts PPO above its "
                                 "learned critic: the critic's error costs accuracy")),
        runner="ppo",
        version=2,
        article_rule=(({0: ("holds",)}, "supported",
                       "with a critic that explains almost none of the return variance, GRPO "
                       "ends above PPO at the lr where runs start to become unstable"),
                      ({0: ("contradicted",)}, "refuted",
                       "PPO with its inaccurate critic ends above GRPO at the same lr"),
                      ({}, "nuanced",
                       "with a critic that explains almost none of the return variance PPO and "
                       "GRPO are not told apart: the critic's head starts at zero and stays "
                       "near it, so PPO runs with a nearly constant baseline, and its "
                       "batch-whitened advantages keep it as stable as GRPO")),
    ),
    # C4a, C4b and C5 have their own kind of run (RUNNERS["dpo"], refimpl.experiments.claims_study.dpo_runs.dpo_run): DPO
    # on freshly sampled, verifier-labelled pairs of base samples (4,096 completions per run). The
    # first C4 record (results/study/superseded/C4.json) is replaced by C4a and C4b.
    # C4a decides C4's first half, "the implicit reward can still be hacked", by gaming it: the
    # trained policy's implicit reward used as a reward model on fresh samples (notebook 02's
    # re-ranking, over bases and seeds). It runs at a declared step where pure DPO trains: a
    # claim about a failure mode is not decided at the step chosen to avoid failure (pure DPO's
    # validation pick in C4 is 5e-6, where it barely moves).
    "C4a": Claim(
        id="C4a",
        article="The implicit reward can be gamed: raised without improving quality.",
        article_quote="Additionally, the implicit reward can still be hacked: the model learns to "
                      "increase log(pi_theta/pi_ref) for preferred outputs, which can be achieved "
                      "by making the reference policy assign low probability (rather than by "
                      "genuinely improving quality).",
        hypothesis="After pure DPO at lr 2e-5 on verifier-labelled pairs of 4,096 base samples "
                   "(80 steps of 16 pairs), its implicit reward beta log(pi/pi_ref), used to pick "
                   "one of 8 fresh samples for each of 128 test problems, picks a right answer "
                   "less often than a random pick, and picks completions with a lower reference "
                   "log-probability than the average sample.",
        metric="verifier accuracy of the picked samples minus that of a random sample (the mean "
               "over the 8), on 128 test problems; log pi_ref of the picks minus the samples' mean",
        budget_samples=4096,
        methods=("dpo",),
        comparisons=(
            Comparison("dpo", "dpo", -1, "picked by the implicit reward vs at random: accuracy "
                       "of the pick", metric="pick_acc", control_metric="random_acc"),
            Comparison("dpo", "dpo", -1, "the picks' reference log-prob vs the samples' mean",
                       metric="pick_ref_logp_shift", control_metric="0"),
            Comparison("dpo", "dpo", 1, "the implicit-reward margin on the training pairs rises",
                       metric="margin", control_metric="0"),
            Comparison("dpo", "dpo", -1, "the chosen answers' log-prob falls (likelihood "
                       "displacement)", metric="chosen_logp_change", control_metric="0"),
            Comparison("dpo", "dpo", -1, "test accuracy after DPO vs the base's",
                       control_metric="base_acc"),
        ),
        contradicts="the interval of pick accuracy - random accuracy lies entirely above 0",
        not_shown="that interval contains 0",
        grids={"dpo": (2e-5,)},
        tuned=False,
        lr_note="declared: a step where pure DPO trains (notebook 02's live run); its "
                "validation pick in C4, 5e-6, barely moves",
        fixed={"dpo": {"rerank_problems": 128}},
        caveats=((1, ("not shown", "contradicted"),
                  "the picks are not less likely under the reference than the average sample"),
                 (3, ("not shown", "contradicted"),
                  "at this step the chosen answers do not lose log-probability")),
        runner="dpo",
        version=2,
        article_rule=(({0: ("holds",), 1: ("holds",)}, "supported",
                       "the implicit reward is gamed: its picks are right less often than random "
                       "ones, and are completions the reference finds unlikely (the reference "
                       "itself is frozen, so 'making the reference assign low probability' is a "
                       "wording to correct)"),
                      ({0: ("holds",)}, "nuanced",
                       "the implicit reward is gamed, but not through completions the reference "
                       "finds unlikely"),
                      ({0: ("contradicted",)}, "refuted",
                       "picking by the implicit reward beats a random pick"),
                      ({}, "nuanced",
                       "picks by the implicit reward and random picks are not told apart at "
                       "this replicate count")),
    ),
    # C4b: likelihood displacement as a dose-response over pure DPO's declared lr grid, on the
    # test half at every lr (the first C4 record decided it at the validation-best lr only, the
    # lower edge of the grid, where DPO barely moves: results/study/superseded/C4.json).
    "C4b": Claim(
        id="C4b",
        article="Beside C4a: DPO raises the implicit reward of the preferred outputs; the route "
                "it names (a lower reference probability) is impossible with a frozen reference, "
                "and the one that exists is likelihood displacement.",
        article_quote="Additionally, the implicit reward can still be hacked: the model learns to "
                      "increase log(pi_theta/pi_ref) for preferred outputs, which can be achieved "
                      "by making the reference policy assign low probability (rather than by "
                      "genuinely improving quality).",
        hypothesis="Pure DPO on verifier-labelled pairs of 4,096 base samples (80 steps of 16 "
                   "pairs) at each lr of its declared grid (5e-6, 1e-5, 2e-5, 5e-5): the change of "
                   "the chosen (right) completions' mean log-probability falls as the lr grows "
                   "(at 5e-5 minus at 5e-6 < 0), and is below 0 at 5e-5, while the implicit-reward "
                   "margin rises.",
        metric="change of the mean log pi(y_w | x) of 256 of the pairs' right completions from "
               "step 0 to the end, per lr; the final implicit-reward margin; greedy accuracy on "
               "256 test problems",
        budget_samples=4096,
        methods=("dpo",),
        comparisons=(
            Comparison("dpo@5e-05", "dpo@5e-06", -1, "dose-response: the chosen answers' "
                       "log-prob change at lr 5e-5 minus at 5e-6", metric="chosen_logp_change"),
            Comparison("dpo@5e-05", "dpo@5e-05", -1, "at lr 5e-5: the chosen answers' "
                       "log-prob change", metric="chosen_logp_change", control_metric="0"),
            Comparison("dpo@2e-05", "dpo@2e-05", -1, "at lr 2e-5: the same",
                       metric="chosen_logp_change", control_metric="0"),
            Comparison("dpo@1e-05", "dpo@1e-05", -1, "at lr 1e-5: the same",
                       metric="chosen_logp_change", control_metric="0"),
            Comparison("dpo@5e-06", "dpo@5e-06", -1, "at lr 5e-6 (the validation pick of the "
                       "first C4 record): the same", metric="chosen_logp_change",
                       control_metric="0"),
            Comparison("dpo@5e-05", "dpo@5e-05", 1, "at lr 5e-5 the implicit-reward margin "
                       "on the pairs still rises", metric="margin", control_metric="0"),
            Comparison("dpo@5e-05", "dpo@5e-05", -1, "at lr 5e-5: test accuracy vs the base's",
                       control_metric="base_acc"),
        ),
        contradicts="the interval of the log-prob change at 5e-5 minus at 5e-6 lies entirely "
                    "above 0",
        not_shown="that interval contains 0",
        grids={"dpo": (5e-6, 1e-5, 2e-5, 5e-5)},
        tuned=False,
        sweep=True,
        lr_note="swept: the whole declared grid of pure DPO in C4",
        caveats=((4, ("holds",), "even at the smallest lr the chosen answers lose "
                                 "log-probability"),
                 (4, ("not shown", "contradicted"),
                  "at the smallest lr of the grid the chosen answers do not lose log-probability: "
                  "displacement needs a large enough step")),
        runner="dpo",
        version=2,
        article_rule=(({0: ("holds",), 1: ("holds",), 5: ("holds",)}, "nuanced",
                       "the implicit reward's margin rises while the preferred outputs lose "
                       "probability, more so at larger steps: a real route to a raised implicit "
                       "reward without better answers, though not the one the sentence names (the "
                       "reference is frozen)"),
                      ({0: ("contradicted",)}, "nuanced",
                       "larger steps do not displace the preferred outputs' likelihood here; "
                       "the route the sentence names is impossible with a frozen reference"),
                      ({}, "nuanced",
                       "the dose-response is not told apart at this replicate count; the route "
                       "the sentence names is impossible with a frozen reference")),
    ),
    "C5": Claim(
        id="C5",
        article="DPO degrades with noisy preferences.",
        article_quote="Can degrade with noisy preferences or low-quality pairs",
        hypothesis="Greedy test accuracy after pure DPO at lr 2e-5 on verifier-labelled pairs of "
                   "4,096 base samples (80 steps of 16 pairs): with 40% of the labels flipped at "
                   "random < with clean labels.",
        metric="greedy accuracy on 256 test problems",
        budget_samples=4096,
        methods=("dpo", "dpo_flip", "pure_cdpo_flip", "rpo", "rpo_flip"),
        comparisons=(
            Comparison("dpo_flip", "dpo", -1, "pure DPO: flipped labels vs clean ones, test "
                       "accuracy"),
            Comparison("pure_cdpo_flip", "dpo_flip", 1, "cDPO (label smoothing 0.4) on the same "
                       "flipped labels vs pure DPO"),
            Comparison("rpo_flip", "rpo", -1, "DPO + NLL: flipped labels vs clean ones"),
            Comparison("dpo", "dpo", 1, "pure DPO on clean labels vs the base",
                       control_metric="base_acc"),
        ),
        contradicts="the interval of flipped - clean accuracy (pure DPO) lies entirely above 0",
        not_shown="that interval contains 0",
        # declared, not tuned: pure DPO at the step where it trains (C4a's), DPO + NLL at its
        # validation pick in the first C5 record (results/study/superseded/C5.json), whose flip
        # arms were DPO + NLL only
        grids={"dpo": (2e-5,), "dpo_flip": (2e-5,), "pure_cdpo_flip": (2e-5,), "rpo": (5e-5,),
               "rpo_flip": (5e-5,)},
        tuned=False,
        lr_note="declared: pure DPO at 2e-5, where it trains (C4a); DPO + NLL at 5e-5, its "
                "validation pick in the first C5 record",
        caveats=((1, ("not shown", "contradicted"),
                  "cDPO, the textbook robust variant, does not recover the loss"),
                 (3, ("contradicted",), "pure DPO at this step lowers accuracy below the base's "
                                        "even on clean labels")),
        runner="dpo",
        version=2,
        article_rule=(({0: ("holds",)}, "supported",
                       "flipping 40% of the labels lowers pure DPO's test accuracy"),
                      ({0: ("contradicted",)}, "refuted",
                       "flipped labels raise pure DPO's test accuracy"),
                      ({2: ("holds",)}, "nuanced",
                       "pure DPO is not told apart, but DPO + NLL degrades with flipped labels"),
                      ({}, "nuanced", "flipped and clean labels are not told apart at this "
                                      "replicate count")),
    ),
    # C11b has its own kind of run (RUNNERS["length"], refimpl.experiments.claims_study.length_runs.length_run) on bases
    # trained on "add_mixed", whose completions come in two lengths (5 and 14 tokens).
    "C11b": Claim(
        id="C11b",
        article="Beside C11: Dr. GRPO (Liu et al. 2025) finds a second bias in GRPO's loss. "
                "Averaging each completion over its own length pushes short wrong answers down "
                "harder than long ones, so wrong answers grow longer; a constant normaliser "
                "removes the bias.",
        hypothesis="After 2,560 generated completions from the same SFT base on the add_mixed "
                   "task, the mean length of the wrong completions sampled on 256 test problems "
                   "(8 each) is larger with GRPO's per-sequence aggregation than with Dr. GRPO's "
                   "constant normaliser (everything else GRPOConfig's defaults).",
        metric="mean length in tokens (EOS included) of the wrong ones of 8 sampled completions "
               "per test problem, 256 test problems (held-out half never used for tuning)",
        budget_samples=2560,
        methods=("grpo", "agg_dapo", "agg_dr_grpo"),
        comparisons=(
            Comparison("grpo", "agg_dr_grpo", 1, "per-sequence mean vs constant normaliser, "
                       "on the length of the wrong answers: the claim", metric="len_wrong"),
            Comparison("grpo", "agg_dapo", 1, "per-sequence mean vs token mean (DAPO), on "
                       "the same lengths", metric="len_wrong"),
            Comparison("grpo", "agg_dr_grpo", -1, "and on the right answers, which the "
                       "per-sequence mean should make shorter", metric="len_right"),
            Comparison("agg_dr_grpo", "grpo", 1, "does removing the bias change greedy "
                       "test accuracy?", metric="final_acc"),
        ),
        contradicts="the 95% CI of the wrong answers' length, GRPO - Dr. GRPO, lies entirely "
                    "below 0",
        not_shown="that CI contains 0",
        # The first record tuned each aggregation's lr apart: the picks differed (GRPO 5e-5,
        # Dr. GRPO and DAPO 1e-4), the lengths followed the lr more than the aggregation, and it
        # read "contradicted" (results/study/superseded/C11b.json). The claim is about the
        # aggregation alone, so after reading that record the rule became one shared lr, picked
        # on validation by the three arms' mean accuracy; notebook 03 says so.
        grids={m: (2e-5, 5e-5, 1e-4, 2e-4) for m in ("grpo", "agg_dapo", "agg_dr_grpo")},
        shared_lr=True,
        caveats=((2, ("not shown", "contradicted"),
                  "the other half of the mechanism, right answers made shorter, is not seen: "
                  "nearly every right answer shows its working, so there is little length to "
                  "choose among them"),
                 (3, ("not shown",), "the bias moves lengths, not accuracy, at this budget")),
        metric_key="len_wrong",
        tune_by={m: "final_acc" for m in ("grpo", "agg_dapo", "agg_dr_grpo")},
        runner="length",
        task="add_mixed",
        version=2,
        article_quote="Advantage normalization can reduce gradient signal when group variance "
                      "is low",
        article_rule=(({0: ("holds",)}, "nuanced",
                       "the article names one bias of GRPO's advantage (its normalisation, C11); "
                       "GRPO's per-sequence mean adds a length bias it does not name: wrong "
                       "answers end longer than under a constant normaliser"),
                      ({0: ("contradicted",)}, "nuanced",
                       "the article names one bias of GRPO's advantage (C11); the length bias "
                       "Dr. GRPO reports runs the other way here"),
                      ({}, "nuanced",
                       "the article names one bias of GRPO's advantage (C11); the length bias "
                       "Dr. GRPO reports is not told apart here at this replicate count")),
    ),
    # C10 and C12 run RUNNERS["reward"] too: GRPO on a learned reward model or on the verifier
    # (C10), REINFORCE with and without a baseline (C12).
    "C10": Claim(
        id="C10",
        article="If the reward model is unreliable, the group-relative advantage amplifies its "
                "errors.",
        article_quote="If the reward model is unreliable, the group-relative advantage amplifies "
                      "reward model errors. The model learns to distinguish between \"slightly "
                      "more hackable\" and \"slightly less hackable\" outputs rather than between "
                      "genuinely good and bad ones.",
        hypothesis="After 2,560 generated completions from the same SFT base, at the same lr: "
                   "GRPO on a Bradley-Terry reward model fitted to the verifier-labelled pairs "
                   "of 128 prompts' base samples ends with lower greedy test accuracy than GRPO "
                   "on the verifier; and with the group std scaling it ends lower than the same "
                   "GRPO on the same reward model without it.",
        metric="greedy accuracy on 256 test problems; the reward model's mean score of the same "
               "completions",
        budget_samples=2560,
        methods=("grpo", "rm_grpo", "rm_grpo_unscaled"),
        comparisons=(
            Comparison("rm_grpo@2e-05", "grpo@2e-05", -1, "learned reward model vs verifier, "
                       "test accuracy, at lr 2e-5"),
            Comparison("rm_grpo@0.0001", "grpo@0.0001", -1, "the same at lr 1e-4"),
            Comparison("rm_grpo@0.0001", "rm_grpo_unscaled@0.0001", -1, "the mechanism: with vs "
                       "without the group std scaling on the reward model, accuracy, at 1e-4"),
            Comparison("rm_grpo@2e-05", "rm_grpo_unscaled@2e-05", -1, "the same at 2e-5"),
            Comparison("rm_grpo@0.0001", "rm_grpo@0.0001", 1, "the proxy rises: the reward "
                       "model's score of the trained policy's answers vs of the base's, at 1e-4",
                       metric="rm_score", control_metric="base_rm_score"),
            Comparison("rm_grpo@0.0001", "rm_grpo@0.0001", -1, "and accuracy vs the base's, "
                       "at 1e-4", control_metric="base_acc"),
        ),
        contradicts="the interval of reward-model - verifier accuracy at 2e-5 lies entirely "
                    "above 0",
        not_shown="that interval contains 0",
        # The first record tuned each arm by the reward it trains on; the reward model's score
        # rises with the step, so its pick was the top of any grid (5e-4, 25x the verifier
        # arm's 2e-5) and the gap measured the step size (results/study/superseded/C10.json).
        # Now every arm runs at the same two declared lrs: GRPO's validation pick on the
        # verifier (C17) and 5x that.
        grids={m: (2e-5, 1e-4) for m in ("grpo", "rm_grpo", "rm_grpo_unscaled")},
        tuned=False,
        sweep=True,
        lr_note="declared, shared by every arm: 2e-5 (GRPO's validation pick on the verifier, "
                "C17) and 1e-4",
        caveats=((5, ("not shown",), "accuracy stalls rather than falls: it ends behind the "
                                     "verifier run's but not below the base's"),),
        runner="reward",
        version=2,
        article_rule=(({0: ("holds",), 2: ("holds",)}, "supported",
                       "GRPO on the learned reward model ends below GRPO on the verifier at the "
                       "same lr, and the group std scaling makes it worse"),
                      ({0: ("holds",), 2: ("contradicted",)}, "nuanced",
                       "GRPO on the learned reward model ends below GRPO on the verifier, but "
                       "the group std scaling does not amplify it: unscaled advantages do worse"),
                      ({0: ("holds",)}, "nuanced",
                       "GRPO on the learned reward model ends below GRPO on the verifier, but "
                       "the std scaling's part is not told apart at this replicate count"),
                      ({0: ("contradicted",)}, "refuted",
                       "GRPO on the learned reward model ends above GRPO on the verifier"),
                      ({}, "nuanced", "the reward-model and verifier runs are not told apart at "
                                      "this replicate count")),
    ),
    # C12b: accuracy, the secondary reading of C12 (the first C12 record's comparison, with a
    # positive-only RLOO arm that separates "lower variance" from "wrong answers pushed down").
    "C12b": Claim(
        id="C12b",
        article="Beside C12: what a baseline does to learning with 0/1 rewards, in accuracy.",
        article_quote="Binary rewards are sparse: most solutions to hard problems are wrong, "
                      "giving reward 0 for most samples. This makes learning slow and "
                      "high-variance.",
        hypothesis="After 2,560 generated completions from the same SFT base, greedy test "
                   "accuracy: REINFORCE with the RLOO baseline > REINFORCE with b = 0 (fine-tuning "
                   "on the policy's own right answers); and RLOO > RLOO with its negative "
                   "advantages set to 0 (pushing wrong answers down adds to pushing right ones up).",
        metric="greedy accuracy on 256 test problems (held-out half never used for tuning)",
        budget_samples=2560,
        methods=("nobaseline", "reinforce", "rloo_positive"),
        comparisons=(
            Comparison("reinforce", "nobaseline", 1, "RLOO vs no baseline, test accuracy"),
            Comparison("reinforce", "rloo_positive", 1, "RLOO vs RLOO with only its positive "
                       "advantages: does pushing wrong answers down help?"),
            Comparison("rloo_positive", "nobaseline", 1, "positive-only RLOO vs b = 0: both "
                       "push only right answers up, RLOO's by 1 - (the others' pass rate)"),
        ),
        contradicts="the interval of RLOO - no baseline lies entirely below 0",
        not_shown="that interval contains 0",
        grids={m: REWARD_GRID for m in ("nobaseline", "reinforce", "rloo_positive")},
        runner="reward",
        version=2,
        article_rule=(({0: ("holds",), 1: ("holds",)}, "nuanced",
                       "RLOO learns better than no baseline, and better than its own positive "
                       "half: the gain comes from pushing wrong answers down, not from lower "
                       "variance (RLOO raises the gradient's variance, C12)"),
                      ({0: ("holds",)}, "nuanced",
                       "RLOO learns better than no baseline, though it raises the gradient's "
                       "variance (C12)"),
                      ({0: ("contradicted",)}, "nuanced",
                       "no baseline learns better than RLOO: with 0/1 rewards the baseline does "
                       "not help here (it raises the gradient's variance, C12)"),
                      ({}, "nuanced",
                       "accuracy does not tell the baselines apart at this replicate count; the "
                       "sentence is decided on the gradient itself (C12)")),
    ),
    # C12 runs RUNNERS["variance"] (refimpl.experiments.claims_study.variance_runs): REINFORCE
    # (RLOO) trained from the base, and at its start, middle and end the exact variance and
    # signal-to-noise of the gradient estimate for each baseline, by difficulty bin. The first
    # C12 record compared final accuracy with and without a baseline (results/study/superseded/
    # C12.json): accuracy under gradient clipping cannot separate the gradient's variance from
    # what a baseline does to wrong answers, so the claim is now decided on the gradient itself.
    "C12": Claim(
        id="C12",
        article="Binary verifier rewards are sparse: on hard prompts learning is slow and the "
                "gradient is noisy; the gradient uses a baseline b(x).",
        article_quote="Binary rewards are sparse: most solutions to hard problems are wrong, "
                      "giving reward 0 for most samples. This makes learning slow and "
                      "high-variance.",
        hypothesis="On 24 test prompts sorted into difficulty bins by 8 separate base samples "
                   "(hard: none right; easy: two or more), the signal-to-noise ratio |E g|^2 / "
                   "Var(g) of the REINFORCE gradient estimate from a group of G = 8 with the "
                   "article's baseline b(x) = the pass rate is lower on the hard prompts than on "
                   "the easy ones, at the base policy; and during 2,560 completions of REINFORCE "
                   "training the hard prompts' pass rate rises more slowly.",
        metric="exact variance and signal of the gradient estimate per prompt, from 16 fresh "
               "samples per prompt (their score Gram matrix), summed over a bin's prompts; "
               "pass rate of the same samples at the start and the end of training",
        budget_samples=2560,
        methods=("reinforce",),
        comparisons=(
            Comparison("reinforce", "reinforce", -1, "hard vs easy prompts: the gradient's "
                       "signal-to-noise at the base (b = pass rate, G = 8)",
                       metric="snr/pass_rate/G8/start/hard",
                       control_metric="snr/pass_rate/G8/start/easy"),
            Comparison("reinforce", "reinforce", -1, "hard minus easy prompts: pass-rate gain "
                       "per 1,000 training completions", metric="gain_per_1k/hard_minus_easy",
                       control_metric="0"),
            Comparison("reinforce", "reinforce", -1, "the same at the end of training: hard vs "
                       "easy signal-to-noise", metric="snr/pass_rate/G8/end/hard",
                       control_metric="snr/pass_rate/G8/end/easy"),
            Comparison("reinforce", "reinforce", -1, "does a baseline lower the variance? RLOO "
                       "vs b = 0, G = 8, at the base (log of the variance ratio)",
                       metric="logratio/rloo/G8/start/all", control_metric="0"),
            Comparison("reinforce", "reinforce", -1, "the same at G = 4",
                       metric="logratio/rloo/G4/start/all", control_metric="0"),
            Comparison("reinforce", "reinforce", -1, "the exact pass rate as b(x) vs b = 0 "
                       "(log of the variance ratio, G = 8)",
                       metric="logratio/pass_rate/G8/start/all", control_metric="0"),
            Comparison("reinforce", "reinforce", -1, "the variance-minimising constant b* vs "
                       "b = 0 (log of the variance ratio, G = 8)",
                       metric="logratio/bstar/G8/start/all", control_metric="0"),
            Comparison("reinforce", "reinforce", -1, "RLOO vs b = 0 at the end of training "
                       "(log of the variance ratio, G = 8)",
                       metric="logratio/rloo/G8/end/all", control_metric="0"),
        ),
        contradicts="the interval of the hard - easy signal-to-noise difference lies entirely "
                    "above 0",
        not_shown="that interval contains 0",
        # declared, not tuned: the comparisons are within one run (every baseline is measured
        # on the same samples of the same policy), and this is the lr RLOO's accuracy picked on
        # validation in the first C12 record
        grids={"reinforce": (5e-5,)},
        tuned=False,
        lr_note="declared: RLOO's lr picked on validation accuracy in the first C12 record "
                "(results/study/superseded/C12.json); every comparison is within one run",
        caveats=((1, ("not shown", "contradicted"),
                  "slow learning on hard prompts is not seen: per 1,000 completions their pass "
                  "rate did not rise more slowly than the easy prompts'"),
                 (3, ("contradicted",),
                  "a baseline need not lower the variance with 0/1 rewards: at these pass rates "
                  "the leave-one-out baseline (RLOO) raises it, its own noise costing more than "
                  "its centring saves (REINFORCE with b = 0 is fine-tuning on the policy's own "
                  "right answers)")),
        runner="variance",
        version=2,
        article_rule=(({0: ("holds",), 1: ("holds",)}, "supported",
                       "hard prompts give a noisier gradient and learn more slowly"),
                      ({0: ("holds",)}, "nuanced",
                       "hard prompts give a noisier gradient, but they did not learn more slowly "
                       "per completion"),
                      ({0: ("contradicted",)}, "refuted",
                       "the gradient is less noisy, relative to its signal, on hard prompts"),
                      ({}, "nuanced",
                       "the gradient's signal-to-noise on hard and easy prompts is not told "
                       "apart at this replicate count")),
    ),
}
