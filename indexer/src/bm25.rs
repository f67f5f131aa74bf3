//! The lexical half: a Tantivy index on disk with jieba segmentation for
//! Chinese and stemming for English, plus keyword fields for filtering.
//!
//! Only [`ApprovedScript`]s go in. Queries are built from the analysed
//! utterance term by term (never through a query-language parser), so
//! customer text full of `:`, `-` or quotes cannot break them.

use std::path::Path;
use std::sync::Mutex;

use assist_knowledge_base::ApprovedScript;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, Stemmer, StopWordFilter, TextAnalyzer, Token,
    TokenFilter, TokenStream, Tokenizer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

use crate::Error;

/// Name of our analyzer in the index's tokenizer registry.
const ANALYZER: &str = "zh_en";

/// Chinese function words and fillers that carry no topic (customers say
/// them constantly: "那个…就是…嗯"), plus the commonest English ones.
const STOP_WORDS: &[&str] = &[
    "的", "了", "吗", "呢", "吧", "啊", "呀", "嗯", "哦", "额", "呃", "就是", "那个", "这个", "是",
    "我", "你", "您", "我们", "你们", "他", "她", "它", "在", "和", "也", "都", "就", "还", "有",
    "要", "会", "能", "可以", "一下", "一个", "什么", "怎么", "a", "an", "the", "to", "of", "and",
    "or", "is", "are", "i", "you", "we", "it", "that", "this", "for", "in", "on", "be", "do",
    "can", "so", "um", "uh",
];

/// Drops tokens with no letter or digit (whitespace and punctuation that
/// jieba emits as tokens). Tantivy's `AlphaNumOnlyFilter` checks ASCII only
/// and would drop every Chinese word, and no crate offers a Unicode-aware
/// one, so this small filter is ours.
#[derive(Clone, Copy, Debug)]
struct WordsOnly;

#[derive(Clone, Debug)]
struct WordsOnlyTokenizer<T>(T);

struct WordsOnlyStream<S>(S);

impl TokenFilter for WordsOnly {
    type Tokenizer<T: Tokenizer> = WordsOnlyTokenizer<T>;
    fn transform<T: Tokenizer>(self, tokenizer: T) -> WordsOnlyTokenizer<T> {
        WordsOnlyTokenizer(tokenizer)
    }
}

impl<T: Tokenizer> Tokenizer for WordsOnlyTokenizer<T> {
    type TokenStream<'a> = WordsOnlyStream<T::TokenStream<'a>>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        WordsOnlyStream(self.0.token_stream(text))
    }
}

impl<S: TokenStream> TokenStream for WordsOnlyStream<S> {
    fn advance(&mut self) -> bool {
        while self.0.advance() {
            if self.0.token().text.chars().any(char::is_alphanumeric) {
                return true;
            }
        }
        false
    }
    fn token(&self) -> &Token {
        self.0.token()
    }
    fn token_mut(&mut self) -> &mut Token {
        self.0.token_mut()
    }
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(tantivy_jieba::JiebaTokenizer::new())
        .filter(RemoveLongFilter::limit(40))
        .filter(WordsOnly)
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(
            STOP_WORDS.iter().map(|s| s.to_string()),
        ))
        .filter(Stemmer::new(Language::English))
        .build()
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Field,
    org_id: Field,
    language: Field,
    scenario: Field,
    products: Field,
    version: Field,
    title: Field,
    body: Field,
    tags: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        org_id: b.add_text_field("org_id", STRING),
        language: b.add_text_field("language", STRING),
        scenario: b.add_text_field("scenario", STRING),
        products: b.add_text_field("products", STRING),
        version: b.add_u64_field("version", STORED),
        title: b.add_text_field("title", text.clone()),
        body: b.add_text_field("body", text.clone()),
        tags: b.add_text_field("tags", text),
    };
    (b.build(), fields)
}

/// Filters every search applies. `org_id` is mandatory: no cross-tenant hits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    pub org_id: String,
    pub language: Option<String>,
    pub scenario: Option<String>,
    pub product: Option<String>,
}

/// One lexical hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Bm25Hit {
    pub id: String,
    pub score: f32,
}

/// The Tantivy index.
pub struct Bm25Index {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    analyzer: TextAnalyzer,
}

impl std::fmt::Debug for Bm25Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25Index")
            .field("docs", &self.count())
            .finish()
    }
}

fn tantivy_err(e: impl std::fmt::Display) -> Error {
    Error::Engine(format!("tantivy: {e}"))
}

