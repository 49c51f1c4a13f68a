"""The benchmark's peer: Python's multiprocessing on the same trivial task.

Usage: python3 peer.py TASKS WORKERS [pool-only]
(`pool-only`: only the Pool.map chunksize=1 row, as the scaling benchmark
wants it at each worker count.)
Prints one JSON object per line: {"name": ..., "tasks_per_s": ...}.
"""

import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def square(x):
    return x * x


def timed(name, tasks, run):
    started = time.perf_counter()
    results = run()
    elapsed = time.perf_counter() - started
    assert results[-1] == (tasks - 1) ** 2, name
    print(json.dumps({"name": name, "tasks_per_s": tasks / elapsed}), flush=True)


def main():
    tasks, workers = int(sys.argv[1]), int(sys.argv[2])
    with multiprocessing.Pool(workers) as pool:
        pool.map(square, range(1000))  # start the workers before timing
        timed("Pool.map chunksize=1", tasks, lambda: pool.map(square, range(tasks), chunksize=1))
        if sys.argv[3:] == ["pool-only"]:
            return
        timed("Pool.map default chunksize", tasks, lambda: pool.map(square, range(tasks)))
    # ProcessPoolExecutor sends one item per message: a tenth of the tasks
    # keeps its run as short as the others.
    small = max(tasks // 10, 1000)
    with ProcessPoolExecutor(workers) as executor:
        list(executor.map(square, range(1000)))
        timed("ProcessPoolExecutor.map", small, lambda: list(executor.map(square, range(small))))


if __name__ == "__main__":
    main()
