import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import AmanatWire
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP client on raw sockets, as an attacker's script would write it: every wait has a deadline.
final class RawConnection {
    let descriptor: Int32

    /// Connects to the loopback `port`; with `receiveBuffer`, the socket's receive buffer is made that small first
    /// (as a client that wants to stall the relay's answers with a full receive window would).
    init(port: Int, receiveBuffer: Int32? = nil) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
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

/// Idle, slow and refused connections against `amanat serve` running as its own process (so that nothing in the
/// test process can delay the relay), through raw sockets with a deadline on every wait.
@Suite struct RelayConnectionTests {
    @Test func idleAndHalfSentConnectionsAreClosed() throws {
        let scratch = try Scratch()
        let relay = try ServeProcess(data: scratch.path("relay"), extra: ["--idle-timeout", "1"])
        defer { _ = relay.stop() }
        // Connected, nothing sent.
        let idle = try RawConnection(port: relay.port)
        // Half a request line and headers, never finished (slowloris).
        let slow = try RawConnection(port: relay.port)
        #expect(slow.write(Array("GET /v1/health HTTP/1.1\r\nHost: x\r\n".utf8), within: 2))
        // A finished request on a keep-alive connection, then silence.
        let kept = try RawConnection(port: relay.port)
        #expect(kept.write(Array("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n".utf8), within: 2))

        #expect(idle.readUntilClosed(within: 8).1, "an idle connection stayed open")
        let (slowAnswer, slowClosed) = slow.readUntilClosed(within: 8)
        #expect(slowClosed, "a half-sent request kept its connection open")
        #expect(!String(decoding: slowAnswer, as: UTF8.self).contains("200 OK"))
        let (keptAnswer, keptClosed) = kept.readUntilClosed(within: 8)
        #expect(String(decoding: keptAnswer, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        #expect(keptClosed, "an idle keep-alive connection stayed open")
    }

