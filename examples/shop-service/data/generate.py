#!/usr/bin/env python3
"""Generates the shop's seed data: a catalogue, customers and two years of orders.

Deterministic (fixed seed) and committed: rerun with `python3 data/generate.py` from the crate's
directory after changing it. It writes
- data/seed.sql: COPY blocks for data/schema.sql's tables, then ANALYZE (what the database is seeded with);
- data/scenarios.json: what the perf scenarios pick from (category slugs, search phrases, id ranges).

The catalogue is a general store of six departments and 30 leaf categories. Product names are composed
from each category's brands, product lines, nouns and variants; prices follow a log-normal around the
category's typical price; popularity is Zipf-like, and past orders favour popular products, so the
"most popular" sort of a category page is backed by the order history.
"""
import datetime
import json
import math
import os
import random

RNG = random.Random(20261201)
HERE = os.path.dirname(os.path.abspath(__file__))

# department -> leaf category -> (typical price in cents, nouns, attributes)
CATALOGUE = {
    "Outdoor": {
        "Tents": (24900, ["Tent", "Dome Tent", "Tunnel Tent", "Backpacking Tent", "Family Tent"],
                  ["1-Person", "2-Person", "3-Person", "4-Person", "6-Person"]),
        "Sleeping Bags": (12900, ["Sleeping Bag", "Mummy Bag", "Down Quilt", "Camp Blanket"],
                          ["-5°C", "0°C", "+5°C", "+10°C", "Summer"]),
        "Backpacks": (11900, ["Daypack", "Trekking Pack", "Hydration Pack", "Travel Pack"],
                      ["18 L", "25 L", "32 L", "45 L", "65 L"]),
        "Camp Kitchen": (3900, ["Stove", "Cook Set", "Spork", "Insulated Mug", "Water Filter"],
                         ["Titanium", "Aluminium", "Stainless", "Ultralight", "Two-Burner"]),
        "Headlamps": (4500, ["Headlamp", "Lantern", "Torch", "Bike-Mount Light"],
                      ["300 lm", "450 lm", "700 lm", "1000 lm", "Rechargeable"]),
    },
    "Kitchen": {
        "Cookware": (6900, ["Frying Pan", "Saucepan", "Dutch Oven", "Wok", "Stockpot"],
                     ["20 cm", "24 cm", "28 cm", "Cast Iron", "Non-Stick"]),
        "Knives": (5900, ["Chef's Knife", "Santoku", "Paring Knife", "Bread Knife", "Knife Block Set"],
                   ["Damascus", "German Steel", "Ceramic", "15 cm", "20 cm"]),
        "Coffee & Tea": (8900, ["Espresso Machine", "Pour-Over Kettle", "Burr Grinder", "French Press", "Tea Infuser"],
                         ["Matte Black", "Brushed Steel", "1 L", "Programmable", "Manual"]),
        "Bakeware": (2900, ["Loaf Tin", "Baking Sheet", "Springform Pan", "Muffin Tray", "Proving Basket"],
                     ["Carbon Steel", "Silicone", "Enamel", "23 cm", "26 cm"]),
        "Storage": (1900, ["Storage Jar", "Lunch Box", "Spice Rack", "Bread Bin", "Container Set"],
                    ["Glass", "Bamboo", "BPA-Free", "Set of 3", "Set of 6"]),
    },
    "Home Office": {
        "Desks": (29900, ["Standing Desk", "Writing Desk", "Corner Desk", "Desk Frame"],
                  ["120 cm", "140 cm", "160 cm", "Oak", "Walnut"]),
        "Chairs": (24900, ["Office Chair", "Task Chair", "Kneeling Chair", "Drafting Stool"],
                   ["Mesh", "Fabric", "Leather", "Ergonomic", "Compact"]),
        "Lamps": (5900, ["Desk Lamp", "Floor Lamp", "Monitor Light Bar", "Clamp Lamp"],
                  ["Dimmable", "Warm White", "Tunable", "USB-C", "Wireless Charging"]),
        "Stationery": (1200, ["Notebook", "Fountain Pen", "Planner", "Desk Organiser", "Sticky Notes"],
                       ["A5", "A4", "Dotted", "Ruled", "Refillable"]),
        "Cables & Hubs": (2900, ["USB-C Hub", "Docking Station", "HDMI Cable", "Charging Cable", "Cable Tray"],
                          ["1 m", "2 m", "7-in-1", "100 W", "Braided"]),
    },
    "Garden": {
        "Hand Tools": (2400, ["Trowel", "Pruning Shears", "Hand Fork", "Weeder", "Garden Knife"],
                       ["Stainless", "Ash Handle", "Ergonomic", "Bypass", "Anvil"]),
        "Planters": (3400, ["Planter", "Window Box", "Raised Bed", "Hanging Basket", "Plant Pot"],
                     ["Terracotta", "Cedar", "Recycled Plastic", "Large", "Small"]),
        "Watering": (3900, ["Hose", "Watering Can", "Sprinkler", "Drip Kit", "Hose Reel"],
                     ["15 m", "25 m", "5 L", "Oscillating", "Expandable"]),
        "Seeds": (350, ["Tomato Seeds", "Basil Seeds", "Wildflower Mix", "Lettuce Seeds", "Sunflower Seeds"],
                  ["Organic", "Heirloom", "Cherry", "Dwarf", "Mixed"]),
        "Outdoor Furniture": (18900, ["Bench", "Bistro Set", "Lounger", "Parasol", "Garden Table"],
                              ["Acacia", "Teak", "Steel", "Folding", "Weatherproof"]),
    },
    "Cycling": {
        "Helmets": (6900, ["Road Helmet", "MTB Helmet", "Commuter Helmet", "Kids' Helmet"],
                    ["S", "M", "L", "MIPS", "With Visor"]),
        "Bike Lights": (3900, ["Front Light", "Rear Light", "Light Set", "Dynamo Light"],
                        ["400 lm", "800 lm", "1200 lm", "USB-C", "Daytime Flash"]),
        "Locks": (4900, ["D-Lock", "Chain Lock", "Folding Lock", "Cable Lock"],
                  ["Sold Secure Gold", "Sold Secure Silver", "1.2 m", "Keyed", "Combination"]),
        "Tyres": (3900, ["Road Tyre", "Gravel Tyre", "MTB Tyre", "Inner Tube", "Tubeless Kit"],
                  ["700x25c", "700x32c", "700x40c", "29x2.3", "27.5x2.4"]),
        "Bike Tools": (2900, ["Multi-Tool", "Floor Pump", "Mini Pump", "Chain Checker", "Tyre Levers"],
                       ["15-in-1", "CO2", "Pro", "Travel", "Workshop"]),
    },
    "Audio": {
        "Headphones": (12900, ["Over-Ear Headphones", "On-Ear Headphones", "Studio Headphones", "Kids' Headphones"],
                       ["Wireless", "Noise-Cancelling", "Wired", "Foldable", "Open-Back"]),
        "Earbuds": (8900, ["True Wireless Earbuds", "Sport Earbuds", "In-Ear Monitors", "Sleep Earbuds"],
                    ["ANC", "Waterproof", "Bluetooth 5.3", "Wired", "Long Battery"]),
        "Speakers": (9900, ["Bluetooth Speaker", "Bookshelf Speakers", "Soundbar", "Smart Speaker"],
                     ["Portable", "Waterproof", "Stereo Pair", "Wi-Fi", "Compact"]),
        "Turntables": (24900, ["Turntable", "Phono Preamp", "Stylus", "Record Cleaner"],
                       ["Belt-Drive", "Direct-Drive", "USB", "Bluetooth", "Manual"]),
        "Audio Cables": (1400, ["RCA Cable", "Optical Cable", "Headphone Extension", "Speaker Wire"],
                         ["1 m", "2 m", "5 m", "Gold-Plated", "Braided"]),
    },
}

