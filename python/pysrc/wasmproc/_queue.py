"""``wasmproc.Queue``: ``multiprocessing.Queue``'s methods over the
library's queue, shared with a pool's tasks by name."""

from __future__ import annotations

import queue as _stdlib_queue
from typing import Any, Optional

from . import _native


class Queue:
    """A bounded FIFO of JSON-compatible values, shared with a pool's tasks
    by name: ``Pool(module, share={"jobs": q})``; a guest opens it with
    ``wasmproc_guest::queue("jobs")``. From Python it has
    ``multiprocessing.Queue``'s methods: ``put``/``get`` (with ``block`` and
    ``timeout``; ``queue.Full``/``queue.Empty`` as there), ``put_nowait``,
    ``get_nowait``, ``qsize``, ``empty``, ``full``, ``close``.

    ``maxsize=0`` means 65,536 values (the library's queues are always
    bounded). ``close()`` differs from ``multiprocessing``: it closes the
    queue for every side, so that tasks taking from it see the end (their
    ``get`` fails ``Closed`` once it is drained); a ``put`` after it raises
    ``ValueError``, and so does a ``get`` once it is drained.
    """

    def __init__(self, maxsize: int = 0) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be 0 (no set bound) or more")
        self._maxsize = maxsize
        self._native = _native.Queue(maxsize)

    def put(self, obj: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Puts ``obj``, waiting while the queue is full (at most ``timeout``
        seconds, and not at all unless ``block``); ``queue.Full`` if it
        stayed full."""
        if not self._native.put(obj, timeout if block else 0.0):
            raise _stdlib_queue.Full

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Takes the next value, waiting while the queue is empty (at most
        ``timeout`` seconds, and not at all unless ``block``);
        ``queue.Empty`` if none came."""
        got, value = self._native.get(timeout if block else 0.0)
        if not got:
            raise _stdlib_queue.Empty
        return value

    def put_nowait(self, obj: Any) -> None:
        self.put(obj, block=False)

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def qsize(self) -> int:
        return self._native.qsize()

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        return self._maxsize > 0 and self.qsize() >= self._maxsize

    def close(self) -> None:
        """Closes the queue for every side (see the class docs)."""
        self._native.close()

    def join_thread(self) -> None:
        """Nothing to wait for (``multiprocessing`` compatibility): puts go
        straight into the queue, with no feeder thread."""

    def cancel_join_thread(self) -> None:
        """Nothing to cancel (``multiprocessing`` compatibility): there is no
        feeder thread, so exiting never waits on one, and nothing put is
        lost."""

    def __repr__(self) -> str:
        return f"<wasmproc.Queue qsize={self.qsize()} maxsize={self._maxsize}>"
