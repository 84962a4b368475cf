import AmanatCore
import AmanatCrypto
import Foundation
import GRDB
import Testing

@testable import AmanatStore

/// Stored record rows are padded like envelopes, and rows of the previous release (unpadded) still decode.
@Suite struct StoredRowPaddingTests {
    /// The sizes of the record rows, as anyone holding the seized disk reads them.
    static func rowSizes(_ cli: CLIRunner) throws -> [Int] {
        let queue = try DatabaseQueue(path: cli.vault.appendingPathComponent("vault.sqlite").path)
        defer { try? queue.close() }
        return try queue.read { db in try Int.fetchAll(db, sql: "SELECT length(body) FROM record") }
    }

    @Test func narrativesOfNearbyLengthsGiveRowsOfOneSize() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        // The case as found: narratives of 10 to 13 bytes gave rows of 513, 515, 517 and 519 bytes.
        for length in 10...13 {
            let file = scratch.path("narrative-\(length).txt")
            try String(repeating: "n", count: length).write(to: file, atomically: true, encoding: .utf8)
            _ = try cli.ok(["add", "testimony", "--witness", "W-1", "--narrative-file", file.path])
        }
        let sizes = try Self.rowSizes(cli)
        #expect(sizes.count == 4 && Set(sizes).count == 1, "row sizes: \(sizes)")
        #expect(sizes.allSatisfy { ($0 - 40) % Vault.rowPaddingBlock == 0 }, "nonce and tag around whole blocks")
        #expect(try cli.ok(["verify"]).hasPrefix("ok:"))
    }

    @Test func rowSizesTellLengthsApartNoMoreFinelyThanEnvelopeSizes() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        // One record per narrative length from 0 to 511 bytes; each record is one envelope and one row.
        do {
            let vault = try Vault.open(at: cli.vault, passphrase: SecureBytes(Array(cli.passphrase.utf8)))
            for length in 0..<512 {
                _ = try vault.createRecord(
                    kind: "testimony",
                    fields: [("witness", "W-1"), ("narrative", String(repeating: "n", count: length))],
                    tags: [], seal: false)
            }
        }
        let queue = try DatabaseQueue(path: cli.vault.appendingPathComponent("vault.sqlite").path)
        let (rows, envelopes) = try queue.read { db in
            (
                Set(try Int.fetchAll(db, sql: "SELECT length(body) FROM record")),
                Set(try Int.fetchAll(db, sql: "SELECT length(body) FROM envelope"))
            )
        }
        try queue.close()
        // Unpadded, rows took 512 sizes; padded, no more than the envelopes (allowing one for block boundaries that
        // fall at other lengths).
        #expect(rows.count <= envelopes.count + 1, "rows: \(rows.sorted()), envelopes: \(envelopes.sorted())")
        #expect(rows.count >= 2, "a much longer narrative still gives a longer row")
    }

    @Test func rowsWrittenByThePreviousReleaseStillDecode() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let statement = try cli.ok(["add", "statement", "--title", "old row", "--tag", "kept"])
        _ = try cli.ok(["add", "testimony", "--witness", "W-9", "--location", "Herat", "--allow-empty"])
        _ = try cli.ok(["edit", statement, "--set", "title=old row, edited"])
        let digest = try cli.digest()
        let listing = try cli.ok(["list", "--json"])
        // Rewrite every row in the previous release's form: u32 view length ‖ view ‖ state, no flag, no padding.
        do {
            let vault = try Vault.open(at: cli.vault, passphrase: SecureBytes(Array(cli.passphrase.utf8)))
            for state in try vault.allStates() {
                var w = ByteWriter(capacity: 512)
                w.write(bigEndian: UInt32(0))
                RecordView.encode(state.view, id: state.id, into: &w)
                var plain = w.bytes
                withUnsafeBytes(of: UInt32(plain.count - 4).bigEndian) { plain.replaceSubrange(0..<4, with: $0) }
                plain += state.encoded()
                let slot = vault.slot(for: state.id)
                let body = try vault.sealRow(plain, associatedData: Array(slot))
                try vault.database.write { db in
                    try db.execute(sql: "UPDATE record SET body = ? WHERE slot = ?", arguments: [body, slot])
                }
            }
        }
        #expect(try Self.rowSizes(cli).contains { ($0 - 40) % Vault.rowPaddingBlock != 0 }, "rows are unpadded now")
        #expect(try cli.digest() == digest)
        #expect(try cli.ok(["list", "--json"]) == listing)
        #expect(try cli.ok(["show", statement]).contains("old row, edited"))
        #expect(try cli.ok(["verify"]).hasPrefix("ok:"))
        // The next change rewrites the row padded.
        _ = try cli.ok(["tag", statement, "--add", "new"])
        #expect(try cli.ok(["verify"]).hasPrefix("ok:"))
    }
}
