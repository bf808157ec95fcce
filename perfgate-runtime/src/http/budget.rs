//! One bound on the bytes of response bodies buffered at once across the generator process (all its
//! workers and paths: the lean HTTP/1.1 connections, HTTP/2, hyper to other hosts). A body is counted
//! from the moment its bytes are read until the last copy of it (the scenario's [`Response`]) is
//! dropped; a response that would take the total over the bound fails, the run goes on.
//!
//! Bodies of at most [`UNCOUNTED`] bytes are not counted: counting them would put a shared atomic on
//! every request's path (a cache line bouncing between the workers' cores), and what they can hold is
//! bounded anyway by the requests in flight (16 KiB each, 64 MiB at the engine's default cap of 4096).
//!
//! [`Response`]: crate::Response

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{ErrorKind, ExchangeError};
use crate::format::format_bytes;

/// The default bound: far above what a load test's responses need at once, far below a CI
/// machine's memory.
pub(crate) const DEFAULT_MAX_BUFFERED: u64 = 256 << 20;

/// Largest body accepted, declared or received, whatever the bound: a peer must not make one
/// response allocate without limit.
pub(crate) const MAX_BODY: u64 = 1 << 30;

/// Bodies up to this size are not counted (see the module's comment).
pub(crate) const UNCOUNTED: u64 = 16 * 1024;

/// The bound and what is counted against it now.
pub(crate) struct Bodies {
    limit: u64,
    used: AtomicU64,
}

impl Bodies {
    pub(crate) fn new(limit: u64) -> Arc<Bodies> {
        Arc::new(Bodies {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// Bytes counted now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// The bytes one body holds of the bound; given back when dropped.
#[derive(Default)]
pub(crate) struct Held {
    /// Set once the body is counted: a small body never touches the shared counter.
    bodies: Option<Arc<Bodies>>,
    bytes: u64,
}

impl Held {
    /// Counts the body as `total` bytes long so far. Within [`UNCOUNTED`] this is one comparison.
    #[inline]
    pub(crate) fn grow_to(
        &mut self,
        bodies: &Arc<Bodies>,
        total: u64,
    ) -> Result<(), ExchangeError> {
        if total <= UNCOUNTED || total <= self.bytes {
            return Ok(());
        }
        self.count(bodies, total)
    }

    #[cold]
    fn count(&mut self, bodies: &Arc<Bodies>, total: u64) -> Result<(), ExchangeError> {
        let more = total - self.bytes;
        bodies
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|&n| n <= bodies.limit)
            })
            .map_err(|used| over_bound(bodies.limit, used - self.bytes, total))?;
        self.bodies.get_or_insert_with(|| bodies.clone());
        self.bytes = total;
        Ok(())
    }

    /// The body, counted until its last copy is dropped.
    pub(crate) fn attach(self, body: Bytes) -> Bytes {
        if self.bodies.is_none() {
            return body;
        }
        Bytes::from_owner(Counted { body, _held: self })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(bodies) = &self.bodies {
            bodies.used.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

/// A counted body's bytes and what they hold of the bound.
struct Counted {
    body: Bytes,
    _held: Held,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

pub(crate) fn too_long_body() -> ExchangeError {
    (ErrorKind::Other, "response body exceeds 1 GiB".into())
}

fn over_bound(limit: u64, others: u64, total: u64) -> ExchangeError {
    (
        ErrorKind::Other,
        format!(
            "response bodies buffered at once would exceed the load generator's bound of {} \
             (this body {} so far, the others in flight {}); raise it with --max-body-memory SIZE \
             (PERFGATE_MAX_BODY_BYTES), or ask for smaller responses",
            format_bytes(limit as f64),
            format_bytes(total as f64),
            format_bytes(others as f64),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_are_not_counted_and_large_ones_until_dropped() {
        let bodies = Bodies::new(100 * 1024);
        let mut small = Held::default();
        small.grow_to(&bodies, UNCOUNTED).unwrap();
        assert_eq!(bodies.used(), 0);
        let small = small.attach(Bytes::from_static(b"x"));
        assert_eq!(&small[..], b"x");

        let mut a = Held::default();
        a.grow_to(&bodies, 40 * 1024).unwrap();
        a.grow_to(&bodies, 60 * 1024).unwrap();
        // Shrinking is not a thing: a smaller total counts nothing more.
        a.grow_to(&bodies, 50 * 1024).unwrap();
        assert_eq!(bodies.used(), 60 * 1024);
        let body = a.attach(Bytes::from(vec![7u8; 60 * 1024]));
        let copy = body.clone();
        let mut b = Held::default();
        let (kind, message) = b.grow_to(&bodies, 41 * 1024).unwrap_err();
        assert_eq!(kind, ErrorKind::Other);
        assert!(
            message.contains("bound of 100KiB")
                && message.contains("this body 41.0KiB so far")
                && message.contains("others in flight 60.0KiB")
                && message.contains("--max-body-memory"),
            "{message}"
        );
        b.grow_to(&bodies, 40 * 1024).unwrap();
        drop(b);
        assert_eq!(bodies.used(), 60 * 1024);
        drop(body);
        assert_eq!(bodies.used(), 60 * 1024, "a copy still holds it");
        assert_eq!(copy.len(), 60 * 1024);
        drop(copy);
        assert_eq!(bodies.used(), 0);
    }
}
