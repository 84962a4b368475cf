import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatStore
import AmanatWire
import Foundation

/// One round of ``raceAFork(urls:in:rounds:)``.
public struct ForkRound: Sendable {
    /// The status each push got: the original's first, then the clone's.
    public var statuses: [Int]
    /// The hash of the change whose push got 200, when one did.
    public var winner: [UInt8]?
    /// The original device's chain head as each relay answers it afterwards, in the order of the URLs.
    public var heads: [ChainHead?]
}

/// A device's change and a forked copy of the same device's change with the same number, pushed at the same moment
/// to two relays over one database (`urls[0]` and `urls[1]`, in-process or `amanat serve` processes): the relays
/// must store one chain and refuse the other with 409, whichever saw it second.
///
/// Each round clones the vault (a cloned laptop), lets the original and the clone each sign a different change with
/// the next number, and sends the two pushes from two tasks at once, alternating which relay gets which. It ends
/// after `rounds` rounds, or after the first round the clone's chain won (the original is then the forked replica).
public func raceAFork(urls: [String], in dir: TemporaryDirectory, rounds: Int = 4) async throws -> [ForkRound] {
    let clients = urls.map { RelayHTTPClient(baseURL: $0) }
    var results: [ForkRound] = []
    do {
        let original = try makeTeam(1, in: dir)[0]
        _ = try original.createRecord(kind: "statement", fields: [("title", "first")], tags: [], seal: false)
        try await relaySync(original, urls[0])
        let vault = Hex.encode(original.vaultID)
        let key = original.relaySigningKey
        for round in 0..<rounds {
            let clone = try cloneVault(original, to: dir.path("clone\(round)"))
            let held = try original.versionVector()[original.deviceID]?.seq ?? 0
            _ = try original.createRecord(kind: "statement", fields: [("title", "o\(round)")], tags: [], seal: false)
            _ = try clone.createRecord(kind: "statement", fields: [("title", "c\(round)")], tags: [], seal: false)
            let pushed = [
                try original.envelopes(of: original.deviceID, after: held, limit: 10),
                try clone.envelopes(of: clone.deviceID, after: held, limit: 10),
            ]
            guard pushed.allSatisfy({ $0.count == 1 }), pushed[0][0].hash != pushed[1][0].hash else {
                throw TestFailure("round \(round): the original and the clone did not sign one different change each")
            }
            let bodies = pushed.map { RelayWire.encodeEnvelopeList($0.map { $0.encoded() }) }
            let first = round % 2
            let statuses = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for side in 0..<2 {
                    let client = clients[(side + first) % 2]
                    let body = bodies[side]
                    group.addTask {
                        (
                            side,
                            try await client.sendSigned("POST", "/v1/vaults/\(vault)/envelopes", key: key, body: body)
                                .status
                        )
                    }
                }
                var statuses = [0, 0]
                for try await (side, status) in group { statuses[side] = status }
                return statuses
            }
            var heads: [ChainHead?] = []
            for client in clients {
                let answer = try await client.sendSigned("GET", "/v1/vaults/\(vault)/vector", key: key)
                guard answer.status == 200 else { throw TestFailure("a vector request got \(answer.status)") }
                heads.append(try RelayWire.decodeVector(answer.body)[original.deviceID])
            }
            let winner = statuses.firstIndex(of: 200).map { pushed[$0][0].hash }
            results.append(ForkRound(statuses: statuses, winner: winner, heads: heads))
            if statuses[0] != 200 { break }
        }
    } catch {
        for client in clients { await client.shutdown() }
        throw error
    }
    for client in clients { await client.shutdown() }
    return results
}

