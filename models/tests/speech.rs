//! Speech recognition: CTranslate2 conversion, mel filterbank, and (with
//! real weights, tests named `real_weights_*`) transcription.
//!
//! Real-weight tests skip with "skipped: ..." unless the model is ready in
//! `$ASSIST_MODEL_DIR` or `~/.cache/assist/models` (`assist models fetch --only asr,asr-en`)
//! and espeak-ng / sox are on PATH.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use assist_models::audio::{DecodeOptions, decode_file};
use assist_models::speech::convert::{Ct2WhisperConfig, ct2_to_hf};
use assist_models::speech::ct2::{Ct2DType, Ct2Model, Ct2Variable};
use assist_models::speech::mel::{hz_to_mel, mel_filters, mel_to_hz};
use assist_models::speech::{
    LoadOptions, Precision, Transcribe, TranscribeOptions, Transcriber, convert_ct2,
};
use assist_testkit::{Kind, skip};

// ---------------------------------------------------------------- helpers

fn f32_var(shape: &[usize], f: impl Fn(usize) -> f32) -> Ct2Variable {
    let n: usize = shape.iter().product();
    Ct2Variable {
        shape: shape.to_vec(),
        dtype: Ct2DType::F32,
        data: (0..n).flat_map(|i| f(i).to_le_bytes()).collect(),
    }
}

fn f16_var(shape: &[usize], f: impl Fn(usize) -> f32) -> Ct2Variable {
    // f16 bit patterns of small integers and halves, exact.
    fn to_f16(x: f32) -> [u8; 2] {
        let bits = x.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let exp = ((bits >> 23) & 0xff) as i32;
        let mant = bits & 0x7f_ffff;
        if x == 0.0 {
            return sign.to_le_bytes();
        }
        let e = (exp - 127 + 15) as u16;
        (sign | (e << 10) | (mant >> 13) as u16).to_le_bytes()
    }
    let n: usize = shape.iter().product();
    Ct2Variable {
        shape: shape.to_vec(),
        dtype: Ct2DType::F16,
        data: (0..n).flat_map(|i| to_f16(f(i))).collect(),
    }
}

fn scalar_i16(v: i16) -> Ct2Variable {
    Ct2Variable {
        shape: vec![],
        dtype: Ct2DType::I16,
        data: v.to_le_bytes().to_vec(),
    }
}

