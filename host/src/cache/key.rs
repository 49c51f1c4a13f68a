//! The cache's key: a per-user secret that signs every entry, kept outside
//! the cache in a file only its owner can read.
//!
//! Whoever can write the cache directory (another user, when it is shared
//! or its permissions are loose) still cannot make an entry this user
//! accepts: that takes the key. So the key file must be the user's own and
//! unreadable to anyone else; a key file that is not is not used, and the
//! cache is off until it is fixed.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind};

fn setup(message: String) -> Error {
    Error::new(ErrorKind::Setup, message)
}

/// The length of the key, in bytes.
pub(crate) const KEY_LEN: usize = 32;

/// The environment variable naming the key file, instead of the default
/// (`cache.key` in the platform's configuration directory, under
/// `wasmproc`).
pub(crate) const KEY_FILE_ENV: &str = "WASMPROC_CACHE_KEY_FILE";

/// Where the key is kept by default: beside the user's configuration, not
/// in the cache.
pub(crate) fn default_key_file() -> Option<PathBuf> {
    match std::env::var_os(KEY_FILE_ENV) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => dirs::config_dir().map(|dir| dir.join("wasmproc").join("cache.key")),
    }
}

/// The key in `path`, made (with owner-only permissions) when the file
/// does not exist yet.
///
/// # Errors
///
/// [`ErrorKind::Setup`], saying why the key cannot be used: the cache is
/// then off.
pub(crate) fn load_or_create(path: &Path) -> Result<[u8; KEY_LEN], Error> {
    match std::fs::read(path) {
        Ok(bytes) => {
            check_private(path)?;
            bytes.try_into().map_err(|_| {
                setup(format!(
                    "the cache key `{}` is not {KEY_LEN} bytes long: delete it, and a new one is made",
                    path.display()
                ))
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(error) => Err(setup(format!(
            "cannot read the cache key `{}`: {error}",
            path.display()
        ))),
    }
}

fn create(path: &Path) -> Result<[u8; KEY_LEN], Error> {
    let fail = |error: std::io::Error| {
        setup(format!(
            "cannot create the cache key `{}`: {error}",
            path.display()
        ))
    };
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key)
        .map_err(|error| setup(format!("no randomness for the cache key: {error}")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(fail)?;
    // Written whole under a temporary name (which tempfile makes readable
    // by its owner only), then moved into place without replacing a key
    // another process made meanwhile.
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    file.write_all(&key).map_err(fail)?;
    match file.persist_noclobber(path) {
        Ok(_) => Ok(key),
        // Another process made it first: use theirs.
        Err(error) if error.error.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create(path)
        }
        Err(error) => Err(fail(error.error)),
    }
}

/// Creates `dir` (and its parents) readable by its owner only, where it
/// does not exist.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Refuses a key file that is not this user's own or that others may read
/// or write: they could then sign entries. (On Windows the file lives in
/// the user's profile, whose access list already keeps others out.)
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| setup(e.to_string()))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(setup(format!(
            "the cache key `{}` belongs to user {}, not to this user ({me}): another user could \
             sign cache entries; point {KEY_FILE_ENV} at a key of your own",
            path.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(setup(format!(
            "the cache key `{}` can be read or written by other users (mode {:o}): \
             run `chmod 600 {}`",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), Error> {
    Ok(())
}
