//! The text forms of flag values that clap does not know: durations
//! (`500ms`, `2m`) and sizes (`64MiB`), each refused with an example of
//! what works.

use std::time::Duration;

pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("{error}; write a duration such as 500ms, 5s or 2m"))
}

pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|error| format!("{error}; write a size such as 64MiB or 1GiB"))
}
