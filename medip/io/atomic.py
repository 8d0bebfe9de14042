"""Atomic, non-destructive file writes: a temporary file in the target folder, then a rename."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from ..errors import OutputError

_FIXES = {errno.ENOSPC: "free disk space or write elsewhere",
          errno.EDQUOT: "free space in your quota or write elsewhere",
          errno.EROFS: "choose an output on a writable file system",
          errno.EACCES: "choose an output folder you may write to",
          errno.EPERM: "choose an output folder you may write to"}


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a failed write of ``path`` (disk full, read-only, forbidden) into one
    :class:`~medip.errors.OutputError` line naming the file and the fix."""
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        if err.errno not in _FIXES:
            raise
        raise OutputError(f"{path}: cannot write it ({os.strerror(err.errno)}); "
                          f"{_FIXES[err.errno]}") from None


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False
                 ) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path`` and rename it into place.

    Refuses to replace an existing file unless ``overwrite``; a failed write leaves nothing behind.
    The temporary name keeps ``path``'s suffixes, so writers that pick a format from them work.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.",
                                   suffix="".join(path.suffixes) or ".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            write(tmp_path)
            os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs are shared
            os.replace(tmp_path, path)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
    return path


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
