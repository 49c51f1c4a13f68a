//! The flags turned into the library's objects: `Limits`, `Capabilities`,
//! an `Initializer`, a `RuntimeBuilder`, `NatsOptions`. Each refuses a
//! value the library would, with the fix in its message.

use wasmproc::{Capabilities, DirGrant, Initializer, Limits};

use super::common::{CapabilityArgs, GrantArgs, InitArgs, LimitArgs, LoadArgs, NatsArgs};
use crate::usage;

impl LoadArgs {
    /// A runtime builder with these settings and room for `instances` at
    /// once.
    pub(crate) fn runtime(&self, instances: u32) -> wasmproc::RuntimeBuilder {
        let builder = wasmproc::Runtime::builder()
            .max_instances(instances)
            .stub_unknown_imports(self.stub_imports);
        match self.max_functions {
            Some(count) => builder.max_module_functions(count),
            None => builder,
        }
    }
}

impl InitArgs {
    /// The initializer the flags name, with the tasks' capabilities and
    /// limits, or `None` without --init.
    pub(crate) fn to_initializer(
        &self,
        caps: &Capabilities,
        limits: &Limits,
    ) -> anyhow::Result<Option<Initializer>> {
        let Some(name) = &self.init else {
            if self.init_args.is_some() {
                return Err(usage(
                    "--init-args is the argument of an initializer, and no --init names one: \
                     add --init NAME (`wasmproc inspect MODULE` lists the initializers)",
                ));
            }
            return Ok(None);
        };
        let json = self.init_args.as_deref().unwrap_or("null");
        Ok(Some(initializer(name, json, caps, limits)))
    }
}

/// The initializer `name` with argument `json`, run with the tasks' own
/// capabilities and limits: the command line has one set of each, for the
/// initializer and the tasks alike.
pub(crate) fn initializer(
    name: &str,
    json: &str,
    caps: &Capabilities,
    limits: &Limits,
) -> Initializer {
    Initializer::call_json(name, json.as_bytes())
        .capabilities(caps.clone())
        .limits(limits.clone())
}

impl NatsArgs {
    /// The connection options, when --nats is given.
    pub(crate) fn options(&self) -> Option<wasmproc_cluster::NatsOptions> {
        let url = self.nats.as_ref()?;
        let mut options = wasmproc_cluster::NatsOptions::new(url);
        if let Some(path) = &self.nats_creds {
            options = options.credentials_file(path);
        }
        if let Some(path) = &self.nats_ca {
            options = options.root_certificates(path);
        }
        Some(options)
    }
}

impl LimitArgs {
    /// The limits the flags give, checked as the library checks them.
    pub(crate) fn to_limits(&self) -> anyhow::Result<Limits> {
        let mut limits = Limits::default();
        if let Some(timeout) = self.timeout {
            limits = limits.timeout(timeout);
        }
        if let Some(fuel) = self.fuel {
            limits = limits.fuel(fuel);
        }
        if let Some(bytes) = self.max_memory {
            limits = limits.max_memory(bytes);
        }
        if let Some(bytes) = self.max_output {
            limits = limits.max_output(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        if let Some(bytes) = self.max_args {
            limits = limits.max_args(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        if let Some(bytes) = self.max_result {
            limits = limits.max_result(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        limits.validate()?;
        Ok(limits)
    }
}

impl CapabilityArgs {
    /// What the flags grant.
    pub(crate) fn to_capabilities(&self) -> anyhow::Result<Capabilities> {
        self.grants.to_capabilities()
    }
}

impl GrantArgs {
    /// What the flags grant: `--env KEY` takes the host's value, which
    /// must be set and UTF-8.
    pub(crate) fn to_capabilities(&self) -> anyhow::Result<Capabilities> {
        let mut caps = Capabilities::default();
        for spec in &self.dirs {
            caps = caps.dir(DirGrant::parse(spec)?);
        }
        for spec in &self.env {
            let (key, value) = match spec.split_once('=') {
                Some((key, value)) => (key.to_owned(), value.to_owned()),
                None => match std::env::var(spec) {
                    Ok(value) => (spec.clone(), value),
                    Err(std::env::VarError::NotPresent) => {
                        return Err(usage(format!(
                            "--env {spec}: `{spec}` is not set on the host; pass a value with --env {spec}=VALUE"
                        )));
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        return Err(usage(format!(
                            "--env {spec}: the host's value of `{spec}` is not UTF-8, which WASI \
                             cannot pass; pass a value with --env {spec}=VALUE"
                        )));
                    }
                },
            };
            if key.is_empty() {
                return Err(usage(format!(
                    "--env `{spec}`: the variable needs a name, as in KEY=VALUE"
                )));
            }
            caps = caps.env(key, value);
        }
        Ok(caps)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::flags::testing::{parse, run_args};

    #[test]
    fn limits_parse_human_units() {
        let args = run_args(&[
            "run",
            "--timeout",
            "500ms",
            "--max-memory",
            "64MiB",
            "--fuel",
            "9",
            "m.wasm",
        ]);
        let limits = args.limits.to_limits().unwrap();
        assert_eq!(limits.timeout, Some(Duration::from_millis(500)));
        assert_eq!(limits.max_memory, 64 << 20);
        assert_eq!(limits.fuel, Some(9));
    }

    #[test]
    fn bad_limit_values_are_rejected() {
        assert!(parse(&["run", "--timeout", "soon", "m.wasm"]).is_err());
        assert!(parse(&["run", "--max-memory", "lots", "m.wasm"]).is_err());
        assert!(parse(&["run", "--fuel", "-3", "m.wasm"]).is_err());
        let zero = run_args(&["run", "--timeout", "0s", "m.wasm"]);
        assert!(zero.limits.to_limits().is_err());
    }

    #[test]
    fn the_initializer_gets_the_tasks_grants_and_limits() {
        let args = run_args(&[
            "run",
            "m.wasm",
            "--init",
            "table",
            "--env",
            "A=1",
            "--timeout",
            "2s",
        ]);
        let caps = args.caps.to_capabilities().unwrap();
        let limits = args.limits.to_limits().unwrap();
        let init = args.init.to_initializer(&caps, &limits).unwrap().unwrap();
        assert_eq!(init.name(), "table");
        assert_eq!(init.input(), b"null", "the default argument");
        assert_eq!(init.get_capabilities(), &caps);
        assert_eq!(init.get_limits(), Some(&limits));

        let with_args = run_args(&["run", "--init", "t", "--init-args", "-3", "m.wasm"]);
        let init = with_args.init.to_initializer(&caps, &limits).unwrap();
        assert_eq!(init.unwrap().input(), b"-3");
        let alone = run_args(&["run", "--init-args", "3", "m.wasm"]);
        assert!(alone.init.to_initializer(&caps, &limits).is_err());
        let neither = run_args(&["run", "m.wasm"]);
        assert!(
            neither
                .init
                .to_initializer(&caps, &limits)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn dir_and_env_grants_parse() {
        let args = run_args(&[
            "run", "--dir", "data::/d", "--dir", "/tmp", "--env", "A=1", "--env", "B==2", "m.wasm",
        ]);
        let caps = args.caps.to_capabilities().unwrap();
        assert_eq!(
            caps.dirs,
            [DirGrant::new("data", "/d"), DirGrant::new("/tmp", "/tmp")]
        );
        assert_eq!(
            caps.env,
            [("A".into(), "1".into()), ("B".into(), "=2".into())]
        );
        let unset = run_args(&["run", "--env", "WASMPROC_SURELY_UNSET_VAR", "m.wasm"]);
        assert!(unset.caps.to_capabilities().is_err());
    }
}
