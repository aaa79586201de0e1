"""Read the root group's string attributes of an HDF5 file without h5py.

``modellint summary model.h5`` only needs a few attributes of the root group of
a legacy Keras file (``model_config``, ``training_config``, ``keras_version``,
``backend``). Importing h5py and numpy costs more than the rest of the command,
so this module parses just enough of the HDF5 format (HDF5 File Format
Specification, Version 3.0) to find those attributes, with the standard library
only. It reads a handful of small blocks with ``seek``/``read``; the file is
never loaded whole.

Supported:

* superblock versions 0 and 1 (root object header from the root symbol-table
  entry) and 2 and 3 (root object header address stored directly, checksum
  verified), at offset 0 or after a user block (512, 1024, 2048, ...), with
  4- or 8-byte offsets and lengths;
* object headers version 1 (8-byte aligned messages) and version 2 (``OHDR``,
  optional times and attribute-phase fields, 1/2/4/8-byte chunk size, optional
  creation-order field in each message, checksum verified), following
  continuation messages (``OCHK`` blocks for version 2);
* attribute messages versions 1, 2 and 3 stored in the object header (compact
  storage);
* fixed-length strings (class 3, null-terminated or null-padded) and
  variable-length strings (class 9) whose bytes live in a global heap
  collection (``GCOL``);
* a scalar dataspace, and a one-element simple dataspace unless
  ``scalar_only`` is set.

Everything else raises :class:`Unsupported`, and the caller is expected to fall
back to h5py: dense attribute storage (an attribute info message with a fractal
heap), shared messages or datatypes, a root attribute of any other datatype or
shape (the library decodes every attribute message when it looks one up, so
every root attribute is checked, wanted or not), space-padded strings or strings
with embedded NULs, a superblock extension or driver information block, a file
shorter than the end-of-file address in its superblock (truncated), a checksum
mismatch, a root object that is not a group, any inconsistency or out-of-range
value. Where the library refuses a damaged superblock, object header or global
heap collection when it opens the file, so does this reader, so that it does
not give a result where h5py would give an error. Damage that is certain (a
truncated file, a checksum mismatch, an address past the end of the file, a
broken global heap collection) raises :class:`Corrupt`, a subclass of
Unsupported: the caller refuses such a file instead of handing it to h5py,
because libhdf5 can loop forever on a damaged global heap. Every length is bounded by
the file size (and by a cap), continuation chunks are capped, and no loop can
run forever on hostile input.

A requested name that is provably absent (the whole header was read, with no
dense storage) is simply left out of the result: an uncompiled model has no
``training_config``, which is not a reason to import h5py.
"""

from __future__ import annotations

import os
import struct
from typing import Dict, Iterable, List, Tuple

__all__ = ["Corrupt", "Unsupported", "read_root_attrs"]

SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Object header message types used here.
MSG_ATTRIBUTE = 0x0C
MSG_CONTINUATION = 0x10
MSG_ATTRIBUTE_INFO = 0x15
MSG_LINK_INFO = 0x02
MSG_SYMBOL_TABLE = 0x11
SHAREABLE_MESSAGES = (0x01, 0x03, 0x05, 0x0B, 0x0C)
MAX_KNOWN_MESSAGE = 0x18     # highest message type the format defines

MAX_CHUNKS = 64              # object header chunks followed (chunk 0 + continuations)
MAX_CHUNK_BYTES = 16 << 20   # a root header holding more than this is left to h5py
MAX_MESSAGES = 1 << 16
MAX_COLLECTION_BYTES = 64 << 20   # a global heap collection is read whole, up to this size


class Unsupported(Exception):
    """The file uses something this reader does not handle, or is malformed: use h5py."""


class Corrupt(Unsupported):
    """The file is certainly damaged: truncated, a checksum that does not match, an
    address past the end of the file, a broken global heap collection. h5py would
    refuse it too, or (a damaged global heap) may loop forever inside libhdf5, so
    the caller should refuse the file rather than hand it to h5py."""


