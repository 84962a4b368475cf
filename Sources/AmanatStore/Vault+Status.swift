import AmanatCore
import AmanatCrypto
import Foundation
import GRDB

/// What `amanat status` reports.
public struct VaultStatus: Sendable {
    /// This device's id.
    public var device: DeviceID
    /// This device's name.
    public var deviceName: String
    /// Visible records.
    public var records: Int
    /// Envelopes in the log, all devices.
    public var changes: Int
    /// The version vector: for each device, its last seq and head hash.
    public var vector: [DeviceID: ChainHead]
    /// BLAKE2b-256 of the canonical projection (equal on replicas that saw the same changes).
    public var stateDigest: [UInt8]
    /// Devices caught writing two different envelopes at one seq.
    public var forks: [ForkReport]
}

/// Evidence that a device wrote two different envelopes with the same seq.
public struct ForkReport: Hashable, Sendable {
    /// The equivocating device.
    public var device: DeviceID
    /// The seq at which its log forked.
    public var seq: UInt64
    /// Whether a coordinator reviewed and dismissed it (the evidence stays).
    public var dismissed: Bool = false

    /// Creates a report.
    public init(device: DeviceID, seq: UInt64, dismissed: Bool = false) {
        self.device = device
        self.seq = seq
        self.dismissed = dismissed
    }
}

/// Changes of one device that are kept but not applied, and why.
public struct HeldBack: Hashable, Sendable {
    /// The device.
    public var device: DeviceID
    /// Why they are not applied.
    public var reason: HeldReason
    /// How many.
    public var changes: Int
}

/// What `amanat verify` found.
public struct VerifyReport: Sendable {
    /// Devices whose logs were checked.
    public var devices: Int
    /// Envelopes checked.
    public var envelopes: Int
    /// Records rebuilt and compared.
    public var records: Int
    /// Sealed testimonies whose seal was recomputed.
    public var seals: Int
    /// Problems found, one sentence each; empty when all is well.
    public var problems: [String]
    /// Changes kept but not applied (not members, revoked, readers, records they may not create).
    public var heldBack: [HeldBack] = []
    /// Record changes of key epochs this device was not given (after a revocation of this device).
    public var unreadable: Int = 0
    /// Attachments whose every stored chunk was opened and whose SHA-256 was recomputed.
    public var attachments: Int = 0
    /// Chunks not stored here (an attachment not fetched yet, or a chunk removed): incomplete, not wrong.
    public var missingChunks: [ChunkProblem] = []
    /// Changes whose content a coordinator's purge destroyed (their signatures and chains still checked).
    public var purged: Int = 0
    /// Changes stored without content that no purge known here names: a purge not received yet, or a carrier that
    /// stripped them; a later sync with a carrier that has them puts the content back.
    public var withoutContent: Int = 0
    /// Damaged chunk copies set aside here (``ChunkStore/setAside(_:)``): ciphertext kept for inspection, which
    /// `purge` destroys with its chunk.
    public var setAsideChunks: Int = 0
}

extension Vault {
    /// The version vector: each device's last seq and head hash.
    public func versionVector() throws -> [DeviceID: ChainHead] {
        try mapErrors { try database.read { db in try Self.heads(db, table: "envelope") } }
    }

    /// The version vector a sync asks with: the log's heads, and for devices that are not members the heads of
    /// their kept-apart envelopes, so a carrier does not send those again.
    public func syncVector() throws -> [DeviceID: ChainHead] {
        try mapErrors {
            try database.read { db in
                try Self.heads(db, table: "envelope").merging(try Self.heads(db, table: "held")) { log, _ in log }
            }
        }
    }

