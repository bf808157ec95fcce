//! The connection pool and the queries every part of the service shares.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

pub fn pool(url: &str, size: usize) -> Result<Pool, String> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("DATABASE_URL is not a PostgreSQL URL ({e})"))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| format!("could not build the connection pool: {e}"))
}

/// `host:port/db` of a URL, without the credentials (for the log).
pub fn describe_target(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('?').next().unwrap_or(rest).to_string()
}

pub struct Counts {
    pub products: i64,
    pub orders: i64,
}

pub async fn counts(pool: &Pool) -> Result<Counts, String> {
    let client = pool
        .get()
        .await
        .map_err(|e| format!("could not connect to the database: {e}"))?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM orders)",
            &[],
        )
        .await
        .map_err(|e| format!("the database is not seeded (data/schema.sql, data/seed.sql): {e}"))?;
    Ok(Counts {
        products: row.get(0),
        orders: row.get(1),
    })
}
