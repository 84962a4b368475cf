import AmanatCore
import AmanatWire
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTPTypes

/// Counts the relay's open connections per client address, so that one address cannot take every connection the
/// relay's process can hold (Protocol/http-api.md §7). Shared by the ``ConnectionGuard`` of every connection.
final class ConnectionLimiter: @unchecked Sendable {
    // @unchecked Sendable: `open` is guarded by `lock`.
    /// The most connections one address may hold open at once.
    let limit: Int
    private let lock = NSLock()
    private var open: [String: Int] = [:]

    init(limit: Int) { self.limit = limit }

    /// Counts a new connection from `address`; false (and nothing counted) if the address already holds ``limit``.
    func acquire(_ address: String) -> Bool {
        lock.withLock {
            let count = open[address, default: 0]
            guard count < limit else { return false }
            open[address] = count + 1
            return true
        }
    }

    /// Forgets one connection from `address`.
    func release(_ address: String) {
        lock.withLock {
            let count = open[address, default: 0]
            open[address] = count > 1 ? count - 1 : nil
        }
    }
}

/// Guards one relay connection against clients that hold it without finishing their request (Protocol/http-api.md
/// §7). It sits between the HTTP codec and Hummingbird.
///
/// - **Idle connections.** A connection on which the relay has waited ``idleTimeout`` for data that does not come
///   is closed: a connection nobody uses, a keep-alive connection left open, a request whose headers never end, a
///   body that stops. Time in which the relay is working on a request it has read in full does not count, and
///   neither does time in which the relay itself is busy and has stopped reading (backpressure): a slow relay never
///   blames its clients.
/// - **Early answers.** When the relay answers before the request's body has arrived (413 on `Content-Length`, 401
///   before the body is read, …), it then reads and discards the rest of the body, as HTTP/1.1 requires for the
///   connection to be used again, but at most ``lingerBytes`` (16 MiB) of it and for at most ``linger`` (30 s):
///   beyond that it closes the connection. A client still uploading a body of ordinary size therefore finishes and
///   reads the answer; one that announced gigabytes gets the answer and the end of the connection instead of
///   waiting, and the relay never reads more than 16 MiB of a body it has refused.
/// - **Slow bodies.** A body must arrive at ``minimumRate`` bytes per second on average once ``grace`` of waiting
///   has passed; a connection that sends slower is closed. Again only time in which the relay asked for data counts.
/// - **Slow readers.** An answer the client does not take (it sent a request and stopped reading, so its receive
///   window is full) is held to the same rules: the guard writes answers in pieces of ``writeChunk`` bytes, and a
///   connection on which no piece has been taken for ``idleTimeout``, or whose answer has been taken at less than
///   ``minimumRate`` on average once ``grace`` of waiting has passed, is closed. Only time in which a piece of the
///   answer was waiting for the client counts, and waiting for the next request starts once the whole answer has
///   been taken, so a slow but steady reader of a large answer is not cut off by the idle timeout.
/// - **Connections per address.** With a ``ConnectionLimiter``, a connection from an address that already holds
///   the limit is closed at once, before anything is read from it.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// How long the relay waits for data that does not come before it closes the connection.
    let idleTimeout: TimeAmount
    /// Bytes per second a request body must average after ``grace``.
    let minimumRate: Int
    /// Waiting time a request body gets before the rate counts.
    let grace: TimeAmount
    /// How long an early-answered connection is kept open to let the answer reach the client.
    let linger: TimeAmount = .seconds(30)
    /// How much of a refused body is read (and discarded) while lingering: twice the largest body the relay accepts,
    /// so that an ordinary client that sends a slightly too large body (or a good body with a bad signature) can
    /// finish sending and read the answer, while a body announced as gigabytes is cut off.
    let lingerBytes = 2 * RelayWire.maxRequestBytes
    /// How often the limits are checked.
    let tick: TimeAmount = .milliseconds(500)
    /// The size of the pieces an answer's body is written in: each piece the client takes is progress.
    let writeChunk = 64 * 1024
    /// Shared count of connections per address, or nil for no limit.
    let limiter: ConnectionLimiter?
    /// Where refused connections are noted.
    let logger: Logger

    private var bodyArriving = false
    private var bodyBytes = 0
    /// Time this body's bytes were asked for and not yet there.
    private var bodyWaited: TimeAmount = .zero
    /// When the relay asked for data that has not arrived yet.
    private var readPending: NIODeadline?
    /// A request was read in full and its answer is not finished: the relay is working, not waiting.
    private var answering = false
    private var answeredEarly = false
    private var lingering = false
    private var discarded = 0
    private var timer: Scheduled<Void>?
    private var lingerTimer: Scheduled<Void>?
    /// Writes handed to the channel and not yet taken by the client.
    private var writesPending = 0
    /// Since when the oldest pending write has waited without any write completing.
    private var writeStalledSince: NIODeadline?
    /// Bytes of the current answer's body the client has taken, and the time its pieces waited for it.
    private var answerTaken = 0
    private var answerWaited: TimeAmount = .zero
    /// The address this connection counts against in ``limiter``, once counted.
    private var countedAddress: String?
    private var refused = false

    init(
        idleTimeout: TimeAmount, minimumRate: Int, grace: TimeAmount, limiter: ConnectionLimiter? = nil,
        logger: Logger = Logger(label: "amanat.relay") { _ in SwiftLogNoOpLogHandler() }
    ) {
        self.idleTimeout = idleTimeout
        self.minimumRate = minimumRate
        self.grace = grace
        self.limiter = limiter
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    private func stop() {
        timer?.cancel()
        timer = nil
        lingerTimer?.cancel()
        lingerTimer = nil
        if let address = countedAddress {
            countedAddress = nil
            limiter?.release(address)
        }
    }

    func read(context: ChannelHandlerContext) {
        // A refused connection is never read from.
        guard !refused else { return }
        if readPending == nil { readPending = .now() }
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let part = unwrapInboundIn(data)
        if let since = readPending {
            if bodyArriving { bodyWaited = bodyWaited + (NIODeadline.now() - since) }
            readPending = nil
        }
        if lingering {
            switch part {
            case .body(let buffer):
                discarded += buffer.readableBytes
                if discarded > lingerBytes { context.close(promise: nil) }
                return
            case .end:
                // The refused body is over: the connection serves the next request as usual.
                lingering = false
                bodyArriving = false
                lingerTimer?.cancel()
                lingerTimer = nil
                context.fireChannelRead(data)
                return
            case .head:
                lingering = false
                lingerTimer?.cancel()
                lingerTimer = nil
            }
        }
        switch part {
        case .head:
            bodyArriving = true
            bodyBytes = 0
            bodyWaited = .zero
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
        case .end:
            bodyArriving = false
            answering = true
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        switch part {
        case .head:
            answerTaken = 0
            answerWaited = .zero
            if bodyArriving { answeredEarly = true }
            track(context, part, bytes: 0, promise: promise)
        case .body(let buffer):
            // Written in pieces, so that the client's taking each piece shows as progress.
            var rest = buffer
            while rest.readableBytes > writeChunk, let piece = rest.readSlice(length: writeChunk) {
                track(context, .body(piece), bytes: writeChunk, promise: nil)
            }
            track(context, .body(rest), bytes: rest.readableBytes, promise: promise)
        case .end:
            answering = false
            // Waiting for the next request starts now, not when the relay last asked for data.
            if readPending != nil { readPending = .now() }
            if answeredEarly && bodyArriving {
                lingering = true
                discarded = 0
                let loop = context.eventLoop.assumeIsolatedUnsafeUnchecked()
                lingerTimer = loop.scheduleTask(in: linger) { [self] in
                    if lingering { context.close(promise: nil) }
                }
            }
            answeredEarly = false
            track(context, part, bytes: 0, promise: promise)
        }
    }

    /// Writes `part`, counting it as pending until the channel has handed it to the client's connection.
    private func track(
        _ context: ChannelHandlerContext, _ part: HTTPResponsePart, bytes: Int, promise: EventLoopPromise<Void>?
    ) {
        let written = context.eventLoop.makePromise(of: Void.self)
        if writesPending == 0 { writeStalledSince = .now() }
        writesPending += 1
        written.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { [self] _ in
            writesPending -= 1
            let now = NIODeadline.now()
            if let since = writeStalledSince { answerWaited = answerWaited + (now - since) }
            answerTaken += bytes
            writeStalledSince = writesPending > 0 ? now : nil
            // Waiting for the next request starts once the client has taken the whole answer.
            if writesPending == 0 && !answering && readPending != nil { readPending = now }
        }
        if let promise { written.futureResult.cascade(to: promise) }
        context.write(wrapOutboundOut(part), promise: written)
    }

    private func start(_ context: ChannelHandlerContext) {
        guard timer == nil, !refused else { return }
        if let limiter, countedAddress == nil {
            let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
            guard limiter.acquire(address) else {
                refused = true
                logger.notice(
                    "refused a connection: too many from one address",
                    metadata: ["address": "\(TerminalText.escape(address))", "limit": "\(limiter.limit)"])
                context.close(promise: nil)
                return
            }
            countedAddress = address
        }
        // The relay waits for the first request from the moment the connection is there.
        if readPending == nil { readPending = .now() }
        schedule(context)
    }

    private func schedule(_ context: ChannelHandlerContext) {
        let loop = context.eventLoop.assumeIsolatedUnsafeUnchecked()
        timer = loop.scheduleTask(in: tick) { [self] in
            timer = nil
            if !lingering && exceedsLimits() {
                context.close(promise: nil)
            } else {
                schedule(context)
            }
        }
    }

    /// Whether the client has kept the relay waiting too long, sends its body too slowly, or does not take its
    /// answer.
    private func exceedsLimits() -> Bool {
        let now = NIODeadline.now()
        if let since = writeStalledSince {
            let stalled = now - since
            if stalled >= idleTimeout { return true }
            let waited = answerWaited + stalled
            let owed = Int64(minimumRate) * (waited - grace).nanoseconds / 1_000_000_000
            if owed > Int64(answerTaken) { return true }
        }
        let pendingFor = readPending.map { now - $0 } ?? .zero
        // While an answer is being handed to the client, the write rules above apply instead.
        if !answering && writesPending == 0 && pendingFor >= idleTimeout { return true }
        guard bodyArriving else { return false }
        let waiting = bodyWaited + pendingFor
        let owed = Int64(minimumRate) * (waiting - grace).nanoseconds / 1_000_000_000
        return owed > Int64(bodyBytes)
    }
}

@available(*, unavailable)
extension ConnectionGuard: Sendable {}
