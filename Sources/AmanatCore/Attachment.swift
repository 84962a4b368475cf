import AmanatCrypto

/// What an `attach` operation states about one attached file (Protocol/attachments.md §3): the evidence a court
/// or investigator checks (SHA-256, size) and the ordered list of chunk addresses that hold its content.
public struct AttachmentSpec: Hashable, Sendable {
    /// Chunk sizes a reader accepts: 4 KiB to 4 MiB (a sealed chunk always fits one relay request of 8 MiB).
    public static let chunkSizeRange: ClosedRange<UInt32> = 4096...(4 << 20)
    /// The chunk size this release writes (chosen by measurement, Docs/performance.md B8).
    public static let defaultChunkSize: UInt32 = 1 << 20
    /// Metadata flag: the file carries GPS or other location data.
    public static let locationFlag: UInt8 = 1
    /// Metadata flag: the file names the camera, phone or software that made it.
    public static let deviceFlag: UInt8 = 2

    /// The vault key epoch whose chunk keys encrypt and address the chunks.
    public var epoch: UInt32
    /// The file's size in bytes.
    public var size: UInt64
    /// SHA-256 of the whole file.
    public var sha256: [UInt8]
    /// Media type sniffed from the content (`image/jpeg`, …, `application/octet-stream`).
    public var mediaType: String
    /// The file's name as given (no folder), or empty when read from standard input.
    public var name: String
    /// A note of the documenter.
    public var note: String
    /// ``locationFlag`` and ``deviceFlag``: what identifying metadata the file carries.
    public var metadataFlags: UInt8
    /// Plaintext bytes per chunk; the last chunk may be shorter.
    public var chunkSize: UInt32
    /// The addresses of the chunks, in file order (keyed BLAKE2b-256 of each chunk's plaintext).
    public var chunks: [[UInt8]]

    /// Creates a spec.
    public init(
        epoch: UInt32, size: UInt64, sha256: [UInt8], mediaType: String, name: String, note: String,
        metadataFlags: UInt8, chunkSize: UInt32, chunks: [[UInt8]]
    ) {
        self.epoch = epoch
        self.size = size
        self.sha256 = sha256
        self.mediaType = mediaType
        self.name = name
        self.note = note
        self.metadataFlags = metadataFlags
        self.chunkSize = chunkSize
        self.chunks = chunks
    }

    /// The root of the chunk list: BLAKE2b-256 over the chunk size, the file size and every address in order.
    public var root: [UInt8] { Self.root(chunkSize: chunkSize, size: size, chunks: chunks) }

    /// The chunk root of §3: `BLAKE2b-256("amanat/chunk-root/v1" ‖ u32 chunk-size ‖ u64 size ‖ address × n)`.
    public static func root(chunkSize: UInt32, size: UInt64, chunks: [[UInt8]]) -> [UInt8] {
        let hasher = BLAKE2b.Hasher()
        var w = ByteWriter(capacity: 40)
        w.write(raw: Array("amanat/chunk-root/v1".utf8))
        w.write(bigEndian: chunkSize)
        w.write(bigEndian: size)
        hasher.update(w.bytes)
        for address in chunks { hasher.update(address) }
        return hasher.finalize()
    }

    /// How many chunks a file of `size` bytes makes with `chunkSize` (0 for an empty file).
    public static func chunkCount(size: UInt64, chunkSize: UInt32) -> UInt64 {
        size == 0 ? 0 : (size - 1) / UInt64(chunkSize) + 1
    }

    /// The plaintext length of chunk `index` (the last one may be short).
    public static func chunkLength(index: Int, size: UInt64, chunkSize: UInt32) -> Int {
        let start = UInt64(index) * UInt64(chunkSize)
        return Int(min(UInt64(chunkSize), size - start))
    }

    func encode(into w: inout ByteWriter) {
        w.write(bigEndian: epoch)
        w.write(bigEndian: size)
        w.write(raw: sha256)
        w.write(string: mediaType)
        w.write(string: name)
        w.write(string: note)
        w.write(metadataFlags)
        w.write(bigEndian: chunkSize)
        w.write(raw: root)
        w.write(varint: UInt64(chunks.count))
        for address in chunks { w.write(raw: address) }
    }

