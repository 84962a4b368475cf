import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation

/// One chunk as a carrier is asked about it: its address and the length its sealed form must have.
public struct ChunkRef: Hashable, Sendable {
    /// The chunk's address (32 bytes).
    public var address: [UInt8]
    /// The length of its sealed form (plaintext length + ``ChunkKeys/overhead``).
    public var sealedLength: Int

    /// Creates a reference.
    public init(address: [UInt8], sealedLength: Int) {
        self.address = address
        self.sealedLength = sealedLength
    }
}

/// A carrier that also holds attachment chunks, as opaque sealed blobs named by address (Protocol/attachments.md §8).
public protocol ChunkCarrier: Sendable {
    /// Of `chunks`, the addresses the carrier holds with the given sealed length.
    func heldChunks(_ chunks: [ChunkRef]) async throws -> Set<[UInt8]>
    /// The sealed chunk of `address`, or nil if the carrier does not hold it.
    func chunk(_ address: [UInt8]) async throws -> [UInt8]?
    /// Stores a sealed chunk.
    func storeChunk(_ address: [UInt8], sealed: [UInt8]) async throws
    /// Asks the carrier to drop `copy`, the bytes it gave for `address`, which are damaged on their own terms (they
    /// do not open as the chunk of that address under any vault key this device holds): while it keeps them it says
    /// it holds the address, and no member would send it the good copy. Returns whether the carrier dropped them;
    /// false when it cannot (a read-only stick, a relay of an earlier release) or holds other bytes by now.
    func discardDamaged(_ address: [UInt8], copy: [UInt8]) async -> Bool
}

/// A carrier that has no room left for another chunk (a full stick, a relay's quota: 507).
public struct CarrierFullError: Error, Sendable {
    /// The carrier's own sentence.
    public var message: String

    /// Creates the error.
    public init(message: String) { self.message = message }
}

/// Which attachments a chunk sync moves.
public struct ChunkSyncOptions: Sendable {
    /// Attachments larger than this many bytes are left for later (`sync --max-attachment-size`); nil: no limit.
    public var maximumAttachmentSize: UInt64?
    /// Only the attachments of these records (`fetch`); nil: every record.
    public var records: Set<RecordID>?
    /// Whether chunks this device holds are sent to the carrier.
    public var push = true

    /// Every attachment, both ways.
    public init(maximumAttachmentSize: UInt64? = nil, records: Set<RecordID>? = nil, push: Bool = true) {
        self.maximumAttachmentSize = maximumAttachmentSize
        self.records = records
        self.push = push
    }
}

/// What a chunk sync did, and what is still missing.
public struct ChunkSyncReport: Sendable, Equatable {
    /// Chunks the vault's attachments name (within the selection), each address once.
    public var chunks = 0
    /// Chunks received, verified and stored.
    public var pulled = 0
    /// Their sealed bytes.
    public var pulledBytes: UInt64 = 0
    /// Chunks sent to the carrier.
    public var pushed = 0
    /// Their sealed bytes.
    public var pushedBytes: UInt64 = 0
    /// Chunks the carrier offered that did not open as the chunk their address names: not stored.
    public var refused = 0
    /// Of those, the ones damaged on their own terms that the carrier dropped when asked, so that a device holding
    /// a good copy sends it again (``ChunkCarrier/discardDamaged(_:copy:)``).
    public var discardedOnCarrier = 0
    /// Attachments left out by the size limit.
    public var skippedAttachments = 0
    /// Of those, the ones not complete on this device.
    public var skippedIncomplete = 0
    /// Chunks this device held that did not authenticate when it was about to send them: not sent, set aside
    /// (``ChunkStore/setAside(_:)``) and counted as missing, so a carrier holding a good copy gives it back.
    public var damaged = 0
    /// Attachments not complete on this device after the sync.
    public var incompleteAttachments = 0
    /// Chunks still missing on this device, and their plaintext bytes.
    public var missingChunks = 0
    /// Plaintext bytes of the missing chunks.
    public var missingBytes: UInt64 = 0
    /// Set when the carrier ran out of space: the chunks that could not be written and their sealed bytes.
    public var carrierFull: (chunks: Int, bytes: UInt64)?
    /// The carrier's sentence when it ran out of space.
    public var fullReason: String?

    /// An empty report.
    public init() {}

    public static func == (a: ChunkSyncReport, b: ChunkSyncReport) -> Bool {
        a.pulled == b.pulled && a.pushed == b.pushed && a.refused == b.refused && a.missingChunks == b.missingChunks
            && a.damaged == b.damaged
            && a.pulledBytes == b.pulledBytes && a.pushedBytes == b.pushedBytes
            && a.carrierFull?.chunks == b.carrierFull?.chunks
    }
}

