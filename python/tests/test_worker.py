"""Worker processes are this Python running ``wasmproc._worker``: no
``wasmproc`` binary is needed anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_a_process_pool_runs_with_no_wasmproc_binary_on_path(sdk_tasks_path: Path, tmp_path: Path) -> None:
    # A PATH with nothing on it but an empty directory.
    empty = tmp_path / "bin"
    empty.mkdir()
    assert shutil.which("wasmproc", path=str(empty)) is None
    script = f"""
import wasmproc
module = wasmproc.load({str(sdk_tasks_path)!r})
with wasmproc.Pool(module, 2, isolation="process") as pool:
    print(pool.map("square", range(5)), sorted(set(pool.map("env_count", [None] * 4))))
"""
    env = {k: v for k, v in os.environ.items() if k != "WASMPROC_WORKER"}
    env["PATH"] = str(empty)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 1, 4, 9, 16] [0]"


def test_the_worker_module_refuses_to_run_when_no_pool_started_it() -> None:
    env = {k: v for k, v in os.environ.items() if k != "WASMPROC_WORKER"}
    done = subprocess.run(
        [sys.executable, "-m", "wasmproc._worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "not started as a wasmproc worker" in done.stderr
