import AmanatCore
import AmanatSync
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A loopback TCP proxy that counts every byte in each direction, so B3 measures bytes on the wire exactly
/// (HTTP request and status lines, headers and bodies), not an estimate.
final class WireProxy: @unchecked Sendable {
    // @unchecked Sendable: the counters are only touched under `lock`; the sockets belong to their threads.
    let port: Int
    private let listener: Int32
    private let target: Int
    private let lock = NSLock()
    private var upstream = 0
    private var downstream = 0

    init(targetPort: Int) throws {
        target = targetPort
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
        }
        guard bound == 0, listen(listener, 64) == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Bytes client → relay and relay → client since the last reset.
    var totals: (up: Int, down: Int) { lock.withLock { (upstream, downstream) } }

    func reset() {
        lock.withLock {
            upstream = 0
            downstream = 0
        }
    }

    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(target).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0 else {
                Glibc.close(client)
                Glibc.close(server)
                continue
            }
            Thread { [self] in pump(from: client, to: server, upstream: true) }.start()
            Thread { [self] in pump(from: server, to: client, upstream: false) }.start()
        }
    }

    private func pump(from source: Int32, to sink: Int32, upstream isUp: Bool) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            lock.withLock { if isUp { upstream += n } else { downstream += n } }
            var offset = 0
            while offset < n {
                let w = buffer.withUnsafeBytes { write(sink, $0.baseAddress! + offset, n - offset) }
                if w <= 0 { break }
                offset += w
            }
        }
        shutdown(sink, Int32(SHUT_WR))
        shutdown(source, Int32(SHUT_RD))
    }
}

/// Counts a carrier's requests: one per call when nothing is retried.
struct RoundTripCounter: ExchangeCarrier {
    final class Count: @unchecked Sendable {
        // @unchecked Sendable: guarded by `lock`.
        let lock = NSLock()
        var value = 0
        func add() { lock.withLock { value += 1 } }
    }

    let inner: any ExchangeCarrier
    let count = Count()

    var name: String { inner.name }
    var canWrite: Bool { inner.canWrite }

    func versionVector() async throws -> [DeviceID: ChainHead] {
        count.add()
        return try await inner.versionVector()
    }

    func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) async throws -> [Envelope] {
        count.add()
        return try await inner.envelopes(of: author, after: seq, limit: limit)
    }

    func push(_ envelopes: [Envelope]) async throws -> Int {
        count.add()
        return try await inner.push(envelopes)
    }

    func exchange(vector: [DeviceID: ChainHead], push: [Envelope], limit: Int) async throws -> ExchangeResult {
        count.add()
        return try await inner.exchange(vector: vector, push: push, limit: limit)
    }
}
