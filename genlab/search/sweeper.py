"""The Optuna search loop behind `genlab train hparams_search=...`: ask the study for trials, launch
them through Hydra's launcher (in parallel with hydra/launcher=parallel), tell the study how each ended.

A study lives in a storage (genlab.search.storage), so re-running the same command continues it:
`n_trials` counts the study's finished trials, whoever ran them (another machine on the same
storage, or an earlier run of this command). A trial stopped by Ctrl-C or SIGTERM (or whose
process died) is run again from its checkpoint; a pruned trial counts as finished.
"""

from __future__ import annotations

import logging
import shutil
import signal
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from genlab.errors import ConfigError, GenlabError, exit_with, first_line
from genlab.run.folder import first_missing
from genlab.search.builders import build_pruner, build_sampler
from genlab.search.checks import check_enqueued, check_keys, check_known, check_settings
from genlab.search.space import SearchSpace, trial_overrides
from genlab.search.storage import dashboard_command, open_storage, storage_url
from genlab.search.study_report import STUDY_FILE  # `genlab report <folder>` finds the study through it
from genlab.search.trial import job_environment
from genlab.search.trials import (abandon, continue_interrupted, counts_as_finished, fail_duplicate, is_duplicate,
                                  resume_overrides, settle)

if TYPE_CHECKING:  # genlab.search.signals imports Lightning: only once a search starts, so a refused one answers at once
    from genlab.search.signals import Heartbeat

log = logging.getLogger("genlab")

# user attributes of the study: the overrides every trial shares, so another command cannot mix in
FIXED_OVERRIDES, OPTIMIZED_METRIC = "fixed_overrides", "optimized_metric"


def storage_errors() -> tuple[type[BaseException], ...]:
    """What a database or journal that went away (or locked up) raises in the middle of a search."""
    import sqlalchemy.exc

    return (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError)


