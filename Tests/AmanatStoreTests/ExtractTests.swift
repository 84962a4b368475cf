import AmanatCore
import AmanatCrypto
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatStore

#if canImport(Glibc)
    import Glibc
#endif

/// `extract` writes whole pages of a regular file with `O_DIRECT` from the page-aligned memory it opens chunks into,
/// and everything else through the page cache (``DirectFileWriter``). Whatever the descriptor, the bytes must be the
/// attachment's and the descriptor's flags as they were.
@Suite struct ExtractTests {
    /// An attachment of `size` deterministic bytes stored with `chunkSize`.
    static func attached(_ vault: Vault, dir: TemporaryDirectory, size: Int, chunkSize: UInt32) throws -> (
        AttachmentInfo, RecordID, [UInt8]
    ) {
        let media = Sodium.deterministicBytes(size, seed: Array(repeating: UInt8(chunkSize & 0xFF), count: 32))
        let file = dir.url.appendingPathComponent("media-\(chunkSize).bin")
        try Data(media).write(to: file)
        let handle = try FileHandle(forReadingFrom: file)
        defer { try? handle.close() }
        var source = FileDescriptorSource(fd: handle.fileDescriptor, name: file.path)
        let stored = try vault.storeFile(from: &source, name: "media.bin", note: "", chunkSize: chunkSize)
        let record = try vault.createRecord(kind: "testimony", fields: [("witness", "W-1")], tags: [], seal: true)
        return (try vault.attach(record: record, spec: stored.spec), record, media)
    }

    /// Extracts into `fd` and checks that its flags are unchanged.
    static func extract(_ vault: Vault, _ info: AttachmentInfo, _ record: RecordID, to fd: Int32, _ what: String)
        throws
    {
        let flags = fcntl(fd, F_GETFL)
        try vault.extract(info, record: record, to: fd, name: what)
        #expect(fcntl(fd, F_GETFL) == flags, "\(what): the descriptor's flags changed")
    }

    @Test(arguments: [UInt32(16384), 5000])
    func everyKindOfDescriptorGetsTheSameBytes(chunkSize: UInt32) throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        // Three whole chunks and a tail that ends mid-page (with 5000-byte chunks no chunk is a whole number of pages).
        let (info, record, media) = try Self.attached(
            vault, dir: dir, size: 3 * Int(chunkSize) + 1234, chunkSize: chunkSize)
        let prefix: [UInt8] = [1, 2, 3]

        // A new file (written directly), a file three bytes in (an unaligned offset: through the page cache), and a
        // file opened for appending (never directly).
        for (name, extraFlags, before) in [
            ("new", Int32(0), [UInt8]()), ("offset", 0, prefix), ("append", O_APPEND, prefix),
        ] {
            let path = dir.url.appendingPathComponent("out-\(name)").path
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | extraFlags, 0o600)
            #expect(fd >= 0)
            if !before.isEmpty { #expect(write(fd, before, before.count) == before.count) }
            try Self.extract(vault, info, record, to: fd, name)
            #expect(lseek(fd, 0, SEEK_CUR) == off_t(before.count + media.count), "\(name): the offset is the end")
            close(fd)
            #expect(Bytes(try Data(contentsOf: URL(fileURLWithPath: path))) == Bytes(before + media), "\(name)")
        }

        // tmpfs (which refused O_DIRECT before Linux 6.6 and takes it since).
        if FileManager.default.isWritableFile(atPath: "/dev/shm") {
            let path = "/dev/shm/amanat-extract-\(UUID().uuidString)"
            defer { unlink(path) }
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            #expect(fd >= 0)
            try Self.extract(vault, info, record, to: fd, "tmpfs")
            close(fd)
            #expect(Bytes(try Data(contentsOf: URL(fileURLWithPath: path))) == Bytes(media), "tmpfs")
        }

        // A pipe (not a regular file): read on another thread while extract writes.
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let reader = ends[0]
        let collected = Collected()
        let done = DispatchSemaphore(value: 0)
        Thread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(reader, &buffer, buffer.count)
                if n <= 0 { break }
                collected.append(buffer[0..<n])
            }
            done.signal()
        }.start()
        try Self.extract(vault, info, record, to: ends[1], "pipe")
        close(ends[1])
        #expect(done.wait(timeout: .now() + 30) == .success, "the pipe's reader did not finish")
        close(reader)
        #expect(Bytes(collected.bytes) == Bytes(media), "pipe")

        // And as arrays, for bundles.
        var arrays: [UInt8] = []
        try vault.extract(info, record: record, into: { arrays += $0 })
        #expect(Bytes(arrays) == Bytes(media))
    }
}

