"""``wasmproc.SharedRegion``, ``Lock`` and ``Event`` between this process
and a pool's tasks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import wasmproc


@pytest.fixture(scope="session")
def share_tasks(guests: Path) -> wasmproc.Module:
    return wasmproc.load(guests / "share_tasks.wasm")


def test_a_region_is_read_and_written_here() -> None:
    region = wasmproc.SharedRegion(64)
    assert region.size == len(region) == 64
    assert region.read() == bytes(64)
    region.write(16, b"hello")
    assert region.read(16, 5) == b"hello"
    region.store_u64(0, 41)
    assert region.add_u64(0, 1) == 41 and region.load_u64(0) == 42
    with pytest.raises(wasmproc.TaskError):
        region.write(62, b"past the end")
    # Bad values are ValueErrors too, as Python's own refusals are.
    with pytest.raises(ValueError, match="not aligned"):
        region.load_u64(4)
    with pytest.raises(ValueError, match="at least one byte"):
        wasmproc.SharedRegion(0)


def test_tasks_count_in_a_region_under_a_lock(share_tasks: wasmproc.Module, isolation: str) -> None:
    counts = wasmproc.SharedRegion(64)
    lock = wasmproc.Lock()
    with wasmproc.Pool(
        share_tasks, 4, isolation=isolation, share={"counts": counts, "lock": lock}, timeout=60
    ) as pool:
        assert pool.map("locked_count", [500] * 4) == [500] * 4
        assert counts.load_u64(0) == 2000
        assert pool.map("count", [100, 100])[-1] >= 200
    assert counts.load_u64(0) == 2200


def test_a_lock_held_here_keeps_tasks_out(share_tasks: wasmproc.Module, isolation: str) -> None:
    lock = wasmproc.Lock()
    with wasmproc.Pool(share_tasks, 1, isolation=isolation, share={"lock": lock}, timeout=30) as pool:
        assert lock.acquire()
        assert not lock.acquire(timeout=0.05)
        taken = pool.apply_async("take_lock")
        time.sleep(0.3)
        assert not taken.ready()
        lock.release()
        assert taken.get(10) == "acquired"
    with lock:
        assert not lock.acquire(block=False)
    with pytest.raises(ValueError, match="unacquired"):
        lock.release()


def test_an_event_set_here_wakes_a_task(share_tasks: wasmproc.Module, isolation: str) -> None:
    go = wasmproc.Event()
    started = wasmproc.Queue()
    with wasmproc.Pool(
        share_tasks, 1, isolation=isolation, share={"go": go, "started": started}, timeout=30
    ) as pool:
        waiting = pool.apply_async("wait_event")
        assert started.get(timeout=10) == 0
        assert not waiting.ready()
        go.set()
        assert waiting.get(10) is True
    assert go.is_set() and go.wait(0)
    go.clear()
    assert not go.wait(0.05)
    threading.Timer(0.1, go.set).start()
    assert go.wait(5)


def test_a_semaphore_bounds_the_tasks_holding_it(share_tasks: wasmproc.Module, isolation: str) -> None:
    permits = wasmproc.Semaphore(2)
    counts = wasmproc.SharedRegion(64)
    with wasmproc.Pool(
        share_tasks, 4, isolation=isolation, share={"permits": permits, "counts": counts}, timeout=60
    ) as pool:
        most = pool.map("with_permit", [100] * 4)
    assert max(most) <= 2
    assert permits.get_value() == 2
    with permits:
        assert permits.get_value() == 1
    assert permits.acquire() and permits.acquire()
    assert not permits.acquire(timeout=0.05)


def test_a_barrier_meets_this_process_and_tasks(share_tasks: wasmproc.Module, isolation: str) -> None:
    meet = wasmproc.Barrier(3)
    with wasmproc.Pool(share_tasks, 2, isolation=isolation, share={"meet": meet}, timeout=30) as pool:
        tasks = [pool.apply_async("meet") for _ in range(2)]
        mine = meet.wait(timeout=20)
        lasts = [t.get(20) for t in tasks] + [mine]
    assert lasts.count(True) == 1
    with pytest.raises(threading.BrokenBarrierError):
        wasmproc.Barrier(2).wait(timeout=0.05)


def test_a_pipe_talks_with_a_task(share_tasks: wasmproc.Module, isolation: str) -> None:
    here, there = wasmproc.Pipe()
    with wasmproc.Pool(share_tasks, 1, isolation=isolation, pipe=there, timeout=30) as pool:
        answering = pool.apply_async("doubler", (3,))
        answers = []
        for n in (1, 2, 21):
            here.send(n)
            answers.append(here.recv())
        assert answers == [2, 4, 42]
        assert answering.get(10) == 3
        progress = pool.apply_async("progress", (3,))
        assert progress.get(10) == 3
        assert [here.recv() for _ in range(3)] == [1, 2, 3]
        assert not here.poll(0.05)
    with pytest.raises(TypeError, match="JSON-compatible"):
        here.send(object())
    with pytest.raises(ValueError, match="two-way"):
        wasmproc.Pipe(duplex=False)
    a, b = wasmproc.Pipe()
    b.send({"k": [1]})
    assert a.poll(1) and a.recv() == {"k": [1]}


def test_a_pipe_whose_other_end_is_closed_ends_with_eof() -> None:
    a, b = wasmproc.Pipe()
    b.send("last")
    b.close()
    assert a.recv() == "last"
    with pytest.raises(EOFError):
        a.recv()
    with pytest.raises(OSError, match="closed"):
        b.send(1)
