"""The image-to-image tasks: each degradation is exactly what it says, drawn per image from its key (so alike in
any batch, on any resume), and a task that cannot work on the data is refused by name."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genlab.data.datamodule import DeviceBatchLoader
from genlab.data.sources import LabeledImages
from genlab.errors import ConfigError
from genlab.tasks.base import luma
from genlab.tasks.restore import Denoise, Inpaint, SuperResolution
from genlab.tasks.translate import Colorize, ColorizeDigits, Edges, Restyle, hsv_to_rgb

GREY = (1, 28, 28)


def digits(n: int = 6, shape: tuple[int, ...] = GREY, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("task", [Inpaint(GREY, mask="boxes"), Inpaint(GREY, mask="strokes"), Denoise(GREY),
                                  ColorizeDigits(GREY)], ids=["boxes", "strokes", "denoise", "colours"])
def test_an_images_degradation_is_the_same_in_any_batch(task):
    images, keys = digits(8), torch.arange(100, 108)
    whole = task.pair(images, keys)
    parts = [task.pair(images[i:i + 3], keys[i:i + 3]) for i in range(0, 8, 3)]
    assert torch.equal(whole.source, torch.cat([p.source for p in parts]))
    assert torch.equal(whole.target, torch.cat([p.target for p in parts]))
    reordered = task.pair(images.flip(0), keys.flip(0))
    assert torch.equal(reordered.source, whole.source.flip(0))


def test_keys_and_seeds_change_the_draws():
    task, images = Denoise(GREY, seed=1), digits(2)
    first = task.pair(images, torch.tensor([0, 1])).source
    assert not torch.equal(first, task.pair(images, torch.tensor([2, 3])).source)
    assert not torch.equal(first, Denoise(GREY, seed=2).pair(images, torch.tensor([0, 1])).source)


def test_denoise_adds_sigma_times_the_keys_gaussian():
    task, images = Denoise(GREY, sigma=0.3, seed=5), digits(3)
    source = task.pair(images, torch.tensor([7, 8, 9])).source
    for i, key in enumerate((7, 8, 9)):
        generator = torch.Generator().manual_seed((5 * 0x9E3779B97F4A7C15 + key) % 2**63)
        assert torch.allclose(source[i], images[i] + 0.3 * torch.randn(GREY, generator=generator))
    assert torch.equal(task.baseline(source), source.clamp(-1, 1))


def test_the_centre_hole_is_half_the_side_and_the_mask_rides_along():
    task, images = Inpaint(GREY, mask="center", fill=0.0), digits(2)
    pair = task.pair(images, torch.arange(2))
    hole = pair.source[:, 1:] > 0
    assert hole.sum().item() == 2 * 14 * 14 and hole[:, :, 7:21, 7:21].all()
    assert torch.equal(pair.source[:, :1][hole], torch.zeros(2 * 14 * 14))
    assert torch.equal(pair.source[:, :1][~hole], images[~hole])
    image, known_hole = task.known(pair.source)
    assert torch.equal(known_hole.bool(), hole) and torch.equal(task.baseline(pair.source), image)


@pytest.mark.parametrize("mask", ["boxes", "strokes"])
def test_random_holes_cover_part_of_the_image(mask):
    hole = Inpaint(GREY, mask=mask).holes(torch.arange(50), torch.device("cpu"))
    share = hole.mean(dim=(1, 2, 3))
    assert (share > 0).all() and (share < 0.9).all() and len(set(share.tolist())) > 10


def test_superres_is_the_bicubic_upsample_of_the_downsample():
    images = digits(2)
    source = SuperResolution(GREY, factor=4).pair(images, torch.arange(2)).source
    small = F.interpolate(images, size=(7, 7), mode="bicubic", antialias=True, align_corners=False)
    assert torch.allclose(source, F.interpolate(small, size=(28, 28), mode="bicubic", align_corners=False).clamp(-1, 1))
    constant = torch.full((1, 1, 28, 28), 0.25)  # a flat image survives both resamplings
    assert torch.allclose(SuperResolution(GREY, factor=2).pair(constant, torch.arange(1)).source, constant, atol=1e-6)


def test_colorize_feeds_the_luma_and_colorize_digits_paints_the_digit():
    colour = digits(2, (3, 8, 8))
    pair = Colorize((3, 8, 8)).pair(colour, torch.arange(2))
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose(pair.source, (colour * weights).sum(1, keepdim=True)) and torch.equal(pair.target, colour)
    ink = torch.tensor([[[-1.0, 1.0]]]).expand(1, 1, 1, 2).reshape(1, 1, 1, 2)  # a black and a white pixel
    task = ColorizeDigits((1, 1, 2))
    target = task.pair(ink, torch.tensor([4])).target
    colours = task.colours(torch.Generator().manual_seed((0 * 0x9E3779B97F4A7C15 + 4) % 2**63))
    assert torch.allclose(target[0, :, 0, 0], 2 * colours[1] - 1, atol=1e-6)  # black ink: the background colour
    assert torch.allclose(target[0, :, 0, 1], 2 * colours[0] - 1, atol=1e-6)  # white ink: the foreground colour
    assert torch.allclose(task.pair(ink, torch.tensor([4])).source, luma(target))


def test_hsv_primaries():
    hues = torch.tensor([0.0, 1 / 3, 2 / 3])
    assert torch.allclose(hsv_to_rgb(hues, torch.ones(3), torch.ones(3)), torch.eye(3))


def test_edges_are_the_sobel_magnitude_of_a_step():
    step = torch.full((1, 1, 5, 5), -1.0)
    step[..., 3:] = 1.0  # black | white, a vertical edge between columns 2 and 3
    edges = (Edges((1, 5, 5)).pair(step, torch.arange(1)).source + 1) / 2
    # on [0, 1] the step is 1: Sobel's horizontal response is 1 + 2 + 1 = 4 beside the edge, out of 4 sqrt 2
    assert edges[0, 0, 2, 2].item() == pytest.approx(4 / (4 * math.sqrt(2)))
    assert edges[0, 0, 2, 0].item() == pytest.approx(0.0)


def test_restyle_pairs_are_true_in_evaluation_and_broken_in_training():
    task, images = Restyle(GREY), digits(4)
    paired = task.pair(images, torch.arange(4))
    assert torch.equal(task.pair(images, torch.arange(4), training=True).target, paired.target.roll(1, dims=0))
    white = torch.ones(1, 1, 2, 2)
    assert torch.allclose(task.pair(white, torch.arange(1)).target[0, :, 0, 0], 2 * torch.tensor([0.55, 0.0, 0.1]) - 1)


def test_evaluation_inputs_ignore_the_runs_seed():
    images = digits(4)
    assert torch.equal(Denoise(GREY, seed=1).fixed_pair(images, 0).source, Denoise(GREY, seed=9).fixed_pair(images, 0).source)


@pytest.mark.parametrize(("make", "words"), [
    (lambda: Colorize(GREY), "task=colorize makes colour images from grey ones"),
    (lambda: ColorizeDigits((3, 32, 32)), "task=colorize_digits colours grey images"),
    (lambda: SuperResolution((1, 30, 30), factor=4), "task.factor=4 does not divide"),
    (lambda: Inpaint(GREY, mask="circle"), "task.mask='circle' is not valid"),
    (lambda: Restyle(GREY, style_a={"foreground": [2, 0, 0], "background": [0, 0, 0]}), "task.style_a.foreground"),
])
def test_a_task_the_data_cannot_take_is_refused_by_key(make, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("[", r"\[")):
        make()


def test_the_loader_keys_training_images_by_epoch_and_resumes_on_the_same_draws():
    data = LabeledImages((torch.rand(12, 1, 28, 28) * 255).to(torch.uint8), torch.arange(12) % 10)
    task = Inpaint(GREY, mask="boxes")
    loader = DeviceBatchLoader(data, batch_size=4, shuffle=True, seed=3, task=task)
    loader.sampler.set_epoch(1)
    epoch = list(loader)
    assert all(len(batch) == 3 for batch in epoch)  # (target, labels, input)
    loader.sampler.set_epoch(2)
    assert not torch.equal(list(loader)[0][2], epoch[0][2])  # fresh holes each epoch
    resumed = DeviceBatchLoader(data, batch_size=4, shuffle=True, seed=3, task=task)
    resumed.load_state_dict({"epoch": 1, "batches": 1})
    resumed.sampler.set_epoch(1)
    for got, want in zip(list(resumed), epoch[1:]):
        assert all(torch.equal(a, b) for a, b in zip(got, want))
    held_out = DeviceBatchLoader(data, batch_size=4, shuffle=False, task=task)
    held_out.sampler.set_epoch(5)  # a held-out split's images are keyed by their index alone, every epoch
    first = data.images[:4].float() / 127.5 - 1
    assert torch.equal(list(held_out)[0][2], task.degrade(first, torch.arange(4)).source)


def test_each_ddp_rank_degrades_its_shard_as_one_process_would():
    data = LabeledImages((torch.rand(16, 1, 28, 28) * 255).to(torch.uint8), torch.arange(16) % 10)
    task = Denoise(GREY, seed=4)
    alone = DeviceBatchLoader(data, batch_size=8, shuffle=True, seed=1, task=task)
    alone.sampler.set_epoch(3)
    by_image = {}
    for target, _, source in alone:
        for t, s in zip(target, source):
            by_image[t.sum().item()] = s
    for rank in (0, 1):
        shard = DeviceBatchLoader(data, batch_size=4, shuffle=True, seed=1, rank=rank, world_size=2, task=task)
        shard.sampler.set_epoch(3)
        for target, _, source in shard:
            assert all(torch.equal(s, by_image[t.sum().item()]) for t, s in zip(target, source))
