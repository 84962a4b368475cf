import AmanatCore
import AmanatCrypto
import Foundation

/// A one-time invitation to join a vault: its keys, the invitation key that proves the join, and the inviter's
/// membership entries, encrypted under a random code that is passed on separately (Protocol/invitation.md).
///
/// ```swift
/// let code = try Invitation.write(try vault.invite(role: .member, validFor: 7 * 86_400), to: url)
/// let grant = try Invitation.read(from: url, code: code, now: now)
/// let joined = try Vault.join(grant, at: dir, passphrase: pass, deviceName: "laptop", strength: .moderate)
/// ```
public enum Invitation {
    static let magic: [UInt8] = Array("AMNV".utf8)
    static let formatVersion: UInt8 = 2
    /// Bytes of randomness in a code (120 bits).
    static let codeLength = 15
    /// The largest invitation file read (membership entries of a large team fit many times over).
    static let maximumSize = 16 << 20

    /// Writes the invitation, returning the code to pass on by another channel.
    public static func write(_ grant: InvitationGrant, to url: URL) throws -> String {
        let code = Sodium.randomBytes(codeLength)
        var secret = plaintext(of: grant)
        defer { Sodium.wipe(&secret) }
        try AtomicFile.write(try seal(secret, code: code), to: url)
        return Base32.groupedCode(code)
    }

    /// The secret plaintext of an invitation file (Protocol/invitation.md).
    package static func plaintext(of grant: InvitationGrant) -> [UInt8] {
        var plain = ByteWriter(capacity: 1024)
        plain.write(raw: grant.vaultID)
        plain.write(bigEndian: grant.expiresAt)
        plain.write(raw: grant.inviter.bytes)
        plain.write(string: grant.inviterName)
        plain.write(varint: UInt64(grant.keys.count))
        for key in grant.keys {
            plain.write(bigEndian: key.epoch)
            plain.write(raw: key.root.copyBytes())
        }
        plain.write(grant.role.rawValue)
        plain.write(raw: grant.secret.seed.copyBytes())
        plain.write(bigEndian: grant.stamp.wallMillis)
        plain.write(bigEndian: grant.stamp.counter)
        plain.write(varint: UInt64(grant.authority.count))
        for envelope in grant.authority { plain.write(lengthPrefixed: envelope.encoded()) }
        return plain.bytes
    }

    /// The file bytes: the header, then `plaintext` sealed under a key derived from `code` and a fresh salt.
    package static func seal(_ plaintext: [UInt8], code: [UInt8]) throws -> [UInt8] {
        let salt = Sodium.randomBytes(16)
        let nonce = AEAD.randomNonce()
        var header = ByteWriter()
        header.write(raw: magic)
        header.write(formatVersion)
        header.write(raw: salt)
        header.write(raw: nonce)
        header.write(bigEndian: UInt32(plaintext.count + AEAD.tagLength))
        let sealed = try AEAD.seal(
            plaintext, additionalData: header.bytes, nonce: nonce, key: wrappingKey(code: code, salt: salt))
        return header.bytes + sealed
    }

    /// The code as it is written down: base32 in groups of 4.
    package static func codeText(_ code: [UInt8]) -> String { Base32.groupedCode(code) }

    static func wrappingKey(code: [UInt8], salt: [UInt8]) -> SecureBytes {
        BLAKE2b.deriveKey(from: SecureBytes(code), message: Array("amanat/invite/v1".utf8) + salt)
    }

