import AmanatCore
import AmanatCrypto
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatStore

@Suite struct ChunkStoreTests {
    /// Chunks written from page-aligned memory (whole pages with O_DIRECT, the last partial page through the page
    /// cache) and from ordinary arrays read back byte for byte and open, whatever their length; on tmpfs too
    /// (which takes O_DIRECT on recent kernels and refused it on older ones).
    /// A chunk that does not authenticate (one bit flipped on the disk) is set aside: its address then counts as
    /// missing, the damaged bytes stay beside it, and `purge`'s removal destroys them with the chunk.
    @Test func aDamagedChunkIsSetAsideAsMissingAndRemovedWithItsAddress() throws {
        let dir = try TemporaryDirectory()
        let store = ChunkStore(root: dir.url.appendingPathComponent("chunks"))
        let keys = ChunkKeys(VaultKey(epoch: 1, root: SecureBytes.random(count: 32)))
        let plaintext = Sodium.randomBytes(5000)
        let (address, sealed) = try keys.seal(plaintext)
        #expect(keys.authenticates(sealed, address: address, length: plaintext.count))
        for index in [0, 4, 5, 36, 37, sealed.count / 2, sealed.count - 1] {
            var damaged = sealed
            damaged[index] ^= 0x01
            #expect(!keys.authenticates(damaged, address: address, length: plaintext.count), "byte \(index)")
        }
        #expect(!keys.authenticates(sealed, address: address, length: plaintext.count + 1))
        #expect(!keys.authenticates(Array(sealed.dropLast()), address: address, length: plaintext.count))
        var otherAddress = address
        otherAddress[31] ^= 0x01
        #expect(!keys.authenticates(sealed, address: otherAddress, length: plaintext.count))

        try store.write(address, sealed: sealed)
        try store.setAside(address)
        #expect(!store.has(address, sealedLength: sealed.count))
        #expect(store.addresses().isEmpty)
        #expect(try Data(contentsOf: store.damagedURL(for: address)) == Data(sealed))
        try store.write(address, sealed: sealed)
        #expect(store.remove([address]) == 1)
        #expect(!FileManager.default.fileExists(atPath: store.damagedURL(for: address).path))
        #expect(!store.has(address, sealedLength: sealed.count))
    }

    /// A member signs an `attach` that lists another attachment's good chunk with another chunk size: `verify` names
    /// the chunk as not what that attachment says, but does not set it aside: whole on its own terms, it stays the
    /// evidence of the attachment it belongs to, which is still complete and extracts.
    @Test func aGoodChunkListedWrongByAnotherAttachmentStaysInPlace() throws {
        let dir = try TemporaryDirectory()
        let vault = try Vault.create(
            at: dir.url.appendingPathComponent("v"), passphrase: SecureBytes(Array("pw".utf8)), deviceName: "a",
            strength: .interactive)
        let record = try vault.createRecord(kind: "testimony", fields: [("witness", "W-1")], tags: [], seal: false)
        let media = Sodium.randomBytes(10_000)
        let stored = try vault.storeTestFile(media, name: "a.bin", in: dir)
        let honest = try vault.attach(record: record, spec: stored.spec)
        let address = try #require(stored.spec.chunks.first)
        let wrong = AttachmentSpec(
            epoch: stored.spec.epoch, size: 4096, sha256: SHA256.hash(Array(media.prefix(4096))),
            mediaType: "application/octet-stream", name: "b.bin", note: "", metadataFlags: 0, chunkSize: 4096,
            chunks: [address])
        _ = try vault.attach(record: record, spec: wrong)
        let report = try vault.verify(settingAsideDamagedChunks: true)
        #expect(report.problems.contains { $0.contains("chunk 1 of 1 is") }, "\(report.problems)")
        #expect(!report.problems.contains { $0.contains("set aside") }, "\(report.problems)")
        #expect(vault.chunkStore.has(address, sealedLength: 10_000 + ChunkKeys.overhead))
        #expect(try vault.presence(of: honest).present == 1)
        var out: [UInt8] = []
        try vault.extract(honest, record: record) { out += $0 }
        #expect(out == media)
        // A chunk damaged on its own terms is set aside.
        var bytes = try Data(contentsOf: vault.chunkStore.url(for: address))
        bytes[100] ^= 1
        try bytes.write(to: vault.chunkStore.url(for: address))
        #expect(vault.isDamagedOnItsOwnTerms(Array(bytes), address: address))
        let again = try vault.verify(settingAsideDamagedChunks: true)
        #expect(again.problems.contains { $0.contains("set aside") }, "\(again.problems)")
        #expect(try vault.presence(of: honest).present == 0)
    }

    @Test func chunksWrittenWithAndWithoutODirectReadBackExactly() throws {
        let dir = try TemporaryDirectory()
        var roots = [dir.url.appendingPathComponent("chunks")]
        let shm = URL(fileURLWithPath: "/dev/shm/amanat-chunks-\(UUID().uuidString)")
        if FileManager.default.isWritableFile(atPath: "/dev/shm") { roots.append(shm) }
        defer { try? FileManager.default.removeItem(at: shm) }
        let keys = ChunkKeys(VaultKey(epoch: 1, root: SecureBytes.random(count: 32)))
        for root in roots {
            let store = ChunkStore(root: root)
            try store.prepareTemporaryFolder()
            var pending: [ChunkStore.PendingChunk] = []
            var expected: [([UInt8], [UInt8], Int)] = []
            for length in [1, 4096 - ChunkKeys.overhead, 4096, 8192 - ChunkKeys.overhead + 1, 1 << 20] {
                let plaintext = Sodium.randomBytes(length)
                let (address, sealed) = try keys.seal(plaintext)
                let aligned = UnsafeMutableRawBufferPointer.allocate(byteCount: sealed.count, alignment: 4096)
                defer { aligned.deallocate() }
                try plaintext.withUnsafeBytes { try keys.seal($0, address: address, into: aligned) }
                #expect(Array(aligned) == sealed)
                let chunk = try store.writeTemporary(address, sealed: UnsafeRawBufferPointer(aligned))
                pending.append(chunk)
                expected.append((address, sealed, length))
            }
            let plain = Sodium.randomBytes(70_000)
            let (plainAddress, plainSealed) = try keys.seal(plain)
            pending.append(try store.writeTemporary(plainAddress, sealed: plainSealed))
            expected.append((plainAddress, plainSealed, plain.count))
            store.syncFolders(try store.commit(pending))
            for (address, sealed, length) in expected {
                #expect(try store.read(address) == sealed, "\(root.path), \(length) bytes")
                #expect((try? keys.open(sealed, address: address, length: length).get()) != nil)
                // Read back as extract reads it (O_DIRECT where the file system allows it, plainly elsewhere) into
                // page-aligned memory; a file of another length is left to the exact reading.
                let memory = UnsafeMutableRawBufferPointer.allocate(
                    byteCount: (sealed.count + 1 + 4095) & ~4095, alignment: 4096)
                defer { memory.deallocate() }
                let into = UnsafeMutableRawBufferPointer(rebasing: memory[0..<sealed.count])
                #expect(try store.read(address, into: into) == .read, "\(root.path), \(length) bytes")
                #expect(Array(into) == sealed, "\(root.path), \(length) bytes")
                let longer = UnsafeMutableRawBufferPointer(rebasing: memory[0..<sealed.count + 1])
                #expect(try store.read(address, into: longer) == .otherLength)
                var missing = address
                missing[31] ^= 1
                #expect(try store.read(missing, into: into) == .missing)
            }
            let leftover = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(".tmp").path)
            #expect(leftover.isEmpty)
        }
    }
}
