"""Sweeps through `genlab train -m`; `genlab report` over their folders (Optuna searches: tests/test_search.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from genlab.commands.report import main as report_main
from tests.conftest import Finished, run_genlab

QUICK = ("debug=limit", "model.latent_dim=8", "model.net.generator.base_channels=8", "model.net.discriminator.base_channels=8",
         # no val/fid (no domain classifier to train for it, no best.ckpt by it): the sweep, not the judge, is under test
         "callbacks.sample_quality=null", "callbacks.best_checkpoint=null")


def genlab(*args: str, cwd: Path) -> Finished:
    """`genlab <args>` from `cwd`, in this process (tests/conftest.py's run_genlab)."""
    return run_genlab(*args, cwd=cwd)


@pytest.mark.slow
def test_a_sweep_runs_every_job_in_its_own_folder_and_a_failure_does_not_stop_the_others(tmp_path):
    # the jobs on data=mnist fail for want of its files (paths.data_dir is empty); the others train
    result = genlab("train", "-m", *QUICK, "optimizer.lr=1e-4,2e-4", "data=mnist_mini,mnist",
                    f"paths.data_dir={tmp_path / 'nothing'}", cwd=tmp_path)
    (sweep,) = (tmp_path / "outputs" / "debug" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name.split("_")[0] for p in jobs] == ["0", "1", "2", "3"]
    assert "optimizer.lr=0.0002" in jobs[2].name  # folders are named by their overrides
    statuses = [json.loads((job / "summary.json").read_text())["status"] for job in jobs]
    assert statuses == ["completed", "failed", "completed", "failed"]  # ... the job after a failed one ran
    assert list((jobs[2] / "tensorboard").glob("events.out.tfevents.*"))
    assert (jobs[2] / "checkpoints" / "last.ckpt").is_file()
    # the sweep ends with one line per failed job and a non-zero exit, not Hydra's traceback
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    failed = [line for line in result.stderr.splitlines() if line.startswith("genlab: job ")]
    assert [line.split()[2] for line in failed] == ["1", "3"] and all("MNIST not found" in line for line in failed)
    assert "genlab: error: 2 of 4 jobs failed" in result.stderr
    # ... and by naming the command that compares its runs (even though a job failed)
    assert f"compare the runs: genlab report {sweep.relative_to(tmp_path)}\n" in result.stdout

    assert report_main([str(sweep), "--metric", "val/d_loss"]) == 0
    markdown = (sweep / "report.md").read_text()
    assert "## Failed runs" in markdown and "MNIST not found" in markdown
    assert "re-run: `genlab train debug=limit" in markdown
    assert "samples/last.png" in markdown
    assert (sweep / "report_val_d_loss.png").stat().st_size > 1000
    with open(sweep / "report.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["completed", "completed", "failed", "failed"]
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


def test_report_plots_every_family_against_generator_updates_not_the_loggers_step(tmp_path):
    from genlab.commands.report import Run, on_progress_axis, progress_axis
    from genlab.commands.report_runs import read_curves

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


def write_summary(folder: Path, overrides: list[str], metrics: dict[str, float] | None = None,
                  status: str = "completed", error: str | None = None) -> Path:
    """A run folder as genlab/run/summary.py leaves it: summary.json with the run's task overrides."""
    folder.mkdir(parents=True)
    summary = {"status": status, "overrides": overrides, "optimized_metric": None,
               "metrics": metrics or {}, "error": error}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def table(markdown: str) -> list[list[str]]:
    """The cells of every row of report.md's table, header and separator included."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines() if line.startswith("|")]


def test_report_labels_single_runs_by_the_overrides_that_differ_in_their_summaries(tmp_path):
    runs = tmp_path / "runs"
    write_summary(runs / "2024-05-01_10-00-00", ["model=vae", "optimizer.lr=0.001"], {"val/loss": 2.0})
    write_summary(runs / "2024-05-01_11-00-00", ["model=vae", "optimizer.lr=0.003"], {"val/loss": 1.0})
    assert report_main([str(runs)]) == 0
    rows = table((runs / "report.md").read_text())[2:]
    assert [(row[1], row[2]) for row in rows] == [
        ("2024-05-01_11-00-00", "`optimizer.lr=0.003`"), ("2024-05-01_10-00-00", "`optimizer.lr=0.001`")]


def test_report_labels_a_run_without_overrides_of_its_own_by_its_folder(tmp_path):
    runs = tmp_path / "runs"
    write_summary(runs / "2024-05-01_10-00-00", [], {"val/loss": 2.0})
    write_summary(runs / "2024-05-01_11-00-00", ["model=vae"], {"val/loss": 1.0})
    assert report_main([str(runs)]) == 0
    labels = [row[2] for row in table((runs / "report.md").read_text())[2:]]
    assert labels == ["`model=vae`", "`2024-05-01_10-00-00`"]


@pytest.mark.parametrize("status, checkpoint_written", [("interrupted", False), ("failed", True)])
def test_report_offers_an_interrupted_run_its_resume_command(tmp_path, status, checkpoint_written):
    run = write_summary(tmp_path / "runs" / "2024-05-01_10-00-00", ["model=vae", "ckpt_path=old.ckpt"],
                        status=status, error="SIGINT received: stopped at step 40 (epoch 1)\n  ...")
    if checkpoint_written:
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "interrupted.ckpt").write_bytes(b"")
    assert report_main([str(tmp_path / "runs")]) == 0
    markdown = (tmp_path / "runs" / "report.md").read_text()
    checkpoint = run / "checkpoints" / "interrupted.ckpt"
    assert f"resume: `genlab train model=vae ckpt_path={checkpoint}`" in markdown
    assert "re-run:" not in markdown and "old.ckpt" not in markdown


def test_resume_command_quotes_a_checkpoint_path_that_hydra_would_split(tmp_path):
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from genlab.commands.report import Run, resume_command

    checkpoint = tmp_path / "1_optimizer.lr=0.001,seed=2" / "checkpoints" / "interrupted.ckpt"
    run = Run(checkpoint.parent.parent, "1_optimizer.lr=0.001,seed=2", "interrupted", ["seed=2"], {}, None, None)
    *_, override = shlex.split(resume_command(run, checkpoint))
    parsed = OverridesParser.create().parse_override(override)
    assert parsed.key_or_group == "ckpt_path" and parsed.value() == str(checkpoint)


def test_report_without_any_metric_writes_as_many_separators_as_header_cells(tmp_path):
    write_summary(tmp_path / "0_seed=1", ["seed=1"])
    write_summary(tmp_path / "1_seed=2", ["seed=2"])
    assert report_main([str(tmp_path)]) == 0
    header, separator, *rows = table((tmp_path / "report.md").read_text())
    assert len(header) == len(separator) == 4 and all(len(row) == 4 for row in rows)
    assert set(separator) == {"---"}


def test_report_without_the_objective_says_no_run_logged_one_and_what_they_logged(tmp_path, capsys):
    write_summary(tmp_path / "0_seed=1", ["seed=1"], {"train/g_loss": 1.0})
    write_summary(tmp_path / "1_seed=2", ["seed=2"], {"train/d_loss": 2.0})
    assert report_main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "sorted by nothing" not in printed
    assert "no run logged a metric to sort by" in printed and "they logged: train/d_loss, train/g_loss" in printed
    assert "no run logged a metric to sort by" in (tmp_path / "report.md").read_text()


def test_report_plot_marks_every_logged_point(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from genlab.commands.report import Run, plot_curves

    markers: list[str] = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, *args, **kwargs: markers.extend(
        line.get_marker() for line in figure.axes[0].lines))
    run = Run(tmp_path, "0_seed=1", "completed", ["seed=1"], {}, None, None, {"val/fid": [(0, 3.0), (10, 2.0)]}, "seed=1")
    plot_curves([run], "val/fid", tmp_path / "plot.png")
    assert markers == ["o"]


def fake_run(folder: Path, overrides: list[str], metrics: dict[str, float], seconds: float) -> None:
    """A completed run as genlab train leaves it for the report: summary.json and its last sample grid."""
    from PIL import Image

    (folder / "samples").mkdir(parents=True)
    Image.new("RGB", (20, 20), (int(metrics["test/fid"]), 0, 0)).save(folder / "samples" / "last.png")
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "overrides": overrides, "metrics": metrics,
                                                     "optimized_metric": None, "error": None, "seconds": seconds}))


def test_mean_over_seed_tabulates_each_recipe_over_its_seeds_with_one_picture_each(tmp_path, capsys):
    # a study: two recipes, three seeds each, judged at the end of training (test/fid)
    fids = {"dcgan": [10.0, 14.0, 12.0], "wgan_gp": [8.0, 9.0, 10.0]}
    for recipe, values in fids.items():
        for seed, fid in enumerate(values):
            fake_run(tmp_path / f"{recipe}_{seed}", [f"recipe={recipe}", f"seed={seed}", "budget.generator_steps=5"],
                     {"test/fid": fid, "val/fid": 2 * fid}, seconds=60.0 * (seed + 1))
    assert report_main([str(tmp_path), "--metric", "test/fid", "--mean-over", "seed"]) == 0
    rows = list(csv.DictReader((tmp_path / "report_groups.csv").open()))
    assert [row["group"] for row in rows] == ["recipe=wgan_gp", "recipe=dcgan"]  # sorted by the mean test/fid
    assert [float(row["test/fid"]) for row in rows] == [9.0, 12.0]
    assert [float(row["test/fid std"]) for row in rows] == [1.0, 2.0] and [row["test/fid n"] for row in rows] == ["3", "3"]
    report = (tmp_path / "report.md").read_text()
    section = report[report.index("## Mean over seed"):]
    assert "| `recipe=wgan_gp` | 3 | 9 ± 1 | 18 ± 2 | 2.0 | ![](grids/recipe=wgan_gp.png) |" in section
    assert "`seed=0`, `seed=1`, `seed=2`" in section
    # each group's first run's grid, copied beside the report, and all of them side by side
    assert (tmp_path / "grids" / "recipe=dcgan.png").is_file() and (tmp_path / "report_grids.png").is_file()
    assert "report_grids.png" in capsys.readouterr().out
