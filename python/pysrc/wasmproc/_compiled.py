"""A pool's compiled Python functions: each distinct function is compiled
once, in a sandbox of its own, and later calls take the code instead of
compiling the source again (most of a small call's work inside).

Why this is sound, with a fresh sandbox per task kept:

- The compile sandbox (the runner's ``compile-functions``, run here with
  ``Module.run``: no directory, no environment, nothing shared) gets the
  functions' source text and the names of their free variables, nothing
  else: no captured value, no global, no argument of any task. It parses
  and compiles; none of the function's code runs there. So the code is a
  function of the source alone, which is what the key hashes: no task can
  reach, let alone change, what a later task runs.
- Each task still builds its function in its own fresh sandbox, from that
  code and the task's own copy of the captured values and globals, exactly
  as from source (the same code object: ``compile`` is only skipped).
- The code is marshalled by the sandbox's CPython and only ever loaded by
  the same runner (the cache lives in the pool, which has one runner), and
  the runner checks the interpreter's magic number before loading it; this
  process never unmarshals it.
- When compiling fails (a source that does not parse, a limit), the cache
  remembers that and the calls ship the source, which the task compiles as
  before (and reports the error as before).

A function sent once (one ``apply``) is not worth a sandbox of its own: it
is compiled at its second call, or at once for a map.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Callable, Dict, Optional, Set

from ._functions import sources, with_code

_log = logging.getLogger("wasmproc")

# The runner's export that compiles a payload's functions.
COMPILE = "compile-functions"


class CompiledFunctions:
    """The code of the functions a pool has run, by a hash of their source.

    ``compile``: runs ``compile-functions`` on the sources (JSON text) in
    a fresh sandbox and returns its result (base64 text); it raises when
    the compile failed."""

    def __init__(self, compile: Callable[[str], str]) -> None:
        self._compile = compile
        self._lock = threading.Lock()
        # None: the compile failed; the source is shipped.
        self._codes: Dict[str, Optional[str]] = {}
        # Sources seen once, in a single call, and not compiled yet.
        self._seen: Set[str] = set()

    def __len__(self) -> int:
        return sum(code is not None for code in self._codes.values())

    def attach(self, payload: str, now: bool) -> str:
        """``payload`` with its functions' code, compiled when the pool sees
        their source the second time, or the first with ``now`` (a map);
        ``payload`` itself before that, or when compiling failed."""
        source = sources(payload)
        key = hashlib.sha256(source.encode()).hexdigest()
        with self._lock:
            known = key in self._codes
            code = self._codes.get(key)
            if not known and not now and key not in self._seen:
                self._seen.add(key)
                return payload
        if not known:
            # Outside the lock: another thread compiling the same source
            # makes the same code.
            code = self._compile_or_none(source)
            with self._lock:
                code = self._codes.setdefault(key, code)
        return payload if code is None else with_code(payload, code)

    def _compile_or_none(self, source: str) -> Optional[str]:
        try:
            code = self._compile(source)
        except Exception as error:  # noqa: BLE001 - the source path reports it
            _log.debug("wasmproc: compiling a function in the sandbox failed: %s", error)
            return None
        return code if isinstance(code, str) and code else None
