"""The library reports through the `logging` module; the command line renders the same records."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from rich.console import Console

from conftest import TINY_MODEL, TINY_TRAINING


def test_a_python_user_sees_the_run_and_every_epoch_through_logging(tiny_data, tmp_path, caplog) -> None:
    import nmtcli
    from nmtcli.config import TrainConfig

    caplog.set_level(logging.INFO, logger="nmtcli")
    result = nmtcli.train(
        nmtcli.ModelConfig(**TINY_MODEL),
        TrainConfig(**{**TINY_TRAINING, "epochs": 2}),
        data_dir=tiny_data,
        workspace=nmtcli.Workspace(tmp_path),
    )
    records = [record for record in caplog.records if record.name == "nmtcli"]
    assert any(str(result.run_dir) in record.getMessage() for record in records), "which run folder"
    epochs = [record for record in records if hasattr(record, "epoch")]
    assert [record.epoch for record in epochs] == [1, 2]
    assert epochs[0].getMessage().startswith("epoch 1/2  cross_entropy ")
    assert epochs[1].metrics["loss"] > 0 and epochs[1].seconds > 0
    # The learning rate the history recorded for the epoch (after its last step, before any cut).
    from nmtcli.run_folder import RunFolder

    history = RunFolder(result.run_dir).history()
    for record in epochs:
        assert f"learning_rate {history.row(record.epoch)['learning_rate']:.3g}  " in record.getMessage()


def test_the_command_line_handler_renders_records_with_rich() -> None:
    from nmtcli.logs import logger, to_console

    out = io.StringIO()
    with to_console(Console(file=out, width=200)):
        logger.info("training on 5 pairs")
        logger.warning("the data changed")
    logger.info("not shown: the handler is gone")
    assert out.getvalue().splitlines() == ["training on 5 pairs", "nmt: warning: the data changed"]


def test_importing_the_library_keeps_tensorflow_start_up_messages_quiet() -> None:
    code = "import nmtcli; nmtcli.ModelConfig; nmtcli.train; print('ok')"
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert "cuda" not in result.stderr.lower() and "oneDNN" not in result.stderr, result.stderr
