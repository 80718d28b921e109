"""The packages' layers: each imports only the packages below it (README, "Layout").

    sandbox, testbed          the product run locally, and its test bed
    bot                       listeners (Slack, email), the queue, the agent, the CLI
    review                    approvals and the /agent console
    rag                       knowledge: ingestion and retrieval
    connectors                tools that reach other systems (Slack, email, HubSpot, MCP...)
    guardrails                PII, injection and toxicity screening, policy
    core                      the kernel: database, settings, LLM client, tool protocol

Every import counts, including those inside functions (a lazy import is still a
dependency). A small AST walk rather than import-linter: it needs no extra package, reads
the files without importing them (no import-time cost), and says which line broke a layer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Bottom to top. guardrails < connectors < rag is what today's code needs, measured:
# connectors screen MCP output for injection and mask PII in outbound mail (guardrails);
# rag unwraps screened text (guardrails) and reads Slack channels as a knowledge source
# with the Slack connector's client and bot tokens (connectors).
LAYERS: tuple[str, ...] = ("core", "guardrails", "connectors", "rag", "review", "bot")
TOP: tuple[str, ...] = ("sandbox", "testbed")  # may import any package, not each other's users
PACKAGES = (*LAYERS, *TOP)

# Known imports upward, each a module and the package it reaches: they are lazy imports
# in commands that run the product locally, and go when those commands move on top.
KNOWN_UPWARD: frozenset[tuple[str, str]] = frozenset(
    {
        ("bot.commands.sandbox", "sandbox"),  # `chatops sandbox` starts the sandbox
        ("bot.templates.agent_eval", "sandbox"),  # the template eval's scripted model
    }
)


def allowed(package: str) -> frozenset[str]:
    """The packages `package` may import (itself included)."""
    if package in TOP:
        return frozenset(PACKAGES)
    return frozenset(LAYERS[: LAYERS.index(package) + 1])


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """Every module `path` imports, anywhere in the file, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                base = package[: len(package) - node.level + 1]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.lineno, node.module


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            for line, imported in imported_modules(path, root):
                target = imported.split(".")[0]
                if target not in PACKAGES or target in allowed(package):
                    continue
                if (module, target) in KNOWN_UPWARD:
                    continue
                found.append(f"{path.relative_to(root)}:{line}: {package} imports {imported}")
    return found


def test_every_package_imports_only_the_layers_below_it() -> None:
    assert violations() == []


def test_the_known_upward_imports_still_exist() -> None:
    # An exception nobody needs any more should be struck off, not kept as a loophole.
    still_there = set()
    for module, target in KNOWN_UPWARD:
        path = ROOT / (module.replace(".", "/") + ".py")
        if any(name.split(".")[0] == target for _, name in imported_modules(path)):
            still_there.add((module, target))
    assert still_there == set(KNOWN_UPWARD)


@pytest.mark.parametrize(
    ("package", "bad_import"),
    [
        ("core", "from bot.queue.jobs import enqueue_request"),
        ("guardrails", "from connectors.rest import RestClient"),
        ("connectors", "from rag.citations import Citation"),
        ("review", "from bot.agent.runs import WorkerDeps"),
    ],
)
def test_an_import_up_the_layers_is_caught_even_inside_a_function(
    tmp_path: Path, package: str, bad_import: str
) -> None:
    (tmp_path / package).mkdir()
    (tmp_path / package / "bad.py").write_text(f"def lazy() -> None:\n    {bad_import}\n")
    assert violations(tmp_path) == [
        f"{package}/bad.py:2: {package} imports {bad_import.split()[1]}"
    ]
