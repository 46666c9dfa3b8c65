"""`genlab export` (genlab/export/): a self-contained folder that genlab.load reads back, without the run folder, to the
run's images bit for bit, through the same checks as a run (a crafted export is refused before anything is built);
a model card that says what was measured and how; an ONNX graph of a one-pass generator that onnxruntime runs to
torch's images within the stated tolerance; and never a folder written over.

The runs are built without training (tests/api_runs.py).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import genlab
from genlab.errors import GenlabError
from genlab.export import layout
from genlab.export.onnx import TOLERANCE
from tests.api_runs import PROGRESS, build_run, build_runs
from tests.conftest import run_genlab

# an evaluation of last.ckpt as genlab eval records it (the numbers made up): the card must state it with its protocol
EVALUATED = {"last.ckpt": {"checkpoint": "last.ckpt", "protocol": {
    "data": "mnist", "split": "test", "n_generated": 20, "n_real": 20, "extractor": "classifier", "seed": 0,
    "weights": "ema", "sampler": {}}, "metrics": {"fid": 12.25, "precision": 0.5}}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    folders = build_runs(root, "dcgan", "ddpm", "cgan", "pix2pix", "vae")
    (folders["dcgan"] / "checkpoints" / "metrics.json").write_text(json.dumps(EVALUATED))
    return {**folders, "data": root / "data"}


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory) -> Path:
    """`genlab export` of the dcgan run, by the command line."""
    where = tmp_path_factory.mktemp("exported")
    result = run_genlab("export", f"ckpt_path={runs['dcgan'] / 'checkpoints' / 'last.ckpt'}", f"out={where / 'dcgan'}",
                        "n=16", "nrow=4", "licence=MIT", cwd=where)
    assert result.returncode == 0, result.stderr[-3000:]
    return where / "dcgan"


def without_the_run(run: Path, tmp_path: Path) -> Path:
    """Move the run folder away (into tmp_path) for the test's duration: the export must not need it."""
    return Path(shutil.move(str(run), str(tmp_path / "moved")))


# --- the folder, loaded back ----------------------------------------------------------------------------------------


def test_an_export_holds_its_weights_config_card_grid_and_metrics_and_no_pickle(exported):
    names = sorted(path.name for path in exported.iterdir())
    assert names == sorted([layout.MANIFEST, layout.CONFIG, layout.RAW, layout.EMA, layout.METRICS, layout.SAMPLES,
                            layout.CARD])
    manifest = json.loads((exported / layout.MANIFEST).read_text())
    assert manifest["weights"] == {"raw": "raw.safetensors", "ema": "ema.safetensors", "default": "ema"}
    assert manifest["progress"]["generator_steps"] == PROGRESS["generator_steps"]
    # neither paths.* nor any other folder of the machine that trained it
    assert manifest["training"]["overrides"] == ["model=dcgan", "data.root=<path>"]
    assert "/somewhere/private" not in (exported / layout.MANIFEST).read_text() + (exported / layout.CARD).read_text()
    assert json.loads((exported / layout.METRICS).read_text()) == EVALUATED
    config = OmegaConf.load(exported / layout.CONFIG)
    assert "paths" not in config and config.model.net.generator.image_shape == [1, 28, 28]  # resolved
    assert str(exported.parent) not in (exported / layout.CONFIG).read_text()  # nor a folder of this machine
    from safetensors import safe_open

    with safe_open(str(exported / layout.EMA), "pt") as tensors:
        assert tensors.metadata()["weights"] == "ema" and all(key.startswith("ema.") for key in tensors.keys())


def test_the_model_card_states_family_data_budget_metrics_with_protocol_licence_and_how_to_load(exported):
    card = (exported / layout.CARD).read_text()
    assert card.startswith("---\nlicense: MIT\n")
    for words in ["# GAN on mnist", "1x28x28 images, unconditional", "7 generator steps, 112 images seen",
                  "1.5 minutes", "20 generated vs 20 real images of mnist's test split, classifier features, seed 0",
                  "| fid | 12.25 |", 'run = genlab.load("dcgan")', "hf upload <user>/<model> dcgan .",
                  "genlab's tests do not run this command", "![samples](samples.png)"]:
        assert words in card, words


def test_an_export_loads_without_its_run_folder_to_the_runs_images_under_both_weights(runs, exported, tmp_path):
    before = {ema: genlab.load(runs["dcgan"], ema=ema).sample(8, seed=3) for ema in (True, False)}
    moved = without_the_run(runs["dcgan"], tmp_path)
    try:
        for ema in (True, False):
            loaded = genlab.load(exported, ema=ema)
            assert torch.equal(loaded.sample(8, seed=3), before[ema])
        assert loaded.metrics == EVALUATED and loaded.summary["seconds"] == 90.0
    finally:
        shutil.move(str(moved), str(runs["dcgan"]))


