"""Photo libraries: scan, grouping, curation, search, and the faults (kill -9, two scans, another model).

Real LFW photos (skipped when ../shared/data/lfw is absent); the grouping core also on small arrays. The store-level
tests run on an SQLite library and on one in a PostgreSQL gallery (the `backend` fixture of tests/test_gallery.py,
a throwaway server per session), and so do the REST routes; the page uses SQLite.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from facelab.errors import StoreError
from facelab.gallery.store import file_sha256
from facelab.library import LibraryConflict, LibraryNotFound, open_library
from facelab.library.cluster import ClusterParams, assign, cluster, drop_small

from .conftest import ROOT, lfw_image, run_cli
from .pg_server import pg_uri  # noqa: F401  (fixture: the session's throwaway PostgreSQL server)
from .test_gallery import COPIED_TABLES, copy_rows, location_maker

# the PostgreSQL server wheel asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is unset
pytestmark = pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR")
LIBRARY_TABLES = {
    **COPIED_TABLES,
    "library_files": "source, size, mtime, sha256, status, reason, detail, faces, scanned",
    "library_faces": "id, source, sha256, face_index, n_faces, box, landmarks, pose, quality, score, vector, thumb, "
                     "group_id, photo_id, grouped, added",
    "library_rejects": "face_id, person_id, other_face"}

PEOPLE = {"Colin_Powell": range(1, 7), "Tony_Blair": range(1, 7), "George_W_Bush": range(1, 7),
          "Laura_Bush": range(3, 8)}
GROUP_PHOTO = ("Laura_Bush", 2)  # Laura and George W. Bush side by side


# -- the grouping core, on arrays ----------------------------------------------------------------------------
def _blobs(rng, people: int, each: int, spread: float = 0.05):
    centres = rng.standard_normal((people, 32))
    x = np.repeat(centres, each, 0) + spread * rng.standard_normal((people * each, 32)) * np.sqrt(32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(people), each)


def test_cluster_recovers_separated_people_and_leaves_singles_unsorted():
    rng = np.random.default_rng(1)
    x, truth = _blobs(rng, 30, 4)
    lone = rng.standard_normal((5, 32)).astype(np.float32)
    lone /= np.linalg.norm(lone, axis=1, keepdims=True)
    for method in ("whispers", "components"):
        labels = cluster(np.vstack([x, lone]), ClusterParams(threshold=0.7, method=method))
        assert (labels[len(x):] == -1).all()  # one face each: unsorted
        got = labels[:len(x)]
        for p in range(30):  # every person exactly one group, every group one person
            assert len(set(got[truth == p])) == 1 and got[truth == p][0] >= 0
        assert len(set(got)) == 30


def test_drop_small_numbers_groups_by_size():
    labels = drop_small(np.array([5, 5, 5, 9, 9, 3, -1]), 2)
    assert labels.tolist() == [0, 0, 0, 1, 1, -1, -1]


def test_assign_follows_neighbours_and_obeys_forbidden():
    rng = np.random.default_rng(2)
    x, truth = _blobs(rng, 5, 6)
    known, new = x[::2], x[1::2]
    got = assign(new, known, truth[::2] * 2 + 1, threshold=0.7)
    assert (got == truth[1::2] * 2 + 1).all()
    forbid = {0: {int(got[0])}}
    assert assign(new[:1], known, truth[::2] * 2 + 1, 0.7, forbidden=forbid)[0] != got[0]


# -- a real library ----------------------------------------------------------------------------------------------
def make_photos(lfw: Path, root: Path) -> Path:
    root.mkdir(parents=True)
    for person, numbers in PEOPLE.items():
        (root / person[:5]).mkdir(exist_ok=True)
        for n in numbers:
            shutil.copy(lfw_image(lfw, person, n), root / person[:5] / f"{person}_{n:04d}.jpg")
    shutil.copy(lfw_image(lfw, *GROUP_PHOTO), root / "together.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def photos(lfw, tmp_path_factory) -> Path:
    return make_photos(lfw, tmp_path_factory.mktemp("lib") / "Photos")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request) -> str:
    """The gallery store under the library (as in tests/test_gallery.py)."""
    return request.param


@pytest.fixture(scope="module")
def scanned(backend, request, photos, tmp_path_factory) -> Path | str:
    """A library scanned once from `photos` (closed); tests copy it before changing it. An SQLite library's
    location is a Path, a PostgreSQL one's a URL."""
    location = location_maker(backend, request, tmp_path_factory.mktemp("libdb"))("lib")
    lib = open_library(location)
    report = lib.scan(photos, progress=False)
    lib.close()
    assert report.files_added == sum(len(v) for v in PEOPLE.values()) + 1
    return Path(location) if backend == "sqlite" else location


