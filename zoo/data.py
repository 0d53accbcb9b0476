"""Labelled text datasets through the `datasets` library: IMDB by default, or any the user brings.

Sources (`DataSpec.source`: `--data SRC`, else the env var ZOO_DATA, else the Hub id):

- a Hub dataset id, default `stanfordnlp/imdb` (needs the network; `--data-config NAME`
  picks a config);
- a local folder that `datasets.load_dataset(folder)` opens: the Hub layout, or CSV /
  TSV / JSON lines / parquet files whose names say the split (train, dev / validation /
  valid, test);
- one data file (its rows are the train split), or `train=PATH,test=PATH[,validation=PATH]`;
- a Stanford `aclImdb` folder or `aclImdb_v1.tar.gz` (zoo.stanford).

Columns: the text and label columns are `--text-column` / `--label-column`, else the
first present of TEXT_COLUMNS and LABEL_COLUMNS. Labels may be ints, strings or a
`ClassLabel`; the classes are the ClassLabel's names, else the sorted distinct values
of the train split, and every split's labels become their index in that list. Each
split is normalized to two columns, `text` and `label`.

Splits: `validation` is the dataset's own when it has one, else a seeded,
label-stratified 10% of train (IMDB: 22,500 / 2,500). `test` is only ever used for
final evaluation, and may be missing. `limit_train` keeps a seeded random subset of
train for quick looks. `unsupervised` (IMDB's 50,000 unlabeled reviews) is optional;
it never holds a validation or test text: rows equal to one (after normalization and
whitespace folding) are left out (IMDB's repeats 270 test and 42 validation reviews).

Text normalization (exported models depend on it): HTML line breaks (`<br />`,
`<br/>`, `<br>`, any case) and NUL characters become one space; everything else is
left to SentencePiece's own normalization (NFKC, whitespace folding).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.cache import cache_dir, cache_lock
from zoo.errors import DataError
from zoo.stanford import HINT, find_stanford_folder, load_stanford

if TYPE_CHECKING:
    from datasets import Dataset

HUB_ID = "stanfordnlp/imdb"
DATA_ENV = "ZOO_DATA"
VALIDATION_FRACTION = 0.1
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document")
LABEL_COLUMNS = ("label", "labels", "sentiment", "class", "target")
SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "dev": "validation", "test": "test"}
FILE_FORMATS = {".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t"}), ".json": ("json", {}),
                ".jsonl": ("json", {}), ".parquet": ("parquet", {}), ".arrow": ("arrow", {})}
MAX_CLASSES = 1000
BREAK_PATTERN = r"<br\s*/?>"  # case-insensitive; exporters/text_frontend.py has its RE2 form
_BREAK = re.compile(BREAK_PATTERN, re.IGNORECASE)


def normalize_text(text: str) -> str:
    """The zoo's own text normalization: HTML line breaks and NUL characters become a space."""
    return _BREAK.sub(" ", text).replace("\x00", " ")


def resolve_source(source: str | None) -> str:
    return source or os.environ.get(DATA_ENV) or HUB_ID


def absolute_source(source: str) -> str:
    """`source` with its local paths made absolute (as a run records it), Hub ids unchanged."""
    files = _split_files(source)
    if files is not None:
        return ",".join(f"{split}={path.resolve()}" for split, path in files.items())
    path = Path(source).expanduser()
    return str(path.resolve()) if path.exists() else source


