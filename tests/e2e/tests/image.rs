#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The runner image, built by `scripts/image` and run with `runc` as the
//! rendered CronJobs' pods would run it: one dispatch and one reap tick
//! inside the image do what the same binary does outside it, `check` inside
//! prints what it found, the build is reproducible, the image holds only the
//! runner, and `runner/Dockerfile` lays out the same image.
//!
//! These tests need root, runc, umoci, skopeo, musl-tools and the musl Rust
//! target; without them they fail and say what to install.

use std::collections::BTreeMap;
use std::path::Path;

use beads_contract::defaults::RUNNER_IMAGE_PATH;
use beads_e2e::cluster::Cluster;
use beads_e2e::deployed;
use beads_e2e::image;
use beads_e2e::local_pod::{self, Local};
use beads_e2e::runc::{self, Runtime};
use beads_testkit::{BeadsDb, Seed, StubBeadBoard};
use serde_json::{Value, json};

/// The README's promise: under 5 MB to pull, under 10 MB on disk.
const MAX_COMPRESSED: u64 = 5_000_000;
const MAX_UNPACKED: u64 = 10_000_000;

async fn seeded_db() -> BeadsDb {
    let db = BeadsDb::create().await;
    db.set_project_id("p-123").await;
    db.seed(&[
        Seed::agent("e2e-1").priority(1),
        Seed::agent("e2e-2").priority(2),
        Seed::agent("e2e-stale")
            .status("in_progress")
            .updated_minutes_ago(45),
    ])
    .await;
    db
}

/// What a tick leaves behind, without the times: each bead's status,
/// assignee and notes, and its events (type, actor, old and new value),
/// every RFC 3339 timestamp in them replaced by `<time>`.
type Outcome = Vec<(String, String, Option<String>, String, Vec<[String; 4]>)>;

async fn outcome(db: &BeadsDb) -> Outcome {
    let mut out = Vec::new();
    for b in db.beads().await {
        let events = db
            .events(&b.id)
            .await
            .into_iter()
            .map(|e| {
                [
                    e.event_type,
                    e.actor,
                    untimed(&e.old_value.unwrap_or_default()),
                    untimed(&e.new_value.unwrap_or_default()),
                ]
            })
            .collect();
        out.push((b.id, b.status, b.assignee, untimed(&b.notes), events));
    }
    out
}

