"""The restricted unpickler for NVlabs network pickles: it resolves every global the file names
through an allow-list of functions written here, so nothing from the file is imported, compiled
or run. A persistent network becomes a `NetworkRecord` (class name, constructor settings, state,
and its embedded source kept as inert text); tensors are rebuilt from raw bytes for a fixed set
of storage types, numpy scalars and arrays only for numeric dtypes. nvlabs_pkl.py maps the records onto the NVlabs-exact architecture."""
from __future__ import annotations

import collections
import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.importers import NetworkImportError

SUPPORTED = ("GAN Studio imports NVlabs network pickles: StyleGAN2 (stylegan2-ada-pytorch, and the StyleGAN2 "
             "networks of the stylegan3 repository) and StyleGAN3 -T and -R (the stylegan3 repository)")
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C   # torch.save's pre-zip format, used inside storages
LEGACY_PROTOCOL = 1001
KNOWN_PERSISTENCE_VERSIONS = range(1, 7)
NUMPY_SCALAR_KINDS = "fiub"
STORAGE_DTYPES = {"FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
                  "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
                  "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
                  "BoolStorage": torch.bool}


@dataclass
class NetworkRecord:
    """One NVlabs persistent object, as data: nothing of its class or source is ever run."""
    class_name: str
    state: dict            # the module's attribute dict (_parameters, _buffers, _modules, ...)
    source_sha256: str     # of the embedded module source, for the record
    source: str            # the embedded module source: inert text, never compiled


class PlainDict(dict):
    """Stands in for dnnlib.util.EasyDict: the same items, no behaviour."""


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


@dataclass(frozen=True)
class _StorageRef:
    key: str


# ----------------------------------------------------------------------------------------------
# What the outer pickle may call: each entry is written here; none imports from the file.

def _reconstruct_persistent_obj(meta) -> NetworkRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise NetworkImportError("a persistent object in the file is not a class record "
                                 f"(type = {meta.get('type') if isinstance(meta, dict) else type(meta).__name__!r})")
    if meta.get("version") not in KNOWN_PERSISTENCE_VERSIONS:
        raise NetworkImportError(f"persistence format version {meta.get('version')!r} is newer than this importer "
                                 f"knows (1-{KNOWN_PERSISTENCE_VERSIONS[-1]})")
    source, class_name, state = meta.get("module_src"), meta.get("class_name"), meta.get("state")
    if not isinstance(source, str) or not isinstance(class_name, str) or not isinstance(state, dict):
        raise NetworkImportError("a persistent object in the file lacks its class name, source or state")
    return NetworkRecord(class_name, _plain_arrays(state), hashlib.sha256(source.encode()).hexdigest(), source)


def _plain_arrays(value):
    """The record's attributes with every array as a plain numpy.ndarray (not the loader's subclass)."""
    if isinstance(value, _NumericArray):
        return value.view(np.ndarray)
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _plain_arrays(item)
    elif isinstance(value, list):
        value[:] = [_plain_arrays(item) for item in value]
    elif isinstance(value, tuple):
        return tuple(_plain_arrays(item) for item in value)
    return value


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                    metadata=None) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor) or storage.ndim != 1:
        raise NetworkImportError("a tensor in the file does not refer to a storage")
    if not (isinstance(storage_offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
            and len(size) == len(stride) and all(isinstance(v, int) and v >= 0 for v in size + stride)
            and storage_offset >= 0):
        raise NetworkImportError("a tensor in the file has a malformed size, stride or offset")
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else storage_offset - 1
    if last >= storage.numel():
        raise NetworkImportError("a tensor in the file reaches past the end of its storage (truncated or corrupt?)")
    return torch.as_strided(storage, size, stride, storage_offset).clone()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise NetworkImportError("a parameter in the file does not hold a tensor")
    return data


def _load_storage_from_bytes(data) -> torch.Tensor:
    """A storage saved in torch.save's legacy format -> flat tensor, read without torch.load."""
    if not isinstance(data, bytes):
        raise NetworkImportError("a storage in the file is not a byte string")
    if data[:2] == b"PK":
        raise NetworkImportError("a storage in the file uses torch's zip format, which NVlabs pickles never use")
    f = io.BytesIO(data)
    if _LegacyUnpickler(f).load() != LEGACY_MAGIC or _LegacyUnpickler(f).load() != LEGACY_PROTOCOL:
        raise NetworkImportError("a storage in the file is not in torch.save's legacy format")
    sys_info = _LegacyUnpickler(f).load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise NetworkImportError("a storage in the file was written big-endian or without its system info")
    outer = _LegacyUnpickler(f)
    ref = outer.load()
    keys = _LegacyUnpickler(f).load()
    if not isinstance(ref, _StorageRef) or not isinstance(keys, list):
        raise NetworkImportError("a storage record in the file is malformed")
    storages = {}
    for key in keys:
        if key not in outer.declared:
            raise NetworkImportError("a storage record in the file lists an undeclared storage")
        dtype, numel = outer.declared[key]
        head = f.read(8)
        if len(head) != 8 or int.from_bytes(head, "little", signed=True) != numel:
            raise NetworkImportError("a storage in the file is truncated or its size disagrees with its record")
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise NetworkImportError("a storage in the file is truncated")
        storages[key] = torch.frombuffer(bytearray(raw), dtype=dtype) if numel else torch.empty(0, dtype=dtype)
    if ref.key not in storages:
        raise NetworkImportError("a storage in the file has no data")
    return storages[ref.key]


def _numpy_dtype(spec, align=False, copy=False) -> np.dtype:
    dtype = np.dtype(spec) if isinstance(spec, str) and len(spec) <= 3 else None
    if dtype is None or dtype.kind not in NUMPY_SCALAR_KINDS:
        raise NetworkImportError(f"the file asks for numpy dtype {spec!r}; only numeric scalars are read")
    return dtype


class _NdarrayType:
    """Stands in for numpy.ndarray where the file names it: only _numpy_array accepts it."""


class _NumericArray(np.ndarray):
    """An empty array whose BUILD step (numpy's own __setstate__) may only fill in numbers."""

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], np.dtype)
                and state[2].kind in NUMPY_SCALAR_KINDS and isinstance(state[4], bytes)):
            raise NetworkImportError("a numpy array in the file is malformed or not numeric")
        super().__setstate__(state)


