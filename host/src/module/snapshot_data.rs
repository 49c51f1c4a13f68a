//! A snapshot's memory as a few large data segments.
//!
//! wasmtime-wizer makes a data segment of every run of non-zero bytes (a
//! `Vec<bool>` sieve: one per prime, millions), then merges them down to
//! 10,000: for an 81 MiB state that bookkeeping took longer than the
//! initializer itself. Wizer is handed zeroed memories instead (it still
//! writes the memories' sizes and the globals), and this module adds the
//! memories' contents to its output as segments split only at zero runs of
//! at least [`CHUNK`] bytes: a few segments, the same memory.

use std::ops::Range;

use wasmparser::{BinaryReader, Parser};

/// Zero runs shorter than this stay inside a segment (as zeros).
const CHUNK: usize = 64 << 10;

/// The longest segment made: a segment's length is a `u32` in the binary
/// format, and a memory of data with no zero chunk must still fit.
const MAX_SEGMENT: usize = 1 << 30;

/// One active data segment to add: `bytes` at `offset` in memory `memory`.
pub(crate) struct Segment<'m> {
    pub(crate) memory: u32,
    /// Whether the memory is a 64-bit one (its offset an `i64.const`).
    pub(crate) is64: bool,
    pub(crate) offset: u64,
    pub(crate) bytes: &'m [u8],
}

/// The ranges of `memory` that hold a non-zero byte, split only where at
/// least a [`CHUNK`]-aligned chunk of zeros lies between them (or where a
/// range would pass [`MAX_SEGMENT`]); each trimmed of its zero bytes at
/// both ends.
pub(crate) fn non_zero_ranges(memory: &[u8]) -> Vec<Range<usize>> {
    ranges_of_at_most(memory, MAX_SEGMENT)
}

fn ranges_of_at_most(memory: &[u8], max: usize) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = Vec::new();
    // The last chunk that held data.
    let mut previous: Option<usize> = None;
    for (index, chunk) in memory.chunks(CHUNK).enumerate() {
        let Some(first) = chunk.iter().position(|&byte| byte != 0) else {
            continue;
        };
        let last = chunk.iter().rposition(|&byte| byte != 0).unwrap_or(first);
        let start = index * CHUNK;
        match ranges.last_mut() {
            // The chunk before held data too: the segment goes on.
            Some(range)
                if previous.is_some_and(|previous| previous + 1 == index)
                    && start + last + 1 - range.start <= max =>
            {
                range.end = start + last + 1;
            }
            _ => ranges.push(start + first..start + last + 1),
        }
        previous = Some(index);
    }
    ranges
}

/// `wasm` (wizer's snapshot, without data for the snapshot's memories)
/// with `segments` appended to its data section (which wizer always
/// writes) and counted in its data count section, if it has one.
pub(crate) fn with_segments(wasm: &[u8], segments: &[Segment<'_>]) -> wasmtime::Result<Vec<u8>> {
    let added = u32::try_from(segments.len()).unwrap_or(u32::MAX);
    let data_bytes: usize = segments
        .iter()
        .map(|segment| segment.bytes.len() + 16)
        .sum();
    let mut out = Vec::with_capacity(wasm.len() + data_bytes + 16);
    out.extend_from_slice(&wasm[..8]);
    let mut wrote_data = false;
    for payload in Parser::new(0).parse_all(wasm) {
        let Some((id, range)) = payload?.as_section() else {
            continue;
        };
        let contents = &wasm[range.clone()];
        match id {
            // The data count section.
            12 => {
                let count = BinaryReader::new(contents, range.start).read_var_u32()?;
                let mut section = Vec::new();
                leb(&mut section, u64::from(count.saturating_add(added)));
                append_section(&mut out, 12, &[&section]);
            }
            // The data section: its segments, then the new ones.
            11 => {
                let mut reader = BinaryReader::new(contents, range.start);
                let count = reader.read_var_u32()?;
                let kept = &contents[reader.original_position() - range.start..];
                let mut head = Vec::new();
                leb(&mut head, u64::from(count.saturating_add(added)));
                let mut parts: Vec<&[u8]> = vec![&head, kept];
                let headers: Vec<Vec<u8>> = segments.iter().map(segment_header).collect();
                for (header, segment) in headers.iter().zip(segments) {
                    parts.push(header);
                    parts.push(segment.bytes);
                }
                append_section(&mut out, 11, &parts);
                wrote_data = true;
            }
            id => append_section(&mut out, id, &[contents]),
        }
    }
    if !wrote_data && added > 0 {
        wasmtime::bail!("the snapshot has no data section to add the memory to");
    }
    Ok(out)
}

/// An active segment's encoding up to its bytes: flags, memory, offset
/// expression, length.
fn segment_header(segment: &Segment<'_>) -> Vec<u8> {
    let mut header = Vec::with_capacity(24);
    if segment.memory == 0 {
        header.push(0x00);
    } else {
        header.push(0x02);
        leb(&mut header, u64::from(segment.memory));
    }
    if segment.is64 {
        header.push(0x42); // i64.const
        sleb(&mut header, segment.offset as i64);
    } else {
        header.push(0x41); // i32.const
        sleb(&mut header, i64::from(segment.offset as u32 as i32));
    }
    header.push(0x0b); // end
    leb(&mut header, segment.bytes.len() as u64);
    header
}

/// Appends a section: its id, its size, its contents (in parts).
fn append_section(out: &mut Vec<u8>, id: u8, parts: &[&[u8]]) {
    out.push(id);
    leb(out, parts.iter().map(|part| part.len() as u64).sum());
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// Unsigned LEB128.
fn leb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Signed LEB128.
fn sleb(out: &mut Vec<u8>, mut value: i64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_only_at_whole_zero_chunks() {
        let mut memory = vec![0u8; 5 * CHUNK];
        memory[10] = 1;
        memory[CHUNK + 5] = 2; // the next chunk: the same segment
        memory[3 * CHUNK + 7] = 3; // after a zero chunk: another
        memory[4 * CHUNK - 1] = 4;
        assert_eq!(
            non_zero_ranges(&memory),
            vec![10..CHUNK + 6, 3 * CHUNK + 7..4 * CHUNK]
        );
        assert!(non_zero_ranges(&[0; 100]).is_empty());
        // Data with no zero chunk still splits before a segment grows
        // past the longest one.
        let full = vec![7u8; 3 * CHUNK];
        assert_eq!(
            ranges_of_at_most(&full, 2 * CHUNK),
            vec![0..2 * CHUNK, 2 * CHUNK..3 * CHUNK]
        );
        assert_eq!(non_zero_ranges(&[0, 0, 9, 0]), vec![2..3]);
    }

    #[test]
    fn segments_added_to_a_module_give_its_memory() {
        let wasm = wat::parse_str(
            r#"(module
                 (memory (export "m") 1)
                 (data "")
                 (func (export "f") (result i32) (i32.load8_u (i32.const 70000))))"#,
        )
        .unwrap();
        let bytes = [0xab_u8; 3];
        let segment = Segment {
            memory: 0,
            is64: false,
            offset: 40_000,
            bytes: &bytes,
        };
        let out = with_segments(&wasm, &[segment]).unwrap();
        wasmparser::Validator::new().validate_all(&out).unwrap();
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, &out).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let memory = instance.get_memory(&mut store, "m").unwrap();
        assert_eq!(&memory.data(&store)[40_000..40_003], &bytes);
        assert_eq!(memory.data(&store)[40_003], 0);
    }
}
