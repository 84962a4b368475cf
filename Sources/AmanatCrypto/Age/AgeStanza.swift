/// One recipient stanza of an age header: a type, further arguments, and a binary body.
public struct AgeStanza: Sendable, Equatable {
    /// The first argument, naming the recipient type (for example `X25519` or `scrypt`).
    public var type: String
    /// The arguments after the type.
    public var arguments: [String]
    /// The decoded body.
    public var body: [UInt8]

    /// Creates a stanza from its type, further arguments and body.
    public init(type: String, arguments: [String], body: [UInt8]) {
        self.type = type
        self.arguments = arguments
        self.body = body
    }
}

/// Something a file key can be wrapped to: the sending side of an age recipient type.
public protocol AgeRecipient: Sendable {
    /// Wraps the 16-byte file key into one or more stanzas for this recipient.
    func wrap(fileKey: SecureBytes) throws -> [AgeStanza]
}

/// Something that can unwrap a file key from header stanzas: the receiving side of an age recipient type.
public protocol AgeIdentity: Sendable {
    /// Returns the 16-byte file key if a stanza is addressed to this identity, `nil` if none is.
    ///
    /// Throws ``AgeError`` with code `headerFailure` when a stanza of this identity's own type is malformed or
    /// unsafe (such as a low-order X25519 share or a too-high scrypt work factor).
    func unwrap(stanzas: [AgeStanza]) throws -> SecureBytes?
}
