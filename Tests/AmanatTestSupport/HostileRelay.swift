import AmanatCore
import AmanatSync
import AmanatWire
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A relay run by an attacker, on a loopback port: it speaks just enough HTTP for the real `HTTPCarrier` and
/// answers with whatever bytes it is given, unsigned by any relay rule. Every read has a deadline.
///
/// It answers `GET …/vector` with ``vector``, the first `POST …/exchange` with ``exchange`` and later ones with
/// ``laterExchange`` (an empty answer unless set), `GET …/envelopes?author=…&after=…` with the matching envelopes of
/// ``envelopes``, `GET …/without-content` with ``withoutContent`` (when set; the vector answer then carries
/// ``vectorHeaders``; after 5 s when it ``stallsListing``), and anything else with 404. What clients push is read and
/// ignored; pushes to `…/without-content` are counted (``putBacks``) and answered with ``putBackAnswer``.
public final class HostileRelay: @unchecked Sendable {
    // @unchecked Sendable: the answers never change after init; `exchanges` is guarded by `lock`.
    /// The port it listens on.
    public let port: Int
    private let fd: Int32
    private let vector: [UInt8]
    private let exchange: [UInt8]
    private let laterExchange: [UInt8]
    private let envelopes: [Envelope]
    private let vectorHeaders: [String]
    private let withoutContent: [UInt8]?
    private let putBackAnswer: String
    private let stallsListing: Bool
    private let refuses: Refusal
    private let lock = NSLock()
    private var forms: [String] = []
    private var exchanges = 0
    private var putBackCount = 0
    private var listingCount = 0

    /// Which requests a relay answers 401 with the previous release's sentence for a request without the hex
    /// authentication headers (http-api.md §3).
    public enum Refusal: Sendable {
        /// None.
        case none
        /// Those that carry `Amanat-Auth`, as a relay older than it does.
        case compact
        /// Every request.
        case all
        /// Every request, with the sentence of a clock 5 minutes off (a refusal that is not about the form).
        case clock
    }

    /// The authentication form of each request in order: "compact" (`Amanat-Auth`), "hex" or "none".
    public var authForms: [String] { lock.withLock { forms } }

    /// How many requests asked for the copies without content (`GET …/without-content`).
    public var listings: Int { lock.withLock { listingCount } }

    /// How many requests put content back (`POST …/without-content`).
    public var putBacks: Int { lock.withLock { putBackCount } }

