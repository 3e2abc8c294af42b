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
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    args = parser.parse_args()

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
