//! Real-weight tests of the multilingual embedder (multilingual-e5-small,
//! `E5S1`). They print "skipped: …" and pass when the model is not ready in
//! `$ASSIST_MODEL_DIR` or `~/.cache/assist/models`.
//!
//! The reference-agreement test compiles the package's own `e5.c` with the
//! system C compiler into a temporary directory (nothing is kept).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use assist_models::embed::{EmbedHandle, EmbedKind, Embedder, cosine};
use assist_models::worker::WorkerConfig;
use assist_testkit::{Kind, skip};

fn model_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("ASSIST_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".cache/assist/models")
}

/// The embedder directory, when its model is ready.
fn e5_dir() -> Option<PathBuf> {
    let dir = model_root().join("multilingual-e5-small");
    let ready = dir.join("ready.json").is_file()
        && dir.join("e5-small-q4.bin").is_file()
        && dir.join("tokenizer.json").is_file();
    if !ready {
        skip(
            Kind::Model,
            format!(
                "multilingual-e5-small is not ready in {} (run `assist models fetch --only embedder`)",
                dir.display()
            ),
        );
    }
    ready.then_some(dir)
}

/// One loaded embedder shared by the tests of this binary (loading takes a
/// second). Every caller looks for the model, so each test that cannot run
/// reports its own skip.
fn embedder() -> Option<std::sync::MutexGuard<'static, Embedder>> {
    static MODEL: OnceLock<std::sync::Mutex<Embedder>> = OnceLock::new();
    let dir = e5_dir()?;
    let model = MODEL.get_or_init(|| std::sync::Mutex::new(Embedder::load(&dir).expect("load e5")));
    Some(model.lock().unwrap_or_else(|p| p.into_inner()))
}

fn embed1(m: &mut Embedder, text: &str, kind: EmbedKind) -> Vec<f32> {
    m.embed(&[text], kind).unwrap().pop().unwrap()
}

#[test]
fn vectors_have_dim_384_and_unit_norm() {
    let Some(mut m) = embedder() else { return };
    assert_eq!(m.dim(), 384);
    let out = m
        .embed(
            &["你好，请问有什么可以帮您？", "hello there"],
            EmbedKind::Passage,
        )
        .unwrap();
    assert_eq!(out.len(), 2);
    for v in &out {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        assert!(v.iter().all(|x| x.is_finite()));
    }
    assert!(m.embed(&[], EmbedKind::Query).unwrap().is_empty());
}

fn assert_ranks_first(m: &mut Embedder, query: &str, paraphrase: &str, unrelated: &[&str]) {
    let q = embed1(m, query, EmbedKind::Query);
    let near = cosine(&q, &embed1(m, paraphrase, EmbedKind::Passage));
    for other in unrelated {
        let far = cosine(&q, &embed1(m, other, EmbedKind::Passage));
        println!("{query:?}: {near:.4} for {paraphrase:?}, {far:.4} for {other:?}");
        assert!(
            near > far,
            "{query:?} is closer to {other:?} ({far}) than to {paraphrase:?} ({near})"
        );
    }
}

#[test]
fn chinese_paraphrase_ranks_above_unrelated() {
    let Some(mut m) = embedder() else { return };
    assert_ranks_first(
        &mut m,
        "这个价格太贵了，能便宜点吗",
        "您觉得价格偏高的话，我们可以申请优惠",
        &["快递明天上午送到", "我们的售后服务热线是多少"],
    );
    assert_ranks_first(
        &mut m,
        "我想退货，东西有质量问题",
        "商品出现质量问题可以办理退换货",
        &["这个价格太贵了，能便宜点吗", "会议改到下周三下午"],
    );
}

#[test]
fn english_paraphrase_ranks_above_unrelated() {
    let Some(mut m) = embedder() else { return };
    assert_ranks_first(
        &mut m,
        "That's way too expensive, can you do a better price?",
        "If the price feels high, I can ask my manager about a discount for you.",
        &[
            "Your package will be delivered tomorrow morning.",
            "What is the phone number of customer support?",
        ],
    );
    assert_ranks_first(
        &mut m,
        "I need to think about it and talk to my wife first.",
        "Of course, take your time to discuss it with your family; when should I follow up?",
        &[
            "The invoice was sent to your email address.",
            "Our office opens at nine.",
        ],
    );
}

