"""Samplers, chosen at sampling time by name: `sampler={method: ddim, steps: 20, eta: 0}`.

DDPM-trained models use diffusers' scheduler classes, built from the very settings (betas,
prediction type) the model trained with, so the reverse process is the one the field uses and
tests against:
- `ddpm`: ancestral sampling, p(x_{t-1} | x_t) with sigma_t^2 = beta~_t (Ho et al. 2020), on `steps` of the T times;
- `ddim`: DDIM (Song et al. 2021), deterministic at eta = 0, DDPM-like at eta = 1;
- `dpm++`: DPM-Solver++(2M) (Lu et al. 2022), a second-order multistep ODE solver, good at 10-25 steps.
`ddpm` and `ddim` step on "linspace" timesteps, from t = T - 1 to 0 (Lin et al. 2024: start at the last
time, not at T - T/steps); `dpm++` on Karras et al.'s (2022) sigmas, dense at low noise, as "DPM++ 2M Karras",
with dynamic thresholding (on the cosine schedule: uniform timesteps up to lambda = -5.1, see DPM_SPACING).
On a Gaussian with the exact score (tests/test_diffusion.py), on linear betas, uniform steps in t lose
5-15% of the data's spread at 20-50 steps, most of it in the low-noise steps; Karras sigmas keep it
within 1% at 50.

Flow-matching models integrate dx/dt = v(x, t) from t = 0 (noise) to 1 (data) on a uniform grid
with the two classic ODE steps, written out here: diffusers' FlowMatch*DiscreteScheduler classes
run the other way (sigma from 1 to 0, velocity noise - data, times scaled by 1000 and a sigma grid
that stops at 1/T), so wrapping them would take more lines than the two steps themselves.
- `euler`: x += dt v(x, t), one network evaluation per step;
- `heun`: Heun's second-order step (Karras et al. 2022's Algorithm 1 without churn), two per step.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from genlab.errors import ConfigError, is_non_negative_number, is_positive_integer, require

# predict(x, t) -> the network's output; t is a 0-dim tensor (an integer timestep for DDPM, a float in [0, 1] for flows)
Predict = Callable[[Tensor, Tensor], Tensor]
# called with x after each step: the trajectory `genlab sample` draws
OnStep = Callable[[Tensor], None]

DIFFUSION_SAMPLERS = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler", "dpm++": "DPMSolverMultistepScheduler"}
FLOW_SAMPLERS = ("euler", "heun")
# Where dpm++ puts its steps, per diffusers beta schedule. Karras et al.'s (2022) sigmas (rho = 7, dense at low
# noise) on the linear schedule, whose sigma_max = 157 is near the 80 they were made for. The cosine schedule's
# capped last beta makes sigma_max ~2e4: Karras spacing then puts 9 of 20 steps on t = T - 1, where x_t is pure
# noise (and diffusers starts such a run at the second of them, stepping past its end). There dpm++ steps
# uniformly in t and stops at lambda = log(alpha / sigma) = -5.1 (sigma ~164), diffusers' setting for cosine.
DPM_SPACING: dict[str, dict[str, Any]] = {
    "linear": {"use_karras_sigmas": True},
    "squaredcos_cap_v2": {"timestep_spacing": "linspace", "lambda_min_clipped": -5.1},
}
# network evaluations per step (before classifier-free guidance doubles them)
EVALUATIONS_PER_STEP = {"ddpm": 1, "ddim": 1, "dpm++": 1, "euler": 1, "heun": 2}


def check_method(method: Any, known: Any) -> None:
    if method not in known:
        raise ConfigError(f"sampler.method={method!r} is not known for this model; choose one of: {', '.join(known)}")


def check_steps(steps: Any, most: int | None = None) -> None:
    require(is_positive_integer(steps) and (most is None or steps <= most), "sampler.steps", steps,
            "a positive integer" + (f" of at most model.timesteps={most}" if most is not None else ""))


def diffusion_scheduler(method: str, settings: Mapping[str, Any]) -> Any:
    """A fresh diffusers scheduler for `method` on the model's training schedule (schedulers keep state per run)."""
    import diffusers

    check_method(method, DIFFUSION_SAMPLERS)
    scheduler_class = getattr(diffusers, DIFFUSION_SAMPLERS[method])
    if method == "dpm++":
        # dynamic thresholding (Saharia et al. 2022) keeps each x_0 prediction in the pixel range, as diffusers
        # advises for pixel-space models: without it, a 20-minute mnist_mini model's x_0 = (x - sigma eps) / alpha
        # at alpha ~ 0.006 sent half its samples to noise (DDIM clips the same prediction: clip_sample)
        return scheduler_class(**settings, algorithm_type="dpmsolver++", solver_order=2, thresholding=True,
                               sample_max_value=1.0, **DPM_SPACING[settings["beta_schedule"]])
    scheduler = scheduler_class(**settings, timestep_spacing="linspace")
    if method == "ddim":
        # DDIM's sigma_t^2 = (1 - abar_prev) / (1 - abar_t) (1 - abar_t / abar_prev) at eta = 1 is 1 - abar_prev less
        # a hair when abar_t ~ 0 (the cosine schedule's abar_999 = 2e-9): in float32 it rounded above, and the square
        # root of the direction term's 1 - abar_prev - sigma_t^2 made every sample NaN. float64 keeps it exact.
        scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
    return scheduler


