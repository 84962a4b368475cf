#!/usr/bin/env python3
"""verify-bundle.py: an independent verifier of Amanat evidence bundles (format 2).

Written from the public specification in Protocol/ (bundle.md, change.md, envelope.md,
membership.md), not from Amanat's own code, so that a recipient's expert can check a bundle
without trusting Amanat. Section numbers in the comments (for example "bundle.md §7.4") point
to the paragraph of the specification each function implements. It needs Python 3 and PyNaCl
(libsodium) only: Debian's `python3-nacl`, or `pip install pynacl`.

Usage:
  python3 Scripts/verify-bundle.py FOLDER [--expect-vault FINGERPRINT]
  python3 Scripts/verify-bundle.py BUNDLE.age --identity KEY.txt [--expect-vault FINGERPRINT]

FOLDER is an opened bundle: what `amanat bundle open` writes, or what
`age -d -i KEY.txt BUNDLE.age | tar x` extracts. Given an .age file, the `age` tool decrypts it
(so `age` must be installed) and the archive is read in memory; nothing is written to disk.

How to read this file: the primitives come first (hashes, keys and signatures; the binary
encodings of envelopes, changes and membership entries; canonical JSON), then one function per
step of bundle.md §7 in order (check_manifest_form, check_signature, check_files, check_chains,
check_membership_file, check_record with replay, check_membership_proof), and `verify_bundle`,
which runs them, near the end. Every finding is one sentence in the report; nothing is repaired
or guessed.

Exit status (the same as `amanat bundle verify`, bundle.md §7):
  0   intact, every signer proven back to the vault's founder, and the expected vault if given
  3   intact, but some signer is not proven to be a member, the vault is not founded, or the
      vault is not the one given with --expect-vault
  65  NOT intact: some check of integrity failed (the bundle was altered, or is not a bundle)
  64  usage error
  66  no such file or folder
  69  a bundle of format 1, which this verifier does not check (use `amanat bundle verify`)
  74  its documents are larger than this machine lets the verifier hold in memory (bundle.md §7)
  77  age could not decrypt the file with the identity given
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import unicodedata
import dataclasses
from dataclasses import dataclass

try:
    import nacl.bindings
    import nacl.exceptions
    import nacl.signing
except ImportError:  # pragma: no cover - reported to the user
    sys.exit("verify-bundle.py needs PyNaCl: apt-get install python3-nacl (or pip install pynacl)")

EXIT_OK, EXIT_UNPROVEN, EXIT_USAGE, EXIT_NOT_INTACT, EXIT_NO_INPUT, EXIT_UNSUPPORTED, EXIT_TOO_LARGE, EXIT_NO_KEY = (
    0, 3, 64, 65, 66, 69, 74, 77)


class Malformed(Exception):
    """Bytes that do not have the form the specification requires."""


ATTACHMENTS = "attachments/"


class TooLarge(Exception):
    """The bundle's documents pass what this process may hold in memory (bundle.md §7)."""


