//! Module files already hashed: a second load of an unchanged file skips
//! reading and hashing it (a 100 MB module's wasm: most of a cached
//! start).
//!
//! After a module file is read and hashed, a small record in the cache's
//! `files/` directory holds the file's identity (its wasm's hash) and its
//! defined-function count, signed with the cache key together with the
//! file's device, inode, size, modification and change times. A later load
//! that opens a file with the same record trusts the identity. Anything
//! that changes the file changes its change time (`ctime`, which no program
//! can set): a file written in place, or another file renamed into place,
//! has another record, and is read and hashed again. As `checked.rs`, this
//! holds only where the OS gives such a record (Unix); elsewhere every load
//! hashes the file. Without the key nobody can make a record that checks
//! out, so a record cannot point a file at another module's code.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{HASH_LEN, Identity, key, store_bytes};

/// The directory of the records, inside the cache directory.
pub(super) const FILES_DIR: &str = "files";

/// How long before a read a file must have last changed for its record
/// to be kept.
const SETTLED: Duration = Duration::from_secs(1);

/// What a record says of a module file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KnownFile {
    /// The hash of the file's wasm.
    pub(crate) identity: Identity,
    /// How many functions the module defines (checked against the limit
    /// at every load, which may have changed).
    pub(crate) functions: u32,
}

/// The file's identity on disk (for the records of module files here, and
/// of checked entries in `checked.rs`): device, inode, size, modification and
/// change times; `None` where there is no trustworthy one.
#[cfg(unix)]
pub(super) fn stamp(file: &File) -> Option<[u64; 7]> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    Some([
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.ctime() as u64,
        meta.ctime_nsec() as u64,
    ])
}

/// Windows lets a file's owner set every time a record could hold: no
/// record is trusted there.
#[cfg(not(unix))]
pub(super) fn stamp(_: &File) -> Option<[u64; 7]> {
    None
}

/// Where the record of the file with `stamp` lives: named by a keyed hash
/// of its device and inode, so that one file has one record.
fn record_path(dir: &Path, key: &[u8; key::KEY_LEN], stamp: &[u64; 7]) -> PathBuf {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(b"wasmproc module file name 1");
    hasher.update(&stamp[0].to_le_bytes());
    hasher.update(&stamp[1].to_le_bytes());
    let name = hasher.finalize().to_hex();
    dir.join(FILES_DIR).join(format!("{}.known", &name[..40]))
}

/// The signature over what a record claims and the file's stamp.
fn tag(
    key: &[u8; key::KEY_LEN],
    identity: &[u8; HASH_LEN],
    functions: u32,
    stamp: &[u64; 7],
) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(b"wasmproc known module file 1");
    hasher.update(identity);
    hasher.update(&functions.to_le_bytes());
    for field in stamp {
        hasher.update(&field.to_le_bytes());
    }
    hasher.finalize()
}

/// What the record of the open `file` says, if there is one and it checks
/// out for the file as it is now.
pub(super) fn known(dir: &Path, key: &[u8; key::KEY_LEN], file: &File) -> Option<KnownFile> {
    let stamp = stamp(file)?;
    let record = super::regular::read(&record_path(dir, key, &stamp)).ok()?;
    if record.len() != HASH_LEN + 4 + HASH_LEN {
        return None;
    }
    let (identity, rest) = record.split_at(HASH_LEN);
    let (functions, claimed) = rest.split_at(4);
    let identity: [u8; HASH_LEN] = identity.try_into().ok()?;
    let functions = u32::from_le_bytes(functions.try_into().ok()?);
    let claimed = blake3::Hash::from_slice(claimed).ok()?;
    // `blake3::Hash` compares in constant time.
    (tag(key, &identity, functions, &stamp) == claimed).then(|| KnownFile {
        identity: Identity(blake3::Hash::from_bytes(identity)),
        functions,
    })
}

/// When a module file's read began, and its stamp then: taken before the
/// read, so that [`remember`] records only a file that the read saw whole.
#[derive(Clone, Copy)]
pub(crate) struct ReadStart {
    at: SystemTime,
    stamp: Option<[u64; 7]>,
}

impl ReadStart {
    /// Now, for the open `file` about to be read.
    pub(crate) fn of(file: &File) -> ReadStart {
        ReadStart {
            at: SystemTime::now(),
            stamp: stamp(file),
        }
    }
}

