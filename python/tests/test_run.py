"""``wasmproc.load`` and ``Module.run``: values in and out, and each
failure's exception."""

from __future__ import annotations

from pathlib import Path

import pytest

import wasmproc


def test_a_module_lists_its_tasks_and_runs_them(sdk_tasks: wasmproc.Module) -> None:
    assert {"square", "add", "echo", "spin"} <= set(sdk_tasks.tasks)
    assert sdk_tasks.name == "sdk_tasks.wasm"
    assert sdk_tasks.run("square", 7) == 49
    assert sdk_tasks.run("add", 1, 2) == 3
    assert sdk_tasks.run("nothing") is None


def test_json_compatible_values_cross_both_ways(sdk_tasks: wasmproc.Module) -> None:
    value = {"name": "ünïcode", "n": -3, "x": 2.5, "ok": True, "none": None, "list": [1, [2, {}]]}
    assert sdk_tasks.run("echo", value) == value
    # Tuples go as arrays.
    assert sdk_tasks.run("echo", (1, 2)) == [1, 2]


def test_an_argument_that_is_not_json_is_a_type_error(sdk_tasks: wasmproc.Module) -> None:
    with pytest.raises(TypeError, match="JSON-compatible"):
        sdk_tasks.run("echo", object())


def test_a_timeout_ends_an_endless_task(sdk_tasks: wasmproc.Module) -> None:
    with pytest.raises(wasmproc.TimedOut) as raised:
        sdk_tasks.run("spin", timeout=0.2)
    assert raised.value.exit_code == 142
    assert raised.value.status == "timed_out"
    assert "time limit" in raised.value.message
    assert isinstance(raised.value, wasmproc.TaskError)


def test_a_memory_limit_ends_a_task_that_allocates_past_it(sdk_tasks: wasmproc.Module) -> None:
    assert sdk_tasks.run("allocate_mib", 4, max_memory="32MiB") == 4
    with pytest.raises(wasmproc.MemoryExceeded) as raised:
        sdk_tasks.run("allocate_mib", 64, max_memory="16MiB")
    assert raised.value.exit_code == 137


def test_a_trap_names_its_kind(sdk_tasks: wasmproc.Module) -> None:
    with pytest.raises(wasmproc.Trapped) as raised:
        sdk_tasks.run("unreachable")
    assert raised.value.exit_code == 134
    assert raised.value.trap == "unreachable"


def test_a_guest_exit_code_and_message_come_back(sdk_tasks: wasmproc.Module) -> None:
    with pytest.raises(wasmproc.Exited) as raised:
        sdk_tasks.run("fail_with", 3, "no such order")
    assert raised.value.exit_code == 3
    assert raised.value.message == "no such order"
    assert "no such order" in str(raised.value)


def test_a_panic_is_exit_code_101_with_its_message_and_stderr(sdk_tasks: wasmproc.Module) -> None:
    with pytest.raises(wasmproc.Exited) as raised:
        sdk_tasks.run("panics", "boom")
    assert raised.value.exit_code == 101
    assert "boom" in raised.value.message


def test_fuel_runs_out(sdk_tasks: wasmproc.Module) -> None:
    with pytest.raises(wasmproc.FuelExhausted) as raised:
        sdk_tasks.run("count_to", 10**9, fuel=10_000)
    assert raised.value.exit_code == 152


def test_an_argument_of_the_wrong_type_is_bad_invocation(sdk_tasks: wasmproc.Module) -> None:
    with pytest.raises(wasmproc.BadInvocation) as raised:
        sdk_tasks.run("square", "seven")
    assert raised.value.exit_code == 128


def test_an_unknown_task_cannot_run(sdk_tasks: wasmproc.Module) -> None:
    with pytest.raises(wasmproc.CannotRun) as raised:
        sdk_tasks.run("no_such_task", 1)
    assert raised.value.exit_code == 126


def test_loading_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(wasmproc.NotFound) as raised:
        wasmproc.load(tmp_path / "missing.wasm")
    assert raised.value.exit_code == 127


def test_loading_a_file_that_is_no_module_cannot_run(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.wasm"
    bogus.write_bytes(b"not wasm at all")
    with pytest.raises(wasmproc.CannotRun):
        wasmproc.load(bogus)


def test_env_and_dirs_are_granted_and_nothing_else(sdk_tasks: wasmproc.Module, tmp_path: Path) -> None:
    assert sdk_tasks.run("env_count") == 0
    assert sdk_tasks.run("env_var", "GREETING", env={"GREETING": "hello"}) == "hello"
    (tmp_path / "note.txt").write_text("granted")
    assert sdk_tasks.run("read_file", "/data/note.txt", dirs={tmp_path: "/data"}) == "granted"
    with pytest.raises(wasmproc.Exited, match="cannot read"):
        sdk_tasks.run("read_file", "/data/note.txt")


def test_a_bad_limit_is_a_value_error_naming_the_fix(sdk_tasks: wasmproc.Module) -> None:
    with pytest.raises(ValueError, match="64MiB"):
        sdk_tasks.run("square", 1, max_memory="lots")
    with pytest.raises(ValueError, match="positive number of seconds"):
        sdk_tasks.run("square", 1, timeout=-1)


def test_a_task_error_pickles() -> None:
    import pickle

    error = wasmproc.TimedOut("too slow", exit_code=142, task="spin", stdout=b"x")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is wasmproc.TimedOut
    assert (again.message, again.exit_code, again.task, again.stdout) == ("too slow", 142, "spin", b"x")
