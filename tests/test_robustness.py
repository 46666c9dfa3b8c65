"""Nothing a user made is lost: bad input, divergence, signals, crashes mid-write, unsafe checkpoints."""

from __future__ import annotations

import json
import logging
import os
import pickle
import shlex
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from genlab.commands.app import LIGHTNING_INFO_LOGGER, silence_library_noise
from genlab.run.atomic import atomic_write, atomic_write_json
from genlab.run.checkpoints import CheckpointReadError, UnsafeCheckpointError, atomic_torch_save, load_checkpoint
from genlab.run.folder import discard_refused_run, first_missing
from genlab.run.load import CheckpointMismatchError, load_weights
from genlab.errors import DivergenceError
from genlab.builder import build
from tests.conftest import BARE, FAST, Finished, logged, make_mnist, run_genlab

GENLAB = str(Path(sys.executable).parent / "genlab")
QUIET = ("trainer.enable_progress_bar=false", "~callbacks.progress_bar")
SMALL = ("model.latent_dim=8", "model.net.generator.base_channels=8", "model.net.discriminator.base_channels=8")


def genlab(*args: str, cwd: Path) -> Finished:
    """`genlab <args>` from `cwd`, in this process (tests/conftest.py's run_genlab)."""
    return run_genlab(*args, cwd=cwd)


def poison(model, at_critic_step: int) -> None:
    """Make the discriminator loss NaN from the given critic step on."""
    honest = model.family.critic_loss

    def critic_loss(*args, **kwargs):
        loss, logs = honest(*args, **kwargs)
        return (loss * float("nan"), logs) if model.progress.critic_steps >= at_critic_step else (loss, logs)

    model.family.critic_loss = critic_loss


def test_a_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(compose_train, fake_data_root):
    cfg = compose_train(*FAST, "data=mnist", f"paths.data_dir={fake_data_root}", "~logger")
    datamodule, model, trainer = build(cfg)
    poison(model, at_critic_step=6)  # epoch 1, after epoch 0's checkpoint
    with pytest.raises(DivergenceError, match=r"train/d_loss became nan at step 10 \(epoch 1\)") as raised:
        trainer.fit(model, datamodule=datamodule)
    assert "Checkpoints written before it are intact" in str(raised.value)
    saved = load_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 8  # the end of epoch 0
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values() if t.is_floating_point())
    assert all(torch.isfinite(p).all() for p in model.parameters()), "the NaN step never reached the weights"


def test_on_nonfinite_skip_skips_the_bad_steps_and_trains_on(compose_train, fake_data_root):
    cfg = compose_train(*BARE, "data=mnist", f"paths.data_dir={fake_data_root}", "on_nonfinite=skip")
    datamodule, model, trainer = build(cfg)
    poison(model, at_critic_step=6)
    trainer.fit(model, datamodule=datamodule)
    assert model.progress.skipped_steps == 3 and model.progress.critic_steps == 8
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_writes_a_resumable_checkpoint_and_resuming_continues_there(tmp_path, signame):
    make_mnist(tmp_path / "data", n_train=96)
    common = ("data=mnist", f"paths.data_dir={tmp_path / 'data'}", "data.batch_size=8", "data.val_size=16",
              "trainer=cpu", *SMALL, *QUIET, "logger=csv")
    run_dir = tmp_path / "my run, 1"  # a space and a comma: the printed command must run as pasted
    process = subprocess.Popen([GENLAB, "train", *common, "trainer.max_epochs=1000", f"hydra.run.dir='{run_dir}'"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run_dir / "checkpoints" / "last.ckpt").exists():  # training is under way
        assert process.poll() is None and time.time() < deadline, process.communicate()[1][-2000:]
        time.sleep(0.2)
    process.send_signal(getattr(signal, signame))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + getattr(signal, signame)
    assert f"{signame} received: stopped at step" in stderr and "Traceback" not in stderr
    interrupted = run_dir / "checkpoints" / "interrupted.ckpt"
    saved = load_checkpoint(interrupted)

    # the command it printed, pasted as it is (the run's own overrides are read from its folder), and what changes
    (printed,) = [line.strip() for line in stderr.splitlines() if line.strip().startswith("genlab train ")]
    resumed_dir = tmp_path / "resumed"
    last_epoch = saved["epoch"] + 2
    result = genlab(*shlex.split(printed)[1:], f"trainer.max_epochs={last_epoch}", f"hydra.run.dir={resumed_dir}",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    final = load_checkpoint(resumed_dir / "checkpoints" / "last.ckpt")
    assert final["global_step"] > saved["global_step"]
    # the resumed run logs from where the interrupted one stopped (one logged step per batch,
    # two optimizer steps per batch), not from zero
    first_logged = min(step for step, _ in logged(resumed_dir, "train/d_loss"))
    assert first_logged >= saved["global_step"] // 2 - 1


def test_a_crash_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"global_step": 1}, path)

    def crash(obj, stream):
        stream.write(b"half a checkpoint")
        raise OSError("disk unplugged")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk unplugged"):
        atomic_torch_save({"global_step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path) == {"global_step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_json_written_atomically_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"last.ckpt": {"fid": 12.5}})

    def half_then_crash(stream):
        stream.write(b'{"last.ckpt": {"fi')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_crash)
    assert json.loads(path.read_text()) == {"last.ckpt": {"fid": 12.5}}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    RunsCode.marker = marker
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": RunsCode()}))
    with pytest.raises(UnsafeCheckpointError, match="refusing to load .*evil.ckpt.*could run arbitrary code"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_a_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(100)}}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointReadError, match="last.ckpt is truncated or not a checkpoint"):
        load_checkpoint(path)


