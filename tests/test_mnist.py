"""MNIST: the data module on generated files in the real IDX format (raw and gz) and as
parquet, splits, corrupt files; grid3d shapes per direction setting, schedulers agreeing,
a model overfitting a tiny batch; bad settings in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gridlstm.data import MNISTDataModule
from gridlstm.data.mnist import idx_bytes, shift_images, write_synthetic
from gridlstm.nn import Grid3dImageEncoder, MDLSTMImage, RowLSTM, SmallCNN
from gridlstm.nn.models.image import to_patches
from gridlstm.tasks import ImageClassificationModule
from tests.conftest import fake_digits, quiet_trainer, write_mnist


def small(root: Path, **kwargs) -> MNISTDataModule:
    options = dict(data_dir=root, download=False, val_size=20, strict_sizes=False, batch_size=10)
    return MNISTDataModule(**{**options, **kwargs})


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_files_load_with_the_50k_10k_split_shape(tmp_path, gz):
    files = write_mnist(tmp_path, gz=gz)
    dm = small(tmp_path)
    train_x, train_y = dm.splits["train"]
    val_x, val_y = dm.splits["val"]
    test_x, _ = dm.splits["test"]
    assert (len(train_x), len(val_x), len(test_x)) == (100, 20, 40)
    # Validation is the end of the official training set, disjoint from training.
    assert torch.equal(val_x, torch.from_numpy(files["train-images-idx3-ubyte"][100:]))
    assert torch.equal(train_y, torch.from_numpy(files["train-labels-idx1-ubyte"][:100]).long())
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (20, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.long
    if gz:  # decompressed into torchvision's layout, next to the archives
        assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_train_size_takes_a_subset_and_eval_shards_by_rank(tmp_path, monkeypatch):
    write_mnist(tmp_path)
    dm = small(tmp_path, train_size=30)
    assert len(dm.splits["train"][0]) == 30
    monkeypatch.setattr("gridlstm.data.mnist.rank_and_world", lambda: (1, 2))
    assert len(dm.val_dataloader().dataset) == 10  # images 1, 3, 5, ... of 20


def test_strict_sizes_requires_the_official_counts(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(
        ValueError, match=r"holds shape \(120, 28, 28\), expected \(60000, 28, 28\)"
    ):
        small(tmp_path, strict_sizes=True)


def test_truncated_and_corrupt_files_are_named(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte is truncated or corrupt"):
        small(tmp_path)
    path.write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 20)  # a labels header on the images file
    with pytest.raises(ValueError, match=r"is not an MNIST IDX file \(expected magic number 2051"):
        small(tmp_path)
    labels = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.unlink()
    (tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="is not a readable gzip file"):
        small(tmp_path)
    assert not labels.exists()


def test_missing_data_directory_offline(tmp_path):
    with pytest.raises(ValueError, match=r"download=false: put train-images-idx3-ubyte, .* in"):
        small(tmp_path / "nowhere")


def test_parquet_source_reads_hugging_face_files(tmp_path):
    from datasets import Dataset, Features, Image, Value
    from PIL import Image as PILImage

    paths = {}
    for split, (count, seed) in {"train": (50, 0), "test": (15, 1)}.items():
        images, labels = fake_digits(count, seed)
        features = Features({"image": Image(), "label": Value("int64")})
        data = Dataset.from_dict(
            {"image": [PILImage.fromarray(x) for x in images], "label": labels.tolist()},
            features=features,
        )
        paths[split] = tmp_path / f"{split}-00000-of-00001.parquet"
        data.to_parquet(str(paths[split]))
    dm = MNISTDataModule(
        data_dir=tmp_path,
        source="parquet",
        parquet_files={k: str(v) for k, v in paths.items()},
        val_size=10,
        strict_sizes=False,
    )
    expected, labels = fake_digits(50, 0)
    assert torch.equal(dm.splits["train"][0], torch.from_numpy(expected[:40]))
    assert dm.splits["val"][1].tolist() == labels[40:].tolist()
    assert len(dm.splits["test"][0]) == 15
    with pytest.raises(ValueError, match="needs parquet_files with a 'train' and a 'test'"):
        MNISTDataModule(data_dir=tmp_path, source="parquet", parquet_files={"train": "x"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "kaggle"}, r"source must be one of 'torchvision', 'parquet'"),
        ({"val_size": 120}, r"val_size=120 leaves no training images"),
        ({"train_size": 101}, r"train_size=101 is more than the 100 training images"),
    ],
)
def test_bad_data_settings(tmp_path, kwargs, message):
    write_mnist(tmp_path)
    with pytest.raises(ValueError, match=message):
        small(tmp_path, **kwargs)


def test_shifts_move_images_within_bounds():
    images = torch.zeros(4, 1, 28, 28)
    images[:, :, 14, 14] = 1.0
    shifted = shift_images(images, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    rows, cols = torch.nonzero(shifted[:, 0] == 1.0)[:, 1:].T
    assert ((rows - 14).abs() <= 2).all() and ((cols - 14).abs() <= 2).all()


# ---------------------------------------------------------------------------- models
def test_patches_hold_each_patch_in_order():
    images = torch.arange(2 * 3 * 4 * 6, dtype=torch.float).reshape(2, 3, 4, 6)
    grid = to_patches(images, 2)
    assert grid.shape == (2, 2, 3, 12)
    torch.testing.assert_close(grid[1, 1, 2], images[1, :, 2:4, 4:6].reshape(-1))


@pytest.mark.parametrize("directions", [1, 2, 4])
def test_grid3d_output_shape_per_direction_setting(directions):
    net = Grid3dImageEncoder(
        28, 1, patch_size=7, hidden_size=6, num_layers=2, directions=directions
    )
    features, state = net(torch.randn(3, 1, 28, 28))
    assert features.shape == (3, 6 * directions) and state is None
    assert net.output_size == 6 * directions and len(net.scans) == directions


@pytest.mark.parametrize("options", [{}, {"tied": True, "priority": []}])
def test_hyperplane_and_naive_schedulers_agree_for_grid3d(options):
    torch.manual_seed(0)
    hyper = Grid3dImageEncoder((12, 8), 2, 4, 5, 3, 2, backend="hyperplane", **options).double()
    naive = Grid3dImageEncoder((12, 8), 2, 4, 5, 3, 2, backend="naive", **options).double()
    naive.load_state_dict(hyper.state_dict())
    images = torch.randn(3, 2, 12, 8, dtype=torch.double, requires_grad=True)
    out_h, out_n = hyper(images)[0], naive(images)[0]
    torch.testing.assert_close(out_h, out_n)
    (grad_h,) = torch.autograd.grad(out_h.square().sum(), images)
    (grad_n,) = torch.autograd.grad(out_n.square().sum(), images)
    torch.testing.assert_close(grad_h, grad_n)


def test_directions_scan_from_different_corners():
    torch.manual_seed(0)
    net = Grid3dImageEncoder(5, 1, 1, 4, 1, directions=2)  # 1x1 patches: the grid is the image
    net.scans[1].load_state_dict(net.scans[0].state_dict())
    image = torch.randn(1, 1, 5, 5)
    features, _ = net(image)
    # The second scan on the image equals the first scan on the image rotated by 180 degrees.
    rotated, _ = net(image.flip(2, 3))
    torch.testing.assert_close(features[:, 4:], rotated[:, :4])
    assert not torch.allclose(features[:, :4], features[:, 4:])


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: Grid3dImageEncoder(28, 1, patch_size=5),
            r"patch_size=5 .* \[1, 2, 4, 7, 14, 28\]",
        ),
        (
            lambda: Grid3dImageEncoder(28, 1, directions=3),
            r"directions must be one of \[1, 2, 4\]; got 3",
        ),
        (lambda: MDLSTMImage(28, 1, patch_size=3), r"patch_size=3 does not divide"),
        (lambda: SmallCNN(28, 1, num_layers=6), r"pools a 28x28 image to nothing"),
    ],
)
def test_bad_model_settings(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}
NETS = {
    "grid3d": {"_target_": "gridlstm.nn.Grid3dImageEncoder", "patch_size": 7, "hidden_size": 12},
    "mdlstm": {"_target_": "gridlstm.nn.MDLSTMImage", "patch_size": 7, "hidden_size": 12},
    "row_lstm": {"_target_": "gridlstm.nn.RowLSTM", "hidden_size": 16, "num_layers": 1},
    "cnn": {"_target_": "gridlstm.nn.SmallCNN", "hidden_size": 8},
}


@pytest.mark.parametrize("model", sorted(NETS))
def test_every_image_model_overfits_a_tiny_batch(model):
    torch.manual_seed(0)
    module = ImageClassificationModule(NETS[model], 28, 1, 10, ADAM)
    images, labels = fake_digits(16, 3)
    x = MNISTDataModule.normalise(torch.from_numpy(images))
    y = torch.from_numpy(labels).long()
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
    for _ in range(120):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(x), y)
        loss.backward()
        optimizer.step()
    assert (module(x).argmax(-1) == y).float().mean() == 1.0, loss.item()


def test_validation_reports_error_rate_and_never_trains(tmp_path):
    write_mnist(tmp_path)
    dm = small(tmp_path, eval_batch_size=7)
    torch.manual_seed(0)
    module = ImageClassificationModule(NETS["cnn"], 28, 1, 10, ADAM)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    [result] = quiet_trainer().validate(module, datamodule=dm, verbose=False)
    images, labels = dm.splits["val"]
    with torch.no_grad():
        acc = (module(dm.normalise(images)).argmax(-1) == labels).float().mean().item()
    assert result["val/acc"] == pytest.approx(acc)
    assert result["val/error"] == pytest.approx(1 - acc)
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_row_lstm_reads_rows():
    net = RowLSTM(28, 1, 8, 1)
    assert net(torch.randn(2, 1, 28, 28))[0].shape == (2, 8)


def test_a_failed_download_is_one_line_naming_the_files(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried http://x/,\ngot: nope"
        )

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(ValueError, match=r"downloading through torchvision failed") as error:
        small(tmp_path, download=True)
    assert "\n" not in str(error.value) and "t10k-labels-idx1-ubyte" in str(error.value)


def test_augmentation_applies_to_training_batches_only(tmp_path):
    from types import SimpleNamespace

    write_mnist(tmp_path)
    batch = next(iter(small(tmp_path).val_dataloader()))
    for training, changed in ((False, False), (True, True)):
        dm = small(tmp_path, augment=True)
        dm.trainer = SimpleNamespace(training=training)
        images, labels = dm.on_after_batch_transfer(batch, 0)
        assert torch.equal(labels, batch[1])
        assert (not torch.equal(images, batch[0])) == changed
    plain = small(tmp_path)
    plain.trainer = SimpleNamespace(training=True)
    assert plain.on_after_batch_transfer(batch, 0) is batch


def test_a_classifier_hidden_layer_sits_between_the_features_and_the_softmax():
    adam = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}
    net = {"_target_": "gridlstm.nn.SmallCNN", "hidden_size": 4, "num_layers": 1}
    plain = ImageClassificationModule(net, 28, 1, 10, adam)
    wide = ImageClassificationModule(net, 28, 1, 10, adam, classifier_hidden=32)
    features = plain.backbone.output_size
    assert wide.num_parameters - plain.num_parameters == (features * 32 + 32) + (32 - features) * 10
    images = torch.randn(3, 1, 28, 28)
    assert wide(images).shape == (3, 10)
    # ReLU: a unit that is negative for every input leaves the logits unchanged.
    with torch.no_grad():
        wide.hidden[0].bias[0] = -1e6
        before = wide(images)
        wide.head.weight[:, 0] += 100.0
        torch.testing.assert_close(wide(images), before)
    with pytest.raises(ValueError, match="classifier_hidden must be an integer >= 1"):
        ImageClassificationModule(net, 28, 1, 10, adam, classifier_hidden=0)


def test_synthetic_files_have_the_published_headers_and_load_at_the_official_sizes(tmp_path):
    """scripts/step_speed.py's ``synthetic_mnist=1`` stand-ins: the bytes MNIST's own files
    begin with (magic 0x803 / 0x801, 60000 = 0xEA60, 28 = 0x1C), loaded by torchvision's
    reader with the official-size check on."""
    raw = write_synthetic(tmp_path, seed=3)
    head = (raw / "train-images-idx3-ubyte").read_bytes()[:16]
    assert head == bytes.fromhex("00000803 0000ea60 0000001c 0000001c")
    assert (raw / "t10k-labels-idx1-ubyte").read_bytes()[:8] == bytes.fromhex("00000801 00002710")
    dm = MNISTDataModule(data_dir=tmp_path, download=False)  # strict_sizes: official counts
    train_x, train_y = dm.splits["train"]
    assert train_x.shape == (50_000, 28, 28) and len(dm.splits["test"][0]) == 10_000
    assert set(train_y.unique().tolist()) == set(range(10))
    assert int(train_x.max()) > 200  # random pixels over the byte range, not a blank image


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 28, 28), dtype=np.float32), "got float32"),
        (np.zeros((2, 28), dtype=np.uint8), r"got uint8 \(2, 28\)"),
    ],
)
def test_idx_bytes_refuses_what_the_format_cannot_hold(array, message):
    with pytest.raises(ValueError, match=message):
        idx_bytes(array)
