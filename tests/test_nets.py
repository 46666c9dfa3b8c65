"""Networks adapt to each data set's shape and to class conditioning."""

from __future__ import annotations

import pytest
import torch

from genlab.errors import ConfigError
from genlab.nets import dcgan, mlp
from genlab.nets.layers import ConditionalBatchNorm2d

SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


@pytest.mark.parametrize("family", [dcgan, mlp], ids=["dcgan", "mlp"])
@pytest.mark.parametrize("dataset", SHAPES)
@pytest.mark.parametrize("num_classes", [0, 10])
def test_generator_output_matches_the_data_shape(family, dataset, num_classes):
    shape = SHAPES[dataset]
    generator = family.Generator(latent_dim=16, image_shape=shape, num_classes=num_classes)
    discriminator = family.Discriminator(image_shape=shape, num_classes=num_classes)
    labels = torch.tensor([1, 2, 3]) if num_classes else None
    images = generator(torch.randn(3, 16), labels)
    assert images.shape == (3, *shape)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images, labels).shape == (3,)


def test_conditional_generator_uses_the_label():
    torch.manual_seed(0)
    generator = dcgan.Generator(latent_dim=8, image_shape=(1, 28, 28), base_channels=8, num_classes=10).eval()
    z = torch.randn(1, 8)
    assert not torch.allclose(generator(z, torch.tensor([3])), generator(z, torch.tensor([7])))


@pytest.mark.parametrize("norm", ["batch", "layer", "none", "spectral"])
def test_discriminator_norm_choices(norm):
    discriminator = dcgan.Discriminator(image_shape=(1, 28, 28), base_channels=8, norm=norm)
    has_batch_norm = any(isinstance(m, torch.nn.BatchNorm2d) for m in discriminator.modules())
    assert has_batch_norm == (norm == "batch")
    assert discriminator(torch.randn(2, 1, 28, 28)).shape == (2,)


def test_shapes_not_divisible_by_four_are_refused():
    with pytest.raises(ConfigError, match="divisible by 4"):
        dcgan.Generator(latent_dim=8, image_shape=(1, 30, 30))


def test_unknown_norm_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="batch, layer, none, spectral"):
        dcgan.Discriminator(image_shape=(1, 28, 28), norm="instance")


@pytest.mark.parametrize("dataset", SHAPES)
@pytest.mark.parametrize("norm", ["batch", "spectral"])
def test_cbn_generator_and_projection_discriminator_match_the_data_shape(dataset, norm):
    shape = SHAPES[dataset]
    generator = dcgan.Generator(latent_dim=16, image_shape=shape, base_channels=8, num_classes=10, conditioning="cbn")
    discriminator = dcgan.Discriminator(image_shape=shape, base_channels=8, num_classes=10, norm=norm,
                                        conditioning="projection")
    labels = torch.tensor([1, 2, 3])
    images = generator(torch.randn(3, 16), labels)
    assert images.shape == (3, *shape) and discriminator(images, labels).shape == (3,)
    # no one-hot code anywhere: the noise and the image enter alone
    assert generator.net[0].in_channels == 16 and discriminator.net[0].in_channels == shape[0]


def projection_discriminator(norm: str = "batch") -> dcgan.Discriminator:
    torch.manual_seed(0)
    return dcgan.Discriminator(image_shape=(1, 28, 28), base_channels=4, num_classes=3, norm=norm,
                               conditioning="projection").eval()


def test_projection_discriminator_with_a_zero_embedding_ignores_the_label():
    discriminator = projection_discriminator()
    torch.nn.init.zeros_(discriminator.projection.embed.weight)
    x = torch.randn(2, 1, 28, 28)
    unconditional = discriminator.net(x).flatten()  # psi(phi(x)) alone
    for k in range(3):
        assert torch.allclose(discriminator(x, torch.full((2,), k)), unconditional)


def test_projection_score_moves_by_the_embedding_difference_dot_phi():
    discriminator = projection_discriminator()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        discriminator.projection.embed.weight.copy_(torch.zeros(3, 4 * 4 * 7 * 7))
        discriminator.projection.embed.weight[1] = 1.0  # e_1 = ones, e_0 = 0: the term is sum(phi(x))
        discriminator.projection.embed.weight[2, :5] = torch.arange(5.0)  # e_2 reads phi's first five entries
        phi = discriminator.net[:-1](x).flatten(1)
    score = {k: discriminator(x, torch.full((2,), k)) for k in range(3)}
    assert torch.allclose(score[1] - score[0], phi.sum(1), rtol=1e-5, atol=1e-5)
    assert torch.allclose(score[2] - score[0], phi[:, :5] @ torch.arange(5.0), rtol=1e-5, atol=1e-6)


