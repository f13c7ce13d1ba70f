//! What a session needs of a socket ([`Connection`]) and what an accept loop needs of a
//! listener ([`Listener`]).
//!
//! The server runs on tokio's `TcpStream` and `TcpListener`, which implement both traits
//! by calling their own methods: sessions and accept loops are generic over them, so the
//! production path is monomorphised to exactly the code it was before the traits (no
//! `dyn`, no allocation, no lock). The traits exist so the same session and accept-loop
//! code can run over other sockets, such as a network simulator's (the deterministic
//! network-fault tests in `tests/sim.rs` run the server over turmoil's simulated TCP).
//!
//! The methods follow tokio's readiness model: wait for `readable` / `writable`, then
//! `try_read` / `try_write`, which fail with `WouldBlock` when the readiness was spurious.
//! A session shares one connection by reference between its read and write loops (they
//! run in one task), so everything but `shutdown` takes `&self`.
//!
//! Wire floor (the socket side of the edge, at the bottom: sessions, listeners and the
//! transport use it): imports nothing of the crate.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};

/// A connected byte stream, driven by readiness.
pub trait Connection: Send + Sync + 'static {
    /// Completes when a read may make progress (bytes, end of stream, or an error to
    /// report). May complete spuriously: `try_read` then returns `WouldBlock`.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;

    /// `readable` as a poll, for the session's read loop: it keeps no future, so an idle
    /// session's state holds no readiness waiter (only the last task to poll is woken;
    /// a session polls from its one task).
    fn poll_read_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>>;

    /// Reads what is available now into `buf` without waiting: `Ok(0)` is the end of the
    /// stream, `WouldBlock` means nothing is there yet.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// A short read emptied the socket: forget the read readiness now, so the next
    /// `readable` waits for new bytes instead of costing a read that would only return
    /// `WouldBlock`. Must not lose a readiness event that arrived since the read.
    /// The default does nothing (the next `try_read` then says `WouldBlock`).
    fn clear_read_ready(&self) {}

    /// Completes when a write may make progress. May complete spuriously.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;

    /// Writes what the socket takes now from `buf`, without waiting; `WouldBlock` when
    /// it takes nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;

    /// Sets `TCP_NODELAY` (a no-op for streams without Nagle's algorithm).
    fn set_nodelay(&self, nodelay: bool) -> io::Result<()>;

    /// Half-closes: the peer reads the end of the stream after what was written.
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send + '_;
}

/// A source of connections with the addresses of their peers.
pub trait Listener: Send + Sync + 'static {
    /// The connections it accepts.
    type Conn: Connection;

    /// Waits for the next connection.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Conn, SocketAddr)>> + Send + '_;

    /// Where it listens.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl Connection for TcpStream {
    #[inline]
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        TcpStream::readable(self)
    }

    #[inline]
    fn poll_read_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }

    #[inline]
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::try_read(self, buf)
    }

    #[inline]
    fn clear_read_ready(&self) {
        // Clears tokio's readiness only if no new event arrived since it was last seen,
        // without a system call.
        let _ = self.try_io(Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }

    #[inline]
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        TcpStream::writable(self)
    }

    #[inline]
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }

    #[inline]
    fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        TcpStream::set_nodelay(self, nodelay)
    }

    #[inline]
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        AsyncWriteExt::shutdown(self)
    }
}

impl Listener for TcpListener {
    type Conn = TcpStream;

    #[inline]
    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send + '_ {
        TcpListener::accept(self)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}
