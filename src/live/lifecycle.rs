//! One stream's life as its owner (OBS) must hear it: when data capture may begin, and
//! the one stop that ends the stream, with the right code.
//!
//! Pure: no OBS types, no I/O, no clock. [`super::LiveOutput`] feeds it what happens
//! (start, publish, stop requests, failures, the session's end, a panic, destroy) under one
//! lock and carries out what it answers, so every race between those inputs resolves here,
//! in one place, the same way every time:
//!
//! ```text
//! Idle ─begin─▶ Starting ─spawned─▶ Connecting ─publishing─▶ Publishing
//!                  │                    │                        │
//!                  └──────stop──────────┴────stop / failure──────┴─▶ Stopping
//!  session ended / task panicked (any running phase) ─▶ Ended: the one stop OBS hears
//! ```
//!
//! Rules:
//! - Data capture begins only from `Connecting`: a stop, a failure or `destroy` that came
//!   first wins over a publish event that arrives after it.
//! - The stream's end is reported exactly once, and never as OBS's "disconnected": that
//!   code hands the output to libobs's reconnect loop, which restarts the encoders and the
//!   timestamps (a new stream), and retries failures that retrying cannot fix. Reconnecting
//!   is the session's job; when it gives up, the stream is over.
//! - The first failure recorded (encoder, internal, capture refused) names the end, even
//!   if it happens while a requested stop drains (OBS's own output reports an encoder
//!   error the same way).
//! - After `destroy`, OBS hears nothing more about the stream.

use crate::protocol::ProtocolError;
use crate::session::{Report, SessionError};
use crate::transport::LinkError;

/// Where a stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No stream has started on this output yet.
    Idle,
    /// The owner is preparing a stream (encoders, settings); the session is not running.
    Starting,
    /// The session runs and has not published yet.
    Connecting,
    /// Published: data capture began (or was asked to begin).
    Publishing,
    /// A stop was requested or a failure recorded: the session is winding down.
    Stopping,
    /// The end was reported (or will not be: destroyed); a new stream may start.
    Ended,
}

/// When the session must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// After sending what the encoders produced before this system time (µs).
    Drain(i64),
    /// At once.
    Now,
}

/// How the session ended, as its task saw it.
#[derive(Debug)]
pub enum Outcome {
    /// Stopped on request, after sending everything up to the stop point.
    Stopped(Report),
    /// Failed.
    Failed(SessionError),
    /// Stopped at once (forced stop, a stop before anything was published, a drain that
    /// took too long).
    Abandoned,
    /// The stream's configuration could not be made (where to publish: why).
    Unconfigured(String),
}

/// Why a stream failed.
#[derive(Debug)]
pub enum Failure {
    /// The encoder failed (OBS handed a NULL packet).
    Encoder,
    /// A bug of ours: a callback or the output's task panicked (the message says where).
    Internal(String),
    /// OBS refused to begin data capture when the stream published.
    CaptureRefused,
    /// The session failed.
    Session(SessionError),
    /// Where to publish could not be found out (why).
    Destination(String),
}

/// The stop code OBS hears (OBS's `OBS_OUTPUT_*` values, named; never "disconnected").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCode {
    /// Ended as asked.
    Success,
    /// Could not connect to the server.
    ConnectFailed,
    /// The server refused the stream key or the credentials.
    InvalidStream,
    /// Any other failure.
    Error,
    /// The encoder failed.
    EncodeError,
}

impl Failure {
    /// The stop code for this failure; `published`: whether the stream had published.
    pub fn code(&self, published: bool) -> StopCode {
        match self {
            Self::Encoder => StopCode::EncodeError,
            Self::Internal(_) | Self::CaptureRefused => StopCode::Error,
            Self::Destination(_) => StopCode::ConnectFailed,
            Self::Session(error) if is_refusal(error) => StopCode::InvalidStream,
            Self::Session(SessionError::Connect(_)) => StopCode::ConnectFailed,
            Self::Session(SessionError::Fatal(_)) if !published => StopCode::ConnectFailed,
            Self::Session(SessionError::Fatal(_) | SessionError::GaveUp { .. }) => StopCode::Error,
        }
    }
}

