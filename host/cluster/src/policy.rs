//! What a worker host lets remote submitters have: capabilities are the
//! host's to give, and its limits cap the submitter's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmproc::{Capabilities, DirGrant, Error, ErrorKind, Limits};

/// A worker host's allowances.
///
/// A task may mount a directory only under one the host allows, and see
/// an environment variable only if the host allows its name. Its limits are
/// lowered to the host's where the host's are lower.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    dirs: Vec<PathBuf>,
    env: Vec<String>,
    max_timeout: Option<Duration>,
    max_fuel: Option<u64>,
    max_memory: Option<u64>,
}

impl Policy {
    /// Allows tasks to mount `dir` or any directory below it.
    pub fn allow_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        // Compared canonical, so `..` and links cannot step outside.
        self.dirs.push(dir.canonicalize().unwrap_or(dir));
        self
    }

    /// Allows tasks to set the environment variable `name`.
    pub fn allow_env(mut self, name: impl Into<String>) -> Self {
        self.env.push(name.into());
        self
    }

    /// No task runs longer than `timeout` here, whatever it asks for.
    pub fn max_timeout(mut self, timeout: Duration) -> Self {
        self.max_timeout = Some(timeout);
        self
    }

    /// No task burns more than `fuel` here.
    pub fn max_fuel(mut self, fuel: u64) -> Self {
        self.max_fuel = Some(fuel);
        self
    }

    /// No task's memory grows past `bytes` here.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// The capabilities asked for, if the host allows all of them; else
    /// why not, with the flag that would allow it.
    pub(crate) fn grant(&self, asked: &Capabilities) -> Result<Capabilities, Error> {
        for DirGrant { host, .. } in &asked.dirs {
            if !self.allows_dir(host) {
                return Err(refused(format!(
                    "the task asks for the directory `{}`, which this worker host does not \
                     allow; start the host with --allow-dir {} (or a directory above it)",
                    host.display(),
                    host.display()
                )));
            }
        }
        for (name, _) in &asked.env {
            if !self.env.iter().any(|allowed| allowed == name) {
                return Err(refused(format!(
                    "the task asks for the environment variable `{name}`, which this worker \
                     host does not allow; start the host with --allow-env {name}"
                )));
            }
        }
        Ok(asked.clone())
    }

    fn allows_dir(&self, dir: &Path) -> bool {
        // A directory that does not exist here cannot be mounted anyway;
        // judged as given, it is refused unless its path is under an allowed
        // one.
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        self.dirs.iter().any(|allowed| dir.starts_with(allowed))
    }

    /// `asked` lowered to the host's maxima (the host's own limits when the
    /// task asks for none).
    pub(crate) fn cap(&self, asked: Option<Limits>) -> Limits {
        let mut limits = asked.unwrap_or_default();
        if let Some(max) = self.max_timeout
            && limits.timeout.is_none_or(|asked| asked > max)
        {
            limits = limits.timeout(max);
        }
        if let Some(max) = self.max_fuel
            && limits.fuel.is_none_or(|asked| asked > max)
        {
            limits = limits.fuel(max);
        }
        if let Some(max) = self.max_memory
            && limits.max_memory > max
        {
            limits = limits.max_memory(max);
        }
        limits
    }
}

/// A capability the host does not allow: the task fails as bad input.
fn refused(message: String) -> Error {
    Error::new(ErrorKind::BadInvocation, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_variables_need_the_hosts_leave() {
        let allowed = std::env::temp_dir();
        let policy = Policy::default().allow_dir(&allowed).allow_env("LANG");
        let inside = Capabilities::default()
            .dir(DirGrant::new(&allowed, "/data"))
            .env("LANG", "C");
        assert_eq!(policy.grant(&inside), Ok(inside.clone()));

        let outside = Capabilities::default().dir(DirGrant::new("/etc", "/etc"));
        let refused = policy.grant(&outside).unwrap_err();
        assert!(refused.message().contains("--allow-dir /etc"), "{refused}");

        let escape = Capabilities::default().dir(DirGrant::new(allowed.join(".."), "/up"));
        assert!(policy.grant(&escape).is_err());

        let secret = Capabilities::default().env("AWS_SECRET_ACCESS_KEY", "x");
        let refused = policy.grant(&secret).unwrap_err();
        assert!(
            refused
                .message()
                .contains("--allow-env AWS_SECRET_ACCESS_KEY"),
            "{refused}"
        );
    }

    #[test]
    fn limits_are_capped_by_the_hosts() {
        let policy = Policy::default()
            .max_timeout(Duration::from_secs(10))
            .max_fuel(1_000)
            .max_memory(1 << 20);
        let capped = policy.cap(None);
        assert_eq!(capped.timeout, Some(Duration::from_secs(10)));
        assert_eq!(capped.fuel, Some(1_000));
        assert_eq!(capped.max_memory, 1 << 20);

        let lower = Limits::default().timeout(Duration::from_secs(1)).fuel(10);
        let kept = policy.cap(Some(lower));
        assert_eq!(kept.timeout, Some(Duration::from_secs(1)));
        assert_eq!(kept.fuel, Some(10));
    }
}
