"""``wasmproc.Queue`` between this process and a pool's tasks."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

import wasmproc


@pytest.fixture(scope="session")
def share_tasks(guests: Path) -> wasmproc.Module:
    return wasmproc.load(guests / "share_tasks.wasm")


def test_a_queue_has_multiprocessing_methods() -> None:
    q = wasmproc.Queue(2)
    assert q.empty() and not q.full()
    q.put({"a": [1, 2]})
    q.put_nowait("b")
    assert q.full() and q.qsize() == 2
    with pytest.raises(queue.Full):
        q.put("c", timeout=0.05)
    with pytest.raises(queue.Full):
        q.put_nowait("c")
    assert q.get() == {"a": [1, 2]}
    assert q.get_nowait() == "b"
    started = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)
    assert time.monotonic() - started >= 0.09
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(TypeError, match="JSON-compatible"):
        q.put(object())
    with pytest.raises(TypeError, match="not set"):
        q.put({1, 2})
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.put(1)


def test_a_get_waits_for_a_put_from_another_thread() -> None:
    q = wasmproc.Queue()
    threading.Timer(0.1, q.put, args=(42,)).start()
    assert q.get(timeout=5) == 42


def test_tasks_put_and_this_process_gets(share_tasks: wasmproc.Module, isolation: str) -> None:
    jobs = wasmproc.Queue(16)
    with wasmproc.Pool(share_tasks, 2, isolation=isolation, share={"jobs": jobs}) as pool:
        result = pool.apply_async("produce", (50,))
        taken = [jobs.get(timeout=10) for _ in range(50)]
        assert result.get(10) == 50
    assert taken == list(range(50))


def test_four_tasks_share_a_queue_this_process_feeds(share_tasks: wasmproc.Module, isolation: str) -> None:
    jobs = wasmproc.Queue(8)
    with wasmproc.Pool(share_tasks, 4, isolation=isolation, share={"jobs": jobs}, timeout=30) as pool:
        consumers = [pool.apply_async("consume") for _ in range(4)]
        for n in range(1, 201):
            jobs.put(n, timeout=10)
        jobs.close()
        results = [c.get(30) for c in consumers]
    assert sum(total for total, _ in results) == sum(range(1, 201))
    assert sum(taken for _, taken in results) == 200


def test_only_queues_can_be_shared(share_tasks: wasmproc.Module) -> None:
    with pytest.raises(TypeError, match="Queue, SharedRegion, Lock, Event, Semaphore or Barrier"):
        wasmproc.Pool(share_tasks, share={"jobs": []})