/// A Whisper-shaped CTranslate2 model with d_model 4, 1 encoder and 1
/// decoder layer, vocabulary 6, every value distinct enough to trace.
fn tiny_ct2_whisper() -> Ct2Model {
    let d = 4;
    let mut v = BTreeMap::new();
    let mut add = |name: &str, var: Ct2Variable| {
        v.insert(name.to_string(), var);
    };
    add("encoder/conv1/weight", f32_var(&[d, 3, 3], |i| i as f32));
    add("encoder/conv1/bias", f32_var(&[d], |i| i as f32));
    add("encoder/conv2/weight", f32_var(&[d, d, 3], |i| i as f32));
    add("encoder/conv2/bias", f32_var(&[d], |i| i as f32));
    add(
        "encoder/position_encodings/encodings",
        f32_var(&[10, d], |i| i as f32),
    );
    add("encoder/num_heads", scalar_i16(2));
    add("decoder/num_heads", scalar_i16(2));
    add("decoder/embeddings/weight", f16_var(&[6, d], |i| i as f32));
    add(
        "decoder/position_encodings/encodings",
        f32_var(&[8, d], |i| i as f32),
    );
    for part in ["encoder", "decoder"] {
        let l = format!("{part}/layer_0");
        // Fused q,k,v rows: q rows hold 1, k rows 2, v rows 3; k bias zero.
        add(
            &format!("{l}/self_attention/linear_0/weight"),
            f32_var(&[3 * d, d], |i| (i / (d * d) + 1) as f32),
        );
        add(
            &format!("{l}/self_attention/linear_0/bias"),
            f32_var(&[3 * d], |i| {
                if i / d == 1 {
                    0.0
                } else {
                    (i / d + 1) as f32 * 10.0
                }
            }),
        );
        add(
            &format!("{l}/self_attention/linear_1/weight"),
            f32_var(&[d, d], |_| 0.5),
        );
        add(
            &format!("{l}/self_attention/linear_1/bias"),
            f32_var(&[d], |_| 0.25),
        );
        add(
            &format!("{l}/self_attention/layer_norm/gamma"),
            f32_var(&[d], |_| 1.0),
        );
        add(
            &format!("{l}/self_attention/layer_norm/beta"),
            f32_var(&[d], |_| 0.0),
        );
        add(
            &format!("{l}/ffn/linear_0/weight"),
            f32_var(&[4 * d, d], |i| i as f32),
        );
        add(
            &format!("{l}/ffn/linear_0/bias"),
            f32_var(&[4 * d], |i| i as f32),
        );
        add(
            &format!("{l}/ffn/linear_1/weight"),
            f32_var(&[d, 4 * d], |i| i as f32),
        );
        add(
            &format!("{l}/ffn/linear_1/bias"),
            f32_var(&[d], |i| i as f32),
        );
        add(&format!("{l}/ffn/layer_norm/gamma"), f32_var(&[d], |_| 2.0));
        add(&format!("{l}/ffn/layer_norm/beta"), f32_var(&[d], |_| 3.0));
        add(&format!("{part}/layer_norm/gamma"), f32_var(&[d], |_| 1.0));
        add(&format!("{part}/layer_norm/beta"), f32_var(&[d], |_| 0.0));
    }
    let l = "decoder/layer_0/attention";
    add(&format!("{l}/linear_0/weight"), f32_var(&[d, d], |_| 7.0));
    add(&format!("{l}/linear_0/bias"), f32_var(&[d], |_| 7.5));
    // Fused k,v rows: k rows 8, v rows 9; k bias zero, v bias 9.5.
    add(
        &format!("{l}/linear_1/weight"),
        f32_var(&[2 * d, d], |i| if i < d * d { 8.0 } else { 9.0 }),
    );
    add(
        &format!("{l}/linear_1/bias"),
        f32_var(&[2 * d], |i| if i < d { 0.0 } else { 9.5 }),
    );
    add(&format!("{l}/linear_2/weight"), f32_var(&[d, d], |_| 10.0));
    add(&format!("{l}/linear_2/bias"), f32_var(&[d], |_| 10.5));
    add(&format!("{l}/layer_norm/gamma"), f32_var(&[d], |_| 1.0));
    add(&format!("{l}/layer_norm/beta"), f32_var(&[d], |_| 0.0));
    let mut aliases = BTreeMap::new();
    aliases.insert(
        "decoder/projection/weight".to_string(),
        "decoder/embeddings/weight".to_string(),
    );
    Ct2Model {
        binary_version: 6,
        spec: "WhisperSpec".into(),
        spec_revision: 3,
        variables: v,
        aliases,
    }
}

