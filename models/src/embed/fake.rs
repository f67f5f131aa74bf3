//! A deterministic stand-in embedder for tests of crates that use models
//! (feature `testing`): no weights, instant, same interface.

use super::{Embed, EmbedKind, l2_normalize};
use crate::Result;

/// Hashes character 1-, 2- and 3-grams of the prefixed text into signed
/// buckets of a 384-dimensional unit vector. Texts sharing characters get
/// similar vectors (enough for ranking tests); the same text as a query and
/// as a passage gets different vectors, as with e5.
#[derive(Debug, Clone)]
pub struct FakeEmbedder {
    dim: usize,
}

impl FakeEmbedder {
    /// The same dimension as multilingual-e5-small.
    pub const DIM: usize = 384;

    pub fn new() -> Self {
        FakeEmbedder { dim: Self::DIM }
    }

    /// One vector, as [`Embed::embed`] would give it.
    pub fn vector(&self, text: &str, kind: EmbedKind) -> Vec<f32> {
        let prefix = match kind {
            EmbedKind::Query => "query: ",
            EmbedKind::Passage => "passage: ",
        };
        let chars: Vec<char> = prefix.chars().chain(text.chars()).collect();
        let mut v = vec![0f32; self.dim];
        for n in 1..=3 {
            for gram in chars.windows(n) {
                let h = fnv1a(gram);
                let slot = (h % self.dim as u64) as usize;
                let sign = if (h >> 32) & 1 == 0 { 1.0 } else { -1.0 };
                v[slot] += sign;
            }
        }
        l2_normalize(&mut v);
        v
    }
}

impl Default for FakeEmbedder {
    fn default() -> Self {
        Self::new()
    }
}

impl Embed for FakeEmbedder {
    fn embed(&mut self, texts: &[&str], kind: EmbedKind) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.vector(t, kind)).collect())
    }

    fn dim(&self) -> usize {
        self.dim
    }
}

fn fnv1a(chars: &[char]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in chars {
        for b in (*c as u32).to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::cosine;

    #[test]
    fn deterministic_unit_vectors_that_rank_overlap() {
        let mut f = FakeEmbedder::new();
        let a = f
            .embed(&["价格太贵了", "价格太贵了"], EmbedKind::Query)
            .unwrap();
        assert_eq!(a[0], a[1]);
        assert_eq!(a[0].len(), 384);
        assert!((a[0].iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        let p = f.vector("价格太贵了", EmbedKind::Passage);
        assert_ne!(a[0], p);
        let near = f.vector("价格偏贵", EmbedKind::Passage);
        let far = f.vector("快递明天上午送到", EmbedKind::Passage);
        assert!(cosine(&a[0], &near) > cosine(&a[0], &far));
        let empty = f.vector("", EmbedKind::Query);
        assert!((empty.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[tokio::test]
    async fn fake_handle_serves_embeddings() {
        let h =
            super::super::EmbedHandle::fake(crate::worker::WorkerConfig::new("fake", 4)).unwrap();
        assert_eq!(h.dim(), 384);
        let v = h
            .embed(vec!["a".into(), "b".into()], EmbedKind::Passage)
            .await
            .unwrap();
        assert_eq!(v.len(), 2);
        assert!(
            h.embed(Vec::new(), EmbedKind::Query)
                .await
                .unwrap()
                .is_empty()
        );
        h.shutdown();
    }
}
