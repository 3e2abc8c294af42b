"""Fitting a seq2seq model: data, loss, optimizer, checkpoints, early stopping, resume.

A run folder is written as training goes (see ``model_folder``). Keras' ``BackupAndRestore`` keeps
the weights and optimizer state of the last finished epoch in ``RUN/backup``, so running the same
command again after an interruption continues from there. ``RunCheckpoint`` keeps the history, the
best model and the early-stopping count on disk, so they survive the interruption too.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
from keras import ops

from .config import ModelConfig, TrainConfig
from .corpus import PreparedData
from .distribution import ClusterTask, make_strategy, read_cluster
from .errors import ConfigError, ModelError
from .files import atomic_write_json, atomic_write_text, read_json
from .model_folder import copy_data_files, load_vectorizers, read_config, save_model, write_config
from .models import build_model
from .pipeline import EncodedPairs, bucket_boundaries, count_batches, make_dataset
from .vectorizers import PAD_ID
from .workspace import RunLock, Workspace, run_status

HISTORY_FIELDS = (
    "epoch",
    "loss",
    "cross_entropy",
    "perplexity",
    "val_loss",
    "val_cross_entropy",
    "val_perplexity",
    "val_bleu",
    "learning_rate",
    "seconds",
)


@keras.saving.register_keras_serializable(package="nmtcli")
class MaskedCrossEntropy(keras.losses.Loss):
    """Cross-entropy on logits averaged over real (non-padding) target tokens, with optional label
    smoothing: ``(1 - e) * nll + e * mean_v(-log p_v)`` (Szegedy et al., 2016).

    Each position's share is divided by the batch's real-token count here and the shares summed
    (reduction ``sum``). That stays right whether or not Keras finds a padding mask on the logits:
    with ``sum`` a mask only multiplies by 0/1, where a mean reduction would rescale a second time.
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        weighted: bool = False,
        name: str = "masked_cross_entropy",
        **kwargs,
    ):
        kwargs["reduction"] = "sum"
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing
        self.weighted = weighted

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        logits = ops.cast(y_pred, "float32")
        nll = ops.sparse_categorical_crossentropy(y_true, logits, from_logits=True)  # one fused op
        if self.label_smoothing:  # mean_v(-log p_v) = logsumexp(logits) - mean(logits)
            uniform = ops.logsumexp(logits, axis=-1) - ops.mean(logits, axis=-1)
            nll = (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform
        mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
        if self.weighted:  # the batch's sample weights already divide by its real tokens
            return nll * mask
        return nll * mask / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)  # always sum; see the class docstring
        return {**config, "label_smoothing": self.label_smoothing, "weighted": self.weighted}


def masked_loss(label_smoothing: float = 0.0, weighted: bool = False) -> keras.losses.Loss:
    """The training objective: cross-entropy over real target tokens, optionally label-smoothed.

    ``weighted``: for batches whose per-token weights already divide by the batch's token count
    (``make_dataset(replicas=...)``, under ``tf.distribute``): the weighted losses are summed.
    """
    return MaskedCrossEntropy(label_smoothing, weighted=weighted)


