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

#[test]
fn completion_scripts_know_the_commands_and_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = wasmproc(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0), "completions {shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        for word in ["map", "worker", "isolation", "nats-creds", "replay-dir"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    // bash loads it and registers the completion.
    let bash = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{}' completions bash) && complete -p wasmproc",
            crate::binary().display()
        ))
        .output();
    if let Ok(bash) = bash {
        let registered = String::from_utf8_lossy(&bash.stdout);
        assert!(registered.contains("wasmproc"), "{registered}");
    }

    let unknown = wasmproc(&["completions", "tcsh"]);
    assert_eq!(unknown.status.code(), Some(128));
}
