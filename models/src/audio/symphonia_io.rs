//! Decoding with symphonia.

use std::io::{Cursor, Read};

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::audio::well_known as codecs;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use super::{DecodeOptions, Input, Raw, check_channels, check_length, check_rate, sniff_codec};
use crate::Error;

/// Why symphonia did not produce audio.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The input is bad in a way no other decoder would fix.
    Fatal(Error),
    /// Symphonia does not know the container or codec; ffmpeg may.
    /// `codec` is `"unknown"` when not even the format was recognised.
    Unsupported { codec: String, detail: String },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

pub(crate) fn decode(input: Input<'_>, opts: &DecodeOptions) -> Result<Raw, Failure> {
    let mut hint = Hint::new();
    let (source, head): (Box<dyn MediaSource + '_>, Vec<u8>) = match input {
        Input::File(path) => {
            if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
                hint.with_extension(ext);
            }
            let mut head = vec![0u8; 64];
            let n = std::fs::File::open(path)
                .and_then(|mut f| f.read(&mut head))
                .map_err(|e| Error::io("reading", path, e))?;
            head.truncate(n);
            let file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
            (Box::new(file), head)
        }
        Input::Bytes(bytes) => (
            Box::new(Cursor::new(bytes)),
            bytes[..bytes.len().min(64)].to_vec(),
        ),
    };
    let unsupported = |detail: String| Failure::Unsupported {
        codec: sniff_codec(&head).unwrap_or("unknown").to_string(),
        detail,
    };
    let mss = MediaSourceStream::new(source, Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| unsupported(e.to_string()))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| Error::InvalidAudio("the file has no audio track".into()))?;
    let track_id = track.id;
    let declared_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| Error::InvalidAudio("the audio track has no codec parameters".into()))?
        .clone();
    if let Some(rate) = params.sample_rate {
        check_rate(rate)?;
        if let Some(n) = declared_frames
            && n < u32::MAX as u64
        {
            check_length(n as f64 / rate as f64, opts)?;
        }
    }
    if let Some(ch) = &params.channels {
        check_channels(ch.count())?;
    }
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| Failure::Unsupported {
            codec: codec_name(params.codec),
            detail: e.to_string(),
        })?;
    let codec = decoder.codec_info().short_name.to_string();
    let is_pcm = codec.starts_with("pcm");

    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut rate = params.sample_rate;
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let (mut good, mut bad) = (0usize, 0usize);
    let mut stream_error = None;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) | Err(SymError::ResetRequired) => break,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                stream_error = Some("the file ends in the middle of a packet".to_string());
                break;
            }
            Err(e) => {
                stream_error = Some(e.to_string());
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                good += 1;
                let spec_rate = buf.spec().rate();
                check_rate(spec_rate)?;
                rate = Some(spec_rate);
                buf.copy_to_vecs_planar::<f32>(&mut planes);
                if channels.is_empty() {
                    check_channels(planes.len())?;
                    channels = vec![Vec::new(); planes.len()];
                }
                if planes.len() != channels.len() {
                    return Err(Failure::Fatal(Error::InvalidAudio(
                        "the channel count changes mid-stream".into(),
                    )));
                }
                for (dst, src) in channels.iter_mut().zip(&planes) {
                    dst.extend_from_slice(src);
                }
                let seconds = channels[0].len() as f64 / spec_rate as f64;
                check_length(seconds, opts)?;
            }
            Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => bad += 1,
            Err(e) => {
                return Err(Failure::Unsupported {
                    codec: codec.clone(),
                    detail: e.to_string(),
                });
            }
        }
    }
    let frames = channels.first().map(Vec::len).unwrap_or(0);
    let Some(rate) = rate else {
        return Err(Failure::Fatal(Error::InvalidAudio(
            "the stream declares no sample rate".into(),
        )));
    };
    if frames == 0 {
        let why = stream_error.unwrap_or_else(|| "no packet could be decoded".into());
        return Err(Failure::Fatal(Error::InvalidAudio(format!(
            "no audio in the {codec} stream ({why}; empty, truncated or corrupt)"
        ))));
    }
    if bad > good {
        return Err(Failure::Fatal(Error::InvalidAudio(format!(
            "{bad} of {} {codec} packets are corrupt",
            good + bad
        ))));
    }
    if is_pcm
        && let Some(n) = declared_frames
        && n < u32::MAX as u64
        && (frames as u64) < n
    {
        return Err(Failure::Fatal(Error::InvalidAudio(format!(
            "the file is truncated: its header declares {:.2} s of audio but it holds {:.2} s",
            n as f64 / rate as f64,
            frames as f64 / rate as f64
        ))));
    }
    Ok(Raw {
        channels,
        rate,
        original_rate: rate,
        codec,
    })
}

/// A readable name for codecs this build cannot decode.
fn codec_name(id: symphonia::core::codecs::audio::AudioCodecId) -> String {
    let name = match id {
        codecs::CODEC_ID_OPUS => "opus",
        codecs::CODEC_ID_SPEEX => "speex",
        codecs::CODEC_ID_AC3 => "ac3",
        codecs::CODEC_ID_EAC3 => "eac3",
        codecs::CODEC_ID_WMA => "wma",
        codecs::CODEC_ID_ATRAC3 => "atrac3",
        codecs::CODEC_ID_ADPCM_G722 => "g722",
        codecs::CODEC_ID_ADPCM_G726 | codecs::CODEC_ID_ADPCM_G726LE => "g726",
        other => return format!("id {other}"),
    };
    name.to_string()
}
