//! Cache files opened only when they are regular files: a FIFO (or a
//! device) put where an entry or a record should be would block its open
//! or read without end. Such a file counts as no entry (it is compiled
//! again, and `-v` says why).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Opens `path` to read (with `write`, to write), if it is a regular file.
pub(super) fn open(path: &Path, write: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(!write).write(write);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The open of a FIFO then returns at once instead of waiting for
        // its other end; a regular file reads and maps as ever (the flag
        // means nothing to it).
        let nonblock = rustix::fs::OFlags::NONBLOCK.bits();
        options.custom_flags(i32::try_from(nonblock).unwrap_or(0));
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("`{}` is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Reads `path` whole, if it is a regular file.
pub(super) fn read(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open(path, false)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}