/// Moves attachment chunks between a vault and a carrier, after the text (Protocol/attachments.md §8): pulls every
/// chunk the vault's attachments name that it lacks and the carrier holds (each is opened with the chunk keys before
/// it is stored), then pushes every chunk it holds that the carrier lacks. Each chunk is stored atomically on either
/// side, so an interrupted sync keeps every whole chunk and the next run moves only the missing ones.
public struct ChunkSync {
    /// The vault.
    public let vault: Vault
    /// The carrier.
    public let carrier: any ChunkCarrier
    /// What to move.
    public var options: ChunkSyncOptions
    /// Chunks asked about per query.
    public var batchSize = 256

    /// Creates a chunk sync.
    public init(vault: Vault, carrier: any ChunkCarrier, options: ChunkSyncOptions = ChunkSyncOptions()) {
        self.vault = vault
        self.carrier = carrier
        self.options = options
    }

    /// A chunk an attachment lists, with what opening or checking it needs: the keys of the attachment's epoch and
    /// its plaintext length.
    struct Listed {
        var ref: ChunkRef
        var keys: ChunkKeys
        var length: Int
    }

    /// Runs the chunk sync; `progress` gets (chunks done, chunks to do) after each chunk.
    public nonisolated(nonsending) func run(progress: (Int, Int) -> Void = { _, _ in }) async throws
        -> ChunkSyncReport
    {
        var report = ChunkSyncReport()
        // Every distinct way the attachments list each address (its length and key epoch): a member can sign an
        // `attach` that lists another's chunk with another length or epoch, and that listing must not hide the
        // chunk from the attachments that list it rightly (a query with its length only would find it nowhere).
        var listings: [String: [Listed]] = [:]
        var order: [String] = []
        let store = vault.chunkStore
        store.sweepTemporaryFiles()
        for state in try vault.allStates().sortedByID() {
            if let records = options.records, !records.contains(state.id) { continue }
            for info in state.allAttachments {
                if let limit = options.maximumAttachmentSize, info.size > limit {
                    report.skippedAttachments += 1
                    let presence = try vault.presence(of: info)
                    if presence.present < presence.total { report.skippedIncomplete += 1 }
                    continue
                }
                guard let keys = vault.chunkKeys(epoch: info.epoch) else { continue }
                for (index, address) in try vault.chunkAddresses(of: info).enumerated() {
                    let length = AttachmentSpec.chunkLength(index: index, size: info.size, chunkSize: info.chunkSize)
                    let ref = ChunkRef(address: address, sealedLength: length + ChunkKeys.overhead)
                    let hex = Hex.encode(address)
                    let listed = Listed(ref: ref, keys: keys, length: length)
                    if listings[hex] == nil { order.append(hex) }
                    if !(listings[hex] ?? []).contains(where: { $0.length == length && $0.keys.epoch == keys.epoch }) {
                        listings[hex, default: []].append(listed)
                    }
                }
            }
        }
        // Held: stored here at the length one of its listings gives it; missing otherwise, with every listing.
        var missing: [String: [Listed]] = [:]
        var held: [String: Listed] = [:]
        for hex in order {
            let list = listings[hex] ?? []
            guard let first = list.first else { continue }
            let stored = store.storedLength(first.ref.address)
            if let match = list.first(where: { $0.ref.sealedLength == stored }) {
                held[hex] = match
            } else {
                missing[hex] = list
            }
        }
        let total = missing.count + held.count
        report.chunks = total
        var done = 0
        // Pull: what the vault lacks and the carrier holds, each chunk opened before it is stored.
        let wanted = missing.keys.sorted()
        var carrierDrops = true
        for start in stride(from: 0, to: wanted.count, by: batchSize) {
            let batch = wanted[start..<min(start + batchSize, wanted.count)].compactMap { missing[$0] }
            // Asked at every length listed; the carrier answers the addresses it holds at one of them.
            let there = try await carrier.heldChunks(batch.flatMap { $0.map(\.ref) })
            for list in batch {
                guard let address = list.first?.ref.address, there.contains(address) else { continue }
                guard let sealed = try await carrier.chunk(address) else { continue }
                // Whole when it opens as one of its listings says, or as the chunk of its address at its own length
                // under some vault key held here (the evidence of the attachments that list it rightly): stored.
                let whole =
                    list.contains { listed in
                        if case .success = listed.keys.open(sealed, address: address, length: listed.length) {
                            return true
                        }
                        return false
                    } || vault.opensOnItsOwnTerms(sealed, address: address)
                if whole {
                    if try store.write(address, sealed: sealed) {
                        report.pulled += 1
                        report.pulledBytes += UInt64(sealed.count)
                    }
                } else {
                    report.refused += 1
                    // Damaged on its own terms, it would stay in the good copy's place on the carrier for good.
                    // A carrier that could not drop one (read-only, an earlier relay, no answer) is not asked again
                    // in this sync: each question to a relay that does not answer costs up to 30 s.
                    if carrierDrops {
                        if await carrier.discardDamaged(address, copy: sealed) {
                            report.discardedOnCarrier += 1
                        } else {
                            carrierDrops = false
                        }
                    }
                }
                done += 1
                progress(done, total)
            }
        }
        // Push: what the carrier lacks of what the vault holds.
        if options.push {
            let mine = held.keys.sorted()
            var full = false
            var unsent = 0
            var unsentBytes: UInt64 = 0
            for start in stride(from: 0, to: mine.count, by: batchSize) {
                let batch = mine[start..<min(start + batchSize, mine.count)].compactMap { held[$0] }
                let there = full ? [] : try await carrier.heldChunks(batch.map(\.ref))
                for chunk in batch where !there.contains(chunk.ref.address) {
                    let ref = chunk.ref
                    if full {
                        unsent += 1
                        unsentBytes += UInt64(ref.sealedLength)
                        continue
                    }
                    guard let sealed = try store.read(ref.address) else { continue }
                    // A chunk damaged on this disk would take the carrier's place for its address for good. One
                    // that fails only this attachment's expectation (another member listed it with another length
                    // or epoch) is still whole, and still the evidence of the attachments it belongs to: it goes.
                    if !chunk.keys.authenticates(sealed, address: ref.address, length: chunk.length),
                        vault.isDamagedOnItsOwnTerms(sealed, address: ref.address)
                    {
                        try store.setAside(ref.address)
                        report.damaged += 1
                        done += 1
                        progress(done, total)
                        continue
                    }
                    do {
                        try await carrier.storeChunk(ref.address, sealed: sealed)
                        report.pushed += 1
                        report.pushedBytes += UInt64(sealed.count)
                    } catch let error as CarrierFullError {
                        report.fullReason = error.message
                        full = true
                        unsent += 1
                        unsentBytes += UInt64(ref.sealedLength)
                    }
                    done += 1
                    progress(done, total)
                }
            }
            if full { report.carrierFull = (unsent, unsentBytes) }
        }
        // What is still missing here, as `status` counts it: each listing's chunk at the length it gives (a listing
        // of another length than the chunk's stays missing, and its attachment incomplete).
        var lacking: Set<String> = []
        for hex in order {
            guard let list = listings[hex], let first = list.first else { continue }
            let stored = store.storedLength(first.ref.address)
            for listed in list where listed.ref.sealedLength != stored {
                guard lacking.insert("\(hex):\(listed.length)").inserted else { continue }
                report.missingChunks += 1
                report.missingBytes += UInt64(listed.length)
            }
        }
        if !lacking.isEmpty {
            // Count the attachments that still lack a chunk.
            for state in try vault.allStates() {
                if let records = options.records, !records.contains(state.id) { continue }
                for info in state.allAttachments {
                    if let limit = options.maximumAttachmentSize, info.size > limit { continue }
                    let addresses = try vault.chunkAddresses(of: info)
                    let incomplete = addresses.enumerated().contains { index, address in
                        let length = AttachmentSpec.chunkLength(
                            index: index, size: info.size, chunkSize: info.chunkSize)
                        return lacking.contains("\(Hex.encode(address)):\(length)")
                    }
                    if incomplete { report.incompleteAttachments += 1 }
                }
            }
        }
        return report
    }
}

