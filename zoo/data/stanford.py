"""The Stanford aclImdb layout: a folder or `aclImdb_v1.tar.gz`, read without unpacking.

Ratings from the `<id>_<rating>.txt` names become a `rating` column. Review
files must be UTF-8: one that is not is an error that names the file (no
silent replacement). Only regular files are read, each at most
MAX_REVIEW_BYTES. The parsed splits (train, test, unsupervised) are cached as
Arrow under the zoo cache, one process building an entry at a time.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
from pathlib import Path
from typing import Iterator

from zoo.data.cache import cache_dir, cache_lock
from zoo.errors import DataError

LABEL_NAMES = ("neg", "pos")
MAX_REVIEW_BYTES = 16 << 20  # IMDB's longest review is 14 kB; a larger "review" file is a mistake
_STANFORD_FILE = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")
HINT = ("point --data (or the env var ZOO_DATA) at a local copy: a folder in the Hub layout "
        "(loadable with datasets.load_dataset), a folder of CSV / TSV / JSON lines / parquet files, "
        "train=PATH,test=PATH, an aclImdb folder, or aclImdb_v1.tar.gz")


def find_stanford_folder(path: Path) -> Path | None:
    for candidate in (path, path / "aclImdb"):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    return None


def _stanford_from_folder(root: Path) -> Iterator[tuple[str, str, bytes]]:
    """(name inside aclImdb, where to tell the user, raw bytes) for each review file.

    Only regular files (or links to them) are read: a FIFO, socket or device named like a review would block
    or never end, so it is an error naming it, as is a review over MAX_REVIEW_BYTES.
    """
    for file in sorted(root.glob("*/*/*.txt")):
        try:
            info = file.stat()
        except OSError as exc:
            raise DataError(f"{file} cannot be read ({exc.strerror}); remove it or fix the link") from None
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"{file} is not a regular file (a FIFO, socket, device or a link to one); remove it")
        if info.st_size > MAX_REVIEW_BYTES:
            raise DataError(f"{file} is {info.st_size:,} bytes, over the {MAX_REVIEW_BYTES:,} a review may have; remove it")
        yield f"aclImdb/{file.relative_to(root).as_posix()}", str(file), file.read_bytes()


def _stanford_from_tarball(tarball: Path) -> Iterator[tuple[str, str, bytes]]:
    try:
        with tarfile.open(tarball, "r:*") as archive:
            for member in archive:
                if not _STANFORD_FILE.search(member.name):
                    continue
                where = f"{tarball}:{member.name}"
                if not member.isfile():
                    raise DataError(f"{where} is not a regular file (a link or device entry); repack the tarball without it")
                if member.size > MAX_REVIEW_BYTES:
                    raise DataError(f"{where} is {member.size:,} bytes, over the {MAX_REVIEW_BYTES:,} a review may "
                                    "have; repack the tarball without it")
                yield member.name, where, archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{tarball} is not a readable tarball ({type(exc).__name__}: {exc}); "
                        "download aclImdb_v1.tar.gz again") from None


def _parse_stanford(records: Iterator[tuple[str, str, bytes]], origin: Path) -> dict:
    from datasets import ClassLabel, Dataset, Features, Value

    rows: dict[str, list] = {"train": [], "test": [], "unsupervised": []}
    label_of = {"neg": 0, "pos": 1, "unsup": -1}
    for name, where, raw in records:
        match = _STANFORD_FILE.search(name)
        if not match:
            continue
        split, kind, review_id, rating = match.groups()
        if not (int(rating) == 0 if kind == "unsup" else 1 <= int(rating) <= 10):
            expected = "0 for unlabeled reviews" if kind == "unsup" else "1 to 10"
            raise DataError(f"{where} has rating {int(rating)} in its name, expected {expected}; rename or remove it")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{where} is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                            "fix or remove that review file") from None
        target = "unsupervised" if kind == "unsup" else split
        rows[target].append((label_of[kind], int(review_id), text, int(rating)))
    if not rows["train"] and not rows["test"]:
        raise DataError(f"{origin} holds no aclImdb/{{train,test}}/{{pos,neg}}/<id>_<rating>.txt files; {HINT}")
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(LABEL_NAMES)), "rating": Value("int8")})
    out = {}
    for split, items in rows.items():
        items.sort(key=lambda r: (r[0] if r[0] >= 0 else 0, r[1]))  # the Hub's order: neg, then pos, by id
        columns = {"text": [r[2] for r in items], "label": [r[0] for r in items], "rating": [r[3] for r in items]}
        if items or split != "unsupervised":
            out[split] = Dataset.from_dict(columns, features=features)
    return out


def load_stanford(path: Path) -> dict:
    """Parse a Stanford folder or tarball once; later loads memory-map the cached Arrow copy.

    One process builds a cache entry at a time (a file lock); an entry that cannot be loaded is rebuilt.
    """
    import shutil

    import datasets

    info = path.stat()
    newest = info.st_mtime_ns if path.is_file() else max(p.stat().st_mtime_ns for p in path.glob("*/*"))
    key = hashlib.sha256(f"{path.resolve()}|{info.st_size}|{newest}".encode()).hexdigest()[:16]
    target = cache_dir() / "stanford" / key
    with cache_lock(target):
        if (target / "dataset_dict.json").is_file():
            try:
                return dict(datasets.load_from_disk(str(target)))
            except Exception:  # a corrupt or half-deleted entry: parse the source again
                shutil.rmtree(target, ignore_errors=True)
        records = _stanford_from_tarball(path) if path.is_file() else _stanford_from_folder(path)
        parsed = _parse_stanford(records, path)
        tmp = target.with_name(f"{key}.{os.getpid()}.tmp")
        datasets.DatasetDict(parsed).save_to_disk(str(tmp))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        return dict(datasets.load_from_disk(str(target)))