def test_spectral_norm_wraps_the_projection_embedding_too():
    discriminator = projection_discriminator("spectral")
    embed = discriminator.projection.embed
    assert torch.nn.utils.parametrize.is_parametrized(embed, "weight")
    # the term reads W / sigma(W): largest singular value 1, up to the power iteration's estimate
    assert torch.linalg.matrix_norm(embed.weight.detach(), 2).item() == pytest.approx(1.0, abs=0.01)
    x, labels = torch.randn(2, 1, 28, 28), torch.tensor([0, 2])
    with torch.no_grad():
        phi = discriminator.net[:-1](x)
        expected = discriminator.net[-1](phi).flatten() + (embed.weight[labels] * phi.flatten(1)).sum(1)
        assert torch.allclose(discriminator(x, labels), expected, atol=1e-6)


def test_class_conditional_batch_norm_scales_and_shifts_by_the_class():
    norm = ConditionalBatchNorm2d(channels=2, num_classes=2).eval()  # fresh running statistics: mean 0, var 1
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([[2.0, 2.0], [1.0, -1.0]]))
        norm.bias.copy_(torch.tensor([[0.0, 0.0], [3.0, 0.5]]))
    x = torch.randn(1, 2, 3, 3).expand(2, -1, -1, -1)
    out = norm(x, torch.tensor([0, 1]))
    x_hat = x[0] / (1 + norm.norm.eps) ** 0.5
    assert torch.allclose(out[0], 2 * x_hat)
    assert torch.allclose(out[1, 0], x_hat[0] + 3) and torch.allclose(out[1, 1], -x_hat[1] + 0.5)


