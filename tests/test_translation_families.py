"""The image-to-image families' losses against their papers' formulas on hand-made tensors, the known pixels kept,
the networks seeded apart from the run's stream, and the pairings genlab refuses in one line."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import ConfigError
from genlab.families.cyclegan import CycleGAN, ImagePool
from genlab.families.palette import PaletteDDPM, PaletteFlow
from genlab.families.pix2pix import Pix2Pix
from genlab.families.translation import Regress
from genlab.nets.pix2pix import PatchGAN, UNetGenerator
from genlab.schema import check_command
from genlab.tasks.restore import Denoise, Inpaint
from genlab.tasks.translate import Edges, Restyle

SHAPE = (1, 8, 8)


class Constant(nn.Module):
    """A critic whose every patch scores `value`."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, image: Tensor, condition: Tensor | None = None) -> Tensor:
        return torch.full((len(image), 1, 3, 3), self.value) + 0 * self.weight


class Halve(nn.Module):
    """G(x) = x / 2, a generator whose output is known."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * x * self.weight


def batch(n: int = 4, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> Tensor:
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_pix2pix_generator_loss_at_critic_logits_zero_is_log_2_plus_100_l1():
    family = Pix2Pix(net={"generator": Halve(), "discriminator": Constant(0.0)}, task=Denoise(SHAPE))
    real, source = batch(), batch(seed=1)
    fake = family.generate(len(source), source)
    loss, logs = family.generator_loss(real, fake, source)
    expected = math.log(2) + 100 * (0.5 * source - real).abs().mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert logs["g_adversarial"].item() == pytest.approx(math.log(2))


def test_pix2pix_halves_its_critics_objective():
    family = Pix2Pix(net={"generator": Halve(), "discriminator": Constant(0.0)}, task=Denoise(SHAPE))
    loss, _ = family.critic_loss(batch(), batch(seed=2), batch(seed=1))
    assert loss.item() == pytest.approx(0.5 * 2 * math.log(2))  # (BCE(0, real) + BCE(0, fake)) / 2


def test_pix2pix_at_adversarial_weight_zero_has_regress_loss():
    source, real = batch(seed=1), batch()
    pix2pix = Pix2Pix(net={"generator": Halve(), "discriminator": Constant(3.0)}, task=Denoise(SHAPE), adversarial_weight=0)
    regress = Regress(net={"generator": Halve()}, task=Denoise(SHAPE))
    loss, _ = pix2pix.generator_loss(real, pix2pix.generate(4, source), source)
    assert torch.equal(loss, regress.loss(real, source)["loss"])


def nets_from_config(seed: int) -> dict:
    from functools import partial

    return {"generator": partial(UNetGenerator, width=4, depth=3, max_channels=8),
            "discriminator": partial(PatchGAN, width=4)}


def test_each_network_starts_from_its_roles_seed_and_leaves_the_run_stream_alone():
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    regress = Regress(net={"generator": nets_from_config(1)["generator"]}, task=Denoise(SHAPE), seed=1)
    pix2pix = Pix2Pix(net=nets_from_config(1), task=Denoise(SHAPE), seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    for a, b in zip(regress.generator.state_dict().values(), pix2pix.generator.state_dict().values()):
        assert torch.equal(a, b)
    other = Regress(net={"generator": nets_from_config(2)["generator"]}, task=Denoise(SHAPE), seed=2)
    assert not torch.equal(other.generator.down[0].weight, regress.generator.down[0].weight)


def test_cycle_and_identity_terms_vanish_for_identity_generators_and_the_game_is_at_the_papers_scale():
    task = Restyle(SHAPE)
    family = CycleGAN(net={"generator": nn.Identity(), "reverse_generator": nn.Identity(),
                           "discriminator": Constant(0.25), "reverse_discriminator": Constant(0.25)}, task=task)
    a, b = batch(shape=(3, 8, 8)), batch(shape=(3, 8, 8), seed=1)
    fakes = family.generate(4, (a, b))
    loss, logs = family.generator_loss(b, fakes, (a, b))
    assert logs["g_cycle"].item() == 0 and logs["g_identity"].item() == pytest.approx(
        (F.l1_loss(b, b) + F.l1_loss(a, a)).item())
    # the paper's MSELoss: E[(D(G(a)) - 1)^2] for each generator, not LSGAN's 1/2 of it
    assert logs["g_adversarial"].item() == pytest.approx(2 * (0.25 - 1) ** 2)
    assert loss.item() == pytest.approx(2 * (0.25 - 1) ** 2)
    critic, _ = family.critic_loss(b, fakes, (a, b))
    assert critic.item() == pytest.approx(2 * (0.5 * (0.25 - 1) ** 2 + 0.5 * 0.25**2))  # each critic's loss halved


def test_identity_terms_weigh_half_of_lambda():
    task = Restyle(SHAPE)
    family = CycleGAN(net={"generator": Halve(), "reverse_generator": nn.Identity(),
                           "discriminator": Constant(1.0), "reverse_discriminator": Constant(1.0)}, task=task, pool_size=0)
    a, b = batch(shape=(3, 8, 8)), batch(shape=(3, 8, 8), seed=1)
    loss, logs = family.generator_loss(b, family.generate(4, (a, b)), (a, b))
    cycle = F.l1_loss(0.5 * a, a) + F.l1_loss(0.5 * b, b)  # F(G(a)) = a/2, G(F(b)) = b/2
    identity = F.l1_loss(0.5 * b, b)  # G(b) = b/2; F(a) = a
    assert loss.item() == pytest.approx((10 * cycle + 10 * 0.5 * identity).item(), rel=1e-6)


def test_identity_terms_need_matching_channels():
    with pytest.raises(ConfigError, match="model.identity_weight=0.5"):
        CycleGAN(net={}, task=Edges((3, 8, 8)))


def test_the_pool_answers_with_fresh_fakes_until_full_then_half_with_old_ones_and_is_kept():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1)
    assert torch.equal(pool.query(first), first)
    fresh = torch.arange(100.0, 300.0).view(200, 1)
    answered = pool.query(fresh)
    old = (answered != fresh).float().mean().item()
    assert 0.4 < old < 0.6  # each new fake: with probability 1/2 a stored one instead, which it replaces
    assert set(torch.cat(pool.images).tolist()) <= set(fresh.flatten().tolist()) | set(first.flatten().tolist())
    copy = ImagePool(4)
    copy.load(pool.state())
    assert torch.equal(torch.stack(copy.images), torch.stack(pool.images))


class Echo(nn.Module):
    """A denoiser that returns its input's last channel: what the sampler saw of x."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        return x[:, -1:] + self.weight