fn values(t: &candle_core::Tensor) -> Vec<f32> {
    t.to_dtype(candle_core::DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

// ---------------------------------------------------------------- ct2 reader + conversion

#[test]
fn ct2_reader_round_trips_a_synthetic_file() {
    let model = tiny_ct2_whisper();
    let bytes = model.to_bytes();
    let parsed = Ct2Model::parse(&bytes[..], bytes.len() as u64, Path::new("mem")).unwrap();
    assert_eq!(parsed.binary_version, 6);
    assert_eq!(parsed.spec, "WhisperSpec");
    assert_eq!(parsed.spec_revision, 3);
    assert_eq!(parsed.variables, model.variables);
    assert_eq!(parsed.aliases, model.aliases);
    assert_eq!(
        parsed.get("decoder/projection/weight"),
        parsed.get("decoder/embeddings/weight")
    );
    assert_eq!(
        parsed.get("encoder/num_heads").unwrap().scalar_i64(),
        Some(2)
    );
}

#[test]
fn ct2_reader_rejects_truncated_and_foreign_files() {
    let bytes = tiny_ct2_whisper().to_bytes();
    for cut in [0, 3, 10, bytes.len() / 2, bytes.len() - 1] {
        let err = Ct2Model::parse(&bytes[..cut], cut as u64, Path::new("m.bin")).unwrap_err();
        assert!(err.to_string().contains("truncated"), "cut {cut}: {err}");
    }
    let mut future = bytes.clone();
    future[..4].copy_from_slice(&99u32.to_le_bytes());
    let err = Ct2Model::parse(&future[..], future.len() as u64, Path::new("m.bin")).unwrap_err();
    assert!(err.to_string().contains("binary version 99"), "{err}");
}

#[test]
fn ct2_whisper_maps_to_hf_names_splitting_fused_projections() {
    let (t, cfg) = ct2_to_hf(&tiny_ct2_whisper(), &Ct2WhisperConfig::default()).unwrap();
    assert_eq!(cfg.d_model, 4);
    assert_eq!(cfg.num_mel_bins, 3);
    assert_eq!((cfg.encoder_layers, cfg.decoder_layers), (1, 1));
    assert_eq!(
        (cfg.encoder_attention_heads, cfg.decoder_attention_heads),
        (2, 2)
    );
    assert_eq!(cfg.vocab_size, 6);
    assert_eq!(
        (cfg.max_source_positions, cfg.max_target_positions),
        (10, 8)
    );

    for part in ["encoder", "decoder"] {
        let p = format!("model.{part}.layers.0.self_attn");
        assert_eq!(values(&t[&format!("{p}.q_proj.weight")]), vec![1.0; 16]);
        assert_eq!(values(&t[&format!("{p}.k_proj.weight")]), vec![2.0; 16]);
        assert_eq!(values(&t[&format!("{p}.v_proj.weight")]), vec![3.0; 16]);
        assert_eq!(values(&t[&format!("{p}.q_proj.bias")]), vec![10.0; 4]);
        assert_eq!(values(&t[&format!("{p}.v_proj.bias")]), vec![30.0; 4]);
        assert!(
            !t.contains_key(&format!("{p}.k_proj.bias")),
            "Whisper's k has no bias"
        );
        assert_eq!(values(&t[&format!("{p}.out_proj.bias")]), vec![0.25; 4]);
        let l = format!("model.{part}.layers.0");
        assert_eq!(
            values(&t[&format!("{l}.final_layer_norm.weight")]),
            vec![2.0; 4]
        );
        assert_eq!(
            values(&t[&format!("{l}.final_layer_norm.bias")]),
            vec![3.0; 4]
        );
        assert_eq!(t[&format!("{l}.fc1.weight")].dims(), &[16, 4]);
        assert_eq!(t[&format!("{l}.fc2.weight")].dims(), &[4, 16]);
        assert!(t.contains_key(&format!("model.{part}.layer_norm.weight")));
        assert!(t.contains_key(&format!("model.{part}.embed_positions.weight")));
    }
    let x = "model.decoder.layers.0.encoder_attn";
    assert_eq!(values(&t[&format!("{x}.q_proj.weight")]), vec![7.0; 16]);
    assert_eq!(values(&t[&format!("{x}.k_proj.weight")]), vec![8.0; 16]);
    assert_eq!(values(&t[&format!("{x}.v_proj.weight")]), vec![9.0; 16]);
    assert_eq!(values(&t[&format!("{x}.v_proj.bias")]), vec![9.5; 4]);
    assert_eq!(values(&t[&format!("{x}.out_proj.bias")]), vec![10.5; 4]);
    assert!(t.contains_key("model.decoder.layers.0.encoder_attn_layer_norm.bias"));
    assert_eq!(t["model.encoder.conv1.weight"].dims(), &[4, 3, 3]);
    assert_eq!(t["model.encoder.conv2.weight"].dims(), &[4, 4, 3]);
    // The fp16 embeddings arrive exactly.
    let emb = values(&t["model.decoder.embed_tokens.weight"]);
    assert_eq!(emb, (0..24).map(|i| i as f32).collect::<Vec<_>>());
}

#[test]
fn ct2_conversion_refuses_a_nonzero_key_bias() {
    let mut m = tiny_ct2_whisper();
    m.variables.insert(
        "encoder/layer_0/self_attention/linear_0/bias".into(),
        f32_var(&[12], |_| 1.0),
    );
    let err = ct2_to_hf(&m, &Ct2WhisperConfig::default()).unwrap_err();
    assert!(err.contains("k part"), "{err}");
    m.variables.remove("encoder/conv1/weight");
    assert!(
        ct2_to_hf(&m, &Ct2WhisperConfig::default())
            .unwrap_err()
            .contains("conv1")
    );
}

// ---------------------------------------------------------------- mel filterbank

#[test]
fn mel_filterbank_has_whispers_shape_and_slaney_values() {
    let f = mel_filters(16_000, 400, 80);
    assert_eq!(f.len(), 80 * 201);
    assert!(f.iter().all(|&x| x >= 0.0));
    for m in 0..80 {
        let row = &f[m * 201..(m + 1) * 201];
        let peak = row.iter().cloned().fold(0.0f32, f32::max);
        assert!(peak > 0.0, "filter {m} is empty");
        // Triangles: rise then fall, a single peak (at most two equal top bins).
        let top = row.iter().position(|&x| x == peak).unwrap();
        assert!(
            row[..top].windows(2).all(|w| w[0] <= w[1]),
            "filter {m} rises"
        );
        assert!(
            row[top..].windows(2).all(|w| w[0] >= w[1]),
            "filter {m} falls"
        );
    }
    // Reference values from the formula: edges are equally spaced in Slaney mels
    // between 0 and mel(8000 Hz); FFT bin k sits at 40 k Hz.
    let mel_max = hz_to_mel(8000.0);
    let edge = |i: usize| mel_to_hz(mel_max * i as f64 / 81.0);
    let expect = |m: usize, k: usize| {
        let (lo, mid, hi) = (edge(m), edge(m + 1), edge(m + 2));
        let hz = 40.0 * k as f64;
        let w = ((hz - lo) / (mid - lo))
            .min((hi - hz) / (hi - mid))
            .max(0.0);
        w * 2.0 / (hi - lo)
    };
    for (m, k) in [(0, 1), (1, 2), (10, 9), (40, 30), (79, 190), (79, 199)] {
        let got = f[m * 201 + k] as f64;
        assert!(
            (got - expect(m, k)).abs() < 1e-7,
            "filter {m} bin {k}: {got} vs {}",
            expect(m, k)
        );
    }
    // Below 1 kHz the scale is linear: 200/3 Hz per mel.
    assert!((edge(1) - mel_max / 81.0 * 200.0 / 3.0).abs() < 1e-9);
    // By hand: edges 0, 37.24, 74.48 Hz; bin 1 (40 Hz) is on the falling side:
    // (74.48 - 40) / 37.24 × 2 / 74.48 = 0.024863 (Whisper's mel_80[0][1]).
    assert!((f[1] - 0.024_862_59).abs() < 1e-6, "{}", f[1]);
}

// ---------------------------------------------------------------- real weights

fn model_root() -> PathBuf {
    std::env::var_os("ASSIST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/assist/models")
        })
}

