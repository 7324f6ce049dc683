"""enwik8 (the Hutter Prize's first 10^8 bytes of English Wikipedia), ``task=enwik8``.

The file comes from the official zip on Matt Mahoney's page and is verified against its
published md5 before use. The standard split is contiguous 90M / 5M / 5M bytes (docs/protocols.md
section 1, [ours; common convention]). Downloads land in temporary files that are renamed into place
only once verified, so an interrupted or corrupt download never leaves a file that looks
valid. The Hugging Face hub's ``enwik8`` is a loading script that ``datasets`` >= 4 refuses,
so it is not used.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from gridlstm.data.files import one_fetcher, partial_file
from gridlstm.data.text import TextDataModule

log = logging.getLogger(__name__)

URL = "http://mattmahoney.net/dc/enwik8.zip"
MD5 = "a1fa5ffddb56f4953e226637dabbb36a"  # of the 100,000,000-byte member, as published
SIZE = 100_000_000
MEMBER = "enwik8"


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def where_to_put_it(target: Path, md5: str | None) -> str:
    target = target.absolute()
    checksum = f", md5 {md5}" if md5 else ""
    return (
        f"put the file at {target} (enwik8 from {URL}, 100,000,000 bytes{checksum}) or the zip "
        f"at {target.with_suffix('.zip')}, or point task.datamodule.data_dir at a directory "
        "holding one"
    )


def extract_verified(archive: Path, target: Path, md5: str | None) -> None:
    """Extract ``MEMBER`` from ``archive`` to ``target`` if its md5 matches; else ValueError
    and nothing left behind."""
    try:
        with (
            zipfile.ZipFile(archive) as zipped,
            zipped.open(MEMBER) as member,
            partial_file(target) as (out, partial),
        ):
            shutil.copyfileobj(member, out, 1 << 22)
            out.flush()
            found = md5sum(partial)
            if md5 and found != md5:
                raise ValueError(
                    f"the enwik8 in {archive} has md5 {found}, expected {md5}: the file is "
                    f"corrupt or not enwik8; delete it and retry, or "
                    f"{where_to_put_it(target, md5)}"
                )
    except (zipfile.BadZipFile, KeyError) as error:
        raise ValueError(f"{archive} is not the enwik8 zip ({error})") from None


def write_synthetic(root: str | Path, size: int = 4_000_000, seed: int = 0) -> Path:
    """``size`` random bytes as ``root/enwik8`` (returned): the file a data module reads with
    ``md5=null``.

    Why: a training step's time depends on the shapes only (byte vocabulary, batch, BPTT), so
    a machine without the 100 MB file can still time the enwik8 preset's models
    (``scripts/step_speed.py synthetic_enwik8=1``). Never for bits/char: the bytes are noise.
    """
    import numpy as np

    target = Path(root) / MEMBER
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return target


def download(url: str, archive: Path) -> None:
    """Fetch ``url`` to ``archive`` through a temporary file (renamed when complete)."""
    log.info("downloading %s to %s", url, archive)
    with urllib.request.urlopen(url, timeout=60) as response, partial_file(archive) as (out, _):
        shutil.copyfileobj(response, out, 1 << 22)


class Enwik8DataModule(TextDataModule):
    """enwik8 bytes, split 90M / 5M / 5M, fetched and verified on first use.

    Args:
        data_dir: holds ``enwik8`` (or ``enwik8.zip``); downloads land here.
        download: fetch the zip from ``url`` when neither file is present.
        url, md5: where the zip comes from and the md5 of the extracted file (``md5=None``
            skips verification, for a modified corpus).
        Other arguments: see `TextDataModule` (``vocab="byte"``, the standard split).
    """

    def __init__(
        self,
        data_dir: str | Path = "data",
        download: bool = True,
        url: str = URL,
        md5: str | None = MD5,
        split: list[float] | tuple[float, ...] = (0.9, 0.05, 0.05),
        **kwargs: Any,
    ) -> None:
        self.data_dir, self.download, self.url, self.md5 = Path(data_dir), download, url, md5
        super().__init__(path=self.data_dir / MEMBER, split=split, **kwargs)

    def resolve(self) -> Path:
        target = self.path
        if target.is_file() or not (self.download or target.with_suffix(".zip").is_file()):
            return self._fetch()  # nothing to fetch or unpack: no lock, no directory made
        with one_fetcher(target.parent, MEMBER):
            return self._fetch()

    def _fetch(self) -> Path:
        target, archive = self.path, self.path.with_suffix(".zip")
        if target.is_file():
            found = md5sum(target) if self.md5 else None
            if found and found != self.md5:  # the user's file: report it, never delete it
                raise ValueError(
                    f"{target} has md5 {found}, expected {self.md5}: it is not the Hutter "
                    "enwik8 (set task.datamodule.md5=null to use a modified copy on purpose)"
                )
            return target
        if archive.is_file():
            extract_verified(archive, target, self.md5)
            return target
        if not self.download:
            raise ValueError(
                f"enwik8 not found and task.datamodule.download=false: "
                f"{where_to_put_it(target, self.md5)}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            download(self.url, archive)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise ValueError(
                f"enwik8 not found and downloading {self.url} failed ({reason}): "
                f"{where_to_put_it(target, self.md5)}"
            ) from None
        try:
            extract_verified(archive, target, self.md5)
        except ValueError:
            archive.unlink(missing_ok=True)  # a bad download: do not keep it
            raise
        return target
