"""`genlab eval` and `genlab sample` on a real (short) run; val/fid during training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from genlab.commands.evaluate import format_table
from tests.conftest import Finished, run_genlab

# a trained run judged by genlab eval and genlab sample (and Inception's features)
pytestmark = pytest.mark.slow

# a small domain classifier keeps the one-off classifier training to seconds
SMALL_JUDGE = ("classifier.epochs=1", "classifier.base_channels=8", "classifier.feature_dim=32")


def genlab(*args: str, cwd: Path) -> Finished:
    """`genlab <args>` from `cwd`, in this process (tests/conftest.py's run_genlab)."""
    return run_genlab(*args, cwd=cwd)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, Path]:
    """A conditional GAN trained for a few batches on the bundled digits: (workdir, run folder)."""
    workdir = tmp_path_factory.mktemp("evalrun")
    run_dir = workdir / "run"
    result = genlab(
        "train", "model=cgan", "debug=limit", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
        "callbacks.sample_quality.n_samples=200", f"paths.cache_dir={workdir / 'cache'}", f"hydra.run.dir={run_dir}",
        "evaluate={n_samples:150,extractor:classifier,raw_weights:true}", *SMALL_JUDGE, cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, run_dir


def test_evaluate_judges_the_end_of_training_as_genlab_eval_judges_its_last_checkpoint(trained_run):
    workdir, run_dir = trained_run
    at_the_end = json.loads((run_dir / "summary.json").read_text())["metrics"]
    for weights in ("true", "false"):  # the EMA (model=cgan keeps one), then the raw weights
        out = workdir / f"eval_150_{weights}"
        result = genlab("eval", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "n_samples=150", "extractor=classifier",
                        "progress=false", f"ema={weights}", f"paths.cache_dir={workdir / 'cache'}", *SMALL_JUDGE,
                        f"hydra.run.dir={out}", cwd=workdir)
        assert result.returncode == 0, result.stderr[-3000:]
        judged = json.loads((out / "metrics.json").read_text())["metrics"]
        prefix = "test" if weights == "true" else "test_raw"
        for name in ("fid", "precision", "recall", "coverage_entropy", "classes_covered", "label_accuracy", "intra_fid"):
            assert at_the_end[f"{prefix}/{name}"] == pytest.approx(judged[name], rel=1e-6, abs=1e-9), name
    assert at_the_end["test/fid"] != at_the_end["test_raw/fid"]


def test_training_logs_val_fid_and_keeps_the_best_checkpoint(trained_run):
    _, run_dir = trained_run
    metrics = json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert metrics["val/fid"] > 0 and 0 <= metrics["val/coverage_entropy"] <= 2.31
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    # the domain classifier that judged it, cached under its key (genlab/metrics/domain_classifier.py)
    key = json.loads((run_dir / "summary.json").read_text())["judge"]["classifier"]["key"]
    assert (trained_run[0] / "cache" / "classifiers" / f"mnist_mini-{key}.pt").is_file()


def test_training_logs_val_label_accuracy_of_a_conditional_model(trained_run):
    _, run_dir = trained_run
    metrics = json.loads((run_dir / "summary.json").read_text())["metrics"]
    # 200 samples, 20 asked of each class
    right = 200 * metrics["val/label_accuracy"]  # logged as float32
    assert 0 <= right <= 200 and right == pytest.approx(round(right), abs=1e-4)


def test_eval_writes_every_metric_beside_the_checkpoint(trained_run):
    workdir, run_dir = trained_run
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    args = ("eval", f"ckpt_path={ckpt}", "n_samples=300", "extractor=classifier", "progress=false",
            f"paths.cache_dir={workdir / 'cache'}", *SMALL_JUDGE)
    first = genlab(*args, cwd=workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "300 generated vs 300 real (mnist_mini, test split), classifier features" in first.stdout
    results = json.loads((ckpt.parent / "metrics.json").read_text())["last.ckpt"]
    for name in ("fid", "kid", "precision", "recall", "inception_score", "coverage_entropy", "classes_covered"):
        assert name in results["metrics"]
    assert 1 <= results["metrics"]["inception_score"] <= 10
    assert 0 <= results["metrics"]["precision"] <= 1 and 0 <= results["metrics"]["recall"] <= 1
    assert results["protocol"]["split"] == "test" and results["protocol"]["n_real"] == 300
    assert results["protocol"]["feature_dim"] == 32 and "torch-fidelity" in results["protocol"]["kid_units"]
    assert results["protocol"]["val_fid"] == {"split": "val", "n_generated": 200, "n_real": 500, "extractor": "classifier"}
    assert sum(results["class_counts"]) == 300
    assert results["protocol"]["sampling_seconds_per_1000"] > 0 and results["protocol"]["device"] == "cpu"
    assert "s per 1,000 images (cpu," in first.stdout
    second = genlab(*args, cwd=workdir)  # the real-image features now come from the cache
    assert "real-image features from the cache" in second.stdout + second.stderr
    again = json.loads((ckpt.parent / "metrics.json").read_text())["last.ckpt"]
    assert again["metrics"]["fid"] == pytest.approx(results["metrics"]["fid"], rel=1e-6)


def test_eval_reports_label_accuracy_and_intra_class_fid_of_a_conditional_model(trained_run):
    workdir, run_dir = trained_run
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    result = genlab("eval", f"ckpt_path={ckpt}", "n_samples=200", "extractor=classifier", "progress=false",
                    f"paths.cache_dir={workdir / 'cache'}", *SMALL_JUDGE, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((ckpt.parent / "metrics.json").read_text())["last.ckpt"]["metrics"]
    # 20 samples asked of each class: the share right is a multiple of 1/200
    right = 200 * metrics["label_accuracy"]
    assert 0 <= right <= 200 and right == pytest.approx(round(right), abs=1e-9)
    assert metrics["intra_fid"] > 0
    assert table_line(result.stdout, "label accuracy").split()[2] == f"{metrics['label_accuracy']:.4g}"


def test_eval_with_inception_features(trained_run):
    workdir, run_dir = trained_run
    result = genlab("eval", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "n_samples=12", "batch_size=6",
                    "extractor=inception", "kid_subset_size=6", "progress=false",
                    f"paths.cache_dir={workdir / 'cache'}", *SMALL_JUDGE, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((run_dir / "checkpoints" / "metrics.json").read_text())["last.ckpt"]
    assert results["protocol"]["extractor"] == "inception" and "default_1.pt" in results["protocol"]["extractor_source"]


def test_eval_refuses_an_unknown_extractor(trained_run):
    workdir, run_dir = trained_run
    result = genlab("eval", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "extractor=vgg", cwd=workdir)
    assert result.returncode == 2 and "extractor='vgg' is not valid: it must be one of auto, inception, classifier" in result.stderr
    assert "Traceback" not in result.stderr


def test_sample_gives_one_row_per_class_and_an_interpolation_strip(trained_run):
    workdir, run_dir = trained_run
    result = genlab("sample", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "n=40", f"out={workdir / 'png'}",
                    cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    grid = Image.open(workdir / "png" / "sample_seed0.png")
    # 40 samples of a 10-class model: 10 rows (one per class) of 4; torchvision pads 2 px around 28 px digits
    assert grid.size == (4 * 30 + 2, 10 * 30 + 2)
    strip = Image.open(workdir / "png" / "interpolation_seed0.png")
    assert strip.size == (10 * 30 + 2, 8 * 30 + 2)


def test_eval_of_a_checkpoint_outside_a_run_folder_says_what_it_needs(tmp_path):
    (tmp_path / "x.ckpt").write_bytes(b"")
    result = genlab("eval", f"ckpt_path={tmp_path / 'x.ckpt'}", cwd=tmp_path)
    assert result.returncode == 2 and ".hydra/config.yaml is missing" in result.stderr


def evaluation(**protocol_changes) -> dict:
    """What `evaluate` returns for a classifier-feature evaluation of 10,000 samples on MNIST's test split."""
    protocol = {
        "data": "mnist", "split": "test", "n_generated": 10000, "n_real": 10000, "extractor": "classifier",
        "extractor_source": "classifier.pt", "seed": 0, "sampler": {}, "kid_subset_size": 1000, "kid_subsets": 100,
        "pr_k": 3, "classifier_test_accuracy": 0.98, "feature_dim": 128, "kid_units": "", "is_splits": 10,
        "coverage_threshold": 0.9, "val_fid": {"split": "val", "n_generated": 1000, "n_real": 1000, "extractor": "classifier"},
    }
    metrics = {"fid": 12.3456, "kid": 511.5, "kid_std": 20.25, "precision": 0.5, "recall": 0.25, "inception_score": 8.5,
               "inception_score_std": 0.125, "coverage_entropy": 2.2, "coverage_normalized_entropy": 0.955,
               "confident_share": 0.75, "classes_covered": 10.0}
    return {"checkpoint": "best.ckpt", "protocol": {**protocol, **protocol_changes}, "metrics": metrics,
            "class_counts": [1000] * 10}


def table_line(table: str, metric: str) -> str:
    (line,) = [line for line in table.splitlines() if line.startswith(metric + "  ")]
    return line


def test_eval_table_gives_kid_with_its_std_and_says_its_units():
    line = table_line(format_table(evaluation()), "KID ± std")
    assert "511.5 ± 20" in line
    assert "unbiased MMD² in the kernel's units, as torch-fidelity (not x10³)" in line
    assert "100 subsets of 1,000" in line


def test_eval_table_names_the_split_and_features_of_its_fid():
    line = table_line(format_table(evaluation()), "FID")
    assert "12.35" in line and "classifier features (128-d), test split" in line


def test_eval_table_says_its_fid_is_not_the_val_fid_that_picked_best_ckpt():
    last = format_table(evaluation()).splitlines()[-1]
    assert last == ("FID above: test split, 10,000 generated vs 10,000 real, classifier features; not comparable to"
                    " the val/fid that picked best.ckpt (val split, 1,000 generated vs 1,000 real, classifier features).")


def test_eval_table_gives_label_accuracy_only_for_conditional_models():
    unconditional = evaluation()
    conditional = evaluation()
    conditional["metrics"].update(label_accuracy=0.875, intra_fid=40.5)
    assert "label accuracy" not in format_table(unconditional)
    assert "0.875" in table_line(format_table(conditional), "label accuracy")
    assert "40.5" in table_line(format_table(conditional), "intra-class FID")


def test_eval_table_says_when_its_fid_follows_the_val_fid_protocol():
    same = evaluation(split="val", n_generated=1000, n_real=1000)
    assert "the protocol of the val/fid that picked best.ckpt" in format_table(same).splitlines()[-1]


def _write_many(index: int, folder: str) -> None:
    from genlab.run.metrics_file import write_results

    for step in range(50):
        write_results({"step": step}, Path(folder) / f"timed_{index}.ckpt")


def test_evaluations_of_one_runs_checkpoints_at_once_keep_every_entry(tmp_path):
    """scripts/family_curves.py --jobs 2 judges two checkpoints of a run at once: both land in its metrics.json."""
    import multiprocessing

    processes = [multiprocessing.Process(target=_write_many, args=(index, str(tmp_path))) for index in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    entries = json.loads((tmp_path / "metrics.json").read_text())
    assert entries == {f"timed_{index}.ckpt": {"step": 49} for index in range(3)}