class OptunaSearch:
    """One command's part of a study: validate everything first, then trials in batches of n_jobs."""

    def __init__(self, settings: Mapping[str, Any], *, hydra_context: HydraContext, task_function: TaskFunction,
                 config: DictConfig) -> None:
        try:
            check_known(settings)
        except ConfigError as error:
            exit_with(error)
        self.settings = dict(settings)
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.heartbeat: Heartbeat | None = None
        self.token = uuid.uuid4().hex  # this command, in the study's claims on interrupted trials

    # ---- the study ----

    def open_study(self, space: SearchSpace) -> optuna.Study:
        name, url = self.settings["study_name"], storage_url(self.settings.get("storage"), self.sweep_dir)
        if not self.settings.get("storage"):
            self.sweep_dir.mkdir(parents=True, exist_ok=True)  # the default database lives in the search's folder
        storage = open_storage(url, self.settings.get("heartbeat_interval"), self.settings.get("heartbeat_grace_period"))
        self.storage_url = url
        exists = name in optuna.get_all_study_names(storage)
        if not exists and list(self.sweep_dir.glob("trial_*")):
            raise ConfigError(
                f"{self.sweep_dir} holds trial folders, but hydra.sweeper.storage={url} has no study {name!r}:"
                " its trials would overwrite them; choose another hydra.sweep.dir or hydra.sweeper.study_name")
        previous = 0 if not exists else len(optuna.load_study(study_name=name, storage=storage).trials)
        sampler, pruner = build_sampler(self.settings.get("sampler"), previous), build_pruner(self.settings.get("pruner"))
        fixed = sorted(space.fixed)
        if not exists:
            try:  # of two commands creating the study together, the one that creates it enqueues enqueue_trials
                study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                            direction=self.settings["direction"])
            except optuna.exceptions.DuplicatedStudyError:
                exists = True
            else:
                study.set_user_attr(FIXED_OVERRIDES, fixed)
                study.set_user_attr(OPTIMIZED_METRIC, self.config.optimized_metric)
                for params in self.settings.get("enqueue_trials") or []:
                    study.enqueue_trial(dict(params))
                return study
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        if study.direction.name.lower() != self.settings["direction"]:
            raise ConfigError(
                f"hydra.sweeper.direction={self.settings['direction']} differs from study {name!r}, which was made to"
                f" {study.direction.name.lower()}: keep it, or choose another hydra.sweeper.study_name")
        before = study.user_attrs.get(FIXED_OVERRIDES)
        if before is not None and before != fixed:
            raise ConfigError(
                f"study {name!r} in {url} was run with the overrides {before}, this command has {fixed}: repeat them to"
                " continue that study, or choose another hydra.sweeper.study_name for a new one")
        return study

    def write_study_file(self) -> None:
        """study.yaml in the search's folder: where `genlab report` and optuna-dashboard find the study.
        The default storage is recorded as null (SQLite beside study.yaml), so a moved folder still reports."""
        record = {
            "study_name": self.settings["study_name"], "storage": self.settings.get("storage") or None,
            "direction": self.settings["direction"], "optimized_metric": self.config.optimized_metric,
            "dashboard": dashboard_command(self.storage_url),
        }
        OmegaConf.save(OmegaConf.create(record), self.sweep_dir / STUDY_FILE)

    # ---- trials ----

    def remaining(self, study: optuna.Study) -> int:
        """Trials still to ask for. Two commands on one study may each ask for the last ones at the same
        moment, so a study can end with up to n_jobs - 1 trials more per extra command (docs/search.md)."""
        trials = study.get_trials(deepcopy=False)
        taken = sum(counts_as_finished(t) or t.state == TrialState.RUNNING for t in trials)
        return self.settings["n_trials"] - taken

    def enqueue_unfinished(self, study: optuna.Study) -> None:
        if self.heartbeat and self.heartbeat.enabled:
            optuna.storages.fail_stale_trials(study)  # trials whose process died, known by their missed heartbeats
        for number in continue_interrupted(study, self.token):
            log.info("trial %d was interrupted: it goes on from its checkpoint", number)

    def overrides(self, trial: optuna.Trial, space: SearchSpace, slot: int) -> list[str]:
        overrides = space.fixed + trial_overrides(trial.params) + resume_overrides(trial.user_attrs, self.sweep_dir)
        devices = self.settings.get("trial_devices")
        if devices:
            overrides.append(f"trainer.devices=[{list(devices)[slot % len(devices)]}]")
        return overrides + job_environment(trial._trial_id, trial.number)

    def ask(self, study: optuna.Study, space: SearchSpace, count: int) -> list[optuna.Trial]:
        """`count` trials, without a duplicate continuation of an interrupted trial (another command's)."""
        trials = []
        for _ in range(count):
            trial = study.ask(space.distributions)
            if is_duplicate(study, trial):
                log.info("trial %d would continue trial %s, which another command continues: dropped",
                         trial.number, trial.user_attrs.get("resumes"))
                fail_duplicate(study, trial)
                continue
            trials.append(trial)
        return trials

    def run(self, study: optuna.Study, space: SearchSpace) -> tuple[list[Sequence[JobReturn]], GenlabError | None]:
        from genlab.search.signals import StopOnSignal

        returns: list[Sequence[JobReturn]] = []
        n_jobs = self.settings.get("n_jobs", 1)
        metric = self.config.optimized_metric
        with StopOnSignal() as signals:
            while signals.received is None:
                remaining = self.remaining(study)
                if remaining <= 0:
                    break
                trials: list[optuna.Trial] = []
                settled: set[int] = set()
                try:  # from ask to tell: a trial this command cannot see to its end is left for the next one
                    trials = self.ask(study, space, min(n_jobs, remaining))
                    if not trials:
                        continue
                    for trial in trials:
                        self.heartbeat.add(trial._trial_id)
                    batch = [self.overrides(trial, space, slot) for slot, trial in enumerate(trials)]
                    results = self.launcher.launch(batch, initial_job_idx=trials[0].number)
                    returns.append(results)
                    stops = []
                    for trial, result in zip(trials, results, strict=True):
                        stops.append(settle(study, trial, result, self.sweep_dir, metric))
                        settled.add(trial.number)
                except BaseException:  # a second Ctrl-C, a launcher's or storage's failure
                    for trial in trials:
                        if trial.number not in settled:
                            try:
                                abandon(study, trial)
                            except Exception:  # the storage itself failed: its heartbeats stop, so it goes stale
                                pass
                    raise
                finally:
                    self.heartbeat.trial_ids.clear()
                stop = next((s for s in stops if s is not None), None)
                if stop is not None:
                    return returns, stop
        if signals.received is not None:
            name = signal.Signals(signals.received).name
            stop = GenlabError(f"{name} received: the search stopped; run the same command again to continue the study")
            stop.exit_code = 128 + signals.received
            return returns, stop
        return returns, None

    def report(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state == TrialState.COMPLETE]
        pruned = sum(t.state == TrialState.PRUNED for t in trials)
        failed = sum(t.state == TrialState.FAIL and counts_as_finished(t) for t in trials)
        interrupted = sum(t.state == TrialState.FAIL and not counts_as_finished(t) and t.user_attrs.get("status") != "duplicate"
                          for t in trials)
        print(f"study {study.study_name}: {len(finished)} complete, {pruned} pruned, {failed} failed"
              + (f", {interrupted} interrupted (continued by later trials or the next run)" if interrupted else "")
              + f" ({self.storage_url})", flush=True)
        if finished:
            best = study.best_trial
            params = " ".join(trial_overrides(best.params))
            print(f"best: trial {best.number}, {self.config.optimized_metric}={best.value:.6g}  {params}", flush=True)
        print(f"dashboard: {dashboard_command(self.storage_url)}", flush=True)

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        quiet_optuna()
        created = first_missing(self.sweep_dir)  # removed again if the search is refused before its first trial
        started = False
        try:
            try:
                check_settings(self.settings, self.config)
                space = SearchSpace.parse(self.settings.get("params"), list(arguments))
                check_keys(space, self.hydra_context, self.config)
                check_enqueued(self.settings, space)
                study = self.open_study(space)
                self.sweep_dir.mkdir(parents=True, exist_ok=True)
                self.write_study_file()
                from genlab.search.signals import Heartbeat

                self.heartbeat = Heartbeat(study._storage, self.settings.get("heartbeat_interval"))
                with self.heartbeat:
                    self.enqueue_unfinished(study)
                    started = True
                    returns, stop = self.run(study, space)
                self.report(study)
            except storage_errors() as error:
                lost = GenlabError(
                    f"hydra.sweeper.storage={self.storage_url_or_setting()}: the study's storage failed during the search"
                    f" ({first_line(error)}); run the same command again once it answers: unfinished trials go on from their checkpoints")
                lost.exit_code = 1
                raise lost from error
            if stop is not None:
                raise stop
            return returns
        except GenlabError as error:
            if created is not None and not started:
                shutil.rmtree(created, ignore_errors=True)
            exit_with(error)
            raise

    def storage_url_or_setting(self) -> str:
        return getattr(self, "storage_url", None) or str(self.settings.get("storage"))


def quiet_optuna() -> None:
    """Optuna warns that heartbeats (and failing stale trials) are experimental and meant for
    Study.optimize; this loop records them itself (Heartbeat), so the warnings say nothing to a user."""
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # genlab prints the study's state itself, at the end
    warnings.filterwarnings("ignore", message=r"Argument ``heartbeat_interval`` is an experimental feature")
    warnings.filterwarnings("ignore", message=r"Argument ``grace_period`` is an experimental feature")
    warnings.filterwarnings("ignore", message=r"Heartbeat of storage is supposed to be used with Study.optimize")
    warnings.filterwarnings("ignore", message=r".*fail_stale_trials is experimental")


