"""helpers.download against a real HTTP server on 127.0.0.1, serving bytes from memory."""

import hashlib
import http.server
import io
import os
import random
import re
import socket
import threading
import zipfile

import pytest
from PIL import Image

from helpers.download import PHOTO_SETS, download, extract_photos, fetch_photo_set
from helpers.errors import StyleTransferError

PAYLOAD = random.Random(0).randbytes(300_000)
CUT_AT = 100_000  # bytes sent before the first connection is dropped
CHUNK = 16 * 1024


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Server:
    """A one-file HTTP server with switches for the ways a real one misbehaves."""

    def __init__(self):
        self.payload = PAYLOAD
        self.ranges = []  # the Range header of each request, None where there was none
        self.drop_after = None  # first request: announce everything, send this many bytes, close
        self.ignore_range = False  # answer 200 with the whole file, whatever was asked
        self.not_found = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.ranges.append(self.headers.get("Range"))
                if server.not_found:
                    self.send_error(404)
                    return
                data, asked = server.payload, self.headers.get("Range")
                if asked and not server.ignore_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    body = data[start:]
                else:
                    self.send_response(200)
                    body = data
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drop_after is not None and len(server.ranges) == 1:
                    body = body[:server.drop_after]
                self.wfile.write(body)  # HTTP/1.0: the connection closes after the handler

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/photos.zip"

    @property
    def hits(self):
        return len(self.ranges)


@pytest.fixture
def server():
    s = Server()
    thread = threading.Thread(target=s.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    thread.join()


def one_line(err):
    message = str(err.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "md5"])
def test_full_download_is_checked_and_moved_into_place(server, tmp_path, algorithm):
    path = tmp_path / "data" / "photos.zip"
    checksum = f"{algorithm}:{hashlib.new(algorithm, PAYLOAD).hexdigest().upper()}"
    assert download(server.url, str(path), checksum, progress=False, chunk_bytes=CHUNK) == path
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "data" / "photos.zip.part").exists()
    assert server.ranges == [None]


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path, capsys):
    path, part = tmp_path / "photos.zip", tmp_path / "photos.zip.part"
    server.drop_after = CUT_AT
    with pytest.raises(StyleTransferError) as err:
        download(server.url, path, sha256(PAYLOAD), progress=False, chunk_bytes=CHUNK)
    message = one_line(err)
    assert server.url in message and "run again to resume from 0.1 MB" in message
    assert part.read_bytes() == PAYLOAD[:CUT_AT] and not path.exists()

    download(server.url, path, sha256(PAYLOAD), progress=True, chunk_bytes=CHUNK)
    assert server.ranges == [None, f"bytes={CUT_AT}-"]
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert "Downloading photos.zip" in capsys.readouterr().err  # the tqdm bar


def test_a_server_that_ignores_range_starts_the_file_over(server, tmp_path):
    path = tmp_path / "photos.zip"
    (tmp_path / "photos.zip.part").write_bytes(b"x" * 5000)  # not the start of PAYLOAD
    server.ignore_range = True
    download(server.url, path, sha256(PAYLOAD), progress=False, chunk_bytes=CHUNK)
    assert server.ranges == ["bytes=5000-"]
    assert path.read_bytes() == PAYLOAD


def test_a_complete_part_answered_416_goes_straight_to_the_checksum(server, tmp_path):
    path = tmp_path / "photos.zip"
    (tmp_path / "photos.zip.part").write_bytes(PAYLOAD)
    download(server.url, path, sha256(PAYLOAD), progress=False)
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"]
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    path = tmp_path / "photos.zip"
    with pytest.raises(StyleTransferError) as err:
        download(server.url, path, sha256(b"another file"), progress=False, chunk_bytes=CHUNK)
    message = one_line(err)
    assert server.url in message
    assert hashlib.sha256(b"another file").hexdigest()[:12] in message
    assert hashlib.sha256(PAYLOAD).hexdigest()[:12] in message
    assert not path.exists() and not (tmp_path / "photos.zip.part").exists()


def test_an_existing_file_is_checked_without_the_network_and_never_overwritten(server, tmp_path):
    path = tmp_path / "photos.zip"
    path.write_bytes(PAYLOAD)
    assert download(server.url, path, sha256(PAYLOAD), progress=False) == path
    assert server.hits == 0

    mine = b"the user's own file"
    path.write_bytes(mine)
    with pytest.raises(StyleTransferError) as err:
        download(server.url, path, sha256(PAYLOAD), progress=False)
    assert str(path) in one_line(err)
    assert path.read_bytes() == mine and server.hits == 0


def test_404_names_the_url(server, tmp_path):
    server.not_found = True
    with pytest.raises(StyleTransferError) as err:
        download(server.url, tmp_path / "photos.zip", sha256(PAYLOAD), progress=False)
    message = one_line(err)
    assert server.url in message and "404" in message and "check the address" in message
    assert not (tmp_path / "photos.zip").exists()


