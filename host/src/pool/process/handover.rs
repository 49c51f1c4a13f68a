//! Handing a server's connection to a worker process: the accepted socket
//! itself travels, not its bytes, so that the worker's store reads and
//! writes the connection directly (as a thread worker does, through
//! `store::socket`), and the pool keeps its own descriptor of the same
//! socket only to hang it up.
//!
//! On Unix the pool's end of a worker's frame pipe is a Unix socket pair
//! (the worker's stdin is the other end), and a connection's descriptor
//! rides with the first byte of its task's `Run` frame as `SCM_RIGHTS`
//! ancillary data: it arrives in the worker no later than the frame that
//! needs it, and in the same order as the frames. The worker reads its
//! stdin with `recvmsg` and keeps the descriptors that come, in order.
//!
//! On Windows the frame pipe stays the child's stdin pipe, and the socket
//! is duplicated into the worker process (`WSADuplicateSocketW`, which
//! needs the worker's process id): its protocol information travels as a
//! `Socket` frame just before the `Run` frame, and the worker makes its
//! socket from it (`WSASocketW`) as the frame arrives.

use std::io::BufWriter;

use super::protocol::{ToChild, WireSocket};
use crate::task::Socket;

/// The pool's end of the frames to one worker process.
#[cfg(unix)]
pub(super) type ChildInput = std::os::unix::net::UnixStream;
/// The pool's end of the frames to one worker process.
#[cfg(windows)]
pub(super) type ChildInput = std::process::ChildStdin;

/// What kind of socket `socket` is, as the worker must rebuild it.
pub(super) fn kind(socket: &Socket) -> WireSocket {
    match socket {
        Socket::Tcp(_) => WireSocket::Tcp,
        #[cfg(unix)]
        Socket::Unix(_) => WireSocket::Unix,
    }
}

/// The worker's stdin and the pool's end of it: a connected Unix socket
/// pair on Unix (so that descriptors can travel), a pipe elsewhere (the
/// caller takes the child's stdin then).
#[cfg(unix)]
pub(super) fn child_input() -> std::io::Result<(std::process::Stdio, Option<ChildInput>)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    Ok((
        std::process::Stdio::from(std::os::fd::OwnedFd::from(theirs)),
        Some(ours),
    ))
}

/// The worker's stdin and the pool's end of it: a pipe, taken from the
/// child once spawned.
#[cfg(windows)]
pub(super) fn child_input() -> std::io::Result<(std::process::Stdio, Option<ChildInput>)> {
    Ok((std::process::Stdio::piped(), None))
}

/// Sends `frame` with `socket`'s descriptor attached to its first byte;
/// what `out` had buffered goes first, so frames keep their order. (The
/// worker's process id is for Windows, which duplicates into it.)
#[cfg(unix)]
pub(super) fn send_with_socket(
    out: &mut BufWriter<ChildInput>,
    frame: &ToChild,
    socket: &Socket,
    _pid: u32,
) -> std::io::Result<()> {
    use std::io::{IoSlice, Write};
    use std::mem::MaybeUninit;
    use std::os::fd::AsFd;

    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};

    use super::protocol::write_frame_buffered;

    out.flush()?;
    let mut bytes = Vec::new();
    write_frame_buffered(&mut bytes, frame)?;
    let fd = match socket {
        Socket::Tcp(stream) => stream.as_fd(),
        Socket::Unix(stream) => stream.as_fd(),
    };
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other(
            "no room for a descriptor in the ancillary buffer",
        ));
    }
    let stream = out.get_mut();
    let sent = loop {
        match sendmsg(
            stream.as_fd(),
            &[IoSlice::new(&bytes)],
            &mut control,
            // A worker gone meanwhile is an error here, not a SIGPIPE that
            // would end a host program that has not ignored it.
            SendFlags::NOSIGNAL,
        ) {
            Ok(sent) => break sent,
            Err(rustix::io::Errno::INTR) => continue,
            Err(error) => return Err(error.into()),
        }
    };
    // The descriptor went with the first byte; the rest of a long frame
    // follows as plain bytes.
    stream.write_all(&bytes[sent..])
}

/// Sends `frame` with `socket` duplicated into worker process `pid`: its
/// protocol information as a `Socket` frame, then `frame`, after what
/// `out` had buffered, so frames keep their order.
#[cfg(windows)]
pub(super) fn send_with_socket(
    out: &mut BufWriter<ChildInput>,
    frame: &ToChild,
    socket: &Socket,
    pid: u32,
) -> std::io::Result<()> {
    use std::io::Write;

    use super::protocol::write_frame_buffered;

    let Socket::Tcp(stream) = socket;
    let protocol_info = windows_socket::duplicate_for(stream, pid)?;
    write_frame_buffered(out, &ToChild::Socket { protocol_info })?;
    write_frame_buffered(out, frame)?;
    out.flush()
}

