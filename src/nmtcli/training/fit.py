"""Fitting a seq2seq model into a run folder: data, optimizer, callbacks, resume.

The run folder is written as training goes (see ``run_folder``). Keras' ``BackupAndRestore`` keeps
the weights and optimizer state of the last finished epoch in ``RUN/backup``, so running the same
command again after an interruption continues from there; the callbacks (see ``callbacks``) derive
the best model, the learning rate and early stopping from the history on disk, so they carry on too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras

from ..config import ModelConfig, TrainConfig
from ..corpus import PreparedData
from ..distribution import make_strategy, read_cluster
from ..errors import ConfigError
from ..files import read_json
from ..fine_tuning import check_parent
from ..interrupts import watch
from ..logs import epoch_logger, logger, shows_epochs
from ..models import bf16, build_model
from ..pipeline import EncodedPairs, bucket_boundaries, count_batches, make_dataset
from ..run_folder import RunFolder
from ..vectorizers import Vectorizer
from ..workspace import Workspace, claim_run
from .callbacks import (
    CoolDown,
    RecordHistory,
    ReduceLearningRateOnPlateau,
    SaveBestModel,
    SentenceTranslator,
    StopAtTimeBudget,
    StopEarly,
    ValidationBleu,
    bleu_sample,
)
from .loss import TokenCrossEntropy, masked_loss
from .schedule import WarmupInverseSquareRoot
from .workers import peer_failures, worker_folder

# Makes the translator that scores validation BLEU: called as
# ``factory(model, source_vectorizer, target_vectorizer, model_config)``; ``Translator`` fits.
TranslatorFactory = Callable[[keras.Model, Vectorizer, Vectorizer, ModelConfig], SentenceTranslator]


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """The optimizer of ``config``: a plain learning rate, or with ``warmup_steps`` the warmup then
    inverse-square-root schedule peaking at ``learning_rate``."""
    rate: Any = config.learning_rate
    if config.warmup_steps:
        rate = WarmupInverseSquareRoot(config.learning_rate, config.warmup_steps)
    options: dict[str, Any] = {"learning_rate": rate}
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


@dataclass
class TrainResult:
    """What ``train`` did: the run folder, the epochs done before (0 unless resumed), every epoch's
    history row, the best epoch (the one saved as ``model.keras``) and the model's parameter count."""

    run_dir: Path
    resumed_from_epoch: int
    history: list[dict[str, Any]]
    best_epoch: int
    parameters: int

    @property
    def best(self) -> dict[str, Any]:
        return next(row for row in self.history if row["epoch"] == self.best_epoch)


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    data_dir: str | os.PathLike | None = None,
    workspace: Workspace | None = None,
    run_dir: str | os.PathLike | None = None,
    resume: bool | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    log: Callable[[str], None] | None = None,
    run_callbacks: Callable[[Path], list[keras.callbacks.Callback]] | None = None,
    translator_factory: TranslatorFactory | None = None,
) -> TrainResult:
    """Train a model on a prepared data folder and write a run folder.

    ``resume``: None resumes an interrupted run with identical settings if there is one, else starts a
    new run; True resumes the newest interrupted run (its own settings win; an error if there is
    none); False always starts a new run. A run being trained is locked, so concurrent commands in
    one workspace never share a folder. ``callbacks`` are extra Keras callbacks (progress display);
    ``log`` receives one-line notices (which run folder, resumed or not) [default: INFO records on
    the ``nmtcli`` logger, and one per epoch unless a callback shows epochs: see ``nmtcli.logs``].
    ``run_callbacks(run_dir)`` makes more callbacks once the run folder is chosen (TensorBoard logs,
    experiment tracking). ``translator_factory`` (``nmtcli.Translator`` fits) decodes the validation
    sample scored by BLEU after every epoch (``bleu_sample``); without one no BLEU is measured, and
    stopping early on BLEU is refused.
    """
    if train_config.early_stopping_metric == "bleu" and translator_factory is None:
        raise ConfigError(
            "early stopping on BLEU needs a translator to decode the validation sample: "
            "pass translator_factory=nmtcli.Translator",
            field="early_stopping_metric",
        )
    log = log or logger.info
    callbacks = [*(callbacks or []), *([] if shows_epochs(callbacks or []) else [epoch_logger()])]
    workspace = workspace or Workspace()
    data_dir = Path(data_dir) if data_dir else workspace.data_dir
    data = PreparedData.load(data_dir)
    task = read_cluster() if train_config.distribute == "multi-worker" else None
    if task is not None and run_dir is None:
        raise ConfigError(
            "run_dir must name the run folder with `distribute` multi-worker, the same on every worker",
            field="run_dir",
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
    if train_config.init_from is not None:
        # Before the run folder is claimed: a parent that does not fit is refused in one line.
        parent = check_parent(train_config.init_from, model_config, source, target)
        train_config = replace(train_config, init_from=str(parent.path.resolve()))
    settings = RunFolder.settings_of(model_config, train_config, data_dir)
    if task is None or task.is_chief:
        run, lock, resuming = claim_run(
            workspace, Path(run_dir) if run_dir else None, resume, settings, f"{model_config.arch}-{level}"
        )
        shared_dir = run.path
        if not resuming and resume is None and run_dir is None:
            why = workspace.why_not_resumed(settings)
            if why is not None:
                log(why)
    else:
        shared_dir = Path(run_dir)
        run, lock, resuming = worker_folder(shared_dir, resume, task)
    try:
        # Before TensorFlow runs anything: the CPU split and the cluster runtime are set up only then.
        strategy = make_strategy(train_config.distribute)
        if resuming:
            saved = run.config()
            # The saved settings win, but how this process runs is what the command says.
            model_config = saved.model
            train_config = replace(saved.training, distribute=train_config.distribute)
            if saved.data != str(data_dir.resolve()):
                data_dir = Path(saved.data)
                data = PreparedData.load(data_dir)
        else:
            run.write_config(model_config, train_config, data_dir)
            run.copy_data_files(data_dir, level)
        run.mark_running()
        watch(run.path)  # temporaries removed if a signal ends the process mid-save
        extra = [*(callbacks or []), *(run_callbacks(run.path) if run_callbacks else [])]
        fit = _Fit(run, data, model_config, train_config, strategy, translator_factory)
        result = fit.run(resuming, extra, log)
        run.mark_complete()
    finally:
        lock.release()
        if run.path != shared_dir:
            shutil.rmtree(run.path, ignore_errors=True)
    if run.path != shared_dir:
        return replace(result, run_dir=shared_dir)
    if run.path.parent.resolve() == workspace.runs_dir.resolve():
        workspace.set_latest(run.path)
    return result


class _Fit:
    """One ``model.fit`` into a run folder: datasets, compiled model, callbacks."""

    def __init__(
        self,
        run: RunFolder,
        data: PreparedData,
        model_config: ModelConfig,
        train_config: TrainConfig,
        strategy: Any,
        translator_factory: TranslatorFactory | None,
    ):
        self.run_folder = run
        self.data = data
        self.model_config = model_config
        self.config = train_config
        self.strategy = strategy
        self.translator_factory = translator_factory
        # Under tf.distribute, batch_size is the global batch, split evenly between the replicas.
        self.replicas = strategy.num_replicas_in_sync if strategy is not None else None
        self.source, self.target = run.load_vectorizers(model_config.level)

    def datasets(self, first_epoch: int) -> tuple[Any, Any, EncodedPairs, list[int]]:
        """``(train_set, valid_set or None, train_pairs, bucket boundaries)``; the training set's
        shuffling goes on after ``first_epoch`` epochs done."""
        train_pairs = EncodedPairs(self.data.iter_pairs("train"), self.source, self.target)
        valid_pairs = EncodedPairs(self.data.iter_pairs("valid"), self.source, self.target)
        boundaries = bucket_boundaries(train_pairs.lengths)
        options = {
            "boundaries": boundaries,
            "fixed_shapes": self.config.jit_compile,
            "replicas": self.replicas,
            "batch_tokens": self.config.batch_tokens,
        }
        train_set = make_dataset(
            train_pairs,
            self.config.batch_size,
            shuffle=True,
            seed=self.config.seed,
            first_epoch=first_epoch,
            **options,
        )
        valid_set = make_dataset(valid_pairs, self.config.batch_size, **options) if len(valid_pairs) else None
        return train_set, valid_set, train_pairs, boundaries

    def compiled_model(self) -> keras.Model:
        config = self.config
        policy = bf16.training_policy(self.model_config.arch, config.mixed_precision, config.bf16_output)
        with _scope(self.strategy), dtype_policy(policy):
            model = build_model(self.model_config)
            model.build()
            model.compile(
                optimizer=make_optimizer(config),
                loss=masked_loss(config.label_smoothing, weighted=self.replicas is not None),
                metrics=[TokenCrossEntropy()],
                jit_compile=config.jit_compile,
            )
            if self.strategy is not None:
                model.optimizer.build(model.trainable_variables)
        if self.strategy is not None:
            # Keras 3.15's fit() builds a model made under a strategy from one batch that it averages
            # across replicas with strategy.reduce, which fails under MultiWorkerMirroredStrategy for
            # (x, y) batches and uses up one pass of the shuffled data. Model and optimizer are built
            # already; fit() inside the strategy's scope (below) finds the strategy without this field.
            model._distribute_strategy = None
        return model

    def callbacks(self, validation: bool, log: Callable[[str], None]) -> tuple[RecordHistory, list]:
        """The history recorder and every callback of the run, in the order they must run."""
        config = self.config
        chain: list[keras.callbacks.Callback] = []
        if config.bleu_sample and validation and self.translator_factory is not None:
            factory = self.translator_factory
            sources, references = bleu_sample(self.data.pairs("valid"), config.bleu_sample, config.seed)
            chain.append(
                ValidationBleu(
                    lambda model: factory(model, self.source, self.target, self.model_config),
                    sources,
                    references,
                    batch_size=max(64, config.batch_size),
                )
            )
        record = RecordHistory(self.run_folder, config.early_stopping_metric)
        chain += [SaveBestModel(record), record, StopEarly(record, config.patience)]
        if config.cooldown:
            budget = config.max_minutes * 60 if config.max_minutes else None
            chain.append(CoolDown(record, budget, log, config.cooldown_epochs))
        if config.reduce_lr_factor:
            chain.append(
                ReduceLearningRateOnPlateau(record, config.reduce_lr_factor, config.reduce_lr_patience, log)
            )
        if config.max_minutes:
            chain.append(StopAtTimeBudget(record, config.max_minutes * 60, log))
        # After the history: the backup marks the epoch done only once its history is on disk.
        chain.append(
            keras.callbacks.BackupAndRestore(str(self.run_folder.backup_dir), double_checkpoint=True)
        )
        return record, chain

    def run(
        self, resuming: bool, extra: list[keras.callbacks.Callback], log: Callable[[str], None]
    ) -> TrainResult:
        keras.utils.set_random_seed(self.config.seed)
        started = _resume_epoch(self.run_folder)
        train_set, valid_set, train_pairs, boundaries = self.datasets(started)
        model = self.compiled_model()
        if self.config.init_from is not None and not started:
            # Fine-tuning: the parent's weights; after a resume the backup's are restored instead.
            weights = RunFolder(self.config.init_from).load_model().get_weights()
            with _scope(self.strategy):
                model.set_weights(weights)
        record, chain = self.callbacks(valid_set is not None, log)
        batches = count_batches(
            train_pairs.lengths, boundaries, self.config.batch_size, self.config.batch_tokens
        )
        arch, level = self.model_config.arch, self.model_config.level
        log(
            f"{'resuming' if resuming else 'training'} {arch} {level}-level "
            f"model ({model.count_params():,} parameters) on {len(train_pairs):,} pairs, "
            f"{batches:,} batches per epoch"
            + (f", {self.replicas} replicas ({self.config.distribute})" if self.strategy else "")
            + (f", from epoch {started + 1}" if resuming else "")
            + (f", fine-tuning {self.config.init_from}" if self.config.init_from else "")
            + f" -> {self.run_folder.path}"
        )
        with (
            _scope(self.strategy),
            peer_failures(self.config.distribute),
            bf16.for_training(self.config.bf16_output),
        ):
            model.fit(
                train_set,
                validation_data=valid_set,
                epochs=self.config.epochs,
                # Given, Keras makes one iterator of the training set per epoch (else two: one spare),
                # so the shuffle of epoch n is the n-th pass's, in a resumed run too (make_dataset).
                steps_per_epoch=batches,
                verbose=0,
                shuffle=False,
                callbacks=[*chain, *extra],
            )
        if not self.run_folder.has_model():
            self.run_folder.save_model(model)
        shutil.rmtree(self.run_folder.backup_dir, ignore_errors=True)
        return TrainResult(
            run_dir=self.run_folder.path,
            resumed_from_epoch=started,
            history=record.history.rows,
            best_epoch=record.history.best_epoch() or 0,
            parameters=model.count_params(),
        )


def _scope(strategy: Any) -> contextlib.AbstractContextManager:
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _resume_epoch(run: RunFolder) -> int:
    """How many epochs the backup says are done (0 for a fresh run)."""
    try:
        return int(read_json(run.backup_dir / "training_metadata.json")["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
