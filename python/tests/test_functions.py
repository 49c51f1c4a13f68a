"""Python functions as tasks (``wasmproc.Pool()`` with no module): what
crosses (lambdas, closures, defs and what they use), what is refused and
why, and that the sandbox and its limits still hold."""

from __future__ import annotations

import functools
import json
import logging
import socket
import math
import sys
import threading
import time
from math import sqrt
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

import wasmproc
from wasmproc import _runner

SCALE = 10
WORDS = {"1": 1, "2": 2}


def scaled(x: int) -> int:
    return x * SCALE + helper(x)


def helper(x: int) -> int:
    return WORDS.get(str(x), -1)


def hypotenuse(a: float, b: float) -> float:
    return math.hypot(a, b) + sqrt(0)


def describe(x: int, *, prefix: str = "item", suffix: str = "") -> str:
    return f"{prefix} {x}{suffix}"


def logged(function: Callable[[int], int]) -> Callable[[int], List[Any]]:
    @functools.wraps(function)
    def wrapper(x: int) -> List[Any]:
        return ["logged", function(x)]

    return wrapper


@logged
def increment(x: int) -> int:
    return x + 1


class Tools:
    @staticmethod
    def double(x: int) -> int:
        return 2 * x


@functools.lru_cache(maxsize=None)
def cached(x: int) -> int:
    return x


