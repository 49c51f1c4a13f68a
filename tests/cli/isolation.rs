//! Process isolation through the binary.

/// Killing a `wasmproc map` closes its workers' pipes: they exit too.
#[cfg(unix)]
#[test]
fn no_worker_outlives_a_killed_parent() {
    use wasmproc_tests::unix::{alive, children_of, kill, wait_for};

    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), "3600000\n3600000\n").unwrap();
    let mut parent = crate::wasmproc()
        .args(["map", "--isolation", "process", "-j", "2"])
        .arg(wasmproc_tests::guests::SDK_TASKS)
        .args(["--task", "sleep_ms"])
        .arg(input.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("two worker processes", || {
        children_of(parent.id()).len() == 2
    });
    let workers = children_of(parent.id());
    kill(parent.id(), "-9");
    let _ = parent.wait();
    wait_for("the workers to exit", || {
        workers.iter().all(|pid| !alive(*pid))
    });
}
