"""Experiment tracking: a training run logged to MLflow, and TensorBoard event files.

``nmt train --mlflow`` makes one MLflow run per run folder: the settings of ``config.json`` as
parameters, per-epoch metrics (step = epoch, counting from 1), the best epoch's scores when training
ends, and the run folder as artifacts. The MLflow run's id is kept in ``RUN/mlflow.json``, so a
resumed training continues the same MLflow run and ``nmt evaluate --mlflow`` adds its scores to it.

The store is ``--mlflow-uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite file in the workspace
(``WORKSPACE/mlflow.db``, artifacts in ``WORKSPACE/mlartifacts``): no server needed.
MLflow is an optional dependency, ``pip install 'nmtcli[mlflow]'``, imported only when asked for.
``nmt train --tensorboard`` has Keras write TensorBoard logs to ``RUN/tensorboard``; TensorFlow needs
the ``tensorboard`` package for that (``pip install 'nmtcli[tensorboard]'``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import keras

from .errors import ConfigError, ModelError, NmtError, TrackingError
from .history import History, epoch_row
from .run_folder import MLFLOW_RECORD, NOT_ARTIFACTS, RunFolder
from .workspace import Workspace

INSTALL_HINT = "pip install 'nmtcli[mlflow]'"
RECORD = MLFLOW_RECORD
DEFAULT_EXPERIMENT = "nmtcli"
# What the best epoch's row is logged as when training ends: ``best_<column>``.
BEST_COLUMNS = ("cross_entropy", "perplexity", "val_cross_entropy", "val_perplexity", "val_bleu")


def import_mlflow() -> ModuleType:
    """The ``mlflow`` module, with its INFO chatter off; a ConfigError saying how to install it."""
    # A training should not wait minutes for a tracking server that is down (MLflow's own default
    # retries for over three minutes); the user's settings win.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    try:
        import mlflow
    except ImportError as exc:
        what = "is not installed" if exc.name in (None, "mlflow") else f"cannot be imported ({exc})"
        raise ConfigError(f"--mlflow needs MLflow, which {what}; install it with: {INSTALL_HINT}") from None
    if "MLFLOW_LOGGING_LEVEL" not in os.environ:
        # "Creating initial MLflow database tables..." and the like are not for our users.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    return mlflow


def require_tensorboard() -> None:
    """A ConfigError saying how to install TensorBoard, which TensorFlow needs to write summaries."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--tensorboard needs TensorBoard, which is not installed; "
            "install it with: pip install 'nmtcli[tensorboard]'"
        ) from None


