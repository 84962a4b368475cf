import CSodium

/// Parsing, validation and encoding of the age v1 text header.
struct AgeHeader {
    /// The header lines up to and including the `---` that the MAC covers.
    var macInput: [UInt8]
    /// The recipient stanzas in file order.
    var stanzas: [AgeStanza]
    /// The 32-byte MAC from the `---` line.
    var mac: [UInt8]

    static let versionPrefix = Array("age-encryption.org/".utf8)
    static let versionLine = Array("age-encryption.org/v1\n".utf8)
    /// The largest header this implementation reads (1 MiB); larger headers are rejected.
    static let maxHeaderLength = 1 << 20
    static let columns = 64

    private static func failure(_ message: String) -> AgeError { AgeError(.headerFailure, message) }

    /// Reads and syntactically checks a v1 header, leaving `reader` at the start of the payload.
    static func parse(from reader: AgeBufferedReader) throws -> AgeHeader {
        let prefix = try reader.peek(versionPrefix.count)
        guard prefix.elementsEqual(versionPrefix) else {
            throw failure("The input is not an age file: it does not start with the age version line.")
        }
        var raw = [UInt8]()
        func nextLine() throws -> [UInt8] {
            let remaining = maxHeaderLength - raw.count
            guard remaining > 0,
                let (line, terminated) = try reader.readLine(
                    maxLength: remaining, tooLong: failure("The age header is larger than the accepted 1 MiB."))
            else {
                throw failure("The age file is truncated inside its header.")
            }
            guard terminated else { throw failure("The age file is truncated inside its header.") }
            raw += line
            return Array(line.dropLast())
        }

        let version = try nextLine()
        guard version == Array(versionLine.dropLast()) else {
            throw failure("The age file uses an unsupported format version; only age-encryption.org/v1 is supported.")
        }
        var stanzas = [AgeStanza]()
        while true {
            let lineStart = raw.count
            let line = try nextLine()
            if line.starts(with: Array("-> ".utf8)) {
                stanzas.append(try parseStanza(arguments: line.dropFirst(3), nextLine: nextLine))
            } else if line.starts(with: Array("---".utf8)) {
                guard !stanzas.isEmpty else { throw failure("The age header has no recipient stanza.") }
                guard line.count == 4 + 43, line[3] == UInt8(ascii: " "),
                    let mac = AgeBase64.decodeUnpadded(line[4...]), mac.count == 32
                else {
                    throw failure("The age header's MAC line is malformed.")
                }
                let macInput = Array(raw[..<(lineStart + 3)])
                return AgeHeader(macInput: macInput, stanzas: stanzas, mac: mac)
            } else {
                throw failure("The age header has a line that is neither a stanza nor the MAC line.")
            }
        }
    }

    private static func parseStanza(arguments: ArraySlice<UInt8>, nextLine: () throws -> [UInt8]) throws -> AgeStanza {
        let parts = arguments.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        for part in parts {
            guard !part.isEmpty, part.allSatisfy({ (0x21...0x7e).contains($0) }) else {
                throw failure("An age header stanza has an empty or non-printable argument.")
            }
        }
        var text = [UInt8]()
        while true {
            let line = try nextLine()
            guard line.count <= columns, line.allSatisfy(AgeBase64.isAlphabet) else {
                throw failure("An age header stanza body line is too long or not base64.")
            }
            text += line
            if line.count < columns { break }
        }
        guard let body = AgeBase64.decodeUnpadded(text) else {
            throw failure("An age header stanza body is not canonical base64.")
        }
        let strings = parts.map { String(decoding: $0, as: UTF8.self) }
        return AgeStanza(type: strings[0], arguments: Array(strings.dropFirst()), body: body)
    }

    /// Checks the native stanza types' structure and the scrypt-alone rule, whatever identities are at hand.
    static func validateNativeStanzas(_ stanzas: [AgeStanza]) throws {
        for stanza in stanzas {
            switch stanza.type {
            case AgeX25519Identity.stanzaType: _ = try AgeX25519Identity.parseStanza(stanza)
            case AgeScryptIdentity.stanzaType:
                guard stanzas.count == 1 else {
                    throw failure("An age scrypt stanza must be the only stanza in the header.")
                }
                _ = try AgeScryptIdentity.parseStanza(stanza)
            default: break
            }
        }
    }

    /// Encodes a header for `stanzas` and authenticates it with a MAC keyed from `fileKey`.
    static func encode(stanzas: [AgeStanza], fileKey: SecureBytes) throws -> [UInt8] {
        guard !stanzas.isEmpty else { throw AgeError(.invalidUse, "An age file needs at least one recipient.") }
        var out = versionLine
        for stanza in stanzas {
            let words = [stanza.type] + stanza.arguments
            for word in words {
                guard !word.isEmpty, word.utf8.allSatisfy({ (0x21...0x7e).contains($0) }) else {
                    throw AgeError(.invalidUse, "A recipient made a stanza argument that is empty or not printable.")
                }
            }
            out += Array("-> ".utf8) + Array(words.joined(separator: " ").utf8) + [0x0a]
            let text = AgeBase64.encodeUnpadded(stanza.body)
            var index = 0
            while true {
                let end = min(index + columns, text.count)
                out += text[index..<end]
                out.append(0x0a)
                if end - index < columns { break }
                index = end
            }
        }
        out += Array("---".utf8)
        let mac = try headerMAC(out, fileKey: fileKey)
        out += Array(" ".utf8) + AgeBase64.encodeUnpadded(mac) + [0x0a]
        return out
    }

    /// The HMAC-SHA-256 of the header under HKDF(file key, "", "header").
    static func headerMAC(_ macInput: [UInt8], fileKey: SecureBytes) throws -> [UInt8] {
        let key = try HKDF.deriveKey(ikm: fileKey, salt: [], info: Array("header".utf8))
        return HMACSHA256.authenticate(macInput, key: key)
    }

    /// Verifies the header MAC in constant time.
    func verifyMAC(fileKey: SecureBytes) throws {
        let expected = try Self.headerMAC(macInput, fileKey: fileKey)
        guard Sodium.constantTimeEquals(expected, mac) else {
            throw AgeError(.hmacFailure, "The age header's MAC does not verify: the header was altered.")
        }
    }
}
