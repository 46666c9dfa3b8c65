"""Image-to-image runs through genlab's commands: a sweep of families trains, `genlab report` compares it,
`genlab eval` judges outputs beside the task's baseline, `genlab sample` draws input | outputs | target rows,
pix2pix at adversarial weight 0 trains bit for bit as regress, a resumed run ends where one left alone does,
and CIFAR-10's real files take a colour task."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from genlab.run.shell import hydra_override
from tests.conftest import make_cifar10, run_genlab

SMALL_JUDGE = ("classifier.epochs=1", "classifier.base_channels=8", "classifier.feature_dim=32")
# two epochs of twenty batches of 16, small nets, val/* on 32 held-out inputs
TINY = ("debug=limit", "trainer.limit_train_batches=20", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
        "data.val_size=32",
        "++model.net.generator.width=16", "++model.net.generator.depth=3", "++model.net.generator.max_channels=32",
        "callbacks.translation_quality.n_samples=32", "callbacks.translation_quality.batch_size=32")
GAN_TINY = (*TINY, "++model.net.discriminator.width=8", "optimizer.lr=2e-3")  # ++: a sweep composes its first config with model=dcgan


def generator_weights(run_dir: Path, checkpoint: str = "last.ckpt") -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return {key: value for key, value in state.items() if key.startswith("family.generator.")}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("translation")


def judge(workdir: Path) -> tuple[str, ...]:
    return (f"paths.cache_dir={workdir / 'cache'}", *SMALL_JUDGE)


@pytest.fixture(scope="module")
def sweep(workdir) -> Path:
    """`genlab train -m model=regress,pix2pix task=denoise`: the folder of the sweep."""
    folder = workdir / "sweep"
    result = run_genlab("train", "-m", "model=regress,pix2pix", "task=denoise", *GAN_TINY, f"hydra.sweep.dir={folder}",
                        *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def run_of(sweep: Path, model: str) -> Path:
    """The sweep's job folder of `model` (its summary.json lists the job's overrides)."""
    return next(path.parent for path in sweep.glob("*/summary.json")
                if f"model={model}" in json.loads(path.read_text())["overrides"])


@pytest.mark.slow
def test_a_sweep_of_families_logs_the_task_metrics_beside_the_baseline_and_the_report_compares_them(sweep, workdir):
    for model in ("regress", "pix2pix"):
        summary = json.loads((run_of(sweep, model) / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["generator_steps"] == 40
        metrics = summary["metrics"]
        assert all(math.isfinite(metrics[f"val/{name}"]) for name in ("psnr", "ssim", "fid", "label_accuracy"))
        # 40 updates of a small U-Net learn to denoise: 3 dB above the noisy input (12.1 dB at sigma 0.5)
        assert metrics["val/psnr"] > metrics["val/baseline_psnr"] + 3
        assert metrics["val/baseline_psnr"] == pytest.approx(json.loads(
            (run_of(sweep, "regress") / "summary.json").read_text())["metrics"]["val/baseline_psnr"])  # the same inputs
        assert (run_of(sweep, model) / "checkpoints" / "best.ckpt").is_file()  # val/fid picked it
        columns = 4 if model == "pix2pix" else 3  # input | outputs (two of a family that draws) | target
        assert Image.open(run_of(sweep, model) / "translations" / "last.png").size == (columns * 30 + 2, 8 * 30 + 2)
    result = run_genlab("report", str(sweep), "--metric", "val/psnr", cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    report = (sweep / "report.md").read_text()
    assert "Sorted by val/psnr (higher is better)" in report and "val/baseline_psnr" in report
    assert "translations/last.png" in report


@pytest.mark.slow
def test_pix2pix_at_adversarial_weight_zero_trains_bit_for_bit_as_regress(sweep, workdir):
    run_dir = workdir / "ablation"
    result = run_genlab("train", "model=pix2pix", "task=denoise", "model.adversarial_weight=0", *GAN_TINY,
                        f"hydra.run.dir={run_dir}", *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    ablation, regress = generator_weights(run_dir), generator_weights(run_of(sweep, "regress"))
    assert ablation.keys() == regress.keys() and len(ablation) > 10
    assert all(torch.equal(ablation[key], regress[key]) for key in ablation)
    trained = generator_weights(run_of(sweep, "pix2pix"))  # the adversary does change the generator
    assert not all(torch.equal(trained[key], regress[key]) for key in trained)


@pytest.mark.slow
def test_eval_judges_outputs_against_targets_beside_the_baseline(sweep, workdir):
    checkpoint = run_of(sweep, "pix2pix") / "checkpoints" / "last.ckpt"
    result = run_genlab("eval", hydra_override("ckpt_path", checkpoint), "n_samples=40", "batch_size=20", "extractor=classifier",
                        "kid_subset_size=20", "progress=false", "outputs_per_input=3", "diversity_inputs=8",
                        *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "noisy image" in result.stdout and "psnr" in result.stdout and "diversity" in result.stdout
    entry = json.loads((checkpoint.parent / "metrics.json").read_text())["last.ckpt"]
    protocol, metrics, baseline = entry["protocol"], entry["metrics"], entry["baseline"]
    assert protocol["task"] == "Denoise(sigma=0.5, seed=0)" and protocol["n_generated"] == 40
    assert protocol["outputs_per_input"] == 3 and "not computed" in protocol["lpips"]
    assert metrics.keys() >= {"psnr", "ssim", "fid", "kid", "label_accuracy", "diversity"} and metrics["diversity"] > 0
    assert baseline.keys() >= {"psnr", "ssim", "fid", "label_accuracy"} and "diversity" not in baseline
    # the same inputs for every checkpoint: the baseline is a function of the protocol alone
    other = run_of(sweep, "regress") / "checkpoints" / "last.ckpt"
    assert run_genlab("eval", hydra_override("ckpt_path", other), "n_samples=40", "batch_size=20", "extractor=classifier",
                      "kid_subset_size=20", "progress=false", *judge(workdir), cwd=workdir).returncode == 0
    assert json.loads((other.parent / "metrics.json").read_text())["last.ckpt"]["baseline"] == baseline


@pytest.mark.slow
def test_sample_draws_rows_of_input_outputs_and_target(sweep, workdir):
    checkpoint = run_of(sweep, "pix2pix") / "checkpoints" / "last.ckpt"
    out = workdir / "png"
    result = run_genlab("sample", hydra_override("ckpt_path", checkpoint), "nrow=4", "outputs_per_input=3", f"out={out}",
                        cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(out / "sample_seed0.png").size == (5 * 30 + 2, 4 * 30 + 2)  # input | 3 outputs | target
    assert not (out / "interpolation_seed0.png").exists()


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_weights_of_a_run_left_alone(sweep, workdir):
    straight = run_of(sweep, "regress")
    first = workdir / "first_epoch"
    result = run_genlab("train", "model=regress", "task=denoise", *GAN_TINY, "trainer.max_epochs=1",
                        f"hydra.run.dir={first}", *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = workdir / "resumed"
    result = run_genlab("train", f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=2",
                        f"hydra.run.dir={resumed}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    ended, alone = generator_weights(resumed), generator_weights(straight)
    assert all(torch.equal(ended[key], alone[key]) for key in alone)


@pytest.mark.slow
def test_cyclegan_learns_two_ways_keeps_its_pools_and_reports_its_cycle(workdir):
    run_dir = workdir / "cyclegan"
    result = run_genlab("train", "model=cyclegan", "task=restyle", *GAN_TINY, "trainer.limit_train_batches=4",
                        f"hydra.run.dir={run_dir}", "model.pool_size=8", *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert [tuple(pool.shape) for pool in checkpoint["family_state"]["pools"]] == [(8, 3, 28, 28)] * 2
    result = run_genlab("eval", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "n_samples=20", "batch_size=20",
                        "extractor=classifier", "kid_subset_size=10", "progress=false", *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "checkpoints" / "metrics.json").read_text())["last.ckpt"]["metrics"]
    assert math.isfinite(metrics["cycle_psnr"]) and math.isfinite(metrics["colourfulness"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["palette", "palette_flow"])
def test_palette_learns_to_denoise_samples_and_draws_its_trajectory(workdir, model):
    run_dir = workdir / model
    result = run_genlab("train", f"model={model}", "task=denoise", *TINY[:5], "trainer.limit_train_batches=40",
                        "data.val_size=32", "callbacks.translation_quality.n_samples=32", "optimizer.lr=2e-3",
                        "model.net.denoiser.width=8", "model.net.denoiser.norm_groups=4", "model.sampler.steps=4",
                        f"hydra.run.dir={run_dir}",
                        *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert metrics["val/psnr"] > metrics["val/baseline_psnr"] + 2
    out = workdir / f"{model}_png"
    result = run_genlab("sample", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "nrow=2", "outputs_per_input=2",
                        "trajectory_rows=2", "trajectory_frames=3", f"out={out}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(out / "sample_seed0.png").size == (4 * 30 + 2, 2 * 30 + 2)
    assert Image.open(out / "trajectory_seed0.png").size == (3 * 30 + 2, 2 * 30 + 2)


@pytest.mark.slow
def test_cifar10_files_in_their_real_format_take_a_colour_task(workdir):
    make_cifar10(workdir / "data", per_batch=20)
    run_dir = workdir / "cifar"
    result = run_genlab("train", "model=pix2pix", "task=colorize", "data=cifar10", f"paths.data_dir={workdir / 'data'}",
                        *GAN_TINY, "data.val_size=20", f"hydra.run.dir={run_dir}", *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert math.isfinite(metrics["val/colourfulness"]) and math.isfinite(metrics["val/baseline_psnr"])


@pytest.mark.slow
def test_an_optuna_search_maximises_the_outputs_psnr(workdir):
    import optuna

    result = run_genlab("train", "model=regress", "task=denoise", "hparams_search=translation_optuna", *TINY,
                        "hydra.sweeper.n_trials=2", "trainer.max_epochs=1", "trainer.limit_train_batches=6",
                        "hydra.sweeper.pruner.n_startup_trials=2",
                        "hydra.sweeper.params={optimizer.generator.lr:'tag(log, interval(1e-3, 3e-3))'}",
                        *judge(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = workdir / "outputs" / "debug" / "searches" / "translation_psnr"
    study = optuna.load_study(study_name="translation_psnr", storage=f"sqlite:///{folder / 'optuna.db'}")
    psnr = [json.loads((folder / f"trial_{n}" / "summary.json").read_text())["metrics"]["val/psnr"] for n in range(2)]
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE and study.best_value == pytest.approx(max(psnr))