def tracking_uri(uri: str | None, workspace: Workspace) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else the workspace's SQLite store.

    A SQLite path is made absolute, so that ``RUN/mlflow.json`` names the same store from anywhere.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workspace.root / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        path = Path(uri[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)  # SQLite makes the file, not its folder
        uri = f"sqlite:///{path.resolve()}"
    return uri


def _artifact_root(uri: str) -> Path | None:
    """Where a SQLite store keeps artifacts: beside the database (MLflow would use ./mlruns of the
    current directory); None for other stores, which choose for themselves."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :]).resolve().parent / "mlartifacts"


def _one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_record(run_dir: Path) -> dict[str, str] | None:
    """``RUN/mlflow.json`` (tracking URI, experiment and run ids), or None if there is none."""
    return RunFolder(run_dir).mlflow_record()


def _flat_params(run_dir: Path) -> dict[str, str]:
    """The settings of ``config.json``, one level deep: ``arch``, ``units``, ``epochs``, ``data``..."""
    config = RunFolder(run_dir).raw_config()
    params: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            params.update(value)
        else:
            params[key] = value
    return {key: str(value) for key, value in params.items()}


def epoch_metrics(
    epoch: int, logs: dict[str, Any], learning_rate: float | None, seconds: float
) -> dict[str, float]:
    """One epoch's numbers under their history names (see ``history.epoch_row``): cross-entropy,
    perplexity, objective, ``val_bleu``, the learning rate and the epoch's wall time in seconds."""
    row = epoch_row(epoch, logs, learning_rate)
    row["seconds"] = round(seconds, 3)
    return _numbers(row)


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {
        key: value
        for key, value in row.items()
        if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


class MlflowTracker:
    """The MLflow run of one run folder, in one store.

    ``connect()`` finds or creates the experiment, so that a wrong URI is reported before training
    starts. ``start(run_dir)`` creates the MLflow run, or continues the one named in
    ``RUN/mlflow.json`` when the training is resumed into the same store.
    """

    def __init__(self, uri: str, experiment: str | None = None):
        self.mlflow = import_mlflow()
        self.uri = uri
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        self.run_id: str | None = None
        with self._store(), warnings.catch_warnings():
            # MLflow's SQL store uses an SQLAlchemy loader that SQLAlchemy 2.1 deprecates: not ours to fix.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.client = self.mlflow.MlflowClient(tracking_uri=uri)
        self.experiment_id: str | None = None

    @classmethod
    def for_run(cls, run_dir: Path, uri: str | None = None) -> MlflowTracker:
        """The MLflow run that ``nmt train --mlflow`` made for ``run_dir``; ``uri`` overrides the
        store recorded in ``RUN/mlflow.json`` (a server that moved)."""
        record = read_record(run_dir)
        if record is None:
            raise ModelError(
                f"{run_dir}: no MLflow run to add scores to ({RECORD} is missing); "
                "train with `nmt train --mlflow`"
            )
        tracker = cls(uri or record["tracking_uri"], record.get("experiment"))
        with tracker._store():
            run = tracker._find_run(record["run_id"])
        if run is None:
            raise TrackingError(
                f"{run_dir}: MLflow run {record['run_id']} is not in the store {tracker.uri}; "
                "pass the store that holds it with --mlflow-uri"
            )
        tracker.run_id = record["run_id"]
        tracker.experiment_id = run.info.experiment_id
        return tracker

    @contextlib.contextmanager
    def _store(self) -> Iterator[None]:
        """MLflow's errors (and a store that cannot be reached) as one-line TrackingErrors."""
        try:
            yield
        except NmtError:
            raise
        except Exception as exc:  # MlflowException, database and network errors alike
            raise TrackingError(f"MLflow store {self.uri}: {_one_line(exc)}") from None

    def connect(self) -> None:
        """Find or create the experiment (raises TrackingError if the store is unusable)."""
        with self._store():
            self.experiment_id = self._experiment_id()

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            root = _artifact_root(self.uri)
            location = None
            if root is not None:
                folder = re.sub(r"[^\w.-]+", "-", self.experiment).strip(".-") or "experiment"
                location = (root / folder).as_uri()
            try:
                return self.client.create_experiment(self.experiment, artifact_location=location)
            except self.mlflow.exceptions.MlflowException:
                found = self.client.get_experiment_by_name(self.experiment)  # created meanwhile
                if found is None:
                    raise
        if found.lifecycle_stage != "active":
            raise TrackingError(
                f"MLflow experiment {self.experiment!r} is deleted in {self.uri}; "
                "restore it or choose another --experiment"
            )
        return found.experiment_id

    def _find_run(self, run_id: str):
        try:
            run = self.client.get_run(run_id)
        except self.mlflow.exceptions.MlflowException:
            return None
        return run if run.info.lifecycle_stage == "active" else None

    def start(self, run_dir: Path, parameters: int | None = None) -> str:
        """Create (or continue) the MLflow run of ``run_dir``; log its settings as parameters."""
        record = read_record(run_dir)
        with self._store():
            if self.experiment_id is None:
                self.experiment_id = self._experiment_id()
            run = None
            if record is not None and record["tracking_uri"] == self.uri:
                run = self._find_run(record["run_id"])
            if run is not None:
                self.run_id = run.info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                run = self.client.create_run(
                    self.experiment_id,
                    run_name=run_dir.name,
                    tags={
                        "mlflow.source.name": "nmt train",
                        "mlflow.source.type": "LOCAL",
                        "nmtcli.run_dir": str(run_dir.resolve()),
                    },
                )
                self.run_id = run.info.run_id
                RunFolder(run_dir).write_mlflow_record(
                    {
                        "tracking_uri": self.uri,
                        "experiment": self.experiment,
                        "experiment_id": self.experiment_id,
                        "run_id": self.run_id,
                    },
                )
            params = _flat_params(run_dir)
            if parameters is not None:
                params["parameters"] = str(parameters)
            # Logged again on resume, with the same values (which MLflow accepts): a run that was
            # interrupted before its parameters were logged gets them.
            self.log_params(params)
        return self.run_id

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        with self._store():
            items = [Param(key, value[:6000]) for key, value in params.items()]
            for first in range(0, len(items), 100):  # MLflow takes at most 100 parameters a call
                self.client.log_batch(self._run(), params=items[first : first + 100])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with self._store():
            self.client.log_batch(
                self._run(), metrics=[Metric(key, value, now, step) for key, value in metrics.items()]
            )

    def log_missing_epochs(self, run_dir: Path, done: int) -> None:
        """Log the rows of ``history.json`` up to epoch ``done`` that the MLflow run lacks.

        A training interrupted after an epoch was saved but before MLflow heard of it is resumed from
        the next epoch; this fills the gap, so the MLflow history has every epoch exactly once.
        """
        history = RunFolder(run_dir).history()
        if not history.rows:
            return
        with self._store():
            # Runs logged before the cross-entropy was the loss shown logged Keras' objective as "loss".
            logged = {
                metric.step
                for name in ("cross_entropy", "loss")
                for metric in self.client.get_metric_history(self._run(), name)
            }
        for row in history.rows:
            if row["epoch"] <= done and row["epoch"] not in logged:
                self.log_metrics(_numbers(row), step=row["epoch"])

    def finish(self, run_dir: Path) -> None:
        """At the end of training: the best epoch's scores, the run folder as artifacts, FINISHED."""
        self.log_best(RunFolder(run_dir).history())
        with self._store():
            for path in sorted(run_dir.iterdir()):
                if path.name in NOT_ARTIFACTS or path.name.startswith("."):
                    continue
                if path.is_dir():
                    self.client.log_artifacts(self._run(), str(path), artifact_path=path.name)
                elif path.is_file():
                    self.client.log_artifact(self._run(), str(path))
            self.client.set_terminated(self._run(), "FINISHED")

    def log_best(self, history: History) -> None:
        """The best epoch (as training chose it, see ``History.best_epoch``) and its scores:
        ``best_epoch``, ``best_val_cross_entropy``, ``best_val_perplexity``..."""
        best = history.best()
        if best is None:
            return
        scores = {f"best_{key}": best[key] for key in BEST_COLUMNS if best.get(key) is not None}
        self.log_metrics({"best_epoch": best["epoch"], **scores}, step=best["epoch"])

    def log_evaluation(self, name: str, result: dict[str, Any]) -> None:
        """Scores of ``nmt evaluate`` as metrics ``NAME_bleu``, ``NAME_chrf``, ``NAME_perplexity``...,
        and the whole result (signatures included) as the artifact ``evaluation/NAME.json``.

        ``name`` says what was scored: a split (``test``) or a source file's stem.
        """
        name = re.sub(r"[^\w.-]+", "_", name).strip("_") or "eval"
        metrics = {f"{name}_{metric}": value for metric, value in result["scores"].items()}
        for key in ("perplexity", "cross_entropy"):
            if result.get(key) is not None:
                metrics[f"{name}_{key}"] = result[key]
        self.log_metrics(metrics)
        with self._store():
            self.client.log_dict(self._run(), result, f"evaluation/{name}.json")

    def _run(self) -> str:
        if self.run_id is None:
            raise TrackingError("no MLflow run started")  # a programming error, said plainly
        return self.run_id


class MlflowCallback(keras.callbacks.Callback):
    """Logs a training to its MLflow run: parameters at the start, metrics at every epoch's end,
    the best scores and the run folder at the end.

    A store that fails in the middle of training costs the logs, not the training: ``warn`` gets one
    line and logging stops.
    """

    def __init__(self, tracker: MlflowTracker, run_dir: Path, warn: Callable[[str], None]):
        super().__init__()
        self.tracker = tracker
        self.run_dir = run_dir
        self.warn = warn
        self.enabled = True
        self._first_epoch = True
        self._epoch_start = 0.0

    def _guard(self, action: Callable[[], Any]) -> None:
        if not self.enabled:
            return
        try:
            action()
        except TrackingError as exc:
            self.enabled = False
            self.warn(f"MLflow logging stopped, training goes on: {exc}")

    def on_train_begin(self, logs=None):
        self._guard(lambda: self.tracker.start(self.run_dir, self.model.count_params()))

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch:  # `epoch` epochs are done: more than 0 after a resume
            self._first_epoch = False
            self._guard(lambda: self.tracker.log_missing_epochs(self.run_dir, done=epoch))
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_start
        try:
            learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except (AttributeError, TypeError, ValueError):
            learning_rate = None
        metrics = epoch_metrics(epoch + 1, logs or {}, learning_rate, seconds)
        self._guard(lambda: self.tracker.log_metrics(metrics, step=epoch + 1))

    def on_train_end(self, logs=None):
        self._guard(lambda: self.tracker.finish(self.run_dir))


def tensorboard_callback(run_dir: Path) -> keras.callbacks.TensorBoard:
    """Keras' TensorBoard logs in ``RUN/tensorboard/{train,validation}``: per-epoch loss and learning
    rate (step = epoch, counting from 0); a resumed run appends to them."""
    # No graph: the traced training step is large and says little; the per-epoch scalars are the point.
    return keras.callbacks.TensorBoard(log_dir=str(RunFolder(run_dir).tensorboard_dir), write_graph=False)


def run_callbacks(
    tracker: MlflowTracker | None, tensorboard: bool, warn: Callable[[str], None]
) -> Callable[[Path], list[keras.callbacks.Callback]]:
    """For ``training.train(run_callbacks=...)``: the tracking callbacks of a run folder."""
    if tensorboard:
        require_tensorboard()

    def make(run_dir: Path) -> list[keras.callbacks.Callback]:
        callbacks: list[keras.callbacks.Callback] = []
        if tensorboard:
            callbacks.append(tensorboard_callback(run_dir))
        if tracker is not None:
            callbacks.append(MlflowCallback(tracker, run_dir, warn))
        return callbacks

    return make
