//! The server's death by a `die` fault: every connection fails at once, as
//! the kernel closes a killed process's sockets, and the listener closes.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A listener whose connections die with `life`.
pub struct MortalListener {
    /// The socket accepted from.
    pub inner: TcpListener,
    /// Cancelled when the server dies.
    pub life: CancellationToken,
}

impl axum::serve::Listener for MortalListener {
    type Io = MortalStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (
            MortalStream {
                io,
                death: Box::pin(self.life.clone().cancelled_owned()),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that fails every read and write once the server died. hyper
/// polls reads while a request is being handled (to notice a client that
/// went away), so the death wakes it even mid-request; it then drops the
/// connection and the client sees it closed without an answer.
pub struct MortalStream {
    io: TcpStream,
    death: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl MortalStream {
    fn dead(&mut self, cx: &mut Context<'_>) -> bool {
        self.death.as_mut().poll(cx).is_ready()
    }
}

fn died() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the API server died")
}

impl AsyncRead for MortalStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.dead(cx) {
            return Poll::Ready(Err(died()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for MortalStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.dead(cx) {
            return Poll::Ready(Err(died()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.dead(cx) {
            return Poll::Ready(Err(died()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
