"""``python -m grader``: grade the exercises (see grader/runner.py for the options)."""
import sys

from grader.runner import main

if __name__ == "__main__":
    sys.exit(main())
