//! One channel's audio: the last N seconds, and how far the server has it.

use std::collections::VecDeque;

/// Samples are counted from the start of the call (absolute), so positions
/// survive reconnects. `base` is where the current server session's audio
/// starts (non-zero only after a session restart).
#[derive(Debug)]
pub(crate) struct Ring {
    data: VecDeque<i16>,
    cap: u64,
    /// Absolute index of `data[0]`.
    start: u64,
    /// Absolute samples pushed so far.
    total: u64,
    /// Next absolute sample to send.
    cursor: u64,
    base: u64,
}

impl Ring {
    pub fn new(cap: u64) -> Ring {
        Ring {
            data: VecDeque::new(),
            cap,
            start: 0,
            total: 0,
            cursor: 0,
            base: 0,
        }
    }

    /// Append; returns samples that were still unsent when they fell out.
    pub fn push(&mut self, pcm: &[i16]) -> u64 {
        self.data.extend(pcm.iter().copied());
        self.total += pcm.len() as u64;
        let mut lost = 0;
        let over = (self.data.len() as u64).saturating_sub(self.cap);
        if over > 0 {
            self.data.drain(..over as usize);
            self.start += over;
            if self.cursor < self.start {
                lost = self.start - self.cursor;
                self.cursor = self.start;
            }
        }
        lost
    }

    /// Samples pushed but not sent.
    pub fn backlog(&self) -> u64 {
        self.total - self.cursor
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Take up to `max` unsent samples (as s16le bytes) and advance.
    pub fn take(&mut self, max: u64) -> Option<Vec<u8>> {
        let n = self.backlog().min(max);
        if n == 0 {
            return None;
        }
        let from = (self.cursor - self.start) as usize;
        let mut out = Vec::with_capacity(n as usize * 2);
        for s in self.data.range(from..from + n as usize) {
            out.extend_from_slice(&s.to_le_bytes());
        }
        self.cursor += n;
        Some(out)
    }

    /// The server holds `server_samples` of this session's audio: send from
    /// there. Returns (samples to resend, samples lost because the ring no
    /// longer has them).
    pub fn resume_at(&mut self, server_samples: u64) -> (u64, u64) {
        let abs = (self.base + server_samples).min(self.total);
        if abs < self.start {
            self.cursor = self.start;
            (self.total - self.start, self.start - abs)
        } else {
            self.cursor = abs;
            (self.total - abs, 0)
        }
    }

    /// A new server session starts with the audio pushed from now on.
    pub fn restart(&mut self) {
        self.base = self.total;
        self.cursor = self.total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_tail_and_resumes_from_the_server_offset() {
        let mut r = Ring::new(10);
        assert_eq!(r.push(&[1, 2, 3, 4, 5, 6]), 0);
        assert_eq!(r.take(4).unwrap(), vec![1, 0, 2, 0, 3, 0, 4, 0]);
        assert_eq!(r.backlog(), 2);
        // The server got only 2 samples before the cut.
        assert_eq!(r.resume_at(2), (4, 0));
        assert_eq!(r.take(100).unwrap().len(), 8);
        // Overflow while unsent: the oldest unsent samples are lost.
        assert_eq!(r.push(&[7; 12]), 2);
        assert_eq!(r.backlog(), 10);
        // A server behind the ring's start: resend all the ring has.
        assert_eq!(r.resume_at(3), (10, 5));
        r.restart();
        assert_eq!(r.backlog(), 0);
        r.push(&[9, 9]);
        assert_eq!(r.resume_at(0), (2, 0));
    }
}
