"""One name per concept in the experiments: a claim's arm that runs a method of the registry has
the registry's name, every method and arm has one label (``refimpl.methods.registry.LABELS``, the
only label table), the three bandits have names that say which bandit they are, and the
foundations hold no study settings (docs/ARCHITECTURE.md, "Terms and symbols")."""
import ast
import dataclasses
import json
from pathlib import Path

from refimpl.core import checks
from refimpl.core.utils import Preset
from refimpl.experiments.claims_study import dpo_runs, length_runs, ppo_runs, reward_runs
from refimpl.experiments.claims_study.claims import CLAIMS
from refimpl.experiments.labs import bandit, offline_online
from refimpl.methods import ppo_analysis, reinforce
from refimpl.methods.grpo_trainer import GRPOConfig
from refimpl.methods.registry import LABELS, METHODS

ROOT = Path(__file__).resolve().parents[2]
ARMS = {m for c in CLAIMS.values() for m in c.methods}
# the names the study used for registry methods before it used the registry's
OLD_NAMES = {"pure", "nll", "nll_flip", "cdpo_flip", "outcome", "outcome_grpo", "agg_grpo"}
RUNNER_ARMS = {"dpo": dpo_runs.DPO_METHODS, "reward": reward_runs.REWARD_METHODS,
               "length": length_runs.LENGTH_METHODS, "coverage": offline_online.C3_METHODS,
               "critic": ppo_analysis.CRITIC_METHODS,
               "ppo": (*ppo_runs.PPO_METHODS, *ppo_analysis.CRITIC_METHODS)}   # C15 fits the critic too


def test_arms_that_run_a_registry_method_have_its_name():
    """No old alias; each runner's arm that trains a registry method unchanged has its name."""
    assert not ARMS & OLD_NAMES, sorted(ARMS & OLD_NAMES)
    assert {"dpo", "rpo"} <= set(dpo_runs.DPO_METHODS)                      # C4, C5
    assert {"reinforce", "grpo"} <= set(reward_runs.REWARD_METHODS)        # C10, C12, C13, C19
    assert {"grpo", "reinforce"} <= set(offline_online.C3_METHODS)         # C3
    # C11b: the arm with GRPOConfig's own loss aggregation is GRPO as the registry runs it
    own = [m for m in length_runs.LENGTH_METHODS if m.removeprefix("agg_") == GRPOConfig().loss_agg]
    assert own == ["grpo"]
    # C10-C19: the REINFORCE arm on the verifier with the registry's RLOO baseline (every
    # advantage kept) is "reinforce"
    assert [m for m, r in reward_runs.REINFORCE_REWARDS.items()
            if r == "outcome" and m not in ("nobaseline", "rloo_positive")] == ["reinforce"]
    for cid, claim in CLAIMS.items():
        assert set(claim.methods) <= set(RUNNER_ARMS.get(claim.runner, METHODS)), cid


def test_every_method_and_arm_has_exactly_one_label():
    """LABELS labels exactly the methods and the arms, each once, with no two sharing a label,
    and its written-out arms neither repeat nor relabel a method."""
    names = set(METHODS) | ARMS | {m for arms in RUNNER_ARMS.values() for m in arms}
    assert names == set(LABELS), (sorted(names - set(LABELS)), sorted(set(LABELS) - names))
    assert all(LABELS[m] == METHODS[m].label for m in METHODS)
    assert len(set(LABELS.values())) == len(LABELS), "two names share a label"
    tree = ast.parse((ROOT / "refimpl" / "methods" / "registry.py").read_text())
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                 and [ast.unparse(t) for t in n.targets] == ["LABELS"])
    keys = [k.value for k in table.keys if k is not None]         # the arms written out
    assert len(keys) == len(set(keys)) and not set(keys) & set(METHODS), keys


def python_sources():
    """(name, parsed module) of every Python file and notebook code cell of the course."""
    for folder in ("refimpl", "exercises", "solutions", "grader", "tests"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            yield str(p.relative_to(ROOT)), ast.parse(p.read_text())
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, c in enumerate(json.loads(nb.read_text())["cells"]):
            if c["cell_type"] == "code":
                src = "\n".join(l for l in "".join(c["source"]).splitlines()
                                if not l.lstrip().startswith(("%", "!")))
                yield f"{nb.name} cell {i}", ast.parse(src)


def label_tables(tree) -> list:
    """Names ending in LABELS that a module binds to a dict (a literal, comprehension or call)."""
    found = []
    for n in ast.walk(tree):
        targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, ast.AnnAssign) else []
        value = getattr(n, "value", None)
        if isinstance(value, (ast.Dict, ast.DictComp)) or (
                isinstance(value, ast.Call) and ast.unparse(value.func) == "dict"):
            found += [t.id for t in targets if isinstance(t, ast.Name) and t.id.endswith("LABELS")]
    return found


def test_no_module_but_the_registry_defines_a_label_table():
    """The library, exercises, solutions, grader, tests and notebooks import LABELS, never
    define another."""
    tables = {name: found for name, tree in python_sources() if (found := label_tables(tree))}
    assert tables == {"refimpl/methods/registry.py": ["LABELS"]}, tables


def test_the_label_scan_finds_a_table():
    """The scan above can fail: it finds a label table written each way, and only those."""
    assert label_tables(ast.parse("X_LABELS = {'a': 'A'}\nLABELS: dict = dict(a='A')")) == \
        ["X_LABELS", "LABELS"]
    assert label_tables(ast.parse("LABELS_BLOCK = re.compile('x')\nlabels = {}")) == []


def test_the_three_bandits_have_names_that_say_which_bandit():
    """Preference, coverage and reward bandit: three names, and the old ones are gone."""
    classes = (bandit.PreferenceBandit, offline_online.CoverageBandit,
               reinforce.RewardBanditGradients)
    names = [c.__name__ for c in classes]
    assert len(set(names)) == 3 and all("Bandit" in n for n in names)
    assert bandit.make_preference_bandit(bandit.PreferenceBanditConfig()).reward.shape == (4, 6)
    for module, old in ((bandit, "Bandit"), (bandit, "BanditConfig"), (bandit, "make_bandit"),
                        (offline_online, "ToyBandit"), (reinforce, "BanditGradients"),
                        (reinforce, "exact_bandit_gradient")):
        assert not hasattr(module, old), f"{module.__name__}.{old}"


def test_the_foundations_hold_no_study_settings():
    """The study's run check lives with the study (claims_study.study_checks), its head-to-head
    defaults with the head-to-head (compare.PRESET_DEFAULTS)."""
    assert not hasattr(checks, "study_run")
    assert "study_run" not in (ROOT / "refimpl" / "core" / "checks.py").read_text()
    assert "study" not in {f.name for f in dataclasses.fields(Preset)}