@pytest.mark.parametrize("family", [PaletteDDPM, PaletteFlow])
def test_palette_keeps_the_known_pixels_and_counts_the_hole_only(family):
    task = Inpaint(SHAPE, mask="center")
    model = family(net={"denoiser": Echo()}, task=task, sampler={"method": "ddim" if family is PaletteDDPM else "euler",
                                                                 "steps": 3})
    images = batch()
    source = task.pair(images, torch.arange(4)).source
    out = model.translate(source, torch.Generator().manual_seed(0))
    known, hole = task.known(source)
    assert torch.equal(out * (1 - hole), images * (1 - hole))
    seen = model.conditioned(torch.full_like(images, 7.0), source)
    assert torch.equal(seen[:, :2], source) and torch.equal(seen[:, 2:] * (1 - hole), images * (1 - hole))
    assert torch.equal(seen[:, 2:] * hole, 7.0 * hole)
    assert torch.equal(model.loss_mask(source), hole)


def test_palette_sees_the_input_as_extra_channels():
    from genlab.nets.unet import UNet

    task = Denoise(SHAPE)
    model = PaletteFlow(net={"denoiser": lambda **sizes: UNet(width=8, channel_mults=[1, 2], attention_resolutions=[],
                                                               norm_groups=4, **sizes)}, task=task,
                        sampler={"method": "heun", "steps": 2})
    assert model.denoiser.conv_in.in_channels == 2 and model.denoiser.out[-1].out_channels == 1
    assert model.translate(batch(seed=3)).shape == (4, *SHAPE)


@pytest.mark.parametrize(("overrides", "words"), [
    (("model=dcgan", "task=inpaint"), "task=inpaint needs an image-to-image family, and model=dcgan makes images from noise"),
    (("model=pix2pix",), "model=pix2pix makes an image from an input image: choose what it learns with task=<name>"),
    (("model=regress", "task=colorize"), "task=colorize makes colour images from grey ones"),
    (("model=regress", "task=restyle"), "task=restyle is unpaired"),
])
def test_an_impossible_pairing_is_refused_in_one_line(compose_train, overrides, words):
    cfg = compose_train(*overrides, return_hydra_config=True)
    with pytest.raises(ConfigError) as refused:
        check_command("train", cfg)
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_an_image_to_image_family_asked_for_samples_from_noise_says_what_it_takes():
    family = Regress(net={"generator": Halve()}, task=Denoise(SHAPE))
    with pytest.raises(ConfigError, match="makes outputs from a task's inputs, not from noise"):
        family.sample(4)
    assert torch.equal(family.translate(batch()), 0.5 * batch())