    init(from r: inout ByteReader) throws {
        epoch = try r.read(bigEndian: UInt32.self)
        size = try r.read(bigEndian: UInt64.self)
        sha256 = try r.read(count: 32)
        mediaType = try r.readString()
        name = try r.readString()
        note = try r.readString()
        metadataFlags = try r.readByte()
        chunkSize = try r.read(bigEndian: UInt32.self)
        let root = try r.read(count: 32)
        let count = try r.readCount(minimumElementSize: 32)
        var list: [[UInt8]] = []
        list.reserveCapacity(count)
        for _ in 0..<count { list.append(try r.read(count: 32)) }
        chunks = list
        guard metadataFlags & ~(Self.locationFlag | Self.deviceFlag) == 0 else {
            throw CoreError(.malformed, "An attachment has unknown metadata flags.")
        }
        guard Self.chunkSizeRange.contains(chunkSize) else {
            throw CoreError(.malformed, "An attachment has a chunk size outside 4 KiB to 4 MiB.")
        }
        guard epoch != 0 else { throw CoreError(.malformed, "An attachment names the authority key epoch.") }
        guard UInt64(count) == Self.chunkCount(size: size, chunkSize: chunkSize) else {
            throw CoreError(.malformed, "An attachment lists a number of chunks that does not fit its size.")
        }
        guard root == self.root else {
            throw CoreError(.malformed, "An attachment's chunk root does not match its chunk list.")
        }
    }
}

/// One attachment of a record as its state keeps it: the `attach` operation, its stamp and everything it states
/// except the chunk list (which stays in the log, found again through ``op``).
public struct AttachmentInfo: Hashable, Sendable {
    /// The `attach` operation.
    public var op: OpID
    /// When it was attached.
    public var timestamp: HLCTimestamp
    /// The vault key epoch of its chunk keys.
    public var epoch: UInt32
    /// The file's size in bytes.
    public var size: UInt64
    /// SHA-256 of the file.
    public var sha256: [UInt8]
    /// Its media type.
    public var mediaType: String
    /// Its name.
    public var name: String
    /// The documenter's note.
    public var note: String
    /// What identifying metadata it carries (``AttachmentSpec/locationFlag``, ``AttachmentSpec/deviceFlag``).
    public var metadataFlags: UInt8
    /// Plaintext bytes per chunk.
    public var chunkSize: UInt32
    /// The chunk root (``AttachmentSpec/root``).
    public var root: [UInt8]
    /// The number of chunks.
    public var chunkCount: UInt64

    /// The summary of `spec` written by `op` at `timestamp`.
    public init(op: OpID, timestamp: HLCTimestamp, spec: AttachmentSpec) {
        self.op = op
        self.timestamp = timestamp
        epoch = spec.epoch
        size = spec.size
        sha256 = spec.sha256
        mediaType = spec.mediaType
        name = spec.name
        note = spec.note
        metadataFlags = spec.metadataFlags
        chunkSize = spec.chunkSize
        root = spec.root
        chunkCount = UInt64(spec.chunks.count)
    }

    init(
        op: OpID, timestamp: HLCTimestamp, epoch: UInt32, size: UInt64, sha256: [UInt8], mediaType: String,
        name: String, note: String, metadataFlags: UInt8, chunkSize: UInt32, root: [UInt8], chunkCount: UInt64
    ) {
        self.op = op
        self.timestamp = timestamp
        self.epoch = epoch
        self.size = size
        self.sha256 = sha256
        self.mediaType = mediaType
        self.name = name
        self.note = note
        self.metadataFlags = metadataFlags
        self.chunkSize = chunkSize
        self.root = root
        self.chunkCount = chunkCount
    }

    /// The attachment's id: BLAKE2b-128 of its `attach` operation id, in hex (Protocol/attachments.md §3). Commands
    /// accept any unique prefix of 6 characters or more.
    public var id: String { Self.id(of: op) }

    /// The attachment id of the `attach` operation `op`.
    public static func id(of op: OpID) -> String {
        var w = ByteWriter(capacity: 64)
        w.write(raw: Array("amanat/attachment-id/v1".utf8))
        op.encode(into: &w)
        return Hex.encode(BLAKE2b.hash(w.bytes, outputLength: 16))
    }

    /// Whether the file carries location metadata.
    public var hasLocation: Bool { metadataFlags & AttachmentSpec.locationFlag != 0 }
    /// Whether the file names the device that made it.
    public var hasDeviceMetadata: Bool { metadataFlags & AttachmentSpec.deviceFlag != 0 }
}

/// The keys and the sealed form of attachment chunks (Protocol/attachments.md §2): convergent within one vault key
/// epoch, so equal content is stored once, and addressed by a keyed hash, so an address says nothing to anyone who
/// lacks the vault key.
public struct ChunkKeys: Sendable {
    /// The vault key epoch the keys derive from.
    public let epoch: UInt32
    private let addressKey: SecureBytes
    private let encryptionKey: SecureBytes

