"""``wasmproc.Pool``: multiprocessing's methods, in both isolations."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import wasmproc


@pytest.fixture
def pool(sdk_tasks: wasmproc.Module, isolation: str):  # type: ignore[no-untyped-def]
    with wasmproc.Pool(sdk_tasks, processes=2, isolation=isolation, timeout=5) as pool:
        yield pool


def test_map_gives_results_in_input_order(pool: wasmproc.Pool) -> None:
    assert pool.map("square", range(1000)) == [x * x for x in range(1000)]
    assert pool.map("square", []) == []
    assert pool.map("square", (x for x in range(10)), chunksize=4) == [x * x for x in range(10)]


def test_imap_streams_in_order_and_imap_unordered_as_tasks_end(pool: wasmproc.Pool) -> None:
    assert list(pool.imap("square", iter(range(300)))) == [x * x for x in range(300)]
    # The slow task ends last, whatever its place in the input. Both
    # workers are started first (a process pool starts them on demand, and
    # under load a start took longer than the slow task once), and the slow
    # one is slow enough that the other worker runs the three short ones
    # even on a loaded machine (at 300 ms, CI once saw it end before the
    # last short one).
    assert pool.map("sleep_ms", [500, 500]) == [500, 500]
    ended = list(pool.imap_unordered("sleep_ms", [2000, 1, 2, 3], chunksize=1))
    assert sorted(ended) == [1, 2, 3, 2000]
    assert ended[-1] == 2000
    assert sorted(pool.imap_unordered("square", range(100), chunksize=16)) == sorted(
        x * x for x in range(100)
    )


def test_starmap_apply_and_apply_async(pool: wasmproc.Pool) -> None:
    assert pool.starmap("add", [(1, 2), (3, 4), (-5, 5)]) == [3, 7, 0]
    assert pool.apply("add", (2, 3)) == 5
    called = threading.Event()
    seen = []

    def callback(value: object) -> None:
        seen.append(value)
        called.set()

    result = pool.apply_async("square", (7,), callback=callback)
    assert result.get(timeout=5) == 49
    assert called.wait(5) and seen == [49]
    assert result.ready() and result.successful()


def test_async_result_waits_and_times_out(pool: wasmproc.Pool) -> None:
    result = pool.apply_async("sleep_ms", (400,))
    assert not result.ready()
    with pytest.raises(wasmproc.TimeoutError if hasattr(wasmproc, "TimeoutError") else Exception):
        result.get(timeout=0.01)
    with pytest.raises(ValueError):
        result.successful()
    result.wait()
    assert result.ready() and result.get() == 400


def test_apply_async_error_callback_gets_the_task_error(pool: wasmproc.Pool) -> None:
    got: list = []
    done = threading.Event()
    result = pool.apply_async(
        "fail_with", (4, "declined"), error_callback=lambda e: (got.append(e), done.set())
    )
    assert done.wait(5)
    assert isinstance(got[0], wasmproc.Exited) and got[0].exit_code == 4
    assert not result.successful()
    with pytest.raises(wasmproc.Exited, match="declined"):
        result.get()


def test_map_async_and_starmap_async(pool: wasmproc.Pool) -> None:
    assert pool.map_async("square", range(5)).get(5) == [0, 1, 4, 9, 16]
    assert pool.starmap_async("add", [(1, 1)]).get(5) == [2]


def test_map_raises_the_first_failure_and_the_pool_lives_on(pool: wasmproc.Pool) -> None:
    with pytest.raises(wasmproc.Exited) as raised:
        pool.starmap("fail_with", [(7, "seventh"), (9, "ninth")])
    assert raised.value.exit_code == 7 and raised.value.message == "seventh"
    assert raised.value.index == 0 and raised.value.task == "fail_with"
    with pytest.raises(wasmproc.Trapped):
        pool.map("unreachable", [None])
    assert pool.map("square", range(5)) == [0, 1, 4, 9, 16]


def test_imap_raises_at_the_failed_place_or_yields_the_error(pool: wasmproc.Pool) -> None:
    items = ["1", "two", "3"]
    results = pool.imap("parse_number", items)
    assert next(results) == 1
    with pytest.raises(wasmproc.Exited) as raised:
        next(results)
    assert raised.value.index == 1 and raised.value.exit_code == 1
    assert next(results) == 3
    outcomes = list(pool.imap("parse_number", items, return_exceptions=True))
    assert outcomes[0] == 1 and outcomes[2] == 3
    assert isinstance(outcomes[1], wasmproc.Exited) and "invalid digit" in outcomes[1].message


def test_limits_apply_to_every_task_with_their_own_exception(
    sdk_tasks: wasmproc.Module, isolation: str
) -> None:
    with wasmproc.Pool(
        sdk_tasks, processes=2, isolation=isolation, timeout=0.3, max_memory="16MiB"
    ) as pool:
        with pytest.raises(wasmproc.TimedOut) as timed_out:
            pool.apply("spin")
        assert timed_out.value.exit_code == 142
        with pytest.raises(wasmproc.MemoryExceeded) as memory:
            pool.map("allocate_mib", [1, 64])
        assert memory.value.exit_code == 137
        # The pool survives both.
        assert pool.map("allocate_mib", [1, 2]) == [1, 2]


def test_fuel_applies_to_every_task(sdk_tasks: wasmproc.Module, isolation: str) -> None:
    with wasmproc.Pool(sdk_tasks, processes=1, isolation=isolation, fuel=100_000) as pool:
        assert pool.apply("count_to", (10,)) == 45
        with pytest.raises(wasmproc.FuelExhausted):
            pool.apply("count_to", (10**9,))


def test_env_and_dirs_reach_every_task(sdk_tasks: wasmproc.Module, isolation: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in.txt").write_text("from the host")
    with wasmproc.Pool(
        sdk_tasks, 2, isolation=isolation, env={"MODE": "test"}, dirs={str(tmp_path): "/data"}
    ) as pool:
        assert pool.map("env_var", ["MODE", "HOME"]) == ["test", None]
        assert pool.apply("read_file", ("/data/in.txt",)) == "from the host"


def test_terminate_cancels_running_tasks(sdk_tasks: wasmproc.Module, isolation: str) -> None:
    pool = wasmproc.Pool(sdk_tasks, processes=1, isolation=isolation)
    result = pool.apply_async("sleep_ms", (30_000,))
    started = time.monotonic()
    pool.terminate()
    pool.join()
    with pytest.raises(wasmproc.Cancelled) as raised:
        result.get(timeout=10)
    assert raised.value.exit_code == 130
    assert time.monotonic() - started < 10


def test_close_then_join_runs_what_was_queued(sdk_tasks: wasmproc.Module, isolation: str) -> None:
    pool = wasmproc.Pool(sdk_tasks, processes=2, isolation=isolation)
    results = [pool.apply_async("square", (n,)) for n in range(20)]
    with pytest.raises(ValueError, match="still running"):
        pool.join()
    pool.close()
    pool.join()
    assert [r.get(0) for r in results] == [n * n for n in range(20)]
    with pytest.raises(ValueError, match="not running"):
        pool.map("square", [1])


def test_an_imap_left_early_cancels_the_rest(pool: wasmproc.Pool) -> None:
    # The pool's only work, the abandoned map cancels its long tasks still
    # in flight or queued at once.
    results = pool.imap("sleep_ms", [1, 300] + [10_000] * 4)
    assert next(results) == 1
    started = time.monotonic()
    del results
    assert pool.map("square", [3, 4]) == [9, 16]
    assert time.monotonic() - started < 5


# Abandoning an imap (break, close(), or dropping it) cancels its queued and
# running tasks at once, not when its next task happens to end: tasks of two
# minutes each after a quick first one, and the pool must be free for
# another map within seconds. The bound is generous for a loaded 2-core
# machine; without the cancel the second map would wait two minutes.
# Eight long tasks, not a thousand: the library's map keeps up to 8 tasks
# per worker in flight but the pool queues only 4 per worker, so with more
# long tasks the map's submitting thread waits for a queue slot and the
# quick first result waits with it (a library matter, see the notes).
LONG_MS = 120_000


def _slow_items() -> list:  # type: ignore[type-arg]
    return [1] + [LONG_MS] * 8


@pytest.mark.parametrize("how", ["break", "close", "drop", "unordered"])
def test_an_abandoned_imap_cancels_its_tasks_at_once(
    sdk_tasks: wasmproc.Module, isolation: str, how: str
) -> None:
    with wasmproc.Pool(sdk_tasks, processes=2, isolation=isolation) as pool:
        if how == "break":
            for first in pool.imap("sleep_ms", _slow_items()):
                assert first == 1
                break
        elif how == "unordered":
            for first in pool.imap_unordered("sleep_ms", _slow_items()):
                assert first == 1
                break
        else:
            results = pool.imap("sleep_ms", _slow_items())
            assert next(results) == 1
            if how == "close":
                results.close()
            else:
                del results
        started = time.monotonic()
        assert pool.map("square", [3, 4, 5]) == [9, 16, 25]
        assert time.monotonic() - started < 15


def test_a_map_raising_its_first_failure_cancels_the_rest_at_once(
    sdk_tasks: wasmproc.Module, isolation: str
) -> None:
    with wasmproc.Pool(sdk_tasks, processes=2, isolation=isolation) as pool:
        # -1 is no u64: the first task fails at once, and both workers go
        # on to long tasks (one task per submission until the library
        # knows how long they take).
        with pytest.raises(wasmproc.BadInvocation):
            pool.map("sleep_ms", [-1] + [LONG_MS] * 8)
        started = time.monotonic()
        assert pool.map("square", [3]) == [9]
        assert time.monotonic() - started < 15


def test_an_abandoned_imap_leaves_other_work_of_the_pool_alone(
    sdk_tasks: wasmproc.Module, isolation: str
) -> None:
    # Another map and an apply_async run beside the abandoned imap: they
    # must end with their results, not Cancelled.
    with wasmproc.Pool(sdk_tasks, processes=3, isolation=isolation) as pool:
        other = pool.apply_async("sleep_ms", (1_500,))
        beside = pool.map_async("sleep_ms", [1_000, 1_200])
        results = pool.imap("sleep_ms", [1, 2_000, 2_000])
        assert next(results) == 1
        results.close()
        assert other.get(timeout=30) == 1_500
        assert beside.get(timeout=30) == [1_000, 1_200]


def test_an_abandoned_imap_cancels_its_tasks_at_once_beside_other_work(
    sdk_tasks: wasmproc.Module, isolation: str
) -> None:
    # The map's own tasks end at once even while other work shares the
    # pool (which goes on): the long tasks must not hold the workers for
    # their two minutes.
    with wasmproc.Pool(sdk_tasks, processes=3, isolation=isolation) as pool:
        other = pool.apply_async("sleep_ms", (4_000,))
        results = pool.imap("sleep_ms", _slow_items())
        assert next(results) == 1
        results.close()
        started = time.monotonic()
        assert pool.map("square", [3, 4, 5]) == [9, 16, 25]
        assert time.monotonic() - started < 15
        assert other.get(timeout=30) == 4_000


def test_an_input_iterable_that_raises_raises_in_the_caller(pool: wasmproc.Pool) -> None:
    def items():  # type: ignore[no-untyped-def]
        yield 1
        yield 2
        raise RuntimeError("the input broke")

    with pytest.raises(RuntimeError, match="the input broke"):
        pool.map("square", items())
    results = pool.imap("square", items())
    assert next(results) == 1 and next(results) == 4
    with pytest.raises(RuntimeError, match="the input broke"):
        next(results)


def test_a_non_json_item_raises_type_error(pool: wasmproc.Pool) -> None:
    with pytest.raises(TypeError, match="JSON-compatible"):
        pool.map("echo", [1, object()])


def test_an_initializer_runs_once_and_every_task_sees_its_state(
    init_tasks: wasmproc.Module, isolation: str
) -> None:
    with wasmproc.Pool(
        init_tasks, 2, "table", ({"len": 100, "seed": 5},), isolation=isolation
    ) as pool:
        assert pool.map("lookup", [0, 3, 99, 100]) == [5, 14, 99 * 99 + 5, None]
        # Each task starts from the snapshot, not from the task before it.
        assert pool.starmap("calls", [()] * 4) == [1, 1, 1, 1]


def test_bad_pool_arguments_say_what_to_do(sdk_tasks: wasmproc.Module) -> None:
    with pytest.raises(ValueError, match="'thread' or 'process'"):
        wasmproc.Pool(sdk_tasks, isolation="fork")
    with pytest.raises(ValueError, match="at least 1"):
        wasmproc.Pool(sdk_tasks, 0)
    with pytest.raises(TypeError, match="multiple values"):
        wasmproc.Pool(sdk_tasks, 2, processes=3)
    with pytest.raises(ValueError, match="not a directory"):
        wasmproc.Pool(sdk_tasks, dirs={"/no/such/dir": "/data"})
    with pytest.raises(TypeError, match="positional arguments only"):
        with wasmproc.Pool(sdk_tasks, 1) as pool:
            pool.apply("square", (), {"x": 1})


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX")
def test_ctrl_c_ends_a_map_and_the_pool_cleanly(sdk_tasks_path, isolation: str) -> None:  # type: ignore[no-untyped-def]
    script = f"""
