//! The studio's HTTP API through `router(state)` and `tower::ServiceExt::oneshot`, over
//! a scripted generator: every status code the API answers, cancellation mid-run, the
//! order of progress events, the bounded queue, sessions and feedback.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use common::{send, send_with, wait_for, wait_state, Gate, Scripted};
use mmgen_serve::store::Store;
use mmgen_serve::{router, Config, Studio};
use serde_json::json;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mmgen-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn studio(name: &str, config: impl FnOnce(Config) -> Config, generator: Scripted) -> Router {
    let config = config(Config::new(temp(name)));
    let state = Studio::with_store(config, Store::in_memory().unwrap(), Arc::new(generator)).unwrap();
    router(state)
}

async fn submit(router: &Router, body: serde_json::Value) -> String {
    let answer = send(router, "POST", "/v1/jobs", Some(body)).await;
    assert_eq!(
        answer.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_job_runs_to_its_files_and_only_its_files_are_served() {
    let app = studio("files", |c| c, Scripted::quick(3));
    assert_eq!(send(&app, "GET", "/healthz", None).await.status, StatusCode::OK);
    let id = submit(&app, json!({"prompt": "two red circles on a grassy field", "seed": 7})).await;
    let view = wait_state(&app, &id, "completed").await;
    assert_eq!(view["progress"]["done"], 1);
    let names: Vec<&str> = view["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["image.png", "caption.txt", "meta.json"]);
    assert_eq!(view["request"]["seed"], 7);
    assert_eq!(view["request"]["sampler"], "ddim", "defaults are filled in");

    let png = send(&app, "GET", &format!("/v1/jobs/{id}/files/image.png"), None).await;
    assert_eq!(png.status, StatusCode::OK);
    assert_eq!(png.headers["content-type"], "image/png");
    assert_eq!(&png.body[1..4], b"PNG");
    // The database sits two folders up from the job's files.
    for name in ["..%2F..%2Fstudio.sqlite", "..", "missing.png", "%2Fetc%2Fpasswd"] {
        let answer = send(&app, "GET", &format!("/v1/jobs/{id}/files/{name}"), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{name}");
        assert!(answer.json()["error"]["message"].as_str().unwrap().contains("no file"));
    }
    for uri in ["/v1/jobs/nope", "/v1/jobs/nope/files/image.png", "/v1/nothing"] {
        let answer = send(&app, "GET", uri, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(answer.json()["error"]["message"].is_string(), "{uri}: a JSON error");
    }
    // An ended job cannot be cancelled.
    assert_eq!(
        send(&app, "DELETE", &format!("/v1/jobs/{id}"), None).await.status,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn every_bad_field_gets_a_400_that_names_it() {
    let app = studio(
        "fields",
        |c| Config {
            max_body_bytes: 4096,
            ..c
        },
        Scripted::quick(1),
    );
    for (body, field) in [
        (json!({"prompt": ""}), "prompt"),
        (json!({"prompt": "a", "steps": 0}), "steps"),
        (json!({"prompt": "a", "steps": -3}), "steps"),
        (json!({"prompt": "a", "guidance": 99}), "guidance"),
        (json!({"prompt": "a", "sampler": "plms"}), "sampler"),
        (
            json!({"prompt": "a", "modalities": ["image", "smell"]}),
            "modalities[1]",
        ),
        (json!({"prompt": "a", "frames": 0}), "frames"),
        (json!({"prompt": "a", "seconds": 1e9}), "seconds"),
        (json!({"prompt": "a", "style": "oil"}), "style"),
        (json!({"prompt": "a", "background": "moon"}), "background"),
        (json!({"prompt": "a", "seed": "one"}), "seed"),
        (json!({"prompt": "a", "stpes": 3}), "stpes"),
        (json!({"seed": 3}), "prompt"),
    ] {
        let answer = send(&app, "POST", "/v1/jobs", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            answer.error_field().as_deref(),
            Some(field),
            "{body}: {}",
            answer.json()
        );
    }
    let malformed = send_with(
        &app,
        "POST",
        "/v1/jobs",
        Some("{\"prompt\": ".into()),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    let untyped = send_with(&app, "POST", "/v1/jobs", Some("{\"prompt\": \"a\"}".into()), &[]).await;
    assert_eq!(untyped.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = send(&app, "POST", "/v1/jobs", Some(json!({"prompt": "a".repeat(5000)}))).await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    let long = send(&app, "POST", "/v1/jobs", Some(json!({"prompt": "a ".repeat(1500)}))).await;
    assert_eq!(
        long.status,
        StatusCode::BAD_REQUEST,
        "a prompt over the character limit"
    );
    assert_eq!(long.error_field().as_deref(), Some("prompt"));
    for (body, field) in [
        (json!({"prompt": "a", "n": 9}), "n"),
        (json!({"prompt": "a", "response_format": "jpeg"}), "response_format"),
    ] {
        let answer = send(&app, "POST", "/v1/images/generations", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.error_field().as_deref(), Some(field));
    }
}

#[tokio::test]
async fn a_token_guards_the_api_but_not_the_page_or_health() {
    let app = studio(
        "token",
        |c| Config {
            token: Some("s3cret".into()),
            ..c
        },
        Scripted::quick(1),
    );
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret2"),
        Some("s3cret"),
        Some("Bearer "),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        let answer = send_with(&app, "GET", "/v1/vocab", None, &headers).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    let answer = send_with(&app, "GET", "/v1/vocab", None, &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["styles"][1], "pixel_art");
    for open in ["/", "/app.js", "/style.css", "/healthz", "/openapi.json"] {
        assert_eq!(send(&app, "GET", open, None).await.status, StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn cancelling_stops_a_running_job_between_steps_and_a_queued_one_at_once() {
    let gate = Gate::closed();
    let app = studio(
        "cancel",
        |c| c,
        Scripted {
            steps: 10,
            gate: gate.clone(),
        },
    );
    let running = submit(&app, json!({"prompt": "a red star"})).await;
    let queued = submit(&app, json!({"prompt": "a blue star"})).await;
    gate.release(3);
    wait_for(&app, &running, |v| v["progress"]["done"] == 3).await;
    let answer = send(&app, "DELETE", &format!("/v1/jobs/{queued}"), None).await;
    assert_eq!(answer.status, StatusCode::OK, "a queued job ends at once");
    assert_eq!(answer.json()["state"], "cancelled");
    let answer = send(&app, "DELETE", &format!("/v1/jobs/{running}"), None).await;
    assert_eq!(
        answer.status,
        StatusCode::ACCEPTED,
        "a running job stops at its next step"
    );
    let view = wait_state(&app, &running, "cancelled").await;
    assert!(
        view["progress"]["done"].as_u64().unwrap() < 10,
        "it stopped mid-run: {view}"
    );
    assert!(view["files"].as_array().unwrap().is_empty());
    // The worker is free again: the next job runs to the end.
    gate.open();
    let next = submit(&app, json!({"prompt": "a green star"})).await;
    wait_state(&app, &next, "completed").await;
    assert_eq!(
        send(&app, "DELETE", "/v1/jobs/nope", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn failures_and_panics_fail_the_job_with_a_reason_and_the_worker_lives_on() {
    let app = studio("failures", |c| c, Scripted::quick(2));
    let failed = submit(&app, json!({"prompt": "please fail"})).await;
    let view = wait_state(&app, &failed, "failed").await;
    assert_eq!(view["error"], "asked to fail");
    let panicked = submit(&app, json!({"prompt": "please panic"})).await;
    let view = wait_state(&app, &panicked, "failed").await;
    assert!(view["error"].as_str().unwrap().contains("panicked"), "{view}");
    let fine = submit(&app, json!({"prompt": "a red star"})).await;
    wait_state(&app, &fine, "completed").await;
}

/// The events of one SSE body: (name, data).
fn events(body: &[u8]) -> Vec<(String, serde_json::Value)> {
    let text = String::from_utf8_lossy(body);
    text.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

#[tokio::test]
async fn progress_events_come_in_order_and_end_with_done() {
    let gate = Gate::closed();
    let app = studio(
        "events",
        |c| c,
        Scripted {
            steps: 6,
            gate: gate.clone(),
        },
    );
    let id = submit(&app, json!({"prompt": "a red star"})).await;
    wait_state(&app, &id, "running").await;
    // Subscribed while it runs (no step made yet), then every step is let through.
    let stream = {
        let app = app.clone();
        let id = id.clone();
        tokio::spawn(async move { send(&app, "GET", &format!("/v1/jobs/{id}/events"), None).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    gate.open();
    let answer = stream.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    let seen = events(&answer.body);
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"state"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    let steps: Vec<u64> = seen
        .iter()
        .filter(|(n, _)| n == "progress")
        .map(|(_, d)| d["done"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6], "one progress event per step, in order");
    assert_eq!(seen.last().unwrap().1["state"], "completed");
    // A finished job answers its end at once.
    let again = send(&app, "GET", &format!("/v1/jobs/{id}/events"), None).await;
    let seen = events(&again.body);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "done");
    assert_eq!(
        send(&app, "GET", "/v1/jobs/nope/events", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after_and_keeps_no_trace() {
    let gate = Gate::closed();
    let app = studio(
        "queue",
        |c| Config { queue_bound: 2, ..c },
        Scripted {
            steps: 1,
            gate: gate.clone(),
        },
    );
    let running = submit(&app, json!({"prompt": "one"})).await;
    wait_state(&app, &running, "running").await;
    let waiting = [
        submit(&app, json!({"prompt": "two"})).await,
        submit(&app, json!({"prompt": "three"})).await,
    ];
    let refused = send(&app, "POST", "/v1/jobs", Some(json!({"prompt": "four"}))).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    let images = send(&app, "POST", "/v1/images/generations", Some(json!({"prompt": "five"}))).await;
    assert_eq!(images.status, StatusCode::TOO_MANY_REQUESTS);
    gate.open();
    for id in waiting.iter().chain([&running]) {
        wait_state(&app, id, "completed").await;
    }
    // Room again.
    let later = submit(&app, json!({"prompt": "six"})).await;
    wait_state(&app, &later, "completed").await;
}

#[tokio::test]
async fn openai_images_come_as_base64_or_urls() {
    let app = studio("images", |c| c, Scripted::quick(1));
    let answer = send(
        &app,
        "POST",
        "/v1/images/generations",
        Some(json!({"prompt": "a red star", "n": 2, "seed": 5, "response_format": "b64_json"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let data = answer.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 2);
    use base64::Engine;
    let first = base64::engine::general_purpose::STANDARD
        .decode(data[0]["b64_json"].as_str().unwrap())
        .unwrap();
    let second = base64::engine::general_purpose::STANDARD
        .decode(data[1]["b64_json"].as_str().unwrap())
        .unwrap();
    let red = |png: &[u8]| image::load_from_memory(png).unwrap().to_rgb8().get_pixel(0, 0)[0];
    assert_eq!((red(&first), red(&second)), (5, 6), "seeds seed and seed + 1");
    let answer = send(
        &app,
        "POST",
        "/v1/images/generations",
        Some(json!({"prompt": "a red star"})),
    )
    .await;
    let url = answer.json()["data"][0]["url"].as_str().unwrap().to_string();
    let path = url.split_once("://").unwrap().1.split_once('/').unwrap().1;
    assert_eq!(
        send(&app, "GET", &format!("/{path}"), None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_session_keeps_its_turns_seed_and_pins() {
    let app = studio("sessions", |c| c, Scripted::quick(1));
    let created = send(
        &app,
        "POST",
        "/v1/sessions",
        Some(json!({"seed": 9, "style": "pixel_art"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let session = created.json()["id"].as_str().unwrap().to_string();
    let turn = |instruction: &str| json!({"instruction": instruction});
    let first = send(
        &app,
        "POST",
        &format!("/v1/sessions/{session}/turns"),
        Some(turn("two red circles")),
    )
    .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let first_job = first.json()["job"]["id"].as_str().unwrap().to_string();
    wait_state(&app, &first_job, "completed").await;
    let pinned = send(
        &app,
        "PATCH",
        &format!("/v1/sessions/{session}"),
        Some(json!({"background": "snow", "style": null})),
    )
    .await;
    assert_eq!(pinned.status, StatusCode::OK);
    assert_eq!(pinned.json()["background"], "snow");
    assert!(pinned.json()["style"].is_null(), "null unpins");
    let second = send(
        &app,
        "POST",
        &format!("/v1/sessions/{session}/turns"),
        Some(turn("make them blue")),
    )
    .await;
    let second_job = second.json()["job"]["id"].as_str().unwrap().to_string();
    let view = wait_state(&app, &second_job, "completed").await;
    assert_eq!(view["request"]["seed"], 9, "every turn has the session's seed");
    assert_eq!(view["request"]["background"], "snow");
    assert_eq!(view["turn"], 2);
    assert_eq!(
        view["request"]["prompt"], "two red circles",
        "an edit keeps the turn's prompt"
    );
    assert_eq!(view["request"]["edit"]["instruction"], "make them blue");
    let first_view = send(&app, "GET", &format!("/v1/jobs/{first_job}"), None).await.json();
    assert_eq!(
        view["request"]["edit"]["plan"], first_view["meta"]["scene_plan"],
        "and changes the plan the turn before drew"
    );
    let fresh = send(
        &app,
        "POST",
        &format!("/v1/sessions/{session}/turns"),
        Some(json!({"instruction": "a yellow star", "fresh": true})),
    )
    .await;
    let fresh_view = fresh.json()["job"].clone();
    assert_eq!(fresh_view["request"]["prompt"], "a yellow star");
    assert!(fresh_view["request"]["edit"].is_null(), "a fresh turn is a prompt");
    wait_state(&app, fresh_view["id"].as_str().unwrap(), "completed").await;
    let shown = send(&app, "GET", &format!("/v1/sessions/{session}"), None).await.json();
    let turns = shown["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 3);
    assert_eq!(turns[0]["instruction"], "two red circles");
    assert_eq!(turns[0]["job"]["request"]["style"], "pixel_art");
    for (method, uri, body, status, field) in [
        (
            "POST",
            "/v1/sessions".to_string(),
            json!({"style": "oil"}),
            StatusCode::BAD_REQUEST,
            Some("style"),
        ),
        (
            "PATCH",
            format!("/v1/sessions/{session}"),
            json!({"background": "moon"}),
            StatusCode::BAD_REQUEST,
            Some("background"),
        ),
        (
            "POST",
            format!("/v1/sessions/{session}/turns"),
            json!({"instruction": " "}),
            StatusCode::BAD_REQUEST,
            Some("instruction"),
        ),
        (
            "POST",
            format!("/v1/sessions/{session}/turns"),
            json!({"instruction": "x", "modalities": ["smell"]}),
            StatusCode::BAD_REQUEST,
            Some("modalities[0]"),
        ),
        (
            "POST",
            "/v1/sessions/nope/turns".to_string(),
            turn("x"),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            "GET",
            "/v1/sessions/nope".to_string(),
            json!({}),
            StatusCode::NOT_FOUND,
            None,
        ),
    ] {
        let body = (method != "GET").then_some(body);
        let answer = send(&app, method, &uri, body).await;
        assert_eq!(answer.status, status, "{method} {uri}");
        assert_eq!(answer.error_field().as_deref(), field, "{method} {uri}");
    }
}

#[tokio::test]
async fn feedback_is_stored_with_its_request_and_exported_as_json_lines() {
    let app = studio("feedback", |c| c, Scripted::quick(1));
    let id = submit(&app, json!({"prompt": "two red circles", "seed": 3})).await;
    wait_state(&app, &id, "completed").await;
    let uri = format!("/v1/jobs/{id}/feedback");
    let stored = send(&app, "POST", &uri, Some(json!({"thumbs": "up", "comment": "nice"}))).await;
    assert_eq!(stored.status, StatusCode::CREATED);
    assert_eq!(
        send(&app, "POST", &uri, Some(json!({"rating": 4}))).await.status,
        StatusCode::CREATED
    );
    for (body, field) in [
        (json!({"thumbs": "sideways"}), "thumbs"),
        (json!({"rating": 6}), "rating"),
        (json!({}), "thumbs"),
        (json!({"rating": 3, "comment": "x".repeat(3000)}), "comment"),
    ] {
        let answer = send(&app, "POST", &uri, Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.error_field().as_deref(), Some(field));
    }
    let missing = send(&app, "POST", "/v1/jobs/nope/feedback", Some(json!({"rating": 2}))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let export = send(&app, "GET", "/v1/feedback.jsonl", None).await;
    assert_eq!(export.status, StatusCode::OK);
    let lines: Vec<serde_json::Value> = String::from_utf8(export.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["thumbs"], "up");
    assert_eq!(lines[0]["request"]["prompt"], "two red circles");
    assert_eq!(lines[1]["rating"], 4);
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_once() {
    let app = studio("openapi", |c| c, Scripted::quick(1));
    let doc = send(&app, "GET", "/openapi.json", None).await.json();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/events",
        "/v1/jobs/{id}/files/{name}",
        "/v1/images/generations",
        "/v1/sessions/{id}/turns",
        "/v1/feedback.jsonl",
        "/healthz",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique: {ids:?}");
}

#[tokio::test]
async fn an_edit_waits_for_the_turn_it_changes() {
    let app = studio("edit-waits", |c| c, Scripted::quick(1));
    let created = send(&app, "POST", "/v1/sessions", Some(json!({}))).await;
    let session = created.json()["id"].as_str().unwrap().to_string();
    let uri = format!("/v1/sessions/{session}/turns");
    let first = send(&app, "POST", &uri, Some(json!({"instruction": "hold a red circle"}))).await;
    let first_job = first.json()["job"]["id"].as_str().unwrap().to_string();
    let early = send(&app, "POST", &uri, Some(json!({"instruction": "make it blue"}))).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{:?}", early.json());
    let message = early.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("turn 1") && message.contains("fresh"), "{message}");
    send(&app, "DELETE", &format!("/v1/jobs/{first_job}"), None).await;
    wait_state(&app, &first_job, "cancelled").await;
    let after_cancel = send(&app, "POST", &uri, Some(json!({"instruction": "make it blue"}))).await;
    assert_eq!(
        after_cancel.status,
        StatusCode::CONFLICT,
        "a cancelled turn has no picture to change"
    );
}