def test_a_refused_connection_is_one_line(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/photos.zip"
    with pytest.raises(StyleTransferError) as err:
        download(url, tmp_path / "photos.zip", sha256(PAYLOAD), progress=False, timeout_s=5)
    assert one_line(err) == f"could not download {url}: Connection refused; run again to retry"


@pytest.mark.parametrize("checksum", ["sha256", "crc32:abcd", "sha1:not-hex", None])
def test_a_malformed_checksum_is_one_line(tmp_path, checksum):
    with pytest.raises(StyleTransferError) as err:
        download("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", checksum, progress=False)
    assert "sha256:HEX" in one_line(err)


def jpeg_bytes(colour):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def archive(tmp_path):
    """val2017/b.jpg, val2017/a.JPG, a text file, "../evil.jpg" and "/abs.png"."""
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("val2017/", b"")
        zf.writestr("val2017/b.jpg", jpeg_bytes("red"))
        zf.writestr("val2017/a.JPG", jpeg_bytes("blue"))
        zf.writestr("val2017/readme.txt", b"not a photo")
        zf.writestr("../evil.jpg", jpeg_bytes("black"))
        zf.writestr("/abs.png", b"absolute")
    with zipfile.ZipFile(path) as zf:  # zipfile keeps the hostile names as written
        assert {"../evil.jpg", "/abs.png"} <= set(zf.namelist())
    return path


def test_extract_photos_takes_only_safe_photos_flat(tmp_path, archive):
    folder = tmp_path / "out" / "photos"
    assert extract_photos(archive, folder, progress=False) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["a.JPG", "b.jpg"]
    assert (folder / "b.jpg").read_bytes() == jpeg_bytes("red")
    assert list((tmp_path / "out").iterdir()) == [folder]
    assert not list(tmp_path.rglob("evil.jpg")) and not list(tmp_path.rglob("abs.png"))

    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert extract_photos(archive, folder, progress=True) == 2  # same sizes: nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_extract_photos_limit_takes_the_first_in_name_order(tmp_path, archive):
    folder = tmp_path / "photos"
    assert extract_photos(archive, folder, limit=1, progress=False) == 1
    assert [p.name for p in folder.iterdir()] == ["a.JPG"]


@pytest.mark.parametrize("limit", [-1, 2.5, "10"])
def test_a_bad_limit_is_one_line(tmp_path, archive, limit):
    with pytest.raises(StyleTransferError) as err:
        extract_photos(archive, tmp_path / "photos", limit=limit, progress=False)
    assert "limit" in one_line(err)


def test_a_bad_zip_names_the_file(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(StyleTransferError) as err:
        extract_photos(bad, tmp_path / "photos", progress=False)
    assert str(bad) in one_line(err)
    assert not (tmp_path / "photos").exists()


def test_fetch_photo_set_downloads_extracts_then_returns_at_once(server, tmp_path, archive,
                                                                 monkeypatch):
    server.payload = archive.read_bytes()
    monkeypatch.setitem(PHOTO_SETS, "tiny", {
        "url": server.url, "checksum": sha256(server.payload), "size_mb": 0.001, "photos": 2,
        "licence": "made for this test", "description": "two tiny photos"})
    folder = tmp_path / "data" / "photos"
    assert fetch_photo_set(folder, "tiny", progress=False) == folder
    assert sorted(p.name for p in folder.iterdir()) == ["a.JPG", "b.jpg"]
    assert (tmp_path / "data" / "photos.zip").read_bytes() == server.payload
    assert fetch_photo_set(folder, "tiny", progress=False) == folder
    assert server.hits == 1


def test_fetch_photo_set_unknown_name_lists_the_sets(tmp_path):
    with pytest.raises(StyleTransferError) as err:
        fetch_photo_set(tmp_path / "photos", "imagenet")
    message = one_line(err)
    assert "'imagenet'" in message and "coco-val2017" in message


def test_photo_sets_are_complete():
    for name, photo_set in PHOTO_SETS.items():
        assert photo_set["url"].startswith(("http://", "https://")), name
        algorithm, _, digest = photo_set["checksum"].partition(":")
        assert len(digest) == hashlib.new(algorithm).digest_size * 2, name
        assert photo_set["photos"] > 0 and photo_set["size_mb"] > 0, name
        assert photo_set["licence"] and "\n" not in photo_set["description"], name
    assert PHOTO_SETS["coco-val2017"]["checksum"] == "sha1:4950dc9d00dbe1c933ee0170f5797584351d2a41"
    assert os.path.basename(PHOTO_SETS["coco-val2017"]["url"]) == "val2017.zip"