@keras.saving.register_keras_serializable(package="nmtcli")
class TokenCrossEntropy(keras.metrics.Metric):
    """Plain cross-entropy per real target token over a whole epoch (not a mean of batch means), so
    ``exp`` of it is the perplexity whatever the training objective."""

    def __init__(self, name: str = "cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total", dtype="float32")
        self.tokens = self.add_variable(shape=(), initializer="zeros", name="tokens", dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        # Padding targets are id 0, a valid class, so no remapping is needed before the fused op;
        # their loss is masked out below.
        y_true = ops.cast(y_true, "int32")
        nll = ops.sparse_categorical_crossentropy(y_true, ops.cast(y_pred, "float32"), from_logits=True)
        mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
        self.total.assign_add(ops.sum(nll * mask))
        self.tokens.assign_add(ops.sum(mask))

    def result(self):
        return ops.divide_no_nan(self.total, self.tokens)

    def reset_state(self):
        self.total.assign(0.0)
        self.tokens.assign(0.0)


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    options: dict[str, Any] = {"learning_rate": config.learning_rate}
    if config.clipnorm is not None:
        options["clipnorm"] = config.clipnorm
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(**options)
    return keras.optimizers.Adam(**options)


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build layers under a Keras dtype policy (``mixed_float16`` for mixed precision)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _perplexity(loss: float | None) -> float | None:
    if loss is None or not math.isfinite(loss):
        return None
    return math.exp(min(loss, 700.0))


class RunCheckpoint(keras.callbacks.Callback):
    """Per epoch: append to the history, save the model if it is the best so far, reduce the learning
    rate on a plateau, stop early or when the time budget is spent.

    Everything is derived from ``history.json`` on disk, so a resumed run carries on exactly.
    ``monitor`` is a history field; ``higher_is_better`` for BLEU. ``patience`` 0 disables early
    stopping; ``reduce_lr_factor`` None disables the learning-rate reduction.
    """

    def __init__(
        self,
        run_dir: Path,
        monitor: str,
        patience: int,
        *,
        higher_is_better: bool = False,
        reduce_lr_factor: float | None = None,
        reduce_lr_patience: int = 1,
        max_seconds: float | None = None,
        log: Callable[[str], None] = lambda message: None,
    ):
        super().__init__()
        self.run_dir = run_dir
        self.monitor = monitor
        self.patience = patience
        self.higher_is_better = higher_is_better
        self.reduce_lr_factor = reduce_lr_factor
        self.reduce_lr_patience = max(1, reduce_lr_patience)
        self.max_seconds = max_seconds
        self.log = log
        self.history: list[dict[str, Any]] = []
        self._epoch_start = 0.0

    def on_train_begin(self, logs=None):
        path = self.run_dir / "history.json"
        self.history = read_json(path) if path.is_file() else []

    def on_epoch_begin(self, epoch, logs=None):
        # After a resume, epochs from `epoch` on are run again: forget what they logged before.
        self.history = [row for row in self.history if row["epoch"] <= epoch]
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = history_row(epoch + 1, logs, self.model.optimizer.learning_rate)
        row["seconds"] = round(time.perf_counter() - self._epoch_start, 3)
        self.history.append(row)
        best = self.best_epoch()
        if best == row["epoch"]:
            save_model(self.model, self.run_dir)
        write_history(self.run_dir, self.history)
        since_best = row["epoch"] - best
        if self.patience and since_best >= self.patience:
            self.model.stop_training = True
        elif self.reduce_lr_factor and since_best and since_best % self.reduce_lr_patience == 0:
            rate = max(row["learning_rate"] * self.reduce_lr_factor, MIN_LEARNING_RATE)
            self.model.optimizer.learning_rate = rate
            self.log(f"no better {self.monitor} for {since_best} epoch(s): learning rate -> {rate:.3g}")
        spent = sum(r["seconds"] for r in self.history)
        if self.max_seconds and not self.model.stop_training and spent + row["seconds"] > self.max_seconds:
            self.model.stop_training = True
            self.log(
                f"time budget: {spent / 60:.1f} of {self.max_seconds / 60:g} minutes spent; "
                "another epoch would not fit, stopping"
            )

    def best_epoch(self) -> int:
        scored = [r for r in self.history if r.get(self.monitor) is not None]
        if not scored:
            return self.history[-1]["epoch"]
        sign = -1.0 if self.higher_is_better else 1.0
        # Ties (BLEU on a small sample often ties) go to the lower validation cross-entropy.
        return min(
            scored,
            key=lambda r: (sign * r[self.monitor], r.get("val_cross_entropy") or math.inf, r["epoch"]),
        )["epoch"]


MIN_LEARNING_RATE = 1e-6


def history_row(epoch: int, logs: dict[str, Any], learning_rate: Any) -> dict[str, Any]:
    """One epoch's line of ``history.json``; perplexities come from the plain cross-entropy."""
    row: dict[str, Any] = {"epoch": epoch}
    for prefix in ("", "val_"):
        loss = _float(logs.get(prefix + "loss"))
        entropy = _float(logs.get(prefix + "cross_entropy"))
        row[prefix + "loss"] = loss
        row[prefix + "cross_entropy"] = entropy
        row[prefix + "perplexity"] = _perplexity(entropy)
    row["val_bleu"] = _float(logs.get("val_bleu"))
    row["learning_rate"] = _float(learning_rate)
    return row


class ValidationBleu(keras.callbacks.Callback):
    """After each epoch, greedy-decode a fixed sample of validation sources and put the
    multi-reference BLEU (sacrebleu, detokenized, cased, 13a) into the logs as ``val_bleu``.

    Must come before ``RunCheckpoint`` in the callback list, which reads it from the same logs.
    """

    def __init__(self, translator_factory: Callable[[keras.Model], Any], sources, references, batch_size):
        super().__init__()
        self.translator_factory = translator_factory
        self.sources = sources
        self.references = references
        self.batch_size = batch_size
        self._translator = None

    def on_epoch_end(self, epoch, logs=None):
        import sacrebleu

        if self._translator is None:
            self._translator = self.translator_factory(self.model)
        hypotheses = self._translator.translate(self.sources, batch_size=self.batch_size)
        from .evaluation import reference_streams

        if logs is not None:
            logs["val_bleu"] = sacrebleu.corpus_bleu(hypotheses, reference_streams(self.references)).score


def bleu_sample(pairs: list[tuple[str, str]], size: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """A fixed, seeded sample of ``size`` distinct sources with all of their references."""
    import random

    from .corpus import group_references

    sources, references = group_references(pairs)
    chosen = sorted(random.Random(seed).sample(range(len(sources)), min(size, len(sources))))
    return [sources[i] for i in chosen], [references[i] for i in chosen]


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(keras.ops.convert_to_numpy(value))
    return value if math.isfinite(value) else None


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_json(run_dir / "history.json", history)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run_dir / "history.csv", buffer.getvalue())


@dataclass
class TrainResult:
    run_dir: Path
    resumed_from_epoch: int
    history: list[dict[str, Any]]
    best_epoch: int
    parameters: int

    @property
    def best(self) -> dict[str, Any]:
        return next(row for row in self.history if row["epoch"] == self.best_epoch)


def _claim_interrupted(workspace: Workspace, settings: dict[str, Any] | None) -> tuple[Path, RunLock] | None:
    """The newest unfinished run that no other process is training, locked for this one.

    Only runs saved with exactly ``settings`` qualify, unless ``settings`` is None.
    """
    for run in reversed(workspace.runs()):
        if run_status(run) != "running":
            continue
        if settings is not None:
            try:
                saved = read_json(run / "config.json")
            except (OSError, ValueError):
                continue
            if not isinstance(saved, dict) or {k: saved.get(k) for k in settings} != settings:
                continue
        lock = RunLock(run)
        if lock.acquire():
            return run, lock
    return None


def _claim_run(
    workspace: Workspace, run_dir: Path | None, resume: bool | None, settings: dict[str, Any], label: str
) -> tuple[Path, RunLock, bool]:
    """Pick, create and lock the run folder: ``(run_dir, lock, resuming)``."""
    if run_dir is not None:
        resuming = run_status(run_dir) == "running" and resume is not False
        if not resuming and run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"{run_dir}: output folder exists and is not empty; choose another --output")
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir)
        if not lock.acquire():
            raise ModelError(f"{run_dir}: another process is training in this folder")
        return run_dir, lock, resuming
    if resume is not False:
        claimed = _claim_interrupted(workspace, None if resume else settings)
        if claimed is not None:
            return claimed[0], claimed[1], True
        if resume:
            raise ModelError(f"no interrupted run to resume in {workspace.runs_dir}")
    run_dir = workspace.new_run_dir(label)
    lock = RunLock(run_dir)
    lock.acquire()  # a folder this process just created: nobody else holds it
    return run_dir, lock, False


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    data_dir: str | os.PathLike | None = None,
    workspace: Workspace | None = None,
    run_dir: str | os.PathLike | None = None,
    resume: bool | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    log: Callable[[str], None] = lambda message: None,
    run_callbacks: Callable[[Path], list[keras.callbacks.Callback]] | None = None,
) -> TrainResult:
    """Train a model on a prepared data folder and write a run folder.

    ``resume``: None resumes an interrupted run with identical settings if there is one, else starts a
    new run; True resumes the newest interrupted run (its own settings win; an error if there is
    none); False always starts a new run. A run being trained is locked, so concurrent commands in
    one workspace never share a folder. ``callbacks`` are extra Keras callbacks (progress display);
    ``log`` receives one-line notices (which run folder, resumed or not). ``run_callbacks(run_dir)``
    makes more callbacks once the run folder is chosen (TensorBoard logs, experiment tracking).
    """
    workspace = workspace or Workspace()
    data_dir = Path(data_dir) if data_dir else workspace.data_dir
    data = PreparedData.load(data_dir)
    task = read_cluster() if train_config.distribute == "multi-worker" else None
    if task is not None and run_dir is None:
        raise ConfigError(
            "output must name the run folder with --distribute multi-worker, the same on every worker",
            field="output",
        )
    level = model_config.level
    source, target = data.vectorizer("source", level), data.vectorizer("target", level)
    model_config = replace(
        model_config,
        source_vocab_size=len(source),
        target_vocab_size=len(target),
        max_source_length=data.max_length("source", level),
        max_target_length=data.max_length("target", level),
        # One vocabulary for both sides (a joint subword model): the Transformer shares its embeddings.
        shared_embeddings=model_config.arch == "transformer"
        and source.vocabulary.tokens == target.vocabulary.tokens,
    )
    settings = {
        "model": model_config.to_dict(),
        "training": train_config.to_dict(),
        "data": str(data_dir.resolve()),
    }
    if task is None or task.is_chief:
        run_dir, lock, resuming = _claim_run(
            workspace, Path(run_dir) if run_dir else None, resume, settings, f"{model_config.arch}-{level}"
        )
        shared_dir = run_dir
    else:
        shared_dir = Path(run_dir)
        run_dir, lock, resuming = _worker_copy(shared_dir, resume, task)
    try:
        # Before TensorFlow runs anything: the CPU split and the cluster runtime are set up only then.
        strategy = make_strategy(train_config.distribute)
        if resuming:
            saved = read_config(run_dir)
            # The saved settings win, but how this process runs is what the command says.
            model_config = saved["model"]
            train_config = replace(saved["training"], distribute=train_config.distribute)
            if saved.get("data") != str(data_dir.resolve()):
                data_dir = Path(saved["data"])
                data = PreparedData.load(data_dir)
        else:
            write_config(run_dir, model_config, train_config, data_dir)
            copy_data_files(run_dir, data_dir, level)
        atomic_write_json(run_dir / "state.json", {"status": "running"})
        extra = [*(callbacks or []), *(run_callbacks(run_dir) if run_callbacks else [])]
        result = _fit(run_dir, data, model_config, train_config, resuming, strategy, extra, log)
        atomic_write_json(run_dir / "state.json", {"status": "complete"})
    finally:
        lock.release()
        if run_dir != shared_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
    if run_dir != shared_dir:
        return replace(result, run_dir=shared_dir)
    if run_dir.parent.resolve() == workspace.runs_dir.resolve():
        workspace.set_latest(run_dir)
    return result


