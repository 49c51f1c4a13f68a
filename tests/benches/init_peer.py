"""The initializer benchmark's peer: multiprocessing.Pool(2, initializer=...)
under spawn (what Windows gets) and under fork, the same sieve and the same
queries as the wasmproc rows. Prints one JSON line per row.

Usage: python3 init_peer.py LIMIT QUERIES_FILE
(QUERIES_FILE: one number per line; the answers are summarized as the count
of primes among them, which the wasmproc rows must match.)
"""

import itertools
import json
import multiprocessing
import sys
import time

SIEVE = None
PRIMES = None


def build_sieve(limit):
    """The example guest's initializer: a byte per number, and the primes."""
    global SIEVE, PRIMES
    sieve = bytearray([1]) * (limit + 1)
    sieve[0] = 0
    sieve[1] = 0
    n = 2
    while n * n <= limit:
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit + 1, n)))
        n += 1
    SIEVE = sieve
    PRIMES = list(itertools.compress(range(limit + 1), sieve))


def is_prime(n):
    return bool(SIEVE[n])


def run(method, limit, queries):
    context = multiprocessing.get_context(method)
    started = time.perf_counter()
    with context.Pool(2, initializer=build_sieve, initargs=(limit,)) as pool:
        answers = pool.map(is_prime, queries, chunksize=max(1, len(queries) // 64))
    seconds = time.perf_counter() - started
    return seconds, sum(answers)


def main():
    limit = int(sys.argv[1])
    with open(sys.argv[2]) as file:
        queries = [int(line) for line in file if line.strip()]
    for method in ("spawn", "fork"):
        if method not in multiprocessing.get_all_start_methods():
            continue
        seconds, primes = run(method, limit, queries)
        print(json.dumps({"name": method, "seconds": seconds, "primes": primes}), flush=True)


if __name__ == "__main__":
    main()
