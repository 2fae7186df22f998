"""Model files that cannot run code when they are read: numpy `.npz` (loaded with `allow_pickle=False`)
plus a small JSON document inside it.

A pickled model runs whatever the file says when it is loaded, so anyone who can write the folder the
models live in could run code in the server that reads them. Here a model is plain data:

- every attribute of the model is written by kind: numeric numpy arrays and numpy scalars as arrays,
  arrays of strings as one UTF-8 blob plus offsets, `scipy.sparse.csr_matrix` as its three arrays,
  `{str: int}` maps (id -> code) as keys and values, JSON-native values (numbers, strings, flags, small
  dicts of them) in the JSON document, a nested model (the EASE-or-ALS wrapper) recursively;
- the JSON document (`__meta__`, a byte array) names the model's class; loading accepts only classes
  of this model library that registered themselves (`Recommender.__init_subclass__`), creates the
  object without calling its constructor and sets the attributes back.

Anything else (a set, a tuple, an object array holding something other than str) is refused when the
model is saved, so a new model class with unsupported state fails its save-and-load test instead of
writing a file that cannot be read back exactly.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import scipy.sparse as sp

FORMAT = "recsys-model"
FORMAT_VERSION = 1
META_KEY = "__meta__"
# Only classes defined in the model library can be loaded, whatever the file claims.
LIBRARY_PREFIX = "recsys_platform.modelling."

_CLASSES: dict[str, type] = {}


class ModelFileError(ValueError):
    """The file is not a model this library wrote (or was written by an incompatible version)."""


def register_class(cls: type) -> None:
    if cls.__module__.startswith(LIBRARY_PREFIX):
        _CLASSES[class_key(cls)] = cls


def class_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_json_native(value: Any) -> bool:
    """Values whose JSON round trip gives back an equal value of the same types."""
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return value == value and value not in (float("inf"), float("-inf"))  # JSON has no NaN/inf
    if type(value) is list:
        return all(_is_json_native(item) for item in value)
    if type(value) is dict:
        return all(type(key) is str and _is_json_native(item) for key, item in value.items())
    return False


def _strings_to_arrays(values, key: str, arrays: dict[str, np.ndarray]) -> None:
    encoded = [value.encode("utf-8") for value in values]
    arrays[f"{key}.data"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    arrays[f"{key}.offsets"] = np.cumsum([0] + [len(item) for item in encoded], dtype=np.int64)


def _strings_from_arrays(arrays: Mapping[str, np.ndarray], key: str) -> list[str]:
    data = arrays[f"{key}.data"].tobytes()
    offsets = arrays[f"{key}.offsets"].tolist()
    return [data[start:end].decode("utf-8") for start, end in zip(offsets[:-1], offsets[1:])]


def _encode(name: str, value: Any, key: str, arrays: dict[str, np.ndarray]) -> dict:
    if class_key(type(value)) in _CLASSES:  # a nested model, e.g. the EASE-or-ALS wrapper's choice
        return {"kind": "model", **_encode_model(value, key + "/", arrays)}
    if isinstance(value, np.generic):
        arrays[key] = np.asarray(value)
        return {"kind": "numpy_scalar", "key": key}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "?biufcUSMm":
            arrays[key] = value
            return {"kind": "array", "key": key}
        if value.dtype == object and value.ndim == 1 and all(type(item) is str for item in value.tolist()):
            _strings_to_arrays(value.tolist(), key, arrays)
            return {"kind": "strings", "key": key}
        raise TypeError(f"attribute {name}: an object array of non-strings cannot be stored safely")
    if type(value) is sp.csr_matrix:
        arrays[f"{key}.data"], arrays[f"{key}.indices"] = value.data, value.indices
        arrays[f"{key}.indptr"] = value.indptr
        return {"kind": "csr_matrix", "key": key, "shape": [int(n) for n in value.shape]}
    if type(value) is dict and value and all(
        type(k) is str and type(v) is int for k, v in value.items()
    ):
        _strings_to_arrays(list(value), key, arrays)
        arrays[f"{key}.values"] = np.fromiter(value.values(), dtype=np.int64, count=len(value))
        return {"kind": "str_int_map", "key": key}
    if _is_json_native(value):
        return {"kind": "json", "value": value}
    raise TypeError(f"attribute {name} of type {type(value).__name__} cannot be stored safely")


def _encode_model(model, prefix: str, arrays: dict[str, np.ndarray]) -> dict:
    key = class_key(type(model))
    if key not in _CLASSES:
        raise TypeError(f"{key} is not a model class of the model library; it cannot be stored")
    attributes = {
        name: _encode(name, value, f"{prefix}{name}", arrays) for name, value in sorted(vars(model).items())
    }
    return {"class": key, "attributes": attributes}


def _decode(description: dict, arrays: Mapping[str, np.ndarray]) -> Any:
    kind = description.get("kind")
    if kind == "json":
        return description["value"]
    if kind == "model":
        return _decode_model(description, arrays)
    key = description.get("key")
    if not isinstance(key, str):
        raise ModelFileError("an attribute has no array key")
    try:
        if kind == "array":
            return arrays[key]
        if kind == "numpy_scalar":
            return arrays[key][()]
        if kind == "strings":
            return np.array(_strings_from_arrays(arrays, key), dtype=object)
        if kind == "csr_matrix":
            shape = tuple(int(n) for n in description["shape"])
            parts = (arrays[f"{key}.data"], arrays[f"{key}.indices"], arrays[f"{key}.indptr"])
            return sp.csr_matrix(parts, shape=shape)
        if kind == "str_int_map":
            return dict(zip(_strings_from_arrays(arrays, key), arrays[f"{key}.values"].tolist()))
    except KeyError as missing:
        raise ModelFileError(f"the file lacks the array {missing}") from None
    raise ModelFileError(f"unknown attribute kind {kind!r}")


def _decode_model(description: dict, arrays: Mapping[str, np.ndarray]):
    key = description.get("class")
    cls = _CLASSES.get(key) if isinstance(key, str) else None
    if cls is None:
        raise ModelFileError(
            f"model class {key!r} is not a model class of this library "
            "(import recsys_platform.modelling.recommenders.registry before loading)"
        )
    model = object.__new__(cls)  # no constructor runs: the attributes are the whole state
    attributes = description.get("attributes")
    if not isinstance(attributes, dict):
        raise ModelFileError("the model description has no attributes")
    for name, value in attributes.items():
        if not isinstance(value, dict):
            raise ModelFileError(f"attribute {name!r} is not described")
        setattr(model, name, _decode(value, arrays))
    return model


def save_model(model, destination: str | Path | BinaryIO) -> None:
    """Write `model` to a path (created 0600: models hold user data) or a binary file object."""
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "version": FORMAT_VERSION, **_encode_model(model, "", arrays)}
    arrays[META_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    if isinstance(destination, (str, Path)):
        descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, **arrays)
    else:
        np.savez(destination, **arrays)


def load_model(source: str | Path | BinaryIO):
    """Read a model written by `save_model`. ModelFileError when the file is anything else."""
    try:
        if isinstance(source, (str, Path)):
            source = io.BytesIO(Path(source).read_bytes())
        with np.load(source, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        # allow_pickle=False raises ValueError for a pickled array: refused, never run
        raise ModelFileError(f"not a model file ({type(error).__name__}: {error})") from None
    if META_KEY not in arrays:
        raise ModelFileError("not a model file (no description)")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError("the model description is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError("not a model file (unknown format)")
    if meta.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"model file version {meta.get('version')!r}; this library reads {FORMAT_VERSION}")
    return _decode_model(meta, arrays)
