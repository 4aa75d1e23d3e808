"""A diagnosis submission that never gives a proper answer: call after call, it returns a list,
labels outside the closed lists, raises, and returns a bare string. Each run must score 0 with
a message, and the grader must finish."""
CALLS = [0]


def diagnose(dashboard):
    CALLS[0] += 1
    kind = CALLS[0] % 4
    if kind == 0:
        return ["a list", "not a tuple"]
    if kind == 1:
        return "not_a_failure_label", "not_a_remedy_label"
    if kind == 2:
        raise ValueError("cannot read this dashboard")
    return "one string"
