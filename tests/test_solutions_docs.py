"""The written solutions quote numbers that the code recomputes."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_exercise2_uniform_group_table_is_p_to_the_G_plus_its_complement():
    """The table of P(group of G is uniform) = p^G + (1 - p)^G, to the digits it shows."""
    text = (REPO / "solutions" / "exercise2_grpo_zero_gradient.md").read_text()
    header = re.search(r"\|\s*p\s*\|([^\n]*)\|\n", text)
    ps = [float(x) for x in header.group(1).split("|")]
    rows = re.findall(r"\|\s*G = (\d+)\s*\|([^\n]*)\|\n", text)
    assert len(rows) >= 3 and len(ps) >= 5
    for G, cells in rows:
        for p, shown in zip(ps, cells.split("|")):
            shown = shown.strip()
            digits = len(shown.split(".")[1])
            value = p ** int(G) + (1 - p) ** int(G)
            assert abs(value - float(shown)) <= 0.5 * 10 ** -digits + 1e-12, (G, p, shown, value)