    /// A relay that announces `vector` and answers the first exchange with `exchange` (raw bodies).
    public init(
        vector: [UInt8], exchange: [UInt8],
        laterExchange: [UInt8] = RelayWire.ExchangeResponse(stored: 0, remaining: 0, diverged: [], envelopes: [])
            .encoded(),
        envelopes: [Envelope] = [], vectorHeaders: [String] = [], withoutContent: [UInt8]? = nil,
        putBackAnswer: String = #"{"restored":0}"#, stallsListing: Bool = false, refuses: Refusal = .none
    ) throws {
        self.refuses = refuses
        self.putBackAnswer = putBackAnswer
        self.stallsListing = stallsListing
        self.vectorHeaders = vectorHeaders
        self.withoutContent = withoutContent
        self.vector = vector
        self.exchange = exchange
        self.laterExchange = laterExchange
        self.envelopes = envelopes
        guard let (listener, boundPort) = loopbackSocket(listening: true) else { throw HostileRelayError() }
        fd = listener
        port = boundPort
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 { return }
                answer(client)
                close(client)
            }
        }
    }

    /// A relay that serves `served` as what the victim lacks: its vector names each author's last envelope, and the
    /// first exchange answers with all of them.
    public convenience init(serving served: [Envelope]) throws {
        var heads: [DeviceID: ChainHead] = [:]
        for envelope in served where envelope.header.seq >= heads[envelope.header.author]?.seq ?? 0 {
            heads[envelope.header.author] = ChainHead(seq: envelope.header.seq, hash: envelope.hash)
        }
        try self.init(
            vector: RelayWire.encodeVector(heads),
            exchange: RelayWire.ExchangeResponse(
                stored: 0, remaining: 0, diverged: [], envelopes: served.map { $0.encoded() }
            ).encoded(),
            envelopes: served)
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    /// The relay's URL.
    public var url: String { "http://127.0.0.1:\(port)" }

    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        // Keep-alive: one request after another until the client closes or goes quiet.
        while true {
            var headerEnd: Int?
            var contentLength = 0
            while headerEnd == nil || pending.count < headerEnd! + contentLength {
                if headerEnd == nil, let end = pending.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound {
                    headerEnd = end
                    let head = String(decoding: pending[..<end], as: UTF8.self).lowercased()
                    for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                        contentLength = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                    continue
                }
                let n = read(client, &buffer, buffer.count)
                if n <= 0 { return }
                pending += buffer[0..<n]
            }
            let line = String(decoding: pending.prefix { $0 != 0x0d }, as: UTF8.self)
            let requestHead = String(decoding: pending[..<headerEnd!], as: UTF8.self).lowercased()
            pending.removeFirst(headerEnd! + contentLength)
            let form =
                requestHead.contains("\r\n\(RelayWire.Header.auth):")
                ? "compact"
                : requestHead.contains("\r\n\(RelayWire.Header.signature):") ? "hex" : "none"
            lock.withLock { forms.append(form) }
            let refused: Bool
            switch refuses {
            case .none: refused = false
            case .compact: refused = form != "hex"
            case .all, .clock: refused = true
            }
            let sentence =
                refuses == .clock
                ? "The request's timestamp is more than 5 minutes away from the relay's clock; check the clock."
                : "The request is not signed: it needs the Amanat-Key, -Timestamp, -Nonce and -Signature headers."
            let (status, body) =
                refused ? ("401 Unauthorized", Array(#"{"error":"\#(sentence)"}"#.utf8)) : respond(to: line)
            let extra = line.contains("/vector") ? vectorHeaders.map { $0 + "\r\n" }.joined() : ""
            let head =
                "HTTP/1.1 \(status)\r\ncontent-type: \(RelayWire.binaryType)\r\ncontent-length: \(body.count)\r\n\(extra)\r\n"
            let out = Array(head.utf8) + body
            var offset = 0
            while offset < out.count {
                let n = out[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                offset += n
            }
        }
    }

    private func respond(to line: String) -> (String, [UInt8]) {
        let parts = line.split(separator: " ")
        guard parts.count >= 2 else { return ("400 Bad Request", []) }
        let (method, target) = (parts[0], parts[1])
        if method == "GET" && target.contains("/vector") { return ("200 OK", vector) }
        if target.hasSuffix("/without-content"), let withoutContent {
            guard method == "POST" else {
                lock.withLock { listingCount += 1 }
                // A stalled listing: answered only after 5 s, past the client's deadline for it in the tests.
                if stallsListing { sleep(5) }
                return ("200 OK", withoutContent)
            }
            lock.withLock { putBackCount += 1 }
            return ("200 OK", Array(putBackAnswer.utf8))
        }
        if method == "POST" && target.contains("/exchange") {
            let first = lock.withLock {
                exchanges += 1
                return exchanges == 1
            }
            return ("200 OK", first ? exchange : laterExchange)
        }
        if method == "GET" && target.contains("/envelopes?") {
            var author: String?
            var after: UInt64 = 0
            for pair in target.split(separator: "?").last?.split(separator: "&") ?? [] {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { continue }
                if kv[0] == "author" { author = kv[1] }
                if kv[0] == "after" { after = UInt64(kv[1]) ?? 0 }
            }
            let matching = envelopes.filter { $0.header.author.hex == author && $0.header.seq > after }
                .sorted { $0.header.seq < $1.header.seq }
            return ("200 OK", RelayWire.encodeEnvelopeList(matching.map { $0.encoded() }))
        }
        return ("404 Not Found", [])
    }
}

/// The hostile relay could not listen.
public struct HostileRelayError: Error {}

/// A TCP socket bound to a free loopback port (listening when asked), or nil: the socket and its port.
public func loopbackSocket(listening: Bool) -> (socket: Int32, port: Int)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && (!listening || listen(fd, 16) == 0)
                && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else {
        close(fd)
        return nil
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}
