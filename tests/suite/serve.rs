//! Serving connections through the library (`wasmproc::serve`): real
//! sockets on 127.0.0.1, each connection a fresh worker, in both
//! isolations; payloads up to 16 MiB both ways with half-close, many
//! connections past the bound, slow, resetting and misbehaving clients and
//! guests, a stop with connections in flight; and `Task::connection` for
//! programs that accept connections themselves.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmproc::serve::{ConnectionRecord, Listen, ServeSummary, Server, ServerBuilder, StopHandle};
use wasmproc::{Entry, ExitStatus, Isolation, Limits, Module, Pool, ProcessOptions, Runtime, Task};
use wasmproc_tests::guests;

use crate::pool_host;

fn isolations() -> [(&'static str, Isolation); 2] {
    [
        ("threads", Isolation::Thread),
        (
            "processes",
            Isolation::Process(ProcessOptions::default().executable(pool_host())),
        ),
    ]
}

/// The handlers' module, in a runtime with room for many connections.
fn handlers() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| {
        Runtime::builder()
            .max_instances(128)
            .build()
            .expect("a runtime")
            .load(guests::SERVE_TASKS)
            .expect("serve-tasks loads")
    })
}

/// A server running on a thread of its own, with its records.
struct Running {
    addr: SocketAddr,
    stop: StopHandle,
    records: Arc<Mutex<Vec<ConnectionRecord>>>,
    thread: JoinHandle<ServeSummary>,
}

impl Running {
    fn start(builder: ServerBuilder) -> Running {
        let records = Arc::new(Mutex::new(Vec::new()));
        let theirs = Arc::clone(&records);
        let server = builder
            .on_connection(move |record| theirs.lock().unwrap().push(record.clone()))
            .bind()
            .expect("the server binds");
        let Listen::Tcp(addr) = server.local_addr().clone() else {
            panic!("a TCP address");
        };
        let stop = server.stopper();
        let thread = std::thread::spawn(move || server.run().expect("the server runs"));
        Running {
            addr,
            stop,
            records,
            thread,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("the server accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream
    }

    /// Stops the server and waits for it; returns its summary and records.
    fn stop(self) -> (ServeSummary, Vec<ConnectionRecord>) {
        self.stop.stop();
        let summary = self.thread.join().expect("the server thread ends");
        let records = self.records.lock().unwrap().clone();
        (summary, records)
    }

    /// Waits until `n` connections have their records.
    fn wait_records(&self, n: usize) -> Vec<ConnectionRecord> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let records = self.records.lock().unwrap().clone();
            if records.len() >= n || Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn server(handler: &str, isolation: Isolation) -> ServerBuilder {
    Server::builder(handlers(), Listen::parse("127.0.0.1:0").unwrap())
        .entry(Entry::Task(handler.into()))
        .isolation(isolation)
}

/// Sends `payload` from one thread while reading the reply on this one,
/// closing the sending side at the end (half-close); returns the reply.
fn exchange(stream: TcpStream, payload: Vec<u8>) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(&payload).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reply = Vec::new();
    let mut reader = stream;
    reader.read_to_end(&mut reply).unwrap();
    sender.join().unwrap();
    reply
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn echo_streams_payloads_both_ways_with_half_close() {
    for (name, isolation) in isolations() {
        let running = Running::start(server("echo", isolation));
        for len in [0, 1, 4096, 1 << 20, 16 << 20] {
            let payload = pattern(len);
            let reply = exchange(running.connect(), payload.clone());
            assert_eq!(reply.len(), len, "{name}: echoed length of {len} bytes");
            assert!(
                reply == payload,
                "{name}: the {len} bytes come back unchanged"
            );
        }
        let (summary, records) = running.stop();
        assert_eq!(summary.connections, 5, "{name}");
        assert_eq!(records.len(), 5, "{name}");
        for record in &records {
            assert_eq!(record.status, ExitStatus::Exited(0), "{name}: {record:?}");
            assert_eq!(record.bytes_in, record.bytes_out, "{name}: {record:?}");
        }
        let total: u64 = records.iter().map(|r| r.bytes_in).sum();
        assert_eq!(total, (1 + 4096 + (1 << 20) + (16 << 20)) as u64, "{name}");
    }
}

#[test]
fn large_uploads_and_downloads_arrive_whole() {
    for (name, isolation) in isolations() {
        let count = Running::start(server("count", isolation.clone()));
        let payload = pattern(16 << 20);
        let sum: u64 = payload.iter().map(|&b| u64::from(b)).sum();
        let reply = exchange(count.connect(), payload);
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            format!("{} {sum}\n", 16 << 20),
            "{name}: the guest read the whole upload, then answered after the half-close"
        );
        count.stop();

        let send = Running::start(server("send", isolation));
        let mut stream = send.connect();
        stream.write_all(b"16777216\n").unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), 16 << 20, "{name}: the whole download");
        assert!(
            got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
            "{name}: the download's bytes are the guest's pattern"
        );
        let (_, records) = send.stop();
        assert_eq!(records[0].bytes_out, 16 << 20, "{name}");
    }
}

