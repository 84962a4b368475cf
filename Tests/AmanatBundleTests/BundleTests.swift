import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatBundle

/// A vault of 6 records over two devices, with amendments, tags and a deletion.
struct Fixture {
    let dir: TemporaryDirectory
    let vault: Vault
    let testimonies: [RecordID]
    let statements: [RecordID]

    init() throws {
        dir = try TemporaryDirectory(prefix: "bundle")
        vault = try Vault.create(
            at: dir.url.appendingPathComponent("v"), passphrase: SecureBytes(Array("pw".utf8)), deviceName: "d",
            strength: .interactive)
        var t: [RecordID] = []
        var s: [RecordID] = []
        for i in 0..<3 {
            t.append(
                try vault.createRecord(
                    kind: "testimony", fields: [("witness", "W-\(i)"), ("narrative", "fictional \(i)")],
                    tags: ["detention"],
                    seal: true))
            s.append(
                try vault.createRecord(kind: "statement", fields: [("title", "statement \(i)")], tags: [], seal: false))
        }
        for id in t + s {
            try vault.commit(record: id) { st in [st!.addTagOperation("reviewed")] }
        }
        try vault.commit(record: t[0]) { st in [st!.setOperation(field: "narrative", value: "amended")] }
        testimonies = t
        statements = s
    }

    func states(_ ids: [RecordID]) throws -> [RecordState] {
        try vault.allStates().filter { ids.contains($0.id) }
    }
}

@Suite struct BundleTests {
    @Test func anExportedArchiveVerifiesAndReplaysEveryRecord() throws {
        let f = try Fixture()
        let archive = try BundleExporter.archive(from: f.vault, records: try f.states(f.testimonies), now: Date())
        let report = BundleVerifier.verify(try TarArchive(decoding: BundleExporter.padded(archive.encoded())))
        #expect(report.problems == [])
        #expect(Set(report.records.map(\.state.id)) == Set(f.testimonies))
        let amended = try #require(report.records.first { $0.state.id == f.testimonies[0] })
        #expect(amended.document.fields["narrative"] == "amended")
        #expect(amended.document.history.first?.label == "original, sealed")
        #expect(amended.document.history.last?.label == "amendment")
        #expect(report.chainLinks == Int(try f.vault.versionVector().values.first!.seq))
    }

    @Test func theKeysInABundleOpenNoEnvelopeThatWasNotExported() throws {
        let f = try Fixture()
        let exported = [f.testimonies[1]]
        let archive = try BundleExporter.archive(from: f.vault, records: try f.states(exported), now: Date())
        var keys: [[UInt8]] = []
        for entry in archive.entries where entry.path.hasPrefix("custody/") {
            let doc = try JSONDecoder().decode(CustodyDocument.self, from: Data(entry.contents))
            keys += doc.envelopes.map { Hex.decode($0.envelope_key)! }
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

    @Test func anEditedRecordDocumentFailsAndIsNamed() throws {
        let f = try Fixture()
        var archive = try BundleExporter.archive(from: f.vault, records: try f.states(f.testimonies), now: Date())
        let target = f.testimonies[2].hex
        let index = try #require(archive.entries.firstIndex { $0.path == "records/\(target).json" })
        let text = String(decoding: archive.entries[index].contents, as: UTF8.self)
        archive.entries[index].contents = Array(
            text.replacingOccurrences(of: "fictional 2", with: "fictional two").utf8)
        let report = BundleVerifier.verify(archive)
        #expect(report.problems.count == 1)
        #expect(report.problems.first?.contains(String(target.prefix(12))) == true, "\(report.problems)")
        #expect(report.records.count == 2)
    }

    @Test func swappedKeysAlteredChainsAndExtraFilesFail() throws {
        let f = try Fixture()
        let base = try BundleExporter.archive(from: f.vault, records: try f.states(f.testimonies), now: Date())

        // A key of another envelope.
        var swapped = base
        let i = try #require(swapped.entries.firstIndex { $0.path.hasPrefix("custody/") })
        var custody = try JSONDecoder().decode(CustodyDocument.self, from: Data(swapped.entries[i].contents))
        custody.envelopes[0].envelope_key = Hex.encode([UInt8](repeating: 7, count: 32))
        swapped.entries[i].contents = BundleJSON.encode(custody)
        #expect(BundleVerifier.verify(swapped).problems.contains { $0.contains("does not decrypt") })

        // A chain link altered.
        var chain = base
        let c = try #require(chain.entries.firstIndex { $0.path.hasPrefix("chains/") })
        chain.entries[c].contents[ChainLink.length + 60] ^= 1
        #expect(BundleVerifier.verify(chain).problems.contains { $0.contains("broken") || $0.contains("not the one") })

        // A chain truncated.
        var truncated = base
        truncated.entries[c].contents.removeLast(ChainLink.length)
        #expect(!BundleVerifier.verify(truncated).problems.isEmpty)

        // An unlisted file.
        var extra = base
        extra.add("records/extra.json", Array("{}".utf8))
        #expect(BundleVerifier.verify(extra).problems.contains { $0.contains("does not list") })
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
