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
//! Elsewhere (Windows) the frame pipe stays the child's stdin pipe, no
//! socket travels, and a server relays a worker's connection through the
//! pool (`serve::accept`).

use std::io::BufWriter;

use super::protocol::{ToChild, WireSocket};
use crate::task::Socket;

/// The pool's end of the frames to one worker process.
#[cfg(unix)]
pub(super) type ChildInput = std::os::unix::net::UnixStream;
/// The pool's end of the frames to one worker process.
#[cfg(not(unix))]
pub(super) type ChildInput = std::process::ChildStdin;

/// Whether a worker process can take a connection's socket itself.
pub(crate) const SOCKETS_TRAVEL: bool = cfg!(unix);

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
#[cfg(not(unix))]
pub(super) fn child_input() -> std::io::Result<(std::process::Stdio, Option<ChildInput>)> {
    Ok((std::process::Stdio::piped(), None))
}

/// Sends `frame` with `socket`'s descriptor attached to its first byte;
/// what `out` had buffered goes first, so frames keep their order.
#[cfg(unix)]
pub(super) fn send_with_socket(
    out: &mut BufWriter<ChildInput>,
    frame: &ToChild,
    socket: &Socket,
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

/// No socket travels to a worker process here: a server relays its bytes.
#[cfg(not(unix))]
pub(super) fn send_with_socket(
    _out: &mut BufWriter<ChildInput>,
    _frame: &ToChild,
    _socket: &Socket,
) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "a connection's socket cannot be handed to a worker process on this system",
    ))
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
    #[cfg(not(unix))]
    let kept = kept.or_else(|| child.stdin.take());
    #[cfg(unix)]
    let _ = child;
    kept.ok_or_else(|| std::io::Error::other("the worker process has no stdin to send frames to"))
}

/// The worker's side elsewhere: its stdin is a pipe, and no descriptor
/// comes.
#[cfg(not(unix))]
pub(super) mod inbox {
    use crate::pool::process::protocol::WireSocket;
    use crate::task::Socket;

    /// Nothing is ever received.
    #[derive(Clone, Default)]
    pub(crate) struct Received;

    impl Received {
        pub(crate) fn take(&self, _kind: WireSocket) -> Option<Socket> {
            None
        }
    }

    /// The worker's stdin, read plainly.
    pub(crate) struct Inbox;

    impl Inbox {
        pub(crate) fn stdin() -> (std::io::Stdin, Received) {
            (std::io::stdin(), Received)
        }
    }
}
