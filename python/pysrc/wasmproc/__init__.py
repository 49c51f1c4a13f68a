"""wasmproc for Python: ``multiprocessing.Pool``'s API, whose workers are
sandboxed WebAssembly instances with hard limits and exit statuses.

>>> import wasmproc
>>> module = wasmproc.load("tasks.wasm")
>>> module.run("square", 7)
49
>>> with wasmproc.Pool(module, processes=4, timeout=1.0, max_memory="64MiB") as pool:
...     pool.map("square", range(10))
[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]

Arguments and results cross as JSON-compatible values. A failed task
raises the ``TaskError`` subclass for its status.

With no module, the tasks are Python functions, run by a sandboxed CPython
(``pip install 'wasmproc[functions]'``):

>>> with wasmproc.Pool(processes=4) as pool:
...     pool.map(lambda x: x * x, range(10))
[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
"""

from ._errors import (
    BadInvocation,
    CannotRun,
    Cancelled,
    Exited,
    FuelExhausted,
    MemoryExceeded,
    NotFound,
    TaskError,
    TimedOut,
    Trapped,
    WorkerLost,
)
from ._errors import error_for as _error_for
from ._errors import task_error as _task_error
from ._functions import CannotShip
from ._native import Outcome
from ._pool import AsyncResult, IMapIterator, MapResult, Module, Pool, load
from ._queue import Queue
from ._pipe import Connection, Pipe
from ._sync import Barrier, Event, Lock, Semaphore, SharedRegion

__all__ = [
    "AsyncResult",
    "BadInvocation",
    "Barrier",
    "CannotRun",
    "CannotShip",
    "Cancelled",
    "Connection",
    "Event",
    "Exited",
    "FuelExhausted",
    "IMapIterator",
    "Lock",
    "MapResult",
    "MemoryExceeded",
    "Module",
    "NotFound",
    "Pipe",
    "Outcome",
    "Pool",
    "Queue",
    "Semaphore",
    "SharedRegion",
    "TaskError",
    "TimedOut",
    "Trapped",
    "WorkerLost",
    "load",
]
