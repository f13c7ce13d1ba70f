//! The server's [`Connection`] and [`Listener`] over turmoil's simulated TCP.
//!
//! turmoil's stream has `try_write` and `writable` like tokio's, but reads only through
//! `AsyncRead` (`poll_read`, `poll_peek`) on `&mut self`. The session shares its stream
//! by reference between its read and write loops, so the stream sits in a mutex (one
//! thread, never contended, never held across an await) and readiness is emulated:
//! `readable` is a `poll_peek` of one byte (turmoil keeps the peeked segment for the
//! next read), `try_read` drains segments with a no-op waker until one would wait.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use rally_server::connection::{Connection, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A turmoil listener the server accepts players from.
pub struct SimListener(pub turmoil::net::TcpListener);

impl Listener for SimListener {
    type Conn = SimConn;

    async fn accept(&self) -> io::Result<(SimConn, SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        Ok((SimConn::new(stream), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// One accepted simulated connection.
pub struct SimConn {
    stream: Mutex<turmoil::net::TcpStream>,
}

impl SimConn {
    fn new(stream: turmoil::net::TcpStream) -> Self {
        SimConn {
            stream: Mutex::new(stream),
        }
    }

    fn lock(&self) -> MutexGuard<'_, turmoil::net::TcpStream> {
        self.stream.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Connection for SimConn {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        poll_fn(move |cx| self.poll_read_ready(cx))
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut one = [0u8; 1];
        let mut buf = ReadBuf::new(&mut one);
        match self.lock().poll_peek(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            // Bytes, the end of the stream, or an error: `try_read` reports which.
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut stream = self.lock();
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = ReadBuf::new(buf);
        while out.remaining() > 0 {
            let before = out.filled().len();
            match Pin::new(&mut *stream).poll_read(&mut cx, &mut out) {
                Poll::Pending if before == 0 => return Err(io::ErrorKind::WouldBlock.into()),
                Poll::Pending => break,
                // Nothing added: the end of the stream (0 if nothing came before it).
                Poll::Ready(Ok(())) if out.filled().len() == before => break,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) if before == 0 => return Err(e),
                // The error comes again on the next read.
                Poll::Ready(Err(_)) => break,
            }
        }
        Ok(out.filled().len())
    }

    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        poll_fn(move |cx| {
            let stream = self.lock();
            // turmoil registers the waker with the stream's flow control, so the future
            // may be dropped after each poll.
            let ready = pin!(stream.writable());
            ready.poll(cx)
        })
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.lock().try_write(buf)
    }

    fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.lock().set_nodelay(nodelay)
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        let stream = self.stream.get_mut().unwrap_or_else(|e| e.into_inner());
        poll_fn(move |cx| Pin::new(&mut *stream).poll_shutdown(cx))
    }
}
