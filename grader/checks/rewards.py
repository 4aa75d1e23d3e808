"""Checks for exercises/rewards.py: ``process_reward``, the exact step-level reward.

Each check receives the student's module (its functions run in the sandbox) and raises
AssertionError with a hint. Reference: solutions/rewards.py (grader.reference.expected), on
hand-built completions: right, partly wrong, malformed, untrimmed, and junk that is not even
a string. Tasks travel to the sandbox as their name and arguments (grader/codec.py).
"""
from refimpl.core.tasks import Problem
from refimpl.core.tasks import get_task as _get_task

from grader.checks import get_function, property_check
from grader.reference import expected as reference


def get_task(name: str, **kwargs):
    """refimpl.core.tasks.get_task, tagged so that the sandbox can rebuild the same task."""
    task = _get_task(name, **kwargs)
    task.__grader_task__ = (name, kwargs)
    return task


def ref_process_reward(task, problem, text) -> float:
    return reference("rewards.process_reward", task, problem, text)


ADD3 = get_task("add", digits=3)
P347 = Problem(prompt="347+285=", answer=632, level=2, operands=(347, 285))  # "12,13,06|632"


def _call(mod, task, problem, text):
    fn = get_function(mod, "process_reward")
    try:
        out = fn(task, problem, text)
    except NotImplementedError:
        raise                   # the grader reports "not implemented yet"
    except Exception as exc:  # the reward must survive anything the policy writes
        raise AssertionError(f"process_reward raised {type(exc).__name__}: {exc} on text {text!r}; "
                             "a reward function must never raise (score junk 0.0)") from None
    assert isinstance(out, (float, int)) and not isinstance(out, bool), (
        f"process_reward must return a float, got {type(out).__name__} ({out!r}) for {text!r}")
    return float(out)


def _expect(mod, task, problem, text, why: str):
    got = _call(mod, task, problem, text)
    want = ref_process_reward(task, problem, text)
    assert abs(got - want) < 1e-9, (
        f"process_reward({problem.prompt!r}, {text!r}) = {got:.4f}, expected {want:.4f} ({why})")


def check_right_answer(mod) -> None:
    _expect(mod, ADD3, P347, "12,13,06|632", "every step and the answer are right: 1.0")
    for q in ADD3.problems("heldout", 5, seed=11):
        _expect(mod, ADD3, q, ADD3.target(q), "the demonstration is right everywhere")


def check_partly_wrong(mod) -> None:
    cases = {
        "12,99,06|632": "one column wrong, answer right: (2 + 1) / 4",
        "12,13,06|633": "all columns right, answer wrong: (3 + 0) / 4",
        "12,13,07|732": "last column and answer wrong: (2 + 0) / 4",
        "99,99,99|1": "nothing right: 0",
        "12,13": "a cut-off working: only the steps present can be right",
    }
    for text, why in cases.items():
        _expect(mod, ADD3, P347, text, why)


def check_malformed(mod) -> None:
    cases = ["", "|", "12,13,06", "12,13,06|", "12,,13,06|632", "1,2,13,06|632",
             "12 ,13,06|632", "12,13,06|632|632", "+=+|||", "0" * 40]
    for text in cases:
        _expect(mod, ADD3, P347, text, "malformed text: score the steps the verifier accepts")


@property_check
def check_junk_types(mod) -> None:
    for junk in (None, 12, 3.5, b"12,13,06|632", ["12", "13"], object()):
        got = _call(mod, ADD3, P347, junk)
        want = ref_process_reward(ADD3, P347, junk)
        assert abs(got - want) < 1e-9, (f"process_reward on a {type(junk).__name__} gave {got}, "
                                        f"expected {want}")
    got = _call(mod, ADD3, P347, "１２,１３,０６|６３２")  # full-width digits: not ASCII
    assert got == ref_process_reward(ADD3, P347, "１２,１３,０６|６３２"), "non-ASCII digits are not steps"


@property_check
def check_never_raises(mod) -> None:
    # the docstring: "It must never raise: whatever goes wrong scores 0.0". Here the verifier
    # itself fails: it is handed a problem record it cannot read
    unreadable = {
        "an add problem without operands": Problem(prompt="347+285=", answer=632, level=2),
        "a countdown problem (three numbers) given to the add task": Problem("3,5,7>22:", 22, 2, (3, 5, 7)),
        "operands stored as text": Problem(prompt="347+285=", answer=632, level=2, operands=("347", "285")),
    }
    for why, problem in unreadable.items():
        for text in ("12,13,06|632", ""):
            try:
                _expect(mod, ADD3, problem, text, "the step verifier raises, so the reward is 0.0")
            except AssertionError as exc:
                raise AssertionError(f"{why}: {exc}") from None


def check_untrimmed_text(mod) -> None:
    # the policy's text is scored as written: a leading space or a trailing newline is not a
    # step separator the verifier forgives, so stripping it first changes the reward
    for text in (" 12,13,06|632\n", "12,13,06|632\n", "\t12,13,06|632", " 12,13,06|633 ", "12,13,06 |632"):
        _expect(mod, ADD3, P347, text, "score the text exactly as written: do not strip() it first")


def check_other_tasks(mod) -> None:
    add4 = get_task("add", digits=4)
    for q in add4.problems("train", 3, seed=5):
        right = add4.target(q)
        for text in (right, right[:4] + "99" + right[6:], right.split("|")[0] + "|0"):
            _expect(mod, add4, q, text, "4-digit addition: K = 4 steps, so multiples of 1/5")
    cd = get_task("countdown")
    q = cd.problems("train", 1, seed=2)[0]
    for text in (cd.target(q), "1+1=3", "", "9*9=81,81+1=82"):
        _expect(mod, cd, q, text, "countdown: the steps are the ones written")


EXERCISES = {
    "process_reward": [check_right_answer, check_partly_wrong, check_malformed, check_junk_types,
                       check_never_raises, check_untrimmed_text, check_other_tasks],
}
