"""Which package may import which: the pure core imports no edge, velib no phaeton, no cycles.

The graph is read from the source (every `import` and `from ... import` in every .py file,
also those inside functions and under TYPE_CHECKING: a dependency is a dependency), so the
test needs no imports of its own and sees modules that are imported only lazily.

Directions (docs/architecture.md, "Package directions"):
- `phaeton.planning` is decision logic: it imports only itself (and the standard library and
  numpy), never an edge nor anything that does I/O;
- the edges (`velib`, `phaeton.venus`, `phaeton.store`, `phaeton.web`, `phaeton.chargers`,
  `phaeton.planner`, `phaeton.sim`) may import the core, never the other way round;
- `velib` is a library of its own and imports nothing from phaeton;
- no two top-level parts import each other, directly or round a loop.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Not yet clean, owned by other parts of issue 12. Each entry is a set of top-level parts that
# import each other; a cycle not listed here fails, and so does an entry that no longer holds
# (delete it then).
KNOWN_CYCLES = [
    # `control` imports the charger types of `chargers.base`; the Alfen driver imports
    # `control.plausibility` (already so before issue 12)
    {"phaeton.chargers", "phaeton.control"},
    # `config` checks a password hash with `web.passwords` (inside a function; before issue 12)
    {"phaeton.config", "phaeton.web"},
    # the snapshot carries `venus.evcharger_service` types and the D-Bus mapping reads the
    # snapshot (move 5 of issue 12, in progress)
    {"phaeton.snapshot", "phaeton.venus"},
]

# Parts that do I/O: the D-Bus, files, sockets, HTTP, subprocesses.
EDGES = ("velib", "phaeton.venus", "phaeton.store", "phaeton.web", "phaeton.chargers",
         "phaeton.planner", "phaeton.sim")
# Libraries that mean I/O (or a bus, a socket, a thread of control) wherever they are imported.
IO_MODULES = {"asyncio", "aiohttp", "dbus_next", "socket", "sqlite3", "subprocess", "os",
              "pathlib", "io", "shutil", "tempfile", "urllib", "http", "ssl", "pymodbus",
              "websockets", "ocpp", "threading"}
# The tariffs fetch prices over HTTP and cache them with `store.series_cache`: an edge that
# still lives in `planning/` (issue 12, move 3/4 owns them). Until they move they count as a
# part of their own, outside the purity rule; their price series type is pure and used by the
# problem builder, so it counts as planning.
# The carbon intensity sources (`planning/carbon/`) fetch over HTTP and cache with
# `store.series_cache` the same way and are the same kind of edge; their series type, factor
# tables and refresh arithmetic are pure and count as planning.
# The PV forecast sources (`planning/solar/`) and the base both kinds of sources share
# (`planning/fetching_series`) are the same kind of edge; the PV series and the blend of a
# weather forecast with the learned one are pure.
NOT_YET_PURE = ("phaeton.planning.tariffs", "phaeton.planning.carbon",
                "phaeton.planning.fetching_series", "phaeton.planning.solar")
PURE_TARIFF_MODULES = ("phaeton.planning.tariffs.series", "phaeton.planning.carbon.series",
                       "phaeton.planning.carbon.factors", "phaeton.planning.carbon.countries",
                       "phaeton.planning.interval_refresh", "phaeton.planning.solar.series",
                       "phaeton.planning.solar.blend")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; `from a import b` counts as a.b when
    a.b is itself a module, else as a)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names
                         if _is_module(f"{module}.{alias.name}"))
    return found


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@functools.cache
def all_modules() -> dict[str, set[str]]:
    files = [*ROOT.joinpath("phaeton").rglob("*.py"), *ROOT.joinpath("velib").rglob("*.py")]
    return {module_name(path): imports_of(path) for path in files}


def part_of(module: str) -> str | None:
    """The top-level part a module belongs to: `velib`, `phaeton.<subpackage>` or
    `phaeton.<module>`; the tariffs are a part of their own for now. None: not ours."""
    if module in PURE_TARIFF_MODULES:
        return "phaeton.planning"
    for edge in NOT_YET_PURE:
        if module == edge or module.startswith(edge + "."):
            return edge
    parts = module.split(".")
    if parts[0] == "velib":
        return "velib"
    if parts[0] != "phaeton":
        return None
    return "phaeton" if len(parts) == 1 else f"phaeton.{parts[1]}"


def part_graph(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, imported in modules.items():
        source = part_of(module)
        for target in filter(None, map(part_of, imported)):
            if target != source and target != "phaeton":   # `phaeton` itself: __version__
                graph.setdefault(source, set()).add(target)
        graph.setdefault(source, set())
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
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
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_planning_imports_only_itself_and_nothing_that_does_io():
    wrong = []
    for module, imported in sorted(all_modules().items()):
        if part_of(module) != "phaeton.planning":
            continue
        for name in sorted(imported):
            if part_of(name) not in (None, "phaeton.planning"):
                wrong.append(f"{module} imports {name}")
            elif name.split(".")[0] in IO_MODULES:
                wrong.append(f"{module} imports {name} (I/O)")
    assert wrong == []


def test_no_edge_is_imported_by_the_core():
    graph = part_graph(all_modules())
    core = ("phaeton.planning",)
    assert {part: sorted(graph[part] & set(EDGES)) for part in core} == {
        part: [] for part in core}


def test_velib_imports_nothing_from_phaeton():
    wrong = [f"{module} imports {name}" for module, imported in sorted(all_modules().items())
             if module.startswith("velib") for name in sorted(imported)
             if name == "phaeton" or name.startswith("phaeton.")]
    assert wrong == []


def test_no_new_cycle_between_top_level_parts():
    new = [sorted(c) for c in cycles(part_graph(all_modules())) if c not in KNOWN_CYCLES]
    assert new == []


def test_every_known_cycle_still_exists():
    """When a listed cycle is broken, delete its entry so it cannot come back unnoticed."""
    found = cycles(part_graph(all_modules()))
    assert [sorted(c) for c in KNOWN_CYCLES if c not in found] == []


def test_the_checker_sees_a_cycle_and_an_edge_import():
    """The graph code itself: a made-up loop is found, a chain is not."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    graph = part_graph({"phaeton.planning.x": {"phaeton.venus.ess_writer", "numpy"},
                        "phaeton.venus.ess_writer": {"phaeton.planning.model"}})
    assert graph == {"phaeton.planning": {"phaeton.venus"}, "phaeton.venus": {"phaeton.planning"}}
    assert cycles(graph) == [{"phaeton.planning", "phaeton.venus"}]
    assert part_of("phaeton.planning.tariffs.tibber") == "phaeton.planning.tariffs"
    assert part_of("phaeton.planning.tariffs.series") == "phaeton.planning"
    assert part_of("phaeton.planning.carbon.uk_carbon_intensity") == "phaeton.planning.carbon"
    assert part_of("phaeton.planning.carbon.series") == "phaeton.planning"
    assert part_of("velib.monitor") == "velib" and part_of("numpy") is None