#[test]
fn a_thousand_concurrent_connections_past_the_bound_are_all_served() {
    for (name, isolation) in isolations() {
        // One peer, 127.0.0.1, opens them all: no per-peer cap here.
        let running = Running::start(
            server("echo", isolation)
                .max_connections(16)
                .max_per_peer(None),
        );
        // All connect at once: those past the bound wait in the backlog.
        let mut streams: Vec<TcpStream> = (0..1000).map(|_| running.connect()).collect();
        for (i, stream) in streams.iter_mut().enumerate() {
            stream.write_all(format!("client {i}").as_bytes()).unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
        }
        for (i, mut stream) in streams.into_iter().enumerate() {
            let mut reply = String::new();
            stream.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, format!("client {i}"), "{name}: connection {i}");
        }
        let (summary, records) = running.stop();
        assert_eq!(summary.connections, 1000, "{name}");
        assert_eq!(records.len(), 1000, "{name}: one record per connection");
        assert!(
            records.iter().all(|r| r.status == ExitStatus::Exited(0)),
            "{name}: every connection served"
        );
    }
}

#[test]
fn an_idle_client_is_ended_and_others_are_not() {
    for (name, isolation) in isolations() {
        let running = Running::start(
            server("echo", isolation)
                .max_connections(4)
                .idle_timeout(Some(Duration::from_millis(400))),
        );
        // One byte, then a second's silence: a client too slow for the
        // idle timeout.
        let mut slow = running.connect();
        slow.write_all(b"a").unwrap();
        let slow_client = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            let _ = slow.write_all(b"b");
            let mut rest = Vec::new();
            let _ = slow.read_to_end(&mut rest);
            rest
        });
        // Meanwhile others are served at once.
        for i in 0..5 {
            let reply = exchange(running.connect(), format!("quick {i}").into_bytes());
            assert_eq!(reply, format!("quick {i}").as_bytes(), "{name}");
        }
        let rest = slow_client.join().unwrap();
        assert_eq!(
            rest, b"a",
            "{name}: the slow client got its first byte back, then the end"
        );
        let (_, records) = running.stop();
        let timed_out = the_one_timed_out(&records, &format!("{name}: the slow client"));
        let message = timed_out.message.as_deref().unwrap_or_default();
        assert!(message.contains("idle"), "{name}: {message}");
        assert_eq!(records.len(), 6, "{name}");
    }
}

