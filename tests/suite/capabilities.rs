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
