"""Writing data files so that a failure never leaves a file that looks complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


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
        except BaseException:
            out.close()
            partial.unlink(missing_ok=True)
            raise
    os.replace(partial, target)
