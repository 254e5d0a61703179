//! Property tests of the parsers that read hostile input, a bounded number of cases each:
//! the backup archive reader (random and mutated archives) and Slack slash-command payloads
//! (random form bodies with valid signatures). Zero panics, clear errors, zero 500s.

use std::io::Read;
use std::sync::OnceLock;

use bravely::backups::archive;
use bravely::backups::reader::Limits;
use bravely::clock::Clock;
use bravely::store::{Actor, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunConfig, TestRunner};

/// A small full backup (database and one uploaded file with a long name): compressed bytes,
/// and its manifest.
fn sample() -> &'static (Vec<u8>, archive::Manifest) {
    static SAMPLE: OnceLock<(Vec<u8>, archive::Manifest)> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("bravely.redb"), Clock::manual(crate::harness::start_time()), vec![])
            .expect("store");
        store.ready_blocking().expect("ready");
        store
            .write_blocking(Actor::system("test"), |tx| {
                for i in 0..5 {
                    tx.insert(&bravely::people::Employee {
                        name: format!("Person {i}"),
                        work_email: format!("p{i}@example.com"),
                        title: "Dev".into(),
                        team: None,
                        start_date: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("date"),
                        end_date: None,
                        active: true,
                    })?;
                }
                Ok(())
            })
            .expect("rows");
        let files = archive::files_dir(dir.path()).join("cv");
        std::fs::create_dir_all(&files).expect("files");
        std::fs::write(files.join(format!("{}.pdf", "long-name-".repeat(12))), b"%PDF-1.4 a file").expect("file");
        let out = dir.path().join(format!("sample.{}", archive::EXTENSION));
        let opts = archive::Options { policy: "test", full: true, data_dir: dir.path(), passphrase: None };
        let manifest = archive::create_with(&store, &out, &opts).expect("backup");
        store.shutdown();
        (std::fs::read(&out).expect("read"), manifest)
    })
}

fn decompressed(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    zstd::Decoder::new(bytes).expect("zstd").read_to_end(&mut out).expect("decompress");
    out
}

/// How a case changes the sample.
#[derive(Debug, Clone)]
enum Mutation {
    /// Bytes set in the compressed file.
    Compressed(Vec<(usize, u8)>),
    /// Bytes set in the tar inside, recompressed: reaches the tar and manifest parsing.
    Inner(Vec<(usize, u8)>),
    /// The inner tar cut short, recompressed.
    InnerTruncated(usize),
    /// The compressed file cut short.
    Truncated(usize),
    /// Random bytes, compressed (a tar parser's worst day) or not.
    Random { bytes: Vec<u8>, compress: bool },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let edits = || prop::collection::vec((any::<usize>(), any::<u8>()), 1..8);
    prop_oneof![
        edits().prop_map(Mutation::Compressed),
        edits().prop_map(Mutation::Inner),
        any::<usize>().prop_map(Mutation::InnerTruncated),
        any::<usize>().prop_map(Mutation::Truncated),
        (prop::collection::vec(any::<u8>(), 0..4096), any::<bool>())
            .prop_map(|(bytes, compress)| Mutation::Random { bytes, compress }),
    ]
}

fn apply(m: &Mutation) -> Vec<u8> {
    let (good, _) = sample();
    let edit = |mut b: Vec<u8>, edits: &[(usize, u8)]| {
        for (at, v) in edits {
            let n = b.len();
            b[at % n] = *v;
        }
        b
    };
    let recompress = |b: &[u8]| zstd::encode_all(b, 1).expect("zstd");
    match m {
        Mutation::Compressed(e) => edit(good.clone(), e),
        Mutation::Inner(e) => recompress(&edit(decompressed(good), e)),
        Mutation::InnerTruncated(at) => {
            let inner = decompressed(good);
            recompress(&inner[..at % inner.len()])
        }
        Mutation::Truncated(at) => good[..at % good.len()].to_vec(),
        Mutation::Random { bytes, compress: true } => recompress(bytes),
        Mutation::Random { bytes, compress: false } => bytes.clone(),
    }
}