def copy_library(source: Path | str, location: str) -> None:
    if isinstance(source, Path):
        shutil.copy(source, location)
        return
    src, dst = open_library(source), open_library(location)
    try:
        copy_rows(src.tables.store, dst.tables.store, LIBRARY_TABLES,
                  [("people", "id"), ("photos", "id"), ("changes", "seq"), ("library_faces", "id")])
    finally:
        src.close()
        dst.close()


@pytest.fixture
def new_location(backend, request, tmp_path):
    return location_maker(backend, request, tmp_path)


@pytest.fixture
def lib(scanned, new_location):
    location = new_location("lib")
    copy_library(scanned, location)
    library = open_library(location)
    yield library
    library.close()


def rows(location: Path | str, sql: str, params=()) -> list[tuple]:
    """Rows of a query on a library that is not open here (as another process would read them)."""
    import facelab

    g = facelab.open_gallery(location, create=False)
    try:
        return g.store.read(sql, params)
    finally:
        g.close()


def person_of(source: str) -> str:
    return Path(source).name.rsplit("_", 1)[0]


def test_scan_finds_every_face_and_groups_each_person_apart(lib, photos):
    stats = lib.stats()
    assert stats["skipped_files"] == {"unreadable": 1}
    assert stats["faces"] >= sum(len(v) for v in PEOPLE.values()) + 2  # the group photo holds two faces
    groups = lib.people()["groups"]
    assert groups, "no group formed"
    seen = {}
    for g in groups:
        members = {person_of(f.source) for f in lib.faces_of(g["group"]) if f.n_faces == 1}
        assert len(members) <= 1, f"{g['group']} mixes {members}"
        for m in members:
            seen[m] = max(seen.get(m, 0), g["faces"])
    for person, numbers in PEOPLE.items():  # each person's photos mostly in one group of their own
        assert seen.get(person, 0) >= len(numbers) - 2, (person, seen)
    face = lib.faces_of(groups[0]["group"])[0]
    assert lib.thumbnail(face.id)[:2] == b"\xff\xd8"  # a JPEG thumbnail
    assert face.box["width"] > 30 and face.quality["size"] > 30


def _group_of(lib, person: str) -> str:
    best = max(lib.people()["groups"],
               key=lambda g: sum(person_of(f.source) == person for f in lib.faces_of(g["group"])))
    return best["group"]


def test_naming_a_group_makes_a_gallery_person_that_identify_and_later_scans_know(lib, lfw, photos, tmp_path):
    import facelab

    n = lib.name(_group_of(lib, "Colin_Powell"), "Colin")["faces"]
    assert n >= 4 and lib.gallery.person("Colin").photos == n
    found = facelab.identify(lfw_image(lfw, "Colin_Powell", 9), gallery=lib.gallery)
    assert found[0].best is not None and found[0].best.person == "Colin"
    # a new photo of him, scanned later, joins Colin without a full regrouping
    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(lfw_image(lfw, "Colin_Powell", 10), more / "new_colin.jpg")
    report = lib.scan(more, progress=False)
    assert report.grouping["joined_people"] == 1 and report.grouping["mode"] == "incremental", report.grouping
    assert any(f.source.endswith("new_colin.jpg") for f in lib.faces_of("Colin"))


