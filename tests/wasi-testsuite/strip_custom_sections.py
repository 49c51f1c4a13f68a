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
A component (WASI 0.2 and 0.3 programs) is framed the same way, with its own
version; its core-module sections (id 1) and nested-component sections
(id 4) hold whole binaries, stripped in turn. The script checks this framing
end to end and refuses a file it cannot parse.
"""

import os
import shutil
import sys

MAGIC = b"\0asm"
CUSTOM = 0
# The version field of a component (layer 1), after the magic.
COMPONENT_VERSION = b"\x0d\x00\x01\x00"
# A component's sections that hold a whole binary: a core module, a component.
NESTED = (1, 4)


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


def write_leb_u32(value):
    """`value` as unsigned LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def strip(data):
    """`data` (a module or a component) without its custom sections."""
    if data[:4] != MAGIC or len(data) < 8:
        raise ValueError("not a WebAssembly module")
    component = data[4:8] == COMPONENT_VERSION
    out = bytearray(data[:8])
    at = 8
    while at < len(data):
        start = at
        section_id = data[at]
        size, payload = read_leb_u32(data, at + 1)
        end = payload + size
        if end > len(data):
            raise ValueError(f"section {section_id} at {start} runs past the end")
        if component and section_id in NESTED:
            inner = strip(data[payload:end])
            out += bytes([section_id]) + write_leb_u32(len(inner)) + inner
        elif section_id != CUSTOM:
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
