"""The package's dependencies point one way (docs/architecture.md), read from its source with ``ast``.

Layers, lowest first: foundation (frontend, augment, logs, cli, data, models) <- config
(builders and validation) <- tasks <- train <- evaluation (and the inference, export and
embedding commands) <- main. A module may import its own layer or a lower one; no import
inside a function, unless listed in ``LAZY`` with its reason; no import cycle.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "audiossl_jax"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "audiossl_jax",
            "audiossl_jax.logs",
            "audiossl_jax.cli",
            "audiossl_jax.frontend",
            "audiossl_jax.augment",
            "audiossl_jax.data",
            "audiossl_jax.models",
        ),
    ),
    (
        "config",
        (
            "audiossl_jax.config_lib",
            "audiossl_jax.config_finetune",
            "audiossl_jax.config_grids",
        ),
    ),
    ("tasks", ("audiossl_jax.tasks",)),
    ("train", ("audiossl_jax.train",)),
    (
        "evaluation",
        (
            "audiossl_jax.evaluation",
            "audiossl_jax.inference",
            "audiossl_jax.export",
            "audiossl_jax.embed",
            "audiossl_jax.hear",
            "audiossl_jax.save_untrained",
        ),
    ),
    ("entry", ("audiossl_jax.main",)),
)

# (importing module, imported module) pairs that may import inside a function, and why. Keep it short:
# an import inside a function that only dodges a cycle hides a dependency that points the wrong way.
LAZY: dict[tuple[str, str], str] = {}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str, known: dict[str, pathlib.Path]) -> str:
    """The package module an import names: ``name`` itself, or the longest known prefix of it."""
    while name not in known:
        name = name.rpartition(".")[0]
    return name


def imports(path: pathlib.Path, known: dict[str, pathlib.Path]) -> list[tuple[str, int, bool]]:
    """(imported package module, line, inside a function) for every ``audiossl_jax`` import of ``path``."""
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [f"{child.module}.{a.name}" for a in child.names]
            else:
                names = []
            for name in names:
                if name.split(".")[0] == "audiossl_jax":
                    found.append((resolve(name, known), child.lineno, inner))
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


def layer(module: str) -> int:
    """Index in LAYERS of the longest prefix that names ``module``'s layer."""
    best, index = "", -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    assert index >= 0, f"{module} is in no layer of LAYERS; add it to the one it belongs to"
    return index


def graph() -> dict[str, list[tuple[str, int, bool]]]:
    known = modules()
    return {m: [e for e in imports(p, known) if e[0] != m] for m, p in known.items()}


def test_every_import_points_down_the_layers():
    wrong = [
        f"{m}:{line} imports {target} ({LAYERS[layer(target)][0]}, above {LAYERS[layer(m)][0]})"
        for m, edges in graph().items()
        for target, line, _ in edges
        if layer(target) > layer(m)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_inside_a_function_unless_listed():
    inside = [
        f"{m}:{line} imports {target} inside a function"
        for m, edges in graph().items()
        for target, line, lazy in edges
        if lazy and (m, target) not in LAZY
    ]
    assert not inside, "\n".join(inside)


def test_no_import_cycle():
    edges = {m: sorted({t for t, _, _ in e}) for m, e in graph().items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def cycle_from(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in edges[m]:
            if state.get(t) == 1:
                return path[path.index(t) :] + [t]
            if t not in state and (found := cycle_from(t)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(edges):
        if m not in state and (found := cycle_from(m)):
            raise AssertionError("import cycle: " + " -> ".join(found))


def test_the_checks_see_a_wrong_import(tmp_path):
    """The parser finds a function-level import and the layer of each kind of module."""
    source = tmp_path / "x.py"
    source.write_text("from audiossl_jax import frontend\n\ndef f():\n    from audiossl_jax.train import trainer\n")
    found = imports(source, modules())
    assert found == [("audiossl_jax.frontend", 1, False), ("audiossl_jax.train.trainer", 4, True)]
    assert layer("audiossl_jax.data.pipeline") < layer("audiossl_jax.tasks.base") < layer("audiossl_jax.train.trainer")
    assert layer("audiossl_jax.train.trainer") < layer("audiossl_jax.evaluation.finetune") < layer("audiossl_jax.main")