def test_rescan_reads_only_new_and_changed_files_and_drops_deleted_ones(lib, photos, tmp_path, lfw):
    work = tmp_path / "Photos"
    shutil.copytree(photos, work)
    unsorted_before = lib.stats()["unsorted_faces"]
    first = lib.scan(work, progress=False)  # another folder: all read
    g = first.grouping  # copies of faces already grouped join their groups, and are not grouped anew as well
    assert g["joined_groups"] > 0
    assert g["pool"] == g["considered"] - g["joined_groups"] - g["joined_people"] + unsorted_before
    before = lib.stats()["faces"]
    again = lib.scan(work, progress=False)
    assert again.files_added == 0 and again.unchanged == first.files_added + 1
    (work / "Tony_" / "Tony_Blair_0001.jpg").unlink()
    shutil.copy(lfw_image(lfw, "Tony_Blair", 7), work / "Tony_" / "Tony_Blair_0002.jpg")  # changed content
    third = lib.scan(work, progress=False)
    assert third.removed_files == 1 and third.changed == 1 and third.files_added == 1
    assert third.removed_faces >= 1  # Tony_Blair_0001 holds two faces
    changed = str(work / "Tony_" / "Tony_Blair_0002.jpg")
    rows = lib.tables.read("SELECT sha256 FROM library_faces WHERE source = ?", (changed,))
    assert len(rows) == third.faces_added and {r[0] for r in rows} == {file_sha256(Path(changed))}
    assert lib.stats()["faces"] == before - third.removed_faces - 1 + third.faces_added  # 0002 had one face
    assert not any(f.source.endswith("Tony_" + os.sep + "Tony_Blair_0001.jpg") for f in lib.faces_of("unsorted"))


def test_curation_merge_split_move_and_errors_change_nothing(lib):
    blair = _group_of(lib, "Tony_Blair")
    bush = _group_of(lib, "George_W_Bush")
    lib.name(blair, "Tony")
    with pytest.raises(LibraryNotFound):
        lib.name(blair, "Again")  # the group no longer exists: it is Tony now
    with pytest.raises(LibraryConflict):
        lib.merge("Tony", "Tony")
    faces = [f.id for f in lib.faces_of("Tony")]
    res = lib.split("Tony", faces[:1])
    assert lib.faces_of(res["new_group"])[0].id == faces[0]
    lib.move(faces[0], "Tony")
    assert len(lib.faces_of("Tony")) == len(faces)
    merged = lib.merge(bush, "Tony")["faces"]
    assert len(lib.faces_of("Tony")) == len(faces) + merged
    lib.forget("Tony")
    with pytest.raises(LibraryNotFound):
        lib.move(faces[0], "unsorted")  # forgotten: the face no longer exists
    with pytest.raises(StoreError):
        lib.name("group:9999", "Nobody")


def test_not_this_person_is_remembered_through_a_full_regrouping(lib):
    lib.name(_group_of(lib, "Colin_Powell"), "Colin")
    face = lib.faces_of("Colin")[0]
    lib.reject(face.id)
    assert face.id not in {f.id for f in lib.faces_of("Colin")}
    lib.group(full=True)
    lib.group()
    assert face.id not in {f.id for f in lib.faces_of("Colin")}
    # in an unnamed group, too
    group = _group_of(lib, "Tony_Blair")
    members = [f.id for f in lib.faces_of(group)]
    g_face, mates = members[0], set(members[1:])
    lib.reject(g_face)
    for full in (True, False):
        lib.group(full=full)
        after = lib.face(g_face)
        assert after.group is None or not mates & {f.id for f in lib.faces_of(f"group:{after.group}")}
    assert lib.face(members[1]).group is not None  # the others are still grouped together


