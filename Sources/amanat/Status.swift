import AmanatCore
import AmanatCrypto
import ArgumentParser

/// `amanat status`: this device, counts, version vector and state digest.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show this device, the record and change counts, the version vector and the state digest.",
        discussion: """
            Two replicas that have seen the same changes show the same state_digest. --json prints
            {"device","device_name","records","changes","vector":{device:{"seq","head"}},"state_digest","forks"}.

            Example:
              amanat status --json
            """)

    @OptionGroup var options: VaultOptions
    @Flag(help: "Print JSON.") var json = false

    struct Head: Encodable {
        var seq: UInt64
        var head: String
    }

    struct Fork: Encodable {
        var device: String
        var seq: UInt64
    }

    struct Output: Encodable {
        var device: String
        var device_name: String
        var records: Int
        var changes: Int
        var vector: [String: Head]
        var state_digest: String
        var forks: [Fork]
    }

    func run() throws {
        try runReportingErrors {
            let s = try options.open().status()
            let out = Output(
                device: s.device.hex, device_name: s.deviceName, records: s.records, changes: s.changes,
                vector: Dictionary(
                    uniqueKeysWithValues: s.vector.map {
                        ($0.key.hex, Head(seq: $0.value.seq, head: Hex.encode($0.value.hash)))
                    }),
                state_digest: Hex.encode(s.stateDigest), forks: s.forks.map { Fork(device: $0.device.hex, seq: $0.seq) }
            )
            if json {
                print(try RecordJSON.render(out))
                return
            }
            print("device:       \(out.device) (\(TerminalText.escape(out.device_name)))")
            print("records:      \(out.records)")
            print("changes:      \(out.changes) from \(out.vector.count) device\(out.vector.count == 1 ? "" : "s")")
            for (device, head) in out.vector.sorted(by: { $0.key < $1.key }) {
                print("  \(device.prefix(12))  up to change \(head.seq)")
            }
            print("state digest: \(out.state_digest)")
            for fork in out.forks {
                print("FORK: device \(fork.device.prefix(12)) signed two different changes at \(fork.seq)")
            }
        }
    }
}
