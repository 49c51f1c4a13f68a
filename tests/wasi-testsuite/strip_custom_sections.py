#!/usr/bin/env python3
"""Copy WebAssembly modules without their custom sections.

Usage: strip_custom_sections.py SOURCE_DIR DEST_DIR

Copies SOURCE_DIR to DEST_DIR (both trees alike: .json specs, fixture
directories, everything), writing each `.wasm` file without its custom
sections (id 0: `.debug_*`, `name`, `producers`, `target_features`, ...).
Custom sections carry no semantics: they hold debug info and names for
tools, so a stripped module behaves exactly like the original.

A module is 8 bytes of header (magic and version), then sections, each an id
byte, a LEB128 (unsigned, at most 5 bytes) payload size, and the payload.
The script checks this framing end to end and refuses a file it cannot parse.
"""

import os
import shutil
import sys

MAGIC = b"\0asm"
CUSTOM = 0


def read_leb_u32(data, at):
    """The unsigned LEB128 at `at`: (value, position after it)."""
    value = 0
    for i in range(5):
        if at >= len(data):
            raise ValueError("LEB128 runs past the end")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, at
    raise ValueError("LEB128 longer than 5 bytes")


def strip(data):
    """`data` (a module) without its custom sections."""
    if data[:4] != MAGIC or len(data) < 8:
        raise ValueError("not a WebAssembly module")
    out = bytearray(data[:8])
    at = 8
    while at < len(data):
        start = at
        section_id = data[at]
        size, payload = read_leb_u32(data, at + 1)
        end = payload + size
        if end > len(data):
            raise ValueError(f"section {section_id} at {start} runs past the end")
        if section_id != CUSTOM:
            out += data[start:end]
        at = end
    return bytes(out)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, dest = sys.argv[1], sys.argv[2]
    before = after = 0
    for directory, _, files in os.walk(source):
        target = os.path.join(dest, os.path.relpath(directory, source))
        os.makedirs(target, exist_ok=True)
        for name in sorted(files):
            src, dst = os.path.join(directory, name), os.path.join(target, name)
            if name.endswith(".wasm"):
                with open(src, "rb") as f:
                    data = f.read()
                stripped = strip(data)
                # Parse the result again: what is written must frame cleanly.
                assert strip(stripped) == stripped
                with open(dst, "wb") as f:
                    f.write(stripped)
                before += len(data)
                after += len(stripped)
            else:
                shutil.copyfile(src, dst)
    print(f"{source}: wasm {before:,} -> {after:,} bytes")


if __name__ == "__main__":
    main()
