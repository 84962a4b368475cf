import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import AmanatWire
import CSodium
import Foundation

/// Keys and identities the targets use; fixed, so a corpus made once keeps reaching past the cryptography.
enum Fixed {
    static let vaultID: [UInt8] = Array(0x10..<0x20)
    static let vaultKey = VaultKey(epoch: 1, root: SecureBytes([UInt8](repeating: 0x42, count: 32)))
    static let signer: SigningKeyPair = {
        guard let pair = try? SigningKeyPair(seed: SecureBytes(Array(0..<32))) else { fatalError("unreachable") }
        return pair
    }()
    static let author: DeviceID = {
        guard let id = try? DeviceID(signer.publicKey) else { fatalError("unreachable") }
        return id
    }()
    /// The vault's local row key of the stored-row target.
    static let localKey = SecureBytes([UInt8](repeating: 0x4c, count: 32))
    /// The slot that stands for a record id as a projection row's associated data.
    static let slot: [UInt8] = Array(repeating: 0x53, count: 16)
    static let passphrase = SecureBytes(Array("fuzz passphrase".utf8))
    static let invitationCode: [UInt8] = Array(repeating: 0x5a, count: 15)
    static let keyringSalt: [UInt8] = Array(repeating: 0x73, count: 16)
    /// The cheapest Argon2id costs libsodium accepts, so the keyring target runs thousands of times a second.
    static let keyringOps = UInt64(crypto_pwhash_argon2id_OPSLIMIT_MIN)
    static let keyringMem = UInt64(crypto_pwhash_argon2id_MEMLIMIT_MIN)
    static let keyringWrapKey: SecureBytes = {
        guard
            let key = try? PasswordHash.deriveKey(
                passphrase: passphrase, salt: keyringSalt, opsLimit: keyringOps, memLimit: keyringMem)
        else { fatalError("unreachable") }
        return key
    }()
    /// The X25519 identity of the age interoperability vectors (C2SP CCTV), so they are valid seeds.
    static let ageIdentity: AgeX25519Identity = {
        guard
            let identity = try? AgeX25519Identity(
                parsing: "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0")
        else { fatalError("unreachable") }
        return identity
    }()
    /// The passphrase of the CCTV scrypt vectors, with a work factor limit that keeps one run short.
    static let ageScrypt: AgeScryptIdentity = {
        guard let identity = try? AgeScryptIdentity(passphrase: SecureBytes(Array("password".utf8)), maxWorkFactor: 10)
        else { fatalError("unreachable") }
        return identity
    }()
}

/// The target bodies (see ``FuzzTarget``).
enum Targets {
    /// A change plaintext: decoded directly, and sealed into an envelope that is opened as a vault opens it;
    /// a change that decodes re-encodes to a fixed point and is applied to a record state.
    static func change(_ bytes: [UInt8]) -> Bool {
        let direct = try? Change(decoding: bytes)
        if let envelope = try? Envelope.sealPlaintext(
            bytes, vaultID: Fixed.vaultID, key: Fixed.vaultKey, signer: Fixed.signer, seq: 1,
            previousHash: ChainHead.empty.hash)
        {
            let opened = try? envelope.open(with: Fixed.vaultKey)
            require(opened == direct, "opening a sealed change disagrees with decoding it")
        }
        guard let change = direct else { return false }
        let canonical = change.encoded()
        guard let again = try? Change(decoding: canonical) else {
            require(false, "a decoded change does not decode after re-encoding")
            return false
        }
        require(again.encoded() == canonical, "a change's encoding is not a fixed point")
        var state = RecordState(id: change.record)
        _ = state.apply(AuthoredChange(author: Fixed.author, seq: 1, change: change))
        _ = state.encoded()
        _ = state.view
        return true
    }

    /// A membership entry plaintext; an entry that decodes re-encodes to a fixed point.
    static func membership(_ bytes: [UInt8]) -> Bool {
        guard let entry = try? MembershipEntry(decoding: bytes) else { return false }
        let canonical = entry.encoded()
        guard let again = try? MembershipEntry(decoding: canonical) else {
            require(false, "a decoded membership entry does not decode after re-encoding")
            return false
        }
        require(again.encoded() == canonical, "a membership entry's encoding is not a fixed point")
        return true
    }

    /// An envelope in wire form; one that decodes round-trips, has its signature checked and is opened.
    static func envelope(_ bytes: [UInt8]) -> Bool {
        guard let envelope = try? Envelope(decoding: bytes) else { return false }
        require(envelope.encoded() == bytes, "an envelope does not re-encode to its wire form")
        _ = envelope.hasValidSignature()
        if envelope.isAuthority {
            _ = try? envelope.openEntry()
        } else {
            _ = try? envelope.open(with: Fixed.vaultKey)
        }
        return true
    }

