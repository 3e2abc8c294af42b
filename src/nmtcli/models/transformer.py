"""A pre-norm Transformer encoder-decoder (Vaswani et al., 2017; pre-norm as in Wang et al., 2019).

Each encoder layer is ``x + Drop(SelfAttention(LN(x)))`` then ``x + Drop(FFN(LN(x)))``; each decoder
layer adds ``x + Drop(CrossAttention(LN(x), memory))`` between the two; both stacks end in a layer
norm. Inputs are token embeddings times ``sqrt(units)`` plus sinusoidal positions (sines in the
first half of the features, cosines in the second, as tensor2tensor and OpenNMT-tf), then dropout.
The feed-forward network is ``Dense(ff_dim, relu) -> Dense(units)``. ``units`` is d_model; the
base class's ``embedding_dim`` is set to it. With ``shared_embeddings`` (one vocabulary for both
sides: a joint subword model) one matrix embeds source and target tokens and, transposed, makes the
output logits.

Shapes: ``B`` batch, ``S`` source length, ``T`` target length, ``V`` vocabulary, ``H`` heads,
``D = units / H`` features per head, ``L`` layers per stack.

Decoding caches each decoder layer's self-attention keys and values: a step projects only the new
token and attends over the cache, so it never recomputes the prefix. The cache is the decoding
state, a flat list ``[k_1, v_1, ..., k_L, v_L]`` of ``[B, t, H, D]`` tensors, batch first (greedy
search drops finished rows and beam search gathers rows of every state tensor); each step appends
one position along axis 1, which the decoding loops allow (``decoding.ModelSteps``: a state tensor's
non-batch axes may change size). The cross-attention keys and values of every decoder layer are
projected once per sentence, in ``encode``.

CTranslate2 layout (``ctranslate2.specs.TransformerSpec``, ``pre_norm=True``, relu; its linear
weights are ``[out, in]``, so every Keras kernel below is reshaped to ``[in, out]`` and transposed):

- ``encoder.embeddings[0].weight`` <- ``source_embedding.embeddings``; ``decoder.embeddings.weight``
  <- ``target_embedding.embeddings`` (the same matrix when shared); ``scale_embeddings`` True;
  ``position_encodings.encodings`` <- ``sinusoidal_positions(range(N), units)`` (written out, as the
  fairseq converter does).
- encoder layer ``i`` (``encoder_layers[i]``): ``self_attention.linear[0]`` <- the fused
  ``[query; key; value]`` kernels of ``self_attention`` (each ``[units, H, D]`` -> ``[units, units]``),
  with their biases concatenated; ``self_attention.linear[1]`` <- ``output_dense``
  (``[H, D, units]`` -> ``[units, units]``); ``self_attention.layer_norm`` <- ``self_attention_norm``;
  ``ffn.layer_norm`` <- ``ffn_norm``, ``ffn.linear_0`` <- ``ffn_inner``, ``ffn.linear_1`` <- ``ffn_outer``.
- decoder layer ``i``: the same for ``self_attention``; ``attention.linear[0]`` <- the query of
  ``cross_attention``, ``attention.linear[1]`` <- fused ``[key; value]``, ``attention.linear[2]`` <- its
  output; ``attention.layer_norm`` <- ``cross_attention_norm``.
- ``encoder.layer_norm`` <- ``encoder_norm``, ``decoder.layer_norm`` <- ``decoder_norm``;
  ``decoder.projection`` <- ``output_projection`` (weight: the target embedding matrix when tied or
  shared, else the Dense kernel transposed; bias: its bias).
- Vocabulary: ids 0-3 are ``<pad> <unk> <start> <end>``; decoding starts from ``<start>``.
- Layer norms use epsilon ``LAYER_NORM_EPSILON`` (1e-5), CTranslate2's default for norms with a
  beta (``config.layer_norm_epsilon`` may say so explicitly).
- Special tokens for its config: ``decoder_start_token`` / ``bos_token`` ``<start>``, ``eos_token``
  ``<end>``, ``unk_token`` ``<unk>``; sources carry neither start nor end id (``add_source_bos`` and
  ``add_source_eos`` False); the pad piece ``<pad>`` (id 0) is what fairseq's converter renames
  ``<blank>``.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from .base import Seq2Seq

LAYER_NORM_EPSILON = 1e-5  # PyTorch's and fairseq's; CTranslate2 assumes it unless its config says otherwise
# Added to the scores of masked keys before the softmax (in float32).
_MASKED = -1e9


def sinusoidal_positions(positions, depth: int):
    """``positions [T]`` (int) ``-> [T, depth]`` float32: ``sin(p * r_i)`` for the first half of the
    features and ``cos(p * r_i)`` for the second, ``r_i = 10000 ** (-i / (depth / 2 - 1))``."""
    half = depth // 2
    increment = math.log(10000.0) / max(half - 1, 1)
    rates = ops.exp(ops.arange(half, dtype="float32") * -increment)
    angles = ops.cast(positions, "float32")[:, None] * rates[None, :]
    encodings = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
    if depth % 2:
        encodings = ops.pad(encodings, [[0, 0], [0, 1]])
    return encodings


@keras.saving.register_keras_serializable(package="nmtcli")
class CachedMultiHeadAttention(keras.layers.MultiHeadAttention):
    """Keras' ``MultiHeadAttention`` with its projections usable apart, for caching.

    ``project_key_value`` projects keys and values once (a source sentence, or one new target
    position); ``attend`` runs queries against keys and values already projected. The weights are
    ``MultiHeadAttention``'s own (``query_dense`` ... ``output_dense``).
    """

    def __init__(self, num_heads: int, key_dim: int, **kwargs):
        super().__init__(num_heads, key_dim, **kwargs)
        self.weights_dropout = keras.layers.Dropout(self.dropout)

    def build(self, query_shape, value_shape=None, key_shape=None):
        super().build(query_shape, value_shape or query_shape, key_shape)

    def project_key_value(self, value):
        """``value [B, S, units] -> (keys [B, S, H, D], values [B, S, H, D])``."""
        return self.key_dense(value), self.value_dense(value)

    def attend(self, query, keys, values, mask=None, training=False):
        """``query [B, T, units]``, ``keys``/``values [B, S, H, D]``, ``mask`` bool broadcastable to
        ``[B, T, S]`` (True = attend) ``-> (output [B, T, units], weights [B, H, T, S] float32)``."""
        projected = self.query_dense(query)
        scores = ops.einsum("bthd,bshd->bhts", projected, keys)
        scores = ops.cast(scores, "float32") * (1.0 / math.sqrt(self.key_dim))
        if mask is not None:
            scores = ops.where(ops.expand_dims(mask, 1), scores, _MASKED)
        weights = tf.nn.softmax(scores, axis=-1)  # keras.ops warns on one key (the first decoding step)
        dropped = self.weights_dropout(weights, training=training)
        context = ops.einsum("bhts,bshd->bthd", ops.cast(dropped, values.dtype), values)
        return self.output_dense(context), weights


def _layer_norm(name: str) -> keras.layers.LayerNormalization:
    return keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=name)


@keras.saving.register_keras_serializable(package="nmtcli")
class TransformerLayer(keras.layers.Layer):
    """One pre-norm layer: self-attention, cross-attention (decoder layers only), feed-forward."""

    def __init__(
        self, units: int, heads: int, ff_dim: int, dropout: float = 0.0, decoder: bool = False, **kwargs
    ):
        super().__init__(**kwargs)
        self.units = units
        self.heads = heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.decoder = decoder

        def attention(name):
            return CachedMultiHeadAttention(heads, units // heads, dropout=dropout, name=name)

        self.self_attention_norm = _layer_norm("self_attention_norm")
        self.self_attention = attention("self_attention")
        if decoder:
            self.cross_attention_norm = _layer_norm("cross_attention_norm")
            self.cross_attention = attention("cross_attention")
        self.ffn_norm = _layer_norm("ffn_norm")
        self.ffn_inner = keras.layers.Dense(ff_dim, activation="relu", name="ffn_inner")
        self.ffn_outer = keras.layers.Dense(units, name="ffn_outer")
        self.residual_dropout = keras.layers.Dropout(dropout)
        self.ffn_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape=None):
        shape = (None, None, self.units)
        self.self_attention_norm.build(shape)
        self.self_attention.build(shape, shape)
        if self.decoder:
            self.cross_attention_norm.build(shape)
            self.cross_attention.build(shape, shape)
        self.ffn_norm.build(shape)
        self.ffn_inner.build(shape)
        self.ffn_outer.build((None, None, self.ff_dim))

    def _feed_forward(self, x, training):
        inner = self.ffn_dropout(self.ffn_inner(self.ffn_norm(x)), training=training)
        return x + self.residual_dropout(self.ffn_outer(inner), training=training)

    def _cross(self, x, cross, source_mask, training):
        keys, values = cross
        attended, weights = self.cross_attention.attend(
            self.cross_attention_norm(x), keys, values, source_mask[:, None, :], training=training
        )
        return x + self.residual_dropout(attended, training=training), weights

    def call(self, x, attention_mask, cross=None, source_mask=None, training=False):
        """Over whole sequences: ``x [B, T, units]``, ``attention_mask`` bool ``[B or 1, T, T]`` (which keys
        each position sees), decoder layers also ``cross = (keys, values) [B, S, H, D]`` and
        ``source_mask [B, S]`` ``-> x [B, T, units]``."""
        normed = self.self_attention_norm(x)
        keys, values = self.self_attention.project_key_value(normed)
        attended, _ = self.self_attention.attend(normed, keys, values, attention_mask, training=training)
        x = x + self.residual_dropout(attended, training=training)
        if self.decoder:
            x, _ = self._cross(x, cross, source_mask, training)
        return self._feed_forward(x, training)

    def step(self, x, cache, cross, source_mask):
        """One decoding position: ``x [B, 1, units]``, ``cache = (keys, values) [B, t, H, D]``
        ``-> (x [B, 1, units], cache with t + 1 positions, cross-attention weights [B, H, 1, S])``."""
        normed = self.self_attention_norm(x)
        new_keys, new_values = self.self_attention.project_key_value(normed)
        keys = ops.concatenate([cache[0], new_keys], axis=1)
        values = ops.concatenate([cache[1], new_values], axis=1)
        attended, _ = self.self_attention.attend(normed, keys, values)
        x = x + attended
        x, weights = self._cross(x, cross, source_mask, False)
        return self._feed_forward(x, False), (keys, values), weights

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, heads=self.heads, ff_dim=self.ff_dim, dropout=self.dropout, decoder=self.decoder
        )
        return config


@keras.saving.register_keras_serializable(package="nmtcli")
class TransformerSeq2Seq(Seq2Seq):
    """The Transformer behind the ``Seq2Seq`` contract; see the module docstring.

    ``memory`` is ``(source_mask [B, S] bool, cross_keys, cross_values)``, the last two tuples of one
    ``[B, S, H, D]`` tensor per decoder layer; the state is the self-attention cache.
    """

    has_attention = True

    def __init__(
        self,
        num_layers: int = 3,
        num_heads: int = 4,
        ff_dim: int = 1024,
        shared_embeddings: bool = False,
        **kwargs,
    ):
        kwargs["embedding_dim"] = kwargs["units"]  # d_model
        if shared_embeddings:
            kwargs["tie_embeddings"] = True
        super().__init__(**kwargs)
        if kwargs["units"] % num_heads:
            raise ValueError(f"units ({kwargs['units']}) must be a multiple of num_heads ({num_heads})")
        if shared_embeddings and self.source_vocab_size != self.target_vocab_size:
            raise ValueError("shared_embeddings needs source and target vocabularies of one size")
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.shared_embeddings = shared_embeddings
        units = self.units
        # Scaled by sqrt(units) when looked up, so the inputs to the first layer have unit variance.
        for embedding in (self.source_embedding, self.target_embedding):
            embedding.embeddings_initializer = keras.initializers.RandomNormal(stddev=units**-0.5)
        if shared_embeddings:
            # One matrix: the base class's source embedding is replaced by the target one.
            self._tracker.untrack(self.source_embedding)
            self.source_embedding = self.target_embedding

        def stack(prefix, decoder):
            return [
                TransformerLayer(
                    units, num_heads, ff_dim, self.dropout, decoder=decoder, name=f"{prefix}_{i}"
                )
                for i in range(num_layers)
            ]

        self.encoder_layers = stack("encoder_layer", False)
        self.decoder_layers = stack("decoder_layer", True)
        self.encoder_norm = _layer_norm("encoder_norm")
        self.decoder_norm = _layer_norm("decoder_norm")

    def build(self, input_shape=None):
        if self.built:
            return
        for embedding in {id(e): e for e in (self.source_embedding, self.target_embedding)}.values():
            embedding.build()
        # The decoder layers' cross-attention projects keys in ``encode``, before the layers run.
        for layer in [*self.encoder_layers, *self.decoder_layers]:
            layer.build((None, None, self.units))
        super().build(input_shape)

    def _embed(self, embedding, ids, start=0):
        """``ids [B, T] -> [B, T, units]``: scaled embeddings plus positions ``start ... start + T - 1``."""
        # In float32 whatever the policy (under mixed precision the matrix reads as float16).
        vectors = ops.cast(ops.take(embedding.embeddings, ids, axis=0), "float32") * math.sqrt(self.units)
        positions = sinusoidal_positions(ops.arange(ops.shape(ids)[1]) + start, self.units)
        return ops.cast(vectors + positions[None], self.compute_dtype)

    def encode(self, source, training=False):
        """``source [B, S] -> (source_mask [B, S], cross_keys, cross_values)``."""
        mask = self.source_mask(source)
        x = self.embedding_dropout(self._embed(self.source_embedding, source), training=training)
        for layer in self.encoder_layers:
            x = layer(x, mask[:, None, :], training=training)
        encoded = self.encoder_norm(x)
        projected = [layer.cross_attention.project_key_value(encoded) for layer in self.decoder_layers]
        return (mask, tuple(k for k, _ in projected), tuple(v for _, v in projected))

    def decode(self, target_in, memory, training=False):
        """``target_in [B, T] -> logits [B, T, V]``, each position seeing itself and those before."""
        source_mask, cross_keys, cross_values = memory
        x = self.embedding_dropout(self._embed(self.target_embedding, target_in), training=training)
        length = ops.shape(target_in)[1]
        causal = ops.greater_equal(ops.arange(length)[:, None], ops.arange(length)[None, :])[None]
        for layer, keys, values in zip(self.decoder_layers, cross_keys, cross_values, strict=True):
            x = layer(x, causal, cross=(keys, values), source_mask=source_mask, training=training)
        return self.project(self.decoder_norm(x), training=training)

    def initial_state(self, memory):
        """An empty cache: ``2 L`` tensors ``[B, 0, H, D]``."""
        shape = (ops.shape(memory[0])[0], 0, self.num_heads, self.units // self.num_heads)
        return [ops.zeros(shape, dtype=self.compute_dtype) for _ in range(2 * self.num_layers)]

    def next(self, tokens, state, memory):
        logits, state, _ = self.next_with_attention(tokens, state, memory)
        return logits, state

    def next_with_attention(self, tokens, state, memory):
        """One step from ``tokens [B]`` at position ``t`` (the cache's length)
        ``-> (logits [B, V], state, weights [B, S])``: the last decoder layer's cross-attention,
        averaged over heads (sums to 1 over each sentence's unmasked source tokens)."""
        source_mask, cross_keys, cross_values = memory
        position = ops.shape(state[0])[1]
        x = self._embed(self.target_embedding, tokens[:, None], start=position)
        new_state = []
        weights = None
        for i, layer in enumerate(self.decoder_layers):
            cache = (state[2 * i], state[2 * i + 1])
            x, cache, weights = layer.step(x, cache, (cross_keys[i], cross_values[i]), source_mask)
            new_state.extend(cache)
        logits = self.project(self.decoder_norm(x))
        return ops.squeeze(logits, 1), new_state, ops.mean(weights[:, :, 0, :], axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            ff_dim=self.ff_dim,
            shared_embeddings=self.shared_embeddings,
        )
        return config