    @Test func aBodySentSlowerThanTheMinimumRateLosesItsConnection() throws {
        let scratch = try Scratch()
        let relay = try ServeProcess(data: scratch.path("relay"))
        defer { _ = relay.stop() }
        let path = "/v1/vaults/\(Hex.encode(Sodium.randomBytes(16)))/envelopes"
        // Signed headers, so that the relay gets as far as reading the body.
        var head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n"
        let signed = RelayWire.signatureHeaders(
            key: .generate(), method: "POST", pathAndQuery: path, body: [],
            timestamp: Int64(Date().timeIntervalSince1970))
        for (name, value) in signed { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        // A body dribbled a byte every 50 ms: each byte resets the idle timer, but 20 B/s is far below 1 KiB/s, so
        // once the 30 s of grace have passed the relay closes the connection.
        let slow = try RawConnection(port: relay.port)
        #expect(slow.write(Array(head.utf8), within: 2))
        let started = Date()
        var closed = false
        while !closed, Date().timeIntervalSince(started) < 45 {
            if !slow.write([0x41], within: 1) { break }
            if case .closed = slow.read(within: 0.05) { closed = true }
        }
        if !closed { closed = slow.readUntilClosed(within: 2).1 }
        let took = Date().timeIntervalSince(started)
        #expect(closed, "a body at 20 B/s kept its connection open for 45 s")
        #expect(took > 29 && took < 40, "closed after \(took) s")
    }

    @Test func anEarlyRefusalDoesNotLeaveAnUploadingClientHanging() throws {
        let scratch = try Scratch()
        let relay = try ServeProcess(data: scratch.path("relay"))
        defer { _ = relay.stop() }
        // A push that announces 64 MiB, far above the 8 MiB limit, and starts sending it.
        let path = "/v1/vaults/\(Hex.encode(Sodium.randomBytes(16)))/envelopes"
        let announced = 64 * 1024 * 1024
        var head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(announced)\r\n"
        let signed = RelayWire.signatureHeaders(
            key: .generate(), method: "POST", pathAndQuery: path, body: [],
            timestamp: Int64(Date().timeIntervalSince1970))
        for (name, value) in signed { head += "\(name): \(value)\r\n" }
        let connection = try RawConnection(port: relay.port)
        #expect(connection.write(Array((head + "\r\n").utf8), within: 2))
        // The client keeps uploading, as a naive client does before it reads the answer.
        let chunk = [UInt8](repeating: 0x41, count: 64 * 1024)
        var sent = 0
        let started = Date()
        while sent < announced, Date().timeIntervalSince(started) < 20 {
            guard connection.write(chunk, within: 5) else { break }
            sent += chunk.count
        }
        // Whether the relay stopped the upload or drained it, the answer 413 must be readable and the connection
        // must end.
        let (answer, closed) = connection.readUntilClosed(within: 10)
        let text = String(decoding: answer, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 413"), "answer: \(text.prefix(200)); sent \(sent)")
        #expect(text.contains("larger than the relay's limit"))
        #expect(closed, "the connection was left open after the refusal")
        #expect(sent < announced, "the relay read all 64 MiB of a body it had already refused")
    }

    @Test func connectionsAboveThePerAddressLimitAreClosedAtOnce() throws {
        let scratch = try Scratch()
        let relay = try ServeProcess(data: scratch.path("relay"), extra: ["--max-connections-per-address", "3"])
        // Three connections from 127.0.0.1 are served, one after the other, each answered before the next opens (the
        // relay may take up connections in another order than they were made), then kept open (the idle timeout is
        // 30 s, far beyond this test's waits).
        var held: [RawConnection] = []
        for _ in 0..<3 {
            let connection = try RawConnection(port: relay.port)
            #expect(connection.write(Array("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n".utf8), within: 2))
            if case .data(let bytes) = connection.read(within: 5) {
                #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
            } else {
                Issue.record("a connection within the limit was not answered")
            }
            held.append(connection)
        }
        // The fourth is closed without being read: its request gets no answer.
        let fourth = try RawConnection(port: relay.port)
        _ = fourth.write(Array("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n".utf8), within: 2)
        let (answer, closed) = fourth.readUntilClosed(within: 5)
        #expect(closed, "a connection above the limit stayed open")
        #expect(answer.isEmpty, "a connection above the limit was served: \(String(decoding: answer, as: UTF8.self))")
        // Once one of the three is closed, a new connection is served again (the relay notices the close shortly).
        held.removeLast()
        var served = false
        let deadline = Date().addingTimeInterval(10)
        while !served, Date() < deadline {
            let next = try RawConnection(port: relay.port)
            _ = next.write(Array("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n".utf8), within: 2)
            if case .data(let bytes) = next.read(within: 2) {
                served = String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 200")
            } else {
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        #expect(served, "a freed place was never given to a new connection")
        let (_, log) = relay.stop()
        #expect(log.contains("too many from one address"), "\(log.suffix(2000))")
        _ = held
    }

    @Test func theLimitIsCheckedAndDocumentedInTheHelp() throws {
        let scratch = try Scratch()
        let runner = scratch.runner()
        let refused = try runner.run(["serve", "--max-connections-per-address", "0"], withVault: false)
        #expect(refused.status == 64 && refused.stderr.contains("--max-connections-per-address"), "\(refused.stderr)")
        let help = try runner.run(["serve", "--help"], withVault: false)
        #expect(help.stdout.contains("--max-connections-per-address") && help.stdout.contains("default: 32"))
    }

    @Test func aClientThatStopsReadingItsAnswerLosesItsConnection() throws {
        let scratch = try Scratch()
        let relay = try ServeProcess(data: scratch.path("relay"), extra: ["--idle-timeout", "3"])
        defer { _ = relay.stop() }
        // A vault whose one device wrote about 3 MiB, synced to the relay by `amanat sync`.
        let runner = scratch.runner()
        try runner.initialize()
        let vault = try Vault.open(at: runner.vault, passphrase: SecureBytes(Array(runner.passphrase.utf8)))
        let big = String(repeating: "x", count: 120_000)
        for i in 0..<24 {
            _ = try vault.createRecord(
                kind: "statement", fields: [("title", "\(i)"), ("body", big)], tags: [], seal: false)
        }
        let key = vault.relaySigningKey
        let author = vault.deviceID
        #expect(try runner.run(["sync", "--create", relay.url]).status == 0)

        // A signed fetch of every envelope, from a client whose receive window is tiny and which never reads.
        let path = "/v1/vaults/\(Hex.encode(vault.vaultID))/envelopes?author=\(author.hex)&after=0"
        var head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        let signed = RelayWire.signatureHeaders(
            key: key, method: "GET", pathAndQuery: path, body: [], timestamp: Int64(Date().timeIntervalSince1970))
        for (name, value) in signed { head += "\(name): \(value)\r\n" }
        let stalled = try RawConnection(port: relay.port, receiveBuffer: 4096)
        // Asked twice on one connection (HTTP/1.1 pipelining): the two answers are more than the kernel's socket
        // buffers can hold (Linux lets a send buffer grow to 4 MiB), so a relay that waited would have to stall.
        #expect(stalled.write(Array((head + "\r\n" + head + "\r\n").utf8), within: 2))
        Thread.sleep(forTimeInterval: 10)
        // Reading now gets what the kernels buffered and then the end: the relay gave up on the answer. A relay that
        // kept waiting would now send all of it.
        let (answer, closed) = stalled.readUntilClosed(within: 20)
        let text = String(decoding: answer.prefix(400), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200"), "\(text)")
        let length = text.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
        let announced = try #require(length, "\(text)")
        #expect(announced > 2_000_000, "the answer is large enough to fill every buffer on the way")
        #expect(closed, "the connection stayed open")
        #expect(
            answer.count < 2 * announced, "the relay sent both answers to a client that had stopped reading")

        // A client that reads its answer slowly but steadily gets all of it, although taking it lasts several times
        // the idle timeout: the idle timeout counts only while the relay waits for a request, not while the client
        // is still taking an answer.
        let reader = try RawConnection(port: relay.port, receiveBuffer: 65536)
        let again = RelayWire.signatureHeaders(
            key: key, method: "GET", pathAndQuery: path, body: [], timestamp: Int64(Date().timeIntervalSince1970))
        var head2 = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in again { head2 += "\(name): \(value)\r\n" }
        #expect(reader.write(Array((head2 + "\r\n").utf8), within: 2))
        var whole: [UInt8] = []
        let started = Date()
        var ended = false
        func complete() -> Bool {
            guard let end = whole.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound else { return false }
            return whole.count >= end + announced
        }
        while !ended, !complete(), Date().timeIntervalSince(started) < 60 {
            switch reader.read(within: 1) {
            case .data(let bytes): whole += bytes
            case .closed: ended = true
            case .timedOut: break
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let took = Date().timeIntervalSince(started)
        #expect(complete(), "a steady reader got \(whole.count) bytes of a \(announced)-byte answer in \(took) s")
        // The premise: taking the answer lasted longer than the idle timeout.
        #expect(took > 4, "the answer was taken in \(took) s")
    }

    @Test func requestTextNeverReachesTheRelaysLogRaw() throws {
        let scratch = try Scratch()
        let relay = try ServeProcess(data: scratch.path("relay"), extra: ["--log-level", "debug"])
        // Paths a client controls, with ESC, a C1 CSI, a bidirectional override and a line separator as raw bytes,
        // and the same as percent escapes.
        let nasty: [[UInt8]] = [
            Array("/v1/vaults/".utf8) + [0xC2, 0x9B] + Array("31mFAKE".utf8),
            Array("/v1/vaults/".utf8) + [0xE2, 0x80, 0xAE] + Array("evil".utf8) + [0xE2, 0x80, 0xA8] + Array("x".utf8),
            Array("/v1/vaults/".utf8) + [0x1B] + Array("]0;pwned".utf8) + [0x07],
            Array("/v1/vaults/%1B]0;pwned%07%C2%9B31mFAKE%E2%80%AE".utf8),
        ]
        for target in nasty {
            let connection = try RawConnection(port: relay.port)
            let request = Array("GET ".utf8) + target + Array(" HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            #expect(connection.write(request, within: 2))
            let (answer, _) = connection.readUntilClosed(within: 5)
            #expect(!String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        }
        let (_, log) = relay.stop()
        let scalars = Set(log.unicodeScalars.map(\.value))
        for control: UInt32 in [0x1B, 0x07, 0x9B, 0x202E, 0x2028] {
            #expect(!scalars.contains(control), "U+\(String(control, radix: 16)) reached the log: \(log)")
        }
        // The raw bytes never get past the HTTP parser; the percent-escaped path is refused (no such route) and logged
        // as sent, escapes intact.
        #expect(log.contains("%1B]0;pwned%07%C2%9B31mFAKE%E2%80%AE") && log.contains("status=404"), "\(log)")
    }
}
