import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatBundle

/// A founded vault of 6 records, with amendments, tags, consent values, and a clock whose milliseconds a
/// floating-point date would round down.
struct Fixture {
    let dir: TemporaryDirectory
    let vault: Vault
    let testimonies: [RecordID]
    let statements: [RecordID]

    init() throws {
        dir = try TemporaryDirectory(prefix: "bundle")
        vault = try Vault.create(
            at: dir.url.appendingPathComponent("v"), passphrase: SecureBytes(Array("pw".utf8)), deviceName: "Laila",
            strength: .interactive)
        let clock = Clock(1_700_000_000_123)
        vault.wallClock = { clock.tick() }
        var t: [RecordID] = []
        var s: [RecordID] = []
        for i in 0..<3 {
            t.append(
                try vault.createRecord(
                    kind: "testimony",
                    fields: [("witness", "W-\(i)"), ("narrative", "fictional \(i) — شاهد"), ("consent", "share")],
                    tags: ["detention"], seal: true))
            s.append(
                try vault.createRecord(kind: "statement", fields: [("title", "statement \(i)")], tags: [], seal: false))
        }
        for id in t + s {
            try vault.commit(record: id) { st in [st!.addTagOperation("reviewed")] }
        }
        try vault.commit(record: t[0]) { st in [st!.setOperation(field: "narrative", value: "amended\n\"quoted\"")] }
        testimonies = t
        statements = s
    }

    func states(_ ids: [RecordID]) throws -> [RecordState] {
        try vault.allStates().filter { ids.contains($0.id) }
    }

    func archive(_ ids: [RecordID]) throws -> TarArchive {
        try BundleExporter.archive(from: vault, records: try states(ids), now: Date())
    }
}

/// A wall clock that advances 1,001 ms per reading, so stamps carry odd milliseconds.
final class Clock: @unchecked Sendable {
    private let lock = NSLock()
    private var now: UInt64
    init(_ start: UInt64) { now = start }
    func tick() -> UInt64 {
        lock.withLock {
            now += 1001
            return now
        }
    }
}

