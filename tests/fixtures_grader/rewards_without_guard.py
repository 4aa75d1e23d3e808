"""solutions/rewards.py's process_reward without its try/except: right on every completion
refimpl's verifiers can read, but it raises when the verifier itself fails, which the
docstring forbids ("whatever goes wrong scores 0.0")."""


def process_reward(task, problem, text) -> float:
    steps = [bool(s) for s in task.verify_steps(problem, text)]
    outcome = float(task.verify(problem, text))
    return (sum(steps) + outcome) / (len(steps) + 1)
