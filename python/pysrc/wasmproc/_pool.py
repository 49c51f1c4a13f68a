"""``load``, ``Module`` and ``Pool``: ``multiprocessing.Pool``'s API over
wasmproc's sandboxed Wasm workers."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import time
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from . import _native
from ._compiled import COMPILE, CompiledFunctions
from ._errors import CannotRun, TaskError, task_error
from ._functions import call_args, ship, ship_initializer
from ._queue import Queue
from ._pipe import Connection
from ._sync import Barrier, Event, Lock, Semaphore, SharedRegion

Size = Union[int, str]
"""A size: bytes as an int, or text such as ``"64MiB"``."""


class Module:
    """A loaded Wasm module: its compiled code is cached on disk, so the
    next program that loads it reads the cache instead of compiling."""

    def __init__(self, native: _native.Module) -> None:
        self._native = native

    @property
    def name(self) -> str:
        """The module's name (its file name)."""
        return self._native.name

    @property
    def tasks(self) -> List[str]:
        """The typed tasks it exports (``#[wasmproc_guest::task]``)."""
        return self._native.tasks

    def run(
        self,
        task: str,
        *args: Any,
        timeout: Optional[float] = None,
        max_memory: Optional[Size] = None,
        fuel: Optional[int] = None,
        dirs: Optional[Mapping[Union[str, "os.PathLike[str]"], str]] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> Any:
        """Runs ``task`` once, here, in a fresh sandbox, and returns its
        result; raises the ``TaskError`` subclass for its status when it
        fails. ``args`` are JSON-compatible values: none is ``null``, one is
        the task's argument, several are its parameters in order."""
        outcome = self._native.run(
            task,
            args,
            timeout=timeout,
            max_memory=max_memory,
            fuel=fuel,
            dirs=_dirs(dirs),
            env=dict(env) if env else None,
        )
        if not outcome.success:
            raise task_error(outcome, task)
        return outcome.result

    def __repr__(self) -> str:
        return f"<wasmproc.Module {self.name!r} tasks={self.tasks!r}>"


def load(path: Union[str, "os.PathLike[str]"]) -> Module:
    """Loads the module at ``path`` (compiled once, then cached on disk).
    Raises ``NotFound`` for a missing file and ``CannotRun`` for a file
    that is no valid module."""
    return Module(_native.load(os.fspath(path)))


def _dirs(
    dirs: Optional[Mapping[Union[str, "os.PathLike[str]"], str]],
) -> Optional[dict]:  # type: ignore[type-arg]
    if not dirs:
        return None
    return {os.path.abspath(os.fspath(host)): guest for host, guest in dirs.items()}


Shareable = Union[Queue, SharedRegion, Lock, Event, Semaphore, Barrier]
"""What ``share=`` grants tasks by name."""


def _shared(share: Optional[Mapping[str, Shareable]]) -> Optional[dict]:  # type: ignore[type-arg]
    if not share:
        return None
    for name, obj in share.items():
        if not isinstance(obj, (Queue, SharedRegion, Lock, Event, Semaphore, Barrier)):
            raise TypeError(
                f"share={{{name!r}: ...}}: a wasmproc.Queue, SharedRegion, Lock, Event, Semaphore "
                f"or Barrier can be shared, not {type(obj).__name__}"
            )
    return {name: obj._native for name, obj in share.items()}


def _granted_to_functions(
    share: Optional[Mapping[str, Shareable]], pipe: Optional[Connection]
) -> Dict[int, Dict[str, Any]]:
    """How Python functions reach what the pool shares (see ``ship``): each
    object by its name, the pipe's end as the task's end."""
    kinds = {
        Queue: "queue",
        SharedRegion: "region",
        Lock: "lock",
        Event: "event",
        Semaphore: "semaphore",
        Barrier: "barrier",
    }
    granted: Dict[int, Dict[str, Any]] = {}
    for name, obj in (share or {}).items():
        kind = kinds.get(type(obj))
        if kind is None:
            raise TypeError(
                f"share={{{name!r}: ...}}: a wasmproc.Queue, SharedRegion, Lock, Event, Semaphore "
                f"or Barrier can be shared, not {type(obj).__name__}"
            )
        granted[id(obj)] = {kind: name}
    if pipe is not None:
        granted[id(pipe)] = {"pipe": True}
    return granted


def _pipe_end(pipe: Optional[Connection]) -> Any:
    if pipe is None:
        return None
    if not isinstance(pipe, Connection) or pipe.closed:
        raise TypeError("pipe= takes an open end of wasmproc.Pipe()")
    return pipe._native


def _worker_command() -> List[str]:
    """How a process pool starts a worker: this Python, running
    ``wasmproc._worker``. ``-P`` (3.11+) keeps the current directory off
    ``sys.path``, so that a local ``wasmproc`` directory cannot stand in."""
    safe_path = ["-P"] if sys.version_info >= (3, 11) else []
    return [sys.executable, *safe_path, "-m", "wasmproc._worker"]


_RUN, _CLOSED, _TERMINATED = "RUN", "CLOSE", "TERMINATE"

Task = Union[str, Callable[..., Any]]
"""A task: the name of one of the module's tasks (``Pool(module)``), or a
Python function (``Pool()`` with no module)."""

# The runner component's export that calls a shipped Python function.
_CALL = "call"
# How the library words an error result of a component's export.
_ERROR_RESULT = f"`{_CALL}` returned an error: "


class _Kind:
    """How a pool's tasks go in and come back: by name with JSON values
    (a module's tasks), or as Python functions through the runner."""

    python = False

    def result(self, outcome: Any) -> Any:
        return outcome.result

    def error(self, outcome: Any, task: str, index: Optional[int] = None) -> TaskError:
        return task_error(outcome, task, index)


class _PythonKind(_Kind):
    python = True

    def result(self, outcome: Any) -> Any:
        # The runner returns the function's result as JSON text.
        return json.loads(outcome.result)

    def error(self, outcome: Any, task: str, index: Optional[int] = None) -> TaskError:
        error = task_error(outcome, task, index)
        if error.message.startswith(_ERROR_RESULT):
            # The remote traceback, as multiprocessing's RemoteTraceback.
            error.message = error.message[len(_ERROR_RESULT) :]
            error.args = (error.message,)
        return error


_BY_NAME = _Kind()
_PYTHON = _PythonKind()

_log = logging.getLogger("wasmproc")

# The initializers (their payloads) whose snapshot the library refused in
# this process: a later pool runs them in each task at once, rather than
# compiling the interpreter again to be refused again.
_UNSNAPSHOT: Set[str] = set()

# The runner's export that runs a pool's initializer once, before the
# pool's snapshot of it (``_sandbox/wit/runner.wit``).
_RUNNER_INIT = "init"
# The runner's export that says whether the files the initializer read have
# changed since its snapshot was made.
_INIT_FILES_CHANGED = "init-files-changed"
# How many times a pool start makes its snapshot again for files that keep
# changing (a file written while the initializer reads it, say).
_RENEWALS = 3


def _compiler(runner: Module) -> Callable[[str], str]:
    """Compiles functions' sources in a fresh sandbox of the runner's, on
    the calling thread (not in the pool, whose workers may all wait on
    this thread), granted nothing."""

    def compile(sources: str) -> str:
        return str(runner.run(COMPILE, sources, timeout=60))

    return compile


class Pool:
    """A pool of sandboxed Wasm workers with ``multiprocessing.Pool``'s
    methods. Each task runs in a fresh instance of ``module``.

    ``Pool(module, processes=4)`` (a loaded module, or a module's path, as
    the first argument means ``module=``): tasks are the module's tasks, by
    name. ``Pool()``
    with no module: tasks are Python functions (``def``, ``lambda``,
    closures, ``functools.partial``), each call run by a sandboxed CPython
    (the runner component, built once with componentize-py: the
    ``functions`` extra); a function crosses as its source text and the
    plain data it captures, see ``wasmproc.CannotShip``.

    ``processes``: how many tasks run at once (default: the CPUs).
    ``initializer``: with a module, the name of one of its initializers
    (``#[wasmproc_guest::init]``), run once with ``initargs``: every task
    starts from the snapshot it leaves. With Python functions, a function
    run with ``initargs`` once, when the pool starts: the sandbox's state
    after it is snapshot (and cached on disk, by the initializer's source
    and data), and every task starts from that snapshot, its function
    seeing the globals the initializer set when both come from one module.
    It may read files the pool grants (``dirs``): when one it read has
    changed since its snapshot was made, the pool runs it again. One that
    uses an object the pool shares runs in each task's sandbox before the
    task instead (a snapshot keeps memory, not the handles of a task). An
    initializer that raises fails ``Pool()`` with its traceback. ``maxtasksperchild`` is
    accepted and has nothing to do: every task gets a fresh instance.
    ``timeout`` (seconds), ``max_memory`` (bytes or ``"64MiB"``) and
    ``fuel`` limit every task. ``isolation``: ``"thread"`` (workers are
    threads of this process) or ``"process"`` (supervised worker processes,
    this Python running ``wasmproc._worker``). Python functions on two or
    more workers run about twice as many calls per second with
    ``"process"`` (each call's sandbox resets tens of megabytes of memory,
    and threads sharing one address space interrupt each other for it);
    a process pool takes ~0.2 s longer to start. ``dirs`` grants host
    directories at guest paths (``{"data": "/data"}``), ``env`` sets the
    guest's environment; ``share`` grants a ``Queue``, ``SharedRegion``,
    ``Lock``, ``Event``, ``Semaphore`` or ``Barrier`` by name (``{"jobs": q}``),
    ``pipe`` gives every task one end of a ``Pipe()``; nothing else is
    granted. A Python function uses what the pool shares as it is
    (captured, or a global): the sandbox gives it the same queue, region,
    lock, event, semaphore, barrier or pipe end. ``sys_path`` (Python functions): directories of the sandbox
    put first on its ``sys.path``, for pure-Python packages granted with
    ``dirs`` (``sys_path=["/site"], dirs={site_packages: "/site"}``);
    modules outside the standard library then go by name.
    """

    def __init__(
        self,
        *args: Any,
        processes: Optional[int] = None,
        initializer: Union[str, Callable[..., Any], None] = None,
        initargs: Sequence[Any] = (),
        maxtasksperchild: Optional[int] = None,
        module: Union[Module, str, "os.PathLike[str]", None] = None,
        timeout: Optional[float] = None,
        max_memory: Optional[Size] = None,
        fuel: Optional[int] = None,
        isolation: str = "thread",
        dirs: Optional[Mapping[Union[str, "os.PathLike[str]"], str]] = None,
        env: Optional[Mapping[str, str]] = None,
        share: Optional[Mapping[str, "Shareable"]] = None,
        pipe: Optional[Connection] = None,
        sys_path: Optional[Sequence[str]] = None,
    ) -> None:
        # multiprocessing's positional order (processes, initializer,
        # initargs, maxtasksperchild), after an optional module.
        positional = list(args)
        if positional and isinstance(positional[0], (Module, str, os.PathLike)):
            if module is not None:
                raise TypeError("Pool: the module is given twice (first argument and module=)")
            module = positional.pop(0)
        if isinstance(module, (str, os.PathLike)):
            # A path is the module at that path, as `wasmproc.load` reads it.
            module = load(module)
        elif module is not None and not isinstance(module, Module):
            raise TypeError(
                f"Pool: module= is a module (wasmproc.load(path)) or its path, not "
                f"{type(module).__name__}"
            )
        names = ("processes", "initializer", "initargs", "maxtasksperchild")
        if len(positional) > len(names):
            raise TypeError(f"Pool takes at most {len(names) + 1} positional arguments")
        keywords: Dict[str, Any] = {
            "processes": processes,
            "initializer": initializer,
            "initargs": initargs,
            "maxtasksperchild": maxtasksperchild,
        }
        defaults: Dict[str, Any] = {
            "processes": None, "initializer": None, "initargs": (), "maxtasksperchild": None
        }
        for name, value in zip(names, positional):
            if keywords[name] != defaults[name]:
                raise TypeError(f"Pool got multiple values for argument {name!r}")
            keywords[name] = value
        processes = keywords["processes"]
        if processes is not None and (
            isinstance(processes, bool) or not isinstance(processes, int)
        ):
            raise TypeError(
                f"Pool: processes is how many tasks run at once, an int, not "
                f"{type(processes).__name__} {processes!r}"
            )
        initializer = keywords["initializer"]
        initargs = keywords["initargs"]
        self._granted: Dict[int, Dict[str, Any]] = (
            _granted_to_functions(share, pipe) if module is None else {}
        )
        if module is not None and sys_path:
            raise TypeError("sys_path= is for Python functions (Pool() with no module)")
        self._sys_path: Sequence[str] = tuple(sys_path or ())
        # An initializer run in each task's sandbox before the task (one
        # that uses an object the pool shares).
        self._init: Optional[Tuple[Callable[..., Any], Tuple[Any, ...]]] = None
        # The payload of one run once, whose snapshot every task starts from.
        snapshot_init: Optional[str] = None
        if module is None and initializer is not None:
            if isinstance(initializer, str) or not callable(initializer):
                raise TypeError(
                    "initializer: with Python functions as tasks it is a function, run with "
                    "initargs once (or, when it uses an object the pool shares, in each "
                    "task's sandbox before the task)"
                )
            init = (initializer, tuple(initargs))
            payload, uses_shared = ship_initializer(init, self._sys_path, self._granted)
            # A snapshot keeps memory, not a task's handles to the pool's
            # shared objects: an initializer using one runs in each task.
            if uses_shared or payload in _UNSNAPSHOT:
                self._init = init
            else:
                snapshot_init = payload
            initializer = None
        if processes is not None and processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if isolation not in ("thread", "process"):
            raise ValueError(f"isolation={isolation!r}: choose 'thread' or 'process'")
        if initializer is not None and not isinstance(initializer, str):
            raise TypeError(
                "initializer: with a Wasm module it is the name of one of the module's "
                "initializers (#[wasmproc_guest::init]), run once with initargs"
            )
        self._kind = _BY_NAME if module is not None else _PYTHON
        self._compiled: Optional[CompiledFunctions] = None
        if module is None:
            from ._runner import runner

            module = runner()
            self._compiled = CompiledFunctions(_compiler(module))
        self._module = module
        self._state = _RUN
        start = functools.partial(
            _native.Pool,
            module._native,
            processes=processes,
            timeout=timeout,
            max_memory=max_memory,
            fuel=fuel,
            dirs=_dirs(dirs),
            env=dict(env) if env else None,
            worker_command=_worker_command() if isolation == "process" else None,
            share=_shared(share),
            pipe=_pipe_end(pipe),
        )
        if snapshot_init is None:
            self._native = start(
                initializer=initializer,
                initargs=tuple(initargs) if initializer is not None else None,
            )
            return
        try:
            self._native = start(initializer=_RUNNER_INIT, initargs=(snapshot_init,))
            if dirs:
                self._renew_if_files_changed(start, snapshot_init)
        except CannotRun as error:
            # The runner could not be snapshot after it (it left a file or
            # a socket open, say): it runs in each task instead.
            if "cannot snapshot" not in error.message:
                raise
            _log.warning(
                "wasmproc: the pool's initializer runs in each task's sandbox, not once: %s",
                error.message,
            )
            _UNSNAPSHOT.add(snapshot_init)
            self._init = (keywords["initializer"], tuple(initargs))
            self._native = start(initializer=None, initargs=None)

    def _renew_if_files_changed(self, start: Callable[..., Any], payload: str) -> None:
        """Makes the pool's snapshot again when a file its initializer read
        from a granted directory has changed since the snapshot was made
        (the cache keys a snapshot by the initializer, its arguments and
        the grants, not by what the files hold): under a key that adds the
        files' state now, so that the next program finds it cached. The
        snapshot made again is checked the same way (its initializer may
        have read other files), a few times at most."""
        for _ in range(_RENEWALS):
            outcome = self._native.submit(_INIT_FILES_CHANGED, ()).wait(None)
            assert outcome is not None  # no timeout: it waited for the end
            if not outcome.success:
                # The snapshot stands: the check is a courtesy, and a task
                # failing here (the pool's limits) fails the pool's tasks.
                _log.warning(
                    "wasmproc: could not check whether the files the pool's initializer "
                    "read have changed: %s",
                    task_error(outcome, _INIT_FILES_CHANGED),
                )
                return
            files = outcome.result
            if files is None:
                return
            _log.info("wasmproc: the files the pool's initializer read have changed: it runs again")
            self._native.terminate()
            self._native.join()
            renewed = json.dumps({**json.loads(payload), "files": files})
            self._native = start(initializer=_RUNNER_INIT, initargs=(renewed,))

    @property
    def processes(self) -> int:
        """How many workers the pool has."""
        return self._native.processes

    def _check_running(self) -> None:
        if self._state != _RUN:
            raise ValueError("Pool not running")

    def _task(self, task: Task, many: bool) -> Tuple[str, Optional[str], str]:
        """The native task's name, the shipped function (``None`` for a
        module's task) and the name errors show. ``many``: the function is
        about to run more than once (a map), so it is worth compiling now."""
        if not self._kind.python:
            if not isinstance(task, str):
                raise TypeError(
                    f"this pool runs the tasks of {self._module.name!r} by name (a str), not "
                    f"{type(task).__name__}: for Python functions, use wasmproc.Pool() with no module"
                )
            return task, None, task
        if isinstance(task, str):
            raise TypeError(
                f"task {task!r}: this pool (Pool() with no module) runs Python functions; "
                "a task name needs a module: wasmproc.Pool(wasmproc.load('tasks.wasm'))"
            )
        shown = getattr(task, "__qualname__", None) or getattr(
            getattr(task, "func", None), "__qualname__", repr(task)
        )
        payload = ship(task, self._init, self._sys_path, self._granted)
        assert self._compiled is not None
        return _CALL, self._compiled.attach(payload, now=many), str(shown)

    def map(self, task: Task, iterable: Iterable[Any], chunksize: Optional[int] = None) -> List[Any]:
        """Runs ``task`` on each item; the results, in input order. Raises
        the first failure (in input order) as its ``TaskError`` and cancels
        the tasks after it. ``chunksize``: how many tasks run in a row in one
        instance (default 1: a fresh sandbox per task)."""
        return self._map(task, iterable, chunksize, star=False)

    def starmap(
        self, task: Task, iterable: Iterable[Sequence[Any]], chunksize: Optional[int] = None
    ) -> List[Any]:
        """As ``map``, each item a tuple of the task's arguments."""
        return self._map(task, iterable, chunksize, star=True)

    def _items(self, payload: Optional[str], iterable: Iterable[Any], star: bool) -> Iterable[Any]:
        """A map's items as the native task takes them: a module's task
        takes them as they are; the runner takes the shipped function and
        each call's arguments (JSON text)."""
        if payload is None:
            return iterable
        return ((payload, call_args(item if star else (item,))) for item in iterable)

    def _map(self, task: Task, iterable: Iterable[Any], chunksize: Optional[int], star: bool) -> List[Any]:
        self._check_running()
        name, payload, shown = self._task(task, many=True)
        results, failed = self._native.map(
            name,
            self._items(payload, iterable, star),
            chunksize=chunksize or 1,
            star=star or payload is not None,
        )
        if failed is not None:
            index, outcome = failed
            raise self._kind.error(outcome, shown, index)
        assert results is not None
        if payload is not None:
            return [json.loads(result) for result in results]
        return results

    def imap(
        self,
        task: Task,
        iterable: Iterable[Any],
        chunksize: int = 1,
        *,
        return_exceptions: bool = False,
    ) -> "IMapIterator":
        """Runs ``task`` on each item, yielding results in input order as
        they come. A failed task raises its ``TaskError`` at its place (the
        iteration may go on after it); with ``return_exceptions=True`` the
        ``TaskError`` is yielded in its place instead.

        Leaving the iteration early (``break``, ``close()``, or dropping
        the iterator) cancels the tasks still queued or running: at once
        when nothing else runs in the pool, else when its next task ends."""
        return self._imap(task, iterable, chunksize, return_exceptions, ordered=True)

    def imap_unordered(
        self,
        task: Task,
        iterable: Iterable[Any],
        chunksize: int = 1,
        *,
        return_exceptions: bool = False,
    ) -> "IMapIterator":
        """As ``imap``, yielding results in the order the tasks end."""
        return self._imap(task, iterable, chunksize, return_exceptions, ordered=False)

    def _imap(
        self, task: Task, iterable: Iterable[Any], chunksize: int, return_exceptions: bool, ordered: bool
    ) -> "IMapIterator":
        self._check_running()
        name, payload, shown = self._task(task, many=True)
        outcomes = self._native.imap(
            name,
            self._items(payload, iterable, False),
            ordered=ordered,
            chunksize=chunksize or 1,
            star=payload is not None,
        )
        return IMapIterator(outcomes, shown, return_exceptions, self._kind)

    def apply(self, task: Task, args: Sequence[Any] = (), kwds: Optional[Mapping[str, Any]] = None) -> Any:
        """Runs ``task(*args)`` in the pool and returns its result."""
        return self.apply_async(task, args, kwds).get()

    def apply_async(
        self,
        task: Task,
        args: Sequence[Any] = (),
        kwds: Optional[Mapping[str, Any]] = None,
        callback: Optional[Callable[[Any], object]] = None,
        error_callback: Optional[Callable[[BaseException], object]] = None,
    ) -> "AsyncResult":
        """Queues ``task(*args, **kwds)``; its ``AsyncResult``. ``callback``
        gets the result, ``error_callback`` the ``TaskError``, on a pool
        thread. ``kwds``: Python functions only (Wasm tasks take positional
        arguments)."""
        self._check_running()
        name, payload, shown = self._task(task, many=False)
        if payload is None:
            if kwds:
                raise TypeError("Wasm tasks take positional arguments only (kwds must be empty)")
            handle = self._native.submit(name, tuple(args))
        else:
            handle = self._native.submit(name, (payload, call_args(args, kwds)))
        return AsyncResult(handle, shown, callback, error_callback, self._kind)

    def map_async(
        self,
        task: Task,
        iterable: Iterable[Any],
        chunksize: Optional[int] = None,
        callback: Optional[Callable[[Any], object]] = None,
        error_callback: Optional[Callable[[BaseException], object]] = None,
    ) -> "MapResult":
        """``map`` on a thread of its own; its ``MapResult``."""
        self._check_running()
        items = list(iterable)
        return MapResult(lambda: self._map(task, items, chunksize, False), callback, error_callback)

    def starmap_async(
        self,
        task: Task,
        iterable: Iterable[Sequence[Any]],
        chunksize: Optional[int] = None,
        callback: Optional[Callable[[Any], object]] = None,
        error_callback: Optional[Callable[[BaseException], object]] = None,
    ) -> "MapResult":
        """``starmap`` on a thread of its own; its ``MapResult``."""
        self._check_running()
        items = list(iterable)
        return MapResult(lambda: self._map(task, items, chunksize, True), callback, error_callback)

    def close(self) -> None:
        """Takes no new tasks; the queued ones still run."""
        if self._state == _RUN:
            self._state = _CLOSED
        self._native.close()

    def terminate(self) -> None:
        """Cancels every queued and running task (each ends ``Cancelled``)
        and stops the workers."""
        self._state = _TERMINATED
        self._native.terminate()

    def join(self) -> None:
        """Waits for the workers to end; after ``close`` or ``terminate``."""
        if self._state == _RUN:
            raise ValueError("Pool is still running")
        self._native.join()

    def __enter__(self) -> "Pool":
        self._check_running()
        return self

    def __exit__(self, *exc: object) -> None:
        # As multiprocessing.Pool: leaving the block terminates.
        self.terminate()

    def __repr__(self) -> str:
        tasks = "python functions" if self._kind.python else f"module={self._module.name!r}"
        return f"<wasmproc.Pool state={self._state} processes={self.processes} {tasks}>"


class IMapIterator(Iterator[Any]):
    """What ``imap`` and ``imap_unordered`` return. Unlike a generator, it
    goes on after raising a task's error, as ``multiprocessing``'s does.
    Dropping it, or ``close()``, cancels the tasks still in flight (see
    ``Pool.imap``)."""

    def __init__(self, outcomes: Any, task: str, return_exceptions: bool, kind: _Kind) -> None:
        self._outcomes = outcomes
        self._task = task
        self._return_exceptions = return_exceptions
        self._kind = kind

    def __iter__(self) -> "IMapIterator":
        return self

    def __next__(self) -> Any:
        index, outcome = next(self._outcomes)
        return self._deliver(index, outcome)

    def next(self, timeout: Optional[float] = None) -> Any:
        """The next result, as ``next(it)``; with ``timeout``,
        ``multiprocessing.TimeoutError`` when none came within that many
        seconds (the map goes on), as ``multiprocessing``'s iterator."""
        if timeout is None:
            return self.__next__()
        got = self._outcomes.next_within(timeout)
        if got is None:
            raise _TimeoutError(f"no result of {self._task!r} came within {timeout}s")
        return self._deliver(*got)

    def _deliver(self, index: int, outcome: Any) -> Any:
        if outcome.success:
            return self._kind.result(outcome)
        error = self._kind.error(outcome, self._task, index)
        if self._return_exceptions:
            return error
        raise error

    def close(self) -> None:
        """Stops the map: the tasks still queued or running are cancelled."""
        self._outcomes.close()


class AsyncResult:
    """The result of ``apply_async``, as ``multiprocessing``'s."""

    def __init__(
        self,
        handle: _native.Handle,
        task: str,
        callback: Optional[Callable[[Any], object]],
        error_callback: Optional[Callable[[BaseException], object]],
        kind: _Kind = _BY_NAME,
    ) -> None:
        self._handle = handle
        self._task = task
        self._kind = kind
        # Set once the callback has returned: as in `multiprocessing`, the
        # result is ready only after its callback ran, so that what the
        # callback stored is there when `get()` returns.
        self._called: Optional[threading.Event] = None
        if callback is not None or error_callback is not None:
            called = threading.Event()
            self._called = called

            def done(outcome: Any) -> None:
                try:
                    if outcome.success:
                        if callback is not None:
                            callback(kind.result(outcome))
                    elif error_callback is not None:
                        error_callback(kind.error(outcome, task))
                finally:
                    called.set()

            handle.on_done(done)

    def ready(self) -> bool:
        """Whether the task has ended (and its callback has run)."""
        if self._called is not None:
            return self._called.is_set()
        return self._handle.ready()

    def wait(self, timeout: Optional[float] = None) -> None:
        """Waits until the task ends (and its callback has run), or
        ``timeout`` seconds."""
        if self._called is not None:
            _wait_for(self._called, timeout)
        else:
            self._handle.wait(timeout)

    def successful(self) -> bool:
        """Whether it succeeded; ``ValueError`` while it runs."""
        outcome = self._handle.wait(0) if self.ready() else None
        if outcome is None:
            raise ValueError(f"{self!r} not ready")
        return outcome.success

    def get(self, timeout: Optional[float] = None) -> Any:
        """Its result; its ``TaskError`` if it failed; ``TimeoutError``
        (``multiprocessing.TimeoutError`` is the same class) if it has not
        ended within ``timeout`` seconds. The task goes on either way."""
        if self._called is not None and not _wait_for(self._called, timeout):
            raise _TimeoutError(f"task {self._task!r} has not ended within {timeout}s")
        outcome = self._handle.wait(timeout)
        if outcome is None:
            raise _TimeoutError(f"task {self._task!r} has not ended within {timeout}s")
        if not outcome.success:
            raise self._kind.error(outcome, self._task)
        return self._kind.result(outcome)

    def cancel(self) -> None:
        """Cancels the task (wasmproc's addition): it ends ``Cancelled``."""
        self._handle.cancel()


try:
    from multiprocessing import TimeoutError as _TimeoutError
except ImportError:  # pragma: no cover - multiprocessing is always there
    _TimeoutError = TimeoutError  # type: ignore[misc,assignment]


def _wait_for(event: threading.Event, timeout: Optional[float]) -> bool:
    """Waits for ``event`` up to ``timeout`` seconds (``None``: as long as
    it takes), in short slices, so that Ctrl-C interrupts the wait on every
    OS."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
        if event.wait(max(left, 0.0)):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


class MapResult:
    """The result of ``map_async`` and ``starmap_async``."""

    def __init__(
        self,
        run: Callable[[], List[Any]],
        callback: Optional[Callable[[Any], object]],
        error_callback: Optional[Callable[[BaseException], object]],
    ) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._error: Optional[BaseException] = None

        def work() -> None:
            try:
                self._value = run()
            except Exception as error:  # noqa: BLE001 - a TaskError, or a refused argument
                self._error = error
            # The callback runs before the result is ready, as in
            # `multiprocessing`: what it stored is there when `get()` returns.
            try:
                if self._error is None and callback is not None:
                    callback(self._value)
                elif self._error is not None and error_callback is not None:
                    error_callback(self._error)
            finally:
                self._done.set()

        threading.Thread(target=work, name="wasmproc-map-async", daemon=True).start()

    def ready(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: Optional[float] = None) -> None:
        _wait_for(self._done, timeout)

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def get(self, timeout: Optional[float] = None) -> Any:
        if not _wait_for(self._done, timeout):
            raise _TimeoutError(f"the map has not ended within {timeout}s")
        if self._error is not None:
            raise self._error
        return self._value
