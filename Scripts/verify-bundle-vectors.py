#!/usr/bin/env python3
"""Checks the primitives of Scripts/verify-bundle.py against the test vectors in Protocol/vectors:
canonical JSON (jcs-v1), changes (change-v1), attachment chunks (attachment-v1), envelopes and their keys (envelope-v1), membership
entries and derivations (membership-v1), the seal hash (seal-v1) and location-stripped attachments in a
manifest (strip-v1). Prints one line per group and
exits 0 only if every vector agrees. Run by the test suite (PythonVerifierTests)."""

import importlib.util
import json
import os
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the repository
HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "Protocol", "vectors")
spec = importlib.util.spec_from_file_location("verify_bundle", os.path.join(HERE, "verify-bundle.py"))
vb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vb)

failures = []


def expect(condition, what):
    if not condition:
        failures.append(what)


def load(name):
    with open(os.path.join(VECTORS, name), encoding="utf-8") as handle:
        return json.load(handle)


def jcs():
    v = load("jcs-v1.json")
    for case in v["valid"]:
        try:
            value = vb.parse_json(case["input"].encode("utf-8"))
            expect(vb.canonical(value).hex() == case["canonical_hex"], f"jcs {case['name']}: canonical bytes")
            again = vb.parse_json(bytes.fromhex(case["canonical_hex"]))
            expect(vb.canonical(again).hex() == case["canonical_hex"], f"jcs {case['name']}: canonical accepted")
        except vb.Malformed as error:
            failures.append(f"jcs {case['name']}: refused ({error})")
    for case in v["invalid"]:
        try:
            vb.parse_json(case["input"].encode("utf-8", "surrogatepass"))
            failures.append(f"jcs {case['name']}: accepted")
        except vb.Malformed:
            pass
    # Nesting: 64 levels are accepted, 65 refused (bundle.md §3.1).
    expect(vb.parse_json(b"[" * 64 + b"]" * 64) is not None, "jcs: 64 levels")
    try:
        vb.parse_json(b"[" * 65 + b"]" * 65)
        failures.append("jcs: 65 levels accepted")
    except vb.Malformed:
        pass
    return len(v["valid"]) + len(v["invalid"])


def opids_json(items):
    return [{"device": d.hex(), "seq": s, "index": i} for d, s, i in items]


def op_json(op):
    """An operation in the vector's notation."""
    if op.type == "create":
        return {"type": "create", "kind": op.kind}
    if op.type == "set":
        return {"type": "set", "field": op.field, "value": op.value, "pred": opids_json(op.opids)}
    if op.type == "add-tag":
        return {"type": "addTag", "tag": op.tag}
    if op.type == "remove-tag":
        return {"type": "removeTag", "tag": op.tag, "observed": opids_json(op.opids)}
    if op.type == "delete":
        return {"type": "delete", "observed": opids_json(op.opids)}
    if op.type == "origin":
        return {"type": "origin", "vault": op.vault.hex(), "record": op.record.hex()}
    if op.type == "custody":
        return {"type": "custody", "envelope": op.envelope.hex(), "key": op.key.hex()}
    if op.type == "attach":
        a = op.attachment
        return {"type": "attach", "attachment": {
            "epoch": a["epoch"], "size": a["size"], "sha256": a["sha256"].hex(), "mediaType": a["media_type"],
            "name": a["name"], "note": a["note"], "metadataFlags": a["metadata_flags"], "chunkSize": a["chunk_size"],
            "chunkRoot": a["chunk_root"].hex(), "chunks": [c.hex() for c in a["chunks"]]}}
    if op.type == "detach":
        d, s, i = op.target
        return {"type": "detach", "attachmentOp": {"device": d.hex(), "seq": s, "index": i}}
    return {"type": "seal", "contentHash": op.content_hash.hex()}


def change():
    v = load("change-v1.json")
    for case in v["cases"]:
        encoded = bytes.fromhex(case["encoded"])
        c = vb.decode_change(encoded)
        expect(c.record.hex() == case["record"] and c.wall == case["wallMillis"] and c.counter == case["counter"],
               f"change {case['name']}: record and stamp")
        expect([op_json(op) for op in c.ops] == case["operations"], f"change {case['name']}: operations")
        unpadded = bytes.fromhex(case["unpadded"])
        expect(encoded.startswith(unpadded) and not any(encoded[len(unpadded):]) and len(encoded) % 64 == 0,
               f"change {case['name']}: zero padding to a multiple of 64")
        try:
            vb.decode_change(encoded[:-1] + b"\x01")
            failures.append(f"change {case['name']}: non-zero padding accepted")
        except vb.Malformed:
            pass
    # Varints: minimal only (change.md §1).
    for raw, ok in [(b"\x00", True), (b"\x7f", True), (b"\x80\x01", True), (b"\x80\x00", False),
                    (b"\xff" * 9 + b"\x01", True), (b"\xff" * 9 + b"\x02", False), (b"\x80" * 10 + b"\x01", False)]:
        try:
            vb.Reader(raw).varint()
            expect(ok, f"varint {raw.hex()} accepted")
        except vb.Malformed:
            expect(not ok, f"varint {raw.hex()} refused")
    return len(v["cases"])


