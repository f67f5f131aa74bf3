//! [`EdgeVectorIndex`] (embedded Qdrant Edge): the shared behaviour checks, plus what only an
//! on-disk engine has: reopening, HNSW segments, a kill -9 in the middle of writes.

mod vector_shared;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assist_indexer::vector::{
    EdgeOptions, EdgeVectorIndex, Error, VectorBackend, VectorFilter, VectorIndex, VectorPoint,
    open_vector_index, point_uuid,
};
use vector_shared::{self as shared, DIM};

/// An index in a fresh temporary directory; fields drop in order, the index before its directory.
struct Fresh {
    index: Box<dyn VectorIndex>,
    _dir: tempfile::TempDir,
}

fn fresh() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let index = open_vector_index(
        VectorBackend::Edge {
            path: dir.path().join("vectors"),
        },
        DIM,
    )
    .unwrap();
    Fresh { index, _dir: dir }
}

#[test]
fn search_returns_nearest_first() {
    shared::nearest_first(fresh().index.as_ref());
}

#[test]
fn filters_by_org_language_scenario_and_product() {
    shared::filters(fresh().index.as_ref());
}

#[test]
fn delete_removes_points() {
    shared::delete_removes(fresh().index.as_ref());
}

#[test]
fn reupsert_of_same_id_replaces_vector_payload_and_version() {
    shared::reupsert_replaces(fresh().index.as_ref());
}

#[test]
fn ids_lists_what_is_stored_with_versions() {
    shared::ids_list_everything(fresh().index.as_ref());
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    shared::rejects_bad_input(fresh().index.as_ref());
}

#[test]
fn empty_index_search_returns_empty() {
    shared::empty_search(fresh().index.as_ref());
}

#[test]
fn point_ids_are_stable_uuid_v5() {
    let a = point_uuid("scr_01a2");
    assert_eq!(a, point_uuid("scr_01a2"));
    assert_ne!(a, point_uuid("scr_01a3"));
    assert_eq!(a.get_version_num(), 5);
}

#[test]
fn reopen_from_disk_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors");
    let points = shared::corpus();
    {
        let index = EdgeVectorIndex::open(&path, DIM).unwrap();
        index.upsert(&points).unwrap();
        index.delete(&[points[0].id.clone()]).unwrap();
        index.flush().unwrap();
    }
    let index = EdgeVectorIndex::open(&path, DIM).unwrap();
    assert_eq!(index.count().unwrap(), points.len() - 1);
    let mut ids = index.ids(None).unwrap();
    ids.sort();
    let mut want: Vec<_> = points[1..]
        .iter()
        .map(|p| (p.id.clone(), p.version))
        .collect();
    want.sort();
    assert_eq!(ids, want);
    let hits = index
        .search(
            &points[2].vector,
            &VectorFilter::org(&points[2].org_id).language(&points[2].language),
            3,
        )
        .unwrap();
    assert_eq!(hits[0].id, points[2].id);
    // Writes keep working after a reopen (operation numbers continue, nothing is ignored).
    let mut p = points[2].clone();
    p.version = 9;
    index.upsert(&[p.clone()]).unwrap();
    assert!(index.ids(Some("org_a")).unwrap().contains(&(p.id, 9)));
}

#[test]
fn reopen_with_another_dimension_is_incompatible() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors");
    EdgeVectorIndex::open(&path, DIM)
        .unwrap()
        .upsert(&shared::corpus())
        .unwrap();
    let err = EdgeVectorIndex::open(&path, 768).unwrap_err();
    assert!(matches!(err, Error::Incompatible { .. }), "{err}");
    assert!(err.to_string().contains("384"), "{err}");
}

