import CSodium

/// An age passphrase recipient: wraps the file key under a key derived from a passphrase with scrypt.
///
/// An scrypt recipient must be the only recipient of a file; ``AgeEncryptor`` enforces this.
public struct AgeScryptRecipient: AgeRecipient, Sendable {
    /// The accepted range of the base-two log of the scrypt work factor N.
    public static let workFactorRange = 1...30

    private let passphrase: SecureBytes
    /// The base-two logarithm of the scrypt work factor N (memory is 2^workFactor KiB).
    public let workFactor: Int

    /// Creates a recipient for `passphrase` with scrypt N = 2^`workFactor`, r = 8, p = 1.
    public init(passphrase: SecureBytes, workFactor: Int = 18) throws {
        guard passphrase.count > 0 else { throw AgeError(.invalidKey, "An age passphrase must not be empty.") }
        guard Self.workFactorRange.contains(workFactor) else {
            throw AgeError(.invalidUse, "An age scrypt work factor must be between 1 and 30.")
        }
        self.passphrase = passphrase
        self.workFactor = workFactor
    }

    /// Wraps the file key in one scrypt stanza with a fresh 16-byte salt.
    public func wrap(fileKey: SecureBytes) throws -> [AgeStanza] {
        let salt = Sodium.randomBytes(AgeScryptIdentity.saltSize)
        let wrapKey = try AgeScryptIdentity.deriveKey(passphrase: passphrase, salt: salt, workFactor: workFactor)
        let body = AgeStream.wrapFileKey(fileKey, wrapKey: wrapKey)
        let saltText = String(decoding: AgeBase64.encodeUnpadded(salt), as: UTF8.self)
        return [AgeStanza(type: AgeScryptIdentity.stanzaType, arguments: [saltText, String(workFactor)], body: body)]
    }
}