#[test]
fn a_silent_connection_is_ended_at_the_first_byte_timeout_and_others_are_not() {
    for (name, isolation) in isolations() {
        // Two worker processes ready from the start: the clock runs from
        // the accept, and a cold start is not what is measured here.
        let isolation = match isolation {
            Isolation::Process(options) => Isolation::Process(options.min_workers(2)),
            threads => threads,
        };
        let running = Running::start(
            server("echo", isolation)
                .max_connections(4)
                .first_byte_timeout(Some(Duration::from_secs(1)))
                .idle_timeout(None),
        );
        let opened = Instant::now();
        let mut silent = running.connect();
        // A client that speaks at once, slowly afterwards: its first byte
        // counts, and no first-byte timeout ends it later.
        let mut slow = running.connect();
        slow.write_all(b"a").unwrap();
        let mut echoed = [0u8; 1];
        slow.read_exact(&mut echoed).unwrap();
        let mut rest = Vec::new();
        silent.read_to_end(&mut rest).unwrap();
        let waited = opened.elapsed();
        assert!(rest.is_empty(), "{name}: nothing came to the silent client");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
            "{name}: ended at the first-byte timeout, after {waited:?}"
        );
        // The point: well past the first-byte timeout, the slow client is
        // still served.
        std::thread::sleep(Duration::from_millis(1500));
        slow.write_all(b"b").unwrap();
        slow.shutdown(Shutdown::Write).unwrap();
        let mut tail = Vec::new();
        slow.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, b"b", "{name}: the slow client is still served");
        let (_, records) = running.stop();
        assert_eq!(records.len(), 2, "{name}: {records:?}");
        let timed_out = the_one_timed_out(&records, &format!("{name}: the silent one"));
        let message = timed_out.message.as_deref().unwrap_or_default();
        assert!(
            message.contains("no byte moved") && message.contains("first-byte"),
            "{name}: {message}"
        );
        assert_eq!(timed_out.bytes_in + timed_out.bytes_out, 0, "{name}");
    }
}

#[test]
fn a_handler_that_speaks_first_is_not_ended_by_the_first_byte_timeout() {
    // `flood` writes from the start to a client that never sends nor
    // reads: bytes move out, so the client is not silent; the whole
    // connection's timeout ends it.
    for (name, isolation) in isolations() {
        let running = Running::start(
            server("flood", isolation)
                .first_byte_timeout(Some(Duration::from_millis(300)))
                .idle_timeout(None)
                .limits(Limits::default().timeout(Duration::from_secs(2))),
        );
        let quiet = running.connect();
        let records = running.wait_records(1);
        assert_eq!(records.len(), 1, "{name}");
        assert_eq!(records[0].status, ExitStatus::TimedOut, "{name}");
        assert!(records[0].bytes_out > 0, "{name}: {:?}", records[0]);
        assert!(
            records[0].duration >= Duration::from_millis(1900),
            "{name}: ended by the whole-connection timeout, not the first-byte one: {:?}",
            records[0]
        );
        let message = records[0].message.as_deref().unwrap_or_default();
        assert!(!message.contains("first-byte"), "{name}: {message}");
        drop(quiet);
        running.stop();
    }
}

