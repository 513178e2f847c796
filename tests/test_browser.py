"""The web page in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against a live server.

Covers: photo upload (file picker and drag-and-drop) with boxes and names, the webcam view fed a real face video
through Chromium's fake camera, verify, look-alike, and a gallery round trip. Skips, saying why, only when
Chromium cannot be launched. The gallery uses facelab.open_gallery when this build has it, otherwise the
brief-shaped stand-in from test_server.
"""
from __future__ import annotations

import base64
import io
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

import facelab

from .conftest import lfw_image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
NAME = "Eileen Collins"


def wait_until(page, check, timeout_s: float = 30, what: str = "condition"):
    """Poll `check()` from Python (the page's CSP forbids the eval that page.wait_for_function uses)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = check()
        if value:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def frames(page) -> int:
    return int(page.get_attribute("#cam-stage", "data-frames") or 0)


def write_y4m(path, frames: list[np.ndarray], fps: int = 15) -> None:
    """Frames (RGB uint8, even sizes) as a Y4M video (4:2:0, full-range BT.601, what C420jpeg means)."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
            y = 0.299 * r + 0.587 * g + 0.114 * b
            u = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
            v = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
            sub = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # noqa: E731
            fh.write(b"FRAME\n")
            for plane in (y, sub(u), sub(v)):
                fh.write(np.clip(np.round(plane), 0, 255).astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, astronaut) -> str:
    """640x480 video of the astronaut photo drifting a few pixels per frame (a face that moves)."""
    frames = []
    for t in range(30):
        canvas = np.full((480, 640, 3), 40, np.uint8)
        dx, dy = int(20 * np.sin(t / 5)), int(10 * np.cos(t / 7))
        canvas[0:480, 64 + dx:576 + dx] = astronaut[16 + dy:496 + dy, :]
        frames.append(canvas)
    path = tmp_path_factory.mktemp("video") / "face.y4m"
    write_y4m(path, frames)
    return str(path)


@pytest.fixture(scope="module")
def browser(face_video):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    try:
        pw = sync_api.sync_playwright().start()
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Playwright could not start: {exc}")
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS + [f"--use-file-for-fake-video-capture={face_video}"])
    except Exception as exc:
        pw.stop()
        pytest.skip(f"Chromium cannot be launched from {CHROMIUM} ({str(exc).splitlines()[0]}); "
                    f"`make test` installs it with apt-get (chromium)")
    yield chromium
    chromium.close()
    pw.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A live uvicorn serving create_app on a free local port, in this process (so stand-ins apply)."""
    import uvicorn

    from facelab.server import Settings, create_app
    from facelab.server.auth import create_key

    mp = pytest.MonkeyPatch()
    gallery_kind = "facelab.open_gallery"
    if not all(hasattr(facelab, n) for n in ("open_gallery", "identify", "lookalike")):
        from . import test_server as ts

        store = {}
        mp.setattr(facelab, "open_gallery",
                   lambda loc, model="sface": store.setdefault(loc, ts.StandInGallery(loc, model)), raising=False)
        mp.setattr(facelab, "identify", ts.stand_in_identify, raising=False)
        mp.setattr(facelab, "lookalike", ts.stand_in_lookalike, raising=False)
        gallery_kind = "stand-in gallery (facelab.open_gallery not merged yet)"
    data = tmp_path_factory.mktemp("serve")
    settings = Settings(data_dir=data)
    key = create_key(settings.keys_file, "browser-test")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    print(f"\nbrowser tests use: {gallery_kind}")
    yield {"url": f"http://127.0.0.1:{port}/", "key": key, "port": port}
    srv.should_exit = True
    thread.join(timeout=10)
    mp.undo()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
    pg.goto(server["url"] + "#key=" + server["key"])
    pg.wait_for_selector("body[data-ready='1']", timeout=20_000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def astronaut_file(tmp_path_factory, astronaut) -> str:
    path = tmp_path_factory.mktemp("img") / "astronaut.jpg"
    Image.fromarray(astronaut).save(path, quality=92)
    return str(path)


def enrol(server, path, name, keep_face=False):
    import httpx

    with open(path, "rb") as fh:
        r = httpx.post(f"{server['url']}v1/galleries/default/people/{name}/photos"
                       + ("?keep_face=true" if keep_face else ""),
                       files={"image": ("p.jpg", fh.read(), "image/jpeg")},
                       headers={"Authorization": f"Bearer {server['key']}"}, timeout=60)
    # A real gallery refuses the same photo twice (409): enrolled already is what the test needs.
    assert r.status_code == 201 or (r.status_code == 409 and "already" in r.text), r.text


# ---- tests --------------------------------------------------------------------------------------------------
def test_key_from_the_link_is_kept_and_removed_from_the_address(page, server):
    assert "#key" not in page.url
    assert page.input_value("#api-key") == server["key"]


def test_upload_shows_boxes_and_names(page, server, astronaut_file, lfw):
    enrol(server, astronaut_file, NAME)
    page.set_input_files("#photo-file", astronaut_file)
    page.wait_for_selector("#photo-stage .box", timeout=30_000)
    boxes = page.locator("#photo-stage .box")
    assert boxes.count() == 1
    assert NAME in boxes.first.inner_text()
    # The box sits on her face: top centre of the photo.
    stage = page.locator("#photo-stage").bounding_box()
    box = boxes.first.bounding_box()
    cx = (box["x"] + box["width"] / 2 - stage["x"]) / stage["width"]
    cy = (box["y"] + box["height"] / 2 - stage["y"]) / stage["height"]
    assert 0.35 < cx < 0.55 and 0.1 < cy < 0.35, (cx, cy)
    assert NAME in page.inner_text("#photo-faces")

    stranger = str(lfw_image(lfw, "Tony_Blair", 1))
    page.set_input_files("#photo-file", stranger)
    wait_until(page, lambda: page.locator("#photo-stage .box .label").first.inner_text().startswith("unknown"),
               what="the stranger labelled unknown")
    assert "#1" not in page.inner_text("#photo-stage")


def test_drag_and_drop_a_photo(page, astronaut):
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    transfer = page.evaluate_handle("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "dropped.jpg", { type: "image/jpeg" }));
        return dt; }""", b64)
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#photo-stage .box", timeout=30_000)
    assert page.get_attribute("#photo-stage", "data-faces") == "1"
    assert "1 face found" in page.inner_text("#status")


