"""Training and decoding throughput: the seed recipe and nmtcli, same data, same model size, one run.

Each side runs in its own child process (so each has its own peak RSS); the parent prints one JSON
line with both and the ratios:

    python benchmarks/train_vs_seed.py --corpus ../shared/data/fra-eng/fra.txt --pairs 10000 --epochs 3

The task is the seed's: the first N pairs, character level, LSTM 256, RMSprop, batch 64, 20% held
out. nmtcli uses its own pipeline (length buckets, masked loss, embeddings of about the one-hot
width). Throughput counts training pairs times epochs over the wall time of `fit` (validation
loss included on both sides; nmtcli's per-epoch BLEU sample only with --bleu-sample); "useful
GFLOP/s" counts the matrix work on real (unpadded) tokens only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
UNITS = 256


def useful_flops(source_lengths, target_lengths, embedding: int, vocab: int, units: int = UNITS) -> float:
    """Multiply-adds x2 of one training pass (forward + backward = 3x forward) on real tokens."""
    lstm_step = 2 * 4 * units * (embedding + units)
    projection = 2 * units * vocab
    forward = sum(source_lengths) * lstm_step + sum(target_lengths) * (lstm_step + projection)
    return 3.0 * forward


def run_seed(args) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from seed_recipe import SeedRecipe, read_pairs

    sources, targets = read_pairs(args.corpus, args.pairs)
    recipe = SeedRecipe(sources, targets, UNITS)
    seconds, history = recipe.fit(args.epochs)
    train_n = int(len(sources) * 0.8)
    flops = (
        useful_flops(
            [len(s) for s in sources[:train_n]],
            [len(t) - 1 for t in targets[:train_n]],
            len(recipe.source_chars),
            len(recipe.target_chars),
        )
        * args.epochs
    )
    started = time.perf_counter()
    for sentence in sources[train_n : train_n + args.seed_sentences]:
        recipe.translate(sentence)
    decode_seconds = time.perf_counter() - started
    return {
        "train_samples_per_second": round(train_n * args.epochs / seconds, 1),
        "train_seconds": round(seconds, 1),
        "useful_gflops_per_second": round(flops / seconds / 1e9, 1),
        "val_cross_entropy_unmasked_keras": round(history["val_loss"][-1], 4),
        "val_cross_entropy_per_token": round(recipe.masked_validation_cross_entropy(), 4),
        "decode_sentences_per_second": round(args.seed_sentences / decode_seconds, 3),
        "one_hot_array_mb": round(recipe.bytes_of_arrays / 2**20, 1),
    }


def run_nmtcli(args) -> dict:
    import keras

    from nmtcli.config import ModelConfig, PrepareConfig, TrainConfig
    from nmtcli.corpus import PreparedData, prepare
    from nmtcli.models.fast_rnn import keras_layers_only
    from nmtcli.training import train
    from nmtcli.translator import Translator

    with tempfile.TemporaryDirectory(prefix="nmt-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        prepare(
            args.corpus,
            data_dir,
            PrepareConfig(
                limit=args.pairs, valid_size=0.2, test_size=0, dedupe=False, max_words=1000, max_chars=10_000
            ),
        )
        data = PreparedData.load(data_dir)
        vocab = data.manifest["vocab_size"]["char"]
        embedding = vocab["source"]
        model_config = ModelConfig(
            arch="lstm", level="char", embedding_dim=embedding, units=UNITS, dropout=0.0
        )
        train_config = TrainConfig(
            epochs=args.epochs,
            batch_size=64,
            optimizer="rmsprop",
            learning_rate=1e-3,
            clipnorm=None,
            patience=0,
            jit_compile=args.jit_compile,
            bleu_sample=args.bleu_sample,
        )
        started, cpu_started = time.perf_counter(), time.process_time()
        with keras_layers_only() if args.keras_rnn else contextlib.nullcontext():
            result = train(
                model_config, train_config, data_dir=data_dir, run_dir=Path(tmp) / "run", resume=False
            )
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        train_pairs = data.pairs("train")
        flops = (
            useful_flops(
                [len(s) for s, _ in train_pairs],
                [len(t) + 1 for _, t in train_pairs],
                embedding,
                vocab["target"],
            )
            * args.epochs
        )
        fit_seconds = sum(row["seconds"] for row in result.history)

        translator = Translator.load(result.run_dir)
        sources = [s for s, _ in data.pairs("valid")]
        sources = (sources * (args.decode_sentences // max(1, len(sources)) + 1))[: args.decode_sentences]
        translator.translate(sources[:256], batch_size=args.decode_batch)  # trace the decoder once
        started = time.perf_counter()
        translator.translate(sources, batch_size=args.decode_batch)
        decode_seconds = time.perf_counter() - started
        return {
            "train_samples_per_second": round(len(train_pairs) * args.epochs / fit_seconds, 1),
            "train_seconds": round(fit_seconds, 1),
            "train_command_seconds": round(seconds, 1),
            # CPU time of all threads: on a shared machine, less sensitive to other processes.
            "train_command_cpu_seconds": round(cpu_seconds, 1),
            "recurrent_layers": "keras" if args.keras_rnn else "fast_rnn",
            "bleu_sample": args.bleu_sample,
            "useful_gflops_per_second": round(flops / fit_seconds / 1e9, 1),
            # Over all validation tokens; Keras' val_loss averages batch means weighted by sentences.
            "val_cross_entropy_per_token": round(result.history[-1]["val_cross_entropy"], 4),
            "val_loss_keras": round(result.history[-1]["val_loss"], 4),
            "decode_sentences_per_second": round(len(sources) / decode_seconds, 1),
            "decode_batch_size": args.decode_batch,
            "keras": keras.__version__,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed-sentences", type=int, default=5, help="sentences the seed decodes")
    parser.add_argument("--decode-sentences", type=int, default=10_000, help="sentences nmtcli decodes")
    parser.add_argument("--decode-batch", type=int, default=512)
    parser.add_argument("--jit-compile", action="store_true", help="nmtcli side: XLA")
    parser.add_argument(
        "--bleu-sample",
        type=int,
        default=0,
        help="nmtcli side: validation sentences decoded for BLEU after each epoch (`nmt train` default "
        "500); 0, the default here, since the seed computes only the validation loss",
    )
    parser.add_argument(
        "--keras-rnn", action="store_true", help="nmtcli side: Keras' own LSTM loop instead of fast_rnn"
    )
    parser.add_argument(
        "--matmul-gflops", type=float, default=219.0, help="the machine's measured matmul rate"
    )
    parser.add_argument("--only", choices=("seed", "nmtcli"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.only:
        figures = run_seed(args) if args.only == "seed" else run_nmtcli(args)
        figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(figures))
        return
    results = {}
    for side in ("seed", "nmtcli"):
        child = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--only", side], capture_output=True, text=True
        )
        if child.returncode != 0:
            sys.exit(f"{side} failed:\n{child.stderr}")
        results[side] = json.loads(child.stdout.strip().splitlines()[-1])
    seed, ours = results["seed"], results["nmtcli"]
    print(
        json.dumps(
            {
                "benchmark": "train_vs_seed",
                "corpus": args.corpus.name,
                "pairs": args.pairs,
                "epochs": args.epochs,
                "seed": seed,
                "nmtcli": ours,
                "train_speedup": round(
                    ours["train_samples_per_second"] / seed["train_samples_per_second"], 2
                ),
                "decode_speedup": round(
                    ours["decode_sentences_per_second"] / seed["decode_sentences_per_second"]
                ),
                "nmtcli_fraction_of_matmul_rate": round(
                    ours["useful_gflops_per_second"] / args.matmul_gflops, 3
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
