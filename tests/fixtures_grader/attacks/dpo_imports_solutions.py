"""Attack: take the reference answers instead of writing them."""
from solutions.dpo import *  # noqa: F401,F403
