import AmanatBundle
import AmanatCore
import AmanatCrypto
import ArgumentParser
import Foundation

/// `amanat bundle`: verify and open evidence bundles.
struct Bundle: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify or open an evidence bundle received from an Amanat user.",
        discussion: """
            Example:
              amanat bundle verify evidence.age --identity lawyer-key.txt
              amanat bundle open evidence.age --identity lawyer-key.txt --out ./evidence
            """,
        subcommands: [BundleVerify.self, BundleOpen.self])
}

/// How to decrypt a bundle: an age identity file or a passphrase.
struct BundleKeyOptions: ParsableArguments {
    @Option(help: "An age identity file (from age-keygen).") var identity: String?
    @Flag(help: "The bundle was encrypted to a passphrase ($AMANAT_BUNDLE_PASSPHRASE or asked).") var passphrase = false

    func identities() throws -> [any AgeIdentity] {
        if passphrase {
            let secret = try Passphrase.read(
                file: nil, prompt: "Passphrase of the bundle: ", confirm: false,
                environmentVariable: "AMANAT_BUNDLE_PASSPHRASE")
            return [try AgeScryptIdentity(passphrase: secret)]
        }
        guard let identity else {
            throw CLIError(.usage, "Give --identity KEYFILE or --passphrase to open the bundle.")
        }
        guard let data = FileManager.default.contents(atPath: identity) else {
            throw CLIError(.noInput, "The identity file \(identity) cannot be read.")
        }
        do {
            return try AgeX25519Identity.parseAll(String(decoding: data, as: UTF8.self))
        } catch {
            throw CLIError(.usage, "\(identity) holds no age identity (AGE-SECRET-KEY-1…).")
        }
    }

    /// Decrypts the bundle at `path` and parses its archive.
    func decryptArchive(_ path: String) throws -> TarArchive {
        let identities = try identities()
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError(.noInput, "The bundle \(path) cannot be read.")
        }
        let plaintext: [UInt8]
        do {
            plaintext = try AgeDecryption.decrypt(Array(data), identities: identities)
        } catch let error as AgeError {
            switch error.code {
            case .noMatch:
                throw CLIError(.wrongPassphrase, "This bundle was not encrypted to that identity or passphrase.")
            case .outOfMemory: throw CLIError(.io, error.message)
            default: throw CLIError(.damaged, "The bundle is damaged or was altered: \(error.message)")
            }
        }
        do {
            return try TarArchive(decoding: plaintext)
        } catch let error as BundleError {
            throw CLIError(.damaged, error.message)
        }
    }
}

/// Prints who recorded and amended what and when.
func printProvenance(_ report: BundleReport) {
    if let m = report.manifest {
        print(
            TerminalText.escape(
                "bundle of vault \(m.vault_id), exported by device \(m.exported_by.prefix(12)) at \(m.exported_at)"))
    }
    for record in report.records {
        let d = record.document
        print("\n" + TerminalText.escape("\(d.kind) \(d.id)\(d.deleted ? " (deleted)" : "")"))
        if let seal = d.sealed_content_hash {
            print(TerminalText.escape("  sealed original: \(seal.prefix(16))… (verified)"))
        }
        for change in d.history {
            let label = change.label.map { " (\($0))" } ?? ""
            print(
                TerminalText.escape(
                    "  \(change.time)  device \(change.device.prefix(12))  change \(change.seq)\(label)"))
            for op in change.operations { print("      \(RecordText.oneLine(op, 90))") }
        }
    }
}

/// `amanat bundle verify`.
struct BundleVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a bundle's custody chain offline and report who recorded and amended what, and when.",
        discussion: """
            PATH is the age file, or a folder that `bundle open` extracted. Checks every device's hash chain and
            signature, that each envelope is the one its device signed and decrypts with its key, each seal, and that
            every records/<id>.json is exactly what the signed changes produce. Exits 65 naming what failed.

            Example:
              amanat bundle verify evidence.age --identity lawyer-key.txt
              amanat bundle verify ./opened-bundle
            """)

    @OptionGroup var key: BundleKeyOptions
    @Argument(help: "The bundle file, or an opened bundle folder.") var path: String

    func run() throws {
        try runReportingErrors {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw CLIError(.noInput, "There is no bundle at \(path).")
            }
            let archive =
                isDirectory.boolValue
                ? try BundleVerifier.archive(fromDirectory: URL(fileURLWithPath: path)) : try key.decryptArchive(path)
            let report = BundleVerifier.verify(archive)
            guard report.problems.isEmpty else {
                for problem in report.problems { note("amanat: \(problem)") }
                throw ExitCode(CLIError.Status.damaged.rawValue)
            }
            printProvenance(report)
            print(
                "\nok: \(report.records.count) records, \(report.chainLinks) signed changes in the custody chains verified"
            )
        }
    }
}

/// `amanat bundle open`.
struct BundleOpen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open",
        abstract: "Decrypt and verify a bundle, then extract it into a new folder.",
        discussion: """
            Nothing is written unless the whole bundle decrypts and verifies.

            Example:
              amanat bundle open evidence.age --identity lawyer-key.txt --out ./evidence
            """)

    @OptionGroup var key: BundleKeyOptions
    @Argument(help: "The bundle file.") var path: String
    @Option(help: "The folder to extract into (must not exist or be empty).") var out: String

    func run() throws {
        try runReportingErrors {
            let fm = FileManager.default
            if let existing = try? fm.contentsOfDirectory(atPath: out), !existing.isEmpty {
                throw CLIError(.exists, "\(out) is not empty; choose a new folder.")
            }
            let archive = try key.decryptArchive(path)
            let report = BundleVerifier.verify(archive)
            guard report.problems.isEmpty else {
                for problem in report.problems { note("amanat: \(problem)") }
                throw ExitCode(CLIError.Status.damaged.rawValue)
            }
            let root = URL(fileURLWithPath: out)
            for entry in archive.entries {
                let url = root.appendingPathComponent(entry.path)
                try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                guard
                    fm.createFile(
                        atPath: url.path, contents: Data(entry.contents), attributes: [.posixPermissions: 0o600])
                else {
                    throw CLIError(.io, "Cannot write \(url.path).")
                }
            }
            printProvenance(report)
            print("\nok: verified and extracted \(archive.entries.count) files to \(out)")
        }
    }
}
