import CSodium

/// An age passphrase identity: unwraps scrypt stanzas with a passphrase, refusing work factors above a limit.
public struct AgeScryptIdentity: AgeIdentity, Sendable {
    static let stanzaType = "scrypt"
    static let saltLabel = "age-encryption.org/v1/scrypt"
    static let saltSize = 16

    private let passphrase: SecureBytes
    /// The largest base-two log of the scrypt work factor this identity will compute (22 means 4 GiB of memory).
    public let maxWorkFactor: Int

    /// Creates an identity for `passphrase` that rejects files whose work factor exceeds `maxWorkFactor`.
    public init(passphrase: SecureBytes, maxWorkFactor: Int = 22) throws {
        guard AgeScryptRecipient.workFactorRange.contains(maxWorkFactor) else {
            throw AgeError(.invalidUse, "An age scrypt maximum work factor must be between 1 and 30.")
        }
        self.passphrase = passphrase
        self.maxWorkFactor = maxWorkFactor
    }

    /// Checks an scrypt stanza's structure and returns its salt and work factor.
    static func parseStanza(_ stanza: AgeStanza) throws -> (salt: [UInt8], workFactor: Int) {
        guard stanza.arguments.count == 2 else {
            throw AgeError(.headerFailure, "An age scrypt stanza must have exactly two arguments after its type.")
        }
        guard let salt = AgeBase64.decodeUnpadded(stanza.arguments[0].utf8), salt.count == saltSize else {
            throw AgeError(.headerFailure, "An age scrypt stanza's salt is not canonical base64 of 16 bytes.")
        }
        let digits = Array(stanza.arguments[1].utf8)
        guard let first = digits.first, (0x31...0x39).contains(first), digits.allSatisfy({ (0x30...0x39).contains($0) })
        else {
            throw AgeError(.headerFailure, "An age scrypt stanza's work factor is not a decimal without leading zeros.")
        }
        // Two digits are enough for any work factor that can be computed; longer ones are rejected before parsing.
        guard digits.count <= 2, let workFactor = Int(stanza.arguments[1]) else {
            throw AgeError(.headerFailure, "An age scrypt stanza's work factor is out of range.")
        }
        guard stanza.body.count == AgeStream.fileKeySize + AgeStream.tagSize else {
            throw AgeError(.headerFailure, "An age scrypt stanza's body is not exactly 32 bytes.")
        }
        return (salt, workFactor)
    }

    /// The scrypt wrap key for a passphrase, 16-byte salt and work factor (N = 2^workFactor, r = 8, p = 1).
    static func deriveKey(passphrase: SecureBytes, salt: [UInt8], workFactor: Int) throws -> SecureBytes {
        Sodium.ensureInitialized()
        let fullSalt = Array(saltLabel.utf8) + salt
        var rc: Int32 = -1
        let key = SecureBytes(count: 32) { out in
            passphrase.withUnsafePointer { p in
                rc = crypto_pwhash_scryptsalsa208sha256_ll(
                    p, passphrase.count, fullSalt, fullSalt.count, UInt64(1) << UInt64(workFactor), 8, 1, out, 32)
            }
        }
        guard rc == 0 else {
            throw AgeError(.outOfMemory, "Not enough memory to compute scrypt at work factor \(workFactor).")
        }
        return key
    }

    /// Returns the file key if the header's single scrypt stanza opens with this passphrase, or nil.
    public func unwrap(stanzas: [AgeStanza]) throws -> SecureBytes? {
        guard stanzas.contains(where: { $0.type == Self.stanzaType }) else { return nil }
        guard stanzas.count == 1 else {
            throw AgeError(.headerFailure, "An age scrypt stanza must be the only stanza in the header.")
        }
        let (salt, workFactor) = try Self.parseStanza(stanzas[0])
        guard workFactor <= maxWorkFactor else {
            throw AgeError(
                .headerFailure,
                "The age file's scrypt work factor \(workFactor) is above the accepted maximum of \(maxWorkFactor).")
        }
        let wrapKey = try Self.deriveKey(passphrase: passphrase, salt: salt, workFactor: workFactor)
        return AgeStream.unwrapFileKey(stanzas[0].body, wrapKey: wrapKey)
    }
}
