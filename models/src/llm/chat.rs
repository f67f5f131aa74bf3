//! ChatML, the prompt format of Qwen (and many other) instruct models.
//!
//! ```text
//! <|im_start|>system
//! You are a helpful assistant.<|im_end|>
//! <|im_start|>user
//! Hello<|im_end|>
//! <|im_start|>assistant
//! ```
//!
//! [`format_chatml`] writes this text (for logs and tests). The model is fed
//! the ids from [`LlmTokenizer::encode_chat`](super::LlmTokenizer::encode_chat),
//! which inserts `<|im_start|>` / `<|im_end|>` by id and tokenizes message
//! contents without recognising control tokens.

use super::{Message, Role};

/// The system prompt Qwen2.5's chat template inserts when a conversation has none.
pub const QWEN_DEFAULT_SYSTEM: &str =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

pub(crate) const IM_START: &str = "<|im_start|>";
pub(crate) const IM_END: &str = "<|im_end|>";
pub(crate) const END_OF_TEXT: &str = "<|endoftext|>";

/// The turns of a prompt: `default_system` first when the conversation does
/// not start with a system message (what Qwen2.5's template does).
pub(crate) fn turns<'a>(
    messages: &'a [Message],
    default_system: Option<&'a str>,
) -> Vec<(Role, &'a str)> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = default_system
        && messages.first().is_none_or(|m| m.role != Role::System)
    {
        out.push((Role::System, system));
    }
    out.extend(messages.iter().map(|m| (m.role, m.content.as_str())));
    out
}

/// The ChatML text of `messages`. With `add_generation_prompt`, ends with an
/// open `<|im_start|>assistant\n` turn for the model to complete.
pub fn format_chatml(
    messages: &[Message],
    default_system: Option<&str>,
    add_generation_prompt: bool,
) -> String {
    let mut out = String::new();
    for (role, content) in turns(messages, default_system) {
        out.push_str(IM_START);
        out.push_str(role.as_str());
        out.push('\n');
        out.push_str(content);
        out.push_str(IM_END);
        out.push('\n');
    }
    if add_generation_prompt {
        out.push_str(IM_START);
        out.push_str("assistant\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_turns_and_the_generation_prompt() {
        let messages = [
            Message::system("Be brief."),
            Message::user("你好"),
            Message::assistant("Hi!"),
            Message::user("2+2?"),
        ];
        assert_eq!(
            format_chatml(&messages, Some(QWEN_DEFAULT_SYSTEM), true),
            "<|im_start|>system\nBe brief.<|im_end|>\n\
             <|im_start|>user\n你好<|im_end|>\n\
             <|im_start|>assistant\nHi!<|im_end|>\n\
             <|im_start|>user\n2+2?<|im_end|>\n\
             <|im_start|>assistant\n"
        );
        assert_eq!(
            format_chatml(&messages[1..2], None, false),
            "<|im_start|>user\n你好<|im_end|>\n"
        );
    }

    #[test]
    fn default_system_only_when_none_is_given() {
        let text = format_chatml(&[Message::user("hi")], Some(QWEN_DEFAULT_SYSTEM), true);
        assert_eq!(
            text,
            format!(
                "<|im_start|>system\n{QWEN_DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
            )
        );
        let own = format_chatml(
            &[Message::system("S"), Message::user("hi")],
            Some(QWEN_DEFAULT_SYSTEM),
            false,
        );
        assert!(!own.contains(QWEN_DEFAULT_SYSTEM), "{own}");
        // An empty conversation still gets the default system turn.
        assert_eq!(
            format_chatml(&[], Some("S"), true),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn content_is_kept_verbatim() {
        let text = format_chatml(&[Message::user("  a\n\nb  ")], None, false);
        assert_eq!(text, "<|im_start|>user\n  a\n\nb  <|im_end|>\n");
    }
}
