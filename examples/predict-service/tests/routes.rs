//! The HTTP surface, exercised in-process through `routes::handle` (no socket).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use serde_json::Value;

use predict_service::catalogue::Catalogue;
use predict_service::model::{Model, ModelKind};
use predict_service::routes::{handle, AppState, MAX_BODY};

fn small() -> Arc<AppState> {
    static STATE: OnceLock<Arc<AppState>> = OnceLock::new();
    Arc::clone(STATE.get_or_init(|| {
        let model = Model::load(ModelKind::Small).unwrap();
        Arc::new(AppState::new(model, Catalogue::bundled().unwrap(), 1, 32))
    }))
}

async fn call(
    state: Arc<AppState>,
    method: Method,
    path: &str,
    body: impl Into<Bytes>,
) -> (StatusCode, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(body.into()))
        .unwrap();
    let resp = handle(state, req).await;
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

async fn call_json(method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let (status, body) = call(small(), method, path, body.to_owned()).await;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {body:?}"));
    (status, value)
}

#[tokio::test]
async fn healthz() {
    let (status, body) = call(small(), Method::GET, "/healthz", "").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    let (status, _) = call(small(), Method::POST, "/healthz", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn predict_returns_a_label_with_scores() {
    let body = r#"{"text": "My parcel says delivered but it never arrived"}"#;
    let (status, v) = call_json(Method::POST, "/predict", body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["label"], "shipping");
    let confidence = v["confidence"].as_f64().unwrap();
    assert!(confidence > 0.5 && confidence <= 1.0, "{v}");
    let scores = v["scores"].as_object().unwrap();
    let labels: Vec<&str> = scores.keys().map(String::as_str).collect();
    assert_eq!(
        labels,
        ["account", "billing", "returns", "shipping", "technical"]
    );
    assert_eq!(v["model"], "small");
}

#[tokio::test]
async fn predict_rejects_bad_input_with_json_errors() {
    for (body, code) in [
        ("not json", "invalid_json"),
        ("{}", "invalid_json"),
        (r#"{"text": 42}"#, "invalid_json"),
        (r#"{"text": "   "}"#, "empty_text"),
    ] {
        let (status, v) = call_json(Method::POST, "/predict", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"], code, "{body}: {v}");
        assert!(v["message"].is_string());
    }
    let (status, _) = call_json(Method::GET, "/predict", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn predict_refuses_huge_bodies() {
    let text = "refund ".repeat(MAX_BODY / 7 + 10);
    let body = serde_json::to_vec(&serde_json::json!({ "text": text })).unwrap();
    // No Content-Length header here: the limit on the streamed body must catch it.
    let (status, _) = call(small(), Method::POST, "/predict", body.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A declared length over the limit is refused before reading.
    let req = Request::post("/predict")
        .header("content-length", body.len())
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    assert_eq!(
        handle(small(), req).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Just under the limit is fine.
    let ok = format!(r#"{{"text": "{}"}}"#, "a".repeat(MAX_BODY - 20));
    let (status, _) = call(small(), Method::POST, "/predict", ok).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn items() {
    let (status, v) = call_json(Method::GET, "/items/42", "").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["id"], 42);
    for field in ["sku", "name", "category", "currency"] {
        assert!(v[field].is_string(), "{field}: {v}");
    }
    assert!(v["price"].as_f64().unwrap() > 0.0 && v["stock"].is_u64());

    let (status, v) = call_json(Method::GET, "/items/999999", "").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    for bad in ["/items/abc", "/items/-1", "/items/", "/items/1.5"] {
        let (status, v) = call_json(Method::GET, bad, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    let (status, _) = call_json(Method::DELETE, "/items/1", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let (status, v) = call_json(Method::GET, "/nope", "").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn a_recent_prediction_can_be_looked_up_by_its_id() {
    let text = "I was charged twice for my order";
    let body = serde_json::json!({ "text": text }).to_string();
    let (status, v) = call_json(Method::POST, "/predict", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let id = v["id"].as_u64().expect("an id");
    let (status, kept) = call_json(Method::GET, &format!("/predictions/{id}"), "").await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(
        (kept["id"].as_u64(), &kept["text"]),
        (Some(id), &serde_json::json!(text))
    );
    assert_eq!(kept["label"], v["label"]);
    let (status, v) = call_json(Method::GET, "/predictions/999999999", "").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = call_json(Method::GET, "/predictions/x", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call_json(Method::POST, "/predictions/1", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_model_sheds_load_past_its_queue() {
    // One worker, no queue: while one prediction runs, the others must get 503 at once.
    let model = Model::load(ModelKind::Large).unwrap();
    let state = Arc::new(AppState::new(model, Catalogue::bundled().unwrap(), 1, 0));
    let body = r#"{"text": "I want to return the yoga mat, it arrived damaged"}"#;
    let calls: Vec<_> = (0..4)
        .map(|_| tokio::spawn(call(Arc::clone(&state), Method::POST, "/predict", body)))
        .collect();
    let mut statuses = Vec::new();
    for c in calls {
        let (status, body) = c.await.unwrap();
        if status == StatusCode::OK {
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                (v["label"].as_str(), v["model"].as_str()),
                (Some("returns"), Some("large"))
            );
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    assert!(
        statuses.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    // Slots are released: a later request is admitted again.
    let (status, _) = call(state, Method::POST, "/predict", body).await;
    assert_eq!(status, StatusCode::OK);
}
