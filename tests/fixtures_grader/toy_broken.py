"""The toy topic with one kind of failure per exercise; `add` and `absolute` are correct.

mul hangs (the per-check alarm must stop it), div raises, sub calls sys.exit, neg kills
the process with os._exit, square hangs while swallowing the alarm (only the parent's
watchdog can stop it), half segfaults. Each must fail only its own exercise."""
import ctypes
import os
import sys


def add(a, b):
    return a + b


def mul(a, b):
    while True:
        pass


def div(a, b):
    return a / (b - 3)  # ZeroDivisionError for b = 3


def sub(a, b):
    sys.exit(3)


def neg(a):
    print("about to exit")
    os._exit(7)


def square(a):
    while True:
        try:
            while True:
                pass
        except BaseException:  # swallows the grader's time-limit signal
            pass


def half(a):
    return ctypes.string_at(0)  # reads address 0: segmentation fault


def absolute(a):
    return abs(a)
