"""The README's picture of the demo: `llava-cot demo` on a free port, driven in headless Chromium
(the system's; see llava_cot.demo.browser), asked about examples/scene1.png with stage_beam, the
page saved once the stages and what the search weighed are shown. Prints the timings.

    python scripts/demo_screenshot.py [--out docs/img/demo.png] [--search stage_beam --beam 2]
"""

import argparse
import json
from pathlib import Path

from llava_cot.demo import browser as web

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "demo.png"))
    ap.add_argument("--image", default=str(ROOT / "examples" / "scene1.png"))
    ap.add_argument("--question", default="How many circles are there?")
    ap.add_argument("--search", default="stage_beam")
    ap.add_argument("--beam", type=int, default=2)
    ap.add_argument("--model", default=None, help="a model for the demo (default: the embedded one)")
    args = ap.parse_args()
    demo_args = ["--port", str(web.free_port())] + (["--model", args.model] if args.model else [])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # tall enough for the chat to hold the four stages and the search's trace without scrolling
    with web.served(demo_args) as url, web.browser(width=1400, height=1500) as page:
        web.open_page(page, url)
        web.upload(page, args.image)
        times = web.ask(page, args.question, search=args.search, beam=args.beam)
        page.evaluate("() => document.querySelector('#chat [role=log]').scrollTo(0, 0)")
        page.screenshot(path=str(out), full_page=True)
        answer = web.answers(page)[-1]
    print(json.dumps({"out": str(out), "answer": answer, "seconds_from_ask": times}))


if __name__ == "__main__":
    main()
