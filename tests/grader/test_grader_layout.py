"""The grader's layout: its modules import each other without a circle, and the code that the
student release puts into refimpl (grader/delegates.py, grader/student_calls.py) is real code
that runs here: with the solutions as the student's exercises it agrees with refimpl, with an
unwritten stub it says which exercise to write, and in the released refimpl it replaces every
body that would hand out a solution line.
"""
from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

import pytest
import torch

from grader import delegates, release, student_calls
from grader import make_exercises as mk

REPO = Path(__file__).resolve().parents[2]
KEYS = sorted(delegates.DELEGATES)  # (refimpl file stem, function name)
KEY_IDS = [f"{stem}.{name}" for stem, name in KEYS]
BY_NAME = {name: fn for (_, name), fn in delegates.DELEGATES.items()}
GRADER = REPO / "grader"
TOPICS = ("dpo", "grpo", "reinforce", "logprobs", "offline_online", "rewards")


# ----------------------------------------------------------------------------- import graph


def module_name(path: Path) -> str:
    """The dotted name of a file of the grader package: grader/checks/dpo.py -> grader.checks.dpo,
    grader/checks/__init__.py -> grader.checks."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


GRADER_MODULES = {module_name(p): p for p in sorted(GRADER.rglob("*.py")) if "__pycache__" not in p.parts}


def imported_modules(node: ast.Import | ast.ImportFrom, importer: str) -> set[str]:
    """The grader modules one import statement of module ``importer`` loads: ``from grader
    import reference`` names grader.reference, ``from grader.report import KINDS`` names
    grader.report, relative imports resolved."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names} & set(GRADER_MODULES)
    base = node.module or ""
    if node.level:
        package = importer if GRADER_MODULES[importer].name == "__init__.py" else importer.rsplit(".", 1)[0]
        package = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
        base = f"{package}.{base}" if base else package
    submodules = {f"{base}.{a.name}" for a in node.names} & set(GRADER_MODULES)
    return submodules or ({base} & set(GRADER_MODULES))


def import_graph() -> dict[str, set[str]]:
    """{grader module: the grader modules it imports}, at the top of the file or inside a function."""
    graph = {}
    for name, path in GRADER_MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[name] = {m for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                       for m in imported_modules(node, name)} - {name}
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of the graph as [a, b, ..., a], or None when it has none."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        if state.get(module) == "open":
            return path[path.index(module):] + [module]
        if state.get(module) == "done":
            return None
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            circle = visit(imported, path + [module])
            if circle:
                return circle
        state[module] = "done"
        return None

    for module in sorted(graph):
        circle = visit(module, [])
        if circle:
            return circle
    return None


def test_the_import_graph_sees_top_level_and_function_local_imports():
    graph = import_graph()
    assert "grader.reference" in graph["grader.runner"]  # from grader import reference
    assert "grader.report" in graph["grader.runner"]  # from grader.report import ...
    assert "grader.runner" in graph["grader"]  # inside check()
    assert "grader.release" in graph["grader.__main__"]  # inside main()
    assert "grader.checks" in graph["grader.checks.dpo"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None


def test_the_grader_has_no_import_circle():
    circle = find_circle(import_graph())
    assert circle is None, "import circle in grader/: " + " -> ".join(circle)


# ----------------------------------------------------------------------------- the delegating bodies


@pytest.fixture
def exercises(monkeypatch):
    """Point the delegates at a folder of exercises (the solutions by default); each test
    loads the student's modules afresh."""
    def use(folder: Path) -> None:
        monkeypatch.setattr(student_calls, "EXERCISES", folder)
        for topic in TOPICS:
            sys.modules.pop(f"_student_exercise_{topic}", None)

    use(REPO / "solutions")
    yield use
    for topic in TOPICS:
        sys.modules.pop(f"_student_exercise_{topic}", None)


def refimpl_target(fn):
    """The refimpl function whose body the delegate ``fn`` replaces in the release."""
    return getattr(importlib.import_module(fn.refimpl_module), fn.__name__)


def global_names(fn) -> set[str]:
    """The names the body of ``fn`` reads that are neither its parameters nor names it binds
    (its annotations and decorator left out)."""
    body = ast.parse(inspect.getsource(fn)).body[0].body
    names = [n for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Name)]
    bound = set(inspect.signature(fn).parameters) | {n.id for n in names if not isinstance(n.ctx, ast.Load)}
    return {n.id for n in names if isinstance(n.ctx, ast.Load)} - bound