/// The seed of a randomized test: $AMANAT_TEST_SEED to replay, else a fresh one (printed in every failure).
func testSeed() -> UInt64 {
    ProcessInfo.processInfo.environment["AMANAT_TEST_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
}

@Suite struct BundleTests {
    @Test func anExportedArchiveVerifiesAndReplaysEveryRecord() throws {
        let f = try Fixture()
        let archive = try f.archive(f.testimonies)
        let report = BundleVerifier.verify(try TarArchive(decoding: BundleExporter.padded(archive.encoded())))
        #expect(report.problems == [])
        #expect(report.unproven == [])
        #expect(report.outcome == .verified)
        #expect(Set(report.records.map(\.id)) == Set(f.testimonies))
        let amended = try #require(report.records.first { $0.id == f.testimonies[0] })
        #expect(amended.document.fields.first { $0.0 == "narrative" }?.1 == "amended\n\"quoted\"")
        #expect(amended.document.history.first?.label == "original, sealed")
        #expect(amended.document.history.last?.label == "amendment")
        #expect(amended.undisclosed.isEmpty)
        #expect(amended.entry.consent == "share")
        // Times are the stamps' exact milliseconds (…123 + k × 1001), not a floating-point rounding of them.
        let state = try #require(try f.states([f.testimonies[0]]).first)
        #expect(amended.document.history.map(\.timeMillis) == state.changes.map(\.timestamp.wallMillis))
        #expect(amended.custody.map(\.change.change.timestamp) == state.changes.map(\.timestamp))
        let text = String(decoding: try #require(archive.file("records/\(f.testimonies[0].hex).json")), as: UTF8.self)
        #expect(text.contains("\"time_ms\":\(state.changes[0].timestamp.wallMillis)"))
        #expect(!text.contains("\n") && text.contains("\\n"), "canonical: one line, newlines escaped in strings")
        // The signer is proven back to the founder, with the name the exporter states.
        #expect(report.founded)
        let signer = try #require(report.signers.first)
        #expect(report.signers.count == 1 && signer.proven && signer.role == "coordinator" && signer.name == "Laila")
        #expect(report.chainLinks == Int(try f.vault.versionVector()[f.vault.deviceID]!.seq))
        // Each document is canonical JSON; the manifest signature is the exporter's.
        for entry in archive.entries where entry.path.hasSuffix(".json") {
            #expect(try JSONValue.parseCanonical(entry.contents).canonical == entry.contents, "\(entry.path)")
        }
        #expect(
            SigningKeyPair.verify(
                try #require(archive.file("manifest.sig")),
                of: BundleManifest.signatureContext + (try #require(archive.file("manifest.json"))),
                publicKey: f.vault.deviceID.bytes))
    }

    @Test func openDecryptsVerifiesAndReturnsTheCustodyForImport() throws {
        let f = try Fixture()
        let identity = AgeX25519Identity.generate()
        let dir = try TemporaryDirectory(prefix: "open")
        let url = dir.path("b.age")
        try writeAgeBundle(try f.archive(f.testimonies), to: url, recipient: identity.recipient.stringValue)
        let (archive, report) = try BundleVerifier.open(Array(try Data(contentsOf: url)), identities: [identity])
        #expect(report.outcome == .verified)
        #expect(archive.file("manifest.sig")?.count == 64)
        let record = try #require(report.records.first { $0.id == f.testimonies[0] })
        let state = try #require(try f.states([f.testimonies[0]]).first)
        #expect(record.custody.map(\.change.seq) == state.changes.map(\.seq))
        #expect(record.custody.allSatisfy { $0.link.hash == $0.envelope.hash && $0.signerProven })
        #expect(record.state == state)
        #expect(report.entries.first?.entry.seq == 1, "the founding entry, placed by its chain link")
        #expect(throws: AgeError.self) {
            try BundleVerifier.open(Array(try Data(contentsOf: url)), identities: [AgeX25519Identity.generate()])
        }
    }

    @Test func theKeysInABundleOpenNoEnvelopeThatWasNotExported() throws {
        let f = try Fixture()
        let exported = [f.testimonies[1]]
        let archive = try f.archive(exported)
        var keys: [[UInt8]] = []
        for entry in archive.entries where entry.path.hasPrefix("custody/") {
            let doc = try JSONValue.parseCanonical(entry.contents)
            keys += (doc["envelopes"]?.arrayValue ?? []).map { Hex.decode($0["envelope_key"]!.stringValue!)! }
        }
        let state = try #require(try f.states(exported).first)
        #expect(keys.count == state.changes.count, "exactly the record's envelopes have keys")
        let all = try f.vault.envelopes(of: f.vault.deviceID, after: 0, limit: 10_000)
        let exportedSeqs = Set(state.changes.map(\.seq))
        var opened = 0
        for envelope in all {
            for key in keys {
                if (try? envelope.open(withEnvelopeKey: SecureBytes(key))) != nil {
                    #expect(
                        exportedSeqs.contains(envelope.header.seq), "a bundle key opens envelope \(envelope.header.seq)"
                    )
                    opened += 1
                }
            }
        }
        #expect(opened == exportedSeqs.count)
        // No plaintext of other records in the archive either.
        let bytes = archive.encoded()
        for other in ["statement 0", "fictional 0", "W-2"] {
            #expect(Data(bytes).range(of: Data(other.utf8)) == nil, "\(other) disclosed")
        }
    }

    /// A re-signed bundle that keeps a device's chain under attachments/, where the streaming reader takes files by
    /// their hash alone and never holds their bytes, is refused with a sentence naming the chain: a document's path
    /// is fixed by the manifest, so no document is ever read from there.
    @Test func aDocumentStoredWhereAttachmentsGoIsRefusedByName() throws {
        let f = try Fixture()
        let archive = try f.archive(f.testimonies)
        let manifest = try JSONValue.parse(try #require(archive.file("manifest.json")))
        let devices = try #require(manifest["devices"]?.arrayValue)
        let chain = try #require(devices.first?["chain"]?.stringValue)
        let moved = "attachments/\(chain.split(separator: "/").last ?? "chain")"
        let forged = try resignBundle(
            archive, signer: f.vault.keyring.device, replacing: [moved: try #require(archive.file(chain))],
            removing: [chain]
        ) { manifest in
            manifest.setting(
                "devices",
                to: .array(
                    devices.enumerated().map {
                        $0.offset == 0 ? $0.element.setting("chain", to: .string(moved)) : $0.element
                    }))
        }
        let identity = AgeX25519Identity.generate()
        let url = f.dir.url.appendingPathComponent("moved.age")
        try writeAgeBundle(forged, to: url, recipient: identity.recipient.stringValue)
        let (read, report) = try BundleVerifier.open(Array(try Data(contentsOf: url)), identities: [identity])
        #expect(read.entry(moved)?.summary != nil, "the reader took the moved chain by its hash")
        #expect(report.outcome == .damaged)
        #expect(
            report.problems == [
                "manifest.json is not valid: the chain of device \(chain.dropFirst(7).prefix(12)) is not \(chain)."
            ],
            "\(report.problems)")
    }

    @Test func anEditedRecordDocumentFailsAndIsNamedEvenIfReSigned() throws {
        let f = try Fixture()
        let archive = try f.archive(f.testimonies)
        let target = f.testimonies[2].hex
        let path = "records/\(target).json"
        let text = String(decoding: try #require(archive.file(path)), as: UTF8.self)
        let edited = Array(text.replacingOccurrences(of: "fictional 2", with: "fictional two").utf8)
        // Only the file changed: its hash no longer matches the signed manifest.
        var plain = archive
        plain.entries[plain.entries.firstIndex { $0.path == path }!].contents = edited
        let report = BundleVerifier.verify(plain)
        #expect(report.outcome == .damaged)
        #expect(report.problems.contains { $0.contains(path) && $0.contains("altered") }, "\(report.problems)")
        // The exporter re-signs the manifest with the new hash: the document still does not match its changes.
        let resigned = try resignBundle(archive, signer: f.vault.keyring.device, replacing: [path: edited])
        let again = BundleVerifier.verify(resigned)
        #expect(again.problems.count == 1)
        #expect(again.problems.first?.contains(String(target.prefix(12))) == true, "\(again.problems)")
        #expect(again.records.count == 2)
    }

    /// Every file of the bundle, at a seeded sample of byte positions: any single-byte change is caught, both as it
    /// is (the signed SHA-256 list catches it) and after the exporter re-signs the manifest over the changed file
    /// (the chains, envelopes, keys and re-rendered documents catch it).
    @Test func everySingleByteChangeIsCaught() throws {
        let seed = testSeed()
        var rng = SeededGenerator(seed: seed)
        let f = try Fixture()
        let archive = try f.archive(f.testimonies + [f.statements[0]])
        #expect(BundleVerifier.verify(archive).outcome == .verified)
        var checked = 0
        for (index, entry) in archive.entries.enumerated() {
            var positions = Set([0, entry.contents.count - 1])
            while positions.count < min(entry.contents.count, 40) {
                positions.insert(Int.random(in: 0..<entry.contents.count, using: &rng))
            }
            for position in positions.sorted() {
                let delta = UInt8.random(in: 1...255, using: &rng)
                var bytes = entry.contents
                bytes[position] ^= delta
                var tampered = archive
                tampered.entries[index].contents = bytes
                let report = BundleVerifier.verify(tampered)
                #expect(
                    report.outcome == .damaged,
                    "seed \(seed): \(entry.path) byte \(position) ^ \(delta) was not caught: \(report.problems)")
                // Re-signed by the exporter: only what it states (the manifest itself, the README) may change.
                if entry.path != "manifest.json" && entry.path != "manifest.sig" && entry.path != "README.txt" {
                    let resigned = try resignBundle(
                        archive, signer: f.vault.keyring.device, replacing: [entry.path: bytes])
                    let again = BundleVerifier.verify(resigned)
                    #expect(
                        again.outcome == .damaged,
                        "seed \(seed): re-signed \(entry.path) byte \(position) ^ \(delta) was not caught")
                }
                checked += 1
            }
        }
        #expect(checked > 200, "seed \(seed)")
    }

    @Test func anUndisclosedAmendmentIsReportedAndTheRestVerifies() throws {
        let f = try Fixture()
        let archive = try f.archive(f.testimonies)
        let record = f.testimonies[0]
        let state = try #require(try f.states([record]).first)
        let amendment = try #require(state.changes.last)
        // The redactor drops the amendment from custody, re-renders the record from what is left, keeps the
        // manifest's list of the record's changes and signs again with the exporting device's key.
        let replacing = try redactedRecord(archive, record: record) {
            $0 == amendment.author && $1 == amendment.seq
        }
        let redacted = try resignBundle(archive, signer: f.vault.keyring.device, replacing: replacing)
        let report = BundleVerifier.verify(redacted)
        #expect(report.problems == [])
        #expect(report.outcome == .verified, "\(report.unproven)")
        let r = try #require(report.records.first { $0.id == record })
        #expect(r.undisclosed.map(\.seq) == [amendment.seq])
        #expect(r.document.fields.first { $0.0 == "narrative" }?.1 == "fictional 0 — شاهد", "the record as disclosed")
        #expect(report.records.filter { $0.id != record }.allSatisfy { $0.undisclosed.isEmpty })
        // Dropping it from custody without re-rendering the record is caught as an altered record.
        var partial = replacing
        partial["records/\(record.hex).json"] = nil
        #expect(
            BundleVerifier.verify(try resignBundle(archive, signer: f.vault.keyring.device, replacing: partial))
                .outcome == .damaged)
        // Listing a change that is not in its device's chain is caught.
        let lying = try resignBundle(archive, signer: f.vault.keyring.device) { manifest in
            var records = manifest["records"]!.arrayValue!
            var changes = records[0]["changes"]!.arrayValue!
            changes.append(changes.last!.setting("seq", to: .integer(999)))
            records[0] = records[0].setting("changes", to: .array(changes))
            return manifest.setting("records", to: .array(records))
        }
        #expect(BundleVerifier.verify(lying).problems.contains { $0.contains("not in that device's chain") })
    }

    @Test func consentAtExportIsStatedForEveryTestimony() throws {
        let f = try Fixture()
        try f.vault.commit(record: f.testimonies[1]) { st in
            [st!.setOperation(field: "consent", value: "restricted")]
        }
        let states = try f.states(f.testimonies + f.statements)
        #expect(states.filter(BundleExporter.isShareable).count == 5)
        let report = BundleVerifier.verify(try f.archive(f.testimonies + f.statements))
        #expect(report.outcome == .verified)
        let consent = Dictionary(uniqueKeysWithValues: report.records.map { ($0.id, $0.entry.consent) })
        #expect(consent[f.testimonies[0]] == "share")
        #expect(consent[f.testimonies[1]] == "restricted")
        #expect(consent[f.statements[0]] == .some(nil))
    }

    @Test func aConflictOnConsentLeavesATestimonyOut() async throws {
        let dir = try TemporaryDirectory(prefix: "consent")
        let team = try makeTeam(2, in: dir)
        let sync = dir.path("team.amanat-sync")
        for vault in team { try await fileSync(vault, sync) }
        let record = try team[0].createRecord(
            kind: "testimony", fields: [("witness", "W-5"), ("consent", "anonymised")], tags: [], seal: true)
        try await fileSync(team[0], sync)
        try await fileSync(team[1], sync)
        try team[0].commit(record: record) { st in [st!.setOperation(field: "consent", value: "share")] }
        try team[1].commit(record: record) { st in [st!.setOperation(field: "consent", value: "restricted")] }
        try await fileSync(team[0], sync)
        try await fileSync(team[1], sync)
        try await fileSync(team[0], sync)
        let state = try #require(try team[0].allStates().first { $0.id == record })
        #expect(state.values["consent"]?.count == 2)
        #expect(BundleExporter.consent(of: state) == "conflict")
        #expect(!BundleExporter.isShareable(state))
        let report = BundleVerifier.verify(try BundleExporter.archive(from: team[0], records: [state], now: Date()))
        #expect(report.outcome == .verified)
        #expect(report.records.first?.entry.consent == "conflict")
        #expect(report.records.first?.document.conflicts.first?.0 == "consent")
    }

    @Test func aValueStampedAfterTheExportDoesNotDecideTheExportedFields() async throws {
        let dir = try TemporaryDirectory(prefix: "future")
        let team = try makeTeam(2, in: dir)
        let record = try team[0].createRecord(
            kind: "statement", fields: [("title", "t"), ("location", "Kabul")], tags: [], seal: false)
        try team[1].ingest(try team[0].envelopes(of: team[0].deviceID, after: 0, limit: 10))
        try team[0].commit(record: record) { st in [st!.setOperation(field: "location", value: "Herat")] }
        // A member whose clock is a month fast sets the same field concurrently.
        let prior = try team[1].resolveRecord(record.hex)
        var chain = ForgedChain(
            vaultID: team[1].vaultID, signer: team[1].keyring.device, head: try ownHead(of: team[1]))
        let month = UInt64(30 * 86_400_000)
        let ahead = HLCTimestamp(wallMillis: UInt64(Date().timeIntervalSince1970 * 1000) + month, counter: 0)
        let hostile = try chain.change(
            record, key: writingKey(of: team[1]), at: ahead, [prior.setOperation(field: "location", value: "Mazar")])
        try team[0].ingest(try team[1].envelopes(of: team[1].deviceID, after: 0, limit: 10) + [hostile])
        let state = try #require(try team[0].allStates().first { $0.id == record })

        let now = try BundleExporter.archive(from: team[0], records: [state], now: Date())
        let report = BundleVerifier.verify(now)
        #expect(report.outcome == .verified, "\(report.problems)")
        let document = try #require(report.records.first?.document)
        #expect(document.fields.first { $0.0 == "location" }?.1 == "Herat")
        #expect(document.conflicts.first { $0.0 == "location" }?.1 == ["Mazar"])
        // Exported once the month has passed, the later value is displayed, and that bundle verifies too.
        let later = try BundleExporter.archive(
            from: team[0], records: [state], now: Date(timeIntervalSinceNow: Double(month / 1000) + 60))
        let laterReport = BundleVerifier.verify(later)
        #expect(laterReport.outcome == .verified, "\(laterReport.problems)")
        #expect(laterReport.records.first?.document.fields.first { $0.0 == "location" }?.1 == "Mazar")
    }

    @Test func membersAreNamedWithTheirRolesAndAWithheldFoundingEntryIsUnproven() async throws {
        let dir = try TemporaryDirectory(prefix: "team")
        let team = try makeTeam(3, in: dir, roles: [.member, .reader])
        let sync = dir.path("team.amanat-sync")
        for vault in team { try await fileSync(vault, sync) }
        let record = try team[1].createRecord(
            kind: "testimony", fields: [("witness", "W-9"), ("consent", "anonymised")], tags: [], seal: true)
        try await fileSync(team[1], sync)
        try await fileSync(team[0], sync)
        try team[0].commit(record: record) { st in [st!.addTagOperation("verified")] }
        let state = try #require(try team[0].allStates().first { $0.id == record })
        let archive = try BundleExporter.archive(from: team[0], records: [state], now: Date())
        let report = BundleVerifier.verify(archive)
        #expect(report.outcome == .verified, "\(report.problems) \(report.unproven)")
        let roles = Dictionary(uniqueKeysWithValues: report.signers.map { ($0.device, $0.role) })
        #expect(roles[team[0].deviceID] == "coordinator")
        #expect(roles[team[1].deviceID] == "member")
        #expect(roles[team[2].deviceID] == "reader", "every device with a membership entry is shown")
        #expect(report.signers.allSatisfy { $0.proven })
        #expect(report.signers.first { $0.device == team[1].deviceID }?.name == "r1")

        // Without the founder's entries (withheld by a redactor who re-signs), nothing is proven.
        let membership = try JSONValue.parse(try #require(archive.file("membership.json")))
        let founder = team[0].deviceID.hex
        let kept = membership["entries"]!.arrayValue!.filter { $0["device"]?.stringValue != founder }
        let withheld = try resignBundle(
            archive, signer: team[0].keyring.device,
            replacing: ["membership.json": membership.setting("entries", to: .array(kept)).canonical])
        let unproven = BundleVerifier.verify(withheld)
        #expect(unproven.problems == [])
        #expect(unproven.outcome == .unproven)
        #expect(unproven.signers.allSatisfy { !$0.proven })
        #expect(unproven.unproven.contains { $0.contains("no founding entry") })
    }

    /// The fabricated bundle: an outsider with the team's public vault id makes a bundle of an invented testimony,
    /// with the team's real membership entries (which any relay or earlier bundle shows) and its own chain.
    @Test func aFabricatedBundleIsNeverProven() async throws {
        let dir = try TemporaryDirectory(prefix: "fabricated")
        let team = try makeTeam(2, in: dir)
        let sync = dir.path("team.amanat-sync")
        for vault in team + [team[0]] { try await fileSync(vault, sync) }
        let genuine = try team[1].createRecord(
            kind: "testimony", fields: [("witness", "W-1"), ("consent", "share")], tags: [], seal: true)
        let state = try #require(try team[1].allStates().first { $0.id == genuine })
        let real = try BundleExporter.archive(from: team[1], records: [state], now: Date())
        #expect(BundleVerifier.verify(real).outcome == .verified)

        let outsider = try Vault.create(
            at: dir.path("outsider"), passphrase: passphrase, deviceName: "outsider", strength: .interactive)
        let forged = try fabricate(
            vaultID: team[0].vaultID, outsider: outsider, team: team[0],
            claimedExporter: nil)
        let verdict = BundleVerifier.verify(forged)
        #expect(verdict.problems == [], "the outsider's bundle is intact")
        #expect(verdict.outcome == .unproven)
        #expect(verdict.signers.first { $0.device == outsider.deviceID }?.proven == false)
        #expect(verdict.unproven.contains { $0.contains("exporting") && $0.contains("not proven") })
        #expect(verdict.unproven.contains { $0.contains("not proven to be a member (or not allowed to write)") })

        // Naming a real team device as the exporter: its signature does not verify.
        let impersonating = try fabricate(
            vaultID: team[0].vaultID, outsider: outsider, team: team[0],
            claimedExporter: team[1].deviceID)
        let refused = BundleVerifier.verify(impersonating)
        #expect(refused.outcome == .damaged)
        #expect(refused.problems.contains { $0.contains("manifest.sig does not verify") }, "\(refused.problems)")

        // With its own founding entry instead of the team's: the vault id is not its founder's hash.
        let own = try fabricate(
            vaultID: team[0].vaultID, outsider: outsider, team: nil, claimedExporter: nil)
        let alone = BundleVerifier.verify(own)
        #expect(alone.outcome == .unproven)
        #expect(alone.unproven.contains { $0.contains("no founding entry") })
        // And a recipient who pins another vault's fingerprint is told.
        let pinned = BundleVerifier.verify(real, expectVault: outsider.vaultID)
        #expect(pinned.outcome == .unproven)
        #expect(pinned.unproven.contains { $0.contains("not the expected") })
        #expect(BundleVerifier.verify(real, expectVault: team[0].vaultID).outcome == .verified)
    }

    /// A bundle as the first format wrote it (the exporter of that version, restated): still verified, as unproven.
    @Test func aFormatOneBundleIsVerifiedButUnproven() throws {
        let f = try Fixture()
        var archive = TarArchive()
        archive.add("README.txt", Array("format 1".utf8))
        var records: [LegacyManifest.Record] = []
        var documents: [(String, [UInt8])] = []
        for state in try f.states(f.testimonies).sorted(by: { $0.id < $1.id }) {
            let changes = try f.vault.history(of: state)
            let items = changes.map { envelope, authored in
                LegacyCustodyDocument.Item(
                    device: authored.author.hex, seq: authored.seq, hash: Hex.encode(envelope.hash),
                    envelope_key: Hex.encode(
                        f.vault.keyring.currentKey.envelopeKey(author: authored.author, seq: authored.seq).copyBytes()),
                    envelope: Data(envelope.encoded()).base64EncodedString())
            }
            let id = state.id.hex
            documents.append(
                ("records/\(id).json", LegacyJSON.encode(LegacyRecordDocument(state: state, changes: changes))))
            documents.append(
                ("custody/\(id).json", LegacyJSON.encode(LegacyCustodyDocument(record: id, envelopes: items))))
            records.append(
                .init(id: id, kind: "testimony", record: "records/\(id).json", custody: "custody/\(id).json"))
        }
        let seq = try f.vault.versionVector()[f.vault.deviceID]!.seq
        let links = try f.vault.envelopes(of: f.vault.deviceID, after: 0, limit: Int(seq)).flatMap {
            ChainLink($0).encoded
        }
        let manifest = LegacyManifest(
            format: "amanat-bundle/1", vault_id: Hex.encode(f.vault.vaultID), exported_at: "2026-01-01T00:00:00Z",
            exported_by: f.vault.deviceID.hex, records: records,
            devices: [.init(device: f.vault.deviceID.hex, chain: "chains/\(f.vault.deviceID.hex).bin", changes: seq)])
        archive.add("manifest.json", LegacyJSON.encode(manifest))
        for (path, bytes) in documents { archive.add(path, bytes) }
        archive.add("chains/\(f.vault.deviceID.hex).bin", links)
        let report = BundleVerifier.verify(archive)
        #expect(report.format == 1)
        #expect(report.problems == [])
        #expect(report.outcome == .unproven)
        #expect(report.unproven == ["format 1: unsigned, signers and names not proven."])
        #expect(report.legacy?.records.count == 3)
        // An edit is still caught.
        var edited = archive
        let index = edited.entries.firstIndex { $0.path.hasPrefix("records/") }!
        let text = String(decoding: edited.entries[index].contents, as: UTF8.self)
        edited.entries[index].contents = Array(text.replacingOccurrences(of: "W-", with: "X-").utf8)
        #expect(BundleVerifier.verify(edited).outcome == .damaged)
    }

    @Test func canonicalJSONMatchesTheProtocolVectors() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Protocol/vectors/jcs-v1.json")
        let file = try JSONValue.parse(Array(try Data(contentsOf: url)))
        let valid = try #require(file["valid"]?.arrayValue)
        let invalid = try #require(file["invalid"]?.arrayValue)
        #expect(valid.count >= 10 && invalid.count >= 15)
        for case_ in valid {
            let name = case_["name"]!.stringValue!
            let input = Array(case_["input"]!.stringValue!.utf8)
            let expected = try #require(Hex.decode(case_["canonical_hex"]!.stringValue!))
            #expect(Array(case_["canonical"]!.stringValue!.utf8) == expected, "\(name)")
            #expect(try JSONValue.parse(input).canonical == expected, "\(name)")
            #expect(try JSONValue.parseCanonical(expected).canonical == expected, "\(name)")
            if input != expected {
                #expect(throws: (any Error).self, "\(name): a non-canonical text is refused") {
                    try JSONValue.parseCanonical(input)
                }
            }
        }
        for case_ in invalid {
            let name = case_["name"]!.stringValue!
            #expect(throws: (any Error).self, "\(name)") {
                try JSONValue.parse(Array(case_["input"]!.stringValue!.utf8))
            }
        }
        // Names that differ only in Unicode normalisation are two members, kept apart and ordered by code units.
        let composed = JSONValue.object([("\u{E9}", .integer(1)), ("e\u{301}", .integer(2))])
        #expect(String(decoding: composed.canonical, as: UTF8.self) == "{\"e\u{301}\":2,\"\u{E9}\":1}")
        #expect(try JSONValue.parseCanonical(composed.canonical).members?.count == 2)
    }

    @Test func theSealHashMatchesTheProtocolVectors() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Protocol/vectors/seal-v1.json")
        let cases = try #require(try JSONValue.parse(Array(try Data(contentsOf: url)))["cases"]?.arrayValue)
        #expect(cases.count == 4)
        for c in cases {
            let fields = c["fields"]!.arrayValue!.map {
                ($0.arrayValue![0].stringValue!, $0.arrayValue![1].stringValue!)
            }
            let hash = RecordState.sealHash(kind: c["kind"]!.stringValue!, fields: fields)
            #expect(Hex.encode(hash) == c["content_hash"]!.stringValue!, "\(c["name"]!.stringValue!)")
            #expect(Hex.encode(BLAKE2b.hash(try #require(Hex.decode(c["preimage"]!.stringValue!)))) == Hex.encode(hash))
        }
    }

    @Test func tarRoundTripsAndRefusesUnsafeOrDamagedArchives() throws {
        var archive = TarArchive()
        archive.add("a.txt", Array("hello".utf8))
        archive.add("dir/b.bin", [UInt8](repeating: 9, count: 513))
        let bytes = archive.encoded()
        #expect(bytes.count % 512 == 0)
        #expect(try TarArchive(decoding: bytes) == archive)
        #expect(try TarArchive(decoding: bytes + [UInt8](repeating: 0, count: 4000)) == archive, "Padmé zeros are fine")
        #expect(throws: BundleError.self) { try TarArchive(decoding: bytes + [1]) }
        #expect(throws: BundleError.self) { try TarArchive(decoding: Array(bytes.prefix(600))) }
        var flipped = bytes
        flipped[10] ^= 1
        #expect(throws: BundleError.self) { try TarArchive(decoding: flipped) }
        // A path twice is refused, however far apart (compared as UTF-8 bytes: `é` and `e` + U+0301 are two).
        var twice = TarArchive()
        twice.add("a.txt", [1])
        for i in 0..<300 { twice.add("f\(i)", []) }
        twice.entries.append(.init(path: "a.txt", contents: [2]))
        #expect(throws: BundleError.self) { try TarArchive(decoding: twice.encoded()) }
        var equivalent = TarArchive()
        equivalent.add("caf\u{E9}", [1])
        equivalent.add("cafe\u{301}", [2])
        #expect(try TarArchive(decoding: equivalent.encoded()).entries.count == 2)
        for path in ["../evil", "/etc/passwd", "a/../../b", "", "a//b", "./x"] {
            #expect(!TarArchive.isSafePath(path), "\(path)")
        }
        // An archive naming ../evil, with a correct checksum, is refused.
        var evil = TarArchive()
        evil.entries.append(.init(path: "ok", contents: []))
        var raw = evil.encoded()
        for (k, b) in Array("../evil".utf8).enumerated() { raw[k] = b }
        raw.replaceSubrange(148..<156, with: Array("        ".utf8))
        let sum = raw[0..<512].reduce(0) { $0 + Int($1) }
        let octal = Array(String(sum, radix: 8).utf8)
        raw.replaceSubrange(148..<148 + 6, with: [UInt8](repeating: UInt8(ascii: "0"), count: 6 - octal.count) + octal)
        raw[154] = 0
        #expect(throws: BundleError.self) { try TarArchive(decoding: raw) }
    }

    /// The streaming reader, fed an archive in random pieces (one byte to several blocks), gives what the whole
    /// reading gives; the attachment files it summarises come with their exact SHA-256 and size, and the sink gets
    /// their bytes, in order, between their start and end. Damaged archives fail the same way piece by piece.
    @Test(arguments: [UInt64(7), 8, 9])
    func theStreamingReaderReadsAnyPiecesAsTheWholeAndSummarisesAttachments(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        var archive = TarArchive()
        archive.add("manifest.json", Array("{}".utf8))
        let media = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        archive.add("attachments/r/1.bin", media)
        archive.add("attachments/r/empty.bin", [])
        archive.add("records/r.json", [UInt8](repeating: 7, count: 1025))
        let bytes = BundleExporter.padded(archive.encoded())
        func pieces(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
            var out: [ArraySlice<UInt8>] = []
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + Int.random(in: 1...1600, using: &rng))
                out.append(bytes[start..<end])
                start = end
            }
            return out
        }
        var events: [String] = []
        var streamed: [String: [UInt8]] = [:]
        var current = ""
        var decoder = TarArchive.Decoder(summarising: BundleVerifier.isAttachmentPath) { event in
            switch event {
            case .start(let path, let size):
                events.append("start \(path) \(size)")
                current = path
                streamed[path] = []
            case .bytes(let part): streamed[current, default: []] += part
            case .end: events.append("end \(current)")
            }
        }
        for piece in pieces(bytes) { try decoder.feed(piece) }
        let read = try decoder.finish()
        #expect(read.entries.map(\.path) == archive.entries.map(\.path), "seed \(seed)")
        #expect(
            read.file("manifest.json") == Array("{}".utf8)
                && read.file("records/r.json") == archive.file("records/r.json"))
        #expect(read.file("attachments/r/1.bin") == nil, "an attachment's bytes are not kept")
        #expect(read.entry("attachments/r/1.bin")?.summary == .init(sha256: SHA256.hash(media), size: media.count))
        #expect(read.entry("attachments/r/empty.bin")?.summary == .init(sha256: SHA256.hash([]), size: 0))
        #expect(streamed["attachments/r/1.bin"] == media && streamed["attachments/r/empty.bin"] == [])
        #expect(
            events == [
                "start attachments/r/1.bin 5000", "end attachments/r/1.bin", "start attachments/r/empty.bin 0",
                "end attachments/r/empty.bin",
            ], "seed \(seed)")
        for (what, damaged) in [
            ("trailing data", bytes + [1]), ("cut in a file", Array(bytes.prefix(1500))),
            ("cut before the end marker", Array(archive.encoded().dropLast(1024))),
        ] {
            var decoder = TarArchive.Decoder(summarising: BundleVerifier.isAttachmentPath)
            #expect(throws: BundleError.self, "\(what), seed \(seed)") {
                for piece in pieces(damaged) { try decoder.feed(piece) }
                _ = try decoder.finish()
            }
        }
    }

    @Test(arguments: [
        (0, 0), (1, 1), (2, 2), (1000, 1024), (100_000, 100_352), (1 << 20, 1 << 20), (1_000_001, 1_015_808),
    ])
    func padmeLengths(length: Int, padded: Int) {
        #expect(Padme.paddedLength(length) == padded)
    }

    @Test func padmeNeverShrinksAndCostsLittle() {
        for length in stride(from: 3, to: 5_000_000, by: 9973) {
            let p = Padme.paddedLength(length)
            #expect(p >= length)
            #expect(Double(p - length) <= Double(length) * 0.12 + 1)
        }
    }
}