@pytest.mark.parametrize("family", ["ddpm", "cgan", "pix2pix"])
def test_each_kind_of_family_exports_to_the_same_images(runs, tmp_path, family):
    run = genlab.load(runs[family], data_dir=runs["data"])
    out = run.export(tmp_path / family, n=4, nrow=2, sampler={"steps": 2} if family == "ddpm" else None)
    loaded = genlab.load(out, data_dir=runs["data"])
    if family == "pix2pix":
        inputs, _ = run.pairs(2)
        assert torch.equal(loaded.translate(inputs, seed=1), run.translate(inputs, seed=1))
    elif family == "cgan":
        assert torch.equal(loaded.sample(labels=[7, 1], seed=1), run.sample(labels=[7, 1], seed=1))
    else:
        assert torch.equal(loaded.sample(2, seed=1, steps=2), run.sample(2, seed=1, steps=2))
        assert json.loads((out / layout.MANIFEST).read_text())["sampler"]["defaults"]["method"] == "dpm++"


NOISE_MODELS = ["gan", "cgan", "acgan", "dcgan", "wgan", "wgan_gp", "lsgan", "sngan", "rpgan", "vae", "cvae", "ddpm",
                "flow", "cddpm", "cflow", "meanflow", "cmeanflow", "ict", "cict", "reflow", "creflow", "cd", "ccd"]
TASK_MODELS = {"regress": "denoise", "pix2pix": "denoise", "cyclegan": "restyle", "palette": "denoise",
               "palette_flow": "denoise"}


@pytest.mark.slow  # every model option at its shipped net sizes: about 40 s in all
@pytest.mark.parametrize("model", NOISE_MODELS + list(TASK_MODELS))
def test_every_model_option_exports_and_loads_back_to_its_images(runs, tmp_path, model):
    task = (f"task={TASK_MODELS[model]}",) if model in TASK_MODELS else ()
    build_run(tmp_path / "run", model, overrides=(f"model={model}", *task))
    run = genlab.load(tmp_path / "run", data_dir=runs["data"])
    options = {"steps": 2} if "steps" in run.sampler_options else {}
    out = run.export(tmp_path / "exported", n=4, nrow=2, sampler=options)  # checked to sample alike before it is kept
    loaded = genlab.load(out, data_dir=runs["data"])
    if run.translates:
        inputs, _ = run.pairs(2)
        assert torch.equal(loaded.translate(inputs, seed=5, **options), run.translate(inputs, seed=5, **options))
    else:
        assert torch.equal(loaded.sample(3, seed=5, **options), run.sample(3, seed=5, **options))


def test_a_run_sampling_a_posthoc_average_in_place_of_its_raw_weights_is_not_exported_as_raw(runs, tmp_path):
    run = genlab.load(runs["dcgan"])
    run.model.weights_loaded = "posthoc_ema sigma_rel=0.1 at step 7"  # as genlab.load(..., ema_length=0.1) leaves it
    with pytest.raises(GenlabError, match="load the run without ema_length to export it"):
        run.export(tmp_path / "posthoc")
    assert not (tmp_path / "posthoc").exists()