def test_forget_deletes_faces_thumbnails_and_embeddings_everywhere(lib):
    lib.name(_group_of(lib, "Colin_Powell"), "Colin")
    ids = [f.id for f in lib.faces_of("Colin")]
    marks = ",".join("?" * len(ids))
    photo_ids = [r[0] for r in lib.tables.read(f"SELECT photo_id FROM library_faces WHERE id IN ({marks})", ids)]
    assert lib.thumbnail(ids[0])[:2] == b"\xff\xd8"
    lib.forget("Colin")
    with pytest.raises(LibraryNotFound):
        lib.thumbnail(ids[0])
    path = lib.location
    lib.close()
    q = ",".join("?" * len(ids))
    assert rows(path, f"SELECT COUNT(*) FROM library_faces WHERE id IN ({q})", ids)[0][0] == 0
    assert rows(path, f"SELECT COUNT(*) FROM embeddings WHERE photo_id IN ({','.join('?' * len(photo_ids))})",
                photo_ids)[0][0] == 0
    assert rows(path, f"SELECT COUNT(*) FROM photos WHERE id IN ({','.join('?' * len(photo_ids))})",
                photo_ids)[0][0] == 0
    assert rows(path, "SELECT COUNT(*) FROM people WHERE name = 'Colin'")[0][0] == 0
    assert rows(path, "SELECT COUNT(*) FROM changes WHERE op = 'del'")[0][0] == len(photo_ids)  # index too
    lib.gallery = open_library(path).gallery  # the fixture closes it again


def test_search_with_and_without_and_albums(lib, tmp_path):
    lib.name(_group_of(lib, "George_W_Bush"), "George")
    lib.name(_group_of(lib, "Laura_Bush"), "Laura")
    together = lib.photos_with(["George", "Laura"])
    assert "together.jpg" in [Path(p).name for p in together]  # (some of Laura's LFW photos show him too)
    assert all(lib.tables.read("SELECT MIN(n_faces) FROM library_faces WHERE source = ?", (p,))[0][0] >= 2
               for p in together)
    george_only = lib.photos_with(["George"], without=["Laura"])
    assert george_only and all(person_of(p) == "George_W_Bush" for p in george_only)
    people = {p["name"]: p for p in lib.people()["people"]}
    assert people["George"]["cover_face"] is not None and people["George"]["faces"] >= 4
    res = lib.export_album("Laura", tmp_path / "album")
    links = sorted((tmp_path / "album").iterdir())
    assert len(links) == res["photos"] and all(p.is_symlink() and p.resolve().exists() for p in links)
    lib.export_album("Laura", tmp_path / "laura.json", mode="json")
    assert len(json.loads((tmp_path / "laura.json").read_text())["photos"]) == res["photos"]


def test_a_library_of_another_model_is_refused(scanned):
    with pytest.raises(StoreError, match="not dlib_resnet"):
        open_library(scanned, model="dlib_resnet")
    own = open_library(scanned)  # opened without a model: its own
    try:
        assert own.model.name == "sface+flip"
    finally:
        own.close()


