"""Look at the reports as a reader would: render each report's HTML in headless Chromium, save a
screenshot next to it, and check that the rendered page shows figures and tables.

    apt-get install chromium          # once (Debian's package; no browser download)
    python scripts/check_report_html.py [reports/]      # exit 1 if a report renders without them
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def render(browser: str, page: Path) -> tuple[str, Path]:
    shot = page.with_suffix(".png")
    with tempfile.TemporaryDirectory() as profile:
        base = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000"]
        dom = subprocess.run(base + ["--dump-dom", page.resolve().as_uri()], capture_output=True, text=True,
                             timeout=120).stdout
        subprocess.run(base + ["--window-size=1280,2400", f"--screenshot={shot}", page.resolve().as_uri()],
                       capture_output=True, timeout=120)
    return dom, shot


def main() -> int:
    reports = Path(sys.argv[1] if len(sys.argv) > 1 else "reports")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium is not installed: apt-get install chromium", file=sys.stderr)
        return 2
    pages = sorted(reports.glob("*/*/*.html"))
    latest = {}
    for page in pages:  # the newest run of each notebook
        latest[page.parent.parent.name] = page
    failures = 0
    for page in [reports / "index.html", *latest.values()]:
        dom, shot = render(browser, page)
        images = len(re.findall(r"<img[^>]+src=\"data:image/png", dom))
        tables = len(re.findall(r"<table", dom))
        errors = len(re.findall(r"Traceback|jp-RenderedText[^>]*data-mime-type=\"application/vnd.jupyter.stderr", dom))
        ok = tables > 0 and (images > 0 or page.name == "index.html")
        failures += not ok
        print(f"{'ok ' if ok else 'BAD'} {page}: {images} figure(s), {tables} table(s), {errors} error block(s); "
              f"screenshot {shot} ({shot.stat().st_size if shot.exists() else 0:,} bytes)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
