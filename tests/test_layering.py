"""The package's layering: every import goes down the layers (no cycles, no arrow back up), and no
private Keras internals outside the one module allowed to hold them (there is none today).

The layers, lowest first (a family package's modules sit in several: its config is low, its model in
the middle, its family wiring above the shared training and export code, its commands near the top):

    0 base        errors, limits, interrupts, console, version, fileio, progress
    1 options     config, families (the registry), each family's config
    2 files       folders, imaging, provenance, inputs, data
    3 keras       networks, lora, precision, augment, training.distributed, training.strategy,
                  training.local_cluster, metrics.image
    4 family      each family's model, networks, samplers, tokenizer, metrics, ... (all but the below)
    5 shared      model_dir, metrics.features, metrics.evaluate, training.family, training.callbacks, export
    6 wiring      each family's family.py
    7 library     training.runner, models, api, and the package itself (the public names)
    8 commands    commands (the click toolkit), each family's cli.py
    9 app         cli, demo
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aigc_keras"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the aigc_keras modules it imports, at module level or inside functions (a lazy
    import still ties the layers together). The registry's dynamic imports (`families`) are not
    edges; `test_every_module_imports_on_its_own` covers what they load."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target.startswith("aigc_keras") and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


FAMILIES = ("gan", "diffusion", "text", "vae", "classifier")
LAYERS = [
    ("base", {"errors", "limits", "interrupts", "console", "version", "fileio", "progress"}),
    ("options", {"config", "families", *(f"{f}.config" for f in FAMILIES)}),
    ("files", {"folders", "imaging", "provenance", "inputs", "data"}),
    ("keras", {"networks", "lora", "precision", "augment", "training.distributed", "training.strategy",
               "training.local_cluster", "metrics.image"}),
    ("family", set(FAMILIES)),
    ("shared", {"model_dir", "metrics", "metrics.features", "metrics.evaluate", "training", "training.family",
                "training.callbacks", "export"}),
    ("wiring", {f"{f}.family" for f in FAMILIES}),
    ("library", {"", "training.runner", "models", "api"}),
    ("commands", {"commands", *(f"{f}.cli" for f in FAMILIES)}),
    ("app", {"cli", "demo"}),
]


def layer(module: str) -> int:
    """The layer of `module` (aigc_keras.x.y): the most specific entry of LAYERS that names it or a
    package above it."""
    name = module.removeprefix("aigc_keras").lstrip(".")
    parts = name.split(".") if name else []
    for depth in range(len(parts), -1, -1):
        prefix = ".".join(parts[:depth])
        for rank, (_, names) in enumerate(LAYERS):
            if prefix in names:
                return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def test_every_import_goes_down_the_layers():
    graph = import_graph()
    back = sorted(f"{a} ({LAYERS[layer(a)][0]}) imports {b} ({LAYERS[layer(b)][0]})"
                  for a, targets in graph.items() for b in targets if layer(b) > layer(a))
    assert back == []


def test_the_layers_say_where_each_kind_of_module_sits():
    assert layer("aigc_keras.diffusion.config") < layer("aigc_keras.diffusion.samplers") < \
        layer("aigc_keras.diffusion.family") < layer("aigc_keras.training.runner") < layer("aigc_keras.diffusion.cli")
    assert layer("aigc_keras.export.litert") == layer("aigc_keras.export") < layer("aigc_keras.cli.app")


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert "aigc_keras.training.runner" in graph and "aigc_keras.model_dir" in graph["aigc_keras.training.runner"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_imports_on_its_own():
    """Each module imported first, in a fresh interpreter: an import-order dependency shows up here."""
    names = sorted(module_name(p) for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")
    code = ("import importlib, sys\n"
            "for name in sys.argv[1:]:\n"
            "    for loaded in [m for m in sys.modules if m.startswith('aigc_keras')]:\n"
            "        del sys.modules[loaded]\n"
            "    importlib.import_module(name)\n")
    result = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_private_keras_attribute_is_used():
    """`._name` on Keras objects breaks on a minor Keras release; the package uses public API only."""
    pattern = re.compile(r"\b(model|layer|optimizer|attention|keras[\w.]*)\._[a-z]\w*")
    offenders = [f"{p.relative_to(PACKAGE)}:{i}: {line.strip()}" for p in PACKAGE.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
