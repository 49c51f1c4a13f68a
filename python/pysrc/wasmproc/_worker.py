"""The worker process of a process pool: ``python -m wasmproc._worker``.

A pool with ``isolation="process"`` starts this module (with
``WASMPROC_WORKER=1``); it serves the pool over its stdin and stdout and
exits. Nothing else is imported, and nothing may print: stdout is the
pool's channel.
"""

from wasmproc._native import serve_as_worker

if __name__ == "__main__":
    serve_as_worker()
