import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A settable clock for the relay (unix seconds).
final class TestClock: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    private var seconds: Int64

    init(_ start: Int64 = Int64(Date().timeIntervalSince1970)) { seconds = start }

    var now: Int64 {
        get { lock.withLock { seconds } }
        set { lock.withLock { seconds = newValue } }
    }
}

/// A TCP client on raw sockets, as an attacker's script would write it: every wait has a deadline.
final class RawConnection {
    let descriptor: Int32

    init(port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            throw RawError(description: "cannot connect: errno \(errno)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        descriptor = fd
    }

    deinit { close(descriptor) }

    struct RawError: Error, CustomStringConvertible {
        var description: String
    }

    /// What happened to a wait.
    enum Outcome: Equatable {
        case data([UInt8])
        case closed  // end of stream or reset: the server dropped the connection
        case timedOut
    }

    /// Waits up to `seconds` for bytes or the end of the connection.
    func read(within seconds: Double) -> Outcome {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(seconds * 1000)) == 1 else { return .timedOut }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(descriptor, &buffer, buffer.count, 0)
        if n > 0 { return .data(Array(buffer[0..<n])) }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return .timedOut }
        return .closed
    }

    /// Reads until the server closes the connection or `seconds` pass; returns everything read and whether the
    /// connection ended.
    func readUntilClosed(within seconds: Double) -> ([UInt8], Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        var all: [UInt8] = []
        while Date() < deadline {
            switch read(within: max(0.01, deadline.timeIntervalSinceNow)) {
            case .data(let bytes): all += bytes
            case .closed: return (all, true)
            case .timedOut: continue
            }
        }
        return (all, false)
    }

    /// Sends all of `bytes` within `seconds`; false if the peer closed or the time ran out first.
    @discardableResult
    func write(_ bytes: [UInt8], within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var offset = 0
        while offset < bytes.count {
            var entry = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            let left = deadline.timeIntervalSinceNow
            guard left > 0, poll(&entry, 1, Int32(left * 1000)) == 1 else { return false }
            let n = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { continue }
                return false
            }
            offset += n
        }
        return true
    }
}

@Suite struct RelayHardeningTests {
    static let code = "ABCD-EFGH-IJKL-MNOP-QRST-UVWX"

    func relay(
        _ dir: TemporaryDirectory, code: String? = nil, maxVaults: Int = 1000, clock: TestClock? = nil,
        idleTimeout: Duration = .seconds(30), bodyGrace: Duration = .seconds(30)
    ) async throws -> (RunningRelay, RelayStore) {
        let store = try RelayStore(directory: dir.path("relay"), maxVaults: maxVaults)
        var server = RelayServer(store: store, logger: quietLogger, registrationCode: code)
        if let clock { server.now = { clock.now } }
        server.idleTimeout = idleTimeout
        server.bodyGrace = bodyGrace
        return (try await RunningRelay.start(server), store)
    }

    /// A PUT that registers `vault` with `key`, presenting `code` in the signed body.
    func register(
        _ client: RelayHTTPClient, vault: [UInt8], key: SigningKeyPair, code: String?, at time: Int64? = nil
    ) async throws -> RelayHTTPClient.Answer {
        let path = "/v1/vaults/\(Hex.encode(vault))"
        let body = RelayWire.registrationBody(code: code)
        let headers = RelayHTTPClient.signedHeaders(key: key, method: "PUT", path: path, body: body, timestamp: time)
        return try await client.send("PUT", path, headers: headers, body: body)
    }