BRANDS = {
    "Outdoor": ["Northwind", "Ridgeline", "Alpenglow", "Trailcraft", "Cairn & Co", "Summit Forge"],
    "Kitchen": ["Copperleaf", "Hearthstone", "Mise", "Brightwell", "Oakmoor", "Salt & Ember"],
    "Home Office": ["Deskwise", "Lumen Lane", "Quietform", "Paperhaus", "Studio Nine", "Fairmount"],
    "Garden": ["Greenthumb", "Bramble", "Fernhill", "Rootstock", "Meadowgate", "Willow Row"],
    "Cycling": ["Velora", "Spokeworks", "Chainline", "Roadrunner", "Gearhead", "Cadence"],
    "Audio": ["Soundfield", "Aurelia", "Monolith Audio", "Tonearm", "Bassline", "Clearwave"],
}
LINES = ["Classic", "Pro", "Lite", "Explorer", "Essential", "Signature", "Voyager", "Urban", "Studio",
         "Heritage", "Flex", "Summit", "Nova", "Atlas", "Terra", "Zen"]
COLOURS = ["Black", "White", "Slate Grey", "Navy", "Olive", "Sand", "Forest Green", "Burgundy", "Charcoal",
           "Stone", "Copper", "Sky Blue"]
PHRASES = [
    "Built to last with a {warranty}-year warranty.",
    "Weighs just {weight} and packs down small.",
    "Rated {rating} stars by customers who use it every day.",
    "Designed in-house and tested for {hours} hours before release.",
    "Made with {material} for a finish that ages well.",
    "Ships in recyclable packaging.",
    "Easy to clean; most parts are dishwasher safe.",
    "Replacement parts available for at least {warranty} years.",
]
MATERIALS = ["recycled aluminium", "FSC-certified wood", "stainless steel", "recycled polyester", "natural rubber",
             "powder-coated steel", "organic cotton", "borosilicate glass"]

