import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import AmanatWire
import Foundation
import Testing

/// `Amanat-Auth` (Protocol/http-api.md §3): the hex headers' values as raw bytes in one header, sent to a real relay
/// over HTTP as an attacker would shape it.
@Suite struct CompactAuthenticationTests {
    @Test(arguments: RelayStorageKind.allCases)
    func theCompactHeaderCarriesTheSameProofAndEveryAlterationIsRefused(_ kind: RelayStorageKind) async throws {
        try await Setup.with(kind) { s in
            let member = s.team[0].relaySigningKey
            let device = s.team[0].keyring.device
            let vector = s.base + "/vector"
            let before = try await s.count()
            func signed(nonce: [UInt8] = Sodium.randomBytes(16), device: SigningKeyPair? = device, compact: Bool)
                -> [(String, String)]
            {
                RelayHTTPClient.signedHeaders(
                    key: member, method: "GET", path: vector, body: [], nonce: nonce, device: device, compact: compact)
            }

            // Accepted with and without the device, and about 240 bytes shorter on the wire than the hex headers.
            let compact = signed(compact: true)
            #expect(compact.count == 1 && compact[0].0 == "amanat-auth" && compact[0].1.count == 288)
            #expect(try await s.client.send("GET", vector, headers: compact).status == 200)
            let anonymous = signed(device: nil, compact: true)
            #expect(anonymous[0].1.count == 160)
            #expect(try await s.client.send("GET", vector, headers: anonymous).status == 200)
            let wire = { (headers: [(String, String)]) in headers.reduce(0) { $0 + $1.0.count + $1.1.count + 4 } }
            #expect(wire(signed(compact: false)) - wire(compact) >= 230, "\(wire(signed(compact: false)))")

            // Replayed: the same header again, and its nonce in the hex form (one nonce, whichever form carries it).
            var answer = try await s.client.send("GET", vector, headers: compact)
            #expect(answer.status == 401 && answer.errorMessage?.contains("replayed") == true)
            let nonce = Sodium.randomBytes(16)
            #expect(try await s.client.send("GET", vector, headers: signed(nonce: nonce, compact: true)).status == 200)
            answer = try await s.client.send("GET", vector, headers: signed(nonce: nonce, compact: false))
            #expect(answer.status == 401 && answer.errorMessage?.contains("replayed") == true)

            // Every field altered: the key, the timestamp, the nonce, the signature, the device and its signature.
            let fresh = try #require(CompactAuthentication(signed(compact: true)[0].1))
            for (field, offset) in [
                ("key", 0), ("timestamp", 39), ("nonce", 40), ("signature", 56), ("device", 120),
                ("device signature", 152),
            ] {
                var bytes = [UInt8](try #require(Data(base64Encoded: fresh.encoded)))
                bytes[offset] ^= 1
                answer = try await s.client.send(
                    "GET", vector, headers: [("amanat-auth", Data(bytes).base64EncodedString())])
                #expect([401, 403].contains(answer.status), "\(field): \(answer.status)")
                #expect(answer.errorMessage?.isEmpty == false, "\(field)")
            }

            // Malformed: wrong lengths, another alphabet, padding, a timestamp past 12 digits or u64's largest
            // (refused before any conversion), twice, or beside a hex header.
            let good = signed(compact: true)[0].1
            var stamp = fresh
            stamp.timestamp = UInt64.max
            var twelve = fresh
            twelve.timestamp = 1_000_000_000_000
            // 288 characters that are the canonical, padded base64 of 215 bytes: a valid 120-byte form and more.
            let padded = Data([UInt8](try #require(Data(base64Encoded: signed(compact: true)[0].1))).prefix(215))
                .base64EncodedString()
            #expect(padded.count == 288 && padded.hasSuffix("="))
            let malformed: [(String, [(String, String)])] = [
                ("canonical padding", [("amanat-auth", padded)]),
                ("short", [("amanat-auth", String(good.dropLast()))]),
                ("long", [("amanat-auth", good + "A")]),
                ("between", [("amanat-auth", String(good.prefix(200)))]),
                ("url alphabet", [("amanat-auth", "-_" + good.dropFirst(2))]),
                ("padded", [("amanat-auth", String(good.dropLast(2)) + "==")]),
                ("empty", [("amanat-auth", "")]),
                ("u64 timestamp", [("amanat-auth", stamp.encoded)]),
                ("13-digit timestamp", [("amanat-auth", twelve.encoded)]),
                ("twice", [("amanat-auth", good), ("amanat-auth", good)]),
                ("beside a hex header", [("amanat-auth", signed(compact: true)[0].1), signed(compact: false)[0]]),
            ]
            for (what, headers) in malformed {
                answer = try await s.client.send("GET", vector, headers: headers)
                #expect(answer.status == 401, "\(what): \(answer.status)")
                let message = answer.errorMessage ?? ""
                #expect(message.contains("malformed") || message.contains("more than once"), "\(what): \(message)")
            }

            // A push signed in the compact form for another body is refused and stores nothing.
            let empty = RelayWire.encodeEnvelopeList([])
            answer = try await s.client.send(
                "POST", s.base + "/envelopes",
                headers: RelayHTTPClient.signedHeaders(
                    key: member, method: "POST", path: s.base + "/envelopes", body: empty, device: device,
                    compact: true),
                body: RelayWire.encodeEnvelopeList([Array(repeating: 1, count: 300)]))
            #expect(answer.status == 401)
            #expect(try await s.count() == before)
        }
    }
}
