"""Loading IMDB through the `datasets` library from the Hub, a Hub-layout folder, or the Stanford layout.

Sources (`--data SRC`, else the env var ZOO_DATA, else the Hub id):

- a Hub dataset id, default `stanfordnlp/imdb` (needs the network);
- a local folder in the Hub layout, loadable with `datasets.load_dataset(folder)`;
- a Stanford `aclImdb` folder (or a folder holding one), or `aclImdb_v1.tar.gz`,
  read without unpacking; ratings from the `<id>_<rating>.txt` names become a
  `rating` column. Review files must be UTF-8: one that is not is an error that
  names the file (no silent replacement). Parsed copies are cached as Arrow.

Splits: `train` and `validation` are a seeded, label-stratified split of the
source's train split (10% validation: 22,500 / 2,500); `test` is the source's
test split and is only ever used for final evaluation; `unsupervised` (50,000
unlabeled reviews) is optional.

Text normalization (exported models depend on it): HTML line breaks
(`<br />`, `<br/>`, `<br>`, any case) and NUL characters become one space;
everything else is left to SentencePiece's own normalization (NFKC,
whitespace folding).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from zoo.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

HUB_ID = "stanfordnlp/imdb"
DATA_ENV = "ZOO_DATA"
LABEL_NAMES = ("neg", "pos")
VALIDATION_FRACTION = 0.1
MAX_REVIEW_BYTES = 16 << 20  # IMDB's longest review is 14 kB; a larger "review" file is a mistake
BREAK_PATTERN = r"<br\s*/?>"  # case-insensitive; exporters/text_frontend.py has its RE2 form
_BREAK = re.compile(BREAK_PATTERN, re.IGNORECASE)
_STANFORD_FILE = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")
_HINT = ("point --data (or the env var ZOO_DATA) at a local copy: a folder in the Hub layout "
         "(loadable with datasets.load_dataset), an aclImdb folder, or aclImdb_v1.tar.gz")


def normalize_text(text: str) -> str:
    """The zoo's own text normalization: HTML line breaks and NUL characters become a space."""
    return _BREAK.sub(" ", text).replace("\x00", " ")


def cache_dir() -> Path:
    """Where the zoo caches parsed data, tokenizers and tokenized splits (env ZOO_CACHE)."""
    return Path(os.environ.get("ZOO_CACHE") or Path.home() / ".cache" / "zoo")


@contextmanager
def cache_lock(path: Path) -> Iterator[None]:
    """Hold the inter-process lock for building the cache entry at `path`.

    Inside it no other process writes that entry, so temporary files left by a killed builder are removed.
    """
    import shutil

    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        for stale in [*path.parent.glob(f"{path.name}.*.tmp"), *path.parent.glob(f".{path.name}.*.tmp")]:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
        yield


def resolve_source(source: str | None) -> str:
    return source or os.environ.get(DATA_ENV) or HUB_ID


@dataclass
class ImdbSplits:
    source: str
    fingerprint: str  # identifies the data and the train/validation carve
    train: "Dataset"
    validation: "Dataset"
    test: "Dataset"
    unsupervised: "Dataset | None"

    def named(self) -> dict[str, "Dataset"]:
        out = {"train": self.train, "validation": self.validation, "test": self.test}
        if self.unsupervised is not None:
            out["unsupervised"] = self.unsupervised
        return out


def load_imdb(source: str | None = None, *, seed: int = 0, with_unsupervised: bool = False) -> ImdbSplits:
    """Load IMDB from `source` and carve the validation split. Raises DataError on bad input."""
    source = resolve_source(source)
    raw = _load_raw(source)
    for split in ("train", "test"):
        _check_split(raw, split, labeled=True, source=source)
    if with_unsupervised:
        _check_split(raw, "unsupervised", labeled=False, source=source)
    train, validation = _stratified_split(raw["train"], VALIDATION_FRACTION, seed)
    key = "|".join([content_fingerprint(raw["train"]), content_fingerprint(raw["test"]), f"{VALIDATION_FRACTION}",
                    f"{seed}", "content-1"])
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    return ImdbSplits(source, fingerprint, train, validation, raw["test"],
                      raw["unsupervised"] if with_unsupervised else None)


def content_fingerprint(dataset: "Dataset") -> str:
    """sha256 of a split's texts and labels, in order: the same for any copy of the same data, wherever it lies.

    Hashes Arrow buffers directly (about 0.1 s for IMDB's 25,000 reviews), independently of how the column
    happens to be chunked.
    """
    import pyarrow as pa

    table = dataset.data.table if hasattr(dataset.data, "table") else dataset.data
    digest = hashlib.sha256()
    for chunk in table.column("text").chunks:
        chunk = chunk.cast(pa.large_string()) if chunk.type != pa.large_string() else chunk
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)[chunk.offset:chunk.offset + len(chunk) + 1]
        values = chunk.buffers()[2]
        if values is not None and len(offsets):
            digest.update(memoryview(values)[int(offsets[0]):int(offsets[-1])])
        digest.update(np.diff(offsets).tobytes())
    labels = table.column("label").to_numpy(zero_copy_only=False)
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _stratified_split(dataset: "Dataset", fraction: float, seed: int) -> tuple["Dataset", "Dataset"]:
    """A seeded split that holds out `fraction` of each label (fast: plain numpy on the label column)."""
    labels = np.asarray(dataset.data.column("label").to_numpy(zero_copy_only=False))
    rng = np.random.default_rng(seed)
    held_out = []
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        held_out.append(rng.permutation(members)[: round(len(members) * fraction)])
    validation = np.sort(np.concatenate(held_out))
    keep = np.setdiff1d(np.arange(len(labels)), validation, assume_unique=True)
    return dataset.select(keep), dataset.select(validation)


