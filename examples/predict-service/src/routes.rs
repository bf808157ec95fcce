//! HTTP routing. [`handle`] is generic over the request body so tests can call it in-process with
//! a `Full<Bytes>` while the server passes hyper's `Incoming`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::catalogue::Catalogue;
use crate::model::{Model, Prediction};
use crate::recent::{RecentPredictions, DEFAULT_KEEP};

/// Largest accepted `/predict` body. Support messages are a few hundred bytes; anything near this
/// is a client bug or abuse, and refusing it bounds per-request memory and model time.
pub const MAX_BODY: usize = 64 * 1024;

pub struct AppState {
    pub model: Arc<Model>,
    pub catalogue: Catalogue,
    /// Bounds how many heavy predictions run at once, like replicas of a model on an accelerator.
    /// Excess requests queue here instead of taking every core from the rest of the service (and
    /// from a load generator sharing the machine).
    inference: Semaphore,
    /// Heavy predictions admitted (running or queued) and the cap on them. Past the cap the
    /// service sheds load with 503 rather than letting latency grow without bound, as inference
    /// servers do with a maximum queue size.
    admitted: AtomicUsize,
    max_admitted: usize,
    /// The last predictions, for `GET /predictions/{id}`.
    pub recent: RecentPredictions,
}

impl AppState {
    /// `workers`: heavy predictions that may run at once; `queue`: how many more may wait.
    pub fn new(model: Model, catalogue: Catalogue, workers: usize, queue: usize) -> AppState {
        let workers = workers.max(1);
        AppState {
            model: Arc::new(model),
            catalogue,
            inference: Semaphore::new(workers),
            admitted: AtomicUsize::new(0),
            max_admitted: workers + queue,
            recent: RecentPredictions::new(DEFAULT_KEEP),
        }
    }

    /// Replaces the store of recent predictions (`PREDICT_LEAK=1`: one that never evicts).
    pub fn with_recent(mut self, recent: RecentPredictions) -> AppState {
        self.recent = recent;
        self
    }
}

/// Releases an admission slot when the request finishes, however it finishes.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub async fn handle<B>(state: Arc<AppState>, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok"),
        (_, "/healthz") => method_not_allowed("GET"),
        (&Method::POST, "/predict") => predict(state, req).await,
        (_, "/predict") => method_not_allowed("POST"),
        (&Method::GET, p) if p.starts_with("/items/") => item(&state, &p["/items/".len()..]),
        (_, p) if p.starts_with("/items/") => method_not_allowed("GET"),
        (&Method::GET, p) if p.starts_with("/predictions/") => {
            explain(&state, &p["/predictions/".len()..])
        }
        (_, p) if p.starts_with("/predictions/") => method_not_allowed("GET"),
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such route"),
    }
}

#[derive(Deserialize)]
struct PredictRequest {
    text: String,
}

async fn predict<B>(state: Arc<AppState>, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    // Refuse early on a declared length; `Limited` also catches chunked bodies that run over.
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return too_large(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "could not read the body",
            )
        }
    };
    let input: PredictRequest = match serde_json::from_slice(&body) {
        Ok(input) => input,
        Err(e) => {
            let msg = format!("expected JSON {{\"text\": \"...\"}}: {e}");
            return error(StatusCode::BAD_REQUEST, "invalid_json", &msg);
        }
    };
    if input.text.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "empty_text",
            "`text` must not be empty",
        );
    }
    let text = input.text;
    let (text, prediction) = if state.model.is_heavy() {
        // Milliseconds of CPU: run it on the blocking pool so /healthz and the catalogue stay
        // responsive while the model works. The semaphore is never closed.
        if state.admitted.fetch_add(1, Ordering::AcqRel) >= state.max_admitted {
            state.admitted.fetch_sub(1, Ordering::AcqRel);
            let mut resp = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the model's queue is full; retry later",
            );
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            return resp;
        }
        let _admission = Admission(&state.admitted);
        let _permit = state.inference.acquire().await.expect("semaphore open");
        let model = Arc::clone(&state.model);
        let predicted = tokio::task::spawn_blocking(move || {
            let p = model.predict(&text);
            (text, p)
        });
        match predicted.await {
            Ok(done) => done,
            Err(_) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "model failed",
                )
            }
        }
    } else {
        let p = state.model.predict(&text);
        (text, p)
    };
    // The response is written first; then the message and the prediction move into the store,
    // which costs no copy.
    let id = state.recent.next_id();
    let resp = json_response(
        StatusCode::OK,
        &Predicted {
            id,
            prediction: &prediction,
        },
    );
    state.recent.insert(id, text, prediction);
    resp
}

/// `POST /predict`'s answer: the prediction and the id to look it up by.
#[derive(serde::Serialize)]
struct Predicted<'a> {
    id: u64,
    #[serde(flatten)]
    prediction: &'a Prediction,
}

fn explain(state: &AppState, id: &str) -> Response<Full<Bytes>> {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_id",
            "prediction id must be a non-negative integer",
        );
    };
    match state.recent.get_json(id) {
        Some(body) => {
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no recent prediction {id} (only the last {DEFAULT_KEEP} are kept)"),
        ),
    }
}

fn item(state: &AppState, id: &str) -> Response<Full<Bytes>> {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_id",
            "item id must be a non-negative integer",
        );
    };
    match state.catalogue.get(id) {
        Some(item) => json_response(StatusCode::OK, item),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no item with id {id}"),
        ),
    }
}

fn too_large() -> Response<Full<Bytes>> {
    let msg = format!("body larger than {MAX_BODY} bytes");
    error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &msg)
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed",
    );
    resp.headers_mut()
        .insert("allow", HeaderValue::from_static(allow));
    resp
}

/// Every error is JSON of one shape, so clients can always parse it.
fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": code, "message": message }))
}

fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    // Serialising our own plain structs cannot fail.
    let body = serde_json::to_vec(value).expect("response serialises");
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A scenario can live next to the code it measures, not only in `tests/`.
#[cfg(test)]
mod perf {
    use perfgate_runtime::{perf_test, Ctx};

    /// The readiness probe must answer instantly even while the service is busy.
    #[perf_test(rate = 100, duration = "3s", p99 < "50ms", errors < "0.1%")]
    async fn healthz(ctx: Ctx) -> perfgate_runtime::Result {
        let resp = ctx.get("/healthz").send().await?.expect_status(200)?;
        if resp.text()? != "ok" {
            return Err(perfgate_runtime::Error::check("/healthz body is not `ok`"));
        }
        Ok(())
    }
}