/// The server refused the key or the credentials: retrying cannot help.
fn is_refusal(error: &SessionError) -> bool {
    let link = match error {
        SessionError::Connect(link) | SessionError::Fatal(link) => link,
        SessionError::GaveUp { .. } => return false,
    };
    matches!(
        link,
        LinkError::Protocol(ProtocolError::Rejected { .. } | ProtocolError::Auth(_))
    )
}

/// How the stream ended: what the owner must tell OBS, once.
#[derive(Debug)]
pub enum End {
    /// Stopped on request after sending what was due.
    Stopped {
        /// The session's figures.
        report: Report,
        /// Whether data capture began (then ending it is the stop).
        capture_began: bool,
    },
    /// Stopped at once, nothing more sent.
    Abandoned {
        /// Whether data capture began.
        capture_began: bool,
    },
    /// Failed.
    Failed {
        /// Why.
        failure: Failure,
        /// The code OBS hears.
        code: StopCode,
        /// Whether data capture began.
        capture_began: bool,
    },
}

/// What a stop request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReply {
    /// Tell the session to stop; its end will answer the request.
    Session(StopAt),
    /// The stream is already winding down; its end will answer the request.
    Pending,
    /// No stream runs (none started, or its end was already reported): the owner answers
    /// the request itself.
    NothingRuns,
}

/// The life of the streams of one output, one at a time.
#[derive(Debug)]
pub struct Lifecycle {
    phase: Phase,
    /// Data capture began (or was asked to begin) for the current stream.
    capture: bool,
    /// The first failure of the current stream, which names its end.
    failure: Option<Failure>,
    /// The stop the current stream was asked for (the earliest).
    stop: Option<StopAt>,
    /// The output is being destroyed: nothing more is reported.
    destroyed: bool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// An output on which no stream has started.
    pub fn new() -> Self {
        Self {
            phase: Phase::Idle,
            capture: false,
            failure: None,
            stop: None,
            destroyed: false,
        }
    }

    /// Where the current stream is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether a stream is running (its end has not been reported yet).
    pub fn is_running(&self) -> bool {
        !matches!(self.phase, Phase::Idle | Phase::Ended)
    }

    /// A new stream is being prepared. False if one still runs, or the output is being
    /// destroyed.
    pub fn begin(&mut self) -> bool {
        if self.is_running() || self.destroyed {
            return false;
        }
        *self = Self {
            phase: Phase::Starting,
            ..Self::new()
        };
        true
    }

    /// The stream could not start (the owner tells OBS so by failing its start).
    pub fn start_failed(&mut self) {
        if self.phase == Phase::Starting {
            self.phase = Phase::Ended;
        }
    }

    /// The session runs. Returns a stop that was requested meanwhile.
    pub fn spawned(&mut self) -> Option<StopAt> {
        match self.phase {
            Phase::Starting if self.stop.is_some() => {
                self.phase = Phase::Stopping;
                // Nothing flows yet: nothing to drain.
                Some(StopAt::Now)
            }
            Phase::Starting => {
                self.phase = Phase::Connecting;
                None
            }
            _ => None,
        }
    }

    /// The session published. True: begin data capture now.
    pub fn publishing(&mut self) -> bool {
        if self.phase != Phase::Connecting || self.destroyed {
            return false;
        }
        self.phase = Phase::Publishing;
        self.capture = true;
        true
    }

    /// OBS refused to begin data capture: the stream fails. Returns the stop for the session.
    pub fn capture_refused(&mut self) -> Option<StopAt> {
        self.capture = false;
        self.fail(Failure::CaptureRefused)
    }

    /// OBS asks to stop: `Some(system time in µs)` to send what is due first, `None` at once.
    pub fn stop(&mut self, at_usec: Option<i64>) -> StopReply {
        let asked = match at_usec {
            Some(at) if self.capture => StopAt::Drain(at),
            // Nothing flows yet: nothing to drain.
            _ => StopAt::Now,
        };
        match self.phase {
            Phase::Idle | Phase::Ended => StopReply::NothingRuns,
            Phase::Starting => {
                self.stop = Some(asked);
                StopReply::Pending
            }
            Phase::Connecting | Phase::Publishing | Phase::Stopping => {
                let earliest = match (self.stop, asked) {
                    (Some(StopAt::Now), _) | (_, StopAt::Now) => StopAt::Now,
                    (Some(StopAt::Drain(a)), StopAt::Drain(b)) => StopAt::Drain(a.min(b)),
                    (None, drain) => drain,
                };
                self.stop = Some(earliest);
                self.phase = Phase::Stopping;
                StopReply::Session(earliest)
            }
        }
    }

