"""Photos to train the real-time network on: a public set, downloaded once and checked.

The feed-forward network of Johnson et al. (2016) learns one style from thousands of
ordinary photos; the content images are what it generalizes from, so any varied set of
everyday pictures will do. COCO's 5,000 validation images (778 MB) are enough for a first
network and fit on Colab's disk.

    fetch_photo_set("data/photos")      # data/val2017.zip, checked, then data/photos/*.jpg

A download that large is often cut off on Colab, so it goes to `path + ".part"` and a
second call asks the server only for the bytes still missing (an HTTP Range request).
Nothing becomes `path` until the whole file matches its published checksum: a truncated
or altered archive never turns into training data. A file the user already has at `path`
is checked, never overwritten. Standard library and tqdm only.
"""

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import StyleTransferError

CHECKSUM_ALGORITHMS = ("sha256", "sha1", "md5")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")

PHOTO_SETS = {
    "coco-val2017": {
        "url": "http://images.cocodataset.org/zips/val2017.zip",
        # The SHA-1 published in gluon-cv's download script for COCO
        # (github.com/dmlc/gluon-cv, scripts/datasets/mscoco.py, _DOWNLOAD_URLS).
        "checksum": "sha1:4950dc9d00dbe1c933ee0170f5797584351d2a41",
        "size_mb": 778,
        "photos": 5000,
        "licence": "images from Flickr, each under the Creative Commons licence listed in "
                   "COCO's annotations (cocodataset.org); COCO annotations CC BY 4.0",
        "description": "COCO 2017 validation: 5,000 everyday photos of people, animals, "
                       "streets and rooms, a varied content set for one style network",
    },
}


def download(url, path, checksum, *, progress=True, chunk_bytes=1 << 20, timeout_s=30):
    """Download `url` to `path` unless it is there already; check it; return `path` as a Path.

    `checksum` is "ALGO:HEX" with ALGO one of sha256, sha1, md5. The bytes go to
    `path + ".part"`; if that exists from an interrupted run, only the rest is asked for
    (a server that ignores the request sends everything, and the file starts over). Once
    complete, the .part is checked against `checksum`: on a match it becomes `path` in one
    step (os.replace), on a mismatch it is deleted. A file already at `path` is returned at
    once if it matches and left untouched if it does not. Every failure is a one-line
    StyleTransferError; a network failure keeps the .part, so running again resumes.
    """
    path = Path(path)
    algorithm, expected = _parse_checksum(checksum)
    if path.is_dir():
        raise StyleTransferError(f"{path} is a folder: give a file name for the download")
    if path.exists():
        got = _file_digest(path, algorithm)
        if got == expected:
            return path
        raise StyleTransferError(
            f"{path} already exists but is not the file at {url} ({algorithm} {_short(got)}, "
            f"expected {_short(expected)}): move it away or delete it, then run again")
    part = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _fetch(url, part, progress, chunk_bytes, timeout_s)
    except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, resets, disk full
        have = part.stat().st_size if part.exists() else 0
        if isinstance(err, urllib.error.HTTPError) and 400 <= err.code < 500 \
                and err.code not in (408, 429):  # not a passing failure: retrying won't help
            advice = "check the address"
        elif have:
            advice = f"run again to resume from {have / 1e6:.1f} MB"
        else:
            advice = "run again to retry"
        raise StyleTransferError(f"could not download {url}: {_reason(err)}; {advice}") from None
    got = _file_digest(part, algorithm)
    if got != expected:
        part.unlink()
        raise StyleTransferError(
            f"the download of {url} is damaged or the file changed on the server ({algorithm} "
            f"{_short(got)}, expected {_short(expected)}): it was deleted, run again to "
            f"download it afresh")
    os.replace(part, path)
    return path


def extract_photos(archive, folder, *, limit=None, progress=True):
    """Copy the photos (.jpg, .jpeg, .png) of a zip archive into `folder`; return how many it holds.

    Photos land flat in `folder` under their base names; the first of two with the same base
    name wins. Entries with an absolute path or a ".." are skipped, so nothing is ever
    written outside `folder` (a crafted archive cannot plant files elsewhere). A photo
    already there with the same size is not extracted again, and each one is written to a
    temporary name first, so an interrupted run leaves no half photo. With `limit`, only
    the first `limit` photos in name order are taken. The count returned is of all photos
    in `folder`, including any that were there before.
    """
    from tqdm.auto import tqdm

    archive, folder = Path(archive), Path(folder)
    _check_limit(limit)
    try:
        with zipfile.ZipFile(archive) as zf:
            photos = _photo_entries(zf)[:limit]
            folder.mkdir(parents=True, exist_ok=True)
            for name, info in tqdm(photos, unit="photo", disable=not progress,
                                   desc=f"Extracting {archive.name}"):
                target = folder / name
                if target.is_file() and target.stat().st_size == info.file_size:
                    continue
                temporary = folder / (name + ".part")
                with zf.open(info) as source, open(temporary, "wb") as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
                os.replace(temporary, target)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise StyleTransferError(
            f"{archive} is not a readable zip archive ({_reason(err)}): delete it and "
            f"download it again") from None
    except OSError as err:
        raise StyleTransferError(f"could not extract {archive}: {_reason(err)}") from None
    return _count_photos(folder)


