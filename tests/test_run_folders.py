"""Nothing a user made is overwritten: a run never trains into another's folder, two commands never share one,
a finished run is not 'continued' into a summary with no metrics, a sweep folder is never reused by accident,
and a stopped sweep starts no new job (genlab/run/folder.py, genlab/run/lock.py, genlab/run/grid_sweep.py)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.conftest import make_mnist, run_genlab

GENLAB = str(Path(sys.executable).parent / "genlab")
SMALL = ("model.latent_dim=8", "model.net.generator.base_channels=8", "model.net.discriminator.base_channels=8",
         "callbacks.sample_quality=null", "callbacks.best_checkpoint=null", "~callbacks.progress_bar")


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder" for p in sorted(folder.rglob("*"))}


@pytest.fixture
def finished_run(tmp_path) -> Path:
    """A run folder as `genlab train trainer.max_epochs=2` leaves it: config, overrides, summary, a last.ckpt
    whose loop state says both epochs ran (the weights fit its config; nothing trains to make it)."""
    from genlab.builder import build_module

    GlobalHydra.instance().clear()
    overrides = ["trainer.max_epochs=2", *SMALL[:3]]
    with initialize_config_module("genlab.configs", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    run = tmp_path / "finished"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), run / ".hydra" / "overrides.yaml")
    (run / "summary.json").write_text('{"status": "completed", "metrics": {"val/d_loss": 1.2}}')
    torch.save({"state_dict": build_module(cfg).state_dict(), "epoch": 1, "global_step": 40,
                "loops": {"fit_loop": {"epoch_progress": {"current": {"processed": 2, "completed": 1}}}},
                "progress": {"generator_steps": 20, "images_seen": 2560}}, run / "checkpoints" / "last.ckpt")
    return run


@pytest.mark.parametrize("resume_in", ["same", "new"])
def test_continuing_a_finished_run_is_refused_and_leaves_it_untouched(tmp_path, finished_run, resume_in):
    before = snapshot(finished_run)
    result = run_genlab("train", f"ckpt_path={finished_run / 'checkpoints' / 'last.ckpt'}", f"resume_in={resume_in}",
                        cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "nothing to continue: the run trained 2 epochs of trainer.max_epochs=2: raise trainer.max_epochs" in result.stderr
    assert snapshot(finished_run) == before
    assert not (tmp_path / "outputs").exists()


def test_a_run_into_a_folder_another_command_works_in_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    holder = os.open(folder / ".genlab.lock", os.O_RDWR | os.O_CREAT)  # what another genlab process holds
    fcntl.flock(holder, fcntl.LOCK_EX)
    os.write(holder, b"genlab process 4242\n")
    try:
        result = run_genlab("train", "data=mnist", f"paths.data_dir={tmp_path}", f"hydra.run.dir={folder}", cwd=tmp_path)
    finally:
        os.close(holder)
    assert result.returncode == 3
    assert f"genlab: error: {folder} is in use by genlab process 4242: two commands cannot write one run at once" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == [".genlab.lock"]  # the other's lock, and nothing of this command


def test_a_command_lets_go_of_its_folder_when_it_ends(tmp_path):
    from genlab.run.lock import HELD

    result = run_genlab("train", "data=mnist", f"paths.data_dir={tmp_path / 'none'}", f"hydra.run.dir={tmp_path / 'run'}",
                        cwd=tmp_path)
    assert result.returncode == 2 and "MNIST not found" in result.stderr
    assert not HELD and not (tmp_path / "run").exists()  # refused: its folder went, and its lock with it


def write_sweep(folder: Path, overrides: list[str]) -> None:
    folder.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": overrides}}}), folder / "multirun.yaml")


@pytest.mark.parametrize(("given", "names"), [
    (["seed=1,2,3"], "ran seed=1,2; this command drops seed=1,2 and adds seed=1,2,3"),
    (["seed=1,2", "model.latent_dim=8"], "drops nothing and adds model.latent_dim=8"),
])
def test_resume_sweep_refuses_a_sweep_that_ran_other_overrides(tmp_path, given, names):
    sweep = tmp_path / "sweep"
    write_sweep(sweep, ["seed=1,2", f"hydra.sweep.dir={sweep}"])
    before = snapshot(sweep)
    result = run_genlab("train", "-m", *given, "resume_sweep=true", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 2 and names in result.stderr and "Traceback" not in result.stderr
    assert snapshot(sweep) == before


def test_resume_sweep_pointed_at_a_single_run_is_refused(tmp_path, finished_run):
    result = run_genlab("train", "-m", "seed=1,2", "resume_sweep=true", f"hydra.sweep.dir={finished_run}", cwd=tmp_path)
    assert result.returncode == 2 and f"hydra.sweep.dir={finished_run} holds no sweep" in result.stderr


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_as_it_stops_a_run_and_prints_the_command_that_continues_it(tmp_path):
    make_mnist(tmp_path / "data", n_train=96)
    sweep = tmp_path / "my sweep"  # a space: the printed command must still run as pasted
    process = subprocess.Popen(
        [GENLAB, "train", "-m", "data=mnist", f"paths.data_dir={tmp_path / 'data'}", "data.batch_size=8", "data.val_size=16",
         "trainer=cpu", *SMALL, "logger=csv", "trainer.max_epochs=8", "seed=1,2", f"hydra.sweep.dir='{sweep}'"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not list(sweep.glob("0_*/checkpoints/last.ckpt")):  # job 0 is training
        assert process.poll() is None and time.time() < deadline, process.communicate()[1][-2000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("genlab: error:")]
    assert "SIGINT received: the sweep stopped at job 0, its checkpoint kept; continue the sweep with: " in line
    assert [p.name.split("_")[0] for p in sweep.iterdir() if p.is_dir()] == ["0"]  # job 1 never started
    (job,) = [p for p in sweep.iterdir() if p.is_dir()]
    assert (job / "checkpoints" / "interrupted.ckpt").is_file()
    words = shlex.split(line.split("continue the sweep with: ", 1)[1])
    assert words[:3] == ["genlab", "train", "-m"] and words[-2:] == ["resume_sweep=true", f"hydra.sweep.dir='{sweep}'"]
    # pasted as printed, it goes on with job 0 from its checkpoint, then trains job 1
    again = run_genlab(*words[1:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [json.loads((p / "summary.json").read_text())["status"] for p in jobs] == ["completed", "completed"]
    assert torch.load(jobs[0] / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 7


def test_two_resumes_of_one_sweep_cannot_run_at_once(tmp_path):
    sweep = tmp_path / "sweep"
    write_sweep(sweep, ["seed=1,2", f"hydra.sweep.dir={sweep}"])
    holder = os.open(sweep / ".genlab.lock", os.O_RDWR | os.O_CREAT)  # the first resume, still running
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        result = run_genlab("train", "-m", "seed=1,2", "resume_sweep=true", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    finally:
        os.close(holder)
    assert result.returncode == 3 and "two commands cannot write one sweep at once" in result.stderr
    assert sorted(p.name for p in sweep.iterdir()) == [".genlab.lock", "multirun.yaml"]


def test_a_second_signal_waits_for_the_checkpoint_being_written_and_stops_at_once_otherwise():
    from genlab.callbacks.interrupt import GracefulInterrupt

    latch = GracefulInterrupt(dirpath="unused")
    latch._handle(signal.SIGINT, None)  # the first: noted, training goes on to the batch's end
    latch.saving = True
    latch._handle(signal.SIGINT, None)  # a second one while interrupted.ckpt is written: the write finishes
    assert latch.received == signal.SIGINT
    latch.saving = False
    with pytest.raises(KeyboardInterrupt):
        latch._handle(signal.SIGINT, None)


def test_an_interrupt_outside_training_is_one_line_and_exit_130(tmp_path, monkeypatch):
    import genlab.commands.train as command

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "train", interrupted)
    result = run_genlab("train", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 130 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "genlab: error: interrupted: stopped at once; the checkpoints written before are intact"


@pytest.mark.slow
def test_ctrl_c_stops_a_parallel_sweep_with_no_new_job_and_prints_the_command_that_continues_it(tmp_path):
    sweep = tmp_path / "sweep"
    process = subprocess.Popen(
        [GENLAB, "train", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=1,2,3", "debug=limit",
         "trainer.max_epochs=1000", "trainer.limit_train_batches=5", *SMALL, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 180
    while len(list(sweep.glob("*/checkpoints/last.ckpt"))) < 2:  # both workers are training
        assert process.poll() is None and time.time() < deadline, process.communicate()[1][-2000:]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, workers included
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 130 and "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("genlab: error:")]
    words = shlex.split(line.split("continue the sweep with: ", 1)[1])
    assert "hydra/launcher=parallel" in words and words[-2:] == ["resume_sweep=true", f"hydra.sweep.dir={sweep}"]
    assert sorted(p.name.split("_")[0] for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]  # job 2 never started


def test_the_commands_genlab_prints_split_back_into_their_words_whatever_the_paths_hold(tmp_path):
    from genlab.run.shell import command_line, hydra_override
    from genlab.search.storage import dashboard_command

    folder = tmp_path / "my runs, 'best' $HOME"
    assert shlex.split(dashboard_command(f"sqlite:///{folder}/optuna.db")) == ["optuna-dashboard", f"sqlite:///{folder}/optuna.db"]
    words = ["genlab", "train", hydra_override("ckpt_path", folder / "last.ckpt"), "trainer.max_epochs=3"]
    assert shlex.split(command_line(words)) == words
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert OverridesParser.create().parse_override(words[2]).value() == str(folder / "last.ckpt")
