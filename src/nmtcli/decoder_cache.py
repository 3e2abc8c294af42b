"""The traced decoders of a recurrent run, kept in the run folder so that ``nmt translate`` starts
without rebuilding the Keras model or tracing its decoding loop.

``RUN/decoder`` (``RunFolder.decoder_dir``) is a TensorFlow SavedModel of :class:`DecoderModule`: the
model's weights and the decoders ``Translator`` would trace, the same functions of ``decoding`` over
the same model, each ``(source [B, S] int32, max_length [] int32) -> ids [B, T] int32`` with ``B``
and ``S`` left open:

- ``greedy``: ``decoding.greedy_decode``;
- ``attention`` (models with attention): ``decoding.greedy_decode_with_attention``, which also
  returns ``weights [B, T, S]`` float32.

Beside them, :data:`RECORD` (``nmt-decoder.json``) holds the SHA-256 of every file, the digests of
the ``model.keras`` they were made from (as ``checksums.json`` records it) and of ``config.json``,
and the nmtcli and TensorFlow versions that traced them; a cache that differs in any of these is not
used. It is written at the end of ``nmt train`` or on first use, and rewritten when stale; a run
folder that cannot be written to is translated as before (Keras model, traced in the process).

Translations are the same by construction: the graphs are those ``Translator`` traces, and the text
on either side of them (tokenising, batching, detokenising) stays ``Translator``'s. The cache serves
greedy search without ``bf16_output``, and attention pictures; beam search and bfloat16 output load
the Keras model and trace as before.

A SavedModel is a program: TensorFlow runs its graphs. Before one is loaded, every operation of its
graphs must be in :data:`ALLOWED_OPS` (arithmetic, control flow, reading variables: nothing that
touches a file, prints or runs Python), its objects of the kinds we save (no assets, no custom
savers), its files those of :data:`RECORD` with their checksums. The cache is saved without
TensorFlow's checkpoint operations (``experimental_skip_saver``), so none are needed; TensorFlow's
loader reads the weights with its own code. The files are read once, checked, and loaded from a
private temporary copy, so what was checked is what runs.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf

from . import __version__
from . import decoding as search
from .errors import ModelError, NmtError
from .files import (
    atomic_write_json,
    check_replaceable,
    file_digests,
    read_json_file,
    read_listed_files,
    replacing_folder,
    sha256_file,
)
from .logs import logger
from .run_folder import CONFIG, DECODER_RECORD, RunFolder

RECORD = DECODER_RECORD
RECORD_FORMAT = 2  # 2: the loops rule out the end id at the first step
# The architectures whose decoders are cached; transformer runs have their CTranslate2 copy (``ct2``).
CACHED_ARCHITECTURES = ("lstm", "gru-attention")
FUNCTIONS = ("greedy", "attention")
# The files of a SavedModel that we keep (no assets: ours has none).
SAVED_FILES = re.compile(r"saved_model\.pb|fingerprint\.pb|variables/variables\.(index|data-\d{5}-of-\d{5})")
# What a decoder cache we wrote may hold (for replacing one: nothing else is deleted).
KNOWN_FILES = (RECORD, "saved_model.pb", "fingerprint.pb", "variables/*")
MAX_FILE_BYTES = 4 * 2**30
MAX_GRAPH_BYTES = 256 * 2**20
# Every operation our recurrent decoders are traced into (TensorFlow 2.16-2.21), and nothing that
# reads or writes files, prints, or calls Python. A graph with any other operation is not loaded.
ALLOWED_OPS = frozenset(
    {
        "Abs", "Add", "AddN", "AddV2", "All", "Any", "ArgMax", "ArgMin", "AssignVariableOp",
        "BatchMatMulV2", "BatchMatMulV3", "BiasAdd", "BroadcastArgs", "BroadcastTo", "Cast",
        "ConcatV2", "Const", "Cumsum", "DisableCopyOnRead", "Equal", "Exp", "ExpandDims", "Fill",
        "Floor", "FloorDiv", "FloorMod", "GatherNd", "GatherV2", "Greater", "GreaterEqual",
        "Identity", "IdentityN", "If", "Less", "LessEqual", "Log", "LogSoftmax", "LogicalAnd",
        "LogicalNot", "LogicalOr", "MatMul", "Max", "Maximum", "Mean", "Min", "Minimum", "Mul",
        "Neg", "NoOp", "NotEqual", "OnesLike", "Pack", "Pad", "PadV2", "PartitionedCall",
        "Placeholder", "Prod", "Range", "ReadVariableOp", "RealDiv", "Relu", "Reshape",
        "ReverseV2", "Rsqrt", "Select", "SelectV2", "Shape", "Sigmoid", "Size", "Slice", "Softmax",
        "Split", "SplitV", "Sqrt", "Square", "Squeeze", "StatefulPartitionedCall", "StatelessIf",
        "StatelessWhile", "StopGradient", "StridedSlice", "Sub", "Sum", "Tanh",
        "TensorListFromTensor", "TensorListGetItem", "TensorListLength", "TensorListReserve",
        "TensorListSetItem", "TensorListStack", "TensorScatterUpdate", "Tile", "TopKV2",
        "Transpose", "Unpack", "VarHandleOp", "Where", "While", "ZerosLike",
    }
)  # fmt: skip
# The kinds of object a DecoderModule saves as (SavedObjectGraph); anything else is not loaded.
ALLOWED_OBJECTS = frozenset({"user_object", "function", "bare_concrete_function", "variable", "constant"})


class StaleCache(ModelError):
    """A decoder cache that cannot be used: damaged, or holding something we do not load (and its
    subclass :class:`OutdatedCache`)."""


class OutdatedCache(StaleCache):
    """A decoder cache that is missing, or was traced from another ``model.keras`` (retrained,
    resumed) or by another nmtcli or TensorFlow: the expected course of things, not worth a warning."""


def serves(arch: str) -> bool:
    """Whether runs of ``arch`` keep a decoder cache."""
    return arch in CACHED_ARCHITECTURES


# --------------------------------------------------------------------------------------------------
# The module that is saved


class DecoderModule(tf.Module):
    """A model's weights and its traced decoders (see the module docstring): ``greedy(source,
    max_length)`` and, for a model with attention, ``attention(source, max_length)``."""

    def __init__(self, model: Any):
        super().__init__(name="nmt_decoder")
        # Only the variables are tracked, not the Keras objects: a small object graph loads fast.
        self.weights = [_tf_variable(v) for v in model.variables]
        signature = [
            tf.TensorSpec([None, None], tf.int32, name="source"),
            tf.TensorSpec([], tf.int32, name="max_length"),
        ]

        def greedy(source: tf.Tensor, max_length: tf.Tensor) -> tf.Tensor:
            return search.greedy_decode(model, source, max_length)

        def attention(source: tf.Tensor, max_length: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return search.greedy_decode_with_attention(model, source, max_length)

        self.greedy = tf.function(greedy, input_signature=signature)
        if getattr(model, "has_attention", False):
            self.attention = tf.function(attention, input_signature=signature)

    @property
    def functions(self) -> tuple[str, ...]:
        return tuple(name for name in FUNCTIONS if hasattr(self, name))


def _tf_variable(variable: Any) -> tf.Variable:
    """The ``tf.Variable`` behind a Keras variable (what the traced graphs capture)."""
    value = getattr(variable, "value", variable)
    if not isinstance(value, tf.Variable):
        raise ModelError(f"cannot cache the decoder: weight {variable.name} is not a TensorFlow variable")
    return value


@dataclass(frozen=True)
class CachedDecoders:
    """The decoders a translator calls: ``greedy`` and ``attention`` (None where the model has no
    attention), from the run's cache or traced in this process."""

    greedy: Any
    attention: Any | None = None
    owner: Any = None  # the loaded module: its variables live as long as it does

    @property
    def has_attention(self) -> bool:
        return self.attention is not None