/// Records that the open `file`, read from `start` on, holds the module
/// `known` (best effort: without the record, the next load hashes the
/// file). Not recorded: a file whose stamp moved during the read (it was
/// written meanwhile, and the bytes read may be another module's), and one
/// changed less than [`SETTLED`] before the read began (a write during the
/// read could share the stamp: change times are kept at a clock tick's
/// grain), as git's "racily clean" index entries.
pub(super) fn remember(
    dir: &Path,
    key: &[u8; key::KEY_LEN],
    file: &File,
    known: KnownFile,
    start: ReadStart,
) {
    let Some(stamp) = stamp(file).filter(|after| start.stamp.as_ref() == Some(after)) else {
        return;
    };
    let read_started = start.at;
    // A change time before 1970 (a `u64` from a negative `ctime`) or one
    // past what `SystemTime` holds is not recorded.
    let changed = UNIX_EPOCH
        .checked_add(Duration::new(stamp[5], stamp[6] as u32))
        .and_then(|changed| changed.checked_add(SETTLED));
    if changed.is_none_or(|changed| changed > read_started) {
        return;
    }
    let identity = known.identity.as_bytes();
    let tag = tag(key, identity, known.functions, &stamp);
    let mut record = Vec::with_capacity(HASH_LEN + 4 + HASH_LEN);
    record.extend_from_slice(identity);
    record.extend_from_slice(&known.functions.to_le_bytes());
    record.extend_from_slice(tag.as_bytes());
    let _ = store_bytes(&record_path(dir, key, &stamp), &record);
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Write;

    use super::*;

    const KEY: [u8; key::KEY_LEN] = [3; key::KEY_LEN];

    fn known_file(wasm: &[u8]) -> KnownFile {
        KnownFile {
            identity: Identity::of_wasm(wasm),
            functions: 7,
        }
    }

    /// A read of `file` that began well after its last change.
    fn later(file: &File) -> ReadStart {
        ReadStart {
            at: SystemTime::now() + Duration::from_secs(10),
            ..ReadStart::of(file)
        }
    }

    #[test]
    fn a_file_changed_just_before_its_read_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wasm");
        std::fs::write(&path, b"fresh").unwrap();
        let file = File::open(&path).unwrap();
        remember(
            dir.path(),
            &KEY,
            &file,
            known_file(b"fresh"),
            ReadStart::of(&file),
        );
        assert_eq!(known(dir.path(), &KEY, &file), None);
    }

    #[test]
    fn an_unchanged_file_is_known_and_a_changed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wasm");
        std::fs::write(&path, b"first").unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(known(dir.path(), &KEY, &file), None);
        remember(dir.path(), &KEY, &file, known_file(b"first"), later(&file));
        assert_eq!(known(dir.path(), &KEY, &file), Some(known_file(b"first")));
        // Another key does not accept the record.
        assert_eq!(known(dir.path(), &[4; key::KEY_LEN], &file), None);

        // Written in place: its change time (and size) moved on.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writer.write_all(b" and more").unwrap();
        drop(writer);
        let file = File::open(&path).unwrap();
        assert_eq!(known(dir.path(), &KEY, &file), None);
    }

    #[test]
    fn a_file_written_during_its_read_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wasm");
        std::fs::write(&path, b"before").unwrap();
        let file = File::open(&path).unwrap();
        let start = later(&file);
        // Written after the read began: the bytes read may be either.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"after!").unwrap();
        remember(dir.path(), &KEY, &file, known_file(b"before"), start);
        assert_eq!(known(dir.path(), &KEY, &file), None);
    }

    #[test]
    fn a_forged_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wasm");
        std::fs::write(&path, b"module").unwrap();
        let file = File::open(&path).unwrap();
        // Signed with another key: whoever lacks this user's key.
        remember(
            dir.path(),
            &[9; key::KEY_LEN],
            &file,
            known_file(b"other"),
            later(&file),
        );
        let stamp = stamp(&file).unwrap();
        let forged = record_path(dir.path(), &[9; key::KEY_LEN], &stamp);
        std::fs::rename(forged, record_path(dir.path(), &KEY, &stamp)).unwrap();
        assert_eq!(known(dir.path(), &KEY, &file), None);
    }
}