    /// The first four bytes of every sealed chunk.
    public static let magic: [UInt8] = Array("AMCK".utf8)
    /// The sealed chunk format version.
    public static let version: UInt8 = 1
    /// Bytes of a sealed chunk besides its ciphertext: magic, version, address.
    public static let headerLength = 4 + 1 + 32
    /// Bytes a sealed chunk adds to its plaintext.
    public static let overhead = headerLength + AEAD.tagLength

    /// The chunk keys of `key`'s epoch.
    public init(_ key: VaultKey) {
        epoch = key.epoch
        addressKey = key.subkey(id: 6, context: "amnt-cha")
        encryptionKey = key.subkey(id: 7, context: "amnt-chk")
    }

    /// The address of a chunk: keyed BLAKE2b-256 of its plaintext.
    public func address(of plaintext: [UInt8]) -> [UInt8] { BLAKE2b.hash(plaintext, key: addressKey) }

    /// The address of a chunk the caller holds in a buffer.
    public func address(of plaintext: UnsafeRawBufferPointer) -> [UInt8] { BLAKE2b.hash(plaintext, key: addressKey) }

    static func associatedData(_ address: [UInt8]) -> [UInt8] { Array("amanat/chunk/v1".utf8) + address }

    /// Seals a chunk: `magic ‖ version ‖ address ‖ XChaCha20-Poly1305(nonce = address[0..<24], ad = "amanat/chunk/v1" ‖
    /// address)`. Equal plaintexts give equal sealed chunks (the nonce is a keyed hash of the plaintext).
    public func seal(_ plaintext: [UInt8]) throws -> (address: [UInt8], sealed: [UInt8]) {
        try plaintext.withUnsafeBytes { buffer in
            let address = address(of: buffer)
            return (address, try seal(buffer, address: address))
        }
    }

