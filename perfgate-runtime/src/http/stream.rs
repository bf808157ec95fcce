//! A connection to the service: plain TCP, or TLS over it. One enum rather than a boxed trait
//! object: a plain `http://` connection costs one branch per read or write, no indirect call.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub(crate) enum Stream {
    Plain(TcpStream),
    /// Boxed: a TLS session is a few KB, which would make every plain connection as large.
    Tls(Box<TlsStream<TcpStream>>),
}

/// A waker that does nothing: the liveness check polls readiness once and never waits. A vtable of
/// no-ops (`Waker::noop` is newer than the crate's MSRV): nothing allocated, nothing to free.
pub(crate) fn noop_waker() -> Waker {
    const RAW: RawWaker = RawWaker::new(std::ptr::null(), &VTABLE);
    const VTABLE: RawWakerVTable = RawWakerVTable::new(|_| RAW, |_| {}, |_| {}, |_| {});
    // SAFETY: no function of the vtable reads the data pointer, so a null one is valid, and a clone
    // is the same no-op waker.
    unsafe { Waker::from_raw(RAW) }
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Whether an idle connection still looks usable. No syscall while the runtime has seen nothing
    /// arrive on it since the last response was read (tokio clears the read readiness on a short
    /// read); otherwise one non-blocking read tells whether the peer closed it, reset it or sent
    /// something unasked, all of which make it unusable. A close the runtime has not yet seen is
    /// left to the pool's retry rule.
    pub(crate) fn is_open(&mut self) -> bool {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        match self.tcp().poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Something arrived (or the last read filled the buffer exactly, which leaves the
            // readiness set): a read that finds nothing also clears it.
            Poll::Ready(Ok(())) => match self {
                Stream::Plain(s) => {
                    let mut byte = [0u8; 1];
                    let found = s.try_read(&mut byte);
                    matches!(found, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
                }
                // Over TLS, bytes may be a session ticket or a key update, which rustls takes in
                // without any plaintext: only a read of the session tells a live connection (no
                // data yet) from a closed one (EOF, close_notify) or one that sent something unasked.
                Stream::Tls(s) => {
                    let mut byte = [0u8; 1];
                    let mut buf = ReadBuf::new(&mut byte);
                    matches!(
                        Pin::new(&mut **s).poll_read(&mut cx, &mut buf),
                        Poll::Pending
                    )
                }
            },
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
