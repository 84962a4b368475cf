import AmanatFuzzTargets
import Foundation
import Testing

/// Every seed and every input the fuzzers ever crashed on goes through its target on each `make test`, so a crash
/// found once cannot come back (Docs/reliability.md). Seeds named `valid-…` must still be accepted, and crash
/// inputs named `reject-…` must be rejected, so a decoder that broke into refusing or accepting everything fails.
/// Serialized: the targets share one private temporary folder, removed after each test.
@Suite(.serialized) struct FuzzRegressionTests {
    static let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz")

    static func inputs(_ kind: String, _ target: FuzzTarget) -> [URL] {
        let folder = fuzz.appendingPathComponent(kind).appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.sorted().map { folder.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTarget.allCases)
    func seedsRunAndValidOnesAreAccepted(_ target: FuzzTarget) throws {
        defer { FuzzWorkspace.remove() }
        let seeds = Self.inputs("corpus", target)
        #expect(!seeds.isEmpty, "the \(target.rawValue) target has no seed corpus")
        #expect(seeds.contains { $0.lastPathComponent.hasPrefix("valid-") }, "no valid \(target.rawValue) seed")
        for url in seeds {
            let accepted = target.run(Array(try Data(contentsOf: url)))
            if url.lastPathComponent.hasPrefix("valid-") {
                #expect(accepted, "\(target.rawValue) seed \(url.lastPathComponent) is no longer accepted")
            }
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func crashInputsStayFixed(_ target: FuzzTarget) throws {
        defer { FuzzWorkspace.remove() }
        for url in Self.inputs("regressions", target) {
            let accepted = target.run(Array(try Data(contentsOf: url)))
            if url.lastPathComponent.hasPrefix("reject-") {
                #expect(!accepted, "\(target.rawValue) regression \(url.lastPathComponent) is accepted")
            }
        }
    }

    @Test func mutatedValidSeedsAreRejected() throws {
        // Each decoder must notice a wrong first byte (magic, version or mode) of an input it accepts.
        for target in [FuzzTarget.change, .membership, .envelope, .relay, .tar] {
            for url in Self.inputs("corpus", target) where url.lastPathComponent.hasPrefix("valid-") {
                var bytes = Array(try Data(contentsOf: url))
                bytes[0] ^= 0xA5
                #expect(
                    !target.run(bytes), "\(target.rawValue) accepts \(url.lastPathComponent) with a wrong first byte")
            }
        }
    }
}
