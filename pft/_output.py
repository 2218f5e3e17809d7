"""Writing results safely: every output is checked before any work and written atomically.

An output is first written to a temporary file in the same folder, flushed to disk, then
renamed over the target (``os.replace``, atomic on POSIX and Windows): an interrupted or failed
write leaves the old file (or none), never half a file. An output path that is one of the
inputs, sits under a regular file, or is a folder is refused before anything is written.

Private: :mod:`pft.cli` and :meth:`pft._results.JsonResult.to_json` use it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Iterable, Iterator

from pft.errors import InputError

__all__ = ["check_output", "atomic_write", "atomic_path", "plot_formats"]


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _strip_key(p: str) -> str:
    # an input "file.safetensors:NAME" is the file "file.safetensors"
    for suf in (".npy:", ".safetensors:", ".pt:", ".pth:"):
        i = p.lower().rfind(suf)
        if i >= 0 and not os.path.exists(p):
            return p[: i + len(suf) - 1]
    return p


def plot_formats() -> tuple[str, ...]:
    """File extensions matplotlib can write (``png``, ``pdf``, ``svg``, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted(FigureCanvasBase.get_supported_filetypes()))


def check_output(
    path: Any,
    *,
    name: str,
    inputs: Iterable[Any] = (),
    formats: Iterable[str] | None = None,
    folder: bool = False,
) -> str:
    """Refuse an output path before any work is done; return it as a string.

    Parameters
    ----------
    path : str or PathLike
    name : str
        The argument named in the message (``--json``).
    inputs : iterable of paths
        Files the command reads; the output may not be one of them (``FILE:NAME`` counts as FILE).
    formats : iterable of str, optional
        Allowed extensions without the dot (a plot's); checked here, before anything is written.
    folder : bool
        ``path`` is a folder to create (or reuse) rather than a file.

    Examples
    --------
    >>> import os, pathlib, tempfile
    >>> d = tempfile.mkdtemp()
    >>> check_output(os.path.join(d, "r.json"), name="--json") == os.path.join(d, "r.json")
    True
    >>> _ = pathlib.Path(d, "a.npy").write_bytes(b"")
    >>> check_output(os.path.join(d, "a.npy"), name="--json", inputs=[os.path.join(d, "a.npy")])
    Traceback (most recent call last):
    ...
    pft.errors.InputError: `--json` ... is also an input; pft never writes over what it reads.
    """
    p = os.fspath(path)
    if not p:
        raise InputError(f"`{name}` is an empty path.")
    if folder:
        if os.path.exists(p) and not os.path.isdir(p):
            raise InputError(f"`{name}` {p!r} exists and is not a folder.")
        parent = os.path.dirname(os.path.abspath(p))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise InputError(f"`{name}` {p!r} lies under {parent!r}, which is a file, not a folder.")
        return p
    if os.path.isdir(p):
        raise InputError(f"`{name}` {p!r} is a folder; give a file name.")
    parent = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(parent):
        up = parent
        while not os.path.exists(up):
            up = os.path.dirname(up)
        if os.path.isdir(up):
            raise InputError(f"`{name}` {p!r}: folder {parent!r} does not exist; create it first.")
        raise InputError(f"`{name}` {p!r} lies under {up!r}, which is a file, not a folder.")
    for other in inputs:
        if other is None:
            continue
        q = _strip_key(os.fspath(other))
        if os.path.exists(q) and os.path.exists(p) and _same_file(p, q) or (
            os.path.realpath(p) == os.path.realpath(q)
        ):
            raise InputError(f"`{name}` {p!r} is also an input; pft never writes over what it reads.")
    if formats is not None:
        ext = os.path.splitext(p)[1].lower().lstrip(".")
        allowed = tuple(formats)
        if ext not in allowed:
            raise InputError(
                f"`{name}` {p!r}: unknown figure format {('.' + ext) if ext else '(no extension)'!r}; "
                f"use one of {', '.join(allowed)}."
            )
    return p


@contextlib.contextmanager
def atomic_path(path: Any) -> Iterator[str]:
    """Yield a temporary path next to ``path`` (same extension); on success it replaces
    ``path`` atomically, on failure it is removed and ``path`` is untouched.

    Examples
    --------
    >>> import os, pathlib, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "out.txt")
    >>> with atomic_path(p) as tmp:
    ...     _ = pathlib.Path(tmp).write_text("hello")
    >>> pathlib.Path(p).read_text(), sorted(os.listdir(os.path.dirname(p)))
    ('hello', ['out.txt'])
    """
    p = os.path.abspath(os.fspath(path))
    folder, base = os.path.split(p)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=os.path.splitext(base)[1] or ".tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Any, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    Examples
    --------
    >>> import os, pathlib, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "r.json")
    >>> atomic_write(p, '{"a": 1}')
    >>> pathlib.Path(p).read_text()
    '{"a": 1}'
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
