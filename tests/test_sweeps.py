"""Sweeps through `genlab train -m` and the Optuna sweeper; `genlab report` over their folders."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genlab.commands.report import main as report_main

GENLAB = str(Path(sys.executable).parent / "genlab")
QUICK = ("debug=limit", "trainer.enable_progress_bar=false", "~callbacks.progress_bar", "model.latent_dim=8",
         "model.net.generator.base_channels=8", "model.net.discriminator.base_channels=8")


def genlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([GENLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_a_sweep_runs_every_job_in_its_own_folder_and_a_failure_does_not_stop_the_others(tmp_path):
    result = genlab("train", "-m", *QUICK, "optimizer.lr=1e-4,-1,2e-4", cwd=tmp_path)
    assert result.returncode != 0  # Hydra reports the failed job at the end ...
    (sweep,) = (tmp_path / "outputs" / "debug" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name.split("_")[0] for p in jobs] == ["0", "1", "2"]
    assert "optimizer.lr=0.0002" in jobs[2].name  # folders are named by their overrides
    statuses = [json.loads((job / "summary.json").read_text())["status"] for job in jobs]
    assert statuses == ["completed", "failed", "completed"]  # ... after running the job that came after it
    assert list((jobs[2] / "tensorboard").glob("events.out.tfevents.*"))
    assert (jobs[2] / "checkpoints" / "last.ckpt").is_file()

    assert report_main([str(sweep), "--metric", "val/d_loss"]) == 0
    markdown = (sweep / "report.md").read_text()
    assert "## Failed runs" in markdown and "optimizer.lr=-1 is not valid" in markdown
    assert "re-run: `genlab train debug=limit" in markdown
    assert "samples/last.png" in markdown
    assert (sweep / "report_val_d_loss.png").stat().st_size > 1000
    with open(sweep / "report.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["completed", "completed", "failed"]
    values = [float(r["val/d_loss"]) for r in rows[:2]]
    assert values == sorted(values)


def write_run(folder: Path, metrics: dict[str, float], overrides: list[str], curve: list[tuple[int, float]]) -> None:
    folder.mkdir(parents=True)
    summary = {"status": "completed", "overrides": overrides, "optimized_metric": None, "metrics": metrics, "error": None}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "csv").mkdir()
    with open(folder / "csv" / "metrics.csv", "w") as handle:
        handle.write("epoch,step,val/elbo\n" + "".join(f"0,{s},{v}\n" for s, v in curve))


def test_report_sorts_by_the_objective_in_its_direction(tmp_path):
    for name, elbo in (("0_a", -150.0), ("1_b", -90.0), ("2_c", -120.0)):
        write_run(tmp_path / name, {"val/elbo": elbo}, ["model=vae", f"seed={name[0]}"], [(0, elbo - 50), (10, elbo)])
    assert report_main([str(tmp_path), "--metric", "val/elbo"]) == 0  # higher ELBO is better
    with open(tmp_path / "report.csv") as handle:
        assert [r["run"] for r in csv.DictReader(handle)] == ["1_b", "2_c", "0_a"]
    markdown = (tmp_path / "report.md").read_text()
    assert "(higher is better)" in markdown and "`seed=1`" in markdown and "model=vae" not in markdown.split("|---")[1]
    assert (tmp_path / "report_val_elbo.png").is_file()
    assert report_main([str(tmp_path), "--metric", "val/elbo", "--mode", "min"]) == 0
    with open(tmp_path / "report.csv") as handle:
        assert [r["run"] for r in csv.DictReader(handle)] == ["0_a", "2_c", "1_b"]


def test_report_on_a_folder_without_runs_says_so(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "no runs" in capsys.readouterr().err


def test_optuna_search_optimizes_the_metric_train_returns(tmp_path):
    result = genlab("train", "model=vae", "hparams_search=vae_optuna", "hydra.sweeper.n_trials=2",
                    "hydra.sweeper.sampler.n_startup_trials=1", "debug=limit", "trainer.enable_progress_bar=false",
                    "~callbacks.progress_bar", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (sweep,) = (tmp_path / "outputs" / "debug" / "multiruns").iterdir()
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    summaries = [json.loads(p.read_text()) for p in sweep.rglob("summary.json")]
    assert len(summaries) == 2 and all(s["optimized_metric"] == "val/loss" for s in summaries)
    assert best["best_value"] == pytest.approx(min(s["metrics"]["val/loss"] for s in summaries), rel=1e-5)
    assert set(best["best_params"]) == {"optimizer.lr", "model.latent_dim", "data.batch_size"}


def test_report_plots_every_family_against_generator_updates_not_the_loggers_step(tmp_path):
    from genlab.commands.report import Run, on_progress_axis, progress_axis, read_curves

    # a DCGAN-like run (one generator update per batch) and a WGAN-like one (one per 5 batches),
    # both validated at logger step 100: the same step, five times less generator training for the second
    for name, n_critic in (("0_dcgan", 1), ("1_wgan", 5)):
        folder = tmp_path / name
        folder.mkdir()
        summary = {"status": "completed", "overrides": [f"model={name[2:]}"], "optimized_metric": "val/fid",
                   "metrics": {"val/fid": 10.0 * n_critic}, "error": None}
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / "csv").mkdir()
        rows = [f"0,{step},{step // n_critic},," for step in range(0, 100, 10)]
        rows.append(f"0,100,,{100 // n_critic},{10.0 * n_critic}")
        (folder / "csv" / "metrics.csv").write_text(
            "epoch,step,train/generator_steps,val/generator_steps,val/fid\n" + "\n".join(rows) + "\n")
    axes = {}
    for name in ("0_dcgan", "1_wgan"):
        run = Run(tmp_path / name, name, "completed", [], {}, "val/fid", None, read_curves(tmp_path / name))
        axes[name] = on_progress_axis(run.curves["val/fid"], progress_axis(run))
        assert on_progress_axis([(55, 1.0)], progress_axis(run))[0][0] == pytest.approx(55 / (1 if "dcgan" in name else 5), abs=1)
    assert axes == {"0_dcgan": [(100.0, 10.0)], "1_wgan": [(20.0, 50.0)]}
    assert report_main([str(tmp_path)]) == 0
    assert (tmp_path / "report_val_fid.png").stat().st_size > 1000