/// A socket duplicated into another process, and made again there.
#[cfg(windows)]
pub(super) mod windows_socket {
    use std::net::TcpStream;
    use std::os::windows::io::{AsRawSocket, FromRawSocket, RawSocket};

    use windows_sys::Win32::Networking::WinSock::{
        FROM_PROTOCOL_INFO, INVALID_SOCKET, SOCKET, WSA_FLAG_NO_HANDLE_INHERIT,
        WSA_FLAG_OVERLAPPED, WSADATA, WSADuplicateSocketW, WSAGetLastError, WSAPROTOCOL_INFOW,
        WSASocketW, WSAStartup,
    };

    /// The size of `WSAPROTOCOL_INFOW`'s fields added up: five `u32`s, a
    /// GUID (16 bytes), a `u32`, the protocol chain (an `i32` and seven
    /// `u32`s), eleven 32-bit integers and 256 UTF-16 units.
    const INFO_LEN: usize = 5 * 4 + 16 + 4 + 8 * 4 + 11 * 4 + 256 * 2;
    // The struct is exactly its fields: it has no padding, so every one of
    // its bytes is an initialized integer byte (what the byte views below
    // rely on).
    const _: () = assert!(std::mem::size_of::<WSAPROTOCOL_INFOW>() == INFO_LEN);

    /// Duplicates `stream` for process `pid`: the protocol information
    /// that process makes its socket from (`from_protocol_info`).
    pub(crate) fn duplicate_for(stream: &TcpStream, pid: u32) -> std::io::Result<Vec<u8>> {
        let mut info = WSAPROTOCOL_INFOW::default();
        // SAFETY: the socket is open (borrowed from `stream` for the
        // call), and `info` is a valid, writable `WSAPROTOCOL_INFOW`.
        let failed =
            unsafe { WSADuplicateSocketW(stream.as_raw_socket() as SOCKET, pid, &mut info) };
        if failed != 0 {
            return Err(last_error(
                "duplicate the connection's socket for a worker process",
            ));
        }
        // SAFETY: `info` is `INFO_LEN` initialized bytes with no padding
        // (the assertion above), borrowed only for the copy.
        let bytes = unsafe { std::slice::from_raw_parts((&raw const info).cast::<u8>(), INFO_LEN) };
        Ok(bytes.to_vec())
    }

    /// The socket another process duplicated for this one.
    pub(crate) fn from_protocol_info(bytes: &[u8]) -> std::io::Result<TcpStream> {
        if bytes.len() != INFO_LEN {
            return Err(std::io::Error::other(format!(
                "a socket's protocol information is {INFO_LEN} bytes, not {}",
                bytes.len()
            )));
        }
        start_winsock()?;
        let mut info = WSAPROTOCOL_INFOW::default();
        // SAFETY: `info` is `INFO_LEN` bytes of integers only (no padding,
        // the assertion above), so any bytes are a valid value of it; the
        // source has exactly that length and does not overlap it.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut info).cast::<u8>(), INFO_LEN);
        }
        // SAFETY: `info` is a valid `WSAPROTOCOL_INFOW`, read by the call.
        let socket = unsafe {
            WSASocketW(
                FROM_PROTOCOL_INFO,
                FROM_PROTOCOL_INFO,
                FROM_PROTOCOL_INFO,
                &info,
                0,
                WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT,
            )
        };
        if socket == INVALID_SOCKET {
            return Err(last_error("make the socket handed to this worker process"));
        }
        // SAFETY: `socket` was just made by `WSASocketW` and nothing else
        // owns it: the stream takes it, and closes it when dropped.
        Ok(unsafe { TcpStream::from_raw_socket(socket as RawSocket) })
    }

    /// Winsock must be started in a process before its first socket call;
    /// std starts it only on its own first use, which has not come in a
    /// worker yet. Started once (the count is never given back: the worker
    /// uses sockets until it exits).
    fn start_winsock() -> std::io::Result<()> {
        static STARTED: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
        let code = *STARTED.get_or_init(|| {
            // SAFETY: `data` is a valid, writable `WSADATA`; version 2.2.
            unsafe {
                let mut data: WSADATA = std::mem::zeroed();
                WSAStartup(0x202, &mut data)
            }
        });
        if code != 0 {
            return Err(std::io::Error::from_raw_os_error(code));
        }
        Ok(())
    }

    fn last_error(what: &str) -> std::io::Error {
        // SAFETY: no arguments; reads this thread's last Winsock error.
        let code = unsafe { WSAGetLastError() };
        let error = std::io::Error::from_raw_os_error(code);
        std::io::Error::new(error.kind(), format!("cannot {what}: {error}"))
    }
}

