import AmanatCrypto
import AmanatSync
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

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
}
