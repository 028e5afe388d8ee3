//! A bounded log: the last lines for a task's `log_tail`, and the first bytes for a log file.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Lines kept for a `log_tail`.
pub(crate) const TAIL_LINES: usize = 100;
/// The longest line kept; longer lines are cut there.
const MAX_LINE: usize = 8 << 10;

/// Collects a log from any task (shared by reference; it locks inside). Keeps the last 100
/// lines (`TAIL_LINES`) and, up to `keep_bytes`, the raw bytes from the start.
#[derive(Debug)]
pub struct LogBook {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tail: VecDeque<String>,
    partial: Vec<u8>,
    kept: Vec<u8>,
    keep_bytes: usize,
    dropped_bytes: u64,
}

impl LogBook {
    /// A log keeping the last lines and the first `keep_bytes` bytes.
    pub fn new(keep_bytes: usize) -> LogBook {
        LogBook {
            inner: Mutex::new(Inner {
                keep_bytes,
                ..Inner::default()
            }),
        }
    }

    /// Adds raw output, which may hold several lines or a part of one.
    pub fn push_bytes(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        let room = inner.keep_bytes.saturating_sub(inner.kept.len());
        let keep = room.min(bytes.len());
        inner.kept.extend_from_slice(&bytes[..keep]);
        inner.dropped_bytes += (bytes.len() - keep) as u64;
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut inner.partial);
                inner.push_line(&line);
            } else if inner.partial.len() < MAX_LINE {
                inner.partial.push(b);
            }
        }
    }

    /// Adds one whole line (a trailing newline is not needed).
    pub fn push_line(&self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        if !line.ends_with('\n') {
            bytes.push(b'\n');
        }
        self.push_bytes(&bytes);
    }

    /// The last lines, oldest first, including an unfinished last line.
    pub fn tail(&self) -> Vec<String> {
        let inner = self.lock();
        let mut lines: Vec<String> = inner.tail.iter().cloned().collect();
        if !inner.partial.is_empty() {
            lines.push(clean(&inner.partial));
            if lines.len() > TAIL_LINES {
                lines.remove(0);
            }
        }
        lines
    }

    /// The bytes kept from the start, with a note when more was dropped.
    pub(crate) fn kept(&self) -> Vec<u8> {
        let inner = self.lock();
        let mut out = inner.kept.clone();
        if inner.dropped_bytes > 0 {
            out.extend_from_slice(
                format!(
                    "\n[orbitdock: {} more bytes of log not kept]\n",
                    inner.dropped_bytes
                )
                .as_bytes(),
            );
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn push_line(&mut self, line: &[u8]) {
        let line = clean(line);
        // Docker's build output carries blank lines and carriage returns; keep what reads.
        if line.trim().is_empty() {
            return;
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

fn clean(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    // A progress line rewritten with `\r` shows its last state.
    let s = s.trim_end_matches('\r');
    s.rsplit('\r').next().unwrap_or(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_and_the_first_bytes() {
        let log = LogBook::new(10);
        for i in 0..150 {
            log.push_bytes(format!("line {i}\n").as_bytes());
        }
        log.push_bytes(b"unfinished");
        let tail = log.tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[0], "line 51");
        assert_eq!(tail.last().unwrap(), "unfinished");
        let kept = String::from_utf8(log.kept()).unwrap();
        assert!(kept.starts_with("line 0\nlin"), "{kept}");
        assert!(kept.contains("more bytes of log not kept"));
    }

    #[test]
    fn splits_parts_and_drops_blank_lines() {
        let log = LogBook::new(0);
        log.push_bytes(b"Step 1/2 : FROM x\n\n ---> abc");
        log.push_bytes(b"\r\nprogress 10%\rprogress 100%\n");
        log.push_line("error: boom");
        assert_eq!(
            log.tail(),
            [
                "Step 1/2 : FROM x",
                " ---> abc",
                "progress 100%",
                "error: boom"
            ]
        );
        assert!(LogBook::new(0).tail().is_empty());
    }
}