    /// Seals a chunk whose ``address(of:)-(UnsafeRawBufferPointer)`` the caller computed: the sealed form is written
    /// in one allocation, the ciphertext straight after the header (no intermediate copies of a 1 MiB chunk).
    public func seal(_ plaintext: UnsafeRawBufferPointer, address: [UInt8]) throws -> [UInt8] {
        var failure: (any Error)?
        let sealed = [UInt8](unsafeUninitializedCapacity: Self.overhead + plaintext.count) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            do {
                try fill(raw, plaintext: plaintext, address: address)
            } catch {
                failure = error
                raw.initializeMemory(as: UInt8.self, repeating: 0)
            }
            initialized = buffer.count
        }
        if let failure { throw failure }
        return sealed
    }

    /// Seals a chunk into memory the caller holds, exactly ``overhead`` + `plaintext.count` bytes: attach seals into
    /// page-aligned memory that the chunk store writes to the disk without a copy through the page cache.
    /// Ciphertext only.
    public func seal(_ plaintext: UnsafeRawBufferPointer, address: [UInt8], into out: UnsafeMutableRawBufferPointer)
        throws
    {
        try fill(out, plaintext: plaintext, address: address)
    }

    /// Writes `magic ‖ version ‖ address ‖ ciphertext ‖ tag` into `out` (exactly ``overhead`` + plaintext bytes).
    private func fill(_ out: UnsafeMutableRawBufferPointer, plaintext: UnsafeRawBufferPointer, address: [UInt8])
        throws
    {
        precondition(address.count == 32 && out.count == Self.overhead + plaintext.count)
        out.copyBytes(from: Self.magic)
        out[4] = Self.version
        UnsafeMutableRawBufferPointer(rebasing: out[5..<Self.headerLength]).copyBytes(from: address)
        try AEAD.seal(
            plaintext, additionalData: Self.associatedData(address), nonce: address[0..<AEAD.nonceLength],
            key: encryptionKey, into: UnsafeMutableRawBufferPointer(rebasing: out[Self.headerLength...]))
    }

    /// What is wrong with a stored chunk, if anything.
    public enum Problem: String, Sendable, Equatable {
        /// Shorter than its position in the file says it must be.
        case truncated
        /// The chunk of another address stored under this one.
        case swapped
        /// Altered: it does not decrypt, or its content does not hash to its address.
        case tampered
    }

    /// Opens the sealed chunk that must be `address` with `length` plaintext bytes: the plaintext, or the problem.
    public func open(_ sealed: [UInt8], address: [UInt8], length: Int) -> Result<[UInt8], ChunkOpenError> {
        var problem: ChunkOpenError?
        let plaintext = [UInt8](unsafeUninitializedCapacity: max(1, length)) { buffer, initialized in
            let out = UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[0..<length])
            problem = sealed.withUnsafeBytes { open($0, address: address, into: out) }
            // Opened, every byte was written; not, nothing of it is kept.
            if problem != nil { out.initializeMemory(as: UInt8.self, repeating: 0) }
            initialized = length
        }
        if let problem { return .failure(problem) }
        return .success(plaintext)
    }

    /// Opens the sealed chunk held in `sealed` that must be `address` into `out`, which holds exactly the chunk's
    /// plaintext length: nil when it opened and its content hashes to its address, else the problem (and nothing of
    /// the chunk is left in `out`). Extract opens chunks straight into the page-aligned memory it writes the file
    /// from.
    ///
    /// `hashingContent: false` skips the keyed hash of the opened content (Protocol/attachments.md §2, "Readers of a
    /// whole attachment"): only for a reader that compares the SHA-256 of the whole attachment with the signed one
    /// and discards everything it read when they differ. The AEAD still authenticates the chunk under its address;
    /// what the keyed hash alone would catch here, a chunk sealed by a holder of the vault key over other content,
    /// fails that SHA-256.
    public func open(
        _ sealed: UnsafeRawBufferPointer, address: [UInt8], into out: UnsafeMutableRawBufferPointer,
        hashingContent: Bool = true
    ) -> ChunkOpenError? {
        let expected = Self.overhead + out.count
        guard sealed.count >= Self.headerLength, sealed[0..<4].elementsEqual(Self.magic), sealed[4] == Self.version
        else {
            return ChunkOpenError(problem: sealed.count < expected ? .truncated : .tampered)
        }
        let stated = Array(sealed[5..<Self.headerLength])
        let ciphertext = UnsafeRawBufferPointer(rebasing: sealed[Self.headerLength...])
        if stated != address {
            // Another chunk's bytes under this address: swapped if they open as that chunk, else altered.
            if let other = try? openCiphertext(ciphertext, address: stated),
                BLAKE2b.hash(other, key: addressKey) == stated
            {
                return ChunkOpenError(problem: .swapped)
            }
            return ChunkOpenError(problem: sealed.count < expected ? .truncated : .tampered)
        }
        if sealed.count < expected { return ChunkOpenError(problem: .truncated) }
        guard sealed.count == expected else { return ChunkOpenError(problem: .tampered) }
        do {
            try AEAD.open(
                ciphertext, additionalData: Self.associatedData(address), nonce: address[0..<AEAD.nonceLength],
                key: encryptionKey, into: out)
        } catch {
            return ChunkOpenError(problem: .tampered)
        }
        guard !hashingContent || BLAKE2b.hash(UnsafeRawBufferPointer(out), key: addressKey) == address else {
            out.initializeMemory(as: UInt8.self, repeating: 0)
            return ChunkOpenError(problem: .tampered)
        }
        return nil
    }

    /// Whether the sealed chunk that must be `address` with `length` plaintext bytes is intact as far as its AEAD
    /// tag says, without decrypting it: the header names `address`, the length is right and the tag authenticates.
    /// What a device checks before it sends a chunk it holds (Protocol/attachments.md §8): a chunk damaged on its
    /// disk would otherwise fill the carrier's place for that address, and every member would refuse it there.
    public func authenticates(_ sealed: [UInt8], address: [UInt8], length: Int) -> Bool {
        guard sealed.count == Self.overhead + length, sealed.starts(with: Self.magic), sealed[4] == Self.version,
            sealed[5..<Self.headerLength].elementsEqual(address)
        else { return false }
        return sealed.withUnsafeBytes {
            AEAD.authenticates(
                UnsafeRawBufferPointer(rebasing: $0[Self.headerLength...]),
                additionalData: Self.associatedData(address), nonce: address[0..<AEAD.nonceLength], key: encryptionKey)
        }
    }

    private func openCiphertext(_ ciphertext: UnsafeRawBufferPointer, address: [UInt8]) throws -> [UInt8] {
        try AEAD.open(
            ciphertext, additionalData: Self.associatedData(address), nonce: address[0..<AEAD.nonceLength],
            key: encryptionKey)
    }
}

/// Why a stored chunk did not open (``ChunkKeys/open(_:address:into:hashingContent:)``).
public struct ChunkOpenError: Error, Sendable, Equatable {
    /// The problem.
    public var problem: ChunkKeys.Problem
}
