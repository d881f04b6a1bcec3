"""Template-generated prompt sets for the drift tests (customer support vs cooking / coding)."""

from __future__ import annotations

import random

PRODUCTS = [
    "electric kettle",
    "linen duvet cover",
    "cast-iron skillet",
    "bamboo cutting board",
    "wool throw blanket",
    "brass desk lamp",
    "chef's knife",
    "bath towel set",
    "standing mirror",
    "French press",
    "rice cooker",
    "stand mixer",
    "waffle maker",
    "blender",
    "memory foam pillow",
    "toaster",
    "wall clock",
    "spice rack",
]
SUPPORT = [
    "My {p} arrived broken, can I get a refund?",
    "Where is my order #{n}? I ordered a {p} {d} days ago.",
    "The {p} I bought stopped working after {d} days. What are my options?",
    "Can I return the {p} if I already opened the box?",
    "I was charged twice for order #{n}, please fix this.",
    "How do I change the delivery address for my {p} order?",
    "Do you offer a warranty on the {p}?",
    "I received the wrong colour of {p}, how do I exchange it?",
    "My discount code did not apply to the {p}, can you help?",
    "Please cancel order #{n}, I no longer need the {p}.",
    "The tracking page for order #{n} has not updated in {d} days.",
    "Is the {p} back in stock yet? I want to buy one.",
]
DISHES = [
    "risotto",
    "banana bread",
    "lasagna",
    "pad thai",
    "sourdough",
    "chicken curry",
    "pancakes",
    "paella",
]
COOKING = [
    "How long should I bake {x} at 180 degrees?",
    "What can I use instead of eggs when making {x}?",
    "Give me a quick weeknight recipe for {x}.",
    "Why does my {x} always turn out dry?",
    "How do I make {x} without dairy?",
]
LANGS = ["Python", "JavaScript", "Rust", "SQL", "Go"]
TASKS = [
    "reverse a linked list",
    "parse a CSV file",
    "read a JSON config",
    "sort a dictionary by value",
    "retry an HTTP request",
    "deduplicate a list",
]
CODING = [
    "How do I {t} in {l}?",
    "Write a {l} function to {t}.",
    "My {l} code to {t} throws an error, what is wrong?",
    "What is the fastest way to {t} in {l}?",
]


def support_prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        rng.choice(SUPPORT).format(p=rng.choice(PRODUCTS), n=rng.randint(10000, 99999), d=rng.randint(2, 30))
        for _ in range(n)
    ]


def other_task_prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            out.append(rng.choice(COOKING).format(x=rng.choice(DISHES)))
        else:
            out.append(rng.choice(CODING).format(t=rng.choice(TASKS), l=rng.choice(LANGS)))
    return out