#[test]
fn cross_lingual_pair_ranks_above_unrelated() {
    let Some(mut m) = embedder() else { return };
    assert_ranks_first(
        &mut m,
        "The price is too high, can you give me a discount?",
        "您觉得价格偏高的话，我们可以申请优惠",
        &["快递明天上午送到", "我们的售后服务热线是多少"],
    );
    assert_ranks_first(
        &mut m,
        "这个价格太贵了，能便宜点吗",
        "If the price feels high, I can ask about a discount for you.",
        &["Your package will be delivered tomorrow morning."],
    );
}

#[test]
fn query_and_passage_prefixes_are_applied() {
    let Some(mut m) = embedder() else { return };
    assert_eq!(m.prefix(EmbedKind::Query), "query: ");
    assert_eq!(m.prefix(EmbedKind::Passage), "passage: ");
    let text = "我们的售后服务热线是多少";
    let q = embed1(&mut m, text, EmbedKind::Query);
    let p = embed1(&mut m, text, EmbedKind::Passage);
    let c = cosine(&q, &p);
    assert!(c < 0.999, "query and passage vectors are the same ({c})");
    assert!(c > 0.8, "query and passage vectors are unrelated ({c})");
    let ids = m.tokenize(&[text], EmbedKind::Query).unwrap();
    let plain = m.tokenize(&[text], EmbedKind::Passage).unwrap();
    assert_ne!(ids, plain);
}

#[test]
fn batch_results_equal_single_results() {
    let Some(mut m) = embedder() else { return };
    let texts = [
        "这个价格太贵了，能便宜点吗",
        "hi",
        "您觉得价格偏高的话，我们可以申请优惠，今天下单还可以再送一年的延保服务，您看怎么样？",
        "Your package will be delivered tomorrow morning.",
        "",
        "好",
    ];
    let batch = m.embed(&texts, EmbedKind::Passage).unwrap();
    for (text, b) in texts.iter().zip(&batch) {
        let single = embed1(&mut m, text, EmbedKind::Passage);
        let c = cosine(&single, b);
        assert!(c > 0.9999, "{text:?}: batch vs single cosine {c}");
    }
}

#[test]
fn empty_and_very_long_texts_do_not_crash() {
    let Some(mut m) = embedder() else { return };
    let long: String = "客户说这个价格太贵了，希望能再便宜一点。".repeat(500);
    assert!(long.chars().count() >= 10_000);
    let ids = m.tokenize(&[&long], EmbedKind::Passage).unwrap();
    assert_eq!(ids[0].len(), 512, "truncated to 512 tokens");
    let out = m
        .embed(&["", &long, "   ", "\u{0}"], EmbedKind::Passage)
        .unwrap();
    for v in out {
        assert_eq!(v.len(), 384);
        assert!(v.iter().all(|x| x.is_finite()));
    }
}

#[tokio::test]
async fn handle_embeds_on_the_owner_thread() {
    let Some(dir) = e5_dir() else { return };
    let handle = tokio::task::spawn_blocking(move || {
        EmbedHandle::spawn(WorkerConfig::new("embedder", 8), dir)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(handle.dim(), 384);
    let (a, b) = tokio::join!(
        handle.embed_one("这个价格太贵了".into(), EmbedKind::Query),
        handle.embed(vec!["价格".into(), "送货".into()], EmbedKind::Passage),
    );
    assert_eq!(a.unwrap().len(), 384);
    assert_eq!(b.unwrap().len(), 2);
    handle.shutdown();
}

/// A C driver around the reference reader: one text per stdin line, one
/// embedding per stdout line.
const DRIVER_C: &str = r#"
#include "e5.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    int query = strcmp(argv[2], "query") == 0, dim = e5_dim(m);
    float *out = malloc(sizeof(float) * dim);
    static char line[1 << 16];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (e5_embed(m, line, query, out) != 0) return 2;
        for (int i = 0; i < dim; i++) printf(i ? " %.9g" : "%.9g", out[i]);
        printf("\n");
    }
    e5_free(m);
    return 0;
}
"#;

