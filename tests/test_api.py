"""genlab's Python API (genlab/api/): `genlab.load(...)` gives `genlab sample`'s images bit for bit for the same seed
and options (a GAN, a diffusion family with a sampler option, a conditional family with labels, an image-to-image
family), under the EMA and the raw weights; it refuses what the CLI refuses, in the CLI's one line; it reads a run's
config, summary and metrics, and judges as `genlab eval` does; `import genlab` loads no torch; the example in
docs/python_api.py runs.

The runs are built without training (tests/api_runs.py): the commands and the API load the same files.
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import genlab
from genlab.commands import sample as sample_command
from genlab.errors import GenlabError
from tests.api_runs import PROGRESS, SUMMARY, build_run, build_runs
from tests.conftest import run_genlab

REPO = Path(__file__).resolve().parents[1]
SMALL_JUDGE = ("classifier.epochs=1", "classifier.base_channels=4", "classifier.feature_dim=8", "classifier.batch_size=32")
SMALL_PROTOCOL = {"n_samples": 20, "batch_size": 10, "extractor": "classifier", "kid_subsets": 5, "is_splits": 2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One run folder per family (tests/api_runs.py), and the tiny MNIST they read at <root>/data."""
    root = tmp_path_factory.mktemp("api")
    folders = build_runs(root, "dcgan", "ddpm", "cgan", "pix2pix")
    return {**folders, "data": root / "data", "cache": root / "cache"}


