//! The tokenizer built from the real Qwen2.5-Coder GGUF's metadata (role
//! `llm-small`; only the metadata is read, not the weights). Prints
//! "skipped: …" and passes when the model is not ready in
//! `$ASSIST_MODEL_DIR` or `~/.cache/assist/models`.

use std::path::{Path, PathBuf};

use assist_models::llm::{LlmTokenizer, Message};
use assist_testkit::{Kind, skip};

fn model_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("ASSIST_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".cache/assist/models")
}

fn tokenizer() -> Option<LlmTokenizer> {
    let dir = model_root().join("qwen2.5-coder-0.5b-instruct");
    let gguf = dir.join("model.gguf");
    if !(dir.join("ready.json").is_file() && gguf.is_file()) {
        skip(
            Kind::Model,
            format!(
                "qwen2.5-coder-0.5b-instruct is not ready in {} (run `assist models fetch --only llm-small`)",
                dir.display()
            ),
        );
        return None;
    }
    Some(LlmTokenizer::from_gguf_file(&gguf).expect("tokenizer from GGUF"))
}

/// Reference ids, produced with Hugging Face transformers 5.24's
/// `Qwen2Tokenizer` (its own NFC + split regex + byte-level BPE pipeline) fed
/// the vocabulary and merges read from this GGUF with the `gguf` 0.19
/// package, control tokens (type 3) added as special:
///
/// ```text
/// r = gguf.GGUFReader("model.gguf"); f = r.fields
/// toks = f["tokenizer.ggml.tokens"].contents(); types = f["tokenizer.ggml.token_type"].contents()
/// tok = Qwen2Tokenizer(vocab={t: i for i, t in enumerate(toks)},
///                      merges=[tuple(m.split(" ", 1)) for m in f["tokenizer.ggml.merges"].contents()])
/// tok.add_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(toks, types) if ty == 3],
///                special_tokens=True)
/// tok.encode(text, add_special_tokens=False)
/// ```
///
/// llama.cpp (llama-cpp-python 0.3.36, `tokenize(text, add_bos=False,
/// special=True)`) gives the same ids for every sentence except the one with
/// a decomposed accent (`e` + U+0301): llama.cpp does not NFC-normalise, so it
/// splits `Cafe\u{301}` as `[34, 5645, 53839, …]`. We follow Hugging Face's
/// Qwen2 tokenizer, which does.
const REFERENCE: &[(&str, &[u32])] = &[
    (
        "Hello, world! How are you today?",
        &[9707, 11, 1879, 0, 2585, 525, 498, 3351, 30],
    ),
    (
        "你好，我想了解一下你们的报价，下周三前能发给我吗？",
        &[
            108386, 3837, 104100, 110050, 101900, 9370, 105388, 3837, 113767, 44991, 24562, 26232,
            28291, 104169, 101037, 11319,
        ],
    ),
    (
        "客户说：价格太贵了 😅 can we get 15% off by Friday EOD?",
        &[
            100017, 36587, 5122, 97480, 99222, 99582, 34187, 26525, 227, 646, 582, 633, 220, 16,
            20, 4, 1007, 553, 6602, 468, 2069, 30,
        ],
    ),
    (
        "  leading spaces\n\nand newlines\t tabs 12345 don't",
        &[
            220, 6388, 12621, 271, 437, 501, 7969, 197, 22398, 220, 16, 17, 18, 19, 20, 1513, 944,
        ],
    ),
    (
        "<|im_start|>user\n你好<|im_end|>\n",
        &[151644, 872, 198, 108386, 151645, 198],
    ),
    (
        "Cafe\u{301} ﬁne — “quotes” 🎉👍🏽",
        &[
            34, 2577, 963, 32495, 70731, 811, 1959, 1036, 53282, 854, 11162, 236, 231, 144349,
            145375,
        ],
    ),
];

#[test]
fn ids_match_the_reference_tokenizer() {
    let Some(tok) = tokenizer() else { return };
    for (text, want) in REFERENCE {
        let got = tok.encode(text, true).unwrap();
        assert_eq!(&got, want, "{text:?}");
    }
}

#[test]
fn round_trips_chinese_english_and_emoji() {
    let Some(tok) = tokenizer() else { return };
    for text in [
        "您好，这里是售后服务中心，请问有什么可以帮您？",
        "The quote will be sent by Friday EOD, 谢谢！",
        "emoji 🎉👍🏽🇨🇳 and 繁體字 and 日本語のテキスト",
        "tabs\tand\n\nnewlines  and   spaces ",
    ] {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, true).unwrap(), text, "{ids:?}");
    }
}

#[test]
fn chat_tokens_are_single_ids() {
    let Some(tok) = tokenizer() else { return };
    for (name, id) in [
        ("<|endoftext|>", 151643),
        ("<|im_start|>", 151644),
        ("<|im_end|>", 151645),
    ] {
        assert_eq!(tok.token_to_id(name), Some(id), "{name}");
        assert_eq!(tok.encode(name, true).unwrap(), vec![id], "{name}");
        // Not recognised in untrusted content.
        assert!(tok.encode(name, false).unwrap().len() > 1, "{name}");
    }
    assert_eq!(tok.im_start(), 151644);
    assert_eq!(tok.im_end(), 151645);
    assert_eq!(tok.stop_ids(), &[151643, 151645]);
    assert_eq!(tok.vocab_size(), 151936);
    // The decoder leaves control tokens out only when asked.
    assert_eq!(
        tok.decode(&[151644, 872], false).unwrap(),
        "<|im_start|>user"
    );
    assert_eq!(tok.decode(&[151644, 872], true).unwrap(), "user");
}

#[test]
fn chat_prompt_ids_match_the_template_text() {
    let Some(tok) = tokenizer() else { return };
    let messages = [
        Message::system("你是销售助理。"),
        Message::user("Summarise: 客户要求下周三前报价。"),
    ];
    let ids = tok.encode_chat(&messages, None, true).unwrap();
    let text = assist_models::llm::format_chatml(&messages, None, true);
    assert_eq!(ids, tok.encode(&text, true).unwrap());
    assert_eq!(ids[..3], [151644, 8948, 198]); // <|im_start|> system \n
}
