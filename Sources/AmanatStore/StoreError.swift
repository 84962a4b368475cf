/// An error from the vault store, with a stable code the command line maps to an exit status.
public struct StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stable kind of failure.
    public enum Code: String, Sendable {
        /// There is no vault in the directory.
        case noVault
        /// A vault already exists in the directory.
        case vaultExists
        /// The passphrase does not unlock the keyring.
        case wrongPassphrase
        /// A vault file is damaged or was tampered with.
        case damaged
        /// No visible record has this id or prefix.
        case unknownID
        /// Several records share this prefix.
        case ambiguousID
        /// Input data was refused (a forged, foreign or malformed envelope, a fork).
        case rejected
        /// The disk is full.
        case diskFull
        /// Another input/output failure.
        case io
        /// The vault is busy in another process.
        case busy
        /// This device's role does not allow the action (a reader writing, a member revoking, a revoked device).
        case notAllowed
        /// The request is well formed but not valid here (an unknown device, the last coordinator).
        case invalid
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong, in one sentence that says what to do.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
