import AmanatSync
import Hummingbird
import NIOCore
import NIOHTTPTypes

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

    init(idleTimeout: TimeAmount, minimumRate: Int, grace: TimeAmount) {
        self.idleTimeout = idleTimeout
        self.minimumRate = minimumRate
        self.grace = grace
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        lingerTimer?.cancel()
        lingerTimer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        lingerTimer?.cancel()
        lingerTimer = nil
    }

    func read(context: ChannelHandlerContext) {
        if readPending == nil { readPending = .now() }
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
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
        switch unwrapOutboundIn(data) {
        case .head where bodyArriving:
            answeredEarly = true
            context.write(data, promise: promise)
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
            context.write(data, promise: promise)
        default:
            context.write(data, promise: promise)
        }
    }

    private func start(_ context: ChannelHandlerContext) {
        guard timer == nil else { return }
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

    /// Whether the client has kept the relay waiting too long, or sends its body too slowly.
    private func exceedsLimits() -> Bool {
        let now = NIODeadline.now()
        let pendingFor = readPending.map { now - $0 } ?? .zero
        if !answering && pendingFor >= idleTimeout { return true }
        guard bodyArriving else { return false }
        let waiting = bodyWaited + pendingFor
        let owed = Int64(minimumRate) * (waiting - grace).nanoseconds / 1_000_000_000
        return owed > Int64(bodyBytes)
    }
}

@available(*, unavailable)
extension ConnectionGuard: Sendable {}
