//! Reports: figures side by side with a peer, printed and written as JSON + Markdown.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Which direction is good for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// One measured figure, ours and (when there is one) the peer's.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub metric: String,
    pub unit: String,
    pub ours: f64,
    pub peer_name: Option<String>,
    pub peer: Option<f64>,
    /// `ours / peer` — above 1 is better when `better` is Higher, below 1 when Lower.
    pub ratio: Option<f64>,
    pub better: Better,
}

impl Figure {
    pub fn new(
        metric: impl Into<String>,
        unit: impl Into<String>,
        ours: f64,
        better: Better,
    ) -> Self {
        Figure {
            metric: metric.into(),
            unit: unit.into(),
            ours,
            peer_name: None,
            peer: None,
            ratio: None,
            better,
        }
    }

    pub fn peer(mut self, name: impl Into<String>, value: f64) -> Self {
        self.peer_name = Some(name.into());
        self.peer = Some(value);
        self.ratio = (value != 0.0).then(|| self.ours / value);
        self
    }
}

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub description: String,
    pub when: String,
    pub machine: Machine,
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
}

/// Where it was measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub os: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            os: std::env::consts::OS.to_string(),
        }
    }
}

impl Report {
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Report {
            name: name.into(),
            description: description.into(),
            when: jiff::Timestamp::now().to_string(),
            machine: Machine::detect(),
            figures: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn push(&mut self, f: Figure) {
        self.figures.push(f);
    }

    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }

    /// The Markdown table (also what is printed).
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# {}\n\n{}\n\nMeasured {} on {} CPU(s), {}.\n\n| metric | ours | peer | peer value | ratio (ours/peer) |\n|---|---:|---|---:|---:|\n",
            self.name, self.description, self.when, self.machine.cpus, self.machine.cpu_model
        );
        for f in &self.figures {
            out.push_str(&format!(
                "| {} ({}) | {} | {} | {} | {} |\n",
                f.metric,
                f.unit,
                fmt_num(f.ours),
                f.peer_name.as_deref().unwrap_or("—"),
                f.peer.map(fmt_num).unwrap_or_else(|| "—".into()),
                f.ratio
                    .map(|r| format!(
                        "{r:.2}× ({} is better)",
                        match f.better {
                            Better::Higher => "higher",
                            Better::Lower => "lower",
                        }
                    ))
                    .unwrap_or_else(|| "—".into()),
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("\n- {n}"));
        }
        out.push('\n');
        out
    }

    /// Print the table and write `<dir>/<name>.json` and `<dir>/<name>.md`.
    pub fn finish(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        println!("{}", self.markdown());
        std::fs::create_dir_all(dir)?;
        let json = dir.join(format!("{}.json", self.name));
        let md = dir.join(format!("{}.md", self.name));
        std::fs::write(&json, serde_json::to_string_pretty(self)?)?;
        std::fs::write(&md, self.markdown())?;
        println!("report written to {} and {}", json.display(), md.display());
        Ok((json, md))
    }
}

fn fmt_num(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        // Differences of probabilities, errors: keep their magnitude.
        format!("{v:.2e}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json_and_markdown() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Report::new("t", "test report");
        r.push(Figure::new("rtf", "x", 0.1, Better::Lower).peer("faster-whisper", 0.2));
        r.push(Figure::new("alone", "ms", 3.0, Better::Lower));
        let (json, md) = r.finish(dir.path()).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        assert_eq!(v["figures"][0]["ratio"], 0.5);
        let md = std::fs::read_to_string(md).unwrap();
        assert!(
            md.contains("| rtf (x) | 0.1000 | faster-whisper | 0.2000 | 0.50× (lower is better) |"),
            "{md}"
        );
        assert!(md.contains("| alone (ms) | 3.00 | — | — | — |"), "{md}");
        assert_eq!(fmt_num(1.25e-6), "1.25e-6");
        assert_eq!(fmt_num(0.0), "0.0000");
    }
}
