"""The package's import structure: no cycles, and no import from a lower layer to a higher one.

Every `import` in minicnn/, at module level or inside a function, is read with `ast`, so a lazy
import that runs back up the layering counts as much as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "minicnn"

# Lowest first. A module may import modules of its own rank or below, never above.
RANKS = (
    # 0: plain tools that know nothing of layers: kernels, activations, data files, tables
    ("minicnn._atomic", "minicnn._table", "minicnn._tensor", "minicnn._missing",
     "minicnn.utils", "minicnn.initializers", "minicnn.regularizers",
     "minicnn.activations", "minicnn.kernels", "minicnn.datasets"),
    # 1: the reference layers
    ("minicnn.layers", "minicnn.backend"),
    # 2: what works on layers: losses, optimizers, the fast plan, the study tools, pictures
    ("minicnn.losses", "minicnn.metrics", "minicnn.optimizers", "minicnn.schedules",
     "minicnn.fast",
     "minicnn.recording", "minicnn.gradcheck", "minicnn.forward_check", "minicnn.plots"),
    # 3: callbacks, which the training loop calls
    ("minicnn.callbacks", "minicnn.study"),
    # 4: models: the container, the training loop, saving
    ("minicnn.models",),
    # 5: training on Ray (data-parallel fit, sweeps), which drives models
    ("minicnn.distributed",),
    # 6: the command line, and the package's own namespace
    ("minicnn.cli", "minicnn.__main__", "minicnn"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def rank(module: str) -> int:
    for r, prefixes in enumerate(RANKS):
        if any(module == p or (p != "minicnn" and module.startswith(p + ".")) for p in prefixes):
            return r
    raise AssertionError(f"{module} has no rank in tests/test_layering.py: give it one")


def imports_of(module: str) -> set[str]:
    """The minicnn modules `module` imports, resolved to modules (not names inside them)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("minicnn"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("minicnn"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    found.discard("minicnn")  # the top-level package: only __version__
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_rank_and_imports_only_downwards():
    upward = [f"{m} (rank {rank(m)}) imports {d} (rank {rank(d)})"
              for m, deps in sorted(GRAPH.items()) for d in sorted(deps) if rank(d) > rank(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(m):], m]))
        if m in done:
            return
        for d in GRAPH.get(m, ()):
            visit(d, [*path, m])
        done.add(m)

    for m in sorted(GRAPH):
        visit(m, [])


def test_the_reference_tier_knows_nothing_of_the_fast_tier():
    """minicnn/layers and minicnn/kernels are the code to read: no thread pool, no workspace."""
    for m, deps in GRAPH.items():
        if m.startswith(("minicnn.layers", "minicnn.kernels")):
            assert not {d for d in deps if d.startswith("minicnn.fast")}, (m, deps)


def test_the_checker_catches_a_cycle_and_an_upward_import(monkeypatch):
    """The two checks above can fail."""
    monkeypatch.setitem(GRAPH, "minicnn.layers.base", {"minicnn.models.sequential"})
    try:
        test_every_module_has_a_rank_and_imports_only_downwards()
    except AssertionError as e:
        assert "minicnn.layers.base (rank 1) imports minicnn.models.sequential" in str(e)
    else:
        raise AssertionError("an upward import went unnoticed")
    try:
        test_no_import_cycle()
    except AssertionError as e:
        assert "import cycle" in str(e)
    else:
        raise AssertionError("a cycle went unnoticed")


def private_fast_names(module: str) -> list[str]:
    """Underscore names of minicnn.fast that `module` imports, or reads as attributes of a
    minicnn.fast module however it is bound (`from minicnn.fast import parallel`, `from minicnn
    import fast`, `import minicnn.fast.parallel as p`, `import minicnn`): the tiers' contract is
    minicnn.fast's public names."""
    tree = ast.parse(MODULES[module].read_text())
    bound: dict[str, str] = {}  # a local name -> the minicnn module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("minicnn"):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if name.startswith("minicnn.fast") and alias.name.startswith("_"):
                    found.append(f"{module} imports {name}")
                elif name in MODULES:
                    bound[alias.asname or alias.name] = name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("minicnn"):
                    # `import minicnn.fast.parallel` binds `minicnn`; with `as p`, p is the module
                    top = alias.name.split(".")[0]
                    bound[alias.asname or top] = alias.name if alias.asname else top
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            continue
        path, value = [], node.value  # fast.parallel._x: the module path read before _x
        while isinstance(value, ast.Attribute):
            path.insert(0, value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in bound:
            owner = ".".join([bound[value.id], *path])
            if owner.startswith("minicnn.fast") and owner in MODULES:
                found.append(f"{module} reads {owner}.{node.attr}")
    return found


def test_nothing_outside_the_fast_tier_uses_its_private_names():
    found = [f for m in sorted(MODULES) if not m.startswith("minicnn.fast")
             for f in private_fast_names(m)]
    assert not found, "\n".join(found)


def test_the_private_name_check_can_fail(monkeypatch, tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("import minicnn\nfrom minicnn import fast\n"
                      "from minicnn.fast import parallel\nfrom minicnn.fast.plan import _x\n"
                      "from minicnn.fast.step import Step\n"
                      "parallel._check_threads(1, 'n')\nfast.parallel._pool\n"
                      "minicnn.fast.plan._y\nStep.__init__\nparallel.chunks(4)\n")
    monkeypatch.setitem(MODULES, "minicnn.bad", source)
    assert sorted(private_fast_names("minicnn.bad")) == [
        "minicnn.bad imports minicnn.fast.plan._x",
        "minicnn.bad reads minicnn.fast.parallel._check_threads",
        "minicnn.bad reads minicnn.fast.parallel._pool",
        "minicnn.bad reads minicnn.fast.plan._y"]
