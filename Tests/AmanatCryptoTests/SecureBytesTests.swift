import AmanatCrypto
import Testing

@Suite("SecureBytes and Sodium helpers")
struct SecureBytesTests {
    @Test("random buffers have the requested size and differ")
    func random() {
        let a = SecureBytes.random(count: 32)
        let b = SecureBytes.random(count: 32)
        #expect(a.count == 32)
        #expect(!a.constantTimeEquals(b))
        #expect(a.copyBytes() != [UInt8](repeating: 0, count: 32))
        let many = Set((0..<64).map { _ in SecureBytes.random(count: 16).copyBytes() })
        #expect(many.count == 64)
        #expect(Sodium.randomBytes(32) != Sodium.randomBytes(32))
        #expect(Sodium.randomBytes(0).isEmpty)
    }

    @Test("a new buffer is zeroed and an initializer fills it in place")
    func zeroedAndFilled() {
        #expect(SecureBytes(count: 40).copyBytes() == [UInt8](repeating: 0, count: 40))
        let filled = SecureBytes(count: 4) { p in
            for i in 0..<4 { p[i] = UInt8(i + 1) }
        }
        #expect(filled.copyBytes() == [1, 2, 3, 4])
        #expect(filled.withUnsafeBytes { Array($0) } == [1, 2, 3, 4])
        #expect(filled.withUnsafePointer { $0[3] } == 4)
    }

    @Test("constructing copies: later changes to the source array do not reach the secret")
    func copySemantics() {
        var source: [UInt8] = [1, 2, 3, 4, 5]
        let secret = SecureBytes(source)
        source[0] = 99
        #expect(secret.copyBytes() == [1, 2, 3, 4, 5])
        var out = secret.copyBytes()
        out[1] = 77
        #expect(secret.copyBytes() == [1, 2, 3, 4, 5])
    }

    @Test("init(consuming:) keeps the bytes and wipes the caller's array")
    func consuming() {
        var source: [UInt8] = [9, 8, 7, 6]
        let secret = SecureBytes(consuming: &source)
        #expect(secret.copyBytes() == [9, 8, 7, 6])
        #expect(source == [0, 0, 0, 0])
    }

    @Test("constantTimeEquals compares contents and lengths")
    func constantTimeEquals() {
        let a = SecureBytes([1, 2, 3, 4])
        #expect(a.constantTimeEquals(SecureBytes([1, 2, 3, 4])))
        #expect(a.constantTimeEquals(a))
        #expect(!a.constantTimeEquals(SecureBytes([1, 2, 3, 5])))
        #expect(!a.constantTimeEquals(SecureBytes([0, 2, 3, 4])))
        #expect(!a.constantTimeEquals(SecureBytes([1, 2, 3])))
        #expect(!a.constantTimeEquals(SecureBytes([1, 2, 3, 4, 0])))
        #expect(SecureBytes([]).constantTimeEquals(SecureBytes(count: 0)))
        #expect(SecureBytes(count: 0).count == 0)
        #expect(SecureBytes(count: 0).copyBytes().isEmpty)
    }

    @Test("Sodium.constantTimeEquals and wipe on plain arrays")
    func sodiumHelpers() {
        #expect(Sodium.constantTimeEquals([1, 2], [1, 2]))
        #expect(!Sodium.constantTimeEquals([1, 2], [1, 3]))
        #expect(!Sodium.constantTimeEquals([1, 2], [1, 2, 0]))
        #expect(Sodium.constantTimeEquals([], []))
        var bytes: [UInt8] = [5, 6, 7]
        Sodium.wipe(&bytes)
        #expect(bytes == [0, 0, 0])
        var empty: [UInt8] = []
        Sodium.wipe(&empty)
        #expect(empty.isEmpty)
    }
}
