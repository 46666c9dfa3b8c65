"""data=folder: the user's own images, scanned, decoded once into a keyed cache, and served as splits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from genlab.data.folder import cache as cache_module
from genlab.data.folder.cache import Preprocessing, cache_path, decoded
from genlab.data.folder.decode import BadImage, decode
from genlab.data.folder.scan import class_count, list_folder
from genlab.data.folder.source import FolderDataModule
from genlab.errors import ConfigError, DataFormatError, DataNotFoundError
from tests.folder_images import colour, make_class_folder, make_flat_folder, write_image

PREP = Preprocessing(size=16, channels=3, resize="center_crop", skip_bad=False)


def module(root: Path, cache: Path, **settings) -> FolderDataModule:
    options = {"image_size": 16, "val_size": 2, "batch_size": 2, "num_classes": class_count(root), **settings}
    return FolderDataModule(root=root, cache_dir=cache, **options)


# --- the layouts ---------------------------------------------------------------------------------------------


def test_class_folders_give_labels_in_the_sorted_order_of_their_names(tmp_path):
    root = make_class_folder(tmp_path / "pets", per_class=3, classes=("zebra", "ant", "Mole"))
    (root / "README.txt").parent.mkdir(exist_ok=True)
    (root / "ant" / "notes.txt").write_text("not an image")  # other files are left alone
    listing = list_folder(root)
    assert listing.classes == ("Mole", "ant", "zebra") and class_count(root) == 3  # Python's string order
    assert listing.labels == (0,) * 3 + (1,) * 3 + (2,) * 3
    assert all(f.startswith(listing.classes[label] + "/") for f, label in zip(listing.files, listing.labels))


def test_a_flat_folder_is_one_class_named_after_it(tmp_path):
    root = make_flat_folder(tmp_path / "faces", count=4)
    listing = list_folder(root)
    assert listing.classes == ("faces",) and listing.labels == (0, 0, 0, 0) and class_count(root) == 1


@pytest.mark.parametrize("case, match", [
    ("missing", "is not a folder"), ("empty", "holds no images"), ("mixed", "holds both images"),
    ("empty_class", "class folder 'dogs' holds 0 images"),
])
def test_a_folder_genlab_cannot_use_is_refused_in_one_line(tmp_path, case, match):
    root = tmp_path / "data"
    if case == "empty":
        root.mkdir()
        (root / "notes.txt").write_text("no images here")
    elif case == "mixed":
        make_class_folder(root, per_class=1)
        write_image(root / "loose.png", colour(np.random.default_rng(0), 20, 20, 0))
    elif case == "empty_class":
        make_class_folder(root, per_class=2, classes=("cats",))
        (root / "dogs").mkdir()
    with pytest.raises((DataNotFoundError, DataFormatError), match=match) as error:
        list_folder(root)
    assert "\n" not in str(error.value) and "data.root" in str(error.value)


def test_too_few_images_per_class_is_refused_with_the_key(tmp_path):
    root = make_class_folder(tmp_path / "pets", per_class=2)
    with pytest.raises(DataFormatError, match="data.min_per_class=3"):
        list_folder(root, min_per_class=3)


# --- decoding ------------------------------------------------------------------------------------------------


def test_center_crop_scales_the_shorter_side_and_keeps_the_middle(tmp_path):
    from PIL import Image

    wide = np.zeros((32, 64, 3), np.uint8)
    wide[:, 16:48] = 255  # a white square in the middle of a black bar
    path = write_image(tmp_path / "wide.png", wide)
    out = decode(path, 16, 3, "center_crop")
    assert out.shape == (3, 16, 16) and out.dtype == np.uint8
    expected = np.asarray(Image.fromarray(wide).resize((32, 16), Image.Resampling.BICUBIC))[:, 8:24].transpose(2, 0, 1)
    assert np.array_equal(out, expected) and out[:, :, 1:-1].min() == 255  # the white middle, its edges filtered
    stretched = decode(path, 16, 3, "stretch")
    assert np.array_equal(stretched, np.asarray(Image.fromarray(wide).resize((16, 16), Image.Resampling.BICUBIC)).transpose(2, 0, 1))


def test_grey_and_transparent_images_become_what_channels_asks(tmp_path):
    grey = write_image(tmp_path / "grey.png", np.full((16, 16), 77, np.uint8))
    assert np.array_equal(decode(grey, 16, 3), np.full((3, 16, 16), 77))  # repeated on three channels
    assert np.array_equal(decode(grey, 16, 1), np.full((1, 16, 16), 77))
    rgba = np.zeros((16, 16, 4), np.uint8)  # fully transparent: white
    assert np.array_equal(decode(write_image(tmp_path / "clear.png", rgba), 16, 3), np.full((3, 16, 16), 255))
    with pytest.raises(BadImage, match="colour image but data.channels=1"):
        decode(write_image(tmp_path / "red.png", np.tile(np.array([200, 0, 0], np.uint8), (16, 16, 1))), 16, 1)


def test_unreadable_and_small_images_are_bad(tmp_path):
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    with pytest.raises(BadImage, match="cannot be read"):
        decode(corrupt, 16, 3)
    with pytest.raises(BadImage, match="is 12x10, smaller than data.image_size=16"):
        decode(write_image(tmp_path / "small.png", np.zeros((10, 12), np.uint8)), 16, 3)


# --- the cache -----------------------------------------------------------------------------------------------


def test_the_cache_holds_the_decoded_images_and_is_read_again(tmp_path, monkeypatch):
    root = make_class_folder(tmp_path / "pets", per_class=3)
    listing = list_folder(root)
    first = decoded(tmp_path / "cache", listing, PREP)
    assert first.images.shape == (6, 3, 16, 16) and list(first.labels) == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(first.images[4], decode(root / listing.files[4], 16, 3))
    assert first.index["classes"] == ["cats", "dogs"] and first.index["images_per_class"] == [3, 3]

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_module, "decode", refuse)
    again = decoded(tmp_path / "cache", list_folder(root), PREP)  # a complete cache is read, not rebuilt
    assert again.path == first.path and np.array_equal(again.images, first.images)


@pytest.mark.parametrize("change", ["add", "remove", "touch", "preprocessing"])
def test_the_cache_is_rebuilt_exactly_when_the_folder_or_preprocessing_changes(tmp_path, change):
    root = make_class_folder(tmp_path / "pets", per_class=3)
    before = decoded(tmp_path / "cache", list_folder(root), PREP)
    prep = PREP
    if change == "add":
        write_image(root / "cats" / "new.png", colour(np.random.default_rng(5), 20, 20, 60))
    elif change == "remove":
        (root / "dogs" / "000.png").unlink()
    elif change == "touch":
        stat = (root / "cats" / "001.jpg").stat()
        os.utime(root / "cats" / "001.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    else:
        prep = Preprocessing(size=12, channels=3, resize="center_crop", skip_bad=False)
    after = decoded(tmp_path / "cache", list_folder(root), prep)
    assert after.path != before.path
    assert len(after.labels) == {"add": 7, "remove": 5}.get(change, 6)
    if change != "preprocessing":  # the same folder's older cache is gone, another preprocessing's is kept
        assert not before.path.exists()
    else:
        assert before.path.exists()


def test_an_interrupted_decode_leaves_no_cache_a_later_run_trusts(tmp_path, monkeypatch):
    root = make_class_folder(tmp_path / "pets", per_class=3)
    listing = list_folder(root)
    real, calls = cache_module.decode, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the folder
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_module, "decode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        decoded(tmp_path / "cache", listing, PREP)
    path = cache_path(tmp_path / "cache", listing, PREP)
    assert not path.exists() and not any(p.name.startswith(".partial") for p in path.parent.iterdir())
    monkeypatch.setattr(cache_module, "decode", real)
    assert len(decoded(tmp_path / "cache", listing, PREP).labels) == 6


def test_a_bad_file_stops_the_decode_by_name_unless_skip_bad(tmp_path):
    root = make_class_folder(tmp_path / "pets", per_class=3)
    (root / "dogs" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_image(root / "cats" / "zz_small.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataFormatError, match=r"zz_small.png is 8x8, smaller than data.image_size=16.*data.skip_bad=true"):
        decoded(tmp_path / "cache", list_folder(root), PREP)
    assert not cache_path(tmp_path / "cache", list_folder(root), PREP).exists()
    skipping = Preprocessing(16, 3, "center_crop", skip_bad=True)
    found = decoded(tmp_path / "cache", list_folder(root), skipping)
    assert len(found.labels) == 6 and [s["file"] for s in found.index["skipped"]] == ["cats/zz_small.png", "dogs/zz_broken.png"]
    assert found.images.shape[0] == 6


# --- the data module -----------------------------------------------------------------------------------------


def test_the_folder_serves_fixed_train_val_and_test_splits(tmp_path):
    root = make_class_folder(tmp_path / "pets", per_class=10)
    dm = module(root, tmp_path / "cache", test_fraction=0.2)
    dm.setup("fit")
    train, val, test = dm.split("train"), dm.split("val"), dm.split("test")
    assert (len(train), len(val), len(test)) == (14, 2, 4)
    assert train.images.dtype == torch.uint8 and tuple(train.images.shape[1:]) == (3, 16, 16)
    all_images = torch.cat([train.images, val.images, test.images]).flatten(1)
    assert len(torch.unique(all_images, dim=0)) == 20  # disjoint, every image once
    again = module(root, tmp_path / "cache", test_fraction=0.2, seed=7)  # data.seed moves val, not test
    assert torch.equal(again.split("test").images, test.images)
    facts = dm.facts()
    assert facts["classes"] == ["cats", "dogs"] and facts["skipped_files"] == 0 and facts["images_per_class"] == [10, 10]
    assert dm.name == "folder-pets-16px"


@pytest.mark.parametrize("settings, key", [
    ({"image_size": 4}, "data.image_size"), ({"channels": 2}, "data.channels"), ({"resize": "pad"}, "data.resize"),
    ({"test_fraction": 1.0}, "data.test_fraction"), ({"image_shape": [3, 32, 32]}, "data.image_shape"),
    ({"skip_bad": "yes"}, "data.skip_bad"),
])
def test_wrong_folder_settings_are_refused_by_key(tmp_path, settings, key):
    with pytest.raises(ConfigError, match=key):
        module(make_flat_folder(tmp_path / "faces", count=4), tmp_path / "cache", **settings)


def test_a_num_classes_that_disagrees_with_the_folder_is_refused(tmp_path):
    root = make_class_folder(tmp_path / "pets", per_class=4)
    with pytest.raises(ConfigError, match="data.num_classes=5 but .* holds 2 classes"):
        module(root, tmp_path / "cache", num_classes=5).setup("fit")


# --- held in memory or streamed: the same batches ------------------------------------------------------------


def batches(loader, epoch: int = 0) -> list[tuple[torch.Tensor, ...]]:
    loader.sampler.set_epoch(epoch)
    return [tuple(t.clone() for t in batch) for batch in loader]


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_are_bit_identical_to_the_ones_held_in_memory(tmp_path, workers):
    root = make_class_folder(tmp_path / "pets", per_class=9)
    held = module(root, tmp_path / "cache", in_memory=True, batch_size=4)
    streamed = module(root, tmp_path / "cache", in_memory=False, batch_size=4, workers=workers)
    for dm in (held, streamed):
        dm.setup("fit")
    assert streamed.streams(torch.device("cpu")) and not held.streams(torch.device("cpu"))
    a, b = held.train_dataloader(), streamed.train_dataloader()
    assert type(b).__name__ == "StreamingBatchLoader" and len(a) == len(b) == 3  # 18 images: 2 test, 2 val, 14 train
    for epoch in (0, 1):
        for x, y in zip(batches(a, epoch), batches(b, epoch), strict=True):
            assert all(torch.equal(p, q) for p, q in zip(x, y))
    assert held.facts()["train_split"] == "held in cpu memory"
    assert streamed.facts()["train_split"].startswith("streamed from")


def test_streamed_ddp_shards_and_image_to_image_pairs_match_the_in_memory_ones(tmp_path):
    from genlab.data.datamodule import DeviceBatchLoader
    from genlab.data.streaming import StreamingBatchLoader
    from genlab.tasks.restore import Inpaint

    root = make_class_folder(tmp_path / "pets", per_class=9)
    dm = module(root, tmp_path / "cache", in_memory=False)
    dm.setup("fit")
    mapped, task = dm.split("train"), Inpaint((3, 16, 16), mask="boxes")
    held = mapped.to("cpu")
    for rank in (0, 1):
        a = DeviceBatchLoader(held, 3, True, seed=4, drop_last=True, rank=rank, world_size=2, task=task)
        b = StreamingBatchLoader(mapped, 3, True, seed=4, drop_last=True, rank=rank, world_size=2, task=task, workers=0)
        for x, y in zip(batches(a, 2), batches(b, 2), strict=True):
            assert len(x) == 3 and all(torch.equal(p, q) for p, q in zip(x, y))


def test_a_streamed_epoch_resumes_mid_way_with_the_next_batch(tmp_path):
    root = make_class_folder(tmp_path / "pets", per_class=9)
    dm = module(root, tmp_path / "cache", in_memory=False, batch_size=4, workers=0)
    dm.setup("fit")
    whole = batches(dm.train_dataloader(), 3)
    interrupted = dm.train_dataloader()
    interrupted.sampler.set_epoch(3)
    iterator = iter(interrupted)
    next(iterator), next(iterator)
    state = interrupted.state_dict()
    resumed = dm.train_dataloader()
    resumed.load_state_dict(state)
    rest = batches(resumed, 3)
    assert len(rest) == len(whole) - 2
    assert all(torch.equal(p, q) for x, y in zip(whole[2:], rest) for p, q in zip(x, y))


@pytest.mark.parametrize("version", [1, 2])
def test_a_memory_control_group_limits_what_counts_as_free(tmp_path, version):
    from genlab.data.folder.source import cgroup_room

    membership = tmp_path / "cgroup"
    if version == 2:
        membership.write_text("0::/jobs/run1\n")
        folder = tmp_path / "jobs" / "run1"
        folder.mkdir(parents=True)
        (folder / "memory.max").write_text("1073741824\n")
        (folder / "memory.current").write_text("268435456\n")
    else:
        membership.write_text("12:pids:/\n9:memory:/jobs/run1\n1:name=systemd:/\n")
        folder = tmp_path / "memory" / "jobs" / "run1"
        folder.mkdir(parents=True)
        (folder / "memory.limit_in_bytes").write_text("1073741824\n")
        (folder / "memory.usage_in_bytes").write_text("268435456\n")
    assert cgroup_room(membership, tmp_path) == 768 * 2**20
    (folder / ("memory.max" if version == 2 else "memory.limit_in_bytes")).write_text(
        "max\n" if version == 2 else "9223372036854771712\n")  # no limit
    assert cgroup_room(membership, tmp_path) is None


def test_rows_are_read_in_the_order_asked_whatever_the_chunks():
    from genlab.data.streaming import read_rows

    array = np.arange(50 * 2, dtype=np.uint8).reshape(50, 2)
    rows = np.random.default_rng(1).permutation(50)[:37]
    assert np.array_equal(read_rows(array, rows, chunk=4), array[rows])
    assert np.array_equal(read_rows(array, rows), array[rows])
