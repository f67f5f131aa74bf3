//! Whisper's special tokens, found by name in `tokenizer.json`.

use tokenizers::Tokenizer;

/// Ids of the special tokens decoding needs.
#[derive(Debug, Clone)]
pub struct SpecialTokens {
    pub sot: u32,
    pub eot: u32,
    pub transcribe: Option<u32>,
    pub translate: Option<u32>,
    pub prev: Option<u32>,
    pub no_timestamps: u32,
    /// `<|0.00|>`; every later id is another 0.02 s step.
    pub timestamp_begin: u32,
    /// `<|nospeech|>` (newer vocabularies) or `<|nocaptions|>`.
    pub no_speech: Option<u32>,
    /// `(code, token id)` of every language token, e.g. `("zh", 50260)`.
    pub languages: Vec<(String, u32)>,
}

impl SpecialTokens {
    /// Read them from the tokenizer. English-only models have no language
    /// tokens usable for prompting and report none.
    pub fn from_tokenizer(tok: &Tokenizer, vocab_size: usize) -> Result<Self, String> {
        let id = |name: &str| tok.token_to_id(name);
        let need = |name: &str| id(name).ok_or_else(|| format!("tokenizer has no {name}"));
        let sot = need("<|startoftranscript|>")?;
        let no_timestamps = need("<|notimestamps|>")?;
        let translate = id("<|translate|>");
        // Multilingual vocabularies have 51865+ entries; English-only ones 51864.
        let multilingual = vocab_size >= 51865;
        let mut languages = Vec::new();
        if multilingual {
            let end = translate.unwrap_or(sot + 100);
            for i in sot + 1..end {
                if let Some(t) = tok.id_to_token(i)
                    && let Some(code) = t.strip_prefix("<|").and_then(|t| t.strip_suffix("|>"))
                    && code.len() <= 3
                    && code.chars().all(|c| c.is_ascii_lowercase())
                {
                    languages.push((code.to_string(), i));
                }
            }
        }
        Ok(SpecialTokens {
            sot,
            eot: need("<|endoftext|>")?,
            transcribe: id("<|transcribe|>"),
            translate,
            prev: id("<|startofprev|>"),
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            no_speech: id("<|nospeech|>").or_else(|| id("<|nocaptions|>")),
            languages,
        })
    }

    /// Whether the model takes language tokens (multilingual).
    pub fn multilingual(&self) -> bool {
        !self.languages.is_empty()
    }

    /// The token of a language code (`zh`, `en`, ...).
    pub fn language(&self, code: &str) -> Option<u32> {
        self.languages
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, id)| *id)
    }

    /// Whether `id` is a timestamp token.
    pub fn is_timestamp(&self, id: u32) -> bool {
        id >= self.timestamp_begin
    }
}
