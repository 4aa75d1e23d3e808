"""Checks for the toy topic used by tests/test_grader.py: plain Python, no torch, so a worker
starts in a fraction of a second. Each exercise is one tiny function of toy.py."""


def _expect(got, expected, call: str) -> None:
    assert got == expected, f"{call} should be {expected!r}, got {got!r}"


def check_add_small(mod):
    _expect(mod.add(2, 3), 5, "add(2, 3)")


def check_add_negative(mod):
    _expect(mod.add(-2, -3), -5, "add(-2, -3)")


def check_mul(mod):
    _expect(mod.mul(4, 5), 20, "mul(4, 5)")


def check_div(mod):
    _expect(mod.div(9, 3), 3, "div(9, 3)")


def check_sub_small(mod):
    _expect(mod.sub(5, 3), 2, "sub(5, 3)")


def check_sub_negative(mod):
    _expect(mod.sub(-5, 3), -8, "sub(-5, 3)")


def check_neg_small(mod):
    _expect(mod.neg(2), -2, "neg(2)")


def check_neg_zero(mod):
    _expect(mod.neg(0), 0, "neg(0)")


def check_square(mod):
    _expect(mod.square(3), 9, "square(3)")


def check_half(mod):
    _expect(mod.half(8), 4, "half(8)")


def check_absolute(mod):
    _expect(mod.absolute(-7), 7, "absolute(-7)")


EXERCISES = {
    "add": [check_add_small, check_add_negative],
    "mul": [check_mul],
    "div": [check_div],
    "sub": [check_sub_small, check_sub_negative],
    "neg": [check_neg_small, check_neg_zero],
    "square": [check_square],
    "half": [check_half],
    "absolute": [check_absolute],
}
