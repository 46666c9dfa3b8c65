"""The model card of an export folder (its README.md): what the model is, what it was trained on and for how long,
what was measured and under which protocol, how to load it, and its licence. Written from the manifest and
metrics.json alone, so it says nothing the folder does not hold.
"""

from __future__ import annotations

import json
from typing import Any

from genlab.export.layout import EMA, ONNX, RAW, SAMPLES

# the hub command that uploads a folder (huggingface_hub's CLI); not run by genlab or its tests
UPLOAD = "hf upload <user>/<model> {folder} ."


def model_card(manifest: dict[str, Any], metrics: dict[str, Any], folder_name: str) -> str:
    """README.md's text: a Hugging Face style header (licence, tags), then the facts in sections."""
    licence = manifest.get("licence")
    family, data = manifest["family"], manifest["data"]
    lines = [
        "---",
        f"license: {licence or 'other'}",
        "library_name: genlab",
        f"tags: [genlab, {family['name'].lower()}, image-generation]",
        "---",
        "",
        f"# {family['name']} on {data['name']}",
        "",
        f"A {family['name']} ({family['target']}) trained by genlab {manifest['genlab_version']}, exported from"
        f" `{manifest['checkpoint']}` of its run. This folder is self-contained: `genlab.load` rebuilds it without the"
        " run folder, from safetensors weights and the run's config.",
        "",
        "| | |",
        "|---|---|",
        f"| family | {family['name']}{choice_note(manifest, 'model')} |",
        f"| data | {data['name']}: {'x'.join(str(s) for s in data['image_shape'])} images,"
        f" {classes_note(data)}{task_note(manifest)} |",
        f"| training | {training_line(manifest)} |",
        f"| weights | {weights_line(manifest)} |",
        f"| sampler | {sampler_line(manifest)} |",
        f"| licence | {licence or 'not stated (genlab export licence=<id> states it)'} |",
        "",
        "## Metrics",
        "",
        *metrics_lines(metrics),
        "",
        *samples_lines(manifest),
        "## Load it",
        "",
        "```python",
        "import genlab",
        "",
        f'run = genlab.load("{folder_name}")          # device="cuda" for a GPU; ema=False for the raw weights',
        *load_example(manifest),
        "```",
        "",
        *onnx_lines(manifest),
        "## Share it",
        "",
        "Upload this folder to a model hub with huggingface_hub's CLI (`pip install huggingface_hub`, then `hf auth"
        " login`); genlab's tests do not run this command:",
        "",
        "```bash",
        UPLOAD.format(folder=folder_name),
        "```",
        "",
    ]
    return "\n".join(lines)


def choice_note(manifest: dict[str, Any], group: str) -> str:
    option = (manifest.get("choices") or {}).get(group)
    return f" (`{group}={option}`)" if option else ""


def classes_note(data: dict[str, Any]) -> str:
    return f"conditional on {data['num_classes']} classes" if data["num_classes"] else "unconditional"


def task_note(manifest: dict[str, Any]) -> str:
    task = manifest.get("task")
    return f"; image-to-image task `{task}`: it makes images from the task's inputs" if task else ""


def training_line(manifest: dict[str, Any]) -> str:
    """The training budget: the checkpoint's generator steps and images, and the run's time and end."""
    progress, training = manifest.get("progress") or {}, manifest.get("training") or {}
    parts = [f"{int(progress.get('generator_steps', 0)):,} generator steps, {int(progress.get('images_seen', 0)):,}"
             " images seen at this checkpoint"]
    if training.get("seconds") is not None:
        parts.append(f"the run trained {float(training['seconds']) / 60:.1f} minutes"
                     f" ({int(training.get('generator_steps') or 0):,} generator steps, status {training.get('status')})")
    if training.get("overrides"):
        parts.append("overrides: " + " ".join(f"`{o}`" for o in training["overrides"]))
    return "; ".join(parts)


def weights_line(manifest: dict[str, Any]) -> str:
    weights = manifest["weights"]
    raw = f"`{RAW}` (the trained networks)"
    if weights.get("ema"):
        return f"`{EMA}` (the moving average of the image network: what samples use by default), {raw}"
    return raw


