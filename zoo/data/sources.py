"""Where labelled texts come from: a Hub dataset id, a local folder `datasets.load_dataset` opens, one data file
or files per split (`train=PATH,test=PATH`), or a Stanford aclImdb folder or tarball (zoo.data.stanford).

`load_raw(source)` returns the source's splits as `datasets` Datasets, named
train / validation / test (and IMDB's unsupervised); zoo.data.splits checks and
normalizes them. Problems are DataErrors naming the file (and, for JSON lines,
the line).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
from pathlib import Path

from zoo.data.cache import cache_dir, cache_lock
from zoo.data.stanford import HINT, find_stanford_folder, load_stanford
from zoo.errors import DataError

HUB_ID = "stanfordnlp/imdb"
DATA_ENV = "ZOO_DATA"
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document")
LABEL_COLUMNS = ("label", "labels", "sentiment", "class", "target")
SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "dev": "validation", "test": "test"}
FILE_FORMATS = {".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t"}), ".json": ("json", {}),
                ".jsonl": ("json", {}), ".parquet": ("parquet", {}), ".arrow": ("arrow", {})}


def resolve_source(source: str | None) -> str:
    return source or os.environ.get(DATA_ENV) or HUB_ID


def absolute_source(source: str) -> str:
    """`source` with its local paths made absolute (as a run records it), Hub ids unchanged."""
    files = _split_files(source)
    if files is not None:
        return ",".join(f"{split}={path.resolve()}" for split, path in files.items())
    path = Path(source).expanduser()
    return str(path.resolve()) if path.exists() else source


def load_raw(source: str, config: str | None) -> dict:
    """The splits of `source` as `datasets` Datasets, unchecked; a Hub dataset's `config` if it has several."""
    _quiet_datasets()
    files = _split_files(source)
    if files is not None:
        return _load_files(files)
    path = Path(source).expanduser()
    if path.exists():
        if path.is_file():
            if path.name.endswith((".tar.gz", ".tgz", ".tar")):
                return load_stanford(path)
            if path.suffix.lower() in FILE_FORMATS:
                return _load_files({"train": path})
            raise DataError(f"{path} is a file the zoo cannot read (not {', '.join(FILE_FORMATS)} or an aclImdb "
                            f"tarball); {HINT}")
        stanford = find_stanford_folder(path)
        if stanford is not None:
            return load_stanford(stanford)
        return _load_folder(path, config)
    if _looks_like_hub_id(source):
        return _load_from_hub(source, config)
    raise DataError(f"data path {source} does not exist; {HINT}")


_SPLIT_START = re.compile(r"(?:^|,)\s*(\w+)\s*=")


def _split_files(source: str) -> dict[str, Path] | None:
    """`train=PATH,test=PATH[,validation=PATH]` as {split: path}; None for any other source.

    Only a comma followed by a split name and `=` starts the next split, so a path may itself hold commas
    (`train=reviews,2024.csv,test=...`)."""
    starts = [m for m in _SPLIT_START.finditer(source) if m.group(1).lower() in SPLIT_NAMES]
    if not starts or starts[0].start() != 0:
        named = re.match(r"\s*(\w+)\s*=", source)
        if named:
            raise DataError(f"--data {source}: unknown split {named.group(1)!r}; use train, validation (or dev) and test")
        return None
    files = {}
    for match, following in zip(starts, [*starts[1:], None]):
        name = match.group(1)
        split = SPLIT_NAMES[name.lower()]
        if split in files:
            raise DataError(f"--data {source}: the {split} split is given twice")
        path = source[match.end():following.start() if following else len(source)].strip()
        if not path:
            raise DataError(f"--data {source}: no path after {name}=")
        files[split] = Path(path).expanduser()
    return files


def _load_files(files: dict[str, Path]) -> dict:
    import datasets

    out = {}
    for split, path in files.items():
        if not path.is_file():
            raise DataError(f"{path} ({split} split) does not exist or is not a file")
        builder, options = FILE_FORMATS.get(path.suffix.lower(), (None, None))
        if builder is None:
            raise DataError(f"{path}: the zoo reads {', '.join(FILE_FORMATS)} files; convert it to one of them")
        if builder == "parquet":
            _check_parquet_files([path])
        try:
            cache = _datasets_cache([path])
            with cache_lock(cache):
                out[split] = datasets.load_dataset(builder, data_files={split: str(path)}, split=split,
                                                   cache_dir=str(cache), **options)
        except Exception as exc:  # datasets raises many types for malformed files
            cause = exc.__cause__ or exc
            raise DataError(_json_problem([path]) or f"cannot read {path} as {builder}: {type(cause).__name__}: "
                            f"{cause}") from None
    return out