impl Bm25Index {
    /// Open the index in `dir`, creating it if needed.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display())))?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir).map_err(tantivy_err)?;
        let index = Index::open_or_create(directory, schema).map_err(|e| Error::Corrupt {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::finish(index, fields)
    }

    /// An index in memory (tests, benchmarks).
    pub fn in_memory() -> Result<Self, Error> {
        let (schema, fields) = schema();
        Self::finish(Index::create_in_ram(schema), fields)
    }

    fn finish(index: Index, fields: Fields) -> Result<Self, Error> {
        index.tokenizers().register(ANALYZER, analyzer());
        let writer = index.writer(50_000_000).map_err(tantivy_err)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_err)?;
        Ok(Bm25Index {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            analyzer: analyzer(),
        })
    }

    /// Add or replace approved scripts, then commit (durable on return).
    pub fn upsert(&self, scripts: &[ApprovedScript]) -> Result<(), Error> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let f = self.fields;
        for s in scripts {
            writer.delete_term(Term::from_field_text(f.id, s.id()));
            let mut d = doc!(
                f.id => s.id(),
                f.org_id => s.org_id(),
                f.language => s.language().as_str(),
                f.scenario => s.scenario().as_str(),
                f.version => u64::from(s.version()),
                f.title => s.title(),
                f.body => s.body(),
                f.tags => s.tags().join(" "),
            );
            for p in s.products() {
                d.add_text(f.products, p);
            }
            writer.add_document(d).map_err(tantivy_err)?;
        }
        writer.commit().map_err(tantivy_err)?;
        drop(writer);
        self.reader.reload().map_err(tantivy_err)
    }

    /// Remove scripts by id, then commit.
    pub fn delete(&self, ids: &[String]) -> Result<(), Error> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            writer.delete_term(Term::from_field_text(self.fields.id, id));
        }
        writer.commit().map_err(tantivy_err)?;
        drop(writer);
        self.reader.reload().map_err(tantivy_err)
    }

    /// Remove everything (before a rebuild), then commit.
    pub fn clear(&self) -> Result<(), Error> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.delete_all_documents().map_err(tantivy_err)?;
        writer.commit().map_err(tantivy_err)?;
        drop(writer);
        self.reader.reload().map_err(tantivy_err)
    }

    /// Documents in the index.
    pub fn count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Every stored `(id, version)`, for the consistency check.
    pub fn ids(&self) -> Result<Vec<(String, u32)>, Error> {
        let searcher = self.reader.searcher();
        let mut out = Vec::with_capacity(searcher.num_docs() as usize);
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(64).map_err(tantivy_err)?;
            let alive = segment.alive_bitset();
            for doc_id in 0..segment.max_doc() {
                if alive.is_some_and(|a| !a.is_alive(doc_id)) {
                    continue;
                }
                let d: TantivyDocument = store.get(doc_id).map_err(tantivy_err)?;
                let id = d
                    .get_first(self.fields.id)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                let version = d
                    .get_first(self.fields.version)
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                out.push((id.to_string(), u32::try_from(version).unwrap_or(u32::MAX)));
            }
        }
        Ok(out)
    }

    /// The analysed terms of `text` (what the index sees).
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token().text.clone();
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// BM25 search of `text` within `filter`, best first.
    pub fn search(
        &self,
        text: &str,
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<Bm25Hit>, Error> {
        let terms = self.terms(text);
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let f = self.fields;
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in &terms {
            for (field, boost) in [(f.title, 2.0f32), (f.body, 1.0), (f.tags, 1.5)] {
                let q = TermQuery::new(
                    Term::from_field_text(field, t),
                    IndexRecordOption::WithFreqs,
                );
                should.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost))));
            }
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Box::new(BooleanQuery::new(should)))];
        let exact = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        clauses.push((Occur::Must, exact(f.org_id, &filter.org_id)));
        if let Some(l) = &filter.language {
            clauses.push((Occur::Must, exact(f.language, l)));
        }
        if let Some(s) = &filter.scenario {
            clauses.push((Occur::Must, exact(f.scenario, s)));
        }
        if let Some(p) = &filter.product {
            clauses.push((Occur::Must, exact(f.products, p)));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(k).order_by_score())
            .map_err(tantivy_err)?;
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(tantivy_err)?;
            if let Some(id) = d.get_first(f.id).and_then(|v| v.as_str()) {
                out.push(Bm25Hit {
                    id: id.to_string(),
                    score,
                });
            }
        }
        Ok(out)
    }

    /// The underlying Tantivy index (for diagnostics).
    pub fn index(&self) -> &Index {
        &self.index
    }
}