#[test]
fn the_archive_reader_never_panics_and_explains_every_refusal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("case.{}", archive::EXTENSION));
    let limits = Limits { work_dir: dir.path().join("tmp"), max_expanded: 64 << 20 };
    let (_, original) = sample();
    let mut runner = TestRunner::new(RunConfig { cases: 256, failure_persistence: None, ..RunConfig::default() });
    let refused = std::cell::Cell::new(0u32);
    runner
        .run(&mutation(), |m| {
            std::fs::write(&file, apply(&m)).expect("write");
            match archive::verify_in(&file, None, None, &limits) {
                Ok(c) => prop_assert_eq!(&c.manifest, original, "a mutation that verifies changed nothing that counts"),
                Err(e) => {
                    let text = e.to_string();
                    prop_assert!(text.starts_with(&file.display().to_string()), "names the file: {}", text);
                    prop_assert!(
                        text.contains("is damaged")
                            || text.contains("is not a Bravely backup")
                            || text.contains("newer Bravely")
                            || text.contains("is refused"),
                        "says what is wrong: {}",
                        text
                    );
                    refused.set(refused.get() + 1);
                }
            }
            // The manifest reader of the backups list copes as well (no panic, no hang).
            let _ = archive::read_manifest(&file);
            Ok(())
        })
        .expect("no case fails");
    let refused = refused.get();
    assert!(refused > 200, "nearly every mutation is refused ({refused} of 256)");
    let leftovers = std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count();
    assert_eq!(leftovers, 0, "every expansion is cleaned up");
}

const SECRET: &str = "fuzz-signing-secret";

/// A form field: Slack's own names, or anything.
fn field() -> impl Strategy<Value = (String, String)> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "team_id",
            "channel_id",
            "user_id",
            "user_name",
            "command",
            "text",
            "response_url",
            "trigger_id",
        ])
        .prop_map(str::to_string),
        prop::collection::vec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect()),
    ];
    // Values built from the pieces /thanks parses, and arbitrary text.
    let piece = prop_oneof![
        Just("<@U1ANA|ana>".to_string()),
        Just("<@U2BEN>".to_string()),
        Just("<@B0BOT|bot>".to_string()),
        Just("<@".to_string()),
        Just(">".to_string()),
        Just("|".to_string()),
        Just(" for ".to_string()),
        Just("and ".to_string()),
        Just("AND ".to_string()),
        Just(", ".to_string()),
        Just("—".to_string()),
        Just("İ".to_string()),
        Just("leaderboard".to_string()),
        Just("me".to_string()),
        Just("U3CY".to_string()),
        prop::collection::vec(any::<char>(), 0..16).prop_map(|c| c.into_iter().collect()),
    ];
    let value = prop::collection::vec(piece, 0..8).prop_map(|p| p.concat());
    (key, value)
}

/// A request body: a well-formed form, or raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(field(), 0..10)
            .prop_map(|f| serde_urlencoded::to_string(&f).unwrap_or_default().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..600),
    ]
}

#[test]
fn slack_payloads_with_valid_signatures_never_cause_a_500() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let t = rt.block_on(crate::harness::TestApp::spawn_with(tempfile::tempdir().expect("tempdir"), |c| {
        c.slack.signing_secret = Some(bravely::config::Secret::new(SECRET));
    }));
    let http = reqwest::Client::new();
    let url = format!("http://{}/slack/commands", t.addr);
    let mut runner = TestRunner::new(RunConfig { cases: 300, failure_persistence: None, ..RunConfig::default() });
    runner
        .run(&body(), |body| {
            let ts = t.clock.now().timestamp().to_string();
            let sig = bravely::kudos::slack::signature(SECRET, &ts, &body);
            let (status, text) = rt.block_on(async {
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("X-Slack-Request-Timestamp", ts)
                    .header("X-Slack-Signature", sig)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("the server answers");
                (r.status().as_u16(), r.text().await.unwrap_or_default())
            });
            prop_assert_eq!(status, 200, "{}", text);
            let reply: serde_json::Value = serde_json::from_str(&text).expect("a JSON reply");
            prop_assert!(reply["text"].as_str().is_some_and(|s| !s.is_empty()), "{}", text);
            prop_assert!(
                !text.contains("something went wrong on our side") && !text.contains("could not be recorded"),
                "no internal error: {}",
                text
            );
            Ok(())
        })
        .expect("no case fails");
    rt.block_on(async {
        let (status, _) = t.client().text("/healthz").await;
        assert_eq!(status, 200, "still serving");
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_thanks_text_parser_never_panics(parts in prop::collection::vec(field(), 1..4)) {
        let text: String = parts.into_iter().map(|(_, v)| v).collect();
        if let Ok(bravely::kudos::slack::Request::Thank { people, reason }) = bravely::kudos::slack::parse(&text) {
            prop_assert!(!people.is_empty());
            prop_assert!(reason.chars().count() <= 500);
            prop_assert!(people.iter().all(|p| bravely::kudos::slack::valid_user_id(&p.id)));
        }
    }
}
