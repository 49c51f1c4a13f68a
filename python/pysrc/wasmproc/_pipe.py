"""``wasmproc.Pipe()``: two ends of a two-way pipe of JSON values; give
one to a pool's tasks with ``Pool(module, pipe=end)``."""

from __future__ import annotations

from typing import Any, List, Tuple

from . import _native


class Connection:
    """One end of a pipe, with ``multiprocessing.connection.Connection``'s
    ``send``, ``recv``, ``poll`` and ``close``. Values are JSON-compatible.
    A task opens the other end with ``wasmproc_guest::pipe()``."""

    def __init__(self, native: Any) -> None:
        self._native = native
        # What `poll` received ahead of `recv`.
        self._ahead: List[Any] = []
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise OSError("handle is closed")

    def send(self, obj: Any) -> None:
        """Sends ``obj``, waiting while the pipe is full."""
        self._check_open()
        self._native.send(obj)

    def recv(self) -> Any:
        """The next value, waiting for it; ``EOFError`` once the other end
        is gone and nothing is left."""
        self._check_open()
        if self._ahead:
            return self._ahead.pop(0)
        _, value = self._native.recv(None)
        return value

    def poll(self, timeout: float = 0.0) -> bool:
        """Whether a value can be received, waiting up to ``timeout``
        seconds (``None``: as long as it takes)."""
        self._check_open()
        if self._ahead:
            return True
        try:
            got, value = self._native.recv(timeout)
        except EOFError:
            return True  # recv() will raise it again
        if got:
            self._ahead.append(value)
        return bool(got)

    def close(self) -> None:
        """Closes this end (the other end's ``recv`` then sees the end once
        every holder of this end, a pool included, has let it go)."""
        self._closed = True
        self._native = None

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def Pipe(duplex: bool = True) -> Tuple[Connection, Connection]:
    """Two connected ends; both send and receive (``duplex=False`` is not
    supported: the library's pipes are two-way)."""
    if not duplex:
        raise ValueError("wasmproc pipes are two-way: use Pipe() (duplex=True)")
    here, there = _native.pipe()
    return Connection(here), Connection(there)
