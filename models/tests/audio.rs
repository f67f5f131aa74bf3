//! Audio decoding matrix: fixtures are generated at test time with sox and
//! ffmpeg in a temporary directory. A test whose tool is missing prints
//! "skipped: ..." and returns.

use std::path::{Path, PathBuf};
use std::process::Command;

use assist_models::Error;
use assist_models::audio::{DecodeOptions, Decoded, decode_bytes, decode_file, resample};
use assist_testkit::{Kind, skip};

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg(if tool == "ffmpeg" {
            "-version"
        } else {
            "--version"
        })
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(
            Kind::Tool,
            format!("{tool} is not installed (scripts/install-deps)"),
        );
    }
    ok
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sine tone made by sox: `sox -n -r RATE -c 1 -b BITS -e ENC out synth SECS sine FREQ`.
fn sox_tone(
    dir: &Path,
    name: &str,
    rate: u32,
    bits: u32,
    enc: &str,
    secs: f64,
    freq: f64,
) -> PathBuf {
    let out = dir.join(name);
    run(Command::new("sox")
        .args([
            "-n",
            "-r",
            &rate.to_string(),
            "-c",
            "1",
            "-b",
            &bits.to_string(),
            "-e",
            enc,
        ])
        .arg(&out)
        .args([
            "synth",
            &secs.to_string(),
            "sine",
            &freq.to_string(),
            "vol",
            "0.5",
        ]));
    out
}

/// Re-encode with ffmpeg: `ffmpeg -i src [args] dst`.
fn ffmpeg(src: &Path, dst: &Path, args: &[&str]) {
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(src)
        .args(args)
        .arg(dst));
}

/// Dominant frequency from zero crossings of the middle of a channel.
fn frequency(samples: &[f32], rate: u32) -> f64 {
    let mid = &samples[samples.len() / 4..samples.len() * 3 / 4];
    let crossings = mid
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f64 / 2.0 / (mid.len() as f64 / rate as f64)
}

fn check(d: &Decoded, what: &str, channels: usize, secs: f64, tol: f64, freq: f64) {
    assert_eq!(d.sample_rate, 16_000, "{what}");
    assert_eq!(d.channels.len(), channels, "{what}");
    assert!(
        (d.duration_s - secs).abs() <= tol,
        "{what}: duration {} vs {secs}",
        d.duration_s
    );
    for c in &d.channels {
        let expected = d.duration_s * 16_000.0;
        assert!(
            (c.len() as f64 - expected).abs() <= 2.0,
            "{what}: {} samples vs {expected}",
            c.len()
        );
        let f = frequency(c, 16_000);
        assert!(
            (f - freq).abs() / freq < 0.02,
            "{what}: tone at {f:.1} Hz, expected {freq}"
        );
        assert!(
            c.iter().all(|x| x.is_finite() && x.abs() <= 1.5),
            "{what}: samples out of range (max {})",
            c.iter().fold(0f32, |m, x| m.max(x.abs()))
        );
    }
}