extension FileCarrier: ChunkCarrier {
    /// The folder of chunks beside the sync file: `FILE.chunks/` (Protocol/sync-file.md §5).
    public var chunkStore: ChunkStore { ChunkStore(root: URL(fileURLWithPath: file.url.path + ".chunks")) }

    public func heldChunks(_ chunks: [ChunkRef]) async throws -> Set<[UInt8]> {
        let store = chunkStore
        return Set(chunks.filter { store.has($0.address, sealedLength: $0.sealedLength) }.map(\.address))
    }

    public func chunk(_ address: [UInt8]) async throws -> [UInt8]? { try chunkStore.read(address) }

    public func discardDamaged(_ address: [UInt8], copy: [UInt8]) async -> Bool {
        // Set aside on the stick like on a vault's disk (`ab/cdef….damaged`): the address is then missing there.
        guard canWrite else { return false }
        return (try? chunkStore.setAside(address, ifSHA256: SHA256.hash(copy))) ?? false
    }

    public func storeChunk(_ address: [UInt8], sealed: [UInt8]) async throws {
        guard canWrite else { throw StoreError(.io, "The sync file \(file.url.path) is read-only.") }
        do {
            try chunkStore.write(address, sealed: sealed)
        } catch let error as StoreError where error.code == .diskFull {
            throw CarrierFullError(message: "The disk holding \(file.url.path) is full.")
        }
    }
}
