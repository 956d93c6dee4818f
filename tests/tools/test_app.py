"""tools/app.py in a real headless browser: the app serves a tiny checkpoint on a local
port; Chromium (the system package, driven by playwright) uploads a synthetic image, sends
an empty expression (a message in the page), then an expression, and finds the answer,
the mask overlay and the two MBA attention maps in the page; a synthetic video gets an
overlay per frame and an attention pair per key frame; an unreadable file is a message.
Requests to any host but the app are blocked and must not happen.

Skipped, with the reason, where gradio, playwright or a Chromium binary is missing
(`.ci/run` installs Debian's chromium when it runs as root). With MPR_CMA_APP_SCREENSHOT=PATH
the video test also saves the page as PATH (docs/app.png is made that way, docs/app.md).
"""

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs/tiny/sa2va_mba_tiny.py"
ANSWER = "It is [SEG]."
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 300  # model build + gradio start on a loaded 2-core machine
RUN_TIMEOUT_MS = 240_000


def find_chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _skip_reason() -> str | None:
    for module in ("gradio", "playwright"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (requirements.txt, requirements-nodeps.txt)"
    if find_chromium() is None:
        return "no Chromium binary (apt-get install chromium; .ci/run does it as root)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_skip_reason() is not None,
                                                   reason=_skip_reason() or "")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A .pth of the tiny model's random init (one of the kinds tools/test.py takes)."""
    import torch

    from mpr_cma.engine.evaluate import build_eval_model

    model, _ = build_eval_model(TINY, None)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def app_url(checkpoint, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tools/app.py"), str(TINY), "--checkpoint",
             str(checkpoint), "--port", str(port), "--device", "cpu", "--answer", ANSWER],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tools/app.py exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"tools/app.py did not serve {url} in {START_TIMEOUT_S} s:\n"
                            f"{log.read_text()}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def page(app_url):
    from playwright.sync_api import sync_playwright

    foreign: list[str] = []

    def local_only(route):
        url = route.request.url
        host = url.split("/")[2].split(":")[0] if "://" in url else ""
        if url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            return route.continue_()
        foreign.append(url)
        return route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=BROWSER_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            tab.route("**/*", local_only)
            tab.goto(app_url)
            tab.wait_for_selector("#run", timeout=60_000)
            yield tab
        finally:
            browser.close()
    assert foreign == [], f"the page asked hosts other than the app: {foreign}"


def synthetic_image(path: Path) -> Path:
    """A 96 x 128 scene: a red square and a blue disc on green."""
    yy, xx = np.mgrid[:96, :128]
    image = np.zeros((96, 128, 3), np.uint8)
    image[:] = (60, 140, 70)
    image[20:70, 14:64] = (220, 50, 40)
    image[(yy - 50) ** 2 + (xx - 96) ** 2 < 20 ** 2] = (40, 70, 220)
    Image.fromarray(image).save(path)
    return path


def wait_for_status(page, contains: str) -> str:
    page.wait_for_function(
        "text => document.querySelector('#status textarea').value.includes(text)",
        arg=contains, timeout=RUN_TIMEOUT_MS)
    return page.input_value("#status textarea")


def wait_for_images(page, selector: str, count: int) -> None:
    """`count` images under `selector`, each loaded and decoded by the browser."""
    page.wait_for_function(
        """([sel, n]) => { const imgs = [...document.querySelectorAll(sel + ' img')];
                          return imgs.length === n &&
                                 imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=[selector, count], timeout=RUN_TIMEOUT_MS)


def test_upload_expression_shows_answer_overlay_and_attention(page, tmp_path):
    page.set_input_files("#upload input[type=file]", synthetic_image(tmp_path / "scene.png"))
    page.wait_for_selector("#upload :text('scene.png')", timeout=60_000)
    # Bad input first: an empty expression is a message in the page.
    page.click("#run")
    assert "the text is empty" in wait_for_status(page, "the text is empty")
    assert page.locator("#overlays img").count() == 0
    page.fill("#text textarea", "the red square")
    page.click("#run")
    status = wait_for_status(page, "Done")
    assert "image; mask pixels:" in status
    wait_for_images(page, "#overlays", 1)
    wait_for_images(page, "#attention", 2)  # without and with the mask gate
    assert page.input_value("#answer textarea") == ANSWER
    for caption in ("attention, no gate", "attention x mask gate"):
        assert page.locator(f"#attention :text('{caption}')").count() == 1


def synthetic_video(path: Path, frames: int = 4) -> Path:
    """A red square moving right past a still blue disc, 72 x 96, as mp4v."""
    import cv2

    yy, xx = np.mgrid[:72, :96]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 4, (96, 72))
    for t in range(frames):
        frame = np.zeros((72, 96, 3), np.uint8)
        frame[:] = (60, 140, 70)
        frame[(yy - 50) ** 2 + (xx - 70) ** 2 < 14 ** 2] = (40, 70, 220)
        frame[10:40, 6 + 12 * t:36 + 12 * t] = (220, 50, 40)
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path


def test_video_upload_shows_every_frame_and_attention_per_key_frame(page, tmp_path):
    page.set_input_files("#upload input[type=file]", synthetic_video(tmp_path / "clip.mp4"))
    page.wait_for_selector("#upload :text('clip.mp4')", timeout=60_000)
    page.fill("#text textarea", "the red square moving right")
    page.click("#run")
    assert "video, 4 frames" in wait_for_status(page, "Done")
    wait_for_images(page, "#overlays", 4)
    for t in range(4):
        assert page.locator(f"#overlays :text('frame {t:05d}')").count() == 1
    # Sa2VA's rule: MBA runs on the prompted key frames (all 4 here, < 5), two maps each.
    wait_for_images(page, "#attention", 8)
    shot = os.environ.get("MPR_CMA_APP_SCREENSHOT")
    if shot:
        page.screenshot(path=shot, full_page=True)


def test_unreadable_upload_is_a_message(page, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    page.set_input_files("#upload input[type=file]", tmp_path / "broken.png")
    page.wait_for_selector("#upload :text('broken.png')", timeout=60_000)
    page.fill("#text textarea", "the red square")
    page.click("#run")
    assert "cannot read image broken.png" in wait_for_status(page, "cannot read image")
    assert page.input_value("#answer textarea") == ""
