#!/usr/bin/env python3
"""Generates the example's data sets: labelled support messages and a product catalogue.

The messages are composed from per-queue templates, slot vocabularies and neutral filler so
that the classifier has to cope with varied phrasing, shared words ("order", "account",
"charge") and noise. Output is deterministic (fixed seeds) and committed; rerun with
`python3 data/generate.py` from the crate directory, then retrain the model.
"""
import json
import random

LABELS = ["billing", "shipping", "technical", "account", "returns"]

CATEGORIES = {
    "headphones": ["Wireless Headphones", "Noise-Cancelling Earbuds", "Studio Monitor Headphones", "Sport Earbuds"],
    "kitchen": ["Espresso Machine", "Stand Mixer", "Air Fryer", "Chef's Knife", "Cast Iron Skillet", "Electric Kettle"],
    "home": ["Robot Vacuum", "Smart Thermostat", "Air Purifier", "LED Desk Lamp", "Memory Foam Pillow"],
    "computing": ["Mechanical Keyboard", "Wireless Mouse", "27-inch Monitor", "USB-C Dock", "Portable SSD", "Webcam"],
    "outdoor": ["Hiking Backpack", "Camping Tent", "Insulated Water Bottle", "Trail Running Shoes", "Headlamp"],
    "fitness": ["Yoga Mat", "Adjustable Dumbbells", "Fitness Tracker", "Foam Roller", "Resistance Bands"],
    "phones": ["Phone Case", "Fast Charger", "Screen Protector", "Power Bank", "Car Mount"],
}
ADJECTIVES = ["Classic", "Pro", "Lite", "Max", "Mini", "Plus", "Eco", "Ultra", "Compact", "Deluxe"]
COLOURS = ["black", "white", "grey", "navy", "red", "green", "sand", "silver"]

PRODUCTS = [p.lower() for ps in CATEGORIES.values() for p in ps]

FILL = {
    "product": PRODUCTS,
    "order": ["order", "order #{num}", "my order", "order number {num}", "the order I placed {when}", "purchase"],
    "when": ["last week", "yesterday", "on Monday", "two weeks ago", "this morning", "on the 3rd", "a month ago", "over the weekend"],
    "num": None,  # filled with a random order-like number
    "amount": ["$19.99", "$45", "$120.50", "$89.00", "$7.49", "$250", "£32", "€64.90"],
    "carrier": ["UPS", "FedEx", "DHL", "USPS", "the courier", "Royal Mail", "the delivery driver"],
    "device": ["iPhone", "Android phone", "Chrome on Windows", "Safari", "my laptop", "the iPad app", "Firefox", "my Pixel"],
    "days": ["three days", "a week", "10 days", "two weeks", "5 business days", "over a month"],
    "error": ["error 500", "a blank white screen", "'something went wrong'", "a spinning wheel", "error code E42",
              "'session expired'", "a timeout", "an SSL warning"],
    "feature": ["the app", "the website", "checkout page", "the search", "the mobile app", "the product page",
                "the wishlist", "the order tracking page", "the cart", "notifications"],
    "reason": ["it's the wrong size", "it arrived damaged", "it doesn't work", "I changed my mind", "it's not as described",
               "it was a duplicate gift", "the colour is different from the photos", "it stopped working after a day",
               "it's too small", "the quality is poor"],
}

