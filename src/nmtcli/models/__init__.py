"""Seq2seq architectures and the one place where a ModelConfig becomes a Keras model."""

from __future__ import annotations

from ..config import ModelConfig
from .base import Seq2Seq
from .gru_attention import GruAttentionSeq2Seq
from .lstm import LstmSeq2Seq
from .transformer import TransformerSeq2Seq

ARCHITECTURES: dict[str, type[Seq2Seq]] = {
    "lstm": LstmSeq2Seq,
    "gru-attention": GruAttentionSeq2Seq,
    "transformer": TransformerSeq2Seq,
}


def build_model(config: ModelConfig) -> Seq2Seq:
    """Instantiate (not yet build) the model ``config.arch`` with the sizes in ``config``."""
    model_class = ARCHITECTURES[config.arch]
    extra = {}
    if config.arch == "transformer":
        extra = dict(
            num_layers=config.layers,
            num_heads=config.heads,
            ff_dim=config.ff_dim,
            shared_embeddings=config.shared_embeddings,
        )
    return model_class(
        source_vocab_size=config.source_vocab_size,
        target_vocab_size=config.target_vocab_size,
        embedding_dim=config.embedding_dim,
        units=config.units,
        dropout=config.dropout,
        tie_embeddings=config.tie_embeddings,
        **extra,
    )


__all__ = [
    "ARCHITECTURES",
    "GruAttentionSeq2Seq",
    "LstmSeq2Seq",
    "Seq2Seq",
    "TransformerSeq2Seq",
    "build_model",
]
