"""logger=mlflow and logger=wandb against the real libraries, offline: each tracker is read back and holds what
TensorBoard and the run folder hold (the scalars, the settings, the sample grid, summary.json's final metrics),
filed by the run's folder and grouped by its sweep or search; `genlab report` still reads the runs."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genlab.commands.report import main as report_main
from genlab.commands.report_runs import read_curves
from genlab.trackers.naming import run_group, run_name
from tests.conftest import run_genlab

# one epoch of two batches on mnist_mini: every scalar logged, a sample grid at its end, no val/fid
SHORT = ("trainer=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
         "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
         "~callbacks.sample_quality", "~callbacks.best_checkpoint", "data.val_size=16")
TINY = (*SHORT, "data.batch_size=16", "model.latent_dim=8", "model.net.generator.base_channels=8",
        "model.net.discriminator.base_channels=8")
# a VAE, the family of the Optuna preset vae_optuna (which draws its latent size and batch size)
TINY_VAE = (*SHORT, "model=vae")


def train(cwd: Path, *overrides: str) -> None:
    result = run_genlab("train", *overrides, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def overridden(run: Path) -> dict[str, str]:
    """The values a run's command line (or its sweep, or Optuna) set, by key."""
    return dict(override.split("=", 1) for override in summary(run)["overrides"] if "=" in override)


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def store(cwd: Path):
    """A client of the default store of runs started in `cwd`: outputs/mlflow.db."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{cwd / 'outputs' / 'mlflow.db'}")


def mlflow_runs(cwd: Path, experiment: str) -> dict:
    """The runs of one experiment in the default store, by name."""
    client = store(cwd)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, [e.name for e in client.search_experiments()]
    return {run.info.run_name: run for run in client.search_runs([found.experiment_id])}


def wandb_records(run_dir: Path) -> list:
    """Every record of a W&B offline run's transaction log (<run>/run-<id>.wandb), in order: LevelDB's log format
    (blocks of 32 KiB, each chunk behind a 7-byte header: checksum, length, type) after W&B's own 7-byte header."""
    from wandb.proto.wandb_internal_pb2 import Record

    (log_file,) = run_dir.glob("run-*.wandb")
    data, block = log_file.read_bytes(), 32768
    records, pending, position = [], b"", 7
    while position + 7 <= len(data):
        room = block - position % block
        if room < 7:  # a block's tail too short for a header is padding
            position += room
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
        elif kind == 0:  # zeros: the end of what was written
            break
    return records


def wandb_run(run: Path) -> dict:
    """One genlab run's W&B offline run, read back: its run record, history rows, config, summary and folder."""
    (folder,) = (run / "wandb").glob("offline-run-*")
    records = wandb_records(folder)

    def values(items) -> dict:  # a nested value (an image's fields) as "<key>/<field>"
        return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}

    return {"run": next(r.run for r in records if r.HasField("run")),
            "history": [values(r.history.item) for r in records if r.HasField("history")],
            "config": {k: v for r in records if r.HasField("config") for k, v in values(r.config.update).items()},
            "summary": {k: v for r in records if r.HasField("summary") for k, v in values(r.summary.update).items()},
            "folder": folder}


