"""The architecture: lower layers never import higher ones, no import circle, light entry points."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"medip": ROOT / "medip", "medip.operators": ROOT / "operators",
           "medip.cli": ROOT / "cli"}
# medip's layers, lowest first (the design card): each may import only its own and lower ones.
LAYERS = [("medip._version", "medip._lazy", "medip.defaults", "medip.errors", "medip.interrupt"),
          ("medip.operators",), ("medip.engine", "medip.io"), ("medip.tasks",),
          ("medip.reconstruct",), ("medip.app", "medip.integrations"), ("medip.cli",)]
SIDE_BY_SIDE = {("medip.engine", "medip.io"), ("medip.io", "medip.engine"),
                ("medip.app", "medip.integrations"), ("medip.integrations", "medip.app")}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if package == "medip" and parts[0] in ("operators", "cli"):
                continue
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _nodes(tree: ast.AST):
    """Every node, except what sits under ``if TYPE_CHECKING:`` (never imported at run time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        yield node
        yield from _nodes(node)


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The medip modules ``name`` imports anywhere in its text (lazy imports included; the
    package ``medip`` itself, a lazy table, is left out)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in _nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t not in (name, "medip")}
    return out


def layer_of(module: str) -> tuple[int, str]:
    for rank, names in enumerate(LAYERS):
        for prefix in names:
            if module == prefix or module.startswith(prefix + "."):
                return rank, prefix
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS")


def test_no_module_imports_a_higher_layer_or_a_sibling():
    found = modules()
    wrong = []
    for name, path in found.items():
        if name == "medip":
            continue  # the package's lazy table names the public API of every layer
        rank, group = layer_of(name)
        for target in imports(name, path, set(found)):
            target_rank, target_group = layer_of(target)
            if target_rank > rank or (target_rank == rank and target_group != group
                                      and (group, target_group) in SIDE_BY_SIDE):
                wrong.append(f"{name} -> {target}")
    assert not wrong, wrong


def test_no_import_circle():
    found = modules()
    graph = {name: imports(name, path, set(found)) for name, path in found.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, " -> ".join(trail + [nxt])
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_help_and_version_load_neither_torch_nor_monai():
    code = ("import sys, medip.cli.main as m, contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    m.build_parser().format_help()\n"
            "print(sorted(n for n in ('torch', 'monai', 'pydicom', 'numpy') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
