"""The toy topic, but the module kills its process as soon as it is imported."""
import os

os._exit(1)


def add(a, b):
    return a + b