    @Test func onlyTheOperatorsCodeRegistersAVault() async throws {
        let dir = try TemporaryDirectory()
        let (relay, store) = try await relay(dir, code: Self.code)
        let client = RelayHTTPClient(baseURL: relay.url)
        let vault = Sodium.randomBytes(16)
        let key = SigningKeyPair.generate()

        let none = try await register(client, vault: vault, key: key, code: nil)
        #expect(none.status == 403)
        #expect(none.errorMessage?.contains("registration code") == true, "\(none.errorMessage ?? "")")
        let wrong = try await register(client, vault: vault, key: key, code: "ABCD-EFGH-IJKL-MNOP-QRST-UVWY")
        #expect(wrong.status == 403)
        #expect(store.vaultIDs().isEmpty, "nothing was registered")

        // The code travels in the signed body: moved under another signature it no longer verifies.
        let path = "/v1/vaults/\(Hex.encode(vault))"
        let emptySigned = RelayHTTPClient.signedHeaders(key: key, method: "PUT", path: path, body: [])
        let moved = try await client.send(
            "PUT", path, headers: emptySigned, body: RelayWire.registrationBody(code: Self.code))
        #expect(moved.status == 401)

        // Dashes, spaces and case do not matter.
        let right = try await register(client, vault: vault, key: key, code: " abcd efgh-ijkl-mnop-qrst-uvwx")
        #expect(right.status == 201)
        // Once registered, the vault's members need no code; another key still gets 403.
        #expect(try await register(client, vault: vault, key: key, code: nil).status == 200)
        #expect(try await register(client, vault: vault, key: .generate(), code: Self.code).status == 403)

        // A real team syncs through it: the first sync with the code, the others without.
        let team = try makeTeam(2, in: dir)
        _ = try team[0].createRecord(kind: "statement", fields: [("title", "first")], tags: [], seal: false)
        do {
            try await relaySync(team[0], relay.url)
            Issue.record("a sync without the code registered the vault")
        } catch let error as RelayClientError {
            #expect(error.code == .forbidden)
            #expect(error.message.contains("needs a registration code"), "\(error.message)")
        }
        var options = testOptions()
        options.registrationCode = Self.code
        try await relaySync(team[0], relay.url, options: options)
        try await relaySync(team[1], relay.url)
        #expect(try team[1].visibleRecords().count == 1)

        await client.shutdown()
        await relay.stop()
    }

    @Test func withoutACodeFileTheFirstContactRegistersAsBefore() async throws {
        let dir = try TemporaryDirectory()
        let (relay, _) = try await relay(dir)
        let client = RelayHTTPClient(baseURL: relay.url)
        #expect(try await register(client, vault: Sodium.randomBytes(16), key: .generate(), code: nil).status == 201)
        await client.shutdown()
        await relay.stop()
    }

    @Test func squattedVaultsThatNeverStoreAnythingExpire() async throws {
        let dir = try TemporaryDirectory()
        let clock = TestClock()
        let (relay, store) = try await relay(dir, maxVaults: 3, clock: clock)
        let client = RelayHTTPClient(baseURL: relay.url)
        let start = clock.now
        // A squatter fills the relay with vaults that never store anything; a team registers and stores one change.
        for _ in 0..<2 {
            let answer = try await register(client, vault: Sodium.randomBytes(16), key: .generate(), code: nil)
            #expect(answer.status == 201)
        }
        let team = try makeTeam(1, in: dir)
        _ = try team[0].createRecord(kind: "statement", fields: [("title", "kept")], tags: [], seal: false)
        var options = testOptions()
        options.now = { clock.now }
        try await relaySync(team[0], relay.url, options: options)
        #expect(store.vaultIDs().count == 3)

        // Full: a new vault is refused while the squatted ones are younger than a day.
        clock.now = start + 3600
        let early = try await register(
            client, vault: Sodium.randomBytes(16), key: .generate(), code: nil, at: clock.now)
        #expect(early.status == 507)

        // A day later the empty ones are gone when the next vault registers; the team's vault stays.
        clock.now = start + RelayStore.unusedVaultLifetime + 60
        let later = try await register(
            client, vault: Sodium.randomBytes(16), key: .generate(), code: nil, at: clock.now)
        #expect(later.status == 201, "\(later.errorMessage ?? "")")
        #expect(store.vaultIDs().count == 2)
        #expect(store.vaultIDs().contains(team[0].vaultID))
        #expect(try store.registeredKey(of: team[0].vaultID) != nil)
        await client.shutdown()
        await relay.stop()
    }

    @Test func idleAndHalfSentConnectionsAreClosed() async throws {
        let dir = try TemporaryDirectory()
        let (relay, _) = try await relay(dir, idleTimeout: .seconds(1))
        let port = relay.port
        let result = try await blocking {
            // Connected, nothing sent.
            let idle = try RawConnection(port: port)
            // Half a request line and headers, never finished (slowloris).
            let slow = try RawConnection(port: port)
            let slowSent = slow.write(Array("GET /v1/health HTTP/1.1\r\nHost: x\r\n".utf8), within: 2)
            // A finished request on a keep-alive connection, then silence.
            let kept = try RawConnection(port: port)
            let keptSent = kept.write(Array("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n".utf8), within: 2)
            let idleClosed = idle.readUntilClosed(within: 6).1
            let (slowAnswer, slowClosed) = slow.readUntilClosed(within: 6)
            let (keptAnswer, keptClosed) = kept.readUntilClosed(within: 6)
            return (
                slowSent && keptSent, idleClosed, slowClosed, String(decoding: slowAnswer, as: UTF8.self),
                String(decoding: keptAnswer, as: UTF8.self), keptClosed
            )
        }
        #expect(result.0)
        #expect(result.1, "an idle connection stayed open")
        #expect(result.2, "a half-sent request kept its connection open")
        #expect(!result.3.contains("200 OK"))
        #expect(result.4.hasPrefix("HTTP/1.1 200"), "\(result.4)")
        #expect(result.5, "an idle keep-alive connection stayed open")
        await relay.stop()
    }