    /// Reads and opens an invitation with its code; a wrong code, a damaged file and expiry are told apart.
    public static func read(from url: URL, code text: String, now: UInt64) throws -> InvitationGrant {
        if let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int,
            size > maximumSize
        {
            throw StoreError(.damaged, "\(url.path) is not an Amanat invitation: it is far too large.")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw StoreError(.noVault, "The invitation file \(url.path) cannot be read.")
        }
        if let problem = Base32.codeProblem(text, length: codeLength) { throw StoreError(.invalid, problem) }
        guard let code = Base32.decodeCode(text), code.count == codeLength else {
            throw StoreError(.invalid, "That is not an invitation code.")
        }
        let bytes = Array(data)
        let damaged = StoreError(.damaged, "\(url.path) is not an Amanat invitation, or it is damaged.")
        var r = ByteReader(bytes)
        do {
            guard try r.read(count: 4) == magic else { throw damaged }
            let version = try r.readByte()
            guard version == formatVersion else {
                throw StoreError(
                    .damaged,
                    version == 1
                        ? "This invitation was written by an older version of Amanat; ask for a new one."
                        : "This invitation was written by a newer version of Amanat; update Amanat.")
            }
            let salt = try r.read(count: 16)
            let nonce = try r.read(count: 24)
            let length = Int(try r.read(bigEndian: UInt32.self))
            guard length == bytes.count - 49 else { throw damaged }
            var plain: [UInt8]
            do {
                plain = try AEAD.open(
                    Array(bytes[49...]), additionalData: Array(bytes[..<49]), nonce: nonce,
                    key: wrappingKey(code: code, salt: salt))
            } catch {
                throw StoreError(
                    .wrongPassphrase,
                    "The invitation code does not open this invitation (wrong code, or the file was altered).")
            }
            defer { Sodium.wipe(&plain) }
            var p = ByteReader(plain)
            let vaultID = try p.read(count: 16)
            let expires = try p.read(bigEndian: UInt64.self)
            let inviter = try DeviceID(p.read(count: 32))
            let name = try p.readString()
            var keys: [VaultKey] = []
            for _ in 0..<(try p.readCount(minimumElementSize: 36)) {
                let epoch = try p.read(bigEndian: UInt32.self)
                var raw = try p.read(count: 32)
                keys.append(VaultKey(epoch: epoch, root: SecureBytes(consuming: &raw)))
            }
            guard let role = Role(rawValue: try p.readByte()) else { throw damaged }
            var seed = try p.read(count: 32)
            let secret = try SigningKeyPair(seed: SecureBytes(consuming: &seed))
            let stamp = HLCTimestamp(
                wallMillis: try p.read(bigEndian: UInt64.self), counter: try p.read(bigEndian: UInt32.self))
            var authority: [Envelope] = []
            for _ in 0..<(try p.readCount(minimumElementSize: EnvelopeHeader.length + 64)) {
                authority.append(try Envelope(decoding: try p.readLengthPrefixed()))
            }
            guard !keys.isEmpty, p.isAtEnd else { throw damaged }
            guard now <= expires else {
                let date = Date(timeIntervalSince1970: Double(expires) / 1000).ISO8601Format()
                throw StoreError(.rejected, "This invitation expired at \(date); ask for a new one.")
            }
            return InvitationGrant(
                vaultID: vaultID, keys: keys, inviter: inviter, inviterName: name, role: role, expiresAt: expires,
                secret: secret, stamp: stamp, authority: authority)
        } catch let error as StoreError {
            throw error
        } catch {
            throw damaged
        }
    }
}

/// RFC 4648 base32 for invitation codes, grouped by 4 for reading aloud.
package enum Base32 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

    package static func groupedCode(_ bytes: [UInt8]) -> String {
        var bits = 0
        var value = 0
        var out: [Character] = []
        for b in bytes {
            value = value << 8 | Int(b)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[(value >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[(value << (5 - bits)) & 31]) }
        return stride(from: 0, to: out.count, by: 4).map { String(out[$0..<min($0 + 4, out.count)]) }
            .joined(separator: "-")
    }

    /// Digits that are not in the alphabet but are read for the letter they look like: a code is read aloud and
    /// copied by hand, and `0` and `8` can only have meant `O` and `B`. (`1` could be `I` or `L`: ``codeProblem``
    /// asks.)
    static let lookalikes: [Character: Character] = ["0": "O", "8": "B"]

    /// Why `text` cannot be a code of `length` bytes, in words a person copying it can act on; nil when it can.
    static func codeProblem(_ text: String, length: Int) -> String? {
        let characters = text.uppercased().filter { $0 != "-" && $0 != " " }.map { lookalikes[$0] ?? $0 }
        if let odd = characters.first(where: { !alphabet.contains($0) }) {
            let shown = odd.isASCII && !odd.isWhitespace && !odd.isNewline ? "'\(odd)'" : "a character"
            let hint = odd == "1" ? " (a 1 is probably an I or an L)" : ""
            return
                "That is not an invitation code: it holds \(shown)\(hint), and a code has only the letters A to Z and the digits 2 to 7; read it again."
        }
        let expected = (length * 8 + 4) / 5
        guard characters.count == expected else {
            return
                "That is not an invitation code: it has \(characters.count) letters and digits, and a code has \(expected) (in groups of 4); read it again."
        }
        return nil
    }

    static func decodeCode(_ text: String) -> [UInt8]? {
        var bits = 0
        var value = 0
        var out: [UInt8] = []
        for c in text.uppercased() where c != "-" && c != " " {
            guard let index = alphabet.firstIndex(of: lookalikes[c] ?? c) else { return nil }
            value = (value << 5 | index) & 0xffff
            bits += 5
            if bits >= 8 {
                out.append(UInt8((value >> (bits - 8)) & 0xff))
                bits -= 8
            }
        }
        return out
    }
}
