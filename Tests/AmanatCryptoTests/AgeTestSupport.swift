import Foundation
import Testing

@testable import AmanatCrypto

/// Shared helpers for the age test suites.
enum AgeTestSupport {
    /// The folder holding the CCTV age vectors, found relative to this source file (inside the repository).
    static let vectorsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Vectors/age-cctv")

    /// The outcome of a decryption: the failure code (nil on success) and every plaintext byte released.
    struct Outcome {
        var code: AgeError.Code?
        var released: [UInt8]
        var chunkSizes: [Int]
    }

    /// Decrypts `file`, capturing released plaintext even when decryption fails.
    static func decrypt(_ file: [UInt8], identities: [any AgeIdentity], armor: AgeArmorMode = .auto) -> Outcome {
        var outcome = Outcome(code: nil, released: [], chunkSizes: [])
        do {
            try AgeDecryption.decrypt(input: AgeMemorySource(file), identities: identities, armor: armor) { chunk in
                outcome.released += chunk
                outcome.chunkSizes.append(chunk.count)
            }
        } catch let error as AgeError {
            outcome.code = error.code
        } catch {
            Issue.record("unexpected non-age error: \(error)")
        }
        return outcome
    }

    /// Runs `body` and returns the code of the `AgeError` it throws, or nil if it succeeds.
    static func code(_ body: () throws -> Void) -> AgeError.Code? {
        do {
            try body()
            return nil
        } catch let error as AgeError {
            return error.code
        } catch {
            Issue.record("unexpected non-age error: \(error)")
            return nil
        }
    }

    /// Deterministic test plaintext of `count` bytes.
    static func plaintext(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
        var state = UInt32(seed) &* 2_654_435_761 &+ 1
        return (0..<count).map { _ in
            state = state &* 1_103_515_245 &+ 12345
            return UInt8(truncatingIfNeeded: state >> 16)
        }
    }

    /// The length of the binary header (through the MAC line's LF) of an age file.
    static func headerLength(_ file: [UInt8]) -> Int {
        let marker = Array("\n---".utf8)
        guard file.count >= marker.count else { return file.count }
        for i in 0...(file.count - marker.count) where Array(file[i..<(i + marker.count)]) == marker {
            if let lf = file[(i + 1)...].firstIndex(of: 0x0a) { return lf + 1 }
        }
        return file.count
    }

    /// A fast passphrase recipient (work factor 10) for tests.
    static func scryptRecipient(_ passphrase: String) throws -> AgeScryptRecipient {
        try AgeScryptRecipient(passphrase: SecureBytes(Array(passphrase.utf8)), workFactor: 10)
    }

    /// A passphrase identity for tests.
    static func scryptIdentity(_ passphrase: String) throws -> AgeScryptIdentity {
        try AgeScryptIdentity(passphrase: SecureBytes(Array(passphrase.utf8)))
    }
}