    @Test func aBodySentSlowerThanTheMinimumRateLosesItsConnection() async throws {
        let dir = try TemporaryDirectory()
        let (relay, _) = try await relay(dir, idleTimeout: .seconds(30), bodyGrace: .seconds(1))
        let port = relay.port
        let path = "/v1/vaults/\(Hex.encode(Sodium.randomBytes(16)))/envelopes"
        let head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
        let result = try await blocking {
            // A body dribbled a byte at a time: each byte resets an idle timer, but the rate is far below 1 KiB/s.
            let slow = try RawConnection(port: port)
            let headSent = slow.write(Array(head.utf8), within: 2)
            let started = Date()
            var closed = false
            while !closed, Date().timeIntervalSince(started) < 10 {
                if !slow.write([0x41], within: 1) { break }
                if case .closed = slow.read(within: 0.05) { closed = true }
            }
            if !closed { closed = slow.readUntilClosed(within: 1).1 }
            let took = Date().timeIntervalSince(started)

            // A body at a normal pace on the same relay is read and answered (401: it is not signed).
            let normal = try RawConnection(port: port)
            let normalSent =
                normal.write(Array(head.utf8), within: 2)
                && normal.write([UInt8](repeating: 0x41, count: 100_000), within: 5)
            let (answer, _) = normal.readUntilClosed(within: 3)
            return (headSent && normalSent, closed, took, String(decoding: answer, as: UTF8.self))
        }
        #expect(result.0)
        #expect(result.1, "a slow body kept its connection open for 10 s")
        #expect(result.2 < 6)
        #expect(result.3.hasPrefix("HTTP/1.1 401"), "\(result.3)")
        await relay.stop()
    }

    @Test func anEarlyRefusalDoesNotLeaveAnUploadingClientHanging() async throws {
        let dir = try TemporaryDirectory()
        let (relay, _) = try await relay(dir)
        let port = relay.port
        let vault = Hex.encode(Sodium.randomBytes(16))
        let key = SigningKeyPair.generate()
        // A signed push that announces 64 MiB, far above the 8 MiB limit, and starts sending it.
        let path = "/v1/vaults/\(vault)/envelopes"
        let announced = 64 * 1024 * 1024
        var head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(announced)\r\n"
        for (name, value) in RelayHTTPClient.signedHeaders(key: key, method: "POST", path: path, body: []) {
            head += "\(name): \(value)\r\n"
        }
        let request = head + "\r\n"
        let result = try await blocking {
            let connection = try RawConnection(port: port)
            let headSent = connection.write(Array(request.utf8), within: 2)
            // The client keeps uploading, as a naive client does before it reads the answer; every write has a
            // deadline.
            let chunk = [UInt8](repeating: 0x41, count: 64 * 1024)
            var sent = 0
            let started = Date()
            while sent < announced, Date().timeIntervalSince(started) < 20 {
                guard connection.write(chunk, within: 5) else { break }
                sent += chunk.count
            }
            // Whether the relay stopped the upload or drained it, the answer 413 must be readable and the
            // connection must end.
            let (answer, closed) = connection.readUntilClosed(within: 10)
            return (headSent, sent, String(decoding: answer, as: UTF8.self), closed)
        }
        #expect(result.0)
        #expect(result.2.hasPrefix("HTTP/1.1 413"), "answer: \(result.2.prefix(200)); sent \(result.1)")
        #expect(result.2.contains("larger than the relay's limit"))
        #expect(result.3, "the connection was left open after the refusal")
        #expect(result.1 < announced, "the relay read all 64 MiB of a body it had already refused")
        await relay.stop()
    }
}

/// Runs blocking socket code on a thread of its own, so that it never holds one of the few threads that run the
/// in-process relay's async handlers.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}
