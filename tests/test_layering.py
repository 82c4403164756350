"""The package's layering, read from its source: no import cycle (not even through imports
inside functions), no module reaching into another's private names, no module outside a
cell's own files naming a cell, and each cell's equations written once."""
import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from rnnsim.plugins import get_plugins

PACKAGE = Path(__file__).resolve().parents[1] / "rnnsim"

# Modules that translate or compare with other implementations of the same cells, and so
# name them: the PyTorch and ONNX importers map torch.nn.LSTM or an ONNX GRU node onto a cell,
# the benchmarks (bench, streambench) run the peers' own RNN/LSTM/GRU/reservoir beside it,
# and the config schema names the default cell.
NAMING_ALLOWED = {"interop/torch.py", "interop/onnx/recurrent.py", "interop/keras/layers.py",
                  "interop/reservoirpy.py", "bench.py", "streambench.py", "config.py"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) of every runtime import in the module, anywhere in
    it (``if TYPE_CHECKING:`` blocks excepted)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            target = node.module if not node.level else (
                f"{base}.{node.module}" if node.module else base)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, []) if sub in known else (target, [alias.name]))
    return [(module, names) for module, names in found if module in known]


def test_no_import_cycles():
    known = modules()
    graph = {name: {m for m, _ in imports(name, path, known) if m not in (name, "rnnsim")}
             for name, path in known.items()}
    cycles, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_reaches_into_anothers_private_names():
    """Neither ``from .x import _y`` nor ``x._y`` on an imported rnnsim module."""
    known = modules()
    reaches = [f"{name} imports {module}.{n}" for name, path in known.items()
               for module, names in imports(name, path, known) for n in names
               if private(n) and module != name]
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        aliases = {alias.asname or alias.name for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) and node.level for alias in node.names
                   if not alias.name[:1].isupper()}
        reaches += [f"{name} reads {node.value.id}.{node.attr}" for node in ast.walk(tree)
                    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and private(node.attr)]
    assert not reaches


def test_no_module_outside_a_cells_files_names_a_cell():
    cells = get_plugins().cells.entries.values()
    own = {Path(inspect.getsourcefile(entry.cls)) for entry in cells}
    names = "|".join(re.escape(entry.name) for entry in cells)
    pattern = re.compile(rf"""["']({names})["']""")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if path in own or relative in NAMING_ALLOWED or relative.startswith("kernels/"):
            continue
        offenders += [f"{relative}:{i}: {line.strip()}"
                      for i, line in enumerate(path.read_text().splitlines(), 1)
                      if pattern.search(line)]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("entry", sorted(get_plugins().cells.entries))
def test_every_cell_comes_through_the_hook_with_what_it_owns(entry):
    cls = get_plugins().cells.get(entry, "test").cls
    assert cls.name == entry and cls.template
    assert callable(cls.parameter_shapes) and callable(cls.run_direction)


def template_module(name: str, target: str):
    return importlib.import_module(name if "." in name else f"rnnsim.kernels.{target}.{name}")


def own_functions(module):
    for value in vars(module).values():
        fn = getattr(value, "py_func", value)
        if inspect.isfunction(fn) and fn.__module__ == module.__name__:
            yield fn


@pytest.mark.parametrize("entry", sorted(get_plugins().cells.entries))
def test_a_cells_equations_are_written_once(entry):
    """Only the CPU template's EQUATIONS call the activations; the GPU template runs the same
    functions (codegen compiles them as device functions), never a copy of its own."""
    cls = get_plugins().cells.get(entry, "test").cls
    cpu = template_module(cls.template, "cpu")
    equations = set(cpu.EQUATIONS)
    templates = [cpu]
    if cls.cuda_template:
        cuda = template_module(cls.cuda_template, "cuda")
        assert any(fn in equations for fn in cuda.EQUATIONS)
        templates.append(cuda)
        equations |= set(cuda.EQUATIONS)
    for module in templates:
        for fn in own_functions(module):
            if fn not in equations:
                assert not any(re.fullmatch(r"act\d+", n) for n in fn.__code__.co_names), (
                    f"{module.__name__}.{fn.__name__} applies an activation itself: its "
                    f"equations belong in the CPU template's EQUATIONS")
