import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import ArgumentParser
import Foundation

extension Amanat {
    /// `amanat bundle`: verify and open evidence bundles.
    struct Bundle: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify or open an evidence bundle received from an Amanat user.",
            discussion: """
                Example:
                  amanat bundle verify evidence.age --identity key.txt
                  amanat bundle open evidence.age --identity key.txt \\
                    --out ./evidence
                """,
            subcommands: [BundleVerify.self, BundleOpen.self])
    }
}

/// How to decrypt a bundle: an age identity file or a passphrase.
struct BundleKeyOptions: ParsableArguments {
    @Option(help: "An age identity file (from age-keygen).") var identity: String?
    @Flag(help: "The bundle was encrypted to a passphrase ($AMANAT_BUNDLE_PASSPHRASE or asked).") var passphrase = false

    /// The identities to try: the --identity file, the --passphrase, or else this device's own bundle key (the
    /// X25519 member key whose recipient `amanat identity` prints), from the vault `vault` opens, if there is one.
    func identities(vault: () throws -> Vault?) throws -> [any AgeIdentity] {
        if passphrase {
            let secret = try Passphrase.read(
                file: nil, prompt: "Passphrase of the bundle: ", confirm: false,
                environmentVariable: "AMANAT_BUNDLE_PASSPHRASE", fileOption: nil)
            return [try AgeScryptIdentity(passphrase: secret)]
        }
        guard let identity else {
            if let own = try vault(), let agreement = own.keyring.agreement {
                note(
                    "No --identity given: using this device's own bundle key (the age recipient `amanat identity` prints)."
                )
                return [try AgeX25519Identity(secretKey: agreement.secretKey)]
            }
            throw CLIError(
                .usage,
                "Give --identity KEYFILE or --passphrase to open the bundle, or --vault DIR for a bundle sent to that vault's `amanat identity`."
            )
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

    /// Decrypts the bundle at `path` and parses its archive as it streams (attachment files kept as their SHA-256
    /// and size, their bytes given to `sink`: ``BundleVerifier/decryptArchive(input:identities:sink:)``), so a
    /// bundle of any size is read in bounded memory; `vault` gives this device's vault, if any, for its own bundle
    /// key.
    func decryptArchive(
        _ path: String, vault: () throws -> Vault?, sink: ((TarArchive.Event) throws -> Void)? = nil
    ) throws -> TarArchive {
        try decryptArchive(path, identities: try identities(vault: vault), sink: sink)
    }

    /// ``decryptArchive(_:vault:sink:)`` with the identities already chosen.
    func decryptArchive(
        _ path: String, identities: [any AgeIdentity], sink: ((TarArchive.Event) throws -> Void)? = nil
    ) throws -> TarArchive {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CLIError(.noInput, "The bundle \(path) cannot be read.")
        }
        defer { try? handle.close() }
        let source = AgeClosureSource { count in
            do {
                return Array(try handle.read(upToCount: count) ?? Data())
            } catch {
                throw CLIError(.io, "The bundle \(path) cannot be read (\(OutputFolder.reason(error))).")
            }
        }
        do {
            return try BundleVerifier.decryptArchive(input: source, identities: identities, sink: sink)
        } catch let error as AgeError {
            switch error.code {
            case .noMatch:
                let stanzas = AgeStanzas.kinds(ofFile: path) ?? []
                if stanzas == ["scrypt"] && !passphrase {
                    throw CLIError(
                        .wrongPassphrase,
                        "\(path) is protected by a passphrase: add --passphrase (a backup of a vault is brought back with `amanat restore`)."
                    )
                }
                throw CLIError(
                    .wrongPassphrase,
                    passphrase && stanzas.contains("scrypt")
                        ? "Wrong passphrase for this bundle."
                        : "This bundle was not encrypted to that identity or passphrase.")
            case .outOfMemory: throw CLIError(.io, error.message)
            default: throw CLIError(.damaged, "The bundle is damaged or was altered: \(error.message)")
            }
        } catch let error as BundleError {
            // Too large for this machine's memory is not damage (the same bundle checks on a larger machine).
            throw CLIError(error.code == .tooLarge ? .io : .damaged, error.message)
        }
    }
}

/// The UTC time of integer milliseconds, as `2026-03-05T10:15:02.123Z`; integer arithmetic only, so no millisecond
/// is lost to a floating-point date.
func millisTime(_ millis: UInt64) -> String {
    let seconds = Date(timeIntervalSince1970: TimeInterval(millis / 1000))
    let base = seconds.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false))
    let fraction = String(millis % 1000)
    return base.replacingOccurrences(of: "Z", with: "")
        + "." + String(repeating: "0", count: 3 - fraction.count) + fraction + "Z"
}