def _load_folder(folder: Path, config: str | None) -> dict:
    import datasets

    data_files = [p for p in folder.rglob("*") if p.suffix.lower() in FILE_FORMATS and p.is_file()]
    if not data_files and not (folder / "README.md").is_file():
        raise DataError(f"{folder} holds no data files ({', '.join(FILE_FORMATS)}) and is not an aclImdb folder; {HINT}")
    _check_parquet_files([p for p in data_files if p.suffix.lower() == ".parquet"])
    try:
        cache = _datasets_cache([p for p in folder.rglob("*") if p.is_file()])
        with cache_lock(cache):  # processes started together (torchrun) prepare it once
            loaded = datasets.load_dataset(str(folder), *([config] if config else []), cache_dir=str(cache))
    except Exception as exc:  # datasets raises many types for malformed folders and files
        cause = exc.__cause__ or exc
        raise DataError(_json_problem(data_files) or f"cannot load {folder} with datasets.load_dataset: "
                        f"{type(cause).__name__}: {cause}") from None
    return dict(loaded)


def _json_problem(files: list[Path]) -> str | None:
    """The first line of a JSON-lines file among `files` that is not a JSON object, named with its line number
    (the `datasets` library's errors name a byte position at most); None when every file reads."""
    import json as json_module

    for path in sorted(p for p in files if p.suffix.lower() in (".json", ".jsonl")):
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            return f"{path} cannot be read as UTF-8 JSON ({exc}); fix or convert the file"
        try:
            json_module.loads(text)  # one JSON document (an array of rows) is fine
            continue
        except ValueError:
            pass
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json_module.loads(line)
            except ValueError as exc:
                return f"{path} line {number} is not valid JSON ({exc}); fix or remove that line"
            if not isinstance(row, dict):
                return f"{path} line {number} is a JSON {type(row).__name__}, not an object of columns; fix that line"
    return None


def _datasets_cache(files: list[Path]) -> Path:
    """A `datasets` cache folder for exactly these files as they are now (paths, sizes, modification times).

    `datasets`' own cache key can miss a change: two folders with the same name and the same README configs
    shared one cache entry, and the second loaded the first one's rows. Keyed by the files themselves, a change
    or another folder always gets its own entry.
    """
    stats = sorted((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return cache_dir() / "datasets" / hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def _check_parquet_files(files: list[Path]) -> None:
    """Name the file when a parquet file is corrupt, empty, or has null cells (datasets' own errors do not)."""
    import pyarrow.parquet as pq

    for file in sorted(files):
        try:
            parquet = pq.ParquetFile(file)
        except Exception as exc:
            raise DataError(f"{file} is not a readable parquet file ({exc}); download it again") from None
        if parquet.metadata.num_rows == 0:
            raise DataError(f"{file} has no rows: that split is empty")
        names = parquet.schema_arrow.names
        for column in {*TEXT_COLUMNS, *LABEL_COLUMNS} & set(names):
            nulls = _parquet_nulls(parquet, names.index(column))
            if nulls:
                raise DataError(f"{file} has {nulls} row(s) with no {column} (null); fill or drop those rows")


def _parquet_nulls(parquet, index: int) -> int:
    """Null count of a parquet column from the row groups' statistics (read the column only when they lack it)."""
    nulls = 0
    for group in range(parquet.metadata.num_row_groups):
        stats = parquet.metadata.row_group(group).column(index).statistics
        if stats is None or not stats.has_null_count:
            name = parquet.schema_arrow.names[index]
            return parquet.read(columns=[name]).column(name).null_count
        nulls += stats.null_count
    return nulls


def _looks_like_hub_id(source: str) -> bool:
    """`owner/name` or `name`, not a path-looking string or a tarball name."""
    return (re.fullmatch(r"[\w-][\w.-]*(/[\w-][\w.-]*)?", source) is not None
            and not source.endswith((".tar.gz", ".tgz", ".tar", *FILE_FORMATS)))


def _hub_reachable(timeout: float = 5.0) -> bool:
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load_from_hub(dataset_id: str, config: str | None) -> dict:
    import datasets

    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    if not offline and not _hub_reachable():
        raise DataError(f"cannot reach the Hugging Face Hub to download {dataset_id} (and no local path "
                        f"{dataset_id} exists); {HINT}, for example --data ../shared/datasets/imdb")
    try:
        return dict(datasets.load_dataset(dataset_id, config) if config else datasets.load_dataset(dataset_id))
    except Exception as exc:
        raise DataError(f"loading {dataset_id} from the Hub failed: {type(exc).__name__}: {exc}; {HINT}") from None


def _quiet_datasets() -> None:
    """`datasets`' own chatter: no "Repo card metadata block was not found" per local folder with a README.md
    (huggingface_hub's logger says that one), and its progress bars only where someone watches (stderr a
    terminal)."""
    import datasets
    import huggingface_hub

    datasets.logging.set_verbosity_error()
    huggingface_hub.logging.set_verbosity_error()
    if not sys.stderr.isatty():
        datasets.disable_progress_bars()
