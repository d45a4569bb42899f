"""Web app latency: time to the first rendered page, and what the page adds to the first streamed token.

    python bench/ui.py                      # extractive and local, 5 questions each
    python bench/ui.py --generators extractive --questions 3

One run measures, on the shipped corpus's index:

1. ``streamlit run`` -> first rendered page (the Chat title drawn in headless chromium) and -> ready to ask
   (the chat box enabled: index open, embedder loaded in the background job);
2. for each generator, the same questions asked (a) in the page: Enter pressed -> first answer text drawn,
   timed in the browser by a MutationObserver, and (b) through the Python API in this process:
   ``RAG.stream()`` called -> first piece; each question on both sides in turn. Both sides are warmed with
   one question first; medians reported. The server's own first-token time (the answer's timings caption)
   splits the overhead into page plumbing (rerun, websocket, drawing) and slower generation in the app.

The page's overhead is (a) - (b); the issue's target is at most 1 s. Needs chromium, chromium-driver and
selenium (``make test`` installs them as root). Not a test: it prints figures for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LABELS = {"extractive": "Extractive (no model, instant)", "local": "Local model (SmolLM2-135M)"}
WARM_UP = "What is retrieval-augmented generation?"

# Installed before Enter is pressed: records when the new answer's first text is drawn. The bench then
# waits for it with one execute_async_script call instead of polling: 20 selenium round trips a second
# (python -> chromedriver -> chromium) took CPU from the model on this 2-core machine.
OBSERVER = """
const before = arguments[0];
window.__t0 = performance.now(); window.__first = null;
window.__firstDrawn = new Promise(resolve => { window.__resolveFirst = resolve; });
const seen = () => {
  const msgs = document.querySelectorAll('[data-testid="stChatMessage"]');
  if (msgs.length < before + 2) return false;
  const md = msgs[msgs.length - 1].querySelectorAll('[data-testid="stMarkdownContainer"]');
  for (const m of md) { if (m.innerText.trim().length > 0 && !m.closest('[data-testid="stCaptionContainer"]')) return true; }
  return false;
};
const obs = new MutationObserver(() => {
  if (window.__first === null && seen()) { window.__first = performance.now(); obs.disconnect(); window.__resolveFirst(); }
});
obs.observe(document.body, {subtree: true, childList: true, characterData: true});
"""
WAIT_FIRST = "const done = arguments[arguments.length - 1]; window.__firstDrawn.then(() => done(window.__first - window.__t0));"
CPU_UNTIL_FIRST: dict[str, list[float]] = {"chromium": [], "streamlit": []}
SERVER_FIRST = re.compile(r"first token (\d+) ms")


def cpu_seconds(word: str) -> float:
    """CPU seconds used so far by every process whose command line holds ``word`` (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if word.encode() not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return total


def questions(n: int) -> list[str]:
    lines = (REPO / "corpora" / "qa.jsonl").read_text().splitlines()
    return [json.loads(line)["question"] for line in lines[:n]]


def start_app(index_dir: Path, port: int, log: Path) -> subprocess.Popen:
    from ragtune.commands.ui import streamlit_command

    env = {**os.environ, "RAGTUNE_INDEX": str(index_dir), "RAGTUNE_UI_GENERATOR": "extractive",
           "RAGTUNE_UPLOADS": str(log.parent / "uploads"), "RAGTUNE_ADAPTERS": str(log.parent / "adapters")}
    args = type("Args", (), {"address": "127.0.0.1", "port": port})
    return subprocess.Popen(streamlit_command(args), env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1400,1100", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(600)  # WAIT_FIRST blocks until the first token is drawn (a model may be loading)
    return driver


def until(condition, timeout: float = 600.0, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - the page is still changing
            value = None
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError("the page did not get there in time")


def page_times(driver, url: str, started: float) -> dict[str, float]:
    """Seconds from process start to the first rendered page and to the chat box being usable."""
    until(lambda: urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok")
    driver.get(url)
    until(lambda: "Chat with your documents" in driver.find_element("tag name", "body").text)
    first = time.perf_counter() - started
    until(lambda: [e for e in driver.find_elements("css selector", 'textarea[data-testid="stChatInputTextArea"]')
                   if e.is_enabled()])
    return {"first_page_s": first, "ready_s": time.perf_counter() - started}


def new_conversation(driver) -> None:
    """Each question starts a fresh conversation, as the API side does (no history, no follow-up rewrite)."""
    if not driver.find_elements("css selector", '[data-testid="stChatMessage"]'):
        return
    driver.find_element("xpath", "//button[contains(., 'New conversation')]").click()
    until(lambda: not driver.find_elements("css selector", '[data-testid="stChatMessage"]'))


def ask_in_page(driver, question: str) -> tuple[float, float | None]:
    """(ms from Enter to the answer's first drawn text, the server's own first-token ms from the answer's
    timings caption); waits for the whole answer."""
    from selenium.webdriver.common.keys import Keys

    new_conversation(driver)

    before = len(driver.find_elements("css selector", '[data-testid="stChatMessage"]'))
    box = until(lambda: [e for e in driver.find_elements("css selector", 'textarea[data-testid="stChatInputTextArea"]')
                         if e.is_enabled()])[0]
    box.send_keys(question)
    driver.execute_script(OBSERVER, before)
    cpu = {w: cpu_seconds(w) for w in ("chromium", "streamlit")}
    box.send_keys(Keys.ENTER)
    elapsed = driver.execute_async_script(WAIT_FIRST)
    for w in cpu:  # what the browser and the app's server burned until the first token was drawn
        CPU_UNTIL_FIRST[w].append(cpu_seconds(w) - cpu[w])
    # the answer is finished when its timings caption is drawn
    last = lambda: driver.find_elements("css selector", '[data-testid="stChatMessage"]')[-1].text  # noqa: E731
    until(lambda: "total" in last(), poll=0.5)
    found = SERVER_FIRST.search(last())
    return float(elapsed), float(found.group(1)) if found else None


def ask_in_api(rag, question: str) -> float:
    started = time.perf_counter()
    stream = rag.stream(question)
    first = None
    for piece in stream:
        if first is None and piece:
            first = time.perf_counter() - started
    return first * 1000


def choose_generator(driver, kind: str) -> None:
    label = LABELS[kind]
    until(lambda: driver.find_element("xpath", f"//label[contains(., '{label}')]")).click()
    time.sleep(1.0)  # let the rerun that the click starts finish


def measure(kind: str, driver, index, qs: list[str]) -> dict[str, float]:
    """Each question in the page, then at once through the API: interleaved, so a change in the machine's
    load (other people's jobs) affects both sides alike."""
    from ragtune.api import RAG, load_generator

    choose_generator(driver, kind)
    print(f"[{kind}] warming up the page and the API", file=sys.stderr, flush=True)
    ask_in_page(driver, WARM_UP)  # loads the local model in the app (a background job)
    rag = RAG(index, load_generator(kind))
    ask_in_api(rag, WARM_UP)
    print(f"[{kind}] measuring", file=sys.stderr, flush=True)
    for samples in CPU_UNTIL_FIRST.values():
        samples.clear()
    page, server, api = [], [], []
    for q in qs:
        drawn, in_server = ask_in_page(driver, q)
        page.append(drawn)
        if in_server is not None:
            server.append(in_server)
        api.append(ask_in_api(rag, q))
    med = statistics.median
    result = {"page_ms": med(page), "api_ms": med(api), "overhead_ms": med(page) - med(api), "n": len(qs),
              "page_samples_ms": [round(x) for x in page], "api_samples_ms": [round(x) for x in api]}
    result["cpu_s_until_first"] = {w: round(med(v), 2) for w, v in CPU_UNTIL_FIRST.items() if v}
    if server:
        # the server's own first token (from RAG.stream's start) vs the API's: compute, not page plumbing
        result["page_server_ms"] = med(server)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generators", default="extractive,local")
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--port", type=int, default=8599)
    args = parser.parse_args()
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        print("bench/ui.py needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
        return 2
    from ragtune.api import corpus_index

    index = corpus_index()
    work = Path(tempfile.mkdtemp(prefix="ragtune-bench-ui-"))
    load = os.getloadavg()[0]
    started = time.perf_counter()
    server = start_app(index.root, args.port, work / "streamlit.log")
    driver = browser(work / "profile")
    try:
        result = {"load_avg_1min_at_start": round(load, 1), **page_times(driver, f"http://127.0.0.1:{args.port}", started)}
        print(f"first page after {result['first_page_s']:.1f} s, ready after {result['ready_s']:.1f} s "
              f"(1-min load average {load:.1f})", file=sys.stderr, flush=True)
        for kind in args.generators.split(","):
            try:
                result[kind] = measure(kind.strip(), driver, index, questions(args.questions))
                print(f"[{kind}] {json.dumps(result[kind])}", file=sys.stderr, flush=True)
            except TimeoutError:
                driver.save_screenshot(str(work.parent / f"ragtune-bench-ui-{kind}-timeout.png"))
                raise
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    _table(result, args.generators.split(","))
    return 0


def _table(result: dict, kinds: list[str]) -> None:
    print(f"\n| measure | value |\n|---|---|\n| `streamlit run` -> first rendered page | {result['first_page_s']:.1f} s |")
    print(f"| `streamlit run` -> ready to ask (index + embedder loaded) | {result['ready_s']:.1f} s |")
    for kind in kinds:
        r = result[kind.strip()]
        print(f"| {kind} first token: page / Python API / page overhead (median of {r['n']}) | "
              f"{r['page_ms']:.0f} ms / {r['api_ms']:.0f} ms / {r['overhead_ms']:+.0f} ms |")
        if "page_server_ms" in r:
            print(f"| {kind} first token inside the app's server process (its timings caption) | "
                  f"{r['page_server_ms']:.0f} ms |")


if __name__ == "__main__":
    sys.exit(main())
