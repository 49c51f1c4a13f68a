//! Entry points for fuzzing the parts of the command line that read
//! untrusted bytes: `map`'s input lines and the command line itself. Used
//! by the `cargo fuzz` targets in `fuzz/` and, over a fixed corpus and its
//! mutations, by the binary's tests. Not an API: each function must only
//! never panic, whatever its input.

use std::ffi::OsString;

use crate::flags::{Command, InitArgs, LimitArgs, misspelt_host_option, parse};
use crate::map::input::{Shape, fuzz_lines};

/// Reads `bytes` as `map`'s input, for a typed task and for a command,
/// turning each line into a task as `map` does.
pub fn input_lines(bytes: &[u8]) {
    fuzz_lines(bytes, &Shape::Typed("t".into()));
    fuzz_lines(bytes, &Shape::Command);
}

/// Parses `bytes` as a command line (arguments separated by NUL), as
/// `main` does, and builds the limits, capabilities and initializer it
/// names; nothing runs.
pub fn command_line(bytes: &[u8]) {
    let raw: Vec<OsString> = std::iter::once(OsString::from("wasmproc"))
        .chain(
            bytes
                .split(|b| *b == 0)
                .map(|arg| OsString::from(String::from_utf8_lossy(arg).into_owned())),
        )
        .collect();
    let Ok((cli, _)) = parse(raw) else {
        return;
    };
    match cli.command {
        Command::Run(args) => {
            let (_, argv) = args.module_and_argv();
            if let Some(first) = argv.first() {
                let _ = misspelt_host_option(first);
            }
            initializer_of(&args.init, &args.limits, args.caps.to_capabilities());
        }
        Command::Map(args) => {
            initializer_of(&args.init, &args.limits, args.caps.to_capabilities());
        }
        Command::Compile(args) => {
            initializer_of(&args.init, &args.limits, args.grants.to_capabilities());
        }
        _ => {}
    }
}

/// Builds the limits and the initializer that `init` and `limits` name,
/// with the capabilities built from the same command line.
fn initializer_of(
    init: &InitArgs,
    limits: &LimitArgs,
    caps: anyhow::Result<wasmproc::Capabilities>,
) {
    if let (Ok(limits), Ok(caps)) = (limits.to_limits(), caps) {
        let _ = init.to_initializer(&caps, &limits);
    }
}