/// With a tiny indexing threshold, flush builds HNSW segments: filtered search must stay exact
/// on these small sets and survive a reopen.
#[test]
fn hnsw_segments_after_flush_search_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors");
    let options = EdgeOptions {
        indexing_threshold_kb: 100,
        durable_writes: false,
        ..EdgeOptions::default()
    };
    let points: Vec<VectorPoint> = (0..1200)
        .map(|i| {
            let org = ["org_a", "org_b", "org_c"][i % 3];
            let lang = if i % 5 == 0 { "en" } else { "zh" };
            shared::point(
                &format!("scr_{i:05}"),
                org,
                lang,
                "greeting",
                &["broadband"],
            )
        })
        .collect();
    {
        let index = EdgeVectorIndex::open_with(&path, DIM, options.clone()).unwrap();
        for chunk in points.chunks(300) {
            index.upsert(chunk).unwrap();
        }
        index.flush().unwrap();
        assert!(
            index.indexed_count() > 0,
            "flush should have built an HNSW graph"
        );
    }
    let index = EdgeVectorIndex::open_with(&path, DIM, options).unwrap();
    assert!(index.indexed_count() > 0);
    assert_eq!(index.count().unwrap(), points.len());
    for target in points.iter().step_by(97) {
        let filter = VectorFilter::org(&target.org_id).language(&target.language);
        let hits = index
            .search(&shared::near(&target.vector, 3, 0.05), &filter, 10)
            .unwrap();
        assert_eq!(hits[0].id, target.id);
        let by_id = |id: &str| points.iter().find(|p| p.id == id).unwrap();
        assert!(hits.iter().all(|h| {
            let p = by_id(&h.id);
            p.org_id == target.org_id && p.language == target.language
        }));
    }
}

/// The child half of [`kill_9_mid_upsert_leaves_a_loadable_shard`]; does nothing on its own.
#[test]
#[ignore = "run by kill_9_mid_upsert_leaves_a_loadable_shard as a child process"]
fn crash_child_writes_until_killed() {
    let Ok(dir) = std::env::var("ASSIST_VECTOR_CRASH_DIR") else {
        return;
    };
    let index = EdgeVectorIndex::open(&dir, DIM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut batch = 0;
    while Instant::now() < deadline {
        let points: Vec<VectorPoint> = (0..200)
            .map(|i| shared::point(&format!("scr_{batch:04}_{i:03}"), "org_a", "zh", "x", &[]))
            .collect();
        index.upsert(&points).unwrap(); // durable_writes: flushed when this returns
        println!("durable {batch}");
        batch += 1;
    }
}

#[test]
fn kill_9_mid_upsert_leaves_a_loadable_shard() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writes_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("ASSIST_VECTOR_CRASH_DIR", &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut durable = None;
    for line in lines.by_ref() {
        if let Some(n) = line.unwrap().strip_prefix("durable ") {
            let n: usize = n.trim().parse().unwrap();
            durable = Some(n);
            if n >= 5 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL, most likely in the middle of the next batch
    child.wait().unwrap();
    let durable = durable.expect("child wrote nothing") + 1;

    let index = EdgeVectorIndex::open(&path, DIM).unwrap();
    let count = index.count().unwrap();
    assert!(
        count >= durable * 200,
        "{count} points, {durable} batches were durable"
    );
    let ids = index.ids(None).unwrap();
    assert_eq!(ids.len(), count);
    let hits = index
        .search(
            &shared::unit(shared::seed_of("scr_0000_007")),
            &VectorFilter::org("org_a"),
            1,
        )
        .unwrap();
    assert_eq!(hits[0].id, "scr_0000_007");
    // And it accepts writes again.
    index.upsert(&shared::corpus()).unwrap();
    assert_eq!(index.count().unwrap(), count + 40);
}

#[test]
fn shared_between_threads() {
    let Fresh { index, _dir } = fresh();
    let index: std::sync::Arc<dyn VectorIndex> = index.into();
    index.upsert(&shared::corpus()).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let index = index.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let p = shared::point(&format!("scr_t{t}_{i}"), "org_a", "zh", "x", &[]);
                    index.upsert(std::slice::from_ref(&p)).unwrap();
                    let hits = index
                        .search(&p.vector, &VectorFilter::org("org_a"), 1)
                        .unwrap();
                    assert_eq!(hits[0].id, p.id);
                    if i % 10 == 0 {
                        index.flush().unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(index.count().unwrap(), 40 + 100);
}