def read_root_attrs(path, names: Iterable[str], *, scalar_only: bool = False) -> Dict[str, str]:
    """The root group's string attributes ``names`` of the HDF5 file at ``path``, as text.

    Names the root group does not have are left out of the result. Raises
    :class:`Unsupported` for anything it cannot read with certainty (see the
    module docstring). With ``scalar_only``, a one-element array attribute is
    also Unsupported (h5py returns an array for it, not a string).
    """
    wanted = {n.encode("utf-8"): n for n in names}
    try:
        with open(path, "rb") as f:
            reader = _Reader(f, os.fstat(f.fileno()).st_size)
            return reader.root_attrs(wanted, scalar_only)
    except Unsupported:
        raise
    except (OSError, struct.error, ValueError, IndexError, OverflowError, MemoryError) as exc:
        raise Unsupported(f"{type(exc).__name__}: {exc}") from None


def _pad8(n: int) -> int:
    return (n + 7) & ~7


class _Reader:
    def __init__(self, f, size: int):
        self.f = f
        self.size = size
        self.base = 0          # absolute offset of the superblock; addresses are relative to it
        self.so = 8            # size of offsets
        self.sl = 8            # size of lengths

    # -- low-level -------------------------------------------------------------------------
    def read_abs(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise Corrupt(f"read of {n} bytes at {offset} is outside the file ({self.size} bytes)")
        self.f.seek(offset)
        data = self.f.read(n)
        if len(data) != n:
            raise Unsupported("short read")
        return data

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes at file address ``addr`` (relative to the superblock)."""
        return self.read_abs(self.base + addr, n)

    def uint(self, buf: bytes, pos: int, width: int) -> int:
        if pos + width > len(buf):
            raise Unsupported("field runs past its block")
        return int.from_bytes(buf[pos:pos + width], "little")

    def addr(self, buf: bytes, pos: int) -> int:
        """An address field; the undefined address (all ones) is Unsupported."""
        value = self.uint(buf, pos, self.so)
        if value == (1 << (8 * self.so)) - 1:
            raise Unsupported("undefined address")
        return value

    def is_undef(self, buf: bytes, pos: int) -> bool:
        return self.uint(buf, pos, self.so) == (1 << (8 * self.so)) - 1

    # -- superblock ------------------------------------------------------------------------
    def superblock(self) -> int:
        """Find and parse the superblock; returns the root object header address."""
        offset = 0
        while True:
            if offset + 8 > self.size:
                raise Unsupported("no HDF5 signature")
            if self.read_abs(offset, 8) == SIGNATURE:
                break
            offset = 512 if offset == 0 else offset * 2
        self.base = offset
        head = self.read_abs(offset, min(self.size - offset, 256))
        if len(head) < 16:
            raise Unsupported("truncated superblock")
        version = head[8]
        if version in (0, 1):
            (free_v, root_v, _r, shared_v, so, sl, _r2) = head[9:16]
            self._set_sizes(so, sl)
            if free_v != 0 or root_v != 0 or shared_v != 0:
                raise Unsupported("unknown superblock component versions")
            if self.uint(head, 16, 2) == 0 or self.uint(head, 18, 2) == 0:
                raise Unsupported("group B-tree K of 0")
            pos = 16 + 4  # group leaf / internal node K
            if self.uint(head, pos, 4) != 0:
                raise Unsupported("file consistency flags set")
            pos += 4
            if version == 1:
                pos += 4  # indexed storage internal node K, reserved
            if version == 1 and self.uint(head, pos - 4, 2) == 0:
                raise Unsupported("indexed storage K of 0")
            base_addr = self.uint(head, pos, so)
            if not self.is_undef(head, pos + so):
                raise Unsupported("global free-space index address")
            eof = self.uint(head, pos + 2 * so, so)
            if not self.is_undef(head, pos + 3 * so):
                raise Unsupported("driver information block")
            pos += 4 * so
            # Root group symbol table entry: link name offset, object header
            # address, cache type (0: nothing cached, 1: symbol table), ...
            root = self.addr(head, pos + so)
            if self.uint(head, pos + 2 * so, 4) not in (0, 1):
                raise Unsupported("unknown symbol table entry cache type")
        elif version in (2, 3):
            so, sl, flags = head[9], head[10], head[11]
            self._set_sizes(so, sl)
            end = 12 + 4 * so
            if end + 4 > len(head):
                raise Unsupported("truncated superblock")
            if _lookup3(head[:end]) != self.uint(head, end, 4):
                raise Corrupt("superblock checksum mismatch")
            if flags != 0:
                raise Unsupported("file consistency flags set (file open for writing?)")
            base_addr = self.uint(head, 12, so)
            if not self.is_undef(head, 12 + so):
                raise Unsupported("superblock extension")
            eof = self.uint(head, 12 + 2 * so, so)
            root = self.addr(head, 12 + 3 * so)
        else:
            raise Unsupported(f"superblock version {version}")
        if base_addr != offset:
            raise Unsupported("base address differs from the superblock's position")
        # The library stores the end-of-file address including the user block
        # (relative EOF + base), and refuses a file shorter than that.
        if eof == (1 << (8 * so)) - 1 or eof > self.size:
            raise Corrupt("file is shorter than its superblock says (truncated)")
        return root

    def _set_sizes(self, so: int, sl: int) -> None:
        if so not in (4, 8) or sl not in (4, 8):
            raise Unsupported(f"sizes of offsets/lengths {so}/{sl}")
        self.so, self.sl = so, sl

    # -- object header ---------------------------------------------------------------------
    def messages(self, addr: int) -> List[Tuple[int, int, bytes]]:
        """All ``(type, flags, data)`` messages of the object header at ``addr``."""
        avail = self.size - self.base - addr
        if avail <= 0:
            raise Corrupt("object header address outside the file")
        prefix = self.read(addr, min(avail, 40))
        if prefix[:4] == b"OHDR":
            return self._messages_v2(addr, prefix)
        if prefix[:1] == b"\x01":
            return self._messages_v1(addr, prefix)
        raise Unsupported("unknown object header version")

    def _chunk_bytes(self, n: int) -> int:
        if n > MAX_CHUNK_BYTES:
            raise Unsupported("object header chunk too large")
        return n

    def _messages_v1(self, addr: int, prefix: bytes) -> List[Tuple[int, int, bytes]]:
        if len(prefix) < 16:
            raise Unsupported("truncated object header")
        nmesgs = self.uint(prefix, 2, 2)
        chunk_size = self._chunk_bytes(self.uint(prefix, 8, 4))
        chunks = [(addr + 16, chunk_size)]     # the 12-byte prefix is padded to 16
        out: List[Tuple[int, int, bytes]] = []
        seen = set()
        while chunks:
            start, length = chunks.pop(0)
            if start in seen or len(seen) >= MAX_CHUNKS:
                raise Unsupported("continuation loop or too many continuations")
            seen.add(start)
            buf = self.read(start, length)
            pos = 0
            while pos < length:
                if pos + 8 > length:
                    raise Unsupported("message header runs past its chunk")
                mtype, msize, mflags = struct.unpack_from("<HHB", buf, pos)
                pos += 8
                if msize % 8:
                    raise Unsupported("message not aligned")
                if pos + msize > length:
                    raise Unsupported("message runs past its chunk")
                self._take(mtype, mflags, buf[pos:pos + msize], out, chunks)
                pos += msize
        if len(out) != nmesgs:
            raise Unsupported("object header message count mismatch")
        return out

    def _messages_v2(self, addr: int, prefix: bytes) -> List[Tuple[int, int, bytes]]:
        if len(prefix) < 6 or prefix[4] != 2:
            raise Unsupported("unknown OHDR version")
        flags = prefix[5]
        if flags & ~0x3F:
            raise Unsupported("unknown object header flags")
        pos = 6
        if flags & 0x20:
            pos += 16   # access, modification, change, birth times
        if flags & 0x10:
            pos += 4    # max compact / min dense attribute counts
        width = 1 << (flags & 0x03)
        chunk0 = self._chunk_bytes(self.uint(prefix, pos, width))
        pos += width
        hdr = 6 if flags & 0x04 else 4   # message header, with creation order if tracked
        # Chunk 0: prefix + messages, then the checksum of both.
        block = self.read(addr, pos + chunk0 + 4)
        if _lookup3(block[:-4]) != self.uint(block, len(block) - 4, 4):
            raise Corrupt("object header checksum mismatch")
        out: List[Tuple[int, int, bytes]] = []
        pending = []
        self._parse_v2(block, pos, len(block) - 4, hdr, out, pending)
        seen = {addr}
        while pending:
            start, length = pending.pop(0)
            if start in seen or len(seen) >= MAX_CHUNKS:
                raise Unsupported("continuation loop or too many continuations")
            seen.add(start)
            if length < 8:
                raise Unsupported("continuation block too small")
            block = self.read(start, self._chunk_bytes(length))
            if block[:4] != b"OCHK":
                raise Unsupported("continuation block without OCHK signature")
            if _lookup3(block[:-4]) != self.uint(block, len(block) - 4, 4):
                raise Corrupt("continuation block checksum mismatch")
            self._parse_v2(block, 4, len(block) - 4, hdr, out, pending)
        return out

    def _take(self, mtype: int, mflags: int, data: bytes, out: list, pending: list) -> None:
        """Keep one header message; queue the block a continuation message points to."""
        self._check_message(mtype, mflags)
        out.append((mtype, mflags, data))
        if len(out) > MAX_MESSAGES:
            raise Unsupported("too many messages")
        if mtype == MSG_CONTINUATION:
            pending.append(self._continuation(data))

    def _parse_v2(self, buf: bytes, pos: int, end: int, hdr: int, out, pending) -> None:
        while end - pos >= hdr:   # less than one message header left: a gap
            mtype, msize, mflags = struct.unpack_from("<BHB", buf, pos)
            pos += hdr
            if pos + msize > end:
                raise Unsupported("message runs past its chunk")
            self._take(mtype, mflags, buf[pos:pos + msize], out, pending)
            pos += msize

    @staticmethod
    def _check_message(mtype: int, mflags: int) -> None:
        """Message flags the library rejects when it opens the object header."""
        if (mflags & 0x02 and mflags & 0x04) or (mflags & 0x20 and mflags & 0x08) or (
                mflags & 0x20 and not mflags & 0x10):
            raise Unsupported("bad flag combination for message")
        if mtype > MAX_KNOWN_MESSAGE and mflags & 0x80:
            raise Unsupported("unknown message type flagged fail-if-unknown")
        if mflags & 0x40 and mtype not in SHAREABLE_MESSAGES:
            raise Unsupported("message of an unshareable class flagged shareable")

    def _continuation(self, data: bytes) -> Tuple[int, int]:
        start = self.addr(data, 0)
        length = self._chunk_bytes(self.uint(data, self.so, self.sl))
        if self.base + start + length > self.size:
            raise Corrupt("continuation block outside the file")
        return start, length

    # -- attributes ------------------------------------------------------------------------
    def root_attrs(self, wanted: Dict[bytes, str], scalar_only: bool) -> Dict[str, str]:
        root = self.superblock()
        attrs = []
        is_group = False
        for mtype, mflags, data in self.messages(root):
            if mtype in (MSG_SYMBOL_TABLE, MSG_LINK_INFO):
                is_group = True
            elif mtype == MSG_ATTRIBUTE_INFO:
                self._check_attribute_info(data)
            elif mtype == MSG_ATTRIBUTE:
                if mflags & 0x02:
                    raise Unsupported("shared attribute message")
                attrs.append(data)
        if not is_group:
            raise Unsupported("the root object is not a group")
        # The library decodes every attribute message when it looks one up by name,
        # so every one of them is checked here, not only the wanted ones.
        decoded = {}
        for data in attrs:
            name, value = self._attribute(data, scalar_only)
            if name in decoded:
                raise Unsupported("duplicate attribute name")
            decoded[name] = value
        return {wanted[name]: self._text(*decoded[name]) for name in wanted if name in decoded}

    def _check_attribute_info(self, data: bytes) -> None:
        if len(data) < 2 or data[0] != 0 or data[1] & ~0x03:
            raise Unsupported("unknown attribute info message")
        pos = 2 + (2 if data[1] & 0x01 else 0)
        if not self.is_undef(data, pos):
            raise Unsupported("dense attribute storage (fractal heap)")

    def _attribute(self, data: bytes, scalar_only: bool) -> Tuple[bytes, tuple]:
        """The name of an attribute message and what :meth:`_text` needs to decode its
        value: ``(class, charset, element size, value bytes)``. Only string
        attributes with one element are accepted."""
        if len(data) < 8:
            raise Unsupported("truncated attribute message")
        version, flags = data[0], data[1]
        name_size, dt_size, ds_size = struct.unpack_from("<HHH", data, 2)
        if version == 1:
            pos, pad = 8, _pad8
        elif version in (2, 3):
            if flags & 0x03:
                raise Unsupported("shared attribute datatype or dataspace")
            if flags:
                raise Unsupported("unknown attribute flags")
            pos, pad = (8 if version == 2 else 9), (lambda n: n)
            if version == 3 and (len(data) < 9 or data[8] not in (0, 1)):
                raise Unsupported("unknown attribute name encoding")
        else:
            raise Unsupported(f"attribute message version {version}")
        if name_size < 1 or pos + name_size > len(data) or data[pos + name_size - 1] != 0:
            raise Unsupported("bad attribute name")
        name = data[pos:pos + name_size - 1]
        if b"\0" in name:
            raise Unsupported("NUL in attribute name")
        dt_pos = pos + pad(name_size)
        ds_pos = dt_pos + pad(dt_size)
        data_pos = ds_pos + pad(ds_size)
        if data_pos > len(data):
            raise Unsupported("truncated attribute message")
        self._check_one_element(data[ds_pos:ds_pos + ds_size], scalar_only)
        cls, cset, size = self._string_type(data[dt_pos:dt_pos + dt_size])
        value = data[data_pos:]
        if len(value) < size:
            raise Unsupported("attribute data runs past its message")
        return name, (cls, cset, value[:size])

    def _string_type(self, dt: bytes) -> Tuple[int, int, int]:
        """``(class, charset, size)`` of a string datatype message; anything else is Unsupported."""
        if len(dt) < 8:
            raise Unsupported("truncated datatype")
        cls, version = dt[0] & 0x0F, dt[0] >> 4
        bits, size = int.from_bytes(dt[1:4], "little"), self.uint(dt, 4, 4)
        if not 1 <= version <= 5:
            raise Unsupported(f"datatype version {version}")
        if cls == 3:      # fixed-length string: padding type, character set
            pad, cset = bits & 0x0F, (bits >> 4) & 0x0F
            if pad not in (0, 1) or cset not in (0, 1) or bits >> 8 or size < 1:
                raise Unsupported("unsupported fixed-length string")
            return cls, cset, size
        if cls == 9:      # variable-length: kind (1 = string), padding, character set; base type
            kind, pad, cset = bits & 0x0F, (bits >> 4) & 0x0F, (bits >> 8) & 0x0F
            if kind != 1 or pad > 2 or cset not in (0, 1) or bits >> 12 or size != 8 + self.so:
                raise Unsupported("variable-length data that is not a string")
            # The base type of a variable-length string: 1-byte unsigned integer,
            # bit offset 0, precision 8.
            base = dt[8:20]
            if (len(base) < 12 or base[0] >> 4 not in (1, 2, 3) or base[0] & 0x0F != 0
                    or base[1] & ~0x0F or base[2] or base[3] or base[4:12] != b"\1\0\0\0\0\0\x08\0"):
                raise Unsupported("unusual base type of a variable-length string")
            return cls, cset, size
        raise Unsupported(f"datatype class {cls}")

    def _check_one_element(self, ds: bytes, scalar_only: bool) -> None:
        if len(ds) < 4:
            raise Unsupported("truncated dataspace")
        version, rank, flags = ds[0], ds[1], ds[2]
        if version == 1:
            kind, dims = (0 if rank == 0 else 1), 8
        elif version == 2:
            kind, dims = ds[3], 4
        else:
            raise Unsupported(f"dataspace version {version}")
        if kind == 0 and rank == 0 and flags == 0:
            return
        if (kind == 1 and rank == 1 and flags in (0, 1) and not scalar_only
                and self.uint(ds, dims, self.sl) == 1
                and (flags == 0 or self.uint(ds, dims + self.sl, self.sl) >= 1)):
            return
        raise Unsupported("attribute is not a single string")

    def _text(self, cls: int, cset: int, raw: bytes) -> str:
        """The text of one string value (fixed-length bytes, or a global heap ID)."""
        if cls == 3:
            # h5py gives the bytes up to the padding NULs; reject what it might cut differently.
            text = raw.rstrip(b"\0")
            if b"\0" in text:
                raise Unsupported("NUL inside a fixed-length string")
        else:
            # Global heap ID: string length, collection address, object index.
            length = self.uint(raw, 0, 4)
            if length == 0:
                return ""
            text = self._global_heap_object(self.addr(raw, 4), self.uint(raw, 4 + self.so, 4))
            if len(text) != length or b"\0" in text:
                raise Corrupt("variable-length string does not match its heap object")
        if cset == 0 and any(b >= 0x80 for b in text):
            raise Unsupported("non-ASCII bytes in an ASCII string")
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError:
            raise Unsupported("string is not valid UTF-8") from None

    # -- global heap -----------------------------------------------------------------------
    def _global_heap_object(self, collection: int, index: int) -> bytes:
        """Object ``index`` of the global heap collection at ``collection``.

        The collection is read in one piece (capped at MAX_COLLECTION_BYTES) and
        all of its objects are walked, as the library does, so that a damaged
        collection is refused rather than half-read."""
        # The collection header (signature, version, reserved, size) and each
        # object's header (index, reference count, reserved, size) are padded to a
        # multiple of 8 bytes, like the objects' data: 16 bytes each with 4- or
        # 8-byte lengths.
        coll_hdr = obj_hdr = _pad8(8 + self.sl)
        head = self.read(collection, coll_hdr)
        if head[:4] != b"GCOL" or head[4] != 1:
            raise Corrupt("bad global heap collection")
        coll_size = self.uint(head, 8, self.sl)
        if coll_size < coll_hdr:
            raise Corrupt("global heap collection smaller than its header")
        if coll_size > MAX_COLLECTION_BYTES:
            raise Unsupported("global heap collection larger than this reader reads")
        heap = self.read(collection, coll_size)
        pos, found = coll_hdr, None
        seen = set()
        while pos < coll_size:
            if pos + obj_hdr > coll_size:           # a tail too small for an object: free space
                idx, need = 0, coll_size - pos
            else:
                idx = self.uint(heap, pos, 2)
                osize = self.uint(heap, pos + 8, self.sl)
                need = osize                        # free space: its size includes its header
            if idx == 0:                            # at most one free-space block, 8-byte sized
                if need < min(obj_hdr, coll_size - pos) or need % 8 or 0 in seen:
                    raise Corrupt("bad free space in global heap collection")
                seen.add(0)
            else:
                if idx in seen:
                    raise Corrupt("duplicate global heap object")
                seen.add(idx)
                need = obj_hdr + _pad8(osize)
                if idx == index:
                    found = (pos + obj_hdr, osize)
            if pos + need > coll_size:
                raise Corrupt("global heap object runs past its collection")
            pos += need
        if found is None:
            raise Corrupt("global heap object not found")
        return heap[found[0]:found[0] + found[1]]


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


def _lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, the checksum of HDF5 metadata blocks."""
    m = 0xFFFFFFFF
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & m
    pos = 0
    while n - pos > 12:
        x, y, z = struct.unpack_from("<III", data, pos)
        a, b, c = (a + x) & m, (b + y) & m, (c + z) & m
        a = ((a - c) & m) ^ _rot(c, 4); c = (c + b) & m
        b = ((b - a) & m) ^ _rot(a, 6); a = (a + c) & m
        c = ((c - b) & m) ^ _rot(b, 8); b = (b + a) & m
        a = ((a - c) & m) ^ _rot(c, 16); c = (c + b) & m
        b = ((b - a) & m) ^ _rot(a, 19); a = (a + c) & m
        c = ((c - b) & m) ^ _rot(b, 4); b = (b + a) & m
        pos += 12
    if n == pos:
        return c
    x, y, z = struct.unpack("<III", data[pos:].ljust(12, b"\0"))
    a, b, c = (a + x) & m, (b + y) & m, (c + z) & m
    c ^= b; c = (c - _rot(b, 14)) & m
    a ^= c; a = (a - _rot(c, 11)) & m
    b ^= a; b = (b - _rot(a, 25)) & m
    c ^= b; c = (c - _rot(b, 16)) & m
    a ^= c; a = (a - _rot(c, 4)) & m
    b ^= a; b = (b - _rot(a, 14)) & m
    c ^= b; c = (c - _rot(b, 24)) & m
    return c
