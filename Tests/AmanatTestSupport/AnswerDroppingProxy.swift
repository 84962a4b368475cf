import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP proxy on a loopback port in front of a relay, passing bytes both ways until it is armed: then the answer to
/// the next `POST` is never passed on. The relay has committed what the request carried before it answers, so the
/// client is left not knowing that its push was stored, the case of a relay that dies between its commit and its
/// answer. The proxy then stops at once, as that relay's machine would: every connection is cut and new ones are
/// refused.
public final class AnswerDroppingProxy: @unchecked Sendable {
    // @unchecked Sendable: the mutable state is guarded by `lock`; descriptors are only closed under it.
    private let listener: Int32
    /// The port the proxy listens on (127.0.0.1).
    public let port: Int
    private let upstream: sockaddr_in
    private let lock = NSLock()
    private var armed = false
    private var stopped = false
    private var dropped = false
    private var open: Set<Int32> = []

    /// A proxy in front of the relay listening on `upstreamPort` of 127.0.0.1.
    public init(upstreamPort: Int) throws {
        upstream = Self.loopback(port: upstreamPort)
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw TestFailure("the proxy has no socket: errno \(errno)") }
        var address = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
        }
        guard bound == 0, listen(listener, 64) == 0,
            withUnsafeMutablePointer(
                to: &address,
                { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
            ) == 0
        else {
            Glibc.close(listener)
            throw TestFailure("the proxy cannot listen: errno \(errno)")
        }
        self.listener = listener
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// The proxy's URL, to give the client instead of the relay's.
    public var url: String { "http://127.0.0.1:\(port)" }

    /// Drops the answer to the next `POST` request, then stops.
    public func arm() { lock.withLock { armed = true } }

    /// Waits at most `seconds` for an answer to have been dropped; returns whether one was.
    public func droppedAnAnswer(within seconds: Double = 60) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !lock.withLock({ dropped }) {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }

    /// Cuts every connection and stops listening (also what happens once an answer was dropped).
    public func stop() {
        lock.withLock {
            guard !stopped else { return }
            stopped = true
            _ = shutdown(listener, Int32(SHUT_RDWR))
            for fd in open { _ = shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    deinit {
        stop()
        Glibc.close(listener)
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if errno == EINTR { continue }
                return  // stopped
            }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = upstream
            let connected =
                server >= 0
                && withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                } == 0
            let kept = lock.withLock {
                guard connected, !stopped else { return false }
                open.formUnion([client, server])
                return true
            }
            guard kept else {
                Glibc.close(client)
                if server >= 0 { Glibc.close(server) }
                continue
            }
            let connection = Connection()
            Thread.detachNewThread { [self] in pumpRequests(from: client, to: server, connection) }
            Thread.detachNewThread { [self] in pumpAnswers(from: server, to: client, connection) }
        }
    }

    /// What the two directions of one connection share.
    private final class Connection: @unchecked Sendable {
        // @unchecked Sendable: guarded by the proxy's lock.
        var dropAnswer = false
        var ended = 0
    }

    /// Client to relay: a `POST` request line seen while armed marks this connection's next answer to be dropped,
    /// before the request reaches the relay.
    private func pumpRequests(from client: Int32, to server: Int32, _ connection: Connection) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var tail: [UInt8] = []
        let post = Array("POST /".utf8)
        while true {
            let got = read(client, &buffer, buffer.count)
            guard got > 0 else { break }
            let seen = tail + buffer[0..<got]
            if seen.count >= post.count,
                (0...(seen.count - post.count)).contains(where: { seen[$0..<$0 + post.count].elementsEqual(post) })
            {
                lock.withLock {
                    if armed {
                        armed = false
                        connection.dropAnswer = true
                    }
                }
            }
            tail = Array(seen.suffix(post.count - 1))
            guard writeAll(server, buffer, got) else { break }
        }
        finish(client, server, connection)
    }

    /// Relay to client: once this connection's answer is to be dropped, its first byte stops the proxy instead.
    private func pumpAnswers(from server: Int32, to client: Int32, _ connection: Connection) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let got = read(server, &buffer, buffer.count)
            guard got > 0 else { break }
            if lock.withLock({ connection.dropAnswer }) {
                lock.withLock { dropped = true }
                stop()
                break
            }
            guard writeAll(client, buffer, got) else { break }
        }
        finish(client, server, connection)
    }

    private func writeAll(_ fd: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
        var offset = 0
        while offset < count {
            // MSG_NOSIGNAL: a peer gone mid-write is an error here, not a SIGPIPE that ends the test process.
            let wrote = buffer.withUnsafeBytes {
                send(fd, $0.baseAddress! + offset, count - offset, Int32(MSG_NOSIGNAL))
            }
            if wrote < 0 && errno == EINTR { continue }
            guard wrote > 0 else { return false }
            offset += wrote
        }
        return true
    }

    /// Each direction ends here; the second closes both descriptors.
    private func finish(_ client: Int32, _ server: Int32, _ connection: Connection) {
        let last = lock.withLock {
            _ = shutdown(client, Int32(SHUT_RDWR))
            _ = shutdown(server, Int32(SHUT_RDWR))
            connection.ended += 1
            guard connection.ended == 2 else { return false }
            open.subtract([client, server])
            return true
        }
        if last {
            Glibc.close(client)
            Glibc.close(server)
        }
    }
}
