import AmanatCore
import AmanatCrypto
import Foundation

/// The wire format of the HTTP relay, shared by the relay (AmanatRelay) and its client (AmanatHTTP)
/// (Protocol/http-api.md). Every multi-byte integer is big-endian; every body is checked against its length.
public enum RelayWire {
    /// The protocol version in paths (`/v1/...`).
    public static let version = 1
    /// Largest request body the relay reads; larger ones get 413.
    public static let maxRequestBytes = 8 * 1024 * 1024
    /// Largest response body a client reads.
    public static let maxResponseBytes = 24 * 1024 * 1024
    /// Bytes of envelopes a client puts in one request, and a relay in one response (one envelope always fits).
    public static let batchBytes = 4 * 1024 * 1024
    /// Most envelopes in one request or response.
    public static let maxEnvelopesPerMessage = 10_000
    /// Largest time difference, in seconds, between a request's timestamp and the relay's clock.
    public static let timestampWindow: Int64 = 300

    /// Request header names (lower case; HTTP header names are case-insensitive).
    public enum Header {
        /// The hex Ed25519 relay public key of the vault (64 hex digits).
        public static let key = "amanat-key"
        /// Unix time in seconds, decimal.
        public static let timestamp = "amanat-timestamp"
        /// 16 random bytes, 32 hex digits, never reused.
        public static let nonce = "amanat-nonce"
        /// The hex Ed25519 signature (128 hex digits) of the canonical request.
        public static let signature = "amanat-signature"
        /// The requesting device's id (its Ed25519 public key, 64 hex digits).
        public static let device = "amanat-device"
        /// The device key's signature (128 hex digits) of the same canonical request.
        public static let deviceSignature = "amanat-device-signature"
        /// The compact form of the authentication (http-api.md §3): the same key, timestamp, nonce and signatures
        /// (and the device's, when named) as raw bytes in one header, base64 without padding, in place of the six
        /// hex headers above: about 240 bytes less on every request.
        public static let auth = "amanat-auth"
        /// On a vector answer: how many copies without content the relay holds (1 to ``withoutContentLimit``; absent
        /// when none), so a client asks for them only then (http-api.md §11).
        public static let withoutContent = "amanat-without-content"
    }

    /// The most copies without content a relay lists at once, and a client puts back in one sync (http-api.md §11).
    public static let withoutContentLimit = 256

    /// The MIME type of binary bodies.
    public static let binaryType = "application/vnd.amanat.relay-v1"

    /// The body of a registration request (`PUT /v1/vaults/{vault}`, http-api.md §3): the relay's registration code
    /// in its canonical form (upper case, without dashes or spaces), UTF-8; empty when no code is given. The body is
    /// covered by the request signature like any other.
    public static func registrationBody(code: String?) -> [UInt8] {
        Array(canonicalRegistrationCode(code ?? "").utf8)
    }

    /// A registration code as compared: upper case, without dashes and white space, so that `abcd-efgh` and
    /// `ABCDEFGH` are the same code.
    public static func canonicalRegistrationCode(_ text: String) -> String {
        String(text.uppercased().unicodeScalars.filter { $0 != "-" && !$0.properties.isWhitespace })
    }

    // MARK: Signing

    /// The bytes a request signature covers (http-api.md §3):
    /// `"AMANAT-RELAY-1\n" METHOD "\n" PATH_AND_QUERY "\n" TIMESTAMP "\n" NONCE "\n" hex(BLAKE2b-256(body))`.
    public static func canonicalRequest(
        method: String, pathAndQuery: String, timestamp: Int64, nonce: String, body: [UInt8]
    ) -> [UInt8] {
        let text =
            "AMANAT-RELAY-1\n\(method)\n\(pathAndQuery)\n\(timestamp)\n\(nonce)\n\(Hex.encode(BLAKE2b.hash(body)))"
        return Array(text.utf8)
    }

