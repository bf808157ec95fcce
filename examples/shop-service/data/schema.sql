-- The shop's schema. Loaded by the perfgate dependency's setup before data/seed.sql.
CREATE TABLE categories (
    id        bigserial PRIMARY KEY,
    parent_id bigint REFERENCES categories (id),
    slug      text NOT NULL UNIQUE,
    name      text NOT NULL
);

CREATE TABLE products (
    id          bigserial PRIMARY KEY,
    category_id bigint NOT NULL REFERENCES categories (id),
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    description text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents > 0),
    stock       integer NOT NULL CHECK (stock >= 0),
    rating      numeric(2, 1) NOT NULL,
    reviews     integer NOT NULL,
    -- Units sold: what "most popular first" sorts by.
    popularity  integer NOT NULL,
    search      tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', name), 'A') || setweight(to_tsvector('english', description), 'B')
    ) STORED
);
-- A category page: its products, most popular first.
CREATE INDEX products_category_popularity ON products (category_id, popularity DESC, id);
-- Search.
CREATE INDEX products_search ON products USING gin (search);

CREATE TABLE customers (
    id         bigserial PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    name       text NOT NULL,
    city       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    status      text NOT NULL CHECK (status IN ('paid', 'shipped', 'delivered', 'cancelled')),
    total_cents bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer ON orders (customer_id, created_at DESC);

CREATE TABLE order_lines (
    order_id         bigint NOT NULL REFERENCES orders (id),
    line_no          integer NOT NULL,
    product_id       bigint NOT NULL REFERENCES products (id),
    qty              integer NOT NULL CHECK (qty > 0),
    unit_price_cents integer NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_product ON order_lines (product_id);