def _check_split(raw: dict, split: str, *, labeled: bool, source: str) -> None:
    if split not in raw:
        raise DataError(f"{source} has no {split!r} split (found: {', '.join(raw) or 'none'}); {_HINT}")
    dataset = raw[split]
    if len(dataset) == 0:
        raise DataError(f"the {split!r} split of {source} is empty")
    missing = {"text", "label"} - set(dataset.column_names)
    if missing:
        raise DataError(f"the {split!r} split of {source} lacks column(s) {', '.join(sorted(missing))}")
    for column in ("text", "label") if labeled else ("text",):
        nulls = dataset.data.column(column).null_count
        if nulls:
            raise DataError(f"the {split!r} split of {source} has {nulls} row(s) with no {column} (null); "
                            "fill or drop those rows")
    if not str(dataset.features["text"].dtype).endswith("string"):
        raise DataError(f"the {split!r} split of {source} has a {dataset.features['text'].dtype} text column; "
                        "texts must be strings")
    if labeled:
        found = set(dataset.unique("label"))
        if not found <= {0, 1}:
            bad = sorted(found - {0, 1})
            raise DataError(f"the {split!r} split of {source} has labels {bad} outside {{0, 1}} (0 = neg, 1 = pos)")


def _load_raw(source: str) -> dict:
    path = Path(source).expanduser()
    if path.exists():
        if path.is_file():
            if path.name.endswith((".tar.gz", ".tgz", ".tar")):
                return _cached_stanford(path)
            raise DataError(f"{path} is a file but not an aclImdb tarball (.tar.gz); {_HINT}")
        stanford = _find_stanford_folder(path)
        if stanford is not None:
            return _cached_stanford(stanford)
        if any(path.glob("**/*.parquet")) or any(path.glob("**/*.arrow")) or (path / "README.md").is_file():
            return _load_hub_layout(str(path))
        raise DataError(f"{path} is neither a Hub-layout folder (parquet files) nor an aclImdb folder; {_HINT}")
    if _looks_like_hub_id(source):
        return _load_from_hub(source)
    raise DataError(f"data path {source} does not exist; {_HINT}")


def _looks_like_hub_id(source: str) -> bool:
    """`owner/name` or `name`, not a path-looking string or a tarball name."""
    return (re.fullmatch(r"[\w-][\w.-]*(/[\w-][\w.-]*)?", source) is not None
            and not source.endswith((".tar.gz", ".tgz", ".tar", ".parquet")))


def _load_hub_layout(folder: str) -> dict:
    import datasets

    _check_parquet_files(Path(folder))
    try:
        return dict(datasets.load_dataset(folder))
    except Exception as exc:  # datasets raises many types for malformed folders and files
        cause = exc.__cause__ or exc
        raise DataError(f"cannot load {folder} with datasets.load_dataset: {type(cause).__name__}: {cause}") from None


def _check_parquet_files(folder: Path) -> None:
    """Name the file when a parquet file is corrupt or empty (datasets' own errors do not)."""
    import pyarrow.parquet as pq

    for file in sorted(folder.glob("**/*.parquet")):
        try:
            rows = pq.ParquetFile(file).metadata.num_rows
        except Exception as exc:
            raise DataError(f"{file} is not a readable parquet file ({exc}); download it again") from None
        if rows == 0:
            raise DataError(f"{file} has no rows: the {file.name.split('-')[0]!r} split of {folder} is empty")
        for column in ("text", "label"):
            nulls = _parquet_nulls(file, column)
            if nulls:
                raise DataError(f"{file} has {nulls} row(s) with no {column} (null); fill or drop those rows")


def _parquet_nulls(file: Path, column: str) -> int:
    """Null count of a parquet column from the row groups' statistics (read the column only when they lack it)."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(file)
    names = parquet.schema_arrow.names
    if column not in names:
        return 0
    index = names.index(column)
    nulls = 0
    for group in range(parquet.metadata.num_row_groups):
        stats = parquet.metadata.row_group(group).column(index).statistics
        if stats is None or not stats.has_null_count:
            return parquet.read(columns=[column]).column(column).null_count
        nulls += stats.null_count
    return nulls


def _hub_reachable(timeout: float = 5.0) -> bool:
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load_from_hub(dataset_id: str) -> dict:
    import datasets

    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    if not offline and not _hub_reachable():
        raise DataError(f"cannot reach the Hugging Face Hub to download {dataset_id} (and no local path "
                        f"{dataset_id} exists); {_HINT}, for example --data ../shared/datasets/imdb")
    try:
        return dict(datasets.load_dataset(dataset_id))
    except Exception as exc:
        raise DataError(f"loading {dataset_id} from the Hub failed: {type(exc).__name__}: {exc}; {_HINT}") from None


# --- the Stanford layout -------------------------------------------------------------------------


def _find_stanford_folder(path: Path) -> Path | None:
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
        raise DataError(f"{origin} holds no aclImdb/{{train,test}}/{{pos,neg}}/<id>_<rating>.txt files; {_HINT}")
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(LABEL_NAMES)), "rating": Value("int8")})
    out = {}
    for split, items in rows.items():
        items.sort(key=lambda r: (r[0] if r[0] >= 0 else 0, r[1]))  # the Hub's order: neg, then pos, by id
        columns = {"text": [r[2] for r in items], "label": [r[0] for r in items], "rating": [r[3] for r in items]}
        if items or split != "unsupervised":
            out[split] = Dataset.from_dict(columns, features=features)
    return out


def _cached_stanford(path: Path) -> dict:
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
