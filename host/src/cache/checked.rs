//! Entries already checked: a second load of an unchanged entry skips
//! hashing it (a snapshot's is tens of megabytes: most of a warm start).
//!
//! After an entry's tag checks out, a small file beside it records the
//! entry's file identity and times, signed with the cache key: device,
//! inode, size, modification and change times. A later load that finds the
//! same record for the open file trusts the check. Anything that changes
//! the file changes its change time (`ctime`, which no program can set):
//! an entry renamed into place, or written in place, has another record,
//! and is checked in full again. Only where the OS gives such a record
//! (Unix); elsewhere every load checks in full.

use std::fs::File;
use std::path::Path;

use super::budget::record_path;
use super::files::stamp;
use super::{HASH_LEN, key, store_bytes};

/// The record of `file` (the entry for `identity`), signed with `key`, or
/// `None` where there is no trustworthy record (see [`stamp`]).
fn record(
    file: &File,
    key: &[u8; key::KEY_LEN],
    identity: &[u8; HASH_LEN],
) -> Option<[u8; HASH_LEN]> {
    let stamp = stamp(file)?;
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(b"wasmproc checked entry 1");
    hasher.update(identity);
    for field in stamp {
        hasher.update(&field.to_le_bytes());
    }
    Some(*hasher.finalize().as_bytes())
}

/// Whether the entry open as `file` at `entry` was checked before and has
/// not changed since.
pub(super) fn was_checked(
    entry: &Path,
    file: &File,
    key: &[u8; key::KEY_LEN],
    identity: &[u8; HASH_LEN],
) -> bool {
    let Some(now) = record(file, key, identity) else {
        return false;
    };
    let Ok(kept) = super::regular::read(&record_path(entry)) else {
        return false;
    };
    // `blake3::Hash` compares in constant time.
    blake3::Hash::from_slice(&kept).is_ok_and(|kept| kept == blake3::Hash::from_bytes(now))
}

/// Records that the entry open as `file` at `entry` checked out (best
/// effort: without the record, the next load checks in full).
pub(super) fn mark_checked(
    entry: &Path,
    file: &File,
    key: &[u8; key::KEY_LEN],
    identity: &[u8; HASH_LEN],
) {
    if let Some(now) = record(file, key, identity) {
        let _ = store_bytes(&record_path(entry), &now);
    }
}