@pytest.mark.parametrize("key", KEYS, ids=KEY_IDS)
def test_each_delegate_has_the_signature_of_the_refimpl_function_it_replaces(key):
    fn = delegates.DELEGATES[key]
    target = refimpl_target(fn)
    assert fn.refimpl_module.rsplit(".", 1)[-1] == key[0] and fn.__name__ == key[1]
    shape = [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]
    assert shape == [(p.name, p.kind, p.default) for p in inspect.signature(target).parameters.values()]


@pytest.mark.parametrize("key", KEYS, ids=KEY_IDS)
def test_each_delegate_reads_only_names_its_refimpl_module_defines(key):
    fn = delegates.DELEGATES[key]
    module = importlib.import_module(fn.refimpl_module)
    released = set(vars(module)) | set(dir(builtins)) | {"student", "beyond"}  # the release imports these two
    assert global_names(fn) <= released, f"{fn.refimpl_module} has no {sorted(global_names(fn) - released)}"


def agreement_cases() -> list[tuple[str, tuple, dict]]:
    """(delegate name, args, kwargs): small inputs on which each delegate that calls an exercise
    must give refimpl's result when the exercises are the solutions."""
    from refimpl.core.tasks import get_task

    g = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    def logp(*shape: int) -> torch.Tensor:  # log-probabilities: below 0
        return -randn(*shape).abs() - 0.01

    logps, mask = logp(2, 5), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    task = get_task("add", digits=2)
    problem = task.problems("train", 1, seed=0)[0]
    return [("dpo_gradient_weight", (randn(4), randn(4)), {}),
            ("dpo_loss", (logp(4), logp(4), logp(4), logp(4)), {"beta": 0.2}),
            ("group_advantages", (rewards, 4), {"eps": 1e-3}),
            ("prob_uniform_group", (0.3, 4), {}),
            ("grpo_loss", (logps, logp(2, 5), randn(2), mask), {}),
            ("grpo_loss", (logps, logp(2, 5), randn(2), mask), {"loss_agg": "dapo", "clip_eps": 0.1}),
            *[("kl_estimate", (logps, logp(2, 5)), {"estimator": k}) for k in ("k1", "k2", "k3")],
            *[("baseline", (rewards, 4), {"kind": k}) for k in ("none", "rloo", "group_mean")],
            ("reinforce_loss", (logp(8), rewards, torch.full((8,), 0.5)), {"group_size": 4}),
            ("gather_token_logprobs", (randn(2, 3, 5), torch.randint(0, 5, (2, 3), generator=g), mask[:, :3]), {}),
            ("dpo_logit_gradient", (randn(4), [(0, 1), (2, 3)], 0.5, randn(4)), {}),
            ("policy_gradient_logits", (randn(4), rewards[:4]), {}),
            ("gradient_mass_outside", (randn(4), {0, 2}), {}),
            ("process_reward", (task, problem, task.target(problem)), {}),
            ("process_reward", (task, problem, "1,1|99"), {})]


