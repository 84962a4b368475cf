/// An error from the age implementation, with a stable failure class and a sentence a person can act on.
///
/// The decryption codes map one-to-one onto the `expect:` classes of the C2SP CCTV age test vectors:
/// `noMatch` ↔ "no match", `headerFailure` ↔ "header failure", `hmacFailure` ↔ "HMAC failure",
/// `payloadFailure` ↔ "payload failure", `armorFailure` ↔ "armor failure". Errors thrown by the caller's own
/// input source or output closure are passed through unchanged, never wrapped in an `AgeError`.
public struct AgeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stable class of failure.
    public enum Code: String, Sendable, CaseIterable {
        /// No identity or passphrase could unwrap the file key (CCTV "no match").
        case noMatch
        /// The header is malformed, unsupported or unsafe to process (CCTV "header failure").
        case headerFailure
        /// The header MAC did not verify: the header was altered (CCTV "HMAC failure").
        case hmacFailure
        /// The encrypted payload is altered, truncated or has trailing data (CCTV "payload failure").
        case payloadFailure
        /// The ASCII armor is not strictly well-formed (CCTV "armor failure").
        case armorFailure
        /// A recipient or identity string or key is malformed.
        case invalidKey
        /// The API was used in a way the format forbids (for example an scrypt recipient mixed with others).
        case invalidUse
        /// Memory for the scrypt work factor could not be obtained.
        case outOfMemory
    }

    /// The class of failure.
    public var code: Code
    /// What went wrong, in one sentence.
    public var message: String

    /// Creates an error with a code and a message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message, for logs and user interfaces.
    public var description: String { message }
}
