"""docs/ARCHITECTURE.md is true: every import line it shows resolves, every refimpl module sits
in exactly one of its layers, and the imports of each module (read from the source) follow its
rules: only the same or a lower layer, at the top of the file, and no import circles."""
import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
MODULES = sorted(p.stem for p in (ROOT / "refimpl").glob("*.py") if p.stem != "__init__")


def doc_layers() -> dict:
    """{module: layer number} from the numbered list at the top of ARCHITECTURE.md."""
    head = DOC.split("## Dimension letters")[0]
    layers = {}
    for number, text in re.findall(r"^(\d)\. \*\*.*?\*\*(.*?)(?=^\d\. \*\*|^\S|\Z)", head,
                                   re.M | re.S):
        for name in re.findall(r"`([a-z_]+)`", text):
            if name in MODULES:
                layers.setdefault(name, set()).add(int(number))
    return layers


def refimpl_imports(path: Path) -> tuple[set, set]:
    """(top-level, function-local) refimpl modules imported by the file; imports under
    ``if TYPE_CHECKING:`` are annotations only and are skipped."""
    tree = ast.parse(path.read_text())
    top_nodes = set(tree.body)
    typing_only = {n for node in tree.body if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    top, local = set(), set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node in typing_only:
            continue
        if node.level == 1:
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
        elif (node.module or "").split(".")[0] == "refimpl":
            parts = node.module.split(".")
            names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
        else:
            continue
        (top if node in top_nodes else local).update(n for n in names if n in MODULES)
    return top, local


GRAPH = {m: refimpl_imports(ROOT / "refimpl" / f"{m}.py") for m in MODULES}


def test_every_module_is_in_exactly_one_layer():
    layers = doc_layers()
    assert sorted(layers) == MODULES, f"not in a layer: {sorted(set(MODULES) - set(layers))}"
    assert all(len(v) == 1 for v in layers.values()), {k: v for k, v in layers.items() if len(v) > 1}


@pytest.mark.parametrize("module", MODULES)
def test_imports_go_to_the_same_or_a_lower_layer(module):
    layer = {k: min(v) for k, v in doc_layers().items()}
    top, local = GRAPH[module]
    upward = sorted(m for m in top | local if layer[m] > layer[module])
    assert not upward, f"{module} (layer {layer[module]}) imports higher layers: {upward}"


@pytest.mark.parametrize("module", [m for m in MODULES if m != "__main__"])
def test_refimpl_imports_sit_at_the_top_of_the_file(module):
    # __main__ is the one stated exception: it imports inside its command functions so that a
    # bad argument is answered before torch loads (ARCHITECTURE.md, layer 7)
    assert not GRAPH[module][1], f"{module} imports {sorted(GRAPH[module][1])} inside a function"


def test_no_import_circles():
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import circle: " + " -> ".join(path + [m])
        state[m] = "open"
        for n in sorted(GRAPH[m][0]):
            visit(n, path + [m])
        state[m] = "done"

    for m in MODULES:
        visit(m, [])


def doc_import_lines() -> list:
    blocks = re.findall(r"```python\n(.*?)```", DOC, re.S)
    return [line.split("#")[0].strip() for b in blocks for line in b.splitlines()
            if line.startswith("from refimpl")]


@pytest.mark.parametrize("line", doc_import_lines())
def test_every_import_line_in_the_doc_resolves(line):
    module, names = re.fullmatch(r"from (refimpl[\w.]*) import (.+)", line).groups()
    mod = importlib.import_module(module)
    missing = [n.strip() for n in names.split(",") if not hasattr(mod, n.strip())]
    assert not missing, f"{module} has no {missing}"


def test_the_doc_shows_imports_of_every_layer():
    shown = {re.match(r"from refimpl\.(\w+)", line).group(1) for line in doc_import_lines()}
    layer = {k: min(v) for k, v in doc_layers().items()}
    assert {layer[m] for m in shown} >= {1, 2, 3, 4, 5, 6}
