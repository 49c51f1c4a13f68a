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

/// A worker process is the running program, even once its file is gone
/// (an upgrade or a rebuild replaced it): workers started after that still
/// start. (Linux: by the kernel's link to the running program.)
#[cfg(target_os = "linux")]
#[test]
fn workers_start_after_the_programs_file_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("wasmproc");
    std::fs::copy(crate::binary(), &copy).unwrap();
    let input = crate::input_file("200\n200\n200\n200\n200\n200\n");
    let child = std::process::Command::new(&copy)
        .env("WASMPROC_CACHE_DIR", wasmproc_tests::suite_cache_dir())
        .env(
            "WASMPROC_CACHE_KEY_FILE",
            wasmproc_tests::suite_cache_key_file(),
        )
        .args(["map", "--isolation", "process", "-j", "2"])
        .arg(wasmproc_tests::guests::SDK_TASKS)
        .args(["--task", "sleep_ms"])
        .arg(input.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::remove_file(&copy).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        wasmproc_tests::stderr(&output)
    );
    assert_eq!(wasmproc_tests::stdout(&output).lines().count(), 6);
}