@dataclass(frozen=True)
class DataSpec:
    """Which data a run uses, as the user gave it (None: the default or auto-detected)."""

    source: str | None = None
    config: str | None = None  # a Hub dataset's config name
    text_column: str | None = None
    label_column: str | None = None
    limit_train: int | None = None  # keep this many train rows (seeded), for quick looks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataSpec":
        """From a run's config.json `data` record (other keys there are ignored)."""
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass
class Splits:
    source: str
    fingerprint: str  # identifies the data, the columns, the classes and the train/validation carve
    classes: list[str]
    train: "Dataset"
    validation: "Dataset"
    test: "Dataset | None"
    unsupervised: "Dataset | None"
    columns: tuple[str, str]  # the source's text and label columns
    own_validation: bool  # False: validation was carved from train
    held_out_unsupervised: int = 0  # unlabelled rows left out because they repeat a validation or test text

    def named(self) -> dict[str, "Dataset"]:
        out = {"train": self.train, "validation": self.validation}
        if self.test is not None:
            out["test"] = self.test
        if self.unsupervised is not None:
            out["unsupervised"] = self.unsupervised
        return out


def load_splits(spec: DataSpec | str | None = None, *, seed: int = 0, with_unsupervised: bool = False) -> Splits:
    """Load, check and normalize the splits of `spec` (a DataSpec or a source); raises DataError on bad input."""
    spec = spec if isinstance(spec, DataSpec) else DataSpec(source=spec)
    source = resolve_source(spec.source)
    raw = _load_raw(source, spec.config)
    if "train" not in raw:
        raise DataError(f"{source} has no train split (found: {', '.join(raw) or 'none'}); name a file or split "
                        f"`train`, or pass train=PATH; {HINT}")
    text_column, label_column = _columns(raw["train"], spec, source)
    classes, values = _classes(raw["train"], label_column, source)
    normalized = {name: _normalized(raw[name], name, text_column, label_column, values, classes, source,
                                    text_named=spec.text_column is not None)
                  for name in ("train", "validation", "test") if name in raw}
    own_validation = "validation" in normalized
    train = normalized["train"]
    validation = normalized.get("validation")
    if validation is None:
        train, validation = _stratified_split(train, len(classes), VALIDATION_FRACTION, seed)
    if spec.limit_train is not None and spec.limit_train < len(train):
        keep = np.sort(np.random.default_rng(seed).permutation(len(train))[: spec.limit_train])
        train = train.select(keep)
    unsupervised, held_out = None, 0
    if with_unsupervised:
        if "unsupervised" not in raw:
            raise DataError(f"{source} has no 'unsupervised' split of unlabeled texts")
        unsupervised = raw["unsupervised"].select_columns([text_column]).rename_columns({text_column: "text"})
        unsupervised, held_out = _without_texts(unsupervised, [validation, normalized.get("test")])
        unsupervised = unsupervised.add_column("label", np.full(len(unsupervised), -1, dtype=np.int64))  # no labels
    parts = [content_fingerprint(normalized[name]) if name in normalized else "-" for name in ("train", "validation", "test")]
    if unsupervised is not None:  # a run that learns from the unlabelled texts depends on them too
        parts.append(content_fingerprint(unsupervised))
    key = "|".join([*parts, json.dumps(classes), f"{VALIDATION_FRACTION}", f"{seed}", f"{spec.limit_train}", "content-2"])
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Splits(source, fingerprint, classes, train, validation, normalized.get("test"), unsupervised,
                  (text_column, label_column), own_validation, held_out)


def text_digests(texts: list[str], distinct: bool = True) -> np.ndarray:
    """64-bit digests of texts (sorted and distinct unless `distinct` is False), equal for texts that differ only
    in HTML line breaks or whitespace: what "the same text" means when held-out texts are kept from pretraining."""
    digests = np.array([int.from_bytes(hashlib.blake2b(" ".join(normalize_text(t).split()).encode(),
                                                       digest_size=8).digest(), "little") for t in texts], dtype=np.uint64)
    return np.unique(digests) if distinct else digests


def _without_texts(dataset: "Dataset", held_out: list["Dataset | None"]) -> tuple["Dataset", int]:
    """`dataset` without the rows whose text is also a text of a `held_out` split; and how many were left out."""
    banned = text_digests([t for split in held_out if split is not None for t in split["text"]])
    keep = ~np.isin(text_digests(dataset["text"], distinct=False), banned)
    return (dataset if keep.all() else dataset.select(np.flatnonzero(keep))), int((~keep).sum())