    /// Something failed outside the session (the encoder, a callback): the stream ends at
    /// once, named by the first such failure. Returns the stop for the session, if it runs.
    pub fn fail(&mut self, failure: Failure) -> Option<StopAt> {
        if !self.is_running() {
            return None;
        }
        if self.failure.is_none() {
            self.failure = Some(failure);
        }
        self.stop = Some(StopAt::Now);
        if self.phase == Phase::Starting {
            return None;
        }
        self.phase = Phase::Stopping;
        Some(StopAt::Now)
    }

    /// The output is being destroyed: stop at once, report nothing. Returns the stop for
    /// the session, if it runs.
    pub fn destroy(&mut self) -> Option<StopAt> {
        self.destroyed = true;
        self.stop = Some(StopAt::Now);
        match self.phase {
            Phase::Connecting | Phase::Publishing | Phase::Stopping => {
                self.phase = Phase::Stopping;
                Some(StopAt::Now)
            }
            _ => None,
        }
    }

    /// The session ended: the one end to report, if it is still to be reported.
    pub fn ended(&mut self, outcome: Outcome) -> Option<End> {
        if !matches!(
            self.phase,
            Phase::Connecting | Phase::Publishing | Phase::Stopping
        ) {
            return None;
        }
        self.phase = Phase::Ended;
        if self.destroyed {
            return None;
        }
        let capture_began = self.capture;
        let failure = match (self.failure.take(), outcome) {
            (Some(failure), _) => failure,
            (None, Outcome::Failed(error)) => Failure::Session(error),
            (None, Outcome::Unconfigured(message)) => Failure::Destination(message),
            (None, Outcome::Stopped(report)) => {
                return Some(End::Stopped {
                    report,
                    capture_began,
                })
            }
            (None, Outcome::Abandoned) => return Some(End::Abandoned { capture_began }),
        };
        Some(End::Failed {
            code: failure.code(capture_began),
            failure,
            capture_began,
        })
    }

