//! Request bodies under bounds: a size limit, a timeout and a minimum rate, and no draining
//! of a body nobody reads.
//!
//! [`guard`] (a middleware) replaces every request's body stream with a [`Guarded`] one:
//!
//! - **Size:** past [`BodyLimits::max_bytes`] the stream fails with `PayloadError::Overflow`
//!   (answered 413, `{"detail": ...}`), whatever the framing (`Content-Length` or chunked).
//! - **Time:** the stream fails with a `TimedOut` I/O error (answered 408) when no data came for
//!   [`BodyLimits::idle_timeout`], or when the body falls behind the minimum rate: after a grace
//!   period of [`BodyLimits::grace`], at least [`BodyLimits::min_rate`] bytes per second on
//!   average. A client that drips a byte every few seconds is cut off after the grace period.
//! - **Early answers close the connection.** actix-http drains a chunked body whose reader is
//!   gone, without a limit of time or size, to keep the connection alive: a caller with no
//!   token could hold a connection forever (or make the server read gigabytes) by sending the
//!   headers of a chunked request and then a trickle. A body that was not read to its end is
//!   not dropped with its reader: it is kept for [`HOLD`] (long enough for the response to be
//!   written), so actix-http sees an unread body, answers with `Connection: close` and closes
//!   the connection after its short linger (`client_disconnect_timeout`, 1 s) instead of
//!   draining it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{self, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use futures_core::Stream;
use tokio::time::{Instant, Sleep};

/// How long a body nobody read to its end is kept after its reader is gone.
pub const HOLD: Duration = Duration::from_secs(5);

/// The bounds every request body is read under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Longest wait for the next piece of a body.
    pub idle_timeout: Duration,
    /// Minimum average rate of a body, in bytes per second, once [`BodyLimits::grace`] is over.
    pub min_rate: u64,
    /// Time a body may take before the minimum rate applies.
    pub grace: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_bytes: crate::app::BODY_LIMIT,
            idle_timeout: Duration::from_secs(10),
            min_rate: 16 * 1024,
            grace: Duration::from_secs(10),
        }
    }
}

/// The message of the `TimedOut` error a [`Guarded`] body fails with.
pub const TIMED_OUT: &str = "Request body timed out";

/// Whether `err` is the timeout of a [`Guarded`] body.
pub fn is_timeout(err: &PayloadError) -> bool {
    matches!(err, PayloadError::Io(e) if e.kind() == io::ErrorKind::TimedOut)
}

/// Middleware: every request's body becomes a [`Guarded`] one, read under the
/// [`BodyLimits`] found in the app data (the defaults without one).
pub async fn guard<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, Error> {
    let payload = req.take_payload();
    if !matches!(payload, dev::Payload::None) {
        let limits = req.app_data::<BodyLimits>().copied().unwrap_or_default();
        let guarded: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(Guarded::new(payload, limits));
        req.set_payload(dev::Payload::from(guarded));
    }
    next.call(req).await
}

/// A request body read under [`BodyLimits`]; see the [module docs](self).
pub struct Guarded {
    inner: Option<dev::Payload>,
    limits: BodyLimits,
    started: Instant,
    last_data: Instant,
    received: usize,
    timer: Pin<Box<Sleep>>,
    /// The stream has ended (its end, an error, a limit): it yields nothing more.
    done: bool,
    /// The body was read to its end.
    complete: bool,
}

impl Guarded {
    /// Guards `inner`.
    pub fn new(inner: dev::Payload, limits: BodyLimits) -> Guarded {
        bury_expired();
        let now = Instant::now();
        let mut guarded = Guarded {
            inner: Some(inner),
            limits,
            started: now,
            last_data: now,
            received: 0,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            done: false,
            complete: false,
        };
        guarded.rearm();
        guarded
    }

    /// When the body fails unless more of it comes.
    fn deadline(&self) -> Instant {
        let idle = self.last_data + self.limits.idle_timeout;
        let earned = if self.limits.min_rate == 0 {
            Duration::MAX
        } else {
            Duration::from_secs_f64(self.received as f64 / self.limits.min_rate as f64)
        };
        let rate = self
            .started
            .checked_add(self.limits.grace.saturating_add(earned))
            .unwrap_or(idle);
        idle.min(rate)
    }

    fn rearm(&mut self) {
        let deadline = self.deadline();
        self.timer.as_mut().reset(deadline);
    }