/// `s` with each `YYYY-MM-DDTHH:MM:SSZ` replaced by `<time>` and each claim
/// id (`#` and 12 hex digits, random per runner) by `#<claim>`: two runs a
/// second apart write different times and claim ids and the same
/// everything else.
fn untimed(s: &str) -> String {
    const SHAPES: &[(&[u8], &str)] = &[
        (b"dddd-dd-ddTdd:dd:ddZ", "<time>"),
        (b"#hhhhhhhhhhhh", "#<claim>"),
    ];
    let bytes = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    'next: while i < bytes.len() {
        for (shape, mask) in SHAPES {
            let fits = bytes.len() - i >= shape.len()
                && shape.iter().zip(&bytes[i..]).all(|(shape, b)| match shape {
                    b'd' => b.is_ascii_digit(),
                    b'h' => b.is_ascii_hexdigit(),
                    other => other == b,
                });
            if fits {
                out.push_str(mask);
                i += shape.len();
                continue 'next;
            }
        }
        let ch = s[i..].chars().next().unwrap_or_default();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_inside_the_image_do_what_they_do_outside_it() {
    let built_dir = tempfile::tempdir().unwrap();
    let built = image::build(built_dir.path()).unwrap();
    let runtime = Runtime::new(&built.layout).unwrap();

    let inside_db = seeded_db().await;
    let outside_db = seeded_db().await;
    let inside_board = StubBeadBoard::start().await;
    let outside_board = StubBeadBoard::start().await;
    let cluster = Cluster::real().unwrap();
    let deployed = deployed::apply(&cluster, &inside_db, &inside_board.url()).unwrap();
    let config_maps = &deployed.config_maps;
    let secrets = BTreeMap::new();

    // Outside: the image's own binary as a local process, against a twin
    // database and board (its metadata.json and BeadBoard URL swapped in).
    let scratch = tempfile::tempdir().unwrap();
    let outside_metadata = scratch.path().join("outside-metadata.json");
    std::fs::write(&outside_metadata, outside_db.metadata_json(Some("p-123"))).unwrap();
    let outside_env = [
        (
            beads_contract::env::METADATA,
            outside_metadata.display().to_string(),
        ),
        (beads_contract::env::BEADBOARD_URL, outside_board.url()),
    ];
    let image_binary = runtime
        .rootfs()
        .join(RUNNER_IMAGE_PATH.trim_start_matches('/'));
    let local = Local {
        binary: &image_binary,
        config_maps,
        secrets: &secrets,
        scratch: scratch.path(),
        extra_args: &[],
        extra_env: &outside_env,
    };

    let image_config = image::config(&built.layout).unwrap()["config"].clone();
    let image_user = image_config["User"].clone();
    for job in ["beads-reaper", "beads-dispatcher"] {
        let cj = cluster
            .get_json(&deployed.ns, "cronjob", job)
            .unwrap()
            .unwrap();
        let pod = local_pod::cron_job_pod(&cj);
        // The pod runs as the image's user, so files the image owns fit it.
        assert_eq!(
            image_user,
            format!(
                "{}:{}",
                pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
            ),
            "{job}"
        );
        let container = local_pod::resolve(pod, config_maps, &secrets).unwrap();
        // What the runtime is told, from the rendered securityContext.
        let spec =
            runc::runtime_spec(pod, &container, &image_config, runtime.rootfs(), &[]).unwrap();
        assert_eq!(spec["root"]["readonly"], true, "{job}");
        assert_eq!(spec["process"]["user"]["uid"], 65532, "{job}");
        assert_eq!(spec["process"]["noNewPrivileges"], true, "{job}");
        for set in [
            "bounding",
            "effective",
            "permitted",
            "inheritable",
            "ambient",
        ] {
            assert_eq!(spec["process"]["capabilities"][set], json!([]), "{job}");
        }
        let inside = runtime.run(pod, &container).unwrap();
        assert_eq!(inside.code, Some(0), "{job} in the image: {inside:?}");
        // The provider asked for JSON logs; the runner in the image writes them.
        assert!(
            !inside.stderr.is_empty() && inside.stderr.lines().all(|l| l.starts_with('{')),
            "{job}: {}",
            inside.stderr
        );
        let outside = local_pod::run(pod, &local).unwrap();
        assert_eq!(outside.code, Some(0), "{job} outside: {outside:?}");
    }

    // Inside: what the rendered CronJobs are for.
    assert_eq!(inside_board.dispatched_ids(), ["e2e-1", "e2e-2"]);
    let b = inside_db.bead("e2e-1").await;
    assert_eq!(b.status, "in_progress");
    assert_eq!(b.note_lines().last(), Some(&"dispatched: job=job-1"));
    assert_eq!(inside_db.bead("e2e-stale").await.status, "blocked");
    assert!(
        inside_db
            .events("e2e-stale")
            .await
            .iter()
            .all(|e| e.actor == "beads-reaper")
    );
    assert!(
        inside_db
            .events("e2e-1")
            .await
            .iter()
            .all(|e| e.actor == "beads-dispatcher")
    );
    // And outside, the same binary did the same, row for row.
    assert_eq!(
        outside_board.dispatched_ids(),
        inside_board.dispatched_ids()
    );
    assert_eq!(outcome(&outside_db).await, outcome(&inside_db).await);

    // `beads-runner check` inside the image: the dispatcher's pod with its
    // args replaced, as `kubectl debug --copy-to` or a one-off Job would.
    let cj = cluster
        .get_json(&deployed.ns, "cronjob", "beads-dispatcher")
        .unwrap()
        .unwrap();
    let mut pod = local_pod::cron_job_pod(&cj).clone();
    pod["containers"][0]["args"] = json!([beads_contract::defaults::subcommand::CHECK]);
    let container = local_pod::resolve(&pod, config_maps, &secrets).unwrap();
    let check = runtime.run(&pod, &container).unwrap();
    assert_eq!(check.code, Some(0), "check: {check:?}");
    let lines: Vec<&str> = check.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("database:") && l.contains(&inside_db.name)),
        "{}",
        check.stdout
    );
    assert!(lines.contains(&"project id:   p-123"), "{}", check.stdout);
    assert!(
        lines.contains(&"assignee:     agent: 0 open, 2 in progress"),
        "{}",
        check.stdout
    );
}