def content_fingerprint(dataset: "Dataset") -> str:
    """sha256 of a split's texts and labels, in order: the same for any copy of the same data, wherever it lies.

    Hashes Arrow buffers directly (about 0.1 s for IMDB's 25,000 reviews), independently of how the column
    happens to be chunked.
    """
    import pyarrow as pa

    table = dataset.with_format("arrow")[:] if dataset._indices is not None else dataset.data.table
    digest = hashlib.sha256()
    for chunk in table.column("text").chunks:
        chunk = chunk.cast(pa.large_string()) if chunk.type != pa.large_string() else chunk
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)[chunk.offset:chunk.offset + len(chunk) + 1]
        values = chunk.buffers()[2]
        if values is not None and len(offsets):
            digest.update(memoryview(values)[int(offsets[0]):int(offsets[-1])])
        digest.update(np.diff(offsets).tobytes())
    digest.update(np.asarray(table.column("label").to_numpy(), dtype=np.int64).tobytes())
    return digest.hexdigest()


def label_array(dataset: "Dataset") -> np.ndarray:
    return np.asarray(dataset.with_format("arrow")["label"].to_numpy(zero_copy_only=False), dtype=np.int64)


def _stratified_split(dataset: "Dataset", classes: int, fraction: float, seed: int) -> tuple["Dataset", "Dataset"]:
    """A seeded split that holds out `fraction` of each class (fast: plain numpy on the label column)."""
    labels = label_array(dataset)
    rng = np.random.default_rng(seed)
    held_out = []
    for label in range(classes):
        members = np.flatnonzero(labels == label)
        held_out.append(rng.permutation(members)[: round(len(members) * fraction)])
    validation = np.sort(np.concatenate(held_out))
    if len(validation) == 0:
        raise DataError(f"the train split has {len(labels)} rows, too few to hold out a validation split; "
                        "add rows or give a validation split")
    keep = np.setdiff1d(np.arange(len(labels)), validation, assume_unique=True)
    return dataset.select(keep), dataset.select(validation)


# --- columns and classes ---------------------------------------------------------------------------


def _columns(train: "Dataset", spec: DataSpec, source: str) -> tuple[str, str]:
    """The text and label columns: the ones named, else the first known name present; every problem at once."""
    found = train.column_names
    chosen, problems = [], []
    for given, candidates, option, role in ((spec.text_column, TEXT_COLUMNS, "--text-column", "text"),
                                            (spec.label_column, LABEL_COLUMNS, "--label-column", "label")):
        if given is not None:
            if given not in found:
                problems.append(f"it has no column {given!r} ({option})")
            chosen.append(given)
            continue
        detected = next((c for c in candidates if c in found), None)
        if detected is None:
            problems.append(f"cannot tell which column holds the {role}s (looked for {', '.join(candidates)}; "
                            f"name it with {option})")
        chosen.append(detected)
    if problems:
        raise DataError(f"{source} (columns: {', '.join(found)}): {'; and '.join(problems)}")
    if chosen[0] == chosen[1]:
        raise DataError(f"the text and label columns of {source} are both {chosen[0]!r}; name them apart")
    return chosen[0], chosen[1]


