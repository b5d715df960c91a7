"""The studio in a real browser: JupyterLab on 127.0.0.1 with a token, the notebook opened
in headless Chromium (Debian's, driven by the PyPI playwright package), run in quick mode,
then used as a person would: drag the style-weight slider, click Run, see the preview
change, click Stop, click Save. A screenshot goes to test-artifacts/studio.png.

With NST_REQUIRE_BROWSER=1 (set by .ci/run) a missing Chromium or playwright FAILS the
test; without it, the test is skipped with the reason. Every wait is bounded by one time
budget (BUDGET_S), so the whole test ends within about two minutes even when it fails.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "05_interactive_studio.ipynb"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
BUDGET_S = 150  # the whole test, server start to screenshot
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]


def _browser_or_skip():
    """The playwright module, or fail (NST_REQUIRE_BROWSER=1) / skip with the reason."""
    problem = None
    if not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)"
    try:
        from playwright import sync_api
    except ImportError:
        problem = problem or "the playwright package is not installed: pip install playwright"
        sync_api = None
    if problem:
        if os.environ.get("NST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{problem} (NST_REQUIRE_BROWSER=1: the browser test must run here)")
        pytest.skip(problem)
    return sync_api


class Budget:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self, at_most):
        """Seconds for the next wait: at most `at_most`, and never past the budget."""
        left = self.end - time.monotonic()
        if left <= 0:
            pytest.fail(f"the browser test ran out of its {BUDGET_S} s budget")
        return min(at_most, left)

    def ms(self, at_most):
        return int(1000 * self.left(at_most))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture
def jupyter(tmp_path):
    """JupyterLab on 127.0.0.1:<free port> with a token, serving a copy of the notebook from a
    temporary folder (so the repository's notebook is never autosaved over); always shut down."""
    served = tmp_path / "served"
    (served / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, served / "notebooks" / NOTEBOOK)
    settings = tmp_path / "lab-settings"
    # Render every cell (no windowing), so that the test sees the whole notebook; start the
    # notebook's kernel without asking; no news pop-up.
    _write_json(settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
                {"windowingMode": "none", "autoStartDefaultKernel": True})
    _write_json(settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
                {"fetchNews": "false", "checkForUpdates": False})
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "NST_QUICK_LOG")}
    env.update(NST_QUICK="1", NST_STUDIO_OUTPUT=str(tmp_path / "saved"), NST_IMAGES=str(ROOT / "images"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), PYTHONPATH=str(ROOT))
    log = open(tmp_path / "jupyter.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}",
         "--ServerApp.port_retries=0", "--allow-root"],
        cwd=served, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start: " + (tmp_path / "jupyter.log").read_text()[-2000:])
                time.sleep(0.3)
        yield {"url": f"{base}/lab/tree/notebooks/{NOTEBOOK}?token={token}", "saved": tmp_path / "saved",
               "log": tmp_path / "jupyter.log"}
    finally:
        try:  # the polite way: the server shuts its kernels down too
            request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST", data=b"")
            urllib.request.urlopen(request, timeout=5).close()
            server.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


def _src(page):
    return page.locator("img.nst-preview").get_attribute("src")


def _text(page, selector):
    return page.locator(selector).first.inner_text()


def test_the_studio_in_a_browser(jupyter):
    sync_api = _browser_or_skip()
    budget = Budget(BUDGET_S)
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1300, "height": 1800})
        try:
            _use_the_studio(page, jupyter, budget)
            page.locator(".nst-studio").screenshot(path=str(ARTIFACTS / "studio.png"))
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "studio-failure.png"), full_page=True)
            print("JupyterLab's log:\n" + jupyter["log"].read_text(errors="replace")[-3000:])
            raise
        finally:
            browser.close()
    print(f"browser test: {time.monotonic() - started:.0f} s")


def _use_the_studio(page, jupyter, budget):
    page.goto(jupyter["url"], timeout=budget.ms(60))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=budget.ms(60))
    # Wait for the kernel, then run every cell from the menu, as a person would.
    page.locator(".jp-Notebook").first.wait_for(timeout=budget.ms(30))
    page.get_by_text(re.compile(r"\| Idle$")).first.wait_for(timeout=budget.ms(60))  # the status bar
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click(timeout=budget.ms(10))
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click(timeout=budget.ms(10))
    # Every code cell ran: numbered prompts, no [*] or empty ones; no error output anywhere.
    page.wait_for_function(
        "() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];"
        " return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.textContent)); }",
        timeout=budget.ms(90))
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, "a cell failed: " + errors.first.inner_text()[:500]
    assert "quick mode (NST_QUICK=1)" in page.locator(".jp-OutputArea-output").first.inner_text()

    studio = page.locator(".nst-studio")
    studio.scroll_into_view_if_needed(timeout=budget.ms(20))
    assert "press Run" in _text(page, ".nst-status")

    # Drag the style-weight slider's handle to the right; the kernel answers in the status line.
    slider = page.locator(".nst-slider-style-weight")
    readout = slider.locator(".widget-readout")
    before = readout.inner_text()
    box = slider.locator(".noUi-handle").bounding_box(timeout=budget.ms(10))
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y, steps=8)
    page.mouse.up()
    page.wait_for_function("() => /style weight = /.test(document.querySelector('.nst-status').innerText)",
                           timeout=budget.ms(15))
    dragged = float(readout.inner_text())
    assert dragged != float(before) and dragged > 10, f"the slider moved from {before} to {dragged}"

    # Run: the preview must change at least twice while the run goes on.
    seen = [_src(page)]
    page.locator("button.nst-run").click(timeout=budget.ms(10))
    while len(seen) < 3:
        budget.left(60)
        src = _src(page)
        if src and src != seen[-1]:
            seen.append(src)
        time.sleep(0.05)
    assert "running" in _text(page, ".nst-status")

    # Stop: the status says so within a few seconds, and nothing moves afterwards.
    clicked = time.monotonic()
    page.locator("button.nst-stop").click(timeout=budget.ms(10))
    page.wait_for_function("() => /^stopped/.test(document.querySelector('.nst-status').innerText)",
                           timeout=budget.ms(5))
    stop_s = time.monotonic() - clicked
    progress, src = _text(page, ".nst-progress-text"), _src(page)
    time.sleep(2)
    assert (_text(page, ".nst-progress-text"), _src(page)) == (progress, src), "the run went on after Stop"
    done = int(re.search(r"step (\d+)/(\d+)", progress).group(1))
    assert 0 < done < 1000, f"the run should have been stopped half-way, at {progress}"
    assert page.locator("button.nst-run").is_enabled() and not page.locator("button.nst-stop").is_enabled()

    # Save: a new PNG with the dragged style weight in its settings.
    page.locator("button.nst-save").click(timeout=budget.ms(10))
    page.wait_for_function("() => /saved /.test(document.querySelector('.nst-status').innerText)",
                           timeout=budget.ms(15))
    saved = sorted(jupyter["saved"].glob("studio_city_starry_night*.png"))
    assert len(saved) == 1, f"expected one saved picture, found {saved}"
    with Image.open(saved[0]) as png:
        settings = json.loads(png.text["settings"])
    assert settings["settings"]["style_weight"] == pytest.approx(dragged, rel=0.01)
    assert settings["steps_done"] >= done
    print(f"stopped {stop_s:.1f} s after the click, at {progress}; saved {saved[0].name}")