def _numpy_array(cls, shape, typecode) -> np.ndarray:
    """numpy's _reconstruct(ndarray, (0,), b'b'): an empty numeric array for BUILD to fill in.
    StyleGAN3 layers keep their sizes as small int arrays (e.g. in_size, out_size)."""
    if cls is not _NdarrayType or shape != (0,) or typecode != b"b":
        raise NetworkImportError("a numpy array in the file is not a plain ndarray")
    return _NumericArray((0,), np.uint8)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.kind not in NUMPY_SCALAR_KINDS or not isinstance(data, bytes) \
            or len(data) != dtype.itemsize:
        raise NetworkImportError("a numpy scalar in the file is malformed")
    return np.frombuffer(data, dtype=dtype)[0]


ALLOWED_GLOBALS = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): PlainDict,
    ("dnnlib", "EasyDict"): PlainDict,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_array,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_array,
}


def _refusal(module: str, name: str) -> str:
    qualified = f"{module}.{name}"
    if module.startswith("dnnlib.tflib"):
        return (f"is a TensorFlow-era StyleGAN pickle (it holds {qualified}); {SUPPORTED}. NVlabs' "
                "stylegan2-ada-pytorch converts TensorFlow pickles (legacy.py); import its output instead")
    package = module.split(".")[0]
    if package in ("sklearn", "pandas", "xgboost", "lightgbm", "keras", "tensorflow", "scipy"):
        return f"holds a {package} object ({qualified}), not an NVlabs network; {SUPPORTED}"
    return (f"asks to load the Python object {qualified}, which NVlabs network pickles never contain; "
            f"it was refused before anything from the file ran. {SUPPORTED}")


class NetworkUnpickler(pickle.Unpickler):
    """Unpickles an NVlabs network pickle into records, tensors and plain containers only."""

    def find_class(self, module: str, name: str):
        target = ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise NetworkImportError(_refusal(module, name))
        return target

    def persistent_load(self, pid):
        raise NetworkImportError("the file uses persistent ids, which NVlabs network pickles do not")


class _LegacyUnpickler(pickle.Unpickler):
    """The small pickles inside a legacy torch.save storage: ints, a dict, storage references."""

    def __init__(self, file):
        super().__init__(file)
        self.declared: dict[str, tuple[torch.dtype, int]] = {}

    def find_class(self, module: str, name: str):
        if module in ("torch", "torch.cuda") and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        raise NetworkImportError(f"a storage in the file asks for {module}.{name}; only torch storage types are read")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and isinstance(pid[4], int) and pid[4] >= 0):
            raise NetworkImportError("a storage reference in the file is malformed")
        if pid[5] is not None:
            raise NetworkImportError("the file uses storage views (torch < 1.0 era), which this importer does not read")
        self.declared[pid[2]] = (pid[1].dtype, pid[4])
        return _StorageRef(pid[2])


# ----------------------------------------------------------------------------------------------
# Reading the file

def read_network_pickle(path) -> dict:
    """Path -> the snapshot dict, with networks as NetworkRecord. Raises NetworkImportError."""
    path = Path(path)
    if not path.is_file():
        raise NetworkImportError(f"no such file: {path}")
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if head[:2] == b"PK":
            raise NetworkImportError(f"{path.name} is a PyTorch zip archive (torch.save), not an NVlabs network "
                                     "pickle; for rosinality stylegan2-pytorch checkpoints use --from rosinality")
        if head[:1] != b"\x80":
            raise NetworkImportError(f"{path.name} is not a Python pickle of protocol 2 or later (first bytes "
                                     f"{head!r}); {SUPPORTED}")
        try:
            snapshot = NetworkUnpickler(f).load()
        except NetworkImportError as exc:
            raise NetworkImportError(f"{path.name} {exc}" if str(exc).startswith(("is ", "holds ", "asks "))
                                     else f"{path.name}: {exc}") from None
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError,
                AttributeError, RecursionError, MemoryError, OverflowError) as exc:
            raise NetworkImportError(f"{path.name} could not be read as a network pickle (truncated or corrupt?): "
                                     f"{type(exc).__name__}: {exc}") from None
    return snapshot
