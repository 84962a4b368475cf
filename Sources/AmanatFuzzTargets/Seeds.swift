import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import AmanatWire
import Foundation

/// Writes the seed corpus of every target (Fuzz/corpus/<target>/): the test vectors of Protocol/vectors and of the
/// age interoperability suite, and small valid inputs the code itself writes from a real temporary vault.
///
/// A seed named `valid-…` is an input the target must accept; the regression suite checks that it still is.
public enum FuzzSeeds {
    /// Writes the seeds under `corpus`, reading the vectors from the checkout at `repository`.
    public static func write(to corpus: URL, repository: URL) throws {
        var seeds: [FuzzTarget: [(String, [UInt8])]] = [:]
        func add(_ target: FuzzTarget, _ name: String, _ bytes: [UInt8]) {
            seeds[target, default: []].append((name, bytes))
        }

        // Protocol vectors.
        let vectors = repository.appendingPathComponent("Protocol/vectors")
        for (index, hex) in try hexStrings(vectors.appendingPathComponent("change-v1.json"), key: "encoded")
            .enumerated()
        {
            add(.change, "valid-vector-\(index)", hex)
        }
        for (index, hex) in try hexStrings(vectors.appendingPathComponent("envelope-v1.json"), key: "envelope")
            .enumerated()
        {
            add(.envelope, "valid-vector-\(index)", hex)
        }
        for (index, hex) in try hexStrings(vectors.appendingPathComponent("membership-v1.json"), key: "encoded")
            .enumerated()
        {
            add(.membership, "valid-vector-\(index)", hex)
        }
        for hex in try hexStrings(vectors.appendingPathComponent("membership-v1.json"), key: "foundEnvelope") {
            add(.envelope, "valid-vector-found", hex)
        }

        // The age interoperability vectors: the file after each one's header block.
        let age = repository.appendingPathComponent("Tests/AmanatCryptoTests/Vectors/age-cctv")
        for name in try FileManager.default.contentsOfDirectory(atPath: age.path).sorted()
        where !name.contains(".") && name != "LICENSE" {
            let bytes = Array(try Data(contentsOf: age.appendingPathComponent(name)))
            guard
                let split = bytes.indices.first(where: {
                    bytes[$0] == 10 && $0 + 1 < bytes.count && bytes[$0 + 1] == 10
                })
            else { continue }
            let header = String(decoding: bytes[..<split], as: UTF8.self)
            let usable =
                header.contains("expect: success")
                && (header.contains("identity: AGE-SECRET-KEY-1EGTZVFFV") || header.contains("passphrase: password"))
            add(.age, (usable ? "valid-" : "seed-") + name, Array(bytes[(split + 2)...]))
        }

        // Inputs written by the code, from a real vault.
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("amanat-fuzz-seeds-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let vault = try Vault.create(
            at: work.appendingPathComponent("vault"), passphrase: Fixed.passphrase, deviceName: "seed laptop",
            strength: .interactive)
        _ = try vault.createRecord(
            kind: "statement", fields: [("title", "Checkpoint"), ("body", "Seen at 10:40.")], tags: ["north"],
            seal: false)
        let sealedID = try vault.createRecord(
            kind: "testimony", fields: [("witness", "A."), ("account", "Two trucks.")], tags: [], seal: true)
        _ = try vault.commit(record: sealedID) { _ in [.addTag("verified")] }
        let states = try vault.allStates()
        var envelopes = try vault.authorityEnvelopes()
        for state in states { envelopes += try vault.history(of: state).map(\.envelope) }
        var seen = Set<[UInt8]>()
        envelopes = envelopes.filter { seen.insert($0.hash).inserted }

        // change and envelope: a change with every operation, sealed under the fixed key so it opens.
        let record = try RecordID(Array(0x30..<0x40))
        let op = OpID(device: Fixed.author, seq: 1, index: 0)
        let every = Change(
            record: record, timestamp: HLCTimestamp(wallMillis: 1_735_689_600_000, counter: 2),
            operations: [
                .create(kind: "statement"), .set(field: "title", value: "t", pred: [op]), .addTag("a"),
                .removeTag("a", observed: [op]), .delete(observed: [op]),
                .seal(contentHash: Array(repeating: 7, count: 32)),
            ])
        add(.change, "valid-every-operation", every.encoded())
        let fixedEnvelope = try Envelope.sealPlaintext(
            every.encoded(), vaultID: Fixed.vaultID, key: Fixed.vaultKey, signer: Fixed.signer, seq: 1,
            previousHash: ChainHead.empty.hash)
        add(.envelope, "valid-fixed-key", fixedEnvelope.encoded())
        for (index, envelope) in envelopes.prefix(4).enumerated() {
            add(.envelope, "valid-vault-\(index)", envelope.encoded())
        }

        // stored-row: each row kind's plaintext, and one sealed body.
        for (index, state) in states.enumerated() {
            add(
                .storedRow, "valid-record-\(index)",
                [1] + StoredRow.encodeState(state, paddingBlock: 128, nowMillis: .max))
        }
        var clock = ByteWriter()
        clock.write(bigEndian: UInt64(1_735_689_600_000))
        clock.write(bigEndian: UInt32(3))
        add(.storedRow, "valid-clock", [2] + clock.bytes)
        var counters = ByteWriter()
        counters.write(varint: 1)
        counters.write(raw: Fixed.author.bytes)
        counters.write(varint: 300)
        add(.storedRow, "valid-counters", [3] + counters.bytes)
        let nonce = [UInt8](repeating: 1, count: AEAD.nonceLength)
        add(
            .storedRow, "valid-sealed-body",
            [0] + nonce + (try AEAD.seal(clock.bytes, additionalData: Fixed.slot, nonce: nonce, key: Fixed.localKey)))

        // sync-file: a real file of the fixed vault carrying the vault's envelopes.
        let syncURL = work.appendingPathComponent("seed.amanat-sync")
        let sync = try SyncFile.open(at: syncURL, vaultID: Fixed.vaultID, create: true)
        try sync.append(envelopes)
        add(.syncFile, "valid-vault", Array(try Data(contentsOf: syncURL)))

        // relay: every body kind.
        let vector = try vault.versionVector()
        add(.relay, "valid-vector", RelayWire.encodeVector(vector))
        add(.relay, "valid-envelope-list", RelayWire.encodeEnvelopeList(envelopes.prefix(3).map { $0.encoded() }))
        add(
            .relay, "valid-exchange-request",
            RelayWire.ExchangeRequest(vector: vector, envelopes: envelopes.prefix(2).map { $0.encoded() }, limit: 100)
                .encoded())
        add(
            .relay, "valid-exchange-response",
            RelayWire.ExchangeResponse(
                stored: 1, remaining: 2, diverged: [Fixed.author], envelopes: envelopes.prefix(2).map { $0.encoded() }
            ).encoded())
        for device in [true, false] {
            let auth = RelayWire.signatureHeaders(
                key: vault.relaySigningKey, method: "GET",
                pathAndQuery: "/v1/vaults/\(Hex.encode(Fixed.vaultID))/vector",
                body: [], timestamp: 1_800_000_000, nonce: [UInt8](repeating: 7, count: 16),
                device: device ? Fixed.signer : nil, compact: true)
            add(.relay, device ? "valid-amanat-auth" : "valid-amanat-auth-no-device", Array(auth[0].1.utf8))
        }

        // invitation: a real grant, as plaintext and as a whole file sealed with the fixed code.
        let grant = try vault.invite(role: .member, validFor: 86_400)
        let invitationPlain = Invitation.plaintext(of: grant)
        add(.invitation, "valid-plaintext", [1] + invitationPlain)
        add(.invitation, "valid-file", [0] + (try Invitation.seal(invitationPlain, code: Fixed.invitationCode)))

        // keyring: a version 3, 2 and 1 plaintext, and whole files (version 2 and 3) without their checksum.
        let keyring = Keyring.generate(deviceName: "seed laptop", salt: Array(repeating: 9, count: 16))
        let v3Plain = keyring.secretBytes()
        // Version 2 secrets end before version 3's duress record (flag, slot key, payload).
        let v2Plain = Array(v3Plain.dropLast(1 + 32 + Keyring.duressPayloadLength))
        add(.keyring, "valid-plaintext-v3", [5] + v3Plain)
        add(.keyring, "valid-plaintext-v2", [1] + v2Plain)
        let firstRelease = Keyring(
            vaultID: keyring.vaultID, device: keyring.device, deviceName: "old laptop", keys: keyring.keys,
            agreement: nil)
        add(.keyring, "valid-plaintext-v1", [3] + firstRelease.secretBytes())
        let keyringFile = try Keyring.seal(
            v2Plain, version: 2, salt: Fixed.keyringSalt, opsLimit: Fixed.keyringOps,
            memLimit: Fixed.keyringMem, wrapKey: Fixed.keyringWrapKey)
        add(.keyring, "valid-file", [0] + Array(keyringFile.dropLast(32)))
        let keyringFileV3 = try Keyring.seal(
            v3Plain, version: 3, salt: Fixed.keyringSalt, opsLimit: Fixed.keyringOps,
            memLimit: Fixed.keyringMem, wrapKey: Fixed.keyringWrapKey)
        add(.keyring, "valid-file-v3", [0] + Array(keyringFileV3.dropLast(32)))

        // tar and bundle: a real bundle's plaintext archive, and a one-file archive.
        let archive = try BundleExporter.archive(
            from: vault, records: states, now: Date(timeIntervalSince1970: 1_735_689_600))
        add(.bundle, "valid-vault", archive.encoded())
        add(.tar, "valid-bundle", BundleExporter.padded(archive.encoded()))
        var small = TarArchive()
        small.add("a/b.txt", Array("hello".utf8))
        add(.tar, "valid-one-file", small.encoded())

        // location-stripper: the sample files of the stripping vectors, each behind the byte that names its type.
        let stripVectors = try JSONSerialization.jsonObject(
            with: Data(contentsOf: vectors.appendingPathComponent("strip-v1.json")))
        for file in (stripVectors as? [String: Any])?["files"] as? [[String: Any]] ?? [] {
            guard let name = file["name"] as? String, let hex = file["original_hex"] as? String,
                let original = Hex.decode(hex),
                let type = ["jpeg": UInt8(0), "png": 1, "heic": 2, "mp4": 3][name]
            else { continue }
            add(.locationStripper, "valid-\(name)", [type | 0x1C] + original)
        }

        for target in FuzzTarget.allCases {
            let folder = corpus.appendingPathComponent(target.rawValue)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            // Inputs longer than the fuzzer generates (the vectors of hundreds of age chunks) stay out.
            for (name, bytes) in seeds[target] ?? [] where bytes.count <= target.maximumLength {
                try Data(bytes).write(to: folder.appendingPathComponent(name))
            }
        }
    }

    /// Every string value under `key` in a JSON vector file, decoded from hex.
    private static func hexStrings(_ url: URL, key: String) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        func walk(_ value: Any) {
            if let object = value as? [String: Any] {
                for (k, v) in object.sorted(by: { $0.key < $1.key }) {
                    if k == key, let text = v as? String, let bytes = Hex.decode(text) {
                        out.append(bytes)
                    } else {
                        walk(v)
                    }
                }
            } else if let array = value as? [Any] {
                array.forEach(walk)
            }
        }
        walk(try JSONSerialization.jsonObject(with: Data(contentsOf: url)))
        return out
    }
}