# -- the CLI and the faults, in real processes -----------------------------------------------------------------
def test_cli_errors_are_one_line_with_an_exit_code(scanned, new_location, backend):
    db = new_location("lib")
    copy_library(scanned, db)
    before = Path(db).read_bytes() if backend == "sqlite" else _state(db)
    for args in (["name", "group:9999", "X"], ["merge", "group:1", "group:1"], ["move", "99999", "unsorted"]):
        res = run_cli("library", *args, "-l", db)
        assert res.returncode == 6, res.stderr
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("facelab: error:")
    assert (Path(db).read_bytes() if backend == "sqlite" else _state(db)) == before
    res = run_cli("library", "people", "-l", db, "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["groups"]
    res = run_cli("library", "people", "-l", new_location("missing"))
    assert res.returncode == 6 and "no such library" in res.stderr


def _state(location: str) -> list[tuple]:
    """Every face's sorting and every person, of a library not open here."""
    return (rows(location, "SELECT id, group_id, photo_id, grouped FROM library_faces ORDER BY id")
            + rows(location, "SELECT id, name FROM people ORDER BY id"))


def _faces(db: Path | str) -> list[tuple[str, int]]:
    return [tuple(r) for r in rows(db, "SELECT source, face_index FROM library_faces ORDER BY source, face_index")]


def _files_done(db: str) -> int:
    """How many files a scan running elsewhere has stored so far (0 while the library does not exist yet)."""
    if not db.startswith("postgresql://"):
        if not Path(db).exists():
            return 0
        try:
            con = sqlite3.connect(db, timeout=1)
            try:
                return con.execute("SELECT COUNT(*) FROM library_files").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            return 0
    try:
        return rows(db, "SELECT COUNT(*) FROM library_files")[0][0]
    except StoreError:  # not created yet
        return 0


def test_kill_9_mid_scan_loses_nothing_and_doubles_nothing(photos, scanned, new_location):
    db = new_location("lib")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "facelab", "library", "scan", str(photos), "-l", db,
                             "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        done = _files_done(db)
        if done >= 3:
            break
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed and 0 < done < len(_faces(scanned)), "the scan was not killed half-way"
    res = run_cli("library", "scan", photos, "-l", db, "--no-progress", "--json")
    assert res.returncode in (0, 7), res.stderr  # 7 when the broken file is read in this run
    assert _faces(db) == _faces(scanned)  # nothing lost, nothing doubled


def test_two_scans_at_once_store_each_face_once(photos, scanned, new_location):
    db = new_location("lib")
    open_library(db).close()  # created first, as `library scan` would by the first one to get there
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "facelab", "library", "scan", str(photos), "-l", db,
                               "--no-progress", "--timeout", "60"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        codes.append(p.returncode)
        assert p.returncode in (0, 7), err  # 7: it read the broken file (the other may have found it done)
    assert 7 in codes
    assert _faces(db) == _faces(scanned)


# -- REST -----------------------------------------------------------------------------------------------------
@pytest.fixture
def api(scanned, new_location, tmp_path):
    from fastapi.testclient import TestClient

    from facelab.server import Settings, create_app
    from facelab.server.auth import create_key

    db = new_location("lib")
    copy_library(scanned, db)
    settings = Settings(data_dir=tmp_path / "data", gallery=db, model="sface+flip")
    key = create_key(settings.keys_file, "test")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, {"Authorization": f"Bearer {key}"}


def test_rest_people_faces_thumbs_and_curation(api):
    client, auth = api
    base = "/v1/galleries/default/library"
    res = client.get(f"{base}/people")
    assert res.status_code == 200, res.text
    group = res.json()["groups"][0]
    faces = client.get(f"{base}/faces", params={"who": group["group"]}).json()["faces"]
    assert len(faces) == group["faces"]
    thumb = client.get(f"{base}/faces/{group['cover_face']}/thumb")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    # changes need the key
    assert client.post(f"{base}/name", json={"who": group["group"], "name": "Ann"}).status_code == 401
    res = client.post(f"{base}/name", json={"who": group["group"], "name": "Ann"}, headers=auth)
    assert res.status_code == 200 and res.json()["faces"] == group["faces"]
    res = client.post(f"{base}/name", json={"who": group["group"], "name": "Ann"}, headers=auth)
    assert res.status_code == 404 and res.json()["error"]["code"] == "not_found"
    res = client.post(f"{base}/merge", json={"source": "Ann", "into": "Ann"}, headers=auth)
    assert res.status_code == 409 and res.json()["error"]["code"] == "conflict"
    assert client.get("/v1/galleries/default/people").json()["people"][0]["name"] == "Ann"
    res = client.get(f"{base}/photos", params={"with": "Ann"})
    assert len(res.json()["photos"]) == group["photos"]
    res = client.post(f"{base}/reject", json={"face": faces[0]["id"]}, headers=auth)
    assert res.status_code == 200 and res.json()["rejected"] == "Ann"
    assert client.delete(f"{base}/people/Ann", headers=auth).status_code == 200
    res = client.post(f"{base}/move", json={"face": faces[1]["id"], "to": "unsorted"}, headers=auth)
    assert res.status_code == 404  # forgotten with Ann
    assert client.get(f"{base}/faces/{faces[1]['id']}/thumb").status_code == 404


# -- the People view in Chromium (as tests/test_browser.py, against a library served as the default gallery) ------
@pytest.fixture
def people_page(scanned, tmp_path):
    import socket
    import threading

    import uvicorn

    from facelab.server import Settings, create_app
    from facelab.server.auth import create_key

    from .test_browser import CHROMIUM, CHROMIUM_ARGS

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    db = tmp_path / "lib.db"
    shutil.copy(scanned, db)
    settings = Settings(data_dir=tmp_path / "data", gallery=str(db), model="sface+flip")
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
    pw = sync_api.sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:
        pw.stop()
        srv.should_exit = True
        pytest.skip(f"Chromium cannot be launched from {CHROMIUM} ({str(exc).splitlines()[0]})")
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
    page.goto(f"http://127.0.0.1:{port}/#key={key}")
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    yield page
    chromium.close()
    pw.stop()
    srv.should_exit = True
    thread.join(timeout=10)
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the routes, not the store
def test_people_view_names_merges_and_moves_with_the_mouse(people_page):
    from .test_browser import wait_until

    page = people_page
    page.on("dialog", lambda d: d.accept())
    page.click("button[data-tab='library']")
    wait_until(page, lambda: int(page.get_attribute("#people-grid", "data-count") or 0) >= 3, what="group cards")
    n_cards = int(page.get_attribute("#people-grid", "data-count"))
    wait_until(page, lambda: page.locator("#people-grid img[src^='blob:']").count() >= 3, what="cover faces")
    first = page.locator("#people-grid li.card").nth(0)
    faces = int(first.inner_text().split(" face")[0].split()[-1])
    first.click()
    wait_until(page, lambda: page.get_attribute("#people-faces", "data-count") == str(faces), what="its faces")
    page.fill("#people-name", "Ann")
    page.click("#people-name-form button[type='submit']")
    page.wait_for_selector("#people-grid li.card.named[data-ref='Ann']", timeout=20_000)
    # drag another group onto Ann: merged
    other = page.locator("#people-grid li.card:not(.named)").nth(0)
    other_ref = other.get_attribute("data-ref")
    other.drag_to(page.locator("#people-grid li[data-ref='Ann']"))
    page.wait_for_selector(f"#people-grid li[data-ref='{other_ref}']", state="detached", timeout=20_000)
    wait_until(page, lambda: page.get_attribute("#people-grid", "data-count") == str(n_cards - 1), what="one card less")
    # drag one of Ann's faces onto another group: moved there
    page.click("#people-grid li[data-ref='Ann']")
    wait_until(page, lambda: page.inner_text("#people-title") == "Ann", what="Ann opened")
    n_ann = int(page.get_attribute("#people-faces", "data-count"))
    target = page.locator("#people-grid li.card:not(.named)").nth(0)
    page.locator("#people-faces li.lib-face").nth(0).drag_to(target)
    wait_until(page, lambda: page.get_attribute("#people-faces", "data-count") == str(n_ann - 1),
               what="the face moved out of Ann")


# -- grouping at scale: the threshold's size rule, the cells of incremental grouping, other models (issue 15) --------
ALL_IMAGES = ROOT / "out" / "lfw_cache" / "all_images.npz"
LIBRARY_MODELS = ("sface+flip", "sface", "fused+flip", "fused", "dlib_resnet", "dlib_resnet+flip")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _identities_like_lfw(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in vectors for a checkout without the LFW cache (a clean CI clone: the cache takes over an hour to
    make): 400 people with 5 photos and 1,600 with 1 or 2, in LFW's proportions of same- and different-person
    similarity for sface+flip (same person ~0.6, strangers ~0 +- 0.09), so the cell mechanics run everywhere."""
    rng = np.random.default_rng(seed)
    sizes = np.concatenate([np.full(400, 5), rng.integers(1, 3, 1600)])
    rng.shuffle(sizes)
    centres = _unit(rng.standard_normal((len(sizes), 128)))
    person = np.repeat(np.arange(len(sizes)), sizes)
    noise = rng.standard_normal((len(person), 128)) * (0.8 / np.sqrt(128))
    return _unit(centres[person] + noise), person


@pytest.fixture(scope="module")
def lfw_vectors() -> tuple[np.ndarray, np.ndarray]:
    """Every LFW image's sface+flip vector and person (benchmarks/lfw_all_images.py's cache); without the cache,
    synthetic identities with LFW's similarity levels (the tests check grouping mechanics, not accuracy)."""
    if not ALL_IMAGES.exists():
        return _identities_like_lfw()
    data = np.load(ALL_IMAGES)
    found = data["found"].astype(bool)
    return _unit(_unit(data["sface"][found]) + _unit(data["sface_mirror"][found])), data["person"][found]


def _insert_faces(lib, vectors: np.ndarray, start: int) -> list[int]:
    """Faces straight into the library's table, as a scan stores them (without images)."""
    with lib.tables.write() as cur:
        for i, v in enumerate(vectors):
            cur.execute("INSERT INTO library_faces (source, sha256, face_index, n_faces, box, quality, score, vector, "
                        "added) VALUES (?, ?, 0, 1, '{}', '{\"size\": 100}', 1.0, ?, 0)",
                        (f"/lfw/{start + i}.jpg", f"{start + i:064x}", v.tobytes()))
        marks = ",".join("?" * len(vectors))
        return [r[0] for r in cur.execute(f"SELECT id FROM library_faces WHERE source IN ({marks}) ORDER BY id",
                                          [f"/lfw/{start + i}.jpg" for i in range(len(vectors))]).fetchall()]


def test_grouping_threshold_rises_with_library_size_and_never_falls():
    from facelab.library.grouping import grouping_params

    base = grouping_params("sface+flip")
    assert base.ref_faces > 0 and base.per_decade > 0  # measured: benchmarks/cluster_scale.py --choose-size-rule
    assert grouping_params("sface+flip", base.ref_faces // 10).threshold == base.threshold
    assert grouping_params("sface+flip", base.ref_faces).threshold == base.threshold
    t10, t100 = (grouping_params("sface+flip", base.ref_faces * m).threshold for m in (10, 100))
    assert t10 == pytest.approx(base.threshold + base.per_decade, abs=1e-3)
    assert t100 == pytest.approx(base.threshold + 2 * base.per_decade, abs=1e-3)


def test_every_library_model_has_a_grouping_threshold_and_another_model_is_refused(photos, tmp_path):
    from facelab.errors import ModelError
    from facelab.library.grouping import grouping_params

    for model in LIBRARY_MODELS:
        assert 0 < grouping_params(model).threshold < 1
    lib = open_library(tmp_path / "lib.db", model="sface/bgr")  # a model no grouping was measured with
    try:
        with pytest.raises(ModelError, match="no grouping threshold measured for model 'sface/bgr'"):
            lib.scan(photos, progress=False)
        assert lib.tables.read("SELECT COUNT(*) FROM library_files")[0][0] == 0  # refused before reading a photo
        with pytest.raises(ModelError):
            lib.group()
    finally:
        lib.close()
    res = run_cli("library", "scan", str(photos), "-l", str(tmp_path / "lib.db"), "--no-progress")
    assert res.returncode == 5 and "no grouping threshold" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_incremental_grouping_of_a_big_library_reads_only_the_cells_near_new_faces(lfw_vectors, tmp_path,
                                                                                   monkeypatch):
    from facelab.library import cells, grouping
    from facelab.library import cluster as cluster_module

    # "big" from 1,000 faces: the path a million-face library takes (k-means cells, neighbours from them)
    monkeypatch.setattr(grouping, "EXACT_LIMIT", 1000)
    monkeypatch.setattr(cluster_module, "EXACT_LIMIT", 1000)
    x, person = lfw_vectors
    names, counts = np.unique(person, return_counts=True)
    monkeypatch.setattr(cells, "FACES_PER_CELL", 16)  # as many cells per new face as 1,000 new in a million
    many = names[counts >= 4][:300]       # people with 4+ photos: the last photo of 40 arrives in a later scan
    few = names[counts <= 2][:1500]       # people with one or two photos: strangers around them
    old_rows, new_rows = [], []
    for i, name in enumerate(many):
        rows = np.flatnonzero(person == name)
        old_rows += rows[:-1].tolist() if i < 40 else rows.tolist()
        new_rows += rows[-1:].tolist() if i < 40 else []
    old_rows += np.flatnonzero(np.isin(person, few)).tolist()
    db = tmp_path / "lib.db"
    lib = open_library(db)
    old_ids = _insert_faces(lib, x[old_rows], 0)
    g = lib.group(full=True)
    assert lib.tables.read("SELECT COUNT(*) FROM library_face_cells")[0][0] == len(old_ids)  # every face filed
    assert g["faces_read"] == len(old_ids)

    # name five groups; "not this person" once from a person and once from a group
    groups = lib.people()["groups"]
    for i, grp in enumerate(groups[:5]):
        lib.name(grp["group"], f"person{i}")
    taken = lib.faces_of("person0")[0].id
    lib.reject(taken)
    group_faces = [f.id for f in lib.faces_of(groups[5]["group"])]
    lib.reject(group_faces[0])
    before = {p["name"]: {f.id for f in lib.faces_of(p["name"])} for p in lib.people()["people"]}
    new_ids = _insert_faces(lib, x[new_rows], len(old_rows))
    lib.close()
    shutil.copy(db, tmp_path / "all.db")  # the same library, to be sorted reading every face

    lib = open_library(db)
    got = lib.group()
    assert got["mode"] == "incremental" and got["considered"] == len(new_ids)
    assert got["faces_read"] < 0.4 * got["faces"]  # only the cells near the new faces
    after = {p["name"]: {f.id for f in lib.faces_of(p["name"])} for p in lib.people()["people"]}
    assert all(before[n] <= after[n] for n in before)  # every named person keeps every face
    assert taken not in after["person0"]
    mates = {f.id for f in lib.faces_of(groups[5]["group"])} if group_faces[1:] else set()
    assert group_faces[0] not in mates
    assert lib.tables.read("SELECT COUNT(*) FROM library_face_cells")[0][0] == len(old_ids) + len(new_ids)
    near = {f.id: (f.person, f.group) for f in lib.tables.faces("WHERE library_faces.id >= ?", (new_ids[0],))}
    lib.close()

    everything = open_library(tmp_path / "all.db")
    with everything.tables.write() as cur:
        cur.execute("DELETE FROM library_cells")  # no cells: this run reads every face (and files them)
    full = everything.group()
    assert full["faces_read"] == full["faces"]
    every = {f.id: (f.person, f.group) for f in everything.tables.faces("WHERE library_faces.id >= ?",
                                                                        (new_ids[0],))}
    everything.close()
    # the new faces land where reading every face puts them: the same person, or both in some group
    same = sum((near[i][0] == every[i][0]) and ((near[i][1] is None) == (every[i][1] is None)) for i in new_ids)
    assert same >= 0.95 * len(new_ids)
    joined = sum(near[i][0] is not None or near[i][1] is not None for i in new_ids)
    assert joined >= 0.8 * len(new_ids)  # most last photos join their person's earlier ones


def test_forgetting_a_person_deletes_their_cells_too(lfw_vectors, new_location, monkeypatch):
    """On both backends: the cell tables are made by the store's dialect, new faces are filed by an upsert."""
    from facelab.library import grouping

    monkeypatch.setattr(grouping, "EXACT_LIMIT", 500)
    x, person = lfw_vectors
    lib = open_library(new_location("lib"))
    try:
        _insert_faces(lib, x[:1200], 0)
        lib.group(full=True)
        grp = lib.people()["groups"][0]
        lib.name(grp["group"], "Ann")
        ids = [f.id for f in lib.faces_of("Ann")]
        lib.forget("Ann")
        marks = ",".join("?" * len(ids))
        left = lib.tables.read(f"SELECT COUNT(*) FROM library_face_cells WHERE face_id IN ({marks})", ids)[0][0]
        assert ids and left == 0
        filed = lib.tables.read("SELECT COUNT(*) FROM library_face_cells")[0][0]
        new_ids = _insert_faces(lib, x[1200:1300], 1200)
        got = lib.group()  # incremental: the new faces are filed in their nearest cells
        assert got["mode"] == "incremental" and got["considered"] == len(new_ids)
        assert lib.tables.read("SELECT COUNT(*) FROM library_face_cells")[0][0] == filed + len(new_ids)
    finally:
        lib.close()