    /// A sealed local row. The first byte picks the row: 0 a raw sealed body, 1 a projection row, 2 the clock,
    /// 3 the held-back counters; the rest is the plaintext, sealed under the fixed local key so the decoders behind
    /// the AEAD are reached.
    static func storedRow(_ bytes: [UInt8]) -> Bool {
        guard let mode = bytes.first else { return false }
        let rest = Array(bytes.dropFirst())
        func sealed(_ plain: [UInt8], _ associatedData: [UInt8]) -> Data {
            let nonce = [UInt8](repeating: 0x6e, count: AEAD.nonceLength)
            guard let box = try? AEAD.seal(plain, additionalData: associatedData, nonce: nonce, key: Fixed.localKey)
            else { fatalError("unreachable: sealing with a 32-byte key") }
            return Data(nonce + box)
        }
        switch mode % 4 {
        case 0:
            return (try? StoredRow.open(Data(rest), associatedData: Fixed.slot, what: "a row", key: Fixed.localKey))
                != nil
        case 1:
            guard
                let plain = try? StoredRow.open(
                    sealed(rest, Fixed.slot), associatedData: Fixed.slot, what: "a row", key: Fixed.localKey)
            else {
                require(false, "a row sealed under the local key does not open")
                return false
            }
            _ = try? StoredRow.decodeView(plain)
            guard let state = try? StoredRow.decodeState(plain) else { return false }
            let canonical = state.encoded()
            guard let again = try? RecordState(decoding: canonical) else {
                require(false, "a stored record state does not decode after re-encoding")
                return false
            }
            require(again.encoded() == canonical, "a record state's encoding is not a fixed point")
            let row = StoredRow.encodeState(state, paddingBlock: 128, nowMillis: .max)
            require(
                (try? StoredRow.decodeState(row))?.encoded() == canonical,
                "a re-written projection row decodes differently")
            return true
        case 2:
            return (try? StoredRow.decodeClock(rest)) != nil
        default:
            return (try? StoredRow.decodeRefusedCreates(rest)) != nil
        }
    }