def envelope():
    v = load("envelope-v1.json")
    vault_key, vault_id = bytes.fromhex(v["vaultKey"]), bytes.fromhex(v["vaultID"])
    author, previous = bytes.fromhex(v["devicePublicKey"]), bytes(32)
    for case in v["envelopes"]:
        e = vb.decode_envelope(bytes.fromhex(case["envelope"]))
        h = e.header
        expect(h.raw.hex() == case["header"] and h.vault_id == vault_id and h.author == author
               and h.seq == case["seq"] and h.key_epoch == v["keyEpoch"] and h.nonce.hex() == case["nonce"],
               f"envelope {case['seq']}: header")
        expect(h.previous_hash == previous and h.previous_hash.hex() == case["previousHash"],
               f"envelope {case['seq']}: chain")
        expect(vb.blake2b(e.ciphertext).hex() == case["ciphertextHash"], f"envelope {case['seq']}: ciphertext hash")
        expect(e.hash().hex() == case["envelopeHash"], f"envelope {case['seq']}: envelope hash")
        expect(vb.blake2b(e.link()).hex() == case["envelopeHash"], f"envelope {case['seq']}: link hash")
        expect(e.signature.hex() == case["signature"]
               and vb.ed25519_verifies(author, h.raw + vb.blake2b(e.ciphertext), e.signature),
               f"envelope {case['seq']}: signature")
        key = vb.envelope_key(vault_key, author, h.seq)
        expect(key.hex() == case["envelopeKey"], f"envelope {case['seq']}: envelope key")
        expect(e.open(key) is not None and e.open(key).hex() == case["plaintext"], f"envelope {case['seq']}: opens")
        expect(e.open(bytes(32)) is None, f"envelope {case['seq']}: opens with a wrong key")
        vb.decode_change(e.open(key))
        header, ciphertext_hash, signature = vb.decode_purged_envelope(bytes.fromhex(case["purged"]))
        expect(header.raw == h.raw and ciphertext_hash == vb.blake2b(e.ciphertext) and signature == e.signature
               and vb.blake2b(header.raw + ciphertext_hash + signature).hex() == case["envelopeHash"]
               and vb.ed25519_verifies(author, header.raw + ciphertext_hash, signature),
               f"envelope {case['seq']}: its purged form keeps the hash and the signature")
        previous = e.hash()
    return len(v["envelopes"])


def membership():
    v = load("membership-v1.json")
    vault_id, founder = bytes.fromhex(v["vaultID"]), bytes.fromhex(v["founderPublicKey"])
    expect(vb.derive_vault_id(founder, bytes.fromhex(v["salt"])) == vault_id, "membership: vault id")
    expect(vb.authority_key(vault_id).hex() == v["authorityKey"], "membership: authority key")
    key = vb.envelope_key(vb.authority_key(vault_id), founder, 1)
    expect(key.hex() == v["authorityEnvelopeKey"], "membership: authority envelope key")
    found = vb.decode_envelope(bytes.fromhex(v["foundEnvelope"]))
    expect(found.hash().hex() == v["foundEnvelopeHash"] and found.header.key_epoch == 0, "membership: found envelope")
    entries = {}
    for case in v["entries"]:
        entry = vb.decode_entry(bytes.fromhex(case["encoded"]), bytes.fromhex(case["author"]), case["seq"])
        entries[case["name"]] = entry
        expect(entry.type.split()[0] in case["name"], f"membership {case['name']}: type {entry.type}")
    expect(found.open(key) is not None and found.open(key).hex() == v["entries"][0]["encoded"],
           "membership: the found envelope opens to the found entry")
    join = entries["join"]
    expect(join.body["proof"].hex() == v["joinProof"], "membership: join proof bytes")
    expect(vb.ed25519_verifies(join.body["key"], b"amanat/join/v1" + vault_id + join.author
                               + join.body["agreement_key"], join.body["proof"]), "membership: join proof verifies")
    expect(vb.blake2b(b"amanat/record-id/v1" + founder + (2).to_bytes(8, "big"), size=16).hex()
           == v["recordIDOfChange2"], "membership: record id")
    # Evaluation (membership.md §5) of found, invite, join, set role, revoke: by the rules, the
    # joiner is admitted as a reader, made a member from its seq 2, then revoked after its seq 5.
    joiner = join.author
    chosen = [entries[n] for n in ("found", "invite a reader", "join", "set role")]
    state = vb.evaluate_membership(chosen, vault_id)
    expect(state.founder == founder and state.coordinator_at(founder, 5), "evaluation: founder")
    expect(state.members[joiner].role_at(1) == vb.READER and state.members[joiner].role_at(2) == vb.MEMBER,
           f"evaluation: joiner roles {state.members.get(joiner)}")
    state = vb.evaluate_membership(chosen + [entries["revoke with a key rotation"]], vault_id)
    revoked = state.members[joiner]
    expect(revoked.revoked_after == 5 and revoked.active_at(5) and not revoked.active_at(6),
           "evaluation: revoked joiner")
    state = vb.evaluate_membership(chosen[1:], vault_id)
    expect(state.founder is None and not state.members, "evaluation: nobody without a found")
    return len(v["entries"])


