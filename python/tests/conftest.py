"""Fixtures: the real test guests, built from this repository's source."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import wasmproc

REPO = Path(__file__).resolve().parents[2]


def _build_guests() -> Path:
    """The directory with the test guests' .wasm files.

    ``WASMPROC_TEST_GUESTS`` names a directory that already holds them;
    otherwise they are built from ``tests/guests`` with cargo (as the Rust
    tests' build script does, into a target directory of their own: cargo
    makes that a no-op when nothing changed).
    """
    given = os.environ.get("WASMPROC_TEST_GUESTS")
    if given:
        return Path(given)
    target = REPO / "target" / "python-test-guests"
    env = dict(os.environ)
    # The outer build's flags are for the host, not for wasm.
    for var in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET"):
        env.pop(var, None)
    command = [
        "cargo",
        "build",
        "--release",
        "--locked",
        "--target",
        "wasm32-wasip1",
        "--manifest-path",
        str(REPO / "tests" / "guests" / "Cargo.toml"),
        "--target-dir",
        str(target),
    ]
    try:
        subprocess.run(command, check=True, env=env, cwd=REPO)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.exit(
            f"building the test guests failed ({error}): run `{' '.join(command)}` from the "
            "repository root (it needs rustup's wasm32-wasip1 target), or set "
            "WASMPROC_TEST_GUESTS to a directory holding sdk_tasks.wasm",
            returncode=2,
        )
    return target / "wasm32-wasip1" / "release"


@pytest.fixture(scope="session")
def guests() -> Path:
    return _build_guests()


@pytest.fixture(scope="session")
def sdk_tasks_path(guests: Path) -> Path:
    return guests / "sdk_tasks.wasm"


@pytest.fixture(scope="session")
def sdk_tasks(sdk_tasks_path: Path) -> wasmproc.Module:
    return wasmproc.load(sdk_tasks_path)


@pytest.fixture(scope="session")
def init_tasks(guests: Path) -> wasmproc.Module:
    return wasmproc.load(guests / "init_tasks.wasm")


@pytest.fixture(params=["thread", "process"])
def isolation(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def python_runner() -> Path:
    """The runner of Python functions (built with componentize-py once,
    then cached). Without componentize-py the Python-function tests are
    skipped, unless ``WASMPROC_REQUIRE_COMPONENTIZE_PY`` is set (CI)."""
    from wasmproc import _runner

    try:
        return _runner.runner_path()
    except wasmproc.CannotRun as error:
        if os.environ.get("WASMPROC_REQUIRE_COMPONENTIZE_PY"):
            raise
        pytest.skip(f"Python functions as tasks: {error.message}")