    /// An arbitrary file opened as a sync file of the fixed vault, read as an import reads it.
    static func syncFile(_ bytes: [UInt8]) -> Bool {
        let url = FuzzWorkspace.write(bytes, name: "input.amanat-sync")
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            let file = try SyncFile.open(at: url, vaultID: Fixed.vaultID, create: false, readOnly: true)
            let vector = try file.versionVector()
            for (author, head) in vector {
                let envelopes = try file.envelopes(of: author, after: 0, limit: 64)
                require(envelopes.count <= 64, "a sync file returned more envelopes than asked for")
                if head.seq > 1 { _ = try file.envelopes(of: author, after: head.seq - 1, limit: 1) }
            }
            _ = try file.count()
            return true
        } catch {
            return false
        }
    }

    /// A request body as the relay decodes it (all of them: each checks its own magic first), and a response
    /// body as the client decodes it.
    static func relay(_ bytes: [UInt8]) -> Bool {
        var accepted = false
        if let vector = try? RelayWire.decodeVector(bytes) {
            require(RelayWire.encodeVector(vector) == bytes, "a version vector does not re-encode to its body")
            accepted = true
        }
        if let list = try? RelayWire.decodeEnvelopeList(bytes) {
            require(
                RelayWire.encodeEnvelopeList(list.map { $0.encoded() }) == bytes,
                "an envelope list does not re-encode to its body")
            accepted = true
        }
        if (try? RelayWire.ExchangeRequest.decode(bytes)) != nil { accepted = true }
        if (try? RelayWire.ExchangeResponse.decode(bytes)) != nil { accepted = true }
        _ = RelayWire.canonicalRegistrationCode(String(decoding: bytes, as: UTF8.self))
        // The same bytes as an `Amanat-Auth` value: what it accepts re-encodes to itself.
        let text = String(decoding: bytes, as: UTF8.self)
        if let auth = CompactAuthentication(text) {
            require(auth.encoded == text, "an Amanat-Auth value does not re-encode to itself")
            accepted = true
        }
        return accepted
    }

    /// An invitation. The first byte picks the form: even, the rest is the whole file; odd, the rest is the
    /// plaintext, sealed with the fixed code as `invite` seals it. Either is read with the fixed code.
    static func invitation(_ bytes: [UInt8]) -> Bool {
        guard let mode = bytes.first else { return false }
        let rest = Array(bytes.dropFirst())
        let file: [UInt8]
        if mode % 2 == 0 {
            file = rest
        } else {
            guard let sealed = try? Invitation.seal(rest, code: Fixed.invitationCode) else { return false }
            file = sealed
        }
        let url = FuzzWorkspace.write(file, name: "input.amanat-invite")
        defer { try? FileManager.default.removeItem(at: url) }
        return (try? Invitation.read(from: url, code: Invitation.codeText(Fixed.invitationCode), now: 0)) != nil
    }

    /// A keyring. The first byte picks the form: even, the rest is the file without its checksum (added here, and
    /// costs above the cheap range lowered so one run stays short); odd, the rest is the secret plaintext, sealed
    /// as a keyring of version 1 (bit 1 set), else 3 (bit 2 set), else 2 under the fixed passphrase. Either is read
    /// with that passphrase.
    static func keyring(_ bytes: [UInt8]) -> Bool {
        guard let mode = bytes.first else { return false }
        var rest = Array(bytes.dropFirst())
        let file: [UInt8]
        if mode % 2 == 0 {
            if rest.count >= 21 {
                var r = ByteReader(rest, offset: 5)
                let ops = (try? r.read(bigEndian: UInt64.self)) ?? 0
                let mem = (try? r.read(bigEndian: UInt64.self)) ?? 0
                if ops > 3 {
                    withUnsafeBytes(of: Fixed.keyringOps.bigEndian) { rest.replaceSubrange(5..<13, with: $0) }
                }
                if mem > 1 << 20 {
                    withUnsafeBytes(of: Fixed.keyringMem.bigEndian) { rest.replaceSubrange(13..<21, with: $0) }
                }
            }
            file = rest + BLAKE2b.hash(rest)
        } else {
            guard
                let sealed = try? Keyring.seal(
                    rest, version: mode & 2 != 0 ? 1 : (mode & 4 != 0 ? 3 : 2), salt: Fixed.keyringSalt,
                    opsLimit: Fixed.keyringOps,
                    memLimit: Fixed.keyringMem, wrapKey: Fixed.keyringWrapKey)
            else { return false }
            file = sealed
        }
        let url = FuzzWorkspace.write(file, name: "input.amk")
        defer { try? FileManager.default.removeItem(at: url) }
        guard let keyring = try? Keyring.read(from: url, passphrase: Fixed.passphrase) else { return false }
        require(!keyring.keys.isEmpty, "a keyring was read without a vault key")
        return true
    }

    /// An age file (binary or armored, as `auto` detects it) decrypted with the vectors' identities, and the same
    /// bytes parsed as age keys.
    static func age(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? AgeX25519Identity.parseAll(text)
        _ = try? AgeX25519Recipient(parsing: text)
        var output = 0
        do {
            try AgeDecryption.decrypt(
                input: AgeMemorySource(bytes), identities: [Fixed.ageIdentity, Fixed.ageScrypt]
            ) { chunk in
                require(chunk.count <= 64 * 1024, "an age chunk larger than 64 KiB was released")
                output += chunk.count
            }
            require(output <= bytes.count, "age released more plaintext than its input holds")
            return true
        } catch {
            return false
        }
    }

    /// A tar archive; one that decodes re-encodes to an archive that decodes to the same entries.
    static func tar(_ bytes: [UInt8]) -> Bool {
        guard let archive = try? TarArchive(decoding: bytes) else { return false }
        require(archive.entries.allSatisfy { TarArchive.isSafePath($0.path) }, "a tar reader accepted an unsafe path")
        require((try? TarArchive(decoding: archive.encoded())) == archive, "a tar archive does not round-trip")
        return true
    }

    /// A photo or video through the location stripper: the first byte picks the media type (JPEG, PNG, HEIC, MP4)
    /// and the size of the pieces it is fed in; accepted when it strips. A copy must have the input's length, and the
    /// same bytes fed whole and in pieces must give the same copy (a block that spans pieces is kept whole).
    static func locationStripper(_ bytes: [UInt8]) -> Bool {
        guard let first = bytes.first else { return false }
        let types = ["image/jpeg", "image/png", "image/heic", "video/mp4"]
        let file = Array(bytes.dropFirst())
        func strip(piece: Int) -> [UInt8]? {
            guard let stripper = LocationStripper(mediaType: types[Int(first & 3)], size: UInt64(file.count)) else {
                return nil
            }
            var out: [UInt8] = []
            var at = 0
            do {
                while at < file.count {
                    let end = min(at + piece, file.count)
                    out += try stripper.feed(Array(file[at..<end]))
                    at = end
                }
                out += try stripper.finish()
            } catch {
                return nil
            }
            return out
        }
        let whole = strip(piece: max(1, file.count))
        let pieces = strip(piece: Int(first >> 2) + 1)
        require(whole?.count ?? file.count == file.count, "a stripped copy changed the file's length")
        require(whole == pieces, "the stripper gave another copy (or answer) when fed in pieces")
        return whole != nil
    }

    /// The plaintext of a bundle (its tar archive) through the verifier; accepted when it verifies cleanly.
    static func bundle(_ bytes: [UInt8]) -> Bool {
        guard let archive = try? TarArchive(decoding: bytes) else { return false }
        let report = BundleVerifier.verify(archive)
        return report.problems.isEmpty
    }
}