#[test]
fn idle_sockets_past_the_per_peer_cap_are_closed_at_once_and_others_are_served() {
    // A slowloris from 127.0.0.1: 200 sockets that send nothing, against
    // 16 places. Only 4 of them hold a place (no first-byte timeout here:
    // the cap alone keeps the others free); the rest are closed as they
    // are accepted. A client from another address (::1, where the system
    // has IPv6 beside IPv4) is served at once.
    let dual = TcpListener::bind("[::]:0")
        .and_then(|listener| {
            let port = listener.local_addr()?.port();
            TcpStream::connect(("127.0.0.1", port))?;
            TcpStream::connect(("::1", port))
        })
        .is_ok();
    for (name, isolation) in isolations() {
        let listen = if dual { "[::]:0" } else { "127.0.0.1:0" };
        let running = Running::start(
            Server::builder(handlers(), Listen::parse(listen).unwrap())
                .entry(Entry::Task("echo".into()))
                .isolation(isolation)
                .max_connections(16)
                .max_per_peer(Some(4))
                .first_byte_timeout(None)
                .idle_timeout(None),
        );
        let port = running.addr.port();
        let idle: Vec<TcpStream> = (0..200)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let refused = running.wait_records(196);
        assert_eq!(refused.len(), 196, "{name}: {refused:?}");
        for record in &refused {
            assert_eq!(record.status, ExitStatus::Cancelled, "{name}: {record:?}");
            let message = record.message.as_deref().unwrap_or_default();
            assert!(
                message.contains("refused") && message.contains("127.0.0.1"),
                "{name}: {message}"
            );
        }
        // The refused sockets were closed: they read their end at once;
        // the 4 others stay open.
        let open = idle
            .iter()
            .filter(|stream| {
                let mut stream: &TcpStream = stream;
                stream
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                matches!(
                    stream.read(&mut [0u8; 1]),
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                )
            })
            .count();
        assert_eq!(open, 4, "{name}: only the first 4 hold places");
        // Another peer is served at once.
        if dual {
            let stream = TcpStream::connect(("::1", port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let started = Instant::now();
            let reply = exchange(stream, b"a real client".to_vec());
            assert_eq!(reply, b"a real client", "{name}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{name}: served in {:?}",
                started.elapsed()
            );
        } else {
            eprintln!("{name}: no dual-stack IPv6 loopback: no other peer to try");
        }
        // Once the idle ones go, 127.0.0.1 is served again.
        drop(idle);
        let deadline = Instant::now() + Duration::from_secs(30);
        while try_exchange(("127.0.0.1", port), b"again") != b"again" {
            assert!(
                Instant::now() < deadline,
                "{name}: 127.0.0.1 is served again"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (summary, _) = running.stop();
        assert!(summary.refused >= 196, "{name}: {summary:?}");
    }
}

/// Sends `payload` and reads the reply, ignoring failures (a connection
/// refused by the server reads empty).
fn try_exchange(addr: (&str, u16), payload: &[u8]) -> Vec<u8> {
    let mut reply = Vec::new();
    if let Ok(mut stream) = TcpStream::connect(addr) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        let _ = stream
            .write_all(payload)
            .and_then(|()| stream.shutdown(Shutdown::Write));
        let _ = stream.read_to_end(&mut reply);
    }
    reply
}

#[test]
fn a_client_that_resets_ends_only_its_connection() {
    for (name, isolation) in isolations() {
        let running = Running::start(server("echo", isolation));
        let resetting = running.connect();
        let reset_peer = resetting.local_addr().unwrap().to_string();
        (&resetting).write_all(&pattern(1 << 20)).unwrap();
        // Closing with unread data in the receive buffer makes the kernel
        // send a reset instead of a close: wait until the echo is there.
        let mut echoed = [0u8; 1];
        assert_eq!(resetting.peek(&mut echoed).unwrap(), 1, "{name}");
        drop(resetting);
        let reply = exchange(running.connect(), b"after the reset".to_vec());
        assert_eq!(reply, b"after the reset", "{name}");
        let records = running.wait_records(2);
        assert_eq!(
            records.len(),
            2,
            "{name}: both connections recorded: {records:?}"
        );
        // The reset ended its handler as the serve layer says: a read
        // finds end of file (the client never sent one: only the reset
        // gives it), or, when the reset meets a write, the write fails.
        let reset = records
            .iter()
            .find(|r| r.peer == reset_peer)
            .unwrap_or_else(|| panic!("{name}: no record of {reset_peer}: {records:?}"));
        assert!(
            reset.bytes_out > 0 && reset.bytes_in <= 1 << 20,
            "{name}: it was served: {reset:?}"
        );
        let ended_at_the_reset = match reset.status {
            ExitStatus::Exited(0) => true,
            ExitStatus::Exited(1) => reset
                .message
                .as_deref()
                .is_some_and(|m| m.contains("I/O error")),
            _ => false,
        };
        assert!(ended_at_the_reset, "{name}: {reset:?}");
        // The other connection is whole.
        let other = records.iter().find(|r| r.peer != reset_peer).unwrap();
        assert_eq!(other.status, ExitStatus::Exited(0), "{name}: {other:?}");
        assert_eq!((other.bytes_in, other.bytes_out), (15, 15), "{name}");
        running.stop();
    }
}

#[test]
fn misbehaving_guests_end_only_their_connection_with_their_status() {
    for (name, isolation) in isolations() {
        let limits = Limits::default().timeout(Duration::from_millis(700));
        let cases = [
            ("trap", ExitStatus::Trapped(wasmproc::TrapKind::Unreachable)),
            ("panic", ExitStatus::Exited(101)),
            ("spin", ExitStatus::TimedOut),
            ("flood", ExitStatus::TimedOut),
        ];
        for (handler, expected) in cases {
            let running = Running::start(server(handler, isolation.clone()).limits(limits.clone()));
            let mut stream = running.connect();
            // The flood's client reads nothing; the others read to the end.
            if handler != "flood" {
                let mut got = Vec::new();
                let _ = stream.read_to_end(&mut got);
            }
            let records = running.wait_records(1);
            assert_eq!(records.len(), 1, "{name} {handler}");
            assert_eq!(
                records[0].status, expected,
                "{name} {handler}: {:?}",
                records[0]
            );
            if handler == "panic" {
                let message = records[0].message.as_deref().unwrap_or_default();
                assert!(message.contains("told to panic"), "{name}: {message}");
            }
            drop(stream);
            running.stop();
        }
    }
}

#[test]
fn a_misbehaving_connection_leaves_the_others_alone() {
    // One server runs the echo for good clients; a flood from a client that
    // does not read, on a server of its own, shares the process.
    for (name, isolation) in isolations() {
        let limits = Limits::default().timeout(Duration::from_secs(2));
        let flood = Running::start(server("flood", isolation.clone()).limits(limits.clone()));
        let echo = Running::start(server("echo", isolation).limits(limits));
        let _stuck = flood.connect();
        for i in 0..20 {
            let reply = exchange(echo.connect(), format!("{i}").into_bytes());
            assert_eq!(reply, format!("{i}").as_bytes(), "{name}");
        }
        let records = flood.wait_records(1);
        assert_eq!(records[0].status, ExitStatus::TimedOut, "{name}");
        flood.stop();
        echo.stop();
    }
}

#[test]
fn a_guest_reaches_no_file_or_socket_it_was_not_granted() {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    for (name, isolation) in isolations() {
        let running = Running::start(server("escape", isolation));
        let reply = exchange(
            running.connect(),
            format!("{}\n", target.local_addr().unwrap()).into_bytes(),
        );
        let reply = String::from_utf8(reply).unwrap();
        assert!(reply.contains("file: refused"), "{name}: {reply}");
        assert!(reply.contains("socket: refused"), "{name}: {reply}");
        assert!(
            target.accept().is_err(),
            "{name}: nothing connected to the host's listener"
        );
        running.stop();
    }
}

#[test]
fn a_stop_lets_connections_in_flight_finish() {
    for (name, isolation) in isolations() {
        let running = Running::start(server("echo", isolation).grace(Duration::from_secs(20)));
        let mut in_flight = running.connect();
        in_flight.write_all(b"before the stop").unwrap();
        // The connection is being served (its bytes came back) before the
        // stop.
        let mut first = [0u8; 15];
        in_flight.read_exact(&mut first).unwrap();
        let addr = running.addr;
        running.stop.stop();
        // No new connection is taken once the listener is closed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_ok() {
            assert!(Instant::now() < deadline, "{name}: the listener closes");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The one in flight still works, to its end.
        in_flight.write_all(b" and after").unwrap();
        in_flight.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        in_flight.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b" and after", "{name}");
        let (summary, records) = running.stop();
        assert_eq!(summary.cut_short, 0, "{name}");
        let served: Vec<_> = records
            .iter()
            .filter(|r| r.status == ExitStatus::Exited(0))
            .collect();
        assert_eq!(served.len(), 1, "{name}: {records:?}");
    }
}

#[test]
fn connections_open_together_are_served_together() {
    // Six clients connect and each waits for its echo with all six open:
    // each connection has its own worker, none waits for another to end.
    for (name, isolation) in isolations() {
        let running = Running::start(server("echo", isolation).max_connections(8));
        let mut clients: Vec<TcpStream> = (0..6).map(|_| running.connect()).collect();
        for (i, client) in clients.iter_mut().enumerate() {
            client.write_all(format!("client {i}").as_bytes()).unwrap();
        }
        for (i, client) in clients.iter_mut().enumerate() {
            let mut echoed = [0u8; 8];
            client.read_exact(&mut echoed).unwrap();
            assert_eq!(&echoed, format!("client {i}").as_bytes(), "{name}");
        }
        drop(clients);
        let records = running.wait_records(6);
        let (summary, _) = running.stop();
        assert_eq!(summary.connections, 6, "{name}: {summary:?}");
        assert!(
            records.iter().all(|r| r.status == ExitStatus::Exited(0)),
            "{name}: {records:?}"
        );
    }
}

#[test]
fn a_stop_ends_a_server_whose_workers_all_wait() {
    // Eight connections at once start eight worker threads; once they
    // end, every worker waits for another connection. A stop reaches the
    // server and every worker: it returns, the listener is closed, and no
    // new connection is taken.
    let running = Running::start(server("echo", Isolation::Thread).max_connections(16));
    let clients: Vec<TcpStream> = (0..8).map(|_| running.connect()).collect();
    let replies: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            std::thread::spawn(move || exchange(client, format!("to worker {i}").into_bytes()))
        })
        .collect();
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.join().unwrap(), format!("to worker {i}").into_bytes());
    }
    assert_eq!(running.wait_records(8).len(), 8);
    let addr = running.addr;
    let started = Instant::now();
    running.stop.stop();
    let deadline = started + Duration::from_secs(20);
    while !running.thread.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the server returned within 20 s of the stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
    let (summary, records) = running.stop();
    assert_eq!(summary.connections, 8, "{summary:?}");
    assert_eq!(summary.cut_short, 0, "{summary:?}");
    assert_eq!(records.len(), 8, "one record per connection: {records:?}");
}