/// The worker's side: its stdin, read with `recvmsg`, keeping the
/// descriptors that come with the bytes, in order.
#[cfg(unix)]
pub(super) mod inbox {
    use std::collections::VecDeque;
    use std::io::{IoSliceMut, Read};
    use std::mem::MaybeUninit;
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::Arc;

    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};

    use crate::mutex::Mutex;
    use crate::pool::process::protocol::WireSocket;
    use crate::task::Socket;

    /// Linux marks a received descriptor close-on-exec as it arrives, so
    /// that no program started meanwhile by another thread inherits it;
    /// elsewhere it is marked just after.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const CLOSE_ON_EXEC: RecvFlags = RecvFlags::CMSG_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const CLOSE_ON_EXEC: RecvFlags = RecvFlags::empty();

    /// The descriptors received and not yet taken, in the order they came.
    #[derive(Clone, Default)]
    pub(crate) struct Received(Arc<Mutex<VecDeque<OwnedFd>>>);

    impl Received {
        /// The next descriptor, as the socket a `Run` frame says it is.
        pub(crate) fn take(&self, kind: WireSocket) -> Option<Socket> {
            let fd = self.0.lock().pop_front()?;
            Some(match kind {
                WireSocket::Tcp => Socket::Tcp(std::net::TcpStream::from(fd)),
                WireSocket::Unix => Socket::Unix(std::os::unix::net::UnixStream::from(fd)),
            })
        }
    }

    /// The worker's stdin as a reader that keeps what descriptors come.
    pub(crate) struct Inbox {
        received: Received,
        /// Not a socket (a worker started by hand, its stdin a pipe): read
        /// it plainly.
        plain: bool,
    }

    impl Inbox {
        pub(crate) fn stdin() -> (Inbox, Received) {
            let received = Received::default();
            let inbox = Inbox {
                received: received.clone(),
                plain: false,
            };
            (inbox, received)
        }
    }

    impl Read for Inbox {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let stdin = std::io::stdin();
            if self.plain {
                return rustix::io::read(stdin.as_fd(), buf).map_err(Into::into);
            }
            // Room for a few: each `Run` frame brings one, and one read
            // stops after the bytes that came with descriptors.
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = loop {
                match recvmsg(
                    stdin.as_fd(),
                    &mut [IoSliceMut::new(buf)],
                    &mut control,
                    CLOSE_ON_EXEC,
                ) {
                    Ok(got) => break got,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(rustix::io::Errno::NOTSOCK) => {
                        self.plain = true;
                        return self.read(buf);
                    }
                    Err(error) => return Err(error.into()),
                }
            };
            let mut received = self.received.0.lock();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = message {
                    for fd in fds {
                        // Not for a program this worker might start (set
                        // as it arrived where `CLOSE_ON_EXEC` can).
                        if CLOSE_ON_EXEC.is_empty() {
                            let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
                        }
                        received.push_back(fd);
                    }
                }
            }
            Ok(got.bytes)
        }
    }
}

/// The pool's end of the frames to a spawned worker: the half of the
/// socket pair kept (Unix), or the child's stdin pipe.
pub(super) fn our_end(
    kept: Option<ChildInput>,
    child: &mut std::process::Child,
) -> std::io::Result<ChildInput> {
    #[cfg(windows)]
    let kept = kept.or_else(|| child.stdin.take());
    #[cfg(unix)]
    let _ = child;
    kept.ok_or_else(|| std::io::Error::other("the worker process has no stdin to send frames to"))
}

/// The worker's side on Windows: its stdin is a pipe, and each socket is
/// made from the `Socket` frame that comes before its `Run` frame.
#[cfg(windows)]
pub(super) mod inbox {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use crate::mutex::Mutex;
    use crate::pool::process::protocol::WireSocket;
    use crate::task::Socket;

    /// The sockets received and not yet taken, in the order they came.
    #[derive(Clone, Default)]
    pub(crate) struct Received(Arc<Mutex<VecDeque<std::net::TcpStream>>>);

    impl Received {
        /// The next socket, as the `Run` frame says it is (only TCP
        /// sockets travel on Windows).
        pub(crate) fn take(&self, kind: WireSocket) -> Option<Socket> {
            match kind {
                WireSocket::Tcp => self.0.lock().pop_front().map(Socket::Tcp),
                WireSocket::Unix => None,
            }
        }

        /// Makes the socket a `Socket` frame describes, for the next `Run`
        /// frame to take.
        pub(crate) fn arrived(&self, protocol_info: &[u8]) -> std::io::Result<()> {
            let stream = super::windows_socket::from_protocol_info(protocol_info)?;
            self.0.lock().push_back(stream);
            Ok(())
        }
    }

    /// The worker's stdin, read plainly.
    pub(crate) struct Inbox;

    impl Inbox {
        pub(crate) fn stdin() -> (std::io::Stdin, Received) {
            (std::io::stdin(), Received::default())
        }
    }
}