def test_a_text_file_named_ckpt_is_refused_as_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("hello\n")
    with pytest.raises(CheckpointReadError, match=r"notes.ckpt is not a checkpoint: it begins with b'hello\\n'"):
        load_checkpoint(path)


def test_a_checkpoint_of_another_model_names_the_first_tensor_that_differs(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3))
    other = {"state_dict": {"0.weight": torch.zeros(5, 2), "0.bias": torch.zeros(5)}}
    with pytest.raises(CheckpointMismatchError, match=r"ckpt_path=x.ckpt does not fit .*Sequential.*: 0.weight is \[5, 2\] in the checkpoint but \[3, 2\] in the model"):
        load_weights(model, other, "x.ckpt")


RUN = Path("outputs") / "train" / "runs" / "2026-01-01_00-00-00_000000"


def refused_run(tmp_path: Path, status: str = "failed") -> Path:
    """A run folder as a refused `genlab train` leaves it: .hydra/, train.log, summary.json."""
    folder = tmp_path / RUN
    assert first_missing(folder) == tmp_path / "outputs"  # what the command created for it: outputs/ and below
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (folder / "train.log").write_text("")
    (folder / "summary.json").write_text(json.dumps({"status": status}))
    return folder


def test_a_refused_run_folder_goes_with_the_parents_made_for_it(tmp_path):
    refused_run(tmp_path)
    assert discard_refused_run(tmp_path / RUN, tmp_path / "outputs")
    assert list(tmp_path.iterdir()) == []


def test_a_run_folder_with_checkpoints_is_kept(tmp_path):
    folder = refused_run(tmp_path)
    (folder / "checkpoints").mkdir()
    assert not discard_refused_run(folder, tmp_path / "outputs") and folder.is_dir()


def test_a_run_folder_of_a_completed_run_is_kept(tmp_path):
    folder = refused_run(tmp_path, status="completed")
    assert not discard_refused_run(folder, tmp_path / "outputs") and folder.is_dir()


def test_a_run_folder_that_existed_before_the_command_is_kept(tmp_path):
    folder = tmp_path / "mine"
    (folder / ".hydra").mkdir(parents=True)
    assert first_missing(folder) is None  # it exists already: this command did not make it
    assert not discard_refused_run(folder, first_missing(folder)) and (folder / ".hydra").is_dir()


def test_the_parents_of_a_refused_run_stay_while_they_hold_another_run(tmp_path):
    folder = refused_run(tmp_path)
    (folder.parent / "another_run").mkdir()
    assert discard_refused_run(folder, tmp_path / "outputs")
    assert [p.name for p in folder.parent.iterdir()] == ["another_run"]


def test_two_runs_started_in_the_same_second_get_folders_of_their_own():
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    def run_dir() -> str:
        GlobalHydra.instance().clear()
        with initialize_config_module("genlab.configs", version_base="1.3"):
            cfg = compose("train", overrides=["paths.log_dir=/outputs"], return_hydra_config=True)
        return OmegaConf.select(cfg, "hydra.run.dir")

    first, second = run_dir(), run_dir()
    assert first != second and first.startswith("/outputs/train/runs/")


def test_torchs_leafspec_deprecation_is_silenced_and_other_warnings_are_not():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_library_noise()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`", FutureWarning)
        warnings.warn("some other deprecation", FutureWarning)
    assert [str(w.message) for w in caught] == ["some other deprecation"]


def test_lightnings_litlogger_tip_is_silenced_and_its_other_messages_are_not():
    silence_library_noise()
    logger = logging.getLogger(LIGHTNING_INFO_LOGGER)

    def passes(message: str) -> bool:
        return bool(logger.filter(logging.makeLogRecord({"name": logger.name, "msg": message})))

    assert not passes("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger](https://pypi.org/project/litlogger/)")
    assert passes("GPU available: False, used: False")