FIRST = ["Olivia", "Liam", "Amelia", "Noah", "Isla", "Oliver", "Ava", "Elijah", "Mia", "James", "Sofia", "Lucas",
         "Grace", "Mateo", "Freya", "Leo", "Chloe", "Arjun", "Hannah", "Yusuf", "Emma", "Kenji", "Zara", "Ravi",
         "Lena", "Tomás", "Aisha", "Finn", "Priya", "Jonas", "Maya", "Omar", "Nora", "Eli", "Ingrid", "Diego"]
LAST = ["Smith", "Jones", "Patel", "García", "Müller", "Nguyen", "Kowalski", "Okafor", "Rossi", "Dubois",
        "Andersson", "Kim", "Silva", "O'Brien", "Novak", "Haddad", "Tanaka", "Fischer", "Brown", "Martin",
        "Santos", "Ivanova", "Clarke", "Moreau", "Yilmaz", "Hughes", "Lindqvist", "Costa", "Murphy", "Sato"]
CITIES = ["London", "Manchester", "Leeds", "Bristol", "Glasgow", "Edinburgh", "Cardiff", "Belfast", "Dublin",
          "Birmingham", "Liverpool", "Newcastle", "Sheffield", "Nottingham", "Brighton", "Oxford", "Cambridge",
          "York", "Norwich", "Exeter"]

N_CUSTOMERS = 3000
N_ORDERS = 12000
START = datetime.datetime(2024, 12, 1, tzinfo=datetime.timezone.utc)
END = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def slugify(s):
    out = "".join(c.lower() if c.isalnum() else "-" for c in s.replace("&", "and").replace("'", ""))
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def copy_value(v):
    """A value in COPY's text format."""
    if v is None:
        return "\\N"
    s = str(v)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def copy_block(table, columns, rows):
    lines = [f"COPY {table} ({', '.join(columns)}) FROM stdin;"]
    lines += ["\t".join(copy_value(v) for v in row) for row in rows]
    lines.append("\\.")
    return "\n".join(lines) + "\n"


