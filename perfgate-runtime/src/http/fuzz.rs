//! The HTTP/1.1 response parser ([`h1::Conn`]: head and framing) fed from memory, and the properties
//! it must keep on any input, checked by the fuzz targets (`fuzz/`, through `__fuzz`) and by a short
//! property test here:
//! - it never panics, and never waits: with every byte available it completes in one poll, so it
//!   cannot loop waiting for more;
//! - what it holds stays within its declared limits: the body is never longer than the input, the
//!   read buffer never far beyond the input plus its 1 MiB read-ahead cap;
//! - the result does not depend on how the bytes arrive (one by one, or in larger pieces);
//! - a response it accepts round-trips its framing: written again with a Content-Length, or chunked,
//!   it parses to the same status, fields and body.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{HeaderMap, Method};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::budget::{Bodies, MAX_BODY};
use crate::http::h1::{self, Conn, READ_CHUNK};
use crate::http::stream::noop_waker;

/// Bytes served in pieces whose sizes a small generator picks from `seed` (1 = byte by byte).
struct Mem<'a> {
    data: &'a [u8],
    at: usize,
    state: u32,
}

impl Mem<'_> {
    fn piece(&mut self) -> usize {
        if self.state == 0 {
            return 1;
        }
        // xorshift32: a different, repeatable cut of the same bytes for each seed.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        1 + (self.state as usize % 700)
    }
}

impl AsyncRead for Mem<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let piece = self.piece();
        let n = piece.min(self.data.len() - self.at).min(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Mem<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What the parser made of a response.
#[derive(Debug, PartialEq)]
struct Parsed {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Bytes,
    reusable: bool,
}

/// Polls `f` once: with a stream that is never pending, the exchange must be complete.
fn once<T>(f: impl Future<Output = T>) -> T {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    match pin!(f).as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the parser waited with every byte available (a loop?)"),
    }
}

/// Parses `input` as the answer to a GET (or a HEAD), read in pieces cut by `seed`; also returns the
/// read buffer's capacity afterwards.
fn parse(input: &[u8], head: bool, seed: u32) -> (Result<Parsed, String>, usize) {
    let mem = Mem {
        data: input,
        at: 0,
        state: seed,
    };
    let mut conn = Conn::new(mem);
    let method = if head { Method::HEAD } else { Method::GET };
    let (host, ua, headers, body) = (
        HeaderValue::from_static("fuzz"),
        HeaderValue::from_static("perfgate/fuzz"),
        HeaderMap::new(),
        Bytes::new(),
    );
    let request = h1::Request::new(&method, "/", &host, &ua, &headers, &body)
        .expect("a plain GET is a valid request");
    // No bound of the process's: the per-body cap is what the parser declares.
    let bodies = Bodies::new(u64::MAX);
    let result = once(conn.exchange(&request, &bodies))
        .map(|r| Parsed {
            status: r.parts.status.as_u16(),
            headers: r
                .parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
            body: r.body,
            reusable: r.reusable,
        })
        .map_err(|f| f.error.1);
    (result, conn.read_capacity())
}

/// The response written again: the same status and fields, framed by a Content-Length, or chunked in
/// pieces cut by `seed`.
fn reencode(p: &Parsed, chunked: bool, seed: u32) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} Re\r\n", p.status).into_bytes();
    for (name, value) in &p.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !chunked {
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", p.body.len()).as_bytes());
        out.extend_from_slice(&p.body);
        return out;
    }
    out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
    let mut cut = Mem {
        data: &[],
        at: 0,
        state: seed | 1,
    };
    let mut rest = &p.body[..];
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(cut.piece().min(rest.len()));
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
        rest = after;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Checks every property of the module's comment on one input, panicking on a violation. The first
