"""A pure-Python sanity check of a GGUF model file, run before llama.cpp sees it.

llama.cpp is native code: a damaged file should never reach it if we can tell
beforehand. :func:`inspect_gguf` reads the header, the metadata and the tensor
table with bounds checks on every read, works out how many bytes the tensor data
needs and compares that with the file size. A missing, unreadable, non-GGUF or
truncated file raises :class:`~ifllm_lab.llm.types.LLMError` naming the path.
Sizes are bytes.
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .types import LLMError

GGUF_MAGIC = b"GGUF"
_DEFAULT_ALIGNMENT = 32
_MAX_COUNT = 10_000_000  # far above any real model's tensor / key count

# ggml type id -> (elements per block, bytes per block); from ggml's type traits.
GGML_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4),       # F32
    1: (1, 2),       # F16
    2: (32, 18),     # Q4_0
    3: (32, 20),     # Q4_1
    6: (32, 22),     # Q5_0
    7: (32, 24),     # Q5_1
    8: (32, 34),     # Q8_0
    9: (32, 36),     # Q8_1
    10: (256, 84),   # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    15: (256, 292),  # Q8_K
    16: (256, 66),   # IQ2_XXS
    17: (256, 74),   # IQ2_XS
    18: (256, 98),   # IQ3_XXS
    19: (256, 50),   # IQ1_S
    20: (32, 18),    # IQ4_NL
    21: (256, 110),  # IQ3_S
    22: (256, 82),   # IQ2_S
    23: (256, 136),  # IQ4_XS
    24: (1, 1),      # I8
    25: (1, 2),      # I16
    26: (1, 4),      # I32
    27: (1, 8),      # I64
    28: (1, 8),      # F64
    29: (256, 56),   # IQ1_M
    30: (1, 2),      # BF16
    34: (256, 54),   # TQ1_0
    35: (256, 66),   # TQ2_0
    39: (32, 17),    # MXFP4
}

# metadata value types: id -> struct format (fixed-size ones)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


@dataclass
class GGUFInfo:
    """What the check found. Sizes in bytes."""

    path: str
    version: int
    n_tensors: int
    n_kv: int
    file_size: int
    data_offset: int
    needed_size: int
    unknown_tensor_types: set[int] = field(default_factory=set)
    metadata: dict[str, object] = field(default_factory=dict)  # scalars and strings only


class _Truncated(Exception):
    pass


class _Reader:
    def __init__(self, buf, size: int):
        self.buf = buf
        self.size = size
        self.pos = 0

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _Truncated(f"needs {n} bytes at offset {self.pos}, file has {self.size}")

    def unpack(self, fmt: str):
        n = struct.calcsize("<" + fmt)
        self.need(n)
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += n
        return vals[0] if len(vals) == 1 else vals

    def string(self) -> bytes:
        n = self.unpack("Q")
        self.need(n)
        s = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return s

    def skip_string(self) -> None:
        n = self.unpack("Q")
        self.need(n)
        self.pos += n

    def value(self, vtype: int, keep: bool):
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            if keep:
                return self.string().decode("utf-8", errors="replace")
            self.skip_string()
            return None
        if vtype == _ARRAY:
            etype, count = self.unpack("IQ")
            if count > _MAX_COUNT * 10:
                raise ValueError(f"array of {count} elements")
            if etype in _SCALARS:
                n = struct.calcsize("<" + _SCALARS[etype]) * count
                self.need(n)
                self.pos += n
            elif etype == _STRING:
                for _ in range(count):
                    self.skip_string()
            elif etype == _ARRAY:
                for _ in range(count):
                    self.value(_ARRAY, False)
            else:
                raise ValueError(f"unknown array element type {etype}")
            return None
        raise ValueError(f"unknown metadata value type {vtype}")


def _fail(path: str, what: str, detail: str) -> LLMError:
    return LLMError(
        f"The model file {path} {what}. Download it again or choose another .gguf model file.",
        f"GGUF check failed for {path}: {detail}",
        path=path,
    )


def inspect_gguf(path: str | os.PathLike) -> GGUFInfo:
    """Check that ``path`` is a complete GGUF file; return what was found.

    Raises :class:`LLMError` (naming the path, saying what to do) for a missing,
    unreadable, non-GGUF, damaged or truncated file.
    """
    p = str(Path(path).expanduser())
    if not os.path.exists(p):
        raise LLMError(
            f"The model file {p} does not exist. Check the path in the settings or choose another .gguf file.",
            f"model path does not exist: {p}", path=p)
    if os.path.isdir(p):
        raise LLMError(f"The model path {p} is a folder, not a .gguf file. Choose the .gguf file inside it.",
                       f"model path is a directory: {p}", path=p)
    try:
        f = open(p, "rb")
    except OSError as e:
        raise LLMError(f"The model file {p} cannot be read ({e.strerror}). Check its permissions.",
                       f"cannot open model file {p}: {e!r}", path=p) from e
    with f:
        size = os.fstat(f.fileno()).st_size
        if size < 24:
            raise _fail(p, "is not a GGUF model (it is empty or far too small)", f"file is {size} bytes")
        head = f.read(4)
        if head != GGUF_MAGIC:
            raise _fail(p, "is not a GGUF model (wrong file type)", f"magic is {head!r}, expected {GGUF_MAGIC!r}")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _parse(p, mm, size)


def _parse(p: str, mm, size: int) -> GGUFInfo:
    r = _Reader(mm, size)
    r.pos = 4
    try:
        version = r.unpack("I")
        if version not in (2, 3):
            if version == 1:
                raise _fail(p, "uses the old GGUF version 1, which is not supported", "GGUF v1")
            if struct.unpack("<I", struct.pack(">I", version))[0] in (2, 3):
                raise _fail(p, "is a big-endian GGUF, which this computer cannot use", f"version field {version:#x}")
            raise _fail(p, "is not a readable GGUF model (unknown version)", f"GGUF version {version}")
        n_tensors, n_kv = r.unpack("QQ")
        if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
            raise _fail(p, "is damaged (impossible header)", f"n_tensors={n_tensors} n_kv={n_kv}")
        metadata: dict[str, object] = {}
        for _ in range(n_kv):
            key = r.string().decode("utf-8", errors="replace")
            vtype = r.unpack("I")
            val = r.value(vtype, keep=True)
            if val is not None:
                metadata[key] = val
        alignment = metadata.get("general.alignment", _DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise _fail(p, "is damaged (bad alignment)", f"general.alignment={alignment!r}")
        data_end = 0
        unknown: set[int] = set()
        for _ in range(n_tensors):
            r.skip_string()
            n_dims = r.unpack("I")
            if n_dims > 8:
                raise ValueError(f"tensor with {n_dims} dimensions")
            dims = r.unpack("Q" * n_dims) if n_dims else ()
            dims = dims if isinstance(dims, tuple) else (dims,)
            ttype, offset = r.unpack("IQ")
            n_el = 1
            for d in dims:
                n_el *= d
            if ttype in GGML_BLOCKS:
                blk, nbytes = GGML_BLOCKS[ttype]
                end = offset + (n_el // blk) * nbytes
            else:
                unknown.add(ttype)
                end = offset + 1
            data_end = max(data_end, end)
        data_offset = (r.pos + alignment - 1) // alignment * alignment
    except _Truncated as e:
        raise _fail(p, f"is truncated ({size:,} bytes; the header itself is cut off)", str(e)) from None
    except (ValueError, struct.error, OverflowError) as e:
        raise _fail(p, "is damaged (its header cannot be read)", repr(e)) from None
    needed = data_offset + data_end
    if size < needed:
        raise _fail(p, f"is truncated ({size:,} of {needed:,} bytes)",
                    f"tensor data needs {needed} bytes, file has {size}")
    return GGUFInfo(path=p, version=version, n_tensors=n_tensors, n_kv=n_kv, file_size=size,
                    data_offset=data_offset, needed_size=needed, unknown_tensor_types=unknown,
                    metadata=metadata)
