"""``python -m grader``: grade the exercises (grader/runner.py, see it for the options), or
build a student release or an autograder bundle (``release``/``bundle``, grader/release.py).

The choice is made here, above both modules, because the release grades the solutions with
the runner: the runner never imports the release, so the grader's imports form no circle.
"""
import sys


def main(argv: list[str] | None = None) -> int:
    """The exit code of ``python -m grader ARGV``: ``release`` and ``bundle`` go to
    grader/release.py, anything else to grader/runner.py."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["release"], ["bundle"]):
        from grader.release import main as release_main

        return release_main(argv)
    from grader.runner import main as grade_main

    return grade_main(argv)


if __name__ == "__main__":
    sys.exit(main())
