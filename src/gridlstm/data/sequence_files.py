"""Reading a user's labelled sequences from files into one in-memory form (``task=sequences``).

Why one form: CSV, NumPy, Parquet and Hugging Face datasets store sequences differently, and
everything after reading (splits, padding, the model's sizes) should not care which it was.
A split is a `Table`: a list of input sequences, each an array of shape (length,) of token
ids or (length, features) of floats, and its labels, one integer a sequence or one a step.

Formats (columns named in the config):

* CSV (``.csv``): a cell holds a sequence as numbers separated by spaces (``3 1 4 1``), or as
  JSON (``[[0.1, 2.0], [0.3, 1.5]]`` for several features a step); a label cell an integer,
  or with one label a step a sequence as above.
* NumPy: a ``.npz`` archive whose arrays are the columns, or a ``.npy`` file per column
  (``{sequence: x.npy, label: y.npy}``). Inputs are padded arrays (N, T) or (N, T, F) with an
  optional length column (N,); without it every sequence is T long. Object arrays are refused
  (loading them would unpickle).
* Parquet (``.parquet``) and Hugging Face datasets (a saved ``save_to_disk`` folder or a Hub
  name) through the ``hf`` extra; list columns.

Every problem is a ValueError naming the file, the column or the row, and what was expected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridlstm.data.files import hf_load_dataset

FORMATS = {".csv": "csv", ".npz": "npz", ".npy": "npy", ".parquet": "parquet"}
INPUTS = ("tokens", "features")
TARGETS = ("sequence", "step")


@dataclass
class Columns:
    """Which columns hold what, and what kind of sequences they are."""

    inputs: str  # tokens | features
    target: str  # sequence (one label a sequence) | step (one label a step)
    input_column: str = "sequence"
    label_column: str = "label"
    length_column: str = "length"  # NumPy only; used where present


@dataclass
class Table:
    """One split: ``inputs[i]`` is (length,) int64 or (length, features) float32; ``labels``
    is (N,) int64 (target=sequence) or a list of (length,) int64 arrays (target=step)."""

    inputs: list[np.ndarray]
    labels: np.ndarray | list[np.ndarray]
    source: str  # the file or dataset it came from, for messages

    def __len__(self) -> int:
        return len(self.inputs)

    def take(self, index: Sequence[int]) -> Table:
        labels = self.labels
        chosen = (
            labels[np.asarray(index, dtype=np.int64)]
            if isinstance(labels, np.ndarray)
            else [labels[i] for i in index]
        )
        return Table([self.inputs[i] for i in index], chosen, self.source)


def read(source: str | Path | Mapping[str, Any], columns: Columns, what: str) -> Table:
    """The table in ``source``: a file, or for NumPy a ``{column: file.npy}`` mapping.
    ``what`` names the config entry in messages (``data_files.train``)."""
    if isinstance(source, Mapping):
        return _from_arrays(_npy_columns(source, what), columns, f"{what} ({dict(source)})")
    path = Path(str(source))
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"{what}={path}: unknown file type {path.suffix!r}; give a .csv, .npz, .parquet "
            "file, {column: file.npy} for NumPy columns, or hf_dataset= for a Hugging Face dataset"
        )
    if not path.is_file():
        raise ValueError(f"{what}={path}: no such file")
    if kind == "csv":
        return _read_csv(path, columns)
    if kind == "npz":
        return _from_arrays(_npz_columns(path), columns, str(path))
    if kind == "npy":
        raise ValueError(
            f"{what}={path}: a .npy file holds one array; give one per column, e.g. "
            f"{{{columns.input_column}: x.npy, {columns.label_column}: y.npy}}, or one .npz"
        )
    return read_hf_split(_parquet(path), columns, str(path))


def read_hf_split(dataset: Any, columns: Columns, source: str) -> Table:
    """A Hugging Face ``Dataset`` split (list columns) as a table."""
    names = list(dataset.column_names)
    for column in (columns.input_column, columns.label_column):
        if column not in names:
            raise ValueError(f"{source}: no column {column!r}; its columns: {', '.join(names)}")
    cells = zip(dataset[columns.input_column], dataset[columns.label_column], strict=True)
    return _from_cells(cells, columns, source)


# ---------------------------------------------------------------------- cells (CSV, lists)
def _parse_cell(cell: Any) -> Any:
    """A CSV cell as numbers: JSON where it is JSON, else space-separated numbers."""
    if not isinstance(cell, str):
        return cell
    text = cell.strip()
    if text.startswith("["):
        return json.loads(text)
    return [float(x) if any(c in x for c in ".eE") else int(x) for x in text.split()]


def _numbers(cell: Any, where: str, what: str = "numbers") -> Any:
    try:
        return _parse_cell(cell)
    except (json.JSONDecodeError, ValueError):
        raise ValueError(f"{where}: expected {what}, found {cell!r}") from None


def _sequence(value: Any, columns: Columns, where: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim == 0 or len(array) == 0:
        raise ValueError(f"{where}: an empty sequence")
    if columns.inputs == "tokens":
        return _integers(array, where, "token ids", ndim=1)
    if array.ndim == 1:
        array = array[:, None]  # one feature a step
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{where}: expected numbers, one or a list of them a step")
    return array.astype(np.float32)


def _integers(array: np.ndarray, where: str, what: str, ndim: int) -> np.ndarray:
    if array.ndim != ndim or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{where}: expected {what} (integers >= 0)")
    fractional = not np.issubdtype(array.dtype, np.integer) and not (
        np.all(np.isfinite(array)) and np.all(array == np.round(array))
    )
    if fractional:
        bad = array[~(np.isfinite(array) & (array == np.round(array)))].flat[0]
        raise ValueError(f"{where}: expected {what} (integers >= 0), found {bad!r}")
    if array.size and array.min() < 0:
        raise ValueError(f"{where}: expected {what} (integers >= 0), found {int(array.min())}")
    return array.astype(np.int64)


def _from_cells(cells: Any, columns: Columns, source: str) -> Table:
    inputs: list[np.ndarray] = []
    labels: list[Any] = []
    for row, (cell, label) in enumerate(cells):
        where = f"{source}, row {row + 1}"
        label_where = f"{where}, {columns.label_column}"
        sequence = _sequence(
            _numbers(cell, f"{where}, {columns.input_column}"),
            columns,
            f"{where}, {columns.input_column}",
        )
        value = np.asarray(_numbers(label, label_where, "class labels (integers >= 0)"))
        if columns.target == "sequence":
            flat = value.reshape(-1)
            if flat.size != 1:
                raise ValueError(f"{label_where}: expected one class label, got {label!r}")
            labels.append(_integers(flat, label_where, "one class label", ndim=1)[0])
        else:
            steps = _integers(value, label_where, "a class label a step", ndim=1)
            if len(steps) != len(sequence):
                raise ValueError(
                    f"{label_where}: {len(steps)} labels for a sequence of {len(sequence)} steps"
                )
            labels.append(steps)
        inputs.append(sequence)
    if not inputs:
        raise ValueError(f"{source}: no rows")
    if columns.target == "sequence":
        return Table(inputs, np.asarray(labels, dtype=np.int64), source)
    return Table(inputs, labels, source)


def _read_csv(path: Path, columns: Columns) -> Table:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path}: not a readable CSV file ({' '.join(str(error).split())})"
        ) from None
    for column in (columns.input_column, columns.label_column):
        if column not in frame.columns:
            raise ValueError(
                f"{path}: no column {column!r}; its columns: {', '.join(map(str, frame.columns))}"
            )
    cells = zip(frame[columns.input_column], frame[columns.label_column], strict=True)
    return _from_cells(cells, columns, str(path))


# ---------------------------------------------------------------------- NumPy arrays
def _load_array(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"{what}={path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"{what}={path}: cannot load it without unpickling ({error})") from None
    except OSError as error:
        raise ValueError(f"{what}={path}: not a NumPy file ({error})") from None


def _npy_columns(mapping: Mapping[str, Any], what: str) -> dict[str, np.ndarray]:
    return {str(k): _load_array(Path(str(v)), f"{what}.{k}") for k, v in mapping.items()}


def _npz_columns(path: Path) -> dict[str, np.ndarray]:
    archive = _load_array(path, "data_files")
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not a .npz archive of named arrays")
    with archive:
        try:
            return {name: archive[name] for name in archive.files}
        except ValueError as error:
            raise ValueError(f"{path}: cannot load it without unpickling ({error})") from None


def _from_arrays(arrays: dict[str, np.ndarray], columns: Columns, source: str) -> Table:
    for column in (columns.input_column, columns.label_column):
        if column not in arrays:
            raise ValueError(f"{source}: no array {column!r}; it holds {', '.join(arrays)}")
    inputs, labels = arrays[columns.input_column], arrays[columns.label_column]
    if inputs.ndim not in (2, 3) or len(labels) != len(inputs):
        raise ValueError(
            f"{source}: {columns.input_column} must be (N, T) or (N, T, features) and "
            f"{columns.label_column} have N rows; got {inputs.shape} and {labels.shape}"
        )
    count, longest = inputs.shape[:2]
    lengths = arrays.get(columns.length_column)
    if lengths is None:
        lengths = np.full(count, longest)
    lengths = _integers(np.asarray(lengths), f"{source}, {columns.length_column}", "lengths", 1)
    if len(lengths) != count or lengths.min() < 1 or lengths.max() > longest:
        raise ValueError(f"{source}: {columns.length_column} must be N lengths in 1..{longest}")
    cells = (
        (inputs[i, : lengths[i]], labels[i] if labels.ndim == 1 else labels[i, : lengths[i]])
        for i in range(count)
    )
    return _from_cells(cells, columns, source)


# ---------------------------------------------------------------------- Hugging Face
def _parquet(path: Path) -> Any:
    load_dataset = hf_load_dataset()
    try:
        return load_dataset("parquet", data_files=str(path), split="train")
    except Exception as error:  # pyarrow's and datasets' own errors
        raise ValueError(f"{path}: not a readable Parquet file ({_first(error)})") from None


def load_hf(name: str) -> dict[str, Any]:
    """The splits of a Hugging Face dataset: a ``save_to_disk`` folder, else a Hub name (or
    a loading script's folder) through ``datasets.load_dataset`` (downloaded once, cached)."""
    load_dataset = hf_load_dataset()
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        if Path(name).is_dir() and any(
            (Path(name) / marker).is_file() for marker in ("dataset_dict.json", "state.json")
        ):
            data = load_from_disk(name)
        else:
            data = load_dataset(name)
    except Exception as error:
        raise ValueError(f"hf_dataset={name}: cannot load it ({_first(error)})") from None
    if isinstance(data, Dataset):
        return {"train": data}
    if isinstance(data, DatasetDict):
        return dict(data)
    raise ValueError(f"hf_dataset={name}: not a dataset of splits")


def _first(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] + ("..." if len(text) > 200 else "")
