//! [`QdrantServerIndex`] against a real Qdrant server: runs only when `ASSIST_TEST_QDRANT_URL`
//! (gRPC, e.g. `http://127.0.0.1:6334`) is set; each check uses a fresh collection.

mod vector_shared;

use assist_indexer::vector::{
    Error, QdrantServerIndex, ServerOptions, VectorBackend, VectorIndex, open_vector_index,
};
use assist_testkit::{Kind, skip};
use vector_shared as shared;

fn server_url() -> Option<String> {
    match std::env::var("ASSIST_TEST_QDRANT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip(
                Kind::Qdrant,
                "set ASSIST_TEST_QDRANT_URL to a Qdrant gRPC url to run this test",
            );
            None
        }
    }
}

fn fresh(url: &str) -> Box<dyn VectorIndex> {
    let collection = format!("assist_test_{}", uuid_like());
    let api_key = std::env::var("ASSIST_TEST_QDRANT_API_KEY").ok();
    open_vector_index(
        VectorBackend::Server {
            url: url.to_string(),
            api_key,
            collection,
        },
        shared::DIM,
    )
    .unwrap()
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}_{}", std::process::id())
}

#[test]
fn server_index_behaves_like_the_embedded_one() {
    let Some(url) = server_url() else { return };
    shared::empty_search(fresh(&url).as_ref());
    shared::nearest_first(fresh(&url).as_ref());
    shared::filters(fresh(&url).as_ref());
    shared::delete_removes(fresh(&url).as_ref());
    shared::reupsert_replaces(fresh(&url).as_ref());
    shared::ids_list_everything(fresh(&url).as_ref());
    shared::rejects_bad_input(fresh(&url).as_ref());
}

#[test]
fn server_collection_with_other_dimension_is_incompatible() {
    let Some(url) = server_url() else { return };
    let collection = format!("assist_test_{}", uuid_like());
    let first = QdrantServerIndex::connect(&url, None, &collection, 8, ServerOptions::default());
    drop(first.unwrap());
    // Reconnecting with the same settings works (collection exists, indexes exist).
    QdrantServerIndex::connect(&url, None, &collection, 8, ServerOptions::default()).unwrap();
    let err = QdrantServerIndex::connect(&url, None, &collection, 16, ServerOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Incompatible { .. }), "{err}");
}

#[test]
fn unreachable_server_is_a_retryable_error() {
    // Nothing listens on port 1 of loopback: connection refused, no traffic leaves the machine.
    let options = ServerOptions {
        timeout: std::time::Duration::from_secs(2),
        connect_timeout: std::time::Duration::from_secs(1),
        ..ServerOptions::default()
    };
    let err = QdrantServerIndex::connect("http://127.0.0.1:1", None, "x", 8, options).unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
}
