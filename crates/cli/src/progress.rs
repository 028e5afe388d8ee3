//! Progress on long work: a bar while standard error is a terminal; otherwise (a pipe, a log,
//! CI) a line each time the picture changes, never a stream of redraws.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::AsyncReadExt;

/// A bar counting `total` bytes, drawn on standard error when it is a terminal.
pub(crate) fn bytes(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A request body read from `file` in 64 KiB pieces, each counted on `bar`.
pub(crate) fn read_body(file: tokio::fs::File, bar: ProgressBar) -> reqwest::Body {
    let pieces = futures_util::stream::unfold(Some(file), move |file| {
        let bar = bar.clone();
        async move {
            let mut file = file?;
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    bar.inc(n as u64);
                    Some((Ok::<_, std::io::Error>(buf), Some(file)))
                }
                // The error ends the body; nothing is read after it.
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    reqwest::Body::wrap_stream(pieces)
}

/// An execution's uplink as `exec start --wait` follows it: the bytes the link has carried of
/// those queued, and when the rest is predicted to arrive.
#[derive(Default)]
pub(crate) struct Uplink {
    bar: Option<ProgressBar>,
    /// The most bytes seen queued: the bar's length.
    total: u64,
    /// The last line printed when there is no terminal.
    said: Option<String>,
}

impl Uplink {
    /// Shows the execution's latest uplink ETA (`None`: nothing is queued any more).
    pub(crate) fn show(&mut self, eta: Option<&api::UplinkEta>) {
        let Some(eta) = eta else {
            if let Some(bar) = &self.bar {
                bar.set_position(self.total);
            }
            return;
        };
        self.total = self.total.max(eta.remaining_bytes);
        let when = match (&eta.pass, &eta.completion, &eta.error) {
            (Some(p), Some(at), _) => format!("arrives {at} in the pass over {}", p.station),
            (None, Some(at), _) => format!("arrives {at}"),
            (_, None, Some(why)) => format!("no ETA: {why}"),
            (_, None, None) => "no ETA yet".to_string(),
        };
        let total = self.total;
        let bar = self.bar.get_or_insert_with(|| bytes(total, "uplink"));
        bar.set_length(total);
        bar.set_position(total - eta.remaining_bytes);
        bar.set_message(format!("uplink ({when})"));
        if bar.is_hidden() && self.said.as_deref() != Some(when.as_str()) {
            eprintln!("  uplink: {} bytes to go, {when}", eta.remaining_bytes);
            self.said = Some(when);
        }
    }

    /// Takes the bar off the terminal.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
