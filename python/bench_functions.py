"""The issue's targets for Python functions as tasks, measured once here:

1. ``wasmproc.Pool(2).map(lambda x: x * x, range(N))``: tasks per second,
   a fresh sandbox (a fresh CPython instance) per task, on 1 and 2 thread
   workers and 2 worker processes, beside
   ``multiprocessing.Pool(2).map(square, range(N), chunksize=1)``;
2. the first result of a second ``Pool`` (the runner component cached):
   in this process, and in a new process (import, load, first result);
3. a CPU-bound pure-Python function (about 50 ms natively): its time per
   task in the sandbox against native CPython, on 1 and 2 workers;
4. an initializer that builds a table (about 300k entries, in pure Python):
   run once and snapshot (the first pool, then a second one that finds the
   snapshot cached) against run in each task's sandbox (an initializer that
   uses an object the pool shares), 200 lookups each.

Usage (from the repository root, in the venv that has the package with its
``functions`` extra): ``python python/bench_functions.py [--n 2000]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import time
from typing import Any, Callable, List

import wasmproc


def square(x: int) -> int:
    return x * x


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


TABLE: List[int] = []


def build_table(n: int) -> None:
    global TABLE
    TABLE = [i * i % 1009 for i in range(n)]


# Shared with the pool that runs its initializer in each task's sandbox: an
# initializer that uses an object the pool shares cannot be snapshot.
BUILT = wasmproc.Queue()


def build_table_in_each_task(n: int) -> None:
    build_table(n)
    BUILT.put(n)


def lookup(i: int) -> int:
    return int(TABLE[i])


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--cpu-tasks", type=int, default=8)
    args = parser.parse_args()
    n = args.n

    first = timed(lambda: wasmproc.Pool(processes=1).terminate())
    print(f"first Pool() of this process (runner built/compiled if not cached): {first:.3f} s")

    for workers, isolation in ((1, "thread"), (2, "thread"), (2, "process")):
        with wasmproc.Pool(processes=workers, isolation=isolation) as pool:
            pool.map(lambda x: x, range(4))  # warm
            seconds = timed(lambda: pool.map(lambda x: x * x, range(n)))
            by_name = timed(lambda: pool.map(abs, range(n)))
        print(
            f"wasmproc.Pool({workers}, isolation={isolation!r}).map(lambda x: x * x, range({n})): {seconds:.2f} s, "
            f"{n / seconds:.0f} tasks/s, {seconds / n * workers * 1000:.2f} ms per task per worker "
            f"(abs, by name, no source to compile: {by_name / n * workers * 1000:.2f} ms)"
        )
    with multiprocessing.Pool(2) as mp:
        mp_seconds = timed(lambda: mp.map(square, range(n), chunksize=1))
    print(f"multiprocessing.Pool(2).map(square, chunksize=1): {mp_seconds:.2f} s, {n / mp_seconds:.0f} tasks/s")

    def second_pool() -> None:
        with wasmproc.Pool(processes=2) as pool:
            pool.apply(lambda: 1)

    print(f"first result of a second Pool, same process: {timed(second_pool) * 1000:.0f} ms")
    code = "import wasmproc\nwith wasmproc.Pool(processes=2) as pool: pool.apply(abs, (1,))"
    fresh = timed(lambda: subprocess.run([sys.executable, "-c", code], check=True))
    print(f"first result of a Pool in a new process (interpreter start, import, load): {fresh * 1000:.0f} ms")

    # Calibrate burn to about 50 ms natively.
    size = 100_000
    while timed(lambda: burn(size)) < 0.05:
        size *= 2
    size = int(size * 0.05 / timed(lambda: burn(size)))
    native = min(timed(lambda: burn(size)) for _ in range(3))
    print(f"burn({size}) natively: {native * 1000:.1f} ms")
    tasks = args.cpu_tasks
    for workers in (1, 2):
        with wasmproc.Pool(processes=workers, timeout=60) as pool:
            pool.apply(burn, (10,))
            seconds = timed(lambda: pool.map(burn, [size] * tasks))
        per_task = seconds / tasks * workers
        print(
            f"sandboxed, {workers} worker(s): {seconds:.2f} s for {tasks} tasks, "
            f"{per_task * 1000:.1f} ms per task per worker ({per_task / native:.2f}x native), "
            f"{tasks / seconds:.1f} tasks/s"
        )

    # A new table size each run, so that the first pool makes its snapshot.
    entries = 300_000 + time.time_ns() % 1000
    lookups = 200
    for name, initializer, grants in (
        ("initializer once, first pool (makes the snapshot)", build_table, {}),
        ("initializer once, second pool (snapshot cached)", build_table, {}),
        (
            "initializer in each task (it uses a shared queue)",
            build_table_in_each_task,
            {"share": {"built": BUILT}},
        ),
    ):
        started = time.perf_counter()
        with wasmproc.Pool(2, initializer, (entries,), **grants) as pool:
            start = time.perf_counter() - started
            assert pool.map(lookup, range(lookups)) == [i * i % 1009 for i in range(lookups)]
        total = time.perf_counter() - started
        print(
            f"{name}: pool start {start:.2f} s, {lookups} tasks done at {total:.2f} s "
            f"({(total - start) / lookups * 1000:.1f} ms per task)"
        )


if __name__ == "__main__":
    main()
