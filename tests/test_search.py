"""Hyper-parameter search on Optuna (hparams_search=...): pruning, a study that a re-run continues,
a grid sweep re-run that runs only its unfinished jobs, one-line errors, and the study's report."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import make_mnist
from genlab.commands.report import main as report_main

GENLAB = str(Path(sys.executable).parent / "genlab")
ROOT = Path(__file__).resolve().parents[1]
# a VAE search whose trials take seconds: two epochs of four batches, no FID (so no domain classifier to train)
SEARCH = ("model=vae", "hparams_search=vae_optuna", "debug=limit", "trainer.enable_progress_bar=false",
          "~callbacks.progress_bar", "~callbacks.sample_quality", "~callbacks.best_checkpoint", "data.val_size=16")
STUDY = Path("outputs/debug/searches/vae_elbo")  # below the working directory: ${paths.log_dir}/${task_name}/searches/<study>


def genlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([GENLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def load(cwd: Path) -> optuna.Study:
    return optuna.load_study(study_name="vae_elbo", storage=f"sqlite:///{cwd / STUDY / 'optuna.db'}")


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_a_pruner_stops_hopeless_trials_which_summary_json_and_the_report_mark_pruned(tmp_path):
    # trials 1 and 2 learn at 1e-7, hopeless beside trial 0 at the first validation: the median rule stops them
    good, hopeless = "{optimizer.lr:0.003,model.latent_dim:8,data.batch_size:32}", "{optimizer.lr:1e-7,model.latent_dim:8,data.batch_size:32}"
    result = genlab("train", *SEARCH, "hydra.sweeper.n_trials=4", "hydra.sweeper.pruner.n_startup_trials=1",
                    "hydra.sweeper.params={optimizer.lr:'tag(log, interval(1e-7, 1e-2))'}",
                    f"hydra.sweeper.enqueue_trials=[{good},{hopeless},{hopeless},{good}]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    study = load(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED, TrialState.COMPLETE]
    folders = [tmp_path / STUDY / f"trial_{n}" for n in range(4)]
    summaries = [summary(folder) for folder in folders]
    assert [s["status"] for s in summaries] == ["completed", "pruned", "pruned", "completed"]
    # a pruned trial stopped at its first validation (4 generator updates), the others trained on (8)
    assert [s["generator_steps"] for s in summaries] == [8, 4, 4, 8]
    assert "pruned by MedianPruner at generator step 4" in summaries[1]["error"]
    # what the study holds is what the trials logged: the value train returns, each reported step
    assert study.best_value == pytest.approx(min(s["metrics"]["val/loss"] for s in summaries if s["status"] == "completed"))
    assert study.trials[1].intermediate_values == {4: pytest.approx(summaries[1]["metrics"]["val/loss"])}
    assert sorted(study.trials[0].intermediate_values) == [4, 8]
    assert "study vae_elbo: 2 complete, 2 pruned, 0 failed" in result.stdout

    assert report_main([str(tmp_path / STUDY)]) == 0
    markdown = (tmp_path / STUDY / "report.md").read_text()
    assert "## Pruned trials" in markdown and "- `trial_1` (`optimizer.lr=1e-07`): trial 1 pruned" in markdown
    assert "re-run:" not in markdown and "## Study `vae_elbo`" in markdown
    assert "| 3 | 1 | pruned |" in markdown  # the study's ranking: completed trials first, then pruned ones
    assert "### Parameter importances" in markdown and "optuna-dashboard sqlite:///" in markdown
    assert (tmp_path / STUDY / "report_study.png").stat().st_size > 1000
    with open(tmp_path / STUDY / "report.csv") as handle:
        assert sorted(r["status"] for r in csv.DictReader(handle)) == ["completed", "completed", "pruned", "pruned"]


def completed_trials(study_folder: Path) -> int:
    """Trials whose summary.json says completed (one being written at this moment counts next time)."""
    count = 0
    for path in study_folder.glob("trial_*/summary.json"):
        try:
            count += json.loads(path.read_text())["status"] == "completed"
        except (json.JSONDecodeError, KeyError):
            pass
    return count


def test_a_search_stopped_after_two_trials_is_continued_to_four_by_the_same_command(tmp_path):
    command = [GENLAB, "train", *SEARCH, "hydra.sweeper.n_trials=4", "hydra/sweeper/pruner=none",
               "hydra.sweeper.sampler.n_startup_trials=2"]
    with open(tmp_path / "first.err", "w") as errors:
        search = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=errors)
        deadline = time.monotonic() + 300
        while completed_trials(tmp_path / STUDY) < 2 and search.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        search.send_signal(signal.SIGTERM)  # as a scheduler's pre-emption would
        assert search.wait(timeout=300) == 128 + signal.SIGTERM
    error_lines = [line for line in (tmp_path / "first.err").read_text().splitlines() if line.startswith("genlab: error:")]
    assert len(error_lines) == 1 and "run the same command again to continue the study" in error_lines[0]
    before = load(tmp_path)
    done_before = [t for t in before.trials if t.state == TrialState.COMPLETE]
    assert 2 <= len(done_before) < 4
    stamps = {t.number: (tmp_path / STUDY / f"trial_{t.number}" / "summary.json").stat().st_mtime_ns for t in done_before}

    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    after = load(tmp_path)
    assert after._study_id == before._study_id  # the same study, continued
    assert sum(t.state == TrialState.COMPLETE for t in after.trials) == 4
    for trial in done_before:  # the earlier trials stay as they were, neither re-run nor rewritten
        assert after.trials[trial.number].value == trial.value and after.trials[trial.number].params == trial.params
        assert (tmp_path / STUDY / f"trial_{trial.number}" / "summary.json").stat().st_mtime_ns == stamps[trial.number]
    # a trial interrupted in training (if the signal came then) was continued from its checkpoint by a new one
    for trial in after.trials:
        if trial.state == TrialState.FAIL:
            (follower,) = [t for t in after.trials if t.user_attrs.get("resumes") == trial.number]
            assert follower.params == trial.params
            assert any(o.startswith("ckpt_path=") for o in summary(tmp_path / STUDY / f"trial_{follower.number}")["overrides"])
            assert summary(tmp_path / STUDY / f"trial_{trial.number}")["continued_in"] == f"trial_{follower.number}"


def test_an_interrupted_trial_comes_back_first_with_its_parameters_and_checkpoint(tmp_path):
    from genlab.search.sweeper import continue_interrupted, counts_as_finished, resume_overrides, unfinished

    study = optuna.create_study()
    distributions = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    done, stopped = study.ask(distributions), study.ask(distributions)
    study.tell(done, 1.0)
    stopped.set_user_attr("status", "interrupted")
    stopped.set_user_attr("folder", "trial_1")
    study.tell(stopped, state=TrialState.FAIL)
    checkpoint = tmp_path / "trial_1" / "checkpoints" / "interrupted.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    (checkpoint.parent / "last.ckpt").write_bytes(b"")
    os.utime(checkpoint.parent / "last.ckpt", ns=(1, 1))  # the epoch's checkpoint came before the signal's

    assert [counts_as_finished(t) for t in study.trials] == [True, False]
    assert continue_interrupted(study) == [1]
    follower = study.ask(distributions)
    assert follower.params == study.trials[1].params and follower.user_attrs["resumes"] == 1
    assert resume_overrides(follower.user_attrs, tmp_path) == [f"ckpt_path={checkpoint}"]  # the later checkpoint
    assert unfinished(study.get_trials()) == [] and continue_interrupted(study) == []  # continued once only


def test_a_trial_whose_process_died_is_known_by_its_missed_heartbeats_and_continued(tmp_path):
    from genlab.search.storage import open_storage
    from genlab.search.sweeper import Heartbeat, continue_interrupted, quiet_optuna

    quiet_optuna()
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1)  # stale after 2 s without a beat
    study = optuna.create_study(study_name="s", storage=storage)
    dead = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)})
    Heartbeat(storage, 1).add(dead._trial_id)  # it beat once, then its machine went away
    optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state == TrialState.RUNNING  # beating recently: alive
    time.sleep(3.5)  # the grace period, 2 s, at the database clock's one-second resolution
    optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state == TrialState.FAIL and "status" not in study.trials[0].user_attrs
    assert continue_interrupted(study) == [0]  # run again with its parameters, like an interrupted trial


def test_a_grid_sweep_run_again_with_resume_sweep_runs_only_its_failed_job(tmp_path):
    # job 1 fails for want of its data set; once the files are there, the re-run trains it and leaves job 0 alone
    sweep = tmp_path / "outputs" / "sweep"
    args = ("train", "-m", "data=mnist_mini,mnist", "model.latent_dim=8", "model.net.generator.base_channels=8",
            "model.net.discriminator.base_channels=8", *SEARCH[2:], f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=job_${hydra.job.num}")
    first = genlab(*args, cwd=tmp_path)
    assert first.returncode != 0
    assert [summary(sweep / f"job_{n}")["status"] for n in (0, 1)] == ["completed", "failed"]
    kept = {p: p.stat().st_mtime_ns for p in (sweep / "job_0").rglob("*") if p.is_file() and ".hydra" not in p.parts and p.suffix != ".log"}
    make_mnist(tmp_path / "data")
    # the report of the sweep names the command that runs it again in its folder
    assert report_main([str(sweep)]) == 0
    (command,) = [line.strip() for line in (sweep / "report.md").read_text().splitlines() if line.startswith("    genlab train -m")]
    assert command.endswith(f"resume_sweep=true hydra.sweep.dir={sweep}")

    again = genlab(*shlex.split(command)[1:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [summary(sweep / f"job_{n}")["status"] for n in (0, 1)] == ["completed", "completed"]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # job 0: not one file written again
    assert sorted(p.name for p in (sweep / "job_0").rglob("*") if p.is_file() and ".hydra" not in p.parts and p.suffix != ".log") \
        == sorted(p.name for p in kept)
    assert "job_0 completed before; not run again" in (sweep / "job_0" / "train.log").read_text()
    assert (sweep / "job_1" / "checkpoints" / "last.ckpt").is_file()
    assert report_main([str(sweep)]) == 0
    assert "resume_sweep" not in (sweep / "report.md").read_text()  # how it was launched is no setting of the run


def test_the_report_offers_a_search_trial_a_single_run_command_not_a_new_search(tmp_path):
    from genlab.commands.report import Run, rerun_command, resume_command

    run = Run(tmp_path / "trial_3", "trial_3", "failed", ["model=vae", "hparams_search=vae_optuna", "optimizer.lr=0.001"], {}, "val/loss", None)
    assert rerun_command(run) == "genlab train model=vae optimizer.lr=0.001"
    assert resume_command(run, tmp_path / "last.ckpt") == f"genlab train model=vae optimizer.lr=0.001 ckpt_path={tmp_path / 'last.ckpt'}"


def test_resume_sweep_continues_an_unfinished_job_from_its_checkpoint_in_its_own_folder(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    import genlab.search.rerun as rerun

    job = tmp_path / "job_1"
    (job / "checkpoints").mkdir(parents=True)
    (job / ".hydra").mkdir()
    (job / "checkpoints" / "last.ckpt").write_bytes(b"")
    (job / "summary.json").write_text(json.dumps({"status": "failed", "metrics": {}}))
    cfg = OmegaConf.create({"resume_sweep": True, "ckpt_path": None, "resume_in": "new", "optimized_metric": "val/loss",
                            "paths": {"output_dir": str(job)}})
    monkeypatch.setattr(rerun, "in_sweep", lambda: True)
    assert rerun.earlier_result(cfg) is None  # failed: run again ...
    resumed = rerun.resumed_in_place(cfg)
    assert (resumed.ckpt_path, resumed.resume_in) == (str(job / "checkpoints" / "last.ckpt"), "same")  # ... from its checkpoint
    (job / "checkpoints" / "interrupted.ckpt").write_bytes(b"")  # an older signal's checkpoint gives way to a later epoch's
    os.utime(job / "checkpoints" / "interrupted.ckpt", ns=(1, 1))
    assert rerun.resumed_in_place(cfg).ckpt_path == str(job / "checkpoints" / "last.ckpt")
    (job / "summary.json").write_text(json.dumps({"status": "completed", "metrics": {"val/loss": 2.5}}))
    assert rerun.earlier_result(cfg).value == 2.5
    monkeypatch.setattr(rerun, "in_sweep", lambda: False)  # a single run ignores the flag
    assert rerun.earlier_result(cfg) is None and rerun.resumed_in_place(cfg) is None


@pytest.mark.parametrize("override, key, leaves_folder", [
    ("optimizer.lrr=tag(log,interval(1e-4,1e-3))", "hydra.sweeper.params.optimizer.lrr", False),
    ("hydra.sweeper.storage=nosuchdb://somewhere/optuna", "hydra.sweeper.storage='nosuchdb://somewhere/optuna'", False),
    ("optimized_metric=val/never_logged", "optimized_metric='val/never_logged'", True),
])
def test_bad_search_input_is_one_line_naming_the_key(tmp_path, override, key, leaves_folder):
    result = genlab("train", *SEARCH, "hydra.sweeper.n_trials=3", override, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith(f"genlab: error: {key}")
    assert "Traceback" not in result.stdout + result.stderr
    assert (tmp_path / "outputs").exists() == leaves_folder  # refused before a trial: nothing left behind
    if leaves_folder:  # the metric is known missing after one trial; the search stops there, not after three
        assert [t.state for t in load(tmp_path).trials] == [TrialState.FAIL]


def test_the_search_space_reads_hydras_sweep_grammar():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from genlab.search.space import SearchSpace, trial_overrides

    space = SearchSpace.parse({"optimizer.lr": "tag(log, interval(1e-5, 1e-2))", "model.latent_dim": "choice(8, 16)",
                               "data.batch_size": "range(16, 65, 16)", "seed": "3"}, ["model/net=mlp,dcgan", "+extra.width=tag(int, interval(1, 9))"])
    d = space.distributions
    assert (d["optimizer.lr"].low, d["optimizer.lr"].high, d["optimizer.lr"].log) == (1e-5, 1e-2, True)
    assert d["model.latent_dim"].choices == (8, 16) and d["model/net"].choices == ("mlp", "dcgan")
    assert (d["data.batch_size"].low, d["data.batch_size"].high, d["data.batch_size"].step) == (16, 64, 16)
    assert isinstance(d["+extra.width"], optuna.distributions.IntDistribution)
    assert space.fixed == ["seed=3"]  # a plain value is given to every trial, not searched
    parser = OverridesParser.create()
    sampled = {"optimizer.lr": 1.2345678901234567e-4, "model/net": "dcgan", "name": "a b,c"}
    for line, value in zip(trial_overrides(sampled), sampled.values(), strict=True):
        assert parser.parse_override(line).value() == value  # what a trial is given is exactly what Optuna drew


def test_installing_genlab_pulls_the_current_optuna_line_not_optuna_2():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    assert "hydra-optuna-sweeper" not in requirements
    assert not requirements["optuna"].specifier.contains("2.10.1") and not requirements["optuna"].specifier.contains("3.6.2")
    assert requirements["optuna"].specifier.contains("5.0.0") and int(optuna.__version__.split(".")[0]) >= 4
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert "hydra_plugins.genlab_optuna_sweeper" in packages and "genlab.search" in packages