/// Prints who recorded and amended what and when, who signed, and what is not proven or not disclosed.
func printProvenance(_ report: BundleReport) {
    if let legacy = report.legacy {
        printLegacyProvenance(legacy)
        return
    }
    guard let m = report.manifest else { return }
    print(
        TerminalText.escape(
            "bundle of vault \(VaultFingerprint.of(m.vaultID)) (format 2, signed), exported by \(report.label(m.exportedBy)) at \(millisTime(m.exportedAtMillis))"
        ))
    print("\nsigning devices (names are the exporter's statement):")
    for signer in report.signers {
        let name = signer.name.map { " \"\($0)\"" } ?? ""
        let status: String
        if !signer.proven {
            status = "not proven to be a member"
        } else if signer.role == "revoked" {
            status = "revoked (its admission and its revocation are in the bundle)"
        } else {
            status = "\(signer.role ?? "member") (admission proven back to the vault's founder)"
        }
        let exporter = signer.device == m.exportedBy ? ", exported this bundle" : ""
        print(TerminalText.escape("  \(signer.device.hex.prefix(12))\(name)  \(status)\(exporter)"))
    }
    for record in report.records {
        let d = record.document
        let consent = record.entry.consent.map { ", consent at export: \($0)" } ?? ""
        print("\n" + TerminalText.escape("\(d.kind) \(d.id.hex)\(d.deleted ? " (deleted)" : "")\(consent)"))
        if let seal = d.sealedContentHash {
            print(TerminalText.escape("  sealed original: \(Hex.encode(seal).prefix(16))… (verified)"))
        }
        for change in d.history {
            let label = change.label.map { " (\($0))" } ?? ""
            let name = report.name(of: change.device).map { " \"\($0)\"" } ?? ""
            print(
                TerminalText.escape(
                    "  \(millisTime(change.timeMillis))  device \(change.device.hex.prefix(12))\(name)  change \(change.seq)\(label)"
                ))
            for op in change.operations { print("      \(RecordText.oneLine(op, 90))") }
        }
        for a in record.entry.attachments {
            if let s = a.stripped {
                print(
                    TerminalText.escape(
                        "  \(a.path): location-stripped copy (removed: \(s.removed.joined(separator: ", "))), SHA-256 \(Hex.encode(a.sha256)); its original's SHA-256 is \(Hex.encode(s.originalSHA256)) (sealed in custody, kept in the exporter's vault)"
                    ))
            } else {
                print(
                    TerminalText.escape(
                        "  \(a.path): the attached original, SHA-256 \(Hex.encode(a.sha256)) (sealed in custody)"))
            }
        }
        if !record.undisclosed.isEmpty {
            let n = record.undisclosed.count
            print(
                "  \(n) change\(n == 1 ? "" : "s") not disclosed: the exporter's vault holds \(n == 1 ? "it" : "them") for this record, but \(n == 1 ? "its" : "their") content is not in the bundle (see README.txt)"
            )
        }
    }
}

