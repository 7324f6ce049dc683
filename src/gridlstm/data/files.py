"""Writing files so that a failure never leaves a file that looks complete: the one atomic
writer of the package (data downloads, translations, run records)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from filelock import FileLock


@contextmanager
def partial_file(target: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """Yield a temporary file next to ``target`` (and its path). On success it is renamed to
    ``target``; on any exception it is deleted. The body may raise to reject the content
    (a checksum mismatch, say) after writing it."""
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
        partial = Path(out.name)
        try:
            yield out, partial
            out.flush()
            os.fsync(out.fileno())  # the data is on disk before the rename makes it visible
        except BaseException:
            out.close()
            partial.unlink(missing_ok=True)
            raise
    # NamedTemporaryFile makes the file 0600; give it the permissions any new file gets, so
    # colleagues who share a data directory can read it.
    os.chmod(partial, 0o666 & ~current_umask())
    os.replace(partial, target)


def write_atomic(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` in one step: a kill mid-write leaves the old file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with partial_file(target) as (out, _):
        out.write(text.encode("utf-8"))


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def hf_load_dataset():
    """Hugging Face ``datasets.load_dataset``; the package is an extra (``[hf]``) since only
    parquet / JSON-lines sources need it."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise ValueError(
            "reading parquet / JSON-lines files needs Hugging Face datasets: "
            'pip install -e ".[hf]" (or pip install datasets)'
        ) from None
    return load_dataset


@contextmanager
def one_fetcher(directory: Path, name: str) -> Iterator[None]:
    """One process at a time fetches or unpacks ``name`` into ``directory``.

    Ranks started together (srun, torchrun; several nodes on a shared file system) would
    otherwise all download the same file. The data is needed before the Trainer exists (the
    model's vocabulary and sizes come from it), so Lightning's ``prepare_data`` comes too
    late; a lock file does the same job: the first process fetches, the others wait and then
    find the finished, verified file. Callers check for the file before taking the lock, so a
    read-only data directory that already holds it needs no lock.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / f".{name}.lock")):
        yield
