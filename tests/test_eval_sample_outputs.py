"""What `genlab eval` and `genlab sample` write once their keys are valid: results of different protocols side by
side, nothing a user made replaced, the numbers never lost, and a failure that leaves only what it says it kept.

The run is a real run folder built without training (a DCGAN's initial weights in <run>/checkpoints/, its
config in <run>/.hydra/), judged on a tiny MNIST written in the real format by a tiny domain classifier, so
each command runs in a second or two through the real command line (tests/conftest.py's run_genlab).
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from genlab.commands import evaluate as evaluate_command
from genlab.errors import ConfigError
from tests.conftest import Finished, make_mnist, run_genlab

SMALL_NETS = ("data=mnist", "data.val_size=16", "model.latent_dim=8", "model.net.generator.base_channels=8",
              "model.net.discriminator.base_channels=8", "model.ema.decay=0.999", "model.ema.standing_statistics=0")
SMALL_JUDGE = ("classifier.epochs=1", "classifier.base_channels=4", "classifier.feature_dim=8", "classifier.batch_size=32")
# 20 generated images against 20 real ones (16 on the val split), judged in seconds
SMALL_PROTOCOL = ("n_samples=20", "batch_size=10", "extractor=classifier", "kid_subsets=5", "is_splits=2",
                  "progress=false", "device=cpu")


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> dict[str, Path]:
    """A run folder to copy (config and an untrained checkpoint), the tiny MNIST, and one cache for the judge."""
    root = tmp_path_factory.mktemp("eval_sample_outputs")
    make_mnist(root / "data", n_train=96, n_test=32)
    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        cfg = compose("train", overrides=list(SMALL_NETS))
    GlobalHydra.instance().clear()
    run = root / "run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    from genlab.builder import build_module

    (run / "checkpoints").mkdir()
    torch.save({"state_dict": build_module(cfg).state_dict(), "epoch": 0, "global_step": 0}, run / "checkpoints" / "last.ckpt")
    return {"run": run, "data": root / "data", "cache": root / "cache"}


@pytest.fixture
def run(shared, tmp_path, monkeypatch) -> Path:
    """This test's own copy of the run folder (in tmp_path/run); outputs land in tmp_path, whatever GENLAB_* says."""
    for name in [name for name in os.environ if name.startswith("GENLAB_")]:
        monkeypatch.delenv(name)
    return Path(shutil.copytree(shared["run"], tmp_path / "run"))


def genlab_eval(run: Path, shared: dict[str, Path], *overrides: str, ckpt_path: Path | None = None) -> Finished:
    """`genlab eval` of the run's last.ckpt (or `ckpt_path`) under the small protocol (the overrides change it), from
    the run's parent."""
    ckpt_path = ckpt_path or run / "checkpoints" / "last.ckpt"
    return run_genlab("eval", f"ckpt_path={ckpt_path}", f"paths.data_dir={shared['data']}",
                      f"paths.cache_dir={shared['cache']}", *SMALL_PROTOCOL, *SMALL_JUDGE, *overrides, cwd=run.parent)


def genlab_sample(run: Path, *overrides: str) -> Finished:
    """`genlab sample` of the run's last.ckpt with small grids, from the run's parent."""
    return run_genlab("sample", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "n=8", "nrow=4", "n_interpolations=2",
                      "interpolation_steps=3", "device=cpu", *overrides, cwd=run.parent)


def metrics_json(run: Path) -> dict:
    return json.loads((run / "checkpoints" / "metrics.json").read_text())


def error_lines(result: Finished) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("genlab: error:")]


def refused_in_one_line(result: Finished, *names: str) -> str:
    """The one `genlab: error:` line of a failed command, checked to hold `names`, with no traceback anywhere."""
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    [line] = error_lines(result)
    for name in names:
        assert name in line, line
    return line


