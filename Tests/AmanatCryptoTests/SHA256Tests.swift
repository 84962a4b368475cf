import AmanatCrypto
import Testing

@Suite("SHA-256")
struct SHA256Tests {
    @Test("FIPS 180-4 examples: \"abc\", the empty string, the 448-bit message and a million a's")
    func knownAnswers() {
        #expect(
            Hex.encode(SHA256.hash(Array("abc".utf8)))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            Hex.encode(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            Hex.encode(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        let hasher = SHA256.Hasher()
        let thousand = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<1000 { hasher.update(thousand) }
        #expect(
            Hex.encode(hasher.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("hashing in pieces of any size, from arrays or buffers, equals hashing at once")
    func pieces() {
        let message = Sodium.deterministicBytes(300_007, seed: [UInt8](repeating: 3, count: 32))
        let whole = SHA256.hash(message)
        for step in [1, 63, 64, 65, 4096, 100_000] {
            let hasher = SHA256.Hasher()
            var start = 0
            var useBuffer = false
            while start < message.count {
                let end = min(start + step, message.count)
                if useBuffer {
                    message[start..<end].withUnsafeBytes { hasher.update($0) }
                } else {
                    hasher.update(Array(message[start..<end]))
                }
                useBuffer.toggle()
                start = end
            }
            #expect(hasher.finalize() == whole, "step \(step)")
        }
    }
}
