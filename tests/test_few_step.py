"""The few-step families' math against its definitions: MeanFlow's target against a finite-difference JVP and its
sampler on Gaussian data, where the average velocity has a closed form; iCT's grid, curriculum, level
distribution, distance, boundary condition, loss and sampler; reflow's coupling and its refusals; and one
MeanFlow step under DDP (two CPU processes) against the same step in one process."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import Tensor, nn

from genlab.diffusion.consistency import (
    boundary_scalings, discretisation_steps, karras_sigmas, level_probabilities, pseudo_huber, sample_consistency,
    sampling_sigmas,
)
from genlab.diffusion.losses import pseudo_huber_flow_loss
from genlab.diffusion.meanflow import (
    adaptive_weighted_loss, average_velocity_target, guided_velocity, sample_average_velocity, time_pairs,
)
from genlab.errors import ConfigError
from genlab.families.consistency import ConsistencyTraining
from genlab.families.flow import FlowMatching
from genlab.families.meanflow import MeanFlow
from genlab.families.reflow import Reflow
from genlab.nets.unet import UNet

SHAPE = (1, 8, 8)


def unet(durations: bool = False, num_classes: int = 0, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    net = UNet(SHAPE, width=8, channel_mults=(1, 2), attention_resolutions=(4,), norm_groups=4,
               num_classes=num_classes, durations=durations)
    for parameter in net.parameters():  # away from the zero-initialised identity, so the net's derivatives are not 0
        nn.init.normal_(parameter, std=0.2)
    return net


def meanflow(num_classes: int = 0, **options) -> MeanFlow:
    return MeanFlow({"denoiser": unet(True, num_classes)}, SHAPE, num_classes=num_classes, sampler={"steps": 1}, **options)


# --- MeanFlow --------------------------------------------------------------------------------------------------


def test_meanflow_target_is_v_minus_t_minus_r_times_the_total_derivative_by_finite_differences():
    family = meanflow().double()
    g = torch.Generator().manual_seed(0)
    z, v = torch.randn(4, *SHAPE, generator=g, dtype=torch.float64), torch.randn(4, *SHAPE, generator=g, dtype=torch.float64)
    t = torch.tensor([0.9, 0.7, 0.5, 0.3], dtype=torch.float64)
    r = torch.tensor([0.1, 0.7, 0.2, 0.0], dtype=torch.float64)  # the second row has r = t

    def u(z_, r_, t_):
        return family.average_velocity(z_, r_, t_, None)

    target = average_velocity_target(lambda rows: u, z, r, t, v)
    h = 1e-7  # d/dt u(z_t, r, t) along dz/dt = v, dr/dt = 0: a central difference (float64)
    derivative = (u(z + h * v, r, t + h) - u(z - h * v, r, t - h)) / (2 * h)
    expected = v - (t - r).view(-1, 1, 1, 1) * derivative
    assert torch.allclose(target, expected, atol=1e-6, rtol=1e-6)
    assert torch.equal(target[1], v[1]) and not torch.allclose(target[0], v[0])


def gaussian_average_velocity(mean: float, std: float):
    """The exact u(z, r, t) of 1-D Gaussian data N(mean, std^2) on z_t = (1 - t) x + t eps: the flow map is
    z_r = (1 - r) mean + sigma_r / sigma_t (z_t - (1 - t) mean), sigma_t^2 = (1 - t)^2 std^2 + t^2."""

    def sigma(t: Tensor) -> Tensor:
        return ((1 - t) ** 2 * std ** 2 + t ** 2).sqrt().view(-1, 1, 1, 1)

    def u(z: Tensor, r: Tensor, t: Tensor) -> Tensor:
        t_, r_ = t.view(-1, 1, 1, 1), r.view(-1, 1, 1, 1)
        z_r = (1 - r_) * mean + sigma(r) / sigma(t) * (z - (1 - t_) * mean)
        return (z - z_r) / (t_ - r_)

    return u


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_meanflow_sampling_with_the_exact_average_velocity_maps_noise_onto_the_data_in_any_number_of_steps(steps):
    noise = torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    images = sample_average_velocity(gaussian_average_velocity(0.5, 0.2), noise, steps)
    assert torch.allclose(images, 0.5 + 0.2 * noise, atol=1e-9)  # the flow map of N(0.5, 0.04) is x = 0.5 + 0.2 eps


def test_the_exact_gaussian_average_velocity_meets_the_meanflow_identity_so_its_target_is_itself():
    u = gaussian_average_velocity(0.5, 0.2)
    z = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    r, t = torch.tensor([0.1, 0.3, 0.0], dtype=torch.float64), torch.tensor([0.8, 0.6, 1.0], dtype=torch.float64)
    v = u(z, t - 1e-7, t)  # the instantaneous velocity along the ODE (u over a vanishing interval)
    assert torch.allclose(average_velocity_target(lambda rows: u, z, r, t, v), u(z, r, t), atol=1e-5)


def test_time_pairs_order_the_draws_and_keep_r_equal_to_t_where_asked():
    first, second = torch.tensor([0.2, 0.9, 0.5]), torch.tensor([0.6, 0.1, 0.4])
    r, t = time_pairs(first, second, torch.tensor([True, True, False]))
    assert torch.equal(t, torch.tensor([0.6, 0.9, 0.5])) and torch.equal(r, torch.tensor([0.2, 0.1, 0.5]))
    r, t = meanflow().sample_time_pairs(20000, torch.Generator().manual_seed(0))
    assert (t >= r).all() and abs((r != t).float().mean().item() - 0.25) < 0.01
    # the paper's: logit t is the larger of two N(-0.4, 1) draws, E = -0.4 + 1 / sqrt(pi) (the smaller's: -0.4 - 1 / sqrt(pi))
    assert abs(torch.logit(t).mean().item() - (-0.4 + 1 / math.sqrt(math.pi))) < 0.03
    assert abs(torch.logit(r[r != t]).mean().item() - (-0.4 - 1 / math.sqrt(math.pi))) < 0.05
    # the pixel recipe's: r ~ lognorm(-4, 1.6) lies far below t ~ lognorm(-0.6, 1.6), so r is the start draw mostly
    pixel = meanflow(time_mean=-0.6, time_std=1.6, start_mean=-4.0, start_std=1.6, unequal_share=0.75)
    r, t = pixel.sample_time_pairs(20000, torch.Generator().manual_seed(0))
    assert abs((r != t).float().mean().item() - 0.75) < 0.01
    assert abs(torch.logit(r[r != t]).median().item() + 4.0) < 0.1 and abs(torch.logit(t).median().item() + 0.6) < 0.1


def test_adaptive_weighting_is_sg_w_times_the_squared_error_with_w_one_over_error_plus_c_to_the_p():
    prediction, target = torch.tensor([[1.0, 2.0], [0.0, 0.5]], requires_grad=True), torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    loss, mse = adaptive_weighted_loss(prediction, target, power=1.0, c=1e-3)
    errors = torch.tensor([5.0, 0.25])
    assert torch.isclose(loss, (errors / (errors + 1e-3)).mean())
    assert torch.isclose(mse, errors.mean() / 2)
    loss.backward()  # the weight is a constant: d/dp of w ||p||^2 is 2 w p
    assert torch.allclose(prediction.grad, 2 * prediction.detach() / (errors + 1e-3).view(-1, 1) / 2)
    plain, _ = adaptive_weighted_loss(prediction, target, power=0.0, c=1e-3)
    assert torch.isclose(plain, errors.mean())


def test_guided_velocity_mixes_omega_v_and_the_unconditional_average_velocity_on_kept_labels_only():
    v, unconditional, conditional = torch.full((2, 1, 1, 1), 1.0), torch.full((2, 1, 1, 1), 3.0), torch.full((2, 1, 1, 1), 5.0)
    mixed = guided_velocity(v, unconditional, None, 2.0, 0.0, torch.tensor([True, False]))
    assert mixed.flatten().tolist() == [2 * 1 - 1 * 3, 1.0]
    mixed = guided_velocity(v, unconditional, conditional, 2.0, 0.5, torch.tensor([True, True]))
    assert mixed.flatten().tolist() == [2 * 1 + 0.5 * 5 + (1 - 2 - 0.5) * 3] * 2


def test_a_conditional_meanflow_computes_its_loss_and_samples_guided_in_one_evaluation():
    family = meanflow(num_classes=3, guidance=2.0)
    terms = family.loss(torch.rand(6, *SHAPE) * 2 - 1, torch.arange(6) % 3)
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"]) and family.denoiser.conv_in.weight.grad.abs().sum() > 0
    assert family.sampler_settings({"steps": 2}) == {"steps": 2, "evaluations": 2}
    assert family.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, *SHAPE)


def test_meanflow_refuses_a_net_without_durations_and_guidance_without_classes():
    with pytest.raises(ConfigError, match="durations=false"):
        MeanFlow({"denoiser": unet(False)}, SHAPE)
    with pytest.raises(ConfigError, match="model.guidance=2.0 guides a conditional model"):
        meanflow(guidance=2.0)
    with pytest.raises(ConfigError, match="sampler.guidance is not an option"):
        meanflow().sample(2, guidance=2.0)


# --- iCT -------------------------------------------------------------------------------------------------------


def test_karras_grid_curriculum_and_level_distribution_follow_ict():
    sigmas = karras_sigmas(11, 0.002, 80.0, 7.0)
    assert math.isclose(sigmas[0], 0.002) and math.isclose(sigmas[-1], 80.0) and (sigmas.diff() > 0).all()
    middle = (0.5 * (0.002 ** (1 / 7) + 80 ** (1 / 7))) ** 7
    assert math.isclose(sigmas[5], middle, rel_tol=1e-12)
    # K = 1000, s0 = 10, s1 = 1280: K' = floor(1000 / 8) = 125 batches per doubling
    assert [discretisation_steps(k, 1000, 10, 1280) for k in (0, 124, 125, 250, 874, 875, 999)] == \
        [11, 11, 21, 41, 641, 1281, 1281]
    probabilities = level_probabilities(sigmas, -1.1, 2.0)
    cdf = [0.5 * (1 + math.erf((math.log(s) + 1.1) / (2 * math.sqrt(2)))) for s in sigmas.tolist()]
    mass = torch.tensor(cdf).diff().double()
    assert torch.allclose(probabilities, mass / mass.sum(), atol=1e-12)


def test_pseudo_huber_and_the_boundary_condition():
    a, b = torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2)
    assert torch.isclose(pseudo_huber(a, b, 0.1), torch.tensor(math.sqrt(25 + 0.01) - 0.1))
    c_skip, c_out, c_in = boundary_scalings(torch.tensor([0.002, 1.0]), 0.002, 0.5)
    assert c_skip[0] == 1 and c_out[0] == 0
    assert torch.isclose(c_skip[1], torch.tensor(0.25 / (0.998 ** 2 + 0.25)))
    assert torch.isclose(c_in[1], torch.tensor(1 / math.sqrt(1.25)))
    family = ConsistencyTraining({"denoiser": unet()}, SHAPE, curriculum_steps=10)
    x = torch.randn(3, *SHAPE)
    assert torch.equal(family.consistency_function(x, torch.full((3,), 0.002), None), x)


def test_the_ict_loss_is_its_definition_at_the_same_draws_and_the_curriculum_advances_per_training_batch():
    family = ConsistencyTraining({"denoiser": unet()}, SHAPE, curriculum_steps=80, start_steps=10, end_steps=40)
    images = torch.rand(5, *SHAPE) * 2 - 1
    loss = family.terms(images, None, torch.Generator().manual_seed(3))["loss"]
    g = torch.Generator().manual_seed(3)  # the same draws, in the same order, by hand
    sigmas = karras_sigmas(11, 0.002, 80.0, 7.0)
    index = torch.multinomial(level_probabilities(sigmas, -1.1, 2.0).float(), 5, replacement=True, generator=g)
    noise = torch.randn(5, *SHAPE, generator=g)
    low, high = sigmas[index].float(), sigmas[index + 1].float()
    f = family.consistency_function
    distance = pseudo_huber(f(images + high.view(-1, 1, 1, 1) * noise, high, None),
                            f(images + low.view(-1, 1, 1, 1) * noise, low, None), 0.00054 * 8)
    assert torch.allclose(loss, (distance / (high - low)).mean(), rtol=1e-5)
    for _ in range(27):
        family.loss(images, None)
    assert int(family.iterations) == 27 and family.discretisation() == 21  # K' = floor(80 / 3) = 26
    assert family.state_dict()["iterations"] == 27  # saved with the weights: a resumed run goes on from it


def test_consistency_sampling_with_the_exact_consistency_function_of_gaussian_data():
    # data N(0.3, 0.2^2) on x + sigma z: f(x, sigma) = 0.3 + sqrt(0.04 + s_min^2) / sqrt(0.04 + sigma^2) (x - 0.3)
    def f(x, sigma):
        scale = math.sqrt(0.04 + 0.002 ** 2) / (0.04 + sigma.view(-1, 1, 1, 1) ** 2).sqrt()
        return 0.3 + scale * (x - 0.3)

    g = torch.Generator().manual_seed(0)
    for sigmas in ([80.0], [80.0, 0.8], sampling_sigmas(4, 0.002, 80.0, 7.0)):
        x = sample_consistency(f, torch.randn(20000, 1, 1, 1, generator=g, dtype=torch.float64), sigmas, 0.002,
                               lambda: torch.randn(20000, 1, 1, 1, generator=g, dtype=torch.float64))
        assert abs(x.mean().item() - 0.3) < 0.005 and abs(x.std().item() - math.sqrt(0.04 + 0.002 ** 2)) < 0.005


def test_ict_sampler_options_steps_or_sigmas_and_their_refusals():
    family = ConsistencyTraining({"denoiser": unet()}, SHAPE, curriculum_steps=10, sampler={"steps": 1})
    assert family.sampler_settings({}) == {"steps": 1, "sigmas": [80.0], "evaluations": 1}
    assert family.sampler_settings({"sigmas": [80, 0.8]})["evaluations"] == 2
    assert family.sample(2, steps=2, generator=torch.Generator().manual_seed(0)).shape == (2, *SHAPE)
    with pytest.raises(ConfigError, match="sampler.sigmas"):
        family.sampler_settings({"sigmas": [0.8, 80]})
    with pytest.raises(ConfigError, match="disagree"):
        family.sampler_settings({"sigmas": [80, 0.8], "steps": 3})
    with pytest.raises(ConfigError, match="model.curriculum_steps"):
        ConsistencyTraining({"denoiser": unet()}, SHAPE, curriculum_steps=0)
    unplanned = ConsistencyTraining({"denoiser": unet()}, SHAPE)
    unplanned.prepare(lambda: math.inf)  # a run that only trainer.max_time ends
    with pytest.raises(ConfigError, match="model.curriculum_steps is null"):
        unplanned.loss(torch.zeros(2, *SHAPE), None)
    unplanned.prepare(lambda: 300)  # the batches of the trainer's epochs
    assert unplanned.curriculum_steps == 300


# --- reflow ----------------------------------------------------------------------------------------------------


def flow_teacher(num_classes: int = 0) -> FlowMatching:
    return FlowMatching({"denoiser": unet(num_classes=num_classes, seed=1)}, SHAPE, num_classes=num_classes,
                        sampler={"method": "euler", "steps": 3}).eval()


def reflow_error(student: Reflow, noise: Tensor, images: Tensor, seed: int, n: int) -> Tensor:
    """v(x_t, t) - (x_1 - x_0) at the pairs and times the student's objective draws from a generator of `seed`
    (pair indices first, then uniform times), computed here from the definition."""
    g = torch.Generator().manual_seed(seed)
    index, t = torch.randint(0, len(noise), (n,), generator=g), torch.rand(n, generator=g)
    x0, x1 = noise[index], images[index]
    x_t = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * x1
    return student.predict(x_t, t, None) - (x1 - x0)


def test_reflow_learns_the_teachers_coupling_from_its_weights():
    teacher = flow_teacher()
    student = Reflow({"denoiser": unet(seed=2)}, SHAPE, pairs=6, pair_batch_size=4, sampler={"method": "euler", "steps": 1})
    student.use_teacher(teacher, {"method": "heun", "steps": 2})
    assert all(torch.equal(a, b) for a, b in zip(student.denoiser.state_dict().values(), teacher.denoiser.state_dict().values()))
    noise, images, labels = student.coupling()
    assert labels is None and student.pair_seconds is not None
    expected = teacher.sample(noise=noise, method="heun", steps=2)
    assert torch.allclose(images, expected, atol=1e-6)
    assert student.coupling()[0] is noise  # drawn once
    # the objective: flow matching on pairs the generator picks
    loss = student.objective(torch.zeros(3, *SHAPE), None, torch.Generator().manual_seed(0))
    error = reflow_error(student, noise, images, seed=0, n=3)
    assert torch.allclose(loss, error.pow(2).mean())


def test_reflows_pseudo_huber_loss_is_lee_et_als_distance_at_the_same_draws_and_refuses_a_bad_c():
    """Lee et al. 2024's released code: (sqrt(||v - (x_1 - x_0)||^2 + c^2) - c) / d per image, c = 0.00054 d; like
    the squared error / (2 c d) near zero and ||error|| / d far from it."""
    student = Reflow({"denoiser": unet(seed=2)}, SHAPE, pairs=6, pair_batch_size=4, huber_c=0.00054)
    student.use_teacher(flow_teacher(), {"method": "euler", "steps": 2})
    noise, images, _ = student.coupling()
    loss = student.objective(torch.zeros(3, *SHAPE), None, torch.Generator().manual_seed(0))
    d = 64
    c = 0.00054 * d
    squared = reflow_error(student, noise, images, seed=0, n=3).pow(2).sum(dim=(1, 2, 3))
    assert torch.allclose(loss, ((squared + c * c).sqrt() - c).mean() / d)

    zero = torch.zeros(2, *SHAPE)
    small, large = torch.full((2, *SHAPE), 1e-4), torch.full((2, *SHAPE), 10.0)
    assert pseudo_huber_flow_loss(small, zero, zero, 0.00054).item() == pytest.approx(d * 1e-8 / (2 * c * d), rel=1e-3)
    assert pseudo_huber_flow_loss(large, zero, zero, 0.00054).item() == pytest.approx(80 / d, rel=1e-2)
    for bad in (0, -1, "x"):
        with pytest.raises(ConfigError, match="model.huber_c"):
            Reflow({"denoiser": unet()}, SHAPE, huber_c=bad)


def test_a_smaller_reflow_student_trains_from_scratch_on_the_teachers_pairs():
    teacher = flow_teacher()
    small = UNet(SHAPE, width=4, channel_mults=(1, 2), attention_resolutions=(), norm_groups=4)
    own = {k: v.clone() for k, v in small.state_dict().items()}
    student = Reflow({"denoiser": small}, SHAPE, pairs=4, init_from_teacher=False)
    student.use_teacher(teacher, {"method": "euler", "steps": 2})
    assert all(torch.equal(own[k], v) for k, v in student.denoiser.state_dict().items())
    noise, images, _ = student.coupling()
    assert torch.allclose(images, teacher.sample(noise=noise, method="euler", steps=2), atol=1e-6)
    with pytest.raises(ConfigError, match="model.init_from_teacher"):
        Reflow({"denoiser": unet()}, SHAPE, init_from_teacher="no")



def test_reflow_keeps_its_pairs_for_the_next_student_of_the_same_teacher_and_sampler(tmp_path, monkeypatch):
    """A second student (another net, trained from scratch) reads the first one's pairs bit for bit without
    sampling the teacher; another sampler, seed or teacher weights draws new pairs under another name."""
    teacher = flow_teacher(num_classes=3)
    first = Reflow({"denoiser": unet(num_classes=3, seed=2)}, SHAPE, pairs=5, pair_batch_size=2, num_classes=3,
                   pairs_cache=str(tmp_path))
    first.use_teacher(teacher, {"method": "euler", "steps": 2})
    drawn = first.coupling()
    (kept,) = tmp_path.glob("pairs-*.safetensors")
    assert not list(tmp_path.glob(".*.tmp"))  # written whole, beside its name, then renamed

    def no_sampling(*args, **kwargs):
        raise AssertionError("the teacher was sampled again")

    monkeypatch.setattr(teacher, "sample", no_sampling)
    small = UNet(SHAPE, width=4, channel_mults=(1, 2), attention_resolutions=(), norm_groups=4, num_classes=3)
    second = Reflow({"denoiser": small}, SHAPE, pairs=5, pair_batch_size=2, num_classes=3, init_from_teacher=False,
                    pairs_cache=str(tmp_path))
    second.use_teacher(teacher, {"method": "euler", "steps": 2})
    read = second.coupling()
    assert second.pair_seconds is None and all(torch.equal(a, b) for a, b in zip(drawn, read))
    monkeypatch.undo()
    for change in ({"sampler": {"method": "heun", "steps": 2}}, {"pair_seed": 1}):
        other = Reflow({"denoiser": unet(num_classes=3, seed=2)}, SHAPE, pairs=5, pair_batch_size=2, num_classes=3,
                       pairs_cache=str(tmp_path), pair_seed=change.get("pair_seed", 0))
        other.use_teacher(teacher, change.get("sampler", {"method": "euler", "steps": 2}))
        assert other.pairs_file() != kept
    with torch.no_grad():
        next(teacher.denoiser.parameters()).add_(0.1)
    assert second.pairs_file() != kept  # the teacher's weights are part of the name
    kept.write_bytes(b"cut short")
    third = Reflow({"denoiser": unet(num_classes=3, seed=2)}, SHAPE, pairs=5, pair_batch_size=2, num_classes=3,
                   pairs_cache=str(tmp_path))
    third.use_teacher(flow_teacher(num_classes=3), {"method": "euler", "steps": 2})
    with pytest.raises(ConfigError, match="cannot be read as reflow pairs .*delete it to draw the pairs again"):
        third.coupling()

def test_reflow_refuses_a_teacher_it_cannot_learn_from():
    student = Reflow({"denoiser": unet()}, SHAPE, pairs=4)
    with pytest.raises(ConfigError, match="model.teacher.ckpt_path"):
        student.coupling()
    with pytest.raises(ConfigError, match="model=creflow"):
        student.use_teacher(flow_teacher(num_classes=3))
    with pytest.raises(ConfigError, match="deterministic sampler"):
        student.use_teacher(meanflow())
    wide = FlowMatching({"denoiser": UNet(SHAPE, width=16, channel_mults=(1, 2), attention_resolutions=(4,), norm_groups=4)},
                        SHAPE, sampler={"method": "euler", "steps": 2})
    with pytest.raises(ConfigError, match="model.init_from_teacher=false"):
        student.use_teacher(wide)
    with pytest.raises(ConfigError, match="of shape"):
        Reflow({"denoiser": UNet((1, 4, 4), width=8, channel_mults=(1,), attention_resolutions=(), norm_groups=4)},
               (1, 4, 4)).use_teacher(flow_teacher())


# --- one MeanFlow step under DDP -----------------------------------------------------------------------------


class MeanFlowStep(nn.Module):
    """What a DDP-wrapped training step calls: the family's loss at given draws."""

    def __init__(self, family: MeanFlow) -> None:
        super().__init__()
        self.family = family

    def forward(self, images: Tensor, noise: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return self.family.terms_at(images, noise, r, t, None)["loss"]


def draws() -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(7)
    images, noise = torch.rand(8, *SHAPE, generator=g) * 2 - 1, torch.randn(8, *SHAPE, generator=g)
    first, second = torch.rand(8, generator=g), torch.rand(8, generator=g)
    r, t = time_pairs(first, second, torch.arange(8) % 2 == 0)  # half the rows need the JVP
    return images, noise, r, t


def ddp_rank(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model = nn.parallel.DistributedDataParallel(MeanFlowStep(meanflow()))
        rows = slice(4 * rank, 4 * rank + 4)
        model(*(tensor[rows] for tensor in draws())).backward()
        if rank == 0:
            torch.save({name: p.grad for name, p in model.module.named_parameters()}, out)
        dist.barrier()  # neither rank closes its gloo connections while the other still uses them (SIGABRT)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_meanflow_step_under_ddp_has_the_single_process_gradient(tmp_path):
    # the JVP runs inside the DDP-wrapped forward, on each rank's rows: the averaged gradients must be those of
    # one process on the whole batch (each rank's loss is a mean over as many images)
    out = str(tmp_path / "grads.pt")
    mp.start_processes(ddp_rank, args=(free_port(), out), nprocs=2, start_method="spawn")
    distributed = torch.load(out, weights_only=True)
    single = MeanFlowStep(meanflow())
    single(*draws()).backward()
    for name, parameter in single.named_parameters():
        assert torch.allclose(distributed[name], parameter.grad, atol=1e-6, rtol=1e-4), name
    assert os.path.getsize(out) > 0


# --- consistency distillation ----------------------------------------------------------------------------------


class DiracVelocity(nn.Module):
    """The exact velocity of a flow to one image x*: v(x_t, t) = (x* - x_t) / (1 - t) (genlab's flows see 1000 t)."""

    def __init__(self, target: Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        return (self.target - x) / (1 - t.view(-1, 1, 1, 1) / 1000)


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_cd_steps_the_teachers_ode_in_flow_time_landing_on_the_trajectory_of_a_known_flow(method):
    from genlab.families.consistency_distillation import ConsistencyDistillation

    target = torch.rand(1, *SHAPE) * 2 - 1
    teacher = FlowMatching({"denoiser": DiracVelocity(target)}, SHAPE, sampler={"method": "euler", "steps": 2})
    student = ConsistencyDistillation({"denoiser": unet()}, SHAPE, distillation_steps=18)
    student.use_teacher(teacher, {"method": method})
    noise = torch.randn(3, *SHAPE)
    low, high = torch.tensor([0.002, 1.0, 20.0]), torch.tensor([0.01, 2.5, 80.0])
    images = target.expand(3, *SHAPE)
    # toward one image the probability-flow ODE in sigma is x* + sigma eps: the teacher's step stays on it
    earlier = student.earlier_point(images, noise, images + high.view(-1, 1, 1, 1) * noise, low, high, None)
    assert torch.allclose(earlier, images + low.view(-1, 1, 1, 1) * noise, atol=1e-4)
    assert student.discretisation() == 18
    terms = student.loss(torch.rand(4, *SHAPE) * 2 - 1, None)
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"]) and int(student.iterations) == 0


def test_cd_refuses_a_teacher_that_is_no_flow_or_of_other_classes():
    from genlab.families.consistency_distillation import ConsistencyDistillation

    student = ConsistencyDistillation({"denoiser": unet()}, SHAPE)
    with pytest.raises(ConfigError, match="model.teacher.ckpt_path"):
        student.loss(torch.zeros(2, *SHAPE), None)
    with pytest.raises(ConfigError, match="takes a flow or cflow run"):
        student.use_teacher(meanflow())
    with pytest.raises(ConfigError, match="model=ccd"):
        student.use_teacher(flow_teacher(num_classes=3))
    with pytest.raises(ConfigError, match="euler, heun"):
        student.use_teacher(flow_teacher(), {"method": "dpm++"})
