//! The binary's smoke tests: help, version, unknown subcommands.

fn wasmproc(args: &[&str]) -> std::process::Output {
    crate::wasmproc_run(args)
}

#[test]
fn help_and_version_exit_zero() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["run", "--help"],
        &["inspect", "--help"],
    ] {
        let output = wasmproc(args);
        assert_eq!(output.status.code(), Some(0), "wasmproc {args:?}");
        assert!(!output.stdout.is_empty());
    }
}

#[test]
fn unknown_subcommand_is_a_bad_invocation() {
    let output = wasmproc(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(128));
    assert!(String::from_utf8_lossy(&output.stderr).contains("frobnicate"));
}

#[test]
fn run_help_documents_the_exit_statuses() {
    let help = String::from_utf8(wasmproc(&["--help"]).stdout).unwrap();
    for status in [
        "126 cannot run",
        "127 module not found",
        "128 bad invocation",
        "142 timed out",
    ] {
        assert!(help.contains(status), "--help lacks `{status}`");
    }
}