    /// The authentication headers of a request signed with `key`, and also with `device` when given: the six hex
    /// headers, or with `compact` the one `Amanat-Auth` header that carries the same values (``CompactAuthentication``).
    public static func signatureHeaders(
        key: SigningKeyPair, method: String, pathAndQuery: String, body: [UInt8], timestamp: Int64,
        nonce: [UInt8] = Sodium.randomBytes(16), device: SigningKeyPair? = nil, compact: Bool = false
    ) -> [(String, String)] {
        let nonceHex = Hex.encode(nonce)
        let message = canonicalRequest(
            method: method, pathAndQuery: pathAndQuery, timestamp: timestamp, nonce: nonceHex, body: body)
        // The compact form's timestamp is unsigned: a clock before 1970 signs with the hex headers.
        if compact && timestamp >= 0 {
            let auth = CompactAuthentication(
                key: key.publicKey, timestamp: UInt64(timestamp), nonce: nonce, signature: key.sign(message),
                device: device.map { ($0.publicKey, $0.sign(message)) })
            return [(Header.auth, auth.encoded)]
        }
        var headers = [
            (Header.key, Hex.encode(key.publicKey)),
            (Header.timestamp, String(timestamp)),
            (Header.nonce, nonceHex),
            (Header.signature, Hex.encode(key.sign(message))),
        ]
        if let device {
            headers.append((Header.device, Hex.encode(device.publicKey)))
            headers.append((Header.deviceSignature, Hex.encode(device.sign(message))))
        }
        return headers
    }

    // MARK: Bodies

    static let vectorMagic = Array("AMVV".utf8)
    static let listMagic = Array("AMEL".utf8)
    static let exchangeRequestMagic = Array("AMXQ".utf8)
    static let exchangeResponseMagic = Array("AMXR".utf8)
    static let formatVersion: UInt8 = 1

    /// A version vector: `"AMVV" 0x01 count:u32 (author:32 seq:u64 hash:32)*`.
    public static func encodeVector(_ vector: [DeviceID: ChainHead]) -> [UInt8] {
        var w = ByteWriter(capacity: 9 + vector.count * 72)
        w.write(raw: vectorMagic)
        w.write(formatVersion)
        writeVector(vector, into: &w)
        return w.bytes
    }

    /// Decodes a version vector body.
    public static func decodeVector(_ bytes: [UInt8]) throws -> [DeviceID: ChainHead] {
        var r = ByteReader(bytes)
        try readMagic(vectorMagic, &r, what: "version vector")
        let vector = try readVector(&r)
        try expectEnd(r)
        return vector
    }

    /// A list of envelopes: `"AMEL" 0x01 count:u32 (length:u32 envelope)*`.
    public static func encodeEnvelopeList(_ envelopes: [[UInt8]]) -> [UInt8] {
        var w = ByteWriter(capacity: 9 + envelopes.reduce(0) { $0 + 4 + $1.count })
        w.write(raw: listMagic)
        w.write(formatVersion)
        writeList(envelopes, into: &w)
        return w.bytes
    }

    /// Decodes a list of envelopes; every element must decode as an envelope.
    public static func decodeEnvelopeList(_ bytes: [UInt8]) throws -> [Envelope] {
        var r = ByteReader(bytes)
        try readMagic(listMagic, &r, what: "envelope list")
        let list = try readList(&r)
        try expectEnd(r)
        return list
    }

    /// One exchange: the client's vector, the envelopes it pushes, and how many it wants back at most.
    public struct ExchangeRequest: Sendable {
        /// The client's version vector (after its last ingest).
        public var vector: [DeviceID: ChainHead]
        /// Envelopes the client believes the relay lacks.
        public var envelopes: [[UInt8]]
        /// Most envelopes to return.
        public var limit: UInt32

        /// Creates a request.
        public init(vector: [DeviceID: ChainHead], envelopes: [[UInt8]], limit: UInt32) {
            self.vector = vector
            self.envelopes = envelopes
            self.limit = limit
        }

        /// `"AMXQ" 0x01 limit:u32 vector-entries envelope-list-entries` (see http-api.md §4.5).
        public func encoded() -> [UInt8] {
            var w = ByteWriter(capacity: 17 + vector.count * 72 + envelopes.reduce(0) { $0 + 4 + $1.count })
            w.write(raw: exchangeRequestMagic)
            w.write(formatVersion)
            w.write(bigEndian: limit)
            writeVector(vector, into: &w)
            writeList(envelopes, into: &w)
            return w.bytes
        }

