import AmanatCore
import AmanatCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A source of file bytes read in pieces: a file, or standard input.
public protocol ByteSource {
    /// Up to `count` bytes; fewer only at the end (an empty array is the end).
    mutating func read(_ count: Int) throws -> [UInt8]
    /// Up to `buffer.count` bytes into `buffer`; fewer only at the end (0 is the end).
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension ByteSource {
    /// Through ``read(_:)`` and a copy, for sources that have no better way.
    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let bytes = try read(buffer.count)
        buffer.copyBytes(from: bytes)
        return bytes.count
    }
}

/// A file descriptor read to exactly the requested count (pipes return short reads).
public struct FileDescriptorSource: ByteSource {
    let fd: Int32
    let name: String

    /// Reads from `fd` (not closed here); `name` appears in error messages.
    public init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
    }

    public mutating func read(_ count: Int) throws -> [UInt8] {
        try Self.read(fd, upTo: count, name: name)
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try Self.read(fd, into: buffer, name: name)
    }

    /// Up to `count` bytes of `fd` (fewer only at its end), read straight into the array's storage: no zero-filling
    /// first and no copy after (a MiB each, per chunk). A read error throws, naming `name`; EINTR is retried.
    static func read(_ fd: Int32, upTo count: Int, name: String) throws -> [UInt8] {
        var failure: (any Error)?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { storage, initialized in
            do {
                initialized = try read(fd, into: UnsafeMutableRawBufferPointer(storage), name: name)
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Up to `buffer.count` bytes of `fd` into `buffer` (fewer only at its end); the count read.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, name: String) throws -> Int {
        var got = 0
        while got < buffer.count {
            let n = Glibc.read(fd, buffer.baseAddress! + got, buffer.count - got)
            if n < 0 {
                if errno == EINTR { continue }
                throw AtomicFile.ioError(errno, "could not read \(name)")
            }
            if n == 0 { break }
            got += n
        }
        return got
    }
}

/// How complete an attachment is on this device.
public struct AttachmentPresence: Sendable, Equatable {
    /// Chunks stored (with the expected length; their content is checked by `verify` and `extract`).
    public var present: Int
    /// Chunks in all.
    public var total: Int
    /// Bytes of the missing chunks (plaintext).
    public var missingBytes: UInt64

    /// `complete`, `partial` or `missing`.
    public var word: String { present == total ? "complete" : (present == 0 ? "missing" : "partial") }
}

/// What storing a file's chunks did.
public struct StoredFile: Sendable {
    /// What the `attach` operation will state.
    public var spec: AttachmentSpec
    /// Chunks written now.
    public var written: Int
    /// Chunks that were stored already (an earlier, interrupted run, or the same content attached before).
    public var reused: Int
}

/// One problem with an attachment's stored chunks, as `verify` reports it.
public struct ChunkProblem: Sendable, Equatable {
    /// The attachment.
    public var attachment: String
    /// The record.
    public var record: RecordID
    /// The chunk's position, from 1.
    public var position: Int
    /// How many chunks the attachment has.
    public var total: Int
    /// `missing`, `truncated`, `swapped` or `tampered`.
    public var problem: String
    /// Whether the damaged chunk was set aside (``ChunkStore/setAside(_:)``), so that it counts as missing and a
    /// sync or fetch brings a good copy.
    public var setAside = false
}

/// What sealing one chunk found: stored already, or written to a temporary file awaiting its commit.
enum SealedChunk: Sendable {
    case stored([UInt8])
    case pending(ChunkStore.PendingChunk)
}

/// The shard folders an attach renamed chunks into, gathered by its commit thread.
final class ShardFolders: @unchecked Sendable {
    // @unchecked Sendable: guarded by `lock`.
    private let lock = NSLock()
    private var folders: Set<String> = []
    func add(_ more: Set<String>) { lock.withLock { folders.formUnion(more) } }
    var all: Set<String> { lock.withLock { folders } }
}

/// Page-aligned memory for the chunks an attach or an extract has in flight: per slot, room for one sealed chunk and
/// its plaintext, each rounded up to whole pages (`O_DIRECT` writes from and reads into the sealed one; extract
/// writes the file from the plain one). Allocated once, so no MiB is allocated and faulted in per chunk; the
/// plaintext is wiped before the memory is freed.
final class ChunkSlots: @unchecked Sendable {
    // @unchecked Sendable: one thread at a time uses a slot (the thread opening its chunk, then the owner); `held` is
    // only touched by the owner.
    let count: Int
    private let sealed: [UnsafeMutableRawBufferPointer]
    private let plain: [UnsafeMutableRawBufferPointer]
    private var held: [Int]

    /// `count` slots for chunks of at most `chunkSize` bytes. Pages a slot never holds are never touched.
    init(count: Int, chunkSize: Int) {
        self.count = count
        let sealedBytes = (chunkSize + ChunkKeys.overhead + 4095) & ~4095
        let plainBytes = (chunkSize + 4095) & ~4095
        sealed = (0..<count).map { _ in .allocate(byteCount: sealedBytes, alignment: 4096) }
        plain = (0..<count).map { _ in .allocate(byteCount: plainBytes, alignment: 4096) }
        held = Array(repeating: 0, count: count)
    }

    /// The sealed and plain memory of `slot`.
    func buffers(_ slot: Int) -> (sealed: UnsafeMutableRawBufferPointer, plain: UnsafeMutableRawBufferPointer) {
        (sealed[slot], plain[slot])
    }

    /// Notes (on the owner's thread) that `slot` holds `bytes` of plaintext, so that they are wiped at the end.
    func hold(_ slot: Int, bytes: Int) { held[slot] = max(held[slot], bytes) }

    deinit {
        // Only what the slots held: wiping all of them would fault in pages a small file never used.
        for (memory, bytes) in zip(plain, held) {
            Sodium.wipe(UnsafeMutableRawBufferPointer(rebasing: memory[0..<bytes]))
            memory.deallocate()
        }
        for memory in sealed { memory.deallocate() }
    }
}

extension Vault {
    /// Chunks made durable and named together when attaching (one round of fsyncs per batch).
    static let attachBatch = 16
    /// Chunks being sealed on the other core at once when attaching or extracting: enough to keep both cores busy
    /// while some wait on their direct writes, few enough that memory stays flat (each holds a plaintext and a sealed
    /// chunk). Measured (B8, 1 GiB): 3 in flight gave 397 MB/s attach and 470 extract, 6 gave 450 and 505, 8 no more.
    static let chunksInFlight = 6
    /// The free space an attach leaves on the vault's disk: it stops before writing a chunk that would leave less
    /// (an endless or huge source must not fill the disk the vault and the system need).
    public static let attachReserve: UInt64 = 32 << 20

    /// The folder of this vault's sealed chunks.
    public var chunkStore: ChunkStore { ChunkStore(root: directory.appendingPathComponent("chunks")) }

    /// The chunk keys of `epoch`, if this device holds that vault key.
    public func chunkKeys(epoch: UInt32) -> ChunkKeys? { key(epoch: epoch).map(ChunkKeys.init) }

    /// The most chunks one attachment can list: its address list must fit the attach change's envelope.
    static func maximumChunks(chunkSize: UInt32) -> Int { (Envelope.maximumLength - 64 * 1024) / 32 }

    /// Reads `source` to its end in chunks of ``AttachmentSpec/defaultChunkSize``, seals and stores every chunk not
    /// stored yet, and returns what the `attach` operation states. Nothing is referenced until
    /// ``attach(record:spec:)`` commits, so an interrupted run leaves only unreferenced ciphertext, which the next
    /// run reuses.
    ///
    /// A pipeline over both cores (Docs/architecture.md, "Attachment throughput"): this thread reads, hashes the
    /// whole file (SHA-256) and shows `inspect` the first and the last chunk (where photos and videos keep their
    /// metadata: ``MetadataScanner``); ``chunksInFlight`` chunks at a time are addressed, sealed and written to
    /// temporary files on other threads; every ``attachBatch`` chunks a commit thread fsyncs them and renames them
    /// to their addresses while the next batch is sealed. The shard folders are fsynced once at the end, before this
    /// returns, so every chunk the spec lists is durable under its name before the attach change can commit. Memory
    /// holds a few chunks, whatever the file's size.
    ///
    /// Stops with ``StoreError/Code/diskFull`` before a chunk would leave less than ``attachReserve`` free on the
    /// vault's disk (or the disk is full), and with ``StoreError/Code/invalid`` when the source is longer than one
    /// attachment can list; either way the chunks this run wrote are removed (nothing references them).
    public func storeFile(
        from source: inout some ByteSource, name: String, note: String,
        chunkSize: UInt32 = AttachmentSpec.defaultChunkSize,
        inspect: (([UInt8], Int) -> Void)? = nil, progress: (UInt64) -> Void = { _ in }
    ) throws -> StoredFile {
        let keys = ChunkKeys(writeKey)
        let store = chunkStore
        store.sweepTemporaryFiles()
        try store.prepareTemporaryFolder()
        let sha = SHA256.Hasher()
        let maximumChunks = Self.maximumChunks(chunkSize: chunkSize)
        var chunks: [[UInt8]] = []
        var size: UInt64 = 0
        var written = 0
        var reused = 0
        var head: [UInt8] = []
        // Addresses this run wrote (a chunk repeated in the file is written once; a stopped run removes them).
        var mine: Set<[UInt8]> = []
        var batch: [ChunkStore.PendingChunk] = []
        let sealing = OrderedWork<Result<SealedChunk, any Error>>()
        let committing = BackgroundJob()
        let shards = ShardFolders()
        // Each chunk is read into, and sealed from, its slot's memory, reused once the chunk is taken.
        let slots = ChunkSlots(count: Self.chunksInFlight + 1, chunkSize: Int(chunkSize))
        var last: (slot: Int, count: Int, index: Int)?

        func commitBatch() throws {
            let ready = batch
            batch = []
            do {
                try committing.start { shards.add(try store.commit(ready)) }
            } catch {
                store.abandon(ready)
                throw error
            }
        }
        func takeSealed() throws {
            switch sealing.next() {
            case .failure(let error): throw error
            case .success(.stored(let address)):
                chunks.append(address)
                reused += 1
            case .success(.pending(let chunk)):
                chunks.append(chunk.address)
                if mine.insert(chunk.address).inserted {
                    written += 1
                    batch.append(chunk)
                    if batch.count == Self.attachBatch { try commitBatch() }
                } else {
                    store.abandon([chunk])
                    reused += 1
                }
            }
        }
        do {
            while true {
                let index = chunks.count + sealing.inFlight
                let slot = index % slots.count
                let memory = slots.buffers(slot).plain
                let got = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: memory[0..<Int(chunkSize)]))
                slots.hold(slot, bytes: got)
                if got == 0 { break }
                let plaintext = UnsafeRawBufferPointer(rebasing: memory[0..<got])
                guard chunks.count + sealing.inFlight < maximumChunks else {
                    throw StoreError(
                        .invalid,
                        "\(name.isEmpty ? "Standard input" : name) is larger than one attachment can be (\(UInt64(maximumChunks) * UInt64(chunkSize) >> 30) GiB); nothing was attached."
                    )
                }
                // This chunk and those still being sealed are not on the disk yet (written ones are counted).
                let room = UInt64(Self.chunksInFlight + 1) * UInt64(plaintext.count + ChunkKeys.overhead)
                guard Self.freeBytes(store.root) >= Self.attachReserve + room else {
                    throw StoreError(
                        .diskFull,
                        "Stopped reading \(name.isEmpty ? "standard input" : name) after \(size >> 20) MiB: the disk holding the vault \(directory.path) would have less than \(Self.attachReserve >> 20) MiB free; nothing was attached. Free some space on it and try again."
                    )
                }
                if index == 0 {
                    head = Array(plaintext.prefix(64))
                    inspect?(Array(plaintext), 0)
                }
                last = (slot, got, index)
                sha.update(plaintext)
                size += UInt64(got)
                sealing.submit {
                    Result {
                        let (sealedMemory, plainMemory) = slots.buffers(slot)
                        let plaintext = UnsafeRawBufferPointer(rebasing: plainMemory[0..<got])
                        let address = keys.address(of: plaintext)
                        let sealed = UnsafeMutableRawBufferPointer(rebasing: sealedMemory[0..<got + ChunkKeys.overhead])
                        if store.has(address, sealedLength: sealed.count) { return .stored(address) }
                        try keys.seal(plaintext, address: address, into: sealed)
                        return .pending(try store.writeTemporary(address, sealed: UnsafeRawBufferPointer(sealed)))
                    }
                }
                if sealing.inFlight >= Self.chunksInFlight { try takeSealed() }
                progress(size)
                if got < Int(chunkSize) { break }
            }
            // The last chunk is still in its slot: nothing is read after it.
            if let last, last.index > 0 {
                inspect?(
                    Array(UnsafeRawBufferPointer(rebasing: slots.buffers(last.slot).plain[0..<last.count])), last.index)
            }
            while sealing.inFlight > 0 { try takeSealed() }
            if !batch.isEmpty { try commitBatch() }
            try committing.wait()
        } catch {
            for case .success(.pending(let chunk)) in sealing.drain() { store.abandon([chunk]) }
            store.abandon(batch)
            try? committing.wait()
            if let stop = error as? StoreError, stop.code == .diskFull || stop.code == .invalid {
                // Nothing will reference what this run wrote, and the disk needs the room back.
                store.discard(Array(mine))
            }
            throw error
        }
        store.syncFolders(shards.all)
        let spec = AttachmentSpec(
            epoch: keys.epoch, size: size, sha256: sha.finalize(), mediaType: MediaType.sniff(head), name: name,
            note: note, metadataFlags: 0, chunkSize: chunkSize, chunks: chunks)
        return StoredFile(spec: spec, written: written, reused: reused)
    }

    /// Commits the signed change that attaches `spec` to `record`; returns the attachment.
    public func attach(record: RecordID, spec: AttachmentSpec) throws -> AttachmentInfo {
        let authored = try commit(record: record) { _ in [.attach(spec)] }
        return AttachmentInfo(op: authored.opID(0), timestamp: authored.change.timestamp, spec: spec)
    }

    /// Commits the signed change that detaches `attachment` from `record`. Its chunks stay (evidence).
    public func detach(record: RecordID, attachment: AttachmentInfo) throws {
        try commit(record: record) { _ in [.detach(attachment: attachment.op)] }
    }

    /// The attachment of `state` whose id is `text` or starts with it (6 hex characters at least); detached ones
    /// match only with `includeDetached`.
    public func resolveAttachment(_ text: String, in state: RecordState, includeDetached: Bool = false) throws
        -> AttachmentInfo
    {
        let prefix = text.lowercased()
        guard prefix.count >= 6, prefix.allSatisfy(\.isHexDigit) else {
            throw StoreError(
                .unknownID,
                "\"\(text)\" is not an attachment id: give at least 6 hexadecimal characters of one (`amanat attachments \(state.id.hex.prefix(12))` lists them)."
            )
        }
        let pool = includeDetached ? state.allAttachments : state.attachments
        let matches = pool.filter { $0.id.hasPrefix(prefix) }
        if matches.count > 1 {
            throw StoreError(
                .ambiguousID, "The attachment id \(text) matches \(matches.count) attachments; give more characters.")
        }
        guard let match = matches.first else {
            if state.allAttachments.contains(where: { $0.id.hasPrefix(prefix) }) {
                throw StoreError(.unknownID, "Attachment \(text) of record \(state.id.hex.prefix(12)) was detached.")
            }
            throw StoreError(.unknownID, "Record \(state.id.hex.prefix(12)) has no attachment \(text).")
        }
        return match
    }

    /// The ordered chunk addresses of `info`, read from the signed `attach` operation in the log.
    public func chunkAddresses(of info: AttachmentInfo) throws -> [[UInt8]] {
        guard let envelope = try envelope(author: info.op.device, seq: info.op.seq),
            let key = key(epoch: envelope.header.keyEpoch)
        else {
            throw StoreError(
                .damaged, "The vault is damaged: the change that attached \(info.id.prefix(12)) is missing.")
        }
        guard let change = try? envelope.open(with: key), Int(info.op.index) < change.operations.count,
            case .attach(let spec) = change.operations[Int(info.op.index)], spec.root == info.root
        else {
            throw StoreError(
                .damaged, "The vault is damaged: the change that attached \(info.id.prefix(12)) does not decrypt.")
        }
        return spec.chunks
    }

    /// How complete `info` is here: a cheap check of which chunks are stored with the expected length.
    public func presence(of info: AttachmentInfo) throws -> AttachmentPresence {
        let addresses = try chunkAddresses(of: info)
        let store = chunkStore
        var present = 0
        var missingBytes: UInt64 = 0
        for (index, address) in addresses.enumerated() {
            let length = AttachmentSpec.chunkLength(index: index, size: info.size, chunkSize: info.chunkSize)
            if store.has(address, sealedLength: length + ChunkKeys.overhead) {
                present += 1
            } else {
                missingBytes += UInt64(length)
            }
        }
        return AttachmentPresence(present: present, total: addresses.count, missingBytes: missingBytes)
    }

    /// Opens every stored chunk of `info` and reports each that is missing, truncated, swapped or tampered; when all
    /// open, the SHA-256 of the whole is compared with the signed one.
    ///
    /// With `settingAside`, a chunk that is there but does not open (truncated, swapped, tampered) is set aside
    /// (``ChunkStore/setAside(_:)``): it then counts as missing, so the next sync or fetch from a carrier holding a
    /// good copy brings one, even from a carrier that already holds the address (sync sends and takes only what one
    /// side lacks).
    public func checkChunks(of info: AttachmentInfo, record: RecordID, settingAside: Bool = false) throws
        -> [ChunkProblem]
    {
        let addresses = try chunkAddresses(of: info)
        guard let keys = chunkKeys(epoch: info.epoch) else { return [] }
        let store = chunkStore
        var problems: [ChunkProblem] = []
        let sha = SHA256.Hasher()
        for (index, address) in addresses.enumerated() {
            let length = AttachmentSpec.chunkLength(index: index, size: info.size, chunkSize: info.chunkSize)
            let problem: String?
            var damaged = false  // there, and damaged whatever attachment lists it
            // A chunk that cannot be read is not a missing one: its file is there, and `status` counts it present.
            let read: Result<[UInt8]?, StoreError>
            do {
                read = .success(try store.read(address))
            } catch let error as StoreError {
                read = .failure(error)
            } catch {
                read = .failure(StoreError(.io, "\(error)"))
            }
            switch read {
            case .success(let sealed?):
                switch keys.open(sealed, address: address, length: length) {
                case .success(let plaintext):
                    sha.update(plaintext)
                    problem = nil
                case .failure(let error):
                    problem = error.problem.rawValue
                    damaged = settingAside && isDamagedOnItsOwnTerms(sealed, address: address)
                }
            case .success(nil):
                problem = "missing"
            case .failure(let error) where error.code == .damaged:
                // Larger than any chunk Amanat writes: no attachment's chunk, whatever lists its address.
                problem = ChunkKeys.Problem.tampered.rawValue
                damaged = settingAside
            case .failure(let error):
                problem = "unreadable (\(error.message))"
            }
            if let problem {
                var found = ChunkProblem(
                    attachment: info.id, record: record, position: index + 1, total: addresses.count, problem: problem)
                if settingAside && damaged { found.setAside = (try? store.setAside(address)) != nil }
                problems.append(found)
            }
        }
        if problems.isEmpty && sha.finalize() != info.sha256 {
            problems.append(
                ChunkProblem(
                    attachment: info.id, record: record, position: 0, total: addresses.count, problem: "tampered"))
        }
        return problems
    }

    /// Writes the plaintext of `info` to `fd`, chunk by chunk: each chunk is authenticated (AEAD under its address)
    /// before any of its bytes is written, and the SHA-256 of the whole is compared with the signed one at the end.
    /// Throws on the first missing or damaged chunk, or on a whole that does not match (the caller removes what it
    /// wrote).
    ///
    /// A regular file at a page-aligned offset is written with `O_DIRECT` (``DirectFileWriter``), from the
    /// page-aligned memory each chunk is opened into; the descriptor's flags are as they were afterwards.
    ///
    /// Into a regular file, which the caller removes on a failure, each chunk's keyed hash is left to the SHA-256 of
    /// the whole (Protocol/attachments.md §2, "Readers of a whole attachment"); into anything else (a pipe, a
    /// terminal), where written bytes cannot be taken back, every chunk is checked in full before it is written.
    public func extract(_ info: AttachmentInfo, record: RecordID, to fd: Int32, name: String) throws {
        var writer = DirectFileWriter(fd: fd, name: name)
        defer { writer.finish() }
        var target = stat()
        let regular = fstat(fd, &target) == 0 && target.st_mode & S_IFMT == S_IFREG
        try extract(info, record: record, hashingEachChunk: !regular, lending: { try writer.write($0) })
    }

    /// Hands the plaintext of `info` to `write`, one authenticated chunk at a time (see ``extract(_:record:to:name:)``).
    public func extract(_ info: AttachmentInfo, record: RecordID, into write: ([UInt8]) throws -> Void) throws {
        try extract(info, record: record, lending: { try write(Array($0)) })
    }

    /// Lends the plaintext of `info` to `body`, one authenticated chunk at a time, in page-aligned memory that is
    /// reused once `body` returns.
    ///
    /// Other threads read and open the next ``chunksInFlight`` chunks (`O_DIRECT` read, AEAD and, with
    /// `hashingEachChunk`, the keyed hash of the content) while this one hashes them (SHA-256) and hands them on, in
    /// file order. `hashingEachChunk: false` is for a caller that discards what `body` was given when this throws:
    /// the SHA-256 of the whole, compared at the end, then stands in for each chunk's keyed hash
    /// (Protocol/attachments.md §2); every stored chunk was hashed when it was sealed here or received. Each chunk
    /// in flight has its own page-aligned pair of buffers, sealed and plain, allocated once: memory stays flat
    /// whatever the file's size.
    public func extract(
        _ info: AttachmentInfo, record: RecordID, hashingEachChunk: Bool = true,
        lending body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let addresses = try chunkAddresses(of: info)
        guard let keys = chunkKeys(epoch: info.epoch) else {
            throw StoreError(
                .notAllowed, "Attachment \(info.id.prefix(12)) is sealed with a vault key this device was not given.")
        }
        let presence = try presence(of: info)
        guard presence.present == presence.total else {
            throw StoreError(
                .noVault,
                "Attachment \(info.id.prefix(12)) is incomplete here: \(presence.total - presence.present) of \(presence.total) chunks (\(presence.missingBytes) bytes) are missing; run `amanat fetch \(record.hex.prefix(12)) TARGET` with a sync file or relay that has them."
            )
        }
        let sha = SHA256.Hasher()
        let store = chunkStore
        // As many slots as chunks when there are fewer, each as large as the largest chunk.
        let slots = ChunkSlots(
            count: min(Self.chunksInFlight + 1, addresses.count),
            chunkSize: Int(min(UInt64(info.chunkSize), info.size)))
        let opening = OrderedWork<Result<Int, any Error>>()
        var submitted = 0
        func submitNext() {
            let index = submitted
            submitted += 1
            let address = addresses[index]
            let length = AttachmentSpec.chunkLength(index: index, size: info.size, chunkSize: info.chunkSize)
            let id = info.id.prefix(12)
            let total = addresses.count
            let slot = index % slots.count
            slots.hold(slot, bytes: length)
            opening.submit {
                Result {
                    let (sealedMemory, plainMemory) = slots.buffers(slot)
                    let plain = UnsafeMutableRawBufferPointer(rebasing: plainMemory[0..<length])
                    func missing() -> StoreError {
                        StoreError(.noVault, "Chunk \(index + 1) of attachment \(id) is missing.")
                    }
                    func damaged(_ problem: ChunkOpenError) -> StoreError {
                        StoreError(
                            .damaged,
                            "Chunk \(index + 1) of \(total) of attachment \(id) is \(problem.problem.rawValue); nothing was extracted. Run `amanat verify`."
                        )
                    }
                    let sealedLength = ChunkKeys.overhead + length
                    switch try store.read(
                        address, into: UnsafeMutableRawBufferPointer(rebasing: sealedMemory[0..<sealedLength]))
                    {
                    case .missing: throw missing()
                    case .read:
                        let sealed = UnsafeRawBufferPointer(rebasing: sealedMemory[0..<sealedLength])
                        if let problem = keys.open(
                            sealed, address: address, into: plain, hashingContent: hashingEachChunk)
                        {
                            throw damaged(problem)
                        }
                    case .otherLength:
                        // Not the length it must have: the exact reading says truncated, swapped or tampered.
                        guard let sealed = try store.read(address) else { throw missing() }
                        switch keys.open(sealed, address: address, length: length) {
                        case .failure(let problem): throw damaged(problem)
                        case .success(let opened): plain.copyBytes(from: opened)  // rewritten whole meanwhile
                        }
                    }
                    return length
                }
            }
        }
        defer { _ = opening.drain() }
        for index in addresses.indices {
            while submitted < addresses.count && opening.inFlight < Self.chunksInFlight { submitNext() }
            let length = try opening.next().get()
            let plain = UnsafeRawBufferPointer(rebasing: slots.buffers(index % slots.count).plain[0..<length])
            // The chunk is hashed while it is handed on (a write to the disk, mostly waiting for it): both only read
            // it, and both are done before its slot is used again.
            _ = try ParallelResults.map(2) { part in
                if part == 0 { sha.update(plain) } else { try body(plain) }
            }
        }
        guard sha.finalize() == info.sha256 else {
            throw StoreError(
                .damaged,
                "Attachment \(info.id.prefix(12)) does not match its signed SHA-256; nothing was extracted. Run `amanat verify`."
            )
        }
    }

    /// Whether the stored chunk of `address` is damaged whatever attachment lists it: under the chunk keys of no
    /// vault key this device holds does it open, at its own length, as the chunk of its address (AEAD, then the
    /// keyed hash of its content). Only such a chunk is set aside. A chunk is shared by every attachment that lists
    /// its address, and a member can sign an `attach` that lists a good chunk with another length or epoch: that
    /// attachment's check fails, but the chunk is the other attachments' evidence and stays in place.
    public func isDamagedOnItsOwnTerms(_ sealed: [UInt8], address: [UInt8]) -> Bool {
        !opensOnItsOwnTerms(sealed, address: address)
    }

    /// Whether `sealed` opens as the chunk of `address`, at its own length, under the chunk keys of some vault key
    /// this device holds: a whole chunk, whichever attachment lists it and how (too short to hold a chunk: no).
    public func opensOnItsOwnTerms(_ sealed: [UInt8], address: [UInt8]) -> Bool {
        guard sealed.count >= ChunkKeys.overhead else { return false }
        return allKeys.contains { key in
            if case .success = ChunkKeys(key).open(sealed, address: address, length: sealed.count - ChunkKeys.overhead)
            {
                return true
            }
            return false
        }
    }

    /// How many attachments (detached ones included) are complete, partial and missing here; nil when there are none.
    public func attachmentSummary() throws -> (
        total: Int, complete: Int, partial: Int, missing: Int, missingBytes: UInt64
    )? {
        var counts = (total: 0, complete: 0, partial: 0, missing: 0, missingBytes: UInt64(0))
        for state in try allStates() {
            for info in state.allAttachments {
                let presence = try presence(of: info)
                counts.total += 1
                counts.missingBytes += presence.missingBytes
                switch presence.word {
                case "complete": counts.complete += 1
                case "partial": counts.partial += 1
                default: counts.missing += 1
                }
            }
        }
        return counts.total == 0 ? nil : counts
    }

    /// Every chunk problem of every attachment of every record (`verify`).
    public func attachmentProblems(_ states: [RecordState], settingAside: Bool = false) throws -> [ChunkProblem] {
        var problems: [ChunkProblem] = []
        for state in states.sortedByID() {
            for info in state.allAttachments {
                problems += try checkChunks(of: info, record: state.id, settingAside: settingAside)
            }
        }
        return problems
    }

    /// Destroys the stored chunks of `info` that no other attachment of the vault still uses (for `purge`). Returns
    /// how many chunk files were removed.
    @discardableResult
    public func destroyChunks(of info: AttachmentInfo) throws -> Int {
        let doomed = Set(try chunkAddresses(of: info).map { Hex.encode($0) })
        var kept: Set<String> = []
        for state in try allStates() {
            for other in state.allAttachments where other.op != info.op {
                for address in try chunkAddresses(of: other) { kept.insert(Hex.encode(address)) }
            }
        }
        return chunkStore.remove(doomed.subtracting(kept).compactMap { Hex.decode($0) })
    }
}
