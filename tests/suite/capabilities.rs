//! What a guest gets: argv, env, stdin and directories only when granted.

use wasmproc::{Capabilities, DirGrant, ExitStatus, Stdin, Task};
use wasmproc_tests::{sdk_tasks, wasi_cmd};

#[test]
fn argv_starts_with_the_module_name() {
    let outcome = wasi_cmd().run(&Task::command().args(["args", "a b", "--flag", ""]));
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    assert_eq!(outcome.stdout.text(), "wasi-cmd.wasm|args|a b|--flag|\n");
}

#[test]
fn env_is_empty_unless_granted() {
    // The test process has PATH set; the guest must not see it.
    assert!(std::env::var_os("PATH").is_some());
    let outcome = wasi_cmd().run(&Task::command().args(["env"]));
    assert_eq!(outcome.stdout.text(), "");
    assert_eq!(
        sdk_tasks()
            .run(&Task::call("env_count", &()).unwrap())
            .decode::<usize>()
            .unwrap(),
        0
    );
    let path = sdk_tasks().run(&Task::call("env_var", "PATH").unwrap());
    assert_eq!(path.decode::<Option<String>>().unwrap(), None);
}

#[test]
fn granted_env_is_seen() {
    let task = Task::command()
        .args(["env"])
        .env("COLOR", "teal")
        .env("EMPTY", "");
    assert_eq!(wasi_cmd().run(&task).stdout.text(), "COLOR=teal\nEMPTY=\n");
}

#[test]
fn stdin_is_empty_by_default_and_bytes_when_given() {
    let empty = wasi_cmd().run(&Task::command().args(["cat"]));
    assert_eq!(empty.status, ExitStatus::Exited(0));
    assert!(empty.stdout.bytes.is_empty());
    let given = wasi_cmd().run(
        &Task::command()
            .args(["cat"])
            .stdin(Stdin::Bytes((&b"line one\nline two\n"[..]).into())),
    );
    assert_eq!(given.stdout.text(), "line one\nline two\n");
}

#[test]
fn files_are_denied_without_a_grant() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "secret").unwrap();
    let path = secret.path().to_str().unwrap();
    let outcome = wasi_cmd().run(&Task::command().args(["read", path]));
    assert_eq!(outcome.status, ExitStatus::Exited(2));
    assert!(outcome.stdout.bytes.is_empty());
    let typed = sdk_tasks().run(&Task::call("read_file", path).unwrap());
    assert_eq!(typed.status, ExitStatus::Exited(1));
    assert!(!typed.message.unwrap().contains("secret"));
    let root = wasi_cmd().run(&Task::command().args(["list", "/"]));
    assert_eq!(
        root.status,
        ExitStatus::Exited(2),
        "no directory is preopened"
    );
}

#[test]
fn granted_dir_is_readable_and_writable_at_its_guest_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello from the host").unwrap();
    let caps = Capabilities::default().dir(DirGrant::new(dir.path(), "/data"));
    let read = wasi_cmd().run(
        &Task::command()
            .args(["read", "/data/in.txt"])
            .capabilities(caps.clone()),
    );
    assert_eq!(read.stdout.text(), "hello from the host");
    let write = wasi_cmd().run(
        &Task::command()
            .args(["write", "/data/out.txt", "from the guest"])
            .capabilities(caps),
    );
    assert_eq!(
        write.status,
        ExitStatus::Exited(0),
        "{}",
        write.stderr.text()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "from the guest"
    );
}

#[test]
fn a_grant_does_not_reach_outside_its_directory() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("outside.txt"), "outside").unwrap();
    let inner = outer.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    let task = Task::command()
        .args(["read", "/data/../outside.txt"])
        .dir(DirGrant::new(&inner, "/data"));
    let outcome = wasi_cmd().run(&task);
    assert_eq!(outcome.status, ExitStatus::Exited(2));
    assert!(outcome.stdout.bytes.is_empty());
}

#[test]
fn granting_a_missing_dir_is_a_bad_invocation() {
    let task = Task::command()
        .args(["list", "/x"])
        .dir(DirGrant::new("/no/such/dir/here", "/x"));
    let outcome = wasi_cmd().run(&task);
    assert_eq!(outcome.status, ExitStatus::BadInvocation);
    assert!(outcome.message.unwrap().contains("/no/such/dir/here"));
}

/// A guest cannot leave a link in a granted directory that points outside
/// it (the host's own tools would follow it): `path_symlink` takes only a
/// relative target that goes down from the link, and nothing appears on the
/// host for the rest. A link that goes down is made, as WASI says.
#[test]
fn a_guest_links_only_down_inside_its_grant() {
    let dir = tempfile::tempdir().unwrap();
    for target in ["../secret", "/etc/passwd", "sub/../inside.txt"] {
        let task = Task::command()
            .args(["symlink", target, "/d/link"])
            .dir(DirGrant::new(dir.path(), "/d"));
        let outcome = wasi_cmd().run(&task);
        assert_eq!(outcome.status, ExitStatus::Exited(2), "{target}");
        assert!(outcome.stderr.text().contains("cannot link"), "{target}");
        assert!(std::fs::symlink_metadata(dir.path().join("link")).is_err());
    }
    let task = Task::command()
        .args(["symlink", "inside.txt", "/d/link"])
        .dir(DirGrant::new(dir.path(), "/d"));
    let outcome = wasi_cmd().run(&task);
    assert_eq!(outcome.status, ExitStatus::Exited(0), "{outcome:?}");
    assert_eq!(
        std::fs::read_link(dir.path().join("link")).unwrap(),
        std::path::Path::new("inside.txt")
    );
}

/// `--env A=1 --env A=2`: the last value wins, as in a shell.
#[test]
fn the_last_value_of_a_variable_wins() {
    let task = Task::command()
        .args(["env"])
        .env("A", "1")
        .env("B", "b")
        .env("A", "2");
    assert_eq!(wasi_cmd().run(&task).stdout.text(), "A=2\nB=b\n");
}

#[test]
fn guest_paths_are_normalized_and_granted_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), "here").unwrap();
    let task = Task::command()
        .args(["read", "/b/f.txt"])
        .dir(DirGrant::new(dir.path(), "/a/../b/"));
    assert_eq!(wasi_cmd().run(&task).stdout.text(), "here");

    let twice = Task::command()
        .args(["list", "/b"])
        .dir(DirGrant::new(dir.path(), "/b"))
        .dir(DirGrant::new(dir.path(), "/b/."));
    let outcome = wasi_cmd().run(&twice);
    assert_eq!(outcome.status, ExitStatus::BadInvocation);
    assert!(
        outcome
            .message
            .unwrap()
            .contains("two directories are granted at guest path `/b`")
    );
}

/// A NUL cannot reach a guest's C strings, where it would cut the word.
#[test]
fn a_nul_in_argv_or_env_is_refused() {
    for task in [
        Task::command().args(["args", "a\0b"]),
        Task::command().args(["env"]).env("K", "v\0w"),
    ] {
        let outcome = wasi_cmd().run(&task);
        assert_eq!(outcome.status, ExitStatus::BadInvocation);
        assert!(outcome.message.unwrap().contains("NUL"));
    }
}