#[test]
fn a_stop_ends_what_outlives_the_grace_period() {
    for (name, isolation) in isolations() {
        let running = Running::start(
            server("echo", isolation)
                .grace(Duration::from_millis(300))
                .idle_timeout(None),
        );
        let mut silent = running.connect();
        silent.write_all(b"x").unwrap();
        let mut echoed = [0u8; 1];
        silent.read_exact(&mut echoed).unwrap();
        let started = Instant::now();
        let (summary, records) = running.stop();
        assert!(started.elapsed() < Duration::from_secs(10), "{name}");
        assert_eq!(summary.cut_short, 1, "{name}");
        assert_eq!(records.len(), 1, "{name}");
        assert_eq!(records[0].status, ExitStatus::TimedOut, "{name}");
        let mut rest = Vec::new();
        let _ = silent.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{name}: the connection was hung up");
    }
}

#[test]
fn a_program_hands_its_own_connections_to_a_pool() {
    for (name, isolation) in isolations() {
        let pool = Pool::builder(handlers())
            .workers(4)
            .isolation(isolation)
            .build()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let clients = std::thread::spawn(move || {
            (0..8)
                .map(|i| {
                    let stream = TcpStream::connect(addr).unwrap();
                    exchange(stream, format!("hello {i}").into_bytes())
                })
                .collect::<Vec<_>>()
        });
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (stream, _) = listener.accept().unwrap();
                let task = Task::call("echo", &()).unwrap().connection(stream).unwrap();
                pool.submit(task).unwrap()
            })
            .collect();
        let replies = clients.join().unwrap();
        for (i, reply) in replies.iter().enumerate() {
            assert_eq!(reply, format!("hello {i}").as_bytes(), "{name}");
        }
        for handle in handles {
            assert_eq!(handle.wait().status, ExitStatus::Exited(0), "{name}");
        }
    }
}

