"""The launchers' side is layered: drawn from the source, the subpackages and modules of `trainers/` import each
other without a cycle, so each can be read (and tested) from the bottom up. Every import counts, at the top of a file
or inside a function, relative (`from ..tasks.registry import`) or absolute (`briskbert.trainers.tasks`)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAINERS = REPO / "trainers"


def unit(module: tuple[str, ...]) -> str:
    """The node of the graph a module belongs to: its subpackage of trainers/ (`finetuning`), or a top-level module
    (`config`)."""
    return module[1]


def imported_modules(path: Path) -> set[tuple[str, ...]]:
    """The trainers modules `path` imports, as dotted parts from `trainers` (names imported from a package count as
    its submodules where such a file exists)."""
    here = ("trainers", *path.relative_to(TRAINERS).with_suffix("").parts)
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package, up level - 1 folders
                module = (*package[: len(package) - node.level + 1], *filter(None, (node.module or "").split(".")))
            elif (node.module or "").startswith("briskbert.trainers"):
                module = tuple(node.module.split(".")[1:])
            else:
                continue
            found |= {(*module, alias.name) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {tuple(alias.name.split(".")[1:]) for alias in node.names
                      if alias.name.startswith("briskbert.trainers.")}
    return {module for module in found if len(module) >= 2 and module[0] == "trainers"
            and ((TRAINERS / module[1]).is_dir() or (TRAINERS / f"{module[1]}.py").is_file())}


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in TRAINERS.rglob("*.py"):
        source = unit(("trainers", *path.relative_to(TRAINERS).with_suffix("").parts))
        if source == "__init__":
            continue
        targets = {unit(module) for module in imported_modules(path)} - {source}
        graph.setdefault(source, set()).update(targets)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_relative_absolute_and_function_level_imports(tmp_path):
    """The reader of the graph is itself checked on the forms it must see."""
    graph = import_graph()
    assert "tasks" in graph["finetuning"]  # from ..tasks.features import ... (top of finetuning/loop.py)
    assert "inference" in graph["finetuning"]  # from ..inference.quantize import quantize (inside a function)
    assert "tasks" in graph["hub"] and "measuring" in graph["pretraining"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_trainers_subpackages_import_each_other_without_a_cycle():
    found = cycles(import_graph())
    assert not found, f"import cycles between trainers/ subpackages (move the shared part lower): {found}"