/// byte picks the method (HEAD when odd) and how the bytes are cut; the rest is the response.
pub fn check_h1_response(data: &[u8]) {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let head = control & 1 == 1;
    let seed = u32::from(control >> 1).wrapping_mul(0x9e37_79b9) | 1;
    let (result, capacity) = parse(input, head, seed);
    // The read-ahead: at most 1 MiB more than arrived, doubled by the buffer's growth.
    let cap = 2 * (input.len() + (1 << 20) + 2 * READ_CHUNK);
    assert!(
        capacity <= cap,
        "the read buffer grew to {capacity} bytes for {} bytes of input",
        input.len()
    );
    let (bytewise, _) = parse(input, head, 0);
    match (&result, &bytewise) {
        (Ok(a), Ok(b)) => assert_eq!(
            (a.status, &a.headers, &a.body),
            (b.status, &b.headers, &b.body),
            "the result depends on how the bytes arrive"
        ),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("the result depends on how the bytes arrive: {a:?} / {b:?}"),
    }
    let Ok(parsed) = result else { return };
    assert!(
        parsed.body.len() <= input.len() && parsed.body.len() as u64 <= MAX_BODY,
        "a body of {} bytes from {} bytes of input",
        parsed.body.len(),
        input.len()
    );
    if head {
        assert!(parsed.body.is_empty(), "a HEAD response with a body");
    }
    // Round trips of the framing (the framing fields themselves are rewritten).
    let mut kept = parsed;
    kept.headers.retain(|(name, _)| {
        name != CONTENT_LENGTH.as_str()
            && name != TRANSFER_ENCODING.as_str()
            && name != CONNECTION.as_str()
    });
    if kept.status == 204 || kept.status == 304 {
        // Bodiless by status: only the empty body round-trips.
        assert!(kept.body.is_empty());
    }
    // A bodiless status reads no body, so chunked framing would be left unread after it.
    let framings: &[bool] = if kept.status == 204 || kept.status == 304 {
        &[false]
    } else {
        &[false, true]
    };
    for &chunked in framings {
        let again = reencode(&kept, chunked, seed);
        let (back, _) = parse(&again, false, seed);
        let back = back.unwrap_or_else(|e| {
            panic!(
                "an accepted response does not parse once written again ({}): {e}\n{}",
                if chunked { "chunked" } else { "Content-Length" },
                again.escape_ascii()
            )
        });
        let mut expect_headers = kept.headers.clone();
        let framing = if chunked {
            (TRANSFER_ENCODING.as_str(), &b"chunked"[..])
        } else {
            (CONTENT_LENGTH.as_str(), &b""[..])
        };
        let framing_of = |h: &[(String, Vec<u8>)]| {
            h.iter()
                .filter(|(n, _)| n != framing.0)
                .cloned()
                .collect::<Vec<_>>()
        };
        expect_headers = framing_of(&expect_headers);
        assert_eq!(
            (
                back.status,
                framing_of(&back.headers),
                &back.body,
                back.reusable
            ),
            (kept.status, expect_headers, &kept.body, true),
            "the framing does not round-trip"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Responses near the grammar: status lines, framing fields with good and bad values, bodies
    /// framed right or wrong; then a few bytes changed at random.
    fn response() -> impl Strategy<Value = Vec<u8>> {
        let status = prop::sample::select(vec![
            "HTTP/1.1 200 OK",
            "HTTP/1.0 200 OK",
            "HTTP/1.1 204 No Content",
            "HTTP/1.1 304 Not Modified",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
            "HTTP/1.1 101 Switching",
            "HTTP/1.1 999 Odd",
            "HTTP/1.1 2x0 OK",
            "HTTP/2 200",
            "",
        ]);
        let name = prop::sample::select(vec![
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "X-A",
            "bad name",
        ]);
        let value = prop::sample::select(vec![
            "0",
            "5",
            "-1",
            "5, 5",
            "5, 6",
            "18446744073709551616",
            "chunked",
            "gzip, chunked",
            "chunked, gzip",
            "close",
            "keep-alive",
            "",
            "\u{80}",
        ]);
        let body = vec(any::<u8>(), 0..64);
        let framing = 0u8..4;
        let flips = vec((any::<prop::sample::Index>(), any::<u8>()), 0..3);
        (
            any::<u8>(),
            status,
            vec((name, value), 0..5),
            body,
            framing,
            flips,
        )
            .prop_map(|(control, status, fields, body, framing, flips)| {
                let mut r = vec![control];
                r.extend_from_slice(status.as_bytes());
                r.extend_from_slice(b"\r\n");
                for (n, v) in fields {
                    r.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
                }
                r.extend_from_slice(b"\r\n");
                match framing {
                    0 => r.extend_from_slice(&body),
                    1 => {
                        for piece in body.chunks(7) {
                            r.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
                            r.extend_from_slice(piece);
                            r.extend_from_slice(b"\r\n");
                        }
                        r.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
                    }
                    // A chunk that lies about its size.
                    2 => {
                        r.extend_from_slice(format!("{:x}\r\n", body.len() / 2).as_bytes());
                        r.extend_from_slice(&body);
                        r.extend_from_slice(b"\r\n0\r\n\r\n");
                    }
                    _ => r.extend_from_slice(b"ffffffffffff\r\n"),
                }
                for (at, byte) in flips {
                    let i = at.index(r.len());
                    r[i] = byte;
                }
                r
            })
    }

    proptest! {
        // Bounded: the fuzz targets (scripts/fuzz.sh) are where long runs go.
        #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn the_h1_parser_keeps_its_properties_near_the_grammar(r in response()) {
            check_h1_response(&r);
        }

        #[test]
        fn the_h1_parser_keeps_its_properties_on_any_bytes(r in vec(any::<u8>(), 0..512)) {
            check_h1_response(&r);
        }
    }

    #[test]
    fn the_properties_hold_on_responses_of_every_framing() {
        for r in [
            &b"\x00HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"[..],
            b"\x02HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"\x04HTTP/1.0 200 OK\r\n\r\nuntil the end",
            b"\x01HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            b"\x06HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n",
        ] {
            check_h1_response(r);
        }
    }
}
