"""The domain classifier behind val/fid, classifier FID, coverage and label accuracy is keyed by everything
that makes it, and every number it judged says which classifier that was."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from genlab.commands.report import main as report_main
from genlab.data.sources import LabeledImages
from genlab.metrics import domain_classifier
from genlab.metrics.domain_classifier import judge_key, load_or_train

TINY = {"epochs": 1, "batch_size": 32, "lr": 1e-3, "base_channels": 4, "feature_dim": 8, "seed": 0}


def digits(n: int, seed: int = 0) -> LabeledImages:
    generator = torch.Generator().manual_seed(seed)
    return LabeledImages(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=generator),
                         torch.randint(0, 10, (n,), generator=generator))


def splits(train: LabeledImages, test: LabeledImages):
    return lambda split: train if split == "train" else test


def test_a_classifier_trained_with_other_settings_gets_its_own_cache_entry(tmp_path, monkeypatch):
    train, test = digits(64), digits(32, seed=1)
    _, first = load_or_train(tmp_path, "mnist", splits(train, test), 10, TINY)
    _, other = load_or_train(tmp_path, "mnist", splits(train, test), 10, {**TINY, "epochs": 2})
    assert first["key"] != other["key"] and first["path"] != other["path"]
    assert sorted(p.name for p in (tmp_path / "classifiers").iterdir()) == sorted(
        [f"mnist-{first['key']}.pt", f"mnist-{other['key']}.pt"])
    # the same settings again: the cached judge, not a new one
    monkeypatch.setattr(domain_classifier, "train_classifier", lambda *args: pytest.fail("trained a cached classifier again"))
    _, again = load_or_train(tmp_path, "mnist", splits(train, test), 10, TINY)
    assert again == first and again["settings"] == TINY


def test_judges_started_together_train_the_classifier_once_and_share_it(tmp_path, monkeypatch):
    """A parallel eval sweep's jobs want the same judge at once: one trains it, the others wait and read it."""
    import threading

    train, test = digits(64), digits(32, seed=1)
    trained, real = [], domain_classifier.train_classifier

    def slow_training(*args):
        trained.append(threading.get_ident())
        time.sleep(0.5)  # long enough that the other judge asks while this one trains
        return real(*args)

    monkeypatch.setattr(domain_classifier, "train_classifier", slow_training)
    facts: list[dict] = []
    judges = [threading.Thread(target=lambda: facts.append(load_or_train(tmp_path, "mnist", splits(train, test), 10,
                                                                         TINY)[1])) for _ in range(2)]
    for judge in judges:
        judge.start()
    for judge in judges:
        judge.join()
    assert len(trained) == 1 and len(facts) == 2 and facts[0] == facts[1]
    assert [p.name for p in (tmp_path / "classifiers").iterdir()] == [f"mnist-{facts[0]['key']}.pt"]


def test_the_key_follows_the_training_images_and_labels_and_each_setting():
    train = digits(64)
    key = judge_key("mnist", train, 10, TINY)
    assert judge_key("mnist", digits(64), 10, dict(TINY)) == key  # the same inputs, the same key
    other_images = LabeledImages(train.images.clone(), train.labels)
    other_images.images[0, 0, 0, 0] += 1
    relabelled = LabeledImages(train.images, (train.labels + 1) % 10)
    changed = [judge_key("mnist", other_images, 10, TINY), judge_key("mnist", relabelled, 10, TINY),
               judge_key("cifar10", train, 10, TINY), judge_key("mnist", train, 9, TINY),
               *(judge_key("mnist", train, 10, {**TINY, name: value}) for name, value in
                 (("epochs", 3), ("batch_size", 16), ("lr", 2e-3), ("base_channels", 8), ("feature_dim", 16), ("seed", 1)))]
    assert key not in changed and len(set(changed)) == len(changed)


def finished_run(folder: Path, judge_key_: str | None, fid: float) -> None:
    folder.mkdir(parents=True)
    judge = {"classifier": {"key": judge_key_, "weights_sha256": judge_key_ * 5}} if judge_key_ else None
    summary = {"status": "completed", "overrides": [f"seed={fid}"], "optimized_metric": "val/fid",
               "metrics": {"val/fid": fid}, "error": None, **({"judge": judge} if judge else {})}
    (folder / "summary.json").write_text(json.dumps(summary))


def test_genlab_report_flags_runs_judged_by_different_classifiers(tmp_path, capsys):
    finished_run(tmp_path / "a", "aaaaaaaaaaaa", 10.0)
    finished_run(tmp_path / "b", "aaaaaaaaaaaa", 12.0)
    assert report_main([str(tmp_path)]) == 0
    assert "different domain classifiers" not in capsys.readouterr().err + (tmp_path / "report.md").read_text()

    finished_run(tmp_path / "c", "bbbbbbbbbbbb", 8.0)
    assert report_main([str(tmp_path)]) == 0
    [warning] = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert "judged by 2 different domain classifiers" in warning and "val/fid" in warning
    assert "aaaaaaaaaaaa, weights aaaaaaaaaaaa: a, b" in warning and "bbbbbbbbbbbb, weights bbbbbbbbbbbb: c" in warning
    report = (tmp_path / "report.md").read_text()
    assert "## Judged by different classifiers" in report and "bbbbbbbbbbbb" in report