def sampled(runs: dict[str, Path], family: str, *overrides: str, monkeypatch: pytest.MonkeyPatch,
            tmp_path: Path) -> dict[str, torch.Tensor]:
    """The images `genlab sample` makes of `family`'s run (name -> tensor), taken as they go to the PNG writer."""
    made: dict[str, torch.Tensor] = {}
    writer = sample_command.save_images

    def keep(images: dict[str, tuple[torch.Tensor, int]], out: Path, seed: int) -> dict[str, Path]:
        made.update({name: tensor.clone() for name, (tensor, _) in images.items()})
        return writer(images, out, seed)

    monkeypatch.setattr(sample_command, "save_images", keep)
    result = run_genlab("sample", f"ckpt_path={runs[family] / 'checkpoints' / 'last.ckpt'}", f"out={tmp_path / 'png'}",
                        f"paths.data_dir={runs['data']}", "device=cpu", "n_interpolations=0", *overrides,
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return made


# --- the same images as genlab sample -------------------------------------------------------------------------------


@pytest.mark.parametrize("ema", [True, False])
def test_a_gans_samples_equal_genlab_samples_grid_bit_for_bit(runs, monkeypatch, tmp_path, ema):
    grid = sampled(runs, "dcgan", "n=8", f"ema={str(ema).lower()}", monkeypatch=monkeypatch, tmp_path=tmp_path)["grid"]
    run = genlab.load(runs["dcgan"], ema=ema)  # the run folder: its checkpoints/last.ckpt
    images = run.sample(8, seed=0)
    assert images.shape == (8, 1, 28, 28) and torch.equal(images, grid)
    assert run.weights == ("ema" if ema else "raw")
    assert not torch.equal(run.sample(8, seed=0, ema=not ema), grid)  # the other weights: other images


def test_a_diffusion_familys_samples_with_a_sampler_option_equal_genlab_samples(runs, monkeypatch, tmp_path):
    made = sampled(runs, "ddpm", "n=4", "sampler={method:ddim,steps:2}", "n_interpolations=2", "interpolation_steps=3",
                   "trajectory_rows=2", "trajectory_frames=2", monkeypatch=monkeypatch, tmp_path=tmp_path)
    run = genlab.load(runs["ddpm"] / "checkpoints" / "last.ckpt")
    assert torch.equal(run.sample(4, seed=0, method="ddim", steps=2), made["grid"])
    assert not torch.equal(run.sample(4, seed=0, method="ddim", steps=3), made["grid"])
    # the command's walk and trajectory go on from the grid's generator, as the API's methods can (their counts by
    # position: the keyword steps= is the sampler's)
    generator = torch.Generator().manual_seed(0)
    run.grid(4, 8, generator=generator, method="ddim", steps=2)
    walk = run.interpolation(2, 3, generator=generator, method="ddim", steps=2)
    strip = run.trajectory(2, 2, generator=generator, method="ddim", steps=2)
    assert torch.equal(walk, made["interpolation"]) and torch.equal(strip.flatten(0, 1), made["trajectory"])


def test_a_conditional_familys_samples_of_given_labels_equal_genlab_samples_rows_of_classes(runs, monkeypatch, tmp_path):
    grid = sampled(runs, "cgan", "n=20", monkeypatch=monkeypatch, tmp_path=tmp_path)["grid"]
    run = genlab.load(runs["cgan"])
    labels = [label for label in range(10) for _ in range(2)]  # genlab sample's rows: two of each class
    assert torch.equal(run.sample(labels=labels, seed=0), grid)
    assert torch.equal(run.sample(2, labels=3, seed=0), run.sample(labels=[3, 3], seed=0))
    assert not torch.equal(run.sample(labels=[(label + 1) % 10 for label in labels], seed=0), grid)


def test_an_image_to_image_familys_outputs_equal_genlab_samples_first_output_column(runs, monkeypatch, tmp_path):
    grid = sampled(runs, "pix2pix", "nrow=3", "outputs_per_input=2", monkeypatch=monkeypatch, tmp_path=tmp_path)["grid"]
    run = genlab.load(runs["pix2pix"], data_dir=runs["data"])
    inputs, targets = run.pairs(3, seed=0)  # the test split's first 3 digits, made into the task's pairs
    rows = grid.view(3, 4, *grid.shape[1:])  # input | two outputs | target
    outputs = run.translate(inputs, seed=0)
    assert torch.equal(outputs, rows[:, 1]) and torch.equal(targets, rows[:, 3])
    assert not torch.equal(outputs, rows[:, 2])  # pix2pix draws: its second output differs from its first
    with pytest.raises(GenlabError, match=r"run\.translate\(inputs\)"):
        run.sample(4)


# --- what the CLI refuses, refused alike ----------------------------------------------------------------------------


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_file_that_is_no_checkpoint_is_refused_in_one_line_naming_it(tmp_path, runs):
    folder = Path(shutil.copytree(runs["dcgan"], tmp_path / "run"))
    (folder / "checkpoints" / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(GenlabError) as refused:
        genlab.load(folder, checkpoint="notes")
    assert "notes.ckpt is not a checkpoint" in one_line(refused)
    with pytest.raises(GenlabError) as refused:
        genlab.load(folder, checkpoint="best")
    assert one_line(refused).endswith("has no best.ckpt (it holds last, notes): choose one with checkpoint=<name>")
    with pytest.raises(GenlabError, match="neither a genlab run folder"):
        genlab.load(tmp_path)


def test_a_checkpoint_of_another_model_is_refused_in_one_line(tmp_path, runs):
    folder = Path(shutil.copytree(runs["dcgan"], tmp_path / "run"))
    shutil.copy(runs["cgan"] / "checkpoints" / "last.ckpt", folder / "checkpoints" / "last.ckpt")
    with pytest.raises(GenlabError) as refused:
        genlab.load(folder)
    assert "does not fit the model its run's config builds (GAN" in one_line(refused)


def test_a_run_config_naming_foreign_code_is_refused_before_anything_is_built(tmp_path, runs, monkeypatch):
    import genlab.builder

    folder = Path(shutil.copytree(runs["dcgan"], tmp_path / "run"))
    config = folder / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("_target_: genlab.families.gan.GAN", "_target_: os.system", 1))
    monkeypatch.setattr(genlab.builder, "build_module", lambda *a, **k: pytest.fail("built before refusing"))
    with pytest.raises(GenlabError) as refused:
        genlab.load(folder)
    message = one_line(refused)
    assert "model._target_='os.system'" in message and "add trust_run=true" in message


def test_labels_and_seeds_are_checked_by_name(runs):
    run = genlab.load(runs["cgan"])
    for call, words in [(lambda: run.sample(2, labels=[0, 10]), "labels="),
                        (lambda: run.sample(3, labels=[1, 2]), "2 labels for n=3"),
                        (lambda: run.sample(2, seed="x"), "seed='x'"),
                        (lambda: run.sample(2, seed=1, generator=torch.Generator()), "seed or generator"),
                        (lambda: genlab.load(runs["dcgan"]).sample(2, labels=[1, 2]), "unconditional")]:
        with pytest.raises(GenlabError, match=words):
            call()


# --- what the run recorded, and judging it ---------------------------------------------------------------------------


def test_a_run_reads_its_config_summary_and_training_progress(runs):
    run = genlab.load(runs["dcgan"])
    assert run.summary == SUMMARY
    assert run.config.model.latent_dim == 8 and list(run.image_shape) == [1, 28, 28] and run.num_classes == 0
    assert run.model.progress.generator_steps == PROGRESS["generator_steps"]
    assert run.metrics == {} and run.sampler_options == []
    ddpm = genlab.load(runs["ddpm"])
    assert ddpm.sampler_defaults == {"method": "dpm++", "steps": 20, "evaluations": 20}


def test_evaluate_judges_as_genlab_eval_does_and_its_results_are_the_runs_metrics(runs, tmp_path):
    folder = Path(shutil.copytree(runs["dcgan"], tmp_path / "run"))
    cache = f"paths.cache_dir={runs['cache']}"
    result = run_genlab("eval", f"ckpt_path={folder / 'checkpoints' / 'last.ckpt'}", f"paths.data_dir={runs['data']}",
                        cache, "progress=false", "device=cpu", *SMALL_JUDGE,
                        *(f"{key}={value}" for key, value in SMALL_PROTOCOL.items()), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    by_the_command = json.loads((folder / "checkpoints" / "metrics.json").read_text())["last.ckpt"]
    (folder / "checkpoints" / "metrics.json").unlink()
    run = genlab.load(folder, data_dir=runs["data"], cache_dir=runs["cache"])
    judge = {key.split(".", 1)[1]: int(value) for key, value in (item.split("=") for item in SMALL_JUDGE)}
    results = run.evaluate(save=True, classifier=judge, **SMALL_PROTOCOL)
    assert results["metrics"] == by_the_command["metrics"]
    assert run.metrics == {"last.ckpt": json.loads(json.dumps(results))}
    with pytest.raises(GenlabError, match="n_samples=1 is not valid"):
        run.evaluate(n_samples=1)


# --- cheap to import, and the docs' example runs --------------------------------------------------------------------


def test_import_genlab_loads_no_torch_and_shows_its_docstrings():
    probe = "import sys, genlab; print(sorted(m for m in ('torch', 'hydra', 'omegaconf') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
    assert "run folder" in genlab.load.__doc__ and "seed" in genlab.Run.sample.__doc__


def test_the_docs_python_api_example_runs_on_a_run_folder(runs, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    build_run(run_dir, "cgan")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENLAB_EXAMPLE_RUN", str(run_dir))
    namespace: dict[str, Any] = runpy.run_path(str(REPO / "docs" / "python_api.py"), run_name="__main__")
    images, exported = namespace["images"], namespace["exported"]
    assert images.shape == (16, 1, 28, 28) and (tmp_path / "python_api_samples.png").is_file()
    assert torch.equal(namespace["again"], images)  # the export folder samples the run's images
    assert (exported / "README.md").is_file() and "Run(GAN from" in capsys.readouterr().out
    assert os.path.isdir(run_dir)
