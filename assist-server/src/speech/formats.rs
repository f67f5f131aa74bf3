//! Transcripts as the OpenAI transcription API renders them: `json`, `text`,
//! `srt`, `vtt` and `verbose_json`; used by `POST /v1/audio/transcriptions`
//! and by `assist transcribe`.

use assist_models::speech::{Segment, Transcript};
use serde_json::json;

/// Output formats of the OpenAI API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
}

impl ResponseFormat {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "json" => ResponseFormat::Json,
            "text" => ResponseFormat::Text,
            "srt" => ResponseFormat::Srt,
            "vtt" => ResponseFormat::Vtt,
            "verbose_json" => ResponseFormat::VerboseJson,
            _ => return None,
        })
    }
}

/// `hh:mm:ss,mmm` (SRT) or `hh:mm:ss.mmm` (VTT).
fn clock(seconds: f64, sep: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// SubRip subtitles of the segments.
pub fn srt(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            clock(s.start_s, ','),
            clock(s.end_s, ','),
            s.text.trim()
        ));
    }
    out
}

/// WebVTT subtitles of the segments.
pub fn vtt(segments: &[Segment]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in segments {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            clock(s.start_s, '.'),
            clock(s.end_s, '.'),
            s.text.trim()
        ));
    }
    out
}

/// Whisper's language names, as the OpenAI API reports them in verbose_json.
fn language_name(code: &str) -> &str {
    match code {
        "zh" => "chinese",
        "en" => "english",
        "yue" => "cantonese",
        "ja" => "japanese",
        "ko" => "korean",
        "fr" => "french",
        "de" => "german",
        "es" => "spanish",
        "ru" => "russian",
        other => other,
    }
}

/// Render a transcript in one of the formats: (content type, body).
pub fn render(t: &Transcript, format: ResponseFormat, model: &str) -> (&'static str, String) {
    match format {
        ResponseFormat::Json => ("application/json", json!({ "text": t.text() }).to_string()),
        ResponseFormat::Text => ("text/plain; charset=utf-8", format!("{}\n", t.text())),
        ResponseFormat::Srt => ("application/x-subrip; charset=utf-8", srt(&t.segments)),
        ResponseFormat::Vtt => ("text/vtt; charset=utf-8", vtt(&t.segments)),
        ResponseFormat::VerboseJson => {
            let segments: Vec<serde_json::Value> = t
                .segments
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    json!({
                        "id": i,
                        "seek": (s.start_s * 100.0).round() as i64,
                        "start": s.start_s,
                        "end": s.end_s,
                        "text": s.text,
                        "tokens": [],
                        "temperature": s.temperature,
                        "avg_logprob": s.avg_logprob,
                        "compression_ratio": serde_json::Value::Null,
                        "no_speech_prob": s.no_speech_prob,
                    })
                })
                .collect();
            (
                "application/json",
                json!({
                    "task": "transcribe",
                    "language": language_name(&t.language),
                    "duration": t.duration_s,
                    "text": t.text(),
                    "segments": segments,
                    "model": model,
                })
                .to_string(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_s: f64, end_s: f64, text: &str) -> Segment {
        Segment {
            start_s,
            end_s,
            text: text.into(),
            avg_logprob: -0.2,
            no_speech_prob: 0.01,
            temperature: 0.0,
            channel: None,
        }
    }

    #[test]
    fn subtitles_have_their_formats() {
        let segs = [seg(0.0, 2.5, " Hello."), seg(3661.2, 3662.0, "再见")];
        assert_eq!(
            srt(&segs),
            "1\n00:00:00,000 --> 00:00:02,500\nHello.\n\n2\n01:01:01,200 --> 01:01:02,000\n再见\n\n"
        );
        assert!(vtt(&segs).starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello.\n"));
    }

    #[test]
    fn formats_parse_and_render() {
        let t = Transcript {
            language: "en".into(),
            duration_s: 3.0,
            segments: vec![seg(0.0, 2.5, "Hello there.")],
        };
        let (ct, body) = render(&t, ResponseFormat::Json, "asr");
        assert_eq!(ct, "application/json");
        assert_eq!(body, r#"{"text":"Hello there."}"#);
        let (_, body) = render(&t, ResponseFormat::VerboseJson, "asr");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["language"], "english");
        assert_eq!(v["segments"][0]["end"], 2.5);
        assert!(ResponseFormat::parse("xml").is_none());
    }
}
