//! Streaming detokenization: text deltas that never split a character.
//!
//! Built on [`LlmTokenizer::decode`]; the tokenizer knows nothing of this
//! module (its [`LlmTokenizer::stream_decoder`] is defined here), so the
//! dependency runs one way, stream → tokenizer.

use super::tokenizer::LlmTokenizer;
use crate::Result;

impl LlmTokenizer {
    /// A streaming decoder for generated ids.
    pub fn stream_decoder(&self) -> TokenDecoder<'_> {
        TokenDecoder::new(self)
    }
}

/// Turns generated ids into text deltas, holding back bytes of a character
/// that is not complete yet (a Chinese character or emoji spans several
/// byte-level tokens).
#[derive(Debug)]
pub struct TokenDecoder<'a> {
    tokenizer: &'a LlmTokenizer,
    ids: Vec<u32>,
    /// Start of the window still being decoded.
    prev: usize,
    /// Text of `ids[prev..]` already emitted.
    emitted: String,
}

impl<'a> TokenDecoder<'a> {
    pub fn new(tokenizer: &'a LlmTokenizer) -> Self {
        TokenDecoder {
            tokenizer,
            ids: Vec::new(),
            prev: 0,
            emitted: String::new(),
        }
    }

    /// Add `id`; returns the text it completes (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids[self.prev..], true)?;
        if text.ends_with(char::REPLACEMENT_CHARACTER) {
            return Ok(String::new());
        }
        let delta = match text.strip_prefix(self.emitted.as_str()) {
            Some(rest) => rest.to_string(),
            // Not a byte-level tokenizer: decoding a longer window changed
            // earlier text. Emit what is new after the common prefix.
            None => {
                let common = common_prefix_len(&self.emitted, &text);
                text[common..].to_string()
            }
        };
        // Keep the window short: the next decode starts at this token.
        self.prev = self.ids.len() - 1;
        self.emitted = self.tokenizer.decode(&self.ids[self.prev..], true)?;
        Ok(delta)
    }

    /// Text still held back (an incomplete character at the very end), as
    /// replacement characters.
    pub fn finish(&mut self) -> Result<String> {
        let text = self.tokenizer.decode(&self.ids[self.prev..], true)?;
        let common = common_prefix_len(&self.emitted, &text);
        self.prev = self.ids.len();
        self.emitted.clear();
        Ok(text[common..].to_string())
    }

    /// All ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}

fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, ca), cb)| ca != cb)
        .map(|((i, _), _)| i)
        .unwrap_or(a.len().min(b.len()))
}

#[cfg(test)]
mod tests {
    use crate::llm::tokenizer::tests::tiny;

    #[test]
    fn stream_decoder_holds_back_partial_characters() {
        let tok = tiny();
        let text = "he你好🎉!";
        let ids = tok.encode(text, false).unwrap();
        let mut dec = tok.stream_decoder();
        let mut deltas = Vec::new();
        for &id in &ids {
            deltas.push(dec.push(id).unwrap());
        }
        assert!(
            deltas
                .iter()
                .all(|d| !d.contains(char::REPLACEMENT_CHARACTER))
        );
        assert_eq!(deltas.concat(), text);
        assert_eq!(deltas[0], "he");
        assert_eq!(deltas[1], "");
        assert_eq!(deltas[3], "你");
        assert_eq!(dec.finish().unwrap(), "");
        // A character cut off at the end is only in `finish`.
        let mut dec = tok.stream_decoder();
        for &id in &ids[..2] {
            dec.push(id).unwrap();
        }
        assert_eq!(dec.finish().unwrap(), "\u{fffd}");
    }
}