/// What is wrong with the outcome of ``raceAFork(urls:in:rounds:)``, one sentence each (none when right): in each
/// round one push must have been stored (200) and the other refused (409), and both relays must answer the stored
/// change as the device's head.
public func oneChainProblems(_ rounds: [ForkRound]) -> [String] {
    guard !rounds.isEmpty else { return ["no round ran"] }
    var problems: [String] = []
    for (index, round) in rounds.enumerated() {
        if round.statuses.sorted() != [200, 409] { problems.append("round \(index): statuses \(round.statuses)") }
        for (relay, head) in round.heads.enumerated() where round.winner == nil || head?.hash != round.winner {
            problems.append("round \(index): relay \(relay)'s head is not the stored change")
        }
    }
    return problems
}

/// What ``replayANonce(urls:in:)`` saw: requests sent to one relay, then sent again, byte for byte, to the other.
public struct NonceReplays: Sendable {
    /// The vector requests' statuses, each as first sent (to relay 0, then to relay 1).
    public var sent: [Int]
    /// The same requests' statuses when replayed to the other relay.
    public var replayed: [Int]
    /// The error messages of the replays.
    public var messages: [String]
    /// A push's status at relay 0, and its replay's at relay 1.
    public var push: Int
    public var replayedPush: Int

    /// What is wrong, one sentence each (none when right): every first request must have been answered (200) and
    /// every replay refused with 401 as a replay.
    public var problems: [String] {
        var problems: [String] = []
        if sent != [200, 200] { problems.append("the vector requests got \(sent)") }
        if replayed != [401, 401] { problems.append("the replayed vector requests got \(replayed)") }
        for message in messages where !message.contains("replayed") {
            problems.append("a replay was refused for another reason: \(message)")
        }
        if push != 200 { problems.append("the push got \(push)") }
        if replayedPush != 401 { problems.append("the replayed push got \(replayedPush)") }
        return problems
    }
}

/// Signed requests replayed to the other of two relays over one database (in-process or `amanat serve` processes):
/// a vector request in each direction, then a push. The database holds the nonces, so the second relay must refuse
/// each replay with 401 although it never saw the first request.
public func replayANonce(urls: [String], in dir: TemporaryDirectory) async throws -> NonceReplays {
    let clients = urls.map { RelayHTTPClient(baseURL: $0) }
    do {
        let result = try await replays(clients, in: dir)
        for client in clients { await client.shutdown() }
        return result
    } catch {
        for client in clients { await client.shutdown() }
        throw error
    }
}

private func replays(_ clients: [RelayHTTPClient], in dir: TemporaryDirectory) async throws -> NonceReplays {
    let team = try makeTeam(2, in: dir)
    _ = try team[0].createRecord(kind: "statement", fields: [("title", "first")], tags: [], seal: false)
    try await relaySync(team[0], clients[0].baseURL)
    let vector = "/v1/vaults/\(Hex.encode(team[0].vaultID))/vector"
    var result = NonceReplays(sent: [], replayed: [], messages: [], push: 0, replayedPush: 0)
    for (first, second) in [(0, 1), (1, 0)] {
        let headers = RelayHTTPClient.signedHeaders(
            key: team[1].relaySigningKey, method: "GET", path: vector, body: [])
        result.sent.append(try await clients[first].send("GET", vector, headers: headers).status)
        let replay = try await clients[second].send("GET", vector, headers: headers)
        result.replayed.append(replay.status)
        result.messages.append(replay.errorMessage ?? "")
    }
    _ = try team[0].createRecord(kind: "statement", fields: [("title", "second")], tags: [], seal: false)
    let path = "/v1/vaults/\(Hex.encode(team[0].vaultID))/envelopes"
    let body = RelayWire.encodeEnvelopeList(
        try team[0].envelopes(of: team[0].deviceID, after: 0, limit: 100).map { $0.encoded() })
    let headers = RelayHTTPClient.signedHeaders(key: team[0].relaySigningKey, method: "POST", path: path, body: body)
    result.push = try await clients[0].send("POST", path, headers: headers, body: body).status
    result.replayedPush = try await clients[1].send("POST", path, headers: headers, body: body).status
    return result
}

/// A race that could not be run as set up (not the outcome a test checks).
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