def test_bad_upload_shows_the_error(page, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"not a photo at all")
    page.set_input_files("#photo-file", str(bad))
    page.wait_for_selector("#status.error", timeout=10_000)
    assert "not an image" in page.inner_text("#status")


def test_webcam_draws_faces_live(page, server, astronaut_file):
    enrol(server, astronaut_file, NAME)
    page.click("button[data-tab='webcam']")
    page.click("#cam-start")
    wait_until(page, lambda: frames(page) >= 3, 60, "the first webcam answers")
    start_frames, t0 = frames(page), time.time()
    wait_until(page, lambda: frames(page) >= start_frames + 10, 60, "10 more webcam answers")
    fps = (frames(page) - start_frames) / (time.time() - t0)
    print(f"\nwebcam in headless Chromium: {fps:.1f} answered frames/s (640x480, one face; also encoding + "
          f"this test's own CPU use)")
    page.wait_for_selector("#cam-stage .box", timeout=10_000)
    assert page.locator("#cam-stage .box").count() == 1
    assert NAME in page.inner_text("#cam-stage .box .label")
    positions = set()
    for _ in range(5):  # the face moves in the video: the drawn box follows it
        positions.add(page.evaluate("() => document.querySelector('#cam-stage .box')?.style.left"))
        page.wait_for_timeout(250)
    positions.discard(None)
    assert len(positions) > 1, "the overlay did not move with the face"
    assert "fps" in page.inner_text("#cam-stats")
    page.click("#cam-stop")


def test_enrol_from_the_webcam(page):
    page.click("button[data-tab='webcam']")
    page.click("#cam-start")
    wait_until(page, lambda: frames(page) >= 1, 60, "a webcam answer")
    page.fill("#cam-enrol-name", "Webcam Person")
    page.click("#cam-enrol button")
    wait_until(page, lambda: "Webcam Person" in page.inner_text("#status"), what="the enrolment message")
    page.click("#cam-stop")
    page.click("button[data-tab='gallery']")
    page.wait_for_selector("#people li[data-name='Webcam Person']", timeout=10_000)