def test_cbn_generator_normalises_with_its_class_affines():
    torch.manual_seed(0)
    generator = dcgan.Generator(latent_dim=8, image_shape=(1, 28, 28), base_channels=4, num_classes=10,
                                conditioning="cbn").eval()
    norms = [m for m in generator.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(norms) == 3 and not any(isinstance(m, torch.nn.BatchNorm2d) and m.affine for m in generator.modules())
    z = torch.randn(1, 8)
    with torch.no_grad():
        for norm in norms:  # make class 7 a copy of class 3: the same image
            norm.weight[7], norm.bias[7] = norm.weight[3], norm.bias[3]
    assert torch.equal(generator(z, torch.tensor([3])), generator(z, torch.tensor([7])))
    assert not torch.allclose(generator(z, torch.tensor([3])), generator(z, torch.tensor([5])))


@pytest.mark.parametrize(("net", "key", "valid"), [
    (dcgan.Generator, "model.net.generator.conditioning", "concat, cbn"),
    (dcgan.Discriminator, "model.net.discriminator.conditioning", "concat, projection"),
])
def test_unknown_conditioning_names_the_key_and_lists_the_valid_ones(net, key, valid):
    arguments = {"latent_dim": 8} if net is dcgan.Generator else {}
    with pytest.raises(ConfigError, match=f"{key}='film' is not known; choose one of: {valid}"):
        net(image_shape=(1, 28, 28), num_classes=10, conditioning="film", **arguments)


# --- the nets at the user's image size ------------------------------------------------------------------------


@pytest.mark.parametrize("size, doublings", [(64, 4), (128, 5)])
def test_dcgan_above_32_px_is_the_papers_layout_from_4x4(size, doublings):
    """Radford et al.'s 64x64 generator: z -> 4x4x8c, then one transposed conv per doubling (8c, 4c, 2c, c, image);
    the discriminator mirrors it down to 4x4 and scores with one 4x4 conv. 128 px adds one level each."""
    shape, c = (3, size, size), 8
    g = dcgan.Generator(16, shape, base_channels=c)
    transposed = [m for m in g.net if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(transposed) == doublings + 1 and not any(isinstance(m, torch.nn.Conv2d) for m in g.net)
    assert transposed[0].kernel_size == (4, 4) and transposed[0].stride == (1, 1)
    assert [m.out_channels for m in transposed] == [c * 2 ** i for i in range(doublings - 1, -1, -1)] + [3]
    assert all(m.stride == (2, 2) for m in transposed[1:]) and isinstance(g.net[-1], torch.nn.Tanh)
    x = torch.randn(2, 16)[:, :, None, None]
    sizes = []
    for layer in g.net:
        x = layer(x)
        if isinstance(layer, torch.nn.ConvTranspose2d):
            sizes.append(x.shape[-1])
    assert sizes == [4 * 2 ** i for i in range(doublings + 1)] and x.shape == (2, 3, size, size)
    d = dcgan.Discriminator(shape, base_channels=c, num_classes=5, conditioning="projection")
    convs = [m for m in d.net if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == doublings + 1 and [m.out_channels for m in convs] == [c * 2 ** i for i in range(doublings)] + [1]
    images = torch.randn(2, *shape)
    assert d.net[:-1](images).shape == (2, c * 2 ** (doublings - 1), 4, 4)
    assert d(images, torch.tensor([0, 4])).shape == (2,)


@pytest.mark.parametrize("size", [48, 96])
def test_dcgan_refuses_a_size_its_layout_cannot_reach_in_one_line(size):
    with pytest.raises(ConfigError, match="power-of-two size: set the image size to 64, 128 or 256"):
        dcgan.Generator(16, (3, size, size))


def test_dcgan_at_28_and_32_px_keeps_its_measured_layout():
    g = dcgan.Generator(16, (1, 28, 28), base_channels=8)
    assert g.net[0].kernel_size == (7, 7) and isinstance(g.net[-2], torch.nn.Conv2d)


@pytest.mark.parametrize("size, levels, attention", [(28, 3, {7}), (64, 4, {32, 16, 8}), (128, 5, {32, 16, 8})])
def test_the_unet_takes_its_layout_from_the_image_size(compose_train, size, levels, attention):
    from hydra.utils import instantiate

    from genlab.nets.unet import SelfAttention

    shape = [3, size, size]
    cfg = compose_train("model=ddpm", f"data.image_shape={shape}", "model.net.denoiser.width=8")
    net = instantiate(cfg.model.net.denoiser)
    downsamples = [layers[0] for layers in net.down if isinstance(layers[0], torch.nn.Conv2d)]
    assert len(downsamples) == levels - 1
    found, resolution = set(), size
    for layers in net.down:
        if isinstance(layers[0], torch.nn.Conv2d):
            resolution //= 2
        elif any(isinstance(m, SelfAttention) for m in layers):
            found.add(resolution)
    assert found == attention
    out = net(torch.randn(1, *shape), torch.rand(1))
    assert out.shape == (1, *shape)


def test_a_unet_size_without_a_layout_is_refused_in_one_line(compose_train):
    from genlab.nets.unet import UNet

    layouts = compose_train("model=ddpm").model.net.denoiser.by_size
    with pytest.raises(ConfigError, match="model.net.denoiser.by_size has no layout for 48 px"):
        UNet((3, 48, 48), channel_mults=None, attention_resolutions=None, by_size=layouts)


def receptive_field(critic: torch.nn.Module, size: int) -> int:
    """The side of the input square that one central output logit of `critic` sees, read from its gradient."""
    critic.eval()
    image = torch.randn(1, 1, size, size, requires_grad=True)
    logits = critic(image)
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    rows = image.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize("size, depth, field", [(28, 5, 16), (32, 5, 16), (64, 6, 34), (128, 7, 70)])
def test_the_pix2pix_nets_take_their_depth_and_patch_size_from_the_image_size(compose_train, size, depth, field):
    """As many U-Net levels as take the image to 1x1 (the paper's 8 for 256 px), and the paper's PatchGAN that
    sees about half the image: 16x16, 34x34 or 70x70, measured by the gradient of one logit."""
    from hydra.utils import instantiate

    cfg = compose_train("model=pix2pix", "task=denoise", f"data.image_shape=[1,{size},{size}]",
                        "model.net.generator.width=4", "model.net.discriminator.width=4")
    generator = instantiate(cfg.model.net.generator)(in_channels=1, out_channels=1)
    assert len(generator.down) == depth
    bottleneck = torch.nn.Sequential(*generator.down)(torch.randn(1, 1, 2**depth, 2**depth))
    assert bottleneck.shape[-2:] == (1, 1)
    assert generator(torch.randn(2, 1, size, size)).shape == (2, 1, size, size)
    assert receptive_field(instantiate(cfg.model.net.discriminator)(in_channels=1), size) == field


def test_a_pix2pix_size_without_a_layout_is_refused_in_one_line(compose_train):
    from hydra.utils import instantiate

    cfg = compose_train("model=pix2pix", "task=denoise", "data.image_shape=[3,48,48]")
    with pytest.raises(ConfigError, match=r"model.net.generator.by_size has no layout for 48 px images .*"
                                          r"set model.net.generator.depth"):
        instantiate(cfg.model.net.generator)(in_channels=3, out_channels=3)