def fetch_photo_set(folder, name="coco-val2017", *, limit=None, progress=True, cache_dir=None):
    """Download the photo set `name` (see PHOTO_SETS) and extract its photos into `folder`.

    The archive is kept next to `folder` (or in `cache_dir`), so a second call neither
    downloads nor extracts again; once `folder` holds enough photos (`limit`, or the whole
    set) it returns without looking at the archive at all. Delete the archive to win back
    its space after extraction. Returns `folder` as a Path.
    """
    if name not in PHOTO_SETS:
        raise StyleTransferError(
            f"no photo set named {name!r}: choose one of {', '.join(sorted(PHOTO_SETS))}")
    _check_limit(limit)
    photo_set = PHOTO_SETS[name]
    folder = Path(folder)
    wanted = photo_set["photos"] if limit is None else min(limit, photo_set["photos"])
    if folder.is_dir() and _count_photos(folder) >= wanted:
        return folder
    archive = Path(cache_dir or folder.resolve().parent) / PurePosixPath(photo_set["url"]).name
    download(photo_set["url"], archive, photo_set["checksum"], progress=progress)
    extract_photos(archive, folder, limit=limit, progress=progress)
    return folder


def _fetch(url, part, progress, chunk_bytes, timeout_s):
    """Bring `part` to the full content of `url`, asking only for what is missing."""
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing past `have`: complete, the checksum decides
            err.close()
            return
        raise
    with response:
        total = None
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start > have:
                raise http.client.HTTPException(
                    f"the server resumed at byte {start}, not {have}")
            os.truncate(part, start)  # a server may resume earlier than asked: keep its bytes
            have, mode = start, "ab"
        elif response.status == 200:  # Range ignored: the whole file again
            have, mode = 0, "wb"
        else:
            raise http.client.HTTPException(f"unexpected HTTP status {response.status}")
        length = response.headers.get("Content-Length")
        if total is None and length is not None and length.isdigit():
            total = have + int(length)
        with open(part, mode) as out, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                           unit_divisor=1024, disable=not progress,
                                           desc=f"Downloading {part.name[:-5]}") as bar:
            while chunk := response.read(chunk_bytes):
                out.write(chunk)
                have += len(chunk)
                bar.update(len(chunk))
    if total is not None and have < total:  # read() returns b"" on a dropped connection
        raise ConnectionError(f"the connection closed after {have} of {total} bytes")


def _content_range(value):
    """(first byte, total or None) of a Content-Range header such as "bytes 100-299/300"."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if match is None:
        raise http.client.HTTPException(f"unreadable Content-Range {value!r}")
    total = match.group(2)
    return int(match.group(1)), None if total == "*" else int(total)


def _photo_entries(zf):
    """(base name, ZipInfo) of the archive's photos that are safe to extract, by name."""
    chosen = {}
    for info in zf.infolist():
        if info.is_dir():
            continue
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in parts or not parts:
            continue
        base = parts[-1]
        if Path(base).suffix.lower() in PHOTO_SUFFIXES:
            chosen.setdefault(base, info)
    return sorted(chosen.items())


def _check_limit(limit):
    """A one-line error unless `limit` is None or a whole number of photos, 0 or more."""
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise StyleTransferError(f"limit must be a whole number of photos, got {limit!r}")


def _count_photos(folder):
    """How many photos `folder` holds (files with a photo suffix, any case)."""
    return sum(1 for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def _parse_checksum(checksum):
    """("sha1", "4950dc...") from "sha1:4950dc..."; a one-line error for anything else."""
    algorithm, _, hex_digest = str(checksum).partition(":")
    algorithm, hex_digest = algorithm.strip().lower(), hex_digest.strip().lower()
    if algorithm not in CHECKSUM_ALGORITHMS or not re.fullmatch(r"[0-9a-f]+", hex_digest):
        raise StyleTransferError(
            f"checksum must look like 'sha256:HEX' ({', '.join(CHECKSUM_ALGORITHMS)}), "
            f"got {checksum!r}")
    return algorithm, hex_digest


def _file_digest(path, algorithm):
    """The hex digest of a file, read a megabyte at a time."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _short(hex_digest):
    """The first 12 hex digits: enough to tell two digests apart in a message."""
    return hex_digest[:12] + "..."


def _reason(err):
    """The cause of a network or file error in a few words, on one line."""
    if isinstance(err, urllib.error.HTTPError):
        text = f"HTTP {err.code} {err.reason}"
    elif isinstance(err, urllib.error.URLError):
        if isinstance(err.reason, BaseException):  # e.g. ConnectionRefusedError: its strerror
            return _reason(err.reason)
        text = str(err.reason)
    elif isinstance(err, http.client.IncompleteRead):
        text = f"the connection closed early ({len(err.partial)} bytes read)"
    elif isinstance(err, OSError) and err.strerror:
        text = err.strerror
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())
