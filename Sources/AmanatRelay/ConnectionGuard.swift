import AmanatSync
import Hummingbird
import NIOCore
import NIOHTTPTypes

/// Guards one relay connection against clients that hold it without finishing their request (Protocol/http-api.md
/// §7). It sits between the HTTP codec and Hummingbird, next to Hummingbird's idle timeout (which closes a connection
/// on which nothing arrives, including a request whose headers never end):
///
/// - **Early answers.** When the relay answers before the request's body has arrived (413 on `Content-Length`, 401
///   before the body is read, …), the answer carries `Connection: close`; after it is sent the relay shuts its
///   side (FIN), discards at most ``lingerBytes`` (16 MiB) more of the body for at most ``linger`` (30 s), then
///   closes. A client still uploading therefore gets the answer and the end of the connection instead of waiting,
///   and the relay never reads more than 16 MiB of a body it has refused.
/// - **Slow bodies.** A body must arrive at ``minimumRate`` bytes per second on average once ``grace`` has passed;
///   a connection that sends slower is closed. Only time in which the relay was asking for data counts: when the
///   relay itself is busy and has stopped reading (backpressure), the client is not blamed for it.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Bytes per second a request body must average after ``grace``.
    let minimumRate: Int
    /// Time a request body gets before the rate counts.
    let grace: TimeAmount
    /// How long an early-answered connection is kept open to let the answer reach the client.
    let linger: TimeAmount = .seconds(30)
    /// How much of a refused body is read (and discarded) while lingering: twice the largest body the relay accepts,
    /// so that an ordinary client that sends a slightly too large body (or a good body with a bad signature) can
    /// finish sending and read the answer, while a body announced as gigabytes is cut off.
    let lingerBytes = 2 * RelayWire.maxRequestBytes

    private var bodyArriving = false
    private var bodyBytes = 0
    /// Time this body's bytes were asked for and not yet there.
    private var waited: TimeAmount = .zero
    /// When the relay asked for data that has not arrived yet.
    private var readPending: NIODeadline?
    private var answeredEarly = false
    private var lingering = false
    private var discarded = 0
    private var rateCheck: Scheduled<Void>?

    init(minimumRate: Int, grace: TimeAmount) {
        self.minimumRate = minimumRate
        self.grace = grace
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if let since = readPending {
            waited = waited + (NIODeadline.now() - since)
            readPending = nil
        }
        if lingering {
            if case .body(let buffer) = part { discarded += buffer.readableBytes }
            if discarded > lingerBytes { context.close(promise: nil) }
            return
        }
        switch part {
        case .head:
            bodyArriving = true
            bodyBytes = 0
            waited = .zero
            scheduleRateCheck(context)
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
        case .end:
            bodyArriving = false
            rateCheck?.cancel()
            rateCheck = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where bodyArriving:
            answeredEarly = true
            head.headerFields[.connection] = "close"
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end where answeredEarly:
            answeredEarly = false
            lingering = true
            rateCheck?.cancel()
            context.writeAndFlush(data, promise: promise)
            context.close(mode: .output, promise: nil)
            let loop = context.eventLoop.assumeIsolatedUnsafeUnchecked()
            loop.scheduleTask(in: linger) { context.close(promise: nil) }
        default:
            context.write(data, promise: promise)
        }
    }

    func read(context: ChannelHandlerContext) {
        if readPending == nil { readPending = .now() }
        context.read()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        rateCheck?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        rateCheck?.cancel()
        context.fireChannelInactive()
    }

    private func scheduleRateCheck(_ context: ChannelHandlerContext) {
        rateCheck?.cancel()
        let loop = context.eventLoop.assumeIsolatedUnsafeUnchecked()
        rateCheck = loop.scheduleTask(in: .seconds(1)) { [self] in
            rateCheck = nil
            guard bodyArriving, !lingering else { return }
            let waiting = waited + (readPending.map { NIODeadline.now() - $0 } ?? .zero)
            let owed = Int64(minimumRate) * (waiting - grace).nanoseconds / 1_000_000_000
            if owed > Int64(bodyBytes) {
                context.close(promise: nil)
            } else {
                scheduleRateCheck(context)
            }
        }
    }
}

@available(*, unavailable)
extension ConnectionGuard: Sendable {}
