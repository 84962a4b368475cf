import AmanatCore
import AmanatCrypto
import AmanatSync

extension HTTPCarrier: ChunkCarrier {
    public func heldChunks(_ chunks: [ChunkRef]) async throws -> Set<[UInt8]> {
        var held: Set<[UInt8]> = []
        for start in stride(from: 0, to: chunks.count, by: 4096) {
            let batch = chunks[start..<min(start + 4096, chunks.count)]
            var body: [UInt8] = []
            body.reserveCapacity(batch.count * 36)
            for ref in batch {
                body += ref.address
                let length = UInt32(clamping: ref.sealedLength)
                body += [
                    UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF),
                ]
            }
            let (_, answer) = try await registeringIfNeededRaw {
                try await exchangeRaw("POST", vaultPath + "/chunks", body: body)
            }
            let asked = Set(batch.map(\.address))
            guard answer.count % 32 == 0 else {
                throw RelayClientError(.badResponse, "The relay at \(baseURL) sent a malformed list of chunks.")
            }
            for offset in stride(from: 0, to: answer.count, by: 32) {
                let address = Array(answer[offset..<offset + 32])
                guard asked.contains(address) else {
                    throw RelayClientError(
                        .badResponse, "The relay at \(baseURL) named chunks that were not asked for.")
                }
                held.insert(address)
            }
        }
        return held
    }

    public func chunk(_ address: [UInt8]) async throws -> [UInt8]? {
        let (status, answer) = try await registeringIfNeededRaw {
            try await exchangeRaw("GET", vaultPath + "/chunks/" + Hex.encode(address), body: [])
        }
        return status == 404 ? nil : answer
    }

    public func storeChunk(_ address: [UInt8], sealed: [UInt8]) async throws {
        _ = try await registeringIfNeededRaw {
            try await exchangeRaw("PUT", vaultPath + "/chunks/" + Hex.encode(address), body: sealed)
        }
    }

    public func discardDamaged(_ address: [UInt8], copy: [UInt8]) async -> Bool {
        // Tried once, like the other extras of a sync: a relay of an earlier release answers 404, and a relay that
        // does not answer costs the sync nothing but this.
        guard
            let answer = try? await exchangeAnswer(
                "POST", vaultPath + "/chunks/" + Hex.encode(address) + "/damaged", body: SHA256.hash(copy), extra: true)
        else { return false }
        return String(decoding: answer.body, as: UTF8.self).replacingOccurrences(of: " ", with: "")
            == #"{"discarded":true}"#
    }

    /// ``registeringIfNeeded(_:)`` for requests whose status matters.
    func registeringIfNeededRaw(_ request: () async throws -> (Int, [UInt8])) async throws -> (Int, [UInt8]) {
        var status = 0
        let body = try await registeringIfNeeded {
            let (code, answer) = try await request()
            status = code
            return answer
        }
        return (status, body)
    }
}
