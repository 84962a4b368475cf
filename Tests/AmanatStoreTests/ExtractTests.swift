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
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: path))) == before + media, "\(name)")
        }

        // tmpfs refuses O_DIRECT: ordinary writes.
        if FileManager.default.isWritableFile(atPath: "/dev/shm") {
            let path = "/dev/shm/amanat-extract-\(UUID().uuidString)"
            defer { unlink(path) }
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            #expect(fd >= 0)
            try Self.extract(vault, info, record, to: fd, "tmpfs")
            close(fd)
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: path))) == media, "tmpfs")
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
        #expect(collected.bytes == media, "pipe")

        // And as arrays, for bundles.
        var arrays: [UInt8] = []
        try vault.extract(info, record: record, into: { arrays += $0 })
        #expect(arrays == media)
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
