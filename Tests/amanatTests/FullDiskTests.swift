import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation
import Testing

/// A small tmpfs (1 MiB unless told), mounted for one test and unmounted when released; nil where mounting is not
/// permitted.
final class TinyDisk {
    let url: URL

    init?(megabytes: Int = 1) {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("amanat-fulldisk-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        guard (try? shell("mount -t tmpfs -o size=\(megabytes)m tmpfs '\(url.path)'").0) == 0 else {
            try? FileManager.default.removeItem(at: url)
            return nil
        }
    }

    deinit {
        _ = try? shell("umount '\(url.path)'")
        try? FileManager.default.removeItem(at: url)
    }

    static let available: Bool = TinyDisk() != nil

    /// Remounts the disk read-only, as a write-protected USB stick is.
    func remountReadOnly() throws -> Bool {
        try shell("mount -o remount,ro '\(url.path)'").0 == 0
    }
}

@Suite struct FullDiskTests {
    @Test(.enabled(if: TinyDisk.available, "mounting a tmpfs needs root"))
    func aFullDiskGetsExit74AndChangesNothing() throws {
        let disk = try #require(TinyDisk())
        let cli = CLIRunner(vault: disk.url.appendingPathComponent("vault"))
        try cli.initialize()
        _ = try cli.ok(["add", "statement", "--title", "before the disk filled"])
        // Fill the disk through the store until a write is refused.
        let vault = try Vault.open(at: cli.vault, passphrase: SecureBytes(Array(cli.passphrase.utf8)))
        let body = String(repeating: "x", count: 8192)
        var refused: StoreError?
        for _ in 0..<1000 {
            do {
                try vault.commitBatch(
                    (0..<8).map { _ in
                        (
                            RecordID?.none,
                            [RecordOperation.create(kind: "statement"), .set(field: "body", value: body, pred: [])]
                        )
                    })
            } catch let error as StoreError {
                refused = error
                break
            }
        }
        #expect(refused?.code == .diskFull, "\(String(describing: refused))")
        #expect(refused?.message.contains("The disk holding the vault \(cli.vault.path) is full") == true)
        let digest = try cli.digest()
        let records = try cli.list().count
        // The command line says so in one sentence, exits 74, and the vault is as it was.
        // Larger than anything the refused batch may have left unused in the WAL (its frames stay allocated and
        // the next writer reuses them), so the disk really has no room for it.
        let r = try cli.run(
            ["add", "statement", "--title", "after", "--body-file", "-"], stdin: String(repeating: "y", count: 400_000))
        #expect(r.status == 74, "\(r.status): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("The disk holding the vault \(cli.vault.path) is full"), "\(r.stderr)")
        #expect(try cli.digest() == digest)
        #expect(try cli.list().count == records)
        #expect(try cli.ok(["verify"]).hasPrefix("ok:"))
    }
}

@Suite struct ReadOnlyStickTests {
    @Test(.enabled(if: TinyDisk.available, "mounting a tmpfs needs root"))
    func aSyncFileOnAReadOnlyMountIsPulledFromOnly() throws {
        let disk = try #require(TinyDisk())
        let scratch = try Scratch()
        let a = scratch.runner("a")
        try a.initialize()
        let invitation = scratch.path("invite.amanat").path
        let code = try a.ok(["invite", "--out", invitation])
        let b = scratch.runner("b")
        _ = try b.ok(["join", invitation, "--code", code, "--kdf", "interactive"])
        let stick = disk.url.appendingPathComponent("team.amanat-sync").path
        _ = try a.ok(["add", "statement", "--title", "carried on a write-protected stick"])
        _ = try a.ok(["sync", "--create", stick])
        _ = try b.ok(["add", "statement", "--title", "stays on b"])
        #expect(try disk.remountReadOnly())
        let before = try Data(contentsOf: URL(fileURLWithPath: stick))
        let r = try b.run(["sync", "--create", stick])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("read-only"), "\(r.stderr)")
        #expect(try b.list().count == 2, "pulled what the stick carried")
        #expect(try Data(contentsOf: URL(fileURLWithPath: stick)) == before, "nothing was written")
    }
}
