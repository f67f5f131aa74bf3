//! Cutting a decoded window into timestamped segments, and where to seek next.

use super::tokens::SpecialTokens;

/// Seconds per timestamp step.
const TIME_PRECISION: f64 = 0.02;
/// Mel frames per timestamp step.
const FRAMES_PER_STEP: usize = 2;
/// Mel frames per second.
const FRAMES_PER_SECOND: usize = super::mel::FRAMES_PER_SECOND;

/// Cut a window's tokens into `(start_s, end_s, tokens)` pieces relative to
/// the window, and say how many mel frames to advance: to the last complete
/// timestamp pair, or the whole window when the text ended cleanly.
pub(crate) fn split_segments(
    tokens: &[u32],
    sp: &SpecialTokens,
    window_frames: usize,
    timestamps: bool,
) -> (Vec<(f64, f64, Vec<u32>)>, usize) {
    let window_s = window_frames as f64 / FRAMES_PER_SECOND as f64;
    let time = |t: u32| (t - sp.timestamp_begin) as f64 * TIME_PRECISION;
    if !timestamps {
        return (vec![(0.0, window_s, tokens.to_vec())], window_frames);
    }
    let is_ts = |t: u32| sp.is_timestamp(t);
    let n = tokens.len();
    let single_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
    let mut cuts: Vec<usize> = (1..n)
        .filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i]))
        .collect();
    if cuts.is_empty() {
        let end = tokens
            .iter()
            .rev()
            .find(|&&t| is_ts(t) && t != sp.timestamp_begin)
            .map(|&t| time(t))
            .unwrap_or(window_s);
        return (vec![(0.0, end, tokens.to_vec())], window_frames);
    }
    if single_ending {
        cuts.push(n);
    }
    let mut pieces = Vec::new();
    let mut last = 0;
    for &cut in &cuts {
        let piece = &tokens[last..cut];
        let first_ts = piece.iter().find(|&&t| is_ts(t));
        let last_ts = piece.iter().rev().find(|&&t| is_ts(t));
        if let (Some(&a), Some(&b)) = (first_ts, last_ts) {
            pieces.push((time(a), time(b).max(time(a)), piece.to_vec()));
        }
        last = cut;
    }
    let advance = if single_ending {
        window_frames
    } else {
        let steps = (tokens[last - 1] - sp.timestamp_begin) as usize;
        let frames = steps * FRAMES_PER_STEP;
        if frames == 0 {
            window_frames
        } else {
            frames.min(window_frames)
        }
    };
    (pieces, advance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp() -> SpecialTokens {
        SpecialTokens {
            sot: 50258,
            eot: 50257,
            transcribe: Some(50359),
            translate: Some(50358),
            prev: Some(50361),
            no_timestamps: 50363,
            timestamp_begin: 50364,
            no_speech: Some(50362),
            languages: vec![("en".into(), 50259), ("zh".into(), 50260)],
        }
    }

    #[test]
    fn segments_split_at_timestamp_pairs_and_seek_to_last_complete_one() {
        let s = sp();
        let ts = |secs: f64| s.timestamp_begin + (secs / 0.02).round() as u32;
        // <0.00> a b <1.00><1.00> c <2.50><2.50> d (cut off, no closing timestamp)
        let tokens = vec![ts(0.0), 1, 2, ts(1.0), ts(1.0), 3, ts(2.5), ts(2.5), 4];
        let (pieces, advance) = split_segments(&tokens, &s, 3000, true);
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[0].0, pieces[0].1), (0.0, 1.0));
        assert_eq!((pieces[1].0, pieces[1].1), (1.0, 2.5));
        assert_eq!(advance, 250, "seek to 2.5 s = 250 mel frames");

        // Ends with a single timestamp: everything is complete, skip the window.
        let tokens = vec![ts(0.0), 1, ts(1.0), ts(1.0), 2, ts(3.0)];
        let (pieces, advance) = split_segments(&tokens, &s, 1200, true);
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[1].0, pieces[1].1), (1.0, 3.0));
        assert_eq!(advance, 1200);

        // No timestamp pair: one segment up to the last timestamp.
        let (pieces, advance) = split_segments(&[ts(0.0), 1, 2, ts(4.0)], &s, 3000, true);
        assert_eq!(pieces.len(), 1);
        assert_eq!((pieces[0].0, pieces[0].1), (0.0, 4.0));
        assert_eq!(advance, 3000);
    }
}
