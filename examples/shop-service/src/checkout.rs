//! `POST /checkout`: an order placed in one transaction (stock locked, order and lines written, stock
//! decremented), in one of two ways of querying an order's lines.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use deadpool_postgres::Transaction;
use serde::Deserialize;
use serde_json::json;

use crate::routes::ApiError;
use crate::AppState;

/// How checkout reads and writes an order's lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineQueries {
    /// One query locks all the lines' products (`= ANY($1)`), one writes the order, its lines and the
    /// stock (`unnest`): four round trips with the transaction's, whatever the order's size.
    Batched,
    /// A read, an insert and an update per line, in a loop: the N+1 pattern, 3 round trips per line.
    PerLine,
}

/// The regression switch in code: a branch that sets this to `LineQueries::PerLine` introduces the
/// N+1 loop (`--line-queries` and `$SHOP_LINE_QUERIES` override it at run time).
pub const DEFAULT_LINE_QUERIES: LineQueries = LineQueries::Batched;

impl LineQueries {
    pub fn parse(s: &str) -> Option<LineQueries> {
        match s {
            "batched" => Some(LineQueries::Batched),
            "per-line" => Some(LineQueries::PerLine),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LineQueries::Batched => "batched",
            LineQueries::PerLine => "per-line",
        }
    }
}

#[derive(Deserialize)]
pub struct Cart {
    customer_id: i64,
    lines: Vec<CartLine>,
}

#[derive(Deserialize)]
struct CartLine {
    product_id: i64,
    qty: i32,
}

/// The most lines one order may have.
const MAX_LINES: usize = 50;

pub async fn checkout(
    State(state): State<Arc<AppState>>,
    Json(cart): Json<Cart>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let lines = normalise(&cart.lines)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (order_id, total) = match state.line_queries {
        LineQueries::Batched => batched(&tx, cart.customer_id, &lines).await?,
        LineQueries::PerLine => per_line(&tx, cart.customer_id, &lines).await?,
    };
    tx.commit().await?;
    state.checkouts.fetch_add(1, Ordering::Relaxed);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "order_id": order_id, "total_cents": total, "lines": lines.len() })),
    ))
}

/// The cart's lines merged by product and sorted by id, so concurrent checkouts lock rows in one order.
fn normalise(lines: &[CartLine]) -> Result<Vec<(i64, i32)>, ApiError> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_cart",
            format!("an order has 1 to {MAX_LINES} lines"),
        ));
    }
    let mut merged = BTreeMap::new();
    for l in lines {
        if !(1..=99).contains(&l.qty) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_cart",
                "each line's qty is 1 to 99",
            ));
        }
        *merged.entry(l.product_id).or_insert(0) += l.qty;
    }
    Ok(merged.into_iter().collect())
}

fn unknown_customer(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_customer",
        format!("no customer {id}"),
    )
}

fn unknown_product(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_product",
        format!("no product {id}"),
    )
}

fn out_of_stock(id: i64, stock: i32) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "out_of_stock",
        format!("product {id} has {stock} in stock"),
    )
}

async fn batched(
    tx: &Transaction<'_>,
    customer: i64,
    lines: &[(i64, i32)],
) -> Result<(i64, i64), ApiError> {
    let ids: Vec<i64> = lines.iter().map(|l| l.0).collect();
    let qtys: Vec<i32> = lines.iter().map(|l| l.1).collect();
    let lock = tx
        .prepare_cached(
            "SELECT id, price_cents, stock FROM products WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .await?;
    let rows = tx.query(&lock, &[&ids]).await?;
    let mut prices = Vec::with_capacity(lines.len());
    let mut total = 0i64;
    for &(id, qty) in lines {
        let Some(row) = rows.iter().find(|r| r.get::<_, i64>(0) == id) else {
            return Err(unknown_product(id));
        };
        let (price, stock): (i32, i32) = (row.get(1), row.get(2));
        if stock < qty {
            return Err(out_of_stock(id, stock));
        }
        prices.push(price);
        total += i64::from(price) * i64::from(qty);
    }
    // The order, its lines and the stock in one statement: its parts see one snapshot, and the
    // customer's existence is the order's row.
    let write = tx
        .prepare_cached(
            "WITH o AS (
                 INSERT INTO orders (customer_id, status, total_cents)
                 SELECT id, 'paid', $2 FROM customers WHERE id = $1 RETURNING id
             ), l AS (
                 INSERT INTO order_lines (order_id, line_no, product_id, qty, unit_price_cents)
                 SELECT o.id, l.n::int, l.id, l.qty, l.price
                 FROM o, unnest($3::bigint[], $4::int[], $5::int[]) WITH ORDINALITY AS l(id, qty, price, n)
             ), s AS (
                 UPDATE products p SET stock = p.stock - l.qty, popularity = p.popularity + l.qty
                 FROM unnest($3::bigint[], $4::int[]) AS l(id, qty)
                 WHERE p.id = l.id AND EXISTS (SELECT 1 FROM o)
             )
             SELECT id FROM o",
        )
        .await?;
    let Some(row) = tx
        .query_opt(&write, &[&customer, &total, &ids, &qtys, &prices])
        .await?
    else {
        return Err(unknown_customer(customer));
    };
    let order_id: i64 = row.get(0);
    Ok((order_id, total))
}

async fn per_line(
    tx: &Transaction<'_>,
    customer: i64,
    lines: &[(i64, i32)],
) -> Result<(i64, i64), ApiError> {
    let known = tx
        .prepare_cached("SELECT 1 FROM customers WHERE id = $1")
        .await?;
    if tx.query_opt(&known, &[&customer]).await?.is_none() {
        return Err(unknown_customer(customer));
    }
    let order = tx
        .prepare_cached(
            "INSERT INTO orders (customer_id, status, total_cents) VALUES ($1, 'paid', 0) RETURNING id",
        )
        .await?;
    let order_id: i64 = tx.query_one(&order, &[&customer]).await?.get(0);
    let lock = tx
        .prepare_cached("SELECT price_cents, stock FROM products WHERE id = $1 FOR UPDATE")
        .await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO order_lines (order_id, line_no, product_id, qty, unit_price_cents)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    let take = tx
        .prepare_cached(
            "UPDATE products SET stock = stock - $2, popularity = popularity + $2 WHERE id = $1",
        )
        .await?;
    let mut total = 0i64;
    for (n, &(id, qty)) in lines.iter().enumerate() {
        let Some(row) = tx.query_opt(&lock, &[&id]).await? else {
            return Err(unknown_product(id));
        };
        let (price, stock): (i32, i32) = (row.get(0), row.get(1));
        if stock < qty {
            return Err(out_of_stock(id, stock));
        }
        let line_no = n as i32 + 1;
        tx.execute(&insert, &[&order_id, &line_no, &id, &qty, &price])
            .await?;
        tx.execute(&take, &[&id, &qty]).await?;
        total += i64::from(price) * i64::from(qty);
    }
    let set_total = tx
        .prepare_cached("UPDATE orders SET total_cents = $2 WHERE id = $1")
        .await?;
    tx.execute(&set_total, &[&order_id, &total]).await?;
    Ok((order_id, total))
}
