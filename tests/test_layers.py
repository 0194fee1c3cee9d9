"""Imports point one way: api → service → store; worker → agent → tools, pricing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "researchdesk"

# What each part of the package must not import (module prefixes).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "agent": (
        "fastapi",
        "starlette",
        "sqlalchemy",
        "researchdesk.api",
        "researchdesk.store",
        "researchdesk.worker",
    ),
    "tools": ("fastapi", "researchdesk.api", "researchdesk.store", "researchdesk.worker"),
    "pricing": (
        "fastapi",
        "sqlalchemy",
        "researchdesk.api",
        "researchdesk.store",
        "researchdesk.worker",
        "researchdesk.agent",
        "researchdesk.tools",
    ),
    "store": ("fastapi", "researchdesk.api", "researchdesk.worker"),
    "webhooks": (
        "fastapi",
        "starlette",
        "sqlalchemy",
        "researchdesk.api",
        "researchdesk.store",
        "researchdesk.worker",
    ),
    "worker": ("fastapi", "researchdesk.api"),
    # The terminal client talks HTTP to a service: it loads nothing of one.
    "client": (
        "fastapi",
        "starlette",
        "sqlalchemy",
        "researchdesk.api",
        "researchdesk.store",
        "researchdesk.worker",
        "researchdesk.agent",
        "researchdesk.tools",
        "researchdesk.testing",
    ),
    "cli_client.py": ("fastapi", "sqlalchemy", "researchdesk.api", "researchdesk.store"),
    "observability": (
        "fastapi",
        "starlette",
        "sqlalchemy",
        "researchdesk.api",
        "researchdesk.store",
        "researchdesk.worker",
    ),
    "api/routes.py": ("researchdesk.store", "sqlalchemy"),
    "api/webhooks.py": ("researchdesk.store", "sqlalchemy"),
    "api/keys.py": ("researchdesk.store", "sqlalchemy"),
    "dashboard": ("researchdesk.worker", "researchdesk.tools", "researchdesk.pricing.routing"),
    "dashboard/routes.py": ("researchdesk.store", "sqlalchemy"),
    "config.py": ("researchdesk.api", "researchdesk.store", "researchdesk.worker"),
    "errors.py": ("researchdesk.",),
    "master_key.py": ("researchdesk.",),
    "key_file.py": ("fastapi", "researchdesk.api", "researchdesk.store", "researchdesk.worker"),
    "retry.py": ("researchdesk.",),
    "roles.py": ("researchdesk.",),
    "windows.py": ("researchdesk.",),
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (absolute names)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_imports_point_one_way(part: str) -> None:
    target = PACKAGE / part
    files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    assert files
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in files
        for module in sorted(imported_modules(path))
        if module.startswith(FORBIDDEN[part])
    ]
    assert wrong == []
