"""Training throughput of the Transformer against today's default GRU-attention model, side by side.

Prepares the first ``--pairs`` pairs of a corpus once (word, char and subword vocabularies), then
trains each recipe for ``--epochs`` epoch(s) in this process, one after the other, and prints one
JSON line per recipe: seconds of the first and the last epoch (the history's ``seconds``; the first
includes tracing), target and source tokens per second in the last epoch (real tokens of the training
split at the recipe's level, the end id included) and parameters. Validation BLEU is off, so only
the fit and the validation pass are timed.

    python benchmarks/train_throughput.py --corpus ../shared/data/spa-eng/spa.txt --pairs 5000

Recipes: ``gru-word`` (nmtcli's defaults: word level, 128/256), ``transformer-subword`` (d_model 256,
3+3 layers, 4 heads, feed-forward 1024, joint 8,000-piece unigram vocabulary, shared embeddings).
Other processes on the machine change the figures: report the load beside them.

``--steps N`` measures the Transformer's training step instead (issue 15's target: useful GFLOP/s at
least half the machine's matrix-product rate). It prepares ``--sample`` pairs drawn from the whole
corpus (joint 8,000-piece unigram vocabulary), builds the default Transformer (or ``--units`` ...),
and for each ``--variants`` entry, one after the other in this process and on the same batches in
the same order: ``--warmup`` steps (tracing) then ``N`` timed steps (``train_on_batch``, the step
``fit`` runs). The float32 rate of a 2048 x 2048 x 2048 product on ``--threads`` threads is measured
before and after. Per variant it prints one JSON line: seconds per step, real source and target
tokens per second, the share of padding, and two FLOP rates over the timed steps, each also as a
fraction of the higher matrix-product rate:

- ``useful_gflops_6nt``: 6 x parameters x (real source + real target tokens) per second, the
  convention of the issue's probe (which over-counts an encoder-decoder: encoder weights touch only
  source tokens, decoder and output weights only target tokens, and an embedding lookup is no product);
- ``model_gflops``: 6 x (encoder weights x real source tokens + (decoder weights + output matrix) x
  real target tokens) per second, the products the step really computes on real tokens (attention
  scores and padding left out).

    python benchmarks/train_throughput.py --corpus ../shared/data/spa-eng/spa.txt --steps 40 \
        --variants float32 dropout0 mixed_bfloat16 jit

``--ce-epochs 1`` also trains each variant (a fresh model, the same seed) one epoch over the prepared
sample and prints its validation cross-entropy per real token: what bfloat16 must keep within 1%.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RECIPES = {
    "gru-word": {"arch": "gru-attention", "level": "word"},
    "transformer-subword": {
        "arch": "transformer",
        "level": "subword",
        "units": 256,
        "layers": 3,
        "heads": 4,
        "ff_dim": 1024,
    },
}


# Training-step variants of --steps: Keras dtype policy, XLA, and dropout (whose random masks cost
# time on a CPU) against the float32 default.
VARIANTS = {
    "float32": {},
    "mixed_bfloat16": {"policy": "mixed_bfloat16"},
    "jit": {"jit_compile": True},
    "dropout0": {"dropout": 0.0},
    "bf16_output_off": {"bf16_output": False},
}


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """The best float32 ``[size, size] @ [size, size]`` rate of ``repeats`` tries, in GFLOP/s."""
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    product(a, b).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def weight_counts(model) -> dict[str, int]:
    """Parameters by where they act: ``encoder`` (its layers and final norm), ``decoder`` (its layers
    and final norm), ``output`` (the output matrix and bias) and ``embeddings`` (a lookup, no product;
    the shared matrix counts once, under output)."""
    import numpy as np

    counts = {"encoder": 0, "decoder": 0, "output": 0, "embeddings": 0}
    seen = set()
    for weight in model.weights:
        if id(weight) in seen:
            continue
        seen.add(id(weight))
        size = int(np.prod(weight.shape))
        path = f"/{weight.path}"
        if "/encoder_layer" in path or "/encoder_norm/" in path:
            counts["encoder"] += size
        elif "/decoder_layer" in path or "/decoder_norm/" in path:
            counts["decoder"] += size
        elif "/output_projection/" in path:
            counts["output"] += size
        else:
            counts["embeddings"] += size
    if model.tie_embeddings:  # the tied matrix is the output product's too
        counts["output"] += int(np.prod(model.output_matrix.shape))
    return counts


def step_benchmark(args) -> None:
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    import keras

    from nmtcli.config import ModelConfig, PrepareConfig
    from nmtcli.corpus import PreparedData, prepare
    from nmtcli.models import bf16, build_model
    from nmtcli.pipeline import EncodedPairs, bucket_boundaries, make_dataset
    from nmtcli.training.loss import TokenCrossEntropy, masked_loss

    rates = [matmul_gflops()]
    print(json.dumps({"matmul_gflops_before": round(rates[0], 1), "load_average": os.getloadavg()[0]}))
    with tempfile.TemporaryDirectory(prefix="nmt-throughput-") as tmp:
        data_dir = Path(tmp) / "data"
        prepare(args.corpus, data_dir, PrepareConfig(sample=args.sample, seed=1))
        data = PreparedData.load(data_dir)
        source, target = data.vectorizer("source", "subword"), data.vectorizer("target", "subword")
        train_pairs = EncodedPairs(data.iter_pairs("train"), source, target)
        valid_pairs = EncodedPairs(data.iter_pairs("valid"), source, target)
        boundaries = bucket_boundaries(train_pairs.lengths)
        shared = source.vocabulary.tokens == target.vocabulary.tokens
        results = []
        for name in args.variants:
            variant = VARIANTS[name]
            jit = variant.get("jit_compile", False)
            train_set = make_dataset(
                train_pairs, args.batch_size, shuffle=True, seed=7, boundaries=boundaries, fixed_shapes=jit
            )
            previous = keras.config.dtype_policy()
            keras.config.set_dtype_policy(variant.get("policy", "float32"))
            try:
                keras.utils.set_random_seed(7)
                config = ModelConfig(
                    arch="transformer",
                    level="subword",
                    units=args.units,
                    layers=args.layers,
                    heads=args.heads,
                    ff_dim=args.ff_dim,
                    dropout=variant.get("dropout", 0.1),
                    source_vocab_size=len(source),
                    target_vocab_size=len(target),
                    shared_embeddings=shared,
                )
                model = build_model(config)
                model.build()
                model.compile(
                    optimizer=keras.optimizers.Adam(args.learning_rate),
                    loss=masked_loss(0.1),
                    metrics=[TokenCrossEntropy()],
                    jit_compile=jit,
                )
            finally:
                keras.config.set_dtype_policy(previous)
            counts = weight_counts(model)
            with bf16.for_training(variant.get("bf16_output", True)):
                seconds = 0.0
                real = {"source": 0, "target": 0}
                padded = 0
                for step, ((src, tgt_in), tgt_out) in enumerate(train_set.take(args.warmup + args.steps)):
                    started = time.perf_counter()
                    model.train_on_batch((src, tgt_in), tgt_out)
                    elapsed = time.perf_counter() - started
                    if step < args.warmup:
                        continue
                    seconds += elapsed
                    real["source"] += int(np.count_nonzero(src))
                    real["target"] += int(np.count_nonzero(tgt_out))
                    padded += int(np.size(src) + np.size(tgt_out))
                result = {
                    "variant": name,
                    "parameters": model.count_params(),
                    "weights": counts,
                    "steps": args.steps,
                    "seconds_per_step": round(seconds / args.steps, 3),
                    "source_tokens_per_s": round(real["source"] / seconds),
                    "target_tokens_per_s": round(real["target"] / seconds),
                    "padding_share": round(1 - (real["source"] + real["target"]) / padded, 3),
                    "useful_gflops_6nt": round(
                        6 * model.count_params() * (real["source"] + real["target"]) / seconds / 1e9, 1
                    ),
                    "model_gflops": round(
                        6
                        * (
                            counts["encoder"] * real["source"]
                            + (counts["decoder"] + counts["output"]) * real["target"]
                        )
                        / seconds
                        / 1e9,
                        1,
                    ),
                    "load_average": os.getloadavg()[0],
                }
                if args.ce_epochs:
                    model = None  # a fresh model trains from the same seed below
                    result["val_cross_entropy"] = _one_run_ce(
                        args, variant, config, train_pairs, valid_pairs, boundaries
                    )
            results.append(result)
            print(json.dumps(result), flush=True)
        rates.append(matmul_gflops())
        best = max(rates)
        print(
            json.dumps(
                {
                    "matmul_gflops": [round(r, 1) for r in rates],
                    "threads": args.threads,
                    "fraction_of_matmul_rate": {
                        r["variant"]: {
                            "6nt": round(r["useful_gflops_6nt"] / best, 3),
                            "model": round(r["model_gflops"] / best, 3),
                        }
                        for r in results
                    },
                    "train_pairs": len(train_pairs),
                    "vocab": len(source),
                    "load_average": os.getloadavg()[0],
                }
            ),
            flush=True,
        )


def _one_run_ce(args, variant, config, train_pairs, valid_pairs, boundaries) -> float:
    """Validation cross-entropy per real target token after ``--ce-epochs`` epochs of ``variant``."""
    import keras

    from nmtcli.models import bf16, build_model
    from nmtcli.pipeline import make_dataset
    from nmtcli.training.loss import TokenCrossEntropy, masked_loss

    jit = variant.get("jit_compile", False)
    train_set = make_dataset(
        train_pairs, args.batch_size, shuffle=True, seed=7, boundaries=boundaries, fixed_shapes=jit
    )
    valid_set = make_dataset(valid_pairs, args.batch_size, boundaries=boundaries, fixed_shapes=jit)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(variant.get("policy", "float32"))
    try:
        keras.utils.set_random_seed(7)
        model = build_model(config)
        model.build()
        model.compile(
            optimizer=keras.optimizers.Adam(args.learning_rate),
            loss=masked_loss(0.1),
            metrics=[TokenCrossEntropy()],
            jit_compile=jit,
        )
    finally:
        keras.config.set_dtype_policy(previous)
    with bf16.for_training(variant.get("bf16_output", True)):
        model.fit(train_set, epochs=args.ce_epochs, verbose=0, shuffle=False)
    return round(float(model.evaluate(valid_set, verbose=0, return_dict=True)["cross_entropy"]), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    step = parser.add_argument_group("the Transformer's training step (--steps)")
    step.add_argument("--steps", type=int, default=0, help="timed steps per variant; 0 = the recipe mode")
    step.add_argument("--warmup", type=int, default=8)
    step.add_argument("--sample", type=int, default=20_000, help="pairs drawn from the whole corpus")
    step.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["float32"])
    step.add_argument("--threads", type=int, default=2)
    step.add_argument("--units", type=int, default=256)
    step.add_argument("--layers", type=int, default=3)
    step.add_argument("--heads", type=int, default=4)
    step.add_argument("--ff-dim", type=int, default=1024)
    step.add_argument("--learning-rate", type=float, default=5e-4)
    step.add_argument("--ce-epochs", type=int, default=0)
    args = parser.parse_args()
    if args.steps:
        step_benchmark(args)
        return

    from nmtcli.config import ModelConfig, PrepareConfig, TrainConfig
    from nmtcli.corpus import PreparedData, prepare
    from nmtcli.training import train
    from nmtcli.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="nmt-throughput-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        prepare(args.corpus, data_dir, PrepareConfig(limit=args.pairs))
        data = PreparedData.load(data_dir)
        for name in args.recipes:
            recipe = RECIPES[name]
            source = data.vectorizer("source", recipe["level"])
            target = data.vectorizer("target", recipe["level"])
            source_tokens = target_tokens = 0
            for source_text, target_text in data.iter_pairs("train"):
                source_tokens += len(source.encode(source_text))
                target_tokens += len(target.encode(target_text, end=True))
            result = train(
                ModelConfig(**recipe),
                TrainConfig(epochs=args.epochs, batch_size=args.batch_size, bleu_sample=0, patience=0),
                data_dir=data_dir,
                workspace=Workspace(root / f"ws-{name}"),
            )
            # The last epoch: with --epochs 2 or more, past the tracing of the first.
            seconds = result.history[-1]["seconds"]
            print(
                json.dumps(
                    {
                        "recipe": name,
                        **recipe,
                        "train_pairs": data.manifest["counts"]["train"],
                        "vocab": [len(source), len(target)],
                        "parameters": result.parameters,
                        "seconds_first_epoch": round(result.history[0]["seconds"], 1),
                        "seconds_last_epoch": round(seconds, 1),
                        "target_tokens_per_s": round(target_tokens / seconds),
                        "source_tokens_per_s": round(source_tokens / seconds),
                        "val_cross_entropy": result.history[-1].get("val_cross_entropy"),
                        "load_average": os.getloadavg()[0],
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