def test_an_export_never_writes_into_a_folder_that_holds_files(runs, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    result = run_genlab("export", f"ckpt_path={runs['dcgan'] / 'checkpoints' / 'last.ckpt'}", f"out={out}", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("genlab: error:")]
    assert f"out={out} already holds notes.txt: genlab export never writes over a folder" in line
    assert sorted(os.listdir(out)) == ["notes.txt"] and (out / "notes.txt").read_text() == "my notes"
    assert not list(tmp_path.glob(".mine.partial-*"))


# --- a crafted export is refused before anything is built -----------------------------------------------------------


class TouchesMarker:
    """Unpickled, it runs `touch <marker>`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def crafted(exported: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(exported, tmp_path / name))


@pytest.mark.parametrize("case", ["foreign-target", "torch-load-of-a-pickle-beside-it", "pickle-beside-it",
                                  "pickle-named-as-text"])
def test_a_crafted_export_is_refused_in_one_line_before_anything_is_built(exported, tmp_path, monkeypatch, case):
    import genlab.builder

    folder, marker = crafted(exported, tmp_path, case), tmp_path / "marker"
    config = folder / layout.CONFIG
    cfg = OmegaConf.load(config)
    if case == "foreign-target":
        cfg.model._target_, cfg.model._args_ = "os.system", [f"touch {marker}"]
        names = ["model._target_='os.system'", "add trust_run=true"]
    elif case == "torch-load-of-a-pickle-beside-it":  # named as genlab's own YAML: the config's check refuses it
        (folder / "evil.yaml").write_bytes(pickle.dumps(TouchesMarker(marker)))
        cfg.model.latent_dim = {"_target_": "torch.load", "f": str(folder / "evil.yaml"), "weights_only": False}
        names = ["model.latent_dim._target_='torch.load'", "add trust_run=true"]
    elif case == "pickle-beside-it":
        (folder / "extra_weights.pt").write_bytes(pickle.dumps(TouchesMarker(marker)))
        names = ["extra_weights.pt is a pickle", "genlab never writes one into an export", "add trust_run=true"]
    else:
        (folder / "notes.txt").write_bytes(pickle.dumps(TouchesMarker(marker)))
        names = ["notes.txt is a pickle"]
    OmegaConf.save(cfg, config)
    monkeypatch.setattr(genlab.builder, "build_module", lambda *a, **k: pytest.fail("built before refusing"))
    with pytest.raises(GenlabError) as refused:
        genlab.load(folder)
    message = str(refused.value)
    assert "\n" not in message and all(name in message for name in names), message
    assert not marker.exists()


# --- ONNX ------------------------------------------------------------------------------------------------------------


# the one-pass families (a convolutional GAN, a conditional GAN, the MLP GAN, a VAE's decoder) and the few-step ones
# at one step (consistency distillation samples with iCT's code), with the sampler options the graph is made under
ONNX_FAMILIES = {"dcgan": {}, "cgan": {}, "gan": {}, "vae": {}, "meanflow": {"steps": 1}, "ict": {"steps": 1},
                 "reflow": {"method": "euler", "steps": 1}}


@pytest.mark.slow  # torch.export traces each generator (a few seconds each)
@pytest.mark.parametrize("family", list(ONNX_FAMILIES))
def test_format_onnx_writes_a_graph_that_onnxruntime_runs_to_torchs_images_within_the_tolerance(runs, tmp_path, family):
    import numpy as np
    import onnxruntime

    if family not in runs:  # the MLP GAN at its shipped size; a few-step family with a narrow UNet
        narrow = () if family == "gan" else ("model.net.denoiser.width=8",)
        build_run(tmp_path / "run", family, overrides=(f"model={family}", *narrow))
    run = genlab.load(runs.get(family, tmp_path / "run"))
    out = run.export(tmp_path / family, format="onnx", n=0)
    graph = json.loads((out / layout.MANIFEST).read_text())["onnx"]
    assert graph["max_abs_difference"] <= graph["tolerance"] == TOLERANCE and graph["sampler"] == ONNX_FAMILIES[family]
    session = onnxruntime.InferenceSession(str(out / layout.ONNX), providers=["CPUExecutionProvider"])
    noise = torch.randn(5, *run.family.noise_shape, generator=torch.Generator().manual_seed(9))  # another batch size
    labels = torch.tensor([4, 0, 9, 2, 2]) if run.num_classes else None
    feeds = {"noise": noise.numpy(), **({"labels": labels.numpy()} if labels is not None else {})}
    (images,) = session.run(None, feeds)
    expected = run.sample(noise=noise, labels=labels, **ONNX_FAMILIES[family]).numpy()
    assert images.shape == expected.shape and np.abs(images - expected).max() <= TOLERANCE
    assert "## ONNX" in (out / layout.CARD).read_text()


@pytest.mark.slow  # traces iCT's one-step sampler (about 6 s)
def test_format_onnx_refuses_a_graph_whose_batch_size_came_out_fixed(tmp_path, monkeypatch):
    """A sampler that sizes a tensor by len(x) (a Python int when traced) fixes the batch size of the graph: here
    iCT's one-step sampler written that way, which genlab's once was."""
    import genlab.families.consistency as consistency

    def sized_by_len(f, noise, sigmas, sigma_min, draw, on_step=None):
        return f(noise * sigmas[0], torch.full((len(noise),), sigmas[0], device=noise.device))

    build_run(tmp_path / "run", "ict", overrides=("model=ict", "model.net.denoiser.width=8"))
    monkeypatch.setattr(consistency, "sample_consistency", sized_by_len)
    with pytest.raises(GenlabError, match="ConsistencyTraining's graph came out with a fixed batch size of 8"):
        genlab.load(tmp_path / "run").export(tmp_path / "ict", format="onnx", n=0)
    assert not (tmp_path / "ict").exists() and not list(tmp_path.glob(".ict.partial-*"))


def test_format_onnx_of_a_many_step_family_is_refused_in_one_line_before_anything_is_written(runs, tmp_path):
    result = run_genlab("export", f"ckpt_path={runs['ddpm'] / 'checkpoints' / 'last.ckpt'}", f"out={tmp_path / 'x'}",
                        "format=onnx", cwd=tmp_path)
    [line] = [line for line in result.stderr.splitlines() if line.startswith("genlab: error:")]
    assert result.returncode != 0 and "format=onnx: DDPM samples in many steps" in line and "use format=safetensors" in line
    assert not (tmp_path / "x").exists()
