"""A labelled dataset as the zoo trains on it: checked, normalized splits with a fingerprint.

Which data (`DataSpec`): a source (zoo.data.sources: `--data SRC`, else the env var
ZOO_DATA, else the Hub's IMDB), a Hub config, the text and label columns, and an
optional seeded subset of train.

Columns: the text and label columns are `--text-column` / `--label-column`, else the
first present of TEXT_COLUMNS and LABEL_COLUMNS. Labels may be ints, strings, booleans
or a `ClassLabel`; the classes are the ClassLabel's names, else the sorted distinct
values of the train split, and every split's labels become their index in that list.
Each split is normalized to two columns, `text` and `label`.

Splits: `validation` is the dataset's own when it has one, else a seeded,
label-stratified 10% of train (IMDB: 22,500 / 2,500). `test` is only ever used for
final evaluation, and may be missing. `limit_train` keeps a seeded random subset of
train for quick looks. `unsupervised` (IMDB's 50,000 unlabeled reviews) is optional;
it never holds a validation or test text: rows equal to one (zoo.data.text.text_digests)
are left out (IMDB's repeats 270 test and 42 validation reviews).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.data.sources import HINT, LABEL_COLUMNS, TEXT_COLUMNS, load_raw, resolve_source
from zoo.data.text import text_digests
from zoo.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

VALIDATION_FRACTION = 0.1
MAX_CLASSES = 1000


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
    raw = load_raw(source, spec.config)
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