        /// Decodes a request; the pushed envelopes are decoded too.
        public static func decode(_ bytes: [UInt8]) throws -> (request: ExchangeRequest, pushed: [Envelope]) {
            var r = ByteReader(bytes)
            try readMagic(exchangeRequestMagic, &r, what: "exchange request")
            let limit = try r.read(bigEndian: UInt32.self)
            let vector = try readVector(&r)
            let pushed = try readList(&r)
            try expectEnd(r)
            return (ExchangeRequest(vector: vector, envelopes: [], limit: limit), pushed)
        }
    }

    /// The relay's answer to an exchange.
    public struct ExchangeResponse: Sendable {
        /// Pushed envelopes the relay stored now.
        public var stored: UInt32
        /// Envelopes the client still lacks after this answer (not counting diverged authors).
        public var remaining: UInt64
        /// Authors whose chain on the relay does not contain the client's head: a fork. Nothing of theirs is sent.
        public var diverged: [DeviceID]
        /// Envelopes the client lacks, grouped by author in seq order (wire forms).
        public var envelopes: [[UInt8]]

        /// Creates a response.
        public init(stored: UInt32, remaining: UInt64, diverged: [DeviceID], envelopes: [[UInt8]]) {
            self.stored = stored
            self.remaining = remaining
            self.diverged = diverged
            self.envelopes = envelopes
        }

        /// Whether the client should ask again for more.
        public var more: Bool { remaining > 0 }

        /// `"AMXR" 0x01 stored:u32 remaining:u64 diverged-count:u32 author:32* envelope-list-entries`.
        public func encoded() -> [UInt8] {
            var w = ByteWriter(capacity: 25 + diverged.count * 32 + envelopes.reduce(0) { $0 + 4 + $1.count })
            w.write(raw: exchangeResponseMagic)
            w.write(formatVersion)
            w.write(bigEndian: stored)
            w.write(bigEndian: remaining)
            w.write(bigEndian: UInt32(diverged.count))
            for author in diverged { w.write(raw: author.bytes) }
            writeList(envelopes, into: &w)
            return w.bytes
        }

        /// Decodes a response; the envelopes are decoded (and so checked for shape) too.
        public static func decode(_ bytes: [UInt8]) throws -> (response: ExchangeResponse, envelopes: [Envelope]) {
            var r = ByteReader(bytes)
            try readMagic(exchangeResponseMagic, &r, what: "exchange response")
            let stored = try r.read(bigEndian: UInt32.self)
            let remaining = try r.read(bigEndian: UInt64.self)
            let count = try readCount(&r, elementSize: 32)
            var diverged: [DeviceID] = []
            for _ in 0..<count { diverged.append(try DeviceID(r.read(count: 32))) }
            let envelopes = try readList(&r)
            try expectEnd(r)
            return (
                ExchangeResponse(stored: stored, remaining: remaining, diverged: diverged, envelopes: []), envelopes
            )
        }
    }

    // MARK: Pieces

    static func writeVector(_ vector: [DeviceID: ChainHead], into w: inout ByteWriter) {
        w.write(bigEndian: UInt32(vector.count))
        for (author, head) in vector.sorted(by: { $0.key < $1.key }) {
            w.write(raw: author.bytes)
            w.write(bigEndian: head.seq)
            w.write(raw: head.hash)
        }
    }

    static func readVector(_ r: inout ByteReader) throws -> [DeviceID: ChainHead] {
        let count = try readCount(&r, elementSize: 72)
        var vector: [DeviceID: ChainHead] = [:]
        for _ in 0..<count {
            let author = try DeviceID(r.read(count: 32))
            let seq = try r.read(bigEndian: UInt64.self)
            let hash = try r.read(count: 32)
            guard seq <= UInt64(Int64.max), vector[author] == nil else {
                throw CoreError(.malformed, "A version vector is malformed.")
            }
            vector[author] = ChainHead(seq: seq, hash: hash)
        }
        return vector
    }

    static func writeList(_ envelopes: [[UInt8]], into w: inout ByteWriter) {
        w.write(bigEndian: UInt32(envelopes.count))
        for body in envelopes {
            w.write(bigEndian: UInt32(body.count))
            w.write(raw: body)
        }
    }

