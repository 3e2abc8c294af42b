"""Scoring a model: sacrebleu's BLEU, chrF and TER on detokenized output, and perplexity.

Every score comes with sacrebleu's signature and ours (model and decoding settings), so a number can
be reproduced. With several references per source (the grouped split keeps all translations of a
test sentence together) the multi-reference score is the headline; the score against the first
reference alone is reported beside it.

Either engine's translator scores (see ``engines``): with CTranslate2, perplexity comes from its
``score_batch`` (the same per-token cross-entropy, end token included) and TensorFlow is never
imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sacrebleu

from . import __version__
from .config import DecodingConfig, decoding_config
from .corpus import reference_streams
from .errors import DataError
from .history import perplexity as perplexity_of
from .run_folder import RunFolder

if TYPE_CHECKING:  # pragma: no cover
    from .ct2 import CT2Translator
    from .translator import Translator

__all__ = ["EvaluationResult", "evaluate", "record_evaluation", "reference_streams", "token_cross_entropy"]
METRICS = ("bleu", "chrf", "ter")
DEFAULT_METRICS = ("bleu", "chrf")


def _metric(name: str) -> Any:
    return {
        "bleu": sacrebleu.metrics.BLEU,
        "chrf": sacrebleu.metrics.CHRF,
        "ter": sacrebleu.metrics.TER,
    }[name]()


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
    engine: str = "tensorflow"  # or "ctranslate2", "ctranslate2-int8" ... (its compute type when not float32)

    def signature(self) -> str:
        """Our half of the reproducibility signature."""
        decoding = "|".join(DecodingConfig.from_dict(self.decoding).signature())
        return (
            f"nmtcli:{__version__}|model:{self.model}|{decoding}|engine:{self.engine}|nsents:{self.sentences}"
        )

    def to_dict(self, with_hypotheses: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data["nmtcli_signature"] = self.signature()
        if not with_hypotheses:
            data.pop("hypotheses")
        return data


def token_cross_entropy(
    translator: Translator | CT2Translator, pairs: Sequence[tuple[str, str]], batch_size: int = 64
) -> float | None:
    """Mean cross-entropy per target token (nats), exactly: summed over tokens, then divided; the
    target's end token counts, padding does not.

    Pairs whose source encodes to no token at all (a blank line) are left out: the model has nothing
    to condition on, and a batch of only such sources has no time steps to run. A CTranslate2
    translator scores with CTranslate2 (``CT2Translator.cross_entropy``)."""
    if getattr(translator, "engine", "tensorflow") == "ctranslate2":
        return translator.cross_entropy(pairs, batch_size)
    import tensorflow as tf

    from .pipeline import EncodedPairs, make_dataset

    encoded = EncodedPairs(
        ((s, r) for s, r in pairs if translator.source.encode(s)), translator.source, translator.target
    )
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
    translator: Translator | CT2Translator,
    sources: Sequence[str],
    references: Sequence[Sequence[str]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    decoding: DecodingConfig | None = None,
    model_name: str = "",
    **options: Any,
) -> EvaluationResult:
    """Translate ``sources`` and score against ``references`` (one list of references per source).

    ``decoding`` (or keyword ``options``, its field names such as ``beam_size=4``) as for
    ``Translator.translate``. Perplexity is computed on every (source, reference) pair.
    """
    decoding = translator.effective(decoding_config(decoding, **options))
    if not sources:
        raise DataError(
            "nothing to score: no source sentences (is the split empty? see `test_size`, `source`)"
        )
    if len(references) != len(sources):
        raise DataError(f"{len(sources)} source sentences but {len(references)} sets of references")
    hypotheses = translator.translate(sources, decoding)
    streams = reference_streams(references)
    scores, single, signatures = {}, {}, {}
    for name in metrics:
        metric = _metric(name)
        scores[name] = round(metric.corpus_score(hypotheses, streams).score, 2)
        signatures[name] = str(metric.get_signature())
        single[name] = round(_metric(name).corpus_score(hypotheses, streams[:1]).score, 2)
    pairs = [(source, ref) for source, refs in zip(sources, references, strict=True) for ref in refs]
    cross_entropy = token_cross_entropy(translator, pairs, decoding.batch_size)
    return EvaluationResult(
        sentences=len(sources),
        references=len(pairs),
        scores=scores,
        single_reference_scores=single,
        signatures=signatures,
        cross_entropy=round(cross_entropy, 4) if cross_entropy is not None else None,
        perplexity=round(perplexity_of(cross_entropy), 3) if cross_entropy is not None else None,
        model=model_name or (translator.run_dir.name if translator.run_dir else "model"),
        decoding=decoding.to_dict(),
        hypotheses=hypotheses,
        engine=engine_name(translator),
    )


def engine_name(translator: Any) -> str:
    """``tensorflow``, ``ctranslate2``, or ``ctranslate2-int8`` (the compute type when not float32)."""
    engine = getattr(translator, "engine", "tensorflow")
    compute_type = getattr(translator, "compute_type", "float32")
    return engine if compute_type == "float32" else f"{engine}-{compute_type}"


def record_evaluation(run_dir: Path, key: str, result: EvaluationResult, data: str) -> Path:
    """Keep ``result`` as the latest scores on ``key`` (a split name or a source file) in the run's
    evaluation record, next to the records of other splits; returns that file's path.

    An existing record file that cannot be read is left alone (ModelError), never overwritten.
    """
    record = {
        "data": data,
        "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **result.to_dict(),
    }
    return RunFolder(run_dir).record_evaluation(key, record)
