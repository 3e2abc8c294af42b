"""Imports follow the data flow: a module never imports one that comes later in it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nmtcli"

# module (path under src/nmtcli) -> nmtcli modules it must not import, directly or lazily.
FORBIDDEN = {
    "models/base.py": {"decoding", "translator", "training", "evaluation"},
    "models/lstm.py": {"decoding", "translator", "training"},
    "models/gru_attention.py": {"decoding", "translator", "training"},
    "models/bf16.py": {"decoding", "translator", "training"},
    "translator.py": {"attention", "corpus", "evaluation", "training", "cli"},
    "decoding.py": {"translator", "evaluation", "training", "cli"},
    "alignment.py": {"translator", "decoding", "attention"},
    "text.py": {"corpus", "translator"},
}


def imported_modules(path: Path) -> set[str]:
    """The nmtcli modules ``path`` imports, as dotted names relative to the package (``models.bf16``)."""
    package = path.relative_to(PACKAGE).parent.parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - node.level + 1])
            parts = base + (node.module.split(".") if node.module else [])
            found.add(".".join(parts))
            found.update(".".join([*parts, alias.name]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nmtcli"):
            found.add(node.module.removeprefix("nmtcli").lstrip("."))
    return found


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_no_import_against_the_data_flow(module) -> None:
    imported = imported_modules(PACKAGE / module)
    assert not imported & FORBIDDEN[module], f"{module} imports {sorted(imported & FORBIDDEN[module])}"