import sys, wasmproc
module = wasmproc.load({str(sdk_tasks_path)!r})
with wasmproc.Pool(module, 2, isolation={isolation!r}) as pool:
    print(pool.map("square", [2]), flush=True)
    try:
        pool.map("sleep_ms", [60_000] * 4)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        raise
"""
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C's default action in the child, whatever the test runner's
        # is: a runner started in the background by a shell ignores SIGINT,
        # its children inherit that, and Python then installs no
        # KeyboardInterrupt handler at all.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "[4]"
    time.sleep(0.5)
    started = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert "interrupted" in out, err
    assert "KeyboardInterrupt" in err
    assert child.returncode != 0
    assert time.monotonic() - started < 10


def test_dropping_a_pool_with_a_callback_pending_does_not_hang(sdk_tasks_path) -> None:  # type: ignore[no-untyped-def]
    # The pool's shutdown waits for its workers; one of them wants the GIL
    # for the callback. In a child, so that a hang fails instead of hanging.
    script = f"""
import gc, threading, wasmproc
module = wasmproc.load({str(sdk_tasks_path)!r})
pool = wasmproc.Pool(module, 1)
called = threading.Event()
pool.apply_async("sleep_ms", (300,), callback=lambda _: called.set())
pool.apply_async("square", (3,), callback=lambda _: called.set())
del pool
gc.collect()
print("dropped", flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "dropped"


def test_callbacks_run_before_the_result_is_ready(pool: wasmproc.Pool) -> None:
    # As in multiprocessing: once get() returns, the callback has run.
    seen: list = []  # type: ignore[type-arg]

    def slow_callback(value: object) -> None:
        time.sleep(0.2)
        seen.append(value)

    assert pool.apply_async("square", (3,), callback=slow_callback).get(5) == 9
    assert seen == [9]
    result = pool.map_async("square", [1, 2], callback=slow_callback)
    result.wait(5)
    assert result.ready() and seen == [9, [1, 4]]
    assert pool.map_async("square", [3], callback=slow_callback).get(5) == [9]
    assert seen[-1] == [9]


def test_map_async_reports_a_refused_argument(pool: wasmproc.Pool) -> None:
    errors: list = []  # type: ignore[type-arg]
    result = pool.map_async("echo", [1, object()], error_callback=errors.append)
    with pytest.raises(TypeError, match="JSON-compatible"):
        result.get(5)
    assert not result.successful()
    assert len(errors) == 1 and isinstance(errors[0], TypeError)


def test_values_json_cannot_carry_are_refused_not_changed(pool: wasmproc.Pool) -> None:
    with pytest.raises(TypeError, match="not set"):
        pool.apply("echo", ({1, 2},))
    with pytest.raises(TypeError, match="keys must be str"):
        pool.apply("echo", ({1: 2},))
    with pytest.raises(ValueError, match="NaN and the infinities"):
        pool.apply("echo", (float("nan"),))
    with pytest.raises(ValueError, match="past the 64 bits"):
        pool.apply("echo", (1 << 70,))
    nested: list = []  # type: ignore[type-arg]
    nested.append(nested)
    with pytest.raises(ValueError, match="contain itself"):
        pool.apply("echo", (nested,))
    # What JSON carries comes back as it went.
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": -(1 << 63)}, "d": (1 << 64) - 1}
    assert pool.apply("echo", (value,)) == value


def test_imap_next_waits_at_most_its_timeout(pool: wasmproc.Pool) -> None:
    results = pool.imap("sleep_ms", [1500, 1])
    with pytest.raises(multiprocessing.TimeoutError):
        results.next(timeout=0.05)
    assert results.next(timeout=10) == 1500
    assert results.next() == 1
    with pytest.raises(StopIteration):
        results.next(timeout=1)


def test_a_pool_takes_a_modules_path(sdk_tasks_path: Path) -> None:
    with wasmproc.Pool(str(sdk_tasks_path), 1) as pool:
        assert pool.apply("square", (4,)) == 16
    with wasmproc.Pool(module=sdk_tasks_path, processes=1) as pool:
        assert pool.apply("square", (5,)) == 25
    with pytest.raises(TypeError, match="processes is how many tasks run at once"):
        wasmproc.Pool(sdk_tasks_path, "2")


def test_an_exit_without_a_message_says_its_code(pool: wasmproc.Pool) -> None:
    with pytest.raises(wasmproc.Exited, match="exited with code 3") as raised:
        pool.apply("process_exit", (3,))
    assert raised.value.exit_code == 3


def test_a_failing_initializer_raises_with_its_runs_details(init_tasks: wasmproc.Module) -> None:
    with pytest.raises(wasmproc.Trapped) as raised:
        wasmproc.Pool(init_tasks, 1, "traps")
    assert raised.value.trap == "memory_out_of_bounds"
    assert raised.value.backtrace and "traps" in raised.value.backtrace
    assert "initializer `traps`" in raised.value.message