extension ExtractTests {
    enum Damage: String, CaseIterable { case cut, grown, flipped, swapped }

    /// Damages the stored chunk `index` of `info` as `damage` says.
    static func damage(_ vault: Vault, _ info: AttachmentInfo, chunk index: Int, _ damage: Damage) throws {
        let addresses = try vault.chunkAddresses(of: info)
        let store = vault.chunkStore
        var bytes = try #require(try store.read(addresses[index]))
        switch damage {
        case .cut: bytes.removeLast()
        case .grown: bytes.append(0)
        case .flipped: bytes[bytes.count / 2] ^= 1
        case .swapped: bytes = try #require(try store.read(addresses[index == 0 ? 1 : 0]))
        }
        let victim = store.url(for: addresses[index]).path
        chmod(victim, 0o600)
        try Data(bytes).write(to: URL(fileURLWithPath: victim))
    }

    static let words: [Damage: String] = [
        .cut: "truncated", .grown: "tampered", .flipped: "tampered", .swapped: "swapped",
    ]

    /// A flipped or swapped chunk in the middle, while the file is written directly: the sentence names the chunk and
    /// its problem, nothing of it or after it reaches the file, and the descriptor's flags are as they were.
    @Test(arguments: [UInt32(16384), 5000])
    func aDamagedChunkStopsADirectWriteAtTheChunkBefore(chunkSize: UInt32) throws {
        for damage in [Damage.flipped, .swapped] {
            let dir = try TemporaryDirectory()
            let vault = try makeVault(in: dir)
            let (info, record, media) = try Self.attached(
                vault, dir: dir, size: 4 * Int(chunkSize) + 777, chunkSize: chunkSize)
            try Self.damage(vault, info, chunk: 2, damage)
            let path = dir.url.appendingPathComponent("out").path
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            let flags = fcntl(fd, F_GETFL)
            var message = ""
            do { try vault.extract(info, record: record, to: fd, name: "out") } catch { message = "\(error)" }
            #expect(fcntl(fd, F_GETFL) == flags, "\(damage): flags restored after the failure")
            close(fd)
            #expect(
                message.contains("Chunk 3 of 5") && message.contains("is \(Self.words[damage]!)"),
                "\(damage): \(message)")
            let written = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(written.count <= 2 * Int(chunkSize), "\(damage): bytes of the bad chunk reached the file")
            #expect(written == Array(media.prefix(written.count)), "\(damage)")
        }
    }

    /// Extracts a new attachment of ten 5000-byte chunks (the last one short) and runs `meanwhile` once the first chunk
    /// is handed on, after the completeness check: what was handed on, and the error's sentence.
    static func extractChangedMidway(_ meanwhile: (Vault, AttachmentInfo) throws -> Void) throws -> (
        out: [UInt8], message: String, media: [UInt8]
    ) {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        let (info, record, media) = try Self.attached(vault, dir: dir, size: 9 * 5000 + 777, chunkSize: 5000)
        var out: [UInt8] = []
        var message = ""
        do {
            try vault.extract(
                info, record: record,
                lending: { chunk in
                    if out.isEmpty { try meanwhile(vault, info) }
                    out += Array(chunk)
                })
        } catch { message = "\(error)" }
        return (out, message, media)
    }

    /// Damaged during the extract: a chunk of another length falls back to the exact reading, and every problem is
    /// named as before the direct reads.
    @Test func aChunkDamagedDuringTheExtractIsNamedAsBefore() throws {
        for damage in Damage.allCases {
            let (out, message, media) = try Self.extractChangedMidway { vault, info in
                try Self.damage(vault, info, chunk: 8, damage)
            }
            #expect(
                message.contains("Chunk 9 of 10") && message.contains("is \(Self.words[damage]!)"),
                "\(damage): \(message)")
            #expect(Bytes(out) == Bytes(media.prefix(8 * 5000)), "\(damage)")
        }
    }

    /// A FIFO or a symbolic link put in a chunk's place during the extract: missing, and no hang.
    @Test func aChunkReplacedByAFifoOrALinkIsMissing() throws {
        for fifo in [true, false] {
            // Checked here, not inside: the consumer may run on another thread than the test's (extract hashes a
            // chunk while it is handed on).
            var made: Int32 = -1
            let (_, message, _) = try Self.extractChangedMidway { vault, info in
                let addresses = try vault.chunkAddresses(of: info)
                let victim = vault.chunkStore.url(for: addresses[8]).path
                unlink(victim)
                made = fifo ? mkfifo(victim, 0o600) : symlink(vault.chunkStore.url(for: addresses[0]).path, victim)
            }
            #expect(made == 0)
            #expect(message.contains("Chunk 9 of attachment") && message.contains("is missing"), "\(fifo): \(message)")
        }
    }

    /// Many chunks and a slow consumer: a lent chunk never changes under it (the slots are reused only after).
    @Test func aSlowConsumerSeesEveryChunkIntact() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        let (info, record, media) = try Self.attached(vault, dir: dir, size: 4096 * 200 + 17, chunkSize: 4096)
        for round in 0..<3 {
            var out: [UInt8] = []
            var i = 0
            var changed: [Int] = []
            try vault.extract(
                info, record: record,
                lending: { chunk in
                    if i % 7 == round { usleep(2000) }
                    let copy = Array(chunk)
                    usleep(UInt32(i % 3) * 200)
                    if Bytes(chunk) != Bytes(copy) { changed.append(i) }
                    out += copy
                    i += 1
                })
            #expect(changed.isEmpty, "chunks changed while they were lent: \(changed)")
            #expect(Bytes(out) == Bytes(media))
        }
    }

    /// The writer goes direct only where it can, and gives the descriptor its flags back.
    @Test func theWriterWritesDirectlyOnlyToARegularFileAtAnAlignedOffset() throws {
        let dir = try TemporaryDirectory()
        func direct(_ fd: Int32) -> Bool { fcntl(fd, F_GETFL) & ChunkStore.directFlag != 0 }
        let path = dir.url.appendingPathComponent("out").path
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        defer { close(fd) }
        var writer = DirectFileWriter(fd: fd, name: "out")
        #expect(direct(fd), "a new regular file is written directly")
        let page = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 4096)
        defer { page.deallocate() }
        page.initializeMemory(as: UInt8.self, repeating: 7)
        try writer.write(UnsafeRawBufferPointer(page))
        #expect(direct(fd), "whole pages keep it direct")
        try writer.write(UnsafeRawBufferPointer(rebasing: page[0..<100]))
        #expect(!direct(fd), "a partial page ends it")
        writer.finish()
        #expect(lseek(fd, 0, SEEK_CUR) == 8292)

        #expect(write(fd, [1, 2, 3], 3) == 3)  // now at an unaligned offset
        var unaligned = DirectFileWriter(fd: fd, name: "out")
        #expect(!direct(fd))
        unaligned.finish()
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        var piped = DirectFileWriter(fd: ends[1], name: "pipe")
        #expect(!direct(ends[1]))
        piped.finish()
    }

    /// Authentic, but under an address that is not its content's keyed hash: tampered, and nothing is left in `out`
    /// (the AEAD opened, so only the hash check can clear it).
    @Test func aChunkSealedUnderAnotherAddressLeavesNothingInTheBuffer() throws {
        let keys = ChunkKeys(VaultKey(epoch: 1, root: SecureBytes.random(count: 32)))
        let plaintext = Sodium.randomBytes(5000)
        let address = Sodium.randomBytes(32)
        var sealed = [UInt8](repeating: 0, count: 5000 + ChunkKeys.overhead)
        try plaintext.withUnsafeBytes { p in
            try sealed.withUnsafeMutableBytes { try keys.seal(p, address: address, into: $0) }
        }
        var out = [UInt8](repeating: 0xEE, count: 5000)
        let problem = sealed.withUnsafeBytes { s in
            out.withUnsafeMutableBytes { keys.open(s, address: address, into: $0) }
        }
        #expect(problem?.problem == .tampered)
        #expect(out.allSatisfy { $0 == 0 })
    }
}

/// Bytes a reader thread gathers.
final class Collected: @unchecked Sendable {
    // @unchecked Sendable: guarded by `lock`.
    private let lock = NSLock()
    private var gathered: [UInt8] = []
    func append(_ more: ArraySlice<UInt8>) { lock.withLock { gathered += more } }
    var bytes: [UInt8] { lock.withLock { gathered } }
}
