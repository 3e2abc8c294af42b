"""The self-describing run folder: everything needed to translate, with nothing else at hand.

:class:`RunFolder` is the one owner of every file name and format in a run; other modules ask it::

    RUN/
      config.json          format version, nmtcli version, model and training settings
      model.keras          best weights (no optimizer state), loads in Keras safe mode
      vocab/source.txt     source vocabulary (one token per line)
      vocab/target.txt     target vocabulary
      vocab/source.model   subword level only: the SentencePiece models (see ``subwords``)
      vocab/target.model
      data-manifest.json   the manifest of the prepared data it was trained on
      history.csv/.json    per epoch: cross-entropy, perplexity, objective, BLEU, learning rate, time
      checksums.json       SHA-256 of the files above that a translator reads; checked at load
      state.json           running | complete
      .lock                held (flock) by the process training in the folder
      evaluation.json      the latest `nmt evaluate` scores per split, with signatures
      curves.png           `nmt plot`'s training curves
      backup/              resumable training state (removed when training completes)
      mlflow.json          with `nmt train --mlflow`: the MLflow store and run id (see ``tracking``)
      tensorboard/         with `nmt train --tensorboard`: TensorBoard event files
      ctranslate2/         transformer runs: the model for CTranslate2 (see ``ct2``), written at the end
                           of `nmt train` or on first use; its nmt-ctranslate2.json holds the checksums
                           of its files and of the model.keras it was made from
      decoder/             recurrent runs: the traced decoders as a SavedModel (see ``decoder_cache``),
                           written at the end of `nmt train` or on first use; its nmt-decoder.json
                           holds the checksums of its files and the model.keras it was traced from
      export/              `nmt export`'s SavedModel; export-ctranslate2/ its CTranslate2 model

Loading never runs code from the folder: Keras safe mode, no pickle, and only the files named here,
which must lie inside the folder and match their checksums. Importing this module does not import
TensorFlow; saving and loading the model do.
"""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, runs are not protected
    fcntl = None  # type: ignore[assignment]

from . import __version__
from .config import ModelConfig, TrainConfig
from .errors import ConfigError, ModelError
from .files import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    open_lock_file,
    read_file_bytes,
    read_json,
    read_json_file,
    resolve_path,
    sha256_file,
)
from .history import FIELDS, OLD_NAMES, History, rename_old_columns
from .model_files import (
    CHECKSUMS_SCHEMA,
    DATA_MANIFEST_SCHEMA,
    EVALUATION_SCHEMA,
    RUN_CONFIG_SCHEMA,
    STATE_SCHEMA,
    check_keras_archive,
)

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from .vectorizers import Vectorizer

