"""Resuming: a run interrupted at any batch and resumed ends with the weights of the same run left alone."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from genlab.builder import build, build_trainer
from genlab.callbacks.interrupt import GracefulInterrupt, TrainingInterrupted
from tests.conftest import BARE

# a small VAE: BARE's net overrides name the GAN nets
VAE = (*(o for o in BARE if "base_channels" not in o), "model=vae",
       "model.net.encoder.base_channels=4", "model.net.decoder.base_channels=4")
GAN = (*BARE, "model=dcgan")
# the EMA of a family that Lightning optimizes: its update must be in the checkpoint an interrupt writes
VAE_EMA = (*VAE, "model.ema.decay=0.9")


class SignalAt(pl.Callback):
    """Delivers what a SIGTERM handler would, at the start of a chosen batch (counted over epochs)."""

    def __init__(self, graceful: GracefulInterrupt, batch: int) -> None:
        self.graceful, self.batch = graceful, batch

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        if trainer.fit_loop.total_batch_idx == self.batch:
            self.graceful.received = signal.SIGTERM


def fitted(cfg, ckpt_path: str | None = None, callbacks=()) -> pl.LightningModule:
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # as genlab train does
    datamodule, module, _ = build(cfg)
    trainer = build_trainer(cfg, callbacks=list(callbacks))
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return module


@pytest.mark.parametrize("family", [GAN, VAE, VAE_EMA], ids=["dcgan", "vae", "vae_ema"])
@pytest.mark.parametrize("interrupt_at", [5, 4])  # mid-epoch 1, and its very first batch
def test_a_run_interrupted_mid_epoch_and_resumed_ends_with_the_weights_of_the_run_left_alone(
    compose_train, fake_data_root, tmp_path, family, interrupt_at
):
    # 3 epochs of 4 batches, validation at each epoch's end
    cfg = compose_train(*family, "data=mnist", f"paths.data_dir={fake_data_root}", "trainer.max_epochs=3")
    alone = fitted(cfg)

    graceful = GracefulInterrupt(tmp_path / "checkpoints")
    with pytest.raises(TrainingInterrupted):
        fitted(cfg, callbacks=[SignalAt(graceful, interrupt_at), graceful])
    checkpoint = tmp_path / "checkpoints" / "interrupted.ckpt"
    with pytest.warns() as warned:
        resumed = fitted(cfg, ckpt_path=str(checkpoint))
    assert not any("not resumable" in str(w.message) for w in warned), "Lightning sees a resumable loader"
    assert resumed.generator_steps == alone.generator_steps and resumed.images_seen == alone.images_seen
    expected, got = alone.state_dict(), resumed.state_dict()
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_the_loader_goes_on_with_the_next_batch_of_the_same_epochs_permutation(compose_train, fake_data_root):
    cfg = compose_train(*GAN, "data=mnist", f"paths.data_dir={fake_data_root}")
    datamodule, _, _ = build(cfg)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(3)
    batches = iter(loader)
    whole_epoch = [labels for _, labels in loader]
    next(batches), next(batches)
    state = loader.state_dict()
    assert state == {"epoch": 3, "batches": 2}

    fresh = datamodule.train_dataloader()
    fresh.load_state_dict(state)
    fresh.sampler.set_epoch(3)
    rest = [labels for _, labels in fresh]
    assert len(rest) == len(whole_epoch) - 2
    assert all(torch.equal(a, b) for a, b in zip(rest, whole_epoch[2:]))
    # a state from an earlier epoch (a checkpoint written at that epoch's end) skips nothing
    later = datamodule.train_dataloader()
    later.load_state_dict(state)
    later.sampler.set_epoch(4)
    assert len(list(later)) == len(whole_epoch)



def genlab(*args: str, cwd: Path):
    """`genlab <args>` from `cwd`, in this process (tests/conftest.py's run_genlab)."""
    from tests.conftest import run_genlab

    return run_genlab(*args, cwd=cwd)


@pytest.mark.slow
def test_resuming_from_a_runs_checkpoint_replays_its_overrides_and_refuses_a_shape_change(tmp_path):
    from omegaconf import OmegaConf

    quiet = ("trainer.enable_progress_bar=false", "~callbacks.progress_bar", f"paths.cache_dir={tmp_path / 'cache'}",
             "classifier.epochs=1", "classifier.base_channels=8", "callbacks.sample_quality.n_samples=50")
    run = tmp_path / "first"
    first = genlab("train", "experiment=quickstart", "debug=limit", *quiet, f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    last = run / "checkpoints" / "last.ckpt"

    # the README's form: only the checkpoint and what changes (quickstart's narrow nets come from the run)
    resumed = tmp_path / "resumed"
    result = genlab("train", f"ckpt_path={last}", "trainer.max_epochs=3", *quiet, f"hydra.run.dir={resumed}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    cfg = OmegaConf.load(resumed / ".hydra" / "config.yaml")
    assert cfg.model.latent_dim == 64 and cfg.trainer.max_epochs == 3 and cfg.data.name == "mnist_mini"
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2

    refused = genlab("train", f"ckpt_path={last}", "model.latent_dim=7", "trainer.max_epochs=3", *quiet,
                     f"hydra.run.dir={tmp_path / 'no'}", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    (line,) = [line for line in refused.stderr.splitlines() if line.startswith("genlab: error:")]
    assert "does not fit the model" in line and "model.latent_dim=7" in line and "drop that override" in line
    # ... and one that has reached its trainer.max_epochs has nothing to continue: refused, the run untouched
    finished = genlab("train", f"ckpt_path={last}", *quiet, cwd=tmp_path)
    assert finished.returncode == 2 and "nothing to continue: the run trained 2 epochs of trainer.max_epochs=2" in finished.stderr


@pytest.mark.slow
def test_ddp_ranks_signalled_together_stop_at_one_batch_write_one_checkpoint_and_resume(tmp_path):
    """A cluster's scheduler signals the whole process group: every rank must stop cleanly, together."""
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import make_mnist, run_genlab_process

    make_mnist(tmp_path / "data", n_train=160)
    common = ("trainer=ddp_cpu", "data=mnist", f"paths.data_dir={tmp_path / 'data'}", "data.batch_size=8",
              "data.val_size=16", "model.latent_dim=8", "model.net.generator.base_channels=8",
              "model.net.discriminator.base_channels=8", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
              "callbacks.sample_quality=null", "callbacks.best_checkpoint=null", "logger=csv")
    run = tmp_path / "run"
    executable = str(Path(sys.executable).parent / "genlab")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([executable, "train", *common, "trainer.max_epochs=1000", f"hydra.run.dir={run}"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env=env)
    deadline = time.time() + 180
    while not (run / "checkpoints" / "last.ckpt").exists():  # both ranks are training
        assert process.poll() is None and time.time() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)  # as SLURM or Kubernetes do: every process of the job
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr and stderr.count("SIGTERM received: stopped at step") == 1
    time.sleep(1)
    left = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert not left, f"processes of the job still running: {left}"
    interrupted = run / "checkpoints" / "interrupted.ckpt"
    saved = torch.load(interrupted, weights_only=True)
    assert saved["global_step"] % 2 == 0  # whole batches: a critic and a generator step each

    resumed = tmp_path / "resumed"
    result = run_genlab_process("train", f"ckpt_path={interrupted}", f"trainer.max_epochs={saved['epoch'] + 2}",
                                f"hydra.run.dir={resumed}", cwd=tmp_path)  # replays trainer=ddp_cpu: two processes
    assert result.returncode == 0, result.stderr[-3000:]
    final = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] > saved["global_step"] and final["epoch"] == saved["epoch"] + 1


def test_resume_in_same_continues_the_runs_own_folder_and_curves_and_keeps_its_record(tmp_path):
    import csv

    quiet = ("debug=limit", "model.latent_dim=8", "model.net.generator.base_channels=8",
             "model.net.discriminator.base_channels=8", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
             "callbacks.sample_quality=null", "callbacks.best_checkpoint=null", "logger=many")
    run = tmp_path / "run"
    first = genlab("train", *quiet, f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    original = (run / ".hydra" / "config.yaml").read_text()
    summary = (run / "summary.json").read_text()

    refused = genlab("train", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "resume_in=same", "model.latent_dim=9",
                     cwd=tmp_path)
    assert refused.returncode == 2 and (run / "summary.json").read_text() == summary, "a refusal changes nothing"

    result = genlab("train", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "resume_in=same", "trainer.max_epochs=3",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (tmp_path / "outputs").exists(), "no new run folder"
    assert (run / ".hydra" / "config.yaml").read_text() == original, "the run's own record stays"
    (continued,) = (run / ".hydra").glob("continued_*")
    assert "trainer.max_epochs=3" in (continued / "overrides.yaml").read_text()
    (earlier,) = (run / "csv").glob("before_*/metrics.csv")  # Lightning's CSV logger starts anew: kept aside
    steps = []
    for part in (earlier, run / "csv" / "metrics.csv"):
        with open(part) as handle:
            steps += [int(row["step"]) for row in csv.DictReader(handle) if row.get("train/d_loss")]
    assert steps == sorted(steps) and steps[0] <= 1 and steps[-1] == 12, "one curve over both parts"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})  # one folder: one TensorBoard run
    board.Reload()
    assert sorted({e.step for e in board.Scalars("train/d_loss")}) == list(range(1, 13))
    assert '"generator_steps": 12' in (run / "summary.json").read_text()
