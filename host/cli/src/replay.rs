//! `wasmproc replay BUNDLE`: a failed task run again from the bundle that
//! `run` or `map` wrote with `--replay-dir` (the format is `bundle.rs`).

use wasmproc::{Capabilities, DirGrant, Entry, Stdin, Task};

use crate::argument_errors::{Given, explain};
use crate::bundle::Bundle;
use crate::flags::{ReplayArgs, initializer};
use crate::report::{guest_output, print_outcome};
use crate::usage;

/// `wasmproc replay BUNDLE`: the task again, with the bundle's inputs;
/// prints and exits as `run` does.
pub(crate) fn replay(args: ReplayArgs) -> anyhow::Result<u8> {
    let bundle = Bundle::read(&args.bundle)?;
    let path = &bundle.module.path;
    let bytes = std::fs::read(path).map_err(|error| {
        wasmproc::Error::new(
            wasmproc::ErrorKind::NotFound,
            format!(
                "the bundle's module `{}` cannot be read: {error}",
                path.display()
            ),
        )
    })?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    if hash != bundle.module.blake3 {
        return Err(wasmproc::Error::new(
            wasmproc::ErrorKind::CannotRun,
            format!(
                "the module `{}` changed since the bundle was written (BLAKE3 {hash}, the \
                 bundle's {}): replaying it would not run the same code",
                path.display(),
                bundle.module.blake3
            ),
        )
        .into());
    }
    confirm_grants(&bundle.dirs, &args)?;
    let runtime = wasmproc::Runtime::builder()
        .max_instances(1)
        .stub_unknown_imports(bundle.stub_imports)
        .build()?;
    let module = runtime.load(path)?;
    let caps = Capabilities {
        dirs: bundle.dirs,
        env: bundle.env,
    };
    let module = match &bundle.init {
        Some(init) => module.initialize_with(&initializer(
            &init.name,
            &init.argument,
            &caps,
            &bundle.limits,
        ))?,
        None => module,
    };
    let entry = match (&bundle.invoke, &bundle.task) {
        (Some(function), _) => Entry::Export(function.clone()),
        (None, Some(name)) => Entry::Task(name.clone()),
        (None, None) => Entry::Command,
    };
    let typed = matches!(entry, Entry::Task(_));
    let (stdout, stderr) = guest_output(args.json, typed);
    let argument = bundle.argument;
    let task = Task::new(entry, argument.clone().into_bytes())
        .args(bundle.argv)
        .capabilities(caps)
        .limits(bundle.limits)
        .stdin(
            bundle
                .stdin
                .map_or(Stdin::Empty, |bytes| Stdin::Bytes(bytes.into())),
        )
        .stdout(stdout)
        .stderr(stderr);
    let mut outcome = module.run(&task);
    if let Entry::Task(name) = module.resolve(task.entry())? {
        // The recorded argument is what `--args` gave, explained the way
        // `run` explains it. `run` without `--args` sends `null`, so a
        // recorded `null` (or nothing) reads as no argument given.
        let given = Given::Flag(
            Some(argument.as_str()).filter(|given| !matches!(given.trim(), "" | "null")),
        );
        explain(&name, module.signature(&name), given, &mut outcome);
    }
    print_outcome(module.name(), &outcome, args.json);
    Ok(outcome.status.code())
}

/// Says which directories the bundle grants, and grants them only when
/// the user agreed: `--yes`, or the same `--dir` flags on this command
/// line. A bundle is a plain file: one edited to grant `/etc` must not
/// read the host's files unasked.
fn confirm_grants(dirs: &[DirGrant], args: &ReplayArgs) -> anyhow::Result<()> {
    if dirs.is_empty() {
        if let Some(extra) = args.dirs.first() {
            return Err(usage(format!(
                "--dir {extra}: the bundle grants no directory; drop --dir"
            )));
        }
        return Ok(());
    }
    let listed: Vec<String> = dirs
        .iter()
        .map(|grant| format!("{}::{}", grant.host.display(), grant.guest))
        .collect();
    say!(
        "wasmproc replay: the bundle grants {}",
        listed
            .iter()
            .map(|grant| format!("--dir {grant}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if args.yes {
        return Ok(());
    }
    let given = args
        .dirs
        .iter()
        .map(|spec| DirGrant::parse(spec))
        .collect::<Result<Vec<_>, _>>()?;
    let key = |grant: &DirGrant| {
        let host = std::fs::canonicalize(&grant.host).unwrap_or_else(|_| grant.host.clone());
        (host, grant.guest.trim_end_matches('/').to_owned())
    };
    let mut wanted: Vec<_> = dirs.iter().map(key).collect();
    let mut agreed: Vec<_> = given.iter().map(key).collect();
    wanted.sort();
    agreed.sort();
    if wanted == agreed {
        return Ok(());
    }
    Err(usage(format!(
        "the bundle grants directories, and a bundle is a file anyone may have edited: replay \
         grants them only when you say so. Check them, then pass --yes, or the same flags: \
         wasmproc replay {} {}",
        listed
            .iter()
            .map(|grant| format!("--dir {grant}"))
            .collect::<Vec<_>>()
            .join(" "),
        args.bundle.display()
    )))
}
