"""docs/ARCHITECTURE.md is true: every import line it shows resolves, every refimpl module sits
in exactly one of its layers and in the folder it names, and the imports of each module (read
from the source) follow its rules: one import style (full absolute paths), only the same or a
lower layer, at the top of the file, and no import circles."""
import ast
import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
SUBPACKAGES = ("core", "methods", "experiments", "figures")
# module (short name) -> its file; short names are unique across the subpackages and folders
FILES = {p.stem: p for p in sorted((ROOT / "refimpl").rglob("*.py")) if p.stem != "__init__"}
MODULES = sorted(FILES)
DOTTED = {m: ".".join(f.relative_to(ROOT).with_suffix("").parts) for m, f in FILES.items()}
SHORT = {d: m for m, d in DOTTED.items()}


def package_of(module: str) -> str:
    """'core', 'methods', ... for a module of a subpackage (or of a folder inside one); '' for
    refimpl/__main__.py."""
    rel = FILES[module].relative_to(ROOT / "refimpl").parts
    return rel[0] if len(rel) >= 2 else ""


def folder_of(module: str) -> str:
    """'claims_study', 'labs', ... for a module in a folder of experiments/; '' otherwise."""
    rel = FILES[module].relative_to(ROOT / "refimpl").parts
    return rel[1] if len(rel) == 3 else ""


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


def resolve(node: ast.ImportFrom) -> list:
    """The refimpl modules (short names) a ``from refimpl... import ...`` line imports."""
    dotted = node.module or ""
    if node.level or dotted.split(".")[0] != "refimpl":
        return []
    if dotted in SHORT:
        return [SHORT[dotted]]
    return [SHORT[f"{dotted}.{a.name}"] for a in node.names if f"{dotted}.{a.name}" in SHORT]


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
            (top if node in top_nodes else local).update(resolve(node))
    return top, local


GRAPH = {m: refimpl_imports(m) for m in MODULES}


def test_short_module_names_are_unique():
    stems = [p.stem for p in (ROOT / "refimpl").rglob("*.py") if p.stem != "__init__"]
    assert len(stems) == len(set(stems)), sorted(s for s in stems if stems.count(s) > 1)


# ---- one import style: full absolute paths, in the library and everything that uses it ----
def python_sources():
    """(name, source) of every tracked Python file and notebook code cell that may import refimpl."""
    for p in sorted(ROOT.glob("**/*.py")):
        if not any(part.startswith(".") or part in ("build", "_build") for part in p.relative_to(ROOT).parts):
            yield str(p.relative_to(ROOT)), p.read_text()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for i, c in enumerate(cells):
            if c["cell_type"] == "code":
                src = "".join(c["source"])
                yield f"{nb.name} cell {i}", "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))


SOURCES = list(python_sources())


def test_the_library_has_no_relative_imports():
    rel = [(m, ast.unparse(n)) for m in MODULES for n in ast.walk(ast.parse(FILES[m].read_text()))
           if isinstance(n, ast.ImportFrom) and n.level]
    assert not rel, f"relative imports (write the full path): {rel[:5]}"


def test_every_refimpl_import_names_a_module_by_its_full_path():
    """No short path of the old flat layout (``from refimpl import grpo``), anywhere."""
    short = []
    for name, src in SOURCES:
        for n in ast.walk(ast.parse(src)):
            if isinstance(n, ast.ImportFrom) and n.module == "refimpl":
                short += [(name, a.name) for a in n.names if a.name in MODULES]
            if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("refimpl."):
                assert n.module in DOTTED.values() or (ROOT / n.module.replace(".", "/")).is_dir(), \
                    f"{name}: no module {n.module}"
    assert not short, f"short paths (use refimpl.<subpackage>...): {short[:5]}"


def test_an_old_short_path_fails_naming_the_full_one():
    with pytest.raises(ImportError, match=r"from refimpl\.methods import grpo"):
        exec("from refimpl import grpo", {})
    with pytest.raises(ImportError, match=r"from refimpl\.experiments\.head_to_head import compare"):
        exec("from refimpl import compare", {})


def doc_folders() -> dict:
    """{module: folder} from the "Folders of experiments/" table of ARCHITECTURE.md."""
    rows = re.findall(r"^\| `refimpl/experiments/(\w+)/` \|([^|]*)\|", DOC, re.M)
    return {m: folder for folder, text in rows for m in re.findall(r"`([a-z_]+)`", text)}


def test_every_experiments_module_sits_in_the_folder_the_doc_names():
    exp = {m: folder_of(m) for m in MODULES if package_of(m) == "experiments"}
    assert all(exp.values()), f"loose in experiments/: {[m for m, f in exp.items() if not f]}"
    assert doc_folders() == exp


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
