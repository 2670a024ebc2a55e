//! The FSM's timers as deadlines (no clock here: the runtime sleeps until `earliest()` and
//! calls back), and the deterministic exponential backoff behind ConnectRetryTimer and
//! IdleHoldTimer.

use std::time::{Duration, Instant};

use super::config::Backoff;
use super::types::Event;

/// RFC 4271 §8 timers, as absolute deadlines. `None` = not running.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    pub connect_retry: Option<Instant>,
    pub hold: Option<Instant>,
    pub keepalive: Option<Instant>,
    /// Delay before AutomaticStart after a failure (RFC 4271 §8.1.1 IdleHoldTimer).
    pub idle_hold: Option<Instant>,
}

impl Timers {
    pub fn earliest(&self) -> Option<Instant> {
        [
            self.connect_retry,
            self.hold,
            self.keepalive,
            self.idle_hold,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The first expired timer (at `now`) and its event, cleared. Hold before keepalive: a
    /// session whose hold timer has run out must not send one more KEEPALIVE first.
    pub fn take_expired(&mut self, now: Instant) -> Option<Event> {
        let slots: [(&mut Option<Instant>, Event); 4] = [
            (&mut self.hold, Event::HoldTimerExpires),
            (&mut self.keepalive, Event::KeepaliveTimerExpires),
            (&mut self.connect_retry, Event::ConnectRetryTimerExpires),
            (&mut self.idle_hold, Event::IdleHoldTimerExpires),
        ];
        for (slot, event) in slots {
            if slot.is_some_and(|t| t <= now) {
                *slot = None;
                return Some(event);
            }
        }
        None
    }

    pub fn clear_session(&mut self) {
        self.hold = None;
        self.keepalive = None;
        self.connect_retry = None;
    }
}

/// Doubling backoff: `next()` hands out min, 2·min, 4·min, ... up to max; `reset()` goes back.
#[derive(Debug, Clone)]
pub(crate) struct BackoffState {
    bounds: Backoff,
    current: Duration,
}

impl BackoffState {
    pub fn new(bounds: Backoff) -> Self {
        let min = bounds.min.min(bounds.max);
        BackoffState {
            bounds,
            current: min,
        }
    }

    /// The delay to use now; the following one is doubled (capped).
    pub fn next(&mut self) -> Duration {
        let d = self.current;
        self.current = self.current.saturating_mul(2).min(self.bounds.max);
        d
    }

    /// The delay `next()` would hand out, without advancing.
    pub fn peek(&self) -> Duration {
        self.current
    }

    pub fn reset(&mut self) {
        self.current = self.bounds.min.min(self.bounds.max);
    }

    pub fn set_bounds(&mut self, bounds: Backoff) {
        self.bounds = bounds;
        self.current = self.current.clamp(bounds.min.min(bounds.max), bounds.max);
    }
}