MODEL_FORMAT_VERSION = 1
CONFIG = "config.json"
MODEL = "model.keras"
VOCABULARIES = {"source": "vocab/source.txt", "target": "vocab/target.txt"}
SUBWORD_MODELS = {"source": "vocab/source.model", "target": "vocab/target.model"}
MANIFEST = "data-manifest.json"
CHECKSUMS = "checksums.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
STATE = "state.json"
LOCK = ".lock"
EVALUATION = "evaluation.json"
MLFLOW_RECORD = "mlflow.json"
BACKUP = "backup"
CURVES = "curves.png"
EXPORT = "export"  # where `nmt export` writes unless told, beside model.keras
TENSORBOARD = "tensorboard"
CTRANSLATE2 = "ctranslate2"  # the cached CTranslate2 copy of a transformer run (``ct2``)
CTRANSLATE2_EXPORT = "export-ctranslate2"  # where `nmt export --format ctranslate2` writes unless told
CT2_RECORD = "nmt-ctranslate2.json"  # inside a CTranslate2 folder: checksums and where it came from
DECODER = "decoder"  # the traced decoders of a recurrent run (``decoder_cache``)
DECODER_RECORD = "nmt-decoder.json"  # inside it: checksums, and the model.keras it was traced from
# CTranslate2's own files in such a folder (vocabularies: one shared file, or one per side), and the
# SentencePiece models of a subword run copied beside them.
CT2_FILES = (
    "model.bin",
    "config.json",
    "shared_vocabulary.json",
    "source_vocabulary.json",
    "target_vocabulary.json",
)
CT2_SUBWORD_MODELS = {"source": "source.model", "target": "target.model"}
# What a translator reads; all but the model are written once, before training starts.
CHECKED_FILES = (CONFIG, VOCABULARIES["source"], VOCABULARIES["target"], MANIFEST, MODEL)
# Read, and so checked, where present: the subword level's SentencePiece models.
OPTIONAL_CHECKED_FILES = tuple(SUBWORD_MODELS.values())
# Columns `nmt train` writes (and wrote, by their old names); a value in them that is not a number
# means the history is damaged. Other columns are kept when they hold numbers, skipped when text.
NUMERIC_COLUMNS = (*FIELDS, *OLD_NAMES)
MAX_JSON_BYTES = 16 * 2**20
# The shape each JSON file must have when read (see files.read_json_file; model_files defines them).
JSON_SCHEMAS = {
    CONFIG: RUN_CONFIG_SCHEMA,
    CHECKSUMS: CHECKSUMS_SCHEMA,
    MANIFEST: DATA_MANIFEST_SCHEMA,
    STATE: STATE_SCHEMA,
    EVALUATION: EVALUATION_SCHEMA,
}


@dataclass(frozen=True)
class RunConfig:
    """``config.json``: the typed settings and what the run was made with."""

    model: ModelConfig
    training: TrainConfig
    data: str
    nmtcli_version: str | None = None
    keras_version: str | None = None
    format_version: int = MODEL_FORMAT_VERSION