def _classes(train: "Dataset", column: str, source: str) -> tuple[list[str], list | None]:
    """The class names, and the label values they stand for (None: a ClassLabel, already indices)."""
    from datasets import ClassLabel

    feature = train.features[column]
    if isinstance(feature, ClassLabel):
        classes, values = list(feature.names), None
    else:
        labels = train.with_format("arrow")[column]
        if not _label_type(labels.type):
            raise DataError(f"the {column!r} column of {source} holds {labels.type}, not one label per row: labels "
                            "must be integers, strings, booleans or numbers. Convert that column, or name the label column "
                            "with --label-column")
        if labels.null_count:
            raise DataError(f"the 'train' split of {source} has rows with no {column} (null); fill or drop those rows")
        values = sorted(train.unique(column))
        classes = [str(v) for v in values]
        if len(values) > MAX_CLASSES:
            raise DataError(f"the {column!r} column of {source} has {len(values):,} distinct values: is it really "
                            f"a label? Name the label column with --label-column")
    if len(classes) < 2:
        raise DataError(f"the train split of {source} has a single class ({', '.join(classes) or 'none'}); "
                        "a classifier needs at least two")
    if "" in classes:
        raise DataError(f"the {column!r} column of {source} has an empty label (''): every class needs a name, "
                        "and exported models and predictions report it. Fill or drop those rows")
    if len(set(classes)) != len(classes):
        raise DataError(f"the labels of {source} do not have distinct names: {classes}")
    return classes, values


def _label_type(kind) -> bool:
    """Whether an Arrow type holds one usable label per row."""
    import pyarrow as pa

    return (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_boolean(kind) or pa.types.is_floating(kind))


def _text_column(table, text: str, split: str, source: str, named: bool):
    """The split's text column as strings; a column of numbers the user named with --text-column is converted."""
    import pyarrow as pa

    column = table.column(text)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    if named and (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                  or pa.types.is_boolean(column.type)):
        if split == "train":
            print(f"note: the {text!r} column of {source} holds {column.type}; reading its values as text, as "
                  "--text-column names it", file=sys.stderr)
        return column.cast(pa.large_string())
    hint = "convert it to text" if named else "name the text column with --text-column"
    raise DataError(f"the {text!r} column of the {split!r} split of {source} holds {column.type}, not text; {hint}")


def _normalized(dataset: "Dataset", split: str, text: str, label: str, values: list | None, classes: list[str],
                source: str, text_named: bool = False) -> "Dataset":
    """The split as two columns, `text` (strings) and `label` (class indices), checked."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets import Dataset
    from datasets.table import InMemoryTable

    if len(dataset) == 0:
        raise DataError(f"the {split!r} split of {source} is empty")
    missing = [c for c in (text, label) if c not in dataset.column_names]
    if missing:
        raise DataError(f"the {split!r} split of {source} lacks column(s) {', '.join(missing)}; "
                        f"its columns: {', '.join(dataset.column_names)}")
    table = dataset.with_format("arrow")[:]
    for column in (text, label):
        nulls = table.column(column).null_count
        if nulls:
            raise DataError(f"the {split!r} split of {source} has {nulls} row(s) with no {column} (null); fill or drop those rows")
    texts = _text_column(table, text, split, source, text_named)
    labels = table.column(label)
    if values is None:  # a ClassLabel: already indices
        indices = labels.cast(pa.int64())
        bad = pc.or_(pc.less(indices, 0), pc.greater_equal(indices, len(classes)))
        unknown = sorted(set(pc.filter(indices, bad).to_pylist()))
    else:
        try:
            indices = pc.index_in(labels, value_set=pa.array(values, type=labels.type)).cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(f"the labels of the {split!r} split of {source} do not compare with train's: {exc}") from None
        unknown = sorted(set(pc.filter(labels, pc.is_null(indices)).to_pylist()), key=str)
    if unknown:
        raise DataError(f"the {split!r} split of {source} has label(s) {', '.join(map(repr, unknown[:10]))} that the "
                        f"train split never has (classes: {', '.join(classes)})")
    if (text, label) == ("text", "label") and texts is table.column(text) and (
            values is None or values == list(range(len(values)))):
        return dataset.select_columns(["text", "label"])  # already normalized: keep the memory-mapped data
    return Dataset(InMemoryTable(pa.table({"text": texts.cast(pa.large_string()), "label": indices})))


# --- sources ---------------------------------------------------------------------------------------


def _load_raw(source: str, config: str | None) -> dict:
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
