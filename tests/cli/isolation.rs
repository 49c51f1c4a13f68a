//! Process isolation through the binary.

/// Killing a `wasmproc map` closes its workers' pipes: they exit too.
#[cfg(unix)]
#[test]
fn no_worker_outlives_a_killed_parent() {
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), "3600000\n3600000\n").unwrap();
    let parent = crate::wasmproc()
        .args(["map", "--isolation", "process", "-j", "2"])
        .arg(wasmproc_tests::guests::SDK_TASKS)
        .args(["--task", "sleep_ms"])
        .arg(input.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wasmproc_tests::unix::kill_and_see_workers_exit(parent, 2);
}
