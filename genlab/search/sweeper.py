"""The Optuna search loop behind `genlab train hparams_search=...`: ask the study for trials, launch
them through Hydra's launcher (in parallel with hydra/launcher=parallel), tell the study how each ended.

A study lives in a storage (genlab.search.storage), so re-running the same command continues it:
`n_trials` counts the study's finished trials, whoever ran them (another machine on the same
storage, or an earlier run of this command). A trial stopped by Ctrl-C or SIGTERM (or whose
process died) is run again from its checkpoint; a pruned trial counts as finished.
"""

from __future__ import annotations

import logging
import math
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Mapping, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from genlab.errors import ConfigError, GenlabError
from genlab.run.folder import first_missing
from genlab.run.summary import FILENAME, read_summary
from genlab.search.outcomes import MetricNotLogged
from genlab.search.rerun import mark_continued, resume_checkpoint
from genlab.search.space import SearchSpace, override_value, trial_overrides
from genlab.search.storage import dashboard_command, open_storage, storage_url
from genlab.search.study_report import STUDY_FILE  # `genlab report <folder>` finds the study through it
from genlab.search.trial import job_environment

log = logging.getLogger("genlab")

SETTINGS = {
    "study_name", "storage", "direction", "n_trials", "n_jobs", "trial_devices", "heartbeat_interval",
    "sampler", "pruner", "params", "enqueue_trials",
}
# user attributes of a trial: how its job ended, its folder, and the interrupted trial it continues
STATUS, FOLDER, RESUMES, RESUMES_FOLDER = "status", "folder", "resumes", "resumes_folder"
# user attributes of the study: the overrides every trial shares, so another command cannot mix in
FIXED_OVERRIDES, OPTIMIZED_METRIC = "fixed_overrides", "optimized_metric"


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def counts_as_finished(trial: FrozenTrial) -> bool:
    """Completed, pruned or failed for good; an interrupted trial (or one whose process died) is run again."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get(STATUS) == "failed"


def unfinished(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Interrupted trials that no later trial continues yet."""
    continued = {t.user_attrs.get(RESUMES) for t in trials}
    return [t for t in trials if t.state == TrialState.FAIL and not counts_as_finished(t) and t.number not in continued]


def continue_interrupted(study: optuna.Study) -> list[int]:
    """Enqueue each interrupted trial's parameters again, first in line; the new trial goes on from the
    old one's checkpoint (resume_overrides). Returns the numbers of the trials continued."""
    numbers = []
    for trial in unfinished(study.get_trials(deepcopy=False)):
        folder = trial.user_attrs.get(FOLDER, f"trial_{trial.number}")
        study.enqueue_trial(trial.params, user_attrs={RESUMES: trial.number, RESUMES_FOLDER: folder})
        numbers.append(trial.number)
    return numbers


def resume_overrides(user_attrs: Mapping[str, Any], sweep_dir: Path) -> list[str]:
    """`ckpt_path=<sweep>/trial_<n>/checkpoints/...` for a trial that continues interrupted trial n."""
    folder = user_attrs.get(RESUMES_FOLDER)
    checkpoint = None if folder is None else resume_checkpoint(sweep_dir / folder)
    return [] if checkpoint is None else [f"ckpt_path={override_value(str(checkpoint))}"]


def abandon(study: optuna.Study, trial: optuna.Trial) -> None:
    """A trial whose job never reported back: failed as interrupted, so the next command continues it."""
    trial.set_user_attr(STATUS, "interrupted")
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


