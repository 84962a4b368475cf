import ArgumentParser

/// `amanat identity`: this device's id.
struct Identity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print this device's id and name.",
        discussion: """
            Example:
              amanat identity
            """)

    @OptionGroup var options: VaultOptions

    func run() throws {
        try runReportingErrors {
            let vault = try options.open()
            print("device: \(vault.deviceID.hex)")
            print("name:   \(vault.keyring.deviceName)")
        }
    }
}
