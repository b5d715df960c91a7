"""The package's structure as a learner opens it: no import cycle between its modules (lazy
imports inside functions included), and the torch-free side stays torch-free."""

import ast
import subprocess
import sys
from pathlib import Path

HELPERS = Path(__file__).resolve().parents[1] / "helpers"


def package_imports(folder=HELPERS):
    """{module: set of sibling modules it imports}, from `from . import x` / `from .x import y`
    anywhere in the file (at the top or inside a function). A folder of modules (`exercises/`)
    counts as one module, importing what its files import from the package (`from ..x`)."""
    files = {path.stem: [path] for path in folder.glob("*.py")}
    files.update({init.parent.name: sorted(init.parent.glob("*.py")) for init in folder.glob("*/__init__.py")})
    graph = {}
    for module, paths in files.items():
        found = set()
        for path in paths:
            level = 1 if path.parent == folder else 2  # the level at which the package's modules are
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == level:
                    names = [node.module] if node.module else [a.name for a in node.names]
                    found |= {n.split(".")[0] for n in names} & set(files)
        graph[module] = found - {module}
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for other in sorted(graph[module]):
            if state.get(other) == "open":
                return path[path.index(other):] + [other]
            if other not in state:
                cycle = visit(other, path + [other])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_module_of_helpers_imports_itself_round_a_cycle():
    assert find_cycle(package_imports()) is None


def test_settings_and_layer_names_are_checked_without_pytorch():
    code = ("import sys, helpers.config, helpers.layers;"
            "helpers.layers.check_layers(['relu1_1', 'relu4_2']);"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_packages_docstring_lists_every_module_below_the_ones_it_imports():
    """helpers/__init__'s list of modules is the import order: each module imports only
    modules listed above it (or on its own line), and every module is listed."""
    import re

    import helpers

    listed = []
    for line in helpers.__doc__.splitlines():
        if line.startswith("- `"):
            names = re.match(r"- ((?:`\w+`(?:, )?)+)", line).group(1)  # the names before the text
            listed.append(re.findall(r"`(\w+)`", names))
    position = {name: i for i, names in enumerate(listed) for name in names}
    graph = package_imports()
    assert set(graph) - {"__init__", "__main__"} == set(position)
    for module, imported in graph.items():
        for other in imported:
            if module in position:
                assert position[other] <= position[module], f"{module} imports {other}, listed below it"
