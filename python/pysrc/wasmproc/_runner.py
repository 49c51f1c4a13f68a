"""The sandbox's Python runner: the component of ``_sandbox/`` (``app.py``
and ``wit/runner.wit``), built with componentize-py at its first use and
kept in the cache directory, keyed by componentize-py's version and a hash
of the runner's source; later pools (and programs) load it from there, and
the library's compiled-code cache makes those loads cheap."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from . import _native
from ._errors import CannotRun

if TYPE_CHECKING:
    from ._pool import Module

SOURCE = Path(__file__).resolve().parent / "_sandbox"

COMPONENTIZE_PY = "0.25.1"
"""The componentize-py version the package pins (its ``functions`` extra)."""

INSTALL = (
    "pip install 'wasmproc[functions]' (from a clone: pip install './python[functions]'), "
    f"which installs componentize-py=={COMPONENTIZE_PY}"
)

# The SHA-256 of componentize-py 0.25.1's compiled module, which carries the
# CPython (compiled to WebAssembly) that the sandbox runs, in each wheel PyPI
# publishes for it (macOS x86-64 and arm64, Linux aarch64 and x86-64,
# Windows x86-64), read from the wheels and checked against their RECORD.
# The wheels' own digests are python/requirements-functions.txt's.
COMPONENTIZE_PY_SHA256 = frozenset(
    (
        "f40e7bd9388e403c6e7820773e2105ae503df36c1d167283b0ad71f7d870a5bd",
        "e533d8099cd0381ec1d2c6ec5af962565938d766d7961ca4e45a3517b2bb4217",
        "52f9f72d2ceeacca36477caf520d6a6efce3ebb5d7fc34ca9e6b056953de2b68",
        "260941cadb237f0ae5a19dcbc01220ca48d32dbd58d8e451c6a2f95497e3e291",
        "69578243f846465aaa948c4d794ca2bd9b1a6489f61ce196e72e52601b12e71e",
    )
)

# Its file name in the package, by platform.
_COMPILED_NAMES = ("componentize_py.abi3.so", "componentize_py.pyd")

_log = logging.getLogger("wasmproc")
_lock = threading.Lock()
_loaded: Optional["Module"] = None


def runner() -> "Module":
    """The runner component, loaded once per process (built first when
    the cache does not hold it)."""
    global _loaded
    with _lock:
        if _loaded is None:
            from ._pool import load

            _loaded = load(runner_path())
        return _loaded


def componentize_py_version() -> str:
    """The installed componentize-py's version; ``CannotRun`` saying how
    to install it when there is none."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("componentize-py")
    except PackageNotFoundError:
        raise CannotRun(
            "Python functions as tasks (wasmproc.Pool() with no module) need componentize-py, "
            f"which builds the sandbox's CPython runner once: {INSTALL}",
            status="cannot_run",
            exit_code=126,
        ) from None


def runner_path() -> Path:
    """Where the runner component is, building it when needed."""
    version = componentize_py_version()
    digest = hashlib.sha256(version.encode())
    for file in sorted(SOURCE.rglob("*")):
        if file.is_file() and "__pycache__" not in file.parts:
            digest.update(file.relative_to(SOURCE).as_posix().encode() + b"\0" + file.read_bytes())
    cache = _native.cache_dir()
    base = Path(cache) if cache is not None else Path(tempfile.gettempdir()) / "wasmproc"
    path = base / "python-runner" / f"componentize-py-{version}-{digest.hexdigest()[:16]}.wasm"
    if not path.is_file():
        _build(path)
        _prune(path)
    return path


# A runner of another source or componentize-py version (an older package)
# is kept this long after it was built, for a program that still uses it.
_KEEP_SECONDS = 30 * 24 * 3600


def verify_componentize_py() -> Path:
    """The compiled module of the componentize-py that builds the runner,
    once its SHA-256 is found among the pinned release's; ``CannotRun``
    saying how to reinstall it otherwise. What the sandbox runs comes from
    this file, so the package runs only the build it was tested with."""
    import importlib.util

    spec = importlib.util.find_spec("componentize_py")
    places = list(spec.submodule_search_locations or ()) if spec is not None else []
    found = [Path(place) / name for place in places for name in _COMPILED_NAMES]
    compiled = next((path for path in found if path.is_file()), None)
    reinstall = f"pip install --force-reinstall 'componentize-py=={COMPONENTIZE_PY}'"
    if compiled is None:
        raise CannotRun(
            f"componentize-py's compiled module is not where it belongs (looked for "
            f"{', '.join(map(str, found)) or 'componentize_py'}): {reinstall}",
            status="cannot_run",
            exit_code=126,
        )
    digest = hashlib.sha256()
    with open(compiled, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() not in COMPONENTIZE_PY_SHA256:
        raise CannotRun(
            f"{compiled} (SHA-256 {digest.hexdigest()}) is not componentize-py "
            f"{COMPONENTIZE_PY} as PyPI publishes it, which builds the sandbox's CPython: "
            f"the package runs only that build. Reinstall it: {reinstall}",
            status="cannot_run",
            exit_code=126,
        )
    return compiled


def _prune(current: Path) -> None:
    """Removes old runners beside ``current`` (each is ~40 MB)."""
    now = time.time()
    for other in current.parent.glob("componentize-py-*.wasm"):
        try:
            if other != current and now - other.stat().st_mtime > _KEEP_SECONDS:
                other.unlink()
        except OSError:
            continue  # another program removed or uses it


def _build(path: Path) -> None:
    """Builds the runner into ``path``: from a copy of its source (the
    build writes bytecode beside it, and the package's directory may be
    read-only), into a temporary file beside ``path``, then renamed, so
    that programs building at once each see a whole file."""
    # The build imports the package the check found: its directory first.
    site = str(verify_componentize_py().parent.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    _log.warning(
        "wasmproc: building the sandbox's Python runner with componentize-py, once "
        "(about a minute; then cached in %s)",
        path.parent,
    )
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".wasm.tmp")
    os.close(handle)
    # componentize-py adds a virtual environment's site-packages to what it
    # bundles; the runner needs only the standard library and app.py.
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    # Its errors without a Rust backtrace of componentize-py itself.
    env["RUST_BACKTRACE"] = "0"
    try:
        with tempfile.TemporaryDirectory(prefix="wasmproc-runner-") as scratch:
            source = Path(scratch) / "runner"
            shutil.copytree(SOURCE, source, ignore=shutil.ignore_patterns("__pycache__"))
            command = [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {site!r}); from componentize_py import script; "
                "sys.argv[0] = 'componentize-py'; sys.exit(script())",
                "--quiet",
                "-d",
                str(source / "wit"),
                "-w",
                "runner",
                "componentize",
                "-p",
                str(source),
                "app",
                "-o",
                temporary,
            ]
            built = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True)
        if built.returncode != 0:
            raise CannotRun(
                f"componentize-py failed to build the Python runner (exit status "
                f"{built.returncode}): {built.stderr.strip() or built.stdout.strip()}. "
                f"The package is tested with componentize-py=={COMPONENTIZE_PY}: {INSTALL}",
                status="cannot_run",
                exit_code=126,
            )
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
