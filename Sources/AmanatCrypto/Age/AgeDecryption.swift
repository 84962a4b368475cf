/// How the decryptor treats ASCII armor.
public enum AgeArmorMode: Sendable {
    /// Armored if the input starts with whitespace or `-`, binary otherwise.
    case auto
    /// The input must be a strictly armored age file.
    case armored
    /// The input must be a binary age file.
    case binary
}

/// Streaming age v1 decryption that releases plaintext only chunk by chunk, each after it authenticated.
///
/// ```swift
/// try AgeDecryption.decrypt(input: AgeMemorySource(file), identities: [identity]) { plaintext in
///     try sink.write(plaintext)
/// }
/// ```
/// When decryption fails part-way through the payload, `output` has already received the chunks that
/// authenticated before the failure (never anything after): callers must treat all of it as untrusted and discard
/// it when an error is thrown. That includes a final chunk followed by trailing data, which is reported after
/// the chunk itself was released.
public enum AgeDecryption {
    /// Decrypts an age file read from `input` with the first of `identities` that matches, streaming the plaintext
    /// to `output` one authenticated chunk (at most 64 KiB) at a time.
    public static func decrypt(
        input: some AgeByteSource, identities: [any AgeIdentity], armor: AgeArmorMode = .auto,
        output: ([UInt8]) throws -> Void
    ) throws {
        let reader = try headerReader(input, armor: armor)
        let header = try AgeHeader.parse(from: reader)
        try AgeHeader.validateNativeStanzas(header.stanzas)
        var found: SecureBytes?
        for identity in identities {
            if let key = try identity.unwrap(stanzas: header.stanzas) {
                found = key
                break
            }
        }
        guard let fileKey = found else {
            throw AgeError(.noMatch, "None of the given identities or passphrases can open this age file.")
        }
        guard fileKey.count == AgeStream.fileKeySize else {
            throw AgeError(.headerFailure, "An identity unwrapped a file key that is not 16 bytes long.")
        }
        try header.verifyMAC(fileKey: fileKey)

        let nonce = try reader.read(AgeStream.nonceSize)
        guard nonce.count == AgeStream.nonceSize else {
            throw AgeError(.headerFailure, "The age file is truncated: its payload nonce is missing or short.")
        }
        let payloadKey = try AgeStream.payloadKey(fileKey: fileKey, nonce: nonce)
        try decryptPayload(reader: reader, key: payloadKey, output: output)
    }

    /// The recipient types of an age file's stanzas, in file order (`X25519`, `scrypt`), read from its header
    /// without any identity: enough to tell a file for a recipient from one protected by a passphrase.
    public static func stanzaTypes(input: some AgeByteSource, armor: AgeArmorMode = .auto) throws -> [String] {
        try AgeHeader.parse(from: headerReader(input, armor: armor)).stanzas.map(\.type)
    }

    /// A reader positioned at the header: through the armor decoder when the input is armored (or looks it).
    private static func headerReader(_ input: some AgeByteSource, armor: AgeArmorMode) throws -> AgeBufferedReader {
        let raw = AgeBufferedReader(input)
        let armored: Bool
        switch armor {
        case .armored: armored = true
        case .binary: armored = false
        case .auto:
            let first = try raw.peek(1).first
            armored = first.map { AgeArmor.isWhitespace($0) || $0 == UInt8(ascii: "-") } ?? false
        }
        return armored ? AgeBufferedReader(AgeArmorDecoder(raw)) : raw
    }

    private static func decryptPayload(
        reader: AgeBufferedReader, key: SecureBytes, output: ([UInt8]) throws -> Void
    ) throws {
        var counter: UInt64 = 0
        while true {
            let chunk = try reader.read(AgeStream.encryptedChunkSize)
            if chunk.isEmpty {
                throw AgeError(.payloadFailure, "The age file is truncated: its final chunk is missing.")
            }
            guard chunk.count >= AgeStream.tagSize else {
                throw AgeError(.payloadFailure, "The age file is truncated: its last chunk is shorter than a tag.")
            }
            func open(final: Bool) -> [UInt8]? {
                AgeStream.open(chunk[...], key: key, nonce: AgeStream.chunkNonce(counter: counter, last: final))
            }
            // A short chunk must be the final one; a full chunk is tried as a middle chunk, then as a
            // full-length final chunk.
            var last = chunk.count < AgeStream.encryptedChunkSize
            var plaintext = last ? nil : open(final: false)
            if plaintext == nil {
                last = true
                plaintext = open(final: true)
            }
            guard var plaintext else {
                throw AgeError(
                    .payloadFailure, "The age payload does not authenticate at chunk \(counter): altered or cut.")
            }
            if last && plaintext.isEmpty && counter > 0 {
                throw AgeError(.payloadFailure, "The age file ends with an empty final chunk after other chunks.")
            }
            try output(plaintext)
            Sodium.wipe(&plaintext)
            if last {
                guard try reader.isAtEnd() else {
                    throw AgeError(.payloadFailure, "The age file has trailing data after its final chunk.")
                }
                return
            }
            guard counter < UInt64.max else {
                throw AgeError(.payloadFailure, "The age payload is too long: the chunk counter would overflow.")
            }
            counter += 1
        }
    }

    /// Decrypts a whole age file in memory (binary or armored) and returns its plaintext.
    public static func decrypt(_ file: [UInt8], identities: [any AgeIdentity], armor: AgeArmorMode = .auto) throws
        -> [UInt8]
    {
        var out = [UInt8]()
        try decrypt(input: AgeMemorySource(file), identities: identities, armor: armor) { out += $0 }
        return out
    }
}