#[test]
fn the_image_is_reproducible_and_holds_only_the_runner() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = image::build(a.path()).unwrap();
    let second = image::build(b.path()).unwrap();
    assert_eq!(first.digest, second.digest);
    assert_eq!(
        std::fs::read(first.layout.join("index.json")).unwrap(),
        std::fs::read(second.layout.join("index.json")).unwrap()
    );
    let (entry, manifest) = image::manifest(&first.layout).unwrap();
    assert_eq!(entry["digest"], first.digest.as_str());

    let config = image::config(&first.layout).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"], json!([RUNNER_IMAGE_PATH]));
    assert_eq!(config["created"], config["history"][0]["created"]);

    // Exactly these files: the runner, CA certificates, passwd and group.
    let bundle = tempfile::tempdir().unwrap();
    let rootfs = image::unpack(&first.layout, &bundle.path().join("b")).unwrap();
    let mut expected: Vec<String> = Path::new(RUNNER_IMAGE_PATH)
        .ancestors()
        .skip(1)
        .filter(|p| p != &Path::new("/"))
        .map(|p| format!("{}/", p.display().to_string().trim_start_matches('/')))
        .collect();
    expected.push(RUNNER_IMAGE_PATH.trim_start_matches('/').to_string());
    expected.extend(
        [
            "etc/",
            "etc/group",
            "etc/passwd",
            "etc/ssl/",
            "etc/ssl/certs/",
            "etc/ssl/certs/ca-certificates.crt",
        ]
        .map(String::from),
    );
    expected.sort();
    assert_eq!(image::tree(&rootfs).unwrap(), expected);
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert_eq!(
        passwd,
        "nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n"
    );
    let certs = std::fs::read_to_string(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(certs.matches("BEGIN CERTIFICATE").count() > 50);

    // The README's size promise.
    let compressed: u64 = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    assert!(compressed < MAX_COMPRESSED, "{compressed} bytes compressed");
    let unpacked: u64 = image::tree(&rootfs)
        .unwrap()
        .iter()
        .filter(|p| !p.ends_with('/'))
        .map(|p| std::fs::metadata(rootfs.join(p)).unwrap().len())
        .sum();
    assert!(unpacked < MAX_UNPACKED, "{unpacked} bytes unpacked");

    // The docker archive: `docker load` reads manifest.json's RepoTags,
    // Config and Layers; the config is the OCI image's. (skopeo writes the
    // name fully qualified; Docker shows it as beads-runner:TAG.)
    let out = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(&first.archive)
        .arg("manifest.json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let docker: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tag = image::tag(&first.layout).unwrap();
    // Tagged with the runner's version (the workspace's, as this crate's).
    assert_eq!(tag, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        docker[0]["RepoTags"],
        json!([format!("docker.io/library/beads-runner:{tag}")])
    );
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let docker_config = docker[0]["Config"].as_str().unwrap();
    assert!(
        docker_config.contains(config_digest.trim_start_matches("sha256:")),
        "{docker_config} vs {config_digest}"
    );
    assert_eq!(docker[0]["Layers"].as_array().unwrap().len(), 1);
}

#[test]
fn the_dockerfile_lays_out_what_scripts_image_does() {
    let dir = tempfile::tempdir().unwrap();
    let built = image::build(dir.path()).unwrap();
    let config = image::config(&built.layout).unwrap();
    let dockerfile =
        std::fs::read_to_string(beads_e2e::repo_root().join("runner/Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    let last = *stages.last().unwrap();
    let (build, image) = instructions.split_at(last);
    // The build stage lays the files out with the script this test built with.
    assert!(
        build.contains(&"RUN scripts/image --rootfs /out"),
        "{dockerfile}"
    );
    // The image: those files on nothing, with scripts/image's config.
    let json = |v: &Value| serde_json::to_string(v).unwrap();
    assert_eq!(
        image,
        [
            "FROM scratch",
            "COPY --from=build /out/ /",
            &format!("USER {}", config["config"]["User"].as_str().unwrap()),
            &format!("ENTRYPOINT {}", json(&config["config"]["Entrypoint"])).replace(',', ", "),
            &format!("CMD {}", json(&config["config"]["Cmd"])).replace(',', ", "),
        ]
    );
}