def curve(history: list[dict], name: str) -> list[tuple[int, float]]:
    """(generator step, value) points of one scalar in W&B's history rows (Lightning's trainer/global_step)."""
    return sorted({(int(row["trainer/global_step"]), row[name]) for row in history if name in row})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The folder every run here starts in, as a user's: one outputs/ whose one MLflow store holds every run (a new
    store builds its schema for seconds: once here). The trackers write into the process's environment (MLflow its
    tracking URI, Lightning WANDB_MODE, Hydra's env_set a trial's number): restored at the end. W&B keeps its
    settings and caches here too."""
    saved = dict(os.environ)
    cwd = tmp_path_factory.mktemp("trackers")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        os.environ[name] = str(cwd / "wandb_home" / name.lower())
    (cwd / "outputs").mkdir()
    store(cwd).search_experiments()
    yield cwd
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def single(workspace: Path) -> Path:
    """A single run logged to both trackers at once (and to TensorBoard, which each keeps)."""
    train(workspace, *TINY, "logger=[mlflow,wandb]", "optimizer.lr=3e-4", "tags=[tiny]")
    (run,) = (workspace / "outputs" / "train" / "runs").iterdir()
    return run


@pytest.fixture(scope="module")
def sweep(workspace: Path) -> Path:
    train(workspace, "-m", *TINY, "logger=[mlflow,wandb]", "seed=1,2")
    (folder,) = (workspace / "outputs" / "train" / "multiruns").iterdir()
    return folder


@pytest.fixture(scope="module")
def search(workspace: Path) -> Path:
    """The one trial of an Optuna search."""
    train(workspace, *TINY_VAE, "hparams_search=vae_optuna", "hydra.sweeper.n_trials=1", "logger=[mlflow,wandb]")
    return workspace / "outputs" / "train" / "searches" / "vae_elbo" / "trial_0"


def test_trackers_name_a_run_after_its_folder_and_group_it_by_the_folder_that_holds_it():
    assert run_group("/w/outputs/train/runs/2026-12-07_10-00-00_000001", "/w/outputs") == "train/runs"
    assert run_group("/w/outputs/train/multiruns/2026-12-07_10-00-00_000001/0_seed=1", "/w/outputs") == \
        "train/multiruns/2026-12-07_10-00-00_000001"
    assert run_group("/w/outputs/train/searches/vae_elbo/trial_3", "/w/outputs") == "train/searches/vae_elbo"
    assert run_group("/tmp/lr_sweep/0_seed=1", "/w/outputs") == "lr_sweep"  # hydra.sweep.dir outside the outputs
    assert run_name("/w/outputs/train/multiruns/2026-12-07_10-00-00_000001/0_seed=1") == "0_seed=1"


def test_a_missing_tracker_package_is_one_line_with_its_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if mlflow were not installed
    result = run_genlab("train", *TINY, "logger=mlflow", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "genlab: error:" in line]
    assert "logger=mlflow needs the mlflow package" in line and "pip install mlflow-skinny" in line
    assert "pip install 'genlab[mlflow]'" in line
    assert not list((tmp_path / "outputs" / "train" / "runs").glob("*/summary.json"))  # nothing trained, no run kept


@pytest.mark.slow  # the workspace's MLflow store: seconds to build
def test_the_jobs_of_a_parallel_sweep_share_their_mlflow_experiment_whichever_creates_it(workspace, monkeypatch):
    from genlab.trackers.mlflow import MLflowLogger

    uri = f"sqlite:///{workspace / 'outputs' / 'mlflow.db'}"
    logger = MLflowLogger(experiment_name="train/multiruns/parallel", tracking_uri=uri)
    made = store(workspace).create_experiment("train/multiruns/parallel")
    looked, real = [], logger._mlflow_client.get_experiment_by_name

    def late(name: str):  # this job looked before another job of the sweep created the experiment
        looked.append(name)
        return None if len(looked) == 1 else real(name)

    monkeypatch.setattr(logger._mlflow_client, "get_experiment_by_name", late)
    assert logger.experiment_id == made and len(looked) == 2
    assert logger.experiment.get_run(logger.run_id).info.experiment_id == made


@pytest.mark.slow
def test_mlflow_holds_a_runs_scalars_settings_grid_and_final_metrics_as_tensorboard_does(workspace, single):
    (found,) = mlflow_runs(workspace, "train/runs").values()  # single runs share one experiment
    assert found.info.run_name == single.name and found.info.status == "FINISHED"
    assert found.data.tags["genlab.run_folder"] == str(single)
    # the settings TensorBoard's HPARAMS tab shows
    assert float(found.data.params["optimizer.lr"]) == pytest.approx(3e-4)
    assert found.data.params["model._target_"] == "genlab.families.gan.GAN"
    # summary.json's final metrics, at the last generator step
    metrics = summary(single)["metrics"]
    assert metrics and {name: found.data.metrics[name] for name in metrics} == pytest.approx(metrics)
    # TensorBoard's scalars: the same values at the same generator steps (float32 values, read back exactly)
    client, board = store(workspace), read_curves(single)
    for name in ("train/g_loss", "train/d_loss", "train/generator_steps", "val/d_loss"):
        logged = sorted({(m.step, m.value) for m in client.get_metric_history(found.info.run_id, name)})
        assert logged == board[name] and logged, name
    # the sample grid, at the step it was drawn, pixel for pixel the run folder's samples/last.png
    steps = int(summary(single)["generator_steps"])
    images = [a.path for a in client.list_artifacts(found.info.run_id, "images") if a.path.endswith(".png")]
    (grid,) = [path for path in images if path.startswith(f"images/samples+step+{steps}+")]
    local = client.download_artifacts(found.info.run_id, grid, str(workspace / "downloaded"))
    assert np.array_equal(pixels(Path(local)), pixels(single / "samples" / "last.png"))


@pytest.mark.slow
def test_wandb_offline_holds_a_runs_scalars_settings_grid_and_final_metrics_as_tensorboard_does(single):
    found = wandb_run(single)
    assert found["run"].display_name == single.name and found["run"].run_group == "train/runs"
    assert found["run"].project == "genlab" and list(found["run"].tags) == ["tiny"]
    assert found["config"]["optimizer.lr"] == pytest.approx(3e-4)
    assert found["config"]["model._target_"] == "genlab.families.gan.GAN"
    metrics = summary(single)["metrics"]
    assert metrics and {name: found["summary"][name] for name in metrics} == pytest.approx(metrics)
    board = read_curves(single)
    for name in ("train/g_loss", "train/d_loss", "train/generator_steps", "val/d_loss"):
        assert curve(found["history"], name) == board[name] and board[name], name
    # the grid: one image, logged at the last generator step, the run folder's samples/last.png pixel for pixel
    (row,) = [row for row in found["history"] if row.get("samples/_type") == "images/separated"]
    assert row["trainer/global_step"] == summary(single)["generator_steps"]
    (image,) = (found["folder"] / "files" / "media" / "images").glob("samples_*.png")
    assert np.array_equal(pixels(image), pixels(single / "samples" / "last.png"))


@pytest.mark.slow
def test_genlab_report_reads_a_run_that_logged_to_both_trackers(single):
    assert report_main([str(single)]) == 0
    with open(single / "report.csv") as handle:
        (row,) = csv.DictReader(handle)
    assert float(row["train/g_loss"]) == pytest.approx(summary(single)["metrics"]["train/g_loss"], rel=1e-3)  # 4 digits


@pytest.mark.slow
def test_a_sweeps_runs_are_grouped_by_their_sweep_in_both_trackers(workspace, sweep):
    group = f"train/multiruns/{sweep.name}"
    jobs = sorted(p for p in sweep.iterdir() if (p / "summary.json").is_file())
    assert [overridden(job)["seed"] for job in jobs] == ["1", "2"]
    runs = mlflow_runs(workspace, group)  # one experiment per sweep, a run per job, named after its folder
    assert sorted(runs) == [job.name for job in jobs]
    for job in jobs:
        assert runs[job.name].data.params["seed"] == overridden(job)["seed"]
        assert runs[job.name].data.metrics["train/g_loss"] == pytest.approx(summary(job)["metrics"]["train/g_loss"])
        found = wandb_run(job)  # each job a W&B run of its own, in the sweep's group
        assert (found["run"].run_group, found["run"].display_name) == (group, job.name)
        assert found["summary"]["train/g_loss"] == pytest.approx(summary(job)["metrics"]["train/g_loss"])
    assert report_main([str(sweep)]) == 0
    with open(sweep / "report.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 2


@pytest.mark.slow
def test_an_optuna_searchs_trials_are_grouped_by_their_study_in_both_trackers(workspace, search):
    value = summary(search)["metrics"]["val/loss"]  # what the study was told
    (found,) = mlflow_runs(workspace, "train/searches/vae_elbo").values()
    assert found.info.run_name == "trial_0" and found.data.metrics["val/loss"] == pytest.approx(value)
    assert float(found.data.params["optimizer.lr"]) == pytest.approx(float(overridden(search)["optimizer.lr"]))  # drawn
    offline = wandb_run(search)
    assert (offline["run"].run_group, offline["run"].display_name) == ("train/searches/vae_elbo", "trial_0")
    assert offline["summary"]["val/loss"] == pytest.approx(value)
