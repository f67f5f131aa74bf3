//! Fallback decoding through an `ffmpeg` program (AMR-NB, Opus, ...).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{DecodeOptions, Input, Raw, check_channels, check_length, check_rate};
use crate::{Error, Result};

/// Whether `program` runs.
pub(crate) fn available(program: &Path) -> bool {
    Command::new(program)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What ffmpeg says about the first audio stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamInfo {
    pub codec: String,
    pub rate: u32,
    /// `None` for layouts we do not recognise (downmixed to mono).
    pub channels: Option<usize>,
}

/// Parse the `Stream #0:0: Audio: amr_nb (samr / 0x726D6173), 8000 Hz, mono, fltp`
/// line of ffmpeg's input description.
pub(crate) fn parse_stream_info(stderr: &str) -> Option<StreamInfo> {
    let line = stderr
        .lines()
        .take_while(|l| !l.starts_with("Output") && !l.contains("Stream mapping"))
        .find(|l| l.contains("Stream #") && l.contains("Audio: "))?;
    let rest = &line[line.find("Audio: ")? + 7..];
    let codec = rest
        .split([' ', ','])
        .next()
        .filter(|c| !c.is_empty())?
        .to_string();
    let fields: Vec<&str> = rest.split(", ").map(str::trim).collect();
    let hz = fields.iter().position(|f| f.ends_with(" Hz"))?;
    let rate = fields[hz].trim_end_matches(" Hz").trim().parse().ok()?;
    let layout = fields.get(hz + 1).copied().unwrap_or("");
    let layout = layout.split('(').next().unwrap_or("").trim();
    let channels = match layout {
        "mono" => Some(1),
        "stereo" => Some(2),
        "2.1" | "3.0" => Some(3),
        "quad" | "4.0" => Some(4),
        "5.0" => Some(5),
        "5.1" => Some(6),
        "7.1" => Some(8),
        other => other
            .strip_suffix(" channels")
            .and_then(|n| n.trim().parse().ok()),
    };
    Some(StreamInfo {
        codec,
        rate,
        channels,
    })
}

fn run(program: &Path, input: Input<'_>, args: &[String]) -> Result<(Vec<u8>, String, bool)> {
    let mut cmd = Command::new(program);
    cmd.arg("-hide_banner");
    match input {
        Input::File(path) => {
            cmd.arg("-nostdin").arg("-i").arg(path).stdin(Stdio::null());
        }
        Input::Bytes(_) => {
            cmd.args(["-i", "pipe:0"]).stdin(Stdio::piped());
        }
    }
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::io("running", program, e))?;
    let writer = match (input, child.stdin.take()) {
        (Input::Bytes(bytes), Some(mut stdin)) => {
            let bytes = bytes.to_vec();
            // ffmpeg may stop reading early (probe only); a broken pipe is fine.
            Some(std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("running", program, e))?;
    if let Some(w) = writer {
        let _ = w.join();
    }
    Ok((
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    ))
}

fn last_line(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string()
}

/// Decode with ffmpeg, which also resamples to the target rate.
pub(crate) fn decode(
    program: &Path,
    input: Input<'_>,
    opts: &DecodeOptions,
    codec_hint: &str,
) -> Result<Raw> {
    // Pass 1: what is in there (ffmpeg describes its input, then complains
    // that no output was given).
    let (_, probe, _) = run(program, input, &[])?;
    let info = parse_stream_info(&probe).ok_or_else(|| {
        Error::InvalidAudio(format!(
            "neither symphonia nor ffmpeg can read it as audio (ffmpeg: {})",
            last_line(&probe)
        ))
    })?;
    check_rate(info.rate)?;
    let channels = info.channels.unwrap_or(1);
    check_channels(channels)?;
    // Pass 2: raw f32 samples at the target rate, at most a little over the limit.
    let limit = format!("{}", opts.max_seconds + 1.0);
    let args: Vec<String> = [
        "-vn",
        "-t",
        &limit,
        "-f",
        "f32le",
        "-acodec",
        "pcm_f32le",
        "-ac",
        &channels.to_string(),
        "-ar",
        &opts.target_rate.to_string(),
        "-",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (pcm, stderr, ok) = run(program, input, &args)?;
    if !ok {
        return Err(Error::InvalidAudio(format!(
            "ffmpeg cannot decode this {} audio: {}",
            info.codec,
            last_line(&stderr)
        )));
    }
    let samples: Vec<f32> = pcm
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let frames = samples.len() / channels;
    check_length(frames as f64 / opts.target_rate as f64, opts)?;
    let mut out = vec![Vec::with_capacity(frames); channels];
    for frame in samples.chunks_exact(channels) {
        for (c, &x) in frame.iter().enumerate() {
            out[c].push(x);
        }
    }
    tracing::debug!(codec = %info.codec, hint = codec_hint, rate = info.rate, channels, "decoded with ffmpeg");
    Ok(Raw {
        channels: out,
        rate: opts.target_rate,
        original_rate: info.rate,
        codec: info.codec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ffmpeg_stream_lines() {
        let amr = "Input #0, amr, from 'x.amr':\n  Duration: 00:00:02.00, bitrate: 12 kb/s\n  Stream #0:0: Audio: amr_nb (samr / 0x726D6173), 8000 Hz, mono, fltp, 12 kb/s\nAt least one output file must be specified\n";
        assert_eq!(
            parse_stream_info(amr),
            Some(StreamInfo {
                codec: "amr_nb".into(),
                rate: 8000,
                channels: Some(1)
            })
        );
        let opus = "  Stream #0:0: Audio: opus, 48000 Hz, stereo, fltp\n";
        assert_eq!(parse_stream_info(opus).unwrap().channels, Some(2));
        let many = "  Stream #0:0(und): Audio: pcm_s16le, 44100 Hz, 3 channels, s16, 2116 kb/s\n";
        assert_eq!(parse_stream_info(many).unwrap().channels, Some(3));
        assert_eq!(parse_stream_info("garbage: Invalid data found\n"), None);
    }
}
