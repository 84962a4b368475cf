import AmanatCore
import AmanatCrypto
import Foundation
import GRDB

/// What one ingested batch did.
public struct IngestResult: Sendable, Equatable {
    /// Envelopes that were new and are now in the vault.
    public var applied: Int = 0
    /// Envelopes the vault already had (idempotence).
    public var duplicates: Int = 0
    /// Forks found in this batch: a device signed two different envelopes with one seq.
    public var forks: [ForkReport] = []

    /// An empty result.
    public init() {}
}

extension Vault {
    /// Verifies and applies envelopes from another replica in one transaction (Protocol/sync.md §3).
    ///
    /// Per author, envelopes already held are skipped when identical; a different envelope at a held seq is a
    /// fork: it is recorded (if its signature is genuine) and that author's remaining envelopes in the batch are
    /// refused, while other authors still sync. Otherwise each author's run must continue its chain, carry this
    /// vault's id and a known key epoch, pass the run's signature check and decrypt. Any such failure throws and
    /// the whole batch is rolled back, leaving the vault as it was.
    @discardableResult
    public func ingest(_ envelopes: [Envelope]) throws -> IngestResult {
        guard !envelopes.isEmpty else { return IngestResult() }
        var byAuthor: [DeviceID: [Envelope]] = [:]
        for envelope in envelopes {
            guard envelope.header.vaultID == vaultID else {
                throw StoreError(.rejected, "Refused: the data belongs to another vault.")
            }
            byAuthor[envelope.header.author, default: []].append(envelope)
        }
        return try mapErrors {
            try database.write { db in
                var result = IngestResult()
                var states: [RecordID: RecordState] = [:]
                var clock = try loadClock(db)
                for author in byAuthor.keys.sorted() {
                    let run = byAuthor[author]!.sorted { $0.header.seq < $1.header.seq }
                    let head = try head(db, author: author)
                    var fresh: [Envelope] = []
                    var forked = false
                    for envelope in run {
                        if envelope.header.seq <= head.seq {
                            let held = try Data.fetchOne(
                                db.cachedStatement(sql: "SELECT hash FROM envelope WHERE author = ? AND seq = ?"),
                                arguments: [Data(author.bytes), Int64(envelope.header.seq)])
                            if held.map(Array.init) == envelope.hash {
                                result.duplicates += 1
                                continue
                            }
                            try recordFork(db, envelope, into: &result)
                            forked = true
                            break
                        }
                        if let last = fresh.last, last.header.seq == envelope.header.seq {
                            if last.hash == envelope.hash { continue }
                            try recordFork(db, envelope, into: &result)
                            forked = true
                            break
                        }
                        fresh.append(envelope)
                    }
                    if forked || fresh.isEmpty { continue }
                    do {
                        _ = try ChainVerifier.verifyRun(fresh[...], vaultID: vaultID, after: head)
                    } catch let error as CoreError {
                        if error.code == .brokenChain, fresh.first?.header.seq == head.seq + 1,
                            fresh.first?.header.previousHash != head.hash, fresh.first?.hasValidSignature() == true
                        {
                            // A genuine envelope that does not follow our head: the author forked before it.
                            try recordFork(db, fresh[0], into: &result)
                            continue
                        }
                        throw StoreError(.rejected, "Refused: \(error.message)")
                    }
                    for envelope in fresh {
                        guard let key = keyring.key(epoch: envelope.header.keyEpoch) else {
                            throw StoreError(
                                .rejected,
                                "Refused: a change uses key epoch \(envelope.header.keyEpoch), which this device does not have."
                            )
                        }
                        let authored: AuthoredChange
                        do {
                            authored = try envelope.openAuthored(with: key)
                        } catch let error as CoreError {
                            throw StoreError(.rejected, "Refused: \(error.message)")
                        }
                        try insertEnvelope(db, envelope)
                        let id = authored.change.record
                        if states[id] == nil { states[id] = try loadState(db, id: id) ?? RecordState(id: id) }
                        states[id]!.apply(authored)
                        clock.observe(authored.change.timestamp, wallMillis: wallClock())
                        result.applied += 1
                    }
                }
                for state in states.values { try saveState(db, state) }
                if result.applied > 0 { try saveClock(db, clock) }
                return result
            }
        }
    }

    /// Records a fork if the conflicting envelope is genuinely signed by its author; a forged one is refused.
    private func recordFork(_ db: Database, _ envelope: Envelope, into result: inout IngestResult) throws {
        guard envelope.header.vaultID == vaultID, envelope.hasValidSignature() else {
            throw StoreError(
                .rejected,
                "Refused: change \(envelope.header.seq) of device \(envelope.header.author.hex.prefix(12)) differs from the one this vault holds and its signature is forged."
            )
        }
        try db.execute(
            sql: "INSERT OR IGNORE INTO fork(author, seq, hash, body) VALUES (?, ?, ?, ?)",
            arguments: [
                Data(envelope.header.author.bytes), Int64(envelope.header.seq), Data(envelope.hash),
                Data(envelope.encoded()),
            ])
        result.forks.append(ForkReport(device: envelope.header.author, seq: envelope.header.seq))
    }

    /// Up to `limit` of this vault's envelopes of `author` with seq greater than `seq`, in seq order.
    public func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) throws -> [Envelope] {
        let bodies: [Data] = try mapErrors {
            try database.read { db in
                try Data.fetchAll(
                    db, sql: "SELECT body FROM envelope WHERE author = ? AND seq > ? ORDER BY seq LIMIT ?",
                    arguments: [Data(author.bytes), Int64(seq), limit])
            }
        }
        return try bodies.map { body in
            do {
                return try Envelope(decoding: Array(body))
            } catch {
                throw StoreError(
                    .damaged, "The vault is damaged: a stored envelope does not decode. Run `amanat verify`.")
            }
        }
    }
}