#[test]
fn a_task_ending_hangs_up_its_connection() {
    // `greet` answers without reading: the client's read ends because the
    // host hung up, not because the client closed.
    for (name, isolation) in isolations() {
        let pool = Pool::builder(handlers())
            .workers(1)
            .isolation(isolation)
            .build()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (stream, _) = listener.accept().unwrap();
        let task = Task::call("greet", &())
            .unwrap()
            .env("GREETING", "hi")
            .connection(stream)
            .unwrap();
        let outcome = pool.submit(task).unwrap().wait().clone();
        assert_eq!(outcome.status, ExitStatus::Exited(0), "{name}: {outcome:?}");
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "hi\n", "{name}");
    }
}

#[test]
fn a_bad_address_or_bound_is_refused_with_the_fix() {
    let error = Listen::parse("nowhere:port").unwrap_err();
    assert_eq!(error.exit_status(), ExitStatus::BadInvocation);
    assert!(error.to_string().contains("HOST:PORT"), "{error}");
    let error = server("echo", Isolation::Thread)
        .max_connections(0)
        .bind()
        .err()
        .expect("zero connections is refused");
    assert_eq!(error.exit_status(), ExitStatus::BadInvocation);
    let error = server("echo", Isolation::Thread)
        .max_per_peer(Some(0))
        .bind()
        .err()
        .expect("a per-peer cap of zero is refused");
    assert_eq!(error.exit_status(), ExitStatus::BadInvocation);
    assert!(error.to_string().contains("None"), "{error}");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let error = Server::builder(handlers(), Listen::Tcp(taken.local_addr().unwrap()))
        .bind()
        .err()
        .expect("a port in use is refused");
    assert_eq!(error.exit_status(), ExitStatus::BadInvocation);
    assert!(error.to_string().contains("cannot listen"), "{error}");
}

