"""Scoring a model: sacrebleu's BLEU, chrF and TER on detokenized output, and perplexity.

Every score comes with sacrebleu's signature and ours (model and decoding settings), so a number can
be reproduced. With several references per source (the grouped split keeps all translations of a
test sentence together) the multi-reference score is the headline; the score against the first
reference alone is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sacrebleu
import tensorflow as tf

from . import __version__
from .config import DEFAULT_LENGTH_PENALTY
from .errors import DataError, ModelError
from .files import atomic_write_json, read_json
from .pipeline import EncodedPairs, make_dataset
from .translator import Translator

EVALUATION_FILE = "evaluation.json"
METRICS = ("bleu", "chrf", "ter")
DEFAULT_METRICS = ("bleu", "chrf")


def _metric(name: str) -> Any:
    return {
        "bleu": sacrebleu.metrics.BLEU,
        "chrf": sacrebleu.metrics.CHRF,
        "ter": sacrebleu.metrics.TER,
    }[name]()


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: stream k holds the k-th reference of every sentence (None where absent)."""
    depth = max((len(refs) for refs in references), default=0)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(depth)]


@dataclass
class EvaluationResult:
    sentences: int
    references: int
    scores: dict[str, float]
    single_reference_scores: dict[str, float]
    signatures: dict[str, str]
    cross_entropy: float | None
    perplexity: float | None
    model: str
    decoding: dict[str, Any]
    hypotheses: list[str] = field(repr=False, default_factory=list)

    def signature(self) -> str:
        """Our half of the reproducibility signature."""
        d = self.decoding
        beam = f"beam:{d['beam_size']}|lenpen:{d['length_penalty']}|" if d.get("method") == "beam" else ""
        bf16 = "output:bf16|" if d.get("bf16_output") else ""
        return (
            f"nmtcli:{__version__}|model:{self.model}|decode:{d['method']}|{beam}{bf16}"
            f"max_len:{d['max_length']}|nsents:{self.sentences}"
        )

    def to_dict(self, with_hypotheses: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data["nmtcli_signature"] = self.signature()
        if not with_hypotheses:
            data.pop("hypotheses")
        return data


def token_cross_entropy(
    translator: Translator, pairs: Sequence[tuple[str, str]], batch_size: int = 64
) -> float | None:
    """Mean cross-entropy per target token (nats), exactly: summed over tokens, then divided."""
    encoded = EncodedPairs(pairs, translator.source, translator.target)
    if len(encoded) == 0:
        return None
    model = translator.model

    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec, spec])
    def batch_sum(source, target_in, target_out):
        logits = model((source, target_in), training=False)
        losses = tf.keras.losses.sparse_categorical_crossentropy(target_out, logits, from_logits=True)
        mask = tf.cast(tf.not_equal(target_out, 0), losses.dtype)
        return tf.reduce_sum(losses * mask), tf.reduce_sum(mask)

    total = count = 0.0
    for (source, target_in), target_out in make_dataset(encoded, batch_size):
        loss, tokens = batch_sum(source, target_in, target_out)
        total += float(loss)
        count += float(tokens)
    return total / count if count else None


def evaluate(
    translator: Translator,
    sources: Sequence[str],
    references: Sequence[Sequence[str]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    batch_size: int = 64,
    max_length: int | None = None,
    model_name: str = "",
    beam_size: int = 1,
    length_penalty: float = DEFAULT_LENGTH_PENALTY,
) -> EvaluationResult:
    """Translate ``sources`` and score against ``references`` (one list of references per source).

    Greedy search when ``beam_size`` is 1, else beam search. Perplexity is computed on every
    (source, reference) pair.
    """
    if not sources:
        raise DataError(
            "nothing to score: no source sentences (is the split empty? see `test_size`, `source`)"
        )
    if len(references) != len(sources):
        raise DataError(f"{len(sources)} source sentences but {len(references)} sets of references")
    hypotheses = translator.translate(
        sources,
        batch_size=batch_size,
        max_length=max_length,
        beam_size=beam_size,
        length_penalty=length_penalty,
    )
    streams = reference_streams(references)
    scores, single, signatures = {}, {}, {}
    for name in metrics:
        metric = _metric(name)
        scores[name] = round(metric.corpus_score(hypotheses, streams).score, 2)
        signatures[name] = str(metric.get_signature())
        single[name] = round(_metric(name).corpus_score(hypotheses, streams[:1]).score, 2)
    pairs = [(source, ref) for source, refs in zip(sources, references, strict=True) for ref in refs]
    cross_entropy = token_cross_entropy(translator, pairs, batch_size)
    return EvaluationResult(
        sentences=len(sources),
        references=len(pairs),
        scores=scores,
        single_reference_scores=single,
        signatures=signatures,
        cross_entropy=round(cross_entropy, 4) if cross_entropy is not None else None,
        perplexity=round(math.exp(cross_entropy), 3) if cross_entropy is not None else None,
        model=model_name or (translator.run_dir.name if translator.run_dir else "model"),
        decoding={
            "method": "greedy" if beam_size == 1 else "beam",
            "beam_size": beam_size,
            "length_penalty": length_penalty if beam_size > 1 else None,
            "max_length": max_length or "auto",
            "batch_size": batch_size,
            "bf16_output": translator.bf16_active,
        },
        hypotheses=hypotheses,
    )


def record_evaluation(run_dir: Path, key: str, result: EvaluationResult, data: str) -> Path:
    """Keep ``result`` as the latest scores on ``key`` (a split name or a source file) in
    ``RUN/evaluation.json``, next to the records of other splits; returns that file's path.

    An existing record file that cannot be read is left alone (ModelError), never overwritten.
    """
    path = Path(run_dir) / EVALUATION_FILE
    records: Any = {}
    if path.exists():
        try:
            records = read_json(path)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable ({exc}); left as it is") from None
        if not isinstance(records, dict):
            raise ModelError(f"{path}: not an nmtcli evaluation record; left as it is")
    records[key] = {
        "data": data,
        "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **result.to_dict(),
    }
    atomic_write_json(path, records)
    return path