def assert_agrees(ours, theirs) -> None:
    """A delegate's result equals refimpl's: tensors and numbers to rounding, a dict of metrics
    on the keys both log (refimpl logs more; the release's reinforce_loss logs only "loss",
    which refimpl's does not log)."""
    if isinstance(ours, dict):
        for key in set(ours) & set(theirs):
            assert_agrees(ours[key], theirs[key])
    elif isinstance(ours, tuple):
        assert isinstance(theirs, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_agrees(a, b)
    elif isinstance(ours, torch.Tensor):
        torch.testing.assert_close(ours, theirs)
    else:
        assert ours == pytest.approx(theirs)


CASES = agreement_cases()


@pytest.mark.parametrize("name, args, kwargs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_with_the_solutions_as_exercises_each_delegate_agrees_with_refimpl(exercises, name, args, kwargs):
    fn = BY_NAME[name]
    assert_agrees(fn(*args, **kwargs), refimpl_target(fn)(*args, **kwargs))


def test_every_delegate_that_calls_an_exercise_is_checked_against_refimpl():
    tested_apart = {"_aggregate", "_surrogate_per_token",  # they only raise: tested with the options below
                    "_estimate_from_logratio"}  # called by kl_estimate, and tested on its own below
    assert {name for name, _, _ in CASES} == set(BY_NAME) - tested_apart


def test_the_k1_and_k2_estimates_keep_the_course_code_and_k3_calls_the_exercise(exercises):
    logratio = torch.tensor([-0.5, 0.0, 0.7])
    assert torch.equal(delegates._estimate_from_logratio(logratio, "k1"), -logratio)
    assert torch.equal(delegates._estimate_from_logratio(logratio, "k2"), 0.5 * logratio**2)
    torch.testing.assert_close(delegates._estimate_from_logratio(logratio, "k3"), torch.expm1(logratio) - logratio)


def test_an_unwritten_exercise_names_its_file_and_the_grader_command(exercises, tmp_path):
    (tmp_path / "dpo.py").write_text(mk.strip_solutions((REPO / "solutions" / "dpo.py").read_text()))
    exercises(tmp_path)
    with pytest.raises(NotImplementedError, match=r"your exercises/dpo\.py:dpo_gradient_weight, which is not "
                                                  r"written yet.*`python -m grader --only dpo_gradient_weight`"):
        delegates.dpo_gradient_weight(torch.zeros(2), torch.zeros(2))


def beyond_calls() -> dict:
    """{what: a call with an option that no exercise covers}."""
    z, mask = torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)
    return {"ipo": lambda: delegates.dpo_loss(*[torch.zeros(2)] * 4, loss_type="ipo"),
            "label_smoothing": lambda: delegates.dpo_loss(*[torch.zeros(2)] * 4, label_smoothing=0.1),
            "biased_std": lambda: delegates.group_advantages(torch.zeros(4), 2, unbiased=False),
            "grpo_kl": lambda: delegates.grpo_loss(z, z, torch.zeros(2), mask, beta=0.1),
            "dr_grpo": lambda: delegates.grpo_loss(z, z, torch.zeros(2), mask, loss_agg="dr_grpo"),
            "gspo": lambda: delegates.grpo_loss(z, z, torch.zeros(2), mask, importance_sampling_level="sequence"),
            "token_reinforce": lambda: delegates.reinforce_loss(z, torch.zeros(2), torch.zeros(2), group_size=2,
                                                                mask=mask),
            "aggregate": lambda: delegates._aggregate(z, mask, "grpo", 3),
            "surrogate": lambda: delegates._surrogate_per_token(z, z, z, 0.2, 0.2, "clip")}


@pytest.mark.parametrize("what", sorted(beyond_calls()))
def test_an_option_no_exercise_covers_raises_not_implemented(exercises, what):
    with pytest.raises(NotImplementedError, match="with your exercise, which covers .* only"):
        beyond_calls()[what]()


# ----------------------------------------------------------------------------- the released refimpl


def refimpl_file(module: str) -> Path:
    """The file of a dotted refimpl module."""
    return Path(importlib.util.find_spec(module).origin)


def released_function(fn) -> tuple[ast.FunctionDef, ast.FunctionDef]:
    """(the refimpl function, the same function in the release) that the delegate fn rewrites."""
    source = refimpl_file(fn.refimpl_module).read_text(encoding="utf-8")
    released = release.replace_bodies(source, refimpl_file(fn.refimpl_module).stem)
    return tuple(next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == fn.__name__)
                 for text in (source, released))


@pytest.mark.parametrize("key", KEYS, ids=KEY_IDS)
def test_the_release_keeps_the_docstring_and_runs_the_delegate_body(key):
    fn = delegates.DELEGATES[key]
    original, released = released_function(fn)
    assert ast.get_docstring(released) == ast.get_docstring(original)
    expected = ast.parse(release.IMPORT + release.delegate_body(fn)).body
    assert ast.dump(ast.Module(released.body[1:], [])) == ast.dump(ast.Module(expected, []))


def write_refimpl_files(folder: Path, released: bool) -> None:
    """Write the refimpl files that grader/delegates.py rewrites into folder, as they are or
    as the release writes them."""
    folder.mkdir()
    for module in sorted({fn.refimpl_module for fn in delegates.DELEGATES.values()}):
        path = refimpl_file(module)
        text = path.read_text(encoding="utf-8")
        (folder / path.name).write_text(release.replace_bodies(text, path.stem) if released else text)


def test_the_delegates_keep_every_solution_line_out_of_the_released_refimpl(tmp_path, monkeypatch):
    write_refimpl_files(tmp_path / "course", released=False)
    assert release.leaked_lines(tmp_path / "course")  # refimpl holds answers: the release must rewrite them
    write_refimpl_files(tmp_path / "release", released=True)
    assert release.leaked_lines(tmp_path / "release") == []
    monkeypatch.delitem(delegates.DELEGATES, ("grpo", "_surrogate_per_token"))
    write_refimpl_files(tmp_path / "without_surrogate", released=True)
    leaks = {line for _, line, _ in release.leaked_lines(tmp_path / "without_surrogate")}
    assert "surr1 = ratio * A" in leaks  # the clipped surrogate is part of grpo_clipped_loss's answer


def test_the_shipped_delegating_code_holds_no_solution_line(tmp_path):
    for module in (delegates, student_calls):  # both ship in the release's grader/
        (tmp_path / Path(module.__file__).name).write_text(inspect.getsource(module))
    assert release.leaked_lines(tmp_path) == []