class RunLock:
    """An exclusive advisory lock on a run folder (``RUN/.lock``), held while a process trains in it.

    The operating system drops it when the process ends, even by SIGKILL, so an interrupted run can
    always be resumed, and never by two processes at once.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self._handle = None

    def acquire(self) -> bool:
        """Take the lock if it is free; False if another process holds it."""
        # Never through a symlink, never waiting on a FIFO: a copied folder's .lock may be either.
        handle = open_lock_file(self.path, ModelError)
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the lock
            self._handle = None


class RunFolder:
    """One run folder (``path``), read and written only through these methods."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def backup_dir(self) -> Path:
        """Keras' ``BackupAndRestore`` state: weights and optimizer of the last finished epoch."""
        return self.path / BACKUP

    @property
    def curves_path(self) -> Path:
        """Where ``nmt plot`` draws one run's curves by default."""
        return self.path / CURVES

    @property
    def export_dir(self) -> Path:
        """Where ``nmt export`` writes the run's SavedModel by default."""
        return self.path / EXPORT

    @property
    def ctranslate2_dir(self) -> Path:
        """The cached CTranslate2 copy of a transformer run's model (``ct2``)."""
        return self.path / CTRANSLATE2

    @property
    def decoder_dir(self) -> Path:
        """The cached traced decoders of a recurrent run's model (``decoder_cache``)."""
        return self.path / DECODER

    @property
    def ctranslate2_export_dir(self) -> Path:
        """Where ``nmt export --format ctranslate2`` writes by default."""
        return self.path / CTRANSLATE2_EXPORT

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD

    def is_model_folder(self) -> bool:
        """Whether the folder holds a trained model's files (``config.json`` and ``checksums.json``)."""
        return (self.path / CONFIG).is_file() and (self.path / CHECKSUMS).is_file()

    def is_run(self) -> bool:
        """Whether the folder has a ``config.json`` (a run, finished or not)."""
        return (self.path / CONFIG).is_file()

    # ---------------------------------------------------------------------------------------------
    # JSON files

    def _read_small_json(self, name: str) -> Any:
        """A JSON file of the folder, refused if it lies outside it, is not a regular file, is huge,
        nested too deeply or not of its expected shape (``JSON_SCHEMAS``)."""
        path = self.path / name
        if not resolve_path(path, ModelError).is_relative_to(self.path.resolve()):
            raise ModelError(f"{path}: points outside the model folder; refusing to read it")
        return read_json_file(path, JSON_SCHEMAS.get(name, Any), max_bytes=MAX_JSON_BYTES, error=ModelError)

    def _read_json_or_error(self, name: str) -> Any:
        try:
            return self._read_small_json(name)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{self.path / name}: unreadable ({exc})") from None

    # ---------------------------------------------------------------------------------------------
    # config.json

    def write_config(self, model_config: ModelConfig, train_config: TrainConfig, data_dir: Path) -> None:
        import keras

        atomic_write_json(
            self.path / CONFIG,
            {
                "format_version": MODEL_FORMAT_VERSION,
                "nmtcli_version": __version__,
                "keras_version": keras.__version__,
                **self.settings_of(model_config, train_config, data_dir),
            },
        )

    @staticmethod
    def settings_of(model_config: ModelConfig, train_config: TrainConfig, data_dir: Path) -> dict[str, Any]:
        """The settings part of ``config.json`` as written: what makes two runs the same run."""
        return {
            "model": model_config.to_dict(),
            "training": train_config.to_dict(),
            "data": str(Path(data_dir).resolve()),
        }

    def raw_config(self) -> dict[str, Any]:
        """``config.json`` as stored, checked only to be a readable JSON object of this format."""
        path = self.path / CONFIG
        if not path.is_file():
            raise ModelError(f"{self.path}: not an nmtcli model folder (no config.json)")
        raw = self._read_json_or_error(CONFIG)
        version = raw.get("format_version") if isinstance(raw, dict) else None
        if version != MODEL_FORMAT_VERSION:
            raise ModelError(
                f"{self.path}: model folder format {version!r} is not supported by nmtcli {__version__} "
                f"(reads format {MODEL_FORMAT_VERSION}); retrain it with this version"
            )
        return raw

    def config(self) -> RunConfig:
        """``config.json`` checked for version; ``model`` and ``training`` become typed configs."""
        raw = self.raw_config()
        try:
            return RunConfig(
                model=ModelConfig.from_dict(raw["model"]),
                training=TrainConfig.from_dict(raw["training"]),
                data=str(raw.get("data", "")),
                nmtcli_version=raw.get("nmtcli_version"),
                keras_version=raw.get("keras_version"),
            )
        except (KeyError, TypeError, ConfigError) as exc:
            raise ModelError(f"{self.path / CONFIG}: invalid model configuration ({exc})") from None

    def model_settings(self) -> dict[str, Any] | None:
        """The ``model`` part of ``config.json`` to check ``model.keras`` against; None if unreadable
        (the checks that need it are then skipped; reading the config reports the problem)."""
        try:
            model = self.raw_config().get("model")
        except (OSError, ModelError):
            return None
        return model if isinstance(model, dict) else None

    def has_settings(self, settings: dict[str, Any]) -> bool:
        """Whether ``config.json`` holds exactly ``settings`` (see :meth:`settings_of`); False if not
        readable."""
        try:
            saved = read_json(self.path / CONFIG)
        except (OSError, ValueError):
            return False
        return isinstance(saved, dict) and {k: saved.get(k) for k in settings} == settings

    def early_stopping_metric(self) -> str:
        """What the run's training picked its best epoch by (``loss`` or ``bleu``); ``loss`` if the
        config does not say or cannot be read."""
        try:
            training = read_json(self.path / CONFIG).get("training", {})
            bleu = training.get("early_stopping_metric") == "bleu" and training.get("bleu_sample")
        except (OSError, ValueError, AttributeError):
            return "loss"
        return "bleu" if bleu else "loss"

    # ---------------------------------------------------------------------------------------------
    # Vocabularies and the data manifest

    def copy_data_files(self, data_dir: Path, level: str) -> None:
        """The prepared data's vocabularies of ``level`` and its manifest, copied into the run; at
        subword level the SentencePiece models too."""
        (self.path / "vocab").mkdir(exist_ok=True)
        for side, name in VOCABULARIES.items():
            vocabulary = Path(data_dir) / "vocab" / f"{side}.{level}.txt"
            shutil.copyfile(vocabulary, self.path / name)
            if level == "subword":
                from .subwords import model_path

                shutil.copyfile(model_path(vocabulary), self.path / SUBWORD_MODELS[side])
        shutil.copyfile(Path(data_dir) / "manifest.json", self.path / MANIFEST)

    def load_vectorizers(self, level: str) -> tuple[Vectorizer, Vectorizer]:
        from .subwords import SubwordVectorizer
        from .vectorizers import Vectorizer

        def load(side: str) -> Vectorizer:
            vocabulary = self.path / VOCABULARIES[side]
            if level == "subword":
                return SubwordVectorizer.load(vocabulary, self.path / SUBWORD_MODELS[side])  # type: ignore[return-value]
            return Vectorizer.load(level, vocabulary)

        try:
            return load("source"), load("target")
        except Exception as exc:
            raise ModelError(f"{self.path}: {exc}") from None

    def manifest(self) -> dict[str, Any] | None:
        """``data-manifest.json``, or None if the run has none."""
        if not (self.path / MANIFEST).is_file():
            return None
        manifest = self._read_json_or_error(MANIFEST)
        if not isinstance(manifest, dict):
            raise ModelError(f"{self.path / MANIFEST}: not a data manifest")
        return manifest

    @property
    def lowercase(self) -> bool:
        """Whether the training data was lower-cased (``nmt prepare --lowercase``), so input must be."""
        settings = (self.manifest() or {}).get("settings")
        return bool(settings.get("lowercase", False)) if isinstance(settings, dict) else False

    # ---------------------------------------------------------------------------------------------
    # model.keras and checksums.json

    def write_checksums(self, model_digests: list[str]) -> None:
        """Record the digests of the folder's files; ``model.keras`` may be given several accepted ones."""
        digests: dict[str, list[str]] = {}
        present = [name for name in OPTIONAL_CHECKED_FILES if (self.path / name).exists()]
        for name in [*CHECKED_FILES[:-1], *present]:
            digests[name] = [sha256_file(self.path / name)]
        digests[MODEL] = model_digests
        atomic_write_json(self.path / CHECKSUMS, digests)

    def save_model(self, model: keras.Model) -> None:
        """Write ``model.keras`` (weights and architecture, no optimizer state) and its checksum.

        A kill at any moment leaves a folder that loads: while the new file is renamed into place,
        the checksums accept both the old and the new model.
        """
        import keras

        # A float32 copy without optimizer state, whatever dtype policy trained the model.
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")
        try:
            clone = model.__class__.from_config({**model.get_config(), "dtype": "float32"})
            clone.build()
        finally:
            keras.config.set_dtype_policy(previous)
        clone.set_weights(model.get_weights())
        path = self.path / MODEL
        with atomic_path(path, suffix=".keras") as tmp:
            clone.save(tmp)
            new = sha256_file(tmp)
            old = [sha256_file(path)] if path.is_file() else []
            self.write_checksums([new, *old])
        self.write_checksums([new])

    def has_model(self) -> bool:
        return (self.path / MODEL).is_file()

    def model_digest(self) -> str | None:
        """The SHA-256 ``checksums.json`` records for ``model.keras`` (the newest, while a new model is
        being renamed into place); None if it records none."""
        try:
            recorded = self._read_small_json(CHECKSUMS)
        except (OSError, ValueError, ModelError):
            return None
        accepted = recorded.get(MODEL) if isinstance(recorded, dict) else None
        return accepted[0] if isinstance(accepted, list) and accepted else None

    def verify(self, hash_model: bool = True) -> None:
        """Every file a translator reads lies inside the folder and matches ``checksums.json``.

        ``hash_model`` False: ``model.keras`` must be there and recorded, but is not read (the
        CTranslate2 engine does not read it; its copy names the digest it was made from)."""
        root = resolve_path(self.path, ModelError)
        if not (self.path / MODEL).exists():
            raise ModelError(f"{self.path}: no model.keras; training may not have finished an epoch yet")
        checksums = self.path / CHECKSUMS
        if checksums.exists() and not checksums.is_file():
            raise ModelError(f"{checksums}: not a regular file")
        try:
            recorded = self._read_small_json(CHECKSUMS)
        except FileNotFoundError:
            raise ModelError(f"{self.path}: no {CHECKSUMS}; not a complete nmtcli model folder") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"{checksums}: unreadable ({exc})") from None
        # An optional file is checked when it is there or recorded: deleting one is noticed too.
        optional = [
            name
            for name in OPTIONAL_CHECKED_FILES
            if os.path.lexists(self.path / name) or (isinstance(recorded, dict) and name in recorded)
        ]
        for name in [*CHECKED_FILES, *optional]:
            path = self.path / name
            if not resolve_path(path, ModelError).is_relative_to(root):
                raise ModelError(f"{path}: points outside the model folder; refusing to read it")
            if not path.is_file():
                raise ModelError(f"{path}: missing from the model folder")
            accepted = recorded.get(name) if isinstance(recorded, dict) else None
            if not hash_model and name == MODEL and isinstance(accepted, list) and accepted:
                continue
            if not isinstance(accepted, list) or sha256_file(path) not in accepted:
                raise ModelError(
                    f"{path}: does not match {CHECKSUMS}; the model folder was changed or damaged since "
                    "training"
                )

    def load_model(self) -> keras.Model:
        """``model.keras`` in Keras safe mode, without its optimizer; ModelError in one line if it fails."""
        import keras

        from . import models  # noqa: F401  (registers the custom layers for deserialization)

        path = self.path / MODEL
        if not path.is_file():
            raise ModelError(f"{self.path}: no model.keras; training may not have finished an epoch yet")
        # Before Keras extracts or builds anything: members, sizes and architecture match config.json.
        check_keras_archive(path, self.model_settings())
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many types for damaged or foreign files
            detail = " ".join(str(exc).split())  # Keras messages span lines; ours is one line
            if "safe_mode" in detail:
                raise ModelError(
                    f"{path}: the model contains code (such as a Lambda layer); nmtcli never runs it"
                ) from None
            if len(detail) > 300:
                detail = detail[:297] + "..."
            raise ModelError(f"{path}: cannot load the model ({type(exc).__name__}: {detail})") from None
        # Where a model cannot be rebuilt, Keras only warns and leaves the layers it could not build
        # without their weights; translating with random weights would be worse than stopping.
        unbuilt = [layer.name for layer in model.layers if not layer.built]
        if unbuilt:
            raise ModelError(f"{path}: cannot rebuild the model; {', '.join(unbuilt)} got no weights")
        return model

    # ---------------------------------------------------------------------------------------------
    # history.json and history.csv

    def has_history(self) -> bool:
        return (self.path / HISTORY_CSV).is_file()

    def write_history(self, history: History) -> None:
        """``history.json`` and ``history.csv``, each replaced in one rename."""
        rows = [{name: row.get(name) for name in FIELDS} for row in history.rows]
        atomic_write_json(self.path / HISTORY_JSON, rows)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path / HISTORY_CSV, buffer.getvalue())

    def history(self) -> History:
        """``history.csv`` as a :class:`History` (empty if training has not finished an epoch).

        Columns are read by name, so columns added later are kept; old names are mapped to today's
        (``loss`` -> ``objective``). Empty cells (no validation split) become None.
        """
        path = self.path / HISTORY_CSV
        metric = self.early_stopping_metric()
        if not path.is_file():
            return History([], metric)
        columns, rows = _read_history_csv(path)
        return History(rows, metric, columns)

    # ---------------------------------------------------------------------------------------------
    # state.json and the lock

    def _state(self) -> str:
        """What ``state.json`` says: ``running``, ``complete``, or ``unknown``."""
        try:
            return str(self._read_small_json(STATE).get("status", "unknown"))
        except (OSError, ValueError, ModelError):
            return "unknown"

    def mark_running(self) -> None:
        atomic_write_json(self.path / STATE, {"status": "running"})

    def mark_complete(self) -> None:
        atomic_write_json(self.path / STATE, {"status": "complete"})

    def is_complete(self) -> bool:
        return self._state() == "complete"

    def is_unfinished(self) -> bool:
        """Training started and did not complete (whether or not a process is training it now)."""
        return self._state() == "running"

    def status(self) -> str:
        """``complete``; ``training`` (a process holds the run's lock); ``interrupted`` (unfinished and
        nobody trains it: ``nmt train --resume`` carries on); ``running`` when the lock cannot be
        checked; ``unknown`` without a readable ``state.json``. Never creates a file."""
        state = self._state()
        if state != "running":
            return state
        if not (self.path / LOCK).is_file():  # never create files in the folder just to look at it
            return "interrupted"
        lock = RunLock(self.path)
        try:
            free = lock.acquire()
        except OSError:
            return "running"
        lock.release()
        return "interrupted" if free else "training"

    def lock(self) -> RunLock | None:
        """The run's lock, taken for this process; None if another process holds it."""
        lock = RunLock(self.path)
        return lock if lock.acquire() else None

    # ---------------------------------------------------------------------------------------------
    # evaluation.json and mlflow.json

    def evaluations(self) -> dict[str, Any]:
        """``evaluation.json``: the latest scores per split or source file ({} if none yet)."""
        if not (self.path / EVALUATION).is_file():
            return {}
        records = self._read_json_or_error(EVALUATION)
        if not isinstance(records, dict):
            raise ModelError(f"{self.path / EVALUATION}: not an nmtcli evaluation record")
        return records

    def record_evaluation(self, key: str, record: dict[str, Any]) -> Path:
        """Keep ``record`` as the latest on ``key`` in ``evaluation.json``, beside the other keys.

        An existing file that cannot be read is left alone (ModelError), never overwritten."""
        path = self.path / EVALUATION
        records: Any = {}
        if path.exists():
            try:
                records = self._read_small_json(EVALUATION)
            except (OSError, ModelError) as exc:
                detail = str(exc).removeprefix(f"{path}: ")
                raise ModelError(f"{path}: unreadable ({detail}); left as it is") from None
            if not isinstance(records, dict):
                raise ModelError(f"{path}: not an nmtcli evaluation record; left as it is")
        records[key] = record
        atomic_write_json(path, records)
        return path

    def mlflow_record(self) -> dict[str, str] | None:
        """``mlflow.json`` (tracking URI, experiment and run ids), or None if there is none."""
        path = self.path / MLFLOW_RECORD
        try:
            record = read_json(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable ({exc})") from None
        if not isinstance(record, dict) or not all(
            isinstance(record.get(key), str) for key in ("tracking_uri", "run_id")
        ):
            raise ModelError(f"{path}: not an nmtcli MLflow record")
        return record

    def write_mlflow_record(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.path / MLFLOW_RECORD, record)


# Entries of a run folder that are not results: resumable state, the lock, our own bookkeeping.
NOT_ARTIFACTS = frozenset({BACKUP, LOCK, STATE, MLFLOW_RECORD})


def _number(text: str | None, path: Path, line: int, column: str) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ModelError(
            f"{path}: line {line}: {column} is not a number ({text[:40]!r}); the history is damaged"
        ) from None
    return value if math.isfinite(value) else None


def _read_history_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    # Bounded and regular only: a history.csv linked to /dev/zero or a FIFO is one line of error.
    raw = read_file_bytes(path, MAX_JSON_BYTES, error=ModelError)
    try:
        with io.StringIO(raw.decode("utf-8"), newline="") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            if "epoch" not in columns:
                raise ModelError(f"{path}: no 'epoch' column in the header; not an nmtcli history")
            reader.fieldnames = columns
            rows, text_columns = [], set()
            for row in reader:
                if None in row:  # more cells than header names
                    raise ModelError(f"{path}: line {reader.line_num}: more values than columns")
                values: dict[str, Any] = {}
                for column in columns:
                    try:
                        values[column] = _number(row.get(column), path, reader.line_num, column)
                    except ModelError:
                        if column in NUMERIC_COLUMNS:
                            raise
                        text_columns.add(column)
                epoch = values["epoch"]
                if epoch is None or not epoch.is_integer() or epoch < 1:
                    raise ModelError(f"{path}: line {reader.line_num}: no epoch number")
                values["epoch"] = int(epoch)
                rows.append(values)
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not UTF-8 text; the history is damaged") from None
    except csv.Error as exc:
        raise ModelError(f"{path}: unreadable CSV ({exc})") from None
    columns = [c for c in columns if c not in text_columns]
    rows = [{rename_old_columns(c): row.get(c) for c in columns} for row in rows]
    return [rename_old_columns(c) for c in columns], rows


# --------------------------------------------------------------------------------------------------
# One line about a run, for `nmt runs` and the notices that name runs


@dataclass(frozen=True)
class RunSummary:
    """What ``nmt runs`` shows of one run folder. A folder whose files cannot be read has status
    ``damaged`` and the reason in ``problem``; the fields it could not read are None."""

    name: str
    path: str
    status: str
    arch: str | None = None
    level: str | None = None
    epochs_done: int | None = None
    epochs_planned: int | None = None
    best_epoch: int | None = None
    monitor: str | None = None  # the history column the best epoch was chosen by (History.monitor)
    best_score: float | None = None  # the best epoch's value in ``monitor``
    perplexity: float | None = None  # the best epoch's perplexity (History.perplexity)
    size_bytes: int = 0
    data: str | None = None  # the prepared data folder it was trained from
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def progress(self) -> str:
        """``interrupted at epoch 3 of 10``-style words for notices."""
        if self.epochs_done:
            return f"{self.status} at epoch {self.epochs_done} of {self.epochs_planned}"
        return f"{self.status} before its first epoch finished"


def folder_size(path: Path) -> int:
    """Bytes of the regular files under ``path``; links are not followed, unreadable entries skipped."""
    total = 0
    for root, _dirs, names in os.walk(path, onerror=lambda exc: None):
        for name in names:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(root, name)):
                total += info.st_size
    return total


def summarize(path: str | os.PathLike) -> RunSummary:
    """A :class:`RunSummary` of the run folder ``path``; never raises for a damaged folder."""
    run = RunFolder(path)
    base = {"name": run.path.name, "path": str(run.path), "size_bytes": folder_size(run.path)}
    try:
        config = run.config()
        history = run.history()
    except (OSError, ValueError, ModelError) as exc:
        detail = " ".join(str(exc).split())
        return RunSummary(status="damaged", problem=detail, **base)
    best = history.best_epoch()
    row = history.row(best) if best is not None else None
    return RunSummary(
        status=run.status(),
        arch=config.model.arch,
        level=config.model.level,
        epochs_done=history.epochs[-1] if history.rows else 0,
        epochs_planned=config.training.epochs,
        best_epoch=best,
        monitor=history.monitor if row is not None else None,
        best_score=row.get(history.monitor) if row is not None else None,
        perplexity=history.perplexity(best),
        data=config.data,
        **base,
    )