    /// The statement that reads each device's last seq and hash from `table`, a table keyed by (author, seq): a skip
    /// scan of the primary key, one descent to find the next author and one to its last envelope, so its cost grows
    /// with the number of devices, not of envelopes. A sync asks for it every time; `GROUP BY author` read every
    /// envelope of the vault instead (98 ms an up-to-date sync of 100,000 records, Docs/performance.md).
    ///
    /// The first author is sought above -∞ rather than taken first in order: SQLite sorts a NULL first, and a NULL
    /// author (possible only in a file edited by hand, since the column is NOT NULL, which is also why SQLite drops an
    /// `IS NOT NULL` test) would otherwise end the scan at once and hide every chain. Any other value, number, text or
    /// blob, sorts above -∞, so the scan visits every author `GROUP BY` did.
    package static func chainHeadsSQL(_ table: String) -> String {
        """
        WITH RECURSIVE authors(author) AS (
          SELECT (SELECT author FROM \(table) WHERE author > -9e999 ORDER BY author LIMIT 1)
          UNION ALL
          SELECT (SELECT author FROM \(table) WHERE author > authors.author ORDER BY author LIMIT 1)
          FROM authors WHERE authors.author IS NOT NULL
        )
        SELECT t.author, t.seq, t.hash FROM authors
        JOIN \(table) t ON t.author = authors.author
          AND t.seq = (SELECT MAX(seq) FROM \(table) WHERE author = authors.author)
        """
    }

    /// Each device's last seq and hash in `table` (`envelope` or `held`).
    static func heads(_ db: Database, table: String) throws -> [DeviceID: ChainHead] {
        var vector: [DeviceID: ChainHead] = [:]
        let rows = try Row.fetchAll(db.cachedStatement(sql: chainHeadsSQL(table)))
        for row in rows {
            // A file edited by hand may hold any type in any column: decoded without trapping.
            guard let data = row.storedBlob("author"), let author = try? DeviceID(data) else {
                throw StoreError(.damaged, "The vault is damaged: a stored device id is not 32 bytes.")
            }
            guard let seq = row.storedInteger("seq"), let stored = UInt64(exactly: seq),
                let hash = row.storedBlob("hash")
            else {
                throw StoreError(.damaged, "The vault is damaged: a stored chain head is not a seq and a hash.")
            }
            vector[author] = ChainHead(seq: stored, hash: hash)
        }
        return vector
    }

    /// The forks recorded so far; a fork is dismissed once a coordinator dismissed every conflicting envelope.
    public func forks() throws -> [ForkReport] {
        let rows: [(DeviceID, UInt64, [UInt8])] = try mapErrors {
            try database.read { db in
                try Row.fetchAll(db, sql: "SELECT author, seq, hash FROM fork ORDER BY author, seq").compactMap {
                    guard let device = try? DeviceID(Array($0["author"] as Data)) else { return nil }
                    return (device, UInt64($0["seq"] as Int64), Array($0["hash"] as Data))
                }
            }
        }
        var reports: [ForkReport] = []
        for (device, seq, hash) in rows {
            let dismissed = membership.dismissedForks.contains(.init(device: device, seq: seq, hash: hash))
            if let last = reports.last, last.device == device, last.seq == seq {
                reports[reports.count - 1].dismissed = last.dismissed && dismissed
            } else {
                reports.append(ForkReport(device: device, seq: seq, dismissed: dismissed))
            }
        }
        return reports
    }

