//! Processes the lab starts: each in its own session (so one signal reaches a daemon and the
//! helpers it forks), output captured to a file, stopped by PID — SIGTERM, then SIGKILL — by
//! whoever owns it last (normally the `Lab`'s Drop). Also one-shot commands with a timeout.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a process gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(3);

/// A long-running process started by a `Lab` (a daemon, tcpdump, the bgplane agent...).
///
/// Cheap to clone; every clone refers to the same process. The process is stopped when
/// [`Process::terminate`] or [`Process::kill9`] is called, or at the latest when the `Lab` that
/// started it is dropped (also while a test panics).
///
/// The process is put in a new session (`setsid`), so signals go to its whole process group —
/// ExaBGP's API helper dies with ExaBGP. It also gets `PR_SET_PDEATHSIG = SIGKILL`: if the test
/// binary is killed outright, the kernel kills the daemons too. That signal fires when the
/// *thread* that spawned the process exits, so spawn from the thread that owns the `Lab`.
#[derive(Clone)]
pub struct Process {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    pid: u32,
    output: PathBuf,
    child: Mutex<Child>,
    /// Set once the child has been reaped; from then on its PID is never signalled again.
    reaped: Mutex<Option<ExitStatus>>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Process({} pid {})", self.inner.name, self.inner.pid)
    }
}

/// Adds `setsid` and the parent-death signal to a command. Safe to call on any `Command`.
pub(crate) fn detach(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl Process {
    /// Spawns `cmd` (already aimed at a namespace by `Node::command`) with stdin closed and
    /// stdout+stderr appended to `output`.
    pub(crate) fn spawn(name: &str, mut cmd: Command, output: &Path) -> Result<Process> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(output)
            .with_context(|| format!("creating output file {}", output.display()))?;
        let err = out.try_clone().context("duplicating output file handle")?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        detach(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Process {
            inner: Arc::new(Inner {
                name: name.to_string(),
                pid: child.id(),
                output: output.to_path_buf(),
                child: Mutex::new(child),
                reaped: Mutex::new(None),
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// File that holds the process's stdout and stderr.
    pub fn output_path(&self) -> &Path {
        &self.inner.output
    }

    /// The last `lines` lines of the process's stdout/stderr.
    pub fn output_tail(&self, lines: usize) -> String {
        tail_file(&self.inner.output, lines)
    }

    fn reaped(&self) -> MutexGuard<'_, Option<ExitStatus>> {
        self.inner.reaped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exit status, if the process has exited and been reaped by `terminate`/`kill9`/`wait_exit`.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.reaped()
    }

    /// True while the process exists and is not a zombie (a stopped process is running).
    pub fn is_running(&self) -> bool {
        if self.reaped().is_some() {
            return false;
        }
        !matches!(proc_state(self.inner.pid), None | Some('Z') | Some('X'))
    }

    /// The kernel's one-letter state from /proc/PID/stat (`S`, `R`, `T` stopped, `Z`...).
    pub fn state(&self) -> Option<char> {
        if self.reaped().is_some() {
            return None;
        }
        proc_state(self.inner.pid)
    }

    /// Sends `sig` to the process group (the process and the helpers it started).
    pub fn signal(&self, sig: libc::c_int) -> Result<()> {
        let reaped = self.reaped();
        if reaped.is_some() {
            bail!(
                "{}: already exited, not signalling pid {}",
                self.inner.name,
                self.inner.pid
            );
        }
        // The child is not reaped yet, so its PID (and process group ID) cannot have been reused.
        // SAFETY: plain syscall.
        let rc = unsafe { libc::kill(-(self.inner.pid as libc::pid_t), sig) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err).with_context(|| {
                    format!(
                        "sending signal {sig} to {} (pid {})",
                        self.inner.name, self.inner.pid
                    )
                });
            }
        }
        Ok(())
    }

    /// SIGSTOP: the process freezes (keeps its sockets, sends nothing — for hold-timer tests).
    pub fn pause(&self) -> Result<()> {
        self.signal(libc::SIGSTOP)
    }

    /// SIGCONT after [`Process::pause`].
    pub fn resume(&self) -> Result<()> {
        self.signal(libc::SIGCONT)
    }

    /// `kill -9` the process group and reap it (a crash, as far as its peers can tell).
    pub fn kill9(&self) -> Result<ExitStatus> {
        self.signal(libc::SIGKILL)?;
        self.reap()
    }

    /// SIGTERM, then SIGKILL after `grace`; reaps the process. Idempotent.
    pub fn terminate(&self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.exit_status() {
            return Ok(status);
        }
        self.signal(libc::SIGTERM)?;
        // A stopped process only acts on SIGTERM once continued.
        self.signal(libc::SIGCONT)?;
        let deadline = Instant::now() + grace;
        while self.is_running() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        // Kills the leader if it ignored SIGTERM, and any helper it left behind in its group;
        // the unreaped (zombie) leader keeps the group ID from being reused meanwhile.
        self.signal(libc::SIGKILL)?;
        self.reap()
    }

    /// Waits until the process exits by itself, then reaps it.
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() >= deadline {
                bail!(
                    "{} (pid {}) still running after {:?}; output tail:\n{}",
                    self.inner.name,
                    self.inner.pid,
                    timeout,
                    self.output_tail(20)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.signal(libc::SIGKILL);
        self.reap()
    }

    fn reap(&self) -> Result<ExitStatus> {
        let mut reaped = self.reaped();
        if let Some(status) = *reaped {
            return Ok(status);
        }
        let mut child = self.inner.child.lock().unwrap_or_else(|e| e.into_inner());
        let status = child
            .wait()
            .with_context(|| format!("waiting for {} (pid {})", self.inner.name, self.inner.pid))?;
        *reaped = Some(status);
        Ok(status)
    }
}

/// The state letter of /proc/PID/stat, or None if there is no such process.
pub(crate) fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (comm) S ...": comm may contain spaces and parentheses; the state follows the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

/// Runs a short command to completion, killing it (and its group) after `timeout`.
/// Returns its output whatever the exit status; callers decide what a failure means.
pub(crate) fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    detach(&mut cmd);
    let mut child = cmd.spawn().with_context(|| format!("running {cmd:?}"))?;
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for command")? {
            break status;
        }
        if Instant::now() >= deadline {
            // SAFETY: plain syscall; the child is unreaped so its group ID is still ours.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            bail!("{cmd:?} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// The last `lines` lines of a text file ("" if it cannot be read).
pub fn tail_file(path: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return format!("({} not readable)", path.display());
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// CLOCK_MONOTONIC in nanoseconds: comparable between processes on this machine (the ingest
/// benchmark compares its own readings with the times `bgp-feeder` prints).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
