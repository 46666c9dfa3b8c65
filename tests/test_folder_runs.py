"""`genlab train data=folder`: every family that generates from noise, and every image-to-image family, trains on
a folder of PNGs and JPEGs at 64x64, with and without class sub-folders, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_genlab
from tests.folder_images import make_class_folder, make_flat_folder, write_image

UNCONDITIONAL = ["gan", "dcgan", "wgan", "wgan_gp", "lsgan", "sngan", "rpgan", "vae", "ddpm", "flow", "meanflow", "ict"]
CONDITIONAL = ["cgan", "acgan", "cvae", "cddpm", "cflow", "cmeanflow", "cict"]
# what keeps a 64 px step short on a CPU: narrow nets
NARROW = {"gan": [], "vae": [], "dcgan": ["model.net.generator.base_channels=8", "model.net.discriminator.base_channels=8"],
          "unet": ["model.net.denoiser.width=8"]}

# each image-to-image family with a task it learns from a colour folder
TRANSLATION = {"regress": "inpaint", "pix2pix": "superres", "cyclegan": "restyle", "palette": "denoise",
               "palette_flow": "colorize"}


def narrow(family: str) -> list[str]:
    if family in ("ddpm", "flow", "cddpm", "cflow"):  # and a short sampler for their sample grid
        return [*NARROW["unet"], "model.sampler.steps=2"]
    if family in ("meanflow", "ict", "cmeanflow", "cict"):
        return NARROW["unet"]
    if family in ("dcgan", "wgan", "wgan_gp", "lsgan", "sngan", "rpgan", "acgan"):
        return ["++model.net.generator.base_channels=8", "++model.net.discriminator.base_channels=8"]
    if family in TRANSLATION:  # the task, and nets whose depth still comes from the image size
        nets = ([*NARROW["unet"], "model.sampler.steps=2"] if family.startswith("palette") else
                ["model.net.generator.width=8", "model.net.generator.max_channels=16",
                 *(["model.net.discriminator.width=8"] if family != "regress" else [])])
        return [f"task={TRANSLATION[family]}", *nets]
    return []


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    """Two classes of 70-80 px PNG, JPEG and WebP colour images, a grey one among them and a corrupt one."""
    root = make_class_folder(tmp_path_factory.mktemp("folder") / "pets", per_class=10, size=70)
    write_image(root / "dogs" / "grey.png", np.full((72, 72), 90, np.uint8))
    (root / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG at all")
    return root


def train(root: Path, cwd: Path, family: str, *extra: str):
    return run_genlab("train", f"model={family}", "data=folder", f"data.root={root}", "data.image_size=64",
                      "data.skip_bad=true", "data.val_size=4", "data.batch_size=4", "debug=fdr",
                      f"paths.cache_dir={cwd / 'cache'}", "callbacks.sample_quality=null", "callbacks.sample_grid.nrow=2",
                      *narrow(family), *extra,
                      cwd=cwd)


@pytest.mark.slow
@pytest.mark.parametrize("family", UNCONDITIONAL + CONDITIONAL)
def test_every_noise_family_trains_on_a_folder_of_class_folders(pictures, tmp_path, family):
    finished = train(pictures, tmp_path, family)
    assert finished.returncode == 0, finished.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("family", TRANSLATION)
def test_every_image_to_image_family_trains_on_a_folder_of_class_folders(pictures, tmp_path, family):
    finished = train(pictures, tmp_path, family, "callbacks.translation_quality=null")
    assert finished.returncode == 0, finished.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["pix2pix", "palette_flow"])
def test_a_flat_folder_trains_the_image_to_image_families_judged_by_pixels(tmp_path, family):
    """No classes, so no domain classifier: val/psnr and val/ssim beside the baseline's, no val/fid or label accuracy;
    `genlab eval` judges the outputs with FID Inception features, and says there are no label metrics."""
    root = make_flat_folder(tmp_path / "photos", count=12, size=66)
    finished = run_genlab("train", f"model={family}", "data=folder", f"data.root={root}", "data.image_size=64",
                          "data.val_size=2", "data.batch_size=4", "trainer.max_epochs=1", f"paths.cache_dir={tmp_path / 'cache'}",
                          "callbacks.translation_quality.n_samples=2", "callbacks.sample_grid.nrow=2", "hydra.run.dir=run",
                          *narrow(family), cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "summary.json").read_text())["metrics"]
    assert {"val/psnr", "val/ssim", "val/baseline_psnr", "val/baseline_ssim"} <= set(metrics)
    assert not {"val/fid", "val/label_accuracy", "val/baseline_fid"} & set(metrics)
    assert "val/psnr and val/ssim only" in finished.stderr + finished.stdout
    assert (tmp_path / "run" / "translations" / "last.png").is_file()
    if family == "pix2pix":  # 64 px, no flag: six U-Net levels, as the paper's eight take 256 px to 1x1
        state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        levels = {key.split(".")[3] for key in state["state_dict"] if key.startswith("family.generator.down.")}
        assert levels == {str(level) for level in range(6)}
        judged = run_genlab("eval", f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "split=val", "n_samples=2",
                            "kid_subset_size=2", "kid_subsets=2", "progress=false", f"paths.cache_dir={tmp_path / 'cache'}",
                            cwd=tmp_path)
        assert judged.returncode == 0, judged.stderr[-3000:]
        (entry,) = json.loads((tmp_path / "run" / "checkpoints" / "metrics.json").read_text()).values()
        assert entry["protocol"]["extractor"] == "inception" and "label_accuracy" not in entry["metrics"]
        assert {"psnr", "ssim", "fid"} <= set(entry["metrics"]) and "label metrics" in judged.stdout


@pytest.mark.parametrize("family", ["dcgan", "ddpm"])
def test_a_flat_folder_trains_the_unconditional_families(tmp_path, family):
    root = make_flat_folder(tmp_path / "faces", count=12, size=66)
    finished = train(root, tmp_path, family)
    assert finished.returncode == 0, finished.stderr[-3000:]


def test_a_folder_run_records_its_classes_and_skipped_files(pictures, tmp_path):
    finished = run_genlab("train", "model=cddpm", "data=folder", f"data.root={pictures}", "data.image_size=64",
                          "data.skip_bad=true", "data.val_size=4", "data.batch_size=4", "trainer.max_steps=2",
                          f"paths.cache_dir={tmp_path / 'cache'}", "callbacks.sample_grid.every_n_epochs=1",
                          "callbacks.sample_quality.n_samples=8", "model.net.denoiser.width=8",
                          "model.sampler.steps=2", "hydra.run.dir=run", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["classes"] == ["cats", "dogs"] and summary["data"]["skipped_files"] == 1
    assert summary["data"]["images_per_class"] == [10, 11]
    assert (tmp_path / "run" / "samples").is_dir()


def test_a_corrupt_file_stops_a_folder_run_in_one_line_naming_it(pictures, tmp_path):
    finished = run_genlab("train", "model=ddpm", "data=folder", f"data.root={pictures}", "data.image_size=64",
                          f"paths.cache_dir={tmp_path / 'cache'}", "debug=fdr", cwd=tmp_path)
    assert finished.returncode == 2 and "Traceback" not in finished.stderr
    assert "broken.jpg cannot be read as an image" in finished.stderr and "data.skip_bad=true" in finished.stderr


def test_a_missing_data_root_is_named(tmp_path):
    finished = run_genlab("train", "data=folder", f"paths.cache_dir={tmp_path / 'cache'}", "debug=fdr", cwd=tmp_path)
    assert finished.returncode != 0 and "Traceback" not in finished.stderr and "data.root" in finished.stderr


def test_a_flat_folder_run_is_judged_by_inception_without_label_metrics(tmp_path):
    root = make_flat_folder(tmp_path / "faces", count=16, size=66)
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    finished = run_genlab("train", "model=dcgan", "data=folder", f"data.root={root}", "data.image_size=64",
                          "data.val_size=2", "data.batch_size=4", "trainer.max_steps=2", cache, "hydra.run.dir=run",
                          *narrow("dcgan"), cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "best.ckpt is not kept" in finished.stderr + finished.stdout
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    judged = run_genlab("eval", f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "n_samples=3", "pr_k=1",
                        "kid_subset_size=2", "kid_subsets=2", "is_splits=1", "progress=false", cache, cwd=tmp_path)
    assert judged.returncode == 0, judged.stderr[-3000:]
    text = (tmp_path / "run" / "checkpoints" / "metrics.json").read_text()
    assert '"extractor": "inception"' in text and "inception_score" not in text and '"fid"' in text
    assert "label metrics" in judged.stdout
