import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

@testable import AmanatHTTP

/// Network failures are told apart by the error's type, from real sockets, not by matching the error's text.
@Suite struct NetworkErrorTests {
    /// A loopback port with nothing listening on it: bound, then closed.
    func closedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        close(fd)
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @Test func aRefusedConnectionIsToldAsSuchAndTheCarrierGivesUpWithOneSentence() async throws {
        let port = try closedPort()
        let carrier = try HTTPCarrier(
            url: "http://127.0.0.1:\(port)", vaultID: Sodium.randomBytes(16), key: SigningKeyPair.generate(),
            options: testOptions(attempts: 1))
        do {
            _ = try await carrier.versionVector()
            Issue.record("a closed port answered")
        } catch let error as RelayClientError {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("(connection refused)"), "\(error.message)")
        }
        await carrier.shutdown()
    }

    @Test func errorsOfEachKindAreClassifiedByTheirType() {
        #expect(HTTPCarrier.describe(HTTPClientError.connectTimeout) == "timed out")
        #expect(HTTPCarrier.describe(HTTPClientError.remoteConnectionClosed) == "connection lost")
        #expect(HTTPCarrier.describe(IOError(errnoCode: ECONNRESET, reason: "read")) == "connection lost")
        #expect(HTTPCarrier.describe(IOError(errnoCode: ECONNREFUSED, reason: "connect")) == "connection refused")
        #expect(HTTPCarrier.describe(ChannelError.ioOnClosedChannel) == "connection lost")
        // A message that merely mentions a cause is not classified by its words.
        struct Wordy: Error, CustomStringConvertible { var description = "connection refused, timed out, reset" }
        #expect(HTTPCarrier.describe(Wordy()) == "network error")
    }
}
