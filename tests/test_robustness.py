"""Nothing a user made is lost: bad input, divergence, signals, crashes mid-write, unsafe checkpoints."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genlab.run.checkpoints import CheckpointReadError, UnsafeCheckpointError, atomic_torch_save, load_checkpoint
from genlab.errors import DivergenceError
from genlab.builder import build
from tests.conftest import BARE, FAST, logged, make_mnist

GENLAB = str(Path(sys.executable).parent / "genlab")
QUIET = ("trainer.enable_progress_bar=false", "~callbacks.progress_bar")
SMALL = ("model.latent_dim=8", "model.net.generator.base_channels=8", "model.net.discriminator.base_channels=8")


def genlab(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([GENLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(("override", "message"), [
    ("optimizer.lr=abc", "optimizer.lr='abc' is not valid: it must be a positive number"),
    ("data.batch_size=-1", "data.batch_size=-1 is not valid: it must be a positive integer"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 is not valid"),
    ("model.n_critic=0", "model.n_critic=0 is not valid"),
    ("on_nonfinite=explode", "on_nonfinite='explode' is not valid: it must be stop or skip"),
    ("speed.compile=yes", "speed.compile='yes' is not valid: it must be true or false"),
])
def test_bad_values_are_refused_by_key_before_any_data_is_loaded(tmp_path, override, message):
    # data=mnist with no data anywhere: reaching the data loader would report missing files instead
    result = genlab("train", "data=mnist", f"paths.data_dir={tmp_path / 'none'}", override, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "not found" not in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unwritable_run_folder_is_refused_before_anything_starts(tmp_path):
    (tmp_path / "a_file").write_text("")
    result = genlab("train", f"paths.log_dir={tmp_path / 'a_file' / 'runs'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot write to the run folder" in result.stderr and "paths.log_dir" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_full_disk_is_refused_before_anything_starts(tmp_path):
    result = genlab("train", "paths.min_free_mb=1e15", cwd=tmp_path)
    assert result.returncode == 2 and "MB free where the run folder" in result.stderr
    assert not (tmp_path / "outputs").exists()


def poison(model, at_critic_step: int) -> None:
    """Make the discriminator loss NaN from the given critic step on."""
    honest = model.critic_loss

    def critic_loss(*args, **kwargs):
        loss, logs = honest(*args, **kwargs)
        return (loss * float("nan"), logs) if model.critic_steps >= at_critic_step else (loss, logs)

    model.critic_loss = critic_loss


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
    assert model.skipped_steps == 3 and model.critic_steps == 8
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_writes_a_resumable_checkpoint_and_resuming_continues_there(tmp_path, signame):
    make_mnist(tmp_path / "data", n_train=96)
    common = ("data=mnist", f"paths.data_dir={tmp_path / 'data'}", "data.batch_size=8", "data.val_size=16",
              "trainer=cpu", *SMALL, *QUIET, "logger=csv")
    run_dir = tmp_path / "run"
    process = subprocess.Popen([GENLAB, "train", *common, "trainer.max_epochs=1000", f"hydra.run.dir={run_dir}"],
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

    resumed_dir = tmp_path / "resumed"
    last_epoch = saved["epoch"] + 2
    result = genlab("train", *common, f"trainer.max_epochs={last_epoch}", f"ckpt_path={interrupted}",
                    f"hydra.run.dir={resumed_dir}", cwd=tmp_path)
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
    result = genlab("train", f"ckpt_path={evil}", cwd=tmp_path)
    assert result.returncode == 2 and "refusing to load" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_a_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(100)}}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointReadError, match="last.ckpt is truncated or not a checkpoint"):
        load_checkpoint(path)