def _worker_copy(run_dir: Path, resume: bool | None, task: ClusterTask) -> tuple[Path, RunLock, bool]:
    """A private folder for a multi-worker process that is not the chief: ``(folder, lock, resuming)``.

    Only the chief writes the run folder; the other workers write the same files to a temporary
    folder, deleted when training ends. To resume, a worker must see the chief's run folder at the
    same path (a shared file system, or one host): it starts from a copy of its history and backup,
    so that every worker restores the same epoch and weights and takes the same early-stopping steps.
    """
    resuming = run_status(run_dir) == "running" and resume is not False
    if not resuming and resume:
        raise ModelError(f"{run_dir}: no interrupted run to resume here (as seen by {task.name})")
    if not resuming and (run_dir / "state.json").exists():
        raise ConfigError(f"{run_dir}: output folder exists and is not empty; choose another --output")
    folder = Path(tempfile.mkdtemp(prefix=f"nmt-{task.task_type}{task.task_index}-"))
    if resuming:  # the chief writes nothing before every worker has joined, so the copy is consistent
        shutil.copytree(run_dir, folder, ignore=shutil.ignore_patterns(".lock"), dirs_exist_ok=True)
    lock = RunLock(folder)
    lock.acquire()  # a folder this process just created: nobody else holds it
    return folder, lock, resuming


