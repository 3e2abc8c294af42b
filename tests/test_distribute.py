"""`nmt train --distribute`: TF_CONFIG checks, mirrored replicas that train the same model as one device,
and two multi-worker processes on localhost.

Logical CPUs and the multi-worker runtime must be set up before TensorFlow starts, so the training
tests drive the real `nmt` entry point in child processes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_MODEL, TINY_TRAINING
from nmtcli.config import TrainConfig
from nmtcli.distribution import logical_cpus, read_cluster
from nmtcli.errors import ConfigError

NMT = shutil.which("nmt", path=str(Path(sys.executable).parent)) or "nmt"
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "200"}
CHILD_ENV.pop("TF_CONFIG", None)
CHILD_ENV.pop("NMT_LOGICAL_CPUS", None)
TIMEOUT = 300  # seconds; far above the ~30 s these runs take, for a loaded machine


def train_args(data: Path, output: Path, epochs: int) -> list[str]:
    options = {**TINY_MODEL, **TINY_TRAINING, "epochs": epochs}
    args = ["train", "--data", str(data), "--output", str(output)]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def start(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [NMT, *args],
        env={**CHILD_ENV, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    """Wait for a child ``nmt``; assert it succeeded; return its stderr."""
    try:
        _, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"nmt did not finish in {TIMEOUT} s:\n{stderr[-3000:]}")
    assert process.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    return stderr


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


# --------------------------------------------------------------------------------------------------
# Settings and TF_CONFIG, in process (no TensorFlow runtime is started).


def test_distribute_setting_is_validated() -> None:
    assert TrainConfig(distribute="mirrored").distribute == "mirrored"
    with pytest.raises(ConfigError) as caught:
        TrainConfig(distribute="horovod")
    assert caught.value.for_command_line().startswith("--distribute must be one of mirrored, multi-worker")


@pytest.mark.parametrize(
    ("tf_config", "problem"),
    [
        (None, "TF_CONFIG environment variable is not set"),
        ("{cluster", "not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', 'no "cluster"'),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker"}}', '"host:port"'),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker"}}', "not ps"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}}', 'no "task"'),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "'chief' is not a job"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "out of range"),
    ],
)
def test_bad_tf_config_is_one_clear_error(tf_config, problem) -> None:
    environ = {} if tf_config is None else {"TF_CONFIG": tf_config}
    with pytest.raises(ConfigError) as caught:
        read_cluster(environ)
    message = caught.value.for_command_line()
    assert message.startswith("--distribute multi-worker: ")
    assert problem in message
    assert "README" in message


def test_the_chief_is_the_chief_task_else_worker_zero() -> None:
    workers = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": %d}}'
    assert read_cluster({"TF_CONFIG": workers % 0}).is_chief
    assert not read_cluster({"TF_CONFIG": workers % 1}).is_chief
    both = '{"cluster": {"chief": ["c:3"], "worker": ["a:1"]}, "task": {"type": "%s", "index": 0}}'
    assert read_cluster({"TF_CONFIG": both % "chief"}).is_chief
    task = read_cluster({"TF_CONFIG": both % "worker"})
    assert not task.is_chief
    assert task.workers == 2


def test_logical_cpus_must_be_a_small_whole_number() -> None:
    assert logical_cpus({}) is None
    assert logical_cpus({"NMT_LOGICAL_CPUS": "2"}) == 2
    for bad in ("0", "two", "-1", "1000"):
        with pytest.raises(ConfigError, match="NMT_LOGICAL_CPUS must be a whole number"):
            logical_cpus({"NMT_LOGICAL_CPUS": bad})


def test_cli_multi_worker_without_tf_config_fails_in_one_line(tiny_data, tmp_path) -> None:
    result = subprocess.run(
        [NMT, "train", "--data", str(tiny_data), "-o", str(tmp_path / "run"), "--distribute", "multi-worker"],
        env=CHILD_ENV,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "nmt: error: --distribute multi-worker: the TF_CONFIG environment variable"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_multi_worker_needs_output(tiny_data, tmp_path, monkeypatch) -> None:
    from nmtcli.config import ModelConfig
    from nmtcli.training import train
    from nmtcli.workspace import Workspace

    monkeypatch.setenv("TF_CONFIG", tf_config([1, 2], 0))
    with pytest.raises(ConfigError) as caught:
        train(
            ModelConfig(),
            TrainConfig(distribute="multi-worker"),
            data_dir=tiny_data,
            workspace=Workspace(tmp_path),
        )
    assert caught.value.for_command_line().startswith("--output must name the run folder")
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------------------------------
# Training in child processes.


def test_mirrored_on_two_logical_cpus_trains_the_same_model_as_one_device(tiny_data, tmp_path) -> None:
    """Same seed, data order and global batch: the two runs differ only in how sums are split.

    Each global batch (16 pairs) is split 8 + 8 (remainder batches are padded with masked rows) and
    the loss is the batch's mean over real tokens either way, so the gradients are equal up to float32
    summation order (~1e-7 relative a step). After 3 epochs (24 Adam steps) we allow 1e-4 relative on
    the models' token cross-entropy and 1e-3 on any weight; observed: equal to 1e-9 and 6e-6.
    """
    mirrored = start(
        [*train_args(tiny_data, tmp_path / "mirrored", 3), "--distribute", "mirrored"], NMT_LOGICAL_CPUS="2"
    )
    single = start(train_args(tiny_data, tmp_path / "single", 3))
    log = finish(mirrored)
    finish(single)
    assert "2 replicas (mirrored)" in " ".join(log.split())

    from nmtcli.corpus import PreparedData
    from nmtcli.evaluation import token_cross_entropy
    from nmtcli.translator import Translator

    pairs = PreparedData.load(tiny_data).pairs("train")
    models = {name: Translator.load(tmp_path / name) for name in ("mirrored", "single")}
    losses = {name: token_cross_entropy(model, pairs) for name, model in models.items()}
    assert losses["mirrored"] == pytest.approx(losses["single"], rel=1e-4)
    for a, b in zip(
        models["mirrored"].model.get_weights(), models["single"].model.get_weights(), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-3)
    # It did learn: 3 epochs take the loss well below its start (ln 17 = 2.8 for a uniform guess).
    assert losses["single"] < 2.5  # label smoothing (a default) keeps it from going much lower
    # The reported epoch losses weigh each batch by its rows, padding rows included: close, not equal.
    histories = [json.loads((tmp_path / n / "history.json").read_text()) for n in ("mirrored", "single")]
    assert [row["objective"] for row in histories[0]] == pytest.approx(
        [row["objective"] for row in histories[1]], rel=0.02
    )


def test_two_workers_on_localhost_train_one_epoch(tiny_data, tmp_path) -> None:
    run_dir = tmp_path / "run"
    ports = free_ports(2)
    args = [*train_args(tiny_data, run_dir, 1), "--distribute", "multi-worker"]
    workers = [start(args, TF_CONFIG=tf_config(ports, index)) for index in (0, 1)]
    logs = [finish(worker) for worker in workers]

    for log in logs:
        assert "2 replicas (multi-worker)" in " ".join(log.split())
        assert "epoch 1/1" in log
    # Only the chief (worker 0) wrote the run folder; worker 1's private folder is gone.
    private = " ".join(logs[1].split()).split("-> ")[-1].split()[0]
    assert private != str(run_dir) and not Path(private).exists()
    assert json.loads((run_dir / "state.json").read_text())["status"] == "complete"
    assert len(json.loads((run_dir / "history.json").read_text())) == 1

    from nmtcli.translator import Translator

    translations = Translator.load(run_dir).translate(["red cat.", "big dog sleeps."])
    assert len(translations) == 2 and all(isinstance(t, str) for t in translations)
