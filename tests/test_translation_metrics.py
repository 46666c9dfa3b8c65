"""Image-to-image measures checked against closed forms and torchmetrics, and LPIPS checked never to download."""

from __future__ import annotations

import math
import socket
import urllib.request

import pytest
import torch
import torchvision
from torchmetrics.functional.image.lpips import learned_perceptual_image_patch_similarity
from torchmetrics.image import StructuralSimilarityIndexMeasure

from genlab.metrics import translation
from genlab.tasks.base import BT601_WEIGHTS
from genlab.metrics.translation import (
    colourfulness,
    diversity,
    local_lpips,
    luminance,
    pairwise_l1,
    psnr_per_image,
    ssim_per_image,
)


def images(n: int, channels: int = 1, size: int = 28, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """Uniform images in (-scale, scale)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, channels, size, size, generator=generator, dtype=torch.float64) * 2 - 1) * scale


# PSNR


def test_psnr_of_a_constant_offset_is_the_closed_form():
    x = images(3, scale=0.5)  # x + 0.1 stays inside [-1, 1]: clamping does nothing
    expected = 10 * math.log10(2.0**2 / 0.1**2)  # 26.0206 dB
    assert torch.allclose(psnr_per_image(x + 0.1, x), torch.full((3,), expected, dtype=torch.float64), atol=1e-9)


def test_psnr_of_identical_images_is_capped_at_100_db():
    x = images(2)
    assert torch.equal(psnr_per_image(x, x), torch.full((2,), 100.0, dtype=torch.float64))


def test_psnr_of_an_image_does_not_depend_on_its_batch():
    x, noise = images(4), 0.1 * images(4, seed=1)
    together = psnr_per_image(x + noise, x)
    alone = torch.cat([psnr_per_image(x[i : i + 1] + noise[i : i + 1], x[i : i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-9)
    assert together.unique().numel() == 4


# SSIM


def test_ssim_averages_to_torchmetrics_module_on_28px_images():
    x = images(4).float()
    y = (x + 0.2 * images(4, seed=1).float()).clamp(-1, 1)
    module = StructuralSimilarityIndexMeasure(data_range=1.0, kernel_size=11, sigma=1.5)
    expected = module((y + 1) / 2, (x + 1) / 2)
    assert ssim_per_image(y, x).shape == (4,)
    assert torch.allclose(ssim_per_image(y, x).mean(), expected, atol=1e-6)


def test_ssim_of_identical_images_is_one():
    x = images(3, channels=3).float()
    assert torch.allclose(ssim_per_image(x, x), torch.ones(3), atol=1e-6)


def test_ssim_is_lower_for_a_noisier_image():
    x, noise = images(1).float(), images(1, seed=1).float()
    slightly = ssim_per_image((x + 0.05 * noise).clamp(-1, 1), x)
    heavily = ssim_per_image((x + 0.5 * noise).clamp(-1, 1), x)
    assert heavily.item() < slightly.item() < 1.0


# colourfulness


def test_colourfulness_of_grey_images_is_zero():
    grey = images(2)
    assert torch.equal(colourfulness(grey), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(colourfulness(grey.expand(-1, 3, -1, -1)), torch.zeros(2, dtype=torch.float64))


def test_colourfulness_of_half_red_half_green_is_the_closed_form():
    image = -torch.ones(1, 3, 4, 4, dtype=torch.float64)
    image[0, 0, :2] = 1.0  # top half pure red (255, 0, 0)
    image[0, 1, 2:] = 1.0  # bottom half pure green (0, 255, 0)
    pixels = [(255.0, 0.0, 0.0)] * 8 + [(0.0, 255.0, 0.0)] * 8
    rg = [r - g for r, g, _ in pixels]
    yb = [0.5 * (r + g) - b for r, g, b in pixels]

    def mean(values):
        return sum(values) / len(values)

    def variance(values):
        return mean([(v - mean(values)) ** 2 for v in values])

    expected = math.sqrt(variance(rg) + variance(yb)) + 0.3 * math.sqrt(mean(rg) ** 2 + mean(yb) ** 2)
    assert expected == 255.0 + 0.3 * 127.5
    assert colourfulness(image).item() == pytest.approx(expected, abs=1e-9)


# diversity


def test_diversity_and_pairwise_l1_of_identical_samples_are_zero():
    samples = images(3).unsqueeze(1).expand(-1, 4, -1, -1, -1)
    assert torch.equal(diversity(samples), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(pairwise_l1(samples), torch.zeros(3, dtype=torch.float64))


def test_two_samples_a_constant_apart_have_std_half_and_l1_the_constant():
    x = images(2, scale=0.5)
    samples = torch.stack([x, x + 0.3], dim=1)
    assert torch.allclose(diversity(samples), torch.full((2,), 0.15, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(pairwise_l1(samples), torch.full((2,), 0.3, dtype=torch.float64), atol=1e-12)


def test_pairwise_l1_averages_all_pairs():
    base = torch.zeros(1, 1, 1, 2, 2, dtype=torch.float64)
    samples = torch.cat([base, base + 0.1, base + 0.4], dim=1)  # pairs 0.1, 0.4, 0.3
    assert pairwise_l1(samples).item() == pytest.approx((0.1 + 0.4 + 0.3) / 3, abs=1e-12)


def test_diversity_needs_two_samples_per_input():
    with pytest.raises(ValueError, match="K >= 2"):
        diversity(images(2).unsqueeze(1))
    with pytest.raises(ValueError, match="K >= 2"):
        pairwise_l1(images(2).unsqueeze(1))


# luminance


def test_luminance_weights_sum_to_one_and_grey_maps_to_itself():
    assert sum(BT601_WEIGHTS) == pytest.approx(1.0, abs=1e-12)
    grey = images(2)
    assert torch.allclose(luminance(grey.expand(-1, 3, -1, -1)), grey, atol=1e-12)
    assert luminance(grey) is grey


def test_luminance_of_pure_channels_is_their_weight():
    image = torch.eye(3, dtype=torch.float64).view(3, 3, 1, 1)  # pure R, pure G, pure B
    assert torch.allclose(luminance(image).flatten(), torch.tensor(BT601_WEIGHTS, dtype=torch.float64))


# LPIPS


def test_lpips_backbone_file_names_are_torchvisions():
    weights = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}
    for net, enum in weights.items():
        url = getattr(torchvision.models, enum).DEFAULT.url
        assert url.rsplit("/", 1)[1] == translation.LPIPS_BACKBONE_FILES[net]


@pytest.fixture
def network_calls(monkeypatch):
    """Every way torch, torchvision and urllib could reach the network, made to fail and recorded."""
    calls = []

    def refuse(name):
        def refused(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"network access attempted: {name}")

        return refused

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse("torch.hub.download_url_to_file"))
    monkeypatch.setattr(torch.hub, "urlopen", refuse("torch.hub.urlopen"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.request.urlopen"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    return calls, refuse


def test_lpips_without_weights_is_not_computed_and_touches_no_network(tmp_path, monkeypatch, network_calls):
    calls, refuse = network_calls
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse("torch.hub.load_state_dict_from_url"))
    monkeypatch.setattr(
        torchvision.models._api, "load_state_dict_from_url", refuse("torchvision.load_state_dict_from_url")
    )
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    torch.hub.set_dir(str(tmp_path))
    lpips, reason = local_lpips()
    assert lpips is None
    assert reason.startswith("not computed")
    assert str(tmp_path / "checkpoints") in reason
    assert calls == []
    assert not (tmp_path / "checkpoints").exists()


def test_lpips_from_a_local_backbone_matches_torchmetrics(tmp_path, monkeypatch, network_calls):
    calls, refuse = network_calls
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    torch.hub.set_dir(str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.manual_seed(0)  # a random SqueezeNet stands in for torchvision's (small) ImageNet weights
    path = tmp_path / "checkpoints" / translation.LPIPS_BACKBONE_FILES["squeeze"]
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)

    with monkeypatch.context() as strict:  # genlab does not even read the cache through torchvision's loader
        loader = refuse("torchvision.load_state_dict_from_url")
        strict.setattr(torchvision.models._api, "load_state_dict_from_url", loader)
        lpips, reason = local_lpips()
    assert reason == f"lpips-squeeze ({path})"

    x, y = images(2, channels=3, size=64).float(), images(2, channels=3, size=64, seed=1).float()
    expected = learned_perceptual_image_patch_similarity(x, y, net_type="squeeze", reduction="none")  # from the cache
    assert torch.allclose(lpips(x, y), expected, atol=1e-6)
    assert torch.allclose(lpips(x, x), torch.zeros(2), atol=1e-6)
    assert lpips(x[:, :1, :28, :28], y[:, :1, :28, :28]).shape == (2,)  # grey 28 px images are upsampled RGB
    assert calls == []
