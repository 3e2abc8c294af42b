"""The import graph of nmtcli follows the data: a module imports only modules of its own layer or the
layers below it (module-level and function-level imports alike).

The layers follow the chain corpus -> vectorizers -> models -> training -> run folder -> translator ->
decoding -> evaluation, read as "a stage may use the stages before it, never those after it", with
two placements that name who owns what:

- the run folder (``run_folder``, and ``workspace`` which picks runs) sits below training: it owns
  the formats that training writes and the translator reads, so both import it;
- ``decoding`` (search over a model's next-token step) sits just below the translator that runs it.

Edges that break the rule today are listed in ``KNOWN`` with the module's owner; the test fails on any
other, and says so when a known one is gone (then delete it from the list).
"""

from __future__ import annotations

import ast
from pathlib import Path

import nmtcli

PACKAGE = Path(nmtcli.__file__).parent

# Lowest first. A package (models, training) is one entry for all of its modules.
LAYERS: list[tuple[str, set[str]]] = [
    (
        "foundation",
        {
            "errors",
            "files",
            "config",
            "runtime",
            "presets",
            "history",
            "text",
            "alignment",
            "logs",
            "interrupts",
            "translation",
        },
    ),
    ("corpus", {"corpus"}),
    ("vectorizers", {"vectorizers", "subwords", "pipeline"}),
    ("models", {"models"}),
    ("run folder", {"run_folder", "model_files", "workspace", "fine_tuning"}),
    ("training", {"training", "distribution", "progress", "tracking"}),
    ("decoding", {"decoding"}),
    ("translator", {"translator", "decoder_cache", "ct2", "engines"}),
    ("evaluation", {"evaluation", "export"}),
    ("reports", {"curves", "model_card", "attention"}),
    ("serving", {"serve"}),
    ("command line", {"cli", "__init__", "__main__"}),
]
# (importer, imported): why it is there, and whose it is to remove.
KNOWN = {
    ("corpus", "vectorizers"): "corpus.prepare builds the vocabularies (reliability: corpus.py)",
    ("corpus", "subwords"): "corpus.prepare trains the subword models (transformer: corpus.py)",
}


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for index, (_, names) in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"nmtcli.{module} is in no layer of LAYERS; place it there")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(module: str, path: Path) -> set[str]:
    """The nmtcli modules ``module`` imports anywhere in its file (relative or absolute imports)."""
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package and module != "__init__" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                prefix = [*anchor, *(node.module.split(".") if node.module else [])]
                if node.module:
                    found.add(".".join(prefix))
                else:  # from . import models
                    found.update(".".join([*prefix, alias.name]) for alias in node.names)
            elif node.module and node.module.split(".")[0] == "nmtcli":
                found.add(".".join(node.module.split(".")[1:]) or "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "nmtcli":
                    found.add(".".join(alias.name.split(".")[1:]) or "__init__")
    return {name or "__init__" for name in found if name != "__version__"}


def edges() -> set[tuple[str, str]]:
    found = set()
    for module, path in modules().items():
        for target in imports(module, path):
            found.add((module, target))
    return found


def against_the_flow() -> set[tuple[str, str]]:
    """(importer top module, imported top module) for every import into a higher layer."""
    return {
        (importer.split(".")[0], imported.split(".")[0])
        for importer, imported in edges()
        if layer_of(imported) > layer_of(importer)
    }


def test_every_module_has_a_layer() -> None:
    for module in modules():
        layer_of(module)


def test_the_graph_is_read_the_way_the_modules_are_written() -> None:
    found = edges()
    assert ("training.fit", "run_folder") in found  # from ..run_folder import RunFolder
    assert ("training.fit", "training.callbacks") in found  # from .callbacks import ...
    assert ("run_folder", "models") in found  # a function-level import: from . import models
    assert ("workspace", "run_folder") in found


def test_no_import_runs_against_the_flow_beyond_the_known_ones() -> None:
    violations = against_the_flow()
    assert violations - set(KNOWN) == set(), sorted(violations - set(KNOWN))
    gone = set(KNOWN) - violations
    assert not gone, f"fixed, so delete from KNOWN: {sorted(gone)}"


def test_training_and_the_run_folder_never_import_what_comes_after_them() -> None:
    """The edges this layout was made for: training gets its translator injected (validation BLEU)."""
    later = {"translator", "decoding", "evaluation", "export", "curves", "model_card", "attention", "cli"}
    for importer, imported in edges():
        if importer.split(".")[0] in {"training", "run_folder", "workspace", "history"}:
            assert imported.split(".")[0] not in later, (importer, imported)
