import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation
import GRDB
import Testing
import AmanatTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Attachments through every carrier: a sync file and the relay, interrupted and resumed.
@Suite(.serialized) struct AttachmentSyncTests {
    func pair(_ scratch: Scratch) throws -> (CLIRunner, CLIRunner, String) {
        let a = scratch.runner("a")
        try a.initialize(name: "field laptop")
        let id = try a.ok(["add", "testimony", "--witness", "W-017", "--narrative-file", samplePath])
        return (a, try scratch.join("b", invitedBy: a, deviceName: "office laptop"), id)
    }

    /// The number in "N chunks pushed" / "N chunks pulled" of a sync's stderr.
    func count(_ word: String, in stderr: String) -> Int? {
        guard let line = stderr.split(separator: "\n").first(where: { $0.hasPrefix("Attachments: ") }) else {
            return nil
        }
        let pattern = word == "pulled" ? #"([0-9]+) chunks? pulled"# : #"([0-9]+) pushed"#
        guard let range = line.range(of: pattern, options: .regularExpression) else { return nil }
        return Int(line[range].split(separator: " ").first ?? "")
    }

    @Test func twoHundredMiBTravelByteIdenticalThroughASyncFileAndTheRelayWithNoPlaintextStored() throws {
        let scratch = try Scratch()
        let (a, b, id) = try pair(scratch)
        let size = 200 * 1_048_576 + 4321
        let media = TestMedia.make(size: size, seed: TestMedia.seed("200MiB"))
        let file = scratch.path("recording.bin")
        try TestMedia.write(media, to: file)
        let attachment = try a.ok(["attach", id, file.path])

        // Through a sync file.
        let stick = scratch.path("team.amanat-sync").path
        let push = try a.run(["sync", stick, "--create"])
        #expect(push.status == 0 && count("pushed", in: push.stderr) == 201, "\(push.stderr)")
        let pull = try b.run(["sync", stick])
        #expect(pull.status == 0 && count("pulled", in: pull.stderr) == 201, "\(pull.stderr)")
        let out = scratch.path("out.bin")
        _ = try b.ok(["extract", id, attachment, "--out", out.path])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))
        try FileManager.default.removeItem(at: out)

        // Through the relay, to a third device.
        let relayData = scratch.path("relay")
        let relay = try ServeProcess(data: relayData)
        let sent = try a.run(["sync", relay.url])
        #expect(sent.status == 0 && count("pushed", in: sent.stderr) == 201, "\(sent.stderr)")
        let invitation = scratch.path("invite-c.amanat").path
        let code = try a.ok(["invite", "--out", invitation])
        _ = try a.ok(["sync", relay.url])
        let c = scratch.runner("c")
        _ = try c.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "third"])
        let got = try c.run(["sync", relay.url])
        #expect(got.status == 0 && count("pulled", in: got.stderr) == 201, "\(got.stderr)")
        _ = try c.ok(["extract", id, attachment, "--out", out.path])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))
        try FileManager.default.removeItem(at: out)
        _ = relay.stop()

        let leaks =
            TestMedia.leaks(in: [a.vault, b.vault, c.vault, URL(fileURLWithPath: stick + ".chunks"), relayData])
            + TestMedia.leaks(in: [scratch.path("team.amanat-sync")])
        #expect(leaks.isEmpty, "plaintext in \(leaks)")
    }

    @Test func killedSyncsAndARelayRestartSendOnlyTheMissingChunks() throws {
        let scratch = try Scratch()
        let (a, b, id) = try pair(scratch)
        let chunks = 48
        let media = TestMedia.make(size: chunks * 1_048_576, seed: TestMedia.seed("killedSyncs"))
        let file = scratch.path("recording.bin")
        try TestMedia.write(media, to: file)
        let attachment = try a.ok(["attach", id, file.path])

        // A sync to a stick, killed after some chunks are on it: the rerun sends exactly the others.
        let stick = scratch.path("team.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create", "--no-attachments"])
        let stickChunks = URL(fileURLWithPath: stick + ".chunks")
        let toStick = try Background(a, ["sync", stick])
        #expect(toStick.kill(when: { TestMedia.chunkFiles(stickChunks) >= 3 }))
        let there = TestMedia.chunkFiles(stickChunks)
        #expect(there >= 3 && there < chunks, "\(there) chunks on the stick when killed")
        let resumed = try a.run(["sync", stick])
        #expect(resumed.status == 0 && count("pushed", in: resumed.stderr) == chunks - there, "\(resumed.stderr)")

        // A pull from the stick, killed: the rerun pulls exactly the others.
        let bChunks = b.vault.appendingPathComponent("chunks")
        let fromStick = try Background(b, ["sync", stick])
        #expect(fromStick.kill(when: { TestMedia.chunkFiles(bChunks) >= 3 }))
        let have = TestMedia.chunkFiles(bChunks)
        #expect(have >= 3 && have < chunks, "\(have) chunks pulled when killed")
        let pulled = try b.run(["sync", stick])
        #expect(pulled.status == 0 && count("pulled", in: pulled.stderr) == chunks - have, "\(pulled.stderr)")
        let out = scratch.path("b.bin")
        _ = try b.ok(["extract", id, attachment, "--out", out.path])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))

        // A push to the relay, killed mid-way; then a pull by another device during which the relay is killed
        // and restarted on the same data: each rerun sends only the missing chunks.
        let relayData = scratch.path("relay")
        var relay = try ServeProcess(data: relayData)
        _ = try a.ok(["sync", relay.url, "--no-attachments"])
        let relayChunks = relayData.appendingPathComponent(try vaultHex(a) + ".chunks")
        let toRelay = try Background(a, ["sync", relay.url])
        #expect(toRelay.kill(when: { TestMedia.chunkFiles(relayChunks) >= 3 }))
        let onRelay = TestMedia.chunkFiles(relayChunks)
        #expect(onRelay >= 3 && onRelay < chunks, "\(onRelay) chunks on the relay when killed")
        let again = try a.run(["sync", relay.url])
        #expect(again.status == 0 && count("pushed", in: again.stderr) == chunks - onRelay, "\(again.stderr)")

        let invitation = scratch.path("invite-c.amanat").path
        let code = try a.ok(["invite", "--out", invitation])
        _ = try a.ok(["sync", relay.url])
        let c = scratch.runner("c")
        _ = try c.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "third"])
        _ = try c.ok(["sync", relay.url, "--no-attachments"])
        let cChunks = c.vault.appendingPathComponent("chunks")
        let fromRelay = try Background(c, ["sync", relay.url])
        let stopped = fromRelay.killRelay(relay, when: { TestMedia.chunkFiles(cChunks) >= 3 })
        #expect(stopped)
        let cHave = TestMedia.chunkFiles(cChunks)
        #expect(cHave >= 3 && cHave < chunks, "\(cHave) chunks pulled when the relay stopped")
        relay = try ServeProcess(data: relayData)
        let after = try c.run(["sync", relay.url])
        #expect(after.status == 0 && count("pulled", in: after.stderr) == chunks - cHave, "\(after.stderr)")
        _ = try c.ok(["extract", id, attachment, "--out", scratch.path("c.bin").path])
        #expect(Bytes(try Data(contentsOf: scratch.path("c.bin"))) == Bytes(media))
        _ = relay.stop()
    }

    @Test func aRelayQuotaAnswers507AndTheClientSaysWhatIsLeft() throws {
        let scratch = try Scratch()
        let (a, _, id) = try pair(scratch)
        let media = TestMedia.make(size: 5 * 1_048_576, seed: TestMedia.seed("quota"))
        let file = scratch.path("recording.bin")
        try TestMedia.write(media, to: file)
        _ = try a.ok(["attach", id, file.path])
        let relayData = scratch.path("relay")
        // `3MiB` (as `3M` and `3MB`) is 3 × 2²⁰ bytes, as the message below says.
        let relay = try ServeProcess(data: relayData, extra: ["--quota", "3MiB"])
        let r = try a.run(["sync", relay.url])
        #expect(r.status == 74, "\(r.stderr)")
        #expect(r.stderr.contains("reached the relay's quota of 3 MiB"), "\(r.stderr)")
        #expect(r.stderr.contains("3 attachment chunks") && r.stderr.contains("could not be written"), "\(r.stderr)")
        #expect(TestMedia.chunkFiles(relayData.appendingPathComponent(try vaultHex(a) + ".chunks")) == 2)
        let (_, log) = relay.stop()
        #expect(!log.contains("W-017"))
        // A quota below a MiB is stated in bytes, not as "0 MiB".
        let small = try ServeProcess(data: scratch.path("small-relay"), extra: ["--quota", "500k"])
        let refused = try a.run(["sync", small.url])
        #expect(refused.status == 74, "\(refused.stderr)")
        #expect(refused.stderr.contains("reached the relay's quota of 512000 bytes"), "\(refused.stderr)")
        _ = small.stop()
        for (quota, sentence) in [
            ("lots", "--quota takes a size"), ("1.5G", "--quota takes a size"), ("3MiBB", "--quota takes a size"),
            ("0", "--quota 0 would refuse every record and attachment"),
        ] {
            let bad = try a.run(["serve", "--quota", quota, "--data", relayData.path], withVault: false)
            #expect(bad.status == 64 && bad.stderr.hasPrefix("amanat: ") && bad.stderr.contains(sentence), "\(quota)")
            #expect(bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")
        }
    }

    /// `--quota` bounds a vault's records too: a member's sync whose changes would pass it stores none of them, still
    /// pulls, and ends with exit 74 and one sentence; the relay's log and storage never see the refused text.
    @Test func aRelayQuotaRefusesAMembersRecordsPastItAndTheSyncStillPulls() throws {
        let scratch = try Scratch()
        let (a, b, id) = try pair(scratch)
        let relayData = scratch.path("relay")
        let relay = try ServeProcess(data: relayData, extra: ["--quota", "64k"])
        _ = try a.ok(["sync", relay.url])
        let long = scratch.path("long.txt")
        try Data(Hex.encode(Sodium.randomBytes(50_000)).utf8).write(to: long)
        let record = try b.ok(["add", "testimony", "--witness", "W-QUOTA-9", "--narrative-file", long.path])
        let media = scratch.path("photo.bin")
        try TestMedia.write(TestMedia.make(size: 200_000, seed: TestMedia.seed("records quota")), to: media)
        _ = try b.ok(["attach", record, media.path])
        let r = try b.run(["sync", relay.url])
        #expect(r.status == 74, "\(r.stderr)")
        #expect(
            r.stderr.contains("This vault's records on the relay have reached the relay's quota of 65536 bytes"),
            "\(r.stderr)")
        #expect(r.stderr.contains("were not sent (kept in this vault, for the next sync)"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").filter { $0.hasPrefix("amanat: ") }.count == 1, "\(r.stderr)")
        // Its media did not fit either: said as a warning beside the one failure, never "all the text got there".
        #expect(r.stderr.contains("1 attachment chunk (") && r.stderr.contains("either"), "\(r.stderr)")
        #expect(!r.stderr.contains("all the text got there"), "\(r.stderr)")
        #expect(try b.ok(["show", id]).contains("W-017"), "the pull stopped with the push")
        let (_, log) = relay.stop()
        #expect(!log.contains("W-QUOTA-9"))
        let held = try FileManager.default.contentsOfDirectory(atPath: relayData.path).filter { $0.hasSuffix(".relay") }
        #expect(held.count == 1)
        let pool = try DatabaseQueue(path: relayData.appendingPathComponent(held[0]).path)
        let bytes = try pool.read { try Int.fetchOne($0, sql: "SELECT COALESCE(SUM(length(body)), 0) FROM envelope") }
        #expect((bytes ?? 0) < 65536, "the refused record was stored")
    }

    func vaultHex(_ cli: CLIRunner) throws -> String {
        let vault = try Vault.open(at: cli.vault, passphrase: SecureBytes(Array(cli.passphrase.utf8)))
        return Hex.encode(vault.vaultID)
    }
}

extension Background {
    /// Waits (at most `seconds`) until `condition` holds, then kills the relay with SIGKILL and waits for this
    /// command to give up. Returns whether the condition was seen while this command still ran.
    func killRelay(_ relay: ServeProcess, when condition: () -> Bool, within seconds: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var seen = false
        while Date() < deadline {
            if condition() {
                seen = process.isRunning
                break
            }
            if !process.isRunning { break }
            usleep(2000)
        }
        Glibc.kill(relay.process.processIdentifier, SIGKILL)
        relay.process.waitUntilExit()
        let end = Date().addingTimeInterval(120)
        while process.isRunning && Date() < end { usleep(10_000) }
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return seen
    }
}
