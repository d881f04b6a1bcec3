"""Benchmark: the keyboard floor of the comparison page (issue 20): 20 labels by keyboard in Chromium.

A fresh workspace (the test helpers' people), 20 queued pairs, the app on loopback; a rater signs in and,
for each pair, presses a digit then Enter and waits for the next page. Prints one JSON line with the
seconds per label (the mechanical floor: no reading time). Target: at most 0.5 s per label.

    PYTHONPATH=src:tests/helpers python bench/keyboard_floor.py [--labels 20] [--width 1280 --height 800]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "helpers")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=int, default=20)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=800)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    from shared_helpers import make_workspace
    from web_helpers import PASSWORD, PEOPLE, ServerThread, pairs

    from rlhfops.annotate.queue import queue_pairs
    from rlhfops.web.app import create_app

    os.environ.pop("RLHFOPS_DATABASE_URL", None)
    os.environ["RLHFOPS_USER"] = "alice"
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        ws = make_workspace(Path(tmp) / "ws", PEOPLE, account_password=PASSWORD)
        queue_pairs(ws, pairs(args.labels), "b1", 1)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        with ServerThread(create_app(ws.root)) as url:
            page = browser.new_context(viewport={"width": args.width, "height": args.height}).new_page()
            page.goto(f"{url}/login")
            page.fill("#name", "rita")
            page.fill("#password", PASSWORD)
            with page.expect_navigation():
                page.press("#password", "Enter")
            start = time.perf_counter()
            for n in range(args.labels):
                page.keyboard.press("1" if n % 2 else "2")
                with page.expect_navigation():
                    page.keyboard.press("Enter")
            elapsed = time.perf_counter() - start
            done = page.locator("#labelled").inner_text()
        browser.close()
        ws.close()
    per = elapsed / args.labels
    print(
        json.dumps(
            {
                "bench": "keyboard_floor",
                "labels": args.labels,
                "stored": int(done),
                "viewport": f"{args.width}x{args.height}",
                "seconds_per_label": round(per, 3),
                "target_met": per <= 0.5,
            }
        )
    )


if __name__ == "__main__":
    main()
