"""Hyper-parameter search on Optuna (hparams_search=...): pruning, a study that a re-run continues,
a grid sweep re-run that runs only its unfinished jobs, one-line errors, and the study's report."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import pytorch_lightning as pl
from optuna.trial import TrialState

from tests.conftest import Finished, make_mnist, run_genlab
from genlab.commands.report import main as report_main

ROOT = Path(__file__).resolve().parents[1]
# a VAE search whose trials take seconds: two epochs of four batches, no FID (so no domain classifier to train)
SEARCH = ("model=vae", "hparams_search=vae_optuna", "debug=limit", "trainer.enable_progress_bar=false",
          "~callbacks.progress_bar", "~callbacks.sample_quality", "~callbacks.best_checkpoint", "data.val_size=16")
STUDY = Path("outputs/debug/searches/vae_elbo")  # below the working directory: ${paths.log_dir}/${task_name}/searches/<study>


def genlab(*args: str, cwd: Path) -> Finished:
    """`genlab <args>` from `cwd`, in this process (tests/conftest.py's run_genlab)."""
    return run_genlab(*args, cwd=cwd)


def load(cwd: Path) -> optuna.Study:
    return optuna.load_study(study_name="vae_elbo", storage=f"sqlite:///{cwd / STUDY / 'optuna.db'}")


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.mark.slow
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
    # a pruned trial stopped at its first validation (epoch 1, 4 generator updates), the others trained on (8)
    assert [s["generator_steps"] for s in summaries] == [8, 4, 4, 8]
    assert "pruned by MedianPruner at epoch 1" in summaries[1]["error"]
    # what the study holds is what the trials logged: the value train returns, each reported epoch
    assert study.best_value == pytest.approx(min(s["metrics"]["val/loss"] for s in summaries if s["status"] == "completed"))
    assert study.trials[1].intermediate_values == {1: pytest.approx(summaries[1]["metrics"]["val/loss"])}
    assert sorted(study.trials[0].intermediate_values) == [1, 2]
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


class SigtermInTraining(pl.Callback):
    """Test-only (`+callbacks.sigterm=...`): SIGTERM to its own process at generator step `step` of Optuna
    trial `trial`, as a scheduler's pre-emption would send it in the middle of training."""

    def __init__(self, trial: int, step: int) -> None:
        self.trial, self.step = trial, step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if os.environ.get("GENLAB_OPTUNA_TRIAL") == str(self.trial) and pl_module.generator_steps == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def in_this_process(*args: str, cwd: Path) -> Finished:
    """genlab(...), then this process's environment as it was: Hydra's env_set leaves the last trial's numbers in it."""
    trial_environment = {name: os.environ.get(name) for name in ("GENLAB_OPTUNA_TRIAL", "GENLAB_OPTUNA_TRIAL_ID")}
    try:
        return genlab(*args, cwd=cwd)
    finally:
        for name, value in trial_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.mark.slow
def test_a_trial_stopped_in_training_is_continued_from_its_checkpoint_by_the_next_command(tmp_path):
    # trial 1 gets SIGTERM at generator step 6 of 8 (in its second epoch): the search stops; the same command
    # then continues trial 1 from its checkpoint as trial 2, which brings the study to n_trials=2. Both commands run
    # in this process: the callback signals the process it runs in, which genlab's handler catches either way
    sigterm = "+callbacks.sigterm={_target_:tests.test_search.SigtermInTraining,trial:1,step:6}"
    args = ("train", *SEARCH, "hydra.sweeper.n_trials=2", "hydra/sweeper/pruner=none", sigterm)
    handler = signal.getsignal(signal.SIGTERM)
    first = in_this_process(*args, cwd=tmp_path)
    assert first.returncode == 128 + signal.SIGTERM, first.stderr[-2000:]
    assert signal.getsignal(signal.SIGTERM) == handler, "genlab's SIGTERM handler was left installed"
    error_lines = [line for line in first.stderr.splitlines() if line.startswith("genlab: error:")]
    assert len(error_lines) == 1 and "trial 1 was interrupted" in error_lines[0] and "run the same command again" in error_lines[0]
    before = load(tmp_path)
    assert [(t.state, t.user_attrs.get("status")) for t in before.trials] == \
        [(TrialState.COMPLETE, "completed"), (TrialState.FAIL, "interrupted")]
    assert summary(tmp_path / STUDY / "trial_1")["status"] == "interrupted"
    assert (tmp_path / STUDY / "trial_1" / "checkpoints" / "interrupted.ckpt").is_file()
    stamp = (tmp_path / STUDY / "trial_0" / "summary.json").stat().st_mtime_ns

    # the same command again (no signal is sent this time: trial 1 is not run again)
    again = in_this_process(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    after = load(tmp_path)
    assert after._study_id == before._study_id  # the same study, continued
    assert [t.state for t in after.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    # the completed trial stays as it was, neither re-run nor rewritten
    assert after.trials[0].value == before.trials[0].value and after.trials[0].params == before.trials[0].params
    assert (tmp_path / STUDY / "trial_0" / "summary.json").stat().st_mtime_ns == stamp
    (follower,) = [t for t in after.trials if t.user_attrs.get("resumes") == 1]
    assert follower.number == 2 and follower.params == after.trials[1].params
    resumed = summary(tmp_path / STUDY / "trial_2")
    assert f"ckpt_path={tmp_path / STUDY / 'trial_1' / 'checkpoints' / 'interrupted.ckpt'}" in resumed["overrides"]
    assert resumed["status"] == "completed" and resumed["generator_steps"] == 8  # 6 before the signal, 2 after
    assert summary(tmp_path / STUDY / "trial_1")["continued_in"] == "trial_2"
    assert "study vae_elbo: 2 complete, 0 pruned, 0 failed, 1 interrupted" in again.stdout


def test_an_interrupted_trial_comes_back_first_with_its_parameters_and_checkpoint(tmp_path):
    from genlab.search.trials import continue_interrupted, counts_as_finished, resume_overrides, unfinished

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


@pytest.mark.slow
def test_a_trial_whose_process_died_is_known_by_its_missed_heartbeats_and_continued(tmp_path):
    from genlab.search.signals import Heartbeat
    from genlab.search.storage import open_storage
    from genlab.search.sweeper import quiet_optuna
    from genlab.search.trials import continue_interrupted

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


@pytest.mark.slow
def test_a_grid_sweep_run_again_with_resume_sweep_runs_only_its_failed_job(tmp_path):
    # job 1 fails for want of its data set; once the files are there, the re-run trains it and leaves job 0 alone
    sweep = tmp_path / "outputs" / "sweep"
    args = ("train", "-m", "data=mnist_mini,mnist", "model.latent_dim=8", "model.net.generator.base_channels=8",
            "model.net.discriminator.base_channels=8", *SEARCH[2:], f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=job_${hydra.job.num}")
    first = genlab(*args, cwd=tmp_path)
    assert first.returncode != 0
    assert [summary(sweep / f"job_{n}")["status"] for n in (0, 1)] == ["completed", "failed"]
    kept = {p: p.stat().st_mtime_ns for p in (sweep / "job_0").rglob("*") if p.is_file() and p.suffix != ".log"}
    assert (sweep / "job_0" / ".hydra" / "overrides.yaml") in kept
    make_mnist(tmp_path / "data")
    # the report of the sweep names the command that runs it again in its folder
    assert report_main([str(sweep)]) == 0
    (command,) = [line.strip() for line in (sweep / "report.md").read_text().splitlines() if line.startswith("    genlab train -m")]
    assert command.endswith(f"resume_sweep=true hydra.sweep.dir={sweep}")

    again = genlab(*shlex.split(command)[1:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [summary(sweep / f"job_{n}")["status"] for n in (0, 1)] == ["completed", "completed"]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # job 0: not one file written again, its .hydra/ included
    (continued,) = (sweep / "job_0" / ".hydra").glob("continued_*")  # the re-run is recorded beside it
    assert sorted(p.name for p in continued.iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert sorted(p for p in (sweep / "job_0").rglob("*") if p.is_file() and p.suffix != ".log" and continued not in p.parents) \
        == sorted(kept)
    assert "job_0 completed before; not run again" in (sweep / "job_0" / "train.log").read_text()
    assert (sweep / "job_1" / "checkpoints" / "last.ckpt").is_file()
    assert report_main([str(sweep)]) == 0
    assert "resume_sweep" not in (sweep / "report.md").read_text()  # how it was launched is no setting of the run


def test_the_report_offers_a_search_trial_a_single_run_command_not_a_new_search(tmp_path):
    from genlab.commands.report import Run, rerun_command, resume_command

    run = Run(tmp_path / "trial_3", "trial_3", "failed", ["model=vae", "hparams_search=vae_optuna", "optimizer.lr=0.001"], {}, "val/loss", None)
    assert rerun_command(run) == "genlab train model=vae optimizer.lr=0.001"
    assert resume_command(run, tmp_path / "last.ckpt") == f"genlab train model=vae optimizer.lr=0.001 ckpt_path={tmp_path / 'last.ckpt'}"


def test_resume_sweep_continues_an_unfinished_job_from_its_checkpoint_in_its_own_folder(tmp_path):
    from omegaconf import OmegaConf

    import genlab.run.sweep_rerun as rerun

    job = tmp_path / "job_1"
    (job / "checkpoints").mkdir(parents=True)
    (job / ".hydra").mkdir()
    (job / "checkpoints" / "last.ckpt").write_bytes(b"")
    (job / "summary.json").write_text(json.dumps({"status": "failed", "metrics": {}}))
    cfg = OmegaConf.create({"resume_sweep": True, "ckpt_path": None, "resume_in": "new", "optimized_metric": "val/loss",
                            "paths": {"output_dir": str(job)}})
    assert rerun.earlier_result(cfg, in_sweep=True) is None  # failed: run again ...
    resumed = rerun.resumed_in_place(cfg, in_sweep=True)
    assert (resumed.ckpt_path, resumed.resume_in) == (str(job / "checkpoints" / "last.ckpt"), "same")  # ... from its checkpoint
    (job / "checkpoints" / "interrupted.ckpt").write_bytes(b"")  # an older signal's checkpoint gives way to a later epoch's
    os.utime(job / "checkpoints" / "interrupted.ckpt", ns=(1, 1))
    assert rerun.resumed_in_place(cfg, in_sweep=True).ckpt_path == str(job / "checkpoints" / "last.ckpt")
    (job / "summary.json").write_text(json.dumps({"status": "completed", "metrics": {"val/loss": 2.5}}))
    assert rerun.earlier_result(cfg, in_sweep=True).value == 2.5
    # a single run ignores the flag
    assert rerun.earlier_result(cfg, in_sweep=False) is None and rerun.resumed_in_place(cfg, in_sweep=False) is None


@pytest.mark.parametrize("override, key, leaves_folder", [
    ("optimizer.lrr=tag(log,interval(1e-4,1e-3))", "hydra.sweeper.params.optimizer.lrr", False),
    ("hydra.sweeper.storage=nosuchdb://somewhere/optuna", "hydra.sweeper.storage='nosuchdb://somewhere/optuna'", False),
    ("hydra.sweeper.trial_devices=1", "hydra.sweeper.trial_devices=1 is not valid", False),
    ("hydra.sweeper.enqueue_trials=[1]", "hydra.sweeper.enqueue_trials[0]=1 is not valid", False),
    ("hydra.sweeper.heartbeat_interval=-5", "hydra.sweeper.heartbeat_interval=-5 is not valid", False),
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


def validate(callback, epoch: int, updates_per_epoch: int, value: float) -> None:
    """One validation epoch of a trial, as the pruning callback sees it: Lightning's epoch index, the
    module's generator updates so far, and the logged metric."""
    import torch

    trainer = SimpleNamespace(sanity_checking=False, current_epoch=epoch, callback_metrics={"val/loss": torch.tensor(value)})
    module = SimpleNamespace(generator_steps=(epoch + 1) * updates_per_epoch, progress=SimpleNamespace(axis=lambda: {}))
    callback.on_validation_end(trainer, module)


def test_pruning_compares_trials_at_the_same_epoch_whatever_their_generator_updates_per_epoch():
    from genlab.search.outcomes import TrialPruned
    from genlab.search.pruning import OptunaPruning

    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    good, callback = study.ask(), OptunaPruning("val/loss")
    callback.trial = good
    for epoch in range(3):  # data.batch_size=32: 100 generator updates an epoch
        validate(callback, epoch, 100, 1.0 - 0.1 * epoch)
    study.tell(good, 0.8)
    assert good.study.trials[0].intermediate_values == pytest.approx({1: 1.0, 2: 0.9, 3: 0.8})

    hopeless, callback = study.ask(), OptunaPruning("val/loss")
    callback.trial = hopeless
    with pytest.raises(TrialPruned, match=r"trial 1 pruned by MedianPruner at epoch 1: val/loss=50"):
        validate(callback, 0, 25, 50.0)  # data.batch_size=128: 25 updates an epoch, yet compared at epoch 1


def test_a_trial_under_ddp_is_refused_before_it_trains_since_a_pruned_rank_would_leave_the_others_waiting(monkeypatch):
    from genlab.errors import ConfigError
    from genlab.search.pruning import OptunaPruning

    with pytest.raises(ConfigError, match=r"^trainer.devices: an Optuna trial trains on one device, not 2 processes"):
        OptunaPruning("val/loss", trial_id=7).setup(SimpleNamespace(world_size=2, is_global_zero=True), None, "fit")
    # a plain run under DDP (no trial id): nothing to do
    OptunaPruning("val/loss", trial_id=None).setup(SimpleNamespace(world_size=2, is_global_zero=True), None, "fit")


def test_a_trial_that_ends_with_a_nan_metric_fails_for_good_and_is_not_run_again(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus

    from genlab.search.trials import counts_as_finished, settle, unfinished

    study = optuna.create_study()
    for number, value in enumerate((float("nan"), None)):
        trial = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)})
        (tmp_path / f"trial_{number}").mkdir()
        (tmp_path / f"trial_{number}" / "summary.json").write_text(json.dumps({"status": "completed", "metrics": {}}))
        assert settle(study, trial, JobReturn(status=JobStatus.COMPLETED, _return_value=value), tmp_path, "val/loss") is None
    nan, missing = study.trials
    assert (nan.state, nan.user_attrs["status"]) == (TrialState.FAIL, "failed")
    assert nan.user_attrs["error"] == "optimized_metric='val/loss' is NaN at the end of this trial"
    assert missing.user_attrs["error"] == "optimized_metric='val/loss' was never logged by this trial"
    assert all(counts_as_finished(t) for t in study.trials) and unfinished(study.trials) == []


def test_two_commands_continue_an_interrupted_trial_once(tmp_path):
    from genlab.search.trials import continue_interrupted, fail_duplicate, is_duplicate

    study = optuna.create_study()
    stopped = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)})
    stopped.set_user_attr("status", "interrupted")
    study.tell(stopped, state=TrialState.FAIL)
    assert continue_interrupted(study, "first command") == [0]
    assert continue_interrupted(study, "second command") == []  # claimed by the first
    # had both enqueued it (claims at the same moment), the second follower is dropped at launch
    study.enqueue_trial(stopped.params, user_attrs={"resumes": 0, "resumes_folder": "trial_0"})
    first, second = study.ask(), study.ask()
    assert not is_duplicate(study, first) and is_duplicate(study, second)
    fail_duplicate(study, second)
    assert study.trials[2].user_attrs["status"] == "duplicate" and continue_interrupted(study, "third") == []


def test_the_report_of_a_search_ranks_its_runs_by_the_studys_direction(tmp_path):
    # val/loss is lower-is-better by name; this study maximizes it, so run_b (2.0) comes first
    optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}", direction="maximize")
    (tmp_path / "study.yaml").write_text("study_name: s\nstorage: null\ndirection: maximize\noptimized_metric: val/loss\n")
    for name, value in (("run_a", 1.0), ("run_b", 2.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(
            {"status": "completed", "overrides": [f"seed={int(value)}"], "metrics": {"val/loss": value}, "optimized_metric": "val/loss"}))
    assert report_main([str(tmp_path)]) == 0
    with open(tmp_path / "report.csv") as handle:
        assert [row["run"] for row in csv.DictReader(handle)] == ["run_b", "run_a"]
    assert "Sorted by val/loss (higher is better)." in (tmp_path / "report.md").read_text()


def test_a_storage_that_fails_during_the_search_is_one_line_naming_hydra_sweeper_storage(tmp_path, monkeypatch, capsys):
    import sqlalchemy.exc

    from genlab.search.sweeper import OptunaSearch

    search = object.__new__(OptunaSearch)
    search.settings, search.config, search.storage_url = {}, None, "sqlite:///x.db"
    search.sweep_dir = tmp_path / "search"

    def lose_database(settings, config):
        raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, Exception("database is locked"))

    monkeypatch.setattr("genlab.search.sweeper.check_settings", lose_database)
    with pytest.raises(SystemExit) as stopped:
        search.sweep([])
    assert stopped.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("genlab: error: hydra.sweeper.storage=sqlite:///x.db: the study's storage failed") and "database is locked" in line


def test_every_pruner_and_sampler_option_builds():
    from omegaconf import OmegaConf

    from genlab.search.builders import build_pruner, build_sampler

    options = ROOT / "configs" / "hydra" / "sweeper"
    pruners = [build_pruner(OmegaConf.load(p)) for p in sorted((options / "pruner").glob("*.yaml"))]
    samplers = [build_sampler(OmegaConf.load(p), previous_trials=3) for p in sorted((options / "sampler").glob("*.yaml"))]
    assert {type(p).__name__ for p in pruners} == {"HyperbandPruner", "MedianPruner", "NopPruner", "SuccessiveHalvingPruner"}
    assert {type(s).__name__ for s in samplers} == {"RandomSampler", "TPESampler"}


def test_every_python_package_folder_ships_in_the_wheel():
    packages = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for top in ("genlab", "hydra_plugins") for p in (ROOT / top).rglob("__init__.py")}
    assert folders - packages == set()