TEMPLATES = {
    "billing": [
        "I was charged twice for {order}. Please refund the duplicate payment.",
        "Why is there a charge of {amount} on my card? I didn't buy anything {when}.",
        "My invoice shows {amount} but the checkout said a lower price.",
        "Can I get a copy of the invoice for {order}? I need it for expenses.",
        "My credit card was declined but the money still left my account.",
        "The promo code didn't apply and I paid full price. Can you credit the difference?",
        "I cancelled my subscription but you still billed me {amount} {when}.",
        "How do I update the payment method on file? My card expired.",
        "I see a pending authorization of {amount} that hasn't dropped off after {days}.",
        "Was I charged sales tax correctly? The total looks wrong.",
        "Please stop the automatic renewal, I don't want to be billed again.",
        "Can I pay with PayPal or a gift card instead of my credit card?",
        "The refund you promised {when} still hasn't shown up on my bank statement.",
        "I got billed for express shipping but chose the free option.",
        "Do you offer payment in instalments for the {product}?",
        "My bank flagged a suspicious transaction from your store for {amount}.",
        "The price dropped the day after I bought the {product}, can I get a price adjustment?",
        "I need a VAT receipt with my company details on it.",
        "Charged {amount} for a {product} I never ordered.",
        "Your system billed my old card instead of the new one.",
    ],
    "shipping": [
        "Where is {order}? The tracking hasn't updated in {days}.",
        "My package says delivered but I never received it.",
        "{carrier} left a note but I wasn't home. How do I rearrange delivery?",
        "When will the {product} ship? It's been {days} since I ordered.",
        "Can I change the delivery address for {order}? I moved.",
        "The tracking number you sent doesn't work on the {carrier} site.",
        "Do you ship to Canada and how long does international delivery take?",
        "My parcel is stuck in customs, what should I do?",
        "I paid for next-day delivery and it's still not here.",
        "Only half of {order} arrived, the {product} is missing from the box.",
        "Is it possible to pick up the {product} at a store instead of delivery?",
        "The estimated delivery date keeps moving. When will it actually arrive?",
        "{carrier} says the address is incomplete and they're sending it back.",
        "Can you combine my two orders into one shipment?",
        "The delivery driver left my package in the rain at the front gate.",
        "What are the shipping costs for a {product} to Alaska?",
        "I need the {product} by Friday, can you expedite the shipment?",
        "Tracking shows my parcel went to the wrong city.",
        "Has {order} been dispatched yet? No shipping confirmation email.",
        "Package lost in transit according to {carrier}, please resend.",
    ],
    "technical": [
        "The app crashes every time I open it on {device}.",
        "I get {error} when I try to check out.",
        "{feature} won't load on {device}, it just shows {error}.",
        "The {product} won't pair with my phone over Bluetooth.",
        "How do I update the firmware on the {product}?",
        "Your website is really slow today, pages take forever to load.",
        "The {product} keeps disconnecting from wifi after the last update.",
        "Push notifications stopped working on {device}.",
        "I can't upload a photo to my review, the button does nothing.",
        "The search returns no results even for products I know you sell.",
        "{feature} is broken on {device}: I see {error}.",
        "The {product} turns on but the display stays blank.",
        "The setup instructions for the {product} don't match what I see in the app.",
        "The page freezes when I add the {product} to my cart.",
        "Getting {error} on {feature} since this morning.",
        "The companion app doesn't detect the {product} at all.",
        "Battery on the {product} drains in an hour, is that a software bug?",
        "Your API returns {error} for the order status endpoint.",
        "After resetting the {product} it's stuck in a reboot loop.",
        "Videos on the product page don't play on {device}.",
    ],
    "account": [
        "I forgot my password and the reset email never arrives.",
        "How do I change the email address on my account?",
        "I'm locked out after too many login attempts.",
        "Please delete my account and all my personal data.",
        "Someone else logged into my account, I think it was hacked.",
        "I can't turn on two-factor authentication, the code is rejected.",
        "How do I unsubscribe from your marketing emails?",
        "I have two accounts and want to merge them.",
        "The login page says my username doesn't exist but I've shopped here for years.",
        "Can I change the name on my profile?",
        "My loyalty points disappeared from my account.",
        "I never got the verification email to activate my account.",
        "How do I add a second user to our business account?",
        "Please update my phone number, I lost access to the old one.",
        "Where can I download a copy of the data you hold about me?",
        "My account was suspended without any explanation.",
        "Sign in with Google stopped working for my profile.",
        "I want to close my membership and keep my order history.",
        "The password reset link says it has expired.",
        "Can you remove my saved addresses from my profile?",
    ],
    "returns": [
        "I want to return the {product} because {reason}.",
        "How do I get a return label for {order}?",
        "Can I exchange the {product} for a different size?",
        "The {product} arrived broken, I'd like a replacement.",
        "What's your return policy for opened items?",
        "I sent the {product} back {when}, when will you process the return?",
        "Is it too late to return the {product}? I bought it {when}.",
        "The return portal won't let me select {order}.",
        "I'd like to swap the {product} for the {product2} instead.",
        "Do I have to pay for return shipping if {reason}?",
        "I dropped the return at the post office {when} but the status hasn't changed.",
        "Can I return a gift without the receipt?",
        "The replacement {product} has the same problem, I want to send it back.",
        "Please arrange a collection for the faulty {product}.",
        "I returned the wrong item by mistake, can you send it back to me?",
        "Is the {product} covered by warranty or should I return it?",
        "Exchange request: {product} in {colour} instead of {colour2}.",
        "I want to send back the {product}, {reason}.",
        "My return was rejected and I don't understand why.",
        "How long does it take to inspect a returned {product}?",
    ],
}