/// Build the reference reader from the model directory's `e5.c` in a temp dir.
fn build_reference(dir: &Path, tmp: &Path) -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    if Command::new(&cc).arg("--version").output().is_err() {
        skip(
            Kind::Tool,
            format!("no C compiler `{cc}` to build the reference reader"),
        );
        return None;
    }
    for f in ["e5.c", "e5.h"] {
        if !dir.join(f).is_file() {
            skip(Kind::Model, format!("{f} is not in {}", dir.display()));
            return None;
        }
        std::fs::copy(dir.join(f), tmp.join(f)).unwrap();
    }
    std::fs::write(tmp.join("driver.c"), DRIVER_C).unwrap();
    let exe = tmp.join("e5ref");
    let status = Command::new(&cc)
        .current_dir(tmp)
        .args(["-O2", "-o"])
        .arg(&exe)
        .args(["driver.c", "e5.c", "-lm"])
        .status()
        .unwrap();
    assert!(status.success(), "the reference reader did not compile");
    Some(exe)
}

fn reference_embeddings(exe: &Path, model: &Path, kind: &str, texts: &[&str]) -> Vec<Vec<f32>> {
    use std::io::Write;
    let mut child = Command::new(exe)
        .arg(model)
        .arg(kind)
        .env("OMP_NUM_THREADS", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for t in texts {
        writeln!(stdin, "{t}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference reader failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').map(|x| x.parse().unwrap()).collect())
        .collect()
}

#[test]
fn agrees_with_the_reference_c_reader() {
    let Some(dir) = e5_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(exe) = build_reference(&dir, tmp.path()) else {
        return;
    };
    let texts = [
        "这个价格太贵了，能便宜点吗",
        "您觉得价格偏高的话，我们可以申请优惠",
        "快递明天上午送到",
        "我们的售后服务热线是多少",
        "The price is too high for us, can you give a discount?",
        "hello world",
        "请问您是王先生吗？我是平安保险的客户经理小李，想跟您确认一下保单续费的事情。",
        "Let me check with my manager and call you back on Friday at 3 pm.",
    ];
    let Some(mut m) = embedder() else { return };
    for (kind, name) in [(EmbedKind::Query, "query"), (EmbedKind::Passage, "passage")] {
        let ours = m.embed(&texts, kind).unwrap();
        let theirs = reference_embeddings(&exe, &dir.join("e5-small-q4.bin"), name, &texts);
        assert_eq!(theirs.len(), texts.len());
        for ((text, a), b) in texts.iter().zip(&ours).zip(&theirs) {
            let c = cosine(a, b);
            println!("{name} {c:.6} {text}");
            assert!(c > 0.999, "{name} {text:?}: cosine with the reference {c}");
        }
    }
}

/// An English sentence-transformers model in the Hugging Face layout (BERT),
/// when present: `$ASSIST_TEST_MINILM_DIR` or the store's `all-minilm-l6-v2`.
fn minilm_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("ASSIST_TEST_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| model_root().join("all-minilm-l6-v2"));
    let ok = dir.join("config.json").is_file() && dir.join("model.safetensors").is_file();
    if !ok {
        skip(
            Kind::OptionalModel,
            format!("all-MiniLM-L6-v2 is not in {}", dir.display()),
        );
    }
    ok.then_some(dir)
}

#[test]
fn hf_bert_directory_matches_published_similarities() {
    let Some(dir) = minilm_dir() else { return };
    let mut m = Embedder::load(&dir).unwrap();
    assert_eq!(m.dim(), 384);
    assert_eq!(
        m.prefix(EmbedKind::Query),
        "",
        "MiniLM was trained without prefixes"
    );
    // The sentence-transformers quick-start example for this model prints
    // similarities 0.6660 and 0.1046 for these sentences.
    let v = m
        .embed(
            &[
                "The weather is lovely today.",
                "It's so sunny outside!",
                "He drove to the stadium.",
            ],
            EmbedKind::Passage,
        )
        .unwrap();
    let (near, far) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
    println!("minilm: {near:.4} {far:.4}");
    assert!((near - 0.6660).abs() < 0.002, "{near}");
    assert!((far - 0.1046).abs() < 0.002, "{far}");
}
