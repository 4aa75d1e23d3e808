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
SUBPACKAGES = ("core", "methods", "experiments", "figures")
# module (short name) -> its file; short names are unique across the subpackages
FILES = {p.stem: p for p in sorted((ROOT / "refimpl").rglob("*.py")) if p.stem != "__init__"}
MODULES = sorted(FILES)


def package_of(module: str) -> str:
    """'core', 'methods', ... for a module of a subpackage; '' for refimpl/__main__.py."""
    rel = FILES[module].relative_to(ROOT / "refimpl").parts
    return rel[0] if len(rel) == 2 else ""


def doc_layers() -> dict:
    """{module: layer number} from the numbered list at the top of ARCHITECTURE.md."""
    layers = {}
    for number, _, text in LAYER_ITEMS:
        for name in re.findall(r"`([a-z_]+)`", text):
            if name in MODULES:
                layers.setdefault(name, set()).add(int(number))
    return layers


LAYER_ITEMS = re.findall(r"^(\d)\. \*\*(.*?)\*\*(.*?)(?=^\d\. \*\*|^\S|\Z)",
                         DOC.split("## Dimension letters")[0], re.M | re.S)
# layer number -> the subpackage its heading names, as "(`refimpl/core/`)"
LAYER_PACKAGE = {int(n): (re.search(r"`refimpl/(\w+)/`", text) or [None, ""])[1]
                 for n, _, text in LAYER_ITEMS}


def resolve(node: ast.ImportFrom, module: str) -> list:
    """The refimpl modules (short names) an ``from ... import ...`` line in `module` imports."""
    if node.level:
        here = ["refimpl"] + ([package_of(module)] if package_of(module) else [])
        base = here[:len(here) - node.level + 1]
        dotted = base + (node.module.split(".") if node.module else [])
    elif (node.module or "").split(".")[0] == "refimpl":
        dotted = node.module.split(".")
    else:
        return []
    if dotted[-1] in MODULES:
        return [dotted[-1]]
    return [a.name for a in node.names if a.name in MODULES]


def refimpl_imports(module: str) -> tuple[set, set]:
    """(top-level, function-local) refimpl modules imported by the module; imports under
    ``if TYPE_CHECKING:`` are annotations only and are skipped."""
    tree = ast.parse(FILES[module].read_text())
    top_nodes = set(tree.body)
    typing_only = {n for node in tree.body if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    top, local = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node not in typing_only:
            (top if node in top_nodes else local).update(resolve(node, module))
    return top, local


GRAPH = {m: refimpl_imports(m) for m in MODULES}


def test_short_module_names_are_unique():
    stems = [p.stem for p in (ROOT / "refimpl").rglob("*.py") if p.stem != "__init__"]
    assert len(stems) == len(set(stems)), sorted(s for s in stems if stems.count(s) > 1)


def test_each_layer_lives_in_the_subpackage_its_heading_names():
    layer = {k: min(v) for k, v in doc_layers().items()}
    assert set(LAYER_PACKAGE.values()) == set(SUBPACKAGES) | {""}
    wrong = {m: (package_of(m), LAYER_PACKAGE[layer[m]]) for m in MODULES
             if m in layer and package_of(m) != LAYER_PACKAGE[layer[m]]}
    assert not wrong, f"module: (its folder, its layer's folder): {wrong}"


def test_subpackages_import_only_themselves_and_those_above():
    order = {p: i for i, p in enumerate(("",) + SUBPACKAGES)}  # '' (__main__) sits on top
    for m in MODULES:
        if not package_of(m):
            continue
        up = sorted(n for n in GRAPH[m][0] | GRAPH[m][1]
                    if package_of(n) and order[package_of(n)] > order[package_of(m)])
        assert not up, f"{m} ({package_of(m)}) imports {up} from a later subpackage"


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
    shown = {re.match(r"from refimpl\.([\w.]+)", line).group(1).split(".")[-1]
             for line in doc_import_lines()}
    layer = {k: min(v) for k, v in doc_layers().items()}
    assert {layer[m] for m in shown} >= {1, 2, 3, 4, 5, 6}
