"""The issue's first target, measured once on this machine:

    wasmproc.Pool(module, 2).map("square", range(N))
    vs the same map through the ``wasmproc map`` binary (NDJSON in, -j 2)
    vs multiprocessing.Pool(2).map(square, range(N), chunksize=1)

Usage (from the repository root, in the venv that has the package):

    python python/bench.py [--n 200000] [--wasm PATH] [--binary PATH]

``--wasm`` defaults to the test guests' sdk_tasks.wasm (built as the tests
build it); ``--binary`` to ``wasmproc`` on PATH, else target/release, else
target/debug. Prints each time, the tasks per second, and the ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wasmproc

REPO = Path(__file__).resolve().parents[1]


def square(x: int) -> int:
    return x * x


def find_binary() -> str:
    for candidate in (
        shutil.which("wasmproc"),
        REPO / "target" / "release" / "wasmproc",
        REPO / "target" / "debug" / "wasmproc",
    ):
        if candidate and Path(candidate).exists():
            return str(candidate)
    sys.exit("no wasmproc binary: build one (cargo build --release -p wasmproc-cli) or pass --binary")


def timed(label: str, n: int, run) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    print(f"{label:<48} {seconds:8.2f} s  {n / seconds:10.0f} tasks/s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument(
        "--wasm",
        default=str(REPO / "target" / "python-test-guests" / "wasm32-wasip1" / "release" / "sdk_tasks.wasm"),
    )
    parser.add_argument("--binary", default=None)
    parser.add_argument("--isolation", default="thread", choices=["thread", "process"])
    args = parser.parse_args()
    n = args.n
    binary = args.binary or find_binary()
    module = wasmproc.load(args.wasm)
    print(f"N={n}, 2 workers, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, binary {binary}")

    expected = [x * x for x in range(n)]

    def python_pool() -> None:
        with wasmproc.Pool(module, 2, isolation=args.isolation) as pool:
            assert pool.map("square", range(n)) == expected

    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in.ndjson"
        inputs.write_text("".join(f"{x}\n" for x in range(n)))

        def binary_map() -> None:
            with open(inputs, "rb") as stdin:
                done = subprocess.run(
                    [binary, "map", "--task", "square", "-j", "2", "--results-only",
                     "--isolation", args.isolation, args.wasm],
                    stdin=stdin, stdout=subprocess.PIPE, check=True,
                )
            assert done.stdout.count(b"\n") == n

        def multiprocessing_pool() -> None:
            with multiprocessing.Pool(2) as pool:
                assert pool.map(square, range(n), chunksize=1) == expected

        ours = timed(f"wasmproc.Pool(2).map ({args.isolation})", n, python_pool)
        theirs = timed(f"wasmproc map -j 2 ({args.isolation})", n, binary_map)
        mp = timed("multiprocessing.Pool(2).map chunksize=1", n, multiprocessing_pool)
    print(f"Python package / binary: {ours / theirs:.2f}x the time (target <= 1.5x)")
    print(f"multiprocessing / Python package: {mp / ours:.2f}x faster (target >= 3x)")


if __name__ == "__main__":
    main()
