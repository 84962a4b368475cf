import CSodium
import Dispatch

/// Streaming age v1 encryption: writes the header at once, then one 64 KiB payload chunk at a time.
///
/// ```swift
/// let encryptor = try AgeEncryptor(recipients: [recipient]) { bytes in try file.write(contentsOf: bytes) }
/// try encryptor.write(part1)
/// try encryptor.write(part2)
/// try encryptor.finish()
/// ```
/// Memory stays bounded whatever the input size: one chunk of plaintext waits in the buffer, and a write that brings
/// several full chunks seals them on the cores at once, up to ``parallelChunks`` at a time, straight from the
/// caller's bytes (the output is the same bytes as sealing them one by one, written in pieces of up to that many
/// chunks). After ``finish()`` or any error the encryptor refuses further use; the output written so far is then not
/// a valid age file.
public final class AgeEncryptor {
    private enum State { case open, finished, failed }

    private let payloadKey: SecureBytes
    private var output: ([UInt8]) throws -> Void
    private var armor: AgeArmorEncoder?
    private var buffer: [UInt8]
    private var counter: UInt64 = 0
    private var state = State.open

    /// Starts an age file for `recipients` and writes its header (armored if `armor`) to `output`.
    ///
    /// An ``AgeScryptRecipient`` must be the only recipient.
    public init(
        recipients: [any AgeRecipient], armor: Bool = false, output: @escaping ([UInt8]) throws -> Void
    ) throws {
        guard !recipients.isEmpty else { throw AgeError(.invalidUse, "An age file needs at least one recipient.") }
        let fileKey = SecureBytes.random(count: AgeStream.fileKeySize)
        var stanzas = [AgeStanza]()
        for recipient in recipients { stanzas += try recipient.wrap(fileKey: fileKey) }
        if stanzas.contains(where: { $0.type == AgeScryptIdentity.stanzaType }) && stanzas.count != 1 {
            throw AgeError(.invalidUse, "A passphrase (scrypt) recipient must be the only recipient of an age file.")
        }
        let header = try AgeHeader.encode(stanzas: stanzas, fileKey: fileKey)
        let nonce = Sodium.randomBytes(AgeStream.nonceSize)
        payloadKey = try AgeStream.payloadKey(fileKey: fileKey, nonce: nonce)
        buffer = []
        buffer.reserveCapacity(AgeStream.chunkSize)
        self.output = output
        if armor {
            self.armor = AgeArmorEncoder(output: output)
        }
        try emit(header + nonce)
    }

    deinit {
        Sodium.wipe(&buffer)
    }

    private func emit(_ bytes: [UInt8]) throws {
        if armor != nil {
            try armor?.write(bytes)
        } else {
            try output(bytes)
        }
    }

    /// Full chunks sealed at once on the cores when one write brings more than that (1 MiB of plaintext).
    public static let parallelChunks = 16

    /// Encrypts more plaintext; full chunks are written out as soon as more data follows them.
    public func write(_ bytes: [UInt8]) throws {
        guard state == .open else { throw AgeError(.invalidUse, "The age encryptor is finished or has failed.") }
        do {
            try bytes.withUnsafeBytes { input in
                let chunkSize = AgeStream.chunkSize
                var index = 0
                if !buffer.isEmpty {
                    index = min(chunkSize - buffer.count, input.count)
                    buffer += input[0..<index]
                    // More data follows a full chunk, so that chunk is not the last one.
                    guard index < input.count else { return }
                    try flush(last: false)
                }
                // Full chunks of the input that more data follows, sealed where they lie.
                while input.count - index > chunkSize {
                    let count = min(Self.parallelChunks, (input.count - index - 1) / chunkSize)
                    try emit(try sealFollowedChunks(UnsafeRawBufferPointer(rebasing: input[index...]), count: count))
                    index += count * chunkSize
                }
                // At most one chunk is left: it may be the last one, so it waits for what comes next.
                buffer += input[index...]
            }
        } catch {
            state = .failed
            throw error
        }
    }

    /// The first `count` full chunks of `input`, none of them the last, sealed on the cores into one array.
    private func sealFollowedChunks(_ input: UnsafeRawBufferPointer, count: Int) throws -> [UInt8] {
        guard counter <= UInt64.max - UInt64(count) else {
            throw AgeError(.invalidUse, "The age payload is too long: the chunk counter would overflow.")
        }
        let first = counter
        let sealedSize = AgeStream.encryptedChunkSize
        let sealed = [UInt8](unsafeUninitializedCapacity: count * sealedSize) { out, initialized in
            let shared = SealJob(input: input, output: UnsafeMutableRawBufferPointer(out), key: payloadKey)
            DispatchQueue.concurrentPerform(iterations: count) { i in
                let plaintext = UnsafeRawBufferPointer(
                    rebasing: shared.input[(i * AgeStream.chunkSize)..<((i + 1) * AgeStream.chunkSize)])
                AgeStream.seal(
                    plaintext, into: UnsafeMutableRawBufferPointer(rebasing: shared.output[(i * sealedSize)...]),
                    key: shared.key, nonce: AgeStream.chunkNonce(counter: first + UInt64(i), last: false))
            }
            initialized = count * sealedSize
        }
        counter += UInt64(count)
        return sealed
    }

    /// Encrypts the final chunk and, if armored, writes the END line; the file is complete afterwards.
    public func finish() throws {
        guard state == .open else { throw AgeError(.invalidUse, "The age encryptor is finished or has failed.") }
        do {
            try flush(last: true)
            try armor?.finish()
            state = .finished
        } catch {
            state = .failed
            throw error
        }
    }

    private func flush(last: Bool) throws {
        guard counter < UInt64.max else {
            throw AgeError(.invalidUse, "The age payload is too long: the chunk counter would overflow.")
        }
        let nonce = AgeStream.chunkNonce(counter: counter, last: last)
        let sealed = buffer.withUnsafeBytes { AgeStream.seal($0, key: payloadKey, nonce: nonce) }
        Sodium.wipe(&buffer)
        buffer.removeAll(keepingCapacity: true)
        counter += 1
        try emit(sealed)
    }

    /// Encrypts `plaintext` in memory to `recipients`, returning the whole age file (armored if `armor`).
    public static func encrypt(_ plaintext: [UInt8], to recipients: [any AgeRecipient], armor: Bool = false) throws
        -> [UInt8]
    {
        var out = [UInt8]()
        let append = { (bytes: [UInt8]) in out += bytes }
        try withoutActuallyEscaping(append) { sink in
            let encryptor = try AgeEncryptor(recipients: recipients, armor: armor, output: sink)
            try encryptor.write(plaintext)
            try encryptor.finish()
        }
        return out
    }
}

/// What the threads sealing chunks share: they only read `input` and `key`, and each writes its own part of `output`.
private struct SealJob: @unchecked Sendable {
    // @unchecked Sendable: the buffers outlive `concurrentPerform`, and no two threads write the same bytes.
    let input: UnsafeRawBufferPointer
    let output: UnsafeMutableRawBufferPointer
    let key: SecureBytes
}
