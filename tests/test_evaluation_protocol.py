"""`nmt evaluate`'s protocol, pinned against sacrebleu called independently.

The scores must be sacrebleu's corpus scores of the detokenized, cased hypotheses against every
reference of each test source (the grouped split), with the default 13a tokenizer; the first-reference
column against the first reference of each source alone. The references are read here straight from
the prepared ``test.tsv``, grouped here, and scored here, so a change in how nmtcli builds them fails.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sacrebleu
from typer.testing import CliRunner

from nmtcli.cli import app

JOINER = "￭"


def _grouped_test_split(data_dir: Path) -> tuple[list[str], list[list[str]]]:
    """Sources in order of first appearance, each with all its references, from the raw file."""
    grouped: dict[str, list[str]] = {}
    for line in (data_dir / "test.tsv").read_text(encoding="utf-8").splitlines():
        source, target = line.split("\t")
        grouped.setdefault(source, []).append(target)
    return list(grouped), list(grouped.values())


@pytest.fixture(scope="module")
def evaluated(tiny_run, tiny_data, tmp_path_factory) -> tuple[dict, list[str]]:
    """``nmt evaluate --json`` on the tiny run (a copy, so its records stay untouched elsewhere)."""
    folder = tmp_path_factory.mktemp("protocol")
    run = folder / tiny_run.name
    shutil.copytree(tiny_run, run)
    hypotheses_file = folder / "hypotheses.txt"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--model",
            str(run),
            "--data",
            str(tiny_data),
            "--bleu",
            "--chrf",
            "--ter",
            "--json",
            "--output",
            str(hypotheses_file),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    return report, hypotheses_file.read_text(encoding="utf-8").splitlines()


def test_scores_equal_an_independent_multi_reference_sacrebleu_call(evaluated, tiny_data) -> None:
    report, hypotheses = evaluated
    sources, references = _grouped_test_split(tiny_data)
    assert len(hypotheses) == len(sources) == report["sentences"]
    assert report["references"] == sum(len(refs) for refs in references)
    assert any(len(refs) > 1 for refs in references), "the tiny split should hold a multi-reference source"
    depth = max(len(refs) for refs in references)
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(depth)]
    first = [[refs[0] for refs in references]]

    expected = {
        "bleu": (sacrebleu.corpus_bleu(hypotheses, streams), sacrebleu.corpus_bleu(hypotheses, first)),
        "chrf": (sacrebleu.corpus_chrf(hypotheses, streams), sacrebleu.corpus_chrf(hypotheses, first)),
        "ter": (sacrebleu.corpus_ter(hypotheses, streams), sacrebleu.corpus_ter(hypotheses, first)),
    }
    for name, (multi, single) in expected.items():
        assert report["scores"][name] == pytest.approx(round(multi.score, 2), abs=1e-9), name
        assert report["single_reference_scores"][name] == pytest.approx(round(single.score, 2), abs=1e-9)


def test_signatures_say_cased_13a_with_every_reference(evaluated, tiny_data) -> None:
    report, _ = evaluated
    _, references = _grouped_test_split(tiny_data)
    counts = {len(refs) for refs in references}
    # sacrebleu writes the number of references, or "var" where sources have different numbers.
    nrefs = f"nrefs:{counts.pop() if len(counts) == 1 else 'var'}|"
    bleu = report["signatures"]["bleu"]
    assert bleu.startswith(nrefs)
    assert "|case:mixed|" in bleu and "|tok:13a|" in bleu
    assert report["signatures"]["chrf"].startswith(nrefs)
    assert report["signatures"]["ter"].startswith(nrefs)


def test_hypotheses_are_detokenized_text(evaluated) -> None:
    _, hypotheses = evaluated
    joined = " ".join(hypotheses)
    assert JOINER not in joined
    assert "<end>" not in joined and "<start>" not in joined and "<pad>" not in joined
    # The tiny corpus writes a full stop against the last word; detokenized output does the same.
    ended = [h for h in hypotheses if h.endswith(".")]
    assert all(not h.endswith(" .") for h in ended)
