"""A user's own data: labelled sequences (task=sequences) from CSV, NumPy, Parquet and a saved
Hugging Face dataset, and images in class folders (task=images), each read in its real
on-disk format, plus the bad inputs the reader must name in one line."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gridlstm.data.image_folder import ImageFolderDataModule
from gridlstm.data.sequences import IGNORE, SequenceFilesDataModule, pad
from gridlstm.tasks.sequences import SequenceLabelsModule
from tests.conftest import write_image_folder, write_sequences

GRID2D = {
    "_target_": "gridlstm.nn.Grid2dLSTM",
    "input_size": 8,
    "hidden_size": 8,
    "num_layers": 2,
    "batch_first": True,
}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}


def as_lists(dm: SequenceFilesDataModule, split: str) -> list[list[float]]:
    return [x.tolist() for x in dm.splits[split].inputs]


# ------------------------------------------------------------------ sequences: formats
def test_a_csv_of_token_sequences_is_split_by_a_seeded_fraction(tmp_path):
    path = write_sequences(tmp_path / "s.csv", count=50)
    dm = SequenceFilesDataModule(data_files=str(path), val_fraction=0.2, test_fraction=0.1)
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sizes == {"train": 35, "validation": 10, "test": 5}
    again = SequenceFilesDataModule(data_files=str(path), val_fraction=0.2, test_fraction=0.1)
    other = SequenceFilesDataModule(data_files=str(path), val_fraction=0.2, data_seed=7)
    assert as_lists(dm, "validation") == as_lists(again, "validation")
    assert as_lists(dm, "validation") != as_lists(other, "validation")
    kwargs = dm.module_kwargs()
    assert kwargs == {
        "inputs": "tokens",
        "target": "sequence",
        "input_size": 6,
        "num_classes": 2,
        "max_length": max(len(x) for t in dm.splits.values() for x in t.inputs),
    }
    # every row in exactly one split
    rows = [line.split(",")[0] for line in path.read_text().splitlines()[1:]]
    seen = sorted(" ".join(map(str, x)) for t in dm.splits.values() for x in t.inputs)
    assert seen == sorted(rows)


def test_files_for_each_split_are_used_as_given_and_step_labels_are_padded(tmp_path):
    files = {
        split: str(write_sequences(tmp_path / f"{split}.csv", count=n, seed=i, step=True))
        for i, (split, n) in enumerate([("train", 20), ("validation", 6), ("test", 4)])
    }
    dm = SequenceFilesDataModule(data_files=files, target="step", batch_size=5)
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 20, "validation": 6, "test": 4}
    inputs, lengths, labels = next(iter(dm.val_dataloader()))
    assert inputs.shape == labels.shape and inputs.dtype == torch.long
    for row, length in enumerate(lengths.tolist()):
        assert (labels[row, length:] == IGNORE).all() and (labels[row, :length] >= 0).all()
        assert (inputs[row, length:] == 0).all()


def test_features_in_json_cells_with_several_numbers_a_step(tmp_path):
    path = tmp_path / "f.csv"
    rows = ["sequence,label"]
    for i in range(12):
        steps = [[i * 0.5, -1.0], [0.25, 2.0]][: 1 + i % 2]
        rows.append(f'"{json.dumps(steps)}",{i % 3}')
    path.write_text("\n".join(rows) + "\n")
    dm = SequenceFilesDataModule(data_files=str(path), inputs="features")
    assert dm.module_kwargs()["input_size"] == 2 and dm.module_kwargs()["num_classes"] == 3
    inputs, lengths, _ = pad([(dm.splits["train"].inputs[i], 0) for i in range(3)])
    assert inputs.dtype == torch.float32 and inputs.shape[-1] == 2


def test_numpy_npz_and_one_npy_file_a_column_with_lengths(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 5, (30, 7))
    y = rng.integers(0, 2, 30)
    lengths = rng.integers(2, 8, 30)
    np.savez(tmp_path / "d.npz", sequence=x, label=y, length=lengths)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    from_npz = SequenceFilesDataModule(data_files=str(tmp_path / "d.npz"))
    from_npy = SequenceFilesDataModule(
        data_files={"sequence": str(tmp_path / "x.npy"), "label": str(tmp_path / "y.npy")}
    )
    assert {len(s) for s in from_npz.splits["train"].inputs} <= set(lengths.tolist())
    assert {len(s) for s in from_npy.splits["train"].inputs} == {7}  # no length column: all 7
    assert from_npz.module_kwargs()["input_size"] == from_npy.module_kwargs()["input_size"] == 5


def test_parquet_and_a_saved_hugging_face_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"tokens": [[1, 2, 3], [4, 5], [1, 1, 1, 1]] * 8, "y": [0, 1, 2] * 8}
    datasets.Dataset.from_dict(rows).to_parquet(str(tmp_path / "d.parquet"))
    split = datasets.Dataset.from_dict(rows)
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(
        str(saved)
    )
    columns = {"input_column": "tokens", "label_column": "y"}
    from_parquet = SequenceFilesDataModule(data_files=str(tmp_path / "d.parquet"), **columns)
    from_saved = SequenceFilesDataModule(hf_dataset=str(saved), **columns)
    assert from_parquet.module_kwargs()["num_classes"] == 3
    assert {k: len(v) for k, v in from_saved.splits.items()} == {
        "train": 24,
        "validation": 24,
        "test": 24,
    }


def test_parquet_without_the_hf_extra_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(ValueError, match=r'pip install -e "\.\[hf\]"'):
        SequenceFilesDataModule(data_files=str(path))


# ------------------------------------------------------------------ sequences: the model
def test_the_class_of_a_sequence_is_read_at_its_last_real_step_whatever_the_padding():
    torch.manual_seed(0)
    module = SequenceLabelsModule(GRID2D, "tokens", "sequence", 6, 3, 9, ADAM)
    short = np.array([1, 2, 3])
    long_ = np.array([4, 5, 1, 2, 3, 1, 5, 5, 2])
    alone = module(*pad([(short, 0)])[:2])
    beside = module(*pad([(short, 0), (long_, 1)])[:2])
    torch.testing.assert_close(beside[0], alone[0], rtol=1e-5, atol=1e-6)
    steps = SequenceLabelsModule(GRID2D, "features", "step", 2, 4, 9, ADAM)
    features = np.ones((5, 2), dtype=np.float32)
    assert steps(*pad([(features, np.zeros(5, dtype=np.int64))])[:2]).shape == (1, 5, 4)


@pytest.mark.parametrize(("model", "target"), [("grid2d", "sequence"), ("stacked_lstm", "step")])
def test_one_command_trains_on_a_csv_of_sequences(cli, model, target):
    path = write_sequences(cli.cwd / "mine.csv", step=target == "step")
    result = cli(
        "task=sequences",
        f"task.datamodule.data_files={path}",
        f"task.datamodule.target={target}",
        f"model={model}",
        "model.net.hidden_size=8",
        "trainer.max_steps=3",
        "logger=none",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = cli.cwd.glob("outputs/*/*/metrics.json")
    metrics = json.loads(record.read_text())
    assert 0 <= metrics["test/acc"] <= 1 and metrics["global_step"] == 3


# ------------------------------------------------------------------ sequences: bad input
def bad_csv(tmp_path, text: str) -> str:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        (None, {"data_files": "nowhere.csv"}, "data_files=nowhere.csv: no such file"),
        ("seq,label\n1 2,0\n", {}, "no column 'sequence'; its columns: seq, label"),
        ("sequence,label\n1 2,0\n3 4,x\n", {}, r"row 2, label: expected class labels"),
        ("sequence,label\n1 2,0\n3 4,0.5\n", {}, r"row 2, label: expected one class label"),
        ("sequence,label\n1 2,0\n3 -4,1\n", {}, r"row 2, sequence: expected token ids .*-4"),
        ("sequence,label\n1 2 3,0\n3 4,1\n", {"max_length": 2}, r"row 1: a sequence of 3 steps"),
        ("sequence,label\n1 2 3,0 1\n", {"target": "step"}, "2 labels for a sequence of 3"),
        ("sequence,label\n1 2,0\n", {"target": "class"}, "target must be one of"),
        ("sequence,label\n", {}, "no rows"),
    ],
)
def test_bad_sequence_files_are_named_in_one_line(tmp_path, text, kwargs, message):
    if text is not None:
        kwargs = {"data_files": bad_csv(tmp_path, text), **kwargs}
    with pytest.raises(ValueError, match=message) as error:
        SequenceFilesDataModule(**kwargs)
    assert "\n" not in str(error.value)


def test_numpy_object_arrays_are_refused_rather_than_unpickled(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[:] = [np.arange(3), np.arange(2)]
    np.savez(tmp_path / "r.npz", sequence=ragged, label=np.array([0, 1]))
    with pytest.raises(ValueError, match="without unpickling"):
        SequenceFilesDataModule(data_files=str(tmp_path / "r.npz"))


def test_a_refused_data_file_stops_the_run_before_it_writes_anything(cli):
    path = bad_csv(cli.cwd, "sequence,label\n1 2,0\n3 4,x\n")
    result = cli("task=sequences", f"task.datamodule.data_files={path}", "logger=none")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: task=sequences: ")
    assert not list(cli.cwd.glob("outputs/*/*/*"))
    dry = cli("task=sequences", f"task.datamodule.data_files={path}", "dry_run=true")
    assert dry.returncode == 2 and "row 2, label: expected class labels" in dry.stdout


# ------------------------------------------------------------------ images
def test_a_folder_of_class_folders_is_split_resized_and_standardised(tmp_path):
    root = write_image_folder(tmp_path / "img", per_class=10, size=20)
    dm = ImageFolderDataModule(root=str(root), image_size=12, val_fraction=0.2)
    assert dm.classes == ["disc", "square"]
    assert {k: len(v[0]) for k, v in dm.splits.items()} == {"train": 14, "val": 4, "test": 2}
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape[1:] == (1, 12, 12) and set(labels.tolist()) <= {0, 1}
    whole = dm._dataset("train").tensors[0]
    assert abs(float(whole.mean())) < 1e-4 and abs(float(whole.std()) - 1) < 0.05
    assert dm.module_kwargs() == {"image_size": 12, "channels": 1, "num_classes": 2}


def test_train_val_test_folders_are_used_as_given(tmp_path):
    for split, n in (("train", 6), ("val", 3), ("test", 2)):
        write_image_folder(tmp_path / "img" / split, per_class=n, seed=n)
    dm = ImageFolderDataModule(root=str(tmp_path / "img"), image_size=16, channels=3)
    assert {k: len(v[0]) for k, v in dm.splits.items()} == {"train": 12, "val": 6, "test": 4}
    assert dm.splits["train"][0].shape[1] == 3


def test_bad_image_folders_are_named_in_one_line(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(ValueError, match="expected class folders"):
        ImageFolderDataModule(root=str(tmp_path / "flat"))
    root = write_image_folder(tmp_path / "img", per_class=3)
    (root / "disc" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken\.png: not a readable image"):
        ImageFolderDataModule(root=str(root))
    with pytest.raises(ValueError, match="no such folder"):
        ImageFolderDataModule(root=str(tmp_path / "missing"))
    split = tmp_path / "split"
    write_image_folder(split / "train", per_class=3)
    write_image_folder(split / "val", per_class=3)
    (split / "val" / "square").rename(split / "val" / "triangle")
    with pytest.raises(ValueError, match="differ from the training folder's"):
        ImageFolderDataModule(root=str(split))


def test_one_command_trains_the_3_lstm_on_a_folder_of_pngs(cli):
    root = write_image_folder(cli.cwd / "pictures")
    result = cli(
        "task=images",
        f"task.datamodule.root={root}",
        "task.datamodule.image_size=16",
        "model=grid3d",
        "model.net.hidden_size=8",
        "trainer.max_steps=3",
        "logger=none",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = cli.cwd.glob("outputs/*/*/metrics.json")
    assert 0 <= json.loads(record.read_text())["test/error"] <= 1
