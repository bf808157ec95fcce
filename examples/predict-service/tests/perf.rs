//! Performance scenarios for `cargo perfgate`. Plain `cargo test` lists them as ignored.
//!
//! The SLO bounds are chosen so the default (small) model passes with a wide margin on a 2-core
//! CI runner, while the `--model large` build breaches `predict`'s p99 and its cost: see the README.

use std::sync::OnceLock;

use perfgate_runtime::{perf_test, Ctx, Error};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Message {
    text: String,
}

/// Realistic support messages of varied length, none of them in the training set.
fn messages() -> &'static [Message] {
    static MESSAGES: OnceLock<Vec<Message>> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        include_str!("data/requests.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("tests/data/requests.jsonl: bad line"))
            .collect()
    })
}

#[derive(Deserialize)]
struct Prediction {
    label: String,
    confidence: f32,
}

const QUEUES: [&str; 5] = ["account", "billing", "returns", "shipping", "technical"];

/// Routing a customer's message must stay interactive at 200 messages/s, and cheap: the cost pass
/// (valgrind) holds a prediction to 150k instructions and 150 allocations.
/// The request data is declared so a baseline is never compared across a change of it.
#[perf_test(
    rate = 200, duration = "5s", warmup = "1s",
    p99 < "50ms", errors < "1%",
    instructions < "150k", allocs < 150,
    data = ["tests/data/requests.jsonl"],
)]
async fn predict(ctx: Ctx) -> perfgate_runtime::Result {
    let messages = messages();
    let message = &messages[ctx.iteration() as usize % messages.len()];
    let resp = ctx
        .post("/predict")
        .json(&json!({ "text": message.text }))
        .send()
        .await?
        .expect_status(200)?;
    let prediction: Prediction = resp.json()?;
    if !QUEUES.contains(&prediction.label.as_str()) {
        return Err(Error::check(format!(
            "unknown queue {:?}",
            prediction.label
        )));
    }
    if !(0.0..=1.0).contains(&prediction.confidence) {
        return Err(Error::check(format!(
            "confidence {} out of [0, 1]",
            prediction.confidence
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Item {
    id: u64,
    price: f64,
}

/// Number of items in data/catalogue.jsonl (ids 1..=CATALOGUE_SIZE).
const CATALOGUE_SIZE: u64 = 400;

/// Catalogue lookups by 8 concurrent shoppers, with a miss now and then; a lookup costs at most
/// 25k instructions (each request is counted in a window of its own in the cost pass).
#[perf_test(
    users = 8, duration = "4s", warmup = "500ms",
    item.p99 < "25ms", p99 < "40ms", errors < "1%", item.instructions < "25k",
)]
async fn item_lookup(ctx: Ctx) -> perfgate_runtime::Result {
    let i = ctx.iteration();
    // A multiplicative hash spreads consecutive iterations over the catalogue, so the scenario
    // does not only ever touch a few hot entries.
    let id = i.wrapping_mul(2_654_435_761) % CATALOGUE_SIZE + 1;
    let resp = ctx
        .get(format!("/items/{id}"))
        .name("item")
        .send()
        .await?
        .expect_status(200)?;
    let item: Item = resp.json()?;
    if item.id != id || item.price <= 0.0 {
        return Err(Error::check(format!(
            "/items/{id} returned item {} at {}",
            item.id, item.price
        )));
    }
    // One iteration in ten also asks for an id that does not exist: a 404 must stay cheap too.
    if i % 10 == 0 {
        ctx.get(format!("/items/{}", CATALOGUE_SIZE + 1 + id))
            .name("item_missing")
            .send()
            .await?
            .expect_status(404)?;
    }
    Ok(())
}

/// The service under a steady 1,000 routing requests/s for half an hour: what only time shows
/// (memory that grows, descriptors that leak, latency that creeps up). Too long for a pull request,
/// so it runs only in the soak tier (`cargo perfgate --tier soak`), with explicit leak bounds.
#[perf_test(
    rate = 1000, tier = ["soak"], soak = ("30m", "30s"),
    p99 < "50ms", errors < "0.1%",
    rss_growth < "1MiB/h", fds_growth < 0, threads_growth < 0, p99_drift < "50%/h",
    data = ["tests/data/requests.jsonl"],
)]
async fn sustained_routing(ctx: Ctx) -> perfgate_runtime::Result {
    predict(ctx).await
}