def test_verify_two_photos(page, lfw):
    page.click("button[data-tab='verify']")
    page.set_input_files("#verify-a", str(lfw_image(lfw, "Colin_Powell", 1)))
    page.set_input_files("#verify-b", str(lfw_image(lfw, "Colin_Powell", 2)))
    page.click("#verify-form button")
    page.wait_for_selector("#verify-result.same", timeout=30_000)
    assert "similarity" in page.inner_text("#verify-result") and "threshold" in page.inner_text("#verify-result")
    assert "FAR 1e-4 on LFW all pairs" in page.inner_text("#verify-result")  # the rate the threshold stands for
    page.set_input_files("#verify-b", str(lfw_image(lfw, "Tony_Blair", 1)))
    page.click("#verify-form button")
    page.wait_for_selector("#verify-result.different", timeout=30_000)


def test_lookalike(page, server, astronaut_file, lfw):
    enrol(server, astronaut_file, NAME)
    enrol(server, str(lfw_image(lfw, "Tony_Blair", 2)), "Tony Blair", keep_face=True)
    page.click("button[data-tab='lookalike']")
    page.set_input_files("#lookalike-file", str(lfw_image(lfw, "Tony_Blair", 1)))
    page.click("#lookalike-form button")
    page.wait_for_selector("#lookalike-results li", timeout=30_000)
    assert "looks most like Tony Blair" in page.inner_text("#lookalike-results")
    page.wait_for_selector("#lookalike-results img.kept-face", timeout=30_000)  # his kept face is shown
    assert page.evaluate("document.querySelector('#lookalike-results img.kept-face').naturalWidth") > 0


def test_gallery_round_trip(page, lfw):
    page.on("dialog", lambda d: d.accept())
    page.click("button[data-tab='gallery']")
    page.fill("#person-name", "Colin Powell")
    page.set_input_files("#person-file", str(lfw_image(lfw, "Colin_Powell", 1)))
    page.click("#person-add button")
    person = "#people li[data-name='Colin Powell']"
    page.wait_for_selector(person, timeout=30_000)
    assert "1 photo" in page.inner_text(person)
    page.set_input_files("#person-file", str(lfw_image(lfw, "Colin_Powell", 2)))
    page.click("#person-add button")
    wait_until(page, lambda: "2 photos" in page.inner_text(person), what="a second photo listed")
    page.set_input_files("#person-file", str(lfw_image(lfw, "George_W_Bush", 1)))  # filed under Powell by mistake
    page.click("#person-add button")
    wait_until(page, lambda: "3 photos" in page.inner_text(person), what="the misfiled photo listed")
    page.click("#gallery-check")
    page.wait_for_selector("#gallery-check-results li.suspect", timeout=30_000)
    assert page.locator("#gallery-check-results li.suspect").count() == 1
    assert "unlike their other photos" in page.inner_text("#gallery-check-results")
    page.click("#gallery-check-results li.suspect button")  # remove it: the check then finds nothing
    page.wait_for_selector("#gallery-check-results li.clean", timeout=30_000)
    wait_until(page, lambda: "2 photos" in page.inner_text(person), what="the misfiled photo gone")
    page.click(f"{person} > button.danger")
    page.wait_for_selector(person, state="detached", timeout=10_000)
    # A new gallery, chosen in the selector, starts empty.
    page.fill("#gallery-new-name", "team")
    page.click("#gallery-create button[type='submit']")
    wait_until(page, lambda: page.input_value("#gallery-select") == "team", what="the new gallery selected")
    wait_until(page, lambda: page.get_attribute("#people", "data-count") == "0", what="its empty people list")


def test_gallery_changes_without_a_key_are_refused(page, lfw):
    page.fill("#api-key", "")
    page.dispatch_event("#api-key", "change")
    page.click("button[data-tab='gallery']")
    page.fill("#person-name", "Nobody")
    page.set_input_files("#person-file", str(lfw_image(lfw, "Colin_Powell", 1)))
    page.click("#person-add button")
    page.wait_for_selector("#status.error", timeout=10_000)
    assert "API key" in page.inner_text("#status")


def test_api_docs_render_offline(browser, server):
    # Chromium here has no internet: Swagger UI must come from this server.
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(server["url"] + "docs")
    pg.wait_for_selector(".opblock", timeout=30_000)
    text = pg.inner_text("body")
    assert "/v1/detect" in text and "/v1/galleries" in text
    context.close()
