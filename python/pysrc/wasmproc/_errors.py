"""The exceptions: one class per exit status, all ``TaskError``s."""

from __future__ import annotations

from typing import Dict, Optional, Type


class TaskError(Exception):
    """A task (or a load, or a pool's start) failed.

    Attributes: ``status`` (the status's name, as ``wasmproc`` writes it:
    ``timed_out``, ``memory_exceeded``, ...), ``exit_code`` (the number
    from the exit-status table: 0-125 the guest's own, 126 and up the
    host's), ``message``, ``trap`` (the trap's kind, for ``Trapped``),
    ``backtrace``, ``stdout`` and ``stderr`` (bytes, captured), ``task``
    (its name) and ``index`` (its place in a map's input, when it came from
    one).
    """

    status: str = "exited"

    def __init__(
        self,
        message: str,
        *,
        status: Optional[str] = None,
        exit_code: int = 1,
        trap: Optional[str] = None,
        backtrace: Optional[str] = None,
        stdout: bytes = b"",
        stderr: bytes = b"",
        task: Optional[str] = None,
        index: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.message = message
        self.exit_code = exit_code
        self.trap = trap
        self.backtrace = backtrace
        self.stdout = stdout
        self.stderr = stderr
        self.task = task
        self.index = index

    def __str__(self) -> str:
        where = f"task {self.task!r}" if self.task else "wasmproc"
        if self.index is not None:
            where += f" (item {self.index})"
        return f"{where}: {self.status} (exit status {self.exit_code}): {self.message}"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Picklable (multiprocessing-style code passes exceptions around).
        return (
            _rebuild,
            (
                type(self),
                self.message,
                dict(
                    status=self.status,
                    exit_code=self.exit_code,
                    trap=self.trap,
                    backtrace=self.backtrace,
                    stdout=self.stdout,
                    stderr=self.stderr,
                    task=self.task,
                    index=self.index,
                ),
            ),
        )


def _rebuild(cls: Type[TaskError], message: str, fields: dict) -> TaskError:  # type: ignore[type-arg]
    return cls(message, **fields)


class Exited(TaskError):
    """The guest ended with its own nonzero exit code (0-125; 101: a Rust
    task panicked)."""

    status = "exited"


class CannotRun(TaskError):
    """Invalid module, no such task or export, wrong signature, an import
    that cannot be satisfied (126)."""

    status = "cannot_run"


class NotFound(TaskError):
    """The module file does not exist (127)."""

    status = "not_found"


class BadInvocation(TaskError, ValueError):
    """Bad arguments (not of the task's type, too large, too deep), a bad
    limit, or a bad value for a shared object (a region's size, an offset
    past its end) (128). A ``ValueError`` too, as Python's own refusals of
    bad values are."""

    status = "bad_invocation"


class Cancelled(TaskError):
    """The task was cancelled: ``terminate``, a cancelled map (130)."""

    status = "cancelled"


class Trapped(TaskError):
    """The guest trapped; ``trap`` names the kind (134)."""

    status = "trapped"


class MemoryExceeded(TaskError):
    """The guest needed more memory than ``max_memory`` (137)."""

    status = "memory_exceeded"


class WorkerLost(TaskError):
    """The worker died under the task (139)."""

    status = "worker_lost"


class TimedOut(TaskError):
    """The wall-clock ``timeout`` passed (142)."""

    status = "timed_out"


class FuelExhausted(TaskError):
    """The ``fuel`` limit ran out (152)."""

    status = "fuel_exhausted"


_BY_STATUS: Dict[str, Type[TaskError]] = {
    cls.status: cls
    for cls in (
        Exited,
        CannotRun,
        NotFound,
        BadInvocation,
        Cancelled,
        Trapped,
        MemoryExceeded,
        WorkerLost,
        TimedOut,
        FuelExhausted,
    )
}


def error_for(status: str, exit_code: int, message: str) -> TaskError:
    """The exception for a library error (a load, a pool's start) with
    this status. Called by the native module."""
    cls = _BY_STATUS.get(status, TaskError)
    return cls(message, status=status, exit_code=exit_code)


def task_error(outcome: "object", task: Optional[str], index: Optional[int] = None) -> TaskError:
    """The exception for a failed task's outcome."""
    status: str = outcome.status  # type: ignore[attr-defined]
    cls = _BY_STATUS.get(status, TaskError)
    exit_code: int = outcome.exit_code  # type: ignore[attr-defined]
    message = outcome.message or (  # type: ignore[attr-defined]
        f"the task exited with code {exit_code}" if status == "exited" else f"the task ended {status}"
    )
    return cls(
        message,
        status=status,
        exit_code=exit_code,
        trap=outcome.trap,  # type: ignore[attr-defined]
        backtrace=outcome.backtrace,  # type: ignore[attr-defined]
        stdout=outcome.stdout,  # type: ignore[attr-defined]
        stderr=outcome.stderr,  # type: ignore[attr-defined]
        task=task,
        index=index,
    )
