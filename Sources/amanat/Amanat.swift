import ArgumentParser

#if canImport(Glibc)
    import Glibc
#endif

/// The `amanat` command: an encrypted, offline-first vault of testimonies and statements.
@main
struct Amanat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amanat",
        abstract: "An encrypted, offline-first vault of testimonies and statements that syncs without losing an edit.",
        discussion: """
            The vault is chosen with --vault DIR, else $AMANAT_VAULT, else $HOME/.amanat. The passphrase is read from
            --passphrase-file, else $AMANAT_PASSPHRASE, else asked at the terminal without echo.

            Exit status: 0 success; 1 internal error; 2 the selection matched no record; 3 an evidence bundle is intact but
            its signers are not proven (or it is not of the --expect-vault vault, or unsigned format 1); 64 bad usage or
            value; 65 damaged or forged data;
            66 missing vault or input file; 67 unknown or ambiguous record id; 69 relay unreachable;
            73 vault already exists; 74 input/output error or full disk (or wipe could not destroy every file);
            75 vault busy; 77 wrong passphrase, the relay refused this device's key or needs its registration code,
            or this device's role does not allow the action.

            Example:
              export AMANAT_VAULT=~/vault
              amanat init --device-name "field laptop"
              amanat add statement --title "Coalition statement" --body-file statement.txt --tag afghanistan
              amanat add testimony --witness W-017 --location Kabul      (type the testimony, end with Ctrl-D)
              amanat list
            """,
        version: "0.1.0",
        subcommands: [
            Init.self, Add.self, List.self, Show.self, History.self, Edit.self, Tag.self, Delete.self, Undelete.self,
            Resolve.self,
            Search.self, Status.self, Verify.self, Identity.self, Sync.self, Import.self, Invite.self, Join.self,
            Members.self, Revoke.self, RoleCommand.self, Rename.self, DismissFork.self, Recover.self,
            Export.self, Bundle.self,
            ChangePassphrase.self, Backup.self, Restore.self, Wipe.self, Serve.self,
            Amanat.Duress.self, Amanat.Config.self,
        ]
    )

    /// Accepted before the subcommand too (`amanat --vault DIR list`), as the command-line contract says.
    @OptionGroup var options: VaultOptions

    /// The entry point: no core dumps, then the command.
    static func main() async {
        disableCoreDumps()
        await main(nil)
    }

    /// Keeps secrets (the passphrase, keys, decrypted records) out of core files: the core size limit is set to 0,
    /// and on Linux the process is marked not dumpable, which also stops a core piped to a crash handler
    /// (`core_pattern` starting with `|` ignores the size limit) and other users' ptrace attaching.
    /// Done before anything is read, for every command. (Amanat runs on Linux; elsewhere this does nothing.)
    static func disableCoreDumps() {
        #if os(Linux)
            var none = rlimit(rlim_cur: 0, rlim_max: 0)
            _ = setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &none)
            // prctl(2) is variadic in C, so Swift cannot call it directly; on Linux's calling conventions (x86-64,
            // AArch64) passing its integer arguments through a fixed five-argument signature is what C callers do.
            typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
            if let symbol = dlsym(nil, "prctl") {
                let setDumpable: Int32 = 4  // PR_SET_DUMPABLE in <linux/prctl.h>, not exported to Swift by Glibc
                _ = unsafeBitCast(symbol, to: Prctl.self)(setDumpable, 0, 0, 0, 0)
            }
        #endif
    }
}
