"""The sharing benchmark's peer: Python's multiprocessing doing what the
wasmproc rows do, between processes.

Usage: python3 share_peer.py N
Prints one JSON object per line: {"name": ..., "per_s": ...}.
"""

import json
import multiprocessing
import sys
import time


def report(name, count, elapsed):
    print(json.dumps({"name": name, "per_s": count / elapsed}), flush=True)


def echo(conn, n):
    for _ in range(n):
        conn.send(conn.recv() * 2)


def produce(queue, n):
    for i in range(n):
        queue.put(i)


def locked_count(value, n, ready, go):
    ready.release()
    go.wait()
    for _ in range(n):
        with value.get_lock():
            value.value += 1


def main():
    n = int(sys.argv[1])

    trips = max(n // 10, 1000)
    parent, child = multiprocessing.Pipe()
    worker = multiprocessing.Process(target=echo, args=(child, trips))
    worker.start()
    parent.send(0)
    parent.recv()
    started = time.perf_counter()
    for i in range(1, trips):
        parent.send(i)
        assert parent.recv() == 2 * i
    report("Pipe round trip", trips - 1, time.perf_counter() - started)
    worker.join()

    queue = multiprocessing.Queue(1024)
    worker = multiprocessing.Process(target=produce, args=(queue, n))
    started = time.perf_counter()
    worker.start()
    for _ in range(n):
        queue.get()
    report("Queue, one producer process, the parent consuming", n, time.perf_counter() - started)
    worker.join()

    value = multiprocessing.Value("q", 0)
    per_worker = max(n // 2, 1000)
    ready, go = multiprocessing.Semaphore(0), multiprocessing.Event()
    workers = [
        multiprocessing.Process(target=locked_count, args=(value, per_worker, ready, go))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    # The clock starts once both processes are up, as the pool's are.
    for _ in workers:
        ready.acquire()
    started = time.perf_counter()
    go.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    assert value.value == 2 * per_worker
    report("Value += 1 under its lock, 2 processes", 2 * per_worker, elapsed)


if __name__ == "__main__":
    main()
