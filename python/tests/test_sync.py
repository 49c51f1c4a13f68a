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