class StopOnSignal:
    """SIGINT/SIGTERM between trials: finish what runs, ask for no more (a second signal stops at once).

    During training genlab's GracefulInterrupt takes the signal instead and checkpoints the trial.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        log.warning("%s received: no new trials; the running ones finish", signal.Signals(signum).name)

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class Heartbeat:
    """Records a heartbeat for each running trial (RDB storages), so that a trial whose process died
    is known as stale after the grace period and run again by the next command on the study."""

    def __init__(self, storage: Any, interval: int | None) -> None:
        self.storage, self.interval = storage, interval
        self.trial_ids: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.interval) and isinstance(self.storage, optuna.storages.RDBStorage)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            for trial_id in list(self.trial_ids):
                self.storage.record_heartbeat(trial_id)

    def __enter__(self) -> "Heartbeat":
        if self.enabled:
            self._thread = threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()

    def add(self, trial_id: int) -> None:
        if self.enabled:
            self.storage.record_heartbeat(trial_id)
            self.trial_ids.add(trial_id)


class OptunaSearch:
    """One command's part of a study: validate everything first, then trials in batches of n_jobs."""

    def __init__(self, settings: Mapping[str, Any], *, hydra_context: HydraContext, task_function: TaskFunction,
                 config: DictConfig) -> None:
        unknown = sorted(set(settings) - SETTINGS)
        if unknown:
            raise_for_user(ConfigError(
                f"hydra.sweeper.{unknown[0]} is not a setting of genlab's Optuna sweeper: use one of {', '.join(sorted(SETTINGS))}"))
        self.settings = dict(settings)
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.heartbeat: Heartbeat | None = None

    # ---- checks before anything is created ----

    def check_settings(self) -> None:
        metric = self.config.get("optimized_metric")
        if not metric:
            raise ConfigError("optimized_metric is null: an Optuna search needs the metric it optimizes, e.g. optimized_metric=val/fid")
        n_trials, n_jobs = self.settings.get("n_trials"), self.settings.get("n_jobs", 1)
        for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise ConfigError(f"hydra.sweeper.{key}={value!r} is not valid: it must be a positive integer")
        if self.settings.get("direction") not in ("minimize", "maximize"):
            raise ConfigError(f"hydra.sweeper.direction={self.settings.get('direction')!r} is not valid: it must be minimize or maximize")
        if not self.settings.get("study_name"):
            raise ConfigError("hydra.sweeper.study_name is required: the study's name in its storage")

    def check_keys(self, space: SearchSpace) -> None:
        """Every searched key must compose: an unknown key is refused now, naming it, not in every trial."""
        def example(dist: Any) -> Any:
            return dist.choices[0] if hasattr(dist, "choices") else dist.low

        def composes(overrides: list[str]) -> Exception | None:
            try:
                self.hydra_context.config_loader.load_sweep_config(self.config, space.fixed + overrides)
            except Exception as error:
                return error
            return None

        every = trial_overrides({k: example(d) for k, d in space.distributions.items()})
        if composes(every) is None:
            return
        for key, override in zip(space.distributions, every):
            error = composes([override])
            if error is None:
                continue
            if any("not in struct" in str(e) for e in (error, error.__cause__, error.__context__) if e is not None):
                raise ConfigError(
                    f"hydra.sweeper.params.{key}: {key} is not a key of the config; fix its name, or add it with +{key}=... if it is new")
            raise ConfigError(f"hydra.sweeper.params.{key} cannot be searched: {first_line(error)}")
        raise ConfigError(f"hydra.sweeper.params cannot be composed together: {first_line(composes(every))}")

    def check_enqueued(self, space: SearchSpace) -> None:
        """Each parameter set of enqueue_trials must lie in the search space, named by its place if not."""
        for index, params in enumerate(self.settings.get("enqueue_trials") or []):
            for key, value in dict(params).items():
                where = f"hydra.sweeper.enqueue_trials[{index}].{key}={value!r}"
                dist = space.distributions.get(key)
                if dist is None:
                    raise ConfigError(f"{where} is not a searched parameter: choose from {', '.join(space.distributions)}")
                try:
                    inside = dist._contains(dist.to_internal_repr(value))
                except (ValueError, TypeError):
                    inside = False
                if not inside:
                    raise ConfigError(f"{where} lies outside its search space {dist}")

    # ---- the study ----

    def open_study(self, space: SearchSpace) -> optuna.Study:
        name, url = self.settings["study_name"], storage_url(self.settings.get("storage"), self.sweep_dir)
        if not self.settings.get("storage"):
            self.sweep_dir.mkdir(parents=True, exist_ok=True)  # the default database lives in the search's folder
        storage = open_storage(url, self.settings.get("heartbeat_interval"))
        self.storage_url = url
        exists = name in optuna.get_all_study_names(storage)
        if not exists and list(self.sweep_dir.glob("trial_*")):
            raise ConfigError(
                f"{self.sweep_dir} holds trial folders, but hydra.sweeper.storage={url} has no study {name!r}:"
                " its trials would overwrite them; choose another hydra.sweep.dir or hydra.sweeper.study_name")
        previous = 0 if not exists else len(optuna.load_study(study_name=name, storage=storage).trials)
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=self.sampler(previous), pruner=self.pruner(),
            direction=self.settings["direction"], load_if_exists=True)
        fixed = sorted(space.fixed)
        if not exists:
            study.set_user_attr(FIXED_OVERRIDES, fixed)
            study.set_user_attr(OPTIMIZED_METRIC, self.config.optimized_metric)
            for params in self.settings.get("enqueue_trials") or []:
                study.enqueue_trial(dict(params))
            return study
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

    def sampler(self, previous_trials: int) -> optuna.samplers.BaseSampler | None:
        """The YAML's sampler; a continued study offsets a fixed seed by its trial count, so that the
        re-run does not draw the startup trials it drew before."""
        node = self.settings.get("sampler")
        if not node:
            return None
        from hydra.utils import instantiate

        node = OmegaConf.create(OmegaConf.to_container(node, resolve=True)) if isinstance(node, DictConfig) else OmegaConf.create(dict(node))
        if previous_trials and node.get("seed") is not None:
            node.seed = int(node.seed) + previous_trials
        return self._build("sampler", node, instantiate)

    def pruner(self) -> optuna.pruners.BasePruner:
        node = self.settings.get("pruner")
        if not node:
            return optuna.pruners.NopPruner()
        from hydra.utils import instantiate

        return self._build("pruner", node, instantiate)

    @staticmethod
    def _build(key: str, node: Any, instantiate: Any) -> Any:
        try:
            return instantiate(node)
        except Exception as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()][:2]
            raise ConfigError(f"hydra.sweeper.{key} cannot be built: {' '.join(lines) or type(error).__name__}") from error

    def write_study_file(self) -> None:
        """study.yaml in the search's folder: where `genlab report` and optuna-dashboard find the study."""
        record = {
            "study_name": self.settings["study_name"], "storage": self.storage_url, "direction": self.settings["direction"],
            "optimized_metric": self.config.optimized_metric, "dashboard": dashboard_command(self.storage_url),
        }
        OmegaConf.save(OmegaConf.create(record), self.sweep_dir / STUDY_FILE)

    # ---- trials ----

    def remaining(self, study: optuna.Study) -> int:
        trials = study.get_trials(deepcopy=False)
        taken = sum(counts_as_finished(t) or t.state == TrialState.RUNNING for t in trials)
        return self.settings["n_trials"] - taken

    def enqueue_unfinished(self, study: optuna.Study) -> None:
        if self.heartbeat and self.heartbeat.enabled:
            optuna.storages.fail_stale_trials(study)  # trials whose process died, known by their missed heartbeats
        for number in continue_interrupted(study):
            log.info("trial %d was interrupted: it goes on from its checkpoint", number)

    def overrides(self, trial: optuna.Trial, space: SearchSpace, slot: int) -> list[str]:
        overrides = space.fixed + trial_overrides(trial.params) + resume_overrides(trial.user_attrs, self.sweep_dir)
        devices = self.settings.get("trial_devices")
        if devices:
            overrides.append(f"trainer.devices=[{list(devices)[slot % len(devices)]}]")
        return overrides + job_environment(trial._trial_id, trial.number)

    def settle(self, study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> GenlabError | None:
        """Tell the study how the trial ended, read from its summary.json; the error that ends the search, if any."""
        folder = Path(str(OmegaConf.select(result.hydra_cfg, "hydra.runtime.output_dir"))) if result.hydra_cfg else self.sweep_dir / f"trial_{trial.number}"
        summary = read_summary(folder / FILENAME) if (folder / FILENAME).is_file() else {}
        failed = result.status == JobStatus.FAILED
        status = summary.get("status") or ("failed" if failed else "completed")
        trial.set_user_attr(FOLDER, folder.name)
        if trial.user_attrs.get(RESUMES_FOLDER):
            mark_continued(self.sweep_dir / trial.user_attrs[RESUMES_FOLDER], folder.name)
        error = result._return_value if failed else None
        if status == "completed" and not failed:
            value = result.return_value
            trial.set_user_attr(STATUS, "completed")
            if value is None or (isinstance(value, float) and math.isnan(value)):
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, float(value))
            return None
        if status == "pruned":
            trial.set_user_attr(STATUS, "pruned")
            study.tell(trial, state=TrialState.PRUNED)
            return None
        trial.set_user_attr(STATUS, "interrupted" if status == "interrupted" else "failed")
        if error is not None:
            trial.set_user_attr("error", first_line(error))
        study.tell(trial, state=TrialState.FAIL)
        if isinstance(error, MetricNotLogged):
            return error
        if status == "interrupted":
            stop = GenlabError(
                f"trial {trial.number} was interrupted ({first_line(GenlabError(summary.get('error') or 'stopped')).rstrip(':')}):"
                " run the same command again to continue the study; the trial goes on from its checkpoint")
            stop.exit_code = getattr(error, "exit_code", 1)
            return stop
        return None

    def run(self, study: optuna.Study, space: SearchSpace) -> tuple[list[Sequence[JobReturn]], GenlabError | None]:
        returns: list[Sequence[JobReturn]] = []
        n_jobs = self.settings.get("n_jobs", 1)
        with StopOnSignal() as signals:
            while signals.received is None:
                remaining = self.remaining(study)
                if remaining <= 0:
                    break
                trials = [study.ask(space.distributions) for _ in range(min(n_jobs, remaining))]
                for trial in trials:
                    self.heartbeat.add(trial._trial_id)
                batch = [self.overrides(trial, space, slot) for slot, trial in enumerate(trials)]
                try:
                    results = self.launcher.launch(batch, initial_job_idx=trials[0].number)
                except BaseException:  # a second Ctrl-C, a launcher's failure: these trials are to be run again
                    for trial in trials:
                        abandon(study, trial)
                    raise
                returns.append(results)
                stops = [self.settle(study, trial, result) for trial, result in zip(trials, results)]
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
        interrupted = sum(t.state == TrialState.FAIL and not counts_as_finished(t) for t in trials)
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
            self.check_settings()
            space = SearchSpace.parse(self.settings.get("params"), list(arguments))
            self.check_keys(space)
            self.check_enqueued(space)
            study = self.open_study(space)
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
            self.write_study_file()
            self.heartbeat = Heartbeat(study._storage, self.settings.get("heartbeat_interval"))
            with self.heartbeat:
                self.enqueue_unfinished(study)
                started = True
                returns, stop = self.run(study, space)
            self.report(study)
            if stop is not None:
                raise stop
            return returns
        except GenlabError as error:
            if created is not None and not started:
                shutil.rmtree(created, ignore_errors=True)
            raise_for_user(error)
            raise


def quiet_optuna() -> None:
    """Optuna warns that heartbeats (and failing stale trials) are experimental and meant for
    Study.optimize; this loop records them itself (Heartbeat), so the warnings say nothing to a user."""
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # genlab prints the study's state itself, at the end
    warnings.filterwarnings("ignore", message=r"Argument ``heartbeat_interval`` is an experimental feature")
    warnings.filterwarnings("ignore", message=r"Heartbeat of storage is supposed to be used with Study.optimize")
    warnings.filterwarnings("ignore", message=r".*fail_stale_trials is experimental")


def raise_for_user(error: GenlabError) -> None:
    """A mistake or a stop is one line on stderr and its exit code, as for every genlab command."""
    print(f"genlab: error: {error}", file=sys.stderr, flush=True)
    sys.exit(error.exit_code)