OPENERS = ["", "", "", "Hi, ", "Hello, ", "Hi there. ", "Good morning. ", "Hey, ", "Dear support, ", "Quick question: ",
           "Urgent: ", "Hello team, "]
CONTEXT = ["", "", "", "", "I've been a customer for years. ", "This is the second time I'm writing about this. ",
           "I already tried chatting with the bot. ", "My name is Sam. ", "Sorry for the long message. ",
           "I'm writing on behalf of my mother. ", "I called yesterday but nobody picked up. "]
CLOSERS = ["", "", "", "", " Thanks.", " Thank you!", " Please help.", " Any update would be appreciated.",
           " Thanks in advance.", " Cheers.", " I'm really frustrated.", " Kind regards, Alex",
           " Please get back to me soon.", " This is not acceptable."]


def fill(rng, template):
    out = template
    slots = {
        "product2": lambda: rng.choice(PRODUCTS),
        "colour": lambda: rng.choice(COLOURS),
        "colour2": lambda: rng.choice(COLOURS),
    }
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        key = out[start + 1:end]
        if key == "num":
            value = str(rng.randint(100000, 999999))
        elif key in slots:
            value = slots[key]()
        else:
            value = rng.choice(FILL[key])
        out = out[:start] + value + out[end + 1:]
    return out


def typo(rng, text):
    """Swaps two adjacent letters in one word: real messages are not spell-checked."""
    words = text.split(" ")
    i = rng.randrange(len(words))
    w = words[i]
    if len(w) > 4:
        j = rng.randrange(1, len(w) - 2)
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        words[i] = w
    return " ".join(words)


# The last HELD_OUT templates of each queue never appear in the training set, so the test set
# measures generalisation to unseen phrasings, not just to new slot values.
HELD_OUT = 4


def message(rng, label, long_ratio, train):
    templates = TEMPLATES[label][:-HELD_OUT] if train else TEMPLATES[label]
    body = fill(rng, rng.choice(templates))
    text = rng.choice(OPENERS) + rng.choice(CONTEXT) + body + rng.choice(CLOSERS)
    if rng.random() < long_ratio:
        # A second complaint from the same queue makes a longer, more realistic message.
        extra = fill(rng, rng.choice(templates))
        text += " Also, " + extra[0].lower() + extra[1:]
    if rng.random() < 0.15:
        text = text.lower()
    if rng.random() < 0.12:
        text = typo(rng, text)
    return text


def messages(rng, n, seen, long_ratio, train=False):
    out = []
    while len(out) < n:
        label = LABELS[len(out) % len(LABELS)]
        text = message(rng, label, long_ratio, train)
        if text in seen:
            continue
        seen.add(text)
        out.append({"text": text, "label": label})
    rng.shuffle(out)
    return out


def catalogue(rng, n):
    items = []
    for i in range(1, n + 1):
        category = rng.choice(list(CATEGORIES))
        base = rng.choice(CATEGORIES[category])
        name = f"{rng.choice(ADJECTIVES)} {base} ({rng.choice(COLOURS)})"
        price = round(rng.uniform(5, 400), 0) - 0.01
        items.append({
            "id": i,
            "sku": f"{category[:3].upper()}-{rng.randint(1000, 9999)}-{i:04d}",
            "name": name,
            "category": category,
            "price": round(price, 2),
            "currency": "USD",
            "stock": rng.choice([0, 0, 3, 7, 12, 25, 40, 100, 250]),
            "rating": round(rng.uniform(2.5, 5.0), 1),
        })
    return items


def write(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main():
    seen = set()
    write("data/train.jsonl", messages(random.Random(1), 1000, seen, 0.15, train=True))
    write("data/test.jsonl", messages(random.Random(2), 300, seen, 0.15))
    # Perf-test requests: unlabelled, more long messages so request sizes vary.
    reqs = messages(random.Random(3), 300, seen, 0.4)
    write("tests/data/requests.jsonl", [{"text": r["text"]} for r in reqs])
    write("data/catalogue.jsonl", catalogue(random.Random(4), 400))


if __name__ == "__main__":
    main()