/// Prints a format-1 bundle as that version did.
func printLegacyProvenance(_ report: LegacyReport) {
    if let m = report.manifest {
        print(
            TerminalText.escape(
                "bundle of vault \(m.vault_id) (format 1: unsigned, signers and names not proven), exported by device \(m.exported_by.prefix(12)) at \(m.exported_at)"
            ))
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

/// Prints the report's problems and ends with the documented status: 65 when the bundle is not intact, 3 when it is
/// intact but not proven (unless `acceptUnproven`), nothing when it verified.
func finish(_ report: BundleReport, acceptUnproven: Bool = false) throws {
    switch report.outcome {
    case .damaged:
        for problem in report.problems { note("amanat: \(problem)") }
        throw ExitCode(CLIError.Status.damaged.rawValue)
    case .unproven:
        for reason in report.unproven { note("NOT PROVEN: \(reason)") }
        if !acceptUnproven { throw ExitCode(CLIError.Status.unproven.rawValue) }
    case .verified:
        break
    }
}

/// `--expect-vault`, parsed.
func expectedVault(_ text: String?) throws -> [UInt8]? {
    guard let text else { return nil }
    guard let id = VaultFingerprint.parse(text) else {
        throw CLIError(
            .usage,
            "\"\(text)\" is not a vault fingerprint: give the 32 hex digits `amanat status` prints (dashes optional).")
    }
    return id
}

extension Amanat {
    /// `amanat bundle verify`.
    struct BundleVerify: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract:
                "Verify a bundle offline: who signed it, whether they belonged to the vault, what is not disclosed.",
            discussion: """
                PATH is the age file, or a folder that `bundle open` extracted. Checks the exporting device's signature of \
                the manifest and every file's SHA-256, every device's hash chain and signature, that each envelope is the \
                one its device signed and decrypts with its key, each seal, that every records/<id>.json is exactly what \
                the signed changes produce, and each signing device's membership back to the vault's founder \
                (Protocol/bundle.md §7). Shows each signing device with the name the exporter states and its role, or \
                "not proven to be a member"; per record, "N changes not disclosed" when the manifest lists changes whose \
                content the bundle leaves out.

                Exit status: 0 verified and every signer proven; 3 intact but some signer not proven, the vault's \
                founding entry missing, a vault other than --expect-vault, or a format-1 (unsigned) bundle; 65 altered \
                or not a bundle (each problem named on stderr); 64 usage; 66 no such file; 77 not encrypted to you.

                Example:
                  amanat bundle verify evidence.age --identity key.txt \\
                    --expect-vault 3f9a-12bc-0d4e-…
                  amanat bundle verify ./opened-bundle
                """)

        @OptionGroup var options: VaultOptions
        @OptionGroup var key: BundleKeyOptions
        @Option(help: "The vault fingerprint you expect (from the team's `amanat status`).") var expectVault: String?
        @Argument(help: "The bundle file, or an opened bundle folder.") var path: String
        @Flag(help: "Print the report as JSON, also when the bundle does not verify (exit status 3 or 65).")
        var json = false

        func run() throws {
            let expected = try expectedVault(expectVault)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw CLIError(.noInput, "There is no bundle at \(path).")
            }
            let archive =
                isDirectory.boolValue
                ? try BundleVerifier.archive(fromDirectory: URL(fileURLWithPath: path))
                : try key.decryptArchive(path, vault: options.openIfPresent)
            let report = BundleVerifier.verify(archive, expectVault: expected)
            if json {
                try JSONOutput.print(BundleJSON(report))
                try finish(report)
                return
            }
            if report.outcome != .damaged { printProvenance(report) }
            try finish(report)
            print(
                "\nok: \(report.records.count) record\(report.records.count == 1 ? "" : "s"), \(report.chainLinks) signed change\(report.chainLinks == 1 ? "" : "s") in the custody chains verified; every signer is proven a member of vault \(report.vaultID.map(VaultFingerprint.of) ?? "?")"
            )
        }
    }
}

