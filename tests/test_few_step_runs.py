"""The few-step families through genlab's commands: a sweep of MeanFlow and iCT trains, `genlab sample` and
`genlab eval` take 1, 2 or 4 steps chosen then, `genlab report` compares the sweep, a resumed iCT run ends with
the weights (and the curriculum) of one left alone, the conditional families train on CIFAR-10's real files,
and reflow and consistency distillation distil a flow run, refusing a teacher they cannot learn from in one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from genlab.run.shell import hydra_value
from tests.conftest import make_cifar10, run_genlab

SMALL_JUDGE = ("classifier.epochs=1", "classifier.base_channels=8", "classifier.feature_dim=32")
# two epochs of four batches of 16 on mnist_mini, an 8-channel UNet, val/fid on 32 samples; ++: a sweep composes its
# first config with the default model (dcgan), which has no denoiser
TINY = ("data=mnist_mini", "debug=limit", "budget.generator_steps=8", "trainer.enable_progress_bar=false",
        "~callbacks.progress_bar", "data.val_size=32", "++model.net.denoiser.width=8",
        "callbacks.sample_quality.n_samples=32", "callbacks.sample_quality.batch_size=32")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("few_step")


def judge(workdir: Path) -> tuple[str, ...]:
    return (f"paths.cache_dir={workdir / 'cache'}", *SMALL_JUDGE)


@pytest.fixture(scope="module")
def sweep(workdir) -> Path:
    folder = workdir / "sweep"
    result = run_genlab("train", "-m", "model=meanflow,ict", *TINY, f"hydra.sweep.dir={folder}", *judge(workdir),
                        cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def run_of(sweep: Path, model: str) -> Path:
    return next(path.parent for path in sweep.glob("*/summary.json")
                if f"model={model}" in json.loads(path.read_text())["overrides"])


def checkpoint_of(run_dir: Path) -> str:
    return hydra_value(str(run_dir / "checkpoints" / "last.ckpt"))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["meanflow", "ict"])
def test_a_few_step_family_trains_then_samples_and_is_judged_at_the_steps_asked_for(sweep, workdir, model):
    run_dir = run_of(sweep, model)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["generator_steps"] == 8
    assert math.isfinite(summary["metrics"]["val/fid"]) and math.isfinite(summary["metrics"]["val/loss"])
    for steps in (1, 4):
        out = workdir / f"eval_{model}_{steps}"
        result = run_genlab("eval", f"ckpt_path={checkpoint_of(run_dir)}", "n_samples=32", "batch_size=32",
                            f"sampler={{steps:{steps}}}", "progress=false", f"hydra.run.dir={out}", *judge(workdir),
                            cwd=workdir)
        assert result.returncode == 0, result.stderr[-3000:]
        entry = next(iter(json.loads((run_dir / "checkpoints" / "metrics.json").read_text()).values()))
        assert math.isfinite(entry["metrics"]["fid"])
    protocols = [entry["protocol"]["sampler"] for entry in
                 json.loads((run_dir / "checkpoints" / "metrics.json").read_text()).values()]
    assert sorted(p["evaluations"] for p in protocols) == [1, 4]  # one network evaluation per step
    result = run_genlab("sample", f"ckpt_path={checkpoint_of(run_dir)}", "n=8", "sampler={steps:2}",
                        f"hydra.run.dir={workdir / f'sample_{model}'}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(run_dir.glob("samples/sample_*.png")) or list((workdir / f"sample_{model}").glob("*.png"))


@pytest.mark.slow
def test_the_report_compares_the_sweep(sweep, workdir):
    result = run_genlab("report", str(sweep), cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    report = (sweep / "report.md").read_text()
    assert "meanflow" in report and "ict" in report


@pytest.mark.slow
def test_a_resumed_ict_run_ends_with_the_weights_and_curriculum_of_one_left_alone(sweep, workdir):
    first = workdir / "ict_first_epoch"
    result = run_genlab("train", "model=ict", *TINY, "trainer.max_epochs=1", f"hydra.run.dir={first}", *judge(workdir),
                        cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = workdir / "ict_resumed"
    result = run_genlab("train", f"ckpt_path={checkpoint_of(first)}", "trainer.max_epochs=2", f"hydra.run.dir={resumed}",
                        cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]

    def state(run_dir: Path) -> dict[str, torch.Tensor]:
        saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
        return {key: value for key, value in saved.items() if key.startswith("family.")}

    ended, alone = state(resumed), state(run_of(sweep, "ict"))
    assert int(ended["family.iterations"]) == 8
    assert all(torch.equal(ended[key], alone[key]) for key in alone)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cmeanflow", "cict"])
def test_the_conditional_few_step_families_train_on_cifar10_files(workdir, model):
    root = workdir / f"data_{model}"
    make_cifar10(root)
    run_dir = workdir / f"cifar_{model}"
    result = run_genlab("train", f"model={model}", "data=cifar10", f"paths.data_dir={root}", "debug=limit",
                        "budget.generator_steps=4", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                        "~callbacks.progress_bar", "data.val_size=16", "model.net.denoiser.width=8",
                        "model.net.denoiser.attention_resolutions=[8]", "callbacks.sample_quality=null",
                        "callbacks.best_checkpoint=null", f"hydra.run.dir={run_dir}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["generator_steps"] == 4


@pytest.mark.slow
def test_reflow_and_consistency_distillation_of_a_cflow_run_on_cifar10_files(workdir):
    root = workdir / "data_distil"
    make_cifar10(root)
    cifar = ("data=cifar10", f"paths.data_dir={root}", "debug=limit", "trainer.max_epochs=1",
             "trainer.enable_progress_bar=false", "~callbacks.progress_bar", "data.val_size=16",
             "model.net.denoiser.width=8", "model.net.denoiser.attention_resolutions=[8]", "callbacks.sample_quality=null",
             "callbacks.best_checkpoint=null", "callbacks.sample_grid=null")  # `genlab sample` draws each student's
    teacher = workdir / "cifar_cflow"
    result = run_genlab("train", "model=cflow", *cifar, "budget.generator_steps=2", f"hydra.run.dir={teacher}",
                        cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    for student, extra in (("creflow", ("model.pairs=32", "model.pair_batch_size=16",
                                        "model.teacher.sampler={method:euler,steps:2}")), ("ccd", ())):
        run_dir = workdir / f"cifar_{student}"
        result = run_genlab("train", f"model={student}", f"model.teacher.ckpt_path={checkpoint_of(teacher)}", *cifar,
                            *extra, "budget.generator_steps=2", f"hydra.run.dir={run_dir}", cwd=workdir)
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads((run_dir / "summary.json").read_text())["generator_steps"] == 2
        result = run_genlab("sample", f"ckpt_path={checkpoint_of(run_dir)}", "n=4", "sampler={steps:2}",
                            f"hydra.run.dir={workdir / f'cifar_{student}_sample'}", cwd=workdir)
        assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def flow_teacher(workdir) -> Path:
    run_dir = workdir / "flow_teacher"
    result = run_genlab("train", "model=flow", *TINY, "callbacks.sample_quality=null", "callbacks.best_checkpoint=null",
                        f"hydra.run.dir={run_dir}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("student", [(), ("model.init_from_teacher=false", "model.net.denoiser.channel_mults=[1,2]",
                                          "model.net.denoiser.attention_resolutions=[]")], ids=["teachers_net", "smaller"])
def test_reflow_distils_a_flow_run_into_a_one_step_student(flow_teacher, workdir, student):
    run_dir = workdir / f"reflow_{len(student)}"
    result = run_genlab("train", "model=reflow", f"model.teacher.ckpt_path={checkpoint_of(flow_teacher)}",
                        "model.pairs=48", "model.pair_batch_size=16", "model.teacher.sampler={method:euler,steps:4}",
                        *TINY, *student, f"hydra.run.dir={run_dir}", *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run_dir / "train.log").read_text()  # drawn by the first student, read from the cache by the second
    assert "48 teacher pairs drawn in" in log or "48 teacher pairs read from" in log
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and math.isfinite(summary["metrics"]["val/fid"])
    # the student is judged without its teacher: eval rebuilds it from its own run folder
    result = run_genlab("eval", f"ckpt_path={checkpoint_of(run_dir)}", "n_samples=32", "batch_size=32", "progress=false",
                        f"hydra.run.dir={workdir / f'reflow_eval_{len(student)}'}", *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    entry = next(iter(json.loads((run_dir / "checkpoints" / "metrics.json").read_text()).values()))
    assert entry["protocol"]["sampler"] == {"method": "euler", "steps": 1, "evaluations": 1}


@pytest.mark.slow
def test_consistency_distillation_of_a_flow_run_trains_and_samples_in_two_steps(flow_teacher, workdir):
    run_dir = workdir / "cd"
    result = run_genlab("train", "model=cd", f"model.teacher.ckpt_path={checkpoint_of(flow_teacher)}", *TINY,
                        f"hydra.run.dir={run_dir}", *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and math.isfinite(summary["metrics"]["val/fid"])
    result = run_genlab("sample", f"ckpt_path={checkpoint_of(run_dir)}", "n=8", "sampler={steps:2}",
                        f"hydra.run.dir={workdir / 'cd_sample'}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(("teacher", "overrides", "message"), [
    ("missing", (), "model.teacher: ckpt_path="),
    ("flow", ("model.teacher.sampler={method:euler,steps:4}", "model.net.denoiser.width=16"),
     "model.net.denoiser differs from the teacher's net"),
    ("flow", ("model=creflow",), "model=creflow for a conditional teacher"),
    ("none", (), "model.teacher.ckpt_path is not set"),
])
def test_a_wrong_teacher_is_refused_in_one_line(flow_teacher, workdir, teacher, overrides, message):
    path = {"missing": str(workdir / "nowhere" / "checkpoints" / "last.ckpt"), "flow": checkpoint_of(flow_teacher),
            "none": None}[teacher]
    given = () if path is None else (f"model.teacher.ckpt_path={path}",)
    model = next((o for o in overrides if o.startswith("model=")), "model=reflow")
    rest = tuple(o for o in overrides if not o.startswith("model="))
    run_dir = workdir / f"wrong_{teacher}_{len(overrides)}"
    result = run_genlab("train", model, *given, "model.pairs=16", *TINY, *rest, "callbacks.sample_quality=null",
                        "callbacks.best_checkpoint=null", f"hydra.run.dir={run_dir}", cwd=workdir)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr[-2000:]
    if teacher != "flow":  # refused by the config check, before the run folder is made
        assert not run_dir.exists()
