"""Milliseconds per training step: the Keras recurrent layers against nmtcli's CPU path (``fast_rnn``),
or (``--compare bf16_output``) the output layer in float32 against bfloat16.

Two copies of one model (same weights, same optimizer settings), one traced inside
``fast_rnn.keras_layers_only()`` (or without ``bf16.for_training``), take turns on the same fixed
batch; each round times ``--steps`` steps of each, and the medians over the rounds are printed as
one JSON line. Taking turns spreads the noise of a shared CPU over both.

    python benchmarks/rnn_step.py                      # char-level LSTM 256, shapes of fra.txt 10k
    python benchmarks/rnn_step.py --arch gru-attention --source-vocab 2208 --target-vocab 4321 \\
        --embedding 256 --source-length 6 --target-length 8

Defaults follow ``train_vs_seed.py``: batch 64, LSTM 256, embeddings of the source vocabulary's
size (73 characters; 92 on the target side), batches padded to 15 source and 21 target characters
(the first 10,000 pairs of fra.txt average 13.6 and 19.6), real lengths drawn between 60% and 100%.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make_batch(rng, batch: int, length: int, vocab: int):
    """Ids ``[batch, length]`` in 3..vocab-1, right-padded with 0 after a random real length."""
    import numpy as np

    ids = rng.integers(3, vocab, (batch, length)).astype("int32")
    lengths = rng.integers(max(1, int(0.6 * length)), length + 1, batch)
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="lstm", choices=("lstm", "gru-attention"))
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--embedding", type=int, default=73)
    parser.add_argument("--source-vocab", type=int, default=73)
    parser.add_argument("--target-vocab", type=int, default=92)
    parser.add_argument("--source-length", type=int, default=15)
    parser.add_argument("--target-length", type=int, default=21)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps per model per round")
    parser.add_argument(
        "--compare",
        choices=("fast_rnn", "bf16_output"),
        default="fast_rnn",
        help="fast_rnn: Keras' recurrent layers against fast_rnn; bf16_output: the output layer in float32 "
        "against bfloat16 (both on fast_rnn)",
    )
    args = parser.parse_args()

    import keras
    import numpy as np

    from nmtcli.config import ModelConfig
    from nmtcli.models import bf16, build_model
    from nmtcli.models.fast_rnn import keras_layers_only
    from nmtcli.training import masked_loss

    config = ModelConfig(
        arch=args.arch,
        level="char",
        embedding_dim=args.embedding,
        units=args.units,
        dropout=0.0,
        source_vocab_size=args.source_vocab,
        target_vocab_size=args.target_vocab,
    )
    rng = np.random.default_rng(0)
    source = make_batch(rng, args.batch, args.source_length, args.source_vocab)
    target = make_batch(rng, args.batch, args.target_length + 1, args.target_vocab)
    inputs, labels = (source, target[:, :-1]), target[:, 1:]

    keras.utils.set_random_seed(0)
    # (name, fast_rnn, bf16_output) of the two models: the baseline first.
    variants = {
        "fast_rnn": (("keras", False, False), ("fast", True, False)),
        "bf16_output": (("float32", True, False), ("bf16", True, True)),
    }[args.compare]
    models = {}
    for name, _, _ in variants:
        model = build_model(config)
        model.build()
        if models:
            model.set_weights(models[variants[0][0]].get_weights())
        model.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss=masked_loss())
        models[name] = model
    # The first step traces, under the speed paths of its variant; both must start from the same loss.
    first = {}
    for (name, fast, low), model in zip(variants, models.values(), strict=True):
        with contextlib.ExitStack() as paths:
            paths.enter_context(bf16.for_training(low))
            if not fast:
                paths.enter_context(keras_layers_only())
            first[name] = float(model.train_on_batch(inputs, labels))

    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(inputs, labels)
            times[name].append((time.perf_counter() - started) / args.steps * 1000)
    (base, *_), (other, *_) = variants
    base_ms, other_ms = (statistics.median(times[name]) for name in (base, other))
    print(
        json.dumps(
            {
                "benchmark": "rnn_step",
                "compare": args.compare,
                "arch": args.arch,
                "batch": args.batch,
                "source_length": args.source_length,
                "target_length": args.target_length,
                "units": args.units,
                "target_vocab": args.target_vocab,
                f"{base}_ms_per_step": round(base_ms, 1),
                f"{other}_ms_per_step": round(other_ms, 1),
                "speedup": round(base_ms / other_ms, 2),
                f"{base}_ms_all": [round(t, 1) for t in times[base]],
                f"{other}_ms_all": [round(t, 1) for t in times[other]],
                "first_step_loss": first,
                "load_average_1min": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