extension Amanat {
    /// `amanat bundle open`.
    struct BundleOpen: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "open",
            abstract: "Decrypt and verify a bundle, then extract it into a new folder.",
            discussion: """
                Nothing is written unless the whole bundle decrypts and verifies (exit status as `bundle verify`). A bundle \
                that is intact but whose signers are not proven (or a format-1 bundle) is extracted only with \
                --accept-unproven.

                Example:
                  amanat bundle open evidence.age --identity key.txt \\
                    --out ./evidence
                """)

        @OptionGroup var options: VaultOptions
        @OptionGroup var key: BundleKeyOptions
        @Option(help: "The vault fingerprint you expect (from the team's `amanat status`).") var expectVault: String?
        @Flag(help: "Extract an intact bundle even if its signers are not proven.") var acceptUnproven = false
        @Argument(help: "The bundle file.") var path: String
        @Option(help: "The folder to extract into (must not exist or be empty).") var out: String
        @Flag(help: "Print the report and what was extracted as JSON, also when nothing is (exit status 3 or 65).")
        var json = false

        func run() throws {
            let expected = try expectedVault(expectVault)
            let fm = FileManager.default
            try OutputFolder.check(out)
            let outExisted = fm.fileExists(atPath: out)
            // The passphrase, if any, is asked once: the attachments are read in a second pass.
            let identities = try key.identities(vault: options.openIfPresent)
            let archive = try key.decryptArchive(path, identities: identities)
            let report = BundleVerifier.verify(archive, expectVault: expected)
            if json, report.outcome == .damaged || (report.outcome == .unproven && !acceptUnproven) {
                var refused = BundleJSON(report)
                refused.files = 0
                try JSONOutput.print(refused)
            }
            try finish(report, acceptUnproven: acceptUnproven)
            let root = URL(fileURLWithPath: out)
            var written: [URL] = []
            func create(_ relative: String) throws -> URL {
                let url = root.appendingPathComponent(relative)
                do {
                    try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                } catch {
                    throw CLIError(
                        .io,
                        "The folder \(url.deletingLastPathComponent().path) cannot be created: \(OutputFolder.reason(error))."
                    )
                }
                guard fm.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                    throw CLIError(.io, "\(url.path) cannot be written (\(String(cString: strerror(errno)))).")
                }
                written.append(url)
                return url
            }
            do {
                for entry in archive.entries where entry.summary == nil {
                    // Through the file `create` made with mode 0600: `createFile(contents:)` would replace it with
                    // a new file whose mode follows the umask (0644), and these documents hold the narratives.
                    let url = try create(entry.path)
                    do {
                        let handle = try FileHandle(forWritingTo: url)
                        try handle.write(contentsOf: Data(entry.contents))
                        try handle.close()
                    } catch {
                        throw CLIError(.io, "\(url.path) cannot be written (\(OutputFolder.reason(error))).")
                    }
                }
                if archive.entries.contains(where: { $0.summary != nil }) {
                    try writeAttachments(of: archive, identities: identities, create: create)
                }
            } catch {
                // Nothing of a bundle that could not be opened whole stays: its files, then the folders they made
                // (deepest first; `rmdir` removes only empty ones, and the output folder was empty or new).
                for url in written { try? fm.removeItem(at: url) }
                let folders = (try? fm.subpathsOfDirectory(atPath: root.path)) ?? []
                for folder in folders.sorted(by: { $0.count > $1.count }) {
                    _ = rmdir(root.appendingPathComponent(folder).path)
                }
                if !outExisted { _ = rmdir(root.path) }
                throw error
            }
            if json {
                var opened = BundleJSON(report)
                opened.out = out
                opened.files = archive.entries.count
                try JSONOutput.print(opened)
                return
            }
            printProvenance(report)
            print("\nok: verified and extracted \(archive.entries.count) files to \(out)")
        }

        /// Decrypts the bundle a second time and writes its attachment files as they stream, each compared with the
        /// hash and size the verified first reading found: a bundle file replaced between the two readings is
        /// refused (and the caller removes what was written).
        func writeAttachments(
            of verified: TarArchive, identities: [any AgeIdentity], create: (String) throws -> URL
        ) throws {
            var current: (handle: FileHandle, path: String)?
            let changed = CLIError(
                .damaged, "The bundle \(path) changed while it was being opened; nothing was extracted.")
            let second = try withoutActuallyEscaping(create) { create in
                try key.decryptArchive(path, identities: identities) { event in
                    switch event {
                    case .start(let file, let size):
                        // Only the files, of the sizes, the verified reading found: a larger file swapped in is
                        // refused before it can fill the disk.
                        guard verified.entry(file)?.summary?.size == size else { throw changed }
                        let url = try create(file)
                        guard let handle = FileHandle(forWritingAtPath: url.path) else {
                            throw CLIError(.io, "\(url.path) cannot be written (\(String(cString: strerror(errno)))).")
                        }
                        current = (handle, url.path)
                    case .bytes(let bytes):
                        guard let file = current else { throw changed }
                        do {
                            try file.handle.write(contentsOf: Data(bytes))
                        } catch {
                            throw CLIError(.io, "\(file.path) cannot be written (\(OutputFolder.reason(error))).")
                        }
                    case .end:
                        try current?.handle.close()
                        current = nil
                    }
                }
            }
            try? current?.handle.close()
            guard second == verified else { throw changed }
        }
    }
}