    static func readList(_ r: inout ByteReader) throws -> [Envelope] {
        let count = try readCount(&r, elementSize: 4 + EnvelopeHeader.length + 64)
        guard count <= maxEnvelopesPerMessage else {
            throw CoreError(.malformed, "A message carries more than \(maxEnvelopesPerMessage) envelopes.")
        }
        var list: [Envelope] = []
        list.reserveCapacity(count)
        for _ in 0..<count {
            let length = try r.read(bigEndian: UInt32.self)
            list.append(try Envelope(decoding: r.read(count: Int(length))))
        }
        return list
    }

    static func readCount(_ r: inout ByteReader, elementSize: Int) throws -> Int {
        let count = try r.read(bigEndian: UInt32.self)
        guard Int(count) <= r.remaining.count / elementSize else {
            throw CoreError(.malformed, "A count is larger than the data.")
        }
        return Int(count)
    }

    static func readMagic(_ magic: [UInt8], _ r: inout ByteReader, what: String) throws {
        guard try r.read(count: 4) == magic, try r.readByte() == formatVersion else {
            throw CoreError(.malformed, "The body is not a relay format 1 \(what).")
        }
    }

    static func expectEnd(_ r: ByteReader) throws {
        guard r.isAtEnd else { throw CoreError(.malformed, "The body has bytes after its end.") }
    }
}

/// The `Amanat-Auth` header's value (Protocol/http-api.md §3): `key:32 ‖ timestamp:u64 ‖ nonce:16 ‖ signature:64`,
/// then `device:32 ‖ device-signature:64` when the request names its device; 120 or 216 bytes, in standard base64
/// without padding (160 or 288 characters: both lengths are multiples of three bytes, so no padding ever arises).
/// The signatures cover the same canonical request as the hex headers' (the nonce in lower-case hex there).
public struct CompactAuthentication: Sendable, Equatable {
    /// The vault's relay public key (32 bytes).
    public var key: [UInt8]
    /// Unix time in seconds (below 10^12 for a relay to accept it).
    public var timestamp: UInt64
    /// The request's 16 random bytes.
    public var nonce: [UInt8]
    /// The relay key's Ed25519 signature of the canonical request.
    public var signature: [UInt8]
    /// The requesting device's public key, when the request names it.
    public var deviceKey: [UInt8]?
    /// The device key's signature of the same canonical request.
    public var deviceSignature: [UInt8]?

    /// The values of a request's authentication.
    public init(
        key: [UInt8], timestamp: UInt64, nonce: [UInt8], signature: [UInt8], device: ([UInt8], [UInt8])? = nil
    ) {
        self.key = key
        self.timestamp = timestamp
        self.nonce = nonce
        self.signature = signature
        deviceKey = device?.0
        deviceSignature = device?.1
    }

    /// The header's value.
    public var encoded: String {
        var w = ByteWriter(capacity: 216)
        w.write(raw: key)
        w.write(bigEndian: timestamp)
        w.write(raw: nonce)
        w.write(raw: signature)
        if let deviceKey, let deviceSignature {
            w.write(raw: deviceKey)
            w.write(raw: deviceSignature)
        }
        return Data(w.bytes).base64EncodedString()
    }

    /// Parses a header's value: nil unless it is exactly 160 or 288 characters of canonical base64 (re-encoding the
    /// bytes gives the same text).
    public init?(_ value: String) {
        // Without "=": a padded text of 288 characters could be the canonical encoding of 214 or 215 bytes.
        guard value.utf8.count == 160 || value.utf8.count == 288, !value.utf8.contains(UInt8(ascii: "=")),
            let data = Data(base64Encoded: value), data.base64EncodedString() == value,
            data.count == 120 || data.count == 216
        else { return nil }
        let bytes = [UInt8](data)
        var r = ByteReader(bytes)
        guard let key = try? r.read(count: 32), let timestamp = try? r.read(bigEndian: UInt64.self),
            let nonce = try? r.read(count: 16), let signature = try? r.read(count: 64)
        else { return nil }
        self.init(key: key, timestamp: timestamp, nonce: nonce, signature: signature)
        if bytes.count == 216 {
            guard let device = try? r.read(count: 32), let deviceSignature = try? r.read(count: 64) else { return nil }
            deviceKey = device
            self.deviceSignature = deviceSignature
        }
    }
}