    fn fail(&mut self, err: PayloadError) -> Poll<Option<Result<Bytes, PayloadError>>> {
        self.done = true;
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for Guarded {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received = this.received.saturating_add(chunk.len());
                if this.received > this.limits.max_bytes {
                    return this.fail(PayloadError::Overflow);
                }
                this.last_data = Instant::now();
                this.rearm();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(err))) => this.fail(err),
            Poll::Ready(None) => {
                this.done = true;
                this.complete = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.timer.as_mut().poll(cx).is_ready() {
                    return this.fail(PayloadError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        TIMED_OUT,
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if !self.complete
            && let Some(inner) = self.inner.take()
        {
            bury(inner);
        }
    }
}

thread_local! {
    /// Bodies nobody read to their end, kept for [`HOLD`] so that actix-http closes their
    /// connections instead of draining them. Per worker thread (bodies are `!Send`); expired
    /// entries go whenever a new body is guarded or buried.
    static UNREAD: RefCell<VecDeque<(Instant, dev::Payload)>> = const { RefCell::new(VecDeque::new()) };
}

fn bury(payload: dev::Payload) {
    bury_expired();
    // At thread exit the list may be gone; the body then goes at once.
    let _ = UNREAD.try_with(|unread| unread.borrow_mut().push_back((Instant::now(), payload)));
}

fn bury_expired() {
    let expired: Vec<dev::Payload> = UNREAD
        .try_with(|unread| {
            let mut unread = unread.borrow_mut();
            let mut expired = Vec::new();
            while unread.front().is_some_and(|(at, _)| at.elapsed() >= HOLD) {
                if let Some((_, payload)) = unread.pop_front() {
                    expired.push(payload);
                }
            }
            expired
        })
        .unwrap_or_default();
    // Dropped outside the borrow.
    drop(expired);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded(limits: BodyLimits) -> (Guarded, actix_http_sender::Sender) {
        let (sender, payload) = actix_http_sender::channel();
        (Guarded::new(payload, limits), sender)
    }

    /// A body fed by hand, as actix-http feeds one.
    mod actix_http_sender {
        use std::cell::RefCell;
        use std::collections::VecDeque;
        use std::pin::Pin;
        use std::rc::Rc;
        use std::task::{Context, Poll, Waker};

        use actix_web::dev;
        use actix_web::error::PayloadError;
        use actix_web::web::Bytes;
        use futures_core::Stream;

        #[derive(Default)]
        pub(super) struct Shared {
            chunks: VecDeque<Bytes>,
            eof: bool,
            waker: Option<Waker>,
        }

        pub(super) struct Sender(pub(super) Rc<RefCell<Shared>>);

        impl Sender {
            pub(super) fn send(&self, data: &'static [u8]) {
                let mut shared = self.0.borrow_mut();
                shared.chunks.push_back(Bytes::from_static(data));
                if let Some(w) = shared.waker.take() {
                    w.wake();
                }
            }

            pub(super) fn eof(&self) {
                let mut shared = self.0.borrow_mut();
                shared.eof = true;
                if let Some(w) = shared.waker.take() {
                    w.wake();
                }
            }
        }

        struct Receiver(Rc<RefCell<Shared>>);

        impl Stream for Receiver {
            type Item = Result<Bytes, PayloadError>;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                let mut shared = self.0.borrow_mut();
                if let Some(chunk) = shared.chunks.pop_front() {
                    return Poll::Ready(Some(Ok(chunk)));
                }
                if shared.eof {
                    return Poll::Ready(None);
                }
                shared.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }

        pub(super) fn channel() -> (Sender, dev::Payload) {
            let shared = Rc::new(RefCell::new(Shared::default()));
            let receiver: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
                Box::pin(Receiver(shared.clone()));
            (Sender(shared), dev::Payload::from(receiver))
        }
    }

    async fn next(body: &mut Guarded) -> Option<Result<Bytes, PayloadError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_next(cx)).await
    }

    const LIMITS: BodyLimits = BodyLimits {
        max_bytes: 8,
        idle_timeout: Duration::from_secs(10),
        min_rate: 1,
        grace: Duration::from_secs(30),
    };

    #[tokio::test(start_paused = true)]
    async fn a_body_within_its_limits_reads_to_its_end() {
        let (mut body, sender) = guarded(LIMITS);
        sender.send(b"1234");
        sender.send(b"5678");
        sender.eof();
        assert_eq!(next(&mut body).await.unwrap().unwrap(), "1234");
        assert_eq!(next(&mut body).await.unwrap().unwrap(), "5678");
        assert!(next(&mut body).await.is_none());
        assert!(body.complete);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_size_limit_the_body_overflows_and_ends() {
        let (mut body, sender) = guarded(LIMITS);
        sender.send(b"12345");
        sender.send(b"6789");
        assert_eq!(next(&mut body).await.unwrap().unwrap(), "12345");
        assert!(matches!(
            next(&mut body).await,
            Some(Err(PayloadError::Overflow))
        ));
        assert!(next(&mut body).await.is_none());
        assert!(!body.complete);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let (mut body, sender) = guarded(LIMITS);
        sender.send(b"12");
        assert_eq!(next(&mut body).await.unwrap().unwrap(), "12");
        let before = tokio::time::Instant::now();
        let err = next(&mut body).await.unwrap().unwrap_err();
        assert!(is_timeout(&err), "{err:?}");
        assert_eq!(before.elapsed(), LIMITS.idle_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dripping_body_falls_behind_the_minimum_rate() {
        // One byte every 5 s never trips the 10 s idle timeout, but at 1 kB/s after a 10 s grace
        // the body must be cut off soon after the grace.
        let limits = BodyLimits {
            max_bytes: 1 << 20,
            idle_timeout: Duration::from_secs(10),
            min_rate: 1024,
            grace: Duration::from_secs(10),
        };
        let (mut body, sender) = guarded(limits);
        let started = tokio::time::Instant::now();
        let mut received = 0;
        let err = loop {
            let drip = tokio::time::sleep(Duration::from_secs(5));
            tokio::select! {
                item = next(&mut body) => match item {
                    Some(Ok(chunk)) => received += chunk.len(),
                    Some(Err(err)) => break err,
                    None => panic!("the body ended"),
                },
                () = drip => sender.send(b"x"),
            }
        };
        assert!(is_timeout(&err), "{err:?}");
        assert!(received >= 1, "{received}");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= limits.grace && elapsed < limits.grace + Duration::from_secs(1),
            "cut off after {elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unread_body_outlives_its_reader_for_the_hold() {
        let (body, sender) = guarded(LIMITS);
        sender.send(b"1");
        let held = std::rc::Rc::strong_count(&sender.0);
        drop(body);
        assert_eq!(
            std::rc::Rc::strong_count(&sender.0),
            held,
            "the unread body is kept"
        );
        tokio::time::advance(HOLD).await;
        bury_expired();
        assert_eq!(
            std::rc::Rc::strong_count(&sender.0),
            1,
            "and gone after HOLD"
        );
    }
}
