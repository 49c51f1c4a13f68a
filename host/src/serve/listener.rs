//! Where a server listens (TCP, or a Unix socket where the OS has them),
//! the accepted connections, and waking a blocked `accept` to stop.

use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;

use socket2::{Domain, SockAddr, Type};

use crate::error::{Error, ErrorKind};
use crate::task::Socket;

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address (`127.0.0.1:8080`, `[::]:0`; port 0 picks a free one).
    Tcp(SocketAddr),
    /// A Unix socket at this path (Unix only; the file is made at bind and
    /// removed when the server ends).
    Unix(PathBuf),
}

impl Listen {
    /// Reads `HOST:PORT` as TCP (the host may be a name, `localhost`), and
    /// anything with a `/` (or not of that form, where the OS has Unix
    /// sockets) as a Unix socket path.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] naming the accepted forms.
    pub fn parse(spec: &str) -> Result<Listen, Error> {
        if !spec.contains('/')
            && let Ok(mut addrs) = spec.to_socket_addrs()
            && let Some(addr) = addrs.next()
        {
            return Ok(Listen::Tcp(addr));
        }
        if cfg!(unix) && !spec.is_empty() && (spec.contains('/') || !spec.contains(':')) {
            return Ok(Listen::Unix(PathBuf::from(spec)));
        }
        Err(Error::new(
            ErrorKind::BadInvocation,
            format!(
                "cannot listen on `{spec}`: give HOST:PORT (e.g. 127.0.0.1:8080, or port 0 for \
                 any free one){}",
                if cfg!(unix) {
                    " or the path of a Unix socket (e.g. ./server.sock)"
                } else {
                    ""
                }
            ),
        ))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A bound listening socket.
pub(super) enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener),
}

/// One accepted connection: a socket of either kind.
pub(super) enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

impl Listener {
    /// Binds `listen` with room for `backlog` connections waiting to be
    /// accepted. Returns the listener and the address it is bound to (with
    /// the port picked, for port 0).
    pub(super) fn bind(listen: &Listen, backlog: u32) -> Result<(Listener, Listen), Error> {
        let refused = |error: io::Error| {
            Error::new(
                ErrorKind::BadInvocation,
                format!("cannot listen on {listen}: {error}"),
            )
        };
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        match listen {
            Listen::Tcp(addr) => {
                let socket = socket2::Socket::new(Domain::for_address(*addr), Type::STREAM, None)
                    .map_err(refused)?;
                // As `TcpListener::bind` does: on Unix a restarted server
                // may bind a port whose old connections linger in
                // TIME_WAIT. (On Windows the option would let another
                // program take a port in use, so it stays off there.)
                #[cfg(unix)]
                socket.set_reuse_address(true).map_err(refused)?;
                socket.bind(&SockAddr::from(*addr)).map_err(refused)?;
                socket.listen(backlog).map_err(refused)?;
                let listener = TcpListener::from(socket);
                let bound = listener.local_addr().map_err(refused)?;
                Ok((Listener::Tcp(listener), Listen::Tcp(bound)))
            }
            #[cfg(unix)]
            Listen::Unix(path) => {
                let refused = |error: io::Error| {
                    let hint = if error.kind() == io::ErrorKind::AddrInUse {
                        "; a file is there already: if no server uses it (one that \
                         crashed left it), remove it"
                    } else {
                        ""
                    };
                    Error::new(
                        ErrorKind::BadInvocation,
                        format!("cannot listen on {listen}: {error}{hint}"),
                    )
                };
                let socket =
                    socket2::Socket::new(Domain::UNIX, Type::STREAM, None).map_err(refused)?;
                socket
                    .bind(&SockAddr::unix(path).map_err(refused)?)
                    .map_err(refused)?;
                socket.listen(backlog).map_err(refused)?;
                Ok((Listener::Unix(socket.into()), listen.clone()))
            }
            #[cfg(not(unix))]
            Listen::Unix(path) => Err(Error::new(
                ErrorKind::BadInvocation,
                format!(
                    "cannot listen on {}: this system has no Unix sockets; give HOST:PORT",
                    path.display()
                ),
            )),
        }
    }

    /// Waits for the next connection; returns it with its peer's address
    /// in words, and for TCP the peer's IP address.
    pub(super) fn accept(&self) -> io::Result<(Stream, String, Option<IpAddr>)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept()?;
                // Replies are often written in pieces (a head, then a
                // body): sent at once, not held back for an ack.
                stream.set_nodelay(true)?;
                Ok((Stream::Tcp(stream), peer.to_string(), Some(peer.ip())))
            }
            #[cfg(unix)]
            Listener::Unix(listener) => {
                let (stream, peer) = listener.accept()?;
                let peer = peer
                    .as_pathname()
                    .map_or_else(|| "unix".to_owned(), |p| p.display().to_string());
                Ok((Stream::Unix(stream), peer, None))
            }
        }
    }
}

/// Wakes an `accept` blocked on `bound` by connecting to it once. The
/// server, told to stop, sees the connection and closes it at once.
pub(super) fn wake(bound: &Listen) {
    match bound {
        Listen::Tcp(addr) => {
            let mut addr = *addr;
            // A server bound to every address is reached on loopback.
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let _ = TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1));
        }
        #[cfg(unix)]
        Listen::Unix(path) => {
            let _ = std::os::unix::net::UnixStream::connect(path);
        }
        #[cfg(not(unix))]
        Listen::Unix(_) => {}
    }
}

impl Stream {
    /// A duplicate, as the socket a store reads and writes directly.
    pub(super) fn socket(&self) -> io::Result<Socket> {
        Ok(match self {
            Stream::Tcp(stream) => Socket::Tcp(stream.try_clone()?),
            #[cfg(unix)]
            Stream::Unix(stream) => Socket::Unix(stream.try_clone()?),
        })
    }

    /// Ends both directions; waiting reads on any clone return.
    pub(super) fn hang_up(&self) {
        // A peer that already went away makes this fail: it is hung up.
        let _ = match self {
            Stream::Tcp(stream) => stream.shutdown(Shutdown::Both),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.shutdown(Shutdown::Both),
        };
    }
}
