"""Training and decoding throughput: the seed recipe and nmtcli, same data, same model size, one run.

Each side runs in its own child process (so each has its own peak RSS); the parent prints one JSON
line with both and the ratios:

    python benchmarks/train_vs_seed.py --corpus ../shared/data/fra-eng/fra.txt --pairs 10000 --epochs 3

The task is the seed's: the first N pairs, character level, LSTM 256, RMSprop, batch 64, a fifth
held out. Like for like:

- The same pairs: `nmt prepare` splits the first N pairs once (a fifth of the sources for validation,
  grouped, no de-duplication); the seed trains on the training pairs and validates on the validation
  pairs (its arrays built from all N, as the seed does), so both report the per-token validation
  cross-entropy on the same sentences.
- The same clock span: each side's ``model.fit`` from its first to its last batch, validation and
  (for nmtcli) the per-epoch bookkeeping included, timed by the same callback.
- Both decoders warm: each translates once before the timed sentences.
- The machine's float32 matrix-product rate is measured in the same run (before and after the two
  sides; the higher is used), so "useful GFLOP/s" has a denominator from the same conditions.

nmtcli uses its own pipeline (length buckets, masked loss, embeddings of about the one-hot width).
"Useful GFLOP/s" counts the matrix work on real (unpadded) tokens only.
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


def fit_clock():
    """A Keras callback timing ``fit`` from its first batch's start to the end of its last epoch."""
    import keras

    class FitClock(keras.callbacks.Callback):
        seconds = 0.0

        def on_train_begin(self, logs=None):
            self._started = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self._started

    return FitClock()


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


def read_split(data_dir: Path, split: str) -> list[tuple[str, str]]:
    rows = (data_dir / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
    return [tuple(row.split("\t")[:2]) for row in rows]


def run_seed(args) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from seed_recipe import SeedRecipe

    train_pairs, valid_pairs = read_split(args.data, "train"), read_split(args.data, "valid")
    pairs = train_pairs + valid_pairs  # the seed builds its arrays and vocabularies from all N
    sources = [s for s, _ in pairs]
    targets = ["\t" + t + "\n" for _, t in pairs]
    recipe = SeedRecipe(sources, targets, UNITS)
    clock = fit_clock()
    _, history = recipe.fit(args.epochs, validation_rows=len(valid_pairs), callbacks=[clock])
    seconds = clock.seconds
    train_n = len(train_pairs)
    flops = (
        useful_flops(
            [len(s) for s in sources[:train_n]],
            [len(t) - 1 for t in targets[:train_n]],
            len(recipe.source_chars),
            len(recipe.target_chars),
        )
        * args.epochs
    )
    held_out = sources[train_n:]
    recipe.translate(held_out[0])  # warm: the first predict calls trace their functions
    started = time.perf_counter()
    for sentence in held_out[1 : 1 + args.seed_sentences]:
        recipe.translate(sentence)
    decode_seconds = time.perf_counter() - started
    return {
        "train_pairs": train_n,
        "valid_pairs": len(valid_pairs),
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

    from nmtcli.config import ModelConfig, TrainConfig
    from nmtcli.corpus import PreparedData
    from nmtcli.models.fast_rnn import keras_layers_only
    from nmtcli.training import train
    from nmtcli.translator import Translator

    with tempfile.TemporaryDirectory(prefix="nmt-bench-") as tmp:
        data_dir = args.data
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
        clock = fit_clock()
        started, cpu_started = time.perf_counter(), time.process_time()
        with keras_layers_only() if args.keras_rnn else contextlib.nullcontext():
            result = train(
                model_config,
                train_config,
                data_dir=data_dir,
                run_dir=Path(tmp) / "run",
                resume=False,
                callbacks=[clock],
                translator_factory=Translator,
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
        fit_seconds = clock.seconds

        translator = Translator.load(result.run_dir)
        sources = [s for s, _ in data.pairs("valid")]
        sources = (sources * (args.decode_sentences // max(1, len(sources)) + 1))[: args.decode_sentences]
        translator.translate(sources[:256], batch_size=args.decode_batch)  # trace the decoder once
        started = time.perf_counter()
        translator.translate(sources, batch_size=args.decode_batch)
        decode_seconds = time.perf_counter() - started
        return {
            "train_pairs": len(train_pairs),
            "valid_pairs": len(data.pairs("valid")),
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
            "val_objective_keras": round(result.history[-1]["val_objective"], 4),
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
    parser.add_argument("--only", choices=("seed", "nmtcli", "matmul"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)  # the parent's prepared split
    args = parser.parse_args()

    if args.only:
        if args.only == "matmul":
            figures = {"gflops": round(matmul_gflops(), 1)}
        else:
            figures = run_seed(args) if args.only == "seed" else run_nmtcli(args)
            figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(figures))
        return

    from nmtcli.config import PrepareConfig
    from nmtcli.corpus import prepare

    def child(side: str, data_dir: Path) -> dict:
        command = [sys.executable, __file__, *sys.argv[1:], "--only", side, "--data", str(data_dir)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{side} failed:\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory(prefix="nmt-bench-data-") as tmp:
        data_dir = Path(tmp) / "data"
        # One split for both sides: a fifth of the sources for validation, nothing dropped.
        settings = PrepareConfig(
            limit=args.pairs, valid_size=0.2, test_size=0, dedupe=False, max_words=1000, max_chars=10_000
        )
        prepare(args.corpus, data_dir, settings)
        rates = [child("matmul", data_dir)["gflops"]]
        results = {side: child(side, data_dir) for side in ("seed", "nmtcli")}
        rates.append(child("matmul", data_dir)["gflops"])
    seed, ours = results["seed"], results["nmtcli"]
    matmul = max(rates)
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
                "matmul_gflops_per_second": rates,
                "seed_fraction_of_matmul_rate": round(seed["useful_gflops_per_second"] / matmul, 3),
                "nmtcli_fraction_of_matmul_rate": round(ours["useful_gflops_per_second"] / matmul, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
