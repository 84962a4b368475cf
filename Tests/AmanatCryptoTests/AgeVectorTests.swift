import Foundation
import Testing

@testable import AmanatCrypto

/// The C2SP CCTV age test vectors (Vectors/age-cctv), one test case per file.
@Suite("age CCTV vectors")
struct AgeVectorTests {
    /// One parsed vector file.
    struct Vector {
        var expect = ""
        var payload: [UInt8]?
        var identities: [String] = []
        var passphrases: [String] = []
        var armored = false
        var unknownKeys: [String] = []
        var file: [UInt8] = []
    }

    static let names: [String] = {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: AgeTestSupport.vectorsDirectory.path)) ?? []
        return all.filter { !["LICENSE", "README.md", "decompress.py"].contains($0) }.sorted()
    }()

    static func load(_ name: String) throws -> Vector {
        let data = try Data(contentsOf: AgeTestSupport.vectorsDirectory.appendingPathComponent(name))
        let bytes = [UInt8](data)
        var vector = Vector()
        var index = 0
        while true {
            guard let lf = bytes[index...].firstIndex(of: 0x0a) else {
                throw AgeError(.invalidUse, "vector \(name) has no blank line after its header")
            }
            let line = String(decoding: bytes[index..<lf], as: UTF8.self)
            index = lf + 1
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch key {
            case "expect": vector.expect = value
            case "payload": vector.payload = Hex.decode(value)
            case "identity": vector.identities.append(value)
            case "passphrase": vector.passphrases.append(value)
            case "armored": vector.armored = value == "yes"
            case "file key", "comment": break
            default: vector.unknownKeys.append(key)
            }
        }
        vector.file = Array(bytes[index...])
        return vector
    }

    static func expectClass(_ code: AgeError.Code?) -> String {
        switch code {
        case nil: "success"
        case .noMatch: "no match"
        case .hmacFailure: "HMAC failure"
        case .headerFailure: "header failure"
        case .payloadFailure: "payload failure"
        case .armorFailure: "armor failure"
        case .invalidKey, .invalidUse, .outOfMemory: "unexpected \(String(describing: code))"
        }
    }

    @Test("the vector folder is complete")
    func vectorFolderIsPresent() {
        #expect(Self.names.count == 62)
    }

    @Test("CCTV vector", arguments: names)
    func vector(_ name: String) throws {
        let vector = try Self.load(name)
        #expect(vector.unknownKeys.isEmpty, "vector uses keys this harness does not know: \(vector.unknownKeys)")
        var identities: [any AgeIdentity] = []
        for text in vector.identities { identities.append(try AgeX25519Identity(parsing: text)) }
        for text in vector.passphrases { identities.append(try AgeTestSupport.scryptIdentity(text)) }

        let mode: AgeArmorMode = vector.armored ? .armored : .binary
        let outcome = AgeTestSupport.decrypt(vector.file, identities: identities, armor: mode)
        #expect(Self.expectClass(outcome.code) == vector.expect)
        if let payload = vector.payload {
            #expect(Hex.encode(SHA256.hash(outcome.released)) == Hex.encode(payload))
        } else {
            #expect(outcome.released.isEmpty, "plaintext was released although the vector expects none")
        }
        #expect(outcome.chunkSizes.allSatisfy { $0 <= AgeStream.chunkSize })

        // Auto-detection must reach the same verdict; the one exception is text that starts with garbage, which
        // auto mode reads as a (malformed) binary file rather than as (malformed) armor.
        let auto = AgeTestSupport.decrypt(vector.file, identities: identities, armor: .auto)
        if name == "armor_garbage_leading" {
            #expect(auto.code == .headerFailure)
        } else {
            #expect(auto.code == outcome.code)
            #expect(auto.released == outcome.released)
        }
    }
}