def sample_diffusion(
    predict: Predict, x: Tensor, settings: Mapping[str, Any], method: str, steps: int, eta: float = 0.0,
    generator: torch.Generator | None = None, on_step: OnStep | None = None,
) -> Tensor:
    """Run the reverse process from x = x_T ~ N(0, I) with a diffusers scheduler; `generator` seeds
    the fresh noise of the stochastic samplers (ddpm, ddim with eta > 0)."""
    check_steps(steps, settings["num_train_timesteps"])
    require(is_non_negative_number(eta), "sampler.eta", eta, "a number >= 0 (0: deterministic DDIM)")
    if eta and method != "ddim":
        raise ConfigError(f"sampler.eta={eta} applies to method=ddim only, not method={method}")
    scheduler = diffusion_scheduler(method, settings)
    scheduler.set_timesteps(steps, device=x.device)
    x = x * scheduler.init_noise_sigma
    options: dict[str, Any] = {"eta": eta, "generator": generator} if method == "ddim" else {}
    if method == "ddpm":
        options["generator"] = generator
    for t in scheduler.timesteps:
        output = predict(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(output, t, x, **options).prev_sample
        if on_step is not None:
            on_step(x)
    return x


def sample_flow(
    predict: Predict, x: Tensor, method: str, steps: int, on_step: OnStep | None = None,
) -> Tensor:
    """Integrate dx/dt = v(x, t) from t = 0 to 1 in `steps` equal steps (Euler, or Heun's trapezoidal corrector)."""
    check_method(method, FLOW_SAMPLERS)
    check_steps(steps)
    times = torch.linspace(0, 1, steps + 1, device=x.device, dtype=torch.float64)
    for start, end in zip(times[:-1], times[1:]):
        x = flow_step(predict, x, start.float(), end.float(), float(end - start), method)
        if on_step is not None:
            on_step(x)
    return x


def flow_step(predict: Predict, x: Tensor, start: Tensor, end: Tensor, dt: float | Tensor, method: str) -> Tensor:
    """One step of dx/dt = v(x, t) from `start` to `end`, `dt` = end - start (a number, or one per row shaped to
    broadcast over x): Euler, or Heun, which averages the slopes at both ends of the Euler step. sample_flow walks
    a grid with it; consistency distillation takes one per row, between each row's own two levels."""
    velocity = predict(x, start)
    proposal = x + dt * velocity
    if method == "euler":
        return proposal
    return x + dt * 0.5 * (velocity + predict(proposal, end))


def evaluations(method: str, steps: int, guided: bool) -> int:
    """Network evaluations per image: steps x evaluations per step, x 2 under classifier-free guidance."""
    return steps * EVALUATIONS_PER_STEP[method] * (2 if guided else 1)
