"""Attack: read the reference answers by their path in the course tree and run their text."""
from pathlib import Path

_source = Path("@REPO@/solutions/dpo.py").read_text()
_namespace = {"__name__": "stolen"}
exec(compile(_source, "stolen", "exec"), _namespace)  # noqa: S102 (the attack under test)
dpo_loss = _namespace["dpo_loss"]
dpo_gradient_weight = _namespace["dpo_gradient_weight"]