def seal():
    v = load("seal-v1.json")
    for case in v["cases"]:
        digest = vb.seal_content_hash(case["kind"], [tuple(pair) for pair in case["fields"]])
        expect(digest.hex() == case["content_hash"], f"seal {case['name']}")
        expect(vb.blake2b(bytes.fromhex(case["preimage"])).hex() == case["content_hash"], f"seal {case['name']} pre")
    return len(v["cases"])


def attachment():
    """attachments.md §2-§3: chunk keys, sealed chunks, a chunk root and an attachment id."""
    v = load("attachment-v1.json")
    vault_key = bytes.fromhex(v["vaultKey"])
    address_key, encryption_key = vb.kdf_derive(vault_key, 6, b"amnt-cha"), vb.kdf_derive(vault_key, 7, b"amnt-chk")
    expect(address_key.hex() == v["addressKey"] and encryption_key.hex() == v["encryptionKey"], "attachment: keys")
    for i, case in enumerate(v["chunks"]):
        plain, sealed = bytes.fromhex(case["plaintext"]), bytes.fromhex(case["sealed"])
        address = vb.blake2b(plain, key=address_key)
        expect(address.hex() == case["address"], f"attachment chunk {i}: address")
        expect(sealed[:5] == b"AMCK\x01" and sealed[5:37] == address, f"attachment chunk {i}: header")
        opened = vb.aead_open(encryption_key, address[:24], b"amanat/chunk/v1" + address, sealed[37:])
        expect(opened == plain, f"attachment chunk {i}: opens to its plaintext")
        tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        expect(vb.aead_open(encryption_key, address[:24], b"amanat/chunk/v1" + address, tampered[37:]) is None,
               f"attachment chunk {i}: a flipped bit does not open")
    addresses = [bytes.fromhex(c["address"]) for c in v["chunks"]]
    expect(vb.chunk_root(v["chunkSize"], v["size"], addresses).hex() == v["chunkRoot"], "attachment: chunk root")
    op = v["attachOp"]
    expect(vb.attachment_id((bytes.fromhex(op["device"]), op["seq"], op["index"])) == v["attachmentID"],
           "attachment: id")
    return len(v["chunks"])


def strip():
    """attachments.md §9, bundle.md §4.1: location-stripped copies (same length, no coordinate left, the stated
    SHA-256s) and manifest attachment items with a `stripped` statement, accepted or refused as the vector says."""
    import hashlib
    v = load("strip-v1.json")
    for f in v["files"]:
        original, stripped = bytes.fromhex(f["original_hex"]), bytes.fromhex(f["stripped_hex"])
        expect(hashlib.sha256(original).hexdigest() == f["original_sha256"], f"strip {f['name']}: original sha256")
        expect(hashlib.sha256(stripped).hexdigest() == f["stripped_sha256"], f"strip {f['name']}: copy sha256")
        expect(len(original) == len(stripped), f"strip {f['name']}: same length")
        expect(f["removed"] and all(n in vb.REMOVED_NAMES for n in f["removed"]), f"strip {f['name']}: removed")
        for text in f["coordinates"]:
            expect(text.encode() in original and text.encode() not in stripped, f"strip {f['name']}: {text} gone")

    def record(item_json):
        rid = v["record"]
        return {"attachments": [vb.parse_json(item_json.encode())], "changes": [], "custody": f"custody/{rid}.json",
                "id": rid, "kind": "statement", "record": f"records/{rid}.json"}
    for case in v["valid"]:
        expect(vb.check_manifest_record_form(record(case["json"])), f"strip item {case['name']}: refused")
    for case in v["invalid"]:
        expect(not vb.check_manifest_record_form(record(case["json"])), f"strip item {case['name']}: accepted")
    return len(v["files"]) + len(v["valid"]) + len(v["invalid"])


if __name__ == "__main__":
    for group in (jcs, change, envelope, membership, seal, attachment, strip):
        try:
            count = group()
            print(f"{group.__name__}: {count} vectors checked")
        except Exception as error:  # a vector that does not even decode is a failure, not a crash
            failures.append(f"{group.__name__}: {type(error).__name__}: {error}")
    for failure in failures:
        print("FAILED: " + failure)
    print("all vectors agree" if not failures else f"{len(failures)} vector check(s) failed")
    sys.exit(0 if not failures else 1)