def sampler_line(manifest: dict[str, Any]) -> str:
    sampler = manifest["sampler"]
    if not sampler["options"]:
        return "one network pass, no options"
    return f"defaults {json.dumps(sampler['defaults'])}; options: {', '.join(sampler['options'])}"


def metrics_lines(metrics: dict[str, Any]) -> list[str]:
    """One block per evaluation in metrics.json: its protocol in words, then each number."""
    if not metrics:
        return ["Not evaluated before export: `genlab eval ckpt_path=<run>/checkpoints/<checkpoint>` writes metrics.json,"
                " which a new export carries."]
    lines = ["From `metrics.json` (genlab eval; FID and KID compare only under one protocol, docs/evaluation.md):", ""]
    for name, entry in metrics.items():
        protocol = entry.get("protocol") or {}
        lines += [f"**{name}**: {protocol_words(protocol)}", "", "| metric | value |", "|---|---|"]
        for metric, value in (entry.get("metrics") or {}).items():
            lines.append(f"| {metric} | {value:.4g} |" if isinstance(value, (int, float)) else f"| {metric} | {value} |")
        lines.append("")
    return lines


def protocol_words(protocol: dict[str, Any]) -> str:
    """`genlab eval`'s protocol in one line: how many images against how many, which split, features, seed, weights."""
    if not protocol:
        return "protocol not recorded"
    sampler = protocol.get("sampler") or {}
    options = ", ".join(f"{key} {value}" for key, value in sampler.items()) if sampler else "none"
    return (f"{protocol.get('n_generated')} generated vs {protocol.get('n_real')} real images of {protocol.get('data')}'s"
            f" {protocol.get('split')} split, {protocol.get('extractor')} features, seed {protocol.get('seed')},"
            f" {protocol.get('weights')} weights, sampler: {options}")


def samples_lines(manifest: dict[str, Any]) -> list[str]:
    samples = manifest.get("samples")
    if not samples:
        return []
    return ["## Samples", "", f"![samples]({SAMPLES})", "",
            f"`{SAMPLES}`: {samples['n']} images, seed {samples['seed']}, {samples['weights']} weights"
            f"{', sampler ' + json.dumps(samples['sampler']) if samples['sampler'] else ''}, drawn as `genlab sample`"
            " draws its grid.", ""]


def load_example(manifest: dict[str, Any]) -> list[str]:
    if manifest.get("task"):
        return ["inputs, targets = run.pairs(8)                # the task's inputs from its data (data_dir=...)",
                "outputs = run.translate(inputs, seed=0)       # in [-1, 1]"]
    labels = ", labels=[0, 1, 2, 3]" if manifest["data"]["num_classes"] else ""
    return [f"images = run.sample(4{labels}, seed=0)   # (4, C, H, W) in [-1, 1]"]


def one_step_note(graph: dict[str, Any]) -> str:
    sampler = graph.get("sampler") or {}
    return f", its sampler at {json.dumps(sampler)} (one network evaluation)" if sampler else ""


def onnx_lines(manifest: dict[str, Any]) -> list[str]:
    graph = manifest.get("onnx")
    if not graph:
        return []
    inputs = ", ".join(f"`{name}` {spec}" for name, spec in graph["inputs"].items())
    feed = '{"noise": noise, "labels": labels}' if "labels" in graph["inputs"] else '{"noise": noise}'
    return [
        "## ONNX", "",
        f"`{ONNX}` is the generator with the {graph['weights']} weights{one_step_note(graph)} as one graph"
        f" (opset {graph['opset']}): inputs"
        f" {inputs}; output `images`, (batch, {', '.join(str(s) for s in graph['image_shape'])}) in [-1, 1]. On"
        f" {graph['checked_images']} images drawn at seed {graph['seed']}, onnxruntime's images differ from torch's by at"
        f" most {graph['max_abs_difference']:.2g} (the export refuses more than {graph['tolerance']:g}).", "",
        "```python",
        "import numpy as np, onnxruntime",
        "",
        f'session = onnxruntime.InferenceSession("{ONNX}")',
        f"noise = np.random.default_rng(0).standard_normal((4, {', '.join(str(s) for s in graph['noise_shape'])}))"
        ".astype(np.float32)",
        *(['labels = np.arange(4, dtype=np.int64)'] if "labels" in graph["inputs"] else []),
        f"images = session.run(None, {feed})[0]",
        "```", "",
    ]

