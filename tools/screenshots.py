"""Regenerate docs/screenshots/: the rater's comparison page (a short and a long pair) and the lead's
pages at 1280x800 (desktop) and 390x844 (phone), in Debian's Chromium through Playwright.

    PYTHONPATH=src:tests/helpers python tools/screenshots.py [--out docs/screenshots]

It builds a throw-away workspace with the test helpers' people (tests/helpers), serves the app on a free
loopback port and signs in as a rater (rita) and the annotation lead (lena)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "helpers")]

LONG_LEFT = (
    "Here is how to reset your router.\n\n"
    + "\n\n".join(
        f"{i}. Step {i}: hold the button for ten seconds, wait for the light, then check the connection "
        "on the status page before you go on."
        for i in range(1, 40)
    )
    + "\n\n```sh\nping -c 3 192.168.1.1\n```"
)
LONG_RIGHT = "\n\n".join(
    f"Paragraph {i}: **Sorry** for the trouble. A *short* answer would do, but this one goes on."
    for i in range(70)
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    import os

    from shared_helpers import make_workspace
    from web_helpers import PASSWORD, PEOPLE, SIZES, chromium, serve, sign_in

    from rlhfops.annotate.queue import PairIn, queue_pairs

    os.environ.pop("RLHFOPS_DATABASE_URL", None)
    os.environ["RLHFOPS_USER"] = "alice"
    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        ws = make_workspace(Path(tmp) / "ws", PEOPLE, account_password=PASSWORD)
        short = PairIn(
            "My order #123 has not arrived. What can I do?", "I am sorry! It ships tomorrow.", "Wait."
        )
        long = PairIn("How do I reset my router? Please be **brief**.", LONG_LEFT, LONG_RIGHT)
        queue_pairs(ws, [short, long], "b1", 3)
        with serve(ws) as url:
            for size_name, size in SIZES.items():
                # each size signs in a different rater, so both see the short pair first, then the long one
                rater = {"desktop": "rita", "phone": "ravi"}[size_name]
                page = sign_in(browser, url, rater, size)
                page.screenshot(path=str(out / f"rate-short-{size_name}.png"))
                page.keyboard.press("1")
                with page.expect_navigation():
                    page.keyboard.press("Enter")
                page.screenshot(path=str(out / f"rate-long-{size_name}.png"))
                page.fill("textarea[name=rationale]", f"{rater}: the steps are right but far too long")
                page.check(f"input[name=choice][value={'right' if rater == 'rita' else 'left'}]")
                with page.expect_navigation():
                    page.click("#submit")
            for size_name, size in SIZES.items():  # both pairs now carry two labels
                lead = sign_in(browser, url, "lena", size)
                for path, name in (("/lead/items/2", "lead-item"), ("/lead/agreement", "lead-agreement")):
                    lead.goto(f"{url}{path}")
                    lead.screenshot(path=str(out / f"{name}-{size_name}.png"), full_page=True)
        ws.close()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