def document_budget():
    """A quarter of the memory this process may use (the machine's, or less under ulimit -d/-v or a
    cgroup's memory.max), and never less than 64 MiB: the same rule as `amanat bundle verify`."""
    limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        import resource
        for which in (resource.RLIMIT_DATA, resource.RLIMIT_AS):
            soft = resource.getrlimit(which)[0]
            if soft != resource.RLIM_INFINITY:
                limit = min(limit, soft)
    except (ImportError, ValueError, OSError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as handle:
            limit = min(limit, int(handle.read().strip()))
    except (OSError, ValueError):
        pass
    return max(limit // 4, 64 << 20)


class Budget:
    """What the documents held so far cost: each file its header and path, and a document its bytes."""
    __slots__ = ("left", "limit")

    def __init__(self):
        self.limit = self.left = document_budget()

    def spend(self, amount):
        if amount > self.left:
            raise TooLarge(f"the bundle's documents (its files outside attachments/) are larger than the "
                           f"{self.limit >> 20} MiB this machine lets the verifier hold to check them; check it on "
                           "a machine with more memory")
        self.left -= amount


class Summary:
    """An attached file as verification needs it: its SHA-256 and size (bundle.md §7), so that a
    recording of many gigabytes is hashed as it streams and never held. len() is its size."""
    __slots__ = ("sha256", "size")

    def __init__(self, sha256_hex, size):
        self.sha256, self.size = sha256_hex, size

    def __len__(self):
        return self.size


def summarise(read, size, chunk=1 << 20):
    """Hashes `size` bytes given by read(n) a piece at a time; Malformed if they end early."""
    digest, left = hashlib.sha256(), size
    while left:
        piece = read(min(chunk, left))
        if not piece:
            raise Malformed("the archive is truncated")
        digest.update(piece)
        left -= len(piece)
    return Summary(digest.hexdigest(), size)


def summarise_to_end(read, chunk=1 << 20):
    """Hashes everything read(n) gives, to its end (a file that grows or shrinks while it is read is
    hashed as it was read)."""
    digest, size = hashlib.sha256(), 0
    while True:
        piece = read(chunk)
        if not piece:
            return Summary(digest.hexdigest(), size)
        digest.update(piece)
        size += len(piece)


def sha256_of(data):
    return data.sha256 if isinstance(data, Summary) else hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------
# Cryptographic primitives (envelope.md §3-§5), all from libsodium through PyNaCl or hashlib.
# ----------------------------------------------------------------------------------------------

def blake2b(data, size=32, key=b""):
    return hashlib.blake2b(data, digest_size=size, key=key).digest()


def kdf_derive(master_key, subkey_id, context):
    """libsodium's crypto_kdf_derive_from_key: keyed BLAKE2b-256 of nothing, with the subkey id
    (little-endian) as salt and the 8-byte context as personalisation."""
    return hashlib.blake2b(b"", digest_size=32, key=master_key,
                           salt=struct.pack("<Q", subkey_id) + bytes(8),
                           person=context + bytes(8)).digest()


def envelope_key(vault_key, author, seq):
    """envelope.md §5: the key of one envelope, derived from the vault key of its epoch."""
    content_key = kdf_derive(vault_key, 1, b"amnt-env")
    return blake2b(b"amanat/envelope-key/v1" + author + struct.pack(">Q", seq), key=content_key)


def authority_key(vault_id):
    """membership.md §1: the public 'vault key' of epoch 0, under which membership entries are sealed."""
    return blake2b(b"amanat/authority/v1" + vault_id)


def derive_vault_id(founder, salt):
    """membership.md §3: the id of a vault founded by `founder`."""
    return blake2b(b"amanat/vault-id/v1" + founder + salt, size=16)


def ed25519_verifies(public_key, message, signature):
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError, TypeError):
        return False


def aead_open(key, nonce, associated_data, ciphertext):
    """XChaCha20-Poly1305-IETF decryption; None when the tag does not verify."""
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, associated_data, nonce, key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return None


# ----------------------------------------------------------------------------------------------
# Binary primitives (change.md §1)
# ----------------------------------------------------------------------------------------------

class Reader:
    """Reads the big-endian integers, varints, byte strings and op ids of change.md §1."""

    def __init__(self, data):
        self.data, self.pos = bytes(data), 0

    def take(self, n):
        if n > len(self.data) - self.pos:
            raise Malformed("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def varint(self):
        """Unsigned LEB128, at most 10 bytes, minimal (no final 0x00 continuation), below 2^64."""
        value = 0
        for i in range(10):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if byte & 0x80 == 0:
                if i > 0 and byte == 0:
                    raise Malformed("non-minimal varint")
                if value >= 1 << 64:
                    raise Malformed("varint above 2^64 - 1")
                return value
        raise Malformed("varint longer than 10 bytes")

    def bytes_(self):
        return self.take(self.varint())  # take() refuses a length beyond the input before copying

    def string(self):
        try:
            return self.bytes_().decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("invalid UTF-8")

    def opid(self):
        return (self.take(32), self.varint(), self.varint())  # (device, seq, index)

    def opids(self):
        items = [self.opid() for _ in range(self.varint())]
        if any(a >= b for a, b in zip(items, items[1:])):
            raise Malformed("op ids not sorted or duplicated")
        return items

    def sorted_keys(self, count, key_size, value_size):
        """(key, value) pairs with keys strictly ascending (membership.md §3 lists)."""
        items = [(self.take(key_size), self.take(value_size) if value_size else self.varint())
                 for _ in range(count)]
        if any(a[0] >= b[0] for a, b in zip(items, items[1:])):
            raise Malformed("list not strictly ascending")
        return items

    def rest_is_zero_padding(self):
        if any(self.data[self.pos:]):
            raise Malformed("non-zero bytes after the end")


def varint_bytes(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string_bytes(text):
    raw = text.encode("utf-8")
    return varint_bytes(len(raw)) + raw


# ----------------------------------------------------------------------------------------------
# Envelopes and chain links (envelope.md §1-§4, bundle.md §6)
# ----------------------------------------------------------------------------------------------

HEADER_LENGTH, LINK_LENGTH = 125, 221


@dataclass
class Header:
    raw: bytes
    vault_id: bytes
    author: bytes
    seq: int
    previous_hash: bytes
    key_epoch: int
    nonce: bytes
    ciphertext_length: int


def decode_header(raw):
    """envelope.md §2: the 125-byte plaintext header."""
    r = Reader(raw[:HEADER_LENGTH])
    if r.take(4) != b"AMNE" or r.u8() != 1:
        raise Malformed("not an envelope of version 1 (magic AMNE)")
    h = Header(raw[:HEADER_LENGTH], r.take(16), r.take(32), r.u64(), r.take(32), r.u32(), r.take(24), r.u32())
    if h.seq == 0 or h.seq > 2**63 - 1:
        raise Malformed(f"seq {h.seq} out of range")
    return h


@dataclass
class Envelope:
    header: Header
    ciphertext: bytes
    signature: bytes

    def link(self):
        """bundle.md §6: the envelope without its ciphertext."""
        return self.header.raw + blake2b(self.ciphertext) + self.signature

    def hash(self):
        """envelope.md §4: BLAKE2b-256(header ‖ BLAKE2b-256(ciphertext) ‖ signature)."""
        return blake2b(self.link())

    def open(self, key):
        """envelope.md §3: decrypt with the header as associated data; None if it does not open."""
        return aead_open(key, self.header.nonce, self.header.raw, self.ciphertext)


def decode_purged_envelope(raw):
    """envelope.md §7: header ‖ "AMNP" ‖ BLAKE2b-256(ciphertext) ‖ signature, 225 bytes: a purged envelope.
    Returns (header, ciphertext hash, signature)."""
    if len(raw) != HEADER_LENGTH + 4 + 32 + 64 or raw[HEADER_LENGTH:HEADER_LENGTH + 4] != b"AMNP":
        raise Malformed("not a purged envelope")
    header = decode_header(raw)
    if header.ciphertext_length < 80:
        raise Malformed("a purged envelope states an impossible ciphertext length")
    if header.key_epoch == 0:
        raise Malformed("a membership entry is never purged")
    return header, raw[HEADER_LENGTH + 4:HEADER_LENGTH + 36], raw[HEADER_LENGTH + 36:]


def decode_envelope(raw):
    """envelope.md §1: header ‖ ciphertext ‖ signature, of exactly the stated length."""
    if len(raw) < HEADER_LENGTH:
        raise Malformed("shorter than an envelope header")
    header = decode_header(raw)
    if header.ciphertext_length < 16 or len(raw) != HEADER_LENGTH + header.ciphertext_length + 64:
        raise Malformed("length does not match ciphertext_length")
    end = HEADER_LENGTH + header.ciphertext_length
    return Envelope(header, raw[HEADER_LENGTH:end], raw[end:])


# ----------------------------------------------------------------------------------------------
# Changes (change.md §3) and the seal (change.md §4)
# ----------------------------------------------------------------------------------------------

@dataclass
class Op:
    type: str            # create, set, add-tag, remove-tag, delete, seal, origin, custody, attach, detach
    kind: str = ""       # create
    field: str = ""      # set
    value: str = ""      # set
    tag: str = ""        # add-tag, remove-tag
    opids: list = dataclasses.field(default_factory=list)  # set: pred; remove-tag, delete: observed
    content_hash: bytes = b""                   # seal
    vault: bytes = b""                          # origin: the origin vault id
    record: bytes = b""                         # origin: the origin record id
    envelope: bytes = b""                       # custody: the kept envelope
    key: bytes = b""                            # custody: its envelope key, or empty
    attachment: dict = dataclasses.field(default_factory=dict)  # attach: what it states (attachments.md §3)
    target: tuple = ()                          # detach: the op id of the attach operation


@dataclass
class Change:
    record: bytes
    wall: int
    counter: int
    ops: list


def decode_change(plain):
    """change.md §3: version 1, record id, stamp, operations, then only zero padding."""
    r = Reader(plain)
    if r.u8() != 1:
        raise Malformed("unknown change version")
    record, wall, counter = r.take(16), r.u64(), r.u32()
    ops = []
    for _ in range(r.varint()):
        t = r.u8()
        if t == 1:
            ops.append(Op("create", kind=r.string()))
        elif t == 2:
            ops.append(Op("set", field=r.string(), value=r.string(), opids=r.opids()))
        elif t == 3:
            ops.append(Op("add-tag", tag=r.string()))
        elif t == 4:
            ops.append(Op("remove-tag", tag=r.string(), opids=r.opids()))
        elif t == 5:
            ops.append(Op("delete", opids=r.opids()))
        elif t == 6:
            ops.append(Op("seal", content_hash=r.take(32)))
        elif t == 7:
            ops.append(Op("origin", vault=r.take(16), record=r.take(16)))
        elif t == 8:
            envelope, key = r.bytes_(), r.bytes_()
            if len(key) not in (0, 32):
                raise Malformed("a custody key that is neither empty nor 32 bytes")
            ops.append(Op("custody", envelope=envelope, key=key))
        elif t == 9:
            ops.append(Op("attach", attachment=decode_attachment(r)))
        elif t == 10:
            ops.append(Op("detach", target=r.opid()))
        else:
            raise Malformed(f"unknown operation type {t}")
    r.rest_is_zero_padding()
    return Change(record, wall, counter, ops)


def decode_attachment(r):
    """attachments.md §3: what an attach operation states, with its checks."""
    a = {"epoch": r.u32(), "size": r.u64(), "sha256": r.take(32), "media_type": r.string(), "name": r.string(),
         "note": r.string(), "metadata_flags": r.u8(), "chunk_size": r.u32(), "chunk_root": r.take(32)}
    count = r.varint()
    if count * 32 > len(r.data) - r.pos:
        raise Malformed("an attachment lists more chunks than the change holds")
    a["chunks"] = [r.take(32) for _ in range(count)]
    if a["metadata_flags"] & ~3:
        raise Malformed("an attachment has unknown metadata flags")
    if not 4096 <= a["chunk_size"] <= 4 << 20:
        raise Malformed("an attachment has a chunk size outside 4 KiB to 4 MiB")
    if a["epoch"] == 0:
        raise Malformed("an attachment names the authority key epoch")
    expected = 0 if a["size"] == 0 else (a["size"] - 1) // a["chunk_size"] + 1
    if count != expected:
        raise Malformed("an attachment lists a number of chunks that does not fit its size")
    if chunk_root(a["chunk_size"], a["size"], a["chunks"]) != a["chunk_root"]:
        raise Malformed("an attachment's chunk root does not match its chunk list")
    return a


def chunk_root(chunk_size, size, chunks):
    """attachments.md §3: BLAKE2b-256("amanat/chunk-root/v1" ‖ u32 chunk-size ‖ u64 size ‖ address × n)."""
    return blake2b(b"amanat/chunk-root/v1" + struct.pack(">IQ", chunk_size, size) + b"".join(chunks))


def attachment_id(opid):
    """attachments.md §3: BLAKE2b-128("amanat/attachment-id/v1" ‖ opid), in hex."""
    device, seq, index = opid
    data = b"amanat/attachment-id/v1" + device + varint_bytes(seq) + varint_bytes(index)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def seal_content_hash(kind, sets):
    """change.md §4: BLAKE2b-256("amanat/seal/v1" ‖ string kind ‖ varint n ‖ (string field ‖ string
    value) × n) over the sealing change's set operations, sorted by field name (UTF-8 bytes)."""
    pairs = sorted(sets, key=lambda fv: fv[0].encode("utf-8"))
    data = b"amanat/seal/v1" + string_bytes(kind) + varint_bytes(len(pairs))
    for name, value in pairs:
        data += string_bytes(name) + string_bytes(value)
    return blake2b(data)


# ----------------------------------------------------------------------------------------------
# Canonical JSON (bundle.md §3.1: RFC 8785 JCS, restricted to objects, arrays, strings,
# booleans and integers)
# ----------------------------------------------------------------------------------------------

MAX_DEPTH, INTEGER_LIMIT = 64, 2**53


def parse_json(data):
    """Parses a document strictly: UTF-8, standard JSON, no null, no fraction or exponent, no
    integer outside (-2^53, 2^53), no duplicate member name, no lone surrogate, at most 64 levels."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("not UTF-8")

    def members(pairs):
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise Malformed("a duplicate member name")
        return dict(pairs)

    def refuse(what):
        raise Malformed(f"a number or constant that is not allowed ({what})")

    try:
        value = json.loads(text, object_pairs_hook=members, parse_float=refuse, parse_constant=refuse)
    except (ValueError, RecursionError) as error:  # json's errors, and too deep for Python itself
        raise Malformed(f"not valid JSON ({str(error).splitlines()[0][:80]})")
    check_json_value(value, 1)
    return value


def check_json_value(value, depth):
    if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
        raise Malformed("nested deeper than 64 levels")
    if value is None:
        raise Malformed("null is not allowed")
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -INTEGER_LIMIT < value < INTEGER_LIMIT:
            raise Malformed("an integer out of range")
    elif isinstance(value, str):
        check_no_lone_surrogate(value)
    elif isinstance(value, list):
        for item in value:
            check_json_value(item, depth + 1)
    elif isinstance(value, dict):
        for name, item in value.items():
            check_no_lone_surrogate(name)
            check_json_value(item, depth + 1)


def check_no_lone_surrogate(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Malformed("a lone surrogate in a string")


JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def canonical_string(text):
    out = []
    for ch in text:
        if ch in JSON_ESCAPES:
            out.append(JSON_ESCAPES[ch])
        elif ch < " ":
            out.append("\\u%04x" % ord(ch))  # other controls: \u00xx, lowercase hex
        else:
            out.append(ch)  # everything else as itself, in UTF-8
    return '"' + "".join(out) + '"'


def canonical_text(value):
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return canonical_string(value)
    if isinstance(value, list):
        return "[" + ",".join(canonical_text(item) for item in value) + "]"
    if isinstance(value, dict):
        # Member names sorted as arrays of UTF-16 code units: big-endian UTF-16 bytes sort the same.
        names = sorted(value, key=lambda name: name.encode("utf-16-be"))
        return "{" + ",".join(canonical_string(n) + ":" + canonical_text(value[n]) for n in names) + "}"
    raise TypeError(f"not a canonical JSON value: {type(value).__name__}")


def canonical(value):
    """The canonical bytes of a value: no whitespace, no final newline."""
    return canonical_text(value).encode("utf-8")


def canonical_document(name, data):
    """bundle.md §3.1: a document must parse, and re-encoding it must give exactly its bytes."""
    if data is None:
        raise Malformed(f"{name} is missing")
    try:
        value = parse_json(data)
    except Malformed as error:
        raise Malformed(f"{name} is not valid JSON for a bundle: {error}")
    if canonical(value) != data:
        raise Malformed(f"{name} is not in canonical form (bundle.md §3.1)")
    return value


# ----------------------------------------------------------------------------------------------
# Forms of the values in documents (bundle.md §3.2, §4.1)
# ----------------------------------------------------------------------------------------------

def is_hex(value, nbytes):
    return isinstance(value, str) and len(value) == 2 * nbytes and all(c in "0123456789abcdef" for c in value)


def is_integer(value, low, high):
    return type(value) is int and low <= value <= high  # `type` excludes true/false


def has_members(obj, required, optional=()):
    return isinstance(obj, dict) and set(required) <= set(obj) <= set(required) | set(optional)


def decode_base64(text):
    """Standard base64 with padding and no line breaks (RFC 4648 §4), in its one canonical form."""
    if not isinstance(text, str):
        raise Malformed("not a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise Malformed("not base64")
    if base64.b64encode(raw).decode("ascii") != text:
        raise Malformed("not canonical base64")
    return raw


def strictly_sorted(keys):
    return all(a < b for a, b in zip(keys, keys[1:]))


def fingerprint(vault_id_hex):
    """bundle.md §7: the vault id as 8 dash-separated groups of 4 hex digits."""
    return "-".join(vault_id_hex[i:i + 4] for i in range(0, 32, 4))


def shown(text):
    """Untrusted text made safe for a terminal: controls and bidirectional overrides escaped."""
    # The same set as Amanat's TerminalText: controls, bidirectional controls, invisible separators and
    # joiners, the byte-order mark, interlinear annotations and tag characters.
    risky = set(range(0x20)) | set(range(0x7F, 0xA0)) | set(range(0x2028, 0x202F)) | set(range(0x2060, 0x2065))
    risky |= set(range(0x2066, 0x2070)) | set(range(0xFFF9, 0xFFFC)) | set(range(0xE0000, 0xE0080)) | {0x200B, 0xFEFF}
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates of odd file names
    return "".join("\\u%04x" % ord(c) if ord(c) in risky else c for c in text)


def utc(time_ms):
    try:
        moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(milliseconds=time_ms)
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + "%03d UTC" % (time_ms % 1000)
    except (OverflowError, ValueError):
        return f"{time_ms} ms"


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------

class Report:
    """Collects every finding, each in one sentence naming the file, record or device (bundle.md §7)."""

    def __init__(self):
        self.problems = []      # integrity failures (steps 1-6): the bundle is not intact
        self.unproven = []      # membership findings (steps 8-9): intact but not proven
        self.devices = []       # lines about each device
        self.records = []       # (id, record, what was verified or None if it failed)
        self.summary = []
        self.unsupported = False  # a format-1 bundle: not checked at all
        self.unproven_records = set()  # ids of records with a change not proven to be a member's

    def problem(self, sentence):
        self.problems.append(sentence)

    def status(self):
        if self.unsupported:
            return EXIT_UNSUPPORTED
        if self.problems:
            return EXIT_NOT_INTACT
        return EXIT_UNPROVEN if self.unproven else EXIT_OK

    def print(self, out=sys.stdout):
        for line in self.summary:
            print(shown(line), file=out)
        if self.devices:
            print("Devices (names are the exporter's statement, bundle.md §4.1):", file=out)
            for line in self.devices:
                print("  " + shown(line), file=out)
        if self.records:
            print("Records:", file=out)
            for record_id, name, detail in self.records:
                if detail is None:
                    line = f"{name}: FAILED, see the problems below"
                elif self.problems:
                    line = f"{name}: its own checks pass, but the bundle is not intact"
                elif record_id in self.unproven_records:
                    line = f"{name}: intact but NOT PROVEN (see below), {detail}"
                else:
                    line = f"{name}: verified, {detail}"
                print("  " + shown(line), file=out)
        for sentence in self.unproven:
            print("NOT PROVEN: " + shown(sentence), file=out)
        for sentence in self.problems:
            print("PROBLEM: " + shown(sentence), file=out)
        status = self.status()
        if status == EXIT_UNSUPPORTED:
            verdict = "NOT CHECKED: this verifier checks bundles of format 2 only."
        elif status == EXIT_NOT_INTACT:
            verdict = (f"NOT INTACT: {len(self.problems)} problem(s). The bundle was altered or is not a bundle; "
                       "nothing in it should be relied on.")
        elif status == EXIT_UNPROVEN:
            verdict = "INTACT, BUT NOT PROVEN: the signatures and contents check, but see NOT PROVEN above."
        else:
            verdict = "VERIFIED: intact, and every signer proven to be a member back to the vault's founder."
        print(verdict, file=out)


# ----------------------------------------------------------------------------------------------
# bundle.md §7.1: the manifest
# ----------------------------------------------------------------------------------------------

MANIFEST_MEMBERS = ["devices", "exported_at_ms", "exported_by", "files", "format", "membership", "records", "vault_id"]
CONSENT_VALUES = {"share", "anonymised", "restricted", "conflict", "unset"}
SEQ_MAX = INTEGER_LIMIT - 1


def check_manifest_form(m):
    """Every member of bundle.md §4.1 with its type and form; returns a list of sentences."""
    found = []

    def need(ok, sentence):
        if not ok:
            found.append("manifest.json: " + sentence)

    if not has_members(m, MANIFEST_MEMBERS):
        return ["manifest.json does not have exactly the members of bundle.md §4.1"]
    need(m["format"] == "amanat-bundle/2", "format is not amanat-bundle/2")
    need(is_hex(m["vault_id"], 16), "vault_id is not 32 hex digits")
    need(is_hex(m["exported_by"], 32), "exported_by is not a device (64 hex digits)")
    need(is_integer(m["exported_at_ms"], -SEQ_MAX, SEQ_MAX), "exported_at_ms is not an integer")
    need(m["membership"] == "membership.json", "membership is not membership.json")
    if found:
        return found

    files = m["files"]
    if isinstance(files, list) and all(has_members(f, ["path", "sha256"]) and isinstance(f["path"], str)
                                       and is_hex(f["sha256"], 32) for f in files):
        paths = [f["path"].encode("utf-8", "surrogatepass") for f in files]
        need(strictly_sorted(paths), "files are not sorted by path, each once")
        need(not {"manifest.json", "manifest.sig"} & {f["path"] for f in files},
             "files lists manifest.json or manifest.sig")
    else:
        need(False, "files is not a list of {path, sha256}")

    devices = m["devices"]
    if isinstance(devices, list) and all(
            has_members(d, ["chain", "device", "links"], ["name"]) and is_hex(d["device"], 32)
            and d["chain"] == f"chains/{d['device']}.bin" and is_integer(d["links"], 1, SEQ_MAX)
            and ("name" not in d or (isinstance(d["name"], str) and len(d["name"].encode("utf-8")) <= 96))
            for d in devices):
        need(strictly_sorted([d["device"] for d in devices]), "devices are not sorted by device, each once")
        need(m["exported_by"] in {d["device"] for d in devices}, "exported_by is not one of devices")
    else:
        need(False, "devices is not a list of {chain, device, links, name} of the stated forms")

    records = m["records"]
    if isinstance(records, list) and all(check_manifest_record_form(r) for r in records):
        need(strictly_sorted([r["id"] for r in records]), "records are not sorted by id, each once")
    else:
        need(False, "records is not a list of records of the form of bundle.md §4.1")
    return found


# attachments.md §9: what a location-stripped copy may say was removed.
REMOVED_NAMES = {"exif-gps", "xmp-location", "xmp-packet", "quicktime-xyz", "3gpp-loci", "quicktime-location-key"}


def check_stripped_form(stripped):
    """bundle.md §4.1: {original_sha256, original_size, removed}, removed a sorted non-empty list of known names."""
    return (has_members(stripped, ["original_sha256", "original_size", "removed"])
            and is_hex(stripped["original_sha256"], 32) and is_integer(stripped["original_size"], 0, SEQ_MAX)
            and isinstance(stripped["removed"], list) and stripped["removed"]
            and all(isinstance(n, str) and n in REMOVED_NAMES for n in stripped["removed"])
            and strictly_sorted([n.encode("utf-8") for n in stripped["removed"]]))


def check_manifest_record_form(r):
    if not has_members(r, ["changes", "custody", "id", "kind", "record"], ["attachments", "consent"]):
        return False
    if "attachments" in r:
        attachments = r["attachments"]
        if not (isinstance(attachments, list) and attachments and all(
                has_members(a, ["attachment", "path", "sha256", "size"], ["stripped"])
                and ("stripped" not in a or check_stripped_form(a["stripped"])) and is_hex(a["attachment"], 16)
                and a["attachment"] == a["attachment"].lower() and is_hex(a["sha256"], 32)
                and is_integer(a["size"], 0, SEQ_MAX) and isinstance(a["path"], str)
                and a["path"].startswith(f"attachments/{r['id']}/{a['attachment'][:12]}.")
                for a in attachments)):
            return False
        if not strictly_sorted([a["path"].encode("utf-8", "surrogatepass") for a in attachments]):
            return False
    if not (is_hex(r["id"], 16) and isinstance(r["kind"], str) and r["record"] == f"records/{r['id']}.json"
            and r["custody"] == f"custody/{r['id']}.json"):
        return False
    # consent is present for testimonies only, and for every testimony.
    consent = r.get("consent", "unset")
    if ("consent" in r) != (r["kind"] == "testimony") or not (isinstance(consent, str) and consent in CONSENT_VALUES):
        return False
    changes = r["changes"]
    if not (isinstance(changes, list) and all(
            has_members(c, ["device", "envelope", "seq"]) and is_hex(c["device"], 32) and is_hex(c["envelope"], 32)
            and is_integer(c["seq"], 1, SEQ_MAX) for c in changes)):
        return False
    return strictly_sorted([(c["device"], c["seq"]) for c in changes])


# ----------------------------------------------------------------------------------------------
# bundle.md §7.2-§7.3: the signature and the files
# ----------------------------------------------------------------------------------------------

SIGNATURE_CONTEXT = b"amanat/bundle-manifest/v2"


def check_signature(files, manifest, report):
    """bundle.md §4.2: manifest.sig = Ed25519-sign(exported_by, context ‖ manifest.json bytes)."""
    signature = files.get("manifest.sig")
    if signature is None or len(signature) != 64:
        report.problem("manifest.sig is missing or not exactly 64 bytes")
        return
    exporter = bytes.fromhex(manifest["exported_by"])
    if not ed25519_verifies(exporter, SIGNATURE_CONTEXT + files["manifest.json"], signature):
        report.problem(f"manifest.sig does not verify under exported_by {manifest['exported_by'][:12]}: "
                       "the manifest was altered or not signed by that device")


def check_files(files, manifest, report):
    """bundle.md §7.3: every listed file present with its SHA-256; no other file; every path the
    manifest names (and README.txt) listed."""
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    for path, digest in listed.items():
        if path not in files:
            report.problem(f"{path} is listed in the manifest but missing")
        elif sha256_of(files[path]) != digest:
            report.problem(f"{path} does not match its SHA-256 in the manifest (it was altered)")
    for path in sorted(set(files) - set(listed) - {"manifest.json", "manifest.sig"}):
        report.problem(f"{path} is in the bundle but not in the manifest")
    named = {"README.txt", manifest["membership"]}
    named |= {d["chain"] for d in manifest["devices"]}
    named |= {r["record"] for r in manifest["records"]} | {r["custody"] for r in manifest["records"]}
    named |= {a["path"] for r in manifest["records"] for a in r.get("attachments", [])}
    for path in sorted(named - set(listed)):
        report.problem(f"manifest.json names {path} but does not list it in files")


# ----------------------------------------------------------------------------------------------
# bundle.md §7.4: chains
# ----------------------------------------------------------------------------------------------

def check_chain(device_hex, data, links, vault_id, report):
    """Each link i has this vault id, the device as author, seq i, previous_hash = hash of link
    i-1 (zeros for i = 1); the signature of the last link verifies, and through the hashes it
    commits to every earlier link (envelope.md §6). Returns the links' hashes (index 0 = seq 1)."""
    name = f"chains/{device_hex}.bin"
    if data is None:
        report.problem(f"{name} is missing")
        return None
    if len(data) != links * LINK_LENGTH:
        report.problem(f"{name} is not {links} links of {LINK_LENGTH} bytes")
        return None
    device, previous, hashes = bytes.fromhex(device_hex), bytes(32), []
    for i in range(links):
        link = data[i * LINK_LENGTH:(i + 1) * LINK_LENGTH]
        try:
            header = decode_header(link)
        except Malformed as error:
            report.problem(f"{name}: link {i + 1} is malformed ({error})")
            return None
        if header.vault_id != vault_id or header.author != device or header.seq != i + 1:
            report.problem(f"{name}: link {i + 1} is not of this vault, this device and seq {i + 1}")
            return None
        if header.previous_hash != previous:
            report.problem(f"{name}: link {i + 1} does not name the hash of link {i} (broken chain)")
            return None
        previous = blake2b(link)
        hashes.append(previous)
    last = data[-LINK_LENGTH:]
    if not ed25519_verifies(device, last[:HEADER_LENGTH + 32], last[HEADER_LENGTH + 32:]):
        report.problem(f"{name}: the signature of link {links} does not verify under device {device_hex[:12]}")
        return None
    return hashes


def check_chains(files, manifest, vault_id, report):
    chains = {}
    for d in manifest["devices"]:
        hashes = check_chain(d["device"], files.get(d["chain"]), d["links"], vault_id, report)
        if hashes is not None:
            chains[d["device"]] = hashes
    return chains


def link_hash(chains, device_hex, seq):
    hashes = chains.get(device_hex)
    if hashes is None or not 1 <= seq <= len(hashes):
        return None
    return hashes[seq - 1]


# ----------------------------------------------------------------------------------------------
# bundle.md §5.3, §7.5: membership entries (membership.md §1, §3)
# ----------------------------------------------------------------------------------------------

COORDINATOR, MEMBER, READER = 1, 2, 3
ROLE_NAMES = {COORDINATOR: "coordinator", MEMBER: "member", READER: "reader"}
ENTRY_TYPES = {1: "found", 2: "adopt", 3: "invite", 4: "join", 5: "set role", 6: "revoke", 7: "rename",
               8: "dismiss fork", 9: "recover", 10: "grant", 11: "purge"}


@dataclass
class Entry:
    author: bytes
    seq: int
    wall: int
    counter: int
    type: str
    body: dict


def read_sealed_name(r):
    """membership.md §3-§4: u32 epoch ‖ 24-byte nonce ‖ varint length ‖ ciphertext (unreadable here)."""
    return (r.u32(), r.take(24), r.bytes_())


def read_role(r):
    role = r.u8()
    if role not in ROLE_NAMES:
        raise Malformed(f"unknown role {role}")
    return role


def decode_entry(plain, author, seq):
    """membership.md §3: version 1, the author's stamp, the type and its body, then zero padding."""
    r = Reader(plain)
    if r.u8() != 1:
        raise Malformed("unknown entry version")
    wall, counter, t = r.u64(), r.u32(), r.u8()
    if t == 1:
        body = dict(salt=r.take(16), agreement_key=r.take(32), name=read_sealed_name(r))
    elif t == 2:
        body = dict(coordinator=r.take(32), heads=r.sorted_keys(r.varint(), 32, 0), agreement_key=r.take(32),
                    name=read_sealed_name(r))
    elif t == 3:
        body = dict(invitation_key=r.take(32), role=read_role(r), expires_at=r.u64())
    elif t in (4, 9):
        body = dict(key=r.take(32), proof=r.take(64), agreement_key=r.take(32), name=read_sealed_name(r))
    elif t == 5:
        body = dict(device=r.take(32), role=read_role(r), after=r.varint())
    elif t == 6:
        body = dict(device=r.take(32), after=r.varint(), epoch=r.u32(), relay_key=r.take(32))
        body["grants"] = r.sorted_keys(r.varint(), 32, 80)
        if body["epoch"] < 2:
            raise Malformed("rotation epoch below 2")
    elif t == 7:
        body = dict(name=read_sealed_name(r))
    elif t == 8:
        body = dict(device=r.take(32), seq=r.varint(), hash=r.take(32))
    elif t == 10:
        body = dict(epoch=r.u32())
        body["grants"] = r.sorted_keys(r.varint(), 32, 80)
        if body["epoch"] < 2:
            raise Malformed("grant epoch below 2")
    elif t == 11:
        # membership.md §3.11: (author ‖ varint seq ‖ ciphertext hash) × n sorted by (author, seq), n ≥ 1;
        # chunk addresses × m sorted; the sealed note (record id and reason, unreadable here).
        targets = [(r.take(32), r.varint(), r.take(32)) for _ in range(r.varint())]
        if not targets or any((a[0], a[1]) >= (b[0], b[1]) for a, b in zip(targets, targets[1:])) \
                or any(not 1 <= seq <= (1 << 63) - 1 for _, seq, _ in targets):
            raise Malformed("purge targets empty, out of order or with an impossible seq")
        chunks = [r.take(32) for _ in range(r.varint())]
        if any(a >= b for a, b in zip(chunks, chunks[1:])):
            raise Malformed("purge chunks out of order")
        body = dict(targets=targets, chunks=chunks, note=read_sealed_name(r))
    else:
        raise Malformed(f"unknown entry type {t}")
    r.rest_is_zero_padding()
    return Entry(author, seq, wall, counter, ENTRY_TYPES[t], body)


def check_membership_file(files, manifest, vault_id, chains, report):
    """bundle.md §7.5. Returns the decoded entries (only when all of them check)."""
    try:
        doc = canonical_document("membership.json", files.get("membership.json"))
    except Malformed as error:
        report.problem(str(error))
        return []
    if not (has_members(doc, ["entries", "vault_id"]) and isinstance(doc["entries"], list) and all(
            has_members(e, ["device", "envelope", "hash", "seq"]) and is_hex(e["device"], 32)
            and is_hex(e["hash"], 32) and is_integer(e["seq"], 1, SEQ_MAX) for e in doc["entries"])):
        report.problem("membership.json does not have the form of bundle.md §5.3")
        return []
    if doc["vault_id"] != manifest["vault_id"]:
        report.problem("membership.json names another vault than the manifest")
    if not strictly_sorted([(e["device"], e["seq"]) for e in doc["entries"]]):
        report.problem("membership.json: entries are not sorted by (device, seq), each once")
    key = authority_key(vault_id)
    entries = []
    for item in doc["entries"]:
        where = f"membership.json: the entry of device {item['device'][:12]} at seq {item['seq']}"
        try:
            envelope = decode_envelope(decode_base64(item["envelope"]))
        except Malformed as error:
            report.problem(f"{where} does not decode ({error})")
            continue
        h = envelope.header
        if h.vault_id != vault_id or h.key_epoch != 0 or h.author.hex() != item["device"] or h.seq != item["seq"]:
            report.problem(f"{where} is not an entry (key epoch 0) of this vault by that device at that seq")
            continue
        if envelope.hash().hex() != item["hash"] or link_hash(chains, item["device"], item["seq"]) != envelope.hash():
            report.problem(f"{where} does not match its hash or the hash of link {item['seq']} of its device's chain")
            continue
        plain = envelope.open(envelope_key(key, h.author, h.seq))
        if plain is None:
            report.problem(f"{where} does not decrypt with the vault's authority key")
            continue
        try:
            entries.append(decode_entry(plain, h.author, h.seq))
        except Malformed as error:
            report.problem(f"{where} is not a membership entry ({error})")
    return entries


# ----------------------------------------------------------------------------------------------
# membership.md §5: evaluation of the entries (who belongs, with which role)
# ----------------------------------------------------------------------------------------------

@dataclass
class Member:
    admitted_seq: int                      # its changes with a greater seq count (0 for the founder)
    windows: list                          # (after, evaluation order, role): the role for seqs > after
    revoked_after: int = None              # revoked: its changes with a greater seq never count
    previous: bytes = None                 # for an identity admitted by `recover`
    reader_as_previous: bool = False

    def role_at(self, seq):
        """The role of the window with the greatest `after` below seq (later-evaluated wins a tie)."""
        if self.reader_as_previous:
            return READER
        windows = [w for w in self.windows if w[0] < seq]
        return max(windows)[2] if windows else None

    def active_at(self, seq):
        """"Active at seq s": admitted, s greater than its admitting seq, not revoked with after < s."""
        return seq > self.admitted_seq and (self.revoked_after is None or seq <= self.revoked_after)

    def role_now(self):
        return self.role_at(2**64)


class Membership:
    """The outcome of one pass over the entries in evaluation order."""

    def __init__(self):
        self.members = {}       # device (bytes) -> Member
        self.founder = None
        self.invitations = {}   # invitation key -> (role, expires_at)
        self.used_invitations = set()

    def coordinator_at(self, device, seq):
        m = self.members.get(device)
        return m is not None and m.active_at(seq) and m.role_at(seq) == COORDINATOR

    def admit(self, device, admitted_seq, role, order):
        self.members[device] = Member(admitted_seq, [(-1, order, role)])


def evaluation_pass(entries, vault_id, excluded):
    """membership.md §5, one pass. Returns the state and the entries that took effect and must be
    checked against the final state ("stamps do not buy authority")."""
    state, took_effect = Membership(), []
    ordered = sorted(entries, key=lambda e: (e.wall, e.counter, e.author, e.seq))
    for order, e in enumerate(ordered):
        if (e.author, e.seq) in excluded:
            continue
        b = e.body
        if e.type == "found":
            # Only at seq 1, only if the vault id is the hash of this author and the salt.
            if e.seq == 1 and derive_vault_id(e.author, b["salt"]) == vault_id and e.author not in state.members:
                state.admit(e.author, 0, COORDINATOR, order)
                state.founder = e.author
        elif e.type == "invite":
            if state.coordinator_at(e.author, e.seq):
                took_effect.append(e)
                if b["invitation_key"] not in state.invitations:  # the same key issued twice: no effect
                    state.invitations[b["invitation_key"]] = (b["role"], b["expires_at"])
        elif e.type == "join":
            key = b["key"]
            proof_message = b"amanat/join/v1" + vault_id + e.author + b["agreement_key"]
            if (e.seq == 1 and key in state.invitations and key not in state.used_invitations
                    and e.wall <= state.invitations[key][1] and e.author not in state.members
                    and ed25519_verifies(key, proof_message, b["proof"])):
                state.used_invitations.add(key)  # one-time: a later join with it admits nobody
                state.admit(e.author, 1, state.invitations[key][0], order)
        elif e.type == "set role":
            target = state.members.get(b["device"])
            if state.coordinator_at(e.author, e.seq) and target is not None and target.revoked_after is None:
                took_effect.append(e)
                target.windows.append((b["after"], order, b["role"]))
        elif e.type == "revoke":
            target = state.members.get(b["device"])
            if state.coordinator_at(e.author, e.seq) and target is not None:
                took_effect.append(e)
                if target.revoked_after is None:  # final; the first effective revocation fixes `after`
                    target.revoked_after = b["after"]
            # A revoke by a mere member only makes a key-only rotation: it changes nobody's membership.
        elif e.type == "recover":
            previous = state.members.get(b["key"])
            proof_message = b"amanat/recover/v1" + vault_id + e.author + b["agreement_key"]
            if (e.seq == 1 and previous is not None and previous.revoked_after is None
                    and e.author not in state.members and ed25519_verifies(b["key"], proof_message, b["proof"])):
                state.admit(e.author, 1, READER if previous.role_now() == READER else MEMBER, order)
                state.members[e.author].previous = b["key"]
        elif e.type in ("grant", "dismiss fork", "purge"):
            if state.coordinator_at(e.author, e.seq):
                took_effect.append(e)  # no effect on who belongs; checked for completeness of the rule
        # `rename` changes only a sealed name, which a recipient cannot read. `adopt` is never
        # effective in a vault that has a valid `found`, and a bundle proves nobody in a vault
        # that has none (bundle.md §7.8, "no legacy authors"), so it is not evaluated here.
    apply_recovered_revocations(state)
    return state, took_effect


def apply_recovered_revocations(state):
    """After each pass, a recovered identity takes its previous identity's revocation (from its
    first change) and is a reader if its previous identity is a reader now."""
    changed = True
    while changed:
        changed = False
        for m in state.members.values():
            previous = state.members.get(m.previous) if m.previous else None
            if previous is None:
                continue
            if previous.revoked_after is not None and m.revoked_after != 0:
                m.revoked_after, changed = 0, True
            if previous.role_now() == READER and not m.reader_as_previous:
                m.reader_as_previous, changed = True, True


def evaluate_membership(entries, vault_id):
    """membership.md §5: passes until no entry that took effect lacks authority in the final state
    (the excluded set only grows, so this ends)."""
    excluded = set()
    while True:
        state, took_effect = evaluation_pass(entries, vault_id, excluded)
        lacking = {(e.author, e.seq) for e in took_effect if not state.coordinator_at(e.author, e.seq)}
        if not lacking:
            return state
        excluded |= lacking


# ----------------------------------------------------------------------------------------------
# bundle.md §5.1: the record document as the disclosed changes make it (change.md §5)
# ----------------------------------------------------------------------------------------------

@dataclass
class Disclosed:
    device: bytes
    seq: int
    envelope_hash: bytes
    change: Change


def operation_text(op):
    """The history wording of bundle.md §5.1."""
    if op.type == "create":
        return "created " + op.kind
    if op.type == "set":
        verb = "set" if not op.opids else "changed" if len(op.opids) == 1 else "resolved"
        return f"{verb} {op.field} = {op.value}"
    if op.type == "add-tag":
        return "tagged " + op.tag
    if op.type == "remove-tag":
        return "untagged " + op.tag
    if op.type == "delete":
        return "deleted"
    if op.type == "origin":
        return f"imported record {op.record.hex()} of vault {op.vault.hex()}"
    if op.type == "custody":
        return "kept original envelope " + hashlib.blake2b(op.envelope, digest_size=32).hexdigest()
    if op.type == "attach":
        a = op.attachment
        name = a["name"] or "a file"
        return f"attached {name} ({a['media_type']}, {a['size']} bytes, SHA-256 {a['sha256'].hex()})"
    if op.type == "detach":
        return "detached attachment " + attachment_id(op.target)[:12]
    return "sealed original content " + op.content_hash.hex()


DAY_MS = 86_400_000  # change.md §2 and §5: the drift bound, and the horizon of a reader's clock


def nfc(text):
    """change.md §5: field names and tags are grouped, sorted and written in Normalization Form C."""
    return unicodedata.normalize("NFC", text)


def replay(record_hex, disclosed, exported_at_ms):
    """change.md §5 projection of the disclosed changes; returns (document value, seal check).
    An op id is (device, seq, index); a stamp is (wall, counter). Displayed values are chosen for a
    reader whose clock reads the manifest's exported_at_ms (bundle.md §5.1)."""
    ops = [((d.device, d.seq, i), op, d) for d in disclosed for i, op in enumerate(d.change.ops)]
    of_type = lambda t: [(opid, op, d) for opid, op, d in ops if op.type == t]
    creates = sorted(of_type("create"), key=lambda x: x[0])
    creation = creates[0] if creates else None          # Kind: the create with the smallest op id
    overwritten = {p for _, op, _ in of_type("set") for p in op.opids}
    visible_sets = [x for x in of_type("set") if x[0] not in overwritten]
    removed = {p for _, op, _ in of_type("remove-tag") for p in op.opids}
    visible_tags = [x for x in of_type("add-tag") if x[0] not in removed]
    delete_observed = {p for _, op, _ in of_type("delete") for p in op.opids}
    live = ([creation[0]] if creation else []) + [x[0] for x in visible_sets] + [x[0] for x in visible_tags]
    visible = any(opid not in delete_observed for opid in live)

    fields, conflicts = {}, {}
    if visible:
        by_field = {}
        for opid, op, d in visible_sets:
            by_field.setdefault(nfc(op.field), []).append(
                ((d.change.wall, d.change.counter), d.device, opid, op.value))
        horizon = exported_at_ms + DAY_MS
        for name, values in by_field.items():
            values.sort(reverse=True)  # best first: greatest (stamp, device, op id)
            # A value stamped beyond the horizon never decides: the plausible ones first, each part best first.
            values = [v for v in values if v[0][0] <= horizon] + [v for v in values if v[0][0] > horizon]
            fields[name] = values[0][3]
            if len(values) > 1:
                conflicts[name] = [v[3] for v in values[1:]]

    seals = sorted(of_type("seal"), key=lambda x: x[0])
    seal = seals[0] if seals else None                 # Seal: the seal with the smallest op id
    kind = creation[1].kind if creation else ""
    history = []
    for d in sorted(disclosed, key=lambda d: (d.change.wall, d.change.counter, d.device, d.seq)):
        item = {"device": d.device.hex(), "envelope": d.envelope_hash.hex(), "seq": d.seq,
                "time_ms": d.change.wall, "operations": [operation_text(op) for op in d.change.ops]}
        if seal and creation:
            creator = creation[0][:2]
            item["label"] = "original, sealed" if (d.device, d.seq) == creator else "amendment"
        history.append(item)
    document = {"id": record_hex, "kind": kind, "deleted": not visible, "fields": fields, "conflicts": conflicts,
                "tags": sorted({nfc(op.tag) for _, op, _ in visible_tags}, key=lambda t: t.encode("utf-8")),
                "history": history}
    seal_ok = True
    if seal:
        document["sealed_content_hash"] = seal[1].content_hash.hex()
        sealing = seal[2].change  # change.md §4: recomputed from the sealing change's set operations
        seal_ok = seal_content_hash(kind, [(op.field, op.value) for op in sealing.ops if op.type == "set"]) \
            == seal[1].content_hash
    return document, seal_ok


# ----------------------------------------------------------------------------------------------
# bundle.md §7.6-§7.7: records, custody and completeness
# ----------------------------------------------------------------------------------------------

def check_record(entry, files, vault_id, chains, report, exported_at_ms, manifest_files=()):
    """Checks one record of the manifest. Returns (custody changes as (device hex, seq), what was
    verified of the record, or None if an integrity check failed)."""
    rid, short = entry["id"], entry["id"][:12]
    failures = []
    try:
        custody = canonical_document(entry["custody"], files.get(entry["custody"]))
    except Malformed as error:
        report.problem(f"record {short}: {error}")
        return [], None
    if not (has_members(custody, ["envelopes", "record"]) and custody["record"] == rid
            and isinstance(custody["envelopes"], list) and all(
                has_members(e, ["device", "envelope", "envelope_key", "hash", "seq"]) and is_hex(e["device"], 32)
                and is_hex(e["envelope_key"], 32) and is_hex(e["hash"], 32) and is_integer(e["seq"], 1, SEQ_MAX)
                for e in custody["envelopes"])):
        report.problem(f"record {short}: {entry['custody']} does not have the form of bundle.md §5.2 for this record")
        return [], None
    items = custody["envelopes"]
    if not strictly_sorted([(e["device"], e["seq"]) for e in items]):
        failures.append(f"{entry['custody']}: envelopes are not sorted by (device, seq), each once")
    statement = {(c["device"], c["seq"]): c["envelope"] for c in entry["changes"]}
    disclosed = []
    for item in items:
        where = f"{entry['custody']}: the change of device {item['device'][:12]} at seq {item['seq']}"
        try:
            envelope = decode_envelope(decode_base64(item["envelope"]))
        except Malformed as error:
            failures.append(f"{where} does not decode ({error})")
            continue
        h = envelope.header
        if h.vault_id != vault_id or h.author.hex() != item["device"] or h.seq != item["seq"] or h.key_epoch == 0:
            failures.append(f"{where} is not a change of this vault by that device at that seq")
            continue
        ehash = envelope.hash()
        if ehash.hex() != item["hash"] or link_hash(chains, item["device"], item["seq"]) != ehash:
            failures.append(f"{where} does not match its hash or link {item['seq']} of its device's chain")
            continue
        if statement.get((item["device"], item["seq"])) != item["hash"]:
            failures.append(f"{where} is not in the record's changes in the manifest")
        plain = envelope.open(bytes.fromhex(item["envelope_key"]))
        if plain is None:
            failures.append(f"{where} does not decrypt with its envelope_key")
            continue
        try:
            change = decode_change(plain)
        except Malformed as error:
            failures.append(f"{where} is not a change ({error})")
            continue
        if change.record.hex() != rid:
            failures.append(f"{where} is a change of another record")
            continue
        disclosed.append(Disclosed(h.author, h.seq, ehash, change))
    # The completeness statement must be about changes the devices really signed.
    for (device, seq), ehash in statement.items():
        linked = link_hash(chains, device, seq)
        if linked is None or linked.hex() != ehash:
            failures.append(f"manifest.json: change {device[:12]} seq {seq} of record {short} "
                            "is not a link of that device's chain with that hash")
    if not failures:
        document, seal_ok = replay(rid, disclosed, exported_at_ms)
        if not seal_ok:
            failures.append("its sealed original does not match its seal (change.md §4)")
        if document["kind"] != entry["kind"]:
            failures.append(f"its kind is {document['kind']!r}, the manifest says {entry['kind']!r}")
        # attachments.md / bundle.md §7 step 6: each attached file is the one a disclosed attach operation states.
        attached = {attachment_id((d.device, d.seq, i)): op.attachment
                    for d in disclosed for i, op in enumerate(d.change.ops) if op.type == "attach"}
        listed = {f["path"]: f["sha256"] for f in manifest_files}
        for a in entry.get("attachments", []):
            spec = attached.get(a["attachment"])
            # A location-stripped copy (bundle.md §4.1 `stripped`): the original it stands for is the one sealed
            # in custody; the copy is covered by its SHA-256 in `files` and the manifest signature.
            original = a.get("stripped", {"original_sha256": a["sha256"], "original_size": a["size"]})
            if spec is None:
                failures.append(f"its attachment {a['attachment'][:12]} is not attached by any disclosed change")
            elif spec["sha256"].hex() != original["original_sha256"] or spec["size"] != original["original_size"]:
                if "stripped" in a:
                    failures.append(f"attachment {a['attachment'][:12]} claims to be a location-stripped copy of an "
                                    "original whose SHA-256 or size is not the one sealed in custody")
                else:
                    failures.append(f"the file of attachment {a['attachment'][:12]} is not the one its signed change "
                                    "states (SHA-256 or size)")
            elif listed.get(a["path"]) != a["sha256"] or len(files.get(a["path"], b"")) != a["size"]:
                failures.append(f"the file {a['path']} of attachment {a['attachment'][:12]} is missing or is not "
                                "the one the manifest states")
        if canonical(document) != files.get(entry["record"]):
            failures.append(f"{entry['record']} is not exactly the document its disclosed changes produce "
                            "(bundle.md §5.1)")
        elif len(statement) == len(items) and not document["deleted"] and "consent" in entry:
            # Every change disclosed: the consent the manifest states must be the one the document shows.
            shown_consent = ("conflict" if "consent" in document["conflicts"] else
                             document["fields"].get("consent") if document["fields"].get("consent") in
                             ("share", "anonymised", "restricted") else "unset")
            if entry["consent"] != shown_consent:
                failures.append(f"the manifest states consent {entry['consent']!r}, its signed changes "
                                f"{shown_consent!r}")
    for sentence in failures:
        report.problem(f"record {short}: {sentence}")
    if failures:
        return [], None
    return [(d.device.hex(), d.seq) for d in disclosed], describe_record(document, len(statement) - len(items),
                                                                        entry.get("attachments", []))


def describe_record(document, undisclosed, attachments=()):
    """What was verified of one record, with the completeness of bundle.md §7.7 and its attached files."""
    labels = [h.get("label") for h in document["history"]]
    changes = len(document["history"])
    text = f"{changes} change{'s' if changes != 1 else ''} disclosed"
    if "original, sealed" in labels:
        amendments = labels.count("amendment")
        text += f" (original, sealed; {amendments} amendment{'s' if amendments != 1 else ''})"
    if document["deleted"]:
        text += ", deleted"
    if undisclosed:
        text += f"; {undisclosed} change{'s' if undisclosed != 1 else ''} not disclosed"
    for a in attachments:
        if "stripped" in a:
            s = a["stripped"]
            text += (f"; {a['path']} is a location-stripped copy (removed: {', '.join(s['removed'])}), SHA-256 "
                     f"{a['sha256']}, whose original's SHA-256 is {s['original_sha256']} (sealed in custody)")
        else:
            text += f"; {a['path']} is the attached original, SHA-256 {a['sha256']} (sealed in custody)"
    return text


def record_name(entry):
    name = f"{entry['id']} {entry['kind'] or '(no creation disclosed)'}"
    return name + (f", consent at export: {entry['consent']}" if "consent" in entry else "")


# ----------------------------------------------------------------------------------------------
# bundle.md §7.8-§7.9: membership proof and the expected vault
# ----------------------------------------------------------------------------------------------

def check_membership_proof(manifest, entries, vault_id, custody_changes, report):
    state = evaluate_membership(entries, vault_id)
    founded = state.founder is not None
    if founded:
        report.summary.append(f"Vault founded by device {state.founder.hex()}: the vault id is the hash of its key "
                              "(membership.md §3)")
    else:  # then this is the one finding: nobody can be proven (bundle.md §7.8)
        report.unproven.append("the vault is not founded: no `found` entry of the bundle hashes to the vault id, "
                               "so no signer is proven to be a member")
    for d in manifest["devices"]:
        device = bytes.fromhex(d["device"])
        m = state.members.get(device) if founded else None
        name = f"\"{d['name']}\" (named by the exporter)" if "name" in d else "(no name given)"
        if m is None:
            role = "not proven to be a member"
        elif m.revoked_after is not None:
            role = f"revoked (its changes after seq {m.revoked_after} do not count)"
        else:  # the role of its role window with the greatest `after` (bundle.md §7.8)
            role = ROLE_NAMES.get(m.role_now(), "no role") + " (admission proven back to the vault's founder)"
        exporter = ", exported this bundle" if d["device"] == manifest["exported_by"] else ""
        report.devices.append(f"{d['device']} {name}: {role}{exporter}, {d['links']} signed "
                              f"change{'s' if d['links'] != 1 else ''} in its chain")
    if not founded:
        report.unproven_records = {r["id"] for r in manifest["records"]}
        return
    exporter = state.members.get(bytes.fromhex(manifest["exported_by"]))
    if exporter is None or exporter.revoked_after is not None:
        report.unproven.append(f"the exporting device {manifest['exported_by'][:12]} is not proven to be a member "
                               "(or is revoked)")
    for record_id, device_hex, seq in custody_changes:
        m = state.members.get(bytes.fromhex(device_hex))
        if m is None or not m.active_at(seq) or m.role_at(seq) not in (COORDINATOR, MEMBER):
            report.unproven.append(f"record {record_id[:12]}: change {device_hex[:12]} seq {seq} is signed by a "
                                   "device not proven to be a member (or not allowed to write) at that change")
            report.unproven_records.add(record_id)


def parse_fingerprint(text):
    """--expect-vault: the fingerprint with or without dashes, in any case; None if malformed."""
    digits = text.replace("-", "").lower()
    return digits if is_hex(digits, 16) else None


# ----------------------------------------------------------------------------------------------
# bundle.md §7: the whole verification
# ----------------------------------------------------------------------------------------------

def declared_format(data):
    """The `format` a manifest that is not canonical declares (format 1 was pretty-printed, §9)."""
    try:
        value = json.loads(data)
        return value.get("format") if isinstance(value, dict) else None
    except (TypeError, ValueError, RecursionError):
        return None


def verify_bundle(files, expected_vault=None):
    """Verifies the files of an opened bundle (path -> bytes); returns (report, exit status)."""
    report = Report()
    # §7.1 The manifest.
    try:
        manifest = canonical_document("manifest.json", files.get("manifest.json"))
    except Malformed as error:
        if declared_format(files.get("manifest.json")) == "amanat-bundle/1":
            report.summary.append("This is a bundle of format 1 (unsigned; signers and names not proven), "
                                  "which this verifier does not check. Use `amanat bundle verify`.")
            report.unsupported = True
            return report, report.status()
        report.problem(str(error))
        return report, report.status()
    form = check_manifest_form(manifest)
    if form:
        for sentence in form:
            report.problem(sentence)
        return report, report.status()
    vault_hex = manifest["vault_id"]
    vault_id = bytes.fromhex(vault_hex)
    report.summary.append(f"Bundle amanat-bundle/2 of vault {fingerprint(vault_hex)}, exported "
                          f"{utc(manifest['exported_at_ms'])} by device {manifest['exported_by']} "
                          "(the exporter's clock)")
    check_signature(files, manifest, report)  # §7.2
    check_files(files, manifest, report)      # §7.3
    chains = check_chains(files, manifest, vault_id, report)  # §7.4
    entries = check_membership_file(files, manifest, vault_id, chains, report)  # §7.5
    custody_changes = []
    for entry in manifest["records"]:  # §7.6, §7.7
        changes, line = check_record(entry, files, vault_id, chains, report, manifest["exported_at_ms"],
                                     manifest["files"])
        custody_changes += [(entry["id"], device, seq) for device, seq in changes]
        report.records.append((entry["id"], record_name(entry), line))
    check_membership_proof(manifest, entries, vault_id, custody_changes, report)  # §7.8
    if expected_vault is not None and expected_vault != vault_hex:  # §7.9
        report.unproven.append(f"the bundle's vault {fingerprint(vault_hex)} is not the expected vault "
                               f"{fingerprint(expected_vault)}")
    if report.problems:
        report.devices, report.summary = [], report.summary[:1]
    return report, report.status()


# ----------------------------------------------------------------------------------------------
# Input: an opened folder, or an .age file decrypted by the `age` tool (bundle.md §1-§2)
# ----------------------------------------------------------------------------------------------

def read_folder(root):
    """Every regular file under the folder, by its relative path with `/`. A link or anything other
    than a regular file or folder is reported as a problem by returning it with `None` contents."""
    files, budget = {}, Budget()
    for directory, folders, names in os.walk(root, followlinks=False):
        for name in names + [f for f in folders if os.path.islink(os.path.join(directory, f))]:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, root).replace(os.sep, "/")
            budget.spend(512 + len(relative.encode("utf-8", "surrogateescape")))
            if os.path.islink(path) or not os.path.isfile(path):
                files[relative] = None
            else:
                with open(path, "rb") as handle:
                    if relative.startswith(ATTACHMENTS):
                        files[relative] = summarise_to_end(handle.read)
                    else:
                        budget.spend(os.fstat(handle.fileno()).st_size)
                        files[relative] = handle.read()
    return files


def octal_field(field):
    """A ustar number: optional leading spaces, octal digits, then only NUL or space. Python's int()
    would also take a sign, a 0o prefix, underscores and other whitespace, which Amanat refuses."""
    match = re.fullmatch(rb" *([0-7]{1,20})[ \0]*", field)
    if match is None:
        raise Malformed("a number in a header is not plain octal")
    return int(match.group(1), 8)


def read_exactly(stream, n):
    """n bytes of the stream, or fewer at its end; read a MiB at a time (a read of n bytes would first
    allocate all of them, whatever the stream holds)."""
    parts, left = [], n
    while left:
        piece = stream.read(min(left, 1 << 20))
        if not piece:
            break
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)


def read_ustar(stream):
    """bundle.md §2, read as the archive streams: regular files with relative paths without
    `.`/`..`/empty parts, no duplicate paths, correct header checksums, two zero blocks, then only
    zero bytes (the Padmé padding). Files under attachments/ are kept as their SHA-256 and size."""
    files, budget = {}, Budget()
    while True:
        block = read_exactly(stream, 512)
        if len(block) < 512:
            raise Malformed("the archive ends without its end marker")
        if not any(block):
            second = read_exactly(stream, 512)
            if len(second) < 512 or any(second):
                raise Malformed("non-zero bytes after the end marker, or no second zero block")
            while True:
                rest = stream.read(1 << 20)
                if not rest:
                    return files
                if any(rest):
                    raise Malformed("non-zero bytes after the end marker, or no second zero block")
        if octal_field(block[148:156]) != sum(block[:148]) + 32 * 8 + sum(block[156:]):
            raise Malformed("a header checksum is wrong")
        if block[156:157] != b"0" or block[257:263] != b"ustar\0" or any(block[345:500]):
            raise Malformed("an entry is not a regular file of a ustar archive")
        raw_name = block[:100].split(b"\0", 1)[0]
        if any(block[len(raw_name):100]):
            raise Malformed("a file name holds bytes after its end")
        name = raw_name.decode("utf-8", "strict")
        if (name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")) or name in files
                or any(c < " " or c == "\\" for c in name)):
            raise Malformed(f"a bad or duplicate path {name!r}")
        size = octal_field(block[124:136])
        budget.spend(512 + len(raw_name) + (0 if name.startswith(ATTACHMENTS) else size))
        if name.startswith(ATTACHMENTS):
            files[name] = summarise(lambda n: stream.read(n), size)
        else:
            files[name] = read_exactly(stream, size)
            if len(files[name]) < size:
                raise Malformed("the archive is truncated")
        padding = (size + 511) // 512 * 512 - size
        if len(read_exactly(stream, padding)) < padding:
            raise Malformed("the archive is truncated")


def read_age_bundle(path, identity):
    """Decrypts with the age tool and reads the archive as it streams out (bounded memory whatever the
    attachments' sizes). Returns (files, status, message): files is None when age failed (its message
    wins over what the truncated stream looked like) or the archive is malformed."""
    process = subprocess.Popen(["age", "-d", "-i", identity, path], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    files, malformed = None, None
    try:
        files = read_ustar(process.stdout)
    except (Malformed, ValueError, UnicodeDecodeError) as error:
        malformed = error
    except TooLarge:
        process.kill()
        process.wait()
        raise
    finally:
        process.stdout.close()  # age stops at once if the archive was refused early
        try:
            errors = process.stderr.read()
            process.wait(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            errors = b"timed out"
    if process.returncode != 0 and not (malformed is not None and process.returncode < 0):
        message = errors.decode("utf-8", "replace").strip()
        status = EXIT_NO_KEY if "no identity matched" in message else EXIT_NOT_INTACT
        return None, status, f"age could not decrypt {path}: {message}"
    if malformed is not None:
        return None, EXIT_NOT_INTACT, f"PROBLEM: the decrypted bundle is not a valid archive (bundle.md §2): " \
                                      f"{shown(malformed)}"
    return files, EXIT_OK, ""


def main(argv):
    sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")
    parser = argparse.ArgumentParser(
        description="Verify an Amanat evidence bundle (format 2) independently of Amanat (Protocol/bundle.md §7).")
    parser.add_argument("bundle", help="an opened bundle folder, or an .age bundle file with --identity")
    parser.add_argument("--identity", help="an age identity file (age-keygen) to decrypt an .age bundle with")
    parser.add_argument("--expect-vault", metavar="FINGERPRINT", help="the vault fingerprint the team gave you")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_OK if exit_.code == 0 else EXIT_USAGE
    expected = None
    if args.expect_vault is not None:
        expected = parse_fingerprint(args.expect_vault)
        if expected is None:
            print("--expect-vault needs a vault fingerprint: 32 hex digits, with or without dashes", file=sys.stderr)
            return EXIT_USAGE
    try:
        return verify_path(args, expected)
    except (TooLarge, MemoryError) as error:
        reason = str(error) if isinstance(error, TooLarge) else "this machine ran out of memory checking it"
        print(f"the bundle cannot be checked here: {reason}", file=sys.stderr)
        return EXIT_TOO_LARGE


def verify_path(args, expected):
    if os.path.isdir(args.bundle):
        files = read_folder(args.bundle)
    elif os.path.isfile(args.bundle):
        if not args.identity:
            print("an .age bundle needs --identity KEY.txt (or decrypt it with age and give the folder)",
                  file=sys.stderr)
            return EXIT_USAGE
        if not os.path.isfile(args.identity):
            print(f"no such identity file: {shown(args.identity)}", file=sys.stderr)
            return EXIT_NO_INPUT
        try:
            files, status, message = read_age_bundle(args.bundle, args.identity)
        except FileNotFoundError:
            print("decrypting an .age file needs the age tool (apt-get install age)", file=sys.stderr)
            return EXIT_USAGE
        if files is None:
            if message.startswith("PROBLEM: "):
                print(message)
                print("NOT INTACT")
            else:
                print(shown(message), file=sys.stderr)
            return status
    else:
        print(f"no such file or folder: {shown(args.bundle)}", file=sys.stderr)
        return EXIT_NO_INPUT
    unreadable = sorted(path for path, data in files.items() if data is None)
    files = {path: data for path, data in files.items() if data is not None}
    try:
        report, _ = verify_bundle(files, expected)
    except Exception as error:  # a form this verifier did not foresee: never a traceback, never "verified"
        report = Report()
        report.problem(f"the verifier could not check this bundle ({type(error).__name__}: {error}); "
                       "please report this, and do not rely on the bundle")
    for path in unreadable:
        report.problem(f"{path} is not a regular file")
    report.print()
    return report.status()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
