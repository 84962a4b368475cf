/// An error from the cryptographic layer, with a stable code and a sentence a person can act on.
///
/// libsodium return codes never leave this module: each failure is mapped to one ``Code``.
public struct CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stable kind of failure.
    public enum Code: String, Sendable {
        /// libsodium could not be initialised.
        case unavailable
        /// Authenticated decryption failed: wrong key, or the data or its associated data was altered.
        case authenticationFailed
        /// A signature did not verify.
        case badSignature
        /// A key, nonce or other input had the wrong length or form.
        case invalidInput
        /// Secure memory could not be allocated, or the KDF could not get its memory.
        case outOfMemory
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong, in one sentence.
    public var message: String

    /// Creates an error with a code and a message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
