//! Reading all of stdin into memory, under a cap: the one place the binary
//! does (`run --args -`, and a `run --nats` task's stdin, sent along).

use std::io::Read;

/// All of stdin, or `None` when it holds more than `max` bytes: a stream
/// that does not end (`/dev/zero`) fails at the cap, not out of memory.
pub(crate) fn read_capped(max: usize) -> std::io::Result<Option<Vec<u8>>> {
    read_capped_from(std::io::stdin(), max)
}

/// As [`read_capped`], from `reader`.
fn read_capped_from(reader: impl Read, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    // One byte past the cap tells a stream at the cap from one over it.
    reader
        .take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() <= max).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_at_the_cap_is_read_and_one_over_it_is_refused() {
        let read = |len: usize| read_capped_from(&vec![7u8; len][..], 4).unwrap();
        assert_eq!(read(4), Some(vec![7; 4]));
        assert_eq!(read(0), Some(Vec::new()));
        assert_eq!(read(5), None);
    }

    #[test]
    fn an_endless_stream_stops_at_the_cap() {
        assert_eq!(read_capped_from(std::io::repeat(0), 1 << 10).unwrap(), None);
    }
}