def main():
    categories = []  # (id, parent_id, slug, name)
    leaves = []  # (id, department, name, spec)
    next_id = 1
    for dept, leafs in CATALOGUE.items():
        dept_id = next_id
        categories.append((dept_id, None, slugify(dept), dept))
        next_id += 1
        for name, spec in leafs.items():
            categories.append((next_id, dept_id, slugify(name), name))
            leaves.append((next_id, dept, name, spec))
            next_id += 1

    products = []  # (id, category_id, sku, name, description, price_cents, stock, rating, reviews, popularity)
    pid = 1
    for cat_id, dept, cat_name, (typical, nouns, attrs) in leaves:
        seen = set()
        count = RNG.randint(140, 200)
        while len([p for p in products if p[1] == cat_id]) < count:
            brand = RNG.choice(BRANDS[dept])
            line = RNG.choice(LINES)
            noun = RNG.choice(nouns)
            attr = RNG.choice(attrs)
            colour = RNG.choice(COLOURS)
            name = f"{brand} {line} {attr} {noun}, {colour}"
            if name in seen:
                continue
            seen.add(name)
            price = max(99, int(round(typical * math.exp(RNG.gauss(0, 0.45)) / 100.0)) * 100 - 1)
            rating = round(min(5.0, max(2.5, RNG.gauss(4.2, 0.45))), 1)
            warranty = RNG.choice([1, 2, 3, 5, 10])
            phrases = RNG.sample(PHRASES, 3)
            desc = (f"The {line} {noun.lower()} from {brand}: {attr.lower()}, in {colour.lower()}. "
                    + " ".join(p.format(warranty=warranty, weight=f"{RNG.randint(80, 4000)} g", rating=rating,
                                        hours=RNG.choice([200, 500, 1000]), material=RNG.choice(MATERIALS))
                               for p in phrases))
            sku = f"{slugify(dept)[:3].upper()}-{cat_id:02d}{pid:05d}"
            stock = 0 if RNG.random() < 0.04 else RNG.randint(200, 900)
            reviews = int(RNG.paretovariate(1.2) * 3)
            products.append([pid, cat_id, sku, name, desc, price, stock, rating, reviews, 0])
            pid += 1

    # Zipf-like demand: a product's weight in past orders falls with its (random) rank.
    order_of_demand = list(range(len(products)))
    RNG.shuffle(order_of_demand)
    weights = [0.0] * len(products)
    for rank, idx in enumerate(order_of_demand):
        weights[idx] = 1.0 / (rank + 10) ** 0.9
    cumulative = []
    acc = 0.0
    for w in weights:
        acc += w
        cumulative.append(acc)

    customers = []  # (id, email, name, city, created_at)
    emails = set()
    for cid in range(1, N_CUSTOMERS + 1):
        first, last = RNG.choice(FIRST), RNG.choice(LAST)
        base = slugify(f"{first}.{last}").replace("-", ".")
        email = f"{base}{RNG.randint(1, 999)}@example.com"
        while email in emails:
            email = f"{base}{RNG.randint(1, 9999)}@example.com"
        emails.add(email)
        created = START - datetime.timedelta(days=RNG.randint(0, 900))
        customers.append((cid, email, f"{first} {last}", RNG.choice(CITIES), created.isoformat()))

    orders = []  # (id, customer_id, status, total_cents, created_at)
    lines = []  # (order_id, line_no, product_id, qty, unit_price_cents)
    span = (END - START).total_seconds()
    for oid in range(1, N_ORDERS + 1):
        # Returning customers: a few order often.
        cust = min(N_CUSTOMERS, int(RNG.paretovariate(0.9))) if RNG.random() < 0.3 else RNG.randint(1, N_CUSTOMERS)
        when = START + datetime.timedelta(seconds=span * (oid - 1 + RNG.random()) / N_ORDERS)
        n = min(8, 1 + int(RNG.expovariate(0.6)))
        chosen = set()
        total = 0
        line_no = 0
        for _ in range(n):
            x = RNG.random() * acc
            lo, hi = 0, len(cumulative) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if cumulative[mid] < x:
                    lo = mid + 1
                else:
                    hi = mid
            if lo in chosen:
                continue
            chosen.add(lo)
            p = products[lo]
            qty = 1 if RNG.random() < 0.8 else RNG.randint(2, 4)
            line_no += 1
            lines.append((oid, line_no, p[0], qty, p[5]))
            total += qty * p[5]
            p[9] += qty
        age_days = (END - when).days
        status = "delivered" if age_days > 10 else RNG.choice(["paid", "shipped", "delivered"])
        if RNG.random() < 0.03:
            status = "cancelled"
        orders.append((oid, cust, status, total, when.isoformat()))

    with open(os.path.join(HERE, "seed.sql"), "w", encoding="utf-8", newline="\n") as f:
        f.write("-- Generated by data/generate.py; do not edit by hand.\n")
        f.write("SET client_encoding = 'UTF8';\n")
        f.write(copy_block("categories", ["id", "parent_id", "slug", "name"], categories))
        f.write(copy_block("products", ["id", "category_id", "sku", "name", "description", "price_cents", "stock",
                                        "rating", "reviews", "popularity"], products))
        f.write(copy_block("customers", ["id", "email", "name", "city", "created_at"], customers))
        f.write(copy_block("orders", ["id", "customer_id", "status", "total_cents", "created_at"], orders))
        f.write(copy_block("order_lines", ["order_id", "line_no", "product_id", "qty", "unit_price_cents"], lines))
        f.write("DO $$ BEGIN\n")
        for table in ["categories", "products", "customers", "orders"]:
            f.write(f"  PERFORM setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}));\n")
        f.write("END $$;\n")
        # VACUUM also moves the rows COPY put in the GIN pending list into the index proper.
        f.write("VACUUM ANALYZE;\n")

    words = sorted({w for _, _, _, (_, nouns, _) in leaves for n in nouns for w in [n.lower()]})
    searches = words + [f"{b.lower()} {n.lower().split()[-1]}" for dept, leafs in CATALOGUE.items()
                        for b in BRANDS[dept][:2] for (_, nouns, _) in list(leafs.values())[:2] for n in nouns[:1]]
    in_stock = [p[0] for p in products if p[6] > 0]
    scenarios = {
        "leaf_categories": [slugify(name) for _, _, name, _ in leaves],
        "searches": searches,
        "customers": N_CUSTOMERS,
        "products_in_stock": in_stock,
    }
    with open(os.path.join(HERE, "scenarios.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(scenarios, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{len(categories)} categories, {len(products)} products, {len(customers)} customers, "
          f"{len(orders)} orders, {len(lines)} order lines")


if __name__ == "__main__":
    main()