#[test]
fn wav_matrix_int_and_float_at_common_rates() {
    if !have("sox") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let opts = DecodeOptions::default();
    for rate in [8_000, 22_050, 44_100, 48_000] {
        for (bits, enc) in [
            (8, "unsigned-integer"),
            (16, "signed-integer"),
            (24, "signed-integer"),
            (32, "signed-integer"),
            (32, "floating-point"),
        ] {
            let name = format!("t_{rate}_{bits}_{enc}.wav");
            let path = sox_tone(tmp.path(), &name, rate, bits, enc, 1.5, 440.0);
            let d = decode_file(&path, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(d.original_sample_rate, rate, "{name}");
            assert!(!d.via_ffmpeg, "{name} should not need ffmpeg");
            check(&d, &name, 1, 1.5, 0.001, 440.0);
        }
    }
}

#[test]
fn compressed_formats_decode() {
    if !(have("sox") && have("ffmpeg")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = sox_tone(
        tmp.path(),
        "src.wav",
        44_100,
        16,
        "signed-integer",
        3.0,
        660.0,
    );
    let cases: &[(&str, &[&str], bool)] = &[
        ("t.mp3", &["-c:a", "libmp3lame", "-b:a", "96k"], false),
        ("t.flac", &["-c:a", "flac"], false),
        ("t.ogg", &["-c:a", "libvorbis"], false),
        ("t.m4a", &["-c:a", "aac", "-b:a", "96k"], false),
        ("t.aac", &["-c:a", "aac", "-f", "adts"], false),
        ("t.opus.ogg", &["-c:a", "libopus", "-ar", "48000"], true),
        // AMR-NB (what many phones record): Debian's ffmpeg only decodes it; sox encodes it below.
        ("t.amr", &[], true),
    ];
    for (name, args, needs_ffmpeg) in cases {
        let path = tmp.path().join(name);
        if args.is_empty() {
            run(Command::new("sox")
                .arg(&src)
                .args(["-r", "8000", "-c", "1", "-t", "amr-nb"])
                .arg(&path));
        } else {
            ffmpeg(&src, &path, args);
        }
        let d =
            decode_file(&path, &DecodeOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!(
            "{name}: codec {} via_ffmpeg {} {:.3} s",
            d.codec, d.via_ffmpeg, d.duration_s
        );
        assert_eq!(d.via_ffmpeg, *needs_ffmpeg, "{name}");
        // Lossy codecs add priming/padding frames: allow 0.1 s.
        check(&d, name, 1, 3.0, 0.1, 660.0);
        // The same bytes from memory decode the same way.
        let bytes = std::fs::read(&path).unwrap();
        let m = decode_bytes(&bytes, &DecodeOptions::default())
            .unwrap_or_else(|e| panic!("{name} bytes: {e}"));
        assert_eq!(m.channels.len(), 1);
        assert!(
            (m.duration_s - d.duration_s).abs() < 0.1,
            "{name}: {} vs {}",
            m.duration_s,
            d.duration_s
        );
    }
}

#[test]
fn stereo_channels_stay_separate() {
    if !have("sox") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let left = sox_tone(tmp.path(), "l.wav", 8_000, 16, "signed-integer", 2.0, 300.0);
    let right = sox_tone(
        tmp.path(),
        "r.wav",
        8_000,
        16,
        "signed-integer",
        2.0,
        1_000.0,
    );
    let stereo = tmp.path().join("stereo.wav");
    run(Command::new("sox")
        .arg("-M")
        .arg(&left)
        .arg(&right)
        .arg(&stereo));
    let d = decode_file(&stereo, &DecodeOptions::default()).unwrap();
    assert_eq!(d.channels.len(), 2);
    assert!((frequency(&d.channels[0], 16_000) - 300.0).abs() < 6.0);
    assert!((frequency(&d.channels[1], 16_000) - 1_000.0).abs() < 20.0);
    assert_eq!(d.mono().len(), d.channels[0].len());
}

#[test]
fn amr_without_ffmpeg_names_the_codec() {
    if !have("sox") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = sox_tone(
        tmp.path(),
        "src.wav",
        8_000,
        16,
        "signed-integer",
        1.0,
        440.0,
    );
    let amr = tmp.path().join("call.amr");
    run(Command::new("sox")
        .arg(&src)
        .args(["-t", "amr-nb"])
        .arg(&amr));
    let opts = DecodeOptions {
        ffmpeg: None,
        ..DecodeOptions::default()
    };
    let err = decode_file(&amr, &opts).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedAudio { codec } if codec == "amr_nb"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "unsupported codec amr_nb; install ffmpeg to decode it"
    );
    // A missing ffmpeg program behaves the same as none.
    let opts = DecodeOptions {
        ffmpeg: Some("/nonexistent/ffmpeg".into()),
        ..DecodeOptions::default()
    };
    assert!(matches!(
        decode_file(&amr, &opts),
        Err(Error::UnsupportedAudio { .. })
    ));
}

/// A PCM WAV header with any sample rate, followed by `frames` 16-bit frames
/// (or fewer bytes, to simulate truncation).
fn wav_bytes(rate: u32, frames: u32, keep_data: usize) -> Vec<u8> {
    let data_len = frames * 2;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    let data: Vec<u8> = (0..frames)
        .flat_map(|i| (((i as f32 * 0.05).sin() * 8000.0) as i16).to_le_bytes())
        .collect();
    b.extend_from_slice(&data[..keep_data.min(data.len())]);
    b
}

fn invalid(result: Result<Decoded, Error>) -> String {
    match result {
        Err(Error::InvalidAudio(msg)) => msg,
        other => panic!("expected InvalidAudio, got {other:?}"),
    }
}

#[test]
fn bad_inputs_give_clear_errors() {
    let opts = DecodeOptions::default();
    let no_ffmpeg = DecodeOptions {
        ffmpeg: None,
        ..DecodeOptions::default()
    };
    let tmp = tempfile::tempdir().unwrap();

    // Empty.
    let empty = tmp.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    assert!(invalid(decode_file(&empty, &opts)).contains("empty"));
    assert!(invalid(decode_bytes(&[], &opts)).contains("empty"));

    // A good file decodes (so the failures below are about the damage).
    let good = wav_bytes(16_000, 16_000, usize::MAX);
    assert_eq!(
        decode_bytes(&good, &opts).unwrap().channels[0].len(),
        16_000
    );

    // Truncated inside the data.
    let msg = invalid(decode_bytes(&wav_bytes(16_000, 16_000, 10_000), &no_ffmpeg));
    assert!(msg.contains("truncated"), "{msg}");
    // Truncated inside the header.
    let msg = invalid(decode_bytes(&good[..20], &no_ffmpeg));
    println!("header cut: {msg}");

    // Random bytes.
    let mut x: u32 = 12345;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect();
    let msg = invalid(decode_bytes(&noise, &no_ffmpeg));
    assert!(msg.contains("not a recognised audio format"), "{msg}");
    if have("ffmpeg") {
        let msg = invalid(decode_bytes(&noise, &opts));
        assert!(msg.contains("ffmpeg"), "{msg}");
    }

    // Absurd sample rates.
    for rate in [1, 5_000_000] {
        let msg = invalid(decode_bytes(&wav_bytes(rate, 1000, usize::MAX), &no_ffmpeg));
        assert!(msg.contains("sample rate"), "{rate}: {msg}");
    }

    // Too long for the configured maximum.
    let short = DecodeOptions {
        max_seconds: 0.5,
        ..DecodeOptions::default()
    };
    match decode_bytes(&good, &short) {
        Err(Error::AudioTooLong {
            seconds,
            max_seconds,
        }) => {
            assert!((seconds - 1.0).abs() < 1e-6 && max_seconds == 0.5);
        }
        other => panic!("expected AudioTooLong, got {other:?}"),
    }
}

#[test]
fn resampling_keeps_frequency_and_length() {
    for (from, to) in [
        (44_100, 16_000),
        (8_000, 16_000),
        (48_000, 16_000),
        (22_050, 16_000),
    ] {
        let secs = 2.0;
        let n = (from as f64 * secs) as usize;
        let tone: Vec<f32> = (0..n)
            .map(|i| {
                (2.0 * std::f64::consts::PI * 1_000.0 * i as f64 / from as f64).sin() as f32 * 0.5
            })
            .collect();
        let out = resample(&[tone], from, to).unwrap();
        let expected = (n as f64 * to as f64 / from as f64).ceil();
        assert!(
            (out[0].len() as f64 - expected).abs() <= 1.0,
            "{from}: {}",
            out[0].len()
        );
        let f = frequency(&out[0], to);
        assert!((f - 1_000.0).abs() < 10.0, "{from} -> {to}: {f}");
        // No large start-up delay: the signal is there from the first milliseconds.
        assert!(
            out[0][16..80].iter().any(|x| x.abs() > 0.3),
            "{from}: delayed start"
        );
    }
}
