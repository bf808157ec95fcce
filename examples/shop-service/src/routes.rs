//! The HTTP API: routes, the read endpoints, and the one error shape (`{"error", "message"}`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;

/// Products on one category page.
pub const PAGE_SIZE: i64 = 24;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/categories/{slug}", get(category_page))
        .route("/search", get(search))
        .route("/checkout", post(crate::checkout::checkout))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

/// An error answered as `{"error": code, "message": text}`.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.code, "message": self.message })),
        )
            .into_response()
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "database", e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            e.to_string(),
        )
    }
}

/// Ready once a pooled connection answers.
async fn healthz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state.pool.get().await?.query_one("SELECT 1", &[]).await?;
    Ok("ok")
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<i64>,
}

#[derive(Serialize)]
struct ProductSummary {
    id: i64,
    sku: String,
    name: String,
    price_cents: i32,
    rating: String,
    reviews: i32,
    in_stock: bool,
}

/// A category page: the category and its department (breadcrumb), its siblings (navigation), one page
/// of its products, most popular first, and the page count with the price range.
async fn category_page(
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = q.page.unwrap_or(1);
    if !(1..=1000).contains(&page) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_page",
            "page must be between 1 and 1000",
        ));
    }
    let client = state.pool.get().await?;
    let Some(cat) = client
        .query_opt(
            "SELECT c.id, c.name, p.slug, p.name FROM categories c LEFT JOIN categories p ON p.id = c.parent_id
             WHERE c.slug = $1",
            &[&slug],
        )
        .await?
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_category",
            format!("no category {slug:?}"),
        ));
    };
    let id: i64 = cat.get(0);
    let siblings = client
        .query(
            "SELECT slug, name FROM categories
             WHERE parent_id IS NOT DISTINCT FROM (SELECT parent_id FROM categories WHERE id = $1)
             ORDER BY name",
            &[&id],
        )
        .await?;
    let products = client
        .query(
            "SELECT id, sku, name, price_cents, rating::text, reviews, stock > 0 FROM products
             WHERE category_id = $1 ORDER BY popularity DESC, id LIMIT $2 OFFSET $3",
            &[&id, &PAGE_SIZE, &((page - 1) * PAGE_SIZE)],
        )
        .await?;
    let stats = client
        .query_one(
            "SELECT count(*), coalesce(min(price_cents), 0), coalesce(max(price_cents), 0)
             FROM products WHERE category_id = $1",
            &[&id],
        )
        .await?;
    let total: i64 = stats.get(0);
    let products: Vec<ProductSummary> = products
        .iter()
        .map(|r| ProductSummary {
            id: r.get(0),
            sku: r.get(1),
            name: r.get(2),
            price_cents: r.get(3),
            rating: r.get(4),
            reviews: r.get(5),
            in_stock: r.get(6),
        })
        .collect();
    Ok(Json(json!({
        "category": { "id": id, "slug": slug, "name": cat.get::<_, String>(1) },
        "department": cat.get::<_, Option<String>>(2).map(|s| json!({ "slug": s, "name": cat.get::<_, Option<String>>(3) })),
        "siblings": siblings.iter().map(|r| json!({ "slug": r.get::<_, String>(0), "name": r.get::<_, String>(1) })).collect::<Vec<_>>(),
        "page": page,
        "pages": (total + PAGE_SIZE - 1) / PAGE_SIZE,
        "total": total,
        "price_range": [stats.get::<_, i32>(1), stats.get::<_, i32>(2)],
        "products": products,
    })))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    limit: Option<i64>,
}

/// Full-text search over names and descriptions (the GIN index on `products.search`), best match first.
async fn search(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let text = q.q.unwrap_or_default();
    if text.trim().is_empty() || text.len() > 200 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "q must be 1 to 200 characters",
        ));
    }
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT p.id, p.name, p.price_cents, c.slug, ts_rank(p.search, q) AS rank
             FROM products p JOIN categories c ON c.id = p.category_id,
                  websearch_to_tsquery('english', $1) q
             WHERE p.search @@ q
             ORDER BY rank DESC, p.popularity DESC, p.id LIMIT $2",
            &[&text, &limit],
        )
        .await?;
    Ok(Json(json!({
        "query": text,
        "results": rows.iter().map(|r| json!({
            "id": r.get::<_, i64>(0),
            "name": r.get::<_, String>(1),
            "price_cents": r.get::<_, i32>(2),
            "category": r.get::<_, String>(3),
        })).collect::<Vec<_>>(),
    })))
}