    /// The session's task panicked (`message`: the panic's text): the stream ends as an
    /// internal error, unless a failure already named its end.
    pub fn panicked(&mut self, message: String) -> Option<End> {
        let failure = self.failure.take().unwrap_or(Failure::Internal(message));
        self.failure = Some(failure);
        self.ended(Outcome::Abandoned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::auth::AuthError;
    use std::io;

    fn connecting() -> Lifecycle {
        let mut life = Lifecycle::new();
        assert!(life.begin());
        assert_eq!(life.spawned(), None);
        assert_eq!(life.phase(), Phase::Connecting);
        life
    }

    fn publishing() -> Lifecycle {
        let mut life = connecting();
        assert!(life.publishing());
        assert_eq!(life.phase(), Phase::Publishing);
        life
    }

    fn lost() -> LinkError {
        LinkError::Io(io::Error::from(io::ErrorKind::ConnectionReset))
    }

    fn refused() -> LinkError {
        LinkError::Protocol(ProtocolError::Rejected {
            stage: "publish",
            code: "NetStream.Publish.BadName".into(),
            description: "bad key".into(),
        })
    }

    fn code(end: Option<End>) -> StopCode {
        match end {
            Some(End::Failed { code, .. }) => code,
            Some(End::Stopped { .. } | End::Abandoned { .. }) => StopCode::Success,
            None => panic!("no end reported"),
        }
    }

    #[test]
    fn a_clean_stop_drains_then_ends_data_capture_once() {
        let mut life = publishing();
        assert_eq!(life.stop(Some(5)), StopReply::Session(StopAt::Drain(5)));
        assert_eq!(life.phase(), Phase::Stopping);
        let end = life.ended(Outcome::Stopped(Report::default()));
        assert!(matches!(
            end,
            Some(End::Stopped {
                capture_began: true,
                ..
            })
        ));
        assert_eq!(life.phase(), Phase::Ended);
        assert!(life.ended(Outcome::Abandoned).is_none(), "a second end");
        assert_eq!(life.stop(None), StopReply::NothingRuns);
    }

    #[test]
    fn a_later_stop_tightens_the_drain_and_a_forced_one_wins() {
        let mut life = publishing();
        assert_eq!(life.stop(Some(9)), StopReply::Session(StopAt::Drain(9)));
        assert_eq!(life.stop(Some(4)), StopReply::Session(StopAt::Drain(4)));
        assert_eq!(life.stop(Some(7)), StopReply::Session(StopAt::Drain(4)));
        assert_eq!(life.stop(None), StopReply::Session(StopAt::Now));
        assert_eq!(life.stop(Some(1)), StopReply::Session(StopAt::Now));
    }

    #[test]
    fn a_stop_before_publishing_has_nothing_to_drain_and_no_capture() {
        let mut life = connecting();
        assert_eq!(life.stop(Some(5)), StopReply::Session(StopAt::Now));
        assert!(!life.publishing(), "capture began after the stop");
        assert!(matches!(
            life.ended(Outcome::Abandoned),
            Some(End::Abandoned {
                capture_began: false
            })
        ));
    }

    #[test]
    fn stop_racing_the_publish_event_either_order_ends_once() {
        // Publish first: capture began, the stop drains it.
        let mut life = connecting();
        assert!(life.publishing());
        assert_eq!(life.stop(Some(3)), StopReply::Session(StopAt::Drain(3)));
        assert!(matches!(
            life.ended(Outcome::Stopped(Report::default())),
            Some(End::Stopped {
                capture_began: true,
                ..
            })
        ));
        // Stop first: the publish event is too late to begin capture.
        let mut life = connecting();
        assert_eq!(life.stop(Some(3)), StopReply::Session(StopAt::Now));
        assert!(!life.publishing());
        assert!(matches!(
            life.ended(Outcome::Stopped(Report::default())),
            Some(End::Stopped {
                capture_began: false,
                ..
            })
        ));
    }

    #[test]
    fn destroy_while_connecting_begins_no_capture_and_reports_nothing() {
        let mut life = connecting();
        assert_eq!(life.destroy(), Some(StopAt::Now));
        assert!(!life.publishing(), "capture began on a dying output");
        assert!(life.ended(Outcome::Abandoned).is_none());
        assert!(!life.begin(), "a stream started on a dying output");
    }

    #[test]
    fn destroy_while_publishing_reports_nothing() {
        let mut life = publishing();
        assert_eq!(life.destroy(), Some(StopAt::Now));
        assert!(life.ended(Outcome::Abandoned).is_none());
        assert!(life.panicked("boom".into()).is_none());
    }

    #[test]
    fn a_stop_between_the_end_and_its_report_is_answered_by_that_report() {
        // The end is decided and reported in one step under the owner's lock: a stop that
        // comes after it finds nothing running and is answered on its own; one before it
        // is answered by the end.
        let mut life = publishing();
        assert_eq!(life.stop(None), StopReply::Session(StopAt::Now));
        assert_eq!(life.stop(None), StopReply::Session(StopAt::Now));
        assert!(life.ended(Outcome::Abandoned).is_some());
        assert_eq!(life.stop(None), StopReply::NothingRuns);
    }

    #[test]
    fn failures_after_publishing_never_ask_obs_to_reconnect() {
        let cases = [
            (
                SessionError::GaveUp {
                    attempts: 2,
                    last: lost(),
                },
                StopCode::Error,
            ),
            (SessionError::Fatal(refused()), StopCode::InvalidStream),
            (
                SessionError::Fatal(LinkError::Protocol(ProtocolError::Auth(
                    AuthError::WrongPassword("user".into()),
                ))),
                StopCode::InvalidStream,
            ),
            (SessionError::Fatal(lost()), StopCode::Error),
        ];
        for (error, expected) in cases {
            let shown = error.to_string();
            let mut life = publishing();
            assert_eq!(
                code(life.ended(Outcome::Failed(error))),
                expected,
                "{shown}"
            );
        }
    }

    #[test]
    fn failures_before_publishing_say_connect_or_refused() {
        let cases = [
            (SessionError::Connect(lost()), StopCode::ConnectFailed),
            (SessionError::Connect(refused()), StopCode::InvalidStream),
            (SessionError::Fatal(lost()), StopCode::ConnectFailed),
            (
                SessionError::GaveUp {
                    attempts: 1,
                    last: lost(),
                },
                StopCode::Error,
            ),
        ];
        for (error, expected) in cases {
            let shown = error.to_string();
            let mut life = connecting();
            let end = life.ended(Outcome::Failed(error));
            assert!(matches!(
                end,
                Some(End::Failed {
                    capture_began: false,
                    ..
                })
            ));
            assert_eq!(code(end), expected, "{shown}");
        }
    }

    #[test]
    fn an_encoder_error_during_a_stop_names_the_end() {
        let mut life = publishing();
        assert_eq!(life.stop(Some(8)), StopReply::Session(StopAt::Drain(8)));
        assert_eq!(life.fail(Failure::Encoder), Some(StopAt::Now));
        let end = life.ended(Outcome::Abandoned);
        assert!(matches!(
            end,
            Some(End::Failed {
                failure: Failure::Encoder,
                capture_began: true,
                ..
            })
        ));
    }

    #[test]
    fn the_first_failure_names_the_end() {
        let mut life = publishing();
        life.fail(Failure::Encoder);
        life.fail(Failure::Internal("later".into()));
        let end = life.ended(Outcome::Failed(SessionError::Fatal(lost())));
        assert_eq!(code(end), StopCode::EncodeError);
    }

    #[test]
    fn a_failure_after_the_end_changes_nothing() {
        let mut life = publishing();
        assert!(life.ended(Outcome::Abandoned).is_some());
        assert_eq!(life.fail(Failure::Encoder), None);
        assert!(life.begin(), "the next stream cannot start");
        assert_eq!(life.spawned(), None);
        assert!(matches!(
            life.ended(Outcome::Abandoned),
            Some(End::Abandoned {
                capture_began: false
            })
        ));
    }

    #[test]
    fn a_panic_in_the_task_ends_the_stream_as_an_internal_error() {
        let mut life = publishing();
        let end = life.panicked("boom".into());
        match end {
            Some(End::Failed {
                failure: Failure::Internal(message),
                code: StopCode::Error,
                capture_began: true,
            }) => assert_eq!(message, "boom"),
            other => panic!("{other:?}"),
        }
        assert_eq!(life.stop(None), StopReply::NothingRuns);
        // Before publishing too, and a stop that was waiting is answered by it.
        let mut life = connecting();
        assert_eq!(life.stop(None), StopReply::Session(StopAt::Now));
        assert_eq!(code(life.panicked("boom".into())), StopCode::Error);
    }

    #[test]
    fn refused_capture_fails_the_stream() {
        let mut life = connecting();
        assert!(life.publishing());
        assert_eq!(life.capture_refused(), Some(StopAt::Now));
        assert!(matches!(
            life.ended(Outcome::Abandoned),
            Some(End::Failed {
                failure: Failure::CaptureRefused,
                code: StopCode::Error,
                capture_began: false,
            })
        ));
    }

    #[test]
    fn a_stop_while_starting_is_applied_once_the_session_runs() {
        let mut life = Lifecycle::new();
        assert_eq!(life.stop(None), StopReply::NothingRuns);
        assert!(life.begin());
        assert!(!life.begin(), "two streams at once");
        assert_eq!(life.stop(Some(4)), StopReply::Pending);
        assert_eq!(life.spawned(), Some(StopAt::Now));
        assert!(!life.publishing());
        assert!(life.ended(Outcome::Abandoned).is_some());
    }

    #[test]
    fn a_start_that_fails_leaves_the_output_ready_for_the_next() {
        let mut life = Lifecycle::new();
        assert!(life.begin());
        life.start_failed();
        assert_eq!(life.phase(), Phase::Ended);
        assert_eq!(life.stop(None), StopReply::NothingRuns);
        assert!(life.begin());
    }
}
