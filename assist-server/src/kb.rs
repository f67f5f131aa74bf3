//! The knowledge base on the server's side: what the HTTP routes and the
//! `assist kb` command share (today: stored items rendered as an import file).

use assist_knowledge_base::Kind;
use assist_knowledge_base::io::{ExportItem, Format};
use assist_knowledge_base::{LexiconContent, ScriptContent};

use crate::db::kb::{KbContent, KbItem};

/// Render items in a file format (shared with the CLI).
pub fn export_text(items: &[KbItem], kind: Kind, format: Format) -> Result<String, String> {
    let id = |i: &KbItem| i.external_id.clone().unwrap_or_else(|| i.id.clone());
    let ids: Vec<String> = items.iter().map(id).collect();
    match kind {
        Kind::Script => {
            let out: Vec<ExportItem<'_, ScriptContent>> = items
                .iter()
                .zip(&ids)
                .filter_map(|(i, id)| match &i.head {
                    KbContent::Script(c) => Some(ExportItem {
                        id,
                        status: i.status,
                        version: i.head_version as u32,
                        content: c,
                    }),
                    KbContent::Lexicon(_) => None,
                })
                .collect();
            assist_knowledge_base::io::export_scripts(&out, format)
        }
        Kind::Lexicon => {
            let out: Vec<ExportItem<'_, LexiconContent>> = items
                .iter()
                .zip(&ids)
                .filter_map(|(i, id)| match &i.head {
                    KbContent::Lexicon(c) => Some(ExportItem {
                        id,
                        status: i.status,
                        version: i.head_version as u32,
                        content: c,
                    }),
                    KbContent::Script(_) => None,
                })
                .collect();
            assist_knowledge_base::io::export_lexicon(&out, format)
        }
    }
}