    /// The number of envelopes in the log.
    public func changeCount() throws -> Int {
        try mapErrors { try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM envelope") ?? 0 } }
    }

    /// Device, counts, version vector and state digest.
    public func status() throws -> VaultStatus {
        let states = try allStates()
        return VaultStatus(
            device: deviceID, deviceName: keyring.deviceName, records: states.filter(\.isVisible).count,
            changes: try changeCount(), vector: try versionVector(), stateDigest: StateDigest.compute(states),
            forks: try forks())
    }

    /// Checks everything: SQLite integrity, every chain and every signature, every envelope decrypts, the
    /// membership log, the projection equals a replay of the log under the membership rules, and every seal
    /// matches its original content.
    ///
    /// With `settingAsideDamagedChunks` (the `verify` command), an attachment chunk that does not open is set aside
    /// so that the next sync or fetch replaces it (``checkChunks(of:record:settingAside:)``).
    public func verify(settingAsideDamagedChunks: Bool = false) throws -> VerifyReport {
        var problems: [String] = []
        let integrity: [String] = try mapErrors {
            try database.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        }
        if integrity != ["ok"] { problems.append("The database file fails SQLite's integrity check.") }

        var replayed: [RecordID: RecordState] = [:]
        var held: [HeldKey: Int] = [:]
        var unreadable = 0
        var devices = 0
        var envelopes = 0
        var purged = 0
        var withoutContent = 0
        let purgedRecords = purgedRecordIDs()
        // Each column as it is stored: a file edited by hand may hold any type anywhere, and that is damage to
        // report, never a value to convert or a trap.
        let rows: [(author: [UInt8]?, seq: Int64?, hash: [UInt8]?, body: [UInt8]?)] = try mapErrors {
            try database.read { db in
                try Row.fetchAll(db, sql: "SELECT author, seq, hash, body FROM envelope ORDER BY author, seq").map {
                    ($0.storedBlob("author"), $0.storedInteger("seq"), $0.storedBlob("hash"), $0.storedBlob("body"))
                }
            }
        }
        var index = 0
        while index < rows.count {
            let stored = rows[index].author
            let author = stored ?? []
            var run: [Envelope] = []
            var broken = false
            while index < rows.count, rows[index].author == stored {
                let row = rows[index]
                index += 1
                guard !broken else { continue }
                guard let body = row.body, let envelope = try? Envelope(decoding: body),
                    envelope.header.author.bytes == author, let seq = row.seq,
                    envelope.header.seq == UInt64(exactly: seq), envelope.hash == row.hash
                else {
                    problems.append(
                        "Change \(row.seq.map(String.init) ?? "?") of device \(Hex.encode(author).prefix(12)) is damaged in the database."
                    )
                    broken = true
                    continue
                }
                run.append(envelope)
            }
            devices += 1
            envelopes += run.count
            do {
                _ = try ChainVerifier.verifyRun(run[...], vaultID: vaultID, after: .empty)
            } catch let error as CoreError {
                problems.append(error.message)
                continue
            }
            // Ingest checks one signature per run (Protocol/envelope.md §6); verify checks every one.
            for envelope in run where !envelope.hasValidSignature() {
                problems.append(
                    "The signature on change \(envelope.header.seq) of device \(deviceLabel(envelope.header.author)) is forged or damaged."
                )
            }
            for envelope in run {
                if envelope.isPurged {
                    if membership.isPurged(envelope) { purged += 1 } else { withoutContent += 1 }
                    continue
                }
                if envelope.isAuthority {
                    // Signed and chained, but its author's garbage: it has no effect, and is held back as evidence.
                    if (try? envelope.openEntry()) == nil {
                        held[HeldKey(device: envelope.header.author, reason: .undecryptable), default: 0] += 1
                    }
                    continue
                }
                guard let key = key(epoch: envelope.header.keyEpoch) else {
                    unreadable += 1
                    continue
                }
                do {
                    let authored = try envelope.openAuthored(with: key)
                    if membership.isPurged(envelope) {
                        problems.append(
                            "Change \(envelope.header.seq) of device \(deviceLabel(envelope.header.author)) still holds content a purge destroyed."
                        )
                        continue
                    }
                    guard !purgedRecords.contains(authored.change.record) else { continue }
                    if let reason = heldReason(authored) {
                        held[HeldKey(device: authored.author, reason: reason), default: 0] += 1
                        continue
                    }
                    replayed[authored.change.record, default: RecordState(id: authored.change.record)].apply(authored)
                } catch {
                    // The hash and signature matched above, so its author sealed it this way: evidence, not damage.
                    held[HeldKey(device: envelope.header.author, reason: .undecryptable), default: 0] += 1
                }
            }
        }

        var stored: [RecordID: RecordState] = [:]
        do {
            for state in try allStates() { stored[state.id] = state }
        } catch let error as StoreError {
            problems.append(error.message)
        }
        if problems.isEmpty {
            for (id, state) in replayed where stored[id] != state {
                problems.append("Record \(id.hex.prefix(12)) in the projection does not match its history.")
            }
            for id in stored.keys where replayed[id] == nil {
                problems.append("Record \(id.hex.prefix(12)) in the projection has no history.")
            }
        }
        var seals = 0
        for state in replayed.values {
            guard let seal = state.seal else { continue }
            seals += 1
            if let problem = try checkSeal(of: state, seal: seal) { problems.append(problem) }
        }
        // An imported record's kept original envelopes must still prove what `history` shows of them.
        for state in Array(replayed.values).sortedByID() {
            guard let origin = state.origin else { continue }
            let custody = CustodyReport(origin: origin, items: state.custody)
            let importing = try? history(of: state).first {
                $0.change.author == origin.op.device && $0.change.seq == origin.op.seq
            }
            for problem in custody.problems + (importing.map { custody.problems(ofImport: $0.change.change) } ?? []) {
                problems.append("Record \(state.id.hex.prefix(12)), imported: \(problem)")
            }
        }
        // Attachments: every stored chunk must open as the chunk its signed address names (Protocol/attachments.md §7).
        var attachmentsChecked = 0
        var missingChunks: [ChunkProblem] = []
        if problems.isEmpty {
            for problem in try attachmentProblems(Array(replayed.values), settingAside: settingAsideDamagedChunks) {
                if problem.problem == "missing" {
                    missingChunks.append(problem)
                } else if problem.position == 0 {
                    problems.append(
                        "Record \(problem.record.hex.prefix(12)), attachment \(problem.attachment.prefix(12)): its chunks open but their content does not match the signed SHA-256."
                    )
                } else {
                    problems.append(
                        "Record \(problem.record.hex.prefix(12)), attachment \(problem.attachment.prefix(12)): chunk \(problem.position) of \(problem.total) is \(problem.problem)"
                            + (problem.setAside
                                ? "; it was set aside and counts as missing until a sync or `amanat fetch` brings a good copy."
                                : ".")
                    )
                }
            }
            attachmentsChecked = replayed.values.reduce(0) { $0 + $1.allAttachments.count }
        }
        for fork in try forks() where !fork.dismissed {
            problems.append(
                "Device \(deviceLabel(fork.device)) forked its log at change \(fork.seq): it signed two different changes."
            )
        }
        for (key, count) in try keptApartCounts() {
            held[HeldKey(device: key, reason: .notMember), default: 0] += count
        }
        let heldBack = held.map { HeldBack(device: $0.key.device, reason: $0.key.reason, changes: $0.value) }
            .sorted { ($0.device, $0.reason.rawValue) < ($1.device, $1.reason.rawValue) }
        return VerifyReport(
            devices: devices, envelopes: envelopes, records: replayed.count, seals: seals, problems: problems,
            heldBack: heldBack, unreadable: unreadable, attachments: attachmentsChecked, missingChunks: missingChunks,
            purged: purged, withoutContent: withoutContent, setAsideChunks: chunkStore.setAsideCount())
    }

    private struct HeldKey: Hashable {
        var device: DeviceID
        var reason: HeldReason
    }

    /// Kept-apart envelopes (of devices that are not members), per device.
    public func keptApartCounts() throws -> [DeviceID: Int] {
        try mapErrors {
            try database.read { db in
                var counts: [DeviceID: Int] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT author, COUNT(*) AS n FROM held GROUP BY author") {
                    guard let device = try? DeviceID(Array(row["author"] as Data)) else { continue }
                    counts[device] = row["n"]
                }
                return counts
            }
        }
    }

    /// Recomputes a seal from the change that made it; returns a problem sentence if it does not match.
    func checkSeal(of state: RecordState, seal: SealInfo) throws -> String? {
        guard let envelope = try? envelope(author: seal.op.device, seq: seal.op.seq),
            let key = key(epoch: envelope.header.keyEpoch),
            let change = try? envelope.open(with: key)
        else { return "The sealing change of record \(state.id.hex.prefix(12)) is missing or damaged." }
        var kind = ""
        var fields: [(String, String)] = []
        for op in change.operations {
            switch op {
            case .create(let k): kind = k
            case .set(let f, let v, _): fields.append((f, v))
            default: break
            }
        }
        if RecordState.sealHash(kind: kind, fields: fields) != seal.contentHash {
            return "The seal of testimony \(state.id.hex.prefix(12)) does not match its original content."
        }
        return nil
    }
}