def _fit(
    run_dir: Path,
    data: PreparedData,
    model_config: ModelConfig,
    train_config: TrainConfig,
    resuming: bool,
    strategy: Any,
    callbacks: list[keras.callbacks.Callback],
    log: Callable[[str], None],
) -> TrainResult:
    source_vectorizer, target_vectorizer = load_vectorizers(run_dir, model_config.level)
    keras.utils.set_random_seed(train_config.seed)
    train_pairs = EncodedPairs(data.iter_pairs("train"), source_vectorizer, target_vectorizer)
    valid_pairs = EncodedPairs(data.iter_pairs("valid"), source_vectorizer, target_vectorizer)
    boundaries = bucket_boundaries(train_pairs.lengths)
    batch_size = train_config.batch_size
    fixed = train_config.jit_compile
    # Under tf.distribute, batch_size is the global batch, split evenly between the replicas.
    replicas = strategy.num_replicas_in_sync if strategy is not None else None
    train_set = make_dataset(
        train_pairs,
        batch_size,
        shuffle=True,
        seed=train_config.seed,
        boundaries=boundaries,
        fixed_shapes=fixed,
        replicas=replicas,
    )
    valid_set = (
        make_dataset(valid_pairs, batch_size, boundaries=boundaries, fixed_shapes=fixed, replicas=replicas)
        if len(valid_pairs)
        else None
    )

    with _scope(strategy), dtype_policy("mixed_float16" if train_config.mixed_precision else "float32"):
        model = build_model(model_config)
        model.build()
        model.bf16_output = train_config.bf16_output
        model.compile(
            optimizer=make_optimizer(train_config),
            loss=masked_loss(train_config.label_smoothing, weighted=replicas is not None),
            metrics=[TokenCrossEntropy()],
            jit_compile=train_config.jit_compile,
        )
        if strategy is not None:
            model.optimizer.build(model.trainable_variables)
    monitoring: list[keras.callbacks.Callback] = []
    by_bleu = train_config.early_stopping_metric == "bleu" and valid_set is not None
    if train_config.bleu_sample and valid_set is not None:
        from .translator import Translator

        sources, references = bleu_sample(data.pairs("valid"), train_config.bleu_sample, train_config.seed)
        monitoring.append(
            ValidationBleu(
                lambda trained: Translator(trained, source_vectorizer, target_vectorizer, model_config),
                sources,
                references,
                batch_size=max(64, batch_size),
            )
        )
    if strategy is not None:
        # Keras 3.15's fit() builds a model made under a strategy from one batch that it averages
        # across replicas with strategy.reduce, which fails under MultiWorkerMirroredStrategy for
        # (x, y) batches and uses up one pass of the shuffled data. Model and optimizer are built
        # already; fit() inside the strategy's scope (below) finds the strategy without this field.
        model._distribute_strategy = None
    checkpoint = RunCheckpoint(
        run_dir,
        "val_bleu" if by_bleu else "val_cross_entropy" if valid_set is not None else "cross_entropy",
        train_config.patience,
        higher_is_better=by_bleu,
        reduce_lr_factor=train_config.reduce_lr_factor,
        reduce_lr_patience=train_config.reduce_lr_patience,
        max_seconds=train_config.max_minutes * 60 if train_config.max_minutes else None,
        log=log,
    )
    backup = keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True)
    started = _resume_epoch(run_dir)
    log(
        f"{'resuming' if resuming else 'training'} {model_config.arch} {model_config.level}-level model "
        f"({model.count_params():,} parameters) on {len(train_pairs):,} pairs, "
        f"{count_batches(train_pairs.lengths, boundaries, batch_size):,} batches per epoch"
        + (f", {strategy.num_replicas_in_sync} replicas ({train_config.distribute})" if strategy else "")
        + (f", from epoch {started + 1}" if resuming else "")
        + f" -> {run_dir}"
    )
    # Order matters: the history is written before the backup marks the epoch done.
    with _scope(strategy), _peer_failures(train_config.distribute):
        model.fit(
            train_set,
            validation_data=valid_set,
            epochs=train_config.epochs,
            verbose=0,
            shuffle=False,
            callbacks=[*monitoring, checkpoint, backup, *callbacks],
        )
    if not (run_dir / "model.keras").is_file():
        save_model(model, run_dir)
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    return TrainResult(
        run_dir=run_dir,
        resumed_from_epoch=started,
        history=checkpoint.history,
        best_epoch=checkpoint.best_epoch() if checkpoint.history else 0,
        parameters=model.count_params(),
    )


@contextlib.contextmanager
def _peer_failures(distribute: str | None) -> Iterator[None]:
    """In multi-worker training, TensorFlow's error for a lost peer becomes one ``ModelError`` line."""
    if distribute != "multi-worker":
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError) as exc:
        detail = " ".join(str(exc.message).split())[:300]
        raise ModelError(
            f"multi-worker training stopped: another worker failed or cannot be reached ({detail}); see "
            "its log, then run the same commands again on every worker to resume"
        ) from exc


def _scope(strategy: Any) -> contextlib.AbstractContextManager:
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _resume_epoch(run_dir: Path) -> int:
    """How many epochs the backup says are done (0 for a fresh run)."""
    try:
        return int(read_json(run_dir / "backup" / "training_metadata.json")["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