def refuse_writes_in(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """From now on, every attempt to create or write a file in `folder` fails as in a read-only folder (chmod
    cannot show it: the tests may run as root, whom no permission bit stops)."""
    folder = folder.resolve()
    real_os_open, real_open = os.open, io.open

    def inside(path: object) -> bool:
        return isinstance(path, (str, bytes, os.PathLike)) and Path(os.fsdecode(path)).resolve().is_relative_to(folder)

    def denied(path: object) -> PermissionError:
        return PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))

    def os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise denied(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if inside(file) and any(letter in mode for letter in "wax+"):
            raise denied(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(builtins, "open", open_)


def files_below(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


# --- genlab eval: protocols side by side ---------------------------------------------------------------------------


def test_eval_under_another_split_keeps_the_test_splits_entry_beside_its_own(run, shared):
    test = genlab_eval(run, shared, "split=test")
    assert test.returncode == 0, test.stderr[-3000:]
    on_test = metrics_json(run)["last.ckpt"]
    val = genlab_eval(run, shared, "split=val")
    assert val.returncode == 0, val.stderr[-3000:]
    entries = metrics_json(run)
    assert entries["last.ckpt"]["protocol"]["split"] == "val"  # the name alone: the latest evaluation
    [earlier] = [name for name in entries if name != "last.ckpt"]
    assert earlier.startswith("last.ckpt [test split, 20 generated, classifier, seed 0")
    assert entries[earlier] == on_test
    assert repr(earlier) in val.stdout + val.stderr, "the log says where the earlier results stay"


def test_eval_under_another_seed_and_weights_keeps_each_protocols_entry(run, shared):
    for overrides in (("seed=0",), ("seed=1",), ("seed=1", "ema=false")):
        result = genlab_eval(run, shared, *overrides)
        assert result.returncode == 0, result.stderr[-3000:]
    entries = metrics_json(run)
    protocols = {(entry["protocol"]["seed"], entry["protocol"]["weights"]) for entry in entries.values()}
    assert len(entries) == 3 and len(protocols) == 3


def test_eval_again_under_the_same_protocol_replaces_its_own_entry_and_says_so(run, shared):
    first = genlab_eval(run, shared, "split=val")
    assert first.returncode == 0, first.stderr[-3000:]
    other = genlab_eval(run, shared, "split=test")
    assert other.returncode == 0, other.stderr[-3000:]
    again = genlab_eval(run, shared, "split=val")
    assert again.returncode == 0, again.stderr[-3000:]
    entries = metrics_json(run)
    assert sorted(entry["protocol"]["split"] for entry in entries.values()) == ["test", "val"]
    assert entries["last.ckpt"]["protocol"]["split"] == "val"
    assert "replace the earlier ones of last.ckpt under the same protocol" in again.stdout + again.stderr


def test_metrics_json_merge_keeps_a_user_entry_of_unknown_protocol(tmp_path):
    """An entry genlab cannot read a protocol from is moved aside under a name of its own, never replaced."""
    checkpoint = tmp_path / "last.ckpt"
    (tmp_path / "metrics.json").write_text(json.dumps({"last.ckpt": {"fid": 3.5, "note": "by hand"}}))
    results = {"protocol": {"split": "test", "n_generated": 20, "extractor": "classifier", "seed": 0, "weights": "raw",
                            "sampler": {}}, "metrics": {"fid": 1.0}}
    evaluate_command.write_results(results, checkpoint)
    entries = json.loads((tmp_path / "metrics.json").read_text())
    assert entries == {"last.ckpt": results, "last.ckpt [protocol not recorded]": {"fid": 3.5, "note": "by hand"}}


# --- genlab eval: the results are never lost -----------------------------------------------------------------------


@pytest.mark.parametrize("content", [b'{"last.ckpt": {"fid": 1', b"[1, 2, 3]", b"\xff\xfe not text"],
                         ids=["cut-short", "not-an-object", "not-utf8"])
def test_eval_leaves_an_unreadable_metrics_json_as_it_is_and_writes_beside_it(run, shared, content):
    unreadable = run / "checkpoints" / "metrics.json"
    unreadable.write_bytes(content)
    result = genlab_eval(run, shared)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "20 generated vs 20 real" in result.stdout
    assert unreadable.read_bytes() == content
    [beside] = sorted((run / "checkpoints").glob("metrics-*.json"))
    assert json.loads(beside.read_text())["last.ckpt"]["protocol"]["n_generated"] == 20
    [warning] = [line for line in (result.stdout + result.stderr).splitlines() if "cannot be read" in line]
    assert str(unreadable) in warning and str(beside) in warning


def test_eval_refuses_at_once_a_checkpoint_whose_folder_cannot_be_written(run, shared, monkeypatch):
    monkeypatch.setattr(evaluate_command, "judge", lambda *args: pytest.fail("judged before refusing"))
    before = files_below(run)
    refuse_writes_in(monkeypatch, run / "checkpoints")
    result = genlab_eval(run, shared)
    refused_in_one_line(result, f"make {run / 'checkpoints'} writable", "Permission denied")
    monkeypatch.undo()
    assert files_below(run) == before
    assert not (run.parent / "outputs").exists(), "a refused command leaves no run folder"


def test_eval_whose_folder_turns_unwritable_prints_its_results_then_one_error_line(run, shared, monkeypatch):
    judge = evaluate_command.judge

    def judge_then_lock_the_folder(*args):
        results = judge(*args)
        refuse_writes_in(monkeypatch, run / "checkpoints")
        return results

    monkeypatch.setattr(evaluate_command, "judge", judge_then_lock_the_folder)
    before = files_below(run)
    result = genlab_eval(run, shared)
    line = refused_in_one_line(result, f"into {run / 'checkpoints'}", "Permission denied")
    monkeypatch.undo()
    assert "20 generated vs 20 real" in result.stdout and "FID" in result.stdout
    assert files_below(run) == before, "nothing half-written beside the checkpoint"
    [kept] = (run.parent / "outputs" / "eval" / "runs").glob("*/metrics.json")
    assert str(kept) in line
    assert json.loads(kept.read_text())["protocol"]["n_generated"] == 20


@pytest.mark.parametrize(("overrides", "names"), [
    (("split=val", "pr_k=16"), ("pr_k=16 must be below 16", "lower pr_k")),
    (("is_splits=21",), ("is_splits=21 must be at most n_samples=20", "lower is_splits")),
], ids=["pr-k", "is-splits"])
def test_eval_refuses_a_setting_the_image_count_cannot_meet_by_its_key_before_sampling(run, shared, monkeypatch, overrides,
                                                                                       names):
    monkeypatch.setattr(evaluate_command, "generate", lambda *args: pytest.fail("sampled before refusing"))
    result = genlab_eval(run, shared, *overrides)
    refused_in_one_line(result, *names)
    assert not (run / "checkpoints" / "metrics.json").exists()


def test_metric_functions_name_genlab_evals_keys():
    from genlab.metrics.coverage import class_coverage
    from genlab.metrics.quality import inception_score, kid, precision_recall

    features, probabilities = torch.randn(5, 3), torch.full((5, 4), 0.25)
    for call, key in ((lambda: inception_score(probabilities, splits=6), "is_splits=6"),
                      (lambda: precision_recall(features, features, k=5), "pr_k=5"),
                      (lambda: kid(features, features, subsets=0, subset_size=2), "kid_subsets=0"),
                      (lambda: kid(features, features, subsets=1, subset_size=9), "kid_subset_size=9"),
                      (lambda: class_coverage(probabilities, threshold=0), "coverage_threshold=0")):
        with pytest.raises(ConfigError, match=f"^{key}"):
            call()


# --- genlab sample: nothing replaced, nothing half-written ---------------------------------------------------------


def test_a_second_sample_with_the_same_seed_keeps_the_first_files_and_names_the_new_ones(run):
    first = genlab_sample(run)
    assert first.returncode == 0, first.stderr[-3000:]
    samples = run / "samples"
    originals = {path.name: path.stat().st_ino for path in samples.iterdir()}
    assert sorted(originals) == ["interpolation_seed0.png", "sample_seed0.png"]
    second = genlab_sample(run)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {path.name: path.stat().st_ino for path in samples.iterdir() if path.name in originals} == originals
    assert sorted(path.name for path in samples.iterdir()) == [
        "interpolation_seed0-2.png", "interpolation_seed0.png", "sample_seed0-2.png", "sample_seed0.png"]
    log = second.stdout + second.stderr
    assert str(samples / "sample_seed0-2.png") in log and str(samples / "interpolation_seed0-2.png") in log


def test_sample_with_no_interpolation_rows_writes_the_grid_alone(run):
    """n_interpolations=0 (the schema's least value) means no strip, not a division by zero after the grid."""
    result = genlab_sample(run, "n_interpolations=0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [path.name for path in (run / "samples").iterdir()] == ["sample_seed0.png"]


def test_sample_refuses_an_out_that_is_a_file_before_sampling(run, monkeypatch):
    from genlab import generation

    monkeypatch.setattr(generation, "sample_grid", lambda *args: pytest.fail("sampled before refusing"))
    notes = run.parent / "notes.txt"
    notes.write_text("my notes\n")
    result = genlab_sample(run, f"out={notes}")
    refused_in_one_line(result, f"out={notes} is a file, not a folder")
    assert notes.read_text() == "my notes\n"
    assert not (run.parent / "outputs").exists() and not (run / "samples").exists()


def test_sample_refuses_an_out_folder_that_cannot_be_created(run):
    notes = run.parent / "notes.txt"
    notes.write_text("my notes\n")
    result = genlab_sample(run, f"out={notes}/figures")
    refused_in_one_line(result, f"out={notes}/figures", f"{notes} is a file, not a folder")
    assert notes.read_text() == "my notes\n"
    assert not (run.parent / "outputs").exists()


def test_sample_refuses_an_out_folder_it_cannot_write_before_sampling(run, monkeypatch):
    from genlab import generation

    monkeypatch.setattr(generation, "sample_grid", lambda *args: pytest.fail("sampled before refusing"))
    locked = run.parent / "locked"
    locked.mkdir()
    refuse_writes_in(monkeypatch, locked)
    result = genlab_sample(run, f"out={locked}/figures")
    refused_in_one_line(result, f"out={locked}/figures", "Permission denied")
    monkeypatch.undo()
    assert list(locked.iterdir()) == []


def test_a_sample_that_fails_while_sampling_leaves_no_png_and_no_folder(run, monkeypatch):
    from genlab import generation

    def fails(*args, **kwargs):
        raise ConfigError("sampler.steps=0 is not valid")  # what a family's sampler refuses, midway

    monkeypatch.setattr(generation, "interpolation_strip", fails)
    out = run.parent / "figures" / "today"
    result = genlab_sample(run, f"out={out}")
    refused_in_one_line(result, "sampler.steps=0")
    assert not (run.parent / "figures").exists(), "no folder, and no grid written before the failure"
    assert not (run / "samples").exists()


def test_a_sample_whose_disk_fills_up_keeps_whole_files_only_and_says_which(run, monkeypatch):
    fsync, calls = os.fsync, []

    def fills_up_on_the_second_file(descriptor: int) -> None:
        calls.append(descriptor)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fills_up_on_the_second_file)
    result = genlab_sample(run)
    samples = run / "samples"
    refused_in_one_line(result, f"into {samples}", "No space left on device", f"written before: {samples / 'sample_seed0.png'}")
    assert sorted(path.name for path in samples.iterdir()) == ["sample_seed0.png"], "no temporary or half file"


# --- ckpt_path: a folder, a missing file, nothing ------------------------------------------------------------------


def test_eval_of_a_run_folder_says_it_is_a_folder_and_names_a_checkpoint_in_it(run, shared):
    result = genlab_eval(run, shared, ckpt_path=run)
    refused_in_one_line(result, f"ckpt_path={run}: this is a folder, not a checkpoint file",
                        f"e.g. ckpt_path={run / 'checkpoints' / 'last.ckpt'}")


def test_eval_of_a_missing_checkpoint_names_the_ones_beside_it(run, shared):
    missing = run / "checkpoints" / "lats.ckpt"
    result = genlab_eval(run, shared, ckpt_path=missing)
    refused_in_one_line(result, f"ckpt_path={missing}: the checkpoint does not exist", "holds last.ckpt")


def test_an_empty_ckpt_path_is_called_empty_not_a_folder():
    from genlab.run.load import load_run_config

    with pytest.raises(ConfigError, match="^ckpt_path is empty"):
        load_run_config("")
