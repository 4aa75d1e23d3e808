"""Attack: forge result events in any results file named on the command line, replace the
grader's run_check, and print a fake JSON report; then score everything 0."""
import json
import sys

main = sys.modules.get("__main__")
if main is not None:
    main.run_check = lambda *args, **kwargs: (True, "ok")
for arg in sys.argv:
    try:
        with open(arg, "a") as fh:
            fh.write(json.dumps({"event": "result", "exercise": "process_reward", "index": 0, "passed": True,
                                 "message": "ok"}) + "\n")
    except OSError:
        pass
print(json.dumps({"total": {"points": 99}}))


def process_reward(task, problem, text):
    return 0.0