#[cfg(unix)]
#[test]
fn serves_on_a_unix_socket() {
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let server = Server::builder(handlers(), Listen::parse(path.to_str().unwrap()).unwrap())
        .entry(Entry::Task("echo".into()))
        .bind()
        .unwrap();
    let stop = server.stopper();
    let thread = std::thread::spawn(move || server.run().unwrap());
    let mut stream = UnixStream::connect(&path).unwrap();
    stream.write_all(b"over a unix socket").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "over a unix socket");
    stop.stop();
    let summary = thread.join().unwrap();
    assert_eq!(summary.connections, 1);
    assert!(!path.exists(), "the socket file is removed at the end");

    // A file left at the path (by a server that crashed) is named, with the
    // fix.
    std::fs::write(&path, "").unwrap();
    let error = Server::builder(handlers(), Listen::Unix(path.clone()))
        .bind()
        .err()
        .expect("a path in use is refused");
    assert_eq!(error.exit_status(), ExitStatus::BadInvocation);
    assert!(error.to_string().contains("remove it"), "{error}");
}

/// The one record among `records` that timed out, failing the test (with
/// `who` should have) when there is not exactly one.
fn the_one_timed_out<'r>(records: &'r [ConnectionRecord], who: &str) -> &'r ConnectionRecord {
    let timed_out: Vec<_> = records
        .iter()
        .filter(|r| r.status == ExitStatus::TimedOut)
        .collect();
    assert_eq!(timed_out.len(), 1, "only {who} times out: {records:?}");
    timed_out[0]
}
