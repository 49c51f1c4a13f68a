"""``wasmproc.SharedRegion``, ``Lock`` and ``Event``: shared with a pool's
tasks by name (``Pool(module, share={"counts": region, "lock": lock})``),
used from Python with ``multiprocessing``'s methods."""

from __future__ import annotations

from typing import Optional

from . import _native


class SharedRegion:
    """OS shared memory of ``size`` bytes, zeroed, that tasks open with
    ``wasmproc_guest::region("name")`` (mapped into worker processes too):
    ``multiprocessing.shared_memory`` and ``Value``/``Array`` in one.
    Offsets of the u64 operations must be 8-aligned."""

    def __init__(self, size: int) -> None:
        self._native = _native.SharedRegion(size)

    @property
    def size(self) -> int:
        return self._native.size

    def read(self, offset: int = 0, length: Optional[int] = None) -> bytes:
        """``length`` bytes from ``offset`` (by default, to the end)."""
        return self._native.read(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        self._native.write(offset, bytes(data))

    def load_u64(self, offset: int) -> int:
        """The u64 at ``offset``, read atomically."""
        return self._native.load_u64(offset)

    def store_u64(self, offset: int, value: int) -> None:
        self._native.store_u64(offset, value)

    def add_u64(self, offset: int, value: int) -> int:
        """Adds atomically; the value before."""
        return self._native.add_u64(offset, value)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"<wasmproc.SharedRegion size={self.size}>"


class Lock:
    """A lock that tasks take by name (``wasmproc_guest::sync::Lock::open``);
    ``multiprocessing.Lock``'s methods. It is robust: a task that ends
    holding it (a trap, a timeout) does not leave it taken for good."""

    def __init__(self) -> None:
        self._native = _native.Lock()

    def acquire(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes it, waiting up to ``timeout`` seconds (not at all unless
        ``block``); whether it was taken."""
        return self._native.acquire(timeout if block else 0.0)

    def release(self) -> None:
        """Releases it; ``ValueError`` if this process does not hold it."""
        self._native.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class Event:
    """An event that tasks open by name; ``multiprocessing.Event``'s
    methods."""

    def __init__(self) -> None:
        self._native = _native.Event()

    def set(self) -> None:
        self._native.set()

    def clear(self) -> None:
        self._native.clear()

    def is_set(self) -> bool:
        return self._native.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits until it is set, up to ``timeout`` seconds; whether it is."""
        return self._native.wait(timeout)


class Semaphore:
    """A counting semaphore that tasks open by name
    (``wasmproc_guest::sync::Semaphore::open``); ``multiprocessing``'s
    methods."""

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._native = _native.Semaphore(value)

    def acquire(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes a permit, waiting up to ``timeout`` seconds (not at all
        unless ``block``); whether it got one."""
        return self._native.acquire(timeout if block else 0.0)

    def release(self) -> None:
        self._native.release()

    def get_value(self) -> int:
        """The permits free now."""
        return self._native.available()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class Barrier:
    """A barrier for ``parties`` waiters, here and in tasks
    (``wasmproc_guest::sync::Barrier::open``). Unlike ``threading``'s,
    ``wait`` returns ``True`` for the last to arrive and ``False`` for the
    others; a ``timeout`` that passes raises ``threading.BrokenBarrierError``
    and breaks the round for the others too. Ctrl-C is seen only once the
    wait returns."""

    def __init__(self, parties: int) -> None:
        if parties < 1:
            raise ValueError("a barrier needs at least 1 party")
        self.parties = parties
        self._native = _native.Barrier(parties)

    def wait(self, timeout: Optional[float] = None) -> bool:
        last = self._native.wait(timeout)
        if last is None:
            import threading

            raise threading.BrokenBarrierError
        return last