def _decoders_of(module: Any, functions: tuple[str, ...]) -> CachedDecoders:
    return CachedDecoders(module.greedy, module.attention if "attention" in functions else None, module)


# --------------------------------------------------------------------------------------------------
# Checking a SavedModel before loading it


def check_graph(saved_model: bytes, where: Path) -> None:
    """``saved_model.pb``'s bytes: every operation in :data:`ALLOWED_OPS` (or a call of a function
    of its own library, itself checked), every saved object of an allowed kind; else StaleCache."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(saved_model)
    except Exception:  # protobuf's DecodeError, or a message nested too deeply
        raise StaleCache(f"{where}: not a SavedModel") from None
    if len(proto.meta_graphs) != 1:
        raise StaleCache(f"{where}: not a SavedModel of this nmtcli")
    graph = proto.meta_graphs[0]
    functions = {function.signature.name for function in graph.graph_def.library.function}
    nodes = [*graph.graph_def.node]
    for function in graph.graph_def.library.function:
        nodes += function.node_def
    for node in nodes:
        if node.op not in ALLOWED_OPS and node.op not in functions:
            raise StaleCache(f"{where}: holds the operation {node.op[:80]!r}, which nmt does not run")
    if graph.asset_file_def or graph.graph_def.library.gradient:
        raise StaleCache(f"{where}: holds assets or gradients, which nmt does not load")
    for node in graph.object_graph_def.nodes:
        kind = node.WhichOneof("kind")
        if kind not in ALLOWED_OBJECTS or node.saveable_objects or node.registered_saver:
            raise StaleCache(f"{where}: holds a {kind or 'unknown'} object, which nmt does not load")


# --------------------------------------------------------------------------------------------------
# Writing


def write(run: RunFolder, module: DecoderModule) -> Path:
    """Save ``module`` (traced from the run's current ``model.keras``) as ``RUN/decoder`` with its
    record; written beside it and renamed into place. ModelError if it cannot be written or this
    TensorFlow traced an operation outside :data:`ALLOWED_OPS` (nothing is then kept)."""
    folder = run.decoder_dir
    model_digest = run.model_digest()
    if model_digest is None:
        raise ModelError(f"{run.path}: checksums.json records no model.keras")
    # A file or a foreign folder where the cache goes is the user's: left alone (ModelError).
    check_replaceable(folder, RECORD, "a decoder cache", ModelError, known=KNOWN_FILES)
    try:
        with replacing_folder(folder, KNOWN_FILES) as tmp_dir:  # a killed write's is cleared first
            options = tf.saved_model.SaveOptions(experimental_skip_saver=True)
            tf.saved_model.save(module, str(tmp_dir), options=options)
            shutil.rmtree(tmp_dir / "assets", ignore_errors=True)  # empty: the decoders use no files
            files = sorted(
                path.relative_to(tmp_dir).as_posix() for path in tmp_dir.rglob("*") if path.is_file()
            )
            if any(not SAVED_FILES.fullmatch(name) for name in files):
                raise ModelError(f"TensorFlow saved files nmt does not know ({', '.join(files)})")
            check_graph((tmp_dir / "saved_model.pb").read_bytes(), folder)
            atomic_write_json(
                tmp_dir / RECORD,
                {
                    "format": RECORD_FORMAT,
                    "model_sha256": model_digest,
                    "config_sha256": sha256_file(run.file(CONFIG)),
                    "functions": list(module.functions),
                    "files": file_digests(tmp_dir, files),
                    "nmtcli_version": __version__,
                    "tensorflow_version": tf.__version__,
                },
            )
    except OSError as exc:
        raise ModelError(f"{folder}: cannot write the decoder cache ({exc.strerror or exc})") from None
    except NmtError as exc:
        raise ModelError(f"{folder}: not written ({exc})") from None
    return folder


def make(run: RunFolder, model: Any) -> CachedDecoders | None:
    """Trace ``model``'s decoders and keep them in the run folder where it can be written to; the
    traced decoders, for this process, either way (a folder that cannot hold them is logged). None
    for a model whose weights are not TensorFlow variables (the translator traces its own)."""
    try:
        module = DecoderModule(model)
    except ModelError as exc:
        logger.warning(str(exc))
        return None
    if os.access(run.path, os.W_OK):
        logger.info(f"writing the traced decoder of the model to {run.decoder_dir} (once)")
        try:
            write(run, module)
        except ModelError as exc:
            logger.warning(f"{' '.join(str(exc).split())}; the decoder is traced on every call")
    return _decoders_of(module, module.functions)


def ensure_cached(run_dir: str | os.PathLike) -> Path | None:
    """Make sure ``RUN/decoder`` holds the traced decoders of the run's current model (tracing once);
    its path, or None (a warning logged) when the run cannot hold one. For the end of ``nmt train``;
    ``Translator.load`` does the same on first use."""
    run = RunFolder(run_dir)
    if not serves(run.config().model.arch):
        return None
    try:
        read(run)
        return run.decoder_dir
    except StaleCache:
        pass
    try:
        run.verify()
        module = DecoderModule(run.load_model())
        return write(run, module)
    except (NmtError, OSError, ValueError, RuntimeError) as exc:  # never fails the training before it
        logger.warning(f"no decoder cache kept ({' '.join(str(exc).split())}); nmt translate traces it")
        return None


# --------------------------------------------------------------------------------------------------
# Reading


def read_files(run: RunFolder) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The record and the files of ``RUN/decoder``, each read once (bounded, regular, inside the
    folder) and checked against the record, which must name the run's ``model.keras``, this nmtcli
    and this TensorFlow; :class:`StaleCache` saying what is wrong otherwise."""
    folder = run.decoder_dir
    if folder.is_symlink():
        raise StaleCache(f"{folder}: a symlink, not the run's own decoder cache")
    if not os.path.lexists(folder / RECORD):
        raise OutdatedCache(f"{folder}: no decoder cache ({RECORD} missing)")
    try:
        record = read_json_file(
            folder / RECORD,
            {"format": int, "model_sha256": str, "functions": [str], "files": {}},
            inside=folder,
            error=StaleCache,
        )
    except (OSError, ValueError, NmtError) as exc:
        raise StaleCache(f"{folder / RECORD}: unreadable ({' '.join(str(exc).split())})") from None
    files = record["files"]
    if record["format"] != RECORD_FORMAT or "saved_model.pb" not in files:
        raise StaleCache(f"{folder / RECORD}: not a decoder record of this nmtcli")
    if record["model_sha256"] != run.model_digest():
        raise OutdatedCache(f"{folder}: traced from another model.keras")
    # The Keras path checks model.keras against config.json's sizes; a cache is bound to both.
    if record.get("config_sha256") != sha256_file(run.file(CONFIG)):
        raise OutdatedCache(f"{folder}: traced for another config.json")
    versions = (record.get("nmtcli_version"), record.get("tensorflow_version"))
    if versions != (__version__, tf.__version__):
        raise OutdatedCache(f"{folder}: traced by nmtcli {versions[0]} with TensorFlow {versions[1]}")
    if "greedy" not in record["functions"] or not set(record["functions"]) <= set(FUNCTIONS):
        raise StaleCache(f"{folder / RECORD}: names functions nmt does not know")
    contents = read_listed_files(folder, RECORD, files, SAVED_FILES.fullmatch, MAX_FILE_BYTES, StaleCache)
    if len(contents["saved_model.pb"]) > MAX_GRAPH_BYTES:
        raise StaleCache(f"{folder / 'saved_model.pb'}: too large for a decoder graph")
    return record, contents


def read(run: RunFolder) -> CachedDecoders:
    """The run's cached decoders, checked (see :func:`read_files`, :func:`check_graph`) and loaded
    from a private copy of the checked bytes; :class:`StaleCache` if they cannot be used."""
    record, contents = read_files(run)
    check_graph(contents["saved_model.pb"], run.decoder_dir / "saved_model.pb")
    with tempfile.TemporaryDirectory(prefix="nmt-decoder-") as tmp:
        for name, data in contents.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_bytes(data)
        try:
            module = tf.saved_model.load(tmp)  # restores the weights now: the copy can go
        except Exception as exc:  # TensorFlow raises many types for a graph it cannot load
            detail = " ".join(str(exc).split())[:200]
            raise StaleCache(f"{run.decoder_dir}: TensorFlow cannot load it ({detail})") from None
    functions = tuple(record["functions"])
    if any(not callable(getattr(module, name, None)) for name in functions):
        raise StaleCache(f"{run.decoder_dir}: lacks the functions its record names")
    return _decoders_of(module, functions)


__all__ = [
    "ALLOWED_OPS",
    "CachedDecoders",
    "DecoderModule",
    "OutdatedCache",
    "StaleCache",
    "ensure_cached",
    "make",
    "read",
    "serves",
    "write",
]