def fails(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def spins(x: int) -> int:
    while True:
        pass


def allocates(n: int) -> int:
    return len(bytearray(n))


def reads(path: str) -> str:
    with open(path) as file:
        return file.read()


def a_set(x: int) -> Any:
    return {x}


SETTINGS: Dict[str, Any] = {}


def load_settings(path: str, scale: int) -> None:
    global SETTINGS
    with open(path) as file:
        SETTINGS = dict(json.load(file), scale=scale)


def use_settings(x: int) -> int:
    return int(SETTINGS["base"] + x * SETTINGS["scale"])


STARTED: Dict[str, Any] = {}


def start_once(label: str) -> None:
    """Records when it ran; prints, as initializers do."""
    print("initializing", label)
    STARTED.update(label=label, at=time.time_ns())


def load_settings_once(path: str, scale: int) -> None:
    """``load_settings``, recording when it ran, here and in a log beside
    the file (which it writes, not reads: no reason to run again)."""
    load_settings(path, scale)
    STARTED.update(label=path, at=time.time_ns())
    with open(path + ".runs", "a") as log:
        log.write("ran\n")


def settings_and_start(x: int) -> List[Any]:
    """What a task sees of the initializer's state, and a granted file read
    by the task itself (its libc looks the grants up anew)."""
    with open("/data/settings.json") as file:
        now = json.load(file)["base"]
    return [use_settings(x), STARTED["at"], now]


def write_raw() -> None:
    """Writes to the process's stdout below Python's ``sys.stdout``: the
    sandbox's libc then holds the stream, which it lets go of before the
    snapshot."""
    import os

    os.write(1, b"raw output\n")
    STARTED.update(label="raw", at=time.time_ns())


def keep_file_open() -> None:
    """Leaves a granted file open: a descriptor no task could use."""
    STARTED.update(label="open", at=time.time_ns(), file=open("/data/settings.json"))


IMPORTED: Dict[str, Any] = {}


def import_settings() -> None:
    """Imports a module from a granted directory (``sys_path``) and keeps
    what it holds."""
    import wasmproc_test_settings  # type: ignore[import-not-found]

    IMPORTED["base"] = wasmproc_test_settings.BASE


def imported_base(_: int) -> Any:
    return IMPORTED["base"]


def print_and_fail(x: int) -> None:
    print("printed by task", x)
    raise ValueError(x)


def when_started(_: int) -> List[Any]:
    print("a task prints after the initializer")
    return [STARTED["label"], STARTED["at"]]


def connects(port: int) -> str:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError as error:
        return type(error).__name__
    return "connected"


@pytest.fixture(params=["thread", "process"])
def pool(python_runner: Path, request: pytest.FixtureRequest) -> Iterator[wasmproc.Pool]:
    with wasmproc.Pool(processes=2, isolation=request.param, timeout=10) as pool:
        yield pool


def test_a_lambda_runs_in_the_sandbox(pool: wasmproc.Pool) -> None:
    assert pool.map(lambda x: x * x, range(20)) == [x * x for x in range(20)]
    assert pool.map(lambda x: x * x, []) == []
    assert pool.apply(lambda: 42) == 42
    # Its CPython is the sandbox's, not this one.
    version = pool.apply(lambda: __import__("sys").platform)
    assert version == "wasi"


def test_a_closure_carries_its_plain_values(pool: wasmproc.Pool) -> None:
    factor = 3
    table = {"a": [1, 2], "b": (3, 4)}
    assert pool.map(lambda x: x * factor, range(5)) == [0, 3, 6, 9, 12]
    assert pool.map(lambda x, k=factor + 1: x * k, [2]) == [8]  # a default: its value
    assert pool.apply(lambda key: list(table[key]), ("b",)) == [3, 4]

    def counter(start: int) -> List[int]:
        total = start

        def add(n: int) -> int:
            nonlocal total
            total += n
            return total

        return [add(1), add(factor)]

    assert pool.map(counter, [0, 10]) == [[1, 4], [11, 14]]


def test_a_def_with_its_globals_helpers_and_defaults(pool: wasmproc.Pool) -> None:
    assert pool.map(scaled, [1, 2, 3]) == [11, 22, 29]
    assert pool.starmap(hypotenuse, [(3, 4), (5, 12)]) == [5.0, 13.0]
    assert pool.apply(describe, (7,), {"suffix": "!"}) == "item 7!"
    assert pool.map(functools.partial(describe, prefix="no."), [1]) == ["no. 1"]
    # A decorator's wrapper crosses with the function it wraps; a static
    # method is a function.
    assert pool.map(increment, [1]) == [["logged", 2]]
    assert pool.map(Tools.double, [4]) == [8]


def test_standard_library_modules_are_imported_inside(pool: wasmproc.Pool) -> None:
    def decode(text: str) -> Any:
        import statistics

        return [json.loads(text), statistics.mean([1, 2, 3, 4])]

    assert pool.apply(decode, ('{"a": 1}',)) == [{"a": 1}, 2.5]
    assert pool.map(math.factorial, [5]) == [120]
    assert pool.map(abs, [-3]) == [3]


def test_two_lambdas_on_one_line_are_told_apart(pool: wasmproc.Pool) -> None:
    plus, times = (lambda x: x + 1), (lambda y: y * 10)
    assert pool.map(times, [2]) == [20]  # by their parameters
    assert pool.map(plus, [2]) == [3]
    # Columns count UTF-8 bytes: text before a lambda on its line moves it.
    pair = ("ünïcödé", lambda s: "→" + s)
    assert pool.map(pair[1], ["é"]) == ["→é"]
    first, second = (lambda x: x + 1), (lambda x: x * 10)
    if sys.version_info >= (3, 11):  # by the code's positions
        assert pool.map(second, [2]) == [20]
        assert pool.map(first, [2]) == [3]
    else:
        with pytest.raises(wasmproc.CannotShip, match="cannot be told apart: put the one you send on a line"):
            pool.map(second, [2])


def test_an_exception_comes_back_with_its_traceback(pool: wasmproc.Pool) -> None:
    with pytest.raises(wasmproc.Exited) as raised:
        pool.map(fails, range(6))
    error = raised.value
    assert error.index == 3
    assert error.task == "fails"
    assert error.message.startswith("Traceback (most recent call last):")
    assert "ValueError: bad item 3" in error.message
    # The traceback names this file and the line, with its text.
    assert f'File "{__file__}"' in error.message
    assert 'raise ValueError(f"bad item {x}")' in error.message
    assert pool.map(fails, [1]) == [1]  # the pool lives on
    outcomes = list(pool.imap(fails, [2, 3], return_exceptions=True))
    assert outcomes[0] == 2 and isinstance(outcomes[1], wasmproc.Exited)


def test_apply_async_and_imap(pool: wasmproc.Pool) -> None:
    got: List[Any] = []
    done = threading.Event()
    def callback(value: Any) -> None:
        got.append(value)
        done.set()

    result = pool.apply_async(lambda a, b: a - b, (5, 2), callback=callback)
    assert result.get(timeout=10) == 3
    assert done.wait(10) and got == [3]
    assert list(pool.imap(lambda x: -x, range(5))) == [0, -1, -2, -3, -4]
    assert sorted(pool.imap_unordered(lambda x: x, range(5))) == list(range(5))


def test_what_cannot_cross_is_refused_before_it_runs(pool: wasmproc.Pool) -> None:
    namespace: Dict[str, Any] = {}
    exec("def made(x):\n    return x\n", namespace)
    with pytest.raises(wasmproc.CannotShip, match="source of made .* cannot be found.*define it in a .py file"):
        pool.map(namespace["made"], [1])

    lock = threading.Lock()
    with pytest.raises(wasmproc.CannotShip, match="the variable 'lock' .* captures is a _thread.lock.*plain values"):
        pool.map(lambda x: lock.locked(), [1])

    class Point:
        def get(self, x: int) -> int:
            return x

    point = Point()
    with pytest.raises(wasmproc.CannotShip, match="'point'"):
        pool.map(lambda x: point, [1])
    points = [1, point]
    with pytest.raises(wasmproc.CannotShip, match="'points' .* holds a .*Point"):
        pool.map(lambda x: points[x], [1])
    with pytest.raises(wasmproc.CannotShip, match="module 'pytest', which is not in the standard library"):
        pool.map(lambda x: pytest.approx(x), [1])
    with pytest.raises(wasmproc.CannotShip, match="bound method"):
        pool.map(point.get, [1])
    with pytest.raises(wasmproc.CannotShip, match="it wraps cached: send that one"):
        pool.map(cached, [1])
    # A CannotShip is a TypeError, as pickling's refusals are.
    assert issubclass(wasmproc.CannotShip, TypeError)
    with pytest.raises(TypeError, match="JSON-compatible"):
        pool.map(lambda x: x, [object()])
    # The same rule as a Wasm task's arguments: nothing changed on the way.
    with pytest.raises(TypeError, match="keys must be str"):
        pool.apply(lambda x: x, ({1: 2},))
    with pytest.raises(TypeError, match="not set"):
        pool.apply(lambda x: x, ({1},))
    with pytest.raises(ValueError, match="NaN and the infinities"):
        pool.apply(lambda x: x, (float("inf"),))
    with pytest.raises(TypeError, match="runs Python functions; a task name needs a module"):
        pool.map("square", [1])



def test_a_result_that_is_not_json_is_an_error(pool: wasmproc.Pool) -> None:
    with pytest.raises(wasmproc.Exited, match="returned a set, which cannot cross as JSON"):
        pool.apply(a_set, (1,))


def test_limits_apply_and_the_pool_lives_on(python_runner: Path) -> None:
    with wasmproc.Pool(processes=2, timeout=0.5, max_memory="64MiB") as pool:
        with pytest.raises(wasmproc.TimedOut):
            pool.apply(spins, (1,))
        assert pool.apply(allocates, (1 << 20,)) == 1 << 20
        with pytest.raises(wasmproc.MemoryExceeded):
            pool.apply(allocates, (10**8,))
        # The issue's `bytearray(10**10)` is past what the 32-bit sandbox
        # addresses: its CPython refuses the size before allocating.
        with pytest.raises(wasmproc.Exited, match="OverflowError"):
            pool.apply(allocates, (10**10,))
        assert pool.map(lambda x: x + 1, [1, 2]) == [2, 3]


def test_the_sandbox_grants_nothing_but_what_the_pool_grants(python_runner: Path, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("granted")
    with wasmproc.Pool(processes=1) as pool:
        with pytest.raises(wasmproc.Exited, match="FileNotFoundError"):
            pool.apply(reads, ("/etc/passwd",))
        with pytest.raises(wasmproc.Exited, match="FileNotFoundError"):
            pool.apply(reads, (str(tmp_path / "note.txt"),))
        assert pool.apply(lambda: dict(__import__("os").environ)) == {}
        # No network: a connection to a port that listens on the host fails.
        with socket.create_server(("127.0.0.1", 0)) as server:
            assert connects(server.getsockname()[1]) == "connected"
            assert pool.apply(connects, (server.getsockname()[1],)) != "connected"
    with wasmproc.Pool(processes=1, dirs={tmp_path: "/data"}, env={"MODE": "test"}) as pool:
        assert pool.apply(reads, ("/data/note.txt",)) == "granted"
        assert pool.apply(lambda: __import__("os").environ["MODE"]) == "test"


def test_a_module_pool_takes_names_and_a_function_pool_functions(
    python_runner: Path, sdk_tasks: wasmproc.Module
) -> None:
    with wasmproc.Pool(sdk_tasks, 1) as pool:
        with pytest.raises(TypeError, match="for Python functions, use wasmproc.Pool\\(\\) with no module"):
            pool.map(lambda x: x, [1])
    with pytest.raises(TypeError, match="initializer: with Python functions as tasks it is a function"):
        wasmproc.Pool(1, "init_name")


def test_the_runner_is_built_once_and_reused(python_runner: Path) -> None:
    built = python_runner.stat().st_mtime_ns
    assert _runner.runner_path() == python_runner
    with wasmproc.Pool(processes=1) as pool:
        assert pool.apply(lambda: 1) == 1
    assert python_runner.stat().st_mtime_ns == built
    assert python_runner.name.startswith(f"componentize-py-{_runner.COMPONENTIZE_PY}-")


def test_without_componentize_py_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(wasmproc.CannotRun, match=r"need componentize-py.*pip install 'wasmproc\[functions\]'") as raised:
        _runner.runner_path()
    assert raised.value.exit_code == 126
    assert "componentize-py==0.25.1" in raised.value.message


def test_a_lambda_from_a_notebook_cell(pool: wasmproc.Pool) -> None:
    # IPython keeps each cell's source in linecache under a name of its
    # own; a lambda on a cell's first line, column 0 of a continuation.
    import linecache

    source = "double = (\nlambda x: x * 2)\ntriple = lambda x: x * 3\n"
    name = "<ipython-input-1-0123456789ab>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    namespace: Dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, name, "exec"), namespace)
    assert pool.map(namespace["double"], [4]) == [8]
    assert pool.map(namespace["triple"], [4]) == [12]


def test_an_initializer_runs_once_and_a_second_pool_reuses_its_snapshot(
    python_runner: Path, isolation: str
) -> None:
    label = f"{isolation} {time.time_ns()}"  # a new snapshot for each run
    seen = []
    for _ in range(2):
        with wasmproc.Pool(2, start_once, (label,), isolation=isolation) as pool:
            started = pool.map(when_started, range(6))
        # Every task starts from the one run's state: the same moment.
        assert all(each == started[0] for each in started), started
        assert started[0][0] == label
        seen.append(started[0][1])
    # The second pool's snapshot came from the cache: it never ran again.
    assert seen[0] == seen[1]
    assert STARTED == {}  # here, nothing ran


def test_an_initializer_that_wrote_below_sys_stdout_is_snapshot_and_tasks_print(
    python_runner: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="wasmproc"):
        with wasmproc.Pool(1, write_raw) as pool:
            started = pool.map(when_started, range(3))
            # The task's own stdout works after libc let go of the stream.
            with pytest.raises(wasmproc.Exited) as raised:
                pool.apply(print_and_fail, (7,))
    assert raised.value.stdout == b"printed by task 7\n"
    # Run once: every task saw the same moment, and nothing was refused.
    assert started[0][0] == "raw" and all(each == started[0] for each in started), started
    assert "not once" not in caplog.text


def test_an_initializer_that_leaves_a_file_open_runs_in_each_task_instead(
    python_runner: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "settings.json").write_text('{"base": 100}')
    with caplog.at_level(logging.WARNING, logger="wasmproc"):
        with wasmproc.Pool(1, keep_file_open, dirs={tmp_path: "/data"}) as pool:
            started = pool.map(when_started, range(2))
    assert "runs in each task's sandbox, not once" in caplog.text
    assert "returned with a file still open" in caplog.text
    # Each task ran it in its own sandbox, at its own moment.
    assert [each[0] for each in started] == ["open", "open"]
    assert started[0][1] != started[1][1]


def test_an_initializer_with_granted_dirs_runs_once_until_its_files_change(
    python_runner: Path, tmp_path: Path, isolation: str
) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text('{"base": 100}')

    def start() -> List[List[Any]]:
        with wasmproc.Pool(
            2,
            load_settings_once,
            ("/data/settings.json", 2),
            dirs={tmp_path: "/data"},
            isolation=isolation,
        ) as pool:
            return pool.map(settings_and_start, [1, 2, 3])

    first = start()
    assert [each[0] for each in first] == [102, 104, 106]
    assert [each[2] for each in first] == [100] * 3  # each task opened the file itself
    ran_at = first[0][1]
    assert all(each[1] == ran_at for each in first), first
    # A second pool starts from the cached snapshot: the initializer does not run.
    assert [each[1] for each in start()] == [ran_at] * 3
    # The file changed: the initializer runs again, and sees it.
    settings.write_text('{"base": 1000}')
    changed = start()
    assert [each[0] for each in changed] == [1002, 1004, 1006]
    assert changed[0][1] != ran_at
    # ...once: its new snapshot is cached too.
    assert [each[1] for each in start()] == [changed[0][1]] * 3
    assert (tmp_path / "settings.json.runs").read_text() == "ran\n" * 2
    assert SETTINGS == {} and STARTED == {}  # here, nothing ran


def test_an_initializer_runs_again_when_a_module_it_imports_from_a_granted_directory_changes(
    python_runner: Path, tmp_path: Path
) -> None:
    module = tmp_path / "wasmproc_test_settings.py"
    module.write_text("BASE = 5\n")

    def start() -> Any:
        with wasmproc.Pool(1, import_settings, sys_path=["/site"], dirs={tmp_path: "/site"}) as pool:
            return pool.apply(imported_base, (0,))

    assert start() == 5
    # The sandbox's CPython may have cached its bytecode beside it, which the
    # next import reads instead: the source is what is checked.
    module.write_text("BASE = 500\n")
    assert start() == 500
    assert IMPORTED == {}  # here, nothing ran


def test_an_initializer_that_cannot_read_its_granted_file_fails_the_pools_start(
    python_runner: Path, tmp_path: Path
) -> None:
    with pytest.raises(wasmproc.Exited, match="(?s)the pool's initializer raised:.*FileNotFoundError"):
        wasmproc.Pool(1, load_settings, ("/data/missing.json", 2), dirs={tmp_path: "/data"})


def test_an_initializer_that_raises_fails_the_pools_start(python_runner: Path) -> None:
    with pytest.raises(wasmproc.Exited, match="(?s)the pool's initializer raised:.*ZeroDivisionError"):
        wasmproc.Pool(1, lambda: 1 / 0)
    with pytest.raises(wasmproc.CannotShip, match="an argument of the initializer"):
        wasmproc.Pool(1, load_settings, (threading.Lock(), 2))
    # The initializer reaches a shared queue as a task does.
    jobs = wasmproc.Queue()
    with wasmproc.Pool(1, lambda: jobs.put("initialized"), share={"jobs": jobs}) as pool:
        assert pool.apply(lambda: jobs.get(timeout=10)) == "initialized"


def test_only_the_pinned_componentize_py_builds_the_runner(
    python_runner: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The installed one is the pinned release's build (CI installs it by
    # the digests of python/requirements-functions.txt).
    compiled = _runner.verify_componentize_py()
    assert compiled.name in ("componentize_py.abi3.so", "componentize_py.pyd")
    # Any other file is refused before anything runs it.
    monkeypatch.setattr(_runner, "COMPONENTIZE_PY_SHA256", frozenset({"0" * 64}))
    with pytest.raises(
        wasmproc.CannotRun, match=r"is not componentize-py 0\.25\.1 as PyPI publishes it.*--force-reinstall"
    ) as raised:
        _runner.verify_componentize_py()
    assert raised.value.exit_code == 126


def test_a_failed_runner_build_says_why(
    python_runner: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A broken WIT file: componentize-py fails at once (a broken app.py
    # would fail only after ~20 s of building).
    source = tmp_path / "source"
    (source / "wit").mkdir(parents=True)
    (source / "wit" / "runner.wit").write_text("package wasmproc:broken;\nworld runner {\n")
    (source / "app.py").write_text((_runner.SOURCE / "app.py").read_text())
    monkeypatch.setattr(_runner, "SOURCE", source)
    with pytest.raises(wasmproc.CannotRun, match="componentize-py failed to build the Python runner") as raised:
        _runner._build(tmp_path / "out" / "runner.wasm")
    assert "runner.wit" in raised.value.message
    assert f"componentize-py=={_runner.COMPONENTIZE_PY}" in raised.value.message
    assert list((tmp_path / "out").iterdir()) == []  # no partial file left


def test_pure_python_packages_from_a_granted_directory(
    python_runner: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "granted_pkg").mkdir(parents=True)
    (site / "granted_pkg" / "__init__.py").write_text(
        "class Scale:\n    def __init__(self, k):\n        self.k = k\n\n"
        "def triple(x):\n    return 3 * x\n"
    )
    monkeypatch.syspath_prepend(str(site))
    import granted_pkg  # type: ignore[import-not-found]

    Scale = granted_pkg.Scale

    def use(x: int) -> int:
        return int(granted_pkg.triple(x) * Scale(2).k)

    with wasmproc.Pool(1) as pool:
        with pytest.raises(wasmproc.CannotShip, match=r"granted_pkg.*sys_path=\['/site'\]"):
            pool.map(use, [1])
        with pytest.raises(wasmproc.CannotShip, match=r"module 'granted_pkg'.*sys_path=\['/site'\]"):
            pool.map(lambda x: granted_pkg.triple(x), [1])
    with wasmproc.Pool(1, sys_path=["/site"], dirs={site: "/site"}) as pool:
        assert pool.map(use, [2]) == [12]
    with wasmproc.Pool(1, sys_path=["/site"]) as pool:  # not granted: not found inside
        with pytest.raises(wasmproc.Exited, match="ModuleNotFoundError: No module named 'granted_pkg'"):
            pool.map(use, [2])


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_queue_shared_between_this_process_and_four_python_tasks(
    python_runner: Path, isolation: str
) -> None:
    jobs = wasmproc.Queue(8)
    results = wasmproc.Queue()

    def consume(worker: int) -> int:
        # Takes numbers until the queue is closed and drained; each one's
        # square goes back on the other queue.
        taken = 0
        while True:
            try:
                n = jobs.get(timeout=20)
            except ValueError:
                return taken
            results.put([worker, n * n])
            taken += 1

    with wasmproc.Pool(
        processes=4, isolation=isolation, share={"jobs": jobs, "results": results}, timeout=60
    ) as pool:
        consumers = [pool.apply_async(consume, (worker,)) for worker in range(4)]
        for n in range(1, 101):
            jobs.put(n, timeout=20)
        jobs.close()
        counts = [c.get(60) for c in consumers]
        squares = sorted(results.get(timeout=10)[1] for _ in range(100))
    assert sum(counts) == 100
    assert squares == [n * n for n in range(1, 101)]


def test_the_pools_pipe_reaches_python_tasks(python_runner: Path) -> None:
    ours, theirs = wasmproc.Pipe()
    with wasmproc.Pool(processes=1, pipe=theirs, timeout=30) as pool:
        echoed = pool.apply_async(lambda: [theirs.send({"got": theirs.recv()}), "done"][1])
        ours.send([1, "two"])
        assert ours.recv() == {"got": [1, "two"]}
        assert echoed.get(30) == "done"


def test_a_queue_the_pool_does_not_share_is_refused_with_the_fix(python_runner: Path) -> None:
    stray = wasmproc.Queue()
    with wasmproc.Pool(processes=1) as pool:
        with pytest.raises(wasmproc.CannotShip, match=r"does not share.*share=\{'name': obj\}"):
            pool.apply_async(lambda x: stray.put(x), (1,))
    with pytest.raises(TypeError, match="can be shared, not list"):
        wasmproc.Pool(share={"jobs": []})


def add_under_lock(region: Any, lock: Any, times: int) -> int:
    # A read, then a write: without the lock, increments would be lost.
    for _ in range(times):
        with lock:
            count = int.from_bytes(region.read(0, 8), "little")
            region.write(0, (count + 1).to_bytes(8, "little"))
    return region.add_u64(8, times) + times


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_python_tasks_share_a_region_a_lock_an_event_a_semaphore_and_a_barrier(
    python_runner: Path, isolation: str
) -> None:
    region, lock = wasmproc.SharedRegion(16), wasmproc.Lock()
    start, gate, meet = wasmproc.Event(), wasmproc.Semaphore(2), wasmproc.Barrier(3)
    share = {"counts": region, "lock": lock, "start": start, "gate": gate, "meet": meet}
    with wasmproc.Pool(processes=4, isolation=isolation, share=share, timeout=60) as pool:
        # Four tasks wait for the event, then add under the lock.
        adders = [
            pool.apply_async(lambda: [start.wait(30), add_under_lock(region, lock, 25)][1])
            for _ in range(4)
        ]
        with lock:  # this process takes the same lock
            start.set()
            time.sleep(0.2)
            assert int.from_bytes(region.read(0, 8), "little") == 0, "a task ran under our lock"
        totals = sorted(a.get(60) for a in adders)
        assert int.from_bytes(region.read(0, 8), "little") == 100
        assert region.load_u64(8) == 100 and totals[-1] == 100
        # Two permits: a third acquire in a task times out while both are held here.
        assert gate.acquire() and gate.acquire()
        assert pool.apply(lambda: gate.acquire(timeout=0.3)) is False
        gate.release()
        assert pool.apply(lambda: [gate.acquire(timeout=10), gate.get_value()]) == [True, 0]
        # Two tasks and this process cross the barrier together.
        crossing = [pool.apply_async(lambda: meet.wait(30)) for _ in range(2)]
        here = meet.wait(30)
        assert sorted([here, *(c.get(30) for c in crossing)]) == [False, False, True]


def test_the_runner_imports_the_guest_contract_the_sdk_defines() -> None:
    # The package carries a copy of the SDK's WIT (the runner's world
    # imports its host interface): it must not drift from the original.
    copy = Path(wasmproc.__file__).parent / "_sandbox/wit/deps/wasmproc-guest/wasmproc.wit"
    original = Path(__file__).resolve().parents[2] / "guest/wit/wasmproc.wit"
    assert copy.read_text(encoding="utf-8") == original.read_text(encoding="utf-8")


SEEN: List[int] = []


def remembers(x: int) -> List[int]:
    SEEN.append(x)
    return list(SEEN)


def poisons(x: int) -> int:
    import builtins
    import marshal
    import types

    # Everything a task could reach to change what later tasks run: the
    # code of a function they run, the modules that build functions.
    remembers.__code__ = (lambda x: [-1]).__code__
    setattr(marshal, "loads", lambda data: None)
    setattr(types, "FunctionType", None)
    setattr(builtins, "len", lambda obj: -1)
    SEEN.append(x)
    return x * 10


def test_a_function_is_compiled_once_and_every_call_builds_it_afresh(pool: wasmproc.Pool) -> None:
    counter = [0]

    def bump(x: int) -> List[int]:
        counter[0] += 1
        return [x, counter[0]]

    for _ in range(2):
        # Each call sees the shipped globals and captured values, never
        # another call's changes to them: each builds its own function.
        assert pool.map(remembers, range(4)) == [[0], [1], [2], [3]]
        assert pool.map(bump, range(3)) == [[0, 1], [1, 1], [2, 1]]
        assert pool.apply(bump, (7,)) == [7, 1]
    assert SEEN == [] and counter == [0]
    # One compile per distinct source, in the pool's cache: the two maps
    # (and the apply) of each function reused it.
    assert pool._compiled is not None and len(pool._compiled) == 2
    # A function sent in one call is compiled at its second.
    once = lambda x: x + 1  # noqa: E731
    assert pool.apply(once, (1,)) == 2 and len(pool._compiled) == 2
    assert pool.apply(once, (2,)) == 3 and len(pool._compiled) == 3


def test_a_task_cannot_change_what_later_tasks_run(python_runner: Path) -> None:
    with wasmproc.Pool(processes=1) as pool:
        for _ in range(2):
            assert pool.map(poisons, range(4)) == [0, 10, 20, 30]
            assert pool.map(remembers, [5]) == [[5]]
            assert pool.apply(lambda: len("abc")) == 3


def test_a_function_whose_compiled_code_is_missing_or_foreign_runs_from_source(
    python_runner: Path,
) -> None:
    import base64
    import marshal

    def refused(sources: str) -> str:
        raise wasmproc.Exited("compile-functions refused")

    # Code that another CPython marshalled (another magic number).
    foreign = base64.b64encode(marshal.dumps((("wasmproc-code-1", b"\0\0\r\n"), ()), 4)).decode()
    for compile in (refused, lambda sources: foreign):
        with wasmproc.Pool(processes=1) as pool:
            assert pool._compiled is not None
            pool._compiled._compile = compile
            assert pool.map(scaled, [1, 2]) == [11, 22]
            with pytest.raises(wasmproc.Exited, match='raise ValueError\\(f"bad item'):
                pool.apply(fails, (3,))


def test_captured_values_and_results_cross_exactly(pool: wasmproc.Pool) -> None:
    values = [None, True, 7, -(2**63), 2**64 - 1, 2**64, 2**70, 0.5, -0.0, float("inf"), "é\u2603\"", (1, 2)]
    # Inline (JSON) or pickled, each comes back as what it was.
    assert pool.apply(lambda: [repr(value) for value in values]) == [repr(value) for value in values]
    results = pool.map(lambda i: [None, True, False, 3, 2**100, 1.5, -0.0, 'a"é\n', float("inf")][i], range(9))
    expected = [None, True, False, 3, 2**100, 1.5, -0.0, 'a"é\n', float("inf")]
    assert [repr(result) for result in results] == [repr(value) for value in expected]
    assert math.isnan(pool.apply(lambda: float("nan")))
