//! Polling with a deadline: every wait in a lab test goes through here, so a timeout always says
//! what was awaited and what was last seen instead of just "timed out".

use std::fmt::Debug;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

/// How often probes run.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What one probe saw: done with a value, or not yet, with a description of the current state
/// (shown in the timeout error).
#[derive(Debug)]
pub enum Check<T> {
    Done(T),
    NotYet(String),
}

impl<T> Check<T> {
    /// `Done(v)` if `value` is Some, else `NotYet` with the observed state printed by `{:?}`.
    pub fn from_option(value: Option<T>, observed: &impl Debug) -> Check<T> {
        match value {
            Some(v) => Check::Done(v),
            None => Check::NotYet(format!("{observed:?}")),
        }
    }
}

/// Polls `probe` until it returns `Some`, for at most `timeout`.
///
/// ```no_run
/// # use std::time::Duration;
/// # use interop_tests::wait_until;
/// let x = wait_until("the answer", Duration::from_secs(1), || Some(42)).unwrap();
/// ```
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    wait_for(what, timeout, || match probe() {
        Some(v) => Check::Done(v),
        None => Check::NotYet("condition not met (probe returned None)".into()),
    })
}

/// Polls `probe` until it returns `Check::Done`, for at most `timeout`. On timeout the error
/// names `what`, the time waited and the last observation.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Check<T>,
) -> Result<T> {
    let start = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match probe() {
            Check::Done(v) => return Ok(v),
            Check::NotYet(observed) => {
                if start.elapsed() >= timeout {
                    return Err(anyhow!(
                        "timed out after {:.1}s ({attempts} checks) waiting for {what}\n\
                         last observed: {observed}",
                        start.elapsed().as_secs_f64()
                    ));
                }
            }
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Checks that `probe` keeps returning `Ok(())` for the whole of `duration` (e.g. "the session
/// with the wrong password never comes up"). Fails at the first `Err`, with its message.
pub fn holds_for(
    what: &str,
    duration: Duration,
    mut probe: impl FnMut() -> Result<(), String>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Err(observed) = probe() {
            return Err(anyhow!(
                "{what} stopped holding after {:.1}s: {observed}",
                start.elapsed().as_secs_f64()
            ));
        }
        if start.elapsed() >= duration {
            return Ok(());
        }
        thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_error_names_what_and_last_observation() {
        let mut n = 0;
        let err = wait_for("n to reach 1000", Duration::from_millis(450), || {
            n += 1;
            Check::<()>::NotYet(format!("n = {n}"))
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("waiting for n to reach 1000"), "{err}");
        assert!(err.contains(&format!("last observed: n = {n}")), "{err}");
        assert!(n >= 2, "probe ran {n} times");
    }

    #[test]
    fn returns_value_once_ready() {
        let mut n = 0;
        let v = wait_until("third try", Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n * 10)
        })
        .unwrap();
        assert_eq!(v, 30);
    }

    #[test]
    fn holds_for_reports_first_failure() {
        let mut n = 0;
        let err = holds_for("n below 2", Duration::from_secs(5), || {
            n += 1;
            if n < 2 {
                Ok(())
            } else {
                Err(format!("n = {n}"))
            }
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("n below 2 stopped holding") && err.contains("n = 2"),
            "{err}"
        );
    }
}