fn ready_model(id: &str) -> Option<PathBuf> {
    let dir = model_root().join(id);
    if dir.join("ready.json").is_file() {
        Some(dir)
    } else {
        skip(
            Kind::Model,
            format!(
                "model {id} is not ready in {} (assist models fetch)",
                model_root().display()
            ),
        );
        None
    }
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(
            Kind::Tool,
            format!("{tool} is not installed (scripts/install-deps)"),
        );
    }
    ok
}

fn speak(dir: &Path, name: &str, text: &str) -> PathBuf {
    let out = dir.join(name);
    let st = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&out)
        .arg(text)
        .status()
        .unwrap();
    assert!(st.success());
    out
}

fn load(dir: &Path, precision: Precision) -> Transcriber {
    let opts = LoadOptions {
        precision,
        ..LoadOptions::default()
    };
    Transcriber::load(dir, &opts).unwrap()
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn mono16k(path: &Path) -> Vec<f32> {
    decode_file(path, &DecodeOptions::default()).unwrap().mono()
}

const SENTENCE: &str = "Please send me the price list for the premium plan by Friday.";

#[test]
fn real_weights_tiny_en_transcribes_english_speech() {
    let (Some(dir), true) = (ready_model("whisper-tiny-en"), have("espeak-ng")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let wav = speak(tmp.path(), "s.wav", SENTENCE);
    let mut asr = load(&dir, Precision::default());
    assert!(!asr.is_multilingual());
    let t = asr
        .transcribe(&mono16k(&wav), &TranscribeOptions::default())
        .unwrap();
    println!("tiny.en: {:?}", t.text());
    println!("{}", serde_json::to_string_pretty(&t).unwrap());
    assert_eq!(t.language, "en");
    let got = words(&t.text());
    let key = ["send", "price", "list", "premium", "plan", "friday"];
    let hits = key.iter().filter(|k| got.iter().any(|w| w == *k)).count();
    assert!(hits >= 5, "only {hits}/6 key words in {got:?}");
    let seg = &t.segments[0];
    assert!(seg.start_s >= 0.0 && seg.end_s > seg.start_s && seg.end_s <= t.duration_s + 0.01);
}

#[test]
fn real_weights_base_detects_english_and_transcribes() {
    let (Some(dir), true) = (ready_model("whisper-base"), have("espeak-ng")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let wav = speak(
        tmp.path(),
        "s.wav",
        "Our company will ship the new router to your office next Monday.",
    );
    let mut asr = load(&dir, Precision::default());
    assert!(asr.is_multilingual());
    let samples = mono16k(&wav);
    let (lang, p) = asr.detect_language(&samples).unwrap();
    println!("base detected {lang} ({p:.2})");
    assert_eq!(lang, "en");
    let t = asr
        .transcribe(&samples, &TranscribeOptions::default())
        .unwrap();
    println!("base: {:?}", t.text());
    assert_eq!(t.language, "en");
    let got = words(&t.text());
    let key = ["company", "ship", "router", "office", "monday"];
    let hits = key.iter().filter(|k| got.iter().any(|w| w == *k)).count();
    assert!(hits >= 4, "only {hits}/5 key words in {got:?}");
}

#[test]
fn real_weights_silence_gives_no_segments() {
    let (Some(dir), true) = (ready_model("whisper-base"), have("sox")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("silence.wav");
    let st = Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args(["trim", "0", "12"])
        .status()
        .unwrap();
    assert!(st.success());
    // Quiet hiss (above the digital-silence gate, so the model's no-speech
    // probability has to do the work).
    let hiss = tmp.path().join("hiss.wav");
    let st = Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&hiss)
        .args(["synth", "12", "pinknoise", "vol", "0.01"])
        .status()
        .unwrap();
    assert!(st.success());
    let mut asr = load(&dir, Precision::default());
    for file in [&wav, &hiss] {
        for language in [None, Some("zh".to_string())] {
            let opts = TranscribeOptions {
                language: language.clone(),
                ..Default::default()
            };
            let t = asr.transcribe(&mono16k(file), &opts).unwrap();
            println!("{} ({language:?}): {:?}", file.display(), t.segments);
            assert!(
                t.segments.is_empty(),
                "invented text on {}: {:?}",
                file.display(),
                t.segments
            );
        }
    }
}

#[test]
fn real_weights_stereo_channels_are_labelled() {
    let (Some(dir), true, true) = (
        ready_model("whisper-tiny-en"),
        have("espeak-ng"),
        have("sox"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let rep = speak(
        tmp.path(),
        "rep.wav",
        "Good morning, this is Anna from the billing team.",
    );
    let cust = speak(
        tmp.path(),
        "cust.wav",
        "I would like to cancel my subscription today.",
    );
    // Customer starts after the rep: pad the customer's channel with 4 s of silence.
    let cust_late = tmp.path().join("cust_late.wav");
    assert!(
        Command::new("sox")
            .arg(&cust)
            .arg(&cust_late)
            .args(["pad", "4"])
            .status()
            .unwrap()
            .success()
    );
    let stereo = tmp.path().join("call.wav");
    assert!(
        Command::new("sox")
            .args(["-M"])
            .arg(&rep)
            .arg(&cust_late)
            .arg(&stereo)
            .status()
            .unwrap()
            .success()
    );
    let audio = decode_file(&stereo, &DecodeOptions::default()).unwrap();
    assert_eq!(audio.channels.len(), 2);
    let mut asr = load(&dir, Precision::default());
    let t = asr
        .transcribe_channels(&audio.channels, &TranscribeOptions::default())
        .unwrap();
    println!("{}", serde_json::to_string_pretty(&t).unwrap());
    let text_of = |ch: usize| {
        t.segments
            .iter()
            .filter(|s| s.channel == Some(ch))
            .map(|s| s.text.clone())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (rep_text, cust_text) = (words(&text_of(0)), words(&text_of(1)));
    assert!(rep_text.iter().any(|w| w == "morning"), "{rep_text:?}");
    assert!(cust_text.iter().any(|w| w == "cancel"), "{cust_text:?}");
    assert!(!rep_text.iter().any(|w| w == "cancel"), "{rep_text:?}");
    assert!(
        t.segments.windows(2).all(|w| w[0].start_s <= w[1].start_s),
        "merged by time"
    );
    let first_cust = t.segments.iter().find(|s| s.channel == Some(1)).unwrap();
    assert!(
        first_cust.start_s >= 3.0,
        "customer speaks after 4 s: {first_cust:?}"
    );
}

#[test]
fn real_weights_conversion_runs_once_and_is_reused() {
    let Some(dir) = ready_model("whisper-tiny-en") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("converted").join("whisper-tiny-en");
    let first = convert_ct2(&dir, &out).unwrap();
    assert!(out.join("converted.json").is_file());
    assert!(out.join("config.json").is_file() && out.join("tokenizer.json").is_file());
    let started = Instant::now();
    let again = convert_ct2(&dir, &out).unwrap();
    assert_eq!(first.weights, again.weights);
    assert!(
        started.elapsed().as_secs_f64() < 1.0,
        "second conversion should be a reuse"
    );
    let entries: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().collect();
    assert_eq!(entries.len(), 1, "no staging directory is left behind");
    // The HF layout it wrote loads directly, as a user's HF directory would.
    let mut asr = Transcriber::load(&out, &LoadOptions::default()).unwrap();
    assert!(!asr.is_multilingual());
    let _ = asr
        .transcribe_window(&vec![0.0; 16_000], &TranscribeOptions::default())
        .unwrap();
}

/// Real-time factor of each model and precision on a 30-second clip:
/// `cargo test -p assist-models --release --test speech real_weights_rtf -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: prints real-time factors"]
fn real_weights_rtf_report() {
    if !have("espeak-ng") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let text = "Thank you for calling. I can help you with the premium plan today. \
                The price list has three options, and the first one includes support. \
                Shall I send you the contract by email so you can review it by Friday? \
                We also offer a discount for annual payments, which many customers choose.";
    let wav = speak(tmp.path(), "long.wav", text);
    let mut samples = mono16k(&wav);
    samples.resize(30 * 16_000, 0.0);
    let audio_s = samples.len() as f64 / 16_000.0;
    for id in ["whisper-tiny-en", "whisper-base"] {
        let Some(dir) = ready_model(id) else { continue };
        for precision in [Precision::F32, Precision::Q8, Precision::Mixed] {
            let mut asr = load(&dir, precision);
            let opts = TranscribeOptions {
                language: Some("en".into()),
                ..Default::default()
            };
            let _ = asr.transcribe(&samples[..16_000 * 5], &opts).unwrap(); // warm up
            let started = Instant::now();
            let t = asr.transcribe(&samples, &opts).unwrap();
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{id:16} {precision:?}: {secs:.2} s for {audio_s:.0} s audio, RTF {:.3}; {:?}",
                secs / audio_s,
                t.text()
            );
        }
    }
}

/// A live utterance decoded on an encoder window fitted to it (a fraction
/// of the work) reads the same as on a whole 30-second window, on real
/// recorded speech in both languages.
#[test]
fn real_weights_fitted_window_transcribes_real_utterances() {
    let Some(dir) = ready_model("whisper-base") else {
        return;
    };
    let Some(real) = assist_testkit::real_speech_dir() else {
        return;
    };
    let mut asr = load(&dir, Precision::default());
    let cases = [
        (
            "zh_aishell1_BAC009S0764W0121.wav",
            "zh",
            "甚至出现交易几乎停滞的情况",
        ),
        (
            "zh_funasr_asr_example.wav",
            "zh",
            "欢迎大家来体验达摩院推出的语音识别模型",
        ),
        (
            "en_jfk.wav",
            "en",
            "and so my fellow americans ask not what your country can do for you ask what you can do for your country",
        ),
    ];
    for (file, lang, reference) in cases {
        let samples = mono16k(&real.join(file));
        let mut opts = TranscribeOptions {
            language: Some(lang.into()),
            timestamps: false,
            temperatures: vec![0.0],
            condition_on_previous_text: false,
            ..TranscribeOptions::default()
        };
        let full = asr.transcribe_window(&samples, &opts).unwrap().text();
        opts.fit_window = Some(assist_models::speech::FitWindow::default());
        let fit = asr.transcribe_window(&samples, &opts).unwrap().text();
        println!("{file}: full {full:?} | fitted {fit:?}");
        // Units that match the reference (characters for Chinese, words for English).
        let hits = |text: &str| -> f64 {
            if lang == "zh" {
                let got: Vec<char> = text.chars().collect();
                let n = reference.chars().filter(|c| got.contains(c)).count();
                n as f64 / reference.chars().count() as f64
            } else {
                let got = words(text);
                let want = words(reference);
                want.iter().filter(|w| got.contains(w)).count() as f64 / want.len() as f64
            }
        };
        assert!(hits(&fit) >= 0.8, "{file}: fitted {fit:?}");
        assert!(
            hits(&fit) + 0.1 >= hits(&full),
            "{file}: fitted {fit:?} much worse than full {full:?}"
        );
    }
}
