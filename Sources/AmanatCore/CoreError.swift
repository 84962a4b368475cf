/// An error from the core: malformed bytes, a broken chain, a forged or misplaced envelope.
public struct CoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stable kind of failure.
    public enum Code: String, Sendable {
        /// Bytes do not decode as the format they claim to be.
        case malformed
        /// The format version is not one this build understands.
        case unsupportedVersion
        /// An envelope belongs to another vault.
        case wrongVault
        /// An envelope's sequence number or previous hash does not continue its device's chain.
        case brokenChain
        /// A signature does not verify.
        case badSignature
        /// The ciphertext does not match the hash the signature covers, or does not decrypt.
        case tampered
        /// The key epoch of an envelope is not one this vault has.
        case unknownKeyEpoch
        /// A change would make an envelope over ``Envelope/maximumLength``.
        case tooLarge
        /// The envelope's ciphertext was destroyed by a coordinator's purge.
        case purged
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong, in one sentence.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
